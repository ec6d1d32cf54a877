//! AWS Organizations discovery, the pure part: given the organization's accounts and the registered KMS
//! resources, what to register and what to mark. Active accounts that no resource syncs are registered
//! (`auto_added`); an auto-added account that was suspended or left the organization is kept and marked,
//! never deleted, so its keys stay; resources registered by hand are never touched.

use super::AppError;
use super::kms::{KmsResource, OrgStatus, validate_regions};
use super::region::partition_of;
use super::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// An account as Organizations lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgAccount {
    pub id: String,
    /// Organizations' `State` (or the older `Status`): ACTIVE, SUSPENDED, PENDING_CLOSURE, CLOSED...
    pub state: String,
}

/// Discovery inputs, each optional: the function's configuration (`ORG_*`), overridden field by field by
/// the body of an on-demand discovery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryInput {
    pub management_role_arn: Option<String>,
    pub member_role_name: Option<String>,
    pub member_external_id: Option<String>,
    pub organizational_units: Option<Vec<String>>,
    pub regions: Option<Vec<String>>,
}

impl DiscoveryInput {
    /// Whether the configuration asks for a discovery before each scheduled sync.
    pub fn is_configured(&self) -> bool {
        self.management_role_arn.is_some()
    }

    /// These inputs, with `base`'s where these have none.
    pub fn over(self, base: &DiscoveryInput) -> DiscoveryInput {
        let base = base.clone();
        DiscoveryInput {
            management_role_arn: self.management_role_arn.or(base.management_role_arn),
            member_role_name: self.member_role_name.or(base.member_role_name),
            member_external_id: self.member_external_id.or(base.member_external_id),
            organizational_units: self.organizational_units.or(base.organizational_units),
            regions: self.regions.or(base.regions),
        }
    }

    /// The settings, when every required input is there and valid.
    pub fn settings(self) -> Result<DiscoverySettings, AppError> {
        let required = |value: Option<String>, name: &str, env: &str| {
            value.filter(|v| !v.is_empty()).ok_or_else(|| {
                AppError::InvalidParam(format!(
                    "{name} is required (in the request, or configured as {env})"
                ))
            })
        };
        DiscoverySettings {
            management_role_arn: required(
                self.management_role_arn,
                "management_role_arn",
                "ORG_MANAGEMENT_ROLE_ARN",
            )?,
            member_role_name: required(
                self.member_role_name,
                "member_role_name",
                "ORG_MEMBER_ROLE_NAME",
            )?,
            member_external_id: self.member_external_id.filter(|v| !v.is_empty()),
            organizational_units: self.organizational_units.unwrap_or_default(),
            regions: self.regions.ok_or_else(|| {
                AppError::InvalidParam(
                    "regions is required (in the request, or configured as ORG_REGIONS)".into(),
                )
            })?,
        }
        .validate()
    }
}

/// What a discovery reads and registers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverySettings {
    /// The role to assume in the management (or delegated administrator) account to list accounts.
    pub management_role_arn: String,
    /// The role each member account's KMS resource assumes: `arn:<partition>:iam::<account>:role/<name>`.
    pub member_role_name: String,
    pub member_external_id: Option<String>,
    /// Only the accounts under these organizational units (and their children); empty = every account.
    pub organizational_units: Vec<String>,
    /// The regions each new resource syncs.
    pub regions: Vec<String>,
}

impl DiscoverySettings {
    pub fn validate(self) -> Result<DiscoverySettings, AppError> {
        let role = &self.management_role_arn;
        if !(role.starts_with("arn:aws") && role.contains(":iam::") && role.contains(":role/")) {
            return Err(AppError::InvalidParam(format!(
                "management_role_arn '{role}' must be an IAM role ARN"
            )));
        }
        let name_ok = self
            .member_role_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c));
        if self.member_role_name.is_empty() || self.member_role_name.len() > 64 || !name_ok {
            return Err(AppError::InvalidParam(format!(
                "member_role_name '{}' must be an IAM role name",
                self.member_role_name
            )));
        }
        for unit in &self.organizational_units {
            let ok = unit.starts_with("ou-") || unit.starts_with("r-");
            if !ok
                || unit.len() > 68
                || !unit.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(AppError::InvalidParam(format!(
                    "organizational_units: '{unit}' is not an organizational unit or root id"
                )));
            }
        }
        Ok(DiscoverySettings {
            regions: validate_regions(self.regions)?,
            ..self
        })
    }

    fn member_role_arn(&self, account_id: &str) -> String {
        let partition = self.regions.first().map_or("aws", |r| partition_of(r));
        format!(
            "arn:{partition}:iam::{account_id}:role/{}",
            self.member_role_name
        )
    }
}

/// What one discovery does to the registry.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DiscoveryPlan {
    pub register: Vec<KmsResource>,
    /// Auto-added resources whose organization status changed.
    pub mark: Vec<KmsResource>,
    /// Active accounts in scope that a resource registered by hand syncs already.
    pub registered_by_hand: Vec<String>,
    pub unchanged: usize,
}

/// The name of an auto-added resource.
pub fn auto_name(account_id: &str) -> String {
    format!("org-{account_id}")
}

/// `in_scope`: the accounts under the wanted units (every account when no unit is named); `all`: every
/// account of the organization, which tells an account that left from one outside the units.
pub fn plan(
    settings: &DiscoverySettings,
    in_scope: &[OrgAccount],
    all: &[OrgAccount],
    registered: &[KmsResource],
    now: Timestamp,
    mut new_id: impl FnMut() -> Uuid,
) -> DiscoveryPlan {
    let mut plan = DiscoveryPlan::default();
    let organization: BTreeMap<&str, &OrgAccount> =
        all.iter().map(|a| (a.id.as_str(), a)).collect();
    for kms in registered.iter().filter(|k| k.auto_added) {
        let status = match organization.get(kms.account_id.as_str()) {
            None => OrgStatus::Left,
            Some(account) if account.state == "ACTIVE" => OrgStatus::Active,
            Some(_) => OrgStatus::Suspended,
        };
        if kms.org_status == Some(status) {
            plan.unchanged += 1;
        } else {
            plan.mark.push(KmsResource {
                org_status: Some(status),
                updated_at: now,
                ..kms.clone()
            });
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for account in in_scope.iter().filter(|a| a.state == "ACTIVE") {
        if !seen.insert(account.id.as_str()) {
            continue;
        }
        match registered.iter().find(|k| k.account_id == account.id) {
            Some(kms) if !kms.auto_added => plan.registered_by_hand.push(account.id.clone()),
            Some(_) => {}
            None => plan.register.push(KmsResource {
                id: new_id(),
                name: auto_name(&account.id),
                account_id: account.id.clone(),
                regions: settings.regions.clone(),
                assume_role_arn: Some(settings.member_role_arn(&account.id)),
                assume_role_external_id: settings.member_external_id.clone(),
                created_at: now,
                updated_at: now,
                auto_added: true,
                org_status: Some(OrgStatus::Active),
                connection: None,
                acls: Vec::new(),
                archived: false,
            }),
        }
    }
    plan
}

/// What a discovery did, as the API and the logs show it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveryReport {
    /// Accounts the organization lists in scope, and how many of them are active.
    pub accounts_listed: usize,
    pub accounts_active: usize,
    /// Names of the resources registered now.
    pub registered: Vec<String>,
    /// Names of auto-added resources marked active again, suspended, or left.
    pub reactivated: Vec<String>,
    pub suspended: Vec<String>,
    pub left: Vec<String>,
    /// Active accounts that a resource registered by hand syncs already: left as they are.
    pub registered_by_hand: Vec<String>,
    /// Names of active accounts not registered because a resource of another account has the name.
    pub name_taken: Vec<String>,
    /// Auto-added resources whose status did not change.
    pub unchanged: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DiscoverySettings {
        DiscoverySettings {
            management_role_arn: "arn:aws:iam::999999999999:role/org-reader".into(),
            member_role_name: "cckm-sync".into(),
            member_external_id: None,
            organizational_units: vec![],
            regions: vec!["us-east-1".into()],
        }
        .validate()
        .unwrap()
    }

    fn account(id: &str, state: &str) -> OrgAccount {
        OrgAccount {
            id: id.into(),
            state: state.into(),
        }
    }

    fn run(
        in_scope: &[OrgAccount],
        all: &[OrgAccount],
        registered: &[KmsResource],
    ) -> DiscoveryPlan {
        plan(
            &settings(),
            in_scope,
            all,
            registered,
            chrono::Utc::now(),
            Uuid::new_v4,
        )
    }

    #[test]
    fn active_accounts_are_registered_with_the_member_role() {
        let org = [
            account("111111111111", "ACTIVE"),
            account("222222222222", "SUSPENDED"),
        ];
        let plan = run(&org, &org, &[]);
        assert_eq!(plan.register.len(), 1);
        let kms = &plan.register[0];
        assert_eq!(kms.name, "org-111111111111");
        assert_eq!(
            kms.assume_role_arn.as_deref(),
            Some("arn:aws:iam::111111111111:role/cckm-sync")
        );
        assert!(kms.auto_added);
        assert_eq!(kms.org_status, Some(OrgStatus::Active));
    }

    #[test]
    fn a_second_run_changes_nothing_and_hand_made_resources_are_left_alone() {
        let org = [
            account("111111111111", "ACTIVE"),
            account("333333333333", "ACTIVE"),
        ];
        let first = run(&org, &org, &[]);
        let mut registered = first.register.clone();
        registered[1].auto_added = false;
        registered[1].org_status = None;
        let again = run(&org, &org, &registered);
        assert!(again.register.is_empty() && again.mark.is_empty());
        assert_eq!(again.unchanged, 1);
        assert_eq!(again.registered_by_hand, vec!["333333333333".to_string()]);
    }

    #[test]
    fn suspended_and_departed_accounts_are_marked_not_removed() {
        let org = [
            account("111111111111", "ACTIVE"),
            account("222222222222", "ACTIVE"),
        ];
        let registered = run(&org, &org, &[]).register;
        let now = [account("111111111111", "SUSPENDED")];
        let plan = run(&now, &now, &registered);
        let marks: Vec<_> = plan
            .mark
            .iter()
            .map(|k| (k.account_id.as_str(), k.org_status))
            .collect();
        assert_eq!(
            marks,
            vec![
                ("111111111111", Some(OrgStatus::Suspended)),
                ("222222222222", Some(OrgStatus::Left))
            ]
        );
        // Back and active: marked active again.
        let back = run(&org, &org, &plan.mark);
        assert!(
            back.mark
                .iter()
                .all(|k| k.org_status == Some(OrgStatus::Active))
        );
        assert_eq!(back.mark.len(), 2);
    }

    #[test]
    fn an_account_outside_the_units_is_not_taken_for_one_that_left() {
        let org = [
            account("111111111111", "ACTIVE"),
            account("222222222222", "ACTIVE"),
        ];
        let registered = run(&org, &org, &[]).register;
        let plan = run(&org[..1], &org, &registered);
        assert!(plan.mark.is_empty());
        assert_eq!(plan.unchanged, 2);
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut bad = settings();
        bad.member_role_name = "no spaces".into();
        assert!(bad.validate().is_err());
        let mut bad = settings();
        bad.organizational_units = vec!["root".into()];
        assert!(bad.validate().is_err());
        let mut bad = settings();
        bad.management_role_arn = "org-reader".into();
        assert!(bad.validate().is_err());
    }
}
