//! The CloudTrail trigger: an EventBridge rule hands the function KMS management events ("AWS API Call via
//! CloudTrail", source `aws.kms`), and the keys each one names are read again at once, so the inventory is
//! fresh within seconds of a change instead of at the next scheduled sync. Events of accounts or regions
//! that no KMS resource syncs are ignored with a log line. A passing failure fails the invocation, so that
//! Lambda delivers the event again; anything else is answered and logged, never retried.

use crate::app::App;
use crate::domain::AppError;
use crate::domain::kms_event::{self, Skip};
use crate::service::kms_events;
use serde_json::{Value, json};

/// A passing failure: the invocation fails and Lambda retries the event.
#[derive(Debug, thiserror::Error)]
#[error("KMS event not applied: {0}")]
pub struct NotApplied(pub String);

pub async fn handle(app: &App, event: &Value) -> Result<Value, NotApplied> {
    let change = match kms_event::parse(event) {
        Ok(change) => change,
        Err(skip) => {
            match &skip {
                Skip::Unreadable(_) => tracing::warn!(reason = %skip, "KMS event ignored"),
                _ => tracing::info!(reason = %skip, "KMS event ignored"),
            }
            return Ok(json!({"applied": false, "reason": skip.to_string()}));
        }
    };
    match kms_events::apply(app, &change).await {
        Ok(applied) => {
            if !applied.unregistered.is_empty() {
                tracing::info!(event_id = change.event_id, event = change.event_name,
                    account = change.account_id, regions = ?applied.unregistered,
                    "KMS event for an account or region no KMS resource syncs; ignored there");
            }
            tracing::info!(
                event_id = change.event_id,
                event = change.event_name,
                account = change.account_id,
                region = change.region,
                stored = applied.stored,
                flagged_gone = applied.flagged_gone,
                newer_kept = applied.newer_kept,
                unknown = applied.unknown,
                "KMS event applied"
            );
            Ok(json!({"applied": true, "event": change.event_name, "result": applied}))
        }
        Err(AppError::Internal(detail)) => {
            tracing::error!(event_id = change.event_id, event = change.event_name, error = %detail,
                "KMS event could not be applied; it will come back");
            Err(NotApplied(detail))
        }
        Err(other) => {
            tracing::warn!(event_id = change.event_id, event = change.event_name, reason = %other,
                "KMS event refused");
            Ok(json!({"applied": false, "reason": other.to_string()}))
        }
    }
}
