//! Ports: what the domain needs from the outside world, one small trait per capability. Adapters for AWS
//! live in `adapters::{dynamodb, kms, sqs, sts}`; in-memory twins for tests in `adapters::memory`.

use crate::domain::AppError;
use crate::domain::connection::{AwsConnection, StaticKeys};
use crate::domain::job::{FanOut, Job, UnitStatus, WorkItem};
use crate::domain::job_config::JobConfig;
use crate::domain::key::{KeyDetails, KeyRecord};
use crate::domain::key_change::{KeyChange, NewKey};
pub use crate::domain::key_query::{KeyIndex, UnitCount};
use crate::domain::kms::KmsResource;
use crate::domain::organization::OrgAccount;
use crate::domain::time::Timestamp;
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use thiserror::Error;
use uuid::Uuid;

/// Registered KMS resources. Names are unique.
#[async_trait]
pub trait KmsRegistry: Send + Sync {
    /// Stores a new resource; `Conflict` when its name is taken.
    async fn insert(&self, kms: &KmsResource) -> Result<(), AppError>;
    async fn get(&self, id: Uuid) -> Result<Option<KmsResource>, AppError>;
    async fn find_by_name(&self, name: &str) -> Result<Option<KmsResource>, AppError>;
    async fn list(&self) -> Result<Vec<KmsResource>, AppError>;
    /// Replaces a resource that exists (`NotFound` otherwise); the name never changes.
    async fn replace(&self, kms: &KmsResource) -> Result<(), AppError>;
    /// Replaces it only if it was not changed since it was read (its `updated_at` is still `seen`); false
    /// when another writer came first, so the caller reads again.
    async fn replace_seen(&self, kms: &KmsResource, seen: Timestamp) -> Result<bool, AppError>;
    async fn remove(&self, kms: &KmsResource) -> Result<(), AppError>;
}

/// Where one unit of a job stands, as the worker needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitProgress {
    pub status: UnitStatus,
    /// The ListKeys marker of the next page to read; None before the first page and after the last.
    pub marker: Option<String>,
    pub pages_done: u64,
    pub keys_synced: u64,
    /// Keys this unit's gone sweep flagged so far.
    pub keys_gone: u64,
}

/// Jobs, their units and the (account, region) leases that keep two jobs off the same unit.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Leases every unit of the job until `lease_until`, then stores it. `Conflict` naming the running job
    /// when a unit is leased already; leases taken by a refused or failed call are given back, and a lease
    /// whose job was never stored (a creation that stopped midway) or has ended counts as free.
    async fn create(&self, job: &Job, lease_until: Timestamp) -> Result<(), AppError>;
    /// The job with every unit.
    async fn get(&self, id: Uuid) -> Result<Option<Job>, AppError>;
    /// The job without its units: the cheap read a worker makes at every page to see `abort`.
    async fn header(&self, id: Uuid) -> Result<Option<Job>, AppError>;
    /// Job headers (`Job::units` is empty: `get` gives the detail), newest or oldest first, handed to
    /// `visit` as the creation-time index's pages arrive until it answers false: a page of the job list
    /// reads about what it shows, not the whole history.
    async fn for_each_header(
        &self,
        newest_first: bool,
        visit: &mut (dyn FnMut(Job) -> bool + Send),
    ) -> Result<(), AppError>;
    /// How many jobs the history holds, counted by the index (no header is returned).
    async fn count(&self) -> Result<usize, AppError>;
    /// Sets `abort`; `NotFound`, or `Conflict` when the job is not in progress.
    async fn request_abort(&self, id: Uuid, now: Timestamp) -> Result<Job, AppError>;
    async fn unit_progress(
        &self,
        job_id: Uuid,
        unit_key: &str,
    ) -> Result<Option<UnitProgress>, AppError>;
    /// Records one page of a unit: moves its marker from `page.pages_done` and adds the keys. False when the
    /// unit did not stand at `page.pages_done` (or had ended): the caller re-reads the unit to tell a page
    /// that another delivery recorded from its own write whose answer was lost.
    async fn record_page(
        &self,
        job_id: Uuid,
        unit_key: &str,
        page: PageRecord,
        now: Timestamp,
    ) -> Result<bool, AppError>;
    /// Ends a unit and adds its counters (keys synced, keys flagged gone) to the job, each exactly once;
    /// false when the unit had ended already. A unit found ended has its counters added to the job if the
    /// call that ended it stopped before that, so calling again after a crash completes the end. The
    /// lease is not touched: `release_lease` gives it back.
    async fn finish_unit(
        &self,
        job_id: Uuid,
        unit_key: &str,
        status: &UnitStatus,
        now: Timestamp,
    ) -> Result<bool, AppError>;
    /// Ends the job if every unit has ended and it is still in progress; Some(job) only for the one call
    /// that ended it. The end status is decided on the `abort` value the write is conditioned on, so a
    /// cancel racing the end cannot leave a canceled job `failed`.
    async fn complete_if_done(&self, job_id: Uuid, now: Timestamp)
    -> Result<Option<Job>, AppError>;
    /// Who holds the lease of a unit, and until when; None when nobody does.
    async fn lease(&self, unit_key: &str) -> Result<Option<(Uuid, Timestamp)>, AppError>;
    /// Extends `job_id`'s lease of a unit to `until`, if the lease is still this job's (lapsed or not);
    /// `Lost` when it is not (another job took it over after it lapsed), and then nothing is written.
    async fn renew_lease(
        &self,
        unit_key: &str,
        job_id: Uuid,
        until: Timestamp,
    ) -> Result<LeaseRenewal, AppError>;
    /// Gives the lease of a unit back if `job_id` still holds it; a lease another job holds is left alone.
    async fn release_lease(&self, unit_key: &str, job_id: Uuid) -> Result<(), AppError>;
    /// Every key id the recorded pages of a unit saw, sorted.
    async fn seen(&self, job_id: Uuid, unit_key: &str) -> Result<Vec<Uuid>, AppError>;
    /// Claims a unit for one delivery until `until`, so that one delivery at a time works it, however many
    /// worker instances hold a copy of its message (SQS delivers at least once). True when `delivery` holds
    /// the claim now: it was free, lapsed before `now`, or already this delivery's.
    async fn claim_unit(
        &self,
        job_id: Uuid,
        unit_key: &str,
        delivery: Uuid,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, AppError>;
    /// Gives a delivery's claim up; a claim another delivery holds is left alone.
    async fn release_claim(
        &self,
        job_id: Uuid,
        unit_key: &str,
        delivery: Uuid,
    ) -> Result<(), AppError>;
}

/// What `renew_lease` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseRenewal {
    Renewed,
    /// The lease is no longer this job's: another job holds it (named when one does), or took it and gave
    /// it back. This job's workers must stop.
    Lost(Option<Uuid>),
}

/// One page of a unit, as `record_page` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRecord {
    /// How many pages were recorded before this one: the condition that makes recording idempotent.
    pub pages_done: u64,
    pub next_marker: Option<String>,
    pub keys: u64,
    /// The ids of the page's keys, kept with the page so that the unit's gone sweep knows what this job
    /// saw without holding it in memory across deliveries.
    pub seen: Vec<Uuid>,
}

/// What the sync needs to know of a stored key before it writes the key again.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredState {
    pub created_at: Timestamp,
    /// When the stored state was read from AWS (at the latest).
    pub synced_at: Timestamp,
    pub content_hash: Option<String>,
    pub gone: bool,
}

/// What a unit's gone sweep needs to know of a stored key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKeyStub {
    pub id: Uuid,
    pub arn: String,
    pub created_at: Timestamp,
    pub synced_at: Timestamp,
    pub gone: bool,
    pub last_seen_job: Option<Uuid>,
}

/// The end of a unit that listed every page: the stored keys its job did not see are confirmed with AWS
/// one by one, and the verdicts are written and counted on the unit item together.
#[derive(Debug, Clone, PartialEq)]
pub struct GoneSweep {
    pub job_id: Uuid,
    /// When the job started. A record stamped since then was written by a newer reader of AWS (another
    /// job, a refresh): its stamp is never overruled by this sweep.
    pub job_started: Timestamp,
    pub unit_key: String,
}

impl GoneSweep {
    /// Whether this sweep may still decide a key, judged on its stored stamp (the stores check the same on
    /// the record itself as they write).
    pub fn may_decide(&self, stub: &StoredKeyStub) -> bool {
        !stub.gone && stub.last_seen_job != Some(self.job_id) && stub.synced_at < self.job_started
    }
}

/// What AWS said of one candidate of a gone sweep.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// DescribeKey answered `NotFoundException`: flag the stored key gone.
    Gone(Uuid),
    /// AWS still has the key (the listing missed it): store it as seen by the sweep's job.
    Live(Box<KeyRecord>),
}

impl Verdict {
    pub fn key_id(&self) -> Uuid {
        match self {
            Verdict::Gone(id) => *id,
            Verdict::Live(record) => record.id,
        }
    }
}

/// What a batch of verdicts wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Keys flagged gone, and counted in the unit's `keys_gone`.
    pub flagged: u64,
    /// Keys stored as seen, and counted in the unit's `keys_synced`.
    pub restored: u64,
    /// The unit ended meanwhile (another delivery, the sweep of abandoned jobs): the verdicts from there
    /// on were not written, and the sweep must stop.
    pub unit_ended: bool,
}

impl Settled {
    /// The counts of these verdicts, all written.
    pub fn of<'a>(verdicts: impl IntoIterator<Item = &'a Verdict>) -> Settled {
        verdicts
            .into_iter()
            .fold(Settled::default(), |mut settled, verdict| {
                match verdict {
                    Verdict::Gone(_) => settled.flagged += 1,
                    Verdict::Live(_) => settled.restored += 1,
                }
                settled
            })
    }
}

/// Synced key records.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Writes every record, in batches, retrying what the store could not take until all is written.
    async fn put_all(&self, keys: &[KeyRecord]) -> Result<(), AppError>;
    async fn get(&self, id: Uuid) -> Result<Option<KeyRecord>, AppError>;
    /// Removes our record; false when there was none.
    async fn delete(&self, id: Uuid) -> Result<bool, AppError>;
    /// The stored records of these keys (those that are), read by key, not by index or scan.
    async fn get_many(&self, ids: &[Uuid]) -> Result<Vec<KeyRecord>, AppError>;
    /// What is stored of these keys (those that are), read by key.
    async fn stored_states(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, StoredState>, AppError>;
    /// Hands each stored key of one `"<account>/<region>"` to `visit`, reduced to its stub, as the key
    /// index's pages arrive, so that no caller holds them all.
    async fn for_each_stub(
        &self,
        unit_key: &str,
        visit: &mut (dyn FnMut(StoredKeyStub) + Send),
    ) -> Result<(), AppError>;
    /// Stores what a read of one key outside a sync found (a refresh, a KMS event), leaving the sync's own
    /// stamp (`last_seen_job`) and `createdAt` alone. `key.synced_at` is when the read began: a record read
    /// since then is newer and stays (answers false), so a late or repeated read never overwrites it. A
    /// key not stored is created when `create`; otherwise that is `NotFound`.
    async fn store_read(&self, key: &KeyRecord, create: bool) -> Result<bool, AppError>;
    /// Writes verdicts of a gone sweep and counts them on the sweep's unit, each key with its count in one
    /// step: a key only if the sweep may still decide it (`GoneSweep::may_decide`, checked on the record;
    /// the others are skipped), and nothing once the unit has ended.
    async fn settle_sweep(
        &self,
        sweep: &GoneSweep,
        verdicts: &[Verdict],
        now: Timestamp,
    ) -> Result<Settled, AppError>;
    /// Hands the keys `index` holds to `visit` in creation order (newest first when `newest_first`) until
    /// it answers false; `want`, how many the caller expects to take, sizes the reads. Answers how many
    /// items were read (index entries and records), so that a list can report its cost.
    async fn for_each_indexed(
        &self,
        index: &KeyIndex,
        newest_first: bool,
        want: usize,
        visit: &mut (dyn FnMut(KeyRecord) -> bool + Send),
    ) -> Result<u64, AppError>;
    /// The kept counts of every unit that has some.
    async fn unit_counts(&self) -> Result<Vec<UnitCount>, AppError>;
    /// Counts the keys of one unit from its index and keeps the counts: the end of a unit's sync.
    async fn recount(&self, unit_key: &str) -> Result<(), AppError>;
    /// Hands every key of the given units (index queries), or of the whole table when `units` is None, to
    /// `visit` as the store's pages arrive, so that no caller has to hold them all at once.
    async fn scan(
        &self,
        units: Option<&[String]>,
        visit: &mut (dyn FnMut(KeyRecord) + Send),
    ) -> Result<(), AppError>;

    /// Every key of `scan`, collected.
    async fn list(&self, units: Option<&[String]>) -> Result<Vec<KeyRecord>, AppError> {
        let mut keys = Vec::new();
        self.scan(units, &mut |key| keys.push(key)).await?;
        Ok(keys)
    }
}

/// How to reach one AWS account: with the function's own credentials or an AWS connection's static keys,
/// directly or through a role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connection {
    pub account_id: String,
    pub assume_role_arn: Option<String>,
    pub external_id: Option<String>,
    /// The secret that holds the static keys to start from; None: the function's own credentials.
    pub keys_secret: Option<String>,
}

impl Connection {
    /// How `kms` reaches AWS: its role, else its AWS connection's role; from the connection's keys when it
    /// has some.
    pub fn of(kms: &KmsResource, via: Option<&AwsConnection>) -> Connection {
        let (assume_role_arn, external_id) = match (&kms.assume_role_arn, via) {
            (Some(role), _) => (Some(role.clone()), kms.assume_role_external_id.clone()),
            (None, Some(connection)) => (
                connection.assume_role_arn.clone(),
                connection.assume_role_external_id.clone(),
            ),
            (None, None) => (None, None),
        };
        Connection {
            account_id: kms.account_id.clone(),
            assume_role_arn,
            external_id,
            keys_secret: via.and_then(|c| c.secret_id.clone()),
        }
    }
}

/// A stored object with a unique, unchanging name: AWS connections and scheduler job configurations.
pub trait Named:
    serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static
{
    /// What it is, for messages ("AWS connection").
    const KIND: &'static str;
    /// The prefix of its items in the configuration table.
    const ITEM_PREFIX: &'static str;
    fn id(&self) -> Uuid;
    fn name(&self) -> &str;
}

/// Named objects of one kind. Names are unique and never change.
#[async_trait]
pub trait NamedStore<T: Named>: Send + Sync {
    /// `Conflict` when the name is taken.
    async fn insert(&self, item: &T) -> Result<(), AppError>;
    async fn get(&self, id: Uuid) -> Result<Option<T>, AppError>;
    async fn find_by_name(&self, name: &str) -> Result<Option<T>, AppError>;
    async fn list(&self) -> Result<Vec<T>, AppError>;
    /// `NotFound` when it is gone.
    async fn replace(&self, item: &T) -> Result<(), AppError>;
    async fn remove(&self, item: &T) -> Result<(), AppError>;
}

impl Named for AwsConnection {
    const KIND: &'static str = "AWS connection";
    const ITEM_PREFIX: &'static str = "connection";
    fn id(&self) -> Uuid {
        self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for JobConfig {
    const KIND: &'static str = "scheduler job configuration";
    const ITEM_PREFIX: &'static str = "job-config";
    fn id(&self) -> Uuid {
        self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// What a schedule runs and when, as EventBridge Scheduler takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    /// `cron(...)`, six fields, UTC.
    pub expression: String,
    pub enabled: bool,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    /// The event the function gets each time.
    pub input: serde_json::Value,
}

/// The schedules that start scheduled syncs (EventBridge Scheduler), one per job configuration.
#[async_trait]
pub trait Schedules: Send + Sync {
    /// Creates the schedule of job configuration `id`, or replaces it when `exists`.
    async fn put(&self, id: Uuid, spec: &ScheduleSpec, exists: bool) -> Result<(), AppError>;
    /// Deletes it; one already gone is not an error.
    async fn delete(&self, id: Uuid) -> Result<(), AppError>;
}

/// Where static keys are kept (AWS Secrets Manager): never in a table, an answer or a log.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Keeps the keys of connection `owner` in a new secret; answers its id.
    async fn create(&self, owner: Uuid, keys: &StaticKeys) -> Result<String, AppError>;
    async fn replace(&self, secret_id: &str, keys: &StaticKeys) -> Result<(), AppError>;
    async fn read(&self, secret_id: &str) -> Result<StaticKeys, AppError>;
    async fn delete(&self, secret_id: &str) -> Result<(), AppError>;
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SourceError {
    /// AWS refused for good (access denied, role cannot be assumed, region disabled): the unit fails.
    #[error("{0}")]
    Refused(String),
    /// Worth another try later (throttled past every retry, network, 5xx).
    #[error("{0}")]
    Transient(String),
}

/// Calls and throttles of one key source, per operation, and the rate it was allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceReport {
    /// (operation, calls, throttles), attempts included.
    pub operations: Vec<(&'static str, u64, u64)>,
    pub allowed_keys_per_second: f64,
}

/// A key as ListKeys names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedKey {
    pub key_id: String,
    pub arn: String,
}

/// One page of ListKeys.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyPage {
    pub keys: Vec<ListedKey>,
    pub next_marker: Option<String>,
}

/// One rotation of a key's material, as ListKeyRotations reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyRotation {
    #[serde(rename = "KeyMaterialId")]
    pub key_material_id: Option<String>,
    #[serde(rename = "RotationDate")]
    pub rotation_date: Option<String>,
    #[serde(rename = "RotationType")]
    pub rotation_type: Option<String>,
    /// For imported material: whether it is imported now, and whether it is the current material.
    #[serde(rename = "ImportState")]
    pub import_state: Option<String>,
    #[serde(rename = "KeyMaterialState")]
    pub key_material_state: Option<String>,
    #[serde(rename = "ExpirationModel")]
    pub expiration_model: Option<String>,
    #[serde(rename = "ValidTo")]
    pub valid_to: Option<String>,
    #[serde(rename = "KeyMaterialDescription")]
    pub key_material_description: Option<String>,
}

/// A key's material, as AWS reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyMaterials {
    pub current: Option<String>,
    /// Oldest first, as AWS lists them.
    pub rotations: Vec<KeyRotation>,
}

/// Reads the keys of one account and region.
#[async_trait]
pub trait KeySource: Send + Sync {
    /// How many keys to read at once to reach the allowed rate, from what the source has seen of the
    /// answer times; None before it knows.
    fn keys_in_flight(&self) -> Option<usize> {
        None
    }
    /// What this source has done so far, for the unit's metrics; None when it does not count.
    fn report(&self) -> Option<SourceReport> {
        None
    }
    async fn list_keys(&self, marker: Option<&str>) -> Result<KeyPage, SourceError>;
    /// Every alias of the region with a target, by target key id (predefined aliases without one skipped).
    async fn aliases(&self) -> Result<BTreeMap<String, Vec<String>>, SourceError>;
    /// The aliases of one key: what reading a single key needs, without listing the whole region.
    async fn aliases_of(&self, key_id: &str) -> Result<Vec<String>, SourceError> {
        Ok(self.aliases().await?.remove(key_id).unwrap_or_default())
    }
    /// The key's material: the current material id AWS reports, and the rotations (ListKeyRotations, every
    /// page); None when the key no longer exists.
    async fn key_materials(&self, _key_id: &str) -> Result<Option<KeyMaterials>, SourceError> {
        Ok(Some(KeyMaterials::default()))
    }
    /// Describes one key and its optional reads; None when the key no longer exists. A read AWS refuses is
    /// recorded in `KeyDetails::read_errors`; only a passing failure is an error.
    async fn read_key(
        &self,
        key: &ListedKey,
        aliases: &[String],
    ) -> Result<Option<KeyDetails>, SourceError>;
}

#[async_trait]
pub trait KeySourceFactory: Send + Sync {
    async fn open(
        &self,
        connection: &Connection,
        region: &str,
    ) -> Result<Arc<dyn KeySource>, SourceError>;
}

/// Changes the keys of one account and region in AWS: the API's key operations, for CCKM's clients.
/// AWS's refusal is the API's error (400, 404 or 409), as the user is to read it.
#[async_trait]
pub trait KeyWriter: Send + Sync {
    /// Creates the key (its alias is the service's next call) and answers its key id.
    async fn create_key(&self, key: &NewKey) -> Result<String, AppError>;
    async fn change_key(&self, key_id: &str, change: &KeyChange) -> Result<(), AppError>;
    /// The public key of an asymmetric key, as PEM (GetPublicKey): the one read that only the API's key
    /// operations make, so it lives here rather than with the sync's reads.
    async fn public_key(&self, key_id: &str) -> Result<String, AppError>;
}

#[async_trait]
pub trait KeyWriterFactory: Send + Sync {
    async fn open_writer(
        &self,
        connection: &Connection,
        region: &str,
    ) -> Result<Arc<dyn KeyWriter>, SourceError>;
}

/// The account the function's own credentials belong to (STS GetCallerIdentity), and the account other
/// credentials reach: static keys, a role assumed from them or from the function's own.
#[async_trait]
pub trait CallerIdentity: Send + Sync {
    async fn account_id(&self) -> Result<String, AppError>;
    /// The account these credentials reach; `Err` is why AWS refused them, as a user is to read it.
    async fn account_of(
        &self,
        keys: Option<&StaticKeys>,
        role: Option<(&str, Option<&str>)>,
    ) -> Result<String, String>;
}

/// Hands work items to the workers (SQS in AWS).
#[async_trait]
pub trait Dispatcher: Send + Sync {
    async fn dispatch(&self, items: &[WorkItem]) -> Result<(), AppError>;
    /// Hands shares of a large job's units to the workers, which send each unit's own message.
    async fn fan_out(&self, shares: &[FanOut]) -> Result<(), AppError>;
    /// Makes a delivered message that failed for a passing reason come back after `delay`, instead of
    /// after the queue's whole visibility timeout.
    async fn retry_after(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), AppError>;
}

/// The accounts of an AWS organization, read through a role in its management (or delegated
/// administrator) account.
#[async_trait]
pub trait Organization: Send + Sync {
    /// Every account of the organization, whatever its state.
    async fn accounts(&self, management_role_arn: &str) -> Result<Vec<OrgAccount>, AppError>;
    /// The accounts under these roots or organizational units, their child units' included.
    async fn accounts_under(
        &self,
        management_role_arn: &str,
        units: &[String],
    ) -> Result<Vec<OrgAccount>, AppError>;
}

/// What a sign-in issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    pub access_token: String,
    /// Absent when a refresh issued no new one: the one used stays valid.
    pub refresh_token: Option<String>,
    pub expires_in_seconds: i64,
}

/// The identity service users sign in with (a Cognito user pool in AWS).
#[async_trait]
pub trait SignIn: Send + Sync {
    /// The app client users sign in to, which the sign-in answer names.
    fn client_id(&self) -> &str;
    /// `Unauthorized`, with one message for an unknown user and a wrong password.
    async fn with_password(&self, username: &str, password: &str)
    -> Result<IssuedTokens, AppError>;
    async fn with_refresh_token(&self, refresh_token: &str) -> Result<IssuedTokens, AppError>;
}

/// The keys that sign the identity service's tokens, as JWKS text.
#[async_trait]
pub trait SigningKeys: Send + Sync {
    async fn jwks(&self) -> Result<String, AppError>;
}
