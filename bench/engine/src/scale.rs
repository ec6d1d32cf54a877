//! Jobs at scale on the production wiring (DynamoDB and SQS on the emulator through `AWS_ENDPOINT_URL`):
//! `scale-create` registers `accounts` KMS resources of 17 regions each and times the start of a job over
//! all of them, as the API starts it (leases, units, header, SQS fan-out); `scale-finish` ends a share of
//! that job's units, many at once, as the workers of several Lambda instances do at a unit's end (unit end
//! counted on the job, lease given back, job ended by the last); `scale-check` prints the job's counters.

use crate::shared::{entry, fail};
use cckm_aws_sync::domain::job::{UnitStatus, WorkItem};
use cckm_aws_sync::domain::kms::KmsResource;
use cckm_aws_sync::domain::sync_request::SyncRequest;
use futures::{StreamExt, stream};
use serde_json::json;
use std::time::Instant;
use uuid::Uuid;

pub const REGIONS: [&str; 17] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "sa-east-1",
];

/// Unit ends in flight at once in one process, as many as one worker instance's SQS batch and more.
const ENDS_IN_FLIGHT: usize = 32;

pub async fn create(args: &[String]) {
    let [accounts, items_file] = args else {
        fail("usage: engine-bench scale-create <accounts> <items file>")
    };
    let accounts: u64 = accounts
        .parse()
        .unwrap_or_else(|_| fail("accounts: a number"));
    let app = entry().await.app;
    let now = chrono::Utc::now();
    for n in 0..accounts {
        let kms = KmsResource {
            id: Uuid::new_v4(),
            name: format!("bench-{n}"),
            account_id: format!("{:012}", 200_000_000_000 + n),
            regions: REGIONS.iter().map(|r| r.to_string()).collect(),
            assume_role_arn: None,
            assume_role_external_id: None,
            created_at: now,
            updated_at: now,
        };
        app.kms
            .insert(&kms)
            .await
            .unwrap_or_else(|err| fail(&err.to_string()));
    }
    let started = Instant::now();
    let job = cckm_aws_sync::service::jobs::start(&app, SyncRequest::All)
        .await
        .unwrap_or_else(|err| fail(&err.to_string()));
    let seconds = started.elapsed().as_secs_f64();
    let items: Vec<WorkItem> = job
        .units
        .values()
        .map(|entry| WorkItem::for_unit(job.id, &entry.unit))
        .collect();
    let text = serde_json::to_string(&items).unwrap_or_default();
    std::fs::write(items_file, text).unwrap_or_else(|err| fail(&err.to_string()));
    println!(
        "{}",
        json!({"job": job.id, "units": items.len(), "seconds": seconds})
    );
}

pub async fn finish(args: &[String]) {
    let [items_file, worker, workers] = args else {
        fail("usage: engine-bench scale-finish <items file> <worker> <workers>")
    };
    let (worker, workers): (usize, usize) = (
        worker.parse().unwrap_or_else(|_| fail("worker: a number")),
        workers
            .parse()
            .unwrap_or_else(|_| fail("workers: a number")),
    );
    let text = std::fs::read_to_string(items_file).unwrap_or_else(|err| fail(&err.to_string()));
    let items: Vec<WorkItem> =
        serde_json::from_str(&text).unwrap_or_else(|err| fail(&err.to_string()));
    let app = entry().await.app;
    let mine: Vec<&WorkItem> = items
        .iter()
        .enumerate()
        .filter(|(i, _)| i % workers == worker)
        .map(|(_, item)| item)
        .collect();
    let started = Instant::now();
    let ends = stream::iter(mine)
        .map(|item| {
            let app = &app;
            async move {
                let key = item.unit_key();
                let now = chrono::Utc::now();
                app.jobs
                    .finish_unit(item.job_id, &key, &UnitStatus::Succeeded, now)
                    .await?;
                app.jobs.release_lease(&key, item.job_id).await?;
                app.jobs.complete_if_done(item.job_id, now).await
            }
        })
        .buffer_unordered(ENDS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let errors: Vec<String> = ends
        .iter()
        .filter_map(|end| end.as_ref().err().map(ToString::to_string))
        .collect();
    let ended_job = ends.iter().filter(|end| matches!(end, Ok(Some(_)))).count();
    println!(
        "{}",
        json!({
            "units": ends.len(),
            "failed": errors.len(),
            "first_error": errors.first(),
            "ended_job": ended_job,
            "seconds": started.elapsed().as_secs_f64(),
        })
    );
}

pub async fn check(args: &[String]) {
    let [job_id] = args else {
        fail("usage: engine-bench scale-check <job id>")
    };
    let id = Uuid::parse_str(job_id).unwrap_or_else(|_| fail("job id: a UUID"));
    let app = entry().await.app;
    let job = app
        .jobs
        .header(id)
        .await
        .unwrap_or_else(|err| fail(&err.to_string()))
        .unwrap_or_else(|| fail("no such job"));
    let leases_left = {
        let full = app
            .jobs
            .get(id)
            .await
            .unwrap_or_else(|err| fail(&err.to_string()))
            .unwrap_or_else(|| fail("no such job"));
        let mut held = 0;
        for key in full.units.keys() {
            if app
                .jobs
                .lease(key)
                .await
                .unwrap_or_else(|err| fail(&err.to_string()))
                .is_some_and(|(holder, _)| holder == id)
            {
                held += 1;
            }
        }
        held
    };
    println!(
        "{}",
        json!({
            "status": job.overall_status.as_str(),
            "units_total": job.progress.units_total,
            "units_done": job.progress.units_done,
            "units_failed": job.progress.units_failed,
            "leases_left": leases_left,
        })
    );
}
