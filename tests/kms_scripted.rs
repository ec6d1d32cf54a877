//! What the emulator cannot do, in-process with scripted SDK responses (aws-smithy-mocks) behind the real
//! AWS adapters: ListKeys past 1,000 keys, alias and tag pages, throttling on every operation, keys that
//! vanish between ListKeys and DescribeKey, AccessDenied on one key or a whole region, AWS-managed keys,
//! and DynamoDB `UnprocessedItems`. The stores are in memory except where DynamoDB itself is scripted.

mod common;

use aws_sdk_kms::Client;
use aws_sdk_kms::operation::describe_key::{DescribeKeyError, DescribeKeyOutput};
use aws_sdk_kms::operation::get_key_policy::GetKeyPolicyOutput;
use aws_sdk_kms::operation::get_key_rotation_status::GetKeyRotationStatusOutput;
use aws_sdk_kms::operation::list_aliases::ListAliasesOutput;
use aws_sdk_kms::operation::list_keys::ListKeysOutput;
use aws_sdk_kms::operation::list_resource_tags::ListResourceTagsOutput;
use aws_sdk_kms::types::{
    AliasListEntry, KeyListEntry, KeyManagerType, KeyMetadata, KeySpec, KeyState, KeyUsageType,
    OriginType, Tag,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use cckm_aws_sync::adapters::kms::{AwsKeySource, retry_config};
use cckm_aws_sync::adapters::rate_limit::{KmsOperation, Quotas, RateLimits};
use cckm_aws_sync::adapters::sts::RoleCredentials;
use cckm_aws_sync::app::MemoryParts;
use cckm_aws_sync::entry::Entry;
use cckm_aws_sync::ports::{
    Connection, KeySource, KeySourceFactory, KeyStore, ListedKey, SourceError,
};
use common::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const ACCOUNT: &str = "111122223333";

fn key_id(n: usize) -> String {
    format!("{n:08}-1111-4111-8111-111111111111")
}

fn arn(region: &str, n: usize) -> String {
    format!("arn:aws:kms:{region}:{ACCOUNT}:key/{}", key_id(n))
}

fn index_of(key: &str) -> usize {
    key.rsplit('/')
        .next()
        .and_then(|id| id[..8].parse().ok())
        .unwrap_or(usize::MAX)
}

fn aws_error(code: &str) -> Option<String> {
    Some(json!({"__type": code, "message": format!("scripted {code}")}).to_string())
}

fn list_keys_page(region: &str, count: usize, start: usize, limit: usize) -> ListKeysOutput {
    let end = (start + limit).min(count);
    let keys = (start..end).map(|n| {
        KeyListEntry::builder()
            .key_id(key_id(n))
            .key_arn(arn(region, n))
            .build()
    });
    ListKeysOutput::builder()
        .set_keys(Some(keys.collect()))
        .truncated(end < count)
        .set_next_marker((end < count).then(|| end.to_string()))
        .build()
}

/// Aliases in pages of 2 (for the first 6 keys), plus a predefined alias without a target on page 0.
fn aliases_page(count: usize, page: usize) -> ListAliasesOutput {
    let mut aliases: Vec<AliasListEntry> = (page * 2..(page * 2 + 2).min(count))
        .map(|n| {
            AliasListEntry::builder()
                .alias_name(format!("alias/k{n}"))
                .target_key_id(key_id(n))
                .build()
        })
        .collect();
    if page == 0 {
        aliases.push(
            AliasListEntry::builder()
                .alias_name("alias/aws/ebs")
                .build(),
        );
    }
    let more = (page + 1) * 2 < count.min(6);
    ListAliasesOutput::builder()
        .set_aliases(Some(aliases))
        .truncated(more)
        .set_next_marker(more.then(|| (page + 1).to_string()))
        .build()
}

/// Two pages of tags for every key.
fn tags_page(second: bool) -> ListResourceTagsOutput {
    let tag = if second {
        ("team", "payments")
    } else {
        ("env", "prod")
    };
    ListResourceTagsOutput::builder()
        .tags(
            Tag::builder()
                .tag_key(tag.0)
                .tag_value(tag.1)
                .build()
                .unwrap(),
        )
        .truncated(!second)
        .set_next_marker((!second).then(|| "t2".to_string()))
        .build()
}

fn policy() -> GetKeyPolicyOutput {
    GetKeyPolicyOutput::builder()
        .policy("{\"Version\":\"2012-10-17\"}")
        .build()
}

fn rotation() -> GetKeyRotationStatusOutput {
    GetKeyRotationStatusOutput::builder()
        .key_rotation_enabled(true)
        .rotation_period_in_days(365)
        .build()
}

/// A region of `count` keys, as real KMS answers it: ListKeys honours Limit and Marker; aliases and tags
/// come in several pages.
fn region_rules(region: &'static str, count: usize) -> Vec<Rule> {
    vec![
        mock!(Client::list_keys).then_compute_output(move |req| {
            let start = req.marker().and_then(|m| m.parse().ok()).unwrap_or(0);
            list_keys_page(region, count, start, req.limit().unwrap_or(100) as usize)
        }),
        mock!(Client::list_aliases).then_compute_output(move |req| {
            aliases_page(
                count,
                req.marker().and_then(|m| m.parse().ok()).unwrap_or(0),
            )
        }),
        mock!(Client::describe_key).then_compute_output(move |req| {
            let n = index_of(req.key_id().unwrap_or_default());
            DescribeKeyOutput::builder()
                .key_metadata(metadata(region, n, KeyManagerType::Customer))
                .build()
        }),
        mock!(Client::list_resource_tags)
            .then_compute_output(|req| tags_page(req.marker() == Some("t2"))),
        mock!(Client::get_key_policy).then_output(policy),
        mock!(Client::get_key_rotation_status).then_output(rotation),
    ]
}

fn metadata(region: &str, n: usize, manager: KeyManagerType) -> KeyMetadata {
    KeyMetadata::builder()
        .aws_account_id(ACCOUNT)
        .key_id(key_id(n))
        .arn(arn(region, n))
        .enabled(true)
        .key_state(KeyState::Enabled)
        .key_usage(KeyUsageType::EncryptDecrypt)
        .key_spec(KeySpec::SymmetricDefault)
        .origin(OriginType::AwsKms)
        .key_manager(manager)
        .build()
        .unwrap()
}

fn client(rules: &[Rule]) -> Client {
    let retries = retry_config().with_initial_backoff(Duration::from_millis(1));
    mock_client!(aws_sdk_kms, RuleMode::MatchAny, rules, |c| c
        .retry_config(retries.clone())
        .time_source(aws_smithy_async::time::SystemTimeSource::new()))
}

/// Hands out a scripted client per region, wrapped in the production `AwsKeySource`.
struct ScriptedKms {
    regions: HashMap<String, Client>,
    limits: Arc<RateLimits>,
}

impl ScriptedKms {
    fn new(regions: Vec<(&str, Vec<Rule>)>) -> Self {
        let regions = regions
            .into_iter()
            .map(|(r, rules)| (r.to_string(), client(&rules)))
            .collect();
        ScriptedKms {
            regions,
            limits: Arc::new(RateLimits::new(1.0, Quotas::Current)),
        }
    }
}

#[async_trait::async_trait]
impl KeySourceFactory for ScriptedKms {
    async fn open(
        &self,
        connection: &Connection,
        region: &str,
    ) -> Result<Arc<dyn KeySource>, SourceError> {
        let client = self
            .regions
            .get(region)
            .cloned()
            .ok_or_else(|| SourceError::Refused(format!("no script for {region}")))?;
        Ok(Arc::new(AwsKeySource::new(
            client,
            &connection.account_id,
            region,
            self.limits.clone(),
        )))
    }
}

/// The production entry point on in-memory stores, with `kms` as the key source.
async fn entry_with(kms: ScriptedKms, regions: &[&str]) -> (Entry, MemoryParts) {
    let (entry, parts) = memory_entry(1);
    let mut app = entry.app;
    app.source = Arc::new(kms);
    let entry = entry_for(app);
    let body = json!({"name": "scripted", "account_id": ACCOUNT, "regions": regions,
        "assume_role_arn": format!("arn:aws:iam::{ACCOUNT}:role/cckm-sync")});
    assert_eq!(
        request(&entry, "POST", "/api/v1/cckm/aws/kms", Some(body))
            .await
            .0,
        201
    );
    (entry, parts)
}

async fn sync(entry: &Entry, parts: &MemoryParts) -> Value {
    let id = start_job(entry, json!({"kms": ["scripted"]})).await;
    run_workers(entry, parts).await;
    get_job(entry, &id).await
}

#[tokio::test]
async fn scripted_list_keys_pages_past_1000_keys_and_alias_and_tag_pages_are_followed() {
    let (entry, parts) = entry_with(
        ScriptedKms::new(vec![("us-east-1", region_rules("us-east-1", 2500))]),
        &["us-east-1"],
    )
    .await;
    let job = sync(&entry, &parts).await;
    assert_eq!(job["overall_status"], "completed", "{job}");
    assert_eq!(job["progress"]["keys_synced"], 2500);
    let keys = parts.keys.list(None).await.unwrap();
    assert_eq!(keys.len(), 2500);
    let k5 = keys
        .iter()
        .find(|k| k.aws_param.key_id == key_id(5))
        .unwrap();
    assert_eq!(
        k5.aws_param.alias,
        vec!["alias/k5"],
        "alias from the third alias page"
    );
    assert_eq!(
        keys.iter()
            .find(|k| k.aws_param.key_id == key_id(2499))
            .unwrap()
            .aws_param
            .alias,
        Vec::<String>::new()
    );
    let tags: Vec<(&str, &str)> = k5
        .aws_param
        .tags
        .as_ref()
        .unwrap()
        .iter()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect();
    assert_eq!(
        tags,
        vec![("env", "prod"), ("team", "payments")],
        "both tag pages"
    );
    assert_eq!(k5.aws_param.key_rotation_enabled, Some(true));
    assert_eq!(k5.aws_param.rotation_period_in_days, Some(365));
}

#[tokio::test]
async fn scripted_throttling_on_every_operation_is_retried_and_nothing_is_lost() {
    // Each operation's first call is throttled twice before it succeeds; the SDK retries within that call
    // (aws-smithy-mocks picks a rule per call and serves its retries from the same rule).
    let first_key = key_id(0);
    let is_first = move |id: Option<&str>| id == Some(first_key.as_str());
    let (k1, k2, k3, k4) = (
        is_first.clone(),
        is_first.clone(),
        is_first.clone(),
        is_first,
    );
    macro_rules! throttled_then {
        ($rule:expr, $output:expr) => {
            $rule
                .sequence()
                .http_status(400, aws_error("ThrottlingException"))
                .times(2)
                .output($output)
                .build()
        };
    }
    let mut rules = vec![
        throttled_then!(mock!(Client::list_keys), || list_keys_page(
            "us-east-1",
            40,
            0,
            1000
        )),
        throttled_then!(mock!(Client::list_aliases), || aliases_page(40, 0)),
        throttled_then!(
            mock!(Client::describe_key).match_requests(move |r| k1(r.key_id())),
            || {
                DescribeKeyOutput::builder()
                    .key_metadata(metadata("us-east-1", 0, KeyManagerType::Customer))
                    .build()
            }
        ),
        throttled_then!(
            mock!(Client::list_resource_tags)
                .match_requests(move |r| k2(r.key_id()) && r.marker().is_none()),
            || tags_page(false)
        ),
        throttled_then!(
            mock!(Client::get_key_policy).match_requests(move |r| k3(r.key_id())),
            policy
        ),
        throttled_then!(
            mock!(Client::get_key_rotation_status).match_requests(move |r| k4(r.key_id())),
            rotation
        ),
    ];
    let rules_used = rules.clone();
    rules.extend(region_rules("us-east-1", 40));
    let (entry, parts) =
        entry_with(ScriptedKms::new(vec![("us-east-1", rules)]), &["us-east-1"]).await;
    let job = sync(&entry, &parts).await;
    assert_eq!(job["overall_status"], "completed", "{job}");
    let keys = parts.keys.list(None).await.unwrap();
    assert_eq!(keys.len(), 40);
    assert!(keys.iter().all(|k| k.sync_errors.is_empty()
        && k.aws_param.policy.is_some()
        && k.aws_param.tags.as_ref().is_some_and(|t| t.len() == 2)));
    assert!(
        rules_used.iter().all(|rule| rule.num_calls() == 3),
        "each throttled rule answered 2 throttles and 1 success"
    );
}

#[tokio::test]
async fn scripted_key_vanishing_between_list_and_describe_is_left_out_not_an_error() {
    let vanished = mock!(Client::describe_key)
        .match_requests(|req| req.key_id() == Some(key_id(3).as_str()))
        .then_error(|| {
            // As the SDK parses it from a real answer: the modeled error with its code in the metadata.
            let meta = aws_sdk_kms::error::ErrorMetadata::builder()
                .code("NotFoundException")
                .message("gone")
                .build();
            DescribeKeyError::NotFoundException(
                aws_sdk_kms::types::error::NotFoundException::builder()
                    .message("gone")
                    .meta(meta)
                    .build(),
            )
        });
    let mut rules = vec![vanished];
    rules.extend(region_rules("us-east-1", 6));
    let (entry, parts) =
        entry_with(ScriptedKms::new(vec![("us-east-1", rules)]), &["us-east-1"]).await;
    let job = sync(&entry, &parts).await;
    assert_eq!(job["overall_status"], "completed");
    assert_eq!(job["progress"]["keys_synced"], 5);
    assert!(
        parts
            .keys
            .list(None)
            .await
            .unwrap()
            .iter()
            .all(|k| k.aws_param.key_id != key_id(3))
    );
}

#[tokio::test]
async fn scripted_access_denied_on_one_key_is_recorded_on_that_key_and_the_others_sync() {
    let denied_policy = mock!(Client::get_key_policy)
        .match_requests(|req| req.key_id() == Some(key_id(1).as_str()))
        .sequence()
        .http_status(400, aws_error("AccessDeniedException"))
        .repeatedly()
        .build();
    let denied_describe = mock!(Client::describe_key)
        .match_requests(|req| req.key_id() == Some(key_id(2).as_str()))
        .sequence()
        .http_status(400, aws_error("AccessDeniedException"))
        .repeatedly()
        .build();
    let mut rules = vec![denied_policy, denied_describe];
    rules.extend(region_rules("us-east-1", 4));
    let (entry, parts) =
        entry_with(ScriptedKms::new(vec![("us-east-1", rules)]), &["us-east-1"]).await;
    let job = sync(&entry, &parts).await;
    assert_eq!(job["overall_status"], "completed");
    let keys = parts.keys.list(None).await.unwrap();
    assert_eq!(keys.len(), 4);
    let k1 = keys
        .iter()
        .find(|k| k.aws_param.key_id == key_id(1))
        .unwrap();
    assert_eq!(k1.aws_param.policy, None);
    assert!(
        k1.sync_errors["Policy"].contains("AccessDeniedException"),
        "{:?}",
        k1.sync_errors
    );
    assert!(
        k1.aws_param.tags.is_some(),
        "the other reads of that key still happened"
    );
    let k2 = keys
        .iter()
        .find(|k| k.aws_param.key_id == key_id(2))
        .unwrap();
    assert!(k2.sync_errors["DescribeKey"].contains("AccessDeniedException"));
    assert_eq!(
        k2.aws_param.arn,
        arn("us-east-1", 2),
        "what ListKeys said is kept"
    );
    let unknown = (
        k2.aws_param.enabled,
        &k2.aws_param.key_state,
        &k2.aws_param.customer_master_key_spec,
        &k2.key_type,
    );
    assert_eq!(
        unknown,
        (None, &None, &None, &None),
        "what DescribeKey would have said is unknown, not false"
    );
    assert_eq!(
        (k2.aws_param.multi_region, &k2.aws_param.description),
        (None, &None)
    );
    assert!(
        keys.iter()
            .filter(|k| k.aws_param.key_id != key_id(1) && k.aws_param.key_id != key_id(2))
            .all(|k| k.sync_errors.is_empty())
    );
}

#[tokio::test]
async fn scripted_access_denied_on_a_whole_region_fails_that_unit_only_and_flags_nothing_gone() {
    let denied = mock!(Client::list_keys)
        .sequence()
        .http_status(400, aws_error("AccessDeniedException"))
        .repeatedly()
        .build();
    let mut denied_rules = vec![denied];
    denied_rules.extend(region_rules("eu-west-1", 3));
    let kms = ScriptedKms::new(vec![
        ("us-east-1", region_rules("us-east-1", 3)),
        ("eu-west-1", denied_rules),
    ]);
    let (entry, parts) = entry_with(kms, &["us-east-1", "eu-west-1"]).await;
    // A key we stored earlier for the denied region must not be flagged gone by a failed unit.
    let earlier = cckm_aws_sync::domain::key::KeyRecord::from_details(
        cckm_aws_sync::domain::key::KeyDetails {
            aws_param: cckm_aws_sync::domain::key::AwsParam {
                aws_account_id: ACCOUNT.into(),
                key_id: key_id(0),
                arn: arn("eu-west-1", 0),
                ..Default::default()
            },
            read_errors: Default::default(),
        },
        cckm_aws_sync::domain::key::Sighting {
            kms_id: uuid::Uuid::nil(),
            kms_name: "scripted",
            region: "eu-west-1",
            job_id: None,
            now: chrono::Utc::now(),
            first_stored: None,
        },
    );
    parts.keys.put_all(&[earlier]).await.unwrap();
    let job = sync(&entry, &parts).await;
    assert_eq!(job["overall_status"], "failed");
    assert_eq!(
        job["detailed_status"]["111122223333/us-east-1"],
        "region synchronized successfully"
    );
    let failed = job["detailed_status"]["111122223333/eu-west-1"]
        .as_str()
        .unwrap();
    assert!(
        failed.starts_with("region synchronization failed: ListKeys: AccessDeniedException"),
        "{failed}"
    );
    assert!(parts.keys.list(None).await.unwrap().iter().all(|k| !k.gone));
}

#[tokio::test]
async fn scripted_aws_managed_key_that_denies_rotation_reads_is_unknown_not_false() {
    let managed = mock!(Client::describe_key).then_compute_output(|req| {
        let n = index_of(req.key_id().unwrap_or_default());
        DescribeKeyOutput::builder()
            .key_metadata(metadata("us-east-1", n, KeyManagerType::Aws))
            .build()
    });
    let denied = mock!(Client::get_key_rotation_status)
        .sequence()
        .http_status(400, aws_error("AccessDeniedException"))
        .repeatedly()
        .build();
    let mut rules = vec![managed, denied];
    rules.extend(region_rules("us-east-1", 2));
    let (entry, parts) =
        entry_with(ScriptedKms::new(vec![("us-east-1", rules)]), &["us-east-1"]).await;
    sync(&entry, &parts).await;
    let keys = parts.keys.list(None).await.unwrap();
    assert!(
        keys.iter()
            .all(|k| k.aws_param.key_manager.as_deref() == Some("AWS")
                && k.aws_param.key_rotation_enabled.is_none())
    );
    assert!(
        keys.iter()
            .all(|k| k.sync_errors.contains_key("KeyRotation"))
    );
}

mod dynamodb_unprocessed_items {
    use super::*;
    use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
    use aws_sdk_dynamodb::types::WriteRequest;
    use cckm_aws_sync::adapters::dynamodb::DynamoKeyStore;
    use std::sync::Mutex;

    #[tokio::test]
    async fn scripted_unprocessed_items_are_retried_until_every_key_is_written() {
        let written: Arc<Mutex<Vec<String>>> = Arc::default();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (w, c) = (written.clone(), calls.clone());
        // Every call takes the first half of its items and hands the rest back as unprocessed.
        let rule =
            mock!(aws_sdk_dynamodb::Client::batch_write_item).then_compute_output(move |req| {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let requests: Vec<WriteRequest> = req
                    .request_items()
                    .and_then(|m| m.get("keys"))
                    .cloned()
                    .unwrap_or_default();
                assert!(requests.len() <= 25, "at most 25 per call");
                let take = requests.len().div_ceil(2);
                for r in &requests[..take] {
                    let id = r
                        .put_request()
                        .and_then(|p| p.item().get("id"))
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default();
                    w.lock().unwrap().push(id);
                }
                let rest = requests[take..].to_vec();
                let unprocessed =
                    (!rest.is_empty()).then(|| HashMap::from([("keys".to_string(), rest)]));
                BatchWriteItemOutput::builder()
                    .set_unprocessed_items(unprocessed)
                    .build()
            });
        // The aliases stored before (none): read first, so that alias items follow the records.
        let stored = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_output(|| {
            aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput::builder().build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule, &stored]);
        let store = DynamoKeyStore::new(client, "keys", "jobs");
        let records: Vec<_> = (0..60)
            .map(|n| {
                cckm_aws_sync::domain::key::KeyRecord::from_details(
                    cckm_aws_sync::domain::key::KeyDetails {
                        aws_param: cckm_aws_sync::domain::key::AwsParam {
                            aws_account_id: ACCOUNT.into(),
                            key_id: key_id(n),
                            arn: arn("us-east-1", n),
                            ..Default::default()
                        },
                        read_errors: Default::default(),
                    },
                    cckm_aws_sync::domain::key::Sighting {
                        kms_id: uuid::Uuid::nil(),
                        kms_name: "k",
                        region: "us-east-1",
                        job_id: None,
                        now: chrono::Utc::now(),
                        first_stored: None,
                    },
                )
            })
            .collect();
        store.put_all(&records).await.unwrap();
        let mut got = written.lock().unwrap().clone();
        got.sort();
        let mut want: Vec<String> = records.iter().map(|r| r.id.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "every key written exactly once");
        assert!(
            calls.load(std::sync::atomic::Ordering::SeqCst) > 3,
            "unprocessed items were sent again"
        );
    }
}

#[tokio::test]
async fn scripted_a_unit_near_its_deadline_continues_from_its_list_keys_marker() {
    let kms = ScriptedKms::new(vec![("us-east-1", region_rules("us-east-1", 2500))]);
    let (entry, parts) = entry_with(kms, &["us-east-1"]).await;
    let id = start_job(&entry, json!({"kms": ["scripted"]})).await;
    let items = parts.dispatcher.drain();
    // Less time left than the safety margin: one page of 1,000 keys, then a continuation.
    entry
        .handle(
            sqs_event(&items, 1),
            "w",
            chrono::Utc::now() + chrono::Duration::seconds(60),
        )
        .await
        .expect("a readable event");
    let continuation = parts.dispatcher.drain();
    assert_eq!(continuation.len(), 1);
    assert_eq!(
        continuation[0].marker.as_deref(),
        Some("1000"),
        "the ListKeys marker is handed on"
    );
    assert_eq!(get_job(&entry, &id).await["overall_status"], "in_progress");
    assert_eq!(parts.keys.list(None).await.unwrap().len(), 1000);
    entry
        .handle(
            sqs_event(&continuation, 1),
            "w",
            chrono::Utc::now() + chrono::Duration::minutes(15),
        )
        .await
        .expect("a readable event");
    let job = get_job(&entry, &id).await;
    assert_eq!(job["overall_status"], "completed", "{job}");
    assert_eq!(job["progress"]["keys_synced"], 2500);
    assert_eq!(parts.keys.list(None).await.unwrap().len(), 2500);
}

#[tokio::test]
async fn scripted_list_keys_pages_are_sized_from_the_allowed_rate() {
    // Legacy quotas at share 0.5 read 15 keys/s (GetKeyPolicy, GetKeyRotationStatus): a page of 1,000 would
    // take 67 s of a 90 s deadline margin, before any throttling; 30 s worth is 450 keys.
    for (quotas, expected) in [(Quotas::Current, 1000), (Quotas::Legacy, 450)] {
        let asked = Arc::new(std::sync::Mutex::new(None));
        let seen = asked.clone();
        let list = mock!(Client::list_keys).then_compute_output(move |req| {
            *seen.lock().unwrap() = req.limit();
            list_keys_page("us-east-1", 5, 0, 1000)
        });
        let limits = Arc::new(RateLimits::new(0.5, quotas));
        let source = AwsKeySource::new(client(&[list]), ACCOUNT, "us-east-1", limits);
        assert_eq!(source.list_keys(None).await.unwrap().keys.len(), 5);
        assert_eq!(*asked.lock().unwrap(), Some(expected), "{quotas:?}");
    }
}

#[tokio::test]
async fn scripted_expired_token_drops_the_cached_role_credentials() {
    let assumed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = assumed.clone();
    let assume = mock!(aws_sdk_sts::Client::assume_role).then_compute_output(move |_| {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Valid for an hour, so the cache holds them as fresh.
        let expiration =
            aws_smithy_types::DateTime::from_secs(chrono::Utc::now().timestamp() + 3600);
        aws_sdk_sts::operation::assume_role::AssumeRoleOutput::builder()
            .credentials(
                aws_sdk_sts::types::Credentials::builder()
                    .access_key_id("AKIASCRIPTED")
                    .secret_access_key("scripted")
                    .session_token("scripted")
                    .expiration(expiration)
                    .build()
                    .unwrap(),
            )
            .build()
    });
    let roles = Arc::new(RoleCredentials::new(mock_client!(
        aws_sdk_sts,
        RuleMode::MatchAny,
        [&assume]
    )));
    let role = format!("arn:aws:iam::{ACCOUNT}:role/cckm-sync");
    roles.assume(&role, None).await.unwrap();
    roles.assume(&role, None).await.unwrap();
    let calls = || assumed.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(calls(), 1, "fresh credentials come from the cache");
    let expired = mock!(Client::list_keys)
        .sequence()
        .http_status(400, aws_error("ExpiredTokenException"))
        .repeatedly()
        .build();
    let limits = Arc::new(RateLimits::new(1.0, Quotas::Current));
    let source = AwsKeySource::new(client(&[expired]), ACCOUNT, "us-east-1", limits).with_role(
        roles.clone(),
        &role,
        None,
    );
    assert!(matches!(
        source.list_keys(None).await,
        Err(SourceError::Transient(_))
    ));
    roles.assume(&role, None).await.unwrap();
    assert_eq!(
        calls(),
        2,
        "credentials AWS called expired are assumed afresh, not reused"
    );
}

#[tokio::test]
async fn scripted_a_key_aws_refuses_to_describe_in_the_gone_sweep_stays_undecided() {
    let (entry, parts) = entry_with(
        ScriptedKms::new(vec![("us-east-1", region_rules("us-east-1", 3))]),
        &["us-east-1"],
    )
    .await;
    let first = sync(&entry, &parts).await;
    assert_eq!(first["progress"]["keys_synced"], 3);
    let before = parts.keys.list(None).await.unwrap();
    // ListKeys no longer shows key 2, and DescribeKey on it is denied: it may well exist.
    let denied = mock!(Client::describe_key)
        .match_requests(|req| req.key_id() == Some(key_id(2).as_str()))
        .sequence()
        .http_status(400, aws_error("AccessDeniedException"))
        .repeatedly()
        .build();
    let mut rules = vec![denied];
    rules.extend(region_rules("us-east-1", 2));
    let mut app = entry.app.clone();
    app.source = Arc::new(ScriptedKms::new(vec![("us-east-1", rules)]));
    let second = sync(&entry_for(app), &parts).await;
    assert_eq!(second["overall_status"], "completed", "{second}");
    assert_eq!(second["progress"]["keys_gone"], 0);
    let after = parts.keys.list(None).await.unwrap();
    let record = |keys: &[cckm_aws_sync::domain::key::KeyRecord]| {
        keys.iter()
            .find(|k| k.aws_param.key_id == key_id(2))
            .cloned()
            .unwrap()
    };
    assert_eq!(
        record(&after),
        record(&before),
        "neither flagged nor overwritten"
    );
}

#[tokio::test]
async fn scripted_every_retry_waits_for_the_bucket_and_a_throttle_lowers_its_rate() {
    let throttled = mock!(Client::describe_key)
        .sequence()
        .http_status(400, aws_error("ThrottlingException"))
        .times(2)
        .output(|| {
            DescribeKeyOutput::builder()
                .key_metadata(metadata("us-east-1", 0, KeyManagerType::Customer))
                .build()
        })
        .build();
    let mut rules = vec![throttled];
    rules.extend(region_rules("us-east-1", 1));
    let limits = Arc::new(RateLimits::new(1.0, Quotas::Current));
    let source = AwsKeySource::new(client(&rules), ACCOUNT, "us-east-1", limits.clone());
    assert_eq!(source.keys_in_flight(), None, "no answer seen yet");
    let key = ListedKey {
        key_id: key_id(0),
        arn: arn("us-east-1", 0),
    };
    assert!(source.read_key(&key, &[]).await.unwrap().is_some());
    let describe = limits.bucket(ACCOUNT, "us-east-1", KmsOperation::DescribeKey);
    assert_eq!(
        describe.counts(),
        (3, 2),
        "each of the 3 attempts waited for the bucket; 2 were throttled"
    );
    assert!(
        describe.rate() < describe.allowed(),
        "{} of {}",
        describe.rate(),
        describe.allowed()
    );
    let policy = limits.bucket(ACCOUNT, "us-east-1", KmsOperation::GetKeyPolicy);
    assert_eq!(policy.counts(), (1, 0));
    assert!(source.keys_in_flight().is_some_and(|n| n >= 1));
}

#[tokio::test]
async fn scripted_a_unit_that_gives_up_shows_operation_code_and_message_and_nothing_of_the_raw_answer()
 {
    let outage = mock!(Client::list_keys)
        .sequence()
        .http_status(
            500,
            Some(r#"{"__type":"KMSInternalException","message":"scripted outage","internal":"hyper::Error(Io)"}"#.into()),
        )
        .repeatedly()
        .build();
    let (entry, parts) = entry_with(
        ScriptedKms::new(vec![("us-east-1", vec![outage])]),
        &["us-east-1"],
    )
    .await;
    let id = start_job(&entry, json!({"kms": ["scripted"]})).await;
    let items = parts.dispatcher.drain();
    let deadline = chrono::Utc::now() + chrono::Duration::minutes(15);
    entry
        .handle(sqs_event(&items, 4), "worker", deadline)
        .await
        .expect("a readable event");
    let job = get_job(&entry, &id).await;
    assert_eq!(job["overall_status"], "failed", "{job}");
    assert_eq!(
        job["detailed_status"]["111122223333/us-east-1"],
        "region synchronization failed: gave up after 4 attempts: ListKeys: KMSInternalException: \
         scripted outage"
    );
}
