//! The key writer on AWS KMS: one SDK call per change a CCKM client asks for. AWS's refusal comes back as the API's error: a bad value as 400, a key or alias it does not
//! know as 404, a state it refuses (pending deletion, disabled, an alias taken) as 409.

use crate::domain::AppError;
use crate::domain::key::Tag;
use crate::domain::key_change::{KeyChange, NewKey};
use crate::ports::KeyWriter;
use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::types::{KeySpec, KeyUsageType, OriginType};

pub struct AwsKeyWriter {
    client: Client,
}

impl AwsKeyWriter {
    pub fn new(client: Client) -> Self {
        AwsKeyWriter { client }
    }

    /// Whether `alias` names `key_id` (ListAliases of the key, every page).
    async fn names_key(&self, key_id: &str, alias: &str) -> Result<bool, AppError> {
        let mut pages = self
            .client
            .list_aliases()
            .key_id(key_id)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| refusal("ListAliases", &err))?;
            if page.aliases().iter().any(|a| a.alias_name() == Some(alias)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// AWS's answer to a write, as the API's error. The text is `<operation>: <code>: <AWS's message>`.
fn refusal<E, R>(operation: &str, err: &SdkError<E, R>) -> AppError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let text = super::aws_error::reason(operation, err);
    let Some(service) = err.as_service_error() else {
        return AppError::Internal(text);
    };
    match service.code() {
        Some("NotFoundException") => AppError::NotFound(text),
        Some(
            "ValidationException"
            | "MalformedPolicyDocumentException"
            | "InvalidAliasNameException"
            | "InvalidArnException"
            | "TagException"
            | "UnsupportedOperationException",
        ) => AppError::InvalidParam(text),
        Some(
            "ThrottlingException"
            | "KMSInternalException"
            | "DependencyTimeoutException"
            | "InternalFailure"
            | "ServiceUnavailableException",
        )
        | None => AppError::Internal(text),
        // Already exists, invalid state, disabled, limit exceeded, access denied: AWS's state says no.
        Some(_) => AppError::Conflict(text),
    }
}

/// A change's answer: nothing to read, or AWS's refusal.
fn done<T, E, R>(operation: &str, result: Result<T, SdkError<E, R>>) -> Result<(), AppError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    result.map(drop).map_err(|err| refusal(operation, &err))
}

fn aws_tags(tags: &[Tag]) -> Result<Vec<aws_sdk_kms::types::Tag>, AppError> {
    tags.iter()
        .map(|tag| {
            aws_sdk_kms::types::Tag::builder()
                .tag_key(&tag.key)
                .tag_value(&tag.value)
                .build()
                .map_err(|err| AppError::InvalidParam(format!("tags: {err}")))
        })
        .collect()
}

#[async_trait]
impl KeyWriter for AwsKeyWriter {
    async fn create_key(&self, key: &NewKey) -> Result<String, AppError> {
        let created = self
            .client
            .create_key()
            .key_spec(KeySpec::from(key.spec.as_str()))
            .set_key_usage(key.usage.as_deref().map(KeyUsageType::from))
            .origin(OriginType::from(key.origin.as_str()))
            .set_description(key.description.clone())
            .multi_region(key.multi_region)
            .set_policy(key.policy.clone())
            .bypass_policy_lockout_safety_check(key.bypass_policy_lockout_safety_check)
            .set_tags(Some(aws_tags(&key.tags)?).filter(|t| !t.is_empty()))
            .send()
            .await
            .map_err(|err| refusal("CreateKey", &err))?;
        let key_id = created
            .key_metadata()
            .map(|m| m.key_id().to_string())
            .ok_or_else(|| AppError::Internal("CreateKey answered no key id".into()))?;
        Ok(key_id)
    }

    async fn change_key(&self, key_id: &str, change: &KeyChange) -> Result<(), AppError> {
        let client = &self.client;
        match change {
            KeyChange::AddAlias(alias) => done(
                "CreateAlias",
                client
                    .create_alias()
                    .alias_name(alias)
                    .target_key_id(key_id)
                    .send()
                    .await,
            ),
            KeyChange::DeleteAlias(alias) => {
                // DeleteAlias takes no key: an alias of another key must not go through this one.
                if !self.names_key(key_id, alias).await? {
                    return Err(AppError::NotFound(format!(
                        "alias '{alias}' does not name key {key_id}"
                    )));
                }
                done(
                    "DeleteAlias",
                    client.delete_alias().alias_name(alias).send().await,
                )
            }
            KeyChange::UpdateDescription(description) => done(
                "UpdateKeyDescription",
                client
                    .update_key_description()
                    .key_id(key_id)
                    .description(description)
                    .send()
                    .await,
            ),
            KeyChange::AddTags(tags) => done(
                "TagResource",
                client
                    .tag_resource()
                    .key_id(key_id)
                    .set_tags(Some(aws_tags(tags)?))
                    .send()
                    .await,
            ),
            KeyChange::RemoveTags(keys) => done(
                "UntagResource",
                client
                    .untag_resource()
                    .key_id(key_id)
                    .set_tag_keys(Some(keys.clone()))
                    .send()
                    .await,
            ),
            KeyChange::PutPolicy {
                policy,
                bypass_policy_lockout_safety_check,
            } => done(
                "PutKeyPolicy",
                client
                    .put_key_policy()
                    .key_id(key_id)
                    .policy_name("default")
                    .policy(policy)
                    .bypass_policy_lockout_safety_check(*bypass_policy_lockout_safety_check)
                    .send()
                    .await,
            ),
            KeyChange::Enable => done("EnableKey", client.enable_key().key_id(key_id).send().await),
            KeyChange::Disable => done(
                "DisableKey",
                client.disable_key().key_id(key_id).send().await,
            ),
            KeyChange::EnableAutoRotation { period_in_days } => done(
                "EnableKeyRotation",
                client
                    .enable_key_rotation()
                    .key_id(key_id)
                    .set_rotation_period_in_days(*period_in_days)
                    .send()
                    .await,
            ),
            KeyChange::DisableAutoRotation => done(
                "DisableKeyRotation",
                client.disable_key_rotation().key_id(key_id).send().await,
            ),
            KeyChange::ScheduleDeletion { days } => done(
                "ScheduleKeyDeletion",
                client
                    .schedule_key_deletion()
                    .key_id(key_id)
                    .pending_window_in_days(*days)
                    .send()
                    .await,
            ),
            KeyChange::CancelDeletion => done(
                "CancelKeyDeletion",
                client.cancel_key_deletion().key_id(key_id).send().await,
            ),
            KeyChange::RotateMaterial => done(
                "RotateKeyOnDemand",
                client.rotate_key_on_demand().key_id(key_id).send().await,
            ),
            KeyChange::DeleteMaterial { key_material_id } => done(
                "DeleteImportedKeyMaterial",
                client
                    .delete_imported_key_material()
                    .key_id(key_id)
                    .set_key_material_id(key_material_id.clone())
                    .send()
                    .await,
            ),
            KeyChange::Replicate(replica) => done(
                "ReplicateKey",
                client
                    .replicate_key()
                    .key_id(key_id)
                    .replica_region(&replica.region)
                    .set_description(replica.description.clone())
                    .set_policy(replica.policy.clone())
                    .bypass_policy_lockout_safety_check(replica.bypass_policy_lockout_safety_check)
                    .set_tags(Some(aws_tags(&replica.tags)?).filter(|t| !t.is_empty()))
                    .send()
                    .await,
            ),
            KeyChange::UpdatePrimaryRegion(region) => done(
                "UpdatePrimaryRegion",
                client
                    .update_primary_region()
                    .key_id(key_id)
                    .primary_region(region)
                    .send()
                    .await,
            ),
        }
    }

    async fn public_key(&self, key_id: &str) -> Result<String, AppError> {
        let answer = self
            .client
            .get_public_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|err| refusal("GetPublicKey", &err))?;
        let der = answer
            .public_key()
            .ok_or_else(|| AppError::Internal("GetPublicKey answered no key".into()))?;
        Ok(pem(der.as_ref()))
    }
}

/// A DER SubjectPublicKeyInfo as PEM, 64 characters a line.
fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}
