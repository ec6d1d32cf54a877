//! Amazon Cognito: users sign in to the pool's app client with their password (USER_PASSWORD_AUTH) or a
//! refresh token (REFRESH_TOKEN_AUTH); and the pool's signing keys (JWKS), fetched over HTTPS from the pool's
//! well-known URL. Passwords and tokens are never logged.

use super::aws_error::reason;
use crate::domain::AppError;
use crate::ports::{IssuedTokens, SignIn, SigningKeys};
use async_trait::async_trait;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata;
use aws_sdk_cognitoidentityprovider::types::AuthFlowType;
use http_body_util::{BodyExt, Empty, Limited};
use std::time::Duration;

/// The one answer to wrong credentials, whichever was wrong.
const WRONG_CREDENTIALS: &str = "wrong username or password";
/// A JWKS is a few kilobytes; anything much larger is not one.
const MAX_JWKS_BYTES: usize = 256 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

pub struct CognitoSignIn {
    client: Client,
    client_id: String,
}

impl CognitoSignIn {
    pub fn new(client: Client, client_id: &str) -> Self {
        CognitoSignIn {
            client,
            client_id: client_id.to_string(),
        }
    }

    async fn initiate(
        &self,
        flow: AuthFlowType,
        parameters: &[(&str, &str)],
    ) -> Result<IssuedTokens, AppError> {
        let mut request = self
            .client
            .initiate_auth()
            .client_id(&self.client_id)
            .auth_flow(flow);
        for (name, value) in parameters {
            request = request.auth_parameters(*name, *value);
        }
        let output = request.send().await.map_err(|err| {
            match err.as_service_error().and_then(|e| e.code()) {
                // A username or token Cognito cannot even read (too long, odd characters) is as wrong as
                // any other: the same answer, so nothing is learned from it.
                Some(
                    "NotAuthorizedException"
                    | "UserNotFoundException"
                    | "UserNotConfirmedException"
                    | "PasswordResetRequiredException"
                    | "InvalidParameterException",
                ) => AppError::Unauthorized(WRONG_CREDENTIALS.into()),
                _ => AppError::Internal(reason("cognito InitiateAuth", &err)),
            }
        })?;
        if let Some(challenge) = output.challenge_name() {
            // A new password to set, or a second factor: not something a CCKM client can answer.
            return Err(AppError::Unauthorized(format!(
                "sign-in needs the {} challenge answered in Cognito first",
                challenge.as_str()
            )));
        }
        let result = output.authentication_result.ok_or_else(|| {
            AppError::Internal("cognito InitiateAuth: no authentication result".into())
        })?;
        Ok(IssuedTokens {
            access_token: result.access_token.ok_or_else(|| {
                AppError::Internal("cognito InitiateAuth: no access token".into())
            })?,
            refresh_token: result.refresh_token,
            expires_in_seconds: i64::from(result.expires_in),
        })
    }
}

#[async_trait]
impl SignIn for CognitoSignIn {
    fn client_id(&self) -> &str {
        &self.client_id
    }

    async fn with_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<IssuedTokens, AppError> {
        self.initiate(
            AuthFlowType::UserPasswordAuth,
            &[("USERNAME", username), ("PASSWORD", password)],
        )
        .await
    }

    async fn with_refresh_token(&self, refresh_token: &str) -> Result<IssuedTokens, AppError> {
        self.initiate(
            AuthFlowType::RefreshTokenAuth,
            &[("REFRESH_TOKEN", refresh_token)],
        )
        .await
    }
}

/// The pool's JWKS, from `<endpoint>/<pool id>/.well-known/jwks.json`.
pub struct PoolSigningKeys {
    url: String,
}

impl PoolSigningKeys {
    /// `endpoint`: the Cognito endpoint the SDK uses when one is configured (an emulator), else AWS's.
    pub fn new(endpoint: Option<&str>, region: &str, user_pool_id: &str) -> Self {
        let base = endpoint.map_or_else(
            || format!("https://cognito-idp.{region}.amazonaws.com"),
            |e| e.trim_end_matches('/').to_string(),
        );
        PoolSigningKeys {
            url: format!("{base}/{user_pool_id}/.well-known/jwks.json"),
        }
    }
}

#[async_trait]
impl SigningKeys for PoolSigningKeys {
    async fn jwks(&self) -> Result<String, AppError> {
        let failed = |what: String| AppError::Internal(format!("fetching {}: {what}", self.url));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| failed(format!("no root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build::<_, Empty<bytes::Bytes>>(connector);
        let request = http::Request::get(&self.url)
            .body(Empty::new())
            .map_err(|e| failed(e.to_string()))?;
        let response = tokio::time::timeout(FETCH_TIMEOUT, client.request(request))
            .await
            .map_err(|_| failed("timed out".into()))?
            .map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("status {}", response.status())));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| failed(e.to_string()))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| failed("not UTF-8".into()))
    }
}
