//! The sync engine on in-memory adapters with a scripted key source: paging, gone flags, cancel,
//! redelivery, continuation across the invocation deadline, a refused region. Fast and deterministic;
//! the same engine against the emulator is in `sync_emulator.rs`.

mod common;

use cckm_aws_sync::app::MemoryParts;
use cckm_aws_sync::domain::job::WorkItem;
use cckm_aws_sync::entry::Entry;
use cckm_aws_sync::ports::{KeyStore, SourceError};
use common::*;
use serde_json::{Value, json};

use common::rig::{ACCOUNT, key_in as key};

async fn setup(regions: &[&str], page_size: usize) -> (Entry, MemoryParts) {
    let (entry, parts) = memory_entry(page_size);
    let body = json!({"name": "demo", "account_id": ACCOUNT, "regions": regions,
        "assume_role_arn": format!("arn:aws:iam::{ACCOUNT}:role/cckm-sync")});
    let (status, _) = request(&entry, "POST", "/api/v1/cckm/aws/kms", Some(body)).await;
    assert_eq!(status, 201);
    (entry, parts)
}

/// A started job over `count` keys in us-east-1, listed `page_size` at a time: its id and its queued item.
async fn job_over_keys(
    count: usize,
    page_size: usize,
) -> (Entry, MemoryParts, String, Vec<WorkItem>) {
    let (entry, parts) = setup(&["us-east-1"], page_size).await;
    for n in 0..count {
        parts
            .source
            .put_key(ACCOUNT, "us-east-1", key("us-east-1", n));
    }
    let id = start_job(&entry, json!({"kms": ["demo"]})).await;
    let items = parts.dispatcher.drain();
    (entry, parts, id, items)
}

#[tokio::test]
async fn a_job_pages_through_every_key_and_completes_once() {
    let (entry, parts) = setup(&["us-east-1", "eu-west-1"], 3).await;
    for n in 0..10 {
        parts
            .source
            .put_key(ACCOUNT, "us-east-1", key("us-east-1", n));
    }
    parts
        .source
        .put_key(ACCOUNT, "eu-west-1", key("eu-west-1", 100));
    let id = start_job(&entry, json!({"kms": ["demo"]})).await;
    run_workers(&entry, &parts).await;
    let job = get_job(&entry, &id).await;
    assert_eq!(job["overall_status"], "completed", "{job}");
    assert_eq!(
        job["detailed_status"]["111122223333/us-east-1"],
        "region synchronized successfully"
    );
    assert_eq!(
        job["progress"],
        json!({"units_total": 2, "units_done": 2, "units_failed": 0, "keys_synced": 11, "keys_gone": 0})
    );
    assert!(
        job["completed_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let keys = parts.keys.list(None).await.unwrap();
    assert_eq!(keys.len(), 11);
    assert!(
        keys.iter()
            .all(|k| !k.gone && k.kms == "demo" && k.key_type.as_deref() == Some("symmetric"))
    );
}

#[tokio::test]
async fn a_second_sync_flags_missing_keys_gone_keeps_created_at_and_unflags_returning_keys() {
    let (entry, parts) = setup(&["us-east-1"], 2).await;
    for n in 0..5 {
        parts
            .source
            .put_key(ACCOUNT, "us-east-1", key("us-east-1", n));
    }
    let first = start_job(&entry, json!({"kms": ["demo"]})).await;
    run_workers(&entry, &parts).await;
    assert_eq!(get_job(&entry, &first).await["overall_status"], "completed");
    let before = parts.keys.list(None).await.unwrap();
    let gone_key = key("us-east-1", 1);
    parts
        .source
        .remove_key(ACCOUNT, "us-east-1", &gone_key.aws_param.key_id);
    parts
        .source
        .put_key(ACCOUNT, "us-east-1", key("us-east-1", 7));
    let second = start_job(&entry, json!({"kms": ["demo"]})).await;
    run_workers(&entry, &parts).await;
    let second_job = get_job(&entry, &second).await;
    assert_eq!(second_job["progress"]["keys_gone"], 1, "{second_job}");
    let after = parts.keys.list(None).await.unwrap();
    assert_eq!(after.len(), 6);
    for record in &after {
        let old = before.iter().find(|b| b.id == record.id);
        assert_eq!(
            record.gone,
            record.aws_param.key_id == gone_key.aws_param.key_id,
            "{}",
            record.aws_param.key_id
        );
        if let Some(old) = old {
            assert_eq!(
                record.created_at, old.created_at,
                "createdAt is kept across syncs"
            );
        }
    }
    parts.source.put_key(ACCOUNT, "us-east-1", gone_key.clone());
    start_job(&entry, json!({"kms": ["demo"]})).await;
    run_workers(&entry, &parts).await;
    let back = parts.keys.list(None).await.unwrap();
    assert!(
        back.iter().all(|k| !k.gone),
        "a key that reappears is un-flagged"
    );
}

#[tokio::test]
async fn a_refused_region_fails_its_unit_and_the_job_and_flags_nothing_gone_there() {
    let (entry, parts) = setup(&["us-east-1", "eu-west-1"], 10).await;
    parts
        .source
        .put_key(ACCOUNT, "us-east-1", key("us-east-1", 1));
    parts
        .source
        .put_key(ACCOUNT, "eu-west-1", key("eu-west-1", 2));
    start_job(&entry, json!({"kms": ["demo"]})).await;
    run_workers(&entry, &parts).await;
    parts.source.refuse(
        ACCOUNT,
        "eu-west-1",
        SourceError::Refused("ListKeys: AccessDeniedException: denied".into()),
    );
    let id = start_job(&entry, json!({"kms": ["demo"]})).await;
    run_workers(&entry, &parts).await;
    let job = get_job(&entry, &id).await;
    assert_eq!(job["overall_status"], "failed");
    assert_eq!(
        job["detailed_status"]["111122223333/us-east-1"],
        "region synchronized successfully"
    );
    assert_eq!(
        job["detailed_status"]["111122223333/eu-west-1"],
        "region synchronization failed: ListKeys: AccessDeniedException: denied"
    );
    assert!(parts.keys.list(None).await.unwrap().iter().all(|k| !k.gone));
}

#[tokio::test]
async fn cancel_stops_the_units_and_the_job_ends_completed_with_abort() {
    let (entry, parts) = setup(&["us-east-1", "eu-west-1"], 1).await;
    for n in 0..4 {
        parts
            .source
            .put_key(ACCOUNT, "us-east-1", key("us-east-1", n));
    }
    let id = start_job(&entry, json!({"kms": ["demo"]})).await;
    let (status, _) = request(
        &entry,
        "POST",
        &format!("/api/v1/cckm/aws/synchronization-jobs/{id}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    run_workers(&entry, &parts).await;
    let job = get_job(&entry, &id).await;
    assert_eq!(
        (job["overall_status"].as_str(), job["abort"].as_bool()),
        (Some("completed"), Some(true)),
        "{job}"
    );
    assert_eq!(
        job["detailed_status"]["111122223333/us-east-1"],
        "region synchronization canceled"
    );
    let again = request(
        &entry,
        "POST",
        &format!("/api/v1/cckm/aws/synchronization-jobs/{id}/cancel"),
        None,
    )
    .await;
    assert_cckm_error(&again, 409, 4);
}

#[tokio::test]
async fn a_redelivered_message_counts_nothing_twice() {
    let (entry, _parts, id, items) = job_over_keys(5, 2).await;
    let deadline = chrono::Utc::now() + chrono::Duration::minutes(15);
    entry
        .handle(sqs_event(&items, 1), "worker", deadline)
        .await
        .expect("a readable event");
    let response = entry
        .handle(sqs_event(&items, 2), "worker", deadline)
        .await
        .expect("a readable event");
    assert_eq!(response["batchItemFailures"], json!([]));
    let job = get_job(&entry, &id).await;
    assert_eq!(job["overall_status"], "completed");
    assert_eq!(job["progress"]["keys_synced"], 5);
    assert_eq!(job["progress"]["units_done"], 1);
}

#[tokio::test]
async fn a_unit_near_its_deadline_hands_its_marker_to_a_new_message() {
    let (entry, parts, id, items) = job_over_keys(5, 2).await;
    // Less time left than the safety margin: one page, then a continuation.
    let near = chrono::Utc::now() + chrono::Duration::seconds(10);
    entry
        .handle(sqs_event(&items, 1), "worker", near)
        .await
        .expect("a readable event");
    let continuation = parts.dispatcher.drain();
    assert_eq!(continuation.len(), 1);
    assert_eq!(continuation[0].marker.as_deref(), Some("2"));
    assert_eq!(get_job(&entry, &id).await["overall_status"], "in_progress");
    let deadline = chrono::Utc::now() + chrono::Duration::minutes(15);
    entry
        .handle(sqs_event(&continuation, 1), "worker", deadline)
        .await
        .expect("a readable event");
    let job = get_job(&entry, &id).await;
    assert_eq!(job["overall_status"], "completed");
    assert_eq!(job["progress"]["keys_synced"], 5);
    assert_eq!(parts.keys.list(None).await.unwrap().len(), 5);
}

#[tokio::test]
async fn a_passing_failure_is_retried_then_fails_the_unit_after_the_last_attempt() {
    let (entry, parts) = setup(&["us-east-1"], 2).await;
    parts.source.refuse(
        ACCOUNT,
        "us-east-1",
        SourceError::Transient("ListKeys: ThrottlingException".into()),
    );
    let id = start_job(&entry, json!({"kms": ["demo"]})).await;
    let items = parts.dispatcher.drain();
    let deadline = chrono::Utc::now() + chrono::Duration::minutes(15);
    let first = entry
        .handle(sqs_event(&items, 1), "worker", deadline)
        .await
        .expect("a readable event");
    assert_eq!(
        first["batchItemFailures"],
        json!([{"itemIdentifier": "m0"}]),
        "retried through SQS"
    );
    assert_eq!(
        parts.dispatcher.retries(),
        vec![("r0".to_string(), std::time::Duration::from_secs(30))],
        "the retry comes back after 30 s, not after the queue's whole visibility timeout"
    );
    assert_eq!(get_job(&entry, &id).await["overall_status"], "in_progress");
    let last = entry
        .handle(sqs_event(&items, 4), "worker", deadline)
        .await
        .expect("a readable event");
    assert_eq!(last["batchItemFailures"], json!([]));
    let job = get_job(&entry, &id).await;
    assert_eq!(job["overall_status"], "failed");
    assert!(
        job["detailed_status"]["111122223333/us-east-1"]
            .as_str()
            .unwrap()
            .contains("gave up after 4 attempts")
    );
}

#[tokio::test]
async fn a_malformed_message_is_reported_failed_and_the_rest_of_the_batch_proceeds() {
    let (entry, parts) = setup(&["us-east-1"], 2).await;
    parts
        .source
        .put_key(ACCOUNT, "us-east-1", key("us-east-1", 1));
    let id = start_job(&entry, json!({"kms": ["demo"]})).await;
    let items = parts.dispatcher.drain();
    let mut event = sqs_event(&items, 1);
    let mut bad = event["Records"][0].clone();
    bad["messageId"] = Value::from("bad");
    bad["body"] = Value::from("not json");
    event["Records"].as_array_mut().unwrap().push(bad);
    let response = entry
        .handle(
            event,
            "worker",
            chrono::Utc::now() + chrono::Duration::minutes(15),
        )
        .await
        .expect("a readable event");
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "bad"}])
    );
    assert_eq!(get_job(&entry, &id).await["overall_status"], "completed");
}

#[tokio::test]
async fn a_lapsed_lease_lets_a_new_job_start_when_a_worker_died() {
    let (entry, _parts) = setup(&["us-east-1"], 10).await;
    let entry = with_one_second_lease(&entry);
    let first = start_job(&entry, json!({"kms": ["demo"]})).await;
    let overlap = request(
        &entry,
        "POST",
        "/api/v1/cckm/aws/synchronization-jobs",
        Some(json!({"kms": ["demo"]})),
    )
    .await;
    assert_cckm_error(&overlap, 409, 4);
    // No worker ever picks the first job up: its lease lapses.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let second = start_job(&entry, json!({"kms": ["demo"]})).await;
    assert_ne!(first, second);
}

/// An entry whose leases lapse after a second, with one job started that no worker will ever run.
async fn abandoned_job() -> (Entry, MemoryParts, String) {
    let (entry, parts) = setup(&["us-east-1", "eu-west-1"], 10).await;
    let entry = with_one_second_lease(&entry);
    let id = start_job(&entry, json!({"kms": ["demo"]})).await;
    parts.dispatcher.drain();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    (entry, parts, id)
}

#[tokio::test]
async fn cancelling_a_job_whose_workers_are_gone_ends_it_at_once() {
    let (entry, _parts, id) = abandoned_job().await;
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
    assert!(
        job["detailed_status"]
            .as_object()
            .unwrap()
            .values()
            .all(|s| s == "region synchronization canceled")
    );
}

#[tokio::test]
async fn a_scheduled_run_fails_abandoned_jobs_before_it_starts() {
    let (entry, parts, id) = abandoned_job().await;
    let started = entry
        .handle(
            json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}),
            "s",
            chrono::Utc::now(),
        )
        .await
        .expect("a readable event");
    assert_eq!(started["started"], true, "{started}");
    let old = get_job(&entry, &id).await;
    assert_eq!(old["overall_status"], "failed", "{old}");
    assert!(
        old["detailed_status"]["111122223333/us-east-1"]
            .as_str()
            .unwrap()
            .contains("worker was lost")
    );
    assert_eq!(
        parts.dispatcher.drain().len(),
        2,
        "the scheduled job queued its two units"
    );
}

#[tokio::test]
async fn a_redelivery_after_the_last_page_ends_the_unit_without_counting_again() {
    let (entry, parts, id, items) = job_over_keys(3, 10).await;
    // A first delivery stored and recorded the only page, then died before ending the unit.
    let job_id = uuid::Uuid::parse_str(&id).unwrap();
    let page = cckm_aws_sync::ports::PageRecord {
        pages_done: 0,
        next_marker: None,
        keys: 3,
        seen: Vec::new(),
    };
    assert!(
        entry
            .app
            .jobs
            .record_page(job_id, "111122223333/us-east-1", page, chrono::Utc::now())
            .await
            .unwrap()
    );
    // Keys AWS lists now that the first delivery never saw would show up if the unit listed again.
    parts
        .source
        .put_key(ACCOUNT, "us-east-1", key("us-east-1", 9));
    let response = entry
        .handle(
            sqs_event(&items, 2),
            "worker",
            chrono::Utc::now() + chrono::Duration::minutes(15),
        )
        .await
        .expect("a readable event");
    assert_eq!(response["batchItemFailures"], json!([]));
    let job = get_job(&entry, &id).await;
    assert_eq!(job["overall_status"], "completed", "{job}");
    assert_eq!(
        job["progress"]["keys_synced"], 3,
        "the recorded page is counted once and not listed again"
    );
}

#[tokio::test]
async fn a_redelivery_mid_unit_goes_on_from_the_recorded_page_and_counts_each_key_once() {
    let (entry, parts, id, original) = job_over_keys(5, 2).await;
    let near = chrono::Utc::now() + chrono::Duration::seconds(10);
    entry
        .handle(sqs_event(&original, 1), "worker", near)
        .await
        .expect("a readable event");
    let continuation = parts.dispatcher.drain();
    assert_eq!(continuation.len(), 1, "one page, then a continuation");
    // SQS delivers the original message again (its first delivery's visibility ran out), then the continuation.
    let later = chrono::Utc::now() + chrono::Duration::minutes(15);
    entry
        .handle(sqs_event(&original, 2), "worker", later)
        .await
        .expect("a readable event");
    entry
        .handle(sqs_event(&continuation, 1), "worker", later)
        .await
        .expect("a readable event");
    let job = get_job(&entry, &id).await;
    assert_eq!(job["overall_status"], "completed", "{job}");
    assert_eq!(job["progress"]["keys_synced"], 5);
    assert_eq!(job["progress"]["units_done"], 1);
    assert_eq!(parts.keys.list(None).await.unwrap().len(), 5);
}

#[tokio::test]
async fn a_cancel_between_two_pages_of_one_unit_stops_it_there() {
    let (entry, parts, id, items) = job_over_keys(6, 2).await;
    entry
        .handle(
            sqs_event(&items, 1),
            "worker",
            chrono::Utc::now() + chrono::Duration::seconds(10),
        )
        .await
        .expect("a readable event");
    let continuation = parts.dispatcher.drain();
    let (status, _) = request(
        &entry,
        "POST",
        &format!("/api/v1/cckm/aws/synchronization-jobs/{id}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    entry
        .handle(
            sqs_event(&continuation, 1),
            "worker",
            chrono::Utc::now() + chrono::Duration::minutes(15),
        )
        .await
        .expect("a readable event");
    let job = get_job(&entry, &id).await;
    assert_eq!(
        (job["overall_status"].as_str(), job["abort"].as_bool()),
        (Some("completed"), Some(true)),
        "{job}"
    );
    assert_eq!(
        job["detailed_status"]["111122223333/us-east-1"],
        "region synchronization canceled"
    );
    assert_eq!(
        parts.keys.list(None).await.unwrap().len(),
        2,
        "only the page before the cancel was stored"
    );
    assert!(
        parts.keys.list(None).await.unwrap().iter().all(|k| !k.gone),
        "a canceled unit flags nothing gone"
    );
}

#[tokio::test]
async fn a_job_of_more_than_100_units_starts_with_fan_out_shares_and_a_share_sent_twice_syncs_each_key_once()
 {
    let (entry, parts) = memory_entry(10);
    let mut n = 0;
    for account in 0..7 {
        let account_id = format!("{:012}", 300_000_000_000u64 + account);
        register_kms(
            &entry,
            &format!("k{account}"),
            &account_id,
            &SEVENTEEN_REGIONS,
        )
        .await;
        for region in SEVENTEEN_REGIONS {
            parts.source.put_key(&account_id, region, key(region, n));
            n += 1;
        }
    }
    let id = start_job(&entry, json!({"synchronize_all": true})).await;
    assert_eq!(
        parts.dispatcher.pending(),
        0,
        "the API sent no unit message"
    );
    let shares = parts.dispatcher.drain_fan_outs();
    assert_eq!(shares.len(), 1);
    assert_eq!(shares[0].fan_out.len(), 119);

    // A share delivered twice (its first worker's answer lost) sends every unit message twice.
    let deadline = chrono::Utc::now() + chrono::Duration::minutes(15);
    for attempt in [1, 2] {
        let response = entry
            .handle(sqs_event(&shares, attempt), "worker", deadline)
            .await
            .expect("a readable event");
        assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    }
    let items = parts.dispatcher.drain();
    assert_eq!(items.len(), 238);
    let distinct: std::collections::BTreeSet<String> =
        items.iter().map(WorkItem::unit_key).collect();
    assert_eq!(distinct.len(), 119);
    for chunk in items.chunks(10) {
        let response = entry
            .handle(sqs_event(chunk, 1), "worker", deadline)
            .await
            .expect("a readable event");
        assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    }
    run_workers(&entry, &parts).await;
    let job = get_job(&entry, &id).await;
    assert_eq!(job["overall_status"], "completed", "{job}");
    assert_eq!(job["progress"]["units_done"], 119, "{job}");
    assert_eq!(job["progress"]["keys_synced"], 119, "{job}");
    assert_eq!(list_keys(&entry, "").await.len(), 119);
}
