//! Synced keys: reading, deleting our record, and refreshing one key from AWS with the engine's per-key code.

use crate::app::App;
use crate::domain::AppError;
use crate::domain::key::{KeyRecord, Sighting};
use crate::domain::time::now;
use crate::ports::{Connection, ListedKey, SourceError};
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
pub async fn refresh(app: &App, id: &str) -> Result<KeyRecord, AppError> {
    let mut key = get(app, id).await?;
    let kms = app.kms.get(key.kms_id).await?.ok_or_else(|| {
        AppError::Conflict(format!(
            "the KMS resource of AWS key '{id}' is no longer registered"
        ))
    })?;
    let source = app
        .source
        .open(&Connection::from(&kms), &key.region)
        .await
        .map_err(source_error)?;
    let aliases = source.aliases().await.map_err(source_error)?;
    let key_aliases = aliases
        .get(&key.aws_param.key_id)
        .cloned()
        .unwrap_or_default();
    let at = now();
    let listed = ListedKey {
        key_id: key.aws_param.key_id.clone(),
        arn: key.arn.clone(),
    };
    match source
        .read_key(&listed, &key_aliases)
        .await
        .map_err(source_error)?
    {
        Some(details) => {
            let sighting = Sighting {
                kms_id: kms.id,
                kms_name: &kms.name,
                region: &key.region,
                job_id: key.last_seen_job,
                now: at,
                first_stored: Some(key.created_at),
            };
            key = KeyRecord::from_details(details, sighting);
        }
        None => {
            key.gone = true;
            key.updated_at = at;
            key.synced_at = at;
        }
    }
    app.keys.update_from_refresh(&key).await?;
    // What is stored now: the sync's stamp may be newer than the one read above.
    get(app, id).await
}

fn source_error(err: SourceError) -> AppError {
    match err {
        SourceError::Refused(reason) => {
            AppError::Conflict(format!("AWS refused to read the key: {reason}"))
        }
        SourceError::Transient(reason) => {
            AppError::Internal(format!("reading the key from AWS: {reason}"))
        }
    }
}
