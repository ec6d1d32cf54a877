//! `POST /synchronization-jobs` rules (spec 1.1): the body's shape, then the plan of units once the named KMS
//! resources are known. Validation that needs no store happens in `SyncRequest::parse`; the rest in `plan`.

use super::error::AppError;
use super::job::Unit;
use super::kms::KmsResource;
use super::region::is_valid_region;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// The most entries `kms` or `regions` may hold.
pub const MAX_ENTRIES: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateJobBody {
    kms: Option<OneOrMany>,
    regions: Option<Vec<String>>,
    synchronize_all: Option<bool>,
}

/// `kms` as a list, or one name alone: CCKM's Ansible key module sends a single string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(name) => vec![name],
            OneOrMany::Many(names) => names,
        }
    }
}

/// A create-job request that has passed every check that needs no store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncRequest {
    All,
    Named {
        kms: Vec<String>,
        regions: Vec<String>,
    },
}

impl SyncRequest {
    pub fn parse(body: &[u8]) -> Result<SyncRequest, AppError> {
        let body: CreateJobBody = crate::domain::list::parse_json_body(body)?;
        Self::from_parts(
            body.kms.map(OneOrMany::into_vec).unwrap_or_default(),
            body.regions.unwrap_or_default(),
            body.synchronize_all,
        )
    }

    /// Shared by the HTTP body and the scheduler's `cckm_synchronization_params`.
    pub fn from_parts(
        kms: Vec<String>,
        regions: Vec<String>,
        synchronize_all: Option<bool>,
    ) -> Result<SyncRequest, AppError> {
        if synchronize_all == Some(true) {
            if !kms.is_empty() || !regions.is_empty() {
                return Err(AppError::InvalidParam(
                    "synchronize_all cannot be combined with kms or regions".into(),
                ));
            }
            return Ok(SyncRequest::All);
        }
        if kms.is_empty() {
            return Err(AppError::InvalidParam(
                "either kms or synchronize_all: true is required".into(),
            ));
        }
        check_entries("kms", &kms, |name| !name.trim().is_empty())?;
        check_entries("regions", &regions, is_valid_region)?;
        Ok(SyncRequest::Named { kms, regions })
    }

    /// What the job shows as `kms` and `regions`: as requested, empty for `synchronize_all`.
    pub fn echo(&self) -> (Vec<String>, Vec<String>) {
        match self {
            SyncRequest::All => (Vec::new(), Vec::new()),
            SyncRequest::Named { kms, regions } => (kms.clone(), regions.clone()),
        }
    }
}

fn check_entries(
    field: &str,
    entries: &[String],
    valid: impl Fn(&str) -> bool,
) -> Result<(), AppError> {
    if entries.len() > MAX_ENTRIES {
        return Err(AppError::InvalidParam(format!(
            "{field} may hold at most {MAX_ENTRIES} entries"
        )));
    }
    let mut seen = BTreeSet::new();
    for entry in entries {
        if !valid(entry) {
            return Err(AppError::InvalidParam(format!(
                "{field}: '{entry}' is not valid"
            )));
        }
        if !seen.insert(entry.as_str()) {
            return Err(AppError::InvalidParam(format!(
                "{field}: '{entry}' is listed twice"
            )));
        }
    }
    Ok(())
}

/// The units of a job: for each KMS resource, the requested regions it is configured for (all of its regions
/// when none were requested). One unit per (account, region): two resources on one account share it.
/// Every requested region must be configured on at least one of the resources.
/// A resource whose account was suspended or left its organization is not synced (`KmsResource::is_synced`).
pub fn plan(
    resources: &[KmsResource],
    requested_regions: &[String],
) -> Result<Vec<Unit>, AppError> {
    let synced: Vec<&KmsResource> = resources.iter().filter(|k| k.is_synced()).collect();
    let resources = synced.as_slice();
    for region in requested_regions {
        if !resources.iter().any(|kms| kms.syncs(region)) {
            return Err(AppError::InvalidParam(format!(
                "region '{region}' is not configured on any of the requested KMS resources"
            )));
        }
    }
    let mut units = BTreeMap::new();
    for kms in resources.iter().copied() {
        for region in &kms.regions {
            if requested_regions.is_empty() || requested_regions.contains(region) {
                units
                    .entry((kms.account_id.clone(), region.clone()))
                    .or_insert_with(|| Unit {
                        kms_id: kms.id,
                        account_id: kms.account_id.clone(),
                        region: region.clone(),
                    });
            }
        }
    }
    if units.is_empty() {
        return Err(AppError::InvalidParam(
            "no KMS resource with a region is registered to synchronize".into(),
        ));
    }
    Ok(units.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn parse(json: &str) -> Result<SyncRequest, AppError> {
        SyncRequest::parse(json.as_bytes())
    }

    fn kms(name: &str, account: &str, regions: &[&str]) -> KmsResource {
        let now = crate::domain::time::now();
        KmsResource {
            id: Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes()),
            name: name.into(),
            account_id: account.into(),
            regions: regions.iter().map(|r| r.to_string()).collect(),
            assume_role_arn: None,
            assume_role_external_id: None,
            created_at: now,
            updated_at: now,
            auto_added: false,
            org_status: None,
            connection: None,
            acls: Vec::new(),
            archived: false,
        }
    }

    #[test]
    fn accepts_the_documented_bodies() {
        assert_eq!(parse(r#"{"synchronize_all": true}"#), Ok(SyncRequest::All));
        // One name alone, as CCKM's Ansible key module sends it.
        assert_eq!(
            parse(r#"{"kms": "kms", "regions": [], "synchronize_all": false}"#),
            Ok(SyncRequest::Named {
                kms: vec!["kms".into()],
                regions: vec![]
            })
        );
        assert_eq!(
            parse(r#"{"kms": ["kms"], "regions": ["ap-south-1"], "synchronize_all": false}"#),
            Ok(SyncRequest::Named {
                kms: vec!["kms".into()],
                regions: vec!["ap-south-1".into()]
            })
        );
    }

    #[test]
    fn refuses_each_rule_of_section_1_1() {
        let invalid_param = [
            r#"{"synchronize_all": true, "kms": ["a"]}"#,
            r#"{"synchronize_all": true, "regions": ["us-east-1"]}"#,
            r#"{}"#,
            r#"{"synchronize_all": false}"#,
            r#"{"kms": []}"#,
            r#"{"kms": ["a", "a"]}"#,
            r#"{"kms": ["a"], "regions": ["us-east-1", "us-east-1"]}"#,
            r#"{"kms": ["a"], "regions": ["moon-base-1x"]}"#,
            r#"{"kms": ["a"], "colour": "blue"}"#,
            r#"{"kms": ["a"], "synchronize_all": "yes"}"#,
            r#"[]"#,
        ];
        for body in invalid_param {
            assert!(
                matches!(parse(body), Err(AppError::InvalidParam(_))),
                "{body}"
            );
        }
        for body in ["{", "", "not json", "{\"kms\": [\"a\"]} trailing"] {
            assert!(
                matches!(parse(body), Err(AppError::BadRequest(_))),
                "{body:?}"
            );
        }
        assert!(matches!(
            SyncRequest::parse(b"{\"kms\": [\"\xff\"]}"),
            Err(AppError::BadRequest(_))
        ));
        let too_many: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("k{i}")).collect();
        let body = serde_json::json!({ "kms": too_many }).to_string();
        assert!(matches!(parse(&body), Err(AppError::InvalidParam(m)) if m.contains("at most")));
    }

    #[test]
    fn plan_takes_every_configured_region_when_none_is_requested() {
        let units = plan(
            &[kms("a", "111122223333", &["us-east-1", "eu-west-1"])],
            &[],
        )
        .unwrap();
        let keys: Vec<String> = units.iter().map(Unit::key).collect();
        assert_eq!(
            keys,
            vec!["111122223333/eu-west-1", "111122223333/us-east-1"]
        );
    }

    #[test]
    fn plan_intersects_requested_regions_and_refuses_unconfigured_ones() {
        let resources = [
            kms("a", "111122223333", &["us-east-1"]),
            kms("b", "444455556666", &["eu-west-1"]),
        ];
        let units = plan(&resources, &["eu-west-1".to_string()]).unwrap();
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].account_id, "444455556666");
        let err = plan(&resources, &["ap-south-1".to_string()]).unwrap_err();
        assert!(matches!(err, AppError::InvalidParam(m) if m.contains("ap-south-1")));
    }

    #[test]
    fn plan_merges_resources_on_the_same_account() {
        let resources = [
            kms("a", "111122223333", &["us-east-1"]),
            kms("b", "111122223333", &["us-east-1"]),
        ];
        assert_eq!(plan(&resources, &[]).unwrap().len(), 1);
    }
}
