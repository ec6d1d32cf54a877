//! `/v1/cckm/aws/keys[/{id}[/refresh]]` (spec 2). A query that names keys (`id`, `arn`, or `keyid` within
//! the registered accounts) reads just those records; filters on `kms`/`kms_id` (with or without `region`)
//! read the key index per (account, region); every other query reads the whole table.

use crate::api::request::HttpRequest;
use crate::api::response::HttpResponse;
use crate::api::views;
use crate::app::App;
use crate::domain::AppError;
use crate::domain::job::unit_key;
use crate::domain::key::{KeyRecord, key_arn, key_record_id};
use crate::domain::kms::KmsResource;
use crate::domain::list::{FilterKind, ListQuery, ListSpec};
use crate::service::keys as service;
use serde_json::json;
use uuid::Uuid;

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

/// The most records a query that names keys reads one by one; past it, it reads like any other query.
const MAX_NAMED_READS: usize = 1000;

pub async fn list(app: &App, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let query = ListQuery::parse(&request.query, &LIST)?;
    // Keys stream in a store page at a time; only the matches the page can still need are kept.
    let mut pager = query.pager();
    let mut read = 0usize;
    let mut keep = |key: KeyRecord| {
        read += 1;
        if matches(&query, &key) {
            pager.push(views::key(&app.tenancy, &key));
        }
    };
    let plan = match named_keys(app, &query).await? {
        Some(ids) => {
            app.keys
                .get_many(&ids)
                .await?
                .into_iter()
                .for_each(&mut keep);
            "by key"
        }
        None => match index_units(app, &query).await? {
            Some(units) => {
                app.keys.scan(Some(&units), &mut keep).await?;
                "unit index"
            }
            None => {
                app.keys.scan(None, &mut keep).await?;
                "table scan"
            }
        },
    };
    tracing::debug!(request_id = %request.request_id, plan, items_read = read, "key list read");
    let (page, total) = pager.finish();
    Ok(HttpResponse::json(200, query.envelope(page, total)))
}

/// The records a query names, when it names them: by `id`, by `arn` (a record's id is derived from its
/// ARN), or by `keyid` in each account and region the query's KMS resources (all, without a `kms` filter)
/// cover. None when the query names none, or too many to read one by one.
async fn named_keys(app: &App, query: &ListQuery) -> Result<Option<Vec<Uuid>>, AppError> {
    if let Some(ids) = query.filter("id") {
        return Ok(Some(
            ids.iter()
                .filter_map(|id| Uuid::parse_str(id).ok())
                .collect(),
        ));
    }
    if let Some(arns) = query.filter("arn") {
        return Ok(Some(arns.iter().map(|arn| key_record_id(arn)).collect()));
    }
    let Some(key_ids) = query.filter("keyid") else {
        return Ok(None);
    };
    let resources = match kms_filter(query) {
        Some(names) => resolve_all(app, &names).await?,
        None => app.kms.list().await?,
    };
    let mut ids = Vec::new();
    for kms in resources {
        for region in kms.regions.iter().filter(|region| {
            query
                .filter("region")
                .is_none_or(|wanted| wanted.contains(region))
        }) {
            ids.extend(
                key_ids
                    .iter()
                    .map(|key_id| key_record_id(&key_arn(region, &kms.account_id, key_id))),
            );
        }
        if ids.len() > MAX_NAMED_READS {
            return Ok(None);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(Some(ids))
}

/// The values of the `kms` and `kms_id` filters together; None when neither is given.
fn kms_filter(query: &ListQuery) -> Option<Vec<String>> {
    let names: Vec<String> = ["kms", "kms_id"]
        .iter()
        .filter_map(|f| query.filter(f))
        .flatten()
        .cloned()
        .collect();
    (!names.is_empty()).then_some(names)
}

/// The KMS resources these names or ids stand for; an unknown one matches nothing (not an error for a list).
async fn resolve_all(app: &App, names: &[String]) -> Result<Vec<KmsResource>, AppError> {
    let mut found = Vec::new();
    for name in names {
        match crate::service::kms::resolve(app, std::slice::from_ref(name)).await {
            Ok(resources) => found.extend(resources),
            Err(AppError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(found)
}

/// The (account, region) partitions to read when the query names KMS resources; None = read everything.
async fn index_units(app: &App, query: &ListQuery) -> Result<Option<Vec<String>>, AppError> {
    let Some(names) = kms_filter(query) else {
        return Ok(None);
    };
    let mut units = Vec::new();
    for kms in resolve_all(app, &names).await? {
        for region in &kms.regions {
            if query
                .filter("region")
                .is_none_or(|wanted| wanted.contains(region))
            {
                units.push(unit_key(&kms.account_id, region));
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
