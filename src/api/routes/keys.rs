//! `/v1/cckm/aws/keys[/{id}[/refresh]]` (spec 2). A query that names keys by `id` or `arn` reads just
//! those records; one by `keyid` reads them through the key-id index. Any other query in creation order reads the index
//! that holds the fewest of its keys (`domain::key_query`) until its page is full, and takes its total
//! from the counts the sync keeps; a sort on another field reads every key its filters name.

use crate::api::auth::Principal;
use crate::api::request::HttpRequest;
use crate::api::response::HttpResponse;
use crate::api::views::{self, KEY_SOURCE};
use crate::app::App;
use crate::domain::AppError;
use crate::domain::acl;
use crate::domain::job::unit_key;
use crate::domain::key::{KeyRecord, full_alias, key_record_id};
use crate::domain::key_query::KeyScope;
use crate::domain::kms::KmsResource;
use crate::domain::list::{FilterKind, ListQuery, ListSpec};
use crate::service::key_writes;
use crate::service::keys as service;
use serde_json::json;
use std::collections::BTreeSet;
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
        // CCKM's own names, as its clients send them.
        ("CustomerMasterKeySpec", FilterKind::Text),
        ("key_type", FilterKind::Text),
        ("key_material_origin", FilterKind::Text),
        ("key_source", FilterKind::Text),
        ("multi_region_key_type", FilterKind::Text),
        ("custom_key_store_id", FilterKind::Text),
        ("tags", FilterKind::Text),
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

/// The most keys one list request examines: a deep page (`skip` at its bound plus the largest `limit`)
/// and room for filters that no index serves. Past it, the request asks to be narrowed.
const MAX_EXAMINED: usize = 20_000;

/// CCKM key filters that mean nothing for a key synced from AWS, and why: refused by name, not ignored.
const NOT_SERVED: [(&str, &str); 9] = [
    ("blocked", "it describes CCKM-managed HYOK keys"),
    (
        "rotation_job_enabled",
        "it describes CCKM rotation jobs; synced keys have none",
    ),
    (
        "cckm_policy_template_id",
        "it names a CCKM policy template; synced keys have none",
    ),
    (
        "custom_key_store_name",
        "the sync does not read custom key stores; filter on custom_key_store_id",
    ),
    ("linked_state", "it describes CCKM-managed HYOK keys"),
    (
        "local_key_id",
        "it names a CCKM source key; synced keys have none",
    ),
    (
        "local_key_name",
        "it names a CCKM source key; synced keys have none",
    ),
    (
        "job_config_id",
        "it names a CCKM rotation job; synced keys have none",
    ),
    (
        "rotation_status",
        "it describes CCKM rotation jobs; filter on the key's own rotation with AWS",
    ),
];

pub async fn list(
    app: &App,
    request: &HttpRequest,
    caller: &Principal,
) -> Result<HttpResponse, AppError> {
    if let Some((name, why)) = NOT_SERVED
        .iter()
        .find(|(name, _)| request.query.contains_key(*name))
    {
        return Err(AppError::InvalidParam(format!(
            "filter '{name}' is not served for keys synced from AWS: {why}"
        )));
    }
    let mut query = ListQuery::parse(&request.query, &LIST)?;
    if !caller.views_all() {
        // Without the read-only role, a list names the resources whose ACLs let the caller view them.
        let names = kms_filter(&query).ok_or_else(|| {
            AppError::Forbidden(format!(
                "user '{}' may list only the keys of KMS resources that grant them {}: name them (kms or kms_id)",
                caller.subject,
                acl::VIEW
            ))
        })?;
        for kms in crate::service::kms::resolve(app, &names).await? {
            caller.may(&kms, acl::VIEW)?;
        }
    }
    // CCKM's clients name an alias bare (`my-key` for `alias/my-key`), as their examples do.
    for alias in query.filters.get_mut("alias").into_iter().flatten() {
        *alias = full_alias(alias);
    }
    // The keys of the named KMS resources are those of their accounts and regions, as the unit index and
    // the kept counts hold them.
    let units: Option<BTreeSet<String>> = index_units(app, &query)
        .await?
        .map(|units| units.into_iter().collect());
    let wanted = |key: &KeyRecord| {
        units.as_ref().is_none_or(|units| units.contains(&key.unit)) && matches(&query, key)
    };
    // Keys stream in a store page at a time; only the matches the page can still need are kept.
    let mut pager = query.pager();
    let (plan, read, counted_total) = match named_keys(&query) {
        Some(ids) => {
            let keys = app.keys.get_many(&ids).await?;
            let read = keys.len() as u64;
            for key in keys.iter().filter(|key| wanted(key)) {
                pager.push(views::key(&app.tenancy, key));
            }
            ("by key".to_string(), read, None)
        }
        None => match index_order(&query) {
            Some(newest_first) => {
                let scope = KeyScope::of(&query, units.clone());
                let counts = app.keys.unit_counts().await?;
                let index = scope.cheapest_index(&counts);
                let total = scope.counted_total(&counts);
                let needed = query
                    .limit
                    .map_or(usize::MAX, |limit| query.skip.saturating_add(limit));
                let (mut kept, mut examined) = (0usize, 0usize);
                let read = app
                    .keys
                    .for_each_indexed(&index, newest_first, needed, &mut |key| {
                        examined += 1;
                        if wanted(&key) {
                            pager.push(views::key(&app.tenancy, &key));
                            kept += 1;
                        }
                        // With a counted total, the page is all that is left to read.
                        !(total.is_some() && kept >= needed) && examined < MAX_EXAMINED
                    })
                    .await?;
                if examined >= MAX_EXAMINED && (total.is_none() || kept < needed) {
                    return Err(AppError::InvalidParam(format!(
                        "this list would read more than {MAX_EXAMINED} keys: narrow it with kms, region, \
                         keystate, gone or alias, or ask for a smaller page"
                    )));
                }
                (format!("{index:?}"), read, total)
            }
            None => {
                let mut read = 0u64;
                let mut keep = |key: KeyRecord| {
                    read += 1;
                    if wanted(&key) {
                        pager.push(views::key(&app.tenancy, &key));
                    }
                };
                let unit_list: Option<Vec<String>> =
                    units.as_ref().map(|units| units.iter().cloned().collect());
                app.keys.scan(unit_list.as_deref(), &mut keep).await?;
                let plan = if units.is_some() {
                    "unit index, any order"
                } else {
                    "table scan"
                };
                (plan.to_string(), read, None)
            }
        },
    };
    tracing::debug!(request_id = %request.request_id, plan, items_read = read, "key list read");
    let (page, matched) = pager.finish();
    // Kept counts lag keys written since the unit's last sync (or before its first): never fewer than seen.
    let total = counted_total.map_or(matched, |total| (total as usize).max(matched));
    Ok(HttpResponse::json(200, query.envelope(page, total)))
}

/// The creation order a query asks for, newest first or not; None when it sorts on anything else, which
/// no index keeps (such a list reads every key its filters name).
fn index_order(query: &ListQuery) -> Option<bool> {
    match query.sort.as_slice() {
        [key] if key.field == "createdAt" => Some(key.descending),
        _ => None,
    }
}

/// The records a query names by `id` or by `arn` (a record's id is derived from its ARN), each once; None
/// when it names none.
fn named_keys(query: &ListQuery) -> Option<Vec<Uuid>> {
    let ids: BTreeSet<Uuid> = if let Some(ids) = query.filter("id") {
        ids.iter()
            .filter_map(|id| Uuid::parse_str(id).ok())
            .collect()
    } else {
        query
            .filter("arn")?
            .iter()
            .map(|arn| key_record_id(arn))
            .collect()
    };
    Some(ids.into_iter().collect())
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

/// Whether a key passes every filter but `kms`/`kms_id`, which stand for units (see `list`).
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
        && text("region", &key.region)
        && text("cloud_name", &key.cloud_name)
        && known("keystate", p.key_state.as_deref())
        && known("keyusage", p.key_usage.as_deref())
        && known("keymanager", p.key_manager.as_deref())
        && known("origin", p.origin.as_deref())
        && flag("gone", Some(key.gone))
        && flag("enabled", p.enabled)
        && flag("multi_region", p.multi_region)
        && known(
            "CustomerMasterKeySpec",
            p.customer_master_key_spec.as_deref(),
        )
        && known("key_type", key.key_type.as_deref())
        && text("key_material_origin", &key.key_material_origin)
        && text("key_source", KEY_SOURCE)
        && known("multi_region_key_type", multi_region_key_type(key))
        && known("custom_key_store_id", p.custom_key_store_id.as_deref())
        && query
            .filter("tags")
            .is_none_or(|wanted| wanted.iter().any(|w| has_tag(key, w)))
}

/// `PRIMARY` or `REPLICA` for a multi-Region key.
fn multi_region_key_type(key: &KeyRecord) -> Option<&str> {
    key.aws_param
        .multi_region_configuration
        .as_ref()?
        .get("MultiRegionKeyType")?
        .as_str()
}

/// `tags=<key>` matches a key with that tag, `tags=<key>=<value>` one with that value.
fn has_tag(key: &KeyRecord, wanted: &str) -> bool {
    // Ansible's cckm_aws_key_info sends its tags as one JSON object: every tag in it must match.
    if let Ok(serde_json::Value::Object(tags)) = serde_json::from_str(wanted) {
        return tags.iter().all(|(name, value)| {
            has_tag(
                key,
                &format!("{name}={}", value.as_str().unwrap_or_default()),
            )
        });
    }
    let (tag_key, tag_value) = match wanted.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (wanted, None),
    };
    key.aws_param
        .tags
        .iter()
        .flatten()
        .any(|tag| tag.key == tag_key && tag_value.is_none_or(|v| tag.value == v))
}

pub async fn get(app: &App, id: &str, caller: &Principal) -> Result<HttpResponse, AppError> {
    let key = service::get(app, id).await?;
    may_view(app, caller, &key).await?;
    Ok(HttpResponse::json(200, views::key(&app.tenancy, &key)))
}

/// `POST /keys/{id}/get-key-rotation-status` (Ansible's `get_rotation_status`, a read): the key's rotation
/// as AWS reports it now, by GetKeyRotationStatus's names; nothing is stored.
async fn rotation_status(
    app: &App,
    id: &str,
    caller: &Principal,
) -> Result<HttpResponse, AppError> {
    let key = service::get(app, id).await?;
    may_view(app, caller, &key).await?;
    let details = service::read_now(app, &key)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("AWS no longer has key '{}'", key.arn)))?;
    let p = &details.aws_param;
    Ok(HttpResponse::json(
        200,
        json!({
            "KeyId": p.key_id,
            "KeyRotationEnabled": p.key_rotation_enabled,
            "RotationPeriodInDays": p.rotation_period_in_days,
            "NextRotationDate": p.next_rotation_date,
        }),
    ))
}

/// `GET /keys/{id}/download-public-key`: the public key of an asymmetric key, as AWS gives it (PEM).
pub async fn public_key(app: &App, id: &str, caller: &Principal) -> Result<HttpResponse, AppError> {
    let (key, pem) = key_writes::public_key(app, id, |kms, action| caller.may(kms, action)).await?;
    Ok(HttpResponse::json(
        200,
        json!({
            "id": key.id,
            "KeyId": key.aws_param.key_id,
            "CustomerMasterKeySpec": key.aws_param.customer_master_key_spec,
            "KeyUsage": key.aws_param.key_usage,
            "public_key": pem,
        }),
    ))
}

/// Whether the caller may see the key: by role, or by its KMS resource's ACLs.
async fn may_view(app: &App, caller: &Principal, key: &KeyRecord) -> Result<(), AppError> {
    if caller.views_all() {
        return Ok(());
    }
    caller.may(&service::kms_of(app, key).await?, acl::VIEW)
}

/// `POST /keys`: a key created in AWS, as stored after it (201).
pub async fn create(
    app: &App,
    request: &HttpRequest,
    caller: &Principal,
) -> Result<HttpResponse, AppError> {
    let key = key_writes::create(app, &request.body, |kms, action| caller.may(kms, action)).await?;
    Ok(HttpResponse::json(201, views::key(&app.tenancy, &key)))
}

/// `POST /keys/{id}/<action>`: the key after the change AWS made (a replica: the replica, 201).
pub async fn change(
    app: &App,
    id: &str,
    action: &str,
    request: &HttpRequest,
    caller: &Principal,
) -> Result<HttpResponse, AppError> {
    if action == "get-key-rotation-status" {
        return rotation_status(app, id, caller).await;
    }
    let key = key_writes::change(app, id, action, &request.body, |kms, action| {
        caller.may(kms, action)
    })
    .await?;
    let status = if action == "replicate-key" { 201 } else { 200 };
    Ok(HttpResponse::json(status, views::key(&app.tenancy, &key)))
}

pub async fn delete(app: &App, id: &str) -> Result<HttpResponse, AppError> {
    service::delete(app, id).await?;
    Ok(HttpResponse::no_content())
}

pub async fn refresh(app: &App, id: &str, caller: &Principal) -> Result<HttpResponse, AppError> {
    let key = service::get(app, id).await?;
    let kms = service::kms_of(app, &key).await?;
    caller.may(&kms, "keysynchronize")?;
    let key = service::refresh(app, &kms, &key).await?;
    Ok(HttpResponse::json(
        200,
        json!({"message": format!("AWS key '{}' will be refreshed and persisted", key.id)}),
    ))
}

/// The versions of one key are paged, not searched (Ansible sends only `skip`, `limit` and `sort`).
const MATERIAL_LIST: ListSpec = ListSpec {
    filters: &[],
    sort_fields: &["version", "created_at"],
    default_sort: "version",
};

/// A key's rotations, with the filters and sort CCKM's clients send (Ansible's `cckm_aws_key_info`,
/// Terraform's `sort=-RotationDate`): AWS's fields by their AWS names, CCKM's own by theirs.
const ROTATION_LIST: ListSpec = ListSpec {
    filters: &[
        ("key_source", FilterKind::Text),
        ("key_material_origin", FilterKind::Text),
        ("ImportState", FilterKind::Text),
        ("KeyMaterialState", FilterKind::Text),
        ("RotationType", FilterKind::Text),
        ("KeyMaterialId", FilterKind::Text),
    ],
    sort_fields: &["RotationDate", "createdAt", "RotationType"],
    default_sort: "RotationDate",
};

/// `GET /keys/{id}/rotations`: the rotations AWS lists for the key now (ListKeyRotations, every page), each
/// as CCKM shows a rotation: AWS's own fields under `aws_param`.
pub async fn rotations(
    app: &App,
    id: &str,
    request: &HttpRequest,
    caller: &Principal,
) -> Result<HttpResponse, AppError> {
    let mut query = ListQuery::parse(&request.query, &ROTATION_LIST)?;
    for key in &mut query.sort {
        if key.field != "createdAt" {
            key.field.insert_str(0, "aws_param.");
        }
    }
    let key = service::get(app, id).await?;
    may_view(app, caller, &key).await?;
    let materials = service::materials(app, &key).await?;
    let items = materials
        .rotations
        .iter()
        .filter(|rotation| {
            let text = |v: &Option<String>| v.clone().unwrap_or_default();
            query.keeps(&[
                ("key_source", KEY_SOURCE),
                ("key_material_origin", key.key_material_origin.as_str()),
                ("RotationType", &text(&rotation.rotation_type)),
                ("KeyMaterialId", &text(&rotation.key_material_id)),
                ("ImportState", &text(&rotation.import_state)),
                ("KeyMaterialState", &text(&rotation.key_material_state)),
            ])
        })
        .map(|rotation| views::rotation(&app.tenancy, &key, rotation))
        .collect();
    let (page, total) = query.page(items);
    Ok(HttpResponse::json(200, query.envelope(page, total)))
}

/// `GET /keys/{id}/versions`: the key's material versions from the material ids AWS reports: version 0 is
/// the material the key was created with, then one per rotation; `current` marks the one in use.
pub async fn versions(
    app: &App,
    id: &str,
    request: &HttpRequest,
    caller: &Principal,
) -> Result<HttpResponse, AppError> {
    let query = ListQuery::parse(&request.query, &MATERIAL_LIST)?;
    let key = service::get(app, id).await?;
    may_view(app, caller, &key).await?;
    let materials = service::materials(app, &key).await?;
    let original_is_current = materials.rotations.is_empty();
    let mut items = vec![json!({
        "version": 0,
        // AWS names the original material only while it is the current one.
        "key_material_id": if original_is_current { materials.current.clone() } else { None },
        "created_at": key.aws_param.creation_date,
        "rotation_type": null,
        "current": original_is_current,
    })];
    for (n, rotation) in materials.rotations.iter().enumerate() {
        let current =
            rotation.key_material_id.is_some() && rotation.key_material_id == materials.current;
        items.push(json!({
            "version": n + 1,
            "key_material_id": rotation.key_material_id,
            "created_at": rotation.rotation_date,
            "rotation_type": rotation.rotation_type,
            "current": current,
        }));
    }
    let (page, total) = query.page(items);
    Ok(HttpResponse::json(200, query.envelope(page, total)))
}
