//! A synced key as the keys table stores it: its own attribute names, declared here and nowhere else, so
//! that the API body (the domain's serde names, `api::views`), the table schema (this item) and the index
//! attributes (`IndexAttributes`) change only on purpose, each in its place. The names are today's, so the
//! items already stored read back unchanged.

use crate::domain::AppError;
use crate::domain::key::{AwsParam, KeyRecord, Tag};
use crate::domain::time::{Timestamp, format, rfc3339};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Partitions each global index is spread over, so that a first sync writing thousands of keys a second
/// does not meet one index partition's write limit; a list reads them all, merged.
pub const SHARDS: u8 = 8;

/// The version of the item's layout: raised whenever an index attribute is added, so that the next sync
/// rewrites the items stored before (the `by_keyid` index came with layout 1).
pub const LAYOUT: u32 = 1;

/// The stored record of one key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyItem {
    id: Uuid,
    #[serde(rename = "createdAt", with = "rfc3339")]
    created_at: Timestamp,
    #[serde(rename = "updatedAt", with = "rfc3339")]
    updated_at: Timestamp,
    kms_id: Uuid,
    kms: String,
    region: String,
    cloud_name: String,
    #[serde(with = "rfc3339")]
    synced_at: Timestamp,
    gone: bool,
    key_type: Option<String>,
    key_material_origin: String,
    labels: BTreeMap<String, String>,
    aws_param: StoredAwsParam,
    sync_errors: BTreeMap<String, String>,
    arn: String,
    last_seen_job: Option<Uuid>,
    #[serde(default)]
    content_hash: Option<String>,
    #[serde(default)]
    layout: u32,
    #[serde(flatten)]
    index: IndexAttributes,
}

/// The attributes the keys table's indexes are keyed on, all derived from the record (and written again
/// with it, so a record stored before one of them existed reads back with it empty).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IndexAttributes {
    /// `by_unit`: `"<account>/<region>"`.
    pub unit: String,
    /// The sort key of every index: creation time, then id (so that equal times keep one order).
    pub created: String,
    /// `by_created`: `all#<shard>`.
    pub all_shard: String,
    /// `by_state`: `<KeyState>#<shard>` (`unknown` when AWS did not say).
    pub state_shard: String,
    /// `by_gone`: `true#<shard>` or `false#<shard>`.
    pub gone_shard: String,
    /// `by_region`: `<region>#<shard>`.
    pub region_shard: String,
    /// `by_keyid`: the AWS key id (unsharded: one key, or the replicas of one multi-Region key).
    pub keyid: String,
}

/// Which shard of the global indexes a key lives in.
pub fn shard_of(id: Uuid) -> u8 {
    id.as_bytes()[15] % SHARDS
}

pub fn created_key(created_at: &Timestamp, id: Uuid) -> String {
    format!("{}#{id}", format(created_at))
}

impl IndexAttributes {
    pub fn of(record: &KeyRecord) -> IndexAttributes {
        let shard = shard_of(record.id);
        let state = record.indexed_state();
        IndexAttributes {
            unit: record.unit.clone(),
            created: created_key(&record.created_at, record.id),
            all_shard: format!("all#{shard}"),
            state_shard: format!("{state}#{shard}"),
            gone_shard: format!("{}#{shard}", record.gone),
            region_shard: format!("{}#{shard}", record.region),
            keyid: record.aws_param.key_id.clone(),
        }
    }
}

impl From<&KeyRecord> for KeyItem {
    fn from(record: &KeyRecord) -> KeyItem {
        KeyItem {
            id: record.id,
            created_at: record.created_at,
            updated_at: record.updated_at,
            kms_id: record.kms_id,
            kms: record.kms.clone(),
            region: record.region.clone(),
            cloud_name: record.cloud_name.clone(),
            synced_at: record.synced_at,
            gone: record.gone,
            key_type: record.key_type.clone(),
            key_material_origin: record.key_material_origin.clone(),
            labels: record.labels.clone(),
            aws_param: StoredAwsParam::from(&record.aws_param),
            sync_errors: record.sync_errors.clone(),
            arn: record.arn.clone(),
            last_seen_job: record.last_seen_job,
            content_hash: record.content_hash.clone(),
            layout: LAYOUT,
            index: IndexAttributes::of(record),
        }
    }
}

impl From<KeyItem> for KeyRecord {
    fn from(item: KeyItem) -> KeyRecord {
        KeyRecord {
            id: item.id,
            created_at: item.created_at,
            updated_at: item.updated_at,
            kms_id: item.kms_id,
            kms: item.kms,
            region: item.region,
            cloud_name: item.cloud_name,
            synced_at: item.synced_at,
            gone: item.gone,
            key_type: item.key_type,
            key_material_origin: item.key_material_origin,
            labels: item.labels,
            aws_param: item.aws_param.into(),
            sync_errors: item.sync_errors,
            unit: item.index.unit,
            arn: item.arn,
            last_seen_job: item.last_seen_job,
            content_hash: item.content_hash,
        }
    }
}

/// The item of a record, ready for DynamoDB.
pub fn to_key_item(record: &KeyRecord) -> Result<super::Item, AppError> {
    super::to_item(&KeyItem::from(record))
}

/// The record of a stored item.
pub fn from_key_item(item: super::Item) -> Result<KeyRecord, AppError> {
    super::from_item::<KeyItem>(item).map(KeyRecord::from)
}

/// The key's metadata as AWS told it, under the stored names.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredAwsParam {
    #[serde(rename = "AWSAccountId")]
    aws_account_id: String,
    #[serde(rename = "KeyID")]
    key_id: String,
    #[serde(rename = "Arn")]
    arn: String,
    #[serde(rename = "Alias")]
    alias: Vec<String>,
    #[serde(rename = "CreationDate")]
    creation_date: Option<String>,
    #[serde(rename = "Description")]
    description: Option<String>,
    #[serde(rename = "Enabled")]
    enabled: Option<bool>,
    #[serde(rename = "KeyState")]
    key_state: Option<String>,
    #[serde(rename = "KeyUsage")]
    key_usage: Option<String>,
    #[serde(rename = "KeyManager")]
    key_manager: Option<String>,
    #[serde(rename = "Origin")]
    origin: Option<String>,
    #[serde(rename = "CustomerMasterKeySpec")]
    customer_master_key_spec: Option<String>,
    #[serde(rename = "EncryptionAlgorithms")]
    encryption_algorithms: Vec<String>,
    #[serde(rename = "SigningAlgorithms")]
    signing_algorithms: Vec<String>,
    #[serde(rename = "MacAlgorithms")]
    mac_algorithms: Vec<String>,
    #[serde(rename = "MultiRegion")]
    multi_region: Option<bool>,
    #[serde(rename = "MultiRegionConfiguration")]
    multi_region_configuration: Option<serde_json::Value>,
    #[serde(rename = "DeletionDate")]
    deletion_date: Option<String>,
    #[serde(rename = "PendingDeletionWindowInDays")]
    pending_deletion_window_in_days: Option<i32>,
    #[serde(rename = "ValidTo")]
    valid_to: Option<String>,
    #[serde(rename = "ExpirationModel")]
    expiration_model: Option<String>,
    #[serde(rename = "CustomKeyStoreId")]
    custom_key_store_id: Option<String>,
    #[serde(rename = "KeyRotationEnabled")]
    key_rotation_enabled: Option<bool>,
    #[serde(rename = "RotationPeriodInDays")]
    rotation_period_in_days: Option<i32>,
    #[serde(rename = "NextRotationDate")]
    next_rotation_date: Option<String>,
    #[serde(rename = "Tags")]
    tags: Option<Vec<StoredTag>>,
    #[serde(rename = "Policy")]
    policy: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredTag {
    #[serde(rename = "TagKey")]
    key: String,
    #[serde(rename = "TagValue")]
    value: String,
}

impl From<&AwsParam> for StoredAwsParam {
    fn from(p: &AwsParam) -> StoredAwsParam {
        StoredAwsParam {
            aws_account_id: p.aws_account_id.clone(),
            key_id: p.key_id.clone(),
            arn: p.arn.clone(),
            alias: p.alias.clone(),
            creation_date: p.creation_date.clone(),
            description: p.description.clone(),
            enabled: p.enabled,
            key_state: p.key_state.clone(),
            key_usage: p.key_usage.clone(),
            key_manager: p.key_manager.clone(),
            origin: p.origin.clone(),
            customer_master_key_spec: p.customer_master_key_spec.clone(),
            encryption_algorithms: p.encryption_algorithms.clone(),
            signing_algorithms: p.signing_algorithms.clone(),
            mac_algorithms: p.mac_algorithms.clone(),
            multi_region: p.multi_region,
            multi_region_configuration: p.multi_region_configuration.clone(),
            deletion_date: p.deletion_date.clone(),
            pending_deletion_window_in_days: p.pending_deletion_window_in_days,
            valid_to: p.valid_to.clone(),
            expiration_model: p.expiration_model.clone(),
            custom_key_store_id: p.custom_key_store_id.clone(),
            key_rotation_enabled: p.key_rotation_enabled,
            rotation_period_in_days: p.rotation_period_in_days,
            next_rotation_date: p.next_rotation_date.clone(),
            tags: p.tags.as_ref().map(|tags| {
                tags.iter()
                    .map(|t| StoredTag {
                        key: t.key.clone(),
                        value: t.value.clone(),
                    })
                    .collect()
            }),
            policy: p.policy.clone(),
        }
    }
}

impl From<StoredAwsParam> for AwsParam {
    fn from(p: StoredAwsParam) -> AwsParam {
        AwsParam {
            aws_account_id: p.aws_account_id,
            key_id: p.key_id,
            arn: p.arn,
            alias: p.alias,
            creation_date: p.creation_date,
            description: p.description,
            enabled: p.enabled,
            key_state: p.key_state,
            key_usage: p.key_usage,
            key_manager: p.key_manager,
            origin: p.origin,
            customer_master_key_spec: p.customer_master_key_spec,
            encryption_algorithms: p.encryption_algorithms,
            signing_algorithms: p.signing_algorithms,
            mac_algorithms: p.mac_algorithms,
            multi_region: p.multi_region,
            multi_region_configuration: p.multi_region_configuration,
            deletion_date: p.deletion_date,
            pending_deletion_window_in_days: p.pending_deletion_window_in_days,
            valid_to: p.valid_to,
            expiration_model: p.expiration_model,
            custom_key_store_id: p.custom_key_store_id,
            key_rotation_enabled: p.key_rotation_enabled,
            rotation_period_in_days: p.rotation_period_in_days,
            next_rotation_date: p.next_rotation_date,
            tags: p.tags.map(|tags| {
                tags.into_iter()
                    .map(|t| Tag {
                        key: t.key,
                        value: t.value,
                    })
                    .collect()
            }),
            policy: p.policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::key::{KeyDetails, Sighting};

    fn record() -> KeyRecord {
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/0000-1";
        let details = KeyDetails {
            aws_param: AwsParam {
                aws_account_id: "111122223333".into(),
                key_id: "0000-1".into(),
                arn: arn.into(),
                alias: vec!["alias/a".into()],
                key_state: Some("Enabled".into()),
                tags: Some(vec![Tag {
                    key: "team".into(),
                    value: "x".into(),
                }]),
                ..AwsParam::default()
            },
            read_errors: BTreeMap::new(),
        };
        KeyRecord::from_details(
            details,
            Sighting {
                kms_id: Uuid::nil(),
                kms_name: "k",
                region: "eu-west-1",
                job_id: None,
                // Stored to the microsecond, as CCKM writes timestamps.
                now: chrono::DateTime::from_timestamp_micros(chrono::Utc::now().timestamp_micros())
                    .unwrap(),
                first_stored: None,
            },
        )
    }

    #[test]
    fn a_record_comes_back_from_its_item_unchanged_with_its_index_attributes() {
        let record = record();
        let item = to_key_item(&record).unwrap();
        for name in [
            "unit",
            "created",
            "all_shard",
            "state_shard",
            "gone_shard",
            "region_shard",
        ] {
            assert!(item.contains_key(name), "{name}");
        }
        let shard = shard_of(record.id);
        assert_eq!(
            item["state_shard"].as_s().unwrap(),
            &format!("Enabled#{shard}")
        );
        assert_eq!(from_key_item(item).unwrap(), record);
    }

    #[test]
    fn the_stored_names_are_todays_whatever_the_api_names_become() {
        let item = to_key_item(&record()).unwrap();
        let param = item["aws_param"].as_m().unwrap();
        for name in ["AWSAccountId", "KeyID", "Arn", "Alias", "KeyState", "Tags"] {
            assert!(param.contains_key(name), "{name}");
        }
        assert!(item.contains_key("createdAt") && item.contains_key("last_seen_job"));
    }
}
