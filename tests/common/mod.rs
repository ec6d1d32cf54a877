//! Shared test helpers: tokens, API Gateway events (REST v1 and HTTP v2), and an in-memory `Entry`.
//! `emulator` starts the moto server and builds the real AWS wiring against it.
#![allow(dead_code)] // each test binary uses its own subset

pub mod backend;
pub mod emulator;
pub mod rig;

use cckm_aws_sync::api::auth::Authenticator;
use cckm_aws_sync::app::{App, MemoryParts};
use cckm_aws_sync::config::AuthConfig;
use cckm_aws_sync::domain::job::WorkItem;
use cckm_aws_sync::entry::Entry;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

pub const SECRET: &str = "integration-test-secret";
/// Seventeen commercial regions: an account as our users' largest span it.
pub const SEVENTEEN_REGIONS: [&str; 17] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "sa-east-1",
];

/// The issuer and audience every test stack checks tokens for.
pub const ISSUER: &str = "https://idp.cckm.test";
pub const AUDIENCE: &str = "cckm-aws-sync";
/// moto's default account, which the function's own credentials belong to.
pub const OWN_ACCOUNT: &str = "123456789012";

pub fn token() -> String {
    token_with(
        json!({"sub": "tester", "exp": chrono::Utc::now().timestamp() + 600,
        "iss": ISSUER, "aud": AUDIENCE}),
    )
}

pub fn token_with(claims: Value) -> String {
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap_or_default()
}

pub fn auth_config() -> AuthConfig {
    AuthConfig {
        hs256_secret: Some(SECRET.into()),
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        ..AuthConfig::default()
    }
}

/// Test logs (`RUST_LOG=info cargo test -- --nocapture`), once per binary.
pub fn init_tracing() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into());
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(filter)
        .try_init();
}

/// An `Entry` on in-memory adapters, ListKeys pages of `page_size`.
pub fn memory_entry(page_size: usize) -> (Entry, MemoryParts) {
    init_tracing();
    let (app, parts) = App::in_memory(OWN_ACCOUNT, page_size);
    (entry_for(app), parts)
}

/// The entry point over `app`, with the test token settings.
pub fn entry_for(app: App) -> Entry {
    Entry::new(
        app,
        Authenticator::new(&auth_config()).expect("auth config"),
    )
}

/// The same stores behind an entry whose leases lapse after one second, as if every worker had died.
pub fn with_one_second_lease(entry: &Entry) -> Entry {
    let mut app = entry.app.clone();
    app.sync.lease = std::time::Duration::from_secs(1);
    entry_for(app)
}

/// An HTTP API (v2) event as API Gateway sends it on the `$default` stage.
pub fn v2_event(
    method: &str,
    path_and_query: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> Value {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut headers = json!({"content-type": "application/json", "host": "api.example.com"});
    if let Some(token) = token {
        headers["authorization"] = Value::from(format!("Bearer {token}"));
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": "req-v2", "routeKey": "$default", "stage": "$default", "time": "29/Nov/2026:00:00:00 +0000",
            "timeEpoch": 1_795_000_000_000_i64
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false
    })
}

/// A REST API (v1) event on stage `stage`; `path` is as the client called it, without the stage.
pub fn v1_event(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&Value>,
    token: Option<&str>,
    stage: &str,
) -> Value {
    let mut headers = json!({"Content-Type": "application/json"});
    if let Some(token) = token {
        headers["Authorization"] = Value::from(format!("Bearer {token}"));
    }
    let mut single = serde_json::Map::new();
    let mut multi = serde_json::Map::new();
    for (name, value) in query {
        single.insert(name.to_string(), Value::from(*value));
        if let Some(values) = multi
            .entry(name.to_string())
            .or_insert_with(|| json!([]))
            .as_array_mut()
        {
            values.push(Value::from(*value));
        }
    }
    json!({
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {},
        "queryStringParameters": if query.is_empty() { Value::Null } else { Value::Object(single) },
        "multiValueQueryStringParameters": if query.is_empty() { Value::Null } else { Value::Object(multi) },
        "pathParameters": {"proxy": path.trim_start_matches('/')},
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012", "resourceId": "abc", "stage": stage, "requestId": "req-v1",
            "identity": {"sourceIp": "127.0.0.1"}, "resourcePath": "/{proxy+}", "httpMethod": method,
            "apiId": "api", "path": format!("/{stage}{path}")
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false
    })
}

/// Sends an API event through the entry point; answers the status and the parsed body (null when empty).
/// Every answer must forbid caching and content sniffing.
pub async fn call(entry: &Entry, event: Value) -> (u16, Value) {
    let deadline = chrono::Utc::now() + chrono::Duration::minutes(15);
    let proxy = entry
        .handle(event, "lambda-req", deadline)
        .await
        .expect("a readable event");
    assert_eq!(proxy["headers"]["cache-control"], "no-store", "{proxy}");
    assert_eq!(
        proxy["headers"]["x-content-type-options"], "nosniff",
        "{proxy}"
    );
    let status = proxy["statusCode"].as_u64().unwrap_or(0) as u16;
    let body = proxy["body"]
        .as_str()
        .filter(|b| !b.is_empty())
        .map(|b| serde_json::from_str(b).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    (status, body)
}

/// A v2 request with a valid token.
pub async fn request(entry: &Entry, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    call(entry, v2_event(method, path, body.as_ref(), Some(&token()))).await
}

/// Asserts a CCKM error body with the given HTTP status and code.
pub fn assert_cckm_error(response: &(u16, Value), status: u16, code: u64) {
    let (got, body) = response;
    assert_eq!(*got, status, "status; body: {body}");
    assert_eq!(body["code"], code, "code; body: {body}");
    assert!(
        body["codeDesc"]
            .as_str()
            .is_some_and(|d| d.starts_with("NCERR")),
        "codeDesc: {body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message: {body}"
    );
}

/// A random 12-digit AWS account id, so that tests sharing the emulator never see each other's keys.
pub fn random_account() -> String {
    (uuid::Uuid::new_v4().as_u128() % 900_000_000_000 + 100_000_000_000).to_string()
}

/// Registers a KMS resource; an account other than the function's own is reached through a role.
pub async fn register_kms(entry: &Entry, name: &str, account: &str, regions: &[&str]) -> Value {
    let mut body = json!({"name": name, "account_id": account, "regions": regions});
    if account != OWN_ACCOUNT {
        body["assume_role_arn"] = Value::from(format!("arn:aws:iam::{account}:role/cckm-sync"));
    }
    let (status, kms) = request(entry, "POST", "/api/v1/cckm/aws/kms", Some(body)).await;
    assert_eq!(status, 201, "{kms}");
    kms
}

/// Starts a job (expecting 201) and answers its id.
pub async fn start_job(entry: &Entry, body: Value) -> String {
    let (status, job) = request(
        entry,
        "POST",
        "/api/v1/cckm/aws/synchronization-jobs",
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    job["id"].as_str().unwrap_or_default().to_string()
}

pub async fn get_job(entry: &Entry, id: &str) -> Value {
    request(
        entry,
        "GET",
        &format!("/api/v1/cckm/aws/synchronization-jobs/{id}"),
        None,
    )
    .await
    .1
}

/// Every synced key matching `query` (`limit=-1`), after checking that `total` counts them.
pub async fn list_keys(entry: &Entry, query: &str) -> Vec<Value> {
    let (status, page) = request(
        entry,
        "GET",
        &format!("/api/v1/cckm/aws/keys?limit=-1&{query}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{query}: {page}");
    let items = page["resources"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        page["total"].as_u64(),
        Some(items.len() as u64),
        "{query}: total"
    );
    items
}

/// An SQS batch carrying `items` (units or fan-out shares), as Lambda delivers it (message `m<i>`, receipt
/// handle `r<i>`).
pub fn sqs_event(items: &[impl serde::Serialize], receive_count: u32) -> Value {
    let records: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            json!({
                "messageId": format!("m{i}"), "receiptHandle": format!("r{i}"),
                "body": serde_json::to_string(item).unwrap_or_default(),
                "attributes": {"ApproximateReceiveCount": receive_count.to_string()}, "messageAttributes": {},
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:work",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({"Records": records})
}

/// Plays Lambda's event source mapping: hands every dispatched fan-out share, then every item, to the
/// worker until none is left.
pub async fn run_workers(entry: &Entry, parts: &MemoryParts) -> usize {
    let mut batches = 0;
    loop {
        let shares = parts.dispatcher.drain_fan_outs();
        let event = if shares.is_empty() {
            let items = parts.dispatcher.drain();
            if items.is_empty() {
                return batches;
            }
            sqs_event(&items, 1)
        } else {
            sqs_event(&shares, 1)
        };
        let deadline = chrono::Utc::now() + chrono::Duration::minutes(15);
        let response = entry
            .handle(event, "worker", deadline)
            .await
            .expect("a readable event");
        assert_eq!(response["batchItemFailures"], json!([]), "{response}");
        batches += 1;
    }
}

/// The fields every CCKM object carries, which the clients read from any of them.
pub const CCKM_OBJECT_FIELDS: [&str; 7] = [
    "id",
    "uri",
    "account",
    "devAccount",
    "application",
    "createdAt",
    "updatedAt",
];

/// Asserts that `object` has every CCKM object field and each of `fields`.
pub fn assert_fields(object: &Value, fields: &[&str]) {
    for field in CCKM_OBJECT_FIELDS.iter().chain(fields) {
        assert!(object.get(*field).is_some(), "{field} in {object}");
    }
}
