//! List queries shared by every collection (spec 1.3, 2.2, 6): `skip`, `limit` (`-1` = all), `sort`
//! (comma list, `-` for descending), typed filters, and the envelope. Also the JSON body reader, so every
//! route classifies a bad body the same way.

use super::error::AppError;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BTreeMap;

pub const DEFAULT_LIMIT: usize = 10;
/// The largest page a caller may ask for, other than `-1` (all).
pub const MAX_LIMIT: usize = 1000;
/// The most values one filter may be given: each is a lookup, and a request must end within the API's 29 s.
pub const MAX_FILTER_VALUES: usize = 100;
/// The deepest a list may be paged with `skip`: every skipped item is still read. Past it, narrow the
/// list with filters.
pub const MAX_SKIP: usize = 10_000;

/// Query parameters as they arrived: each name with every value it was given.
pub type QueryMap = BTreeMap<String, Vec<String>>;

/// Reads a JSON body: invalid UTF-8 or JSON is a bad request, a well-formed body of the wrong shape is an
/// invalid parameter value.
pub fn parse_json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| AppError::BadRequest("the body is not valid UTF-8".into()))?;
    serde_json::from_str(text).map_err(|err| match err.classify() {
        serde_json::error::Category::Data => AppError::InvalidParam(format!("invalid body: {err}")),
        _ => AppError::BadRequest(format!("the body is not valid JSON: {err}")),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field: String,
    pub descending: bool,
}

/// A parsed list query: paging, sorting and the filters the collection allows.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub skip: usize,
    /// None = every match (`limit=-1`).
    pub limit: Option<usize>,
    pub sort: Vec<SortKey>,
    pub filters: BTreeMap<String, Vec<String>>,
}

/// What a collection allows: its filter names (with how each is compared) and sortable fields.
pub struct ListSpec {
    pub filters: &'static [(&'static str, FilterKind)],
    pub sort_fields: &'static [&'static str],
    pub default_sort: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    /// Exact text; repeating the parameter means "any of".
    Text,
    /// `true` or `false`.
    Bool,
}

impl ListQuery {
    pub fn parse(query: &QueryMap, spec: &ListSpec) -> Result<ListQuery, AppError> {
        let mut filters = BTreeMap::new();
        for (name, values) in query {
            match name.as_str() {
                "skip" | "limit" | "sort" => {}
                _ => {
                    let Some((_, kind)) = spec.filters.iter().find(|(n, _)| n == name) else {
                        return Err(AppError::InvalidParam(format!(
                            "unknown query parameter '{name}'"
                        )));
                    };
                    if values.len() > MAX_FILTER_VALUES {
                        return Err(AppError::InvalidParam(format!(
                            "{name} is given {} values; at most {MAX_FILTER_VALUES} are allowed",
                            values.len()
                        )));
                    }
                    if *kind == FilterKind::Bool
                        && values.iter().any(|v| v != "true" && v != "false")
                    {
                        return Err(AppError::InvalidParam(format!(
                            "{name} must be true or false"
                        )));
                    }
                    filters.insert(name.clone(), values.clone());
                }
            }
        }
        let skip = match single(query, "skip")? {
            None => 0,
            Some(text) => match text.parse::<usize>() {
                Ok(skip) if skip <= MAX_SKIP => skip,
                Ok(_) => {
                    return Err(AppError::InvalidParam(format!(
                        "skip may be at most {MAX_SKIP}, not {text}: narrow the list with filters"
                    )));
                }
                Err(_) => {
                    return Err(AppError::InvalidParam(format!(
                        "skip must be a whole number of 0 or more, not '{text}'"
                    )));
                }
            },
        };
        let limit = match single(query, "limit")? {
            None => Some(DEFAULT_LIMIT),
            Some("-1") => None,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if n <= MAX_LIMIT => Some(n),
                _ => {
                    return Err(AppError::InvalidParam(format!(
                        "limit must be -1 (all) or 0 to {MAX_LIMIT}, not '{text}'"
                    )));
                }
            },
        };
        let sort_text = single(query, "sort")?.unwrap_or(spec.default_sort);
        let mut sort = Vec::new();
        for part in sort_text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (field, descending) = match part.strip_prefix('-') {
                Some(field) => (field, true),
                None => (part.strip_prefix('+').unwrap_or(part), false),
            };
            if !spec.sort_fields.contains(&field) {
                return Err(AppError::InvalidParam(format!("cannot sort by '{field}'")));
            }
            sort.push(SortKey {
                field: field.to_string(),
                descending,
            });
        }
        Ok(ListQuery {
            skip,
            limit,
            sort,
            filters,
        })
    }

    pub fn filter(&self, name: &str) -> Option<&[String]> {
        self.filters.get(name).map(Vec::as_slice)
    }

    /// Whether an object with these (filter, value) pairs passes every text filter given: a filter not
    /// given passes all, a repeated one means "any of".
    pub fn keeps(&self, values: &[(&str, &str)]) -> bool {
        values.iter().all(|(filter, value)| {
            self.filter(filter)
                .is_none_or(|wanted| wanted.iter().any(|w| w == value))
        })
    }

    /// Sorts and pages rendered items; returns the page and the number of matches before paging.
    pub fn page(&self, items: Vec<Value>) -> (Vec<Value>, usize) {
        let mut pager = self.pager();
        items.into_iter().for_each(|item| pager.push(item));
        pager.finish()
    }

    /// A collector that keeps only what the page can still need (`skip + limit` items), so a list read
    /// page by page from the store never holds every match in memory.
    pub fn pager(&self) -> Pager<'_> {
        Pager {
            query: self,
            kept: Vec::new(),
            total: 0,
        }
    }

    fn compare(&self, a: &Value, b: &Value) -> Ordering {
        self.sort.iter().fold(Ordering::Equal, |order, key| {
            order.then_with(|| {
                let ord = compare_json(lookup(a, &key.field), lookup(b, &key.field));
                if key.descending { ord.reverse() } else { ord }
            })
        })
    }

    /// The list envelope of spec section 6; `limit` echoes -1 when every match was asked for.
    pub fn envelope(&self, resources: Vec<Value>, total: usize) -> Value {
        let limit = self.limit.map_or(-1, |l| l as i64);
        serde_json::json!({ "skip": self.skip, "limit": limit, "total": total, "resources": resources })
    }
}

/// Matches pushed one at a time, kept in sort order (ties in arrival order), cut to what the page needs.
pub struct Pager<'q> {
    query: &'q ListQuery,
    kept: Vec<Value>,
    total: usize,
}

impl Pager<'_> {
    pub fn push(&mut self, item: Value) {
        self.total += 1;
        let at = self
            .kept
            .partition_point(|kept| self.query.compare(kept, &item) != Ordering::Greater);
        let needed = self
            .query
            .limit
            .map(|limit| self.query.skip.saturating_add(limit));
        if needed.is_some_and(|needed| at >= needed) {
            return;
        }
        self.kept.insert(at, item);
        if needed.is_some_and(|needed| self.kept.len() > needed) {
            self.kept.pop();
        }
    }

    /// The page, and how many items matched in all.
    pub fn finish(self) -> (Vec<Value>, usize) {
        let limit = self.query.limit.unwrap_or(usize::MAX);
        (
            self.kept
                .into_iter()
                .skip(self.query.skip)
                .take(limit)
                .collect(),
            self.total,
        )
    }
}

fn single<'a>(query: &'a QueryMap, name: &str) -> Result<Option<&'a str>, AppError> {
    match query.get(name).map(Vec::as_slice) {
        None | Some([]) => Ok(None),
        Some([one]) => Ok(Some(one.as_str())),
        Some(_) => Err(AppError::InvalidParam(format!(
            "{name} may be given only once"
        ))),
    }
}

/// A dotted path into a rendered object, e.g. `aws_param.KeyState`.
fn lookup<'a>(item: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(item, |value, part| value.get(part).unwrap_or(&Value::Null))
}

/// Nulls first, then booleans, numbers and text in their natural order; arrays by their first element.
fn compare_json(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => compare_json(
            x.first().unwrap_or(&Value::Null),
            y.first().unwrap_or(&Value::Null),
        ),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SPEC: ListSpec = ListSpec {
        filters: &[("name", FilterKind::Text), ("gone", FilterKind::Bool)],
        sort_fields: &["name", "createdAt", "n"],
        default_sort: "-createdAt",
    };

    fn query(pairs: &[(&str, &str)]) -> QueryMap {
        let mut map = QueryMap::new();
        for (k, v) in pairs {
            map.entry(k.to_string()).or_default().push(v.to_string());
        }
        map
    }

    #[test]
    fn defaults_are_skip_0_limit_10_newest_first() {
        let q = ListQuery::parse(&QueryMap::new(), &SPEC).unwrap();
        assert_eq!((q.skip, q.limit), (0, Some(10)));
        assert_eq!(
            q.sort,
            vec![SortKey {
                field: "createdAt".into(),
                descending: true
            }]
        );
    }

    #[test]
    fn bad_parameters_are_refused() {
        for pairs in [
            vec![("skip", "-1")],
            vec![("skip", "x")],
            vec![("limit", "1001")],
            vec![("limit", "-2")],
            vec![("sort", "colour")],
            vec![("gone", "yes")],
            vec![("colour", "blue")],
            vec![("limit", "1"), ("limit", "2")],
            vec![("skip", "10001")],
        ] {
            assert!(
                matches!(
                    ListQuery::parse(&query(&pairs), &SPEC),
                    Err(AppError::InvalidParam(_))
                ),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn a_filter_takes_at_most_100_values_and_skip_is_bounded() {
        let values: Vec<String> = (0..=MAX_FILTER_VALUES).map(|i| format!("k{i}")).collect();
        let mut many = QueryMap::new();
        many.insert("name".into(), values.clone());
        let err = ListQuery::parse(&many, &SPEC).unwrap_err();
        assert!(err.to_string().contains("at most 100"), "{err}");
        many.insert("name".into(), values[..MAX_FILTER_VALUES].to_vec());
        assert!(ListQuery::parse(&many, &SPEC).is_ok());
        let deep = ListQuery::parse(&query(&[("skip", "10001")]), &SPEC).unwrap_err();
        assert!(deep.to_string().contains("at most 10000"), "{deep}");
        assert!(ListQuery::parse(&query(&[("skip", "10000")]), &SPEC).is_ok());
    }

    #[test]
    fn sorts_on_several_fields_and_pages_with_the_true_total() {
        let q = ListQuery::parse(
            &query(&[("sort", "name,-n"), ("skip", "1"), ("limit", "2")]),
            &SPEC,
        )
        .unwrap();
        let items = vec![
            json!({"name": "b", "n": 1}),
            json!({"name": "a", "n": 1}),
            json!({"name": "a", "n": 2}),
            json!({"name": "c", "n": 0}),
        ];
        let (page, total) = q.page(items);
        assert_eq!(total, 4);
        assert_eq!(
            page,
            vec![json!({"name": "a", "n": 1}), json!({"name": "b", "n": 1})]
        );
        assert_eq!(q.envelope(page, total)["total"], 4);
    }

    #[test]
    fn the_pager_keeps_only_what_the_page_needs_and_agrees_with_a_full_sort() {
        let q = ListQuery::parse(
            &query(&[("sort", "-n,name"), ("skip", "3"), ("limit", "4")]),
            &SPEC,
        )
        .unwrap();
        let items: Vec<Value> = (0..200)
            .map(|i| json!({"n": (i * 37) % 11, "name": format!("k{i:03}")}))
            .collect();
        let mut expected = items.clone();
        expected.sort_by(|a, b| q.compare(a, b));
        let mut pager = q.pager();
        for item in items {
            pager.push(item);
            assert!(pager.kept.len() <= 7, "never more than skip + limit");
        }
        let (page, total) = pager.finish();
        assert_eq!(total, 200);
        assert_eq!(page, expected[3..7].to_vec());
    }

    #[test]
    fn limit_minus_one_returns_everything() {
        let q = ListQuery::parse(&query(&[("limit", "-1")]), &SPEC).unwrap();
        let (page, total) = q.page((0..25).map(|n| json!({"n": n})).collect());
        assert_eq!((page.len(), total), (25, 25));
        assert_eq!(q.envelope(page, total)["limit"], -1);
    }
}
