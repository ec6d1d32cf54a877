//! The keys API on the emulator through the real SDK (spec 2, issue 4): every filter and sort over a synced
//! data set of 300+ keys, checked against an independent computation over the full list; paging; refresh
//! after a change in AWS; delete then re-sync; bad query parameters.

mod common;

use aws_sdk_kms::types::{KeySpec, KeyUsageType, Tag};
use cckm_aws_sync::domain::key::{KeyRecord, key_record_id};
use common::emulator::{Stack, schedule_deletion, shared};
use common::*;
use serde_json::{Value, json};
use std::cmp::Ordering;

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-south-1"];
const KEYS_PER_REGION: usize = 50;

/// A varied region: specs, usages, disabled and pending-deletion keys, aliases, tags, multi-region keys.
async fn seed(kms: &aws_sdk_kms::Client, region: &str) {
    for n in 0..KEYS_PER_REGION {
        let (spec, usage) = match n % 5 {
            0 => (KeySpec::Rsa2048, KeyUsageType::SignVerify),
            1 => (KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac),
            2 => (KeySpec::EccNistP256, KeyUsageType::SignVerify),
            _ => (KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt),
        };
        let env = if n % 2 == 0 { "prod" } else { "dev" };
        let created = kms
            .create_key()
            .key_spec(spec)
            .key_usage(usage)
            .multi_region(n % 13 == 0)
            .tags(
                Tag::builder()
                    .tag_key("env")
                    .tag_value(env)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let id = created.key_metadata.unwrap().key_id;
        if n % 3 == 0 {
            kms.create_alias()
                .alias_name(format!("alias/{region}-{n}"))
                .target_key_id(&id)
                .send()
                .await
                .unwrap();
        }
        if n % 7 == 0 {
            kms.disable_key().key_id(&id).send().await.unwrap();
        }
        if n % 11 == 0 {
            schedule_deletion(kms, &id).await;
        }
    }
}

async fn sync(stack: &Stack, body: Value) -> Value {
    let id = start_job(&stack.entry, body).await;
    stack.drain_queue().await;
    let done = get_job(&stack.entry, &id).await;
    assert_eq!(done["overall_status"], "completed", "{done}");
    done
}

async fn list(stack: &Stack, query: &str) -> (u16, Value) {
    request(
        &stack.entry,
        "GET",
        &format!("/api/v1/cckm/aws/keys?{query}"),
        None,
    )
    .await
}

fn ids(items: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = items
        .iter()
        .map(|k| k["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

/// Which keys a query should return, computed by the test itself.
type Predicate<'a> = Box<dyn Fn(&Value) -> bool + 'a>;

fn field<'a>(item: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(item, |v, part| v.get(part).unwrap_or(&Value::Null))
}

/// The test's own order on JSON values: null < bool < number < text; arrays by their first element.
fn order(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            _ => 4,
        }
    }
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => order(
            x.first().unwrap_or(&Value::Null),
            y.first().unwrap_or(&Value::Null),
        ),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_filter_sort_and_page_agrees_with_an_independent_computation_over_300_keys() {
    let emulator = shared();
    let stack = emulator.stack().await;
    let (a, b) = (random_account(), random_account());
    for account in [&a, &b] {
        for region in REGIONS {
            seed(&emulator.kms_in(account, region).await, region).await;
        }
    }
    register_kms(&stack.entry, "alpha", &a, &REGIONS).await;
    register_kms(&stack.entry, "beta", &b, &REGIONS).await;
    // A record AWS no longer lists: the sync flags it gone.
    let phantom_arn = format!("arn:aws:kms:eu-west-1:{a}:key/00000000-0000-4000-8000-00000000dead");
    let mut phantom: KeyRecord = serde_json::from_value(json!({
        "id": key_record_id(&phantom_arn), "createdAt": "2026-01-01T00:00:00.000000Z", "updatedAt": "2026-01-01T00:00:00.000000Z",
        "kms_id": uuid::Uuid::nil(), "kms": "alpha", "region": "eu-west-1", "cloud_name": "aws",
        "synced_at": "2026-01-01T00:00:00.000000Z", "gone": false, "key_type": "symmetric", "key_material_origin": "native",
        "labels": {}, "aws_param": {"AWSAccountId": a, "KeyID": "00000000-0000-4000-8000-00000000dead", "Arn": phantom_arn,
            "Alias": [], "Description": "", "Enabled": true, "KeyState": "Enabled", "KeyUsage": "ENCRYPT_DECRYPT",
            "KeyManager": "CUSTOMER", "Origin": "AWS_KMS", "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
            "EncryptionAlgorithms": [], "SigningAlgorithms": [], "MacAlgorithms": [], "MultiRegion": false},
        "sync_errors": {}, "unit": format!("{a}/eu-west-1"), "arn": phantom_arn, "last_seen_job": null
    }))
    .unwrap();
    phantom.kms_id = uuid::Uuid::nil();
    stack.entry.app.keys.put_all(&[phantom]).await.unwrap();
    let job = sync(&stack, json!({"synchronize_all": true})).await;
    assert_eq!(job["progress"]["keys_gone"], 1);

    let all = list_keys(&stack.entry, "").await;
    assert_eq!(
        all.len(),
        2 * 3 * KEYS_PER_REGION + 1,
        "300 synced keys and the gone one"
    );
    let alpha_id = all
        .iter()
        .find(|k| k["kms"] == "alpha" && k["gone"] == false)
        .unwrap()["kms_id"]
        .clone();
    let some = &all[17];
    let text = |k: &Value, path: &str| field(k, path).as_str().unwrap_or_default().to_string();
    let filters: Vec<(String, Predicate)> = vec![
        (
            format!("id={}", some["id"].as_str().unwrap()),
            Box::new(|k| k["id"] == some["id"]),
        ),
        (
            format!("keyid={}", text(some, "aws_param.KeyID")),
            Box::new(|k| k["aws_param"]["KeyID"] == some["aws_param"]["KeyID"]),
        ),
        (
            format!("arn={}", text(some, "aws_param.Arn")),
            Box::new(|k| k["aws_param"]["Arn"] == some["aws_param"]["Arn"]),
        ),
        // Read through the key-id index, the region filtered on the record.
        (
            format!(
                "keyid={}&region={}&keyid=00000000-0000-4000-8000-00000000dead",
                text(some, "aws_param.KeyID"),
                text(some, "region")
            ),
            Box::new(|k| {
                k["region"] == some["region"]
                    && (k["aws_param"]["KeyID"] == some["aws_param"]["KeyID"]
                        || k["aws_param"]["KeyID"] == "00000000-0000-4000-8000-00000000dead")
            }),
        ),
        (
            format!(
                "arn={}&kms={}",
                text(some, "aws_param.Arn"),
                text(some, "kms")
            ),
            Box::new(|k| k["aws_param"]["Arn"] == some["aws_param"]["Arn"]),
        ),
        (
            "alias=alias/eu-west-1-9".into(),
            Box::new(|k| {
                k["aws_param"]["Alias"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("alias/eu-west-1-9"))
            }),
        ),
        // A bare alias, as CCKM's Terraform and Ansible examples write it.
        (
            "alias=eu-west-1-9".into(),
            Box::new(|k| {
                k["aws_param"]["Alias"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("alias/eu-west-1-9"))
            }),
        ),
        ("kms=alpha".into(), Box::new(|k| k["kms"] == "alpha")),
        // A KMS resource's keys are those of its account and regions (a record another resource of the
        // same account wrote, or one with a stale resource id, included).
        (
            format!("kms_id={}", alpha_id.as_str().unwrap()),
            Box::new(|k| k["aws_param"]["AWSAccountId"] == a.as_str()),
        ),
        (
            "kms=beta&region=ap-south-1".into(),
            Box::new(|k| k["kms"] == "beta" && k["region"] == "ap-south-1"),
        ),
        (
            "region=us-east-1".into(),
            Box::new(|k| k["region"] == "us-east-1"),
        ),
        (
            "region=us-east-1&region=eu-west-1".into(),
            Box::new(|k| k["region"] == "us-east-1" || k["region"] == "eu-west-1"),
        ),
        (
            "cloud_name=aws".into(),
            Box::new(|k| k["cloud_name"] == "aws"),
        ),
        (
            "keystate=PendingDeletion".into(),
            Box::new(|k| k["aws_param"]["KeyState"] == "PendingDeletion"),
        ),
        (
            "keystate=Disabled".into(),
            Box::new(|k| k["aws_param"]["KeyState"] == "Disabled"),
        ),
        (
            "keyusage=SIGN_VERIFY".into(),
            Box::new(|k| k["aws_param"]["KeyUsage"] == "SIGN_VERIFY"),
        ),
        (
            "keymanager=CUSTOMER".into(),
            Box::new(|k| k["aws_param"]["KeyManager"] == "CUSTOMER"),
        ),
        (
            "origin=AWS_KMS".into(),
            Box::new(|k| k["aws_param"]["Origin"] == "AWS_KMS"),
        ),
        ("gone=true".into(), Box::new(|k| k["gone"] == true)),
        ("gone=false".into(), Box::new(|k| k["gone"] == false)),
        (
            "enabled=false".into(),
            Box::new(|k| k["aws_param"]["Enabled"] == false),
        ),
        (
            "multi_region=true".into(),
            Box::new(|k| k["aws_param"]["MultiRegion"] == true),
        ),
        (
            "kms=alpha&gone=false&enabled=true&keyusage=ENCRYPT_DECRYPT".into(),
            Box::new(|k| {
                k["kms"] == "alpha"
                    && k["gone"] == false
                    && k["aws_param"]["Enabled"] == true
                    && k["aws_param"]["KeyUsage"] == "ENCRYPT_DECRYPT"
            }),
        ),
        ("kms=nobody".into(), Box::new(|_| false)),
        ("id=nobody".into(), Box::new(|_| false)),
    ];
    for (query, predicate) in &filters {
        let expected: Vec<Value> = all.iter().filter(|k| predicate(k)).cloned().collect();
        let got = list_keys(&stack.entry, query).await;
        assert_eq!(ids(&got), ids(&expected), "filter {query}");
        assert!(
            !expected.is_empty() || query.contains("nobody"),
            "filter {query} should match something"
        );
        // A page in the default order (newest first, then by id): read through an index, with the true
        // total (kept counts, or the matches read).
        let mut newest: Vec<&Value> = expected.iter().collect();
        newest.sort_by(|a, b| {
            (b["createdAt"].as_str(), b["id"].as_str())
                .cmp(&(a["createdAt"].as_str(), a["id"].as_str()))
        });
        let (status, page) = list(&stack, &format!("{query}&skip=2&limit=7")).await;
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(
            page["total"].as_u64(),
            Some(expected.len() as u64),
            "total of {query}"
        );
        let in_order = |items: &[&Value]| -> Vec<String> {
            items
                .iter()
                .map(|k| k["id"].as_str().unwrap_or_default().to_string())
                .collect()
        };
        let resources: Vec<&Value> = page["resources"].as_array().unwrap().iter().collect();
        let wanted: Vec<&Value> = newest.iter().skip(2).take(7).copied().collect();
        assert_eq!(in_order(&resources), in_order(&wanted), "page of {query}");
    }

    for sort in [
        "createdAt",
        "-createdAt",
        "region,-aws_param.KeyState",
        "aws_param.Arn",
        "-aws_param.KeyID",
        "kms,aws_param.CustomerMasterKeySpec",
        "gone",
        "-aws_param.Enabled",
        "aws_param.Alias",
        "-synced_at,aws_param.MultiRegion",
    ] {
        let got = list_keys(&stack.entry, &format!("sort={sort}")).await;
        assert_eq!(ids(&got), ids(&all), "sort {sort} keeps every key");
        let keys: Vec<(&str, bool)> = sort
            .split(',')
            .map(|s| s.strip_prefix('-').map_or((s, false), |f| (f, true)))
            .collect();
        for pair in got.windows(2) {
            let ord = keys.iter().fold(Ordering::Equal, |acc, (path, desc)| {
                acc.then_with(|| {
                    let o = order(field(&pair[0], path), field(&pair[1], path));
                    if *desc { o.reverse() } else { o }
                })
            });
            assert_ne!(
                ord,
                Ordering::Greater,
                "sort {sort}: {} before {}",
                pair[0]["id"],
                pair[1]["id"]
            );
        }
    }

    // Pages of 37 by ARN: consistent totals, no key twice, none missing.
    let by_arn = list_keys(&stack.entry, "sort=aws_param.Arn").await;
    let mut paged = Vec::new();
    for skip in (0..by_arn.len()).step_by(37) {
        let (status, page) =
            list(&stack, &format!("sort=aws_param.Arn&skip={skip}&limit=37")).await;
        assert_eq!(status, 200);
        assert_eq!(page["total"].as_u64(), Some(by_arn.len() as u64));
        assert_eq!(
            (page["skip"].as_u64(), page["limit"].as_u64()),
            (Some(skip as u64), Some(37))
        );
        paged.extend(page["resources"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(paged, by_arn);
    let (_, default_page) = list(&stack, "").await;
    assert_eq!(
        (
            default_page["limit"].as_u64(),
            default_page["resources"].as_array().unwrap().len()
        ),
        (Some(10), 10)
    );

    for bad in [
        "sort=colour",
        "skip=-1",
        "gone=yes",
        "limit=1001",
        "enabled=1",
        "flavour=x",
        "limit=ten",
    ] {
        assert_cckm_error(&list(&stack, bad).await, 400, 9);
    }
}

/// A stack with one key in a fresh account's us-east-1, registered as `name` and synced: the stack, the
/// account's KMS client, the key id and its record.
async fn one_key_synced(name: &str) -> (Stack, aws_sdk_kms::Client, String, Value) {
    let emulator = shared();
    let stack = emulator.stack().await;
    let account = random_account();
    let kms = emulator.kms_in(&account, "us-east-1").await;
    let key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    register_kms(&stack.entry, name, &account, &["us-east-1"]).await;
    sync(&stack, json!({"kms": [name]})).await;
    let mut found = list_keys(&stack.entry, &format!("keyid={key}")).await;
    assert_eq!(found.len(), 1);
    (stack, kms, key, found.remove(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rereads_one_key_after_a_tag_change_and_a_scheduled_deletion() {
    let (stack, kms, key, record) = one_key_synced("r").await;
    let id = record["id"].as_str().unwrap();
    assert_eq!(record["aws_param"]["Tags"], json!([]));

    kms.tag_resource()
        .key_id(&key)
        .tags(
            Tag::builder()
                .tag_key("owner")
                .tag_value("sec")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (status, answer) = request(
        &stack.entry,
        "POST",
        &format!("/api/v1/cckm/aws/keys/{id}/refresh"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"message": format!("AWS key '{id}' will be refreshed and persisted")})
    );
    let (_, refreshed) = request(
        &stack.entry,
        "GET",
        &format!("/api/v1/cckm/aws/keys/{id}"),
        None,
    )
    .await;
    assert_eq!(
        refreshed["aws_param"]["Tags"],
        json!([{"TagKey": "owner", "TagValue": "sec"}])
    );
    assert_eq!(refreshed["createdAt"], record["createdAt"]);

    schedule_deletion(&kms, &key).await;
    request(
        &stack.entry,
        "POST",
        &format!("/api/v1/cckm/aws/keys/{id}/refresh"),
        None,
    )
    .await;
    let (_, doomed) = request(
        &stack.entry,
        "GET",
        &format!("/api/v1/cckm/aws/keys/{id}"),
        None,
    )
    .await;
    assert_eq!(doomed["aws_param"]["KeyState"], "PendingDeletion");
    assert!(doomed["aws_param"]["DeletionDate"].is_string());
    // Also at the top level, where the Terraform provider reads it.
    assert_eq!(doomed["deletion_date"], doomed["aws_param"]["DeletionDate"]);
    assert_eq!(refreshed["deletion_date"], Value::Null);
    assert_eq!(
        list_keys(&stack.entry, "keystate=PendingDeletion")
            .await
            .len(),
        1
    );

    let unknown = request(
        &stack.entry,
        "POST",
        &format!("/api/v1/cckm/aws/keys/{}/refresh", uuid::Uuid::new_v4()),
        None,
    )
    .await;
    assert_cckm_error(&unknown, 404, 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_record_comes_back_with_the_same_id_on_the_next_sync() {
    let emulator = shared();
    let stack = emulator.stack().await;
    let account = random_account();
    let kms = emulator.kms_in(&account, "ap-south-1").await;
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    register_kms(&stack.entry, "d", &account, &["ap-south-1"]).await;
    sync(&stack, json!({"kms": ["d"]})).await;
    let id = key_record_id(key.arn().unwrap()).to_string();
    let (status, _) = request(
        &stack.entry,
        "DELETE",
        &format!("/api/v1/cckm/aws/keys/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_cckm_error(
        &request(
            &stack.entry,
            "GET",
            &format!("/api/v1/cckm/aws/keys/{id}"),
            None,
        )
        .await,
        404,
        16,
    );
    assert_cckm_error(
        &request(
            &stack.entry,
            "DELETE",
            &format!("/api/v1/cckm/aws/keys/{id}"),
            None,
        )
        .await,
        404,
        16,
    );
    kms.describe_key()
        .key_id(&key.key_id)
        .send()
        .await
        .expect("the AWS key is untouched");
    sync(&stack, json!({"kms": ["d"]})).await;
    let (status, back) = request(
        &stack.entry,
        "GET",
        &format!("/api/v1/cckm/aws/keys/{id}"),
        None,
    )
    .await;
    assert_eq!((status, back["gone"].as_bool()), (200, Some(false)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_sync_rewrites_a_key_stored_before_the_key_id_index() {
    let (stack, _, key, record) = one_key_synced("old").await;

    // As an item of layout 0 was stored: without the layout and the key-id index attribute.
    stack
        .dynamodb()
        .update_item()
        .table_name(&stack.config.keys_table)
        .key(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S(record["id"].as_str().unwrap().into()),
        )
        .update_expression("REMOVE layout, keyid")
        .send()
        .await
        .unwrap();
    assert!(
        list_keys(&stack.entry, &format!("keyid={key}"))
            .await
            .is_empty()
    );

    let job = sync(&stack, json!({"kms": ["old"]})).await;
    assert_eq!(job["progress"]["keys_synced"], 1, "{job}");
    let found = list_keys(&stack.entry, &format!("keyid={key}")).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["createdAt"], record["createdAt"]);
}
