//! `POST /v1/auth/tokens`: sign-in, as CCKM's clients send it. Terraform sends `{username, password,
//! domain, auth_domain}` (empty strings when unset) with an empty `Authorization: Bearer`; Ansible sends
//! `{grant_type: "password", username, password, auth_domain_path}`; a refresh is `{grant_type:
//! "refresh_token", refresh_token}`. The route needs no token and ignores any. Users live in the Cognito
//! user pool; one domain (the root domain) is served.

use crate::api::request::HttpRequest;
use crate::api::response::HttpResponse;
use crate::app::App;
use crate::domain::AppError;
use crate::domain::list::parse_json_body;
use crate::ports::IssuedTokens;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
    domain: Option<String>,
    auth_domain: Option<String>,
    auth_domain_path: Option<String>,
    /// CCKM's own client id and token options: accepted, the pool's app client decides.
    #[serde(rename = "client_id")]
    _client_id: Option<String>,
    #[serde(rename = "renew_refresh_token")]
    _renew_refresh_token: Option<bool>,
    #[serde(rename = "labels")]
    _labels: Option<serde_json::Value>,
}

/// The names CCKM gives its root domain; any other domain is not served here.
fn is_root_domain(domain: &Option<String>) -> bool {
    domain
        .as_deref()
        .is_none_or(|d| matches!(d.trim(), "" | "root" | "/" | "/root"))
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, AppError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AppError::InvalidParam(format!("{name} is required")))
}

pub async fn create(app: &App, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let body: TokenRequest = parse_json_body(&request.body)?;
    let sign_in = app.sign_in.as_ref().ok_or_else(|| {
        AppError::NotFound(
            "sign-in needs a Cognito user pool (COGNITO_USER_POOL_ID, COGNITO_CLIENT_ID)".into(),
        )
    })?;
    for domain in [&body.domain, &body.auth_domain, &body.auth_domain_path] {
        if !is_root_domain(domain) {
            return Err(AppError::InvalidParam(
                "only the root domain is served here".into(),
            ));
        }
    }
    let (issued, used_refresh) = match body.grant_type.as_deref().unwrap_or("password") {
        "password" => {
            let username = required(&body.username, "username")?;
            let password = required(&body.password, "password")?;
            (sign_in.with_password(username, password).await?, None)
        }
        "refresh_token" => {
            let refresh = required(&body.refresh_token, "refresh_token")?;
            (
                sign_in.with_refresh_token(refresh).await?,
                Some(refresh.to_string()),
            )
        }
        other => {
            return Err(AppError::InvalidParam(format!(
                "grant_type '{other}' is not served; use 'password' or 'refresh_token'"
            )));
        }
    };
    Ok(HttpResponse::json(
        200,
        answer(issued, used_refresh, sign_in.client_id()),
    ))
}

/// CCKM's answer: `jwt`, `duration` (seconds), `token_type`, `client_id`, `refresh_token` and its id.
fn answer(
    issued: IssuedTokens,
    used_refresh: Option<String>,
    client_id: &str,
) -> serde_json::Value {
    let refresh_token = issued.refresh_token.or(used_refresh);
    // An id that names the refresh token without revealing it.
    let refresh_token_id = refresh_token
        .as_deref()
        .map(|t| Uuid::new_v5(&Uuid::NAMESPACE_OID, t.as_bytes()).to_string());
    json!({
        "jwt": issued.access_token,
        "duration": issued.expires_in_seconds,
        "token_type": "Bearer",
        "client_id": client_id,
        "refresh_token": refresh_token,
        "refresh_token_id": refresh_token_id,
    })
}
