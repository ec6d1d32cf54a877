//! Sign-in on the Cognito user pool served by moto (issue 9): `POST /api/v1/auth/tokens` as Terraform and
//! Ansible send it, the refresh grant, the pool's access tokens verified against its JWKS, and roles by
//! group (admin: everything; read-only: reads, writes 403 code 2; neither: 403). Wrong credentials get one
//! 401 whatever was wrong.

mod common;

use cckm_aws_sync::config::CognitoConfig;
use common::emulator::{Stack, shared};
use common::*;
use serde_json::{Value, json};

const SIGN_IN: &str = "/api/v1/auth/tokens";

/// A v2 request with this `Authorization` header value (or none).
async fn with_header(
    stack: &Stack,
    method: &str,
    path: &str,
    body: Option<Value>,
    authorization: Option<&str>,
) -> (u16, Value) {
    let mut event = v2_event(method, path, body.as_ref(), None);
    if let Some(value) = authorization {
        event["headers"]["authorization"] = Value::from(value);
    }
    call(&stack.entry, event).await
}

async fn bearer(
    stack: &Stack,
    method: &str,
    path: &str,
    body: Option<Value>,
    jwt: &str,
) -> (u16, Value) {
    with_header(stack, method, path, body, Some(&format!("Bearer {jwt}"))).await
}

fn pool(stack: &Stack) -> CognitoConfig {
    stack
        .config
        .auth
        .cognito
        .clone()
        .expect("the stack has a user pool")
}

/// A pool user with this password, in `group` when given.
async fn user(stack: &Stack, name: &str, password: &str, group: Option<&str>) {
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&stack.sdk);
    let pool_id = pool(stack).user_pool_id;
    cognito
        .admin_create_user()
        .user_pool_id(&pool_id)
        .username(name)
        .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
        .send()
        .await
        .expect("create user");
    cognito
        .admin_set_user_password()
        .user_pool_id(&pool_id)
        .username(name)
        .password(password)
        .permanent(true)
        .send()
        .await
        .expect("set password");
    if let Some(group) = group {
        cognito
            .admin_add_user_to_group()
            .user_pool_id(&pool_id)
            .username(name)
            .group_name(group)
            .send()
            .await
            .expect("add to group");
    }
}

/// Terraform's sign-in: every field, empty strings for the unset ones, and `Bearer` with no token.
async fn terraform_sign_in(stack: &Stack, username: &str, password: &str) -> (u16, Value) {
    let body = json!({"username": username, "password": password, "auth_domain": "", "domain": ""});
    with_header(stack, "POST", SIGN_IN, Some(body), Some("Bearer ")).await
}

/// Ansible's sign-in.
async fn ansible_sign_in(stack: &Stack, username: &str, password: &str) -> (u16, Value) {
    let body = json!({"grant_type": "password", "username": username, "password": password,
                      "auth_domain_path": ""});
    with_header(stack, "POST", SIGN_IN, Some(body), None).await
}

fn jwt(answer: &(u16, Value)) -> String {
    assert_eq!(answer.0, 200, "{}", answer.1);
    answer.1["jwt"].as_str().expect("jwt").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_clients_sign_in_and_the_token_works_everywhere_for_an_admin() {
    let stack = shared().stack().await;
    let (username, password) = stack.admin.clone();
    let terraform = terraform_sign_in(&stack, &username, &password).await;
    let token = jwt(&terraform);
    let answer = &terraform.1;
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["client_id"], pool(&stack).client_id);
    assert!(
        answer["duration"].as_i64().unwrap() > 900,
        "Ansible reuses a token for 890 s: {answer}"
    );
    assert!(answer["refresh_token"].is_string() && answer["refresh_token_id"].is_string());

    let ansible = ansible_sign_in(&stack, &username, &password).await;
    let ansible_token = jwt(&ansible);
    for token in [&token, &ansible_token] {
        let (status, page) = bearer(&stack, "GET", "/api/v1/cckm/aws/kms", None, token).await;
        assert_eq!(status, 200, "{page}");
    }
    let kms = json!({"name": "signed-in", "account_id": OWN_ACCOUNT, "regions": ["us-east-1"]});
    let (status, created) = bearer(&stack, "POST", "/api/v1/cckm/aws/kms", Some(kms), &token).await;
    assert_eq!(status, 201, "{created}");

    // The refresh grant gives a working token.
    let refresh = json!({"grant_type": "refresh_token", "refresh_token": answer["refresh_token"]});
    let refreshed = with_header(&stack, "POST", SIGN_IN, Some(refresh), None).await;
    let renewed = jwt(&refreshed);
    assert_eq!(refreshed.1["refresh_token"], answer["refresh_token"]);
    let (status, _) = bearer(
        &stack,
        "GET",
        "/api/v1/cckm/aws/synchronization-jobs",
        None,
        &renewed,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_get_one_401_whatever_was_wrong() {
    let stack = shared().stack().await;
    let (username, _) = stack.admin.clone();
    let wrong_password = terraform_sign_in(&stack, &username, "Wrong-password-1").await;
    let unknown_user = ansible_sign_in(&stack, "nobody-here", "Wrong-password-1").await;
    assert_cckm_error(&wrong_password, 401, 1);
    assert_cckm_error(&unknown_user, 401, 1);
    assert_eq!(wrong_password.1["message"], unknown_user.1["message"]);
    let bad_refresh = json!({"grant_type": "refresh_token", "refresh_token": "not-a-token"});
    let refused = with_header(&stack, "POST", SIGN_IN, Some(bad_refresh), None).await;
    assert_cckm_error(&refused, 401, 1);
    // Missing fields, another grant, another domain: 400, naming what is wrong.
    for (body, names) in [
        (json!({"username": username}), "password"),
        (json!({"grant_type": "client_credentials"}), "grant_type"),
        (
            json!({"username": username, "password": "x", "domain": "tenant-b"}),
            "domain",
        ),
        (
            json!({"username": username, "password": "x", "scope": "all"}),
            "scope",
        ),
    ] {
        let refused = with_header(&stack, "POST", SIGN_IN, Some(body), None).await;
        assert_cckm_error(&refused, 400, 9);
        assert!(
            refused.1["message"].as_str().unwrap().contains(names),
            "{}",
            refused.1
        );
    }
    let refused = with_header(&stack, "GET", SIGN_IN, None, None).await;
    assert_cckm_error(&refused, 405, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_make_the_role() {
    let stack = shared().stack().await;
    let pool = pool(&stack);
    user(
        &stack,
        "reader",
        "Reader-pass-1",
        Some(&pool.read_only_group),
    )
    .await;
    user(&stack, "outsider", "Outsider-pass-1", None).await;
    let reader = jwt(&ansible_sign_in(&stack, "reader", "Reader-pass-1").await);
    let outsider = jwt(&ansible_sign_in(&stack, "outsider", "Outsider-pass-1").await);

    let (status, _) = bearer(&stack, "GET", "/api/v1/cckm/aws/keys", None, &reader).await;
    assert_eq!(status, 200);
    let kms = json!({"name": "refused", "account_id": OWN_ACCOUNT, "regions": ["us-east-1"]});
    let write = bearer(
        &stack,
        "POST",
        "/api/v1/cckm/aws/kms",
        Some(kms.clone()),
        &reader,
    )
    .await;
    assert_cckm_error(&write, 403, 2);
    let job = json!({"synchronize_all": true});
    let start = bearer(
        &stack,
        "POST",
        "/api/v1/cckm/aws/synchronization-jobs",
        Some(job),
        &reader,
    )
    .await;
    assert_cckm_error(&start, 403, 2);
    let read = bearer(&stack, "GET", "/api/v1/cckm/aws/kms", None, &outsider).await;
    assert_cckm_error(&read, 403, 2);
    let (_, page) = request(&stack.entry, "GET", "/api/v1/cckm/aws/kms", None).await;
    assert_eq!(page["total"], 0, "nothing written: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_are_not_the_pools_own_are_refused() {
    let stack = shared().stack().await;
    let (username, password) = stack.admin.clone();
    let token = jwt(&terraform_sign_in(&stack, &username, &password).await);
    // Another app client of the same pool: signed by the same keys, but not for us.
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&stack.sdk);
    let other = cognito
        .create_user_pool_client()
        .user_pool_id(pool(&stack).user_pool_id)
        .client_name("someone-else")
        .explicit_auth_flows(
            aws_sdk_cognitoidentityprovider::types::ExplicitAuthFlowsType::AllowUserPasswordAuth,
        )
        .send()
        .await
        .unwrap()
        .user_pool_client
        .and_then(|c| c.client_id)
        .unwrap();
    let foreign = cognito
        .initiate_auth()
        .client_id(other)
        .auth_flow(aws_sdk_cognitoidentityprovider::types::AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", &username)
        .auth_parameters("PASSWORD", &password)
        .send()
        .await
        .unwrap()
        .authentication_result
        .and_then(|r| r.access_token)
        .unwrap();
    let refused = bearer(&stack, "GET", "/api/v1/cckm/aws/kms", None, &foreign).await;
    assert_cckm_error(&refused, 401, 1);
    // A signature that does not match.
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let refused = bearer(&stack, "GET", "/api/v1/cckm/aws/kms", None, &tampered).await;
    assert_cckm_error(&refused, 401, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_acls_grant_key_actions_to_users_and_groups_beyond_their_role() {
    let stack = shared().stack().await;
    let pool = pool(&stack);
    let account = random_account();
    register_kms(&stack.entry, "granted", &account, &["us-east-1"]).await;
    register_kms(&stack.entry, "closed", &account, &["eu-west-1"]).await;
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&stack.sdk);
    cognito
        .create_group()
        .user_pool_id(&pool.user_pool_id)
        .group_name("cloud-team")
        .send()
        .await
        .expect("create group");
    user(&stack, "builder", "Builder-pass-1", Some("cloud-team")).await;
    user(
        &stack,
        "syncer",
        "Syncer-pass-1",
        Some(&pool.read_only_group),
    )
    .await;
    let builder = jwt(&ansible_sign_in(&stack, "builder", "Builder-pass-1").await);
    let syncer = jwt(&terraform_sign_in(&stack, "syncer", "Syncer-pass-1").await);

    // Ansible's cckm_aws_kms update_acls: unset suboptions as null. Terraform's ciphertrust_aws_acl: permit.
    let grants = json!({"acls": [
        {"group": "cloud-team", "permit": true, "actions": ["keycreate", "viewnative"], "user_id": null},
        {"user_id": "syncer", "permit": true, "actions": ["keysynchronize"]},
    ]});
    let by_builder = bearer(
        &stack,
        "POST",
        "/api/v1/cckm/aws/kms/granted/update-acls",
        Some(grants.clone()),
        &builder,
    )
    .await;
    assert_cckm_error(&by_builder, 403, 2);
    let (status, kms) = request(
        &stack.entry,
        "POST",
        "/api/v1/cckm/aws/kms/granted/update-acls",
        Some(grants),
    )
    .await;
    assert_eq!(status, 200, "{kms}");
    assert_eq!(
        kms["acls"],
        json!([
            {"group": "cloud-team", "actions": ["keycreate", "viewnative"]},
            {"user_id": "syncer", "actions": ["keysynchronize"]},
        ])
    );

    // The group may create and view keys in its resource, and nothing more.
    let key =
        json!({"kms": "granted", "region": "us-east-1", "aws_param": {"Description": "team key"}});
    let (status, created) =
        bearer(&stack, "POST", "/api/v1/cckm/aws/keys", Some(key), &builder).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, _) = bearer(
        &stack,
        "GET",
        &format!("/api/v1/cckm/aws/keys/{id}"),
        None,
        &builder,
    )
    .await;
    assert_eq!(status, 200);
    let (status, page) = bearer(
        &stack,
        "GET",
        "/api/v1/cckm/aws/keys?kms=granted",
        None,
        &builder,
    )
    .await;
    assert_eq!((status, page["total"].as_u64()), (200, Some(1)), "{page}");
    for refused in [
        bearer(&stack, "GET", "/api/v1/cckm/aws/keys", None, &builder).await,
        bearer(
            &stack,
            "GET",
            "/api/v1/cckm/aws/keys?kms=closed",
            None,
            &builder,
        )
        .await,
        bearer(
            &stack,
            "POST",
            &format!("/api/v1/cckm/aws/keys/{id}/disable"),
            None,
            &builder,
        )
        .await,
        bearer(
            &stack,
            "POST",
            "/api/v1/cckm/aws/keys",
            Some(json!({"kms": "closed", "region": "eu-west-1"})),
            &builder,
        )
        .await,
        bearer(
            &stack,
            "POST",
            "/api/v1/cckm/aws/synchronization-jobs",
            Some(json!({"kms": ["granted"]})),
            &builder,
        )
        .await,
    ] {
        assert_cckm_error(&refused, 403, 2);
    }
    let kms_client = shared().kms_in(&account, "eu-west-1").await;
    assert!(
        kms_client
            .list_keys()
            .send()
            .await
            .unwrap()
            .keys()
            .is_empty(),
        "nothing made in 'closed'"
    );

    // A reader granted keysynchronize syncs that resource, and only that one.
    let (status, job) = bearer(
        &stack,
        "POST",
        "/api/v1/cckm/aws/synchronization-jobs",
        Some(json!({"kms": ["granted"]})),
        &syncer,
    )
    .await;
    assert_eq!(status, 201, "{job}");
    for body in [
        json!({"kms": ["granted", "closed"]}),
        json!({"synchronize_all": true}),
    ] {
        let refused = bearer(
            &stack,
            "POST",
            "/api/v1/cckm/aws/synchronization-jobs",
            Some(body),
            &syncer,
        )
        .await;
        assert_cckm_error(&refused, 403, 2);
    }

    // Revoking takes the action away; the entry with none left goes.
    let revoke =
        json!({"acls": [{"user_id": "syncer", "permit": false, "actions": ["keysynchronize"]}]});
    let (_, kms) = request(
        &stack.entry,
        "POST",
        "/api/v1/cckm/aws/kms/granted/update-acls",
        Some(revoke),
    )
    .await;
    assert_eq!(kms["acls"].as_array().unwrap().len(), 1, "{kms}");
    let refused = bearer(
        &stack,
        "POST",
        "/api/v1/cckm/aws/synchronization-jobs",
        Some(json!({"kms": ["granted"]})),
        &syncer,
    )
    .await;
    assert_cckm_error(&refused, 403, 2);
}
