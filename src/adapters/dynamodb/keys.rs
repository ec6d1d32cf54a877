//! Synced keys in DynamoDB: batch writes, the `by_unit` index for one account/region, refresh updates, and
//! the gone sweep, whose every verdict is one transaction with the count on the unit item (jobs table).

use super::jobs::{job_pk, unit_sk};
use super::key_index::{
    Cursor, IndexPlan, adjust_count, alias_delete, alias_writes, first_sightings, in_entry_order,
    keep_count, kept_counts, next_cursor, page_size, record_id, stored_aliases,
};
use super::key_item::{LAYOUT, from_key_item, shard_of, to_key_item};
use super::{
    CONDITION_FAILED, Item, batch_put, batch_write, cancellation_reasons, condition_failed,
    for_each_page, from_item, in_rounds, n, s, store_error,
};
use crate::domain::AppError;
use crate::domain::key::KeyRecord;
use crate::domain::key::UNKNOWN_STATE;
use crate::domain::time::{Timestamp, format};
use crate::ports::{
    GoneSweep, KeyIndex, KeyStore, Settled, StoredKeyStub, StoredState, UnitCount, Verdict,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValue, TransactWriteItem, Update,
};
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;
use uuid::Uuid;

const UNIT_INDEX: &str = "by_unit";
/// BatchGetItem takes at most 100 keys per call.
const BATCH_GET_LIMIT: usize = 100;
/// Verdicts per transaction: with the unit's count, well under TransactWriteItems' 100 actions and 4 MB.
const SWEEP_CHUNK: usize = 25;
/// Retries of a sweep transaction that met another writer's transaction on one of its items.
const SWEEP_CONFLICT_RETRIES: u32 = 6;
/// Attributes a read outside a sync writes only on a new record: when the key was first stored.
const KEPT_BY_READ: [&str; 2] = ["createdAt", "created"];
/// `GoneSweep::may_decide`, on the record: not gone, not seen by the sweep's job, stamped before it started.
const SWEEP_MAY_DECIDE: &str = "attribute_exists(id) AND gone = :no \
     AND (attribute_not_exists(last_seen_job) OR last_seen_job <> :job) AND synced_at < :started";

#[derive(Deserialize)]
struct StateItem {
    id: Uuid,
    #[serde(rename = "createdAt", with = "crate::domain::time::rfc3339")]
    created_at: Timestamp,
    #[serde(with = "crate::domain::time::rfc3339")]
    synced_at: Timestamp,
    #[serde(default)]
    content_hash: Option<String>,
    gone: bool,
    #[serde(default)]
    layout: u32,
}

#[derive(Deserialize)]
struct StubItem {
    id: Uuid,
    arn: String,
    #[serde(rename = "createdAt", with = "crate::domain::time::rfc3339")]
    created_at: Timestamp,
    #[serde(with = "crate::domain::time::rfc3339")]
    synced_at: Timestamp,
    gone: bool,
    #[serde(default)]
    last_seen_job: Option<Uuid>,
}

pub struct DynamoKeyStore {
    client: Client,
    table: String,
    /// Where the unit items live: a sweep counts each verdict there.
    jobs_table: String,
}

/// Whether a transaction's cancellation reason has this code.
fn is(reason: &Option<String>, code: &str) -> bool {
    reason.as_deref() == Some(code)
}

/// The values `SWEEP_MAY_DECIDE` names.
fn may_decide_values(sweep: &GoneSweep) -> Item {
    Item::from([
        (":no".to_string(), AttributeValue::Bool(false)),
        (":job".to_string(), s(sweep.job_id.to_string())),
        (":started".to_string(), s(format(&sweep.job_started))),
    ])
}

impl DynamoKeyStore {
    pub fn new(client: Client, table: &str, jobs_table: &str) -> Self {
        DynamoKeyStore {
            client,
            table: table.to_string(),
            jobs_table: jobs_table.to_string(),
        }
    }

    /// The write one verdict makes on its key, conditioned on `SWEEP_MAY_DECIDE`.
    fn verdict_write(
        &self,
        verdict: &Verdict,
        sweep: &GoneSweep,
        now: Timestamp,
    ) -> Result<TransactWriteItem, AppError> {
        let built =
            |e: aws_sdk_dynamodb::error::BuildError| AppError::internal("building a request", e);
        Ok(match verdict {
            Verdict::Gone(id) => TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .key("id", s(id.to_string()))
                        .update_expression("SET gone = :yes, gone_shard = :shard, updatedAt = :now")
                        .condition_expression(SWEEP_MAY_DECIDE)
                        // The condition's values first: `set_` replaces what was there.
                        .set_expression_attribute_values(Some(may_decide_values(sweep)))
                        .expression_attribute_values(":yes", AttributeValue::Bool(true))
                        .expression_attribute_values(":shard", s(format!("true#{}", shard_of(*id))))
                        .expression_attribute_values(":now", s(format(&now)))
                        .build()
                        .map_err(built)?,
                )
                .build(),
            Verdict::Live(record) => TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(to_key_item(record)?))
                        .condition_expression(SWEEP_MAY_DECIDE)
                        .set_expression_attribute_values(Some(may_decide_values(sweep)))
                        .build()
                        .map_err(built)?,
                )
                .build(),
        })
    }

    /// One transaction: the verdicts' writes, and their counts added to the unit while it is in progress.
    /// On a cancellation, the reason of each item (the unit's is last).
    async fn settle_chunk(
        &self,
        sweep: &GoneSweep,
        verdicts: &[&Verdict],
        now: Timestamp,
    ) -> Result<Result<Settled, Vec<Option<String>>>, AppError> {
        let settled = Settled::of(verdicts.iter().copied());
        let count = Update::builder()
            .table_name(&self.jobs_table)
            .key("pk", s(job_pk(sweep.job_id)))
            .key("sk", s(unit_sk(&sweep.unit_key)))
            .update_expression("ADD keys_gone :gone, keys_synced :restored")
            .condition_expression("#state = :running")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":gone", n(settled.flagged))
            .expression_attribute_values(":restored", n(settled.restored))
            .expression_attribute_values(":running", s("in_progress"))
            .build()
            .map_err(|e| AppError::internal("building a request", e))?;
        let writes = verdicts
            .iter()
            .map(|v| self.verdict_write(v, sweep, now))
            .collect::<Result<Vec<_>, _>>()?;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Ok(settled)),
            Err(err) => match cancellation_reasons(&err) {
                Some(reasons) if reasons.len() == verdicts.len() + 1 => Ok(Err(reasons)),
                _ => Err(store_error("settle gone-sweep verdicts", err)),
            },
        }
    }

    /// Makes the alias items of these records match their aliases, from the aliases stored before.
    async fn sync_aliases<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a KeyRecord>,
    ) -> Result<(), AppError> {
        let keys: Vec<&KeyRecord> = keys.into_iter().collect();
        if keys.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = keys.iter().map(|key| key.id).collect();
        let before: HashMap<Uuid, BTreeSet<String>> = self
            .batch_get(&ids, Some("id, aws_param.Alias"))
            .await?
            .iter()
            .filter_map(|item| {
                let id = item.get("id")?.as_s().ok()?;
                Some((Uuid::parse_str(id).ok()?, stored_aliases(item)))
            })
            .collect();
        let none = BTreeSet::new();
        let mut writes = Vec::new();
        for key in keys {
            writes.extend(alias_writes(key, before.get(&key.id).unwrap_or(&none))?);
        }
        batch_write(&self.client, &self.table, writes).await
    }

    /// Reads the partitions of `plan` a page at a time, merged in creation order, and hands the records
    /// to `visit` until it answers false; answers the items read (index entries and records).
    async fn merged(
        &self,
        plan: &IndexPlan,
        newest_first: bool,
        want: usize,
        visit: &mut (dyn FnMut(KeyRecord) -> bool + Send),
    ) -> Result<u64, AppError> {
        let mut cursors: Vec<Cursor> = plan.values.iter().cloned().map(Cursor::new).collect();
        let page = page_size(want, cursors.len());
        let (mut read, mut taken) = (0u64, 0usize);
        let mut handed = HashSet::new();
        loop {
            // Every partition whose entries ran out reads its next page, all at once: the order is known
            // only while every partition shows its next entry.
            let mut pages = Vec::new();
            for cursor in cursors.iter_mut().filter(|c| c.needs_page()) {
                pages.push(self.read_page(cursor, plan, newest_first, page));
            }
            for entries in futures::future::join_all(pages).await {
                read += entries?;
            }
            let run_length = want.saturating_sub(taken).clamp(5, 100);
            let mut run = Vec::new();
            while run.len() < run_length && !cursors.iter().any(Cursor::needs_page) {
                let Some(next) = next_cursor(&cursors, newest_first) else {
                    break;
                };
                run.extend(cursors[next].entries.pop_front());
            }
            if run.is_empty() {
                if cursors.iter().any(Cursor::needs_page) {
                    continue;
                }
                return Ok(read);
            }
            let run = first_sightings(run, plan, &mut handed);
            let fetched = if plan.whole_records {
                HashMap::new()
            } else {
                let ids: Vec<Uuid> = run
                    .iter()
                    .filter_map(|entry| record_id(entry, plan.record_ref))
                    .collect();
                read += ids.len() as u64;
                self.get_many(&ids)
                    .await?
                    .into_iter()
                    .map(|record| (record.id, record))
                    .collect()
            };
            for record in in_entry_order(run, plan, fetched)? {
                taken += 1;
                if !visit(record) {
                    return Ok(read);
                }
            }
        }
    }

    /// The next page of one partition of an index into its cursor; answers the entries read.
    async fn read_page(
        &self,
        cursor: &mut Cursor,
        plan: &IndexPlan,
        newest_first: bool,
        limit: i32,
    ) -> Result<u64, AppError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(plan.name)
            .key_condition_expression("#partition = :value")
            .expression_attribute_names("#partition", plan.hash)
            .expression_attribute_values(":value", s(cursor.value.clone()))
            .scan_index_forward(!newest_first)
            .limit(limit)
            .set_exclusive_start_key(cursor.next.take())
            .send()
            .await
            .map_err(|e| store_error("read a key index", e))?;
        // DynamoDB's own count of the index entries it read for this page.
        let read = output.scanned_count.max(0) as u64;
        let entries = output.items.unwrap_or_default();
        cursor.next = output.last_evaluated_key.filter(|key| !key.is_empty());
        cursor.exhausted = cursor.next.is_none();
        cursor.entries.extend(entries);
        Ok(read)
    }

    /// The stored items of these keys, 100 per BatchGetItem; `projection` limits the attributes read.
    async fn batch_get(
        &self,
        ids: &[Uuid],
        projection: Option<&str>,
    ) -> Result<Vec<Item>, AppError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_GET_LIMIT) {
            let keys = chunk
                .iter()
                .map(|id| Item::from([("id".to_string(), s(id.to_string()))]))
                .collect();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .set_projection_expression(projection.map(String::from))
                .build()
                .map_err(|e| AppError::internal("building a request", e))?;
            let items = in_rounds("batch get", request, |request| async move {
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| store_error("read stored keys", e))?;
                let items = output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default();
                let left = output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
                Ok((items, left))
            })
            .await?;
            found.extend(items);
        }
        Ok(found)
    }

    /// Every item of one unit from the index, a page at a time; `projection` limits the attributes read.
    async fn query_unit(
        &self,
        unit_key: &str,
        projection: Option<&str>,
        visit: impl FnMut(Vec<Item>) -> Result<(), AppError>,
    ) -> Result<(), AppError> {
        let page = |start| async move {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(UNIT_INDEX)
                .key_condition_expression("#unit = :unit")
                .expression_attribute_names("#unit", "unit")
                .expression_attribute_values(":unit", s(unit_key))
                .set_exclusive_start_key(start);
            if let Some(projection) = projection {
                // `#unit` is already named; the projection's own names are plain attributes.
                query = query.projection_expression(projection);
            }
            let output = query
                .send()
                .await
                .map_err(|e| store_error("query keys of a unit", e))?;
            Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
        };
        for_each_page(page, visit).await
    }
}

#[async_trait]
impl KeyStore for DynamoKeyStore {
    async fn put_all(&self, keys: &[KeyRecord]) -> Result<(), AppError> {
        // The alias items first: a record written without them would never be written again (unchanged).
        self.sync_aliases(keys.iter()).await?;
        let items = keys
            .iter()
            .map(to_key_item)
            .collect::<Result<Vec<_>, _>>()?;
        batch_put(&self.client, &self.table, items).await
    }

    async fn get(&self, id: Uuid) -> Result<Option<KeyRecord>, AppError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(id.to_string()))
            .send()
            .await
            .map_err(|e| store_error("get key", e))?;
        output.item.map(from_key_item).transpose()
    }

    async fn delete(&self, id: Uuid) -> Result<bool, AppError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", s(id.to_string()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store_error("delete key", e))?;
        let Some(old) = output.attributes.filter(|a| !a.is_empty()) else {
            return Ok(false);
        };
        let old = from_key_item(old)?;
        let aliases = old
            .aws_param
            .alias
            .iter()
            .map(|alias| alias_delete(old.id, alias))
            .collect::<Result<Vec<_>, _>>()?;
        batch_write(&self.client, &self.table, aliases).await?;
        let cell = (old.indexed_state(), old.gone);
        adjust_count(&self.client, &self.jobs_table, &old.unit, Some(cell), None).await?;
        Ok(true)
    }

    async fn get_many(&self, ids: &[Uuid]) -> Result<Vec<KeyRecord>, AppError> {
        self.batch_get(ids, None)
            .await?
            .into_iter()
            .map(from_key_item)
            .collect()
    }

    async fn stored_states(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, StoredState>, AppError> {
        let items = self
            .batch_get(
                ids,
                Some("id, createdAt, synced_at, content_hash, gone, layout"),
            )
            .await?;
        let mut states = HashMap::with_capacity(items.len());
        for item in items {
            let state: StateItem = from_item(item)?;
            states.insert(
                state.id,
                StoredState {
                    created_at: state.created_at,
                    synced_at: state.synced_at,
                    // An item of an older layout lacks an index attribute: the sync writes it again.
                    content_hash: state.content_hash.filter(|_| state.layout >= LAYOUT),
                    gone: state.gone,
                },
            );
        }
        Ok(states)
    }

    async fn for_each_stub(
        &self,
        unit_key: &str,
        visit: &mut (dyn FnMut(StoredKeyStub) + Send),
    ) -> Result<(), AppError> {
        self.query_unit(
            unit_key,
            Some("id, arn, createdAt, synced_at, gone, last_seen_job"),
            |batch| {
                for item in batch {
                    let stub: StubItem = from_item(item)?;
                    visit(StoredKeyStub {
                        id: stub.id,
                        arn: stub.arn,
                        created_at: stub.created_at,
                        synced_at: stub.synced_at,
                        gone: stub.gone,
                        last_seen_job: stub.last_seen_job,
                    });
                }
                Ok(())
            },
        )
        .await
    }

    async fn store_read(&self, key: &KeyRecord, create: bool) -> Result<bool, AppError> {
        // The record as stored: its aliases decide the alias items to change, its cell the count to move.
        let before = self.get(key.id).await?;
        match &before {
            None if !create => {
                return Err(AppError::NotFound(format!(
                    "AWS key '{}' not found",
                    key.id
                )));
            }
            Some(stored) if stored.synced_at >= key.synced_at => return Ok(false),
            _ => {}
        }
        let aliases_before: BTreeSet<String> = before
            .iter()
            .flat_map(|old| old.aws_param.alias.iter().cloned())
            .collect();
        batch_write(
            &self.client,
            &self.table,
            alias_writes(key, &aliases_before)?,
        )
        .await?;
        let item = to_key_item(key)?;
        // The condition repeats on the record what `before` showed, against a writer in between.
        let exists = if create {
            "attribute_not_exists(id) OR"
        } else {
            "attribute_exists(id) AND"
        };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(key.id.to_string()))
            .condition_expression(format!("{exists} synced_at < :read_at"))
            .expression_attribute_values(
                ":read_at",
                s(crate::domain::time::format(&key.synced_at)),
            );
        let mut assignments = Vec::new();
        for (i, (name, value)) in item
            .into_iter()
            .filter(|(name, _)| name != "id" && name != "last_seen_job")
            .enumerate()
        {
            assignments.push(if KEPT_BY_READ.contains(&name.as_str()) {
                format!("#a{i} = if_not_exists(#a{i}, :v{i})")
            } else {
                format!("#a{i} = :v{i}")
            });
            update = update
                .expression_attribute_names(format!("#a{i}"), name)
                .expression_attribute_values(format!(":v{i}"), value);
        }
        let result = update
            .update_expression(format!("SET {}", assignments.join(", ")))
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(err) if condition_failed(&err) => {
                // Deleted, or read by someone else since: what is stored is theirs to keep.
                return match self.get(key.id).await? {
                    None if !create => Err(AppError::NotFound(format!(
                        "AWS key '{}' not found",
                        key.id
                    ))),
                    _ => Ok(false),
                };
            }
            Err(err) => return Err(store_error("store key", err)),
        }
        let from = before.as_ref().map(|old| (old.indexed_state(), old.gone));
        let to = (key.indexed_state(), key.gone);
        adjust_count(&self.client, &self.jobs_table, &key.unit, from, Some(to)).await?;
        Ok(true)
    }

    async fn settle_sweep(
        &self,
        sweep: &GoneSweep,
        verdicts: &[Verdict],
        now: Timestamp,
    ) -> Result<Settled, AppError> {
        // Keys AWS still has may have aliases their stored records lack: their alias items first.
        self.sync_aliases(verdicts.iter().filter_map(|verdict| match verdict {
            Verdict::Live(record) => Some(record.as_ref()),
            Verdict::Gone(_) => None,
        }))
        .await?;
        let mut total = Settled::default();
        for chunk in verdicts.chunks(SWEEP_CHUNK) {
            let mut pending: Vec<&Verdict> = chunk.iter().collect();
            let mut conflicts = 0;
            while !pending.is_empty() {
                let reasons = match self.settle_chunk(sweep, &pending, now).await? {
                    Ok(settled) => {
                        total.flagged += settled.flagged;
                        total.restored += settled.restored;
                        break;
                    }
                    Err(reasons) => reasons,
                };
                if reasons.last().is_some_and(|r| is(r, CONDITION_FAILED)) {
                    total.unit_ended = true;
                    return Ok(total);
                }
                let conflicted = reasons.iter().any(|r| is(r, "TransactionConflict"));
                if conflicted {
                    // Another writer on one of the items (a page record, a refresh): back off and retry.
                    conflicts += 1;
                    if conflicts > SWEEP_CONFLICT_RETRIES {
                        return Err(AppError::Internal(format!(
                            "gone sweep of {}: transactions kept conflicting",
                            sweep.unit_key
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(20 << conflicts)).await;
                }
                // A key whose record no longer lets this sweep decide it is left alone.
                let before = pending.len();
                pending = pending
                    .into_iter()
                    .zip(&reasons)
                    .filter(|(_, reason)| !is(reason, CONDITION_FAILED))
                    .map(|(verdict, _)| verdict)
                    .collect();
                if pending.len() == before && !conflicted {
                    return Err(AppError::Internal(format!(
                        "gone sweep of {}: transaction cancelled for {reasons:?}",
                        sweep.unit_key
                    )));
                }
            }
        }
        Ok(total)
    }

    async fn for_each_indexed(
        &self,
        index: &KeyIndex,
        newest_first: bool,
        want: usize,
        visit: &mut (dyn FnMut(KeyRecord) -> bool + Send),
    ) -> Result<u64, AppError> {
        self.merged(&IndexPlan::of(index), newest_first, want, visit)
            .await
    }

    async fn unit_counts(&self) -> Result<Vec<UnitCount>, AppError> {
        kept_counts(&self.client, &self.jobs_table).await
    }

    async fn recount(&self, unit_key: &str) -> Result<(), AppError> {
        let mut count = UnitCount {
            unit: unit_key.to_string(),
            ..UnitCount::default()
        };
        self.query_unit(unit_key, Some("aws_param.KeyState, gone"), |items| {
            for item in items {
                let state = item
                    .get("aws_param")
                    .and_then(|p| p.as_m().ok())
                    .and_then(|p| p.get("KeyState"))
                    .and_then(|v| v.as_s().ok())
                    .map_or(UNKNOWN_STATE, String::as_str);
                let gone = item
                    .get("gone")
                    .and_then(|v| v.as_bool().ok())
                    .copied()
                    .unwrap_or(false);
                *count.cells.entry((state.to_string(), gone)).or_default() += 1;
            }
            Ok(())
        })
        .await?;
        keep_count(&self.client, &self.jobs_table, &count).await
    }

    async fn scan(
        &self,
        units: Option<&[String]>,
        visit: &mut (dyn FnMut(KeyRecord) + Send),
    ) -> Result<(), AppError> {
        let mut decode = |batch: Vec<Item>| {
            for item in batch {
                visit(from_key_item(item)?);
            }
            Ok(())
        };
        match units {
            Some(units) => {
                for unit in units {
                    self.query_unit(unit, None, &mut decode).await?;
                }
                Ok(())
            }
            None => {
                let page = |start| async move {
                    let output = self
                        .client
                        .scan()
                        .table_name(&self.table)
                        // Key records only, not the items that index their aliases.
                        .filter_expression("attribute_exists(aws_param)")
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(|e| store_error("scan keys", e))?;
                    Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
                };
                for_each_page(page, decode).await
            }
        }
    }
}
