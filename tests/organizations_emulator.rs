//! AWS Organizations discovery on the emulator (issue 11): an organization of 20 member accounts in 3
//! organizational units, made through the real SDK in moto. A discovery registers exactly the active
//! accounts; a second run changes nothing; an account that left or was suspended is kept and marked, its
//! keys stay, and no sync job counts it as failed; the scheduled sync discovers before it syncs. One case runs
//! in memory, where units nest deeper than moto makes them easy to build.

mod common;

use aws_sdk_organizations::types::OrganizationFeatureSet;
use cckm_aws_sync::domain::organization::DiscoveryInput;
use cckm_aws_sync::domain::time::now;
use common::emulator::{Stack, shared};
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const MEMBER_ROLE: &str = "cckm-sync";
const REGION: &str = "us-east-1";

struct Org {
    client: aws_sdk_organizations::Client,
    management_role_arn: String,
    management_account: String,
    units: Vec<String>,
    /// Member accounts by unit, in creation order.
    members: Vec<Vec<String>>,
}

impl Org {
    /// A new organization whose units hold `sizes[i]` member accounts each.
    async fn with_units(sizes: &[usize]) -> Org {
        let emulator = shared();
        let management_account = random_account();
        let sdk = emulator
            .sdk_config_with(emulator.account_credentials(&management_account).await)
            .await;
        let client = aws_sdk_organizations::Client::new(&sdk);
        client
            .create_organization()
            .feature_set(OrganizationFeatureSet::All)
            .send()
            .await
            .expect("create organization");
        let roots = client.list_roots().send().await.expect("list roots");
        let root = roots.roots()[0].id().unwrap().to_string();
        let mut units = Vec::new();
        let mut members = Vec::new();
        for (n, size) in sizes.iter().enumerate() {
            let unit = client
                .create_organizational_unit()
                .parent_id(&root)
                .name(format!("unit-{n}"))
                .send()
                .await
                .expect("create unit")
                .organizational_unit
                .and_then(|u| u.id)
                .expect("unit id");
            let mut accounts = Vec::new();
            for m in 0..*size {
                let created = client
                    .create_account()
                    .account_name(format!("member-{n}-{m}"))
                    .email(format!("member-{n}-{m}@example.com"))
                    .send()
                    .await
                    .expect("create account");
                let id = created
                    .create_account_status
                    .and_then(|s| s.account_id)
                    .expect("account id");
                client
                    .move_account()
                    .account_id(&id)
                    .source_parent_id(&root)
                    .destination_parent_id(&unit)
                    .send()
                    .await
                    .expect("move account");
                accounts.push(id);
            }
            units.push(unit);
            members.push(accounts);
        }
        Org {
            client,
            management_role_arn: format!("arn:aws:iam::{management_account}:role/org-reader"),
            management_account,
            units,
            members,
        }
    }

    fn input(&self, units: &[String]) -> Value {
        json!({
            "management_role_arn": self.management_role_arn,
            "member_role_name": MEMBER_ROLE,
            "organizational_units": units,
            "regions": [REGION],
        })
    }

    async fn close(&self, account: &str) {
        self.client
            .close_account()
            .account_id(account)
            .send()
            .await
            .expect("close account");
    }
}

async fn discover(stack: &Stack, body: Value) -> Value {
    let (status, report) = request(
        &stack.entry,
        "POST",
        "/api/v1/cckm/aws/organization-discoveries",
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    report
}

async fn registered(stack: &Stack) -> Vec<Value> {
    let (status, page) =
        request(&stack.entry, "GET", "/api/v1/cckm/aws/kms?limit=1000", None).await;
    assert_eq!(status, 200, "{page}");
    let mut resources = page["resources"].as_array().cloned().unwrap_or_default();
    resources.sort_by_key(|k| k["account_id"].as_str().unwrap_or_default().to_string());
    resources
}

fn accounts_of(resources: &[Value]) -> BTreeSet<String> {
    resources
        .iter()
        .map(|k| k["account_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_registers_exactly_the_active_accounts_and_a_second_changes_nothing() {
    let stack = shared().stack().await;
    let org = Org::with_units(&[7, 7, 6]).await;
    let suspended = [org.members[0][3].clone(), org.members[2][0].clone()];
    for account in &suspended {
        org.close(account).await;
    }
    let active: BTreeSet<String> = org
        .members
        .iter()
        .flatten()
        .filter(|a| !suspended.contains(a))
        .cloned()
        .collect();
    assert_eq!(active.len(), 18);

    let report = discover(&stack, org.input(&org.units)).await;
    assert_eq!(report["accounts_listed"], 20, "{report}");
    assert_eq!(report["accounts_active"], 18, "{report}");
    assert_eq!(
        report["registered"].as_array().unwrap().len(),
        18,
        "{report}"
    );
    let resources = registered(&stack).await;
    assert_eq!(
        accounts_of(&resources),
        active,
        "exactly the active members"
    );
    for kms in &resources {
        let account = kms["account_id"].as_str().unwrap();
        assert_eq!(kms["name"], format!("org-{account}"));
        assert_eq!(kms["auto_added"], true);
        assert_eq!(kms["organization_status"], "active");
        assert_eq!(
            kms["assume_role_arn"],
            format!("arn:aws:iam::{account}:role/{MEMBER_ROLE}")
        );
        assert_eq!(kms["regions"], json!([REGION]));
    }

    let again = discover(&stack, org.input(&org.units)).await;
    assert_eq!(again["registered"], json!([]), "{again}");
    assert_eq!(again["unchanged"], 18, "{again}");
    for marks in ["reactivated", "suspended", "left"] {
        assert_eq!(again[marks], json!([]), "{again}");
    }
    assert_eq!(registered(&stack).await, resources, "nothing written");

    // Two units only: the third unit's accounts are outside, not gone.
    let narrower = discover(&stack, org.input(&org.units[..2])).await;
    assert_eq!(narrower["accounts_listed"], 14, "{narrower}");
    assert_eq!(narrower["left"], json!([]), "{narrower}");
    assert_eq!(registered(&stack).await, resources);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_that_leave_or_are_suspended_are_kept_marked_and_skipped_by_jobs() {
    let stack = shared().stack().await;
    let org = Org::with_units(&[2, 1]).await;
    let (leaving, closing, staying) = (
        org.members[0][0].clone(),
        org.members[0][1].clone(),
        org.members[1][0].clone(),
    );
    // The whole organization, the management account included.
    let report = discover(&stack, org.input(&[])).await;
    assert_eq!(
        report["registered"].as_array().unwrap().len(),
        4,
        "{report}"
    );
    assert!(accounts_of(&registered(&stack).await).contains(&org.management_account));
    for account in [&leaving, &closing, &staying] {
        let kms = shared().kms_in(account, REGION).await;
        kms.create_key().send().await.expect("create key");
    }
    let first = start_job(&stack.entry, json!({"synchronize_all": true})).await;
    stack.drain_queue().await;
    assert_eq!(
        get_job(&stack.entry, &first).await["overall_status"],
        "completed"
    );
    assert_eq!(list_keys(&stack.entry, "").await.len(), 3);

    org.client
        .remove_account_from_organization()
        .account_id(&leaving)
        .send()
        .await
        .expect("remove account");
    org.close(&closing).await;
    let report = discover(&stack, org.input(&[])).await;
    assert_eq!(
        report["left"],
        json!([format!("org-{leaving}")]),
        "{report}"
    );
    assert_eq!(
        report["suspended"],
        json!([format!("org-{closing}")]),
        "{report}"
    );
    let resources = registered(&stack).await;
    assert_eq!(resources.len(), 4, "kept, not deleted");
    let status_of = |account: &str| {
        resources
            .iter()
            .find(|k| k["account_id"] == account)
            .map(|k| k["organization_status"].clone())
    };
    assert_eq!(status_of(&leaving), Some(json!("left")));
    assert_eq!(status_of(&closing), Some(json!("suspended")));

    let second = start_job(&stack.entry, json!({"synchronize_all": true})).await;
    stack.drain_queue().await;
    let job = get_job(&stack.entry, &second).await;
    assert_eq!(job["overall_status"], "completed", "{job}");
    assert_eq!(job["progress"]["units_failed"], 0, "{job}");
    assert_eq!(
        job["progress"]["units_total"], 2,
        "the management account and {staying}: {job}"
    );
    let keys = list_keys(&stack.entry, "").await;
    assert_eq!(keys.len(), 3, "their keys stay");
    assert!(keys.iter().all(|k| k["gone"] == false), "none flagged gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_sync_discovers_first_and_syncs_the_new_accounts() {
    let stack = shared().stack().await;
    let org = Org::with_units(&[2]).await;
    let mut app = stack.entry.app.clone();
    app.discovery = DiscoveryInput {
        management_role_arn: Some(org.management_role_arn.clone()),
        member_role_name: Some(MEMBER_ROLE.into()),
        organizational_units: Some(org.units.clone()),
        regions: Some(vec![REGION.into()]),
        ..DiscoveryInput::default()
    };
    let entry = entry_for(app);
    let scheduled = json!({"version": "0", "id": "1", "detail-type": "Scheduled Event",
                           "source": "aws.events", "account": OWN_ACCOUNT, "region": REGION,
                           "resources": [], "detail": {}});
    let answer = entry
        .handle(scheduled, "schedule", now() + chrono::Duration::minutes(1))
        .await
        .expect("answered");
    assert_eq!(answer["started"], true, "{answer}");
    let job = get_job(&entry, answer["job_id"].as_str().unwrap()).await;
    assert_eq!(
        job["progress"]["units_total"], 2,
        "both new accounts: {job}"
    );
    assert_eq!(
        accounts_of(&registered(&stack).await),
        org.members[0].iter().cloned().collect()
    );
}

#[tokio::test]
async fn a_discovery_without_its_inputs_is_refused_and_writes_nothing() {
    let stack = shared().stack().await;
    let (status, body) = request(
        &stack.entry,
        "POST",
        "/api/v1/cckm/aws/organization-discoveries",
        Some(json!({"member_role_name": MEMBER_ROLE, "regions": [REGION]})),
    )
    .await;
    assert_cckm_error(&(status, body.clone()), 400, 9);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("management_role_arn"),
        "{body}"
    );
    let bad_unit = json!({"management_role_arn": "arn:aws:iam::111122223333:role/org-reader",
                          "member_role_name": MEMBER_ROLE, "regions": [REGION],
                          "organizational_units": ["not-a-unit"]});
    let refused = request(
        &stack.entry,
        "POST",
        "/api/v1/cckm/aws/organization-discoveries",
        Some(bad_unit),
    )
    .await;
    assert_cckm_error(&refused, 400, 9);
    // A management account without an organization: AWS refuses, and so do we.
    let no_org = json!({"management_role_arn": format!("arn:aws:iam::{}:role/org-reader", random_account()),
                        "member_role_name": MEMBER_ROLE, "regions": [REGION]});
    let refused = request(
        &stack.entry,
        "POST",
        "/api/v1/cckm/aws/organization-discoveries",
        Some(no_org),
    )
    .await;
    assert_eq!(refused.0, 409, "{}", refused.1);
    assert!(registered(&stack).await.is_empty());
}

#[tokio::test]
async fn a_discovery_in_memory_walks_child_units_and_marks_what_left() {
    let (entry, parts) = memory_entry(100);
    let org = &parts.organization;
    // r-root > ou-a > ou-a-child; ou-b beside it.
    org.add_unit("ou-a", "r-root");
    org.add_unit("ou-a-child", "ou-a");
    org.add_unit("ou-b", "r-root");
    org.put_account("111111111111", "ACTIVE", "ou-a");
    org.put_account("222222222222", "ACTIVE", "ou-a-child");
    org.put_account("333333333333", "ACTIVE", "ou-b");
    let body = json!({"management_role_arn": "arn:aws:iam::999999999999:role/org-reader",
                      "member_role_name": MEMBER_ROLE, "regions": [REGION],
                      "organizational_units": ["ou-a"]});
    let discover = || {
        request(
            &entry,
            "POST",
            "/api/v1/cckm/aws/organization-discoveries",
            Some(body.clone()),
        )
    };
    let (status, report) = discover().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["registered"],
        json!(["org-111111111111", "org-222222222222"]),
        "{report}"
    );
    org.remove_account("222222222222");
    org.put_account("111111111111", "SUSPENDED", "ou-a");
    let (_, report) = discover().await;
    assert_eq!(report["left"], json!(["org-222222222222"]), "{report}");
    assert_eq!(report["suspended"], json!(["org-111111111111"]), "{report}");
}
