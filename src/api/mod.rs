//! The HTTP API: authenticate, match the route, call the handler, answer with JSON or a CCKM error.
//! Handlers live in `routes/` by resource; they stay small and call `crate::service`.

pub mod auth;
pub mod request;
pub mod response;
mod routes;
pub mod views;

use crate::app::App;
use crate::domain::AppError;
use auth::{Authenticator, Principal, Role};
use request::HttpRequest;
use request::Payload;
use response::HttpResponse;
use serde_json::Value;

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
    /// `POST /keys/{id}/<action>`: a change to the key in AWS.
    KeyAction(String, String),
    KmsUpdateAcls(String),
    KmsArchive(String),
    KmsRecover(String),
    KeyRotations(String),
    KeyVersions(String),
    KeyPublicKey(String),
    OrganizationDiscoveries,
    AccountDetails,
    AccountRegions,
    AliasVerify,
    SignIn,
    ConnectionCollection,
    Connection(String),
    ConnectionTest,
    ConnectionTestSaved(String),
    JobConfigCollection,
    JobConfig(String),
    JobConfigRunNow(String),
}

impl Route {
    /// The methods the route takes, as an `Allow` header lists them.
    fn methods(&self) -> &'static str {
        match self {
            Route::KmsCollection
            | Route::JobCollection
            | Route::KeyCollection
            | Route::ConnectionCollection
            | Route::JobConfigCollection => "GET, POST",
            Route::Kms(_) | Route::Connection(_) | Route::JobConfig(_) => "GET, PATCH, DELETE",
            Route::Job(_)
            | Route::KeyRotations(_)
            | Route::KeyVersions(_)
            | Route::KeyPublicKey(_) => "GET",
            Route::JobCancel(_)
            | Route::KeyRefresh(_)
            | Route::KeyAction(..)
            | Route::KmsUpdateAcls(_)
            | Route::ConnectionTest
            | Route::ConnectionTestSaved(_)
            | Route::KmsArchive(_)
            | Route::KmsRecover(_)
            | Route::OrganizationDiscoveries
            | Route::AccountDetails
            | Route::AccountRegions
            | Route::AliasVerify
            | Route::SignIn
            | Route::JobConfigRunNow(_) => "POST",
            Route::Key(_) => "GET, DELETE",
        }
    }

    fn parse(path: &str) -> Option<Route> {
        if path == "/v1/auth/tokens" {
            return Some(Route::SignIn);
        }
        if let Some(rest) = path.strip_prefix("/v1/scheduler/job-configs") {
            let segments: Vec<&str> = rest.split('/').collect();
            return match segments.as_slice() {
                [""] => Some(Route::JobConfigCollection),
                ["", id] if !id.is_empty() => Some(Route::JobConfig(id.to_string())),
                ["", id, "run-now"] if !id.is_empty() => {
                    Some(Route::JobConfigRunNow(id.to_string()))
                }
                _ => None,
            };
        }
        if path == "/v1/connectionmgmt/services/aws/connection-test" {
            return Some(Route::ConnectionTest);
        }
        if let Some(rest) = path.strip_prefix("/v1/connectionmgmt/services/aws/connections") {
            let segments: Vec<&str> = rest.split('/').collect();
            return match segments.as_slice() {
                [""] => Some(Route::ConnectionCollection),
                ["", id] if !id.is_empty() => Some(Route::Connection(id.to_string())),
                ["", id, "test"] if !id.is_empty() => {
                    Some(Route::ConnectionTestSaved(id.to_string()))
                }
                _ => None,
            };
        }
        let rest = path.strip_prefix("/v1/cckm/aws/")?;
        let segments: Vec<&str> = rest.split('/').collect();
        let id = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Some(match segments.as_slice() {
            ["kms"] => Route::KmsCollection,
            ["kms", id_] => Route::Kms(id(id_)?),
            ["kms", id_, "update-acls"] => Route::KmsUpdateAcls(id(id_)?),
            ["kms", id_, "archive"] => Route::KmsArchive(id(id_)?),
            ["kms", id_, "recover"] => Route::KmsRecover(id(id_)?),
            ["synchronization-jobs"] => Route::JobCollection,
            ["synchronization-jobs", id_] => Route::Job(id(id_)?),
            ["synchronization-jobs", id_, "cancel"] => Route::JobCancel(id(id_)?),
            ["keys"] => Route::KeyCollection,
            ["keys", id_] => Route::Key(id(id_)?),
            ["keys", id_, "refresh"] => Route::KeyRefresh(id(id_)?),
            ["keys", id_, "rotations"] => Route::KeyRotations(id(id_)?),
            ["keys", id_, "versions"] => Route::KeyVersions(id(id_)?),
            ["keys", id_, "download-public-key"] => Route::KeyPublicKey(id(id_)?),
            ["keys", id_, action] => Route::KeyAction(id(id_)?, id(action)?),
            ["organization-discoveries"] => Route::OrganizationDiscoveries,
            ["accounts"] => Route::AccountDetails,
            ["get-all-regions"] => Route::AccountRegions,
            ["alias", "verify"] => Route::AliasVerify,
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
        match self.dispatch(&request).await {
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
        let route = Route::parse(&request.path);
        // Sign-in takes no token, and ignores one (Terraform sends `Bearer` with an empty token).
        let principal = match route {
            Some(Route::SignIn) => None,
            _ => Some(self.auth.authenticate(request).await?),
        };
        // Sign-in's caller is nobody yet; every other route has a principal.
        let caller = principal.clone().unwrap_or_else(Principal::nobody);
        let route =
            route.ok_or_else(|| AppError::NotFound(format!("no route for {}", request.path)))?;
        request::check_body(request)?;
        let app = &self.app;
        let method = request.method.as_str();
        if let Some(principal) = &principal
            && !decided_by_acls(&route, method)
        {
            allow(principal, method)?;
        }
        match (&route, method) {
            (Route::SignIn, "POST") => routes::tokens::create(app, request).await,
            (Route::JobConfigCollection, "POST") => routes::job_configs::create(app, request).await,
            (Route::JobConfigCollection, "GET") => routes::job_configs::list(app, request).await,
            (Route::JobConfig(id), "GET") => routes::job_configs::get(app, id).await,
            (Route::JobConfig(id), "PATCH") => routes::job_configs::patch(app, id, request).await,
            (Route::JobConfig(id), "DELETE") => routes::job_configs::delete(app, id).await,
            (Route::JobConfigRunNow(id), "POST") => routes::job_configs::run_now(app, id).await,
            (Route::ConnectionCollection, "POST") => {
                routes::connections::create(app, request).await
            }
            (Route::ConnectionCollection, "GET") => routes::connections::list(app, request).await,
            (Route::Connection(id), "GET") => routes::connections::get(app, id).await,
            (Route::ConnectionTest, "POST") => {
                routes::connections::test_unsaved(app, request).await
            }
            (Route::ConnectionTestSaved(id), "POST") => routes::connections::test(app, id).await,
            (Route::Connection(id), "PATCH") => routes::connections::patch(app, id, request).await,
            (Route::Connection(id), "DELETE") => routes::connections::delete(app, id).await,
            (Route::KmsCollection, "POST") => routes::kms::create(app, request).await,
            (Route::KmsCollection, "GET") => routes::kms::list(app, request).await,
            (Route::Kms(id), "GET") => routes::kms::get(app, id, &caller).await,
            (Route::KmsUpdateAcls(id), "POST") => routes::kms::update_acls(app, id, request).await,
            (Route::KmsArchive(id), "POST") => routes::kms::archive(app, id, true).await,
            (Route::KmsRecover(id), "POST") => routes::kms::archive(app, id, false).await,
            (Route::Kms(id), "PATCH") => routes::kms::patch(app, id, request).await,
            (Route::Kms(id), "DELETE") => routes::kms::delete(app, id).await,
            (Route::JobCollection, "POST") => routes::jobs::create(app, request, &caller).await,
            (Route::JobCollection, "GET") => routes::jobs::list(app, request).await,
            (Route::Job(id), "GET") => routes::jobs::get(app, id).await,
            (Route::JobCancel(id), "POST") => routes::jobs::cancel(app, id).await,
            (Route::KeyCollection, "GET") => routes::keys::list(app, request, &caller).await,
            (Route::KeyCollection, "POST") => routes::keys::create(app, request, &caller).await,
            (Route::Key(id), "GET") => routes::keys::get(app, id, &caller).await,
            (Route::Key(id), "DELETE") => routes::keys::delete(app, id).await,
            (Route::KeyRefresh(id), "POST") => routes::keys::refresh(app, id, &caller).await,
            (Route::KeyAction(id, action), "POST") => {
                routes::keys::change(app, id, action, request, &caller).await
            }
            (Route::KeyRotations(id), "GET") => {
                routes::keys::rotations(app, id, request, &caller).await
            }
            (Route::KeyVersions(id), "GET") => {
                routes::keys::versions(app, id, request, &caller).await
            }
            (Route::KeyPublicKey(id), "GET") => routes::keys::public_key(app, id, &caller).await,
            (Route::OrganizationDiscoveries, "POST") => routes::discovery::run(app, request).await,
            (Route::AccountDetails, "POST") => routes::accounts::details(app, request).await,
            (Route::AccountRegions, "POST") => routes::accounts::regions(app, request).await,
            (Route::AliasVerify, "POST") => {
                routes::accounts::verify_alias(app, request, &caller).await
            }
            _ => Err(AppError::MethodNotAllowed {
                method: method.to_string(),
                path: request.path.clone(),
                allow: route.methods(),
            }),
        }
    }
}

/// The requests whose KMS resource decides, by the caller's role and its ACLs (`Principal::may`): key
/// reads and writes, and sync jobs. Every other request goes by the role alone (`allow`).
fn decided_by_acls(route: &Route, method: &str) -> bool {
    matches!(
        (route, method),
        (Route::Kms(_), "GET")
            | (Route::KeyCollection, "GET" | "POST")
            | (Route::Key(_), "GET")
            | (
                Route::KeyRotations(_) | Route::KeyVersions(_) | Route::KeyPublicKey(_),
                "GET"
            )
            | (Route::KeyRefresh(_) | Route::KeyAction(..), "POST")
            | (Route::JobCollection, "POST")
            | (Route::AliasVerify, "POST")
    )
}

/// What the caller's role allows: admins everything, readers GETs, anyone else nothing.
fn allow(principal: &Principal, method: &str) -> Result<(), AppError> {
    match principal.role {
        Role::Admin => Ok(()),
        Role::ReadOnly if method == "GET" => Ok(()),
        Role::ReadOnly => Err(AppError::Forbidden(format!(
            "user '{}' may only read: {method} is refused",
            principal.subject
        ))),
        Role::NoAccess => Err(AppError::Forbidden(format!(
            "user '{}' is in neither the admin group nor the read-only group",
            principal.subject
        ))),
    }
}

/// Lambda returns at most 6 MB (6,291,456 bytes) of serialized response; a margin is kept for the runtime.
const MAX_PROXY_RESPONSE: usize = 6_200_000;

/// The proxy response as it leaves the function, or a refusal asking for pages when it would pass Lambda's
/// limit. The whole proxy object counts, and its body is a JSON string in which every quote is escaped, so
/// the answer can be far larger than the body.
pub fn within_lambda_limit(proxy: Value, request_id: &str, payload: Payload) -> Value {
    let size = proxy.to_string().len();
    if size <= MAX_PROXY_RESPONSE {
        return proxy;
    }
    let err = AppError::InvalidParam(format!(
        "the answer ({size} bytes as a Lambda response) is larger than a Lambda function can return; \
         page with limit and skip"
    ));
    tracing::info!(request_id, size, "answer too large for Lambda; refused");
    HttpResponse::error(&err, request_id).into_proxy(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_too_large_for_lambda_once_in_its_proxy_form_asks_for_paging() {
        // A 4.5 MB body of short quoted strings: its proxy form escapes every quote, and passes 6 MB.
        let items = vec![serde_json::json!({"k": "v"}); 450_000];
        let body = serde_json::json!({"resources": items});
        assert!(body.to_string().len() < 5_000_000);
        for payload in [Payload::RestV1, Payload::HttpV2] {
            let proxy = HttpResponse::json(200, body.clone()).into_proxy(payload);
            let answer = within_lambda_limit(proxy, "r", payload);
            assert_eq!(answer["statusCode"], 400);
            assert!(
                answer["body"]
                    .as_str()
                    .unwrap()
                    .contains("page with limit and skip")
            );
        }
        let small =
            HttpResponse::json(200, serde_json::json!({"x": 1})).into_proxy(Payload::RestV1);
        assert_eq!(
            within_lambda_limit(small.clone(), "r", Payload::RestV1),
            small
        );
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
        assert_eq!(
            Route::parse("/v1/cckm/aws/keys/k/add-alias"),
            Some(Route::KeyAction("k".into(), "add-alias".into()))
        );
        assert_eq!(
            Route::parse("/v1/cckm/aws/kms/a/update-acls"),
            Some(Route::KmsUpdateAcls("a".into()))
        );
        assert_eq!(Route::parse("/v1/cckm/azure/keys"), None);
        assert_eq!(Route::parse("/v2/cckm/aws/kms"), None);
    }
}
