//! Key writes in AWS, for CCKM's clients (Terraform's `ciphertrust_aws_key`, Ansible's `cckm_aws_key`):
//! create a key, or change one, then read it back with the engine's per-key read and store it, so the
//! answer and the key list show what AWS holds now. Bad input is refused before AWS is called.

use super::keys::{self, Reread};
use crate::app::App;
use crate::domain::AppError;
use crate::domain::key::{KeyRecord, key_record_id};
use crate::domain::key_change::{KeyChange, NewKey};
use crate::domain::kms::KmsResource;
use crate::domain::region::partition_of;
use crate::ports::KeyWriter;
use std::sync::Arc;
use std::time::Duration;

/// Reads of a key just written that may find AWS not showing it yet (KMS is eventually consistent).
const READ_BACK_ATTEMPTS: u32 = 5;
const READ_BACK_PAUSE: Duration = Duration::from_millis(200);

/// A key made in AWS, and stored. `allow` is asked whether the caller may create keys in the KMS resource.
pub async fn create(
    app: &App,
    body: &[u8],
    allow: impl Fn(&KmsResource, &str) -> Result<(), AppError>,
) -> Result<KeyRecord, AppError> {
    let key = NewKey::parse(body)?;
    let kms = super::kms::get(app, &key.kms).await?;
    allow(&kms, "keycreate")?;
    in_service(&kms)?;
    in_regions(&kms, "region", &key.region)?;
    if let Some(alias) = &key.alias
        && keys::alias_taken(app, &kms, &key.region, alias).await?
    {
        return Err(AppError::Conflict(format!(
            "alias '{alias}' names another key in {} already",
            key.region
        )));
    }
    let writer = open(app, &kms, &key.region).await?;
    let key_id = writer.create_key(&key).await?;
    // The key exists whatever its alias does: it is stored either way, and a refused alias says so.
    let named = match &key.alias {
        Some(alias) => writer
            .change_key(&key_id, &KeyChange::AddAlias(alias.clone()))
            .await
            .err(),
        None => None,
    };
    let stored = read_back(app, &kms, &key.region, &key_id).await?;
    match named {
        Some(err) => Err(AppError::Conflict(format!(
            "key {key_id} was created (stored as '{}') without its alias: {err}",
            stored.id
        ))),
        None => Ok(stored),
    }
}

/// A change to a stored key made in AWS; the key (for a replica, the replica) as stored after it.
pub async fn change(
    app: &App,
    id: &str,
    action: &str,
    body: &[u8],
    allow: impl Fn(&KmsResource, &str) -> Result<(), AppError>,
) -> Result<KeyRecord, AppError> {
    let change = KeyChange::parse(action, body)?;
    let key = keys::get(app, id).await?;
    let kms = keys::kms_of(app, &key).await?;
    allow(&kms, change.acl_action())?;
    in_service(&kms)?;
    in_regions(&kms, "the key's region", &key.region)?;
    match &change {
        KeyChange::Replicate(replica) => in_regions(&kms, "replica_region", &replica.region)?,
        KeyChange::UpdatePrimaryRegion(region) => in_regions(&kms, "PrimaryRegion", region)?,
        _ => {}
    }
    let key_id = &key.aws_param.key_id;
    open(app, &kms, &key.region)
        .await?
        .change_key(key_id, &change)
        .await?;
    match &change {
        KeyChange::Replicate(replica) => {
            return read_back(app, &kms, &replica.region, key_id).await;
        }
        // The old primary becomes a replica: the new primary's record is read again too.
        KeyChange::UpdatePrimaryRegion(region) => {
            read_back(app, &kms, region, key_id).await?;
        }
        _ => {}
    }
    read_back(app, &kms, &key.region, key_id).await
}

/// The public key of a stored asymmetric key, as AWS gives it now (PEM).
pub async fn public_key(
    app: &App,
    id: &str,
    allow: impl Fn(&KmsResource, &str) -> Result<(), AppError>,
) -> Result<(KeyRecord, String), AppError> {
    let key = keys::get(app, id).await?;
    let kms = keys::kms_of(app, &key).await?;
    allow(&kms, crate::domain::acl::VIEW)?;
    if let Some(kind @ ("symmetric" | "hmac")) = key.key_type.as_deref() {
        return Err(AppError::InvalidParam(format!(
            "key '{id}' is {kind}: only an asymmetric key has a public key"
        )));
    }
    let pem = open(app, &kms, &key.region)
        .await?
        .public_key(&key.aws_param.key_id)
        .await?;
    Ok((key, pem))
}

fn in_service(kms: &KmsResource) -> Result<(), AppError> {
    if kms.archived {
        return Err(AppError::Conflict(format!(
            "KMS resource '{}' is archived: recover it first",
            kms.name
        )));
    }
    Ok(())
}

fn in_regions(kms: &KmsResource, field: &str, region: &str) -> Result<(), AppError> {
    if kms.regions.iter().any(|r| r == region) {
        return Ok(());
    }
    Err(AppError::InvalidParam(format!(
        "{field}: '{region}' is not a region of KMS resource '{}' ({}); add it to the resource first",
        kms.name,
        kms.regions.join(", ")
    )))
}

async fn open(app: &App, kms: &KmsResource, region: &str) -> Result<Arc<dyn KeyWriter>, AppError> {
    let connection = super::connections::reach(app, kms).await?;
    app.writer
        .open_writer(&connection, region)
        .await
        .map_err(keys::source_error)
}

/// Reads the key from AWS and stores it; a key AWS does not show yet is read again a few times.
async fn read_back(
    app: &App,
    kms: &KmsResource,
    region: &str,
    key_id: &str,
) -> Result<KeyRecord, AppError> {
    let source = keys::open(app, kms, region).await?;
    for attempt in 1..=READ_BACK_ATTEMPTS {
        match keys::reread(source.as_ref(), &app.keys, kms, region, key_id, true).await? {
            Reread::Unknown if attempt < READ_BACK_ATTEMPTS => {
                tokio::time::sleep(READ_BACK_PAUSE).await;
            }
            Reread::Unknown => break,
            _ => {
                let arn = format!(
                    "arn:{}:kms:{region}:{}:key/{key_id}",
                    partition_of(region),
                    kms.account_id
                );
                return keys::get(app, &key_record_id(&arn).to_string()).await;
            }
        }
    }
    Err(AppError::Internal(format!(
        "key {key_id} in {region} was written but AWS does not show it yet"
    )))
}
