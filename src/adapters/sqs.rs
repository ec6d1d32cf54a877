//! The dispatcher on SQS: one message per work item or fan-out share, sent in batches of at most 10
//! (SendMessageBatch), several batches at once.

use super::aws_error::reason;
use crate::domain::AppError;
use crate::domain::job::{FanOut, WorkItem};
use crate::ports::Dispatcher;
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures::{StreamExt, stream};
use serde::Serialize;

const SEND_BATCH_LIMIT: usize = 10;
/// SendMessageBatch calls in flight at once.
const SEND_CONCURRENCY: usize = 8;
/// Rounds of resending the entries a batch reported as failed.
const SEND_ROUNDS: usize = 4;

pub struct SqsDispatcher {
    client: Client,
    queue_url: String,
}

impl SqsDispatcher {
    pub fn new(client: Client, queue_url: &str) -> Self {
        SqsDispatcher {
            client,
            queue_url: queue_url.to_string(),
        }
    }

    async fn send_chunk(&self, chunk: &[impl Serialize]) -> Result<(), AppError> {
        let mut pending: Vec<(String, String)> = chunk
            .iter()
            .enumerate()
            .map(|(i, item)| serde_json::to_string(item).map(|body| (i.to_string(), body)))
            .collect::<Result<_, _>>()
            .map_err(|e| AppError::internal("encoding a work message", e))?;
        for _ in 0..SEND_ROUNDS {
            let entries = pending
                .iter()
                .map(|(id, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(id)
                        .message_body(body)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| AppError::internal("building a message", e))?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| AppError::Internal(reason("sqs SendMessageBatch", &e)))?;
            let failed: Vec<&str> = output.failed().iter().map(|f| f.id()).collect();
            pending.retain(|(id, _)| failed.contains(&id.as_str()));
            if pending.is_empty() {
                return Ok(());
            }
        }
        Err(AppError::Internal(format!(
            "sqs send: {} messages refused after {SEND_ROUNDS} rounds",
            pending.len()
        )))
    }

    /// Every message, several batches at once: a fan-out share of 200 units is 20 calls, which one after
    /// another would take a while of the worker's time.
    async fn send_all(&self, messages: &[impl Serialize + Sync]) -> Result<(), AppError> {
        let mut batches = Vec::new();
        for chunk in messages.chunks(SEND_BATCH_LIMIT) {
            batches.push(self.send_chunk(chunk));
        }
        let mut sends = stream::iter(batches).buffer_unordered(SEND_CONCURRENCY);
        while let Some(sent) = sends.next().await {
            sent?;
        }
        Ok(())
    }
}

#[async_trait]
impl Dispatcher for SqsDispatcher {
    async fn dispatch(&self, items: &[WorkItem]) -> Result<(), AppError> {
        self.send_all(items).await
    }

    async fn fan_out(&self, shares: &[FanOut]) -> Result<(), AppError> {
        self.send_all(shares).await
    }

    async fn retry_after(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), AppError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(delay.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| AppError::Internal(reason("sqs ChangeMessageVisibility", &e)))?;
        Ok(())
    }
}
