//! `/v1/scheduler/job-configs[/{id or name}[/run-now]]`: CCKM's scheduler API for `cckm_synchronization`,
//! as Terraform's `ciphertrust_scheduler` uses it.

use crate::api::request::HttpRequest;
use crate::api::response::HttpResponse;
use crate::api::views;
use crate::app::App;
use crate::domain::AppError;
use crate::domain::list::{FilterKind, ListQuery, ListSpec};
use crate::service::job_configs as service;

const LIST: ListSpec = ListSpec {
    filters: &[
        ("id", FilterKind::Text),
        ("name", FilterKind::Text),
        ("operation", FilterKind::Text),
        ("disabled", FilterKind::Bool),
    ],
    sort_fields: &["name", "createdAt", "updatedAt"],
    default_sort: "-createdAt",
};

pub async fn create(app: &App, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let config = service::create(app, &request.body).await?;
    Ok(HttpResponse::json(
        201,
        views::job_config(&app.tenancy, &config),
    ))
}

pub async fn get(app: &App, id: &str) -> Result<HttpResponse, AppError> {
    let config = service::get(app, id).await?;
    Ok(HttpResponse::json(
        200,
        views::job_config(&app.tenancy, &config),
    ))
}

pub async fn patch(app: &App, id: &str, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let config = service::patch(app, id, &request.body).await?;
    Ok(HttpResponse::json(
        200,
        views::job_config(&app.tenancy, &config),
    ))
}

pub async fn delete(app: &App, id: &str) -> Result<HttpResponse, AppError> {
    service::delete(app, id).await?;
    Ok(HttpResponse::no_content())
}

/// Starts the synchronization now; answers the job, as `POST /synchronization-jobs` does.
pub async fn run_now(app: &App, id: &str) -> Result<HttpResponse, AppError> {
    let job = service::run_now(app, id).await?;
    Ok(HttpResponse::json(201, views::job(&app.tenancy, &job)))
}

pub async fn list(app: &App, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let query = ListQuery::parse(&request.query, &LIST)?;
    let items = app.job_configs.list().await?;
    Ok(super::page_of(
        &query,
        items,
        |c| {
            vec![
                ("id", c.id.to_string()),
                ("name", c.name.clone()),
                (
                    "operation",
                    crate::domain::job_config::OPERATION.to_string(),
                ),
                ("disabled", c.disabled.to_string()),
            ]
        },
        |c| views::job_config(&app.tenancy, c),
    ))
}
