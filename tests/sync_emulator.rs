//! The sync engine end to end on the moto emulator, through the real AWS SDK clients: KMS resources in two
//! accounts (reached with AssumeRole) and three regions, keys of every kind, jobs run by the worker from
//! the real SQS queue, every stored field compared with what the emulator itself reports.

mod common;

use aws_sdk_kms::Client as KmsClient;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, Tag};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use common::emulator::{schedule_deletion, shared};
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-south-1"];

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder()
        .tag_key(key)
        .tag_value(value)
        .build()
        .unwrap()
}

/// One key of every kind in a region; returns the key ids by kind.
async fn seed_region(kms: &KmsClient, region: &str) -> BTreeMap<&'static str, String> {
    let mut ids = BTreeMap::new();
    let create =
        |spec: KeySpec, usage: KeyUsageType| kms.create_key().key_spec(spec).key_usage(usage);
    let symmetric = create(KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt)
        .description("app data key")
        .tags(tag("env", "prod"))
        .tags(tag("team", "payments"))
        .send()
        .await
        .unwrap();
    let id = symmetric.key_metadata.unwrap().key_id;
    kms.create_alias()
        .alias_name(format!("alias/app-{region}"))
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    kms.create_alias()
        .alias_name(format!("alias/second-{region}"))
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    kms.enable_key_rotation().key_id(&id).send().await.unwrap();
    ids.insert("symmetric", id);
    for (kind, spec, usage) in [
        ("rsa", KeySpec::Rsa2048, KeyUsageType::SignVerify),
        ("ecc", KeySpec::EccNistP256, KeyUsageType::SignVerify),
        ("hmac", KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac),
    ] {
        let out = create(spec, usage).send().await.unwrap();
        ids.insert(kind, out.key_metadata.unwrap().key_id);
    }
    let disabled = create(KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt)
        .send()
        .await
        .unwrap();
    let disabled = disabled.key_metadata.unwrap().key_id;
    kms.disable_key().key_id(&disabled).send().await.unwrap();
    ids.insert("disabled", disabled);
    let doomed = create(KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt)
        .send()
        .await
        .unwrap();
    let doomed = doomed.key_metadata.unwrap().key_id;
    schedule_deletion(kms, &doomed).await;
    ids.insert("pending_deletion", doomed);
    ids
}

/// What the emulator says of a key, in CCKM's field names, read with our own SDK client.
async fn expected_param(kms: &KmsClient, key_id: &str) -> Value {
    let meta = kms
        .describe_key()
        .key_id(key_id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    // To the microsecond the emulator sent, which the SDK's f64 can miss by one (checked against the raw
    // answers in `creation_and_deletion_dates_are_the_microseconds_aws_sent`).
    let date = |d: Option<&aws_smithy_types::DateTime>| {
        d.map(|d| {
            let micros = (d.as_secs_f64() * 1e6).round() as i128;
            aws_smithy_types::DateTime::from_nanos(micros * 1000)
                .unwrap()
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .unwrap()
        })
    };
    let tags: Vec<Value> = kms
        .list_resource_tags()
        .key_id(key_id)
        .send()
        .await
        .unwrap()
        .tags()
        .iter()
        .map(|t| json!({"TagKey": t.tag_key(), "TagValue": t.tag_value()}))
        .collect();
    let policy = kms
        .get_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .send()
        .await
        .unwrap()
        .policy;
    let spec = meta
        .key_spec()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let rotation = if spec == "SYMMETRIC_DEFAULT" {
        let status = kms.get_key_rotation_status().key_id(key_id).send().await;
        status.ok().map(|s| s.key_rotation_enabled)
    } else {
        None
    };
    let strings = |v: Vec<String>| json!(v);
    json!({
        "AWSAccountId": meta.aws_account_id(),
        "KeyID": meta.key_id(),
        "Arn": meta.arn(),
        "CreationDate": date(meta.creation_date()),
        "Description": meta.description().unwrap_or_default(),
        "Enabled": meta.enabled(),
        "KeyState": meta.key_state().map(|s| s.as_str()),
        "KeyUsage": meta.key_usage().map(|u| u.as_str()),
        "KeyManager": meta.key_manager().map(|m| m.as_str()),
        "Origin": meta.origin().map(|o| o.as_str()),
        "CustomerMasterKeySpec": spec,
        "EncryptionAlgorithms": strings(meta.encryption_algorithms().iter().map(|a| a.as_str().to_string()).collect()),
        "SigningAlgorithms": strings(meta.signing_algorithms().iter().map(|a| a.as_str().to_string()).collect()),
        "MacAlgorithms": strings(meta.mac_algorithms().iter().map(|a| a.as_str().to_string()).collect()),
        "MultiRegion": meta.multi_region(),
        "DeletionDate": date(meta.deletion_date()),
        "PendingDeletionWindowInDays": meta.pending_deletion_window_in_days(),
        "ValidTo": date(meta.valid_to()),
        "CustomKeyStoreId": meta.custom_key_store_id(),
        "KeyRotationEnabled": rotation,
        "Tags": tags,
        "Policy": policy,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_three_regions_every_key_kind_every_field_as_the_emulator_reports() {
    let emulator = shared();
    let stack = emulator.stack().await;
    let accounts = [random_account(), random_account()];
    let mut seeded = BTreeMap::new();
    for account in &accounts {
        for region in REGIONS {
            let kms = emulator.kms_in(account, region).await;
            seeded.insert((account.clone(), region), seed_region(&kms, region).await);
        }
    }
    // A multi-region primary in us-east-1 with its replica in eu-west-1, in the first account.
    let east = emulator.kms_in(&accounts[0], "us-east-1").await;
    let primary = east
        .create_key()
        .multi_region(true)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    east.replicate_key()
        .key_id(&primary.key_id)
        .replica_region("eu-west-1")
        .send()
        .await
        .unwrap();
    register_kms(&stack.entry, "acct-a", &accounts[0], &REGIONS).await;
    register_kms(&stack.entry, "acct-b", &accounts[1], &REGIONS).await;

    let id = start_job(&stack.entry, json!({"kms": ["acct-a", "acct-b"]})).await;
    assert_eq!(
        get_job(&stack.entry, &id).await["overall_status"],
        "in_progress"
    );
    stack.drain_queue().await;
    let done = get_job(&stack.entry, &id).await;
    assert_eq!(done["overall_status"], "completed", "{done}");
    assert_eq!(done["detailed_status"].as_object().unwrap().len(), 6);
    assert!(
        done["detailed_status"]
            .as_object()
            .unwrap()
            .values()
            .all(|s| s == "region synchronized successfully")
    );
    let expected_total = seeded.values().map(BTreeMap::len).sum::<usize>() + 2;
    assert_eq!(done["progress"]["keys_synced"], expected_total as u64);

    let keys = list_keys(&stack.entry, "").await;
    assert_eq!(keys.len(), expected_total);
    for key in &keys {
        let param = &key["aws_param"];
        let account = param["AWSAccountId"].as_str().unwrap();
        let region = key["region"].as_str().unwrap();
        let kms = emulator.kms_in(account, region).await;
        let expected = expected_param(&kms, param["KeyID"].as_str().unwrap()).await;
        for (field, value) in expected.as_object().unwrap() {
            assert_eq!(
                &param[field], value,
                "{field} of {} in {region}",
                param["KeyID"]
            );
        }
        let arn = param["Arn"].as_str().unwrap();
        assert_eq!(
            key["id"],
            cckm_aws_sync::domain::key::key_record_id(arn).to_string()
        );
        assert_eq!(key["cloud_name"], "aws");
        assert_eq!(key["key_material_origin"], "native");
        assert_eq!(key["gone"], false);
        assert_eq!(
            key["kms"],
            if account == accounts[0] {
                "acct-a"
            } else {
                "acct-b"
            }
        );
        let spec = param["CustomerMasterKeySpec"].as_str().unwrap();
        let expected_type = match spec {
            "SYMMETRIC_DEFAULT" => "symmetric",
            s if s.starts_with("HMAC") => "hmac",
            _ => "asymmetric",
        };
        assert_eq!(key["key_type"], expected_type);
        if spec != "SYMMETRIC_DEFAULT" {
            assert!(
                param["KeyRotationEnabled"].is_null(),
                "no rotation call for {spec}"
            );
        }
    }
    for ((account, region), ids) in &seeded {
        let symmetric = keys
            .iter()
            .find(|k| k["aws_param"]["KeyID"] == ids["symmetric"].as_str())
            .unwrap();
        assert_eq!(
            symmetric["aws_param"]["KeyRotationEnabled"], true,
            "{account}/{region}"
        );
        let mut aliases: Vec<&str> = symmetric["aws_param"]["Alias"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        aliases.sort();
        assert_eq!(
            aliases,
            vec![
                format!("alias/app-{region}"),
                format!("alias/second-{region}")
            ]
        );
        let doomed = keys
            .iter()
            .find(|k| k["aws_param"]["KeyID"] == ids["pending_deletion"].as_str())
            .unwrap();
        assert_eq!(doomed["aws_param"]["KeyState"], "PendingDeletion");
        assert!(doomed["aws_param"]["DeletionDate"].is_string());
        let disabled = keys
            .iter()
            .find(|k| k["aws_param"]["KeyID"] == ids["disabled"].as_str())
            .unwrap();
        assert_eq!(disabled["aws_param"]["Enabled"], false);
    }
    let replicas: Vec<&Value> = keys
        .iter()
        .filter(|k| k["aws_param"]["KeyID"] == primary.key_id.as_str())
        .collect();
    assert_eq!(
        replicas.len(),
        2,
        "the primary and its replica are two keys (two ARNs)"
    );
    assert!(
        replicas
            .iter()
            .all(|k| k["aws_param"]["MultiRegion"] == true)
    );
    let replica = replicas
        .iter()
        .find(|k| k["region"] == "eu-west-1")
        .unwrap();
    assert_eq!(
        replica["aws_param"]["MultiRegionConfiguration"]["PrimaryKey"]["Region"],
        "us-east-1"
    );

    // Filters read the key index by (account, region) and agree with the full list.
    let east_a = list_keys(&stack.entry, "kms=acct-a&region=us-east-1").await;
    let expected_east_a = keys
        .iter()
        .filter(|k| k["kms"] == "acct-a" && k["region"] == "us-east-1")
        .count();
    assert_eq!(east_a.len(), expected_east_a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sync_flags_deleted_keys_gone_keeps_ids_and_created_at_and_sees_new_tags() {
    let emulator = shared();
    let stack = emulator.stack().await;
    let account = random_account();
    let kms = emulator.kms_in(&account, "eu-west-1").await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(
            kms.create_key()
                .send()
                .await
                .unwrap()
                .key_metadata
                .unwrap()
                .key_id,
        );
    }
    let body = json!({"name": "one", "account_id": account, "regions": ["eu-west-1"],
        "assume_role_arn": format!("arn:aws:iam::{account}:role/cckm-sync")});
    assert_eq!(
        request(&stack.entry, "POST", "/api/v1/cckm/aws/kms", Some(body))
            .await
            .0,
        201
    );
    start_job(&stack.entry, json!({"kms": ["one"]})).await;
    stack.drain_queue().await;
    let first = list_keys(&stack.entry, "").await;
    assert_eq!(first.len(), 4);

    // moto removes nothing, so "deleted" is a key whose record we made for an ARN AWS does not list.
    kms.tag_resource()
        .key_id(&ids[0])
        .tags(tag("owner", "new-team"))
        .send()
        .await
        .unwrap();
    let added = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let phantom_arn =
        format!("arn:aws:kms:eu-west-1:{account}:key/00000000-dead-4000-8000-000000000000");
    let mut phantom: cckm_aws_sync::domain::key::KeyRecord = serde_json::from_value({
        let mut record = first[0].clone();
        record["aws_param"]["Arn"] = Value::from(phantom_arn.clone());
        record["aws_param"]["KeyID"] = Value::from("00000000-dead-4000-8000-000000000000");
        record["arn"] = Value::from(phantom_arn.clone());
        record["unit"] = Value::from(format!("{account}/eu-west-1"));
        record["last_seen_job"] = Value::Null;
        record
    })
    .unwrap();
    phantom.id = cckm_aws_sync::domain::key::key_record_id(&phantom_arn);
    stack
        .entry
        .app
        .keys
        .put_all(&[phantom.clone()])
        .await
        .unwrap();
    // A key an earlier sync had found gone (as if it had vanished for a while) and that AWS lists again.
    let mut returning: cckm_aws_sync::domain::key::KeyRecord = serde_json::from_value({
        let mut record = first[1].clone();
        record["arn"] = record["aws_param"]["Arn"].clone();
        record["unit"] = Value::from(format!("{account}/{}", record["region"].as_str().unwrap()));
        record["last_seen_job"] = Value::Null;
        record
    })
    .unwrap();
    returning.gone = true;
    stack
        .entry
        .app
        .keys
        .put_all(&[returning.clone()])
        .await
        .unwrap();
    let returning = returning.id;

    let second = start_job(&stack.entry, json!({"kms": ["one"]})).await;
    stack.drain_queue().await;
    let second_job = get_job(&stack.entry, &second).await;
    assert_eq!(second_job["overall_status"], "completed");
    assert_eq!(second_job["progress"]["keys_gone"], 1);
    let after = list_keys(&stack.entry, "").await;
    assert_eq!(after.len(), 6);
    let gone: Vec<&Value> = after.iter().filter(|k| k["gone"] == true).collect();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0]["id"], phantom.id.to_string());
    let back = after
        .iter()
        .find(|k| k["id"] == returning.to_string())
        .unwrap();
    assert_eq!(back["gone"], false, "a key listed again is un-flagged");
    assert_eq!(list_keys(&stack.entry, "gone=true").await.len(), 1);
    for old in &first {
        let now = after
            .iter()
            .find(|k| k["id"] == old["id"])
            .expect("same id across syncs");
        assert_eq!(now["createdAt"], old["createdAt"]);
        // Only what changed in AWS is written again (the retagged key, the returning one).
        let changed =
            now["aws_param"]["KeyID"] == ids[0].as_str() || now["id"] == returning.to_string();
        assert_eq!(now["synced_at"] != old["synced_at"], changed, "{now}");
    }
    let retagged = after
        .iter()
        .find(|k| k["aws_param"]["KeyID"] == ids[0].as_str())
        .unwrap();
    assert!(
        retagged["aws_param"]["Tags"]
            .as_array()
            .unwrap()
            .contains(&json!({"TagKey": "owner", "TagValue": "new-team"}))
    );
    assert!(
        after
            .iter()
            .any(|k| k["aws_param"]["KeyID"] == added.as_str())
    );
}

/// A key in each of `REGIONS` of `account`.
async fn one_key_per_region(account: &str) {
    for region in REGIONS {
        shared()
            .kms_in(account, region)
            .await
            .create_key()
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_job_ends_completed_with_abort_and_overlap_is_refused_until_then() {
    let emulator = shared();
    let stack = emulator.stack().await;
    let account = random_account();
    one_key_per_region(&account).await;
    register_kms(&stack.entry, "c", &account, &REGIONS).await;
    let id = start_job(&stack.entry, json!({"kms": ["c"]})).await;
    let overlap = request(
        &stack.entry,
        "POST",
        "/api/v1/cckm/aws/synchronization-jobs",
        Some(json!({"kms": ["c"], "regions": ["ap-south-1"]})),
    )
    .await;
    assert_cckm_error(&overlap, 409, 4);
    assert!(overlap.1["message"].as_str().unwrap().contains(&id));
    assert_eq!(
        stack.process_batch(1).await,
        1,
        "one unit runs before the cancel"
    );
    let (status, cancelled) = request(
        &stack.entry,
        "POST",
        &format!("/api/v1/cckm/aws/synchronization-jobs/{id}/cancel"),
        None,
    )
    .await;
    assert_eq!((status, &cancelled["abort"]), (200, &json!(true)));
    assert_eq!(cancelled["overall_status"], "in_progress");
    stack.drain_queue().await;
    let ended = get_job(&stack.entry, &id).await;
    assert_eq!(
        (ended["overall_status"].as_str(), ended["abort"].as_bool()),
        (Some("completed"), Some(true)),
        "{ended}"
    );
    let statuses: Vec<&str> = ended["detailed_status"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == "region synchronized successfully")
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == "region synchronization canceled")
            .count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        list_keys(&stack.entry, "").await.len(),
        1,
        "only the unit that ran before the cancel stored keys"
    );
    let again = request(
        &stack.entry,
        "POST",
        &format!("/api/v1/cckm/aws/synchronization-jobs/{id}/cancel"),
        None,
    )
    .await;
    assert_cckm_error(&again, 409, 4);
    start_job(
        &stack.entry,
        json!({"kms": ["c"], "regions": ["ap-south-1"]}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronize_all_covers_every_registered_kms_and_region() {
    let emulator = shared();
    let stack = emulator.stack().await;
    let (a, b) = (random_account(), random_account());
    for account in [&a, &b] {
        one_key_per_region(account).await;
    }
    register_kms(&stack.entry, "a", &a, &REGIONS).await;
    register_kms(&stack.entry, "b", &b, &REGIONS).await;
    let id = start_job(&stack.entry, json!({"synchronize_all": true})).await;
    let started = get_job(&stack.entry, &id).await;
    assert_eq!(started["kms"], json!([]));
    assert_eq!(started["regions"], json!([]));
    assert_eq!(started["detailed_status"].as_object().unwrap().len(), 6);
    stack.drain_queue().await;
    let done = get_job(&stack.entry, &id).await;
    assert_eq!(done["overall_status"], "completed", "{done}");
    assert_eq!(done["progress"]["keys_synced"], 6);
    assert_eq!(list_keys(&stack.entry, "").await.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_102_units_queues_one_fan_out_message_and_the_workers_run_every_unit_from_sqs() {
    let emulator = shared();
    let stack = emulator.stack().await;
    for n in 0..6 {
        let account = random_account();
        one_key_per_region(&account).await;
        register_kms(&stack.entry, &format!("k{n}"), &account, &SEVENTEEN_REGIONS).await;
    }
    let id = start_job(&stack.entry, json!({"synchronize_all": true})).await;
    let queued = stack
        .sqs()
        .get_queue_attributes()
        .queue_url(&stack.queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    assert_eq!(
        queued
            .attributes()
            .and_then(
                |a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            )
            .map(String::as_str),
        Some("1"),
        "one fan-out share of 102 units"
    );
    assert_eq!(
        stack.drain_queue().await,
        1 + 102,
        "the share, then one message per unit"
    );
    let done = get_job(&stack.entry, &id).await;
    assert_eq!(done["overall_status"], "completed", "{done}");
    assert_eq!(done["progress"]["units_done"], 102);
    assert_eq!(done["progress"]["keys_synced"], 18);
    assert_eq!(list_keys(&stack.entry, "").await.len(), 18);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_lease_in_dynamodb_lets_a_new_job_start_when_a_worker_died() {
    let emulator = shared();
    let stack = emulator.stack().await;
    let account = random_account();
    register_kms(&stack.entry, "l", &account, &REGIONS).await;
    let entry = with_one_second_lease(&stack.entry);
    let (status, first) = request(
        &entry,
        "POST",
        "/api/v1/cckm/aws/synchronization-jobs",
        Some(json!({"kms": ["l"]})),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    assert_cckm_error(
        &request(
            &entry,
            "POST",
            "/api/v1/cckm/aws/synchronization-jobs",
            Some(json!({"kms": ["l"]})),
        )
        .await,
        409,
        4,
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, second) = request(
        &entry,
        "POST",
        "/api/v1/cckm/aws/synchronization-jobs",
        Some(json!({"kms": ["l"]})),
    )
    .await;
    assert_eq!(status, 201, "{second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_job_whose_workers_are_gone_ends_it_at_once_in_dynamodb() {
    let emulator = shared();
    let stack = emulator.stack().await;
    register_kms(&stack.entry, "gone", &random_account(), &REGIONS).await;
    let entry = with_one_second_lease(&stack.entry);
    let (_, started) = request(
        &entry,
        "POST",
        "/api/v1/cckm/aws/synchronization-jobs",
        Some(json!({"kms": ["gone"]})),
    )
    .await;
    let id = started["id"].as_str().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, job) = request(
        &entry,
        "POST",
        &format!("/api/v1/cckm/aws/synchronization-jobs/{id}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (job["overall_status"].as_str(), job["abort"].as_bool()),
        (Some("completed"), Some(true)),
        "{job}"
    );
    assert_eq!(job["progress"]["units_done"], 3);
}

/// The raw body of every answer a client reads: the dates as AWS wrote them, before the SDK reads them
/// through an f64.
#[derive(Debug, Default, Clone)]
struct RawAnswers(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Intercept for RawAnswers {
    fn name(&self) -> &'static str {
        "RawAnswers"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(bytes) = context.response().body().bytes() {
            let text = String::from_utf8_lossy(bytes).into_owned();
            self.0.lock().unwrap().push(text);
        }
        Ok(())
    }
}

/// The microseconds since the epoch of `"<field>": <seconds>` in a raw answer, read off its decimal text.
fn raw_micros(answer: &str, field: &str) -> Option<i64> {
    let start = answer.find(&format!("\"{field}\":"))? + field.len() + 3;
    let number: String = answer[start..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let (secs, fraction) = number.split_once('.').unwrap_or((&number, ""));
    let micros = format!("{fraction:0<6}");
    assert!(micros.len() == 6, "{number}: finer than a microsecond");
    Some(secs.parse::<i64>().ok()? * 1_000_000 + micros.parse::<i64>().ok()?)
}

fn shown_micros(shown: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(shown.as_str().expect("a date"))
        .expect("RFC 3339")
        .timestamp_micros()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_and_deletion_dates_are_the_microseconds_aws_sent() {
    let emulator = shared();
    let stack = emulator.stack().await;
    let account = random_account();
    let raw = RawAnswers::default();
    let kms = emulator.kms_in(&account, "us-east-1").await;
    let kms = KmsClient::from_conf(kms.config().to_builder().interceptor(raw.clone()).build());
    let mut sent = BTreeMap::new();
    for n in 0..40 {
        let key = kms
            .create_key()
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap()
            .key_id;
        let created = raw_micros(raw.0.lock().unwrap().last().unwrap(), "CreationDate");
        let deleted = if n % 4 == 0 {
            kms.schedule_key_deletion()
                .key_id(&key)
                .send()
                .await
                .unwrap();
            raw_micros(raw.0.lock().unwrap().last().unwrap(), "DeletionDate")
        } else {
            None
        };
        sent.insert(key, (created.expect("a creation date"), deleted));
    }
    register_kms(&stack.entry, "dates", &account, &["us-east-1"]).await;
    let id = start_job(&stack.entry, json!({"kms": ["dates"]})).await;
    stack.drain_queue().await;
    assert_eq!(
        get_job(&stack.entry, &id).await["overall_status"],
        "completed"
    );
    let keys = list_keys(&stack.entry, "").await;
    assert_eq!(keys.len(), 40);
    for key in keys {
        let param = &key["aws_param"];
        let (created, deleted) = sent[param["KeyID"].as_str().unwrap()];
        assert_eq!(shown_micros(&param["CreationDate"]), created, "{param}");
        if let Some(deleted) = deleted {
            assert_eq!(shown_micros(&param["DeletionDate"]), deleted, "{param}");
        }
    }
}
