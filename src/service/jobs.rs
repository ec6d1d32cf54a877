//! Starting and cancelling synchronization jobs. Starting validates, plans the units, stores the job with
//! its leases and hands one work item per unit to the dispatcher; nothing is written for a refused request.

use crate::app::App;
use crate::domain::AppError;
use crate::domain::job::{Job, UnitStatus, WorkItem};
use crate::domain::sync_request::{SyncRequest, plan};
use crate::domain::time::now;
use chrono::Duration;
use uuid::Uuid;

pub async fn start(app: &App, request: SyncRequest) -> Result<Job, AppError> {
    let resources = match &request {
        SyncRequest::All => app.kms.list().await?,
        SyncRequest::Named { kms, .. } => super::kms::resolve(app, kms).await?,
    };
    let requested_regions = match &request {
        SyncRequest::All => &[][..],
        SyncRequest::Named { regions, .. } => regions.as_slice(),
    };
    let units = plan(&resources, requested_regions)?;
    let (kms, regions) = request.echo();
    let started = now();
    let job = Job::start(Uuid::new_v4(), started, units, kms, regions);
    app.jobs.create(&job, lease_until(app, started)).await?;
    let items: Vec<WorkItem> = job
        .units
        .values()
        .map(|entry| WorkItem::for_unit(job.id, &entry.unit))
        .collect();
    if let Err(err) = app.dispatcher.dispatch(&items).await {
        fail_undispatched(app, &job, &err).await;
        return Err(err);
    }
    tracing::info!(job_id = %job.id, units = items.len(), "synchronization job started");
    Ok(job)
}

pub async fn cancel(app: &App, id: Uuid) -> Result<Job, AppError> {
    let job = app.jobs.request_abort(id, now()).await?;
    tracing::info!(job_id = %id, "synchronization job cancel requested");
    Ok(job)
}

pub fn lease_until(
    app: &App,
    from: crate::domain::time::Timestamp,
) -> crate::domain::time::Timestamp {
    from + Duration::from_std(app.sync.lease).unwrap_or(Duration::minutes(30))
}

/// A job whose work could not be queued must not stay `in_progress` holding its leases: fail every unit.
async fn fail_undispatched(app: &App, job: &Job, cause: &AppError) {
    tracing::error!(job_id = %job.id, error = %cause, "could not queue the job's work; failing the job");
    let status = UnitStatus::Failed("the work could not be queued".into());
    for key in job.units.keys() {
        if let Err(err) = app.jobs.finish_unit(job.id, key, &status, 0, now()).await {
            tracing::error!(job_id = %job.id, unit = %key, error = %err, "could not fail the unit");
        }
    }
    if let Err(err) = app.jobs.complete_if_done(job.id, now()).await {
        tracing::error!(job_id = %job.id, error = %err, "could not end the job");
    }
}
