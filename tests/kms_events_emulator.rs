//! CloudTrail KMS events on the emulator (issue 11): each sample event of `events/` (`cloudtrail-kms-*`),
//! with this test's account, keys and alias put in, follows the very call it reports, made through the real
//! SDK, and the stored key must then show what AWS shows. Repeated, late and concurrent events leave the
//! newest state; events of accounts and regions nobody registered change nothing. `DeleteKey` is tested in
//! memory: moto never deletes a key (its deletion window never ends).

mod common;

use aws_sdk_kms::types::{AlgorithmSpec, ExpirationModelType, OriginType, WrappingKeySpec};
use cckm_aws_sync::domain::key::{KeyRecord, key_record_id};
use cckm_aws_sync::domain::time::now;
use cckm_aws_sync::entry::Entry;
use common::emulator::{Stack, schedule_deletion, shared};
use common::*;
use serde_json::Value;
use std::path::PathBuf;

const REGION: &str = "us-east-1";
const REPLICA_REGION: &str = "eu-west-1";
/// What the sample events name, replaced by this test's own (see `events/generate.py`).
const SAMPLE_ACCOUNT: &str = "123456789012";
const SAMPLE_KEY: &str = "0b5c7e3a-7f41-4d2a-9c61-5e8f2d4a1b90";
const SAMPLE_MRK: &str = "mrk-4f1e2d3c4b5a69788796a5b4c3d2e1f0";
const SAMPLE_ALIAS: &str = "alias/cckm-sample-app";

fn sample(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(format!("cloudtrail-kms-{name}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The sample event `name`, naming `key_id` (in place of the sample key or multi-Region key), `account`
/// and `alias`.
fn event(name: &str, account: &str, key_id: &str, alias: &str) -> Value {
    let text = sample(name)
        .replace(SAMPLE_ACCOUNT, account)
        .replace(SAMPLE_KEY, key_id)
        .replace(SAMPLE_MRK, key_id)
        .replace(SAMPLE_ALIAS, alias);
    serde_json::from_str(&text).expect("sample event")
}

async fn deliver(entry: &Entry, event: Value) -> Value {
    let deadline = now() + chrono::Duration::minutes(1);
    entry
        .handle(event, "kms-event-test", deadline)
        .await
        .expect("the event is applied, not sent back")
}

struct Account {
    stack: Stack,
    id: String,
    kms: aws_sdk_kms::Client,
    replica_kms: aws_sdk_kms::Client,
    alias: String,
}

impl Account {
    async fn registered() -> Account {
        let emulator = shared();
        let stack = emulator.stack().await;
        let id = random_account();
        register_kms(&stack.entry, "trail", &id, &[REGION, REPLICA_REGION]).await;
        Account {
            kms: emulator.kms_in(&id, REGION).await,
            replica_kms: emulator.kms_in(&id, REPLICA_REGION).await,
            alias: format!(
                "alias/app-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            stack,
            id,
        }
    }

    /// Delivers the sample event `name` for `key_id`; answers what the function answered.
    async fn follow(&self, name: &str, key_id: &str) -> Value {
        deliver(
            &self.stack.entry,
            event(name, &self.id, key_id, &self.alias),
        )
        .await
    }

    fn arn(&self, region: &str, key_id: &str) -> String {
        format!("arn:aws:kms:{region}:{}:key/{key_id}", self.id)
    }

    async fn stored_in(&self, region: &str, key_id: &str) -> Option<KeyRecord> {
        self.stack
            .entry
            .app
            .keys
            .get(key_record_id(&self.arn(region, key_id)))
            .await
            .expect("read the key store")
    }

    async fn stored(&self, key_id: &str) -> KeyRecord {
        self.stored_in(REGION, key_id)
            .await
            .unwrap_or_else(|| panic!("key {key_id} is stored"))
    }

    async fn create_key(&self, origin: OriginType, multi_region: bool) -> String {
        self.kms
            .create_key()
            .origin(origin)
            .multi_region(multi_region)
            .send()
            .await
            .expect("create key")
            .key_metadata
            .expect("metadata")
            .key_id
    }
}

fn state(key: &KeyRecord) -> &str {
    key.aws_param.key_state.as_deref().unwrap_or_default()
}

fn tags(key: &KeyRecord) -> Vec<(String, String)> {
    key.aws_param
        .tags
        .iter()
        .flatten()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_followed_call_then_its_event_stores_what_aws_shows() {
    let account = Account::registered().await;
    let kms = &account.kms;

    let key = account.create_key(OriginType::AwsKms, false).await;
    assert!(account.stored_in(REGION, &key).await.is_none());
    let answer = account.follow("CreateKey", &key).await;
    assert_eq!(answer["result"]["stored"], 1, "{answer}");
    let stored = account.stored(&key).await;
    assert_eq!((state(&stored), stored.gone), ("Enabled", false));
    assert_eq!(stored.kms, "trail");
    assert_eq!(stored.last_seen_job, None, "no job saw it yet");

    kms.tag_resource()
        .key_id(&key)
        .tags(
            aws_sdk_kms::types::Tag::builder()
                .tag_key("team")
                .tag_value("payments")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    account.follow("TagResource", &key).await;
    assert_eq!(
        tags(&account.stored(&key).await),
        vec![("team".into(), "payments".into())]
    );
    kms.untag_resource()
        .key_id(&key)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    account.follow("UntagResource", &key).await;
    assert_eq!(tags(&account.stored(&key).await), vec![]);

    kms.update_key_description()
        .key_id(&key)
        .description("payments data key")
        .send()
        .await
        .unwrap();
    account.follow("UpdateKeyDescription", &key).await;
    assert_eq!(
        account.stored(&key).await.aws_param.description.as_deref(),
        Some("payments data key")
    );

    kms.disable_key().key_id(&key).send().await.unwrap();
    account.follow("DisableKey", &key).await;
    let stored = account.stored(&key).await;
    assert_eq!(
        (state(&stored), stored.aws_param.enabled),
        ("Disabled", Some(false))
    );
    kms.enable_key().key_id(&key).send().await.unwrap();
    account.follow("EnableKey", &key).await;
    assert_eq!(state(&account.stored(&key).await), "Enabled");

    kms.enable_key_rotation()
        .key_id(&key)
        .rotation_period_in_days(180)
        .send()
        .await
        .unwrap();
    account.follow("EnableKeyRotation", &key).await;
    assert_eq!(
        account.stored(&key).await.aws_param.key_rotation_enabled,
        Some(true)
    );
    let before_rotation = account.stored(&key).await.synced_at;
    kms.rotate_key_on_demand()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    account.follow("RotateKeyOnDemand", &key).await;
    assert!(
        account.stored(&key).await.synced_at > before_rotation,
        "read again after the rotation"
    );
    kms.disable_key_rotation()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    account.follow("DisableKeyRotation", &key).await;
    assert_eq!(
        account.stored(&key).await.aws_param.key_rotation_enabled,
        Some(false)
    );

    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"events","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#,
        account.id
    );
    kms.put_key_policy()
        .key_id(&key)
        .policy_name("default")
        .policy(&policy)
        .send()
        .await
        .unwrap();
    account.follow("PutKeyPolicy", &key).await;
    assert_eq!(
        account.stored(&key).await.aws_param.policy.as_deref(),
        Some(policy.as_str())
    );

    // The alias moves from `key` to `other`; no event names `key` after that, our records do.
    let alias = account.alias.clone();
    kms.create_alias()
        .alias_name(&alias)
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    account.follow("CreateAlias", &key).await;
    assert_eq!(
        account.stored(&key).await.aws_param.alias,
        vec![alias.clone()]
    );
    let other = account.create_key(OriginType::AwsKms, false).await;
    kms.update_alias()
        .alias_name(&alias)
        .target_key_id(&other)
        .send()
        .await
        .unwrap();
    let answer = account.follow("UpdateAlias", &other).await;
    assert_eq!(
        answer["result"]["stored"], 2,
        "the key it left and the key it joined: {answer}"
    );
    assert_eq!(
        account.stored(&key).await.aws_param.alias,
        Vec::<String>::new()
    );
    assert_eq!(
        account.stored(&other).await.aws_param.alias,
        vec![alias.clone()]
    );
    kms.delete_alias().alias_name(&alias).send().await.unwrap();
    let answer = account.follow("DeleteAlias", &other).await;
    assert_eq!(answer["result"]["stored"], 1, "{answer}");
    assert_eq!(
        account.stored(&other).await.aws_param.alias,
        Vec::<String>::new()
    );

    schedule_deletion(kms, &key).await;
    account.follow("ScheduleKeyDeletion", &key).await;
    let stored = account.stored(&key).await;
    assert_eq!(state(&stored), "PendingDeletion");
    assert!(stored.aws_param.deletion_date.is_some());
    kms.cancel_key_deletion().key_id(&key).send().await.unwrap();
    account.follow("CancelKeyDeletion", &key).await;
    let stored = account.stored(&key).await;
    assert_eq!(
        state(&stored),
        "Disabled",
        "AWS leaves a key whose deletion is canceled disabled"
    );
    assert_eq!(stored.aws_param.deletion_date, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_key_material_events_store_the_material_state() {
    let account = Account::registered().await;
    let kms = &account.kms;
    let key = account.create_key(OriginType::External, false).await;
    account.follow("CreateKey", &key).await;
    assert_eq!(state(&account.stored(&key).await), "PendingImport");

    let parameters = kms
        .get_parameters_for_import()
        .key_id(&key)
        .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .unwrap();
    kms.import_key_material()
        .key_id(&key)
        .import_token(parameters.import_token.unwrap())
        .encrypted_key_material(aws_smithy_types::Blob::new(vec![7u8; 256]))
        .expiration_model(ExpirationModelType::KeyMaterialExpires)
        .valid_to(aws_smithy_types::DateTime::from_secs(1_893_456_000))
        .send()
        .await
        .unwrap();
    account.follow("ImportKeyMaterial", &key).await;
    let stored = account.stored(&key).await;
    assert_eq!(state(&stored), "Enabled");
    assert_eq!(
        stored.aws_param.expiration_model.as_deref(),
        Some("KEY_MATERIAL_EXPIRES")
    );
    assert_eq!(
        stored.aws_param.valid_to.as_deref(),
        Some("2030-01-01T00:00:00Z")
    );

    kms.delete_imported_key_material()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    account.follow("DeleteImportedKeyMaterial", &key).await;
    let stored = account.stored(&key).await;
    assert_eq!(state(&stored), "PendingImport");
    assert_eq!(stored.aws_param.valid_to, None);
}

fn multi_region_type(key: &KeyRecord) -> &str {
    key.aws_param
        .multi_region_configuration
        .as_ref()
        .and_then(|c| c["MultiRegionKeyType"].as_str())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_and_primary_region_events_store_the_key_in_both_regions() {
    let account = Account::registered().await;
    let key = account.create_key(OriginType::AwsKms, true).await;
    account.follow("CreateKey", &key).await;
    account
        .kms
        .replicate_key()
        .key_id(&key)
        .replica_region(REPLICA_REGION)
        .send()
        .await
        .unwrap();
    let answer = account.follow("ReplicateKey", &key).await;
    assert_eq!(answer["result"]["stored"], 2, "{answer}");
    let replica = account
        .stored_in(REPLICA_REGION, &key)
        .await
        .expect("replica stored");
    assert_eq!(multi_region_type(&replica), "REPLICA");
    assert_eq!(replica.region, REPLICA_REGION);
    let primary = account.stored(&key).await;
    assert_eq!(multi_region_type(&primary), "PRIMARY");
    let replicas = &primary
        .aws_param
        .multi_region_configuration
        .as_ref()
        .unwrap()["ReplicaKeys"];
    assert_eq!(replicas[0]["Region"], REPLICA_REGION, "{replicas}");

    account
        .kms
        .update_primary_region()
        .key_id(&key)
        .primary_region(REPLICA_REGION)
        .send()
        .await
        .unwrap();
    account.follow("UpdatePrimaryRegion", &key).await;
    assert_eq!(multi_region_type(&account.stored(&key).await), "REPLICA");
    let moved = account.stored_in(REPLICA_REGION, &key).await.unwrap();
    assert_eq!(multi_region_type(&moved), "PRIMARY");
    // The replica region's own client sees the same.
    let described = account
        .replica_kms
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    let aws_type = described
        .key_metadata
        .and_then(|m| m.multi_region_configuration)
        .and_then(|c| c.multi_region_key_type)
        .map(|t| t.as_str().to_string());
    assert_eq!(aws_type.as_deref(), Some("PRIMARY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_late_and_concurrent_events_leave_the_newest_state() {
    let account = Account::registered().await;
    let key = account.create_key(OriginType::AwsKms, false).await;
    account.kms.disable_key().key_id(&key).send().await.unwrap();
    let disabled = event("DisableKey", &account.id, &key, &account.alias);
    deliver(&account.stack.entry, disabled.clone()).await;
    assert_eq!(state(&account.stored(&key).await), "Disabled");
    account.kms.enable_key().key_id(&key).send().await.unwrap();
    let enabled = event("EnableKey", &account.id, &key, &account.alias);
    deliver(&account.stack.entry, enabled.clone()).await;
    // The DisableKey event again, late and twice, and eight copies of both at once.
    deliver(&account.stack.entry, disabled.clone()).await;
    deliver(&account.stack.entry, disabled.clone()).await;
    let copies = (0..8).map(|n| {
        let event = if n % 2 == 0 { &disabled } else { &enabled };
        deliver(&account.stack.entry, event.clone())
    });
    futures::future::join_all(copies).await;
    let stored = account.stored(&key).await;
    assert_eq!(state(&stored), "Enabled", "AWS says Enabled");

    // A read that began before the stored one is refused, even when it comes last.
    let mut older = stored.clone();
    older.aws_param.key_state = Some("Disabled".into());
    older.synced_at = stored.synced_at - chrono::Duration::seconds(1);
    let keys = &account.stack.entry.app.keys;
    assert!(!keys.store_read(&older, true).await.unwrap());
    assert_eq!(state(&account.stored(&key).await), "Enabled");
    let mut newer = stored.clone();
    newer.aws_param.description = Some("newer".into());
    newer.synced_at = stored.synced_at + chrono::Duration::seconds(1);
    assert!(keys.store_read(&newer, true).await.unwrap());
    assert_eq!(
        account.stored(&key).await.aws_param.description.as_deref(),
        Some("newer")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_accounts_and_regions_nobody_registered_change_nothing() {
    let account = Account::registered().await;
    let key = account.create_key(OriginType::AwsKms, false).await;
    let stranger = random_account();
    let answer = deliver(
        &account.stack.entry,
        event("CreateKey", &stranger, &key, &account.alias),
    )
    .await;
    assert_eq!(answer["result"]["stored"], 0, "{answer}");
    assert_eq!(answer["result"]["unregistered"][0], REGION, "{answer}");
    let unregistered_region = event("CreateKey", &account.id, &key, &account.alias)
        .to_string()
        .replace(REGION, "ap-south-1");
    let answer = deliver(
        &account.stack.entry,
        serde_json::from_str(&unregistered_region).unwrap(),
    )
    .await;
    assert_eq!(
        answer["result"]["unregistered"][0], "ap-south-1",
        "{answer}"
    );
    assert!(account.stored_in(REGION, &key).await.is_none());
    assert!(account.stored_in("ap-south-1", &key).await.is_none());
    assert_eq!(
        account
            .stack
            .count_items(&account.stack.config.keys_table)
            .await,
        0,
        "nothing written"
    );
    // A call that failed changed nothing, and is not read.
    let mut failed = event("DisableKey", &account.id, &key, &account.alias);
    failed["detail"]["errorCode"] = "AccessDenied".into();
    let answer = deliver(&account.stack.entry, failed).await;
    assert_eq!(answer["applied"], false, "{answer}");
}

#[tokio::test]
async fn delete_key_flags_the_stored_key_gone_in_memory() {
    use cckm_aws_sync::domain::key::KeyDetails;
    let (entry, parts) = memory_entry(100);
    let account = OWN_ACCOUNT;
    register_kms(&entry, "trail", account, &[REGION]).await;
    let key_id = "2f6b1c9e-3a1d-4e0f-8b7a-6c5d4e3f2a10";
    let mut details = KeyDetails::default();
    details.aws_param.aws_account_id = account.into();
    details.aws_param.key_id = key_id.into();
    details.aws_param.arn = format!("arn:aws:kms:{REGION}:{account}:key/{key_id}");
    details.aws_param.key_state = Some("PendingDeletion".into());
    parts.source.put_key(account, REGION, details);
    let answer = deliver(&entry, event("CreateKey", account, key_id, "alias/none")).await;
    assert_eq!(answer["result"]["stored"], 1, "{answer}");

    parts.source.remove_key(account, REGION, key_id);
    let answer = deliver(&entry, event("DeleteKey", account, key_id, "alias/none")).await;
    assert_eq!(answer["result"]["flagged_gone"], 1, "{answer}");
    let record = entry
        .app
        .keys
        .get(key_record_id(&format!(
            "arn:aws:kms:{REGION}:{account}:key/{key_id}"
        )))
        .await
        .unwrap()
        .expect("kept");
    assert!(record.gone);
    // Delivered again: still gone, nothing else stored.
    let answer = deliver(&entry, event("DeleteKey", account, key_id, "alias/none")).await;
    assert_eq!(answer["result"]["flagged_gone"], 1, "{answer}");
    // A key AWS never had and we never stored.
    let answer = deliver(
        &entry,
        event(
            "DeleteKey",
            account,
            "3a7c2d1e-4b5f-4a6e-9c8d-7e6f5a4b3c21",
            "alias/none",
        ),
    )
    .await;
    assert_eq!(answer["result"]["unknown"], 1, "{answer}");
}
