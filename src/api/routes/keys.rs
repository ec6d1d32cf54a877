//! `/v1/cckm/aws/keys[/{id}[/refresh]]` (spec 2). Filters on `kms`/`kms_id` (with or without `region`)
//! read the key index per (account, region); every other query reads the whole table.

use crate::api::request::HttpRequest;
use crate::api::response::HttpResponse;
use crate::api::views;
use crate::app::App;
use crate::domain::AppError;
use crate::domain::job::unit_key;
use crate::domain::key::KeyRecord;
use crate::domain::list::{FilterKind, ListQuery, ListSpec};
use crate::service::keys as service;
use serde_json::json;

const LIST: ListSpec = ListSpec {
    filters: &[
        ("id", FilterKind::Text),
        ("keyid", FilterKind::Text),
        ("arn", FilterKind::Text),
        ("alias", FilterKind::Text),
        ("kms", FilterKind::Text),
        ("kms_id", FilterKind::Text),
        ("region", FilterKind::Text),
        ("cloud_name", FilterKind::Text),
        ("keystate", FilterKind::Text),
        ("keyusage", FilterKind::Text),
        ("keymanager", FilterKind::Text),
        ("origin", FilterKind::Text),
        ("gone", FilterKind::Bool),
        ("enabled", FilterKind::Bool),
        ("multi_region", FilterKind::Bool),
    ],
    sort_fields: &[
        "createdAt",
        "updatedAt",
        "synced_at",
        "kms",
        "kms_id",
        "region",
        "cloud_name",
        "gone",
        "key_type",
        "aws_param.KeyID",
        "aws_param.Arn",
        "aws_param.KeyState",
        "aws_param.KeyUsage",
        "aws_param.KeyManager",
        "aws_param.Origin",
        "aws_param.CreationDate",
        "aws_param.Enabled",
        "aws_param.MultiRegion",
        "aws_param.CustomerMasterKeySpec",
        "aws_param.Alias",
    ],
    default_sort: "-createdAt",
};

pub async fn list(app: &App, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let query = ListQuery::parse(&request.query, &LIST)?;
    let units = index_units(app, &query).await?;
    // Keys stream in a store page at a time; only the matches the page can still need are kept.
    let mut pager = query.pager();
    let mut keep = |key: KeyRecord| {
        if matches(&query, &key) {
            pager.push(views::key(&app.tenancy, &key));
        }
    };
    app.keys.scan(units.as_deref(), &mut keep).await?;
    let (page, total) = pager.finish();
    Ok(HttpResponse::json(200, query.envelope(page, total)))
}

/// The (account, region) partitions to read when the query names KMS resources; None = read everything.
async fn index_units(app: &App, query: &ListQuery) -> Result<Option<Vec<String>>, AppError> {
    let names: Vec<String> = ["kms", "kms_id"]
        .iter()
        .filter_map(|f| query.filter(f))
        .flatten()
        .cloned()
        .collect();
    if names.is_empty() {
        return Ok(None);
    }
    let mut units = Vec::new();
    for name in names {
        let found = match crate::service::kms::resolve(app, std::slice::from_ref(&name)).await {
            Ok(found) => found,
            // An unknown KMS filter matches nothing; it is not an error for a list.
            Err(AppError::NotFound(_)) => continue,
            Err(err) => return Err(err),
        };
        for kms in found {
            for region in &kms.regions {
                if query
                    .filter("region")
                    .is_none_or(|wanted| wanted.contains(region))
                {
                    units.push(unit_key(&kms.account_id, region));
                }
            }
        }
    }
    units.sort();
    units.dedup();
    Ok(Some(units))
}

fn matches(query: &ListQuery, key: &KeyRecord) -> bool {
    let p = &key.aws_param;
    let text = |filter: &str, value: &str| {
        query
            .filter(filter)
            .is_none_or(|wanted| wanted.iter().any(|w| w == value))
    };
    // A field AWS did not tell us matches no filter on it.
    let known = |filter: &str, value: Option<&str>| {
        query.filter(filter).is_none() || value.is_some_and(|v| text(filter, v))
    };
    let flag = |filter: &str, value: Option<bool>| {
        known(filter, value.map(|v| if v { "true" } else { "false" }))
    };
    text("id", &key.id.to_string())
        && text("keyid", &p.key_id)
        && text("arn", &p.arn)
        && query
            .filter("alias")
            .is_none_or(|wanted| p.alias.iter().any(|a| wanted.contains(a)))
        && (text("kms", &key.kms) || text("kms", &key.kms_id.to_string()))
        && (text("kms_id", &key.kms_id.to_string()) || text("kms_id", &key.kms))
        && text("region", &key.region)
        && text("cloud_name", &key.cloud_name)
        && known("keystate", p.key_state.as_deref())
        && known("keyusage", p.key_usage.as_deref())
        && known("keymanager", p.key_manager.as_deref())
        && known("origin", p.origin.as_deref())
        && flag("gone", Some(key.gone))
        && flag("enabled", p.enabled)
        && flag("multi_region", p.multi_region)
}

pub async fn get(app: &App, id: &str) -> Result<HttpResponse, AppError> {
    let key = service::get(app, id).await?;
    Ok(HttpResponse::json(200, views::key(&app.tenancy, &key)))
}

pub async fn delete(app: &App, id: &str) -> Result<HttpResponse, AppError> {
    service::delete(app, id).await?;
    Ok(HttpResponse::no_content())
}

pub async fn refresh(app: &App, id: &str) -> Result<HttpResponse, AppError> {
    let key = service::refresh(app, id).await?;
    Ok(HttpResponse::json(
        200,
        json!({"message": format!("AWS key '{}' will be refreshed and persisted", key.id)}),
    ))
}
