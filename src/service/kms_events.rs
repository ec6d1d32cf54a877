//! KMS changes that CloudTrail reported: the keys an event names, and the keys its aliases named before,
//! are read again in the registered KMS resource that owns their account and region, with the engine's
//! per-key reads and its rate limiter. A read is stamped with the time it began, and a read that began
//! later is never overwritten, so repeated and out-of-order events leave the newest state stored.

use super::keys::{Reread, open, reread};
use crate::app::App;
use crate::domain::AppError;
use crate::domain::job::unit_key;
use crate::domain::kms::KmsResource;
use crate::domain::kms_event::{KeyRef, KmsChange};
use crate::ports::{KeyIndex, KeySource};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What one event changed in the store, per key read.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Keys read and stored.
    pub stored: usize,
    /// Keys AWS no longer has, flagged gone.
    pub flagged_gone: usize,
    /// Keys whose stored state came from a later read, kept.
    pub newer_kept: usize,
    /// Keys AWS does not have and we never stored (created and deleted before the event came).
    pub unknown: usize,
    /// Regions of the event's keys that no registered KMS resource of the account syncs: left alone.
    pub unregistered: Vec<String>,
}

/// The registered KMS resource that syncs `account_id` in `region`; with two, the first created.
fn owner<'a>(
    resources: &'a [KmsResource],
    account_id: &str,
    region: &str,
) -> Option<&'a KmsResource> {
    resources
        .iter()
        .filter(|kms| kms.account_id == account_id && kms.syncs(region))
        .min_by_key(|kms| (kms.created_at, kms.id))
}

pub async fn apply(app: &App, change: &KmsChange) -> Result<Applied, AppError> {
    let resources = app.kms.list().await?;
    let mut keys = change.keys.clone();
    // The key an alias left is in no field of the event: our records know which it was.
    if !change.aliases.is_empty() {
        let unit = unit_key(&change.account_id, &change.region);
        let mut held = Vec::new();
        app.keys
            .for_each_indexed(
                &KeyIndex::Aliases(change.aliases.clone()),
                true,
                change.aliases.len(),
                &mut |record| {
                    if record.unit == unit {
                        held.push(KeyRef {
                            region: record.region.clone(),
                            key_id: record.aws_param.key_id.clone(),
                        });
                    }
                    true
                },
            )
            .await?;
        keys.extend(held);
        keys.sort();
        keys.dedup();
    }
    let mut applied = Applied::default();
    let mut sources: BTreeMap<String, Arc<dyn KeySource>> = BTreeMap::new();
    for key in keys {
        let Some(kms) = owner(&resources, &change.account_id, &key.region) else {
            if !applied.unregistered.contains(&key.region) {
                applied.unregistered.push(key.region.clone());
            }
            continue;
        };
        let source = match sources.get(&key.region) {
            Some(source) => source.clone(),
            None => {
                let source = open(app, kms, &key.region).await?;
                sources.insert(key.region.clone(), source.clone());
                source
            }
        };
        match reread(
            source.as_ref(),
            &app.keys,
            kms,
            &key.region,
            &key.key_id,
            true,
        )
        .await?
        {
            Reread::Stored => applied.stored += 1,
            Reread::FlaggedGone => applied.flagged_gone += 1,
            Reread::NewerKept => applied.newer_kept += 1,
            Reread::Unknown => applied.unknown += 1,
        }
    }
    Ok(applied)
}
