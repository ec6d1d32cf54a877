//! The API cases of `api_cases` on in-memory adapters: fast, no emulator.

mod api_cases;
mod common;

api_tests!(common::backend::Backend::memory());

/// A tiny deterministic generator, so the run below is the same every time.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

#[tokio::test]
async fn thousands_of_odd_requests_never_panic_and_never_answer_500() {
    use common::*;
    let (entry, _parts) = memory_entry(10);
    let mut rng = XorShift(0x5eed_cafe_f00d_d00d);
    let methods = ["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS"];
    let paths = [
        "/api/v1/cckm/aws/kms",
        "/api/v1/cckm/aws/kms/x",
        "/v1/cckm/aws/kms/%00",
        "/api/v1/cckm/aws/synchronization-jobs",
        "/api/v1/cckm/aws/synchronization-jobs/00000000-0000-0000-0000-000000000000",
        "/api/v1/cckm/aws/synchronization-jobs/x/cancel",
        "/api/v1/cckm/aws/keys",
        "/api/v1/cckm/aws/keys/1/refresh",
        "/",
        "",
        "//",
        "/api",
        "/api/v1/cckm/aws/keys?limit=99999999999999999999999",
        "/api/v1/cckm/aws/keys?sort=,,-,",
        "/api/v1/cckm/aws/keys?skip=18446744073709551616",
        "/api/v1/cckm/aws/synchronization-jobs?kms=&kms=%FF",
    ];
    let bodies = [
        "",
        "{",
        "null",
        "[]",
        "{}",
        "\"x\"",
        "{\"kms\": null}",
        "{\"kms\": [null]}",
        "{\"kms\": [\"demo\"], \"regions\": [1]}",
        "{\"synchronize_all\": true}",
        "{\"name\": \"a\", \"account_id\": \"123456789012\", \"regions\": [\"us-east-1\"]}",
        "{\"name\": \"\\u0000\", \"account_id\": 1e400}",
        "{\"regions\": [\"us-east-1\"], \"assume_role_arn\": \"arn:aws:iam::1:role/\"}",
        "{\"kms\": [\"a\"], \"kms\": [\"b\"]}",
        "\u{feff}{}",
        "{\"a\":{\"b\":{\"c\":[[[[[]]]]]}}}",
    ];
    for _ in 0..3000 {
        let method = rng.pick(&methods);
        let path = rng.pick(&paths);
        let body = rng.pick(&bodies);
        let mut event = v2_event(method, path, None, Some(&token()));
        event["body"] = serde_json::Value::from(body);
        if rng.next().is_multiple_of(5) {
            event["isBase64Encoded"] = serde_json::Value::from(true);
        }
        let (status, answer) = call(&entry, event).await;
        assert!(
            [200, 201, 204, 400, 404, 405, 409].contains(&status),
            "{method} {path} {body:?} answered {status}: {answer}"
        );
    }
}

#[tokio::test]
async fn a_405_names_in_its_allow_header_exactly_the_methods_the_path_answers() {
    use common::*;
    let (entry, _parts) = memory_entry(10);
    let id = "00000000-0000-0000-0000-000000000000";
    for path in [
        "/api/v1/cckm/aws/kms".to_string(),
        format!("/api/v1/cckm/aws/kms/{id}"),
        "/api/v1/cckm/aws/synchronization-jobs".into(),
        format!("/api/v1/cckm/aws/synchronization-jobs/{id}"),
        format!("/api/v1/cckm/aws/synchronization-jobs/{id}/cancel"),
        "/api/v1/cckm/aws/keys".into(),
        format!("/api/v1/cckm/aws/keys/{id}"),
        format!("/api/v1/cckm/aws/keys/{id}/refresh"),
    ] {
        let mut answered = Vec::new();
        let mut allow = std::collections::BTreeSet::new();
        for method in [
            "GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS", "TRACE",
        ] {
            let deadline = chrono::Utc::now() + chrono::Duration::minutes(15);
            let proxy = entry
                .handle(v2_event(method, &path, None, Some(&token())), "r", deadline)
                .await
                .expect("a readable event");
            if proxy["statusCode"] == 405 {
                let listed = proxy["headers"]["allow"].as_str().expect("an Allow header");
                allow.insert(listed.to_string());
            } else {
                answered.push(method);
            }
        }
        assert_eq!(allow.len(), 1, "{path}: {allow:?}");
        assert_eq!(allow.pop_first().unwrap(), answered.join(", "), "{path}");
    }
}

/// A refused test answers `connection_ok: false` with AWS's reason (moto accepts any key, so in memory).
#[tokio::test]
async fn a_connection_aws_refuses_tests_false_with_the_reason_and_keeps_it() {
    use common::*;
    use serde_json::json;
    let (entry, _parts) = memory_entry(10);
    let refused = json!({"access_key_id": "AKIAEXAMPLE00001", "secret_access_key": "wrong"});
    let (status, answer) = request(
        &entry,
        "POST",
        "/api/v1/connectionmgmt/services/aws/connection-test",
        Some(refused.clone()),
    )
    .await;
    assert_eq!(
        (status, &answer["connection_ok"]),
        (200, &json!(false)),
        "{answer}"
    );
    assert!(
        answer["connection_error"]
            .as_str()
            .unwrap()
            .contains("InvalidClientTokenId")
    );
    let saved = json!({"name": "refused", "access_key_id": "AKIAEXAMPLE00001", "secret_access_key": "wrong"});
    let (status, _) = request(
        &entry,
        "POST",
        "/api/v1/connectionmgmt/services/aws/connections",
        Some(saved),
    )
    .await;
    assert_eq!(status, 201);
    request(
        &entry,
        "POST",
        "/api/v1/connectionmgmt/services/aws/connections/refused/test",
        None,
    )
    .await;
    let (_, read) = request(
        &entry,
        "GET",
        "/api/v1/connectionmgmt/services/aws/connections/refused",
        None,
    )
    .await;
    assert_eq!(read["last_connection_ok"], false, "{read}");
    assert!(
        read["last_connection_error"]
            .as_str()
            .unwrap()
            .contains("InvalidClientTokenId")
    );
    assert!(
        !read.to_string().contains("wrong"),
        "the secret never shows: {read}"
    );
}

/// The in-memory twin of AWS keys changes them as AWS does: a key made, an alias taken refused, a replica
/// made and promoted, a deletion scheduled; each answer is the key as read back.
#[tokio::test]
async fn key_writes_change_the_in_memory_keys_as_aws_would() {
    use common::*;
    use serde_json::json;
    let (entry, _parts) = memory_entry(10);
    register_kms(&entry, "twin", OWN_ACCOUNT, &["us-east-1", "eu-west-1"]).await;
    let body = json!({"kms": "twin", "region": "us-east-1",
                      "aws_param": {"Alias": "twin-key", "MultiRegion": true, "Description": "d"}});
    let (status, key) = request(&entry, "POST", "/api/v1/cckm/aws/keys", Some(body)).await;
    assert_eq!(status, 201, "{key}");
    assert_eq!(key["aws_param"]["Alias"], json!(["alias/twin-key"]));
    let id = key["id"].as_str().unwrap();
    let path = |action: &str| format!("/api/v1/cckm/aws/keys/{id}/{action}");
    let taken = request(
        &entry,
        "POST",
        "/api/v1/cckm/aws/keys",
        Some(json!({"kms": "twin", "region": "us-east-1", "aws_param": {"Alias": "twin-key"}})),
    )
    .await;
    assert_cckm_error(&taken, 409, 4);
    let (status, replica) = request(
        &entry,
        "POST",
        &path("replicate-key"),
        Some(json!({"replica_region": "eu-west-1"})),
    )
    .await;
    assert_eq!(
        (status, replica["region"].as_str()),
        (201, Some("eu-west-1")),
        "{replica}"
    );
    request(
        &entry,
        "POST",
        &path("update-primary-region"),
        Some(json!({"PrimaryRegion": "eu-west-1"})),
    )
    .await;
    let (_, moved) = request(
        &entry,
        "GET",
        &format!("/api/v1/cckm/aws/keys/{}", replica["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(
        moved["aws_param"]["MultiRegionConfiguration"]["MultiRegionKeyType"], "PRIMARY",
        "{moved}"
    );
    let (_, old) = request(&entry, "GET", &format!("/api/v1/cckm/aws/keys/{id}"), None).await;
    assert_eq!(
        old["aws_param"]["MultiRegionConfiguration"]["MultiRegionKeyType"], "REPLICA",
        "{old}"
    );
    let (status, deleting) = request(
        &entry,
        "POST",
        &path("schedule-deletion"),
        Some(json!({"days": 7})),
    )
    .await;
    assert_eq!(
        (status, deleting["aws_param"]["KeyState"].as_str()),
        (200, Some("PendingDeletion"))
    );
    let (_, kept) = request(&entry, "POST", &path("cancel-deletion"), None).await;
    assert_eq!(kept["aws_param"]["KeyState"], "Disabled", "{kept}");
}
