//! Runs the production sync engine end to end against whatever KMS endpoint the AWS settings name
//! (`AWS_ENDPOINT_URL_KMS`: the simulator), and prints one JSON line of what it measured. The stores are
//! the in-memory twins (moto's DynamoDB is no performance model); the key source is the real KMS adapter
//! with its rate limiter; the worker runs every unit of the job at once, as one Lambda invocation runs
//! the messages of one SQS batch.
//!
//! usage: engine-bench <account> <regions, comma-separated> <rate share> <current|legacy> [memory|resync|sink]
//!        engine-bench shared-start <account> <region> <items file>; engine-bench shared-deliver <items file>
//!        engine-bench scale-create|scale-finish|scale-check|scale-keys ... (`scale.rs`: jobs of 850 units,
//!        key lists over a full table)
//! (`shared.rs`: worker processes that share DynamoDB on the emulator)
//! `memory` syncs once; `resync` syncs twice on the same store (the second time nothing changed, and nothing
//! should be written); `sink` keeps no key (see `cckm_aws_sync::adapters::counting`): the run that measures the engine's own peak
//! memory.

mod scale;
mod shared;

use cckm_aws_sync::adapters::counting::CountingKeyStore;
use cckm_aws_sync::adapters::kms::AwsKeySourceFactory;
use cckm_aws_sync::adapters::rate_limit::{Quotas, RateLimits};
use cckm_aws_sync::app::{App, MemoryParts};
use cckm_aws_sync::domain::job::WorkItem;
use cckm_aws_sync::domain::kms::KmsResource;
use cckm_aws_sync::domain::sync_request::SyncRequest;
use cckm_aws_sync::worker::unit;
use futures::future::join_all;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

fn usage() -> ! {
    eprintln!(
        "usage: engine-bench <account> <region,region,...> <rate share> <current|legacy> [memory|resync|sink]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("shared-start") => return shared::start(&args[1..]).await,
        Some("shared-deliver") => return shared::deliver(&args[1..]).await,
        Some("scale-create") => return scale::create(&args[1..]).await,
        Some("scale-finish") => return scale::finish(&args[1..]).await,
        Some("scale-check") => return scale::check(&args[1..]).await,
        Some("scale-keys") => return scale::keys(&args[1..]).await,
        _ => {}
    }
    let (account, regions, share, quotas, store) = match args.as_slice() {
        [a, r, s, q] => (a, r, s, q, "memory"),
        [a, r, s, q, store] => (a, r, s, q, store.as_str()),
        _ => usage(),
    };
    let regions: Vec<String> = regions.split(',').map(String::from).collect();
    let share: f64 = share.parse().unwrap_or_else(|_| usage());
    let quotas = match quotas.as_str() {
        "legacy" => Quotas::Legacy,
        "current" => Quotas::Current,
        _ => usage(),
    };
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let (mut app, parts) = App::in_memory(account, 1000);
    let counting = Arc::new(CountingKeyStore::new(match store {
        "memory" | "resync" => Some(app.keys.clone()),
        "sink" => None,
        _ => usage(),
    }));
    app.keys = counting.clone();
    app.source = Arc::new(AwsKeySourceFactory::new(
        sdk,
        share,
        quotas,
        Arc::new(cckm_aws_sync::adapters::memory::MemorySecretStore::default()),
    ));
    app.sync.rate_share = share;
    app.sync.quotas = quotas;
    let now = chrono::Utc::now();
    let kms = KmsResource {
        id: uuid_of(account),
        name: "bench".into(),
        account_id: account.clone(),
        regions: regions.clone(),
        assume_role_arn: None,
        assume_role_external_id: None,
        created_at: now,
        updated_at: now,
        auto_added: false,
        org_status: None,
        connection: None,
        acls: Vec::new(),
        archived: false,
    };
    if let Err(err) = app.kms.insert(&kms).await {
        eprintln!("engine-bench: {err}");
        std::process::exit(1);
    }
    let cpu_before = cpu_seconds();
    let first = sync(&app, &parts).await;
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let written = counting.take_written();
    // With keys kept, the same sync again: nothing changed in AWS, so nothing should be written.
    let resync = if store == "resync" {
        Some(sync(&app, &parts).await)
    } else {
        None
    };
    let keys = app.keys.list(None).await.unwrap_or_default();
    let failed_keys = keys.iter().filter(|k| !k.sync_errors.is_empty()).count();
    let allowed = RateLimits::new(share, quotas).keys_per_second();
    let per_unit = first.keys as f64 / regions.len() as f64 / first.seconds;
    println!(
        "{}",
        json!({
            "status": first.status,
            "store": store,
            "keys": first.keys,
            "units": regions.len(),
            "deliveries": first.deliveries,
            "seconds": first.seconds,
            "keys_per_second_per_unit": per_unit,
            "allowed_keys_per_second_per_unit": allowed,
            "achieved_of_allowed": per_unit / allowed,
            "keys_with_sync_errors": failed_keys,
            "key_writes_per_key": written as f64 / first.keys.max(1) as f64,
            "resync_key_writes": resync.as_ref().map(|_| counting.take_written()),
            "resync_status": resync.as_ref().map(|r| r.status),
            "resync_seconds": resync.as_ref().map(|r| r.seconds),
            "peak_rss_mb": peak_rss_mb(),
            // The engine's own CPU per key (both cores of this machine; the simulator is another process).
            "cpu_ms_per_key": cpu.map(|seconds| seconds * 1000.0 / first.keys.max(1) as f64),
        })
    );
}

/// What one job did.
struct Synced {
    status: Option<&'static str>,
    keys: u64,
    deliveries: usize,
    seconds: f64,
}

/// Starts a job over the bench resource and delivers its work until none is left.
async fn sync(app: &App, parts: &MemoryParts) -> Synced {
    let request = SyncRequest::Named {
        kms: vec!["bench".into()],
        regions: vec![],
    };
    let started = Instant::now();
    let job = match cckm_aws_sync::service::jobs::start(app, request, |_| Ok(())).await {
        Ok(job) => job,
        Err(err) => {
            eprintln!("engine-bench: {err}");
            std::process::exit(1);
        }
    };
    let mut deliveries = 0;
    loop {
        let items: Vec<WorkItem> = parts.dispatcher.drain();
        if items.is_empty() {
            break;
        }
        deliveries += items.len();
        let deadline = chrono::Utc::now() + chrono::Duration::minutes(15);
        // One thread per unit, each driving its unit on the shared runtime: the units of a batch use
        // both cores here (the Lambda worker runs a batch in one task: at 512 MB it has under one vCPU).
        let runs = items.into_iter().map(|item| {
            let app = app.clone();
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                runtime.block_on(async { unit::run(&app, &item, 1, deadline).await })
            })
        });
        join_all(runs).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let job = app.jobs.get(job.id).await.ok().flatten();
    Synced {
        status: job.as_ref().map(|j| j.overall_status.as_str()),
        keys: job.as_ref().map_or(0, |j| j.progress.keys_synced),
        deliveries,
        seconds,
    }
}

/// CPU time this process used so far (user and system), in seconds: `/proc/self/stat` counts in ticks of
/// 1/100 s.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The process's peak resident memory (`VmHWM`), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A stable resource id for the account (the in-memory registry keys resources by id).
fn uuid_of(account: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, account.as_bytes())
}
