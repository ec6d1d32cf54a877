//! `/v1/cckm/aws/kms[/{id}]` (spec 3).

use crate::api::request::HttpRequest;
use crate::api::response::HttpResponse;
use crate::api::views;
use crate::app::App;
use crate::domain::AppError;
use crate::domain::kms::STATUS_ACTIVE;
use crate::domain::list::{FilterKind, ListQuery, ListSpec};
use crate::service::kms as service;

const LIST: ListSpec = ListSpec {
    filters: &[
        ("id", FilterKind::Text),
        ("name", FilterKind::Text),
        ("account_id", FilterKind::Text),
        ("cloud_name", FilterKind::Text),
        ("status", FilterKind::Text),
        ("connection", FilterKind::Text),
    ],
    sort_fields: &["name", "account_id", "createdAt", "updatedAt"],
    default_sort: "-createdAt",
};

pub async fn create(app: &App, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let kms = service::create(app, &request.body).await?;
    Ok(HttpResponse::json(201, views::kms(&app.tenancy, &kms)))
}

pub async fn get(app: &App, id: &str) -> Result<HttpResponse, AppError> {
    let kms = service::get(app, id).await?;
    Ok(HttpResponse::json(200, views::kms(&app.tenancy, &kms)))
}

pub async fn patch(app: &App, id: &str, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let kms = service::patch(app, id, &request.body).await?;
    Ok(HttpResponse::json(200, views::kms(&app.tenancy, &kms)))
}

pub async fn delete(app: &App, id: &str) -> Result<HttpResponse, AppError> {
    service::delete(app, id).await?;
    Ok(HttpResponse::no_content())
}

pub async fn list(app: &App, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let query = ListQuery::parse(&request.query, &LIST)?;
    let matches = |value: &str, filter: &str| {
        query
            .filter(filter)
            .is_none_or(|wanted| wanted.iter().any(|w| w == value))
    };
    let items = app
        .kms
        .list()
        .await?
        .into_iter()
        .filter(|k| {
            matches(&k.id.to_string(), "id")
                && matches(&k.name, "name")
                && matches(&k.account_id, "account_id")
                && matches(k.cloud_name(), "cloud_name")
                && matches(STATUS_ACTIVE, "status")
                && matches(
                    k.connection.as_ref().map_or("", |c| c.name.as_str()),
                    "connection",
                )
        })
        .map(|k| views::kms(&app.tenancy, &k))
        .collect();
    let (page, total) = query.page(items);
    Ok(HttpResponse::json(200, query.envelope(page, total)))
}
