//! Jobs in DynamoDB: header, unit items and unit leases. Every state change is a conditional write, so a
//! page is counted once, a unit ends once and a job ends once, whatever the races and redeliveries.

use super::{
    CONDITION_FAILED, Item, all_pages, batch_put, cancellation_reasons, condition_failed,
    for_each_page, from_item, n, s, store_error, to_item, transaction_condition_failed, written,
};
use crate::domain::AppError;
use crate::domain::job::{Job, JobStatus, Progress, Unit, UnitEntry, UnitStatus};
use crate::domain::time::{Timestamp, format, rfc3339};
use crate::ports::{JobStore, LeaseRenewal, PageRecord, UnitProgress};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, Select, TransactWriteItem, Update,
};
use futures::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

const HEADER_SK: &str = "META";
const LIST_PK: &str = "JOB";
/// The index of job headers by creation time.
const LIST_INDEX: &str = "by_created";
/// Headers read per query of the job list: pages of the API's default size need one.
const HEADERS_PER_QUERY: i32 = 50;
/// Attempts at a conditional transition while concurrent writers keep moving its item (page records and
/// sweep counts under a unit's end, a cancel under a job's end).
const TRANSITION_ATTEMPTS: usize = 5;
/// Leases per transaction: TransactWriteItems takes at most 100 actions.
const LEASES_PER_TRANSACTION: usize = 100;
/// Lease transactions (and lease give-backs) in flight at once while a job is created.
const CREATION_CONCURRENCY: usize = 8;
/// Tries of one lease transaction that other creations keep cancelling, or that meets stale leases.
const LEASE_ATTEMPTS: u32 = 6;
/// A lease whose job was never stored (its creation stopped between the leases and the header) is free
/// after this long: far past the 29 s an API request may take.
const ORPHAN_AFTER_SECONDS: i64 = 120;

#[derive(Serialize, Deserialize)]
struct HeaderItem {
    pk: String,
    sk: String,
    list_pk: String,
    id: Uuid,
    #[serde(rename = "createdAt", with = "rfc3339")]
    created_at: Timestamp,
    #[serde(rename = "updatedAt", with = "rfc3339")]
    updated_at: Timestamp,
    #[serde(default, with = "rfc3339::option")]
    completed_at: Option<Timestamp>,
    overall_status: JobStatus,
    kms: Vec<String>,
    regions: Vec<String>,
    abort: bool,
    units_total: u64,
    units_done: u64,
    units_failed: u64,
    keys_synced: u64,
    keys_gone: u64,
}

#[derive(Serialize, Deserialize)]
struct UnitItem {
    pk: String,
    sk: String,
    kms_id: Uuid,
    account_id: String,
    region: String,
    /// `in_progress`, `succeeded`, `failed` or `canceled`.
    state: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    marker: Option<String>,
    pages_done: u64,
    keys_synced: u64,
    /// Keys the unit's gone sweep flagged, counted with each flag (see `keys.rs`).
    #[serde(default)]
    keys_gone: u64,
    /// When DynamoDB's TTL removes the item (epoch seconds): set again when the unit ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

pub(super) fn job_pk(id: Uuid) -> String {
    format!("JOB#{id}")
}

/// How long the key ids a unit saw are kept: long past any unit's end.
const SEEN_RETENTION_SECONDS: i64 = 7 * 86_400;

fn seen_pk(job_id: Uuid, unit_key: &str) -> String {
    format!("SEEN#{job_id}#{unit_key}")
}

pub(super) fn unit_sk(unit_key: &str) -> String {
    format!("UNIT#{unit_key}")
}

fn lease_pk(unit_key: &str) -> String {
    format!("LEASE#{unit_key}")
}

fn state_of(status: &UnitStatus) -> (&'static str, Option<String>) {
    match status {
        UnitStatus::InProgress => ("in_progress", None),
        UnitStatus::Succeeded => ("succeeded", None),
        UnitStatus::Failed(reason) => ("failed", Some(reason.clone())),
        UnitStatus::Canceled => ("canceled", None),
    }
}

impl UnitItem {
    fn status(&self) -> UnitStatus {
        match self.state.as_str() {
            "succeeded" => UnitStatus::Succeeded,
            "failed" => UnitStatus::Failed(self.reason.clone().unwrap_or_default()),
            "canceled" => UnitStatus::Canceled,
            _ => UnitStatus::InProgress,
        }
    }
}

impl HeaderItem {
    fn from_job(job: &Job) -> HeaderItem {
        HeaderItem {
            pk: job_pk(job.id),
            sk: HEADER_SK.into(),
            list_pk: LIST_PK.into(),
            id: job.id,
            created_at: job.created_at,
            updated_at: job.updated_at,
            completed_at: job.completed_at,
            overall_status: job.overall_status,
            kms: job.kms.clone(),
            regions: job.regions.clone(),
            abort: job.abort,
            units_total: job.progress.units_total,
            units_done: job.progress.units_done,
            units_failed: job.progress.units_failed,
            keys_synced: job.progress.keys_synced,
            keys_gone: job.progress.keys_gone,
        }
    }

    fn into_job(self) -> Job {
        Job {
            id: self.id,
            created_at: self.created_at,
            updated_at: self.updated_at,
            completed_at: self.completed_at,
            overall_status: self.overall_status,
            units: BTreeMap::new(),
            kms: self.kms,
            regions: self.regions,
            abort: self.abort,
            progress: Progress {
                units_total: self.units_total,
                units_done: self.units_done,
                units_failed: self.units_failed,
                keys_synced: self.keys_synced,
                keys_gone: self.keys_gone,
            },
        }
    }
}

pub struct DynamoJobStore {
    client: Client,
    table: String,
    /// How long an ended job's items stay before the TTL (`expires_at`) removes them.
    retention: Duration,
}

impl DynamoJobStore {
    pub fn new(client: Client, table: &str, retention: Duration) -> Self {
        DynamoJobStore {
            client,
            table: table.to_string(),
            retention,
        }
    }

    async fn get_item(&self, pk: String, sk: String) -> Result<Option<Item>, AppError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("get job item", e))?;
        Ok(output.item)
    }

    async fn unit_item(&self, job_id: Uuid, unit_key: &str) -> Result<Option<UnitItem>, AppError> {
        self.get_item(job_pk(job_id), unit_sk(unit_key))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Takes the leases of some units in one transaction, or names the job that holds one of them. A lease
    /// left by a creation that never finished (its job does not exist) or by a job that ended is freed
    /// first. Rewriting this job's own lease succeeds, so a retry after a lost answer counts as taken.
    async fn take_leases(
        &self,
        unit_keys: &[&String],
        job: &Job,
        until: Timestamp,
    ) -> Result<(), AppError> {
        for attempt in 0..LEASE_ATTEMPTS {
            let puts = unit_keys
                .iter()
                .map(|key| {
                    let put = Put::builder()
                        .table_name(&self.table)
                        .item("pk", s(lease_pk(key)))
                        .item("sk", s("LEASE"))
                        .item("job_id", s(job.id.to_string()))
                        .item("lease_until", n(until.timestamp()))
                        .item("taken_at", n(job.created_at.timestamp()))
                        // Removed by DynamoDB TTL a day after it lapses, if no worker released it.
                        .item("expires_at", n(until.timestamp() + 86_400))
                        .condition_expression(
                            "attribute_not_exists(pk) OR lease_until < :now OR job_id = :job",
                        )
                        .expression_attribute_values(":now", n(job.created_at.timestamp()))
                        .expression_attribute_values(":job", s(job.id.to_string()))
                        .build();
                    Ok(TransactWriteItem::builder().put(build(put)?).build())
                })
                .collect::<Result<Vec<_>, AppError>>()?;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(puts))
                .send()
                .await;
            let reasons = match result {
                Ok(_) => return Ok(()),
                Err(err) => match cancellation_reasons(&err) {
                    Some(reasons) if reasons.len() == unit_keys.len() => reasons,
                    _ => return Err(store_error("take leases", err)),
                },
            };
            let held: Vec<&String> = unit_keys
                .iter()
                .zip(&reasons)
                .filter(|(_, reason)| reason.as_deref() == Some(CONDITION_FAILED))
                .map(|(key, _)| *key)
                .collect();
            if held.is_empty() {
                // Another creation wrote one of these leases at the same moment: try again shortly.
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            }
            for key in held {
                if !self.free_stale_lease(key, job.created_at).await? {
                    return Err(AppError::Conflict(format!(
                        "synchronization job '{}' is already synchronizing {key}",
                        JobStore::lease(self, key)
                            .await?
                            .map_or_else(|| "unknown".to_string(), |(id, _)| id.to_string())
                    )));
                }
            }
        }
        Err(AppError::Internal(format!(
            "the leases of job {} kept conflicting",
            job.id
        )))
    }

    /// Frees the lease of a unit when its holder will never work it: a job that does not exist although
    /// the lease was taken long ago (a creation that stopped between its leases and its header), or a job
    /// that ended without giving the lease back. True when the lease is free now (or changed meanwhile).
    async fn free_stale_lease(&self, unit_key: &str, now: Timestamp) -> Result<bool, AppError> {
        let Some(item) = self.get_item(lease_pk(unit_key), "LEASE".into()).await? else {
            return Ok(true);
        };
        let number = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
        };
        let Some(holder) = item
            .get("job_id")
            .and_then(|v| v.as_s().ok())
            .and_then(|id| Uuid::parse_str(id).ok())
        else {
            return Ok(false);
        };
        let stale = match self.header(holder).await? {
            Some(job) => !job.is_running(),
            None => number("taken_at").unwrap_or(0) < now.timestamp() - ORPHAN_AFTER_SECONDS,
        };
        if !stale {
            return Ok(false);
        }
        tracing::warn!(unit = unit_key, job_id = %holder, "freeing a lease its job will never use");
        JobStore::release_lease(self, unit_key, holder).await?;
        Ok(true)
    }

    /// Gives back the leases a refused or failed creation took, several at a time; a failure here is
    /// logged, and the leases are then freed by the next creation that meets them (`free_stale_lease`).
    async fn release_leases(&self, unit_keys: &[&String], job_id: Uuid) {
        stream::iter(unit_keys)
            .for_each_concurrent(CREATION_CONCURRENCY, |key| async move {
                if let Err(err) = JobStore::release_lease(self, key, job_id).await {
                    tracing::warn!(%job_id, unit = %key, error = %err, "could not give a lease back");
                }
            })
            .await;
    }

    /// A query of the job headers through their creation-time index.
    fn headers_query(&self) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(LIST_INDEX)
            .key_condition_expression("list_pk = :list")
            .expression_attribute_values(":list", s(LIST_PK))
    }

    /// Deletes the header of a job whose creation failed; a failure here is logged, and the job, left
    /// without leases, is ended by the sweep of abandoned jobs.
    async fn forget_header(&self, job_id: Uuid) {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(job_id)))
            .key("sk", s(HEADER_SK))
            .send()
            .await;
        if let Err(err) = result {
            tracing::warn!(%job_id, error = %store_error("delete job header", err), "could not take a failed job back");
        }
    }

    /// Units first, then the header on its own: a job exists (and can be listed) only once every one of its
    /// units is confirmed written, so a job never waits for a unit that is not there.
    async fn write_job(&self, job: &Job) -> Result<(), AppError> {
        let units = job
            .units
            .iter()
            .map(|(key, entry)| {
                to_item(&UnitItem {
                    pk: job_pk(job.id),
                    sk: unit_sk(key),
                    kms_id: entry.unit.kms_id,
                    account_id: entry.unit.account_id.clone(),
                    region: entry.unit.region.clone(),
                    state: "in_progress".into(),
                    reason: None,
                    marker: None,
                    pages_done: 0,
                    keys_synced: 0,
                    keys_gone: 0,
                    expires_at: Some(self.unit_expiry(job.created_at)),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        batch_put(&self.client, &self.table, units).await?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&HeaderItem::from_job(job))?))
            .send()
            .await
            .map_err(|e| store_error("put job header", e))?;
        Ok(())
    }

    /// Adds an ended unit's counters to the job header, once: the header keeps the set of units it counted
    /// (`units_ended`). A plain conditional update, not a transaction: the header is the one item every
    /// unit's end writes, and concurrent transactions on one item cancel each other (`TransactionConflict`).
    async fn count_on_job(
        &self,
        job_id: Uuid,
        unit_key: &str,
        unit: &UnitItem,
        now: Timestamp,
    ) -> Result<(), AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(job_id)))
            .key("sk", s(HEADER_SK))
            .update_expression(
                "SET units_done = units_done + :one, units_failed = units_failed + :failed, \
                 keys_synced = keys_synced + :keys, keys_gone = keys_gone + :gone, updatedAt = :now \
                 ADD units_ended :units",
            )
            .condition_expression("attribute_exists(pk) AND NOT contains(units_ended, :unit)")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":failed", n(u64::from(unit.state == "failed")))
            .expression_attribute_values(":keys", n(unit.keys_synced))
            .expression_attribute_values(":gone", n(unit.keys_gone))
            .expression_attribute_values(":now", s(format(&now)))
            .expression_attribute_values(":units", AttributeValue::Ss(vec![unit_key.to_string()]))
            .expression_attribute_values(":unit", s(unit_key))
            .send()
            .await;
        // False: counted already (or the job is gone): nothing to add.
        written(result, "count unit on job").map(|_| ())
    }

    /// When a unit's item expires: a week past its job's history, since a job ends within its units' lease
    /// of their last end.
    fn unit_expiry(&self, now: Timestamp) -> i64 {
        now.timestamp() + self.retention.as_secs() as i64 + SEEN_RETENTION_SECONDS
    }

    /// Writes the end status the header's counters and `abort` call for, conditioned on that very `abort`
    /// value; false when the condition failed (a cancel landed, or the job ended meanwhile).
    async fn end_job(
        &self,
        job: &Job,
        status: JobStatus,
        now: Timestamp,
    ) -> Result<bool, AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(job.id)))
            .key("sk", s(HEADER_SK))
            .update_expression(
                "SET overall_status = :status, completed_at = :now, updatedAt = :now, \
                 expires_at = :expires",
            )
            .condition_expression(
                "overall_status = :running AND units_done = units_total AND #abort = :abort",
            )
            .expression_attribute_names("#abort", "abort")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":now", s(format(&now)))
            .expression_attribute_values(":running", s(JobStatus::InProgress.as_str()))
            .expression_attribute_values(":abort", AttributeValue::Bool(job.abort))
            .expression_attribute_values(
                ":expires",
                n(now.timestamp() + self.retention.as_secs() as i64),
            )
            .return_values(ReturnValue::None)
            .send()
            .await;
        written(result, "complete job")
    }
}

fn build<T, E: std::fmt::Display>(built: Result<T, E>) -> Result<T, AppError> {
    built.map_err(|e| AppError::internal("building a request", e))
}

#[async_trait]
impl JobStore for DynamoJobStore {
    async fn create(&self, job: &Job, lease_until: Timestamp) -> Result<(), AppError> {
        let unit_keys: Vec<&String> = job.units.keys().collect();
        let chunks: Vec<&[&String]> = unit_keys.chunks(LEASES_PER_TRANSACTION).collect();
        // Futures built in a loop, not a closure: `async_trait` cannot prove a closure's future general
        // over the lifetimes of what it borrows.
        let mut transactions = Vec::with_capacity(chunks.len());
        for chunk in &chunks {
            transactions.push(self.take_leases(chunk, job, lease_until));
        }
        let results: Vec<Result<(), AppError>> = stream::iter(transactions)
            .buffered(CREATION_CONCURRENCY)
            .collect()
            .await;
        if results.iter().any(Result::is_err) {
            // A refused transaction wrote nothing; any other may have committed (a lost answer), and must
            // be given back. Giving back is conditional on this job: another job's lease is never touched.
            let taken: Vec<&String> = chunks
                .iter()
                .zip(&results)
                .filter(|(_, result)| !matches!(result, Err(AppError::Conflict(_))))
                .flat_map(|(chunk, _)| chunk.iter().copied())
                .collect();
            self.release_leases(&taken, job.id).await;
            let mut errors: Vec<AppError> = results.into_iter().filter_map(Result::err).collect();
            errors.sort_by_key(|err| !matches!(err, AppError::Conflict(_)));
            return Err(errors.remove(0));
        }
        if let Err(err) = self.write_job(job).await {
            // The header's put may have committed although its answer was lost: take it back first, so
            // that no job stays without its leases (its unit items expire with the TTL).
            self.forget_header(job.id).await;
            self.release_leases(&unit_keys, job.id).await;
            return Err(err);
        }
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<Job>, AppError> {
        let items = all_pages(|start| async move {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(job_pk(id)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("query job", e))?;
            Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
        })
        .await?;
        let mut header = None;
        let mut units = BTreeMap::new();
        for item in items {
            match item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
            {
                Some(HEADER_SK) => header = Some(from_item::<HeaderItem>(item)?.into_job()),
                Some(sk) if sk.starts_with("UNIT#") => {
                    let unit: UnitItem = from_item(item)?;
                    let status = unit.status();
                    let unit = Unit {
                        kms_id: unit.kms_id,
                        account_id: unit.account_id,
                        region: unit.region,
                    };
                    units.insert(unit.key(), UnitEntry { unit, status });
                }
                _ => {}
            }
        }
        Ok(header.map(|job| Job { units, ..job }))
    }

    async fn header(&self, id: Uuid) -> Result<Option<Job>, AppError> {
        let item = self.get_item(job_pk(id), HEADER_SK.into()).await?;
        Ok(item
            .map(from_item::<HeaderItem>)
            .transpose()?
            .map(HeaderItem::into_job))
    }

    async fn for_each_header(
        &self,
        newest_first: bool,
        visit: &mut (dyn FnMut(Job) -> bool + Send),
    ) -> Result<(), AppError> {
        let mut start = None;
        loop {
            let output = self
                .headers_query()
                .scan_index_forward(!newest_first)
                .limit(HEADERS_PER_QUERY)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("list jobs", e))?;
            for item in output.items.unwrap_or_default() {
                if !visit(from_item::<HeaderItem>(item)?.into_job()) {
                    return Ok(());
                }
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(()),
            }
        }
    }

    async fn count(&self) -> Result<usize, AppError> {
        let mut total = 0;
        let mut start = None;
        loop {
            let output = self
                .headers_query()
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("count jobs", e))?;
            total += output.count.max(0) as usize;
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(total),
            }
        }
    }

    async fn request_abort(&self, id: Uuid, now: Timestamp) -> Result<Job, AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s(HEADER_SK))
            // `abort` is a DynamoDB reserved word.
            .update_expression("SET #abort = :yes, updatedAt = :now")
            .condition_expression("overall_status = :running")
            .expression_attribute_names("#abort", "abort")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":now", s(format(&now)))
            .expression_attribute_values(":running", s(JobStatus::InProgress.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(err) if condition_failed(&err) => {
                return Err(match self.header(id).await? {
                    Some(_) => {
                        AppError::Conflict(format!("synchronization job '{id}' is not in progress"))
                    }
                    None => AppError::NotFound(format!("synchronization job '{id}' not found")),
                });
            }
            Err(err) => return Err(store_error("abort job", err)),
        }
        self.get(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("synchronization job '{id}' not found")))
    }

    async fn unit_progress(
        &self,
        job_id: Uuid,
        unit_key: &str,
    ) -> Result<Option<UnitProgress>, AppError> {
        Ok(self
            .unit_item(job_id, unit_key)
            .await?
            .map(|unit| UnitProgress {
                status: unit.status(),
                marker: unit.marker,
                pages_done: unit.pages_done,
                keys_synced: unit.keys_synced,
                keys_gone: unit.keys_gone,
            }))
    }

    async fn record_page(
        &self,
        job_id: Uuid,
        unit_key: &str,
        page: PageRecord,
        now: Timestamp,
    ) -> Result<bool, AppError> {
        let marker = match &page.next_marker {
            Some(marker) => s(marker.clone()),
            None => AttributeValue::Null(true),
        };
        let advance = Update::builder()
            .table_name(&self.table)
            .key("pk", s(job_pk(job_id)))
            .key("sk", s(unit_sk(unit_key)))
            .update_expression("SET pages_done = pages_done + :one, keys_synced = keys_synced + :keys, marker = :marker")
            .condition_expression("#state = :running AND pages_done = :done")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":keys", n(page.keys))
            .expression_attribute_values(":marker", marker)
            .expression_attribute_values(":running", s("in_progress"))
            .expression_attribute_values(":done", n(page.pages_done))
            .build();
        // The page's key ids, 16 bytes each, in their own partition so that reading a job never reads them;
        // gone with the TTL a week after.
        let packed: Vec<u8> = page.seen.iter().flat_map(|id| *id.as_bytes()).collect();
        let seen = Put::builder()
            .table_name(&self.table)
            .item("pk", s(seen_pk(job_id, unit_key)))
            .item("sk", s(format!("PAGE#{:08}", page.pages_done)))
            .item("ids", AttributeValue::B(Blob::new(packed)))
            .item("expires_at", n(now.timestamp() + SEEN_RETENTION_SECONDS))
            .build();
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(build(advance)?).build())
            .transact_items(TransactWriteItem::builder().put(build(seen)?).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if transaction_condition_failed(&err) => Ok(false),
            Err(err) => Err(store_error("record page", err)),
        }
    }

    async fn finish_unit(
        &self,
        job_id: Uuid,
        unit_key: &str,
        status: &UnitStatus,
        now: Timestamp,
    ) -> Result<bool, AppError> {
        let (state, reason) = state_of(status);
        for _ in 0..TRANSITION_ATTEMPTS {
            let Some(unit) = self.unit_item(job_id, unit_key).await? else {
                return Ok(false);
            };
            if unit.status().is_final() {
                // The call that ended it may have stopped before counting it on the job.
                self.count_on_job(job_id, unit_key, &unit, now).await?;
                return Ok(false);
            }
            let reason_value = match &reason {
                Some(reason) => s(reason.clone()),
                None => AttributeValue::Null(true),
            };
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(job_pk(job_id)))
                .key("sk", s(unit_sk(unit_key)))
                .update_expression("SET #state = :state, reason = :reason, expires_at = :expires")
                // The counters copied to the job must be the ones that end the unit.
                .condition_expression(
                    "#state = :running AND pages_done = :done AND keys_synced = :keys \
                     AND (keys_gone = :gone OR attribute_not_exists(keys_gone))",
                )
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":state", s(state))
                .expression_attribute_values(":reason", reason_value)
                .expression_attribute_values(":expires", n(self.unit_expiry(now)))
                .expression_attribute_values(":running", s("in_progress"))
                .expression_attribute_values(":done", n(unit.pages_done))
                .expression_attribute_values(":keys", n(unit.keys_synced))
                .expression_attribute_values(":gone", n(unit.keys_gone))
                .send()
                .await;
            // Another delivery moved the unit meanwhile: read it again and decide afresh.
            if !written(result, "finish unit")? {
                continue;
            }
            let ended = UnitItem {
                state: state.into(),
                ..unit
            };
            self.count_on_job(job_id, unit_key, &ended, now).await?;
            return Ok(true);
        }
        Err(AppError::Internal(format!(
            "unit {unit_key} of job {job_id} kept changing while ending it"
        )))
    }

    async fn complete_if_done(
        &self,
        job_id: Uuid,
        now: Timestamp,
    ) -> Result<Option<Job>, AppError> {
        for _ in 0..TRANSITION_ATTEMPTS {
            let Some(job) = self.header(job_id).await? else {
                return Ok(None);
            };
            if job.overall_status != JobStatus::InProgress {
                return Ok(None);
            }
            let Some(status) = job.final_status() else {
                return Ok(None);
            };
            if self.end_job(&job, status, now).await? {
                return self.get(job_id).await;
            }
            // A cancel (or another ending) landed between the read and the write: decide again.
        }
        Err(AppError::Internal(format!(
            "job {job_id} kept changing while ending it"
        )))
    }

    async fn lease(&self, unit_key: &str) -> Result<Option<(Uuid, Timestamp)>, AppError> {
        let Some(item) = self.get_item(lease_pk(unit_key), "LEASE".into()).await? else {
            return Ok(None);
        };
        let holder = item
            .get("job_id")
            .and_then(|v| v.as_s().ok())
            .and_then(|id| Uuid::parse_str(id).ok());
        let until = item
            .get("lease_until")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0));
        Ok(holder.zip(until))
    }

    async fn renew_lease(
        &self,
        unit_key: &str,
        job_id: Uuid,
        until: Timestamp,
    ) -> Result<LeaseRenewal, AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(lease_pk(unit_key)))
            .key("sk", s("LEASE"))
            .update_expression("SET lease_until = :until, expires_at = :expires")
            .condition_expression("job_id = :job")
            .expression_attribute_values(":until", n(until.timestamp()))
            .expression_attribute_values(":expires", n(until.timestamp() + 86_400))
            .expression_attribute_values(":job", s(job_id.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(LeaseRenewal::Renewed),
            Err(err) if condition_failed(&err) => Ok(LeaseRenewal::Lost(
                JobStore::lease(self, unit_key)
                    .await?
                    .map(|(holder, _)| holder),
            )),
            Err(err) => Err(store_error("renew lease", err)),
        }
    }

    async fn claim_unit(
        &self,
        job_id: Uuid,
        unit_key: &str,
        delivery: Uuid,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(job_id)))
            .key("sk", s(unit_sk(unit_key)))
            .update_expression("SET claim_holder = :delivery, claim_until = :until")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(claim_until) OR claim_until < :now \
                 OR claim_holder = :delivery)",
            )
            .expression_attribute_values(":delivery", s(delivery.to_string()))
            .expression_attribute_values(":until", n(until.timestamp_millis()))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .send()
            .await;
        written(result, "claim unit")
    }

    async fn release_claim(
        &self,
        job_id: Uuid,
        unit_key: &str,
        delivery: Uuid,
    ) -> Result<(), AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(job_id)))
            .key("sk", s(unit_sk(unit_key)))
            .update_expression("REMOVE claim_holder, claim_until")
            .condition_expression("claim_holder = :delivery")
            .expression_attribute_values(":delivery", s(delivery.to_string()))
            .send()
            .await;
        written(result, "release claim").map(|_| ())
    }

    async fn seen(&self, job_id: Uuid, unit_key: &str) -> Result<Vec<Uuid>, AppError> {
        let pk = seen_pk(job_id, unit_key);
        let mut seen = Vec::new();
        for_each_page(
            |start| {
                let pk = pk.clone();
                async move {
                    let output = self
                        .client
                        .query()
                        .table_name(&self.table)
                        .key_condition_expression("pk = :pk")
                        .expression_attribute_values(":pk", s(pk))
                        .consistent_read(true)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(|e| store_error("read the keys a unit saw", e))?;
                    Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
                }
            },
            |items| {
                for item in items {
                    if let Some(AttributeValue::B(ids)) = item.get("ids") {
                        seen.extend(ids.as_ref().chunks_exact(16).filter_map(|bytes| {
                            <[u8; 16]>::try_from(bytes).ok().map(Uuid::from_bytes)
                        }));
                    }
                }
                Ok(())
            },
        )
        .await?;
        seen.sort_unstable();
        Ok(seen)
    }

    async fn release_lease(&self, unit_key: &str, job_id: Uuid) -> Result<(), AppError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(lease_pk(unit_key)))
            .key("sk", s("LEASE"))
            .condition_expression("job_id = :job")
            .expression_attribute_values(":job", s(job_id.to_string()))
            .send()
            .await;
        written(result, "release lease").map(|_| ())
    }
}
