//! Jobs of any size (issue 8): a job takes its leases in transactions of 100 and gives them all back when
//! any call of its creation fails; a lease no job will use is freed by the next job; units ending at once
//! end the job once with exact counters; an end that was not counted on the job is counted by the
//! next call; ended jobs expire; the job list reads a page, not the history.
//! On both stores (in memory, and DynamoDB on the emulator through the real SDK). Failures are injected on
//! the wire, into the real SDK client, by an interceptor (`FailCall`). The sizes here (170 units, moto
//! serving one call at a time) prove the behaviour; `make bench-scale` times 850 units.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use cckm_aws_sync::adapters::dynamodb::DynamoJobStore;
use cckm_aws_sync::adapters::memory::MemoryJobStore;
use cckm_aws_sync::domain::AppError;
use cckm_aws_sync::domain::job::{Job, JobStatus, Unit, UnitStatus};
use cckm_aws_sync::ports::{JobStore, PageRecord};
use common::emulator::{Stack, shared};
use futures::{StreamExt, stream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use uuid::Uuid;

const RETENTION: Duration = Duration::from_secs(90 * 86_400);
/// Regions per account, as in AWS's commercial partition.
const REGIONS: usize = 17;

/// `accounts` fresh accounts × the 17 regions.
fn units(accounts: usize) -> Vec<Unit> {
    (0..accounts)
        .map(|_| common::random_account())
        .flat_map(|account| {
            (0..REGIONS).map(move |n| Unit {
                kms_id: Uuid::nil(),
                account_id: account.clone(),
                region: format!("test-region-{n}"),
            })
        })
        .collect()
}

fn job_of(units: Vec<Unit>) -> Job {
    Job::start(
        Uuid::new_v4(),
        chrono::Utc::now(),
        units,
        vec!["demo".into()],
        vec![],
    )
}

fn lease_until() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() + chrono::Duration::hours(2)
}

struct Store {
    name: &'static str,
    jobs: Arc<dyn JobStore>,
    /// Keeps the emulator's tables of this store.
    _stack: Option<Stack>,
}

async fn stores() -> Vec<Store> {
    let stack = shared().stack().await;
    vec![
        Store {
            name: "memory",
            jobs: Arc::new(MemoryJobStore::default()),
            _stack: None,
        },
        Store {
            name: "dynamodb",
            jobs: stack.entry.app.jobs.clone(),
            _stack: Some(stack),
        },
    ]
}

/// The units whose lease `job_id` holds.
async fn leases_of(jobs: &dyn JobStore, job: &Job, job_id: Uuid) -> usize {
    let mut held = 0;
    for key in job.units.keys() {
        if jobs
            .lease(key)
            .await
            .expect("read lease")
            .is_some_and(|(holder, _)| holder == job_id)
        {
            held += 1;
        }
    }
    held
}

#[tokio::test]
async fn a_job_of_170_units_takes_every_lease_and_a_job_that_overlaps_it_takes_none() {
    for store in stores().await {
        let jobs = store.jobs.as_ref();
        let first = job_of(units(10));
        assert_eq!(first.units.len(), 170);
        jobs.create(&first, lease_until()).await.expect("create");
        assert_eq!(
            leases_of(jobs, &first, first.id).await,
            170,
            "{}",
            store.name
        );
        // A creation tried again (its answer lost) finds its own leases taken.
        jobs.create(&first, lease_until())
            .await
            .expect("the same job again");
        // 169 free units and one of the first job's, in the second transaction.
        let mut overlapping = units(10);
        overlapping.truncate(169);
        let taken = first.units.values().last().expect("a unit").unit.clone();
        overlapping.push(taken);
        let second = job_of(overlapping);
        let refused = jobs.create(&second, lease_until()).await;
        match &refused {
            Err(AppError::Conflict(message)) => {
                assert!(message.contains(&first.id.to_string()), "{message}")
            }
            other => panic!("{}: {other:?}", store.name),
        }
        assert_eq!(
            leases_of(jobs, &second, second.id).await,
            0,
            "{}: a refused job keeps no lease",
            store.name
        );
        assert!(jobs.get(second.id).await.expect("get").is_none());
    }
}

#[tokio::test]
async fn a_lease_whose_job_ended_without_giving_it_back_is_free_for_the_next_job() {
    for store in stores().await {
        let jobs = store.jobs.as_ref();
        let ended = job_of(units(1));
        jobs.create(&ended, lease_until()).await.expect("create");
        let now = chrono::Utc::now();
        for key in ended.units.keys() {
            jobs.finish_unit(ended.id, key, &UnitStatus::Succeeded, now)
                .await
                .expect("finish");
        }
        assert!(
            jobs.complete_if_done(ended.id, now)
                .await
                .expect("end")
                .is_some()
        );
        // Its worker died before `release_lease`: the leases are still the ended job's.
        let next = job_of(ended.units.values().map(|e| e.unit.clone()).collect());
        jobs.create(&next, lease_until())
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", store.name));
        assert_eq!(leases_of(jobs, &next, next.id).await, 17, "{}", store.name);
    }
}

/// A lease item as a creation that stopped after its leases leaves it.
async fn plant_lease(stack: &Stack, unit_key: &str, holder: Uuid, taken_secs_ago: i64) {
    let now = chrono::Utc::now().timestamp();
    stack
        .dynamodb()
        .put_item()
        .table_name(&stack.config.jobs_table)
        .item("pk", AttributeValue::S(format!("LEASE#{unit_key}")))
        .item("sk", AttributeValue::S("LEASE".into()))
        .item("job_id", AttributeValue::S(holder.to_string()))
        .item("lease_until", AttributeValue::N((now + 7200).to_string()))
        .item(
            "taken_at",
            AttributeValue::N((now - taken_secs_ago).to_string()),
        )
        .send()
        .await
        .expect("plant lease");
}

#[tokio::test]
async fn a_lease_of_a_job_that_was_never_stored_is_freed_once_its_creation_must_have_stopped() {
    let stack = shared().stack().await;
    let jobs = stack.entry.app.jobs.clone();
    let unit_keys = |job: &Job| job.units.keys().cloned().collect::<Vec<_>>();
    // Taken ten minutes ago by a job that does not exist: its creation stopped midway.
    let after_crash = job_of(units(1));
    plant_lease(&stack, &unit_keys(&after_crash)[3], Uuid::new_v4(), 600).await;
    jobs.create(&after_crash, lease_until())
        .await
        .expect("an orphan lease is freed");
    assert_eq!(
        leases_of(jobs.as_ref(), &after_crash, after_crash.id).await,
        17
    );
    // Taken a second ago: that creation may still be under way.
    let racing = job_of(units(1));
    let in_flight = Uuid::new_v4();
    plant_lease(&stack, &unit_keys(&racing)[5], in_flight, 1).await;
    let refused = jobs.create(&racing, lease_until()).await;
    assert!(
        matches!(&refused, Err(AppError::Conflict(m)) if m.contains(&in_flight.to_string())),
        "{refused:?}"
    );
    assert_eq!(leases_of(jobs.as_ref(), &racing, racing.id).await, 0);
}

/// Fails the `nth` call of one DynamoDB operation: before it is sent, or after DynamoDB answered (the
/// call committed, its answer is lost).
#[derive(Debug)]
struct FailCall {
    operation: &'static str,
    nth: usize,
    after_sending: bool,
    calls: AtomicUsize,
}

#[derive(Debug, Clone)]
struct LoseAnswer;

impl Storable for LoseAnswer {
    type Storer = StoreReplace<Self>;
}

impl Intercept for FailCall {
    fn name(&self) -> &'static str {
        "FailCall"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<Metadata>().map(Metadata::name) != Some(self.operation) {
            return Ok(());
        }
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 != self.nth {
            return Ok(());
        }
        if self.after_sending {
            cfg.interceptor_state().store_put(LoseAnswer);
            return Ok(());
        }
        Err("injected: the call failed before it was sent".into())
    }

    fn read_after_transmit(
        &self,
        _: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        match cfg.load::<LoseAnswer>() {
            Some(_) => Err("injected: the answer was lost".into()),
            None => Ok(()),
        }
    }
}

/// The production job store on the stack's table, through a client that fails one call.
fn failing_store(stack: &Stack, fail: FailCall) -> DynamoJobStore {
    let config = aws_sdk_dynamodb::config::Builder::from(&stack.sdk)
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .interceptor(fail)
        .build();
    DynamoJobStore::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        &stack.config.jobs_table,
        RETENTION,
    )
}

#[tokio::test]
async fn whatever_call_of_a_creation_fails_no_lease_or_header_of_the_job_is_left() {
    let stack = shared().stack().await;
    let reader = stack.entry.app.jobs.clone();
    // 120 units: 2 lease transactions, 5 unit batches, 1 header put.
    let calls = [
        ("TransactWriteItems", 1..=2),
        ("BatchWriteItem", 1..=5),
        ("PutItem", 1..=1),
    ];
    let mut cases = 0;
    for (operation, range) in calls {
        for nth in range {
            for after_sending in [false, true] {
                let mut planned = units(8);
                planned.truncate(120);
                let job = job_of(planned);
                let store = failing_store(
                    &stack,
                    FailCall {
                        operation,
                        nth,
                        after_sending,
                        calls: AtomicUsize::new(0),
                    },
                );
                let created = store.create(&job, lease_until()).await;
                let case = format!("{operation} #{nth}, after sending: {after_sending}");
                assert!(created.is_err(), "{case}: the injected failure is reported");
                assert_eq!(
                    leases_of(reader.as_ref(), &job, job.id).await,
                    0,
                    "{case}: no lease is left"
                );
                assert!(
                    reader.get(job.id).await.expect("get").is_none(),
                    "{case}: no job is left"
                );
                // The units are free for the next job at once.
                let next = job_of(job.units.values().map(|e| e.unit.clone()).collect());
                reader
                    .create(&next, lease_until())
                    .await
                    .unwrap_or_else(|err| panic!("{case}: the next job is refused: {err}"));
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 16);
}

/// Records one page of `keys` keys on a unit that has none yet.
async fn record_keys(jobs: &dyn JobStore, job_id: Uuid, unit_key: &str, keys: u64) {
    let page = PageRecord {
        pages_done: 0,
        next_marker: None,
        keys,
        seen: (0..keys).map(|_| Uuid::new_v4()).collect(),
    };
    assert!(
        jobs.record_page(job_id, unit_key, page, chrono::Utc::now())
            .await
            .expect("record page")
    );
}

#[tokio::test]
async fn units_ending_at_once_end_the_job_once_with_exact_counters() {
    for store in stores().await {
        let jobs = store.jobs.clone();
        let job = job_of(units(10));
        jobs.create(&job, lease_until()).await.expect("create");
        let keys: Vec<(String, u64)> = job
            .units
            .keys()
            .enumerate()
            .map(|(i, key)| (key.clone(), (i % 7) as u64))
            .collect();
        for (key, count) in &keys {
            record_keys(jobs.as_ref(), job.id, key, *count).await;
        }
        let ended = Arc::new(AtomicUsize::new(0));
        let failed_ends = stream::iter(keys.iter().enumerate())
            .map(|(i, (key, _))| {
                let (jobs, ended) = (jobs.clone(), ended.clone());
                async move {
                    let status = if i % 10 == 0 {
                        UnitStatus::Failed("access denied".into())
                    } else {
                        UnitStatus::Succeeded
                    };
                    let now = chrono::Utc::now();
                    let result = async {
                        jobs.finish_unit(job.id, key, &status, now).await?;
                        jobs.complete_if_done(job.id, now).await
                    };
                    match result.await {
                        Ok(Some(_)) => {
                            ended.fetch_add(1, Ordering::SeqCst);
                            0
                        }
                        Ok(None) => 0,
                        Err(_) => 1,
                    }
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<usize>>()
            .await
            .into_iter()
            .sum::<usize>();
        let name = store.name;
        assert_eq!(failed_ends, 0, "{name}: no unit failed by contention");
        assert_eq!(
            ended.load(Ordering::SeqCst),
            1,
            "{name}: the job ended once"
        );
        let header = jobs.header(job.id).await.expect("read").expect("job");
        assert_eq!(header.overall_status, JobStatus::Failed, "{name}");
        assert_eq!(header.progress.units_done, 170, "{name}");
        assert_eq!(header.progress.units_failed, 17, "{name}");
        let synced: u64 = keys.iter().map(|(_, n)| n).sum();
        assert_eq!(header.progress.keys_synced, synced, "{name}");
    }
}

#[tokio::test]
async fn an_end_written_on_the_unit_but_not_counted_on_the_job_is_counted_by_the_next_call_once() {
    let stack = shared().stack().await;
    let jobs = stack.entry.app.jobs.clone();
    let job = job_of(units(1));
    jobs.create(&job, lease_until()).await.expect("create");
    let keys: Vec<&String> = job.units.keys().collect();
    for key in &keys {
        record_keys(jobs.as_ref(), job.id, key, 3).await;
    }
    // The first unit's end is written; the update that counts it on the job fails (a crash between).
    let crashing = failing_store(
        &stack,
        FailCall {
            operation: "UpdateItem",
            nth: 2,
            after_sending: false,
            calls: AtomicUsize::new(0),
        },
    );
    let now = chrono::Utc::now();
    let first = crashing
        .finish_unit(job.id, keys[0], &UnitStatus::Succeeded, now)
        .await;
    assert!(first.is_err(), "{first:?}");
    for key in &keys[1..] {
        jobs.finish_unit(job.id, key, &UnitStatus::Succeeded, now)
            .await
            .expect("finish");
    }
    assert!(
        jobs.complete_if_done(job.id, now)
            .await
            .expect("read")
            .is_none(),
        "one end is not counted yet"
    );
    // The redelivery finds the unit ended: it counts it, once however often it comes.
    for _ in 0..2 {
        let again = jobs
            .finish_unit(job.id, keys[0], &UnitStatus::Succeeded, now)
            .await
            .expect("finish again");
        assert!(!again, "the unit had ended");
    }
    let done = jobs
        .complete_if_done(job.id, now)
        .await
        .expect("end")
        .expect("the job ends");
    assert_eq!(done.progress.units_done, 17);
    assert_eq!(done.progress.keys_synced, 17 * 3);
}

#[tokio::test]
async fn an_ended_job_and_its_units_expire_after_the_retention() {
    let stack = shared().stack().await;
    let jobs = stack.entry.app.jobs.clone();
    let job = job_of(units(1));
    jobs.create(&job, lease_until()).await.expect("create");
    let now = chrono::Utc::now();
    for key in job.units.keys() {
        jobs.finish_unit(job.id, key, &UnitStatus::Succeeded, now)
            .await
            .expect("finish");
    }
    jobs.complete_if_done(job.id, now)
        .await
        .expect("end")
        .expect("ended");
    let items = stack
        .dynamodb()
        .query()
        .table_name(&stack.config.jobs_table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("JOB#{}", job.id)))
        .send()
        .await
        .expect("query")
        .items
        .unwrap_or_default();
    assert_eq!(items.len(), 18, "the header and 17 units");
    let retention = RETENTION.as_secs() as i64;
    for item in items {
        let expires = item
            .get("expires_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .expect("every item of an ended job expires");
        let header = item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            == Some("META");
        // The header when the retention ends; its units a week later, so a job never loses its units first.
        let expected = now.timestamp() + retention + if header { 0 } else { 7 * 86_400 };
        assert!((expires - expected).abs() <= 5, "{item:?}");
    }
}

#[tokio::test]
async fn a_page_of_the_job_list_reads_that_page_of_the_history_and_counts_the_rest() {
    let (entry, parts) = common::memory_entry(100);
    for _ in 0..30 {
        let job = job_of(units(1));
        parts
            .jobs
            .create(&job, lease_until())
            .await
            .expect("create");
    }
    let (status, page) = common::request(
        &entry,
        "GET",
        "/v1/cckm/aws/synchronization-jobs?limit=5&skip=2",
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 30);
    assert_eq!(page["resources"].as_array().map(Vec::len), Some(5));
    assert_eq!(
        parts.jobs.headers_read(),
        7,
        "skip + limit headers, newest first"
    );
    // A filter the index does not serve reads every header (the history is bounded by its retention).
    let before = parts.jobs.headers_read();
    let (_, running) = common::request(
        &entry,
        "GET",
        "/v1/cckm/aws/synchronization-jobs?overall_status=in_progress&limit=5",
        None,
    )
    .await;
    assert_eq!(running["total"], 30);
    assert_eq!(parts.jobs.headers_read() - before, 30);
}
