//! DynamoDB adapters. Table layouts (the same in `template.yaml` and `scripts/local_aws.py`):
//! - KMS table, key `id`: one item per resource (`id` = its UUID) and one name guard per resource
//!   (`id` = `name#<name>`), written together so names stay unique.
//! - Jobs table, keys `pk`/`sk`: a job header (`JOB#<id>`/`META`, listed newest first through the `by_created`
//!   index), one item per unit (`JOB#<id>`/`UNIT#<account>/<region>`), and one lease per busy unit
//!   (`LEASE#<account>/<region>`/`LEASE`).
//! - Keys table, key `id`: one item per key (`key_item.rs`) and one per alias of a key; indexes sorted by
//!   creation time for the unit, every key, a state, gone or not, a region and an alias (`key_index.rs`).
//!   The jobs table also keeps each unit's key counts (`KEYCOUNT`/`<unit>`).

mod guarded;
mod jobs;
mod key_index;
mod key_item;
mod keys;
mod kms;
mod named;

pub use jobs::DynamoJobStore;
pub use keys::DynamoKeyStore;
pub use kms::DynamoKmsRegistry;
pub use named::DynamoNamedStore;

use crate::domain::AppError;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::time::Duration;

pub type Item = HashMap<String, AttributeValue>;

/// BatchWriteItem takes at most 25 requests per call.
const BATCH_LIMIT: usize = 25;
/// Batch calls in flight at once: a job's unit items, a page's keys.
const BATCH_CONCURRENCY: usize = 8;
/// Rounds of a batch call, the first and those that send again what DynamoDB left unprocessed, before it
/// counts as failed (backoff 50 ms doubling to 3.2 s).
const BATCH_ROUNDS: u32 = 8;

pub(crate) fn store_error<E, R>(context: &str, err: SdkError<E, R>) -> AppError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    AppError::Internal(crate::adapters::aws_error::reason(
        &format!("dynamodb {context}"),
        &err,
    ))
}

/// True when the call failed only because its condition did not hold.
pub(crate) fn condition_failed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// What a conditional write did: true when it wrote, false when its condition did not hold.
pub(crate) fn written<T, E, R>(
    result: Result<T, SdkError<E, R>>,
    context: &str,
) -> Result<bool, AppError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(err) if condition_failed(&err) => Ok(false),
        Err(err) => Err(store_error(context, err)),
    }
}

/// The cancellation reason of a transaction's action whose condition did not hold.
pub(crate) const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// True when a transaction was cancelled because one of its conditions did not hold.
pub(crate) fn transaction_condition_failed<R>(err: &SdkError<TransactWriteItemsError, R>) -> bool {
    cancellation_reasons(err).is_some_and(|reasons| {
        reasons
            .iter()
            .any(|r| r.as_deref() == Some(CONDITION_FAILED))
    })
}

/// The reason code of each action of a cancelled transaction, in order; None when it failed otherwise.
pub(crate) fn cancellation_reasons<R>(
    err: &SdkError<TransactWriteItemsError, R>,
) -> Option<Vec<Option<String>>> {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => Some(
            e.cancellation_reasons()
                .iter()
                .map(|r| r.code().map(String::from))
                .collect(),
        ),
        _ => None,
    }
}

pub(crate) fn to_item<T: Serialize>(value: &T) -> Result<Item, AppError> {
    serde_dynamo::aws_sdk_dynamodb_1::to_item(value)
        .map_err(|e| AppError::internal("encoding an item", e))
}

pub(crate) fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, AppError> {
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item)
        .map_err(|e| AppError::internal("decoding an item", e))
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Writes every item with BatchWriteItem (`batch_write`).
pub(crate) async fn batch_put(
    client: &Client,
    table: &str,
    items: Vec<Item>,
) -> Result<(), AppError> {
    let requests = items
        .into_iter()
        .map(|item| {
            let put = PutRequest::builder().set_item(Some(item)).build();
            put.map(|p| WriteRequest::builder().put_request(p).build())
                .map_err(|e| AppError::internal("building a put request", e))
        })
        .collect::<Result<_, _>>()?;
    batch_write(client, table, requests).await
}

/// Sends puts and deletes with BatchWriteItem, 25 at a time and several calls at once, retrying
/// `UnprocessedItems` with exponential backoff until all are written or the rounds run out.
pub(crate) async fn batch_write(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
) -> Result<(), AppError> {
    let chunks: Vec<Vec<WriteRequest>> = requests
        .chunks(BATCH_LIMIT)
        .map(<[WriteRequest]>::to_vec)
        .collect();
    let mut calls = futures::stream::iter(chunks)
        .map(|requests| {
            in_rounds("batch write", requests, |requests| async move {
                let output = client
                    .batch_write_item()
                    .request_items(table, requests)
                    .send()
                    .await
                    .map_err(|e| store_error("batch write", e))?;
                let left = output
                    .unprocessed_items
                    .and_then(|mut u| u.remove(table))
                    .filter(|left| !left.is_empty());
                Ok((Vec::<Item>::new(), left))
            })
        })
        .buffer_unordered(BATCH_CONCURRENCY);
    while let Some(written) = calls.next().await {
        written?;
    }
    Ok(())
}

/// Sends `first`, then whatever each answer left unprocessed, with backoff, until nothing is left or
/// `BATCH_ROUNDS` rounds ran out (BatchWriteItem's `UnprocessedItems`, BatchGetItem's `UnprocessedKeys`).
/// Answers every round's items (what a read returned).
pub(crate) async fn in_rounds<P, T, F, Fut>(
    call: &str,
    first: P,
    mut send: F,
) -> Result<Vec<T>, AppError>
where
    F: FnMut(P) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<P>), AppError>>,
{
    let mut answered = Vec::new();
    let mut pending = Some(first);
    for round in 0..BATCH_ROUNDS {
        let Some(request) = pending.take() else {
            return Ok(answered);
        };
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(50 << (round - 1).min(6))).await;
        }
        let (items, left) = send(request).await?;
        answered.extend(items);
        pending = left;
    }
    match pending {
        None => Ok(answered),
        Some(_) => Err(AppError::Internal(format!(
            "dynamodb {call}: still unprocessed after {BATCH_ROUNDS} rounds"
        ))),
    }
}

/// Runs a Query (or Scan) to its last page, handing each page's items to `visit`; `page` sends one
/// request from a start key.
pub(crate) async fn for_each_page<F, Fut>(
    mut page: F,
    mut visit: impl FnMut(Vec<Item>) -> Result<(), AppError>,
) -> Result<(), AppError>
where
    F: FnMut(Option<Item>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<Item>, Option<Item>), AppError>>,
{
    let mut start = None;
    loop {
        let (batch, next) = page(start).await?;
        visit(batch)?;
        match next {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(()),
        }
    }
}

/// Every item of a Query (or Scan), all pages.
pub(crate) async fn all_pages<F, Fut>(page: F) -> Result<Vec<Item>, AppError>
where
    F: FnMut(Option<Item>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<Item>, Option<Item>), AppError>>,
{
    let mut items = Vec::new();
    for_each_page(page, |batch| {
        items.extend(batch);
        Ok(())
    })
    .await?;
    Ok(items)
}
