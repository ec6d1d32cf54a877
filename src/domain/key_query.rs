//! How a key list is read: which index serves its filters (the one holding the fewest keys, by the kept
//! counts), and whether its total comes from those counts. Pure planning; the store reads, the route
//! renders. See README "What a key list costs".

use super::key::KeyRecord;
use super::list::ListQuery;
use std::collections::{BTreeMap, BTreeSet};

/// An index of the synced keys and the values to read of it. Every index hands keys in creation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyIndex {
    /// Every key.
    All,
    /// The keys of these units (`"<account>/<region>"`).
    Units(Vec<String>),
    /// The keys in these states (`KeyState`).
    States(Vec<String>),
    /// The keys flagged gone, or the others.
    Gone(bool),
    /// The keys of these regions.
    Regions(Vec<String>),
    /// The keys that have one of these aliases.
    Aliases(Vec<String>),
    /// The keys with one of these AWS key ids (one each, or one per region of a multi-Region key).
    KeyIds(Vec<String>),
}

impl KeyIndex {
    /// Whether the index holds this key.
    pub fn holds(&self, key: &KeyRecord) -> bool {
        match self {
            KeyIndex::All => true,
            KeyIndex::Units(units) => units.contains(&key.unit),
            KeyIndex::States(states) => states.iter().any(|s| s == key.indexed_state()),
            KeyIndex::Gone(gone) => key.gone == *gone,
            KeyIndex::Regions(regions) => regions.contains(&key.region),
            KeyIndex::Aliases(aliases) => key.aws_param.alias.iter().any(|a| aliases.contains(a)),
            KeyIndex::KeyIds(key_ids) => key_ids.contains(&key.aws_param.key_id),
        }
    }
}

/// How many keys of one unit are in each (state, gone) cell: counted by the unit's last sync, adjusted by
/// the deletes and refreshes since. A key whose state AWS did not tell is counted under `unknown`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitCount {
    pub unit: String,
    pub cells: BTreeMap<(String, bool), u64>,
}

impl UnitCount {
    /// The counts of these keys of one unit.
    pub fn of<'a>(unit: &str, keys: impl IntoIterator<Item = &'a KeyRecord>) -> UnitCount {
        let mut count = UnitCount {
            unit: unit.to_string(),
            cells: BTreeMap::new(),
        };
        for key in keys {
            *count
                .cells
                .entry((key.indexed_state().to_string(), key.gone))
                .or_default() += 1;
        }
        count
    }

    fn region(&self) -> &str {
        self.unit.rsplit_once('/').map_or("", |(_, region)| region)
    }
}

/// Filters the kept counts can total.
const COUNTED: [&str; 5] = ["kms", "kms_id", "region", "keystate", "gone"];

/// What a key list's filters ask of the indexes. `units` is what the `kms`/`kms_id` filters stand for
/// (the accounts × regions of those KMS resources), resolved by the caller.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyScope {
    pub units: Option<BTreeSet<String>>,
    pub regions: Option<Vec<String>>,
    pub states: Option<Vec<String>>,
    pub gone: Option<bool>,
    pub aliases: Option<Vec<String>>,
    pub key_ids: Option<Vec<String>>,
    /// Every filter of the query is one the counts total.
    pub counted: bool,
}

impl KeyScope {
    pub fn of(query: &ListQuery, units: Option<BTreeSet<String>>) -> KeyScope {
        let gone = query.filter("gone").and_then(|values| {
            let wanted: BTreeSet<&str> = values.iter().map(String::as_str).collect();
            match wanted.into_iter().collect::<Vec<_>>().as_slice() {
                [one] => Some(*one == "true"),
                _ => None,
            }
        });
        KeyScope {
            units,
            regions: query.filter("region").map(<[String]>::to_vec),
            states: query.filter("keystate").map(<[String]>::to_vec),
            gone,
            aliases: query.filter("alias").map(<[String]>::to_vec),
            key_ids: query.filter("keyid").map(<[String]>::to_vec),
            counted: query.filters.keys().all(|f| COUNTED.contains(&f.as_str())),
        }
    }

    fn unit_in_scope(&self, count: &UnitCount) -> bool {
        self.units
            .as_ref()
            .is_none_or(|units| units.contains(&count.unit))
            && self
                .regions
                .as_ref()
                .is_none_or(|regions| regions.iter().any(|r| r == count.region()))
    }

    fn cell_in_scope(&self, (state, gone): &(String, bool)) -> bool {
        self.states
            .as_ref()
            .is_none_or(|states| states.contains(state))
            && self.gone.is_none_or(|wanted| wanted == *gone)
    }

    /// The total of the query from the kept counts, when every filter is one they total.
    pub fn counted_total(&self, counts: &[UnitCount]) -> Option<u64> {
        self.counted.then(|| {
            counts
                .iter()
                .filter(|count| self.unit_in_scope(count))
                .flat_map(|count| count.cells.iter())
                .filter(|(cell, _)| self.cell_in_scope(cell))
                .map(|(_, keys)| keys)
                .sum()
        })
    }

    /// The index that serves the filters while holding the fewest keys (ties: the fewest partitions).
    /// Key ids and aliases name few keys, and are not counted: such a filter always reads its own index.
    pub fn cheapest_index(&self, counts: &[UnitCount]) -> KeyIndex {
        if let Some(key_ids) = &self.key_ids {
            return KeyIndex::KeyIds(key_ids.clone());
        }
        if let Some(aliases) = &self.aliases {
            return KeyIndex::Aliases(aliases.clone());
        }
        let size = |unit: &dyn Fn(&UnitCount) -> bool, cell: &dyn Fn(&(String, bool)) -> bool| {
            counts
                .iter()
                .filter(|count| unit(count))
                .flat_map(|count| count.cells.iter())
                .filter(|(key, _)| cell(key))
                .map(|(_, keys)| *keys)
                .sum::<u64>()
        };
        let every_unit = |_: &UnitCount| true;
        let every_cell = |_: &(String, bool)| true;
        // (keys held, partitions read, index)
        let mut candidates = vec![(size(&every_unit, &every_cell), 8, KeyIndex::All)];
        if let Some(units) = &self.units {
            let held = size(&|c: &UnitCount| units.contains(&c.unit), &every_cell);
            candidates.push((
                held,
                units.len(),
                KeyIndex::Units(units.iter().cloned().collect()),
            ));
        }
        if let Some(states) = &self.states {
            let held = size(&every_unit, &|(state, _): &(String, bool)| {
                states.contains(state)
            });
            candidates.push((held, 8 * states.len(), KeyIndex::States(states.clone())));
        }
        if let Some(gone) = self.gone {
            let held = size(&every_unit, &|(_, g): &(String, bool)| *g == gone);
            candidates.push((held, 8, KeyIndex::Gone(gone)));
        }
        if let Some(regions) = &self.regions {
            let held = size(
                &|c: &UnitCount| regions.iter().any(|r| r == c.region()),
                &every_cell,
            );
            candidates.push((held, 8 * regions.len(), KeyIndex::Regions(regions.clone())));
        }
        candidates
            .into_iter()
            .min_by_key(|(held, partitions, _)| (*held, *partitions))
            .map(|(_, _, index)| index)
            .unwrap_or(KeyIndex::All)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::list::{FilterKind, ListSpec, QueryMap};

    const SPEC: ListSpec = ListSpec {
        filters: &[
            ("kms", FilterKind::Text),
            ("region", FilterKind::Text),
            ("keystate", FilterKind::Text),
            ("gone", FilterKind::Bool),
            ("alias", FilterKind::Text),
            ("keyid", FilterKind::Text),
            ("origin", FilterKind::Text),
        ],
        sort_fields: &["createdAt"],
        default_sort: "-createdAt",
    };

    fn query(pairs: &[(&str, &str)]) -> ListQuery {
        let mut map = QueryMap::new();
        for (k, v) in pairs {
            map.entry(k.to_string()).or_default().push(v.to_string());
        }
        ListQuery::parse(&map, &SPEC).unwrap()
    }

    fn count(unit: &str, cells: &[(&str, bool, u64)]) -> UnitCount {
        UnitCount {
            unit: unit.into(),
            cells: cells
                .iter()
                .map(|(s, g, n)| ((s.to_string(), *g), *n))
                .collect(),
        }
    }

    fn counts() -> Vec<UnitCount> {
        vec![
            count(
                "1/us-east-1",
                &[("Enabled", false, 900), ("PendingDeletion", false, 5)],
            ),
            count(
                "1/eu-west-1",
                &[("Enabled", false, 100), ("Enabled", true, 3)],
            ),
            count(
                "2/us-east-1",
                &[("Enabled", false, 50), ("Disabled", false, 7)],
            ),
        ]
    }

    #[test]
    fn totals_come_from_the_counts_for_every_counted_filter_and_its_combinations() {
        let all = KeyScope::of(&query(&[]), None);
        assert_eq!(all.counted_total(&counts()), Some(1065));
        let units = Some(BTreeSet::from([
            "1/us-east-1".to_string(),
            "1/eu-west-1".into(),
        ]));
        let kms_enabled = KeyScope::of(&query(&[("kms", "a"), ("keystate", "Enabled")]), units);
        assert_eq!(kms_enabled.counted_total(&counts()), Some(1003));
        let live_in_us = KeyScope::of(&query(&[("region", "us-east-1"), ("gone", "false")]), None);
        assert_eq!(live_in_us.counted_total(&counts()), Some(962));
        let both_gone_values = KeyScope::of(&query(&[("gone", "true"), ("gone", "false")]), None);
        assert_eq!(both_gone_values.counted_total(&counts()), Some(1065));
        for uncounted in [
            vec![("alias", "alias/x")],
            vec![("keyid", "k-1")],
            vec![("origin", "AWS_KMS"), ("region", "x")],
        ] {
            assert_eq!(
                KeyScope::of(&query(&uncounted), None).counted_total(&counts()),
                None
            );
        }
    }

    #[test]
    fn the_index_holding_the_fewest_keys_serves_a_combination() {
        let units = Some(BTreeSet::from([
            "1/us-east-1".to_string(),
            "1/eu-west-1".into(),
        ]));
        let pending = KeyScope::of(
            &query(&[("kms", "a"), ("keystate", "PendingDeletion")]),
            units,
        );
        assert_eq!(
            pending.cheapest_index(&counts()),
            KeyIndex::States(vec!["PendingDeletion".into()])
        );
        let gone = KeyScope::of(&query(&[("gone", "true"), ("region", "us-east-1")]), None);
        assert_eq!(gone.cheapest_index(&counts()), KeyIndex::Gone(true));
        let one_region = KeyScope::of(&query(&[("region", "eu-west-1")]), None);
        assert_eq!(
            one_region.cheapest_index(&counts()),
            KeyIndex::Regions(vec!["eu-west-1".into()])
        );
        let alias = KeyScope::of(
            &query(&[("alias", "alias/x"), ("region", "eu-west-1")]),
            None,
        );
        assert_eq!(
            alias.cheapest_index(&counts()),
            KeyIndex::Aliases(vec!["alias/x".into()])
        );
        let key_id = KeyScope::of(
            &query(&[
                ("keyid", "k-1"),
                ("region", "eu-west-1"),
                ("alias", "alias/x"),
            ]),
            None,
        );
        assert_eq!(
            key_id.cheapest_index(&counts()),
            KeyIndex::KeyIds(vec!["k-1".into()])
        );
        assert_eq!(
            KeyScope::of(&query(&[]), None).cheapest_index(&counts()),
            KeyIndex::All
        );
    }
}
