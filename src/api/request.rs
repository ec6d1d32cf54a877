//! One HTTP request, whichever API Gateway payload carried it (REST v1, HTTP API v2, function URL). The
//! path comes out without the stage and without `/api`, so the router sees `/v1/cckm/aws/...` only.

use crate::domain::AppError;
use crate::domain::list::QueryMap;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use base64::Engine;
use std::collections::HashMap;

/// The largest body accepted (spec 1.1).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    RestV1,
    HttpV2,
}

#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: String,
    /// Normalized: no stage prefix, no `/api`, no trailing slash.
    pub path: String,
    pub query: QueryMap,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// Set when the body could not be decoded (bad base64); reported as a bad request by the router.
    pub body_error: Option<String>,
    pub request_id: String,
    /// Claims an API Gateway JWT authorizer has already verified.
    pub gateway_claims: Option<HashMap<String, String>>,
}

impl HttpRequest {
    pub fn from_v1(event: ApiGatewayProxyRequest) -> HttpRequest {
        let context = &event.request_context;
        let raw_path = event
            .path
            .clone()
            .or_else(|| context.path.clone())
            .unwrap_or_default();
        let query = collect_query(if event.multi_value_query_string_parameters.is_empty() {
            &event.query_string_parameters
        } else {
            &event.multi_value_query_string_parameters
        });
        let (body, body_error) = decode_body(event.body.as_deref(), event.is_base64_encoded);
        HttpRequest {
            method: event.http_method.as_str().to_string(),
            path: normalize_path(&raw_path, context.stage.as_deref()),
            query,
            headers: lower_headers(&event.headers),
            body,
            body_error,
            request_id: context.request_id.clone().unwrap_or_default(),
            gateway_claims: context
                .authorizer
                .jwt
                .as_ref()
                .map(|jwt| jwt.claims.clone()),
        }
    }

    pub fn from_v2(event: ApiGatewayV2httpRequest) -> HttpRequest {
        let context = &event.request_context;
        let raw_path = event
            .raw_path
            .clone()
            .or_else(|| context.http.path.clone())
            .unwrap_or_default();
        // The raw query string keeps repeated names (`kms=a&kms=b`) that the parsed map joins with commas.
        let query = match event.raw_query_string.as_deref() {
            Some(raw) => parse_query_string(raw),
            None => collect_query(&event.query_string_parameters),
        };
        let (body, body_error) = decode_body(event.body.as_deref(), event.is_base64_encoded);
        HttpRequest {
            method: context.http.method.as_str().to_string(),
            path: normalize_path(&raw_path, context.stage.as_deref()),
            query,
            headers: lower_headers(&event.headers),
            body,
            body_error,
            request_id: context.request_id.clone().unwrap_or_default(),
            gateway_claims: context
                .authorizer
                .as_ref()
                .and_then(|a| a.jwt.as_ref())
                .map(|jwt| jwt.claims.clone()),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

fn collect_query(parameters: &aws_lambda_events::query_map::QueryMap) -> QueryMap {
    let mut query = QueryMap::new();
    for (name, value) in parameters.iter() {
        query
            .entry(name.to_string())
            .or_default()
            .push(value.to_string());
    }
    query
}

fn decode_body(body: Option<&str>, base64_encoded: bool) -> (Vec<u8>, Option<String>) {
    match body {
        None => (Vec::new(), None),
        Some(text) if base64_encoded => {
            match base64::engine::general_purpose::STANDARD.decode(text) {
                Ok(bytes) => (bytes, None),
                Err(_) => (Vec::new(), Some("the body is not valid base64".into())),
            }
        }
        Some(text) => (text.as_bytes().to_vec(), None),
    }
}

fn lower_headers(headers: &http::HeaderMap) -> HashMap<String, String> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                name.as_str().to_ascii_lowercase(),
                value.to_str().ok()?.to_string(),
            ))
        })
        .collect()
}

/// `a=1&b=x%20y&a=2` → `{a: [1, 2], b: ["x y"]}`.
pub fn parse_query_string(raw: &str) -> QueryMap {
    let mut query = QueryMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        query
            .entry(decode_component(name))
            .or_default()
            .push(decode_component(value));
    }
    query
}

fn decode_component(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Drops the stage (when the path carries it), the `/api` prefix and any trailing slash.
pub fn normalize_path(raw: &str, stage: Option<&str>) -> String {
    let mut path = raw.trim_end_matches('/');
    // A path that already starts like ours keeps its head, even under a stage named `v1` or `api`.
    let ours = |p: &str| p.starts_with("/api/") || p.starts_with("/v1/");
    if let Some(stage) = stage.filter(|s| !s.is_empty() && *s != "$default")
        && !ours(path)
        && let Some(rest) = path.strip_prefix('/').and_then(|p| p.strip_prefix(stage))
        && (rest.is_empty() || rest.starts_with('/'))
    {
        path = rest;
    }
    if let Some(rest) = path.strip_prefix("/api")
        && (rest.is_empty() || rest.starts_with('/'))
    {
        path = rest;
    }
    if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    }
}

/// Refuses a body that is too large or could not be decoded; called before any route reads it.
pub fn check_body(request: &HttpRequest) -> Result<(), AppError> {
    if let Some(reason) = &request.body_error {
        return Err(AppError::BadRequest(reason.clone()));
    }
    if request.body.len() > MAX_BODY_BYTES {
        return Err(AppError::BadRequest(format!(
            "the body is larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lose_stage_api_prefix_and_trailing_slash() {
        assert_eq!(
            normalize_path("/prod/api/v1/cckm/aws/kms/", Some("prod")),
            "/v1/cckm/aws/kms"
        );
        assert_eq!(
            normalize_path("/api/v1/cckm/aws/kms", Some("$default")),
            "/v1/cckm/aws/kms"
        );
        assert_eq!(
            normalize_path("/v1/cckm/aws/kms", Some("prod")),
            "/v1/cckm/aws/kms"
        );
        assert_eq!(normalize_path("/apix/v1", None), "/apix/v1");
        assert_eq!(
            normalize_path("/production/v1", Some("prod")),
            "/production/v1"
        );
    }

    #[test]
    fn query_strings_keep_repeated_names_and_decode() {
        let query = parse_query_string("kms=a&kms=b%20c&limit=5&flag");
        assert_eq!(query["kms"], vec!["a", "b c"]);
        assert_eq!(query["limit"], vec!["5"]);
        assert_eq!(query["flag"], vec![""]);
    }
}
