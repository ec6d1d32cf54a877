//! The HTTP API: authenticate, match the route, call the handler, answer with JSON or a CCKM error.
//! Handlers live in `routes/` by resource; they stay small and call `crate::service`.

pub mod auth;
pub mod request;
pub mod response;
mod routes;
pub mod views;

use crate::app::App;
use crate::domain::AppError;
use auth::Authenticator;
use request::HttpRequest;
use response::HttpResponse;

/// The routes of spec sections 1–3, by path shape.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    KmsCollection,
    Kms(String),
    JobCollection,
    Job(String),
    JobCancel(String),
    KeyCollection,
    Key(String),
    KeyRefresh(String),
}

impl Route {
    fn parse(path: &str) -> Option<Route> {
        let rest = path.strip_prefix("/v1/cckm/aws/")?;
        let segments: Vec<&str> = rest.split('/').collect();
        let id = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Some(match segments.as_slice() {
            ["kms"] => Route::KmsCollection,
            ["kms", id_] => Route::Kms(id(id_)?),
            ["synchronization-jobs"] => Route::JobCollection,
            ["synchronization-jobs", id_] => Route::Job(id(id_)?),
            ["synchronization-jobs", id_, "cancel"] => Route::JobCancel(id(id_)?),
            ["keys"] => Route::KeyCollection,
            ["keys", id_] => Route::Key(id(id_)?),
            ["keys", id_, "refresh"] => Route::KeyRefresh(id(id_)?),
            _ => return None,
        })
    }
}

pub struct Api {
    app: App,
    auth: Authenticator,
}

impl Api {
    pub fn new(app: App, auth: Authenticator) -> Api {
        Api { app, auth }
    }

    pub async fn handle(&self, request: HttpRequest) -> HttpResponse {
        match self
            .dispatch(&request)
            .await
            .and_then(fits_a_lambda_response)
        {
            Ok(response) => response,
            Err(err) => {
                if !matches!(err, AppError::Internal(_)) {
                    tracing::info!(request_id = %request.request_id, method = %request.method, path = %request.path, error = %err, "request refused");
                }
                HttpResponse::error(&err, &request.request_id)
            }
        }
    }

    async fn dispatch(&self, request: &HttpRequest) -> Result<HttpResponse, AppError> {
        self.auth.authenticate(request)?;
        let route = Route::parse(&request.path)
            .ok_or_else(|| AppError::NotFound(format!("no route for {}", request.path)))?;
        request::check_body(request)?;
        let app = &self.app;
        let method = request.method.as_str();
        match (&route, method) {
            (Route::KmsCollection, "POST") => routes::kms::create(app, request).await,
            (Route::KmsCollection, "GET") => routes::kms::list(app, request).await,
            (Route::Kms(id), "GET") => routes::kms::get(app, id).await,
            (Route::Kms(id), "PATCH") => routes::kms::patch(app, id, request).await,
            (Route::Kms(id), "DELETE") => routes::kms::delete(app, id).await,
            (Route::JobCollection, "POST") => routes::jobs::create(app, request).await,
            (Route::JobCollection, "GET") => routes::jobs::list(app, request).await,
            (Route::Job(id), "GET") => routes::jobs::get(app, id).await,
            (Route::JobCancel(id), "POST") => routes::jobs::cancel(app, id).await,
            (Route::KeyCollection, "GET") => routes::keys::list(app, request).await,
            (Route::Key(id), "GET") => routes::keys::get(app, id).await,
            (Route::Key(id), "DELETE") => routes::keys::delete(app, id).await,
            (Route::KeyRefresh(id), "POST") => routes::keys::refresh(app, id).await,
            _ => Err(AppError::MethodNotAllowed {
                method: method.to_string(),
                path: request.path.clone(),
            }),
        }
    }
}

/// Lambda returns at most 6 MB; past a margin for the proxy envelope, a list must be asked for in pages.
const MAX_RESPONSE_BODY: usize = 5_500_000;

fn fits_a_lambda_response(response: HttpResponse) -> Result<HttpResponse, AppError> {
    let size = response
        .body
        .as_ref()
        .map_or(0, |body| body.to_string().len());
    if size > MAX_RESPONSE_BODY {
        return Err(AppError::InvalidParam(format!(
            "the answer ({size} bytes) is larger than a Lambda function can return; page with limit and skip"
        )));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_too_large_for_lambda_asks_for_paging() {
        let big = HttpResponse::json(200, serde_json::json!({"x": "y".repeat(MAX_RESPONSE_BODY)}));
        assert!(
            matches!(fits_a_lambda_response(big), Err(AppError::InvalidParam(m)) if m.contains("limit"))
        );
        let small = HttpResponse::json(200, serde_json::json!({"x": 1}));
        assert!(fits_a_lambda_response(small).is_ok());
    }

    #[test]
    fn routes_match_by_shape() {
        assert_eq!(Route::parse("/v1/cckm/aws/kms"), Some(Route::KmsCollection));
        assert_eq!(
            Route::parse("/v1/cckm/aws/synchronization-jobs/abc/cancel"),
            Some(Route::JobCancel("abc".into()))
        );
        assert_eq!(
            Route::parse("/v1/cckm/aws/keys/k/refresh"),
            Some(Route::KeyRefresh("k".into()))
        );
        assert_eq!(Route::parse("/v1/cckm/aws/keys//refresh"), None);
        assert_eq!(Route::parse("/v1/cckm/azure/keys"), None);
        assert_eq!(Route::parse("/v2/cckm/aws/kms"), None);
    }
}
