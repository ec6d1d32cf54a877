//! The worker side: an SQS batch of work messages, processed concurrently: each one unit of a job, or a
//! share of a large job's units to send on as unit messages. Only the messages that should be tried again
//! are reported back (`batchItemFailures`).

pub mod metrics;
pub mod unit;

use crate::app::App;
use crate::domain::job::{FanOut, WorkMessage};
use crate::domain::time::Timestamp;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;
use std::time::Duration;

pub async fn handle_batch(app: &App, event: SqsEvent, deadline: Timestamp) -> SqsBatchResponse {
    let outcomes = join_all(
        event
            .records
            .into_iter()
            .map(|message| handle_message(app, message, deadline)),
    )
    .await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = outcomes
        .into_iter()
        .flatten()
        .map(|message_id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            failure
        })
        .collect();
    response
}

/// 30 s after the first failed attempt, doubling up to 15 minutes.
fn retry_delay(attempt: u32) -> Duration {
    Duration::from_secs((30u64 << attempt.saturating_sub(1).min(5)).min(900))
}

/// Some(message id) when the message must come back.
async fn handle_message(app: &App, message: SqsMessage, deadline: Timestamp) -> Option<String> {
    let message_id = message.message_id.clone().unwrap_or_default();
    let work: WorkMessage = match message.body.as_deref().map(serde_json::from_str) {
        Some(Ok(work)) => work,
        _ => {
            // It can never succeed; failing it sends it to the dead-letter queue, where an operator sees it.
            tracing::error!(
                message_id,
                "work message is neither a unit nor a fan-out share"
            );
            return Some(message_id);
        }
    };
    let attempt = message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(1);
    let outcome = match &work {
        WorkMessage::Unit(item) => unit::run(app, item, attempt, deadline).await,
        WorkMessage::FanOut(share) => fan_out(app, share).await,
    };
    match outcome {
        unit::Outcome::Done => None,
        unit::Outcome::Retry(reason) => {
            let delay = retry_delay(attempt);
            match &work {
                WorkMessage::Unit(item) => tracing::warn!(message_id, job_id = %item.job_id,
                    unit = %item.unit_key(), attempt, %reason, delay_seconds = delay.as_secs(),
                    "unit will be retried"),
                WorkMessage::FanOut(share) => tracing::warn!(message_id, job_id = %share.job_id,
                    units = share.fan_out.len(), attempt, %reason, delay_seconds = delay.as_secs(),
                    "fan-out will be retried"),
            }
            if let Some(receipt) = message.receipt_handle.as_deref()
                && let Err(err) = app.dispatcher.retry_after(receipt, delay).await
            {
                // The message still comes back, after the queue's visibility timeout.
                tracing::warn!(message_id, error = %err, "could not shorten the retry delay");
            }
            Some(message_id)
        }
    }
}

/// Sends the unit messages of one share. Sent again after a failure, a unit gets two messages, which its
/// stored progress makes harmless (`unit::run`); a share that never gets through leaves its units to the
/// abandoned-job sweep once their leases lapse.
async fn fan_out(app: &App, share: &FanOut) -> unit::Outcome {
    match app.dispatcher.dispatch(&share.items()).await {
        Ok(()) => {
            tracing::info!(job_id = %share.job_id, units = share.fan_out.len(), "units fanned out");
            unit::Outcome::Done
        }
        Err(err) => unit::Outcome::Retry(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::retry_delay;
    use std::time::Duration;

    #[test]
    fn retries_back_off_from_30_seconds_to_15_minutes() {
        let delays: Vec<u64> = (1..=7).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(delays, vec![30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(retry_delay(0), Duration::from_secs(30));
    }
}
