//! One unit of a job: list a page of keys, read each key, store the page, record progress; repeat until the
//! last page, then confirm with AWS what the listing did not show, flag what is gone and end the unit.
//!
//! What keeps it correct whatever the redeliveries, races and crashes:
//! - Only the lease holder works. Every delivery renews the unit's lease before it starts and after each
//!   page; one that finds another job holding it stops and fails its unit ("lease lost").
//! - A page is recorded once (conditioned on `pages_done`); a record whose answer was lost is recognised
//!   by re-reading the unit, and anything else that moved the unit sends the message back, never drops it.
//! - No key is flagged gone unless AWS says so: each candidate is confirmed with DescribeKey, and a flag
//!   never overrules a stamp written since the job started (another job, a refresh). Each verdict is
//!   counted on the unit item in the same write, so `keys_gone` is exact.
//! - A unit ends once; its lease is given back afterwards, also by a redelivery that finds it ended.

use super::metrics;
use crate::app::App;
use crate::domain::AppError;
use crate::domain::job::{Job, UnitStatus, WorkItem};
use crate::domain::key::{KeyDetails, KeyRecord, Sighting, key_id_of_arn};
use crate::domain::kms::KmsResource;
use crate::domain::time::{Timestamp, now};
use crate::ports::{
    GoneSweep, KeySource, LeaseRenewal, ListedKey, PageRecord, SourceError, StoredKeyStub,
    UnitProgress, Verdict,
};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Candidates of the gone sweep asked of AWS, then written, at a time.
const SWEEP_BATCH: usize = 25;
/// The `read_errors` entry of a key that AWS refused to describe.
const DESCRIBE_KEY: &str = "DescribeKey";

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The message is handled: the unit ended, moved on to a continuation, or had nothing left to do.
    Done,
    /// A passing failure: the message should come back.
    Retry(String),
}

/// How a delivery ends other than by handing the unit on (a continuation) or finding nothing to do.
enum Stop {
    /// The unit ends with this status (succeeded after its sweep, failed, canceled).
    End(UnitStatus),
    /// Try again later.
    Retry(String),
    /// Another delivery of this job moved the unit on: try again later, but never give up for this.
    Overtaken(String),
}

impl From<AppError> for Stop {
    fn from(err: AppError) -> Self {
        Stop::Retry(err.to_string())
    }
}

pub async fn run(app: &App, item: &WorkItem, attempt: u32, deadline: Timestamp) -> Outcome {
    let started = std::time::Instant::now();
    let mut delivery = Delivery {
        app,
        item,
        unit_key: item.unit_key(),
        deadline,
        progress: 0,
        keys: 0,
        written: 0,
        source: None,
        id: Uuid::new_v4(),
        claimed: false,
    };
    let outcome = deliver(&mut delivery, attempt).await;
    if delivery.claimed
        && let Err(err) = app
            .jobs
            .release_claim(item.job_id, &delivery.unit_key, delivery.id)
            .await
    {
        // It lapses on its own (`SyncSettings::claim`); a redelivery waits that long at most.
        tracing::warn!(job_id = %item.job_id, unit = delivery.unit_key, error = %err,
            "could not give the unit's claim back");
    }
    if let Some(report) = delivery.source.as_ref().and_then(|s| s.report()) {
        metrics::emit(&metrics::Delivered {
            job_id: item.job_id,
            unit_key: &delivery.unit_key,
            keys: delivery.keys,
            written: delivery.written,
            elapsed: started.elapsed(),
            outcome: match outcome {
                Outcome::Done => "done",
                Outcome::Retry(_) => "retry",
            },
            report,
        });
    }
    outcome
}

async fn deliver(delivery: &mut Delivery<'_>, attempt: u32) -> Outcome {
    let (app, job_id) = (delivery.app, delivery.item.job_id);
    match delivery.sync().await {
        Ok(()) => Outcome::Done,
        Err(Stop::End(status)) => finish(app, job_id, &delivery.unit_key, &status).await,
        // Progress was made: the failure budget starts afresh in a new message, so a long unit that meets
        // a few passing errors over its many pages is not failed for them.
        Err(Stop::Retry(reason)) if delivery.progress > 0 => {
            delivery.continue_afresh(&reason).await
        }
        Err(Stop::Retry(reason)) if attempt >= app.sync.max_attempts => {
            let status = UnitStatus::Failed(format!("gave up after {attempt} attempts: {reason}"));
            finish(app, job_id, &delivery.unit_key, &status).await
        }
        Err(Stop::Retry(reason) | Stop::Overtaken(reason)) => Outcome::Retry(reason),
    }
}

/// One delivery of a work item.
struct Delivery<'a> {
    app: &'a App,
    item: &'a WorkItem,
    unit_key: String,
    deadline: Timestamp,
    /// Pages recorded and sweep verdicts written by this delivery: progress that resets the failure budget.
    progress: u64,
    /// This delivery, as its claim on the unit names it; `claimed` once it may hold the claim.
    id: Uuid,
    claimed: bool,
    /// Keys this delivery read and recorded, and those of them it wrote (the others had not changed).
    keys: u64,
    written: u64,
    /// The key source, once opened: its report goes into the delivery's metrics.
    source: Option<Arc<dyn KeySource>>,
}

/// The unit's account and region in AWS, with the region's aliases, listed once per delivery when the
/// first record needs them: the listing (a call per 100 aliases) overlaps the first keys' reads.
struct Source {
    keys: Arc<dyn KeySource>,
    aliases: tokio::sync::OnceCell<BTreeMap<String, Vec<String>>>,
}

impl Source {
    async fn open(app: &App, kms: &KmsResource, region: &str) -> Result<Source, Stop> {
        let connection =
            crate::service::connections::reach(app, kms)
                .await
                .map_err(|err| match err {
                    AppError::Conflict(reason) => Stop::End(UnitStatus::Failed(reason)),
                    other => Stop::from(other),
                })?;
        let keys = app
            .source
            .open(&connection, region)
            .await
            .map_err(stop_for)?;
        Ok(Source {
            keys,
            aliases: tokio::sync::OnceCell::new(),
        })
    }

    /// Reads one key, without its aliases (`with_aliases` adds them).
    async fn read(&self, key: &ListedKey) -> Result<Option<KeyDetails>, SourceError> {
        self.keys.read_key(key, &[]).await
    }

    /// The key's aliases, from the region's alias list (listed on the first call).
    async fn with_aliases(&self, mut details: KeyDetails) -> Result<KeyDetails, Stop> {
        let aliases = self
            .aliases
            .get_or_try_init(|| async { self.keys.aliases().await.map_err(stop_for) })
            .await?;
        details.aws_param.alias = aliases
            .get(&details.aws_param.key_id)
            .cloned()
            .unwrap_or_default();
        Ok(details)
    }
}

impl Delivery<'_> {
    /// Where the unit stands, when there is work left; None when there is none (an unknown unit, or one
    /// that ended: then what follows its end is made sure of).
    async fn open_progress(&self) -> Result<Option<UnitProgress>, Stop> {
        let (app, job_id) = (self.app, self.item.job_id);
        let Some(progress) = app.jobs.unit_progress(job_id, &self.unit_key).await? else {
            tracing::warn!(%job_id, unit = self.unit_key, "work item for an unknown job or unit; dropped");
            return Ok(None);
        };
        if progress.status.is_final() {
            // A redelivery after the unit ended: its count on the job, the lease and the job's own ending
            // may have been lost.
            app.jobs
                .finish_unit(job_id, &self.unit_key, &progress.status, now())
                .await?;
            after_unit_end(app, job_id, &self.unit_key).await?;
            return Ok(None);
        }
        Ok(Some(progress))
    }

    async fn sync(&mut self) -> Result<(), Stop> {
        let (app, job_id) = (self.app, self.item.job_id);
        if self.open_progress().await?.is_none() {
            return Ok(());
        }
        let Some(job) = app.jobs.header(job_id).await? else {
            return Ok(());
        };
        if job.abort {
            return Err(Stop::End(UnitStatus::Canceled));
        }
        self.claimed = true;
        self.hold().await?;
        // Read again under the claim: the delivery that held it before may have recorded pages since.
        let Some(progress) = self.open_progress().await? else {
            return Ok(());
        };
        let kms = app.kms.get(self.item.kms_id).await?.ok_or_else(|| {
            Stop::End(UnitStatus::Failed(format!(
                "KMS resource '{}' is no longer registered",
                self.item.kms_id
            )))
        })?;
        let unit = UnitContext { kms: &kms };
        // Pages recorded and no marker left: every page is in and only the ending was lost (a redelivery),
        // or the sweep goes on. The source is opened only when there is something to ask AWS.
        let listed_all = progress.pages_done > 0 && progress.marker.is_none();
        let source = if listed_all {
            None
        } else {
            let source = Source::open(app, &kms, &self.item.region).await?;
            self.source = Some(source.keys.clone());
            let listed = self
                .pages(&unit, &source, progress.pages_done, progress.marker)
                .await?;
            if !listed {
                return Ok(());
            }
            Some(source)
        };
        if self.sweep_gone(&job, &unit, source).await? {
            // Every key of the unit is decided: count them again for the key lists' totals.
            app.keys.recount(&self.unit_key).await?;
            Err(Stop::End(UnitStatus::Succeeded))
        } else {
            self.continue_at_deadline(None).await
        }
    }

    /// Hands the unit to a new message; its delivery resumes from the recorded progress (`marker` only says
    /// where this one stood).
    async fn hand_on(&self, marker: Option<String>) -> Result<(), AppError> {
        let continuation = WorkItem {
            marker,
            ..self.item.clone()
        };
        self.app
            .dispatcher
            .dispatch(std::slice::from_ref(&continuation))
            .await
    }

    /// Hands the rest of the unit to a new message because the invocation's deadline is near.
    async fn continue_at_deadline(&self, marker: Option<String>) -> Result<(), Stop> {
        self.hand_on(marker).await?;
        tracing::info!(job_id = %self.item.job_id, unit = self.unit_key, progress = self.progress,
            "invocation deadline near; unit continues in a new message");
        Ok(())
    }

    fn deadline_near(&self) -> bool {
        self.deadline - now() < chrono_duration(self.app.sync.deadline_margin)
    }

    /// Renews this job's lease of the unit and this delivery's claim on it: stops the unit when another
    /// job took the lease over, and this delivery when another delivery of the job works the unit.
    async fn hold(&self) -> Result<(), Stop> {
        self.hold_lease().await?;
        let at = now();
        let until = at + chrono_duration(self.app.sync.claim);
        if self
            .app
            .jobs
            .claim_unit(self.item.job_id, &self.unit_key, self.id, until, at)
            .await?
        {
            return Ok(());
        }
        Err(Stop::Overtaken(format!(
            "another delivery is working unit {}",
            self.unit_key
        )))
    }

    /// Renews this job's lease of the unit; stops the unit when another job took it over.
    async fn hold_lease(&self) -> Result<(), Stop> {
        let app = self.app;
        let until = crate::service::jobs::lease_until(app, now());
        match app
            .jobs
            .renew_lease(&self.unit_key, self.item.job_id, until)
            .await?
        {
            LeaseRenewal::Renewed => Ok(()),
            LeaseRenewal::Lost(holder) => {
                let holder =
                    holder.map_or_else(|| "another job".into(), |id| format!("job '{id}'"));
                tracing::warn!(job_id = %self.item.job_id, unit = self.unit_key, holder,
                    "the unit's lease lapsed and another job took it over; this unit stops");
                Err(Stop::End(UnitStatus::Failed(format!(
                    "lease lost: {holder} took {} over after this job's lease lapsed",
                    self.unit_key
                ))))
            }
        }
    }

    /// Reads and stores page after page from `pages_done`/`marker`. A reader lists the pages ahead and reads
    /// their keys in one stream (`Reading::run`), so that the next page's keys start while this page's last
    /// keys are in flight; the pages are stored in order as they complete, while the reader goes on. True
    /// after the last page; false when the rest goes on in a new message because the invocation's deadline
    /// is near, or the unit ended meanwhile.
    async fn pages(
        &mut self,
        unit: &UnitContext<'_>,
        source: &Source,
        mut pages_done: u64,
        marker: Option<String>,
    ) -> Result<bool, Stop> {
        let (pages_tx, pages_rx) = tokio::sync::mpsc::channel(1);
        let reading = Reading {
            source,
            key_concurrency: self.app.sync.key_concurrency.max(1),
            deadline: self.deadline,
            margin: self.app.sync.deadline_margin,
        };
        let this = &*self;
        let storing = async move {
            let mut pages_rx = pages_rx;
            let mut done = (0, 0, 0);
            while let Some(read) = pages_rx.recv().await {
                let page = match read {
                    Read::Page(page) => page,
                    Read::Paused(marker) => {
                        return (
                            this.continue_at_deadline(Some(marker))
                                .await
                                .map(|()| false),
                            done,
                        );
                    }
                    Read::Failed(stop) => return (Err(stop), done),
                };
                let mut records = Vec::with_capacity(page.details.len());
                for details in page.details {
                    match source.with_aliases(details).await {
                        Ok(details) => {
                            records.push(unit.record(this.item, details, page.listed_at))
                        }
                        Err(stop) => return (Err(stop), done),
                    }
                }
                let record = PageRecord {
                    pages_done,
                    next_marker: page.next_marker.clone(),
                    keys: records.len() as u64,
                    seen: records.iter().map(|r| r.id).collect(),
                };
                let written = match this.store(records, &record).await {
                    Ok(Some(written)) => written,
                    Ok(None) => return (Ok(false), done),
                    Err(stop) => return (Err(stop), done),
                };
                done = (done.0 + 1, done.1 + record.keys, done.2 + written);
                pages_done += 1;
                if page.next_marker.is_none() {
                    return (Ok(true), done);
                }
                if let Err(stop) = check_abort(this.app, this.item.job_id).await {
                    return (Err(stop), done);
                }
            }
            (
                Err(Stop::Retry("the page reader stopped early".into())),
                done,
            )
        };
        let ((), (result, (pages, keys, written))) =
            tokio::join!(reading.run(marker, pages_tx), storing);
        self.progress += pages;
        self.keys += keys;
        self.written += written;
        result
    }

    /// Writes the page's keys that changed (a key keeps its `createdAt`; one whose fingerprint matches what
    /// is stored, and that is not flagged gone, is not written again; one that a read begun after this
    /// page's listing stored, such as a KMS event's, is left to it), records the page with the ids it saw
    /// and renews the lease. Some(keys written); None when the unit ended meanwhile.
    async fn store(
        &self,
        mut records: Vec<KeyRecord>,
        record: &PageRecord,
    ) -> Result<Option<u64>, Stop> {
        let (app, job_id) = (self.app, self.item.job_id);
        let stored = app.keys.stored_states(&record.seen).await?;
        records.retain_mut(|key| match stored.get(&key.id) {
            Some(state) => {
                key.created_at = state.created_at;
                state.synced_at <= key.synced_at
                    && (state.gone || state.content_hash != key.content_hash)
            }
            None => true,
        });
        app.keys.put_all(&records).await?;
        if !app
            .jobs
            .record_page(job_id, &self.unit_key, record.clone(), now())
            .await?
            && !self.recorded_by_us(record).await?
        {
            return Ok(None);
        }
        self.hold().await?;
        Ok(Some(records.len() as u64))
    }

    /// After `record_page` refused: true when the unit shows this very page recorded (our own write,
    /// whose answer was lost and whose retry then failed its condition). False when the unit ended.
    /// Anything else moved the unit under us: the message comes back rather than being dropped.
    async fn recorded_by_us(&self, record: &PageRecord) -> Result<bool, Stop> {
        let job_id = self.item.job_id;
        let Some(progress) = self.app.jobs.unit_progress(job_id, &self.unit_key).await? else {
            return Ok(false);
        };
        if progress.status.is_final() {
            return Ok(false);
        }
        if progress.pages_done == record.pages_done + 1 && progress.marker == record.next_marker {
            tracing::info!(%job_id, unit = self.unit_key, pages_done = record.pages_done,
                "page found recorded with this delivery's marker; going on");
            return Ok(true);
        }
        Err(Stop::Overtaken(format!(
            "unit {} stood at page {} instead of {}: another delivery is ahead",
            self.unit_key, progress.pages_done, record.pages_done
        )))
    }

    /// Every page is in: each stored key of the unit that this job's pages did not see (the ids kept with
    /// each page record), and whose record no newer reader stamped, is asked of AWS. Gone there: flagged.
    /// Still there (a listing can miss a key when one before it is deleted mid-sync): stored as seen. A key
    /// AWS refuses to describe stays undecided. Only the seen ids (16 bytes a key) and the candidates are
    /// held; the stored keys stream from the index. True when the sweep is over (or the unit ended
    /// meanwhile); false when the deadline is near, and the rest goes on in a new message (what is decided
    /// is no longer a candidate then).
    async fn sweep_gone(
        &mut self,
        job: &Job,
        unit: &UnitContext<'_>,
        source: Option<Source>,
    ) -> Result<bool, Stop> {
        let app = self.app;
        let sweep = GoneSweep {
            job_id: job.id,
            job_started: job.created_at,
            unit_key: self.unit_key.clone(),
        };
        let seen = app.jobs.seen(job.id, &self.unit_key).await?;
        let mut candidates = Vec::new();
        app.keys
            .for_each_stub(&self.unit_key, &mut |stub| {
                if sweep.may_decide(&stub) && seen.binary_search(&stub.id).is_err() {
                    candidates.push(stub);
                }
            })
            .await?;
        drop(seen);
        if candidates.is_empty() {
            return Ok(true);
        }
        let source = match source {
            Some(source) => source,
            None => {
                let source = Source::open(app, unit.kms, &self.item.region).await?;
                self.source = Some(source.keys.clone());
                source
            }
        };
        for batch in candidates.chunks(SWEEP_BATCH) {
            if self.deadline_near() {
                return Ok(false);
            }
            self.hold().await?;
            let verdicts: Vec<Option<Verdict>> = stream::iter(batch)
                .map(|stub| self.verdict(&source, unit, stub))
                .buffered(app.sync.key_concurrency.max(1))
                .try_collect()
                .await?;
            let verdicts: Vec<Verdict> = verdicts.into_iter().flatten().collect();
            let settled = app.keys.settle_sweep(&sweep, &verdicts, now()).await?;
            self.progress += settled.flagged + settled.restored;
            if settled.unit_ended {
                // Ended by another delivery or the sweep of abandoned jobs: nothing more is ours to decide.
                return Ok(true);
            }
        }
        Ok(true)
    }

    /// What AWS says of one candidate; None when it refuses to describe the key.
    async fn verdict(
        &self,
        source: &Source,
        unit: &UnitContext<'_>,
        stub: &StoredKeyStub,
    ) -> Result<Option<Verdict>, Stop> {
        let listed = ListedKey {
            key_id: key_id_of_arn(&stub.arn).to_string(),
            arn: stub.arn.clone(),
        };
        let read_at = now();
        Ok(match source.read(&listed).await.map_err(stop_for)? {
            None => Some(Verdict::Gone(stub.id)),
            Some(details) if details.read_errors.contains_key(DESCRIBE_KEY) => {
                tracing::warn!(job_id = %self.item.job_id, unit = self.unit_key, arn = stub.arn,
                    "AWS refused to describe a key the listing did not show; left undecided");
                None
            }
            Some(details) => {
                tracing::warn!(job_id = %self.item.job_id, unit = self.unit_key, arn = stub.arn,
                    "a live key was missing from the listing; stored as seen");
                let details = source.with_aliases(details).await?;
                let mut record = unit.record(self.item, details, read_at);
                record.created_at = stub.created_at;
                Some(Verdict::Live(Box::new(record)))
            }
        })
    }

    /// Hands the unit to a new message, which resumes from the recorded progress with a fresh failure
    /// budget.
    async fn continue_afresh(&self, reason: &str) -> Outcome {
        match self.hand_on(None).await {
            Ok(()) => {
                tracing::warn!(job_id = %self.item.job_id, unit = self.unit_key, pages = self.progress,
                    %reason, "passing failure after progress; the unit continues in a new message");
                Outcome::Done
            }
            Err(err) => Outcome::Retry(format!("{reason}; and the continuation failed: {err}")),
        }
    }
}

/// What the page reader hands the storer, in page order.
enum Read {
    Page(ReadPage),
    /// The deadline is near: the unit goes on from this marker in a new message.
    Paused(String),
    Failed(Stop),
}

/// One page read from AWS, not yet stored: its keys that still exist, and the marker of the next page.
struct ReadPage {
    details: Vec<KeyDetails>,
    next_marker: Option<String>,
    /// When the page was listed: every read of its keys began since, so its records carry this stamp.
    listed_at: Timestamp,
}

/// A page listed and being read.
struct Pending {
    listed: usize,
    read: usize,
    details: Vec<KeyDetails>,
    next_marker: Option<String>,
    listed_at: Timestamp,
}

/// Pages listed ahead of the one being read at most: what bounds the reader's memory.
const PAGES_AHEAD: usize = 2;

/// The page reader of one delivery.
struct Reading<'a> {
    source: &'a Source,
    key_concurrency: usize,
    deadline: Timestamp,
    margin: Duration,
}

impl Reading<'_> {
    /// Lists pages from `marker` and reads their keys in one stream, as many in flight as the allowed rate
    /// and the answer times call for (at least `key_concurrency`), and sends each page once all its keys
    /// are read, in order. It lists no new page once the deadline is near (it sends `Paused` with the
    /// marker of the first page not read; the first page is always read), gives up keys still unread a
    /// third of the margin before the deadline, and stops when the storer is gone. A failure is sent after
    /// the pages completed before it, so that their progress counts.
    async fn run(self, marker: Option<String>, pages: tokio::sync::mpsc::Sender<Read>) {
        let cutoff = self.deadline - chrono_duration(self.margin / 3);
        let mut to_list = Some(marker);
        let mut paused = None;
        let mut failure = None;
        let mut listed: std::collections::VecDeque<Pending> = Default::default();
        let mut first_seq = 0usize;
        let mut waiting: std::collections::VecDeque<(usize, ListedKey)> = Default::default();
        let mut reads = futures::stream::FuturesUnordered::new();
        loop {
            if pages.is_closed() {
                return;
            }
            let in_flight = self
                .source
                .keys
                .keys_in_flight()
                .unwrap_or(0)
                .max(self.key_concurrency);
            while failure.is_none() && reads.len() < in_flight {
                if let Some((seq, key)) = waiting.pop_front() {
                    let source = self.source;
                    reads.push(async move { (seq, source.read(&key).await) });
                    continue;
                }
                let Some(marker) = to_list.take() else { break };
                if listed.len() > PAGES_AHEAD && !reads.is_empty() {
                    to_list = Some(marker);
                    break;
                }
                let first = first_seq == 0 && listed.is_empty() && reads.is_empty();
                if !first && self.deadline - now() < chrono_duration(self.margin) {
                    paused = marker;
                    break;
                }
                let listed_at = now();
                match self.source.keys.list_keys(marker.as_deref()).await {
                    Ok(page) => {
                        let seq = first_seq + listed.len();
                        waiting.extend(page.keys.iter().cloned().map(|key| (seq, key)));
                        listed.push_back(Pending {
                            listed: page.keys.len(),
                            read: 0,
                            details: Vec::with_capacity(page.keys.len()),
                            next_marker: page.next_marker.clone(),
                            listed_at,
                        });
                        to_list = page.next_marker.map(Some);
                    }
                    Err(err) => failure = Some(stop_for(err)),
                }
            }
            // Hand over, in order, every page whose keys are all read.
            while listed.front().is_some_and(|p| p.read == p.listed) {
                let Some(page) = listed.pop_front() else {
                    break;
                };
                first_seq += 1;
                let read = ReadPage {
                    details: page.details,
                    next_marker: page.next_marker,
                    listed_at: page.listed_at,
                };
                if pages.send(Read::Page(read)).await.is_err() {
                    return;
                }
            }
            if reads.is_empty() {
                break;
            }
            let left = (cutoff - now()).to_std().unwrap_or(Duration::ZERO);
            match tokio::time::timeout(left, reads.next()).await {
                Ok(Some((seq, Ok(details)))) => {
                    if let Some(page) = listed.get_mut(seq - first_seq) {
                        page.read += 1;
                        page.details.extend(details);
                    }
                }
                Ok(Some((_, Err(err)))) => {
                    failure.get_or_insert(stop_for(err));
                }
                Ok(None) => {}
                Err(_) => {
                    // A refusal met before stays the failure: it ends the unit, a retry would not help.
                    failure.get_or_insert_with(|| {
                        Stop::Retry(format!(
                            "{} keys could not be read before the invocation's deadline",
                            reads.len() + waiting.len()
                        ))
                    });
                    break;
                }
            }
        }
        let last = match (failure, paused) {
            (Some(stop), _) => Read::Failed(stop),
            (None, Some(marker)) => Read::Paused(marker),
            (None, None) => return,
        };
        let _ = pages.send(last).await;
    }
}

/// What every key record of the unit needs.
struct UnitContext<'a> {
    kms: &'a KmsResource,
}

impl UnitContext<'_> {
    fn record(&self, item: &WorkItem, details: KeyDetails, at: Timestamp) -> KeyRecord {
        let sighting = Sighting {
            kms_id: self.kms.id,
            kms_name: &self.kms.name,
            region: &item.region,
            job_id: Some(item.job_id),
            now: at,
            // `store` keeps what is stored.
            first_stored: None,
        };
        KeyRecord::from_details(details, sighting)
    }
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or_default()
}

async fn check_abort(app: &App, job_id: Uuid) -> Result<(), Stop> {
    match app.jobs.header(job_id).await? {
        Some(job) if job.abort => Err(Stop::End(UnitStatus::Canceled)),
        _ => Ok(()),
    }
}

fn stop_for(err: SourceError) -> Stop {
    match err {
        SourceError::Refused(reason) => Stop::End(UnitStatus::Failed(reason)),
        SourceError::Transient(reason) => Stop::Retry(reason),
    }
}

/// Ends the unit (once), then gives its lease back and, when it was the last, ends the job (once).
async fn finish(app: &App, job_id: Uuid, unit_key: &str, status: &UnitStatus) -> Outcome {
    let result = async {
        if app
            .jobs
            .finish_unit(job_id, unit_key, status, now())
            .await?
        {
            tracing::info!(%job_id, unit = unit_key, status = %status, "unit ended");
        }
        after_unit_end(app, job_id, unit_key).await
    };
    match result.await {
        Ok(()) => Outcome::Done,
        Err(err) => Outcome::Retry(err.to_string()),
    }
}

/// What follows a unit's end, repeated by every delivery that finds the unit ended, so that a crash in
/// between loses neither: the lease goes back, and the job ends when this was its last unit.
async fn after_unit_end(app: &App, job_id: Uuid, unit_key: &str) -> Result<(), AppError> {
    app.jobs.release_lease(unit_key, job_id).await?;
    if let Some(job) = app.jobs.complete_if_done(job_id, now()).await? {
        let progress = job.progress;
        let seconds = job
            .completed_at
            .map_or(0, |end| (end - job.created_at).num_seconds());
        tracing::info!(%job_id, status = job.overall_status.as_str(), abort = job.abort,
            units = progress.units_total, units_failed = progress.units_failed,
            keys_synced = progress.keys_synced, keys_gone = progress.keys_gone, seconds,
            "synchronization job ended");
    }
    Ok(())
}
