//! Reading the keys table through its indexes, a page of each partition at a time and merged in creation
//! order, so that a list reads about what it shows; the alias items that index a key's aliases; and the
//! kept per-unit counts (state × gone) that give a list its total without reading the matches.
//!
//! Indexes (all sorted by `created`): `by_unit` (`unit`, every attribute), `by_created` (`all_shard`),
//! `by_state` (`state_shard`), `by_gone` (`gone_shard`), `by_region` (`region_shard`), each global one
//! spread over `SHARDS` partitions; `by_keyid` (`keyid`, a key or a multi-Region key's replicas per
//! value); `by_alias` (`alias_name`) over alias items. Counts live in the jobs
//! table (`KEYCOUNT` / `<unit>`), one attribute per cell.

use super::key_item::{SHARDS, created_key, from_key_item};
use super::{Item, n, s, store_error};
use crate::domain::AppError;
use crate::domain::key::KeyRecord;
use crate::ports::{KeyIndex, UnitCount};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, WriteRequest};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use uuid::Uuid;

/// The partition key of the kept counts in the jobs table.
const COUNT_PK: &str = "KEYCOUNT";
/// The prefix of a count attribute: `c:<state>|<gone>`.
const CELL_PREFIX: &str = "c:";

/// Where an index's partitions are and what its entries hold.
pub struct IndexPlan {
    pub name: &'static str,
    pub hash: &'static str,
    pub values: Vec<String>,
    /// The entries are whole records (`by_unit`); otherwise the record is read by key.
    pub whole_records: bool,
    /// The attribute of an entry that names its key record (`id`, or `key_ref` for alias items).
    pub record_ref: &'static str,
}

fn sharded(values: impl IntoIterator<Item = String>) -> Vec<String> {
    values
        .into_iter()
        .flat_map(|value| (0..SHARDS).map(move |shard| format!("{value}#{shard}")))
        .collect()
}

fn not_empty(values: &[String]) -> Vec<String> {
    values.iter().filter(|v| !v.is_empty()).cloned().collect()
}

impl IndexPlan {
    pub fn of(index: &KeyIndex) -> IndexPlan {
        let plan = |name, hash, values, whole_records| IndexPlan {
            name,
            hash,
            values,
            whole_records,
            record_ref: "id",
        };
        match index {
            KeyIndex::All => plan(
                "by_created",
                "all_shard",
                sharded(["all".to_string()]),
                false,
            ),
            KeyIndex::Units(units) => plan("by_unit", "unit", units.clone(), true),
            KeyIndex::States(states) => {
                plan("by_state", "state_shard", sharded(states.clone()), false)
            }
            KeyIndex::Gone(gone) => {
                plan("by_gone", "gone_shard", sharded([gone.to_string()]), false)
            }
            KeyIndex::Regions(regions) => {
                plan("by_region", "region_shard", sharded(regions.clone()), false)
            }
            // An empty key id or alias names no key, and DynamoDB refuses an empty key value.
            KeyIndex::KeyIds(key_ids) => plan("by_keyid", "keyid", not_empty(key_ids), false),
            KeyIndex::Aliases(aliases) => IndexPlan {
                record_ref: "key_ref",
                ..plan("by_alias", "alias_name", not_empty(aliases), false)
            },
        }
    }
}

/// One partition being read: its entries not yet taken, and where its next page starts.
pub struct Cursor {
    pub value: String,
    pub entries: VecDeque<Item>,
    pub next: Option<Item>,
    pub exhausted: bool,
}

impl Cursor {
    pub fn new(value: String) -> Cursor {
        Cursor {
            value,
            entries: VecDeque::new(),
            next: None,
            exhausted: false,
        }
    }

    pub fn needs_page(&self) -> bool {
        self.entries.is_empty() && !self.exhausted
    }

    fn head(&self) -> Option<&str> {
        self.entries
            .front()
            .and_then(|e| e.get("created"))
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    }
}

/// The cursor whose next entry comes next in creation order; None when every cursor is empty.
pub fn next_cursor(cursors: &[Cursor], newest_first: bool) -> Option<usize> {
    cursors
        .iter()
        .enumerate()
        .filter_map(|(i, cursor)| cursor.head().map(|head| (i, head)))
        .reduce(|best, candidate| {
            let later = candidate.1 > best.1;
            if later == newest_first {
                candidate
            } else {
                best
            }
        })
        .map(|(i, _)| i)
}

/// Entries of one index page per partition: enough for the caller's `want` spread over the partitions,
/// never fewer than two (a head to compare and the next).
pub fn page_size(want: usize, partitions: usize) -> i32 {
    (want / partitions.max(1)).saturating_add(2).clamp(2, 200) as i32
}

/// The record id an entry names.
pub fn record_id(entry: &Item, record_ref: &str) -> Option<Uuid> {
    entry
        .get(record_ref)
        .and_then(|v| v.as_s().ok())
        .and_then(|id| Uuid::parse_str(id).ok())
}

/// The records of a run of entries, in the entries' order: whole-record entries decoded, the others read
/// by key with `fetch` (a record deleted meanwhile is left out).
pub fn in_entry_order(
    entries: Vec<Item>,
    plan: &IndexPlan,
    mut fetched: HashMap<Uuid, KeyRecord>,
) -> Result<Vec<KeyRecord>, AppError> {
    if plan.whole_records {
        return entries.into_iter().map(from_key_item).collect();
    }
    Ok(entries
        .iter()
        .filter_map(|entry| record_id(entry, plan.record_ref))
        .filter_map(|id| fetched.remove(&id))
        .collect())
}

/// Drops entries naming a record already handed out (a key with two of the aliases asked for).
pub fn first_sightings(
    entries: Vec<Item>,
    plan: &IndexPlan,
    handed: &mut HashSet<Uuid>,
) -> Vec<Item> {
    entries
        .into_iter()
        .filter(|entry| record_id(entry, plan.record_ref).is_none_or(|id| handed.insert(id)))
        .collect()
}

fn alias_item_id(key: Uuid, alias: &str) -> String {
    format!("alias#{key}#{alias}")
}

/// The writes that make the alias items of `new` what its aliases are, given the aliases stored before.
pub fn alias_writes(
    new: &KeyRecord,
    before: &BTreeSet<String>,
) -> Result<Vec<WriteRequest>, AppError> {
    let now: BTreeSet<&String> = new.aws_param.alias.iter().collect();
    let mut writes = Vec::new();
    for alias in before.iter().filter(|a| !now.contains(a)) {
        writes.push(alias_delete(new.id, alias)?);
    }
    for alias in now.into_iter().filter(|a| !before.contains(*a)) {
        let put = PutRequest::builder()
            .item("id", s(alias_item_id(new.id, alias)))
            .item("alias_name", s(alias.clone()))
            .item("created", s(created_key(&new.created_at, new.id)))
            .item("key_ref", s(new.id.to_string()))
            .build()
            .map_err(|e| AppError::internal("building a put request", e))?;
        writes.push(WriteRequest::builder().put_request(put).build());
    }
    Ok(writes)
}

/// The delete of one alias item.
pub fn alias_delete(key: Uuid, alias: &str) -> Result<WriteRequest, AppError> {
    let delete = DeleteRequest::builder()
        .key("id", s(alias_item_id(key, alias)))
        .build()
        .map_err(|e| AppError::internal("building a delete request", e))?;
    Ok(WriteRequest::builder().delete_request(delete).build())
}

/// The aliases of a stored record as a projection of `aws_param.Alias` reads them.
pub fn stored_aliases(item: &Item) -> BTreeSet<String> {
    item.get("aws_param")
        .and_then(|p| p.as_m().ok())
        .and_then(|p| p.get("Alias"))
        .and_then(|a| a.as_l().ok())
        .map(|list| list.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
        .unwrap_or_default()
}

fn cell_attribute(state: &str, gone: bool) -> String {
    format!("{CELL_PREFIX}{state}|{gone}")
}

/// Keeps the counts of one unit, replacing what was kept.
pub async fn keep_count(
    client: &Client,
    jobs_table: &str,
    count: &UnitCount,
) -> Result<(), AppError> {
    let mut put = client
        .put_item()
        .table_name(jobs_table)
        .item("pk", s(COUNT_PK))
        .item("sk", s(count.unit.clone()));
    for ((state, gone), keys) in &count.cells {
        put = put.item(cell_attribute(state, *gone), n(keys));
    }
    put.send()
        .await
        .map_err(|e| store_error("keep key counts", e))?;
    Ok(())
}

/// Moves one key between cells of its unit's kept counts (None: into or out of the unit). A unit without
/// kept counts is left so: its next sync counts it.
pub async fn adjust_count(
    client: &Client,
    jobs_table: &str,
    unit: &str,
    from: Option<(&str, bool)>,
    to: Option<(&str, bool)>,
) -> Result<(), AppError> {
    if from == to {
        return Ok(());
    }
    let mut update = client
        .update_item()
        .table_name(jobs_table)
        .key("pk", s(COUNT_PK))
        .key("sk", s(unit))
        .condition_expression("attribute_exists(pk)");
    let mut adds = Vec::new();
    if let Some((state, gone)) = from {
        adds.push("#from :minus");
        update = update
            .expression_attribute_names("#from", cell_attribute(state, gone))
            .expression_attribute_values(":minus", n(-1));
    }
    if let Some((state, gone)) = to {
        adds.push("#to :plus");
        update = update
            .expression_attribute_names("#to", cell_attribute(state, gone))
            .expression_attribute_values(":plus", n(1));
    }
    let result = update
        .update_expression(format!("ADD {}", adds.join(", ")))
        .send()
        .await;
    super::written(result, "adjust key counts").map(|_| ())
}

/// Every unit's kept counts.
pub async fn kept_counts(client: &Client, jobs_table: &str) -> Result<Vec<UnitCount>, AppError> {
    let items = super::all_pages(|start| async move {
        let output = client
            .query()
            .table_name(jobs_table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(COUNT_PK))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error("read key counts", e))?;
        Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
    })
    .await?;
    Ok(items
        .into_iter()
        .filter_map(|item| {
            let unit = item.get("sk")?.as_s().ok()?.clone();
            let mut cells = BTreeMap::new();
            for (name, value) in &item {
                let Some((state, gone)) = name
                    .strip_prefix(CELL_PREFIX)
                    .and_then(|cell| cell.rsplit_once('|'))
                else {
                    continue;
                };
                let keys = value.as_n().ok().and_then(|v| v.parse::<u64>().ok());
                if let Some(keys) = keys.filter(|k| *k > 0) {
                    cells.insert((state.to_string(), gone == "true"), keys);
                }
            }
            Some(UnitCount { unit, cells })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn entry(created: &str) -> Item {
        Item::from([("created".to_string(), AttributeValue::S(created.into()))])
    }

    fn cursor(created: &[&str]) -> Cursor {
        let mut cursor = Cursor::new("p".into());
        cursor.entries = created.iter().map(|c| entry(c)).collect();
        cursor
    }

    #[test]
    fn the_merge_takes_the_newest_head_first_or_the_oldest() {
        let cursors = [cursor(&["2026-03"]), cursor(&["2026-05"]), cursor(&[])];
        assert_eq!(next_cursor(&cursors, true), Some(1));
        assert_eq!(next_cursor(&cursors, false), Some(0));
        assert_eq!(next_cursor(&[cursor(&[])], true), None);
    }

    #[test]
    fn every_global_index_spreads_a_value_over_its_shards() {
        let plan = IndexPlan::of(&KeyIndex::States(vec!["Enabled".into(), "Disabled".into()]));
        assert_eq!(plan.values.len(), 2 * SHARDS as usize);
        assert!(plan.values.contains(&"Disabled#7".to_string()));
        let units = IndexPlan::of(&KeyIndex::Units(vec!["1/us-east-1".into()]));
        assert!(units.whole_records && units.values == ["1/us-east-1"]);
        assert_eq!(page_size(10, 8), 3);
        assert_eq!(page_size(0, 1), 2);
        assert_eq!(page_size(usize::MAX, 1), 200, "limit=-1 wants every key");
    }
}
