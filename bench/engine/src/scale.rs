//! Jobs at scale on the production wiring (DynamoDB and SQS on the emulator through `AWS_ENDPOINT_URL`):
//! `scale-create` registers `accounts` KMS resources of 17 regions each and times the start of a job over
//! all of them, as the API starts it (leases, units, header, SQS fan-out); `scale-finish` ends a share of
//! that job's units, many at once, as the workers of several Lambda instances do at a unit's end (unit end
//! counted on the job, lease given back, job ended by the last); `scale-check` prints the job's counters;
//! `scale-keys` fills the keys table and prices the first page of every documented key filter.

use crate::shared::{entry, fail, register, write_items};
use cckm_aws_sync::adapters::counting::CountingKeyStore;
use cckm_aws_sync::api::auth::Authenticator;
use cckm_aws_sync::config::AuthConfig;
use cckm_aws_sync::domain::job::{UnitStatus, WorkItem};
use cckm_aws_sync::domain::key::{AwsParam, KeyDetails, KeyRecord, Sighting};
use cckm_aws_sync::domain::kms::KmsResource;
use cckm_aws_sync::domain::sync_request::SyncRequest;
use cckm_aws_sync::entry::Entry;
use futures::{StreamExt, stream};
use serde_json::json;
use std::sync::Arc;
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
    let regions: Vec<String> = REGIONS.iter().map(|r| r.to_string()).collect();
    for n in 0..accounts {
        let account = format!("{:012}", 200_000_000_000 + n);
        register(&app, &format!("bench-{n}"), &account, &regions).await;
    }
    let started = Instant::now();
    let job = cckm_aws_sync::service::jobs::start(&app, SyncRequest::All, |_| Ok(()))
        .await
        .unwrap_or_else(|err| fail(&err.to_string()));
    let seconds = started.elapsed().as_secs_f64();
    let units = write_items(&job, items_file);
    println!(
        "{}",
        json!({"job": job.id, "units": units, "seconds": seconds})
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

/// Accounts × regions the keys of `scale-keys` spread over.
const KEY_ACCOUNTS: u64 = 5;
const KEY_REGIONS: [&str; 4] = ["us-east-1", "eu-west-1", "ap-south-1", "us-west-2"];
const SECRET: &str = "scale-bench-secret";

/// One key of the fill: every 10th disabled, every 50th pending deletion, every 20th gone, every 4th with
/// an alias.
fn scale_key(
    n: usize,
    kms: &KmsResource,
    region: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> KeyRecord {
    let key_id = format!("{n:08}-0000-4000-8000-{:012}", n);
    let state = match n {
        n if n % 50 == 0 => "PendingDeletion",
        n if n % 10 == 0 => "Disabled",
        _ => "Enabled",
    };
    let details = KeyDetails {
        aws_param: AwsParam {
            aws_account_id: kms.account_id.clone(),
            arn: format!("arn:aws:kms:{region}:{}:key/{key_id}", kms.account_id),
            key_id,
            alias: if n.is_multiple_of(4) {
                vec![format!("alias/k{n}")]
            } else {
                vec![]
            },
            enabled: Some(state == "Enabled"),
            key_state: Some(state.into()),
            key_usage: Some("ENCRYPT_DECRYPT".into()),
            key_manager: Some("CUSTOMER".into()),
            origin: Some("AWS_KMS".into()),
            customer_master_key_spec: Some("SYMMETRIC_DEFAULT".into()),
            ..AwsParam::default()
        },
        read_errors: Default::default(),
    };
    let mut record = KeyRecord::from_details(
        details,
        Sighting {
            kms_id: kms.id,
            kms_name: &kms.name,
            region,
            job_id: None,
            // Distinct creation times, so that every list has one order.
            now: now - chrono::Duration::milliseconds(n as i64),
            first_stored: None,
        },
    );
    record.gone = n.is_multiple_of(20);
    record
}

fn list_event(query: &str, token: &str) -> serde_json::Value {
    let path = "/v1/cckm/aws/keys";
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": {"authorization": format!("Bearer {token}"), "host": "bench"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench", "domainPrefix": "bench",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": "bench", "routeKey": "$default", "stage": "$default", "time": "29/Nov/2026:00:00:00 +0000",
            "timeEpoch": 1_795_000_000_000_i64
        },
        "isBase64Encoded": false
    })
}

/// Fills the keys table with `keys` keys over 5 accounts × 4 regions (registered KMS resources), counts
/// every unit as a sync's end does, then asks for the first page (limit 10) of each documented key filter
/// through the API and prints, per filter, the items read (index entries and records), the time and the
/// total.
pub async fn keys(args: &[String]) {
    let [keys] = args else {
        fail("usage: engine-bench scale-keys <keys>")
    };
    let keys: usize = keys.parse().unwrap_or_else(|_| fail("keys: a number"));
    let mut app = entry().await.app;
    let counting = Arc::new(CountingKeyStore::new(Some(app.keys.clone())));
    app.keys = counting.clone();
    let now = chrono::Utc::now();
    let regions: Vec<String> = KEY_REGIONS.iter().map(|r| r.to_string()).collect();
    let mut resources = Vec::new();
    for n in 0..KEY_ACCOUNTS {
        let account = format!("{:012}", 300_000_000_000 + n);
        resources.push(register(&app, &format!("keys-{n}"), &account, &regions).await);
    }
    let units: Vec<(&KmsResource, &str)> = resources
        .iter()
        .flat_map(|kms| KEY_REGIONS.iter().map(move |region| (kms, *region)))
        .collect();
    let filled = Instant::now();
    let records: Vec<KeyRecord> = (0..keys)
        .map(|n| {
            let (kms, region) = units[n % units.len()];
            scale_key(n, kms, region, now)
        })
        .collect();
    {
        let store = &app.keys;
        let mut writes = stream::iter(records.chunks(500))
            .map(|chunk| store.put_all(chunk))
            .buffer_unordered(4);
        while let Some(written) = writes.next().await {
            written.unwrap_or_else(|err| fail(&err.to_string()));
        }
    }
    for (kms, region) in &units {
        app.keys
            .recount(&format!("{}/{region}", kms.account_id))
            .await
            .unwrap_or_else(|err| fail(&err.to_string()));
    }
    let fill_seconds = filled.elapsed().as_secs_f64();
    let sample = &records[keys / 2];
    let queries = [
        ("default (newest first)", String::new()),
        ("kms", format!("kms={}", resources[1].name)),
        ("kms_id", format!("kms_id={}", resources[2].id)),
        ("region", "region=eu-west-1".to_string()),
        (
            "kms + region",
            format!("kms={}&region=ap-south-1", resources[3].name),
        ),
        ("alias", format!("alias=alias/k{}", (keys / 2) / 4 * 4)),
        ("keystate", "keystate=PendingDeletion".to_string()),
        ("gone", "gone=true".to_string()),
        (
            // Disabled keys that are not gone all live in the third account's ap-south-1 (`scale_key`).
            "keystate + gone + kms",
            format!("keystate=Disabled&gone=false&kms={}", resources[2].name),
        ),
        ("id", format!("id={}", sample.id)),
        ("arn", format!("arn={}", sample.aws_param.arn)),
        (
            "keyid + region",
            format!("keyid={}&region={}", sample.aws_param.key_id, sample.region),
        ),
    ];
    let auth = AuthConfig {
        hs256_secret: Some(SECRET.into()),
        ..AuthConfig::default()
    };
    let api = Entry::new(
        app,
        Authenticator::new(&auth).unwrap_or_else(|err| fail(&err.to_string())),
    );
    let claims = json!({"sub": "bench", "exp": chrono::Utc::now().timestamp() + 3600});
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap_or_else(|err| fail(&err.to_string()));
    let mut lists = Vec::new();
    for (filter, query) in queries {
        let query = if query.is_empty() {
            "limit=10".to_string()
        } else {
            format!("{query}&limit=10")
        };
        counting.take_read();
        let started = Instant::now();
        let answer = api
            .handle(
                list_event(&query, &token),
                "bench",
                chrono::Utc::now() + chrono::Duration::minutes(1),
            )
            .await
            .unwrap_or_else(|_| fail("unreadable event"));
        let seconds = started.elapsed().as_secs_f64();
        let body: serde_json::Value =
            serde_json::from_str(answer["body"].as_str().unwrap_or("{}")).unwrap_or_default();
        lists.push(json!({
            "filter": filter,
            "status": answer["statusCode"],
            "items_read": counting.take_read(),
            "ms": seconds * 1000.0,
            "total": body["total"],
            "shown": body["resources"].as_array().map(Vec::len),
        }));
    }
    println!(
        "{}",
        json!({"keys": keys, "fill_seconds": fill_seconds, "lists": lists})
    );
}
