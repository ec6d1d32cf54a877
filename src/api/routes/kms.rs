//! `/v1/cckm/aws/kms[/{id}]` (spec 3).

use crate::api::auth::Principal;
use crate::api::request::HttpRequest;
use crate::api::response::HttpResponse;
use crate::api::views;
use crate::app::App;
use crate::domain::AppError;
use crate::domain::acl;
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

pub async fn get(app: &App, id: &str, caller: &Principal) -> Result<HttpResponse, AppError> {
    let kms = service::get(app, id).await?;
    caller.may(&kms, acl::VIEW)?;
    Ok(HttpResponse::json(200, views::kms(&app.tenancy, &kms)))
}

/// `POST /kms/{id}/archive` or `/recover`: takes the resource out of service, or back; the resource after it.
pub async fn archive(app: &App, id: &str, archived: bool) -> Result<HttpResponse, AppError> {
    let kms = service::archive(app, id, archived).await?;
    Ok(HttpResponse::json(200, views::kms(&app.tenancy, &kms)))
}

/// `POST /kms/{id}/update-acls`: grants or revokes key actions of users and groups; the resource after it.
pub async fn update_acls(
    app: &App,
    id: &str,
    request: &HttpRequest,
) -> Result<HttpResponse, AppError> {
    let kms = service::update_acls(app, id, &request.body).await?;
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
    let items = app.kms.list().await?;
    Ok(super::page_of(
        &query,
        items,
        |k| {
            vec![
                ("id", k.id.to_string()),
                ("name", k.name.clone()),
                ("account_id", k.account_id.clone()),
                ("cloud_name", k.cloud_name().to_string()),
                ("status", k.status().to_string()),
                (
                    "connection",
                    k.connection
                        .as_ref()
                        .map_or(String::new(), |c| c.name.clone()),
                ),
            ]
        },
        |k| views::kms(&app.tenancy, k),
    ))
}
