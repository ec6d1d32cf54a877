//! Route handlers, one module per resource. Each reads the request, calls a service, renders the answer.

pub mod accounts;
pub mod connections;
pub mod discovery;
pub mod job_configs;
pub mod jobs;
pub mod keys;
pub mod kms;
pub mod tokens;

use crate::api::response::HttpResponse;
use crate::domain::list::ListQuery;
use serde_json::Value;

/// The answer to a list of named objects: those whose `fields` pass the query's filters, rendered by
/// `view`, sorted and paged in CCKM's envelope.
fn page_of<T>(
    query: &ListQuery,
    items: Vec<T>,
    fields: impl Fn(&T) -> Vec<(&'static str, String)>,
    view: impl Fn(&T) -> Value,
) -> HttpResponse {
    let kept = items
        .iter()
        .filter(|item| {
            let values = fields(item);
            let pairs: Vec<(&str, &str)> = values.iter().map(|(f, v)| (*f, v.as_str())).collect();
            query.keeps(&pairs)
        })
        .map(view)
        .collect();
    let (page, total) = query.page(kept);
    HttpResponse::json(200, query.envelope(page, total))
}
