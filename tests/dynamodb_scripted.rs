//! Defects of issue 12 that live inside one DynamoDB adapter call, where only the wire can go wrong: a
//! conditional write whose answer was lost, `UnprocessedItems` that never clear, a cancel that lands
//! between the read and the write that ends a job, gone-sweep transactions that conflict or find the unit
//! ended. Scripted SDK responses (aws-smithy-mocks) behind the
//! production `DynamoJobStore`, because moto never loses an answer, never leaves items unprocessed and
//! serves one request at a time.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};
use aws_smithy_mocks::{MockResponse, Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use cckm_aws_sync::adapters::dynamodb::{DynamoJobStore, DynamoKeyStore};
use cckm_aws_sync::domain::job::{Job, Unit};
use cckm_aws_sync::ports::{GoneSweep, JobStore, KeyStore, Settled, Verdict};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

type Item = HashMap<String, AttributeValue>;

const TABLE: &str = "jobs";

fn store(rules: &[Rule]) -> DynamoJobStore {
    let client: Client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, rules, |c| c
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()));
    DynamoJobStore::new(client, TABLE, std::time::Duration::from_secs(90 * 86_400))
}

/// DynamoDB's answer to a write whose condition does not hold, as it comes over the wire.
fn condition_failed<O, E>() -> MockResponse<O, E> {
    let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#;
    MockResponse::Http(aws_smithy_runtime_api::http::Response::new(
        StatusCode::try_from(400).expect("status"),
        SdkBody::from(body),
    ))
}

fn job(units: usize) -> Job {
    let units = (0..units)
        .map(|n| Unit {
            kms_id: Uuid::nil(),
            account_id: "111122223333".into(),
            region: format!("region-{n}"),
        })
        .collect();
    Job::start(
        Uuid::new_v4(),
        chrono::Utc::now(),
        units,
        vec!["demo".into()],
        vec![],
    )
}

fn text<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map_or("", String::as_str)
}

#[tokio::test(start_paused = true)]
async fn defect_7_a_job_header_is_written_only_after_every_unit_is() {
    let job = job(3);
    // Every item a call took: batch writes minus what they left unprocessed, and single puts.
    let written: Arc<Mutex<Vec<Item>>> = Arc::default();
    let (batch_log, put_log) = (written.clone(), written.clone());
    // One unit item never gets through, round after round.
    let units = mock!(Client::batch_write_item).then_compute_output(move |req| {
        let requests: Vec<WriteRequest> = req
            .request_items()
            .and_then(|items| items.get(TABLE))
            .cloned()
            .unwrap_or_default();
        let item_of = |r: &WriteRequest| {
            r.put_request()
                .map(|p| p.item().clone())
                .unwrap_or_default()
        };
        let stuck: Vec<WriteRequest> = requests
            .iter()
            .filter(|r| text(&item_of(r), "sk") == "UNIT#111122223333/region-0")
            .cloned()
            .collect();
        batch_log.lock().unwrap().extend(
            requests
                .iter()
                .map(item_of)
                .filter(|item| text(item, "sk") != "UNIT#111122223333/region-0"),
        );
        BatchWriteItemOutput::builder()
            .set_unprocessed_items(
                (!stuck.is_empty()).then(|| HashMap::from([(TABLE.to_string(), stuck)])),
            )
            .build()
    });
    let puts = mock!(Client::put_item).then_compute_output(move |req| {
        put_log.lock().unwrap().extend(req.item().cloned());
        PutItemOutput::builder().build()
    });
    let releases = mock!(Client::delete_item).then_output(|| DeleteItemOutput::builder().build());
    let leases = mock!(Client::transact_write_items)
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let store = store(&[units, puts, releases, leases]);
    let created = store
        .create(&job, chrono::Utc::now() + chrono::Duration::hours(1))
        .await;
    assert!(created.is_err(), "a unit could not be written: {created:?}");
    let headers = written
        .lock()
        .unwrap()
        .iter()
        .filter(|item| text(item, "sk") == "META")
        .count();
    assert_eq!(headers, 0, "no job header without all its units");
}

#[tokio::test]
async fn defect_8_a_cancel_racing_the_job_end_ends_it_completed_with_abort() {
    let id = Uuid::new_v4();
    // The header as DynamoDB holds it: every unit ended, one failed; the cancel lands after the first read.
    let reads = Arc::new(AtomicUsize::new(0));
    let header = move |abort: bool| -> Item {
        let n = |v: u64| AttributeValue::N(v.to_string());
        let s = |v: &str| AttributeValue::S(v.to_string());
        let now = s("2026-11-29T00:00:00.000000Z");
        HashMap::from([
            ("pk".into(), s(&format!("JOB#{id}"))),
            ("sk".into(), s("META")),
            ("list_pk".into(), s("JOB")),
            ("id".into(), s(&id.to_string())),
            ("createdAt".into(), now.clone()),
            ("updatedAt".into(), now),
            ("overall_status".into(), s("in_progress")),
            ("kms".into(), AttributeValue::L(vec![])),
            ("regions".into(), AttributeValue::L(vec![])),
            ("abort".into(), AttributeValue::Bool(abort)),
            ("units_total".into(), n(2)),
            ("units_done".into(), n(2)),
            ("units_failed".into(), n(1)),
            ("keys_synced".into(), n(0)),
            ("keys_gone".into(), n(0)),
        ])
    };
    let counter = reads.clone();
    let read = mock!(Client::get_item).then_compute_output(move |_| {
        let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
        GetItemOutput::builder()
            .set_item(Some(header(!first)))
            .build()
    });
    // The end write, judged as DynamoDB would now that `abort` is true.
    let ended_with: Arc<Mutex<Option<String>>> = Arc::default();
    let log = ended_with.clone();
    let end = mock!(Client::update_item).then_compute_response(move |req| {
        let values = req
            .expression_attribute_values()
            .cloned()
            .unwrap_or_default();
        let pinned = values.get(":abort").and_then(|v| v.as_bool().ok()).copied();
        if pinned == Some(false) {
            return condition_failed();
        }
        *log.lock().unwrap() = values.get(":status").and_then(|v| v.as_s().ok()).cloned();
        MockResponse::Output(UpdateItemOutput::builder().build())
    });
    let reread = mock!(Client::query)
        .then_output(move || QueryOutput::builder().items(header(true)).build());
    let store = store(&[read, end, reread]);
    let ended = store.complete_if_done(id, chrono::Utc::now()).await;
    assert!(matches!(ended, Ok(Some(_))), "{ended:?}");
    assert_eq!(
        ended_with.lock().unwrap().as_deref(),
        Some("completed"),
        "a canceled job ends completed, even with a failed unit"
    );
}

/// A TransactWriteItems cancellation as DynamoDB sends it, one reason per item.
fn cancelled<O, E>(reasons: &[&str]) -> MockResponse<O, E> {
    let reasons: Vec<serde_json::Value> = reasons
        .iter()
        .map(|code| serde_json::json!({"Code": code}))
        .collect();
    let body = serde_json::json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons",
        "CancellationReasons": reasons,
    });
    MockResponse::Http(aws_smithy_runtime_api::http::Response::new(
        StatusCode::try_from(400).expect("status"),
        SdkBody::from(body.to_string()),
    ))
}

/// `keys` "gone" verdicts of one sweep, settled through the production key store over `transact`.
async fn settle_gone(transact: Rule, keys: usize) -> Settled {
    let client: Client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&transact]);
    let sweep = GoneSweep {
        job_id: Uuid::new_v4(),
        job_started: chrono::Utc::now(),
        unit_key: "111122223333/us-east-1".into(),
    };
    let verdicts: Vec<Verdict> = (0..keys).map(|_| Verdict::Gone(Uuid::new_v4())).collect();
    DynamoKeyStore::new(client, "keys", TABLE)
        .settle_sweep(&sweep, &verdicts, chrono::Utc::now())
        .await
        .expect("settled")
}

#[tokio::test]
async fn scripted_a_sweep_transaction_that_meets_a_conflict_is_retried_and_undecidable_keys_are_left_out()
 {
    // Answers in turn: a conflict with another writer, then key 0's condition failing (a refresh
    // restamped it), then success. Each request's number of items is kept.
    let sizes: Arc<Mutex<Vec<usize>>> = Arc::default();
    let log = sizes.clone();
    let calls = AtomicUsize::new(0);
    let transact = mock!(Client::transact_write_items).then_compute_response(move |req| {
        log.lock().unwrap().push(req.transact_items().len());
        match calls.fetch_add(1, Ordering::SeqCst) {
            0 => cancelled(&["None", "TransactionConflict", "None", "None"]),
            1 => cancelled(&["ConditionalCheckFailed", "None", "None", "None"]),
            _ => MockResponse::Output(TransactWriteItemsOutput::builder().build()),
        }
    });
    let settled = settle_gone(transact, 3).await;
    assert_eq!(
        settled,
        Settled {
            flagged: 2,
            restored: 0,
            unit_ended: false
        }
    );
    assert_eq!(
        *sizes.lock().unwrap(),
        vec![4, 4, 3],
        "three keys and the unit's count"
    );
}

#[tokio::test]
async fn scripted_a_sweep_stops_when_the_unit_ended_meanwhile() {
    let transact = mock!(Client::transact_write_items)
        .then_compute_response(|_| cancelled(&["None", "None", "ConditionalCheckFailed"]));
    let settled = settle_gone(transact, 2).await;
    assert!(settled.unit_ended && settled.flagged == 0, "{settled:?}");
}
