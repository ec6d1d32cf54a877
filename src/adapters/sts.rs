//! STS: the function's own account (GetCallerIdentity) and role credentials (AssumeRole), cached until
//! shortly before they expire. Built from the shared `SdkConfig`, so `AWS_ENDPOINT_URL` reaches it too.

use super::aws_error::reason;
use crate::domain::AppError;
use crate::domain::connection::StaticKeys;
use crate::ports::{CallerIdentity, SourceError};
use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sdk_sts::Client;
use aws_sdk_sts::error::ProvideErrorMetadata;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// Credentials are renewed this long before they expire: longer than one invocation (15 minutes), so
/// credentials handed out at its start outlive it.
const RENEW_BEFORE: Duration = Duration::from_secs(16 * 60);
const SESSION_NAME: &str = "cckm-aws-sync";

pub struct StsCallerIdentity {
    client: Client,
    roles: Arc<RoleCredentials>,
}

impl StsCallerIdentity {
    pub fn new(client: Client, roles: Arc<RoleCredentials>) -> Self {
        StsCallerIdentity { client, roles }
    }
}

#[async_trait]
impl CallerIdentity for StsCallerIdentity {
    async fn account_id(&self) -> Result<String, AppError> {
        let output = self
            .client
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| AppError::Internal(reason("sts GetCallerIdentity", &e)))?;
        output
            .account
            .ok_or_else(|| AppError::Internal("sts get-caller-identity named no account".into()))
    }

    async fn account_of(
        &self,
        keys: Option<&StaticKeys>,
        role: Option<(&str, Option<&str>)>,
    ) -> Result<String, String> {
        let base = keys.map(|keys| {
            Credentials::new(
                &keys.access_key_id,
                &keys.secret_access_key,
                None,
                None,
                "cckm-connection-test",
            )
        });
        let credentials = match role {
            Some((arn, external_id)) => Some(
                self.roles
                    .assume_now(base.as_ref(), arn, external_id)
                    .await
                    .map_err(|err| match err {
                        SourceError::Refused(text) | SourceError::Transient(text) => text,
                    })?,
            ),
            None => base,
        };
        let client = match credentials {
            Some(credentials) => Client::from_conf(
                self.client
                    .config()
                    .to_builder()
                    .credentials_provider(credentials)
                    .build(),
            ),
            None => self.client.clone(),
        };
        let output = client
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| reason("GetCallerIdentity", &e))?;
        output
            .account
            .ok_or_else(|| "GetCallerIdentity named no account".to_string())
    }
}

/// (role, external id, the access key id of the credentials it was assumed from; None: the function's).
type RoleKey = (String, Option<String>, Option<String>);

fn lock(
    cache: &Mutex<HashMap<RoleKey, Credentials>>,
) -> MutexGuard<'_, HashMap<RoleKey, Credentials>> {
    // A poisoned lock only means a panic elsewhere mid-insert; the map is still usable.
    cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// AssumeRole, from the function's own credentials or from an AWS connection's static keys, with a cache
/// keyed by (role, external id, the keys it started from). The lock is never held across a call to STS.
pub struct RoleCredentials {
    client: Client,
    cache: Mutex<HashMap<RoleKey, Credentials>>,
}

impl RoleCredentials {
    pub fn new(client: Client) -> Self {
        RoleCredentials {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Drops the cached credentials of a role, whatever they were assumed from, so that the next `assume`
    /// asks STS again.
    pub fn forget(&self, role_arn: &str, external_id: Option<&str>) {
        lock(&self.cache).retain(|(role, external, _), _| {
            role != role_arn || external.as_deref() != external_id
        });
    }

    /// The role, assumed with the function's own credentials.
    pub async fn assume(
        &self,
        role_arn: &str,
        external_id: Option<&str>,
    ) -> Result<Credentials, SourceError> {
        self.assume_from(None, role_arn, external_id).await
    }

    /// The role, assumed with `base` (an AWS connection's static keys) or the function's own credentials.
    pub async fn assume_from(
        &self,
        base: Option<&Credentials>,
        role_arn: &str,
        external_id: Option<&str>,
    ) -> Result<Credentials, SourceError> {
        let key = (
            role_arn.to_string(),
            external_id.map(String::from),
            base.map(|b| b.access_key_id().to_string()),
        );
        if let Some(credentials) = lock(&self.cache).get(&key) {
            let fresh = credentials
                .expiry()
                .is_none_or(|expiry| expiry > SystemTime::now() + RENEW_BEFORE);
            if fresh {
                return Ok(credentials.clone());
            }
        }
        let credentials = self.assume_now(base, role_arn, external_id).await?;
        lock(&self.cache).insert(key, credentials.clone());
        Ok(credentials)
    }

    /// The role, assumed from STS now, whatever the cache holds: a connection test must prove the
    /// credentials it was given (the cache knows keys only by their id, not by their secret).
    pub async fn assume_now(
        &self,
        base: Option<&Credentials>,
        role_arn: &str,
        external_id: Option<&str>,
    ) -> Result<Credentials, SourceError> {
        let client = match base {
            Some(base) => Client::from_conf(
                self.client
                    .config()
                    .to_builder()
                    .credentials_provider(base.clone())
                    .build(),
            ),
            None => self.client.clone(),
        };
        let output = client
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(SESSION_NAME)
            .set_external_id(external_id.map(String::from))
            .send()
            .await
            .map_err(|err| {
                let text = reason(&format!("AssumeRole {role_arn}"), &err);
                let code = err.as_service_error().and_then(|e| e.code());
                match code {
                    // Throttled, or STS failed on its side: worth another try.
                    None
                    | Some(
                        "Throttling"
                        | "ThrottlingException"
                        | "RequestLimitExceeded"
                        | "InternalFailure"
                        | "ServiceUnavailable"
                        | "IDPCommunicationError",
                    ) => SourceError::Transient(text),
                    // Denied, malformed, region disabled: no retry will make STS change its mind.
                    Some(_) => SourceError::Refused(text),
                }
            })?;
        let issued = output.credentials.ok_or_else(|| {
            SourceError::Refused(format!("assume role {role_arn}: no credentials returned"))
        })?;
        let expiry = SystemTime::try_from(issued.expiration).ok();
        Ok(Credentials::new(
            issued.access_key_id,
            issued.secret_access_key,
            Some(issued.session_token),
            expiry,
            "cckm-assume-role",
        ))
    }
}
