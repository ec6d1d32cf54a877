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

/// Archives (or recovers) a KMS resource: archived, it keeps its keys; new jobs and KMS events leave it out,
/// and key writes are refused. Archiving twice changes nothing.
pub async fn archive(app: &App, id: &str, archived: bool) -> Result<KmsResource, AppError> {
    update(app, id, |kms| {
        let changed = kms.archived != archived;
        kms.archived = archived;
        Ok(changed)
    })
    .await
}

pub async fn update_acls(app: &App, id: &str, body: &[u8]) -> Result<KmsResource, AppError> {
    let update_body = AclUpdate::parse(body)?;
    update(app, id, |kms| {
        let next = update_body.apply(&kms.acls);
        let changed = next != kms.acls;
        kms.acls = next;
        Ok(changed)
    })
    .await
}

/// Reads the resource, changes it, and writes it back only if nobody changed it in between (Terraform
/// applies two ACL resources of one KMS resource at once); read again and redone when someone did.
async fn update(
    app: &App,
    id: &str,
    change: impl Fn(&mut KmsResource) -> Result<bool, AppError>,
) -> Result<KmsResource, AppError> {
    for _ in 0..UPDATE_ATTEMPTS {
        let mut kms = get(app, id).await?;
        let seen = kms.updated_at;
        if !change(&mut kms)? {
            return Ok(kms);
        }
        // A new stamp, even within the microsecond the last writer stamped.
        kms.updated_at = now().max(seen + chrono::Duration::microseconds(1));
        if app.kms.replace_seen(&kms, seen).await? {
            return Ok(kms);
        }
    }
    Err(AppError::Conflict(format!(
        "KMS resource '{id}' kept changing; try again"
    )))
}

/// Writers racing on one resource are few (a plan's ACL resources): a few rounds settle them.
const UPDATE_ATTEMPTS: usize = 8;

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
