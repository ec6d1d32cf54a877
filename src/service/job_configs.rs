//! Scheduler job configurations (CCKM's scheduler API, `cckm_synchronization` only): each one stored with
//! its EventBridge Scheduler schedule, which hands the function the CCKM scheduler input at `run_at`. The
//! schedule is written first and removed last, so a stored configuration always has its schedule.

use crate::app::App;
use crate::domain::AppError;
use crate::domain::job::Job;
use crate::domain::job_config::{JobConfig, JobConfigBody, scheduler_cron};
use crate::domain::list::parse_json_body;
use crate::domain::sync_request::SyncRequest;
use crate::domain::time::now;
use crate::ports::{ScheduleSpec, Schedules};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

fn schedules(app: &App) -> Result<&Arc<dyn Schedules>, AppError> {
    app.schedules.as_ref().ok_or_else(|| {
        AppError::NotFound(
            "the scheduler API needs SCHEDULER_TARGET_ARN and SCHEDULER_ROLE_ARN".into(),
        )
    })
}

/// The schedule of a configuration: its cron, state and dates, and the CCKM scheduler input.
fn spec_of(config: &JobConfig) -> Result<ScheduleSpec, AppError> {
    Ok(ScheduleSpec {
        expression: scheduler_cron(&config.run_at)?,
        enabled: !config.disabled,
        start: config.start_date,
        end: config.end_date,
        input: json!({"cckm_synchronization_params": {
            "cloud_name": config.params.cloud_name,
            "kms": config.params.kms,
            "regions": config.params.regions,
            "synchronize_all": config.params.synchronize_all,
        }}),
    })
}

pub async fn create(app: &App, body: &[u8]) -> Result<JobConfig, AppError> {
    let schedules = schedules(app)?;
    let body: JobConfigBody = parse_json_body(body)?;
    let config = body.validate_new(Uuid::new_v4(), now())?;
    if app.job_configs.find_by_name(&config.name).await?.is_some() {
        return Err(AppError::Conflict(format!(
            "a scheduler job configuration named '{}' exists already",
            config.name
        )));
    }
    schedules.put(config.id, &spec_of(&config)?, false).await?;
    if let Err(err) = app.job_configs.insert(&config).await {
        // Taken meanwhile: its schedule goes too.
        if let Err(cleanup) = schedules.delete(config.id).await {
            tracing::error!(id = %config.id, error = %cleanup, "could not delete the schedule of a refused job configuration");
        }
        return Err(err);
    }
    Ok(config)
}

/// A configuration by id or name.
pub async fn get(app: &App, id_or_name: &str) -> Result<JobConfig, AppError> {
    let by_id = match Uuid::parse_str(id_or_name) {
        Ok(id) => app.job_configs.get(id).await?,
        Err(_) => None,
    };
    let found = match by_id {
        Some(config) => Some(config),
        None => app.job_configs.find_by_name(id_or_name).await?,
    };
    found.ok_or_else(|| {
        AppError::NotFound(format!(
            "scheduler job configuration '{id_or_name}' not found"
        ))
    })
}

pub async fn patch(app: &App, id_or_name: &str, body: &[u8]) -> Result<JobConfig, AppError> {
    let schedules = schedules(app)?;
    let body: JobConfigBody = parse_json_body(body)?;
    let current = get(app, id_or_name).await?;
    let next = body.apply(&current, now())?;
    schedules.put(next.id, &spec_of(&next)?, true).await?;
    app.job_configs.replace(&next).await?;
    Ok(next)
}

pub async fn delete(app: &App, id_or_name: &str) -> Result<(), AppError> {
    let schedules = schedules(app)?;
    let config = get(app, id_or_name).await?;
    schedules.delete(config.id).await?;
    app.job_configs.remove(&config).await
}

/// Starts the configuration's synchronization now, as its schedule would.
pub async fn run_now(app: &App, id_or_name: &str) -> Result<Job, AppError> {
    let config = get(app, id_or_name).await?;
    let request = SyncRequest::from_parts(
        config.params.kms.clone(),
        config.params.regions.clone(),
        Some(config.params.synchronize_all),
    )?;
    // The schedule's owner set it up; it syncs what it names.
    super::jobs::start(app, request, |_| Ok(())).await
}
