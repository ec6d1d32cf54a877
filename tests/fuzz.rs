//! Property-based fuzzing of the entry point (event classification, request parsing, validation, routing,
//! the worker's message reading), in the normal test run: events from the seed corpus (`events/` and
//! `tests/fuzz_corpus/`) with random values put anywhere in them, inside JSON bodies too, and API requests
//! built from random methods, paths, queries and bodies. No event may panic; every API answer is a proxy
//! response below 500, and every refusal a 4xx with a CCKM body. A failing case is shrunk and its seed
//! kept in `tests/fuzz.proptest-regressions`.

mod common;

use cckm_aws_sync::entry::{Entry, EventKind, classify};
use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::OnceLock;

/// Every seed event: the sample events and the corpus.
fn seeds() -> &'static [Value] {
    static SEEDS: OnceLock<Vec<Value>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut seeds = Vec::new();
        for dir in ["events", "tests/fuzz_corpus"] {
            let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
                .expect("a seed folder")
                .map(|entry| entry.expect("a seed file").path())
                .filter(|path| path.extension().is_some_and(|e| e == "json"))
                .filter(|path| !path.ends_with("expectations.json"))
                .collect();
            files.sort();
            for file in files {
                let text = std::fs::read_to_string(&file).expect("a readable seed");
                seeds.push(serde_json::from_str(&text).expect("a JSON seed"));
            }
        }
        assert!(seeds.len() >= 15, "{} seeds", seeds.len());
        seeds
    })
}

/// Values that reach the edges of parsing and validation.
fn odd_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            " ",
            "demo",
            "us-east-1",
            "eu-west-1",
            "-1",
            "0",
            "1001",
            "18446744073709551616",
            "1e400",
            "\u{0}",
            "%FF",
            "%",
            "../..",
            "true",
            "null",
            "{}",
            "[]",
            "alias/x",
            "123456789012",
            "arn:aws:iam::123456789012:role/x",
            "-createdAt",
            ",,",
            "\u{feff}{}",
            "00000000-0000-0000-0000-000000000000",
            "completed",
            "in_progress",
            "Bearer ",
        ])
        .prop_map(String::from),
        "\\PC{0,24}",
        "[a-z_/%=&,.-]{0,40}",
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        odd_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(odd_text(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// The JSON pointer of every value in `value`, the root excluded.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.replace('~', "~0").replace('/', "~1"), v))
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => return,
    };
    for (key, child) in children {
        let pointer = format!("{at}/{key}");
        out.push(pointer.clone());
        pointers(child, pointer, out);
    }
}

/// One random edit: where, whether inside a JSON body, and the value put there: of the same type as the
/// one replaced (`text` for a string) most of the time, so that the event keeps its shape and the edit
/// reaches parsing and validation; `other` otherwise.
#[derive(Debug, Clone)]
struct Edit {
    pick: usize,
    inside_body: bool,
    same_type: bool,
    text: String,
    number: i64,
    other: Value,
}

fn edit() -> impl Strategy<Value = Edit> {
    (
        any::<usize>(),
        any::<bool>(),
        prop::bool::weighted(0.75),
        odd_text(),
        any::<i64>(),
        any_json(),
    )
        .prop_map(|(pick, inside_body, same_type, text, number, other)| Edit {
            pick,
            inside_body,
            same_type,
            text,
            number,
            other,
        })
}

/// Applies `edit` at its place of `event`; a JSON body is edited inside half of the time.
fn mutate(event: &mut Value, edit: &Edit) {
    let mut places = Vec::new();
    pointers(event, String::new(), &mut places);
    let Some(place) = places.get(edit.pick % places.len().max(1)).cloned() else {
        return;
    };
    let target = event.pointer_mut(&place).expect("a place found above");
    if edit.inside_body
        && place.ends_with("/body")
        && let Some(mut body) = target
            .as_str()
            .and_then(|b| serde_json::from_str::<Value>(b).ok())
    {
        let inner = Edit {
            pick: edit.pick / 7,
            inside_body: false,
            ..edit.clone()
        };
        mutate(&mut body, &inner);
        *target = Value::from(body.to_string());
        return;
    }
    *target = match target {
        Value::String(_) if edit.same_type => Value::from(edit.text.clone()),
        Value::Number(_) if edit.same_type => Value::from(edit.number),
        Value::Bool(b) if edit.same_type => Value::from(!*b),
        _ => edit.other.clone(),
    };
}

/// A token the fuzzed stack accepts, in whichever header the event's payload carries.
fn authorized(mut event: Value) -> Value {
    let bearer = Value::from(format!("Bearer {}", token()));
    if let Some(headers) = event.get_mut("headers").and_then(Value::as_object_mut) {
        headers.retain(|name, _| !name.eq_ignore_ascii_case("authorization"));
        headers.insert("authorization".into(), bearer.clone());
    }
    if let Some(headers) = event
        .get_mut("multiValueHeaders")
        .and_then(Value::as_object_mut)
    {
        headers.retain(|name, _| !name.eq_ignore_ascii_case("authorization"));
        headers.insert("authorization".into(), json!([bearer]));
    }
    event
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fn entry() -> &'static Entry {
    static ENTRY: OnceLock<Entry> = OnceLock::new();
    ENTRY.get_or_init(|| memory_entry(10).0)
}

/// Handles the event and checks the answer its kind must give.
fn check(event: Value) -> Result<(), TestCaseError> {
    let kind = classify(&event);
    let deadline = chrono::Utc::now() + chrono::Duration::minutes(15);
    let answer = runtime().block_on(entry().handle(event.clone(), "fuzz", deadline));
    match kind {
        EventKind::HttpV1 | EventKind::HttpV2 => {
            let proxy = answer.map_err(|e| TestCaseError::fail(format!("{e}: {event}")))?;
            let status = proxy["statusCode"].as_u64().unwrap_or(0);
            prop_assert!(
                (200..500).contains(&status),
                "{status} for {event}: {proxy}"
            );
            prop_assert_eq!(&proxy["headers"]["cache-control"], "no-store");
            if status >= 400 {
                let body: Value = serde_json::from_str(proxy["body"].as_str().unwrap_or_default())
                    .map_err(|e| TestCaseError::fail(format!("{e}: {proxy}")))?;
                prop_assert!(body["code"].is_u64(), "not a CCKM body: {body}");
                prop_assert!(
                    body["codeDesc"].is_string() && body["message"].is_string(),
                    "{body}"
                );
            }
        }
        EventKind::Sqs => {
            // An unreadable batch fails the invocation on purpose (every message comes back); a readable
            // one reports only messages of the batch.
            if let Ok(answer) = answer {
                let ids: Vec<&Value> = event["Records"]
                    .as_array()
                    .map(|r| r.iter().map(|m| &m["messageId"]).collect())
                    .unwrap_or_default();
                for failure in answer["batchItemFailures"].as_array().into_iter().flatten() {
                    prop_assert!(ids.contains(&&failure["itemIdentifier"]), "{answer}");
                }
            }
        }
        EventKind::ScheduledEvent
        | EventKind::SchedulerInput
        | EventKind::KmsEvent
        | EventKind::Unknown => {
            prop_assert!(answer.is_ok_and(|a| a.is_object()), "{event}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn seed_events_with_random_values_anywhere_never_panic_and_api_refusals_are_cckm_4xx(
        seed in 0usize..1000,
        sign in any::<bool>(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let mut event = seeds()[seed % seeds().len()].clone();
        if sign {
            event = authorized(event);
        }
        for edit in &edits {
            mutate(&mut event, edit);
        }
        check(event)?;
    }

    #[test]
    fn api_requests_of_random_methods_paths_queries_and_bodies_answer_below_500(
        method in prop::sample::select(vec!["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS", "get", ""]),
        route in prop::sample::select(vec!["kms", "kms/{}", "synchronization-jobs", "synchronization-jobs/{}",
            "synchronization-jobs/{}/cancel", "keys", "keys/{}", "keys/{}/refresh", "{}", "kms/{}/{}"]),
        id in prop_oneof![odd_text(), Just("demo".to_string()),
            Just("00000000-0000-0000-0000-000000000000".to_string())],
        query in prop::collection::vec((prop::sample::select(vec!["kms", "kms_id", "region", "keystate",
            "gone", "alias", "keyid", "id", "arn", "sort", "skip", "limit", "overall_status", "x"]), odd_text()), 0..6),
        body in prop::option::of(prop_oneof![
            prop::collection::btree_map(prop::sample::select(vec!["name", "account_id", "regions",
                "assume_role_arn", "external_id", "kms", "synchronize_all", "x"]), any_json(), 0..5)
                .prop_map(|fields| Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            any_json(),
        ]),
    ) {
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let route = route.replace("{}", &id);
        let path = format!("/api/v1/cckm/aws/{route}?{}", query.join("&"));
        let event = v2_event(method, &path, body.as_ref(), Some(&token()));
        check(event)?;
    }
}
