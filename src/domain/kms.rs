//! A KMS resource: a named connection to one AWS account (its id, the regions to sync, the role to assume).
//! Create and patch bodies are validated here into types that cannot hold invalid values.

use super::acl::AclEntry;
use super::error::AppError;
use super::region::is_valid_region;
use super::time::{Timestamp, rfc3339};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The `status` CCKM shows for a KMS resource in service, and for one taken out of it (`archive`).
pub const STATUS_ACTIVE: &str = "ACTIVE";
pub const STATUS_ARCHIVED: &str = "ARCHIVED";

/// The most regions one KMS resource may name; AWS has fewer than 40 commercial regions.
const MAX_REGIONS: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KmsResource {
    pub id: Uuid,
    pub name: String,
    pub account_id: String,
    pub regions: Vec<String>,
    pub assume_role_arn: Option<String>,
    pub assume_role_external_id: Option<String>,
    #[serde(rename = "createdAt", with = "rfc3339")]
    pub created_at: Timestamp,
    #[serde(rename = "updatedAt", with = "rfc3339")]
    pub updated_at: Timestamp,
    /// Registered by an AWS Organizations discovery, not by hand.
    #[serde(default)]
    pub auto_added: bool,
    /// Where the account of an auto-added resource stands in its organization; None for one added by hand.
    #[serde(default)]
    pub org_status: Option<OrgStatus>,
    /// The AWS connection it reaches AWS with; None: the function's own credentials.
    #[serde(default)]
    pub connection: Option<ConnectionLink>,
    /// Key actions granted to users and groups beyond their role.
    #[serde(default)]
    pub acls: Vec<AclEntry>,
    /// Taken out of service (`POST /kms/{id}/archive`): kept, with its keys, but neither synced nor written.
    #[serde(default)]
    pub archived: bool,
}

/// A KMS resource's AWS connection: its id, and its name, which never changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionLink {
    pub id: Uuid,
    pub name: String,
}

/// An auto-added account's standing in its organization, as the last discovery found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgStatus {
    Active,
    /// Suspended or being closed: AWS refuses its calls.
    Suspended,
    /// No longer in the organization: its role may be gone.
    Left,
}

impl OrgStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgStatus::Active => "active",
            OrgStatus::Suspended => "suspended",
            OrgStatus::Left => "left",
        }
    }
}

impl KmsResource {
    /// Whether jobs and KMS events read this resource: not when it was archived, or when its account was
    /// suspended or left the organization (it is kept, with its keys, and no job counts it as failed).
    pub fn is_synced(&self) -> bool {
        !self.archived
            && self
                .org_status
                .is_none_or(|status| status == OrgStatus::Active)
    }

    /// CCKM's `status`: `ARCHIVED` once archived, `ACTIVE` otherwise.
    pub fn status(&self) -> &'static str {
        if self.archived {
            STATUS_ARCHIVED
        } else {
            STATUS_ACTIVE
        }
    }

    /// Whether the syncs of this resource read `region`.
    pub fn syncs(&self, region: &str) -> bool {
        self.is_synced() && self.regions.iter().any(|r| r == region)
    }

    /// The account root ARN CCKM shows as `arn`.
    pub fn root_arn(&self) -> String {
        format!("arn:{}:iam::{}:root", self.cloud_name(), self.account_id)
    }

    /// `aws`, `aws-cn` or `aws-us-gov`: the partition of its regions.
    pub fn cloud_name(&self) -> &'static str {
        partition_of_regions(&self.regions)
    }
}

fn partition_of_regions(regions: &[String]) -> &'static str {
    regions
        .first()
        .map_or("aws", |region| super::region::partition_of(region))
}

/// `POST /v1/cckm/aws/kms` body, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKmsBody {
    pub name: Option<String>,
    pub account_id: Option<String>,
    pub regions: Option<Vec<String>>,
    pub assume_role_arn: Option<String>,
    pub assume_role_external_id: Option<String>,
    /// An AWS connection's id or name (the service resolves it).
    pub connection: Option<String>,
}

/// `PATCH /v1/cckm/aws/kms/{id}` body. `Some(None)` (an explicit null) clears an optional field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchKmsBody {
    pub name: Option<String>,
    /// Terraform sends it (empty) on every update: it may only repeat the account.
    pub account_id: Option<String>,
    /// An AWS connection's id or name (the service resolves it); empty: unchanged.
    pub connection: Option<String>,
    pub regions: Option<Vec<String>>,
    #[serde(default, deserialize_with = "explicit_null")]
    pub assume_role_arn: Option<Option<String>>,
    #[serde(default, deserialize_with = "explicit_null")]
    pub assume_role_external_id: Option<Option<String>>,
}

fn explicit_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl CreateKmsBody {
    /// Validates every field and builds the resource; `now` and `id` come from the caller so this stays pure.
    pub fn validate(self, id: Uuid, now: Timestamp) -> Result<KmsResource, AppError> {
        let name = self
            .name
            .ok_or_else(|| AppError::InvalidParam("name is required".into()))?;
        validate_name(&name)?;
        let account_id = self
            .account_id
            .ok_or_else(|| AppError::InvalidParam("account_id is required".into()))?;
        if !is_account_id(&account_id) {
            return Err(AppError::InvalidParam(format!(
                "account_id '{account_id}' must be 12 digits"
            )));
        }
        let regions = validate_regions(self.regions.unwrap_or_default())?;
        let (assume_role_arn, assume_role_external_id) = validate_role(
            &account_id,
            empty_as_none(self.assume_role_arn),
            empty_as_none(self.assume_role_external_id),
        )?;
        Ok(KmsResource {
            id,
            name,
            account_id,
            regions,
            assume_role_arn,
            assume_role_external_id,
            created_at: now,
            updated_at: now,
            auto_added: false,
            org_status: None,
            connection: None,
            acls: Vec::new(),
            archived: false,
        })
    }
}

impl PatchKmsBody {
    /// Applies the patch to a copy of `current`; the name can be repeated but never changed.
    pub fn apply(self, current: &KmsResource, now: Timestamp) -> Result<KmsResource, AppError> {
        // An empty name or account (Go's unset string) is not given.
        if let Some(name) = self.name.as_deref().filter(|n| !n.is_empty())
            && name != current.name
        {
            return Err(AppError::InvalidParam("name cannot be changed".into()));
        }
        if let Some(account) = self.account_id.as_deref().filter(|a| !a.is_empty())
            && account != current.account_id
        {
            return Err(AppError::InvalidParam(
                "account_id cannot be changed".into(),
            ));
        }
        let mut next = current.clone();
        if let Some(regions) = self.regions {
            next.regions = validate_regions(regions)?;
        }
        if let Some(arn) = self.assume_role_arn {
            next.assume_role_arn = empty_as_none(arn);
            if next.assume_role_arn.is_none() {
                next.assume_role_external_id = None;
            }
        }
        if let Some(external_id) = self.assume_role_external_id {
            next.assume_role_external_id = empty_as_none(external_id);
        }
        let (arn, external_id) = validate_role(
            &next.account_id,
            next.assume_role_arn,
            next.assume_role_external_id,
        )?;
        next.assume_role_arn = arn;
        next.assume_role_external_id = external_id;
        next.updated_at = now;
        Ok(next)
    }
}

fn empty_as_none(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

pub(crate) fn validate_name(name: &str) -> Result<(), AppError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if name.is_empty() || name.len() > 128 || !ok_chars {
        return Err(AppError::InvalidParam(format!(
            "name '{name}' must be 1 to 128 characters of letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(())
}

pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

pub(crate) fn validate_regions(regions: Vec<String>) -> Result<Vec<String>, AppError> {
    if regions.is_empty() {
        return Err(AppError::InvalidParam(
            "regions must name at least one region".into(),
        ));
    }
    if regions.len() > MAX_REGIONS {
        return Err(AppError::InvalidParam(format!(
            "regions may name at most {MAX_REGIONS} regions"
        )));
    }
    let mut seen = BTreeSet::new();
    for region in &regions {
        if !is_valid_region(region) {
            return Err(AppError::InvalidParam(format!(
                "'{region}' is not a valid AWS region"
            )));
        }
        if !seen.insert(region.as_str()) {
            return Err(AppError::InvalidParam(format!(
                "region '{region}' is listed twice"
            )));
        }
    }
    Ok(regions)
}

/// The role must live in the KMS resource's own account: that is the account whose keys we read.
fn validate_role(
    account_id: &str,
    arn: Option<String>,
    external_id: Option<String>,
) -> Result<(Option<String>, Option<String>), AppError> {
    match (&arn, &external_id) {
        (None, Some(_)) => Err(AppError::InvalidParam(
            "assume_role_external_id is only allowed with assume_role_arn".into(),
        )),
        (Some(arn), _) if role_account(arn) != Some(account_id) => Err(AppError::InvalidParam(
            format!("assume_role_arn '{arn}' must be an IAM role ARN in account {account_id}"),
        )),
        (_, Some(id)) if !is_external_id(id) => Err(AppError::InvalidParam(
            "assume_role_external_id must be 2 to 1224 characters of letters, digits and +=,.@:/-_"
                .into(),
        )),
        _ => Ok((arn, external_id)),
    }
}

/// `arn:<partition>:iam::<account>:role/<path-and-name>` → the account, when the ARN is well formed.
fn role_account(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let name = resource.strip_prefix("role/")?;
    let valid_partition = matches!(partition, "aws" | "aws-cn" | "aws-us-gov");
    (valid_partition && is_account_id(account) && !name.is_empty() && !name.ends_with('/'))
        .then_some(account)
}

fn is_external_id(id: &str) -> bool {
    (2..=1224).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> CreateKmsBody {
        serde_json::from_value(json).unwrap()
    }

    fn create(json: serde_json::Value) -> Result<KmsResource, AppError> {
        body(json).validate(Uuid::nil(), crate::domain::time::now())
    }

    #[test]
    fn valid_create_builds_the_resource() {
        let kms = create(serde_json::json!({
            "name": "prod", "account_id": "111122223333", "regions": ["us-east-1", "eu-west-1"],
            "assume_role_arn": "arn:aws:iam::111122223333:role/sync/cckm", "assume_role_external_id": "ext-42"
        }))
        .unwrap();
        assert_eq!(kms.regions, vec!["us-east-1", "eu-west-1"]);
        assert_eq!(kms.root_arn(), "arn:aws:iam::111122223333:root");
        assert_eq!(kms.assume_role_external_id.as_deref(), Some("ext-42"));
    }

    #[test]
    fn invalid_creates_are_refused_with_a_reason() {
        let cases = [
            (
                serde_json::json!({"account_id": "111122223333", "regions": ["us-east-1"]}),
                "name is required",
            ),
            (
                serde_json::json!({"name": "a b", "account_id": "111122223333", "regions": ["us-east-1"]}),
                "name 'a b'",
            ),
            (
                serde_json::json!({"name": "a", "account_id": "1234", "regions": ["us-east-1"]}),
                "12 digits",
            ),
            (
                serde_json::json!({"name": "a", "account_id": "111122223333", "regions": []}),
                "at least one",
            ),
            (
                serde_json::json!({"name": "a", "account_id": "111122223333", "regions": ["mars-1"]}),
                "not a valid",
            ),
            (
                serde_json::json!({"name": "a", "account_id": "111122223333", "regions": ["us-east-1", "us-east-1"]}),
                "twice",
            ),
            (
                serde_json::json!({"name": "a", "account_id": "111122223333", "regions": ["us-east-1"], "assume_role_external_id": "xx"}),
                "only allowed with",
            ),
            (
                serde_json::json!({"name": "a", "account_id": "111122223333", "regions": ["us-east-1"], "assume_role_arn": "arn:aws:iam::999999999999:role/x"}),
                "in account 111122223333",
            ),
            (
                serde_json::json!({"name": "a", "account_id": "111122223333", "regions": ["us-east-1"], "assume_role_arn": "arn:aws:iam::111122223333:user/x"}),
                "IAM role ARN",
            ),
        ];
        for (json, expected) in cases {
            match create(json.clone()) {
                Err(AppError::InvalidParam(message)) => {
                    assert!(message.contains(expected), "{json}: {message}")
                }
                other => panic!("{json}: expected InvalidParam, got {other:?}"),
            }
        }
    }

    #[test]
    fn patch_changes_regions_and_clears_the_role_with_null() {
        let now = crate::domain::time::now();
        let kms = create(serde_json::json!({
            "name": "prod", "account_id": "111122223333", "regions": ["us-east-1"],
            "assume_role_arn": "arn:aws:iam::111122223333:role/cckm", "assume_role_external_id": "ext-42"
        }))
        .unwrap();
        let patch: PatchKmsBody = serde_json::from_value(
            serde_json::json!({"regions": ["eu-west-1"], "assume_role_arn": null}),
        )
        .unwrap();
        let next = patch.apply(&kms, now).unwrap();
        assert_eq!(next.regions, vec!["eu-west-1"]);
        assert_eq!(next.assume_role_arn, None);
        assert_eq!(next.assume_role_external_id, None);
        assert_eq!(next.name, "prod");
    }

    #[test]
    fn patch_cannot_rename() {
        let kms = create(serde_json::json!({"name": "prod", "account_id": "111122223333", "regions": ["us-east-1"]})).unwrap();
        let patch: PatchKmsBody =
            serde_json::from_value(serde_json::json!({"name": "other"})).unwrap();
        assert!(matches!(
            patch.apply(&kms, kms.updated_at),
            Err(AppError::InvalidParam(_))
        ));
    }
}
