//! The worker side: an SQS batch of work items, each one unit of a job, processed concurrently. Only the
//! messages that should be tried again are reported back (`batchItemFailures`).

pub mod unit;

use crate::app::App;
use crate::domain::job::WorkItem;
use crate::domain::time::Timestamp;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;

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

/// Some(message id) when the message must come back.
async fn handle_message(app: &App, message: SqsMessage, deadline: Timestamp) -> Option<String> {
    let message_id = message.message_id.clone().unwrap_or_default();
    let item: WorkItem = match message.body.as_deref().map(serde_json::from_str) {
        Some(Ok(item)) => item,
        _ => {
            // It can never succeed; failing it sends it to the dead-letter queue, where an operator sees it.
            tracing::error!(message_id, "work message is not a work item");
            return Some(message_id);
        }
    };
    let attempt = message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(1);
    match unit::run(app, &item, attempt, deadline).await {
        unit::Outcome::Done => None,
        unit::Outcome::Retry(reason) => {
            tracing::warn!(message_id, job_id = %item.job_id, unit = %item.unit_key(), attempt, %reason, "unit will be retried");
            Some(message_id)
        }
    }
}
