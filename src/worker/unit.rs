//! One unit of a job: list a page of keys, read each key, store the page, record progress; repeat until the
//! last page, then flag what is gone and end the unit. Every step is idempotent, so a redelivered message or
//! a continuation never loses or double-counts keys. Cancel is checked at every page.

use crate::app::App;
use crate::domain::AppError;
use crate::domain::job::{UnitStatus, WorkItem};
use crate::domain::key::{KeyDetails, KeyRecord, Sighting};
use crate::domain::kms::KmsResource;
use crate::domain::time::{Timestamp, now};
use crate::ports::{
    Connection, KeySource, ListedKey, PageRecord, SourceError, StoredKeyStub, UnitProgress,
};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The message is handled: the unit ended, moved on to a continuation, or had nothing left to do.
    Done,
    /// A passing failure: the message should come back.
    Retry(String),
}

/// Why a unit run stopped early.
enum Stop {
    /// The unit ends with this status.
    End(UnitStatus),
    /// Try the message again later.
    Retry(String),
}

impl From<AppError> for Stop {
    fn from(err: AppError) -> Self {
        Stop::Retry(err.to_string())
    }
}

pub async fn run(app: &App, item: &WorkItem, attempt: u32, deadline: Timestamp) -> Outcome {
    let unit_key = item.unit_key();
    match sync_unit(app, item, &unit_key, deadline).await {
        Ok(()) => Outcome::Done,
        Err(Stop::End(status)) => finish(app, item.job_id, &unit_key, &status, 0).await,
        Err(Stop::Retry(reason)) if attempt >= app.sync.max_attempts => {
            let status = UnitStatus::Failed(format!("gave up after {attempt} attempts: {reason}"));
            finish(app, item.job_id, &unit_key, &status, 0).await
        }
        Err(Stop::Retry(reason)) => Outcome::Retry(reason),
    }
}

async fn sync_unit(
    app: &App,
    item: &WorkItem,
    unit_key: &str,
    deadline: Timestamp,
) -> Result<(), Stop> {
    let job_id = item.job_id;
    let Some(progress) = app.jobs.unit_progress(job_id, unit_key).await? else {
        tracing::warn!(%job_id, unit = unit_key, "work item for an unknown job or unit; dropped");
        return Ok(());
    };
    if progress.status.is_final() {
        // A redelivery after the unit ended: make sure the job's own ending was not lost, then stop.
        app.jobs.complete_if_done(job_id, now()).await?;
        return Ok(());
    }
    check_abort(app, job_id).await?;
    let stored: HashMap<String, StoredKeyStub> = app
        .keys
        .unit_stubs(unit_key)
        .await?
        .into_iter()
        .map(|stub| (stub.arn.clone(), stub))
        .collect();
    // Pages recorded and no marker left: every page is in and only the ending was lost (a redelivery).
    let listed_all = progress.pages_done > 0 && progress.marker.is_none();
    let seen = if listed_all {
        HashSet::new()
    } else {
        let kms = app.kms.get(item.kms_id).await?.ok_or_else(|| {
            Stop::End(UnitStatus::Failed(format!(
                "KMS resource '{}' is no longer registered",
                item.kms_id
            )))
        })?;
        let pages = Pages {
            app,
            item,
            unit_key,
            kms: &kms,
            stored: &stored,
        };
        match pages.sync(progress, deadline).await? {
            Some(seen) => seen,
            None => return Ok(()),
        }
    };
    end_listed_unit(app, job_id, unit_key, &stored, &seen).await
}

/// The page loop of one unit.
struct Pages<'a> {
    app: &'a App,
    item: &'a WorkItem,
    unit_key: &'a str,
    kms: &'a KmsResource,
    /// What we stored for this unit before: keeps `createdAt`.
    stored: &'a HashMap<String, StoredKeyStub>,
}

impl Pages<'_> {
    /// Reads and stores page after page from where `progress` stands. Some(ARNs seen) after the last
    /// page; None when this delivery stops early (another one is ahead, or the rest goes on in a new
    /// message because the invocation's deadline is near).
    async fn sync(
        &self,
        progress: UnitProgress,
        deadline: Timestamp,
    ) -> Result<Option<HashSet<String>>, Stop> {
        let (app, job_id, unit_key) = (self.app, self.item.job_id, self.unit_key);
        let source = app
            .source
            .open(&Connection::from(self.kms), &self.item.region)
            .await
            .map_err(stop_for)?;
        let aliases = source.aliases().await.map_err(stop_for)?;
        let mut seen = HashSet::new();
        let mut pages_done = progress.pages_done;
        let mut marker = progress.marker;
        loop {
            if pages_done > progress.pages_done {
                check_abort(app, job_id).await?;
            }
            let page = source
                .list_keys(marker.as_deref())
                .await
                .map_err(stop_for)?;
            let details = read_keys(app, &source, &page.keys, &aliases)
                .await
                .map_err(stop_for)?;
            let at = now();
            let records: Vec<KeyRecord> = details
                .into_iter()
                .map(|details| self.record(details, at))
                .collect();
            app.keys.put_all(&records).await?;
            seen.extend(records.iter().map(|r| r.arn.clone()));
            let record = PageRecord {
                pages_done,
                next_marker: page.next_marker.clone(),
                keys: records.len() as u64,
                lease_until: crate::service::jobs::lease_until(app, at),
            };
            if !app.jobs.record_page(job_id, unit_key, record, at).await? {
                tracing::info!(%job_id, unit = unit_key, pages_done, "page recorded by another delivery; stopping this one");
                return Ok(None);
            }
            pages_done += 1;
            marker = page.next_marker;
            let Some(next) = &marker else {
                return Ok(Some(seen));
            };
            if deadline - now()
                < chrono::Duration::from_std(app.sync.deadline_margin).unwrap_or_default()
            {
                let continuation = WorkItem {
                    marker: Some(next.clone()),
                    ..self.item.clone()
                };
                app.dispatcher
                    .dispatch(std::slice::from_ref(&continuation))
                    .await?;
                tracing::info!(%job_id, unit = unit_key, pages_done, "invocation deadline near; unit continues in a new message");
                return Ok(None);
            }
        }
    }

    fn record(&self, details: KeyDetails, at: Timestamp) -> KeyRecord {
        let sighting = Sighting {
            kms_id: self.kms.id,
            kms_name: &self.kms.name,
            region: &self.item.region,
            job_id: Some(self.item.job_id),
            now: at,
            first_stored: self
                .stored
                .get(&details.aws_param.arn)
                .map(|stub| stub.created_at),
        };
        KeyRecord::from_details(details, sighting)
    }
}

/// Every page is in: flags gone what this job did not see, then ends the unit.
async fn end_listed_unit(
    app: &App,
    job_id: Uuid,
    unit_key: &str,
    stored: &HashMap<String, StoredKeyStub>,
    seen: &HashSet<String>,
) -> Result<(), Stop> {
    // A unit that another delivery, or the sweep of abandoned jobs, ended meanwhile flags nothing.
    let still_open = app.jobs.unit_progress(job_id, unit_key).await?;
    if still_open.is_none_or(|p| p.status.is_final()) {
        return Ok(());
    }
    let candidates: Vec<Uuid> = stored
        .values()
        .filter(|stub| {
            !stub.gone && stub.last_seen_job != Some(job_id) && !seen.contains(&stub.arn)
        })
        .map(|stub| stub.id)
        .collect();
    // The index may lag behind this job's own writes; the store checks each key's last sighting itself.
    let gone = app.keys.mark_gone(&candidates, job_id, now()).await?;
    match finish(app, job_id, unit_key, &UnitStatus::Succeeded, gone).await {
        Outcome::Done => Ok(()),
        Outcome::Retry(reason) => Err(Stop::Retry(reason)),
    }
}

async fn check_abort(app: &App, job_id: Uuid) -> Result<(), Stop> {
    match app.jobs.header(job_id).await? {
        Some(job) if job.abort => Err(Stop::End(UnitStatus::Canceled)),
        _ => Ok(()),
    }
}

/// Reads the page's keys with bounded concurrency; keys that vanished since the listing are left out.
async fn read_keys(
    app: &App,
    source: &Arc<dyn KeySource>,
    keys: &[ListedKey],
    aliases: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<KeyDetails>, SourceError> {
    let no_aliases = Vec::new();
    let read: Vec<Option<KeyDetails>> = stream::iter(keys)
        .map(|key| source.read_key(key, aliases.get(&key.key_id).unwrap_or(&no_aliases)))
        .buffered(app.sync.key_concurrency.max(1))
        .try_collect()
        .await?;
    Ok(read.into_iter().flatten().collect())
}

fn stop_for(err: SourceError) -> Stop {
    match err {
        SourceError::Refused(reason) => Stop::End(UnitStatus::Failed(reason)),
        SourceError::Transient(reason) => Stop::Retry(reason),
    }
}

/// Ends the unit (once) and, when it was the last, the job (once).
async fn finish(
    app: &App,
    job_id: Uuid,
    unit_key: &str,
    status: &UnitStatus,
    keys_gone: u64,
) -> Outcome {
    let result = async {
        if app
            .jobs
            .finish_unit(job_id, unit_key, status, keys_gone, now())
            .await?
        {
            tracing::info!(%job_id, unit = unit_key, status = %status, keys_gone, "unit ended");
        }
        if let Some(job) = app.jobs.complete_if_done(job_id, now()).await? {
            tracing::info!(%job_id, status = job.overall_status.as_str(), abort = job.abort, "synchronization job ended");
        }
        Ok::<(), AppError>(())
    };
    match result.await {
        Ok(()) => Outcome::Done,
        Err(err) => Outcome::Retry(err.to_string()),
    }
}
