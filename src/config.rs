//! Configuration from the environment, read and checked once at cold start. A missing or malformed
//! setting is an init error with a clear message, never a panic in a handler.

use crate::adapters::rate_limit::Quotas;
use crate::domain::organization::DiscoveryInput;
use std::env;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// The CCKM identity strings every object carries (spec 1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenancy {
    pub account: String,
    pub application: String,
    pub dev_account: String,
}

impl Default for Tenancy {
    fn default() -> Self {
        Tenancy {
            account: "kylo:kylo:admin:accounts:kylo".into(),
            application: "ncryptify:gemalto:admin:apps:kylo".into(),
            dev_account: "ncryptify:gemalto:admin:accounts:gemalto".into(),
        }
    }
}

/// How tokens are checked (spec 7). Secrets stay out of `Debug`.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// The Cognito user pool behind `POST /v1/auth/tokens`, whose access tokens the API accepts.
    pub cognito: Option<CognitoConfig>,
    pub hs256_secret: Option<String>,
    /// The JWKS JSON text for RS256/ES256 tokens.
    pub jwks: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

impl AuthConfig {
    /// False when neither a secret nor a JWKS is set: then only API Gateway authorizer claims get in.
    pub fn verifies_tokens(&self) -> bool {
        self.hs256_secret.is_some() || self.jwks.is_some() || self.cognito.is_some()
    }
}

/// Where job configurations' schedules point: this function, through a role EventBridge Scheduler assumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    pub target_arn: String,
    pub role_arn: String,
    /// Schedules are named `<prefix>-job-<id>`.
    pub prefix: String,
}

/// A Cognito user pool and its app client: users sign in with their password, and the pool's groups make
/// their role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CognitoConfig {
    pub user_pool_id: String,
    pub client_id: String,
    /// Members may do everything.
    pub admin_group: String,
    /// Members may only read.
    pub read_only_group: String,
}

impl CognitoConfig {
    /// The pool's region: its id is `<region>_<suffix>`.
    pub fn region(&self) -> &str {
        self.user_pool_id
            .split_once('_')
            .map_or("us-east-1", |(region, _)| region)
    }

    /// The `iss` of the pool's tokens.
    pub fn issuer(&self) -> String {
        format!(
            "https://cognito-idp.{}.amazonaws.com/{}",
            self.region(),
            self.user_pool_id
        )
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("cognito", &self.cognito)
            .field("jwks", &self.jwks.as_ref().map(|_| "<set>"))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// Tunables of the sync engine.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncSettings {
    /// Keys read at once per unit.
    pub key_concurrency: usize,
    /// How long a job keeps its (account, region) leases without progress before another job may start.
    pub lease: Duration,
    /// How long a delivery's claim on its unit lasts without a page done: a second copy of the message
    /// waits that long before it may take over from a delivery that died. Below the queue's visibility
    /// timeout (960 s), so that a message that comes back finds the claim lapsed.
    pub claim: Duration,
    /// A unit stops at a page boundary and hands its marker on when less than this is left of the invocation.
    pub deadline_margin: Duration,
    /// After this many deliveries a unit that keeps failing for a passing reason is failed for good.
    pub max_attempts: u32,
    /// The share of each KMS request quota a sync may use (0 < share <= 1).
    pub rate_share: f64,
    /// Today's KMS request quotas, or the older, lower ones.
    pub quotas: Quotas,
    /// How long an ended job stays in the history before DynamoDB's TTL removes it.
    pub job_retention: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            key_concurrency: 8,
            // Long enough for a unit to wait its turn in a backlogged queue; renewed at every page.
            lease: Duration::from_secs(2 * 60 * 60),
            claim: Duration::from_secs(300),
            deadline_margin: Duration::from_secs(90),
            max_attempts: 4,
            rate_share: 0.5,
            quotas: Quotas::Current,
            job_retention: Duration::from_secs(90 * 86_400),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// AWS Organizations discovery before each scheduled sync, when `ORG_MANAGEMENT_ROLE_ARN` is set.
    pub discovery: DiscoveryInput,
    pub kms_table: String,
    /// Where AWS connections' static keys are kept: Secrets Manager names `<prefix>/connections/<id>`.
    pub secrets_prefix: String,
    /// The schedules of scheduler job configurations; None when not configured.
    pub scheduler: Option<SchedulerConfig>,
    pub jobs_table: String,
    pub keys_table: String,
    pub work_queue_url: String,
    pub tenancy: Tenancy,
    pub auth: AuthConfig,
    pub sync: SyncSettings,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|name| env::var(name).ok())
    }

    /// Reads from any lookup, so tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let required = |name: &'static str| {
            get(name)
                .filter(|v| !v.is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        let optional = |name: &str| get(name).filter(|v| !v.is_empty());
        let defaults = Tenancy::default();
        let cognito = match (
            optional("COGNITO_USER_POOL_ID"),
            optional("COGNITO_CLIENT_ID"),
        ) {
            (Some(user_pool_id), Some(client_id)) => {
                if !user_pool_id.contains('_') {
                    return Err(ConfigError::Invalid {
                        name: "COGNITO_USER_POOL_ID",
                        reason: "a user pool id, <region>_<id>".into(),
                    });
                }
                Some(CognitoConfig {
                    user_pool_id,
                    client_id,
                    admin_group: optional("COGNITO_ADMIN_GROUP")
                        .unwrap_or_else(|| "cckm-admins".into()),
                    read_only_group: optional("COGNITO_READ_ONLY_GROUP")
                        .unwrap_or_else(|| "cckm-readers".into()),
                })
            }
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError::Missing("COGNITO_CLIENT_ID")),
            (None, Some(_)) => return Err(ConfigError::Missing("COGNITO_USER_POOL_ID")),
        };
        let auth = AuthConfig {
            cognito,
            hs256_secret: optional("JWT_HS256_SECRET"),
            jwks: optional("JWT_JWKS"),
            issuer: optional("JWT_ISSUER"),
            audience: optional("JWT_AUDIENCE"),
        };
        let mut sync = SyncSettings::default();
        if let Some(text) = optional("KMS_RATE_SHARE") {
            sync.rate_share = text
                .parse::<f64>()
                .ok()
                .filter(|share| *share > 0.0 && *share <= 1.0)
                .ok_or_else(|| ConfigError::Invalid {
                    name: "KMS_RATE_SHARE",
                    reason: "a number in (0, 1]".into(),
                })?;
        }
        if let Some(text) = optional("KMS_QUOTAS") {
            sync.quotas = match text.as_str() {
                "current" => Quotas::Current,
                "legacy" => Quotas::Legacy,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "KMS_QUOTAS",
                        reason: "current or legacy".into(),
                    });
                }
            };
        }
        // A setting that is a whole number within bounds.
        let whole = |name: &'static str, low: u64, high: u64| {
            optional(name)
                .map(|text| {
                    text.parse::<u64>()
                        .ok()
                        .filter(|n| (low..=high).contains(n))
                        .ok_or_else(|| ConfigError::Invalid {
                            name,
                            reason: format!("a whole number from {low} to {high}"),
                        })
                })
                .transpose()
        };
        if let Some(seconds) = whole("SYNC_LEASE_SECONDS", 1, 86_400)? {
            sync.lease = Duration::from_secs(seconds);
        }
        if let Some(seconds) = whole("SYNC_CLAIM_SECONDS", 5, 840)? {
            sync.claim = Duration::from_secs(seconds);
        }
        if let Some(days) = whole("JOB_RETENTION_DAYS", 1, 3650)? {
            sync.job_retention = Duration::from_secs(days * 86_400);
        }
        if let Some(keys) = whole("SYNC_KEY_CONCURRENCY", 1, 64)? {
            sync.key_concurrency = keys as usize;
        }
        let list = |name: &str| {
            optional(name).map(|text| {
                text.split(',')
                    .map(|item| item.trim().to_string())
                    .filter(|item| !item.is_empty())
                    .collect::<Vec<_>>()
            })
        };
        let discovery = DiscoveryInput {
            management_role_arn: optional("ORG_MANAGEMENT_ROLE_ARN"),
            member_role_name: optional("ORG_MEMBER_ROLE_NAME"),
            member_external_id: optional("ORG_MEMBER_EXTERNAL_ID"),
            organizational_units: list("ORG_UNITS"),
            regions: list("ORG_REGIONS"),
        };
        if discovery.is_configured() {
            discovery
                .clone()
                .settings()
                .map_err(|err| ConfigError::Invalid {
                    name: "ORG_*",
                    reason: err.to_string(),
                })?;
        }
        Ok(Config {
            discovery,
            kms_table: required("KMS_TABLE")?,
            secrets_prefix: optional("SECRETS_PREFIX").unwrap_or_else(|| "cckm-aws-sync".into()),
            scheduler: match (
                optional("SCHEDULER_TARGET_ARN"),
                optional("SCHEDULER_ROLE_ARN"),
            ) {
                (Some(target_arn), Some(role_arn)) => Some(SchedulerConfig {
                    target_arn,
                    role_arn,
                    prefix: optional("SCHEDULE_PREFIX").unwrap_or_else(|| "cckm".into()),
                }),
                (None, None) => None,
                (Some(_), None) => return Err(ConfigError::Missing("SCHEDULER_ROLE_ARN")),
                (None, Some(_)) => return Err(ConfigError::Missing("SCHEDULER_TARGET_ARN")),
            },
            jobs_table: required("JOBS_TABLE")?,
            keys_table: required("KEYS_TABLE")?,
            work_queue_url: required("WORK_QUEUE_URL")?,
            tenancy: Tenancy {
                account: optional("CCKM_ACCOUNT").unwrap_or(defaults.account),
                application: optional("CCKM_APPLICATION").unwrap_or(defaults.application),
                dev_account: optional("CCKM_DEV_ACCOUNT").unwrap_or(defaults.dev_account),
            },
            auth,
            sync,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const BASE: [(&str, &str); 5] = [
        ("KMS_TABLE", "k"),
        ("JOBS_TABLE", "j"),
        ("KEYS_TABLE", "y"),
        ("WORK_QUEUE_URL", "http://q"),
        ("JWT_HS256_SECRET", "s"),
    ];

    #[test]
    fn reads_tables_and_cckm_defaults() {
        let config = Config::from_lookup(lookup(&BASE)).unwrap();
        assert_eq!(config.jobs_table, "j");
        assert_eq!(config.tenancy, Tenancy::default());
        assert!(!format!("{:?}", config.auth).contains("\"s\""));
    }

    #[test]
    fn a_missing_table_is_a_clear_init_error_and_auth_settings_are_optional() {
        assert_eq!(
            Config::from_lookup(lookup(&BASE[1..])).unwrap_err(),
            ConfigError::Missing("KMS_TABLE")
        );
        // The worker needs no token settings; without them the API refuses every bearer token.
        let no_auth = Config::from_lookup(lookup(&BASE[..4])).unwrap();
        assert!(!no_auth.auth.verifies_tokens());
        let mut bad = BASE.to_vec();
        bad.push(("KMS_RATE_SHARE", "2"));
        assert!(matches!(
            Config::from_lookup(lookup(&bad)),
            Err(ConfigError::Invalid {
                name: "KMS_RATE_SHARE",
                ..
            })
        ));
    }
}
