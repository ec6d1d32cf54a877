//! Worker processes that share one store, as Lambda instances do: the production wiring (DynamoDB, SQS and
//! STS on the emulator through `AWS_ENDPOINT_URL`, KMS on the simulator through `AWS_ENDPOINT_URL_KMS`).
//! `shared-start` registers the account and starts a job, writing its work items to a file;
//! `shared-deliver` delivers those items, so that two processes started together play two instances that
//! got the same SQS message.

use cckm_aws_sync::config::Config;
use cckm_aws_sync::domain::job::WorkItem;
use cckm_aws_sync::domain::kms::KmsResource;
use cckm_aws_sync::domain::sync_request::SyncRequest;
use cckm_aws_sync::entry::Entry;
use cckm_aws_sync::worker::unit::{self, Outcome};
use serde_json::json;
use std::time::Instant;

pub async fn entry() -> Entry {
    let config = Config::from_env().unwrap_or_else(|err| fail(&err.to_string()));
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    cckm_aws_sync::wiring::build_entry(&config, &sdk).unwrap_or_else(|err| fail(&err.to_string()))
}

/// Writes a job's work items (one per unit) to a file, for the worker processes to deliver; answers how
/// many.
pub fn write_items(job: &cckm_aws_sync::domain::job::Job, items_file: &str) -> usize {
    let items: Vec<WorkItem> = job
        .units
        .values()
        .map(|entry| WorkItem::for_unit(job.id, &entry.unit))
        .collect();
    let text = serde_json::to_string(&items).unwrap_or_default();
    std::fs::write(items_file, text).unwrap_or_else(|err| fail(&err.to_string()));
    items.len()
}

/// Registers a KMS resource (its own credentials, no role) and answers it.
pub async fn register(
    app: &cckm_aws_sync::app::App,
    name: &str,
    account: &str,
    regions: &[String],
) -> KmsResource {
    let now = chrono::Utc::now();
    let kms = KmsResource {
        id: uuid::Uuid::new_v4(),
        name: name.into(),
        account_id: account.into(),
        regions: regions.to_vec(),
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
    app.kms
        .insert(&kms)
        .await
        .unwrap_or_else(|err| fail(&err.to_string()));
    kms
}

pub fn fail(message: &str) -> ! {
    eprintln!("engine-bench: {message}");
    std::process::exit(1)
}

pub async fn start(args: &[String]) {
    let [account, region, items_file] = args else {
        fail("usage: engine-bench shared-start <account> <region> <items file>")
    };
    let app = entry().await.app;
    register(&app, "bench", account, std::slice::from_ref(region)).await;
    let request = SyncRequest::Named {
        kms: vec!["bench".into()],
        regions: vec![],
    };
    let job = cckm_aws_sync::service::jobs::start(&app, request, |_| Ok(()))
        .await
        .unwrap_or_else(|err| fail(&err.to_string()));
    write_items(&job, items_file);
    println!("{}", json!({"job": job.id}));
}

pub async fn deliver(args: &[String]) {
    let [items_file] = args else {
        fail("usage: engine-bench shared-deliver <items file>")
    };
    let text = std::fs::read_to_string(items_file).unwrap_or_else(|err| fail(&err.to_string()));
    let items: Vec<WorkItem> =
        serde_json::from_str(&text).unwrap_or_else(|err| fail(&err.to_string()));
    let app = entry().await.app;
    let started = Instant::now();
    let deadline = chrono::Utc::now() + chrono::Duration::minutes(15);
    let mut outcomes = Vec::new();
    for item in &items {
        outcomes.push(match unit::run(&app, item, 1, deadline).await {
            Outcome::Done => "done".to_string(),
            Outcome::Retry(reason) => format!("retry: {reason}"),
        });
    }
    let job = match items.first() {
        Some(item) => app.jobs.header(item.job_id).await.ok().flatten(),
        None => None,
    };
    println!(
        "{}",
        json!({
            "outcomes": outcomes,
            "seconds": started.elapsed().as_secs_f64(),
            "job_status": job.as_ref().map(|j| j.overall_status.as_str()),
            "keys_synced": job.as_ref().map(|j| j.progress.keys_synced),
        })
    );
}
