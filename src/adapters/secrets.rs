//! AWS Secrets Manager keeps the static keys of AWS connections, one secret per connection named
//! `<prefix>/connections/<connection id>`, as JSON `{"access_key_id", "secret_access_key"}`. Keys read are
//! cached for a few minutes per secret, so a sync does not read the secret for every unit. No key is ever
//! logged: errors name the secret, never its value.

use super::aws_error::reason;
use crate::domain::AppError;
use crate::domain::connection::StaticKeys;
use crate::ports::SecretStore;
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long keys read from a secret are reused: a rotated key reaches the syncs within this.
const CACHE_FOR: Duration = Duration::from_secs(300);

#[derive(Serialize, Deserialize)]
struct SecretValue {
    access_key_id: String,
    secret_access_key: String,
}

pub struct SecretsManagerStore {
    client: Client,
    prefix: String,
    cache: Mutex<HashMap<String, (StaticKeys, Instant)>>,
}

impl SecretsManagerStore {
    pub fn new(client: Client, prefix: &str) -> Self {
        SecretsManagerStore {
            client,
            prefix: prefix.trim_end_matches('/').to_string(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (StaticKeys, Instant)>> {
        // A poisoned lock only means a panic elsewhere mid-insert; the map is still usable.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn value_of(keys: &StaticKeys) -> Result<String, AppError> {
    serde_json::to_string(&SecretValue {
        access_key_id: keys.access_key_id.clone(),
        secret_access_key: keys.secret_access_key.clone(),
    })
    .map_err(|e| AppError::internal("encoding a secret", e))
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn create(&self, owner: Uuid, keys: &StaticKeys) -> Result<String, AppError> {
        let name = format!("{}/connections/{owner}", self.prefix);
        let output = self
            .client
            .create_secret()
            .name(&name)
            .description("Static keys of a cckm-aws-sync AWS connection")
            .secret_string(value_of(keys)?)
            .send()
            .await
            .map_err(|e| {
                AppError::Internal(reason(&format!("secretsmanager CreateSecret {name}"), &e))
            })?;
        Ok(output.arn.unwrap_or(name))
    }

    async fn replace(&self, secret_id: &str, keys: &StaticKeys) -> Result<(), AppError> {
        self.client
            .put_secret_value()
            .secret_id(secret_id)
            .secret_string(value_of(keys)?)
            .send()
            .await
            .map_err(|e| {
                AppError::Internal(reason(
                    &format!("secretsmanager PutSecretValue {secret_id}"),
                    &e,
                ))
            })?;
        self.cache().remove(secret_id);
        Ok(())
    }

    async fn read(&self, secret_id: &str) -> Result<StaticKeys, AppError> {
        if let Some((keys, at)) = self.cache().get(secret_id)
            && at.elapsed() < CACHE_FOR
        {
            return Ok(keys.clone());
        }
        let output = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| {
                AppError::Internal(reason(
                    &format!("secretsmanager GetSecretValue {secret_id}"),
                    &e,
                ))
            })?;
        let value: SecretValue = output
            .secret_string()
            .and_then(|text| serde_json::from_str(text).ok())
            .ok_or_else(|| {
                AppError::Internal(format!("secret {secret_id} holds no access keys"))
            })?;
        // A secret edited by hand could hold keys no request can be signed with (the signer would panic).
        let keys =
            StaticKeys::new(value.access_key_id, value.secret_access_key).map_err(|err| {
                AppError::Conflict(format!(
                    "secret {secret_id} holds unusable access keys: {err}"
                ))
            })?;
        self.cache()
            .insert(secret_id.to_string(), (keys.clone(), Instant::now()));
        Ok(keys)
    }

    async fn delete(&self, secret_id: &str) -> Result<(), AppError> {
        self.client
            .delete_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| {
                AppError::Internal(reason(
                    &format!("secretsmanager DeleteSecret {secret_id}"),
                    &e,
                ))
            })?;
        self.cache().remove(secret_id);
        Ok(())
    }
}
