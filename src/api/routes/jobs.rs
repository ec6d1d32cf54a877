//! `/v1/cckm/aws/synchronization-jobs[/{id}[/cancel]]` (spec 1).

use crate::api::request::HttpRequest;
use crate::api::response::HttpResponse;
use crate::api::views;
use crate::app::App;
use crate::domain::AppError;
use crate::domain::job::JobStatus;
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

pub async fn create(app: &App, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let sync = SyncRequest::parse(&request.body)?;
    let job = service::start(app, sync).await?;
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
    let headers = app.jobs.list().await?.into_iter().filter(|job| {
        any_of("id", &job.id.to_string())
            && any_of("overall_status", job.overall_status.as_str())
            && query
                .filter("kms")
                .is_none_or(|wanted| job.kms.iter().any(|k| wanted.contains(k)))
    });
    // Listing reads job headers only; the page's jobs are then read whole for their detailed_status.
    let (page, total) = query.page(headers.map(|job| views::job(&app.tenancy, &job)).collect());
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
