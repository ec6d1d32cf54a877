//! The key source on AWS KMS: per (account, region) a KMS client with the right credentials (own or
//! assumed role) and a token bucket per operation. Every attempt, first or retry, waits for its bucket, and
//! a throttle slows the bucket down (see `rate_limit`), so a unit runs at the allowed rate and no faster.
//! Reads one key the way the engine and the single-key refresh both need it: DescribeKey, then tags,
//! policy and rotation at once.

use super::kms_writes::AwsKeyWriter;
use super::rate_limit::{KmsOperation, Quotas, RateLimits};
use super::sts::RoleCredentials;
use crate::domain::AppError;
use crate::domain::key::{AwsParam, KeyDetails, Tag, supports_rotation};
use crate::ports::{
    Connection, KeyMaterials, KeyPage, KeyRotation, KeySource, KeySourceFactory, KeyWriter,
    KeyWriterFactory, ListedKey, SecretStore, SourceError, SourceReport,
};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_credential_types::Credentials;
use aws_sdk_kms::Client;
use aws_sdk_kms::config::retry::RetryPartition;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::get_key_rotation_status::GetKeyRotationStatusOutput;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use serde_json::json;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// ListKeys page size: the largest AWS allows, unless the allowed rate calls for less.
const LIST_KEYS_LIMIT: i32 = 1000;
/// The longest a page should take at the allowed rate: a third of the worker's 90 s deadline margin, so a
/// page started near the deadline still ends well inside the invocation (throttling backoff included).
const PAGE_SECONDS: f64 = 30.0;
/// The smallest page worth a ListKeys call.
const MIN_PAGE: i32 = 20;
const LIST_ALIASES_LIMIT: i32 = 100;
const LIST_TAGS_LIMIT: i32 = 50;
/// Attempts per call, throttling included. The SDK makes one attempt per try: the retries are ours, so that
/// each one waits for the bucket.
const MAX_ATTEMPTS: u32 = 6;
/// Backoff before the second attempt, doubling up to `MAX_BACKOFF` (with jitter).
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Keys in flight per unit at most, whatever the rate and latency call for.
const MAX_CONCURRENCY: usize = 1024;

pub struct AwsKeySourceFactory {
    sdk: SdkConfig,
    roles: Arc<RoleCredentials>,
    limits: Arc<RateLimits>,
    /// Where AWS connections keep their static keys.
    secrets: Arc<dyn SecretStore>,
}

impl AwsKeySourceFactory {
    pub fn new(
        sdk: SdkConfig,
        rate_share: f64,
        quotas: Quotas,
        secrets: Arc<dyn SecretStore>,
    ) -> Self {
        let roles = Arc::new(RoleCredentials::new(aws_sdk_sts::Client::new(&sdk)));
        AwsKeySourceFactory {
            sdk,
            roles,
            limits: Arc::new(RateLimits::new(rate_share, quotas)),
            secrets,
        }
    }

    /// The role credentials it assumes with: one cache of them for every other reader of AWS too.
    pub fn roles(&self) -> Arc<RoleCredentials> {
        self.roles.clone()
    }
}

impl AwsKeySourceFactory {
    /// A KMS client of one account and region, with the connection's credentials: its static keys (from
    /// the secret store), the role it assumes (from them or from the function's own), or the function's own.
    async fn client(
        &self,
        connection: &Connection,
        region: &str,
        retry: RetryConfig,
    ) -> Result<Client, SourceError> {
        let mut config = aws_sdk_kms::config::Builder::from(&self.sdk)
            .region(aws_sdk_kms::config::Region::new(region.to_string()))
            .retry_config(retry)
            // Throttling in one account and region must not slow the SDK's other clients down.
            .retry_partition(RetryPartition::new(format!(
                "kms-{}-{region}",
                connection.account_id
            )));
        let base = match &connection.keys_secret {
            Some(secret) => {
                let keys = self.secrets.read(secret).await.map_err(|err| match err {
                    AppError::Internal(text) => SourceError::Transient(text),
                    other => SourceError::Refused(other.to_string()),
                })?;
                Some(Credentials::new(
                    keys.access_key_id,
                    keys.secret_access_key,
                    None,
                    None,
                    "cckm-aws-connection",
                ))
            }
            None => None,
        };
        match (&connection.assume_role_arn, base) {
            (Some(role), base) => {
                let credentials = self
                    .roles
                    .assume_from(base.as_ref(), role, connection.external_id.as_deref())
                    .await?;
                config = config.credentials_provider(credentials);
            }
            (None, Some(keys)) => config = config.credentials_provider(keys),
            (None, None) => {}
        }
        Ok(Client::from_conf(config.build()))
    }
}

#[async_trait]
impl KeySourceFactory for AwsKeySourceFactory {
    async fn open(
        &self,
        connection: &Connection,
        region: &str,
    ) -> Result<Arc<dyn KeySource>, SourceError> {
        let client = self.client(connection, region, retry_config()).await?;
        let source = AwsKeySource::new(client, &connection.account_id, region, self.limits.clone());
        Ok(Arc::new(match &connection.assume_role_arn {
            Some(role) => {
                source.with_role(self.roles.clone(), role, connection.external_id.as_deref())
            }
            None => source,
        }))
    }
}

#[async_trait]
impl KeyWriterFactory for AwsKeySourceFactory {
    async fn open_writer(
        &self,
        connection: &Connection,
        region: &str,
    ) -> Result<Arc<dyn KeyWriter>, SourceError> {
        // One attempt: a CreateKey retried after a lost answer would make a second key. The user retries.
        let client = self.client(connection, region, retry_config()).await?;
        Ok(Arc::new(AwsKeyWriter::new(client)))
    }
}

/// One attempt per SDK call: `AwsKeySource::call` retries, paced by the bucket.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(1)
}

/// One account and region of KMS.
pub struct AwsKeySource {
    client: Client,
    account_id: String,
    region: String,
    limits: Arc<RateLimits>,
    /// The role whose cached credentials the client uses, if any: dropped when AWS says they expired.
    role: Option<AssumedRole>,
    /// Moving average of one call's answer time, in microseconds (0 until the first answer).
    latency_micros: AtomicU64,
    /// Attempts and throttles of this source, per operation (in `KmsOperation::ALL` order).
    calls: [AtomicU64; 6],
    throttles: [AtomicU64; 6],
}

/// The operation's counter: `KmsOperation::ALL` lists the operations in their declaration order.
fn slot(operation: KmsOperation) -> usize {
    operation as usize
}

struct AssumedRole {
    cache: Arc<RoleCredentials>,
    arn: String,
    external_id: Option<String>,
}

/// How a failed call reads.
enum Failure {
    /// The key does not exist (any more).
    Gone,
    /// AWS said no for good: denied, unsupported, invalid state.
    Refused(String),
    /// Throttled past every retry, timed out, or AWS failed on its side.
    Transient(String),
}

fn classify<E, R>(operation: &str, err: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let text = super::aws_error::readable(operation, err);
    let Some(service) = err.as_service_error() else {
        return Failure::Transient(text);
    };
    if expired_credentials(err) {
        // The next attempt assumes the role afresh (the source drops the cached credentials).
        return Failure::Transient(text);
    }
    match service.code() {
        Some("NotFoundException") => Failure::Gone,
        Some(
            "ThrottlingException"
            | "RequestLimitExceeded"
            | "LimitExceededException"
            | "KMSInternalException"
            | "DependencyTimeoutException"
            | "ServiceUnavailableException"
            | "InternalFailure"
            | "RequestExpired",
        )
        | None => Failure::Transient(text),
        Some(_) => Failure::Refused(text),
    }
}

fn expired_credentials<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    matches!(
        err.as_service_error().and_then(|e| e.code()),
        Some("ExpiredTokenException" | "ExpiredToken")
    )
}

/// A call the unit cannot do without: a missing key there is a refusal.
fn required(operation: &str, failure: Failure) -> SourceError {
    match failure {
        Failure::Transient(text) => SourceError::Transient(text),
        Failure::Refused(text) => SourceError::Refused(text),
        Failure::Gone => SourceError::Refused(format!("{operation}: not found")),
    }
}

/// A date as AWS sent it. AWS sends epoch seconds as a JSON number, which the SDK reads through an f64:
/// today that is within a quarter of a microsecond of the decimal sent, so rounding to the microsecond
/// gives back exactly what was sent (milliseconds from KMS, microseconds from the emulator), where the
/// f64's own digits can fall one microsecond short.
fn date(value: Option<&DateTime>) -> Option<String> {
    let nanos = value?.as_nanos();
    let micros = (nanos + 500).div_euclid(1000);
    DateTime::from_nanos(micros * 1000)
        .ok()?
        .fmt(Format::DateTime)
        .ok()
}

impl AwsKeySource {
    pub fn new(client: Client, account_id: &str, region: &str, limits: Arc<RateLimits>) -> Self {
        AwsKeySource {
            client,
            account_id: account_id.to_string(),
            region: region.to_string(),
            limits,
            role: None,
            latency_micros: AtomicU64::new(0),
            calls: Default::default(),
            throttles: Default::default(),
        }
    }

    /// Calls one operation: every attempt waits for the operation's bucket; a throttled attempt slows the
    /// bucket down, and a passing failure is tried again after a backoff, up to `MAX_ATTEMPTS`.
    async fn call<T, E, R, F, Fut>(&self, operation: KmsOperation, send: F) -> Result<T, Failure>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let bucket = self
            .limits
            .bucket(&self.account_id, &self.region, operation);
        let name = operation.name();
        let mut attempt = 1;
        loop {
            bucket.acquire().await;
            self.calls[slot(operation)].fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let err = match send().await {
                Ok(output) => {
                    bucket.succeeded();
                    self.observe(started.elapsed());
                    return Ok(output);
                }
                Err(err) => err,
            };
            if throttled(&err) {
                bucket.throttled();
                self.throttles[slot(operation)].fetch_add(1, Ordering::Relaxed);
            }
            match self.failure(name, &err) {
                Failure::Transient(_) if attempt < MAX_ATTEMPTS && !expired_credentials(&err) => {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                // A key that vanished is no failure; a retried attempt is logged only if all fail.
                Failure::Gone => return Err(Failure::Gone),
                failure => {
                    super::aws_error::log(name, &err);
                    return Err(failure);
                }
            }
        }
    }

    fn observe(&self, latency: Duration) {
        let sample = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        let _ = self
            .latency_micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    sample
                } else {
                    (old * 9 + sample) / 10
                })
            });
    }

    /// The client's credentials are `cache`'s for this role.
    pub fn with_role(
        self,
        cache: Arc<RoleCredentials>,
        role_arn: &str,
        external_id: Option<&str>,
    ) -> Self {
        AwsKeySource {
            role: Some(AssumedRole {
                cache,
                arn: role_arn.to_string(),
                external_id: external_id.map(String::from),
            }),
            ..self
        }
    }

    /// Classifies a failed call; credentials AWS calls expired leave the cache, however fresh they looked
    /// (revoked, or a clock that disagrees), so the next attempt does not reuse them.
    fn failure<E, R>(&self, operation: &str, err: &SdkError<E, R>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        if expired_credentials(err)
            && let Some(role) = &self.role
        {
            tracing::warn!(
                account = self.account_id,
                region = self.region,
                operation,
                "AWS says the role's credentials expired; they are assumed afresh next time"
            );
            role.cache.forget(&role.arn, role.external_id.as_deref());
        }
        classify(operation, err)
    }

    /// ListKeys page size: what the allowed rate reads in `PAGE_SECONDS`, within AWS's bounds.
    fn page_limit(&self) -> i32 {
        let keys = self.limits.keys_per_second() * PAGE_SECONDS;
        (keys.min(f64::from(LIST_KEYS_LIMIT)) as i32).max(MIN_PAGE)
    }

    /// (alias name, target key id) of every alias with a target, of the region or of one key, all pages.
    /// Predefined aliases without a target name no key of the account.
    async fn list_aliases(&self, key_id: Option<&str>) -> Result<Vec<(String, String)>, Failure> {
        let mut aliases = Vec::new();
        let mut marker = None;
        loop {
            let output = self
                .call(KmsOperation::ListAliases, || {
                    self.client
                        .list_aliases()
                        .set_key_id(key_id.map(str::to_string))
                        .limit(LIST_ALIASES_LIMIT)
                        .set_marker(marker.clone())
                        .send()
                })
                .await?;
            aliases.extend(output.aliases().iter().filter_map(|alias| {
                Some((
                    alias.alias_name()?.to_string(),
                    alias.target_key_id()?.to_string(),
                ))
            }));
            marker = output.next_marker.filter(|_| output.truncated);
            if marker.is_none() {
                return Ok(aliases);
            }
        }
    }

    async fn tags(&self, key_id: &str) -> Result<Vec<Tag>, Failure> {
        let mut tags = Vec::new();
        let mut marker = None;
        loop {
            let output = self
                .call(KmsOperation::ListResourceTags, || {
                    self.client
                        .list_resource_tags()
                        .key_id(key_id)
                        .limit(LIST_TAGS_LIMIT)
                        .set_marker(marker.clone())
                        .send()
                })
                .await?;
            tags.extend(output.tags().iter().map(|t| Tag {
                key: t.tag_key().into(),
                value: t.tag_value().into(),
            }));
            marker = output.next_marker.filter(|_| output.truncated);
            if marker.is_none() {
                return Ok(tags);
            }
        }
    }

    async fn policy(&self, key_id: &str) -> Result<Option<String>, Failure> {
        let output = self
            .call(KmsOperation::GetKeyPolicy, || {
                self.client
                    .get_key_policy()
                    .key_id(key_id)
                    .policy_name("default")
                    .send()
            })
            .await?;
        Ok(output.policy)
    }

    async fn rotation(&self, key_id: &str) -> Result<GetKeyRotationStatusOutput, Failure> {
        self.call(KmsOperation::GetKeyRotationStatus, || {
            self.client.get_key_rotation_status().key_id(key_id).send()
        })
        .await
    }
}

/// Throttled by KMS: someone (maybe this very sync) is over the quota.
fn throttled<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    matches!(
        err.as_service_error().and_then(|e| e.code()),
        Some("ThrottlingException" | "RequestLimitExceeded" | "Throttling")
    )
}

/// `FIRST_BACKOFF` doubling per attempt up to `MAX_BACKOFF`, with jitter (half to all of it), so that the
/// calls a throttle stopped together do not come back together.
fn backoff(attempt: u32) -> Duration {
    let full = FIRST_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    full.mul_f64(0.5 + f64::from(nanos % 1000) / 2000.0)
}

/// Records an optional read that AWS refused (or a key that vanished mid-read) on the key; a passing
/// failure stops the page so it is tried again.
fn optional<T>(
    field: &str,
    result: Result<T, Failure>,
    errors: &mut BTreeMap<String, String>,
) -> Result<Option<T>, SourceError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(Failure::Refused(reason)) => {
            errors.insert(field.into(), reason);
            Ok(None)
        }
        Err(Failure::Gone) => {
            errors.insert(field.into(), "the key was not found".into());
            Ok(None)
        }
        Err(Failure::Transient(reason)) => Err(SourceError::Transient(reason)),
    }
}

#[async_trait]
impl KeySource for AwsKeySource {
    fn report(&self) -> Option<SourceReport> {
        let operations = KmsOperation::ALL
            .iter()
            .map(|op| {
                let count = |counters: &[AtomicU64; 6]| counters[slot(*op)].load(Ordering::Relaxed);
                (op.name(), count(&self.calls), count(&self.throttles))
            })
            .collect();
        Some(SourceReport {
            operations,
            allowed_keys_per_second: self.limits.keys_per_second(),
        })
    }

    /// Keys to keep in flight so that the allowed rate is reached (Little's law): the rate times a key's
    /// answer time (DescribeKey, then the other reads at once: two calls), with half again for jitter.
    fn keys_in_flight(&self) -> Option<usize> {
        let latency = self.latency_micros.load(Ordering::Relaxed);
        (latency > 0).then(|| {
            let key_seconds = 2.0 * latency as f64 / 1e6;
            let keys = (self.limits.keys_per_second() * key_seconds * 1.5).ceil();
            (keys as usize).clamp(1, MAX_CONCURRENCY)
        })
    }

    async fn list_keys(&self, marker: Option<&str>) -> Result<KeyPage, SourceError> {
        let output = self
            .call(KmsOperation::ListKeys, || {
                self.client
                    .list_keys()
                    .limit(self.page_limit())
                    .set_marker(marker.map(String::from))
                    .send()
            })
            .await
            .map_err(|f| required("ListKeys", f))?;
        let keys = output
            .keys()
            .iter()
            .filter_map(|k| {
                Some(ListedKey {
                    key_id: k.key_id()?.to_string(),
                    arn: k.key_arn()?.to_string(),
                })
            })
            .collect();
        Ok(KeyPage {
            keys,
            next_marker: output.next_marker.filter(|_| output.truncated),
        })
    }

    async fn aliases(&self) -> Result<BTreeMap<String, Vec<String>>, SourceError> {
        let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, target) in self
            .list_aliases(None)
            .await
            .map_err(|f| required("ListAliases", f))?
        {
            aliases.entry(target).or_default().push(name);
        }
        Ok(aliases)
    }

    async fn key_materials(&self, key_id: &str) -> Result<Option<KeyMaterials>, SourceError> {
        let described = self
            .call(KmsOperation::DescribeKey, || {
                self.client.describe_key().key_id(key_id).send()
            })
            .await;
        let current = match described {
            Ok(output) => output
                .key_metadata
                .and_then(|metadata| metadata.current_key_material_id),
            Err(Failure::Gone) => return Ok(None),
            Err(failure) => return Err(required("DescribeKey", failure)),
        };
        let mut rotations = Vec::new();
        let mut marker = None;
        loop {
            // Paced and counted with the rotation reads: one call per 1,000 rotations.
            let output = match self
                .call(KmsOperation::GetKeyRotationStatus, || {
                    self.client
                        .list_key_rotations()
                        .key_id(key_id)
                        .limit(1000)
                        .set_marker(marker.clone())
                        .send()
                })
                .await
            {
                Ok(output) => output,
                Err(Failure::Gone) => return Ok(None),
                Err(failure) => return Err(required("ListKeyRotations", failure)),
            };
            rotations.extend(output.rotations().iter().map(|r| KeyRotation {
                key_material_id: r.key_material_id().map(str::to_string),
                rotation_date: date(r.rotation_date()),
                rotation_type: r.rotation_type().map(|t| t.as_str().to_string()),
                import_state: r.import_state().map(|t| t.as_str().to_string()),
                key_material_state: r.key_material_state().map(|t| t.as_str().to_string()),
                expiration_model: r.expiration_model().map(|t| t.as_str().to_string()),
                valid_to: date(r.valid_to()),
                key_material_description: r.key_material_description().map(str::to_string),
            }));
            marker = output.next_marker.filter(|_| output.truncated);
            if marker.is_none() {
                return Ok(Some(KeyMaterials { current, rotations }));
            }
        }
    }

    async fn aliases_of(&self, key_id: &str) -> Result<Vec<String>, SourceError> {
        match self.list_aliases(Some(key_id)).await {
            Ok(aliases) => Ok(aliases.into_iter().map(|(name, _)| name).collect()),
            // DescribeKey, next, tells the key is gone.
            Err(Failure::Gone) => Ok(Vec::new()),
            Err(failure) => Err(required("ListAliases", failure)),
        }
    }

    async fn read_key(
        &self,
        key: &ListedKey,
        aliases: &[String],
    ) -> Result<Option<KeyDetails>, SourceError> {
        let mut read_errors = BTreeMap::new();
        let described = self
            .call(KmsOperation::DescribeKey, || {
                self.client.describe_key().key_id(&key.key_id).send()
            })
            .await;
        let metadata = match described {
            Ok(output) => output.key_metadata,
            Err(failure) => match failure {
                Failure::Gone => return Ok(None),
                Failure::Transient(reason) => return Err(SourceError::Transient(reason)),
                Failure::Refused(reason) => {
                    // Denied on this key alone: keep what ListKeys told us and say why the rest is missing.
                    read_errors.insert("DescribeKey".into(), reason);
                    None
                }
            },
        };
        let mut param = AwsParam {
            aws_account_id: self.account_id.clone(),
            key_id: key.key_id.clone(),
            arn: key.arn.clone(),
            alias: aliases.to_vec(),
            ..AwsParam::default()
        };
        let Some(meta) = metadata else {
            return Ok(Some(KeyDetails {
                aws_param: param,
                read_errors,
            }));
        };
        let text = |value: Option<&str>| value.map(String::from);
        param.aws_account_id = meta
            .aws_account_id()
            .unwrap_or(&self.account_id)
            .to_string();
        param.arn = meta.arn().unwrap_or(&key.arn).to_string();
        param.creation_date = date(meta.creation_date());
        param.description = Some(meta.description().unwrap_or_default().to_string());
        param.enabled = Some(meta.enabled());
        param.key_state = text(meta.key_state().map(|s| s.as_str()));
        param.key_usage = text(meta.key_usage().map(|u| u.as_str()));
        param.key_manager = text(meta.key_manager().map(|m| m.as_str()));
        param.origin = text(meta.origin().map(|o| o.as_str()));
        param.customer_master_key_spec = text(meta.key_spec().map(|s| s.as_str()));
        let names = |values: Vec<&str>| values.into_iter().map(String::from).collect();
        param.encryption_algorithms = names(
            meta.encryption_algorithms()
                .iter()
                .map(|a| a.as_str())
                .collect(),
        );
        param.signing_algorithms = names(
            meta.signing_algorithms()
                .iter()
                .map(|a| a.as_str())
                .collect(),
        );
        param.mac_algorithms = names(meta.mac_algorithms().iter().map(|a| a.as_str()).collect());
        param.multi_region = meta.multi_region();
        param.multi_region_configuration = meta.multi_region_configuration().map(|c| {
            let region_key = |k: &aws_sdk_kms::types::MultiRegionKey| json!({"Arn": k.arn(), "Region": k.region()});
            json!({
                "MultiRegionKeyType": c.multi_region_key_type().map(|t| t.as_str()),
                "PrimaryKey": c.primary_key().map(region_key),
                "ReplicaKeys": c.replica_keys().iter().map(region_key).collect::<Vec<_>>(),
            })
        });
        param.deletion_date = date(meta.deletion_date());
        param.pending_deletion_window_in_days = meta.pending_deletion_window_in_days();
        param.valid_to = date(meta.valid_to());
        param.expiration_model = text(meta.expiration_model().map(|m| m.as_str()));
        param.custom_key_store_id = text(meta.custom_key_store_id());

        let key_id = meta.key_id().to_string();
        let spec = param
            .customer_master_key_spec
            .as_deref()
            .unwrap_or_default();
        let origin = param.origin.as_deref().unwrap_or_default();
        let has_rotation = supports_rotation(spec, origin, param.custom_key_store_id.is_some());
        // The three reads depend on DescribeKey alone: they go out together.
        let (tags, policy, rotation) =
            tokio::join!(self.tags(&key_id), self.policy(&key_id), async {
                if has_rotation {
                    Some(self.rotation(&key_id).await)
                } else {
                    None
                }
            });
        param.tags = optional("Tags", tags, &mut read_errors)?;
        param.policy = optional("Policy", policy, &mut read_errors)?.flatten();
        if let Some(status) = rotation
            .map(|result| optional("KeyRotation", result, &mut read_errors))
            .transpose()?
            .flatten()
        {
            param.key_rotation_enabled = Some(status.key_rotation_enabled);
            param.rotation_period_in_days = status.rotation_period_in_days;
            param.next_rotation_date = date(status.next_rotation_date.as_ref());
        }
        Ok(Some(KeyDetails {
            aws_param: param,
            read_errors,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::date;
    use aws_smithy_types::DateTime;

    #[test]
    fn dates_read_through_an_f64_come_back_to_the_microsecond_aws_sent() {
        for (sent, shown) in [
            (1_764_412_345.123_456, "2025-11-29T10:32:25.123456Z"),
            (1_764_412_345.000_001, "2025-11-29T10:32:25.000001Z"),
            (1_764_412_345.999_999, "2025-11-29T10:32:25.999999Z"),
            (1_537_983_891.349, "2018-09-26T17:44:51.349Z"),
            (1_764_412_345.0, "2025-11-29T10:32:25Z"),
        ] {
            assert_eq!(
                date(Some(&DateTime::from_secs_f64(sent))).as_deref(),
                Some(shown),
                "{sent}"
            );
        }
        let short = (1..1000)
            .map(|n| 1_764_412_345.0 + f64::from(n) * 1e-6)
            .filter(|sent| {
                let raw = DateTime::from_secs_f64(*sent).subsec_nanos();
                raw / 1000 != (raw + 500) / 1000
            })
            .count();
        assert!(short > 0, "the f64 falls short of some microseconds");
        assert_eq!(date(None), None);
    }
}
