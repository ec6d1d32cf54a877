//! KMS resources: create (with the account check), patch, delete (refused while a job uses it), and
//! resolving the names or ids a job request names.

use crate::app::App;
use crate::domain::AppError;
use crate::domain::acl::AclUpdate;
use crate::domain::kms::{CreateKmsBody, KmsResource, PatchKmsBody};
use crate::domain::list::parse_json_body;
use crate::domain::time::now;
use uuid::Uuid;

pub async fn create(app: &App, body: &[u8]) -> Result<KmsResource, AppError> {
    let mut body: CreateKmsBody = parse_json_body(body)?;
    let connection = body.connection.take();
    let mut kms = body.validate(Uuid::new_v4(), now())?;
    kms.connection = super::connections::link(app, connection.as_deref()).await?;
    check_own_account(app, &kms).await?;
    app.kms.insert(&kms).await?;
    Ok(kms)
}

pub async fn patch(app: &App, id: &str, body: &[u8]) -> Result<KmsResource, AppError> {
    let mut patch: PatchKmsBody = parse_json_body(body)?;
    let connection = patch.connection.take();
    let current = get(app, id).await?;
    let mut next = patch.apply(&current, now())?;
    if let Some(link) = super::connections::link(app, connection.as_deref()).await? {
        next.connection = Some(link);
    }
    check_own_account(app, &next).await?;
    app.kms.replace(&next).await?;
    Ok(next)
}

/// Archives (or recovers) a KMS resource: archived, it keeps its keys, and no job, event or key write
/// reaches its account. Archiving twice changes nothing.
pub async fn archive(app: &App, id: &str, archived: bool) -> Result<KmsResource, AppError> {
    let mut kms = get(app, id).await?;
    if kms.archived != archived {
        kms.archived = archived;
        kms.updated_at = now();
        app.kms.replace(&kms).await?;
    }
    Ok(kms)
}

pub async fn update_acls(app: &App, id: &str, body: &[u8]) -> Result<KmsResource, AppError> {
    let update = AclUpdate::parse(body)?;
    let mut kms = get(app, id).await?;
    kms.acls = update.apply(&kms.acls);
    kms.updated_at = now();
    app.kms.replace(&kms).await?;
    Ok(kms)
}

pub async fn delete(app: &App, id: &str) -> Result<(), AppError> {
    let kms = get(app, id).await?;
    for job_id in super::jobs::running(app).await? {
        let uses_it = app
            .jobs
            .get(job_id)
            .await?
            .is_some_and(|job| job.units.values().any(|u| u.unit.kms_id == kms.id));
        if uses_it {
            return Err(AppError::Conflict(format!(
                "KMS resource '{}' is in use by running synchronization job '{job_id}'",
                kms.name
            )));
        }
    }
    app.kms.remove(&kms).await
}

/// A KMS resource by id or by name.
pub async fn get(app: &App, id: &str) -> Result<KmsResource, AppError> {
    let by_id = match Uuid::parse_str(id) {
        Ok(uuid) => app.kms.get(uuid).await?,
        Err(_) => None,
    };
    let found = match by_id {
        Some(kms) => Some(kms),
        None => app.kms.find_by_name(id).await?,
    };
    found.ok_or_else(|| AppError::NotFound(format!("KMS resource '{id}' not found")))
}

/// Each name or id to its resource, in order; the first unknown one is a 404 naming it.
pub async fn resolve(app: &App, names_or_ids: &[String]) -> Result<Vec<KmsResource>, AppError> {
    let mut resources = Vec::with_capacity(names_or_ids.len());
    for name_or_id in names_or_ids {
        resources.push(get(app, name_or_id).await?);
    }
    Ok(resources)
}

/// Without a role the function's own credentials are used, so they must belong to the named account. A
/// connection's own keys or role are the owner's to choose: AWS refuses the sync if they do not fit.
async fn check_own_account(app: &App, kms: &KmsResource) -> Result<(), AppError> {
    if kms.assume_role_arn.is_some() || kms.connection.is_some() {
        return Ok(());
    }
    let own = app.identity.account_id().await?;
    if own != kms.account_id {
        return Err(AppError::InvalidParam(format!(
            "account_id {} is not the account of this function's credentials ({own}); give assume_role_arn",
            kms.account_id
        )));
    }
    Ok(())
}
