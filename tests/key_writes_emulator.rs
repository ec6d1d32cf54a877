//! Key writes in AWS on the emulator (issue 9): the bodies Terraform's `ciphertrust_aws_key` and Ansible's
//! `cckm_aws_key` send make the change in AWS (checked with the SDK, not with our own answer), and the
//! answer is the key as AWS holds it after it. Bad input is refused before AWS is called: no key is made.

mod common;

use aws_sdk_kms::types::KeyState;
use common::emulator::shared;
use common::*;
use serde_json::{Value, json};

const KEYS: &str = "/api/v1/cckm/aws/keys";

async fn action(
    entry: &cckm_aws_sync::entry::Entry,
    id: &str,
    name: &str,
    body: Option<Value>,
) -> Value {
    let (status, answer) = request(entry, "POST", &format!("{KEYS}/{id}/{name}"), body).await;
    assert!(status == 200 || status == 201, "{name}: {status} {answer}");
    answer
}

async fn describe(kms: &aws_sdk_kms::Client, key_id: &str) -> aws_sdk_kms::types::KeyMetadata {
    let described = kms.describe_key().key_id(key_id).send().await.unwrap();
    described.key_metadata.unwrap()
}

async fn key_count(kms: &aws_sdk_kms::Client) -> usize {
    kms.list_keys().send().await.unwrap().keys().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_write_changes_the_key_in_aws_and_answers_the_key_after_it() {
    let stack = shared().stack().await;
    let account = random_account();
    register_kms(
        &stack.entry,
        "writes",
        &account,
        &["us-east-1", "eu-west-1"],
    )
    .await;
    let kms = shared().kms_in(&account, "us-east-1").await;

    // resource_aws_key.go create: Go zero values for what the plan leaves unset.
    let body = json!({"kms": "writes", "region": "us-east-1", "external_accounts": null,
        "key_admins": null, "key_admins_roles": null, "key_users": null, "key_users_roles": null,
        "policytemplate": null, "aws_param": {"Alias": "payments", "BypassPolicyLockoutSafetyCheck": false,
        "CustomerMasterKeySpec": "", "Description": "card data", "KeyUsage": "", "MultiRegion": false,
        "Policy": null, "Tags": [{"TagKey": "env", "TagValue": "prod"}], "Origin": ""}});
    let (status, created) = request(&stack.entry, "POST", KEYS, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let key_id = created["aws_param"]["KeyID"].as_str().unwrap().to_string();
    let described = describe(&kms, &key_id).await;
    assert_eq!(described.description(), Some("card data"));
    assert_eq!(created["aws_param"]["Alias"], json!(["alias/payments"]));
    assert_eq!(
        created["aws_param"]["Tags"],
        json!([{"TagKey": "env", "TagValue": "prod"}])
    );
    assert_eq!(created["kms"], "writes");
    let aliases = kms.list_aliases().key_id(&key_id).send().await.unwrap();
    assert_eq!(aliases.aliases()[0].alias_name(), Some("alias/payments"));
    // The read-back is stored: the key list has it at once.
    assert_eq!(
        list_keys(&stack.entry, &format!("kms=writes&keyid={key_id}"))
            .await
            .len(),
        1
    );

    let answer = action(
        &stack.entry,
        &id,
        "add-alias",
        Some(json!({"alias": "cards"})),
    )
    .await;
    // AWS lists aliases in no promised order.
    let mut aliases: Vec<&str> = answer["aws_param"]["Alias"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    aliases.sort();
    assert_eq!(aliases, ["alias/cards", "alias/payments"]);
    let answer = action(
        &stack.entry,
        &id,
        "delete-alias",
        Some(json!({"alias": "alias/payments"})),
    )
    .await;
    assert_eq!(answer["aws_param"]["Alias"], json!(["alias/cards"]));
    let answer = action(
        &stack.entry,
        &id,
        "update-description",
        Some(json!({"description": "pci"})),
    )
    .await;
    assert_eq!(answer["aws_param"]["Description"], "pci");
    // Terraform's add-tags spelling, then Ansible's remove-tags.
    let tags = json!({"tags": [{"tag_key": "team", "tag_value": "cards"}]});
    action(&stack.entry, &id, "add-tags", Some(tags)).await;
    let answer = action(
        &stack.entry,
        &id,
        "remove-tags",
        Some(json!({"tags": ["env"]})),
    )
    .await;
    assert_eq!(
        answer["aws_param"]["Tags"],
        json!([{"TagKey": "team", "TagValue": "cards"}])
    );
    let listed = kms
        .list_resource_tags()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.tags().len(), 1);

    let policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "root", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": "kms:*", "Resource": "*"}]});
    let answer = action(
        &stack.entry,
        &id,
        "policy",
        Some(json!({"Policy": policy, "policytemplate": null})),
    )
    .await;
    let stored: Value =
        serde_json::from_str(answer["aws_param"]["Policy"].as_str().unwrap()).unwrap();
    assert_eq!(stored, policy);

    let answer = action(
        &stack.entry,
        &id,
        "enable-auto-rotation",
        Some(json!({"rotation_period_in_days": 180})),
    )
    .await;
    assert_eq!(answer["aws_param"]["KeyRotationEnabled"], true);
    assert_eq!(answer["aws_param"]["RotationPeriodInDays"], 180);
    action(&stack.entry, &id, "rotate-material", None).await;
    let rotations = kms
        .list_key_rotations()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(rotations.rotations().len(), 1);
    let answer = action(&stack.entry, &id, "disable-auto-rotation", None).await;
    assert_eq!(answer["aws_param"]["KeyRotationEnabled"], false);

    let answer = action(&stack.entry, &id, "disable", None).await;
    assert_eq!(answer["aws_param"]["KeyState"], "Disabled");
    let answer = action(&stack.entry, &id, "enable", None).await;
    assert_eq!(answer["aws_param"]["Enabled"], true);
    let answer = action(
        &stack.entry,
        &id,
        "schedule-deletion",
        Some(json!({"days": 7})),
    )
    .await;
    assert_eq!(answer["aws_param"]["KeyState"], "PendingDeletion");
    assert!(answer["deletion_date"].is_string(), "{answer}");
    let state = describe(&kms, &key_id).await;
    assert_eq!(state.key_state(), Some(&KeyState::PendingDeletion));
    let answer = action(&stack.entry, &id, "cancel-deletion", None).await;
    assert_eq!(answer["aws_param"]["KeyState"], "Disabled");

    // AWS refuses what its state does not allow: 409, with AWS's reason.
    let refused = request(
        &stack.entry,
        "POST",
        &format!("{KEYS}/{id}/add-alias"),
        Some(json!({"alias": "cards"})),
    )
    .await;
    assert_cckm_error(&refused, 409, 4);
    assert!(
        refused.1["message"]
            .as_str()
            .unwrap()
            .contains("AlreadyExists"),
        "{}",
        refused.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_region_key_replicates_and_moves_its_primary_within_the_resource_regions() {
    let stack = shared().stack().await;
    let account = random_account();
    register_kms(
        &stack.entry,
        "regions",
        &account,
        &["us-east-1", "eu-west-1"],
    )
    .await;
    let body = json!({"kms": "regions", "region": "us-east-1",
        "aws_param": {"MultiRegion": true, "Description": "global"}});
    let (status, primary) = request(&stack.entry, "POST", KEYS, Some(body)).await;
    assert_eq!(status, 201, "{primary}");
    let id = primary["id"].as_str().unwrap().to_string();
    let key_id = primary["aws_param"]["KeyID"].as_str().unwrap().to_string();

    // A region the resource does not sync is refused before AWS is asked.
    let outside = request(
        &stack.entry,
        "POST",
        &format!("{KEYS}/{id}/replicate-key"),
        Some(json!({"replica_region": "ap-south-1"})),
    )
    .await;
    assert_cckm_error(&outside, 400, 9);
    let replica = action(
        &stack.entry,
        &id,
        "replicate-key",
        Some(json!({"replica_region": "eu-west-1", "aws_param": {"Description": "copy"}})),
    )
    .await;
    assert_eq!(replica["region"], "eu-west-1");
    assert_eq!(replica["aws_param"]["KeyID"], key_id.as_str());
    assert_ne!(replica["id"], primary["id"]);
    let eu = shared().kms_in(&account, "eu-west-1").await;
    // moto makes the replica a copy of the primary (it ignores the replica's own description).
    let copy = describe(&eu, &key_id).await;
    assert_eq!(copy.arn(), replica["aws_param"]["Arn"].as_str());

    action(
        &stack.entry,
        &id,
        "update-primary-region",
        Some(json!({"PrimaryRegion": "eu-west-1"})),
    )
    .await;
    let moved = describe(&eu, &key_id).await;
    let primary_region = moved
        .multi_region_configuration()
        .and_then(|c| c.primary_key())
        .and_then(|p| p.region());
    assert_eq!(primary_region, Some("eu-west-1"));
    let stored = list_keys(&stack.entry, &format!("keyid={key_id}&region=eu-west-1")).await;
    assert_eq!(
        stored[0]["aws_param"]["MultiRegionConfiguration"]["MultiRegionKeyType"], "PRIMARY",
        "{stored:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_writes_are_refused_by_name_and_nothing_is_made_in_aws() {
    let stack = shared().stack().await;
    let account = random_account();
    register_kms(&stack.entry, "strict", &account, &["us-east-1"]).await;
    let kms = shared().kms_in(&account, "us-east-1").await;
    for (body, status, code, names) in [
        (
            json!({"kms": "strict", "region": "us-east-1", "aws_param": {"CustomerMasterKeySpec": "AES_256"}}),
            400,
            9,
            "CustomerMasterKeySpec",
        ),
        (
            json!({"kms": "strict", "region": "eu-west-1"}),
            400,
            9,
            "region",
        ),
        (
            json!({"kms": "strict", "region": "us-east-1", "key_users": ["bob"]}),
            400,
            9,
            "key_users",
        ),
        (
            json!({"kms": "strict", "region": "us-east-1", "aws_param": {"Origin": "AWS_CLOUDHSM"}}),
            400,
            9,
            "Origin",
        ),
        (
            json!({"kms": "nobody", "region": "us-east-1"}),
            404,
            16,
            "nobody",
        ),
    ] {
        let refused = request(&stack.entry, "POST", KEYS, Some(body.clone())).await;
        assert_cckm_error(&refused, status, code);
        assert!(
            refused.1["message"].as_str().unwrap().contains(names),
            "{body}: {}",
            refused.1
        );
    }
    assert_eq!(key_count(&kms).await, 0);

    let (_, key) = request(
        &stack.entry,
        "POST",
        KEYS,
        Some(json!({"kms": "strict", "region": "us-east-1"})),
    )
    .await;
    let id = key["id"].as_str().unwrap();
    for (name, body, status, code) in [
        ("schedule-deletion", json!({"days": 3}), 400, 9),
        (
            "import-material",
            json!({"source_key_identifier": "x"}),
            400,
            9,
        ),
        ("rotate", json!({}), 400, 9),
        ("no-such-action", json!({}), 404, 16),
        (
            "add-tags",
            json!({"tags": [{"tag_value": "no key"}]}),
            400,
            9,
        ),
    ] {
        let refused = request(
            &stack.entry,
            "POST",
            &format!("{KEYS}/{id}/{name}"),
            Some(body),
        )
        .await;
        assert_cckm_error(&refused, status, code);
    }
    let described = kms
        .describe_key()
        .key_id(key["aws_param"]["KeyID"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(described.key_state(), Some(&KeyState::Enabled));
    assert_eq!(key_count(&kms).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ansibles_reads_public_key_and_rotation_status_and_imported_material_deletion() {
    let stack = shared().stack().await;
    let account = random_account();
    register_kms(&stack.entry, "reads", &account, &["us-east-1"]).await;
    let kms = shared().kms_in(&account, "us-east-1").await;
    let create = |spec: &str, usage: &str, origin: &str| {
        json!({"kms": "reads", "region": "us-east-1",
               "aws_param": {"CustomerMasterKeySpec": spec, "KeyUsage": usage, "Origin": origin}})
    };
    let (_, signing) = request(
        &stack.entry,
        "POST",
        KEYS,
        Some(create("RSA_2048", "SIGN_VERIFY", "")),
    )
    .await;
    let id = signing["id"].as_str().unwrap();
    let (status, answer) = request(
        &stack.entry,
        "GET",
        &format!("{KEYS}/{id}/download-public-key"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let key_id = signing["aws_param"]["KeyID"].as_str().unwrap();
    let der = kms
        .get_public_key()
        .key_id(key_id)
        .send()
        .await
        .unwrap()
        .public_key
        .unwrap();
    use base64::Engine;
    let body: String = answer["public_key"]
        .as_str()
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    assert!(
        answer["public_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----\n")
    );
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap(),
        der.into_inner()
    );

    // A symmetric key has none: AWS's refusal, 400.
    let (_, symmetric) = request(&stack.entry, "POST", KEYS, Some(create("", "", ""))).await;
    let sid = symmetric["id"].as_str().unwrap();
    let refused = request(
        &stack.entry,
        "GET",
        &format!("{KEYS}/{sid}/download-public-key"),
        None,
    )
    .await;
    assert_cckm_error(&refused, 400, 9);
    action(&stack.entry, sid, "enable-auto-rotation", Some(json!({}))).await;
    let status = action(&stack.entry, sid, "get-key-rotation-status", None).await;
    assert_eq!(status["KeyRotationEnabled"], true, "{status}");
    assert_eq!(status["RotationPeriodInDays"], 365, "{status}");

    // An imported key: its material deleted, it waits for new material again.
    let (_, external) = request(&stack.entry, "POST", KEYS, Some(create("", "", "EXTERNAL"))).await;
    assert_eq!(
        external["aws_param"]["KeyState"], "PendingImport",
        "{external}"
    );
    let eid = external["id"].as_str().unwrap();
    let refused = request(
        &stack.entry,
        "POST",
        &format!("{KEYS}/{eid}/delete-material"),
        Some(json!({"key_material_id": 7})),
    )
    .await;
    assert_cckm_error(&refused, 400, 9);
    let answer = action(&stack.entry, eid, "delete-material", Some(json!({}))).await;
    assert_eq!(answer["aws_param"]["KeyState"], "PendingImport", "{answer}");
}
