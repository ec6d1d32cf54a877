//! What CCKM's clients read of synced keys and KMS resources, on the emulator (issue 9): the key filters
//! they send, the fields they read (with CCKM's empty values for what a synced key cannot have), a key's
//! rotations and versions from what AWS reports now, and KMS resources by name and by `cloud_name` and
//! `status`.

mod common;

use aws_sdk_kms::types::{KeySpec, KeyUsageType, Tag};
use common::emulator::shared;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_fields_rotations_and_versions_as_the_clients_read_them() {
    let stack = shared().stack().await;
    let account = random_account();
    register_kms(&stack.entry, "reads", &account, &["us-east-1"]).await;
    let kms = shared().kms_in(&account, "us-east-1").await;
    let tagged = kms
        .create_key()
        .tags(
            Tag::builder()
                .tag_key("env")
                .tag_value("prod")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let hmac = kms
        .create_key()
        .key_spec(KeySpec::Hmac256)
        .key_usage(KeyUsageType::GenerateVerifyMac)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let primary = kms
        .create_key()
        .multi_region(true)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    for _ in 0..2 {
        kms.rotate_key_on_demand()
            .key_id(&tagged)
            .send()
            .await
            .unwrap();
    }
    let job = start_job(&stack.entry, json!({"kms": ["reads"]})).await;
    stack.drain_queue().await;
    assert_eq!(
        get_job(&stack.entry, &job).await["overall_status"],
        "completed"
    );

    let ids = |keys: Vec<serde_json::Value>| -> Vec<String> {
        let mut ids: Vec<String> = keys
            .iter()
            .map(|k| k["aws_param"]["KeyID"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let all = sorted(vec![tagged.clone(), hmac.clone(), primary.clone()]);
    for (filters, expected) in [
        ("CustomerMasterKeySpec=HMAC_256", vec![hmac.clone()]),
        ("key_type=hmac", vec![hmac.clone()]),
        ("key_source=native", all.clone()),
        ("key_material_origin=native", all.clone()),
        ("multi_region_key_type=PRIMARY", vec![primary.clone()]),
        ("tags=env", vec![tagged.clone()]),
        ("tags=env%3Dprod", vec![tagged.clone()]),
        // Ansible's cckm_aws_key_info: a JSON object, url-encoded, and lists as repeated keys.
        ("tags=%7B%22env%22%3A+%22prod%22%7D", vec![tagged.clone()]),
        (
            "CustomerMasterKeySpec=HMAC_256&CustomerMasterKeySpec=SYMMETRIC_DEFAULT",
            all.clone(),
        ),
    ] {
        let found = ids(list_keys(&stack.entry, &format!("kms=reads&{filters}")).await);
        assert_eq!(found, expected, "{filters}");
    }
    assert!(
        list_keys(&stack.entry, "kms=reads&tags=env%3Ddev")
            .await
            .is_empty()
    );
    assert!(
        list_keys(
            &stack.entry,
            "kms=reads&custom_key_store_id=cks-1234567890abcdef0"
        )
        .await
        .is_empty()
    );
    let refused = request(
        &stack.entry,
        "GET",
        "/api/v1/cckm/aws/keys?custom_key_store_name=x",
        None,
    )
    .await;
    assert_cckm_error(&refused, 400, 9);
    assert!(
        refused.1["message"]
            .as_str()
            .unwrap()
            .contains("custom_key_store_name")
    );

    // The fields Terraform reads.
    let key = &list_keys(&stack.entry, "kms=reads&key_type=hmac").await[0];
    assert_eq!(key["key_source"], "native");
    assert_eq!(key["local_key_id"], "");
    assert_eq!(key["key_admins"], json!([]));
    assert!(key.get("deletion_date").is_some(), "{key}");
    // The first MAC algorithm AWS lists (moto lists none for an HMAC key: null then).
    let first_mac = key["aws_param"]["MacAlgorithms"]
        .get(0)
        .cloned()
        .unwrap_or_default();
    assert_eq!(key["aws_param"]["MacAlgorithmSpec"], first_mac, "{key}");

    // Rotations and versions, as AWS reports them now, paged.
    let id = list_keys(&stack.entry, "kms=reads&tags=env").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, rotations) = request(
        &stack.entry,
        "GET",
        &format!("/api/v1/cckm/aws/keys/{id}/rotations"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{rotations}");
    assert_eq!(rotations["total"], 2, "{rotations}");
    for rotation in rotations["resources"].as_array().unwrap() {
        // Terraform's ciphertrust_aws_key_rotation_list reads AWS's fields under aws_param.
        let param = &rotation["aws_param"];
        assert_eq!(param["RotationType"], "ON_DEMAND");
        assert!(param["KeyMaterialId"].is_string() && param["RotationDate"].is_string());
        assert_eq!(rotation["key_source"], "native");
        assert!(rotation["id"].is_string() && rotation["kms_id"].is_string());
    }
    // Terraform's read after create: the newest first, a page of 10.
    let (_, newest) = request(
        &stack.entry,
        "GET",
        &format!("/api/v1/cckm/aws/keys/{id}/rotations?limit=1&skip=0&sort=-RotationDate"),
        None,
    )
    .await;
    let dates: Vec<&str> = rotations["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["aws_param"]["RotationDate"].as_str())
        .collect();
    assert_eq!(
        (
            newest["total"].clone(),
            newest["resources"][0]["aws_param"]["RotationDate"].as_str()
        ),
        (json!(2), dates.iter().max().copied())
    );
    let (_, filtered) = request(
        &stack.entry,
        "GET",
        &format!("/api/v1/cckm/aws/keys/{id}/rotations?RotationType=AUTOMATIC"),
        None,
    )
    .await;
    assert_eq!(filtered["total"], 0, "{filtered}");
    let (status, versions) = request(
        &stack.entry,
        "GET",
        &format!("/api/v1/cckm/aws/keys/{id}/versions"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{versions}");
    let versions = versions["resources"].as_array().unwrap().clone();
    assert_eq!(versions.len(), 3);
    let current: Vec<_> = versions.iter().filter(|v| v["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["version"], 2);
    let described = kms.describe_key().key_id(&tagged).send().await.unwrap();
    assert_eq!(
        current[0]["key_material_id"].as_str(),
        described.key_metadata.unwrap().current_key_material_id()
    );
    let missing = request(
        &stack.entry,
        "GET",
        "/api/v1/cckm/aws/keys/00000000-0000-0000-0000-000000000000/versions",
        None,
    )
    .await;
    assert_cckm_error(&missing, 404, 16);

    // KMS resources by name, and the filters the clients use.
    let (status, by_name) = request(&stack.entry, "GET", "/api/v1/cckm/aws/kms/reads", None).await;
    assert_eq!(
        (status, by_name["name"].clone()),
        (200, json!("reads")),
        "{by_name}"
    );
    assert_eq!(by_name["cloud_name"], "aws");
    for (query, total) in [
        ("cloud_name=aws", 1),
        ("status=ACTIVE", 1),
        ("cloud_name=aws-cn", 0),
        ("name=reads&status=ACTIVE", 1),
    ] {
        let (status, page) = request(
            &stack.entry,
            "GET",
            &format!("/api/v1/cckm/aws/kms?{query}"),
            None,
        )
        .await;
        assert_eq!(
            (status, page["total"].clone()),
            (200, json!(total)),
            "{query}: {page}"
        );
    }
}
