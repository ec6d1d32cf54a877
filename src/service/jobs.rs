//! Starting and cancelling synchronization jobs. Starting validates, plans the units, stores the job with
//! its leases and hands one work item per unit to the dispatcher (a large job: its units in fan-out shares,
//! which the workers send on); nothing is written for a refused request.

use crate::app::App;
use crate::domain::AppError;
use crate::domain::job::{DIRECT_DISPATCH_UNITS, FanOut, Job, UnitStatus, WorkItem};
use crate::domain::kms::KmsResource;
use crate::domain::sync_request::{SyncRequest, plan};
use crate::domain::time::now;
use chrono::Duration;
use uuid::Uuid;

/// Starts a job; `may` is asked of every resource it would sync (the API's caller may be refused).
pub async fn start(
    app: &App,
    request: SyncRequest,
    may: impl Fn(&KmsResource) -> Result<(), AppError>,
) -> Result<Job, AppError> {
    let resources = match &request {
        SyncRequest::All => app.kms.list().await?,
        SyncRequest::Named { kms, .. } => super::kms::resolve(app, kms).await?,
    };
    resources.iter().try_for_each(&may)?;
    let requested_regions = match &request {
        SyncRequest::All => &[][..],
        SyncRequest::Named { regions, .. } => regions.as_slice(),
    };
    let units = plan(&resources, requested_regions)?;
    let (kms, regions) = request.echo();
    let started = now();
    let job = Job::start(Uuid::new_v4(), started, units, kms, regions);
    app.jobs.create(&job, lease_until(app, started)).await?;
    let queued = if job.units.len() <= DIRECT_DISPATCH_UNITS {
        let items: Vec<WorkItem> = job
            .units
            .values()
            .map(|entry| WorkItem::for_unit(job.id, &entry.unit))
            .collect();
        app.dispatcher.dispatch(&items).await
    } else {
        app.dispatcher.fan_out(&FanOut::shares(&job)).await
    };
    if let Err(err) = queued {
        fail_undispatched(app, &job, &err).await;
        return Err(err);
    }
    tracing::info!(job_id = %job.id, units = job.units.len(), "synchronization job started");
    Ok(job)
}

/// The ids of the jobs in progress, newest first.
pub async fn running(app: &App) -> Result<Vec<Uuid>, AppError> {
    let mut running = Vec::new();
    app.jobs
        .for_each_header(true, &mut |job| {
            if job.is_running() {
                running.push(job.id);
            }
            true
        })
        .await?;
    Ok(running)
}

/// Asks the job's workers to stop. A job whose workers are gone (every lease lapsed) ends right away.
pub async fn cancel(app: &App, id: Uuid) -> Result<Job, AppError> {
    let job = app.jobs.request_abort(id, now()).await?;
    tracing::info!(job_id = %id, "synchronization job cancel requested");
    Ok(end_if_abandoned(app, &job).await?.unwrap_or(job))
}

/// Ends every job in progress whose workers are gone (scheduled runs call this before starting).
pub async fn sweep_abandoned(app: &App) -> Result<(), AppError> {
    for id in running(app).await? {
        if let Some(job) = app.jobs.get(id).await? {
            end_if_abandoned(app, &job).await?;
        }
    }
    Ok(())
}

/// A running job none of whose open units holds a live lease has lost its workers (a message that went
/// to the dead-letter queue, a crashed invocation): its open units end, as canceled when an abort was
/// asked for and as failed otherwise, so the job does not stay `in_progress` for ever.
async fn end_if_abandoned(app: &App, job: &Job) -> Result<Option<Job>, AppError> {
    let at = now();
    let open: Vec<&String> = job
        .units
        .iter()
        .filter(|(_, u)| !u.status.is_final())
        .map(|(key, _)| key)
        .collect();
    if open.is_empty() && job.progress.units_done < job.progress.units_total {
        // Every unit ended, but some end was not counted on the job (its worker stopped in between, and
        // its message is gone): counting them again is a no-op for the others.
        for (key, entry) in &job.units {
            app.jobs.finish_unit(job.id, key, &entry.status, at).await?;
        }
        return app.jobs.complete_if_done(job.id, at).await;
    }
    for key in &open {
        let lease = app.jobs.lease(key).await?;
        if lease.is_some_and(|(holder, until)| holder == job.id && until > at) {
            return Ok(None);
        }
    }
    let status = if job.abort {
        UnitStatus::Canceled
    } else {
        UnitStatus::Failed("no progress within the lease: the unit's worker was lost".into())
    };
    for key in open {
        app.jobs.finish_unit(job.id, key, &status, at).await?;
        app.jobs.release_lease(key, job.id).await?;
    }
    let ended = app.jobs.complete_if_done(job.id, at).await?;
    if ended.is_some() {
        tracing::warn!(job_id = %job.id, "synchronization job ended: its workers were lost");
    }
    Ok(ended)
}

pub fn lease_until(
    app: &App,
    from: crate::domain::time::Timestamp,
) -> crate::domain::time::Timestamp {
    from + Duration::from_std(app.sync.lease).unwrap_or(Duration::hours(2))
}

/// A job whose work could not be queued must not stay `in_progress` holding its leases: fail every unit.
async fn fail_undispatched(app: &App, job: &Job, cause: &AppError) {
    tracing::error!(job_id = %job.id, error = %cause, "could not queue the job's work; failing the job");
    let status = UnitStatus::Failed("the work could not be queued".into());
    for key in job.units.keys() {
        let ended = async {
            app.jobs.finish_unit(job.id, key, &status, now()).await?;
            app.jobs.release_lease(key, job.id).await
        };
        if let Err(err) = ended.await {
            tracing::error!(job_id = %job.id, unit = %key, error = %err, "could not fail the unit");
        }
    }
    if let Err(err) = app.jobs.complete_if_done(job.id, now()).await {
        tracing::error!(job_id = %job.id, error = %err, "could not end the job");
    }
}
