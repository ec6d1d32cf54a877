//! `/v1/connectionmgmt/services/aws/connections[/{id or name}]`: AWS connections, as CCKM's connection
//! manager and Terraform's `ciphertrust_aws_connection` use them.

use crate::api::request::HttpRequest;
use crate::api::response::HttpResponse;
use crate::api::views;
use crate::app::App;
use crate::domain::AppError;
use crate::domain::list::{FilterKind, ListQuery, ListSpec};
use crate::service::connections as service;

const LIST: ListSpec = ListSpec {
    filters: &[
        ("id", FilterKind::Text),
        ("name", FilterKind::Text),
        ("cloud_name", FilterKind::Text),
    ],
    sort_fields: &["name", "createdAt", "updatedAt"],
    default_sort: "-createdAt",
};

pub async fn create(app: &App, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let connection = service::create(app, &request.body).await?;
    Ok(HttpResponse::json(
        201,
        views::connection(&app.tenancy, &connection),
    ))
}

/// `POST .../connection-test`: whether unsaved credentials reach AWS, as Ansible's connection test reads it.
pub async fn test_unsaved(app: &App, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let check = service::test_unsaved(app, &request.body).await?;
    Ok(HttpResponse::json(200, views::connection_check(&check)))
}

/// `POST .../connections/{id}/test`: whether the saved connection reaches AWS; kept on the connection.
pub async fn test(app: &App, id: &str) -> Result<HttpResponse, AppError> {
    let check = service::test(app, id).await?;
    Ok(HttpResponse::json(200, views::connection_check(&check)))
}

pub async fn get(app: &App, id: &str) -> Result<HttpResponse, AppError> {
    let connection = service::get(app, id).await?;
    Ok(HttpResponse::json(
        200,
        views::connection(&app.tenancy, &connection),
    ))
}

pub async fn patch(app: &App, id: &str, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let connection = service::patch(app, id, &request.body).await?;
    Ok(HttpResponse::json(
        200,
        views::connection(&app.tenancy, &connection),
    ))
}

pub async fn delete(app: &App, id: &str) -> Result<HttpResponse, AppError> {
    service::delete(app, id).await?;
    Ok(HttpResponse::no_content())
}

pub async fn list(app: &App, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let query = ListQuery::parse(&request.query, &LIST)?;
    let items = app.connections.list().await?;
    Ok(super::page_of(
        &query,
        items,
        |c| {
            vec![
                ("id", c.id.to_string()),
                ("name", c.name.clone()),
                ("cloud_name", c.cloud_name.clone()),
            ]
        },
        |c| views::connection(&app.tenancy, c),
    ))
}
