//! A synced key as CCKM shows it (spec 2.1): our record of one AWS KMS key, its metadata under `aws_param`
//! with CCKM's spellings, and the classification rules (`key_type`, `cloud_name`, stable id).

use super::time::{Timestamp, rfc3339};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The stable id of a key: UUID v5 of its ARN, so every sync finds the same record.
pub fn key_record_id(arn: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, arn.as_bytes())
}

/// The key id in a key ARN (`arn:aws:kms:<region>:<account>:key/<key id>`); the ARN itself otherwise, which
/// KMS also takes wherever it takes a key id.
pub fn key_id_of_arn(arn: &str) -> &str {
    arn.rsplit_once(":key/").map_or(arn, |(_, id)| id)
}

/// `aws`, `aws-cn` or `aws-us-gov`: the ARN's partition.
pub fn cloud_name(arn: &str) -> String {
    arn.split(':')
        .nth(1)
        .filter(|p| !p.is_empty())
        .unwrap_or("aws")
        .to_string()
}

/// `symmetric`, `asymmetric` or `hmac`, from the key spec.
pub fn key_type(key_spec: &str) -> &'static str {
    if key_spec.starts_with("HMAC_") {
        "hmac"
    } else if key_spec == "SYMMETRIC_DEFAULT" {
        "symmetric"
    } else {
        "asymmetric"
    }
}

/// Rotation applies only to symmetric encryption keys whose material AWS KMS made, outside custom key stores.
/// (A `SYMMETRIC_DEFAULT` key can only be an encryption key, so the spec says enough about its usage.)
pub fn supports_rotation(key_spec: &str, origin: &str, custom_key_store: bool) -> bool {
    key_spec == "SYMMETRIC_DEFAULT" && origin == "AWS_KMS" && !custom_key_store
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    #[serde(rename = "TagKey")]
    pub key: String,
    #[serde(rename = "TagValue")]
    pub value: String,
}

/// An alias as AWS names it: CCKM's clients may leave out the `alias/` prefix (`my-key` for
/// `alias/my-key`), as their examples do.
pub fn full_alias(name: &str) -> String {
    if name.starts_with("alias/") {
        name.to_string()
    } else {
        format!("alias/{name}")
    }
}

/// Everything AWS told us about one key, in CCKM's spellings. What AWS did not tell us (a refused
/// DescribeKey, an optional read that AWS refused or does not support) stays `None`, rendered as null,
/// never a made-up default such as `false`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct AwsParam {
    #[serde(rename = "AWSAccountId")]
    pub aws_account_id: String,
    #[serde(rename = "KeyID")]
    pub key_id: String,
    pub arn: String,
    pub alias: Vec<String>,
    pub creation_date: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub key_state: Option<String>,
    pub key_usage: Option<String>,
    pub key_manager: Option<String>,
    pub origin: Option<String>,
    pub customer_master_key_spec: Option<String>,
    pub encryption_algorithms: Vec<String>,
    pub signing_algorithms: Vec<String>,
    pub mac_algorithms: Vec<String>,
    pub multi_region: Option<bool>,
    pub multi_region_configuration: Option<serde_json::Value>,
    pub deletion_date: Option<String>,
    pub pending_deletion_window_in_days: Option<i32>,
    pub valid_to: Option<String>,
    pub expiration_model: Option<String>,
    pub custom_key_store_id: Option<String>,
    pub key_rotation_enabled: Option<bool>,
    pub rotation_period_in_days: Option<i32>,
    pub next_rotation_date: Option<String>,
    pub tags: Option<Vec<Tag>>,
    pub policy: Option<String>,
}

/// One read of a key from AWS: its metadata and, per optional read that failed, why (e.g. `"Policy":
/// "AccessDeniedException: ..."`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyDetails {
    pub aws_param: AwsParam,
    pub read_errors: BTreeMap<String, String>,
}

/// Our stored record of a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: Uuid,
    #[serde(rename = "createdAt", with = "rfc3339")]
    pub created_at: Timestamp,
    #[serde(rename = "updatedAt", with = "rfc3339")]
    pub updated_at: Timestamp,
    pub kms_id: Uuid,
    pub kms: String,
    pub region: String,
    pub cloud_name: String,
    #[serde(with = "rfc3339")]
    pub synced_at: Timestamp,
    pub gone: bool,
    /// None when AWS refused to describe the key, so its spec is unknown.
    pub key_type: Option<String>,
    pub key_material_origin: String,
    pub labels: BTreeMap<String, String>,
    pub aws_param: AwsParam,
    /// Reads that failed on this key at the last sync, by field; empty when every read worked.
    pub sync_errors: BTreeMap<String, String>,
    /// `"<account>/<region>"`: the partition of the key index, so a unit's keys are read without a scan.
    pub unit: String,
    /// The ARN again at top level: the key index's sort key.
    pub arn: String,
    /// The job that wrote the key last; a unit's gone sweep never overrules a newer writer's stamp.
    pub last_seen_job: Option<Uuid>,
    /// The fingerprint of what was read from AWS (`KeyRecord::fingerprint`): a resync writes a key again
    /// only when it changed. None on records written before fingerprints.
    #[serde(default)]
    pub content_hash: Option<String>,
}

/// Where a read key belongs: which KMS resource and job found it, and when.
pub struct Sighting<'a> {
    pub kms_id: Uuid,
    pub kms_name: &'a str,
    pub region: &'a str,
    pub job_id: Option<Uuid>,
    pub now: Timestamp,
    /// When we first stored this key, if we had it already.
    pub first_stored: Option<Timestamp>,
}

/// The state a key is indexed and counted under when AWS did not tell it.
pub const UNKNOWN_STATE: &str = "unknown";

impl KeyRecord {
    /// The state this key is indexed and counted under.
    pub fn indexed_state(&self) -> &str {
        self.aws_param.key_state.as_deref().unwrap_or(UNKNOWN_STATE)
    }

    pub fn from_details(details: KeyDetails, seen: Sighting<'_>) -> KeyRecord {
        let param = details.aws_param;
        KeyRecord {
            id: key_record_id(&param.arn),
            created_at: seen.first_stored.unwrap_or(seen.now),
            updated_at: seen.now,
            kms_id: seen.kms_id,
            kms: seen.kms_name.to_string(),
            region: seen.region.to_string(),
            cloud_name: cloud_name(&param.arn),
            synced_at: seen.now,
            gone: false,
            key_type: param
                .customer_master_key_spec
                .as_deref()
                .map(|spec| key_type(spec).to_string()),
            key_material_origin: "native".to_string(),
            labels: BTreeMap::new(),
            unit: super::job::unit_key(&param.aws_account_id, seen.region),
            arn: param.arn.clone(),
            last_seen_job: seen.job_id,
            sync_errors: details.read_errors,
            aws_param: param,
            content_hash: None,
        }
        .fingerprinted()
    }

    /// A fingerprint of what the sync read from AWS for this key and where it belongs: everything but the
    /// timestamps and the sync's own bookkeeping (FNV-1a over the canonical JSON, whose maps are sorted).
    pub fn fingerprint(&self) -> String {
        let content = serde_json::json!([
            self.kms_id,
            self.kms,
            self.region,
            self.cloud_name,
            self.key_type,
            self.key_material_origin,
            self.labels,
            self.aws_param,
            self.sync_errors,
        ]);
        let hash = content
            .to_string()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
            });
        format!("{hash:016x}")
    }

    fn fingerprinted(mut self) -> KeyRecord {
        self.content_hash = Some(self.fingerprint());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_per_arn() {
        let arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(key_record_id(arn), key_record_id(arn));
        assert_ne!(
            key_record_id(arn),
            key_record_id("arn:aws:kms:us-east-1:111122223333:key/other")
        );
        assert_eq!(key_record_id(arn).get_version_num(), 5);
    }

    #[test]
    fn the_key_id_is_read_off_the_arn() {
        let arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(key_id_of_arn(arn), "1234abcd-12ab-34cd-56ef-1234567890ab");
        assert_eq!(key_id_of_arn("not-an-arn"), "not-an-arn");
    }

    #[test]
    fn the_fingerprint_follows_what_aws_said_not_when_we_read_it() {
        let details = KeyDetails {
            aws_param: AwsParam {
                key_id: "k".into(),
                arn: "arn:aws:kms:us-east-1:111122223333:key/k".into(),
                ..AwsParam::default()
            },
            read_errors: BTreeMap::new(),
        };
        let at = |seconds| chrono::DateTime::from_timestamp(seconds, 0).unwrap();
        let seen = |now| Sighting {
            kms_id: Uuid::nil(),
            kms_name: "k",
            region: "us-east-1",
            job_id: Some(Uuid::new_v4()),
            now,
            first_stored: None,
        };
        let first = KeyRecord::from_details(details.clone(), seen(at(1)));
        let again = KeyRecord::from_details(details.clone(), seen(at(2)));
        assert_eq!(first.content_hash, again.content_hash);
        assert_eq!(first.content_hash.as_deref().map(str::len), Some(16));
        let mut tagged = details;
        tagged.aws_param.tags = Some(vec![Tag {
            key: "env".into(),
            value: "prod".into(),
        }]);
        assert_ne!(
            KeyRecord::from_details(tagged, seen(at(1))).content_hash,
            first.content_hash
        );
    }

    #[test]
    fn classifies_partition_and_key_type() {
        assert_eq!(
            cloud_name("arn:aws-us-gov:kms:us-gov-west-1:1:key/x"),
            "aws-us-gov"
        );
        assert_eq!(cloud_name("arn:aws-cn:kms:cn-north-1:1:key/x"), "aws-cn");
        assert_eq!(key_type("SYMMETRIC_DEFAULT"), "symmetric");
        assert_eq!(key_type("RSA_2048"), "asymmetric");
        assert_eq!(key_type("ECC_NIST_P256"), "asymmetric");
        assert_eq!(key_type("HMAC_256"), "hmac");
    }

    #[test]
    fn rotation_only_for_symmetric_encryption_keys_made_by_kms() {
        assert!(supports_rotation("SYMMETRIC_DEFAULT", "AWS_KMS", false));
        assert!(!supports_rotation("SYMMETRIC_DEFAULT", "EXTERNAL", false));
        assert!(!supports_rotation("SYMMETRIC_DEFAULT", "AWS_KMS", true));
        assert!(!supports_rotation("RSA_2048", "AWS_KMS", false));
        assert!(!supports_rotation("HMAC_256", "AWS_KMS", false));
    }

    #[test]
    fn aws_param_uses_cckm_spellings() {
        let param = AwsParam {
            key_id: "k".into(),
            tags: Some(vec![Tag {
                key: "env".into(),
                value: "prod".into(),
            }]),
            ..AwsParam::default()
        };
        let json = serde_json::to_value(&param).unwrap();
        assert_eq!(json["KeyID"], "k");
        assert_eq!(json["Tags"][0]["TagKey"], "env");
        assert!(json.get("AWSAccountId").is_some());
        assert!(json.get("CustomerMasterKeySpec").is_some());
        assert!(json["KeyRotationEnabled"].is_null());
    }
}
