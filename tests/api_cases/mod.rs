//! The API cases, through the real entry point (v1 and v2 events): routing, validation, CCKM errors, auth.
//! Each case runs twice: on in-memory adapters (`api_in_memory.rs`) and on the emulator (`api_emulator.rs`).

use crate::common::backend::Backend;
use crate::common::*;
use serde_json::{Value, json};

/// Declares one `#[tokio::test]` per case, each on a fresh backend made by `$backend`.
#[macro_export]
macro_rules! api_tests {
    ($backend:expr) => {
        $crate::api_tests!(@each $backend;
            create_kms_answers_the_cckm_object_and_refuses_a_second_of_the_same_name,
            kms_without_a_role_must_be_the_functions_own_account,
            kms_get_list_patch_delete,
            create_job_answers_201_with_the_job_object_and_queues_one_item_per_unit,
            every_create_job_rule_is_enforced_and_nothing_is_written,
            an_overlapping_job_is_refused_naming_the_running_one,
            list_jobs_filters_sorts_and_pages,
            every_route_refuses_a_request_without_a_valid_token,
            unknown_routes_are_404_and_wrong_methods_405,
            paths_work_with_and_without_api_and_under_a_rest_stage,
            cancel_sets_abort_and_a_finished_or_unknown_job_cannot_be_cancelled,
            deleting_a_kms_used_by_a_running_job_is_refused,
            an_archived_kms_keeps_out_of_jobs_and_key_writes_until_recovered,
            acl_updates_at_once_all_land,
        );
    };
    (@each $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = $backend;
                api_cases::$case(&backend).await;
            }
        )*
    };
}

pub async fn create_kms_answers_the_cckm_object_and_refuses_a_second_of_the_same_name(
    backend: &Backend,
) {
    let entry = backend.entry();
    let kms = register_kms(entry, "prod", "111122223333", &["us-east-1"]).await;
    assert_eq!(kms["name"], "prod");
    assert_eq!(kms["arn"], "arn:aws:iam::111122223333:root");
    assert_eq!(kms["status"], "ACTIVE");
    assert!(
        kms["uri"]
            .as_str()
            .unwrap()
            .starts_with("kylo:kylo:cckm:aws-kms:")
    );
    let again = request(
        entry,
        "POST",
        "/api/v1/cckm/aws/kms",
        Some(
            json!({"name": "prod", "account_id": "111122223333", "regions": ["us-east-1"],
            "assume_role_arn": "arn:aws:iam::111122223333:role/other"}),
        ),
    )
    .await;
    assert_cckm_error(&again, 409, 4);
}

pub async fn kms_without_a_role_must_be_the_functions_own_account(backend: &Backend) {
    let entry = backend.entry();
    let response = request(
        entry,
        "POST",
        "/api/v1/cckm/aws/kms",
        Some(json!({"name": "other", "account_id": "999999999999", "regions": ["us-east-1"]})),
    )
    .await;
    assert_cckm_error(&response, 400, 9);
    register_kms(entry, "own", OWN_ACCOUNT, &["us-east-1"]).await;
}

pub async fn kms_get_list_patch_delete(backend: &Backend) {
    let entry = backend.entry();
    let kms = register_kms(entry, "prod", "111122223333", &["us-east-1"]).await;
    let id = kms["id"].as_str().unwrap();
    let (status, got) = request(entry, "GET", &format!("/api/v1/cckm/aws/kms/{id}"), None).await;
    assert_eq!((status, &got["name"]), (200, &json!("prod")));
    register_kms(entry, "dev", "444455556666", &["eu-west-1"]).await;
    let (status, list) = request(entry, "GET", "/api/v1/cckm/aws/kms?name=dev", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 1);
    assert_eq!(list["resources"][0]["name"], "dev");
    let (status, patched) = request(
        entry,
        "PATCH",
        &format!("/api/v1/cckm/aws/kms/{id}"),
        Some(json!({"regions": ["eu-west-1", "ap-south-1"]})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["regions"], json!(["eu-west-1", "ap-south-1"]));
    let rename = request(
        entry,
        "PATCH",
        &format!("/api/v1/cckm/aws/kms/{id}"),
        Some(json!({"name": "renamed"})),
    )
    .await;
    assert_cckm_error(&rename, 400, 9);
    let (status, _) = request(entry, "DELETE", &format!("/api/v1/cckm/aws/kms/{id}"), None).await;
    assert_eq!(status, 204);
    assert_cckm_error(
        &request(entry, "GET", &format!("/api/v1/cckm/aws/kms/{id}"), None).await,
        404,
        16,
    );
}

pub async fn create_job_answers_201_with_the_job_object_and_queues_one_item_per_unit(
    backend: &Backend,
) {
    let entry = backend.entry();
    register_kms(entry, "demo", "111122223333", &["us-east-1", "eu-west-1"]).await;
    let (status, job) = request(
        entry,
        "POST",
        "/api/v1/cckm/aws/synchronization-jobs",
        Some(json!({"kms": ["demo"], "regions": ["us-east-1"], "synchronize_all": false})),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    assert_eq!(job["uri"], format!("kylo:kylo:cckm:synchronize:{id}"));
    assert_eq!(job["account"], "kylo:kylo:admin:accounts:kylo");
    assert_eq!(job["application"], "ncryptify:gemalto:admin:apps:kylo");
    assert_eq!(
        job["devAccount"],
        "ncryptify:gemalto:admin:accounts:gemalto"
    );
    assert_eq!(job["overall_status"], "in_progress");
    assert_eq!(
        job["detailed_status"],
        json!({"111122223333/us-east-1": "in_progress"})
    );
    assert_eq!(job["cloud"], "aws");
    assert_eq!(job["kms"], json!(["demo"]));
    assert_eq!(job["regions"], json!(["us-east-1"]));
    assert_eq!(job["abort"], false);
    assert!(job.get("completed_at").is_none());
    assert_eq!(job["progress"]["units_total"], 1);
    assert_eq!(backend.queued().await, 1, "one work item for the one unit");
    let (status, got) = request(
        entry,
        "GET",
        &format!("/api/v1/cckm/aws/synchronization-jobs/{id}"),
        None,
    )
    .await;
    assert_eq!((status, &got["id"]), (200, &json!(id)));
}

pub async fn every_create_job_rule_is_enforced_and_nothing_is_written(backend: &Backend) {
    let entry = backend.entry();
    register_kms(entry, "demo", "111122223333", &["us-east-1"]).await;
    let big = "x".repeat(65 * 1024);
    let cases: Vec<(Value, u16, u64, &str)> = vec![
        (
            json!({"synchronize_all": true, "kms": ["demo"]}),
            400,
            9,
            "cannot be combined",
        ),
        (
            json!({"synchronize_all": true, "regions": ["us-east-1"]}),
            400,
            9,
            "cannot be combined",
        ),
        (json!({}), 400, 9, "required"),
        (json!({"synchronize_all": false}), 400, 9, "required"),
        (json!({"kms": ["nope"]}), 404, 16, "'nope'"),
        (
            json!({"kms": ["demo"], "regions": ["eu-west-1"]}),
            400,
            9,
            "'eu-west-1'",
        ),
        (
            json!({"kms": ["demo"], "regions": ["not-a-region"]}),
            400,
            9,
            "not-a-region",
        ),
        (json!({"kms": ["demo", "demo"]}), 400, 9, "twice"),
        (json!({"kms": ["demo"], "extra": 1}), 400, 9, "extra"),
        (json!({"kms": 7}), 400, 9, "invalid body"),
        (json!({"kms": [big]}), 400, 15, "larger than"),
        (
            json!({"kms": (0..1001).map(|i| format!("k{i}")).collect::<Vec<_>>()}),
            400,
            9,
            "at most 1000",
        ),
    ];
    for (body, status, code, message) in cases {
        let response = request(
            entry,
            "POST",
            "/api/v1/cckm/aws/synchronization-jobs",
            Some(body.clone()),
        )
        .await;
        assert_cckm_error(&response, status, code);
        let text = response.1["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(text.contains(message), "{body:.80}: {text}");
    }
    for raw in ["{not json", "", "{\"kms\": ["] {
        let mut event = v2_event(
            "POST",
            "/api/v1/cckm/aws/synchronization-jobs",
            None,
            Some(&token()),
        );
        event["body"] = Value::from(raw);
        assert_cckm_error(&call(entry, event).await, 400, 15);
    }
    let mut event = v2_event(
        "POST",
        "/api/v1/cckm/aws/synchronization-jobs",
        None,
        Some(&token()),
    );
    event["body"] = Value::from("/w==");
    event["isBase64Encoded"] = Value::from(true);
    assert_cckm_error(&call(entry, event).await, 400, 15);
    let (_, jobs) = request(entry, "GET", "/api/v1/cckm/aws/synchronization-jobs", None).await;
    assert_eq!(jobs["total"], 0, "a refused request wrote a job");
    assert_eq!(
        backend.job_items().await,
        0,
        "a refused request wrote job state"
    );
    assert_eq!(backend.queued().await, 0, "a refused request queued work");
}

pub async fn an_overlapping_job_is_refused_naming_the_running_one(backend: &Backend) {
    let entry = backend.entry();
    register_kms(entry, "demo", "111122223333", &["us-east-1", "eu-west-1"]).await;
    let (_, first) = request(
        entry,
        "POST",
        "/api/v1/cckm/aws/synchronization-jobs",
        Some(json!({"kms": ["demo"], "regions": ["eu-west-1"]})),
    )
    .await;
    let overlap = request(
        entry,
        "POST",
        "/api/v1/cckm/aws/synchronization-jobs",
        Some(json!({"kms": ["demo"]})),
    )
    .await;
    assert_cckm_error(&overlap, 409, 4);
    assert!(
        overlap.1["message"]
            .as_str()
            .unwrap()
            .contains(first["id"].as_str().unwrap())
    );
    let (status, _) = request(
        entry,
        "POST",
        "/api/v1/cckm/aws/synchronization-jobs",
        Some(json!({"kms": ["demo"], "regions": ["us-east-1"]})),
    )
    .await;
    assert_eq!(status, 201, "a job on another region does not overlap");
}

pub async fn list_jobs_filters_sorts_and_pages(backend: &Backend) {
    let entry = backend.entry();
    for (name, account) in [
        ("a", "111111111111"),
        ("b", "222222222222"),
        ("c", "333333333333"),
    ] {
        register_kms(entry, name, account, &["us-east-1"]).await;
        let (status, _) = request(
            entry,
            "POST",
            "/api/v1/cckm/aws/synchronization-jobs",
            Some(json!({"kms": [name]})),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (status, page) = request(
        entry,
        "GET",
        "/api/v1/cckm/aws/synchronization-jobs?limit=2&skip=1",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            page["total"].as_u64(),
            page["skip"].as_u64(),
            page["limit"].as_u64()
        ),
        (Some(3), Some(1), Some(2))
    );
    assert_eq!(page["resources"][0]["kms"], json!(["b"]), "newest first");
    assert_eq!(page["resources"][1]["kms"], json!(["a"]));
    assert!(
        page["resources"][0]["detailed_status"]
            .as_object()
            .is_some_and(|d| d.len() == 1)
    );
    let (_, by_kms) = request(
        entry,
        "GET",
        "/api/v1/cckm/aws/synchronization-jobs?kms=a&kms=c&sort=createdAt",
        None,
    )
    .await;
    let names: Vec<&Value> = by_kms["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| &j["kms"][0])
        .collect();
    assert_eq!(names, vec!["a", "c"]);
    let (_, done) = request(
        entry,
        "GET",
        "/api/v1/cckm/aws/synchronization-jobs?overall_status=completed",
        None,
    )
    .await;
    assert_eq!(done["total"], 0);
    for bad in [
        "overall_status=done",
        "skip=-1",
        "limit=5000",
        "sort=colour",
        "color=red",
    ] {
        let response = request(
            entry,
            "GET",
            &format!("/api/v1/cckm/aws/synchronization-jobs?{bad}"),
            None,
        )
        .await;
        assert_cckm_error(&response, 400, 9);
    }
}

/// The eight token attacks, each on every route: every one gets 401 and writes nothing.
pub async fn every_route_refuses_a_request_without_a_valid_token(backend: &Backend) {
    let entry = backend.entry();
    let now = chrono::Utc::now().timestamp();
    // Valid in every way but the one the case names.
    let claims = |changes: Value| {
        let mut claims =
            json!({"sub": "attacker", "exp": now + 600, "iss": ISSUER, "aud": AUDIENCE});
        for (name, value) in changes.as_object().unwrap() {
            claims[name] = value.clone();
        }
        token_with(claims)
    };
    let tokens: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("malformed", Some("abc.def".into())),
        ("expired", Some(claims(json!({"exp": now - 600})))),
        (
            "not yet valid",
            Some(claims(json!({"exp": now + 7200, "nbf": now + 3600}))),
        ),
        (
            "wrong issuer",
            Some(claims(json!({"iss": "https://evil.test"}))),
        ),
        (
            "wrong audience",
            Some(claims(json!({"aud": "another-app"}))),
        ),
        (
            "unsigned",
            Some(format!("{}.e30.", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0")),
        ),
        (
            "wrong key",
            Some({
                let key = jsonwebtoken::EncodingKey::from_secret(b"another-secret");
                jsonwebtoken::encode(
                    &jsonwebtoken::Header::default(),
                    &json!({"exp": now + 600, "iss": ISSUER, "aud": AUDIENCE}),
                    &key,
                )
                .unwrap()
            }),
        ),
    ];
    let routes = [
        ("GET", "/api/v1/cckm/aws/kms"),
        ("POST", "/api/v1/cckm/aws/kms"),
        ("GET", "/api/v1/cckm/aws/kms/x"),
        ("PATCH", "/api/v1/cckm/aws/kms/x"),
        ("DELETE", "/api/v1/cckm/aws/kms/x"),
        ("GET", "/api/v1/cckm/aws/synchronization-jobs"),
        ("POST", "/api/v1/cckm/aws/synchronization-jobs"),
        ("GET", "/api/v1/cckm/aws/synchronization-jobs/x"),
        ("POST", "/api/v1/cckm/aws/synchronization-jobs/x/cancel"),
        ("GET", "/api/v1/cckm/aws/keys"),
        ("GET", "/api/v1/cckm/aws/keys/x"),
        ("DELETE", "/api/v1/cckm/aws/keys/x"),
        ("POST", "/api/v1/cckm/aws/keys/x/refresh"),
        ("GET", "/api/v1/nowhere"),
    ];
    for (name, token) in &tokens {
        for (method, path) in routes {
            let response = call(
                entry,
                v2_event(method, path, Some(&json!({"kms": ["a"]})), token.as_deref()),
            )
            .await;
            assert_eq!(response.0, 401, "{name} {method} {path}: {}", response.1);
            assert_cckm_error(&response, 401, 1);
        }
    }
    // The valid token gets in, and none of the attacks wrote anything.
    for path in [
        "/api/v1/cckm/aws/kms",
        "/api/v1/cckm/aws/synchronization-jobs",
    ] {
        let (status, list) = request(entry, "GET", path, None).await;
        assert_eq!((status, &list["total"]), (200, &json!(0)), "{path}: {list}");
    }
}

pub async fn unknown_routes_are_404_and_wrong_methods_405(backend: &Backend) {
    let entry = backend.entry();
    assert_cckm_error(
        &request(entry, "GET", "/api/v1/cckm/aws/nothing", None).await,
        404,
        16,
    );
    assert_cckm_error(
        &request(entry, "GET", "/api/v2/cckm/aws/kms", None).await,
        404,
        16,
    );
    assert_cckm_error(
        &request(
            entry,
            "DELETE",
            "/api/v1/cckm/aws/synchronization-jobs",
            None,
        )
        .await,
        405,
        15,
    );
    assert_cckm_error(
        &request(
            entry,
            "PATCH",
            "/api/v1/cckm/aws/synchronization-jobs/x",
            None,
        )
        .await,
        405,
        15,
    );
    assert_cckm_error(
        &request(
            entry,
            "GET",
            "/api/v1/cckm/aws/synchronization-jobs/x/cancel",
            None,
        )
        .await,
        405,
        15,
    );
}

pub async fn paths_work_with_and_without_api_and_under_a_rest_stage(backend: &Backend) {
    let entry = backend.entry();
    register_kms(entry, "demo", "111122223333", &["us-east-1"]).await;
    let (status, _) = request(entry, "GET", "/v1/cckm/aws/kms", None).await;
    assert_eq!(status, 200);
    let event = v1_event(
        "GET",
        "/api/v1/cckm/aws/kms",
        &[("name", "demo"), ("limit", "5")],
        None,
        Some(&token()),
        "prod",
    );
    let (status, list) = call(entry, event).await;
    assert_eq!(
        (status, list["total"].as_u64(), list["limit"].as_u64()),
        (200, Some(1), Some(5))
    );
    let mut staged = v1_event(
        "POST",
        "/prod/api/v1/cckm/aws/synchronization-jobs",
        &[],
        Some(&json!({"kms": ["demo"]})),
        Some(&token()),
        "prod",
    );
    staged["requestContext"]["path"] = Value::from("/prod/api/v1/cckm/aws/synchronization-jobs");
    let (status, job) = call(entry, staged).await;
    assert_eq!(status, 201, "{job}");
    let bad = call(
        entry,
        v1_event(
            "POST",
            "/api/v1/cckm/aws/synchronization-jobs",
            &[],
            Some(&json!({})),
            Some(&token()),
            "prod",
        ),
    )
    .await;
    assert_cckm_error(&bad, 400, 9);
    assert_eq!(bad.1["requestID"], "req-v1");
}

pub async fn cancel_sets_abort_and_a_finished_or_unknown_job_cannot_be_cancelled(
    backend: &Backend,
) {
    let entry = backend.entry();
    register_kms(entry, "demo", "111122223333", &["us-east-1"]).await;
    let (_, job) = request(
        entry,
        "POST",
        "/api/v1/cckm/aws/synchronization-jobs",
        Some(json!({"kms": ["demo"]})),
    )
    .await;
    let id = job["id"].as_str().unwrap();
    let (status, cancelled) = request(
        entry,
        "POST",
        &format!("/api/v1/cckm/aws/synchronization-jobs/{id}/cancel"),
        None,
    )
    .await;
    assert_eq!((status, &cancelled["abort"]), (200, &json!(true)));
    assert_eq!(
        cancelled["overall_status"], "in_progress",
        "it ends when its workers notice"
    );
    let unknown = request(
        entry,
        "POST",
        &format!(
            "/api/v1/cckm/aws/synchronization-jobs/{}/cancel",
            uuid::Uuid::new_v4()
        ),
        None,
    )
    .await;
    assert_cckm_error(&unknown, 404, 16);
}

pub async fn deleting_a_kms_used_by_a_running_job_is_refused(backend: &Backend) {
    let entry = backend.entry();
    let kms = register_kms(entry, "busy", "111122223333", &["us-east-1"]).await;
    let id = kms["id"].as_str().unwrap();
    let (status, job) = request(
        entry,
        "POST",
        "/api/v1/cckm/aws/synchronization-jobs",
        Some(json!({"kms": [id]})),
    )
    .await;
    assert_eq!(status, 201, "a job may name its KMS by id: {job}");
    let refused = request(entry, "DELETE", &format!("/api/v1/cckm/aws/kms/{id}"), None).await;
    assert_cckm_error(&refused, 409, 4);
    assert!(
        refused.1["message"]
            .as_str()
            .unwrap()
            .contains(job["id"].as_str().unwrap())
    );
    let (status, _) = request(entry, "GET", &format!("/api/v1/cckm/aws/kms/{id}"), None).await;
    assert_eq!(status, 200, "still registered");
}

/// Both clients' `archive` and `recover` (Ansible's cckm_aws_kms, Terraform's ciphertrust_aws_kms `archive`).
pub async fn an_archived_kms_keeps_out_of_jobs_and_key_writes_until_recovered(backend: &Backend) {
    let entry = backend.entry();
    let (kept, live) = (random_account(), random_account());
    register_kms(entry, "kept", &kept, &["us-east-1"]).await;
    register_kms(entry, "live", &live, &["eu-west-1"]).await;
    let (status, kms) = request(entry, "POST", "/api/v1/cckm/aws/kms/kept/archive", None).await;
    assert_eq!(
        (status, kms["status"].as_str()),
        (200, Some("ARCHIVED")),
        "{kms}"
    );
    let (_, page) = request(entry, "GET", "/api/v1/cckm/aws/kms?status=ARCHIVED", None).await;
    assert_eq!(page["total"], 1, "{page}");
    // A job of every resource leaves it out.
    let job = get_job(
        entry,
        &start_job(entry, json!({"synchronize_all": true})).await,
    )
    .await;
    let units = job["detailed_status"].as_object().unwrap();
    assert!(units.contains_key(&format!("{live}/eu-west-1")), "{job}");
    assert!(!units.contains_key(&format!("{kept}/us-east-1")), "{job}");
    let refused = request(
        entry,
        "POST",
        "/api/v1/cckm/aws/keys",
        Some(json!({"kms": "kept", "region": "us-east-1"})),
    )
    .await;
    assert_cckm_error(&refused, 409, 4);
    let (status, kms) = request(entry, "POST", "/api/v1/cckm/aws/kms/kept/recover", None).await;
    assert_eq!(
        (status, kms["status"].as_str()),
        (200, Some("ACTIVE")),
        "{kms}"
    );
}

/// Terraform applies the `ciphertrust_aws_acl` resources of one KMS resource at once: every grant lands.
pub async fn acl_updates_at_once_all_land(backend: &Backend) {
    let entry = backend.entry();
    register_kms(entry, "shared", &random_account(), &["us-east-1"]).await;
    let groups: Vec<String> = (0..6).map(|n| format!("team-{n}")).collect();
    let updates = groups.iter().map(|group| {
        let body = json!({"acls": [{"group": group, "permit": true, "actions": ["viewnative"]}]});
        request(
            entry,
            "POST",
            "/api/v1/cckm/aws/kms/shared/update-acls",
            Some(body),
        )
    });
    for (status, answer) in futures::future::join_all(updates).await {
        assert_eq!(status, 200, "{answer}");
    }
    let (_, kms) = request(entry, "GET", "/api/v1/cckm/aws/kms/shared", None).await;
    let mut granted: Vec<&str> = kms["acls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry["group"].as_str())
        .collect();
    granted.sort();
    assert_eq!(
        granted,
        groups.iter().map(String::as_str).collect::<Vec<_>>(),
        "{kms}"
    );
}
