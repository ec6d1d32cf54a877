//! HTTP responses, CCKM error bodies (spec 5), and their Lambda proxy form (valid for REST v1 and HTTP v2).

use super::request::Payload;
use crate::domain::AppError;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Option<Value>,
    /// The methods a 405 answer names in its `Allow` header.
    pub allow: Option<&'static str>,
}

impl HttpResponse {
    pub fn json(status: u16, body: Value) -> Self {
        HttpResponse {
            status,
            body: Some(body),
            allow: None,
        }
    }

    pub fn no_content() -> Self {
        HttpResponse {
            status: 204,
            body: None,
            allow: None,
        }
    }

    /// The CCKM error body for `err`. Internal errors are logged with their detail and answered without it.
    pub fn error(err: &AppError, request_id: &str) -> Self {
        let (status, code, desc) = match err {
            AppError::InvalidParam(_) => (
                400,
                9,
                "NCERRInvalidParamValue: Invalid value for a parameter",
            ),
            AppError::BadRequest(_) => (400, 15, "NCERRBadRequest: Bad HTTP request"),
            AppError::Unauthorized(_) => (401, 1, "NCERRUnauthorized: Unauthorized"),
            AppError::Forbidden(_) => (403, 2, "NCERRForbidden: Forbidden"),
            AppError::NotFound(_) => (404, 16, "NCERRResourceNotFound: Resource not found"),
            AppError::MethodNotAllowed { .. } => (405, 15, "NCERRBadRequest: Bad HTTP request"),
            AppError::Conflict(_) => (409, 4, "NCERRConflict: Conflict"),
            AppError::Internal(_) => (500, 14, "NCERRInternalServerError: unexpected error"),
        };
        let message = match err {
            AppError::Internal(detail) => {
                tracing::error!(request_id, error = %detail, "request failed");
                "unexpected error".to_string()
            }
            other => other.to_string(),
        };
        let allow = match err {
            AppError::MethodNotAllowed { allow, .. } => Some(*allow),
            _ => None,
        };
        HttpResponse {
            allow,
            ..HttpResponse::json(
                status,
                json!({"code": code, "codeDesc": desc, "message": message, "requestID": request_id}),
            )
        }
    }

    /// The proxy integration response object API Gateway expects. HTTP API (v2) answers also carry
    /// `cookies` (function-URL runtimes such as `cargo lambda watch` refuse an answer without it); REST (v1)
    /// answers must not. Every answer forbids caching and content sniffing: it may hold key policies and
    /// role ARNs.
    pub fn into_proxy(self, payload: Payload) -> Value {
        let body = self.body.map(|b| b.to_string()).unwrap_or_default();
        let mut headers = serde_json::Map::new();
        headers.insert("cache-control".into(), Value::from("no-store"));
        headers.insert("x-content-type-options".into(), Value::from("nosniff"));
        if !body.is_empty() {
            headers.insert("content-type".into(), Value::from("application/json"));
        }
        if self.status == 401 {
            headers.insert("www-authenticate".into(), Value::from("Bearer"));
        }
        if let Some(allow) = self.allow {
            headers.insert("allow".into(), Value::from(allow));
        }
        let mut proxy = json!({"statusCode": self.status, "headers": headers, "body": body, "isBase64Encoded": false});
        if payload == Payload::HttpV2 {
            proxy["cookies"] = json!([]);
        }
        proxy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_cckm_code_and_description() {
        let response = HttpResponse::error(
            &AppError::NotFound("KMS resource 'x' not found".into()),
            "req-1",
        );
        assert_eq!(response.status, 404);
        let body = response.body.unwrap();
        assert_eq!(body["code"], 16);
        assert_eq!(
            body["codeDesc"],
            "NCERRResourceNotFound: Resource not found"
        );
        assert_eq!(body["message"], "KMS resource 'x' not found");
        assert_eq!(body["requestID"], "req-1");
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let response = HttpResponse::error(
            &AppError::Internal("dynamodb: table secret-name missing".into()),
            "r",
        );
        assert_eq!(response.status, 500);
        assert_eq!(response.body.unwrap()["message"], "unexpected error");
    }

    #[test]
    fn proxy_form_carries_status_headers_and_text_body() {
        let proxy = HttpResponse::json(201, json!({"a": 1})).into_proxy(Payload::RestV1);
        assert_eq!(proxy["statusCode"], 201);
        assert_eq!(proxy["headers"]["content-type"], "application/json");
        assert_eq!(proxy["body"], "{\"a\":1}");
        assert!(proxy.get("cookies").is_none());
        let v2 = HttpResponse::no_content().into_proxy(Payload::HttpV2);
        assert_eq!((&v2["body"], &v2["cookies"]), (&json!(""), &json!([])));
        for answer in [&proxy, &v2] {
            assert_eq!(answer["headers"]["cache-control"], "no-store");
            assert_eq!(answer["headers"]["x-content-type-options"], "nosniff");
        }
    }
}
