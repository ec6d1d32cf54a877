//! AWS connections on the emulator (issue 9): created, read, patched and deleted as Terraform's
//! `ciphertrust_aws_connection` sends them (every field, Go's empty strings for the unset ones); the secret
//! access key kept in Secrets Manager only, never in DynamoDB or an answer; a KMS resource that names a
//! connection syncs with its keys or its role; a connection in use cannot be deleted.

mod common;

use common::emulator::{Stack, shared};
use common::*;
use serde_json::{Value, json};

const CONNECTIONS: &str = "/api/v1/connectionmgmt/services/aws/connections";

/// Terraform's create body: every field of its struct, zero values where the configuration has none.
fn terraform_body(name: &str, access: &str, secret: &str, role: &str) -> Value {
    json!({"uri": "", "account": "", "createdAt": "", "updatedAt": "", "service": "", "category": "",
           "resource_url": "", "last_connection_ok": false, "last_connection_error": "",
           "last_connection_at": "", "Application": {}, "DevAccount": {}, "id": "", "name": name,
           "description": "", "access_key_id": access, "assume_role_arn": role, "assume_role_external_id": "",
           "aws_region": "", "aws_sts_regional_endpoints": "", "cloud_name": "", "is_role_anywhere": false,
           "iam_role_anywhere": null, "labels": {}, "meta": {}, "products": null,
           "secret_access_key": secret})
}

/// Static keys of a new IAM user of `account`, made in moto with boto3 (this crate has no IAM client):
/// moto gives calls with them to that account, so a connection with them reaches it without a role.
async fn access_keys_of(account: &str) -> (String, String) {
    let emulator = shared();
    let credentials = emulator.account_credentials(account).await;
    let script = "import boto3, sys\n\
        iam = boto3.client('iam', endpoint_url=sys.argv[1], region_name='us-east-1',\n\
            aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3], aws_session_token=sys.argv[4])\n\
        iam.create_user(UserName='cckm-sync-user')\n\
        key = iam.create_access_key(UserName='cckm-sync-user')['AccessKey']\n\
        print(key['AccessKeyId'], key['SecretAccessKey'])\n";
    let output = std::process::Command::new(common::emulator::python())
        .args(["-c", script, &emulator.endpoint])
        .args([
            credentials.access_key_id(),
            credentials.secret_access_key(),
            credentials.session_token().unwrap_or_default(),
        ])
        .output()
        .expect("run boto3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (access, secret) = text.trim().split_once(' ').expect("two keys");
    (access.to_string(), secret.to_string())
}

async fn secrets_text(stack: &Stack) -> String {
    let dynamodb = stack.dynamodb();
    let items = dynamodb
        .scan()
        .table_name(&stack.config.kms_table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    format!("{items:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_keeps_its_secret_in_secrets_manager_only() {
    let stack = shared().stack().await;
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let (status, created) = request(
        &stack.entry,
        "POST",
        CONNECTIONS,
        Some(terraform_body(
            "prod-keys",
            "AKIAIOSFODNN7EXAMPLE",
            secret,
            "",
        )),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_fields(
        &created,
        &[
            "category",
            "service",
            "resource_url",
            "last_connection_error",
            "name",
            "description",
        ],
    );
    assert_eq!(created["access_key_id"], "AKIAIOSFODNN7EXAMPLE");
    assert!(!created.to_string().contains(secret), "{created}");
    assert!(
        !secrets_text(&stack).await.contains(secret),
        "no secret in DynamoDB"
    );
    let id = created["id"].as_str().unwrap();
    for key in [id, "prod-keys"] {
        let (status, read) =
            request(&stack.entry, "GET", &format!("{CONNECTIONS}/{key}"), None).await;
        assert_eq!(status, 200, "{read}");
        assert_eq!(read["id"], id);
        assert!(!read.to_string().contains(secret));
    }
    // In Secrets Manager, under the stack's prefix.
    let manager = aws_sdk_secretsmanager::Client::new(&stack.sdk);
    let name = format!("{}/connections/{id}", stack.config.secrets_prefix);
    let kept = manager
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    assert!(kept.secret_string().unwrap().contains(secret));

    // Terraform's update: every field, empty strings for the unset ones, the name empty too.
    let patch = terraform_body("", "", "", "");
    let path = format!("{CONNECTIONS}/{id}");
    let patch_it = |body: Value| request(&stack.entry, "PATCH", &path, Some(body));
    let (status, patched) = patch_it(patch).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "prod-keys");
    assert_eq!(patched["access_key_id"], "AKIAIOSFODNN7EXAMPLE");
    // New keys replace the secret's value.
    let rotated = terraform_body("", "AKIAROTATEDEXAMPLE", "rotated-secret-value", "");
    let (status, _) = patch_it(rotated).await;
    assert_eq!(status, 200);
    let kept = manager
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    assert!(
        kept.secret_string()
            .unwrap()
            .contains("rotated-secret-value")
    );

    let (status, page) = request(
        &stack.entry,
        "GET",
        &format!("{CONNECTIONS}?name=prod-keys"),
        None,
    )
    .await;
    assert_eq!((status, page["total"].clone()), (200, json!(1)), "{page}");
    let (status, _) = request(
        &stack.entry,
        "DELETE",
        &format!("{CONNECTIONS}/prod-keys"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = request(&stack.entry, "GET", &format!("{CONNECTIONS}/{id}"), None).await;
    assert_eq!(status, 404);
    let gone = manager.describe_secret().secret_id(&name).send().await;
    assert!(
        gone.is_err() || gone.unwrap().deleted_date.is_some(),
        "the secret goes too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_resource_syncs_through_its_connection() {
    let stack = shared().stack().await;
    // Static keys of another account: the sync reads that account's keys with them, no role needed.
    let keyed = random_account();
    let (access, secret) = access_keys_of(&keyed).await;
    shared()
        .kms_in(&keyed, "us-east-1")
        .await
        .create_key()
        .send()
        .await
        .unwrap();
    let (status, _) = request(
        &stack.entry,
        "POST",
        CONNECTIONS,
        Some(terraform_body("with-keys", &access, &secret, "")),
    )
    .await;
    assert_eq!(status, 201);
    // A role only: assumed with the function's own credentials.
    let roled = random_account();
    shared()
        .kms_in(&roled, "us-east-1")
        .await
        .create_key()
        .send()
        .await
        .unwrap();
    let role = format!("arn:aws:iam::{roled}:role/cckm-sync");
    let (status, _) = request(
        &stack.entry,
        "POST",
        CONNECTIONS,
        Some(terraform_body("with-role", "", "", &role)),
    )
    .await;
    assert_eq!(status, 201);

    for (name, account, connection) in [
        ("keyed", &keyed, "with-keys"),
        ("roled", &roled, "with-role"),
    ] {
        // Terraform's KMS create: the role fields empty, the connection by name.
        let body = json!({"account_id": account, "connection": connection, "name": name,
                          "regions": ["us-east-1"], "assume_role_arn": "", "assume_role_external_id": ""});
        let (status, kms) = request(&stack.entry, "POST", "/api/v1/cckm/aws/kms", Some(body)).await;
        assert_eq!(status, 201, "{kms}");
        assert_eq!(kms["connection"], connection);
        // Terraform's update: name and account empty.
        let update = json!({"account_id": "", "connection": connection, "name": "",
                            "regions": ["us-east-1"], "assume_role_arn": "", "assume_role_external_id": ""});
        let (status, updated) = request(
            &stack.entry,
            "PATCH",
            &format!("/api/v1/cckm/aws/kms/{name}"),
            Some(update),
        )
        .await;
        assert_eq!(status, 200, "{updated}");
    }
    let job = start_job(&stack.entry, json!({"synchronize_all": true})).await;
    stack.drain_queue().await;
    let done = get_job(&stack.entry, &job).await;
    assert_eq!(done["overall_status"], "completed", "{done}");
    for (name, account) in [("keyed", &keyed), ("roled", &roled)] {
        let keys = list_keys(&stack.entry, &format!("kms={name}")).await;
        assert_eq!(keys.len(), 1, "the key of {account}");
        assert_eq!(keys[0]["aws_param"]["AWSAccountId"], account.as_str());
    }

    let refused = request(
        &stack.entry,
        "DELETE",
        &format!("{CONNECTIONS}/with-keys"),
        None,
    )
    .await;
    assert_cckm_error(&refused, 409, 4);
    assert!(refused.1["message"].as_str().unwrap().contains("keyed"));
    let unknown =
        json!({"account_id": keyed, "connection": "nope", "name": "x", "regions": ["us-east-1"]});
    let refused = request(&stack.entry, "POST", "/api/v1/cckm/aws/kms", Some(unknown)).await;
    assert_cckm_error(&refused, 400, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_tests_and_account_lookups_reach_the_account_of_the_credentials() {
    let stack = shared().stack().await;
    let account = random_account();
    let (access, secret) = access_keys_of(&account).await;

    // Ansible's connection_aws_test: unsaved credentials, tested and never stored.
    let unsaved =
        json!({"access_key_id": access, "secret_access_key": secret, "cloud_name": "aws"});
    let (status, answer) = request(
        &stack.entry,
        "POST",
        "/api/v1/connectionmgmt/services/aws/connection-test",
        Some(unsaved),
    )
    .await;
    assert_eq!(
        (status, &answer["connection_ok"]),
        (200, &json!(true)),
        "{answer}"
    );
    let (_, page) = request(&stack.entry, "GET", CONNECTIONS, None).await;
    assert!(
        !page.to_string().contains("connection-test"),
        "nothing saved: {page}"
    );

    // connection_test on a saved one: the answer, and Terraform's last_connection_* on the connection.
    let body = terraform_body("tested", &access, &secret, "");
    let (status, saved) = request(&stack.entry, "POST", CONNECTIONS, Some(body)).await;
    assert_eq!(status, 201, "{saved}");
    assert_eq!(saved["last_connection_ok"], Value::Null);
    let (status, answer) = request(
        &stack.entry,
        "POST",
        &format!("{CONNECTIONS}/tested/test"),
        None,
    )
    .await;
    assert_eq!(
        (status, &answer["connection_ok"]),
        (200, &json!(true)),
        "{answer}"
    );
    let (_, read) = request(&stack.entry, "GET", &format!("{CONNECTIONS}/tested"), None).await;
    assert_eq!(read["last_connection_ok"], true);
    assert!(read["last_connection_at"].is_string(), "{read}");
    assert!(!read.to_string().contains(&secret));

    // Terraform's ciphertrust_aws_account_details and Ansible's accounts: the account the keys reach, and
    // through a role of another account, that account.
    let (status, details) = request(
        &stack.entry,
        "POST",
        "/api/v1/cckm/aws/accounts",
        Some(json!({"connection": "tested", "assume_role_arn": "", "assume_role_external_id": ""})),
    )
    .await;
    assert_eq!(status, 200, "{details}");
    assert_eq!(details["account_id"], account.as_str());
    assert!(
        details["regions"]
            .as_array()
            .unwrap()
            .contains(&json!("us-east-1"))
    );
    let other = random_account();
    let role = format!("arn:aws:iam::{other}:role/cckm-sync");
    let (_, through) = request(
        &stack.entry,
        "POST",
        "/api/v1/cckm/aws/accounts",
        Some(json!({"connection": "tested", "assume_role_arn": role})),
    )
    .await;
    assert_eq!(through["account_id"], other.as_str(), "{through}");
    let unknown = request(
        &stack.entry,
        "POST",
        "/api/v1/cckm/aws/accounts",
        Some(json!({"connection": "nobody"})),
    )
    .await;
    assert_cckm_error(&unknown, 404, 16);

    // Ansible's cckm_aws_alias_info: whether the alias is taken in the resource's region, bare or not.
    register_kms(&stack.entry, "aliases", &account, &["us-east-1"]).await;
    let kms = shared().kms_in(&account, "us-east-1").await;
    let key_id = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    kms.create_alias()
        .alias_name("alias/taken")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();
    for (alias, exists) in [("taken", true), ("alias/taken", true), ("free", false)] {
        let (status, answer) = request(
            &stack.entry,
            "POST",
            "/api/v1/cckm/aws/alias/verify",
            Some(json!({"alias": alias, "region": "us-east-1", "kms": "aliases"})),
        )
        .await;
        assert_eq!(
            (status, &answer["exists"]),
            (200, &json!(exists)),
            "{alias}: {answer}"
        );
    }
}
