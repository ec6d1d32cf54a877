//! In-memory twins of every port, for fast unit tests of the services, the API and the worker. They keep
//! the same rules as the AWS adapters (unique names, leases, idempotent pages, exactly-once finish).

use crate::domain::AppError;
use crate::domain::connection::StaticKeys;
use crate::domain::job::{FanOut, Job, JobStatus, UnitStatus, WorkItem};
use crate::domain::key::{KeyDetails, KeyRecord};
use crate::domain::key_change::{KeyChange, NewKey, Replica};
use crate::domain::kms::KmsResource;
use crate::domain::organization::OrgAccount;
use crate::domain::time::Timestamp;
use crate::ports::*;
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another test thread panicked; the data is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
pub struct MemoryKmsRegistry {
    items: Mutex<BTreeMap<Uuid, KmsResource>>,
}

#[async_trait]
impl KmsRegistry for MemoryKmsRegistry {
    async fn insert(&self, kms: &KmsResource) -> Result<(), AppError> {
        let mut items = lock(&self.items);
        if items.values().any(|k| k.name == kms.name) {
            return Err(AppError::Conflict(format!(
                "a KMS resource named '{}' exists already",
                kms.name
            )));
        }
        items.insert(kms.id, kms.clone());
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<KmsResource>, AppError> {
        Ok(lock(&self.items).get(&id).cloned())
    }

    async fn find_by_name(&self, name: &str) -> Result<Option<KmsResource>, AppError> {
        Ok(lock(&self.items).values().find(|k| k.name == name).cloned())
    }

    async fn list(&self) -> Result<Vec<KmsResource>, AppError> {
        Ok(lock(&self.items).values().cloned().collect())
    }

    async fn replace(&self, kms: &KmsResource) -> Result<(), AppError> {
        match lock(&self.items).get_mut(&kms.id) {
            Some(slot) => {
                *slot = kms.clone();
                Ok(())
            }
            None => Err(AppError::NotFound(format!(
                "KMS resource '{}' not found",
                kms.id
            ))),
        }
    }

    async fn replace_seen(&self, kms: &KmsResource, seen: Timestamp) -> Result<bool, AppError> {
        match lock(&self.items).get_mut(&kms.id) {
            Some(slot) if slot.updated_at == seen => {
                *slot = kms.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn remove(&self, kms: &KmsResource) -> Result<(), AppError> {
        lock(&self.items).remove(&kms.id);
        Ok(())
    }
}

struct StoredJob {
    job: Job,
    units: HashMap<String, UnitProgress>,
    /// The key ids each recorded page saw, by unit and page.
    seen: HashMap<String, BTreeMap<u64, Vec<Uuid>>>,
}

#[derive(Default)]
struct JobState {
    jobs: HashMap<Uuid, StoredJob>,
    leases: HashMap<String, (Uuid, Timestamp)>,
    /// The delivery working each (job, unit), and until when.
    claims: HashMap<(Uuid, String), (Uuid, Timestamp)>,
}

#[derive(Default)]
pub struct MemoryJobStore {
    state: Mutex<JobState>,
    /// Job headers handed out by `for_each_header`, so that tests can see how much of the history a list
    /// read.
    headers_read: std::sync::atomic::AtomicUsize,
}

impl MemoryJobStore {
    pub fn headers_read(&self) -> usize {
        self.headers_read.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn not_found(id: Uuid) -> AppError {
    AppError::NotFound(format!("synchronization job '{id}' not found"))
}

#[async_trait]
impl JobStore for MemoryJobStore {
    async fn create(&self, job: &Job, lease_until: Timestamp) -> Result<(), AppError> {
        let mut state = lock(&self.state);
        for key in job.units.keys() {
            // A lease of a job that does not exist or has ended is free, as in DynamoDB, and so is this
            // job's own (a creation tried again).
            if let Some((holder, until)) = state.leases.get(key)
                && *until > job.created_at
                && *holder != job.id
                && state.jobs.get(holder).is_some_and(|s| s.job.is_running())
            {
                return Err(AppError::Conflict(format!(
                    "synchronization job '{holder}' is already synchronizing {key}"
                )));
            }
        }
        for key in job.units.keys() {
            state.leases.insert(key.clone(), (job.id, lease_until));
        }
        let units = job
            .units
            .iter()
            .map(|(key, entry)| {
                let progress = UnitProgress {
                    status: entry.status.clone(),
                    marker: None,
                    pages_done: 0,
                    keys_synced: 0,
                    keys_gone: 0,
                };
                (key.clone(), progress)
            })
            .collect();
        state.jobs.insert(
            job.id,
            StoredJob {
                job: job.clone(),
                units,
                seen: HashMap::new(),
            },
        );
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<Job>, AppError> {
        let state = lock(&self.state);
        Ok(state.jobs.get(&id).map(|stored| {
            let mut job = stored.job.clone();
            for (key, entry) in job.units.iter_mut() {
                if let Some(progress) = stored.units.get(key) {
                    entry.status = progress.status.clone();
                }
            }
            job
        }))
    }

    async fn header(&self, id: Uuid) -> Result<Option<Job>, AppError> {
        let state = lock(&self.state);
        Ok(state.jobs.get(&id).map(|stored| Job {
            units: BTreeMap::new(),
            ..stored.job.clone()
        }))
    }

    async fn for_each_header(
        &self,
        newest_first: bool,
        visit: &mut (dyn FnMut(Job) -> bool + Send),
    ) -> Result<(), AppError> {
        let mut jobs: Vec<Job> = lock(&self.state)
            .jobs
            .values()
            .map(|stored| Job {
                units: BTreeMap::new(),
                ..stored.job.clone()
            })
            .collect();
        jobs.sort_by_key(|job| job.created_at);
        if newest_first {
            jobs.reverse();
        }
        for job in jobs {
            self.headers_read
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if !visit(job) {
                break;
            }
        }
        Ok(())
    }

    async fn count(&self) -> Result<usize, AppError> {
        Ok(lock(&self.state).jobs.len())
    }

    async fn request_abort(&self, id: Uuid, now: Timestamp) -> Result<Job, AppError> {
        {
            let mut state = lock(&self.state);
            let stored = state.jobs.get_mut(&id).ok_or_else(|| not_found(id))?;
            if !stored.job.is_running() {
                return Err(AppError::Conflict(format!(
                    "synchronization job '{id}' is not in progress"
                )));
            }
            stored.job.abort = true;
            stored.job.updated_at = now;
        }
        self.get(id).await?.ok_or_else(|| not_found(id))
    }

    async fn unit_progress(
        &self,
        job_id: Uuid,
        unit_key: &str,
    ) -> Result<Option<UnitProgress>, AppError> {
        Ok(lock(&self.state)
            .jobs
            .get(&job_id)
            .and_then(|s| s.units.get(unit_key).cloned()))
    }

    async fn record_page(
        &self,
        job_id: Uuid,
        unit_key: &str,
        page: PageRecord,
        _now: Timestamp,
    ) -> Result<bool, AppError> {
        let mut state = lock(&self.state);
        let Some(stored) = state.jobs.get_mut(&job_id) else {
            return Ok(false);
        };
        let Some(unit) = stored.units.get_mut(unit_key) else {
            return Ok(false);
        };
        if unit.status.is_final() || unit.pages_done != page.pages_done {
            return Ok(false);
        }
        unit.pages_done += 1;
        unit.marker = page.next_marker;
        unit.keys_synced += page.keys;
        stored
            .seen
            .entry(unit_key.to_string())
            .or_default()
            .insert(page.pages_done, page.seen);
        Ok(true)
    }

    async fn finish_unit(
        &self,
        job_id: Uuid,
        unit_key: &str,
        status: &UnitStatus,
        now: Timestamp,
    ) -> Result<bool, AppError> {
        let mut state = lock(&self.state);
        let Some(stored) = state.jobs.get_mut(&job_id) else {
            return Ok(false);
        };
        let Some(unit) = stored.units.get_mut(unit_key) else {
            return Ok(false);
        };
        if unit.status.is_final() {
            return Ok(false);
        }
        unit.status = status.clone();
        let progress = &mut stored.job.progress;
        progress.units_done += 1;
        progress.units_failed += u64::from(matches!(status, UnitStatus::Failed(_)));
        progress.keys_synced += unit.keys_synced;
        progress.keys_gone += unit.keys_gone;
        stored.job.updated_at = now;
        Ok(true)
    }

    async fn complete_if_done(
        &self,
        job_id: Uuid,
        now: Timestamp,
    ) -> Result<Option<Job>, AppError> {
        {
            let mut state = lock(&self.state);
            let Some(stored) = state.jobs.get_mut(&job_id) else {
                return Ok(None);
            };
            if stored.job.overall_status != JobStatus::InProgress {
                return Ok(None);
            }
            let Some(status) = stored.job.final_status() else {
                return Ok(None);
            };
            stored.job.overall_status = status;
            stored.job.completed_at = Some(now);
            stored.job.updated_at = now;
        }
        self.get(job_id).await
    }

    async fn lease(&self, unit_key: &str) -> Result<Option<(Uuid, Timestamp)>, AppError> {
        Ok(lock(&self.state).leases.get(unit_key).copied())
    }

    async fn renew_lease(
        &self,
        unit_key: &str,
        job_id: Uuid,
        until: Timestamp,
    ) -> Result<LeaseRenewal, AppError> {
        let mut state = lock(&self.state);
        match state.leases.get_mut(unit_key) {
            Some(lease) if lease.0 == job_id => {
                lease.1 = until;
                Ok(LeaseRenewal::Renewed)
            }
            other => Ok(LeaseRenewal::Lost(other.map(|(holder, _)| *holder))),
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
        let mut state = lock(&self.state);
        let claim = state
            .claims
            .entry((job_id, unit_key.to_string()))
            .or_insert((delivery, until));
        if claim.0 == delivery || claim.1 < now {
            *claim = (delivery, until);
            return Ok(true);
        }
        Ok(false)
    }

    async fn release_claim(
        &self,
        job_id: Uuid,
        unit_key: &str,
        delivery: Uuid,
    ) -> Result<(), AppError> {
        let mut state = lock(&self.state);
        let key = (job_id, unit_key.to_string());
        if state
            .claims
            .get(&key)
            .is_some_and(|(holder, _)| *holder == delivery)
        {
            state.claims.remove(&key);
        }
        Ok(())
    }

    async fn seen(&self, job_id: Uuid, unit_key: &str) -> Result<Vec<Uuid>, AppError> {
        let state = lock(&self.state);
        let mut seen: Vec<Uuid> = state
            .jobs
            .get(&job_id)
            .and_then(|stored| stored.seen.get(unit_key))
            .map(|pages| pages.values().flatten().copied().collect())
            .unwrap_or_default();
        seen.sort_unstable();
        Ok(seen)
    }

    async fn release_lease(&self, unit_key: &str, job_id: Uuid) -> Result<(), AppError> {
        let mut state = lock(&self.state);
        if state
            .leases
            .get(unit_key)
            .is_some_and(|(holder, _)| *holder == job_id)
        {
            state.leases.remove(unit_key);
        }
        Ok(())
    }
}

impl MemoryJobStore {
    /// Applies `count` to a unit that is still in progress; false when it ended (or does not exist).
    fn count_on_open_unit(
        &self,
        job_id: Uuid,
        unit_key: &str,
        count: impl FnOnce(&mut UnitProgress),
    ) -> bool {
        let mut state = lock(&self.state);
        match state
            .jobs
            .get_mut(&job_id)
            .and_then(|stored| stored.units.get_mut(unit_key))
            .filter(|unit| !unit.status.is_final())
        {
            Some(unit) => {
                count(unit);
                true
            }
            None => false,
        }
    }
}

/// Synced keys in memory. It shares the job store, because a gone sweep counts each verdict on the unit in
/// the same step, as the DynamoDB transaction does.
pub struct MemoryKeyStore {
    keys: Mutex<BTreeMap<Uuid, KeyRecord>>,
    jobs: Arc<MemoryJobStore>,
}

impl MemoryKeyStore {
    pub fn new(jobs: Arc<MemoryJobStore>) -> Self {
        MemoryKeyStore {
            keys: Mutex::default(),
            jobs,
        }
    }
}

fn stub_of(key: &KeyRecord) -> StoredKeyStub {
    StoredKeyStub {
        id: key.id,
        arn: key.arn.clone(),
        created_at: key.created_at,
        synced_at: key.synced_at,
        gone: key.gone,
        last_seen_job: key.last_seen_job,
    }
}

#[async_trait]
impl KeyStore for MemoryKeyStore {
    async fn put_all(&self, keys: &[KeyRecord]) -> Result<(), AppError> {
        let mut stored = lock(&self.keys);
        for key in keys {
            stored.insert(key.id, key.clone());
        }
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<KeyRecord>, AppError> {
        Ok(lock(&self.keys).get(&id).cloned())
    }

    async fn get_many(&self, ids: &[Uuid]) -> Result<Vec<KeyRecord>, AppError> {
        let keys = lock(&self.keys);
        Ok(ids.iter().filter_map(|id| keys.get(id).cloned()).collect())
    }

    async fn delete(&self, id: Uuid) -> Result<bool, AppError> {
        Ok(lock(&self.keys).remove(&id).is_some())
    }

    async fn stored_states(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, StoredState>, AppError> {
        let keys = lock(&self.keys);
        Ok(ids
            .iter()
            .filter_map(|id| keys.get(id))
            .map(|k| {
                let state = StoredState {
                    created_at: k.created_at,
                    synced_at: k.synced_at,
                    content_hash: k.content_hash.clone(),
                    gone: k.gone,
                };
                (k.id, state)
            })
            .collect())
    }

    async fn for_each_stub(
        &self,
        unit_key: &str,
        visit: &mut (dyn FnMut(StoredKeyStub) + Send),
    ) -> Result<(), AppError> {
        let stubs: Vec<StoredKeyStub> = lock(&self.keys)
            .values()
            .filter(|k| k.unit == unit_key)
            .map(stub_of)
            .collect();
        stubs.into_iter().for_each(visit);
        Ok(())
    }

    async fn store_read(&self, key: &KeyRecord, create: bool) -> Result<bool, AppError> {
        let mut stored = lock(&self.keys);
        match stored.get_mut(&key.id) {
            Some(record) if record.synced_at >= key.synced_at => Ok(false),
            Some(record) => {
                *record = KeyRecord {
                    created_at: record.created_at,
                    last_seen_job: record.last_seen_job,
                    ..key.clone()
                };
                Ok(true)
            }
            None if create => {
                stored.insert(
                    key.id,
                    KeyRecord {
                        last_seen_job: None,
                        ..key.clone()
                    },
                );
                Ok(true)
            }
            None => Err(AppError::NotFound(format!(
                "AWS key '{}' not found",
                key.id
            ))),
        }
    }

    async fn settle_sweep(
        &self,
        sweep: &GoneSweep,
        verdicts: &[Verdict],
        now: Timestamp,
    ) -> Result<Settled, AppError> {
        let mut keys = lock(&self.keys);
        let decidable: Vec<&Verdict> = verdicts
            .iter()
            .filter(|v| {
                keys.get(&v.key_id())
                    .is_some_and(|k| sweep.may_decide(&stub_of(k)))
            })
            .collect();
        let settled = Settled::of(decidable.iter().copied());
        let counted = self
            .jobs
            .count_on_open_unit(sweep.job_id, &sweep.unit_key, |unit| {
                unit.keys_gone += settled.flagged;
                unit.keys_synced += settled.restored;
            });
        if !counted {
            return Ok(Settled {
                unit_ended: true,
                ..Settled::default()
            });
        }
        for verdict in decidable {
            match verdict {
                Verdict::Gone(id) => {
                    if let Some(key) = keys.get_mut(id) {
                        key.gone = true;
                        key.updated_at = now;
                    }
                }
                Verdict::Live(record) => {
                    keys.insert(record.id, record.as_ref().clone());
                }
            }
        }
        Ok(settled)
    }

    async fn for_each_indexed(
        &self,
        index: &KeyIndex,
        newest_first: bool,
        _want: usize,
        visit: &mut (dyn FnMut(KeyRecord) -> bool + Send),
    ) -> Result<u64, AppError> {
        let mut held: Vec<KeyRecord> = lock(&self.keys)
            .values()
            .filter(|key| index.holds(key))
            .cloned()
            .collect();
        held.sort_by_key(|key| (key.created_at, key.id));
        if newest_first {
            held.reverse();
        }
        let mut read = 0;
        for key in held {
            read += 1;
            if !visit(key) {
                break;
            }
        }
        Ok(read)
    }

    async fn unit_counts(&self) -> Result<Vec<UnitCount>, AppError> {
        let keys = lock(&self.keys);
        let mut by_unit: BTreeMap<&str, Vec<&KeyRecord>> = BTreeMap::new();
        for key in keys.values() {
            by_unit.entry(key.unit.as_str()).or_default().push(key);
        }
        Ok(by_unit
            .into_iter()
            .map(|(unit, keys)| UnitCount::of(unit, keys))
            .collect())
    }

    /// The counts in memory are the records themselves, always current.
    async fn recount(&self, _unit_key: &str) -> Result<(), AppError> {
        Ok(())
    }

    async fn scan(
        &self,
        units: Option<&[String]>,
        visit: &mut (dyn FnMut(KeyRecord) + Send),
    ) -> Result<(), AppError> {
        let keys: Vec<KeyRecord> = lock(&self.keys)
            .values()
            .filter(|k| units.is_none_or(|units| units.contains(&k.unit)))
            .cloned()
            .collect();
        keys.into_iter().for_each(visit);
        Ok(())
    }
}

/// Records what was dispatched, and the retry delays asked for, instead of sending anything.
#[derive(Default)]
pub struct MemoryDispatcher {
    sent: Mutex<Vec<WorkItem>>,
    shares: Mutex<Vec<FanOut>>,
    retries: Mutex<Vec<(String, std::time::Duration)>>,
}

impl MemoryDispatcher {
    /// The (receipt handle, delay) of every retry asked for so far.
    pub fn retries(&self) -> Vec<(String, std::time::Duration)> {
        lock(&self.retries).clone()
    }

    /// How many items wait to be drained.
    pub fn pending(&self) -> usize {
        lock(&self.sent).len()
    }

    /// Takes every item dispatched so far.
    pub fn drain(&self) -> Vec<WorkItem> {
        std::mem::take(&mut *lock(&self.sent))
    }

    /// Takes every fan-out share handed over so far.
    pub fn drain_fan_outs(&self) -> Vec<FanOut> {
        std::mem::take(&mut *lock(&self.shares))
    }
}

#[async_trait]
impl Dispatcher for MemoryDispatcher {
    async fn dispatch(&self, items: &[WorkItem]) -> Result<(), AppError> {
        lock(&self.sent).extend_from_slice(items);
        Ok(())
    }

    async fn fan_out(&self, shares: &[FanOut]) -> Result<(), AppError> {
        lock(&self.shares).extend_from_slice(shares);
        Ok(())
    }

    async fn retry_after(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), AppError> {
        lock(&self.retries).push((receipt_handle.to_string(), delay));
        Ok(())
    }
}

/// A caller identity that always answers the same account.
pub struct FixedCallerIdentity(pub String);

#[async_trait]
impl CallerIdentity for FixedCallerIdentity {
    async fn account_id(&self) -> Result<String, AppError> {
        Ok(self.0.clone())
    }

    /// Keys whose secret is `wrong` are refused; a role reaches the account its ARN names.
    async fn account_of(
        &self,
        keys: Option<&StaticKeys>,
        role: Option<(&str, Option<&str>)>,
    ) -> Result<String, String> {
        if keys.is_some_and(|k| k.secret_access_key == "wrong") {
            return Err(
                "GetCallerIdentity: InvalidClientTokenId: the security token is invalid".into(),
            );
        }
        match role {
            Some((arn, _)) => arn
                .split(':')
                .nth(4)
                .map(str::to_string)
                .ok_or_else(|| format!("AssumeRole {arn}: ValidationError: not a role ARN")),
            None => Ok(self.0.clone()),
        }
    }
}

/// A scripted AWS account: keys per (account, region), served in pages of `page_size` with positional
/// markers (the index of the next key), as live as AWS: a change shows in the very next call.
#[derive(Default)]
pub struct MemoryKeySource {
    regions: Arc<Mutex<HashMap<(String, String), RegionScript>>>,
    page_size: usize,
    read_delay: Arc<Mutex<std::time::Duration>>,
    /// Keys read (DescribeKey and the rest, as one), over every opened source.
    reads: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Default, Clone)]
struct RegionScript {
    keys: BTreeMap<String, KeyDetails>,
    refusal: Option<SourceError>,
    /// Pages one opened source may list before every further ListKeys fails for a passing reason.
    pages_per_open: Option<usize>,
}

type RegionId = (String, String);

fn region_id(account_id: &str, region: &str) -> RegionId {
    (account_id.to_string(), region.to_string())
}

impl MemoryKeySource {
    pub fn with_page_size(page_size: usize) -> Self {
        MemoryKeySource {
            page_size: page_size.max(1),
            ..MemoryKeySource::default()
        }
    }

    fn script(&self, account_id: &str, region: &str, change: impl FnOnce(&mut RegionScript)) {
        change(
            lock(&self.regions)
                .entry(region_id(account_id, region))
                .or_default(),
        );
    }

    pub fn put_key(&self, account_id: &str, region: &str, details: KeyDetails) {
        self.script(account_id, region, |script| {
            script
                .keys
                .insert(details.aws_param.key_id.clone(), details);
        });
    }

    pub fn remove_key(&self, account_id: &str, region: &str, key_id: &str) {
        self.script(account_id, region, |script| {
            script.keys.remove(key_id);
        });
    }

    /// Every call for this account and region fails with `error`.
    pub fn refuse(&self, account_id: &str, region: &str, error: SourceError) {
        self.script(account_id, region, |script| script.refusal = Some(error));
    }

    /// Each opened source of this account and region lists `pages` pages, then ListKeys is throttled.
    pub fn throttle_after_pages(&self, account_id: &str, region: &str, pages: usize) {
        self.script(account_id, region, |script| {
            script.pages_per_open = Some(pages)
        });
    }

    /// Keys read so far, by every source this factory opened.
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every key read takes this long, as a slow or rate-limited account would.
    pub fn slow_reads(&self, delay: std::time::Duration) {
        *lock(&self.read_delay) = delay;
    }
}

struct MemoryRegion {
    regions: Arc<Mutex<HashMap<RegionId, RegionScript>>>,
    id: RegionId,
    page_size: usize,
    read_delay: std::time::Duration,
    pages_listed: std::sync::atomic::AtomicUsize,
    reads: Arc<std::sync::atomic::AtomicUsize>,
}

impl MemoryRegion {
    /// `read` of the region's script as it is now (an empty one when nothing was scripted), or its refusal.
    fn script<T>(&self, read: impl FnOnce(&RegionScript) -> T) -> Result<T, SourceError> {
        let regions = lock(&self.regions);
        let empty = RegionScript::default();
        let script = regions.get(&self.id).unwrap_or(&empty);
        match &script.refusal {
            Some(err) => Err(err.clone()),
            None => Ok(read(script)),
        }
    }
}

#[async_trait]
impl KeySource for MemoryRegion {
    async fn list_keys(&self, marker: Option<&str>) -> Result<KeyPage, SourceError> {
        let listed = self
            .pages_listed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let start = marker.and_then(|m| m.parse::<usize>().ok()).unwrap_or(0);
        self.script(|script| {
            if script.pages_per_open.is_some_and(|pages| listed >= pages) {
                return Err(SourceError::Transient(
                    "ListKeys: ThrottlingException".into(),
                ));
            }
            let keys: Vec<ListedKey> = script
                .keys
                .values()
                .skip(start)
                .take(self.page_size)
                .map(|d| ListedKey {
                    key_id: d.aws_param.key_id.clone(),
                    arn: d.aws_param.arn.clone(),
                })
                .collect();
            let end = start + keys.len();
            let next_marker = (end < script.keys.len()).then(|| end.to_string());
            Ok(KeyPage { keys, next_marker })
        })?
    }

    async fn aliases(&self) -> Result<BTreeMap<String, Vec<String>>, SourceError> {
        self.script(|script| {
            script
                .keys
                .iter()
                .map(|(id, details)| (id.clone(), details.aws_param.alias.clone()))
                .collect()
        })
    }

    async fn read_key(
        &self,
        key: &ListedKey,
        aliases: &[String],
    ) -> Result<Option<KeyDetails>, SourceError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if !self.read_delay.is_zero() {
            tokio::time::sleep(self.read_delay).await;
        }
        self.script(|script| {
            script.keys.get(&key.key_id).cloned().map(|mut details| {
                details.aws_param.alias = aliases.to_vec();
                details
            })
        })
    }
}

#[async_trait]
impl KeySourceFactory for MemoryKeySource {
    async fn open(
        &self,
        connection: &Connection,
        region: &str,
    ) -> Result<Arc<dyn KeySource>, SourceError> {
        Ok(Arc::new(MemoryRegion {
            regions: self.regions.clone(),
            id: region_id(&connection.account_id, region),
            page_size: self.page_size.max(1),
            read_delay: *lock(&self.read_delay),
            pages_listed: Default::default(),
            reads: self.reads.clone(),
        }))
    }
}

#[async_trait]
impl KeyWriterFactory for MemoryKeySource {
    async fn open_writer(
        &self,
        connection: &Connection,
        region: &str,
    ) -> Result<Arc<dyn KeyWriter>, SourceError> {
        Ok(Arc::new(MemoryWriter {
            regions: self.regions.clone(),
            id: region_id(&connection.account_id, region),
        }))
    }
}

/// Writes to the scripted keys of one account and region, as AWS would change them.
struct MemoryWriter {
    regions: Arc<Mutex<HashMap<RegionId, RegionScript>>>,
    id: RegionId,
}

impl MemoryWriter {
    fn with_key(
        &self,
        key_id: &str,
        change: impl FnOnce(&mut crate::domain::key::AwsParam) -> Result<(), AppError>,
    ) -> Result<(), AppError> {
        let mut regions = lock(&self.regions);
        let script = regions.entry(self.id.clone()).or_default();
        let details = script
            .keys
            .get_mut(key_id)
            .ok_or_else(|| AppError::NotFound(format!("NotFoundException: key {key_id}")))?;
        change(&mut details.aws_param)
    }

    /// A copy of the key in another region of the account: the same key id, its own ARN.
    fn replicate(&self, key_id: &str, replica: &Replica) -> Result<(), AppError> {
        let mut regions = lock(&self.regions);
        let (account, _) = &self.id;
        let mut copy = regions
            .get(&self.id)
            .and_then(|script| script.keys.get(key_id))
            .cloned()
            .ok_or_else(|| AppError::NotFound(format!("NotFoundException: key {key_id}")))?;
        copy.aws_param.arn = format!("arn:aws:kms:{}:{account}:key/{key_id}", replica.region);
        copy.aws_param.alias.clear();
        copy.aws_param.description = replica.description.clone().or(copy.aws_param.description);
        copy.aws_param.tags = Some(replica.tags.clone());
        let target = regions
            .entry(region_id(account, &replica.region))
            .or_default();
        if target.keys.contains_key(key_id) {
            return Err(AppError::Conflict(format!(
                "AlreadyExistsException: key {key_id} has a replica in {}",
                replica.region
            )));
        }
        target.keys.insert(key_id.to_string(), copy);
        Ok(())
    }

    /// Every copy of the multi-Region key names `region`'s as its primary.
    fn move_primary(&self, key_id: &str, region: &str) -> Result<(), AppError> {
        let mut regions = lock(&self.regions);
        let (account, _) = &self.id;
        let primary = format!("arn:aws:kms:{region}:{account}:key/{key_id}");
        if !regions
            .get(&region_id(account, region))
            .is_some_and(|s| s.keys.contains_key(key_id))
        {
            return Err(AppError::NotFound(format!(
                "NotFoundException: no replica of {key_id} in {region}"
            )));
        }
        for ((owner, copy_region), script) in regions.iter_mut() {
            if let (true, Some(copy)) = (owner == account, script.keys.get_mut(key_id)) {
                let kind = if copy_region == region {
                    "PRIMARY"
                } else {
                    "REPLICA"
                };
                copy.aws_param.multi_region_configuration = Some(serde_json::json!({
                    "MultiRegionKeyType": kind,
                    "PrimaryKey": {"Arn": primary, "Region": region},
                }));
            }
        }
        Ok(())
    }

    fn alias_taken(&self, alias: &str) -> bool {
        lock(&self.regions).get(&self.id).is_some_and(|script| {
            script
                .keys
                .values()
                .any(|d| d.aws_param.alias.iter().any(|a| a == alias))
        })
    }
}

#[async_trait]
impl KeyWriter for MemoryWriter {
    async fn create_key(&self, key: &NewKey) -> Result<String, AppError> {
        if let Some(alias) = &key.alias
            && self.alias_taken(alias)
        {
            return Err(AppError::Conflict(format!(
                "AlreadyExistsException: {alias}"
            )));
        }
        let (account, region) = &self.id;
        let key_id = Uuid::new_v4().to_string();
        let imported = key.origin == "EXTERNAL";
        let param = crate::domain::key::AwsParam {
            aws_account_id: account.clone(),
            arn: format!("arn:aws:kms:{region}:{account}:key/{key_id}"),
            key_id: key_id.clone(),
            creation_date: Some(crate::domain::time::format(&crate::domain::time::now())),
            description: Some(key.description.clone().unwrap_or_default()),
            enabled: Some(!imported),
            key_state: Some(if imported { "PendingImport" } else { "Enabled" }.into()),
            key_usage: Some(
                key.usage
                    .clone()
                    .unwrap_or_else(|| "ENCRYPT_DECRYPT".into()),
            ),
            key_manager: Some("CUSTOMER".into()),
            origin: Some(key.origin.clone()),
            customer_master_key_spec: Some(key.spec.clone()),
            multi_region: Some(key.multi_region),
            tags: Some(key.tags.clone()),
            policy: key.policy.clone(),
            ..Default::default()
        };
        lock(&self.regions)
            .entry(self.id.clone())
            .or_default()
            .keys
            .insert(
                key_id.clone(),
                KeyDetails {
                    aws_param: param,
                    read_errors: BTreeMap::new(),
                },
            );
        Ok(key_id)
    }

    async fn change_key(&self, key_id: &str, change: &KeyChange) -> Result<(), AppError> {
        if let KeyChange::AddAlias(alias) = change
            && self.alias_taken(alias)
        {
            return Err(AppError::Conflict(format!(
                "AlreadyExistsException: {alias}"
            )));
        }
        self.with_key(key_id, |key| {
            let state = |key: &mut crate::domain::key::AwsParam, state: &str, enabled: bool| {
                key.key_state = Some(state.into());
                key.enabled = Some(enabled);
            };
            match change {
                KeyChange::AddAlias(alias) => key.alias.push(alias.clone()),
                KeyChange::DeleteAlias(alias) => {
                    let before = key.alias.len();
                    key.alias.retain(|a| a != alias);
                    if key.alias.len() == before {
                        return Err(AppError::NotFound(format!(
                            "alias '{alias}' does not name key {key_id}"
                        )));
                    }
                }
                KeyChange::UpdateDescription(text) => key.description = Some(text.clone()),
                KeyChange::AddTags(tags) => {
                    let all = key.tags.get_or_insert_with(Vec::new);
                    all.retain(|t| !tags.iter().any(|n| n.key == t.key));
                    all.extend(tags.iter().cloned());
                }
                KeyChange::RemoveTags(keys) => {
                    key.tags
                        .get_or_insert_with(Vec::new)
                        .retain(|t| !keys.contains(&t.key));
                }
                KeyChange::PutPolicy { policy, .. } => key.policy = Some(policy.clone()),
                KeyChange::Enable => state(key, "Enabled", true),
                KeyChange::Disable => state(key, "Disabled", false),
                KeyChange::EnableAutoRotation { period_in_days } => {
                    key.key_rotation_enabled = Some(true);
                    key.rotation_period_in_days = Some(period_in_days.unwrap_or(365));
                }
                KeyChange::DisableAutoRotation => key.key_rotation_enabled = Some(false),
                KeyChange::ScheduleDeletion { days } => {
                    state(key, "PendingDeletion", false);
                    key.pending_deletion_window_in_days = Some(*days);
                }
                // AWS leaves a key whose deletion was cancelled disabled.
                KeyChange::CancelDeletion => {
                    state(key, "Disabled", false);
                    key.pending_deletion_window_in_days = None;
                    key.deletion_date = None;
                }
                KeyChange::DeleteMaterial { .. } => state(key, "PendingImport", false),
                // Scripted keys have no material whose rotation anything here reads.
                KeyChange::RotateMaterial => {}
                KeyChange::Replicate(_) | KeyChange::UpdatePrimaryRegion(_) => {
                    if key.multi_region != Some(true) {
                        return Err(AppError::InvalidParam(format!(
                            "UnsupportedOperationException: key {key_id} is not a multi-Region key"
                        )));
                    }
                }
            }
            Ok(())
        })?;
        match change {
            KeyChange::Replicate(replica) => self.replicate(key_id, replica),
            KeyChange::UpdatePrimaryRegion(region) => self.move_primary(key_id, region),
            _ => Ok(()),
        }
    }

    /// Scripted keys hold no key material: AWS's answer for a symmetric key.
    async fn public_key(&self, key_id: &str) -> Result<String, AppError> {
        self.with_key(key_id, |_| Ok(()))?;
        Err(AppError::InvalidParam(format!(
            "GetPublicKey: UnsupportedOperationException: key {key_id} holds no public key here"
        )))
    }
}

/// An organization in memory: accounts, each under one unit (a root or an OU), units under their parent.
#[derive(Default)]
pub struct MemoryOrganization {
    accounts: Mutex<Vec<(OrgAccount, String)>>,
    units: Mutex<Vec<(String, String)>>,
}

impl MemoryOrganization {
    pub fn add_unit(&self, unit: &str, parent: &str) {
        lock(&self.units).push((unit.to_string(), parent.to_string()));
    }

    /// Adds the account under `unit`, or changes its state if it is there.
    pub fn put_account(&self, id: &str, state: &str, unit: &str) {
        let mut accounts = lock(&self.accounts);
        accounts.retain(|(account, _)| account.id != id);
        let account = OrgAccount {
            id: id.to_string(),
            state: state.to_string(),
        };
        accounts.push((account, unit.to_string()));
    }

    pub fn remove_account(&self, id: &str) {
        lock(&self.accounts).retain(|(account, _)| account.id != id);
    }
}

#[async_trait]
impl Organization for MemoryOrganization {
    async fn accounts(&self, _management_role_arn: &str) -> Result<Vec<OrgAccount>, AppError> {
        Ok(lock(&self.accounts)
            .iter()
            .map(|(a, _)| a.clone())
            .collect())
    }

    async fn accounts_under(
        &self,
        _management_role_arn: &str,
        units: &[String],
    ) -> Result<Vec<OrgAccount>, AppError> {
        let mut wanted: Vec<String> = units.to_vec();
        let all_units = lock(&self.units).clone();
        let mut i = 0;
        while i < wanted.len() {
            let children = all_units.iter().filter(|(_, parent)| *parent == wanted[i]);
            let children: Vec<String> = children.map(|(unit, _)| unit.clone()).collect();
            wanted.extend(children);
            i += 1;
        }
        Ok(lock(&self.accounts)
            .iter()
            .filter(|(_, unit)| wanted.contains(unit))
            .map(|(a, _)| a.clone())
            .collect())
    }
}

/// Named objects (AWS connections, scheduler job configurations) in memory.
pub struct MemoryNamedStore<T> {
    items: Mutex<BTreeMap<Uuid, T>>,
}

impl<T> Default for MemoryNamedStore<T> {
    fn default() -> Self {
        MemoryNamedStore {
            items: Mutex::new(BTreeMap::new()),
        }
    }
}

#[async_trait]
impl<T: Named> NamedStore<T> for MemoryNamedStore<T> {
    async fn insert(&self, item: &T) -> Result<(), AppError> {
        let mut items = lock(&self.items);
        if items.values().any(|i| i.name() == item.name()) {
            return Err(AppError::Conflict(format!(
                "an {} named '{}' exists already",
                T::KIND,
                item.name()
            )));
        }
        items.insert(item.id(), item.clone());
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<T>, AppError> {
        Ok(lock(&self.items).get(&id).cloned())
    }

    async fn find_by_name(&self, name: &str) -> Result<Option<T>, AppError> {
        Ok(lock(&self.items)
            .values()
            .find(|i| i.name() == name)
            .cloned())
    }

    async fn list(&self) -> Result<Vec<T>, AppError> {
        Ok(lock(&self.items).values().cloned().collect())
    }

    async fn replace(&self, item: &T) -> Result<(), AppError> {
        match lock(&self.items).get_mut(&item.id()) {
            Some(stored) => {
                *stored = item.clone();
                Ok(())
            }
            None => Err(AppError::NotFound(format!(
                "{} '{}' not found",
                T::KIND,
                item.id()
            ))),
        }
    }

    async fn remove(&self, item: &T) -> Result<(), AppError> {
        lock(&self.items).remove(&item.id());
        Ok(())
    }
}

/// Secrets in memory.
#[derive(Default)]
pub struct MemorySecretStore {
    secrets: Mutex<HashMap<String, StaticKeys>>,
}

#[async_trait]
impl SecretStore for MemorySecretStore {
    async fn create(&self, owner: Uuid, keys: &StaticKeys) -> Result<String, AppError> {
        let id = format!("memory/connections/{owner}");
        lock(&self.secrets).insert(id.clone(), keys.clone());
        Ok(id)
    }

    async fn replace(&self, secret_id: &str, keys: &StaticKeys) -> Result<(), AppError> {
        lock(&self.secrets).insert(secret_id.to_string(), keys.clone());
        Ok(())
    }

    async fn read(&self, secret_id: &str) -> Result<StaticKeys, AppError> {
        lock(&self.secrets)
            .get(secret_id)
            .cloned()
            .ok_or_else(|| AppError::Internal(format!("no secret {secret_id}")))
    }

    async fn delete(&self, secret_id: &str) -> Result<(), AppError> {
        lock(&self.secrets).remove(secret_id);
        Ok(())
    }
}

/// Schedules in memory.
#[derive(Default)]
pub struct MemorySchedules {
    schedules: Mutex<BTreeMap<Uuid, ScheduleSpec>>,
}

#[async_trait]
impl Schedules for MemorySchedules {
    async fn put(&self, id: Uuid, spec: &ScheduleSpec, exists: bool) -> Result<(), AppError> {
        let mut schedules = lock(&self.schedules);
        if schedules.contains_key(&id) != exists {
            return Err(AppError::Conflict(format!(
                "schedule of {id}: exists is {}",
                !exists
            )));
        }
        schedules.insert(id, spec.clone());
        Ok(())
    }

    async fn delete(&self, id: Uuid) -> Result<(), AppError> {
        lock(&self.schedules).remove(&id);
        Ok(())
    }
}
