//! The sync engine's correctness defects of issue 12, one test (or two) each, named after the defect.
//! Most run on both kinds of store, in memory and DynamoDB on the emulator, with a scripted key source that
//! pages like AWS and deliveries driven one by one (`common::rig`); a store that loses an answer or fails
//! once is a decorator over the real store. What only the wire can do wrong (a lost answer inside one
//! DynamoDB adapter call) is in `dynamodb_scripted.rs`.

mod common;

use async_trait::async_trait;
use cckm_aws_sync::domain::AppError;
use cckm_aws_sync::domain::job::{Job, UnitStatus};
use cckm_aws_sync::domain::time::Timestamp;
use cckm_aws_sync::ports::{
    GoneSweep, JobStore, LeaseRenewal, PageRecord, Settled, UnitProgress, Verdict,
};
use common::rig::*;
use common::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use uuid::Uuid;

/// A job store that misbehaves once, in one of the ways a network or a crash can make a real one.
#[derive(Default)]
struct Faults {
    /// `record_page` commits, its answer is lost, and the SDK's retry then fails its condition.
    record_answer_lost: AtomicUsize,
    /// `record_page` finds the unit moved by someone else (and writes nothing).
    record_overtaken: AtomicUsize,
    /// `finish_unit` fails before writing anything.
    finish_fails: AtomicUsize,
    /// `release_lease` fails (the invocation died before giving the lease back).
    release_fails: AtomicUsize,
}

fn once(fault: &AtomicUsize) -> bool {
    fault
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

fn injected() -> AppError {
    AppError::Internal("injected store failure".into())
}

struct Faulty {
    inner: Arc<dyn JobStore>,
    faults: Arc<Faults>,
}

#[async_trait]
impl JobStore for Faulty {
    async fn create(&self, job: &Job, lease_until: Timestamp) -> Result<(), AppError> {
        self.inner.create(job, lease_until).await
    }
    async fn get(&self, id: Uuid) -> Result<Option<Job>, AppError> {
        self.inner.get(id).await
    }
    async fn header(&self, id: Uuid) -> Result<Option<Job>, AppError> {
        self.inner.header(id).await
    }
    async fn for_each_header(
        &self,
        newest_first: bool,
        visit: &mut (dyn FnMut(Job) -> bool + Send),
    ) -> Result<(), AppError> {
        self.inner.for_each_header(newest_first, visit).await
    }
    async fn count(&self) -> Result<usize, AppError> {
        self.inner.count().await
    }
    async fn request_abort(&self, id: Uuid, now: Timestamp) -> Result<Job, AppError> {
        self.inner.request_abort(id, now).await
    }
    async fn unit_progress(
        &self,
        job_id: Uuid,
        unit_key: &str,
    ) -> Result<Option<UnitProgress>, AppError> {
        self.inner.unit_progress(job_id, unit_key).await
    }
    async fn record_page(
        &self,
        job_id: Uuid,
        unit_key: &str,
        page: PageRecord,
        now: Timestamp,
    ) -> Result<bool, AppError> {
        if once(&self.faults.record_overtaken) {
            return Ok(false);
        }
        let committed = self
            .inner
            .record_page(job_id, unit_key, page.clone(), now)
            .await?;
        if committed && once(&self.faults.record_answer_lost) {
            return self.inner.record_page(job_id, unit_key, page, now).await;
        }
        Ok(committed)
    }
    async fn finish_unit(
        &self,
        job_id: Uuid,
        unit_key: &str,
        status: &UnitStatus,
        now: Timestamp,
    ) -> Result<bool, AppError> {
        if once(&self.faults.finish_fails) {
            return Err(injected());
        }
        self.inner.finish_unit(job_id, unit_key, status, now).await
    }
    async fn complete_if_done(
        &self,
        job_id: Uuid,
        now: Timestamp,
    ) -> Result<Option<Job>, AppError> {
        self.inner.complete_if_done(job_id, now).await
    }
    async fn lease(&self, unit_key: &str) -> Result<Option<(Uuid, Timestamp)>, AppError> {
        self.inner.lease(unit_key).await
    }
    async fn renew_lease(
        &self,
        unit_key: &str,
        job_id: Uuid,
        until: Timestamp,
    ) -> Result<LeaseRenewal, AppError> {
        self.inner.renew_lease(unit_key, job_id, until).await
    }
    async fn seen(&self, job_id: Uuid, unit_key: &str) -> Result<Vec<Uuid>, AppError> {
        self.inner.seen(job_id, unit_key).await
    }
    async fn claim_unit(
        &self,
        job_id: Uuid,
        unit_key: &str,
        delivery: Uuid,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, AppError> {
        self.inner
            .claim_unit(job_id, unit_key, delivery, until, now)
            .await
    }
    async fn release_claim(
        &self,
        job_id: Uuid,
        unit_key: &str,
        delivery: Uuid,
    ) -> Result<(), AppError> {
        self.inner.release_claim(job_id, unit_key, delivery).await
    }
    async fn release_lease(&self, unit_key: &str, job_id: Uuid) -> Result<(), AppError> {
        if once(&self.faults.release_fails) {
            return Err(injected());
        }
        self.inner.release_lease(unit_key, job_id).await
    }
}

/// Rigs whose job store carries `faults` (armed by the test when it wants them).
async fn faulty_rigs(page_size: usize) -> Vec<(Rig, Arc<Faults>)> {
    let mut rigs = Vec::new();
    for stores in [Stores::Memory, Stores::DynamoDb] {
        let faults = Arc::new(Faults::default());
        let armed = faults.clone();
        let rig = Rig::new(
            stores,
            page_size,
            &move |app: &mut cckm_aws_sync::app::App| {
                app.jobs = Arc::new(Faulty {
                    inner: app.jobs.clone(),
                    faults: armed.clone(),
                });
            },
        )
        .await;
        rigs.push((rig, faults));
    }
    rigs
}

fn failures(response: &Value) -> Value {
    response["batchItemFailures"].clone()
}

/// The sweep a job's worker makes over the unit.
async fn sweep_of(rig: &Rig, job: Uuid) -> GoneSweep {
    let header = rig.app().jobs.header(job).await.unwrap().unwrap();
    GoneSweep {
        job_id: job,
        job_started: header.created_at,
        unit_key: UNIT.into(),
    }
}

/// Writes "gone" verdicts for these keys, as the sweep does.
async fn flag(rig: &Rig, sweep: &GoneSweep, ids: &[Uuid]) -> Settled {
    let verdicts: Vec<Verdict> = ids.iter().copied().map(Verdict::Gone).collect();
    rig.app()
        .keys
        .settle_sweep(sweep, &verdicts, chrono::Utc::now())
        .await
        .unwrap()
}

fn flagged(n: u64) -> Settled {
    Settled {
        flagged: n,
        ..Settled::default()
    }
}

/// Seconds left that let a delivery read one page, then hand the rest to a continuation.
const ONE_PAGE: i64 = 60;
const WHOLE: i64 = 900;

// ---- High ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect_1_a_worker_whose_lease_was_taken_over_stops_and_flags_no_live_key_gone() {
    for rig in rigs(2, |app| app.sync.lease = Duration::from_secs(1)).await {
        let stores = rig.stores;
        rig.put_keys(0..4);
        let (first, items) = rig.start().await;
        rig.deliver(&items, 1, ONE_PAGE).await;
        let resumed = rig.dispatcher.drain();
        assert_eq!(
            resumed.len(),
            1,
            "{stores:?}: one page, then a continuation"
        );
        // J1's worker stalls past its lease; J2 takes the lapsed lease and syncs the whole unit.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let second = rig.run_job().await;
        assert_ne!(first, second);
        assert_eq!(rig.job(second).await["overall_status"], "completed");
        // J1 resumes: it must neither go on nor flag the keys J2 restamped.
        rig.deliver(&resumed, 1, WHOLE).await;
        assert_eq!(rig.gone().await, Vec::<usize>::new(), "{stores:?}");
        let job = rig.job(first).await;
        assert_eq!(job["overall_status"], "failed", "{stores:?}: {job}");
        assert!(
            job["detailed_status"][UNIT]
                .as_str()
                .is_some_and(|s| s.contains("lease lost")),
            "{stores:?}: {job}"
        );
        assert_eq!(job["progress"]["keys_gone"], 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect_1_a_worker_whose_lease_another_job_holds_stops_at_once_and_names_it() {
    for rig in rigs(2, |app| app.sync.lease = Duration::from_secs(1)).await {
        let stores = rig.stores;
        rig.put_keys(0..6);
        let (first, items) = rig.start().await;
        rig.deliver(&items, 1, ONE_PAGE).await;
        let resumed = rig.dispatcher.drain();
        tokio::time::sleep(Duration::from_millis(2100)).await;
        // J2 takes the lapsed lease and is mid-unit when J1 resumes.
        let (second, items) = rig.start().await;
        rig.deliver(&items, 1, ONE_PAGE).await;
        let second_rest = rig.dispatcher.drain();
        rig.deliver(&resumed, 1, WHOLE).await;
        assert!(
            rig.dispatcher.drain().is_empty(),
            "{stores:?}: J1 hands nothing on"
        );
        let job = rig.job(first).await;
        let reason = job["detailed_status"][UNIT].as_str().unwrap_or_default();
        assert!(
            reason.contains("lease lost") && reason.contains(&second.to_string()),
            "{stores:?}: {job}"
        );
        assert_eq!(
            rig.keys().await.keys().copied().collect::<Vec<_>>(),
            vec![0, 1],
            "{stores:?}: J1 read no further page"
        );
        rig.deliver(&second_rest, 1, WHOLE).await;
        rig.run_queue().await;
        assert_eq!(rig.job(second).await["overall_status"], "completed");
        assert_eq!(rig.gone().await, Vec::<usize>::new(), "{stores:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect_1_a_gone_flag_never_overrules_a_stamp_written_since_the_job_started() {
    for rig in rigs(10, |_| {}).await {
        let stores = rig.stores;
        rig.put_keys(0..3);
        let old = rig.run_job().await;
        let (job, _) = rig.start().await;
        let sweep = sweep_of(&rig, job).await;
        let keys = rig.keys().await;
        assert_eq!(keys[&0].last_seen_job, Some(old));
        // Another writer (a refresh, another job) stamped key 1 after this job started.
        let mut restamped = keys[&1].clone();
        restamped.synced_at = chrono::Utc::now();
        restamped.last_seen_job = Some(Uuid::new_v4());
        // This job's own stamp on key 2, by a worker whose clock runs behind.
        let mut own = keys[&2].clone();
        own.last_seen_job = Some(job);
        rig.app().keys.put_all(&[restamped, own]).await.unwrap();
        let ids: Vec<Uuid> = keys.values().map(|k| k.id).collect();
        assert_eq!(flag(&rig, &sweep, &ids).await, flagged(1), "{stores:?}");
        assert_eq!(rig.gone().await, vec![0], "{stores:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect_1_a_sweep_near_the_deadline_goes_on_in_a_new_message() {
    for rig in rigs(100, |_| {}).await {
        let stores = rig.stores;
        rig.put_keys(0..60);
        rig.run_job().await;
        for n in 0..60 {
            rig.source
                .remove_key(ACCOUNT, REGION, &key(n).aws_param.key_id);
        }
        let (job, items) = rig.start().await;
        rig.deliver(&items, 1, ONE_PAGE).await;
        assert_eq!(
            rig.gone().await.len(),
            0,
            "{stores:?}: no time left to sweep"
        );
        assert_eq!(rig.dispatcher.pending(), 1, "{stores:?}");
        rig.run_queue().await;
        assert_eq!(rig.gone().await.len(), 60, "{stores:?}");
        rig.completed(job, &[("keys_gone", 60)]).await;
    }
}

// ---- Medium -------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect_2_a_refresh_racing_a_sync_keeps_the_sync_stamp_and_the_key_is_not_flagged_gone() {
    for rig in rigs(2, |_| {}).await {
        let stores = rig.stores;
        rig.put_keys(0..4);
        rig.run_job().await;
        let key0 = rig.keys().await[&0].id;
        // Key 0 changes in AWS, so that the next sync writes it again.
        let mut changed = key(0);
        changed.aws_param.description = Some("changed".into());
        rig.source.put_key(ACCOUNT, REGION, changed);
        let (job, items) = rig.start().await;
        // The refresh reads key 0's record, then waits in its AWS read while the sync stamps the key.
        rig.gate.arm(0);
        let path = format!("/api/v1/cckm/aws/keys/{key0}/refresh");
        let refresh = request(&rig.entry, "POST", &path, None);
        let sync_meanwhile = async {
            rig.gate.reached().await;
            rig.deliver(&items, 1, ONE_PAGE).await;
            rig.gate.release();
        };
        let ((status, body), ()) = tokio::join!(refresh, sync_meanwhile);
        assert_eq!(status, 200, "{stores:?}: {body}");
        rig.run_queue().await;
        let keys = rig.keys().await;
        assert_eq!(keys[&0].last_seen_job, Some(job), "{stores:?}");
        assert_eq!(rig.gone().await, Vec::<usize>::new(), "{stores:?}");
        assert_eq!(rig.job(job).await["progress"]["keys_gone"], 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect_3_a_redelivery_that_finds_its_unit_ended_gives_the_lease_back() {
    for (rig, faults) in faulty_rigs(10).await {
        let stores = rig.stores;
        rig.put_keys(0..3);
        let (job, items) = rig.start().await;
        faults.release_fails.store(1, Ordering::SeqCst);
        let first = rig.deliver(&items, 1, WHOLE).await;
        assert_eq!(
            failures(&first),
            json!([{"itemIdentifier": "m0"}]),
            "{stores:?}"
        );
        assert_eq!(
            rig.app().jobs.lease(UNIT).await.unwrap().map(|(id, _)| id),
            Some(job),
            "{stores:?}: the unit ended, its lease is still held"
        );
        let again = rig.deliver(&items, 2, WHOLE).await;
        assert_eq!(failures(&again), json!([]), "{stores:?}");
        assert_eq!(
            rig.app().jobs.lease(UNIT).await.unwrap(),
            None,
            "{stores:?}"
        );
        assert_eq!(rig.job(job).await["overall_status"], "completed");
        rig.start().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect_4_a_page_record_whose_answer_was_lost_goes_on_instead_of_stranding_the_unit() {
    for (rig, faults) in faulty_rigs(2).await {
        let stores = rig.stores;
        rig.put_keys(0..4);
        let (job, items) = rig.start().await;
        faults.record_answer_lost.store(1, Ordering::SeqCst);
        let response = rig.deliver(&items, 1, WHOLE).await;
        assert_eq!(failures(&response), json!([]), "{stores:?}");
        rig.completed(job, &[("keys_synced", 4)]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect_4_a_unit_moved_by_someone_else_sends_the_message_back_instead_of_dropping_it() {
    for (rig, faults) in faulty_rigs(2).await {
        let stores = rig.stores;
        rig.put_keys(0..4);
        let (job, items) = rig.start().await;
        faults.record_overtaken.store(1, Ordering::SeqCst);
        let response = rig.deliver(&items, 1, WHOLE).await;
        assert_eq!(
            failures(&response),
            json!([{"itemIdentifier": "m0"}]),
            "{stores:?}: the message comes back"
        );
        rig.deliver(&items, 2, WHOLE).await;
        rig.completed(job, &[("keys_synced", 4)]).await;
    }
}

// ---- Low ----------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect_5_passing_errors_after_progress_do_not_use_up_the_retry_budget() {
    for rig in rigs(2, |_| {}).await {
        let stores = rig.stores;
        rig.put_keys(0..6);
        // Every delivery lists one page, then is throttled past the SDK's retries.
        rig.source.throttle_after_pages(ACCOUNT, REGION, 1);
        let (job, mut items) = rig.start().await;
        let mut deliveries = 0;
        while !items.is_empty() {
            // Each message is on its last attempt: a failure without progress would fail the unit.
            let response = rig.deliver(&items, 4, WHOLE).await;
            assert_eq!(failures(&response), json!([]), "{stores:?}");
            items = rig.dispatcher.drain();
            deliveries += 1;
            assert!(deliveries <= 4, "{stores:?}: one page per delivery");
        }
        rig.completed(job, &[("keys_synced", 6)]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect_9_keys_gone_counts_each_key_once_when_the_finish_fails_after_flagging() {
    for (rig, faults) in faulty_rigs(10).await {
        let stores = rig.stores;
        rig.put_keys(0..4);
        rig.run_job().await;
        for n in [1, 3] {
            rig.source
                .remove_key(ACCOUNT, REGION, &key(n).aws_param.key_id);
        }
        let (job, items) = rig.start().await;
        faults.finish_fails.store(1, Ordering::SeqCst);
        let first = rig.deliver(&items, 1, WHOLE).await;
        assert_eq!(
            failures(&first),
            json!([{"itemIdentifier": "m0"}]),
            "{stores:?}"
        );
        assert_eq!(
            rig.gone().await,
            vec![1, 3],
            "{stores:?}: flagged before the finish failed"
        );
        rig.deliver(&items, 2, WHOLE).await;
        rig.completed(job, &[("keys_gone", 2)]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect_9_a_key_already_gone_or_a_unit_already_ended_is_neither_flagged_nor_counted() {
    for rig in rigs(10, |_| {}).await {
        let stores = rig.stores;
        rig.put_keys(0..3);
        rig.run_job().await;
        let keys = rig.keys().await;
        let (job, _) = rig.start().await;
        let sweep = sweep_of(&rig, job).await;
        assert_eq!(flag(&rig, &sweep, &[keys[&0].id]).await, flagged(1));
        // A second sweep of the same unit (a duplicate delivery, a stale index) meets the same key.
        assert_eq!(
            flag(&rig, &sweep, &[keys[&0].id]).await,
            flagged(0),
            "{stores:?}"
        );
        let progress = rig
            .app()
            .jobs
            .unit_progress(job, UNIT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(progress.keys_gone, 1, "{stores:?}");
        // The sweep of abandoned jobs (or another delivery) ends the unit; a late flag must not land.
        let now = chrono::Utc::now();
        let ended = UnitStatus::Failed("ended elsewhere".into());
        assert!(
            rig.app()
                .jobs
                .finish_unit(job, UNIT, &ended, now)
                .await
                .unwrap()
        );
        let late = flag(&rig, &sweep, &[keys[&1].id]).await;
        assert!(late.unit_ended && late.flagged == 0, "{stores:?}: {late:?}");
        assert_eq!(rig.gone().await, vec![0], "{stores:?}");
        rig.app().jobs.complete_if_done(job, now).await.unwrap();
        assert_eq!(rig.job(job).await["progress"]["keys_gone"], 1, "{stores:?}");
    }
}

#[tokio::test]
async fn defect_10_an_unreadable_sqs_batch_fails_the_invocation_so_that_it_comes_back() {
    let (entry, parts) = memory_entry(10);
    let unreadable = json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m0", "body": 5}]});
    let deadline = chrono::Utc::now() + chrono::Duration::minutes(15);
    let answer = entry.handle(unreadable, "worker", deadline).await;
    assert!(answer.is_err(), "{answer:?}");
    assert_eq!(parts.dispatcher.pending(), 0);
}

// ---- Suspicions ---------------------------------------------------------------------------------------

/// Ruled in, then out: ListKeys markers can be positional (the scripted source's are), so a key deleted
/// mid-sync shifts a later key onto a page already read. The sweep confirms each candidate with
/// DescribeKey: the shifted key is found live and stored as seen, never flagged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspicion_a_key_deleted_mid_sync_never_gets_a_live_key_flagged_gone() {
    for rig in rigs(2, |_| {}).await {
        let stores = rig.stores;
        rig.put_keys(0..6);
        rig.run_job().await;
        let (job, items) = rig.start().await;
        rig.deliver(&items, 1, ONE_PAGE).await;
        // AWS deletes key 0 after the first page: key 2 moves onto the page already read.
        rig.source
            .remove_key(ACCOUNT, REGION, &key(0).aws_param.key_id);
        rig.run_queue().await;
        let keys = rig.keys().await;
        assert_eq!(
            keys[&2].last_seen_job,
            Some(job),
            "{stores:?}: key 2 found live"
        );
        // Key 0 was seen alive on the first page of this job; the next sync finds it gone.
        assert_eq!(rig.gone().await, Vec::<usize>::new(), "{stores:?}");
        let job = rig.job(job).await;
        assert_eq!(job["progress"]["keys_gone"], 0, "{stores:?}: {job}");
        assert_eq!(job["progress"]["keys_synced"], 6, "{stores:?}: {job}");
        let next = rig.run_job().await;
        assert_eq!(rig.gone().await, vec![0], "{stores:?}");
        assert_eq!(
            rig.job(next).await["progress"]["keys_gone"],
            1,
            "{stores:?}"
        );
    }
}

/// Ruled in and fixed: a page that cannot be read before the invocation's deadline is given up in time
/// (and read again later), instead of running the whole batch into Lambda's timeout.
#[tokio::test]
async fn suspicion_a_page_slower_than_the_deadline_margin_is_given_up_before_the_deadline() {
    let rig = Rig::new(Stores::Memory, 20, &|app: &mut cckm_aws_sync::app::App| {
        app.sync.key_concurrency = 1;
        app.sync.deadline_margin = Duration::from_secs(6);
    })
    .await;
    // 20 s of reads, with 6 s left: the page must be given up 2 s before the deadline.
    rig.put_keys(0..20);
    rig.source.slow_reads(Duration::from_secs(1));
    let (job, items) = rig.start().await;
    let started = std::time::Instant::now();
    let response = rig.deliver(&items, 1, 6).await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "answered {:?} after the start, with 6 s to go",
        started.elapsed()
    );
    assert_eq!(failures(&response), json!([{"itemIdentifier": "m0"}]));
    let progress = rig
        .app()
        .jobs
        .unit_progress(job, UNIT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(progress.pages_done, 0, "nothing of the page is recorded");
    rig.source.slow_reads(Duration::ZERO);
    rig.deliver(&items, 2, WHOLE).await;
    assert_eq!(rig.job(job).await["progress"]["keys_synced"], 20);
}
