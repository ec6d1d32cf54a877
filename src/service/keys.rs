//! Synced keys: reading, deleting our record, and refreshing one key from AWS with the engine's per-key code.

use crate::app::App;
use crate::domain::AppError;
use crate::domain::key::{KeyDetails, KeyRecord, Sighting, key_record_id};
use crate::domain::kms::KmsResource;
use crate::domain::region::partition_of;
use crate::domain::time::now;
use crate::ports::{KeyMaterials, KeySource, KeyStore, ListedKey, SourceError};
use std::sync::Arc;
use uuid::Uuid;

pub async fn get(app: &App, id: &str) -> Result<KeyRecord, AppError> {
    let not_found = || AppError::NotFound(format!("AWS key '{id}' not found"));
    let uuid = Uuid::parse_str(id).map_err(|_| not_found())?;
    app.keys.get(uuid).await?.ok_or_else(not_found)
}

pub async fn delete(app: &App, id: &str) -> Result<(), AppError> {
    let key = get(app, id).await?;
    app.keys.delete(key.id).await?;
    Ok(())
}

/// Re-reads one key from AWS now, with the engine's per-key reads, and stores it; a key AWS no longer has
/// is kept and flagged gone. The write leaves the sync's own stamp (`last_seen_job`) alone, so a refresh
/// racing a sync never undoes what the sync recorded.
pub async fn refresh(app: &App, kms: &KmsResource, key: &KeyRecord) -> Result<KeyRecord, AppError> {
    let source = open(app, kms, &key.region).await?;
    reread(
        source.as_ref(),
        &app.keys,
        kms,
        &key.region,
        &key.aws_param.key_id,
        false,
    )
    .await?;
    // What is stored now: a newer read (a sync, an event) may have been stored instead of this one.
    get(app, &key.id.to_string()).await
}

/// What AWS says of a stored key now, read with the engine's per-key read and stored nowhere (a reader's
/// question must not write); None when AWS no longer has it.
pub async fn read_now(app: &App, key: &KeyRecord) -> Result<Option<KeyDetails>, AppError> {
    let kms = kms_of(app, key).await?;
    let source = open(app, &kms, &key.region).await?;
    let listed = ListedKey {
        key_id: key.aws_param.key_id.clone(),
        arn: key.arn.clone(),
    };
    let aliases = source
        .aliases_of(&listed.key_id)
        .await
        .map_err(source_error)?;
    source
        .read_key(&listed, &aliases)
        .await
        .map_err(source_error)
}

/// What AWS reports now of a stored key's material: its current id and its rotations.
pub async fn materials(app: &App, key: &KeyRecord) -> Result<KeyMaterials, AppError> {
    let kms = kms_of(app, key).await?;
    let source = open(app, &kms, &key.region).await?;
    match source
        .key_materials(&key.aws_param.key_id)
        .await
        .map_err(source_error)?
    {
        Some(materials) => Ok(materials),
        None => Err(AppError::NotFound(format!(
            "AWS no longer has key '{}'",
            key.arn
        ))),
    }
}

/// Whether `alias` names a key of the KMS resource's account in `region` now (ListAliases).
pub async fn alias_taken(
    app: &App,
    kms: &KmsResource,
    region: &str,
    alias: &str,
) -> Result<bool, AppError> {
    let aliases = open(app, kms, region)
        .await?
        .aliases()
        .await
        .map_err(source_error)?;
    Ok(aliases.values().flatten().any(|a| a == alias))
}

/// The KMS resource a stored key was synced with; `Conflict` when it is no longer registered.
pub async fn kms_of(app: &App, key: &KeyRecord) -> Result<KmsResource, AppError> {
    app.kms.get(key.kms_id).await?.ok_or_else(|| {
        AppError::Conflict(format!(
            "the KMS resource of AWS key '{}' is no longer registered",
            key.id
        ))
    })
}

/// The key source of one account and region, as the engine opens it (the same rate limiter).
pub async fn open(
    app: &App,
    kms: &KmsResource,
    region: &str,
) -> Result<Arc<dyn KeySource>, AppError> {
    let connection = super::connections::reach(app, kms).await?;
    app.source
        .open(&connection, region)
        .await
        .map_err(source_error)
}

/// What `reread` found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reread {
    /// AWS has the key; what it said is stored.
    Stored,
    /// AWS no longer has the key; our record is kept, flagged gone.
    FlaggedGone,
    /// A read that began later was stored already, and stays.
    NewerKept,
    /// AWS has no such key and we never stored it.
    Unknown,
}

/// Reads one key of `kms` in `region` from AWS with the engine's per-key reads, and stores what AWS said.
/// A key AWS no longer has is kept and flagged gone. The record is stamped with the time the read began,
/// so a read that began later and was stored first is never overwritten. `create`: a key we have not
/// stored yet is stored; otherwise that is `NotFound`.
pub async fn reread(
    source: &dyn KeySource,
    keys: &Arc<dyn KeyStore>,
    kms: &KmsResource,
    region: &str,
    key_id: &str,
    create: bool,
) -> Result<Reread, AppError> {
    let at = now();
    let arn = format!(
        "arn:{}:kms:{region}:{}:key/{key_id}",
        partition_of(region),
        kms.account_id
    );
    let listed = ListedKey {
        key_id: key_id.to_string(),
        arn,
    };
    let aliases = source.aliases_of(key_id).await.map_err(source_error)?;
    let record = match source
        .read_key(&listed, &aliases)
        .await
        .map_err(source_error)?
    {
        Some(details) => KeyRecord::from_details(
            details,
            Sighting {
                kms_id: kms.id,
                kms_name: &kms.name,
                region,
                job_id: None,
                now: at,
                first_stored: None,
            },
        ),
        None => match keys.get(key_record_id(&listed.arn)).await? {
            Some(mut stored) => {
                stored.gone = true;
                stored.updated_at = at;
                stored.synced_at = at;
                stored
            }
            None if create => return Ok(Reread::Unknown),
            None => {
                return Err(AppError::NotFound(format!(
                    "AWS key '{}' not found",
                    listed.arn
                )));
            }
        },
    };
    Ok(match keys.store_read(&record, create).await? {
        false => Reread::NewerKept,
        true if record.gone => Reread::FlaggedGone,
        true => Reread::Stored,
    })
}

pub fn source_error(err: SourceError) -> AppError {
    match err {
        SourceError::Refused(reason) => {
            AppError::Conflict(format!("AWS refused to read the key: {reason}"))
        }
        SourceError::Transient(reason) => {
            AppError::Internal(format!("reading the key from AWS: {reason}"))
        }
    }
}
