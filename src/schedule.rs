//! Scheduled synchronization (spec 4): an EventBridge "Scheduled Event" starts a `synchronize_all` job; the
//! CCKM scheduler's `cckm_synchronization_params` input starts the job it names. When `ORG_*` configures
//! one, an AWS Organizations discovery runs first, so that new accounts are in the job. A refused start is logged
//! and answered, never raised, so EventBridge does not retry it forever.

use crate::app::App;
use crate::domain::AppError;
use crate::domain::organization::DiscoveryInput;
use crate::domain::sync_request::SyncRequest;
use crate::service::{discovery, jobs};
use serde::Deserialize;
use serde_json::{Value, json};

/// The CCKM scheduler's constant input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerParams {
    #[serde(default)]
    pub cloud_name: Option<String>,
    #[serde(default)]
    pub kms: Vec<String>,
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub synchronize_all: Option<bool>,
}

impl SchedulerParams {
    fn into_request(self) -> Result<SyncRequest, AppError> {
        if let Some(cloud) = self.cloud_name.as_deref().filter(|c| *c != "aws") {
            return Err(AppError::InvalidParam(format!(
                "cloud_name '{cloud}' is not served here; only 'aws'"
            )));
        }
        SyncRequest::from_parts(self.kms, self.regions, self.synchronize_all)
    }
}

/// What started the scheduled sync.
pub enum Trigger {
    ScheduledEvent,
    Params(Value),
}

pub async fn run(app: &App, trigger: Trigger) -> Value {
    let request = match trigger {
        Trigger::ScheduledEvent => Ok(SyncRequest::All),
        Trigger::Params(params) => serde_json::from_value::<SchedulerParams>(params)
            .map_err(|e| AppError::InvalidParam(format!("cckm_synchronization_params: {e}")))
            .and_then(SchedulerParams::into_request),
    };
    if let Err(err) = jobs::sweep_abandoned(app).await {
        tracing::error!(error = %err, "could not end abandoned jobs");
    }
    // New accounts join this very sync; a failed discovery leaves the registered ones to sync.
    if app.discovery.is_configured()
        && let Err(err) = discovery::discover(app, DiscoveryInput::default()).await
    {
        tracing::error!(error = %err, "organization discovery failed; the sync goes on without it");
    }
    match async { jobs::start(app, request?, |_| Ok(())).await }.await {
        Ok(job) => {
            tracing::info!(job_id = %job.id, "scheduled synchronization started");
            json!({"started": true, "job_id": job.id, "overall_status": job.overall_status.as_str()})
        }
        Err(err) => {
            match &err {
                AppError::Internal(detail) => {
                    tracing::error!(error = %detail, "scheduled synchronization could not start")
                }
                other => tracing::warn!(reason = %other, "scheduled synchronization refused"),
            }
            let reason = match err {
                AppError::Internal(_) => "unexpected error".to_string(),
                other => other.to_string(),
            };
            json!({"started": false, "reason": reason})
        }
    }
}
