//! `/v1/cckm/aws/synchronization-jobs[/{id}[/cancel]]` (spec 1).

use crate::api::auth::{Principal, Role};
use crate::api::request::HttpRequest;
use crate::api::response::HttpResponse;
use crate::api::views;
use crate::app::App;
use crate::domain::AppError;
use crate::domain::job::{Job, JobStatus};
use crate::domain::list::{FilterKind, ListQuery, ListSpec};
use crate::domain::sync_request::SyncRequest;
use crate::service::jobs as service;
use uuid::Uuid;

const LIST: ListSpec = ListSpec {
    filters: &[
        ("id", FilterKind::Text),
        ("overall_status", FilterKind::Text),
        ("kms", FilterKind::Text),
    ],
    sort_fields: &["createdAt", "updatedAt", "completed_at", "overall_status"],
    default_sort: "-createdAt",
};

pub async fn create(
    app: &App,
    request: &HttpRequest,
    caller: &Principal,
) -> Result<HttpResponse, AppError> {
    let sync = SyncRequest::parse(&request.body)?;
    // Every resource, today's and tomorrow's, is the admins' to sync; ACLs grant resources one by one.
    if sync == SyncRequest::All && caller.role != Role::Admin {
        return Err(AppError::Forbidden(format!(
            "user '{}' may not synchronize_all: name the KMS resources that grant them keysynchronize",
            caller.subject
        )));
    }
    let job = service::start(app, sync, |kms| caller.may(kms, "keysynchronize")).await?;
    Ok(HttpResponse::json(201, views::job(&app.tenancy, &job)))
}

pub async fn get(app: &App, id: &str) -> Result<HttpResponse, AppError> {
    let job = match Uuid::parse_str(id) {
        Ok(uuid) => app.jobs.get(uuid).await?,
        Err(_) => None,
    };
    let job = job.ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::json(200, views::job(&app.tenancy, &job)))
}

pub async fn cancel(app: &App, id: &str) -> Result<HttpResponse, AppError> {
    let uuid = Uuid::parse_str(id).map_err(|_| not_found(id))?;
    let job = service::cancel(app, uuid).await?;
    Ok(HttpResponse::json(200, views::job(&app.tenancy, &job)))
}

pub async fn list(app: &App, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let query = ListQuery::parse(&request.query, &LIST)?;
    if let Some(statuses) = query.filter("overall_status")
        && let Some(bad) = statuses.iter().find(|s| JobStatus::parse(s).is_none())
    {
        return Err(AppError::InvalidParam(format!(
            "overall_status must be in_progress, completed or failed, not '{bad}'"
        )));
    }
    let any_of = |filter: &str, value: &str| {
        query
            .filter(filter)
            .is_none_or(|wanted| wanted.iter().any(|w| w == value))
    };
    let matches = |job: &Job| {
        any_of("id", &job.id.to_string())
            && any_of("overall_status", job.overall_status.as_str())
            && query
                .filter("kms")
                .is_none_or(|wanted| job.kms.iter().any(|k| wanted.contains(k)))
    };
    // In the index's own order (creation time) and without filters, the read stops once the page is
    // full, and the total is the index's count; any other query reads every header (the history is
    // bounded by its retention).
    let in_index_order = matches!(query.sort.as_slice(), [key] if key.field == "createdAt");
    let newest_first = !in_index_order || query.sort[0].descending;
    let needed = query
        .limit
        .filter(|_| in_index_order && query.filters.is_empty())
        .map(|limit| query.skip.saturating_add(limit));
    let mut pager = query.pager();
    let mut kept = 0;
    let mut stopped = false;
    app.jobs
        .for_each_header(newest_first, &mut |job| {
            if matches(&job) {
                pager.push(views::job(&app.tenancy, &job));
                kept += 1;
            }
            stopped = needed.is_some_and(|needed| kept >= needed);
            !stopped
        })
        .await?;
    // Listing reads job headers only; the page's jobs are then read whole for their detailed_status.
    let (page, mut total) = pager.finish();
    if stopped {
        total = app.jobs.count().await?;
    }
    let mut resources = Vec::with_capacity(page.len());
    for header in page {
        let id = header["id"]
            .as_str()
            .and_then(|id| Uuid::parse_str(id).ok());
        match id {
            Some(id) => {
                if let Some(job) = app.jobs.get(id).await? {
                    resources.push(views::job(&app.tenancy, &job));
                }
            }
            None => resources.push(header),
        }
    }
    Ok(HttpResponse::json(200, query.envelope(resources, total)))
}

fn not_found(id: &str) -> AppError {
    AppError::NotFound(format!("synchronization job '{id}' not found"))
}
