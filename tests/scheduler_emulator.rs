//! The scheduler API on EventBridge Scheduler in moto (issue 9): job configurations created, read, patched,
//! run and deleted as Terraform's `ciphertrust_scheduler` sends them; each one a schedule with the cron
//! converted, the state, and the CCKM scheduler input, which started through the function runs the sync.

mod common;

use aws_sdk_scheduler::types::ScheduleState;
use cckm_aws_sync::domain::time::now;
use common::emulator::{Stack, shared};
use common::*;
use serde_json::{Value, json};

const CONFIGS: &str = "/api/v1/scheduler/job-configs";

/// Terraform's body: every operation's params (null but the sync's), Go's zero dates and empty strings.
fn terraform(name: &str, run_at: &str, kms: &str) -> Value {
    json!({"name": name, "description": "", "operation": "cckm_synchronization", "run_at": run_at,
           "run_on": "", "disabled": false, "start_date": "0001-01-01T00:00:00Z",
           "end_date": "0001-01-01T00:00:00Z", "database_backup_params": null,
           "cckm_key_rotation_params": null, "cckm_xks_credential_rotation_params": null,
           "cckm_synchronization_params": {"cloud_name": "aws", "kms": [kms], "oci_vaults": null,
                                           "synchronize_all": false}})
}

fn scheduler(stack: &Stack) -> aws_sdk_scheduler::Client {
    aws_sdk_scheduler::Client::new(&stack.sdk)
}

fn schedule_name(stack: &Stack, config: &Value) -> String {
    let prefix = stack.config.scheduler.as_ref().unwrap().prefix.clone();
    format!("{prefix}-job-{}", config["id"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_configuration_is_a_schedule_that_runs_the_sync() {
    let stack = shared().stack().await;
    let account = random_account();
    register_kms(&stack.entry, "nightly-kms", &account, &["us-east-1"]).await;
    shared()
        .kms_in(&account, "us-east-1")
        .await
        .create_key()
        .send()
        .await
        .unwrap();

    let (status, created) = request(
        &stack.entry,
        "POST",
        CONFIGS,
        Some(terraform("nightly", "0 2 * * mon-FRI", "nightly-kms")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_fields(
        &created,
        &[
            "disabled",
            "description",
            "run_on",
            "start_date",
            "end_date",
            "name",
            "operation",
            "run_at",
        ],
    );
    assert_eq!(created["job_config_params"]["kms"], json!(["nightly-kms"]));
    assert_eq!(created["job_config_params"]["synchronize_all"], false);
    assert_eq!(created["job_config_params"]["cloud_name"], "aws");
    assert_eq!(
        created["cckm_synchronization_params"],
        created["job_config_params"]
    );
    assert_eq!(created["start_date"], Value::Null, "Go's zero date is none");

    let schedule = scheduler(&stack)
        .get_schedule()
        .name(schedule_name(&stack, &created))
        .send()
        .await
        .expect("the schedule exists");
    assert_eq!(
        schedule.schedule_expression(),
        Some("cron(0 2 ? * MON-FRI *)")
    );
    assert_eq!(schedule.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(schedule.state(), Some(&ScheduleState::Enabled));
    let target = schedule.target().expect("a target");
    assert_eq!(
        target.arn(),
        stack.config.scheduler.as_ref().unwrap().target_arn
    );
    assert_eq!(
        target.role_arn(),
        stack.config.scheduler.as_ref().unwrap().role_arn
    );
    // What EventBridge Scheduler will hand the function starts the sync.
    let input: Value = serde_json::from_str(target.input().unwrap()).unwrap();
    let answer = stack
        .entry
        .handle(input, "schedule", now() + chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(answer["started"], true, "{answer}");
    stack.drain_queue().await;
    let job = get_job(&stack.entry, answer["job_id"].as_str().unwrap()).await;
    assert_eq!(
        (
            job["overall_status"].clone(),
            job["progress"]["keys_synced"].clone()
        ),
        (json!("completed"), json!(1))
    );

    // Terraform's update: name, operation and the cloud empty; a new time; disabled.
    let mut update = terraform("", "30 3 * * *", "nightly-kms");
    update["operation"] = json!("");
    update["cckm_synchronization_params"]["cloud_name"] = json!("");
    update["disabled"] = json!(true);
    update["end_date"] = json!("2031-01-01T00:00:00Z");
    let (status, patched) = request(
        &stack.entry,
        "PATCH",
        &format!("{CONFIGS}/nightly"),
        Some(update),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["name"].clone(), patched["run_at"].clone()),
        (json!("nightly"), json!("30 3 * * *"))
    );
    let schedule = scheduler(&stack)
        .get_schedule()
        .name(schedule_name(&stack, &created))
        .send()
        .await
        .unwrap();
    assert_eq!(schedule.schedule_expression(), Some("cron(30 3 * * ? *)"));
    assert_eq!(schedule.state(), Some(&ScheduleState::Disabled));
    assert!(schedule.end_date().is_some());

    let (status, run) = request(
        &stack.entry,
        "POST",
        &format!("{CONFIGS}/nightly/run-now"),
        None,
    )
    .await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["kms"], json!(["nightly-kms"]));
    stack.drain_queue().await;

    let (status, page) = request(
        &stack.entry,
        "GET",
        &format!("{CONFIGS}?name=nightly"),
        None,
    )
    .await;
    assert_eq!((status, page["total"].clone()), (200, json!(1)), "{page}");
    let (status, _) = request(
        &stack.entry,
        "DELETE",
        &format!("{CONFIGS}/{}", created["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let gone = scheduler(&stack)
        .get_schedule()
        .name(schedule_name(&stack, &created))
        .send()
        .await;
    assert!(gone.is_err(), "the schedule goes with it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_gets_400_naming_the_field_and_writes_nothing() {
    let stack = shared().stack().await;
    register_kms(&stack.entry, "bad-cron-kms", OWN_ACCOUNT, &["us-east-1"]).await;
    for (body, field) in [
        (terraform("bad", "0 2 * *", "bad-cron-kms"), "run_at"),
        (terraform("bad", "61 2 * * *", "bad-cron-kms"), "run_at"),
        (terraform("bad", "0 2 1 * MON", "bad-cron-kms"), "run_at"),
        (
            {
                let mut other = terraform("bad", "0 2 * * *", "bad-cron-kms");
                other["operation"] = json!("database_backup");
                other
            },
            "operation",
        ),
        (
            {
                let mut cloud = terraform("bad", "0 2 * * *", "bad-cron-kms");
                cloud["cckm_synchronization_params"]["cloud_name"] = json!("oci");
                cloud
            },
            "cloud_name",
        ),
    ] {
        let refused = request(&stack.entry, "POST", CONFIGS, Some(body)).await;
        assert_cckm_error(&refused, 400, 9);
        assert!(
            refused.1["message"].as_str().unwrap().contains(field),
            "{field}: {}",
            refused.1
        );
    }
    let (_, page) = request(&stack.entry, "GET", CONFIGS, None).await;
    assert_eq!(page["total"], 0);
    let schedules = scheduler(&stack).list_schedules().send().await.unwrap();
    let prefix = stack.config.scheduler.as_ref().unwrap().prefix.clone();
    assert!(
        schedules
            .schedules()
            .iter()
            .all(|s| !s.name().unwrap_or_default().starts_with(&prefix))
    );
}
