//! CCKM's access control lists on a KMS resource: which users and groups may do which key actions in it,
//! beyond what their role allows (`POST /v1/cckm/aws/kms/{id}/update-acls`). An update grants
//! (`permit: true`, the default) or revokes (`permit: false`) actions, entry by entry; a grantee left with
//! no action leaves the list.

use super::AppError;
use super::given;
use super::list::parse_json_body;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The actions an ACL entry may name, as CCKM's AWS ACLs name them.
pub const ACTIONS: [&str; 15] = [
    "keycreate",
    "keyupdate",
    "keymaterialimport",
    "keymaterialdelete",
    "keyrotate",
    "keydelete",
    "keycanceldelete",
    "keysynchronize",
    "keyupload",
    "viewnative",
    "viewbyok",
    "reportview",
    "reportcreate",
    "reportdelete",
    "reportdownload",
];

/// The action that lets a user read a resource's keys without the read-only role.
pub const VIEW: &str = "viewnative";

/// One grantee's actions on a KMS resource: a user (by id or user name) or a group, never both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub actions: BTreeSet<String>,
}

impl AclEntry {
    fn same_grantee(&self, other: &AclEntry) -> bool {
        self.user_id == other.user_id && self.group == other.group
    }
}

/// A validated `update-acls` body: per grantee, the actions granted or revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclUpdate {
    changes: Vec<(AclEntry, bool)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    acls: Vec<EntryBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryBody {
    user_id: Option<String>,
    group: Option<String>,
    permit: Option<bool>,
    actions: Option<Vec<String>>,
}

impl AclUpdate {
    pub fn parse(body: &[u8]) -> Result<AclUpdate, AppError> {
        let body: UpdateBody = parse_json_body(body)?;
        if body.acls.is_empty() {
            return Err(invalid("acls: give at least one entry"));
        }
        let changes = body
            .acls
            .into_iter()
            .enumerate()
            .map(|(i, entry)| {
                // Ansible sends an unset `permit` as null: a grant, as in CCKM.
                let permit = entry.permit.unwrap_or(true);
                let (user_id, group) = match (given(entry.user_id), given(entry.group)) {
                    (Some(_), Some(_)) | (None, None) => {
                        return Err(invalid(&format!("acls[{i}]: give either user_id or group")));
                    }
                    grantee => grantee,
                };
                let actions: BTreeSet<String> =
                    entry.actions.unwrap_or_default().into_iter().collect();
                if actions.is_empty() {
                    return Err(invalid(&format!(
                        "acls[{i}].actions: give at least one action"
                    )));
                }
                if let Some(unknown) = actions.iter().find(|a| !ACTIONS.contains(&a.as_str())) {
                    return Err(invalid(&format!(
                        "acls[{i}].actions: '{unknown}' is not an action ({})",
                        ACTIONS.join(", ")
                    )));
                }
                let grant = AclEntry {
                    user_id,
                    group,
                    actions,
                };
                Ok((grant, permit))
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        Ok(AclUpdate { changes })
    }

    /// The list after the update: grants add to the grantee's actions, revocations take away.
    pub fn apply(&self, current: &[AclEntry]) -> Vec<AclEntry> {
        let mut acls = current.to_vec();
        for (change, permit) in &self.changes {
            let slot = match acls.iter().position(|e| e.same_grantee(change)) {
                Some(i) => i,
                None => {
                    acls.push(AclEntry {
                        actions: BTreeSet::new(),
                        ..change.clone()
                    });
                    acls.len() - 1
                }
            };
            let actions = &mut acls[slot].actions;
            if *permit {
                actions.extend(change.actions.iter().cloned());
            } else {
                actions.retain(|a| !change.actions.contains(a));
            }
        }
        acls.retain(|e| !e.actions.is_empty());
        acls
    }
}

/// Whether `acls` grant `action` to the user (any of `user_ids`) or to one of `groups`.
pub fn permits(acls: &[AclEntry], user_ids: &[&str], groups: &[String], action: &str) -> bool {
    acls.iter().any(|entry| {
        let grantee = match (&entry.user_id, &entry.group) {
            (Some(user), _) => user_ids.contains(&user.as_str()),
            (None, Some(group)) => groups.contains(group),
            (None, None) => false,
        };
        grantee && entry.actions.contains(action)
    })
}

fn invalid(text: &str) -> AppError {
    AppError::InvalidParam(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update(body: serde_json::Value) -> Result<AclUpdate, AppError> {
        AclUpdate::parse(body.to_string().as_bytes())
    }

    #[test]
    fn grants_add_revocations_take_away_and_an_empty_grantee_leaves() {
        // Ansible's cckm_aws_kms update_acls: unset suboptions arrive as null.
        let granted = update(json!({"acls": [
            {"group": "cloud-team", "permit": true, "actions": ["keycreate", "viewnative"], "user_id": null},
            {"user_id": "alice", "permit": null, "actions": ["keysynchronize"], "group": null},
        ]}))
        .unwrap()
        .apply(&[]);
        assert_eq!(granted.len(), 2);
        assert!(permits(
            &granted,
            &["bob"],
            &["cloud-team".into()],
            "keycreate"
        ));
        assert!(permits(&granted, &["alice"], &[], "keysynchronize"));
        assert!(!permits(&granted, &["alice"], &[], "keycreate"));
        assert!(!permits(&granted, &["bob"], &["other".into()], "keycreate"));
        // A group named like a user grants nothing to that user.
        assert!(!permits(&granted, &["cloud-team"], &[], "keycreate"));

        let revoked = update(json!({"acls": [
            {"group": "cloud-team", "permit": false, "actions": ["keycreate"]},
            {"user_id": "alice", "permit": false, "actions": ["keysynchronize"]},
        ]}))
        .unwrap()
        .apply(&granted);
        assert_eq!(
            revoked,
            vec![AclEntry {
                user_id: None,
                group: Some("cloud-team".into()),
                actions: BTreeSet::from(["viewnative".to_string()]),
            }]
        );
        // Granting again what is held changes nothing.
        let again = update(json!({"acls": [{"group": "cloud-team", "actions": ["viewnative"]}]}))
            .unwrap()
            .apply(&revoked);
        assert_eq!(again, revoked);
    }

    #[test]
    fn bad_entries_are_refused_naming_the_entry() {
        for (body, says) in [
            (json!({"acls": []}), "acls"),
            (json!({"acls": [{"actions": ["keycreate"]}]}), "acls[0]"),
            (
                json!({"acls": [{"user_id": "a", "group": "g", "actions": ["keycreate"]}]}),
                "acls[0]",
            ),
            (
                json!({"acls": [{"user_id": "a", "actions": []}]}),
                "acls[0].actions",
            ),
            (
                json!({"acls": [{"user_id": "a", "actions": ["fly"]}]}),
                "'fly'",
            ),
            (
                json!({"acls": [{"user_id": "a", "actions": ["keycreate"], "colour": 1}]}),
                "colour",
            ),
        ] {
            match update(body.clone()) {
                Err(AppError::InvalidParam(text)) => assert!(text.contains(says), "{body}: {text}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
