//! AWS Organizations discovery: list the organization's accounts through the management-account role,
//! register each active account no KMS resource syncs yet (`auto_added`), and mark auto-added accounts
//! that were suspended or left the organization (kept, with their keys; jobs skip them). A second run
//! with the same organization writes nothing.

use crate::app::App;
use crate::domain::AppError;
use crate::domain::kms::OrgStatus;
use crate::domain::organization::{self, DiscoveryInput, DiscoveryReport};
use crate::domain::time::now;
use futures::stream::{self, StreamExt};
use uuid::Uuid;

/// Registrations written at once.
const CONCURRENT_WRITES: usize = 16;

/// Runs a discovery with `request`'s inputs over the configured ones.
pub async fn discover(app: &App, request: DiscoveryInput) -> Result<DiscoveryReport, AppError> {
    let settings = request.over(&app.discovery).settings()?;
    let role = &settings.management_role_arn;
    let all = app.organization.accounts(role).await?;
    let in_scope = if settings.organizational_units.is_empty() {
        all.clone()
    } else {
        app.organization
            .accounts_under(role, &settings.organizational_units)
            .await?
    };
    let registered = app.kms.list().await?;
    let plan = organization::plan(&settings, &in_scope, &all, &registered, now(), Uuid::new_v4);
    let mut report = DiscoveryReport {
        accounts_listed: in_scope.len(),
        accounts_active: in_scope.iter().filter(|a| a.state == "ACTIVE").count(),
        registered_by_hand: plan.registered_by_hand,
        unchanged: plan.unchanged,
        ..DiscoveryReport::default()
    };
    let inserted: Vec<(String, Result<(), AppError>)> = stream::iter(plan.register)
        .map(|kms| async move { (kms.name.clone(), app.kms.insert(&kms).await) })
        .buffer_unordered(CONCURRENT_WRITES)
        .collect()
        .await;
    for (name, result) in inserted {
        match result {
            Ok(()) => report.registered.push(name),
            // Taken by a resource registered by hand for another account, or by a discovery running at
            // the same time: the next run sees which.
            Err(AppError::Conflict(reason)) => {
                tracing::warn!(name, %reason, "account not registered: its name is taken");
                report.name_taken.push(name);
            }
            Err(err) => return Err(err),
        }
    }
    for kms in plan.mark {
        app.kms.replace(&kms).await?;
        let list = match kms.org_status {
            Some(OrgStatus::Active) => &mut report.reactivated,
            Some(OrgStatus::Suspended) => &mut report.suspended,
            Some(OrgStatus::Left) | None => &mut report.left,
        };
        list.push(kms.name);
    }
    report.registered.sort();
    tracing::info!(
        registered = report.registered.len(),
        suspended = report.suspended.len(),
        left = report.left.len(),
        reactivated = report.reactivated.len(),
        unchanged = report.unchanged,
        "organization discovery done"
    );
    Ok(report)
}
