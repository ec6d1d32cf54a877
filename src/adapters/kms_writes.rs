//! The key writer on AWS KMS: one SDK call per change a CCKM client asks for (two for a key created with
//! an alias). AWS's refusal comes back as the API's error: a bad value as 400, a key or alias it does not
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
        if let Some(alias) = &key.alias {
            // The key exists whatever the alias does: a refused alias says so, naming the key.
            self.client
                .create_alias()
                .alias_name(alias)
                .target_key_id(&key_id)
                .send()
                .await
                .map_err(|err| match refusal("CreateAlias", &err) {
                    AppError::Conflict(text) => AppError::Conflict(format!(
                        "key {key_id} was created without its alias: {text}"
                    )),
                    AppError::InvalidParam(text) => AppError::InvalidParam(format!(
                        "key {key_id} was created without its alias: {text}"
                    )),
                    other => other,
                })?;
        }
        Ok(key_id)
    }

    async fn change_key(&self, key_id: &str, change: &KeyChange) -> Result<(), AppError> {
        let client = &self.client;
        match change {
            KeyChange::AddAlias(alias) => client
                .create_alias()
                .alias_name(alias)
                .target_key_id(key_id)
                .send()
                .await
                .map(drop)
                .map_err(|err| refusal("CreateAlias", &err)),
            KeyChange::DeleteAlias(alias) => {
                // DeleteAlias takes no key: an alias of another key must not go through this one.
                if !self.names_key(key_id, alias).await? {
                    return Err(AppError::NotFound(format!(
                        "alias '{alias}' does not name key {key_id}"
                    )));
                }
                client
                    .delete_alias()
                    .alias_name(alias)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|err| refusal("DeleteAlias", &err))
            }
            KeyChange::UpdateDescription(description) => client
                .update_key_description()
                .key_id(key_id)
                .description(description)
                .send()
                .await
                .map(drop)
                .map_err(|err| refusal("UpdateKeyDescription", &err)),
            KeyChange::AddTags(tags) => client
                .tag_resource()
                .key_id(key_id)
                .set_tags(Some(aws_tags(tags)?))
                .send()
                .await
                .map(drop)
                .map_err(|err| refusal("TagResource", &err)),
            KeyChange::RemoveTags(keys) => client
                .untag_resource()
                .key_id(key_id)
                .set_tag_keys(Some(keys.clone()))
                .send()
                .await
                .map(drop)
                .map_err(|err| refusal("UntagResource", &err)),
            KeyChange::PutPolicy {
                policy,
                bypass_policy_lockout_safety_check,
            } => client
                .put_key_policy()
                .key_id(key_id)
                .policy_name("default")
                .policy(policy)
                .bypass_policy_lockout_safety_check(*bypass_policy_lockout_safety_check)
                .send()
                .await
                .map(drop)
                .map_err(|err| refusal("PutKeyPolicy", &err)),
            KeyChange::Enable => client
                .enable_key()
                .key_id(key_id)
                .send()
                .await
                .map(drop)
                .map_err(|err| refusal("EnableKey", &err)),
            KeyChange::Disable => client
                .disable_key()
                .key_id(key_id)
                .send()
                .await
                .map(drop)
                .map_err(|err| refusal("DisableKey", &err)),
            KeyChange::EnableAutoRotation { period_in_days } => client
                .enable_key_rotation()
                .key_id(key_id)
                .set_rotation_period_in_days(*period_in_days)
                .send()
                .await
                .map(drop)
                .map_err(|err| refusal("EnableKeyRotation", &err)),
            KeyChange::DisableAutoRotation => client
                .disable_key_rotation()
                .key_id(key_id)
                .send()
                .await
                .map(drop)
                .map_err(|err| refusal("DisableKeyRotation", &err)),
            KeyChange::ScheduleDeletion { days } => client
                .schedule_key_deletion()
                .key_id(key_id)
                .pending_window_in_days(*days)
                .send()
                .await
                .map(drop)
                .map_err(|err| refusal("ScheduleKeyDeletion", &err)),
            KeyChange::CancelDeletion => client
                .cancel_key_deletion()
                .key_id(key_id)
                .send()
                .await
                .map(drop)
                .map_err(|err| refusal("CancelKeyDeletion", &err)),
            KeyChange::RotateMaterial => client
                .rotate_key_on_demand()
                .key_id(key_id)
                .send()
                .await
                .map(drop)
                .map_err(|err| refusal("RotateKeyOnDemand", &err)),
            KeyChange::DeleteMaterial => client
                .delete_imported_key_material()
                .key_id(key_id)
                .send()
                .await
                .map(drop)
                .map_err(|err| refusal("DeleteImportedKeyMaterial", &err)),
            KeyChange::Replicate(replica) => client
                .replicate_key()
                .key_id(key_id)
                .replica_region(&replica.region)
                .set_description(replica.description.clone())
                .set_policy(replica.policy.clone())
                .bypass_policy_lockout_safety_check(replica.bypass_policy_lockout_safety_check)
                .set_tags(Some(aws_tags(&replica.tags)?).filter(|t| !t.is_empty()))
                .send()
                .await
                .map(drop)
                .map_err(|err| refusal("ReplicateKey", &err)),
            KeyChange::UpdatePrimaryRegion(region) => client
                .update_primary_region()
                .key_id(key_id)
                .primary_region(region)
                .send()
                .await
                .map(drop)
                .map_err(|err| refusal("UpdatePrimaryRegion", &err)),
        }
    }
}
