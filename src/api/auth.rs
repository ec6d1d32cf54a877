//! Bearer-token authentication (spec 7): HS256 with a shared secret, or RS256/ES256 against a configured
//! JWKS; `exp` and `nbf` always, `iss` and `aud` when configured. Claims an API Gateway JWT authorizer has
//! already verified are taken as they are. Access tokens of the Cognito user pool (issue 9) are checked
//! against the pool's own JWKS (fetched on first use, and again for a key it does not know, at most once a
//! minute), its issuer and app client; the pool's groups make the role. The token itself is never logged or
//! echoed.

use super::request::HttpRequest;
use crate::config::{AuthConfig, CognitoConfig, ConfigError};
use crate::domain::AppError;
use crate::domain::acl;
use crate::domain::kms::KmsResource;
use crate::ports::SigningKeys;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The least time between two fetches of the pool's JWKS: a token naming an unknown key cannot make the
/// function fetch more often.
const REFETCH_AFTER: Duration = Duration::from_secs(60);

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 30;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything: a token of the configured secret or JWKS, or a member of the pool's admin group.
    Admin,
    /// Reads only: a member of the pool's read-only group.
    ReadOnly,
    /// Nothing: a pool user in neither group.
    NoAccess,
}

/// Who made the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    /// The user's other id (a pool user's `sub`, when `subject` is the user name): ACLs may name either.
    pub user_id: Option<String>,
    /// The user pool groups the user is in: ACLs may name them.
    pub groups: Vec<String>,
    pub role: Role,
}

impl Principal {
    /// No one: the caller of the sign-in route, which takes no token and may do nothing else.
    pub fn nobody() -> Principal {
        Principal {
            subject: String::new(),
            user_id: None,
            groups: Vec::new(),
            role: Role::NoAccess,
        }
    }

    /// Whether the role alone lets the caller view every KMS resource's keys.
    pub fn views_all(&self) -> bool {
        self.role != Role::NoAccess
    }

    /// Whether the caller may do the key `action` in `kms`: an admin may do anything, a reader may view,
    /// and the resource's ACLs may grant any action to the user or one of their groups.
    pub fn may(&self, kms: &KmsResource, action: &str) -> Result<(), AppError> {
        let by_role = match self.role {
            Role::Admin => true,
            Role::ReadOnly => action == acl::VIEW,
            Role::NoAccess => false,
        };
        let mut ids = vec![self.subject.as_str()];
        ids.extend(self.user_id.as_deref());
        if by_role || acl::permits(&kms.acls, &ids, &self.groups, action) {
            return Ok(());
        }
        Err(AppError::Forbidden(format!(
            "user '{}' may not {action} in KMS resource '{}'",
            self.subject, kms.name
        )))
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
}

/// What a Cognito access token carries besides the standard claims.
#[derive(Deserialize)]
struct PoolClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    token_use: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default, rename = "cognito:groups")]
    groups: Vec<String>,
}

type KeysById = HashMap<String, (DecodingKey, Algorithm)>;

/// The keys of a JWKS by `kid`, each with the algorithm it verifies.
fn keys_of(text: &str) -> Result<KeysById, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let kid = jwk
            .common
            .key_id
            .clone()
            .ok_or_else(|| "every key needs a kid".to_string())?;
        let algorithm = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
            _ => {
                return Err(format!(
                    "key '{kid}': only RSA (RS256) and EC P-256 (ES256) keys"
                ));
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key '{kid}': {e}"))?;
        keys.insert(kid, (key, algorithm));
    }
    Ok(keys)
}

/// The Cognito user pool's tokens: its keys, fetched when needed, and what its tokens must say.
pub struct PoolTokens {
    config: CognitoConfig,
    issuer: String,
    source: Arc<dyn SigningKeys>,
    keys: tokio::sync::RwLock<(KeysById, Option<Instant>)>,
}

impl PoolTokens {
    pub fn new(config: &CognitoConfig, source: Arc<dyn SigningKeys>) -> PoolTokens {
        PoolTokens {
            issuer: config.issuer(),
            config: config.clone(),
            source,
            keys: tokio::sync::RwLock::new((HashMap::new(), None)),
        }
    }

    /// The key `kid`, fetching the pool's JWKS when it is unknown and the last fetch is old enough.
    async fn key(&self, kid: &str) -> Result<Option<(DecodingKey, Algorithm)>, AppError> {
        {
            let keys = self.keys.read().await;
            if let Some(key) = keys.0.get(kid) {
                return Ok(Some(key.clone()));
            }
            if keys.1.is_some_and(|at| at.elapsed() < REFETCH_AFTER) {
                return Ok(None);
            }
        }
        let mut keys = self.keys.write().await;
        if keys.1.is_none_or(|at| at.elapsed() >= REFETCH_AFTER) {
            let text = self.source.jwks().await?;
            let fetched = keys_of(&text).map_err(|e| {
                AppError::Internal(format!("the user pool's JWKS is unusable: {e}"))
            })?;
            *keys = (fetched, Some(Instant::now()));
        }
        Ok(keys.0.get(kid).cloned())
    }

    async fn verify(&self, token: &str, kid: &str) -> Result<Principal, AppError> {
        let (key, algorithm) = self
            .key(kid)
            .await?
            .ok_or_else(|| unauthorized("the token's key is unknown"))?;
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.set_issuer(&[&self.issuer]);
        // An access token has no `aud`: its app client is `client_id`, checked below.
        validation.validate_aud = false;
        let claims = decode::<PoolClaims>(token, &key, &validation)
            .map_err(|err| unauthorized(rejection(&err)))?
            .claims;
        if claims.token_use.as_deref() != Some("access") {
            return Err(unauthorized("the token is not an access token"));
        }
        if claims.client_id.as_deref() != Some(self.config.client_id.as_str()) {
            return Err(unauthorized("the token is for another app client"));
        }
        let role = if claims.groups.contains(&self.config.admin_group) {
            Role::Admin
        } else if claims.groups.contains(&self.config.read_only_group) {
            Role::ReadOnly
        } else {
            Role::NoAccess
        };
        let (subject, user_id) = match claims.username {
            Some(username) => (username, claims.sub),
            None => (claims.sub.unwrap_or_default(), None),
        };
        Ok(Principal {
            subject,
            user_id,
            groups: claims.groups,
            role,
        })
    }
}

pub struct Authenticator {
    secret: Option<DecodingKey>,
    /// JWKS keys by `kid`, each with the algorithm it verifies.
    jwks: KeysById,
    issuer: Option<String>,
    audience: Option<String>,
    pool: Option<PoolTokens>,
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Result<Authenticator, ConfigError> {
        let jwks = match &config.jwks {
            Some(text) => keys_of(text).map_err(|reason| ConfigError::Invalid {
                name: "JWT_JWKS",
                reason,
            })?,
            None => HashMap::new(),
        };
        Ok(Authenticator {
            pool: None,
            secret: config
                .hs256_secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.as_bytes())),
            jwks,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        })
    }

    /// Also accepts the access tokens of this Cognito user pool.
    pub fn with_pool(self, pool: PoolTokens) -> Authenticator {
        Authenticator {
            pool: Some(pool),
            ..self
        }
    }

    pub async fn authenticate(&self, request: &HttpRequest) -> Result<Principal, AppError> {
        if let Some(claims) = &request.gateway_claims {
            let subject = claims.get("sub").cloned().unwrap_or_default();
            return Ok(Principal {
                subject,
                user_id: None,
                groups: Vec::new(),
                role: Role::Admin,
            });
        }
        let header = request
            .header("authorization")
            .ok_or_else(|| unauthorized("missing bearer token"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header must be 'Bearer <token>'"))?;
        // `alg: none` and unknown algorithms fail here: the header parser only knows signing algorithms.
        let header = decode_header(token).map_err(|_| unauthorized("malformed token"))?;
        if let (Some(pool), Some(kid)) = (&self.pool, header.kid.as_deref())
            && !self.jwks.contains_key(kid)
            && header.alg == Algorithm::RS256
        {
            return pool.verify(token, kid).await;
        }
        self.verify(token, &header)
    }

    fn verify(&self, token: &str, header: &jsonwebtoken::Header) -> Result<Principal, AppError> {
        let (key, algorithm) = match header.alg {
            Algorithm::HS256 => (
                self.secret
                    .as_ref()
                    .ok_or_else(|| unauthorized("HS256 tokens are not accepted"))?,
                Algorithm::HS256,
            ),
            Algorithm::RS256 | Algorithm::ES256 => {
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| unauthorized("the token names no key (kid)"))?;
                let (key, algorithm) = self
                    .jwks
                    .get(kid)
                    .ok_or_else(|| unauthorized("the token's key is unknown"))?;
                if *algorithm != header.alg {
                    return Err(unauthorized("the token's algorithm does not match its key"));
                }
                (key, *algorithm)
            }
            _ => return Err(unauthorized("unsupported token algorithm")),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        let data = decode::<Claims>(token, key, &validation)
            .map_err(|err| unauthorized(rejection(&err)))?;
        Ok(Principal {
            subject: data.claims.sub.unwrap_or_default(),
            user_id: None,
            groups: Vec::new(),
            role: Role::Admin,
        })
    }
}

/// Why a token was refused, in words that give nothing away.
fn rejection(err: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet",
        ErrorKind::InvalidSignature => "the token's signature is invalid",
        ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
        ErrorKind::InvalidAudience => "the token's audience is not accepted",
        ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
        _ => "the token is invalid",
    }
}

fn unauthorized(reason: &str) -> AppError {
    AppError::Unauthorized(reason.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &str = "test-secret";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn hs256(claims: serde_json::Value, secret: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn request_with(token: Option<&str>) -> HttpRequest {
        let mut request = HttpRequest::default();
        if let Some(token) = token {
            request
                .headers
                .insert("authorization".into(), format!("Bearer {token}"));
        }
        request
    }

    fn authenticator(issuer: Option<&str>, audience: Option<&str>) -> Authenticator {
        Authenticator::new(&AuthConfig {
            cognito: None,
            hs256_secret: Some(SECRET.into()),
            jwks: None,
            issuer: issuer.map(String::from),
            audience: audience.map(String::from),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_valid_hs256_token_passes() {
        let token = hs256(json!({"sub": "alice", "exp": now() + 600}), SECRET);
        let principal = authenticator(None, None)
            .authenticate(&request_with(Some(&token)))
            .await
            .unwrap();
        assert_eq!(principal.subject, "alice");
    }

    #[tokio::test]
    async fn every_bad_token_is_refused() {
        let auth = authenticator(Some("https://issuer"), Some("cckm"));
        let good = json!({"sub": "a", "exp": now() + 600, "iss": "https://issuer", "aud": "cckm"});
        let unsigned = format!(
            "{}.{}.",
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(r#"{"alg":"none","typ":"JWT"}"#),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(good.to_string())
        );
        let cases = [
            ("missing", None),
            ("malformed", Some("not-a-token".to_string())),
            ("unsigned", Some(unsigned)),
            ("wrong secret", Some(hs256(good.clone(), "other-secret"))),
            (
                "expired",
                Some(hs256(
                    json!({"exp": now() - 3600, "iss": "https://issuer", "aud": "cckm"}),
                    SECRET,
                )),
            ),
            (
                "not yet valid",
                Some(hs256(
                    json!({"exp": now() + 7200, "nbf": now() + 3600, "iss": "https://issuer", "aud": "cckm"}),
                    SECRET,
                )),
            ),
            (
                "no expiry",
                Some(hs256(
                    json!({"iss": "https://issuer", "aud": "cckm"}),
                    SECRET,
                )),
            ),
            (
                "wrong issuer",
                Some(hs256(
                    json!({"exp": now() + 600, "iss": "https://evil", "aud": "cckm"}),
                    SECRET,
                )),
            ),
            (
                "wrong audience",
                Some(hs256(
                    json!({"exp": now() + 600, "iss": "https://issuer", "aud": "x"}),
                    SECRET,
                )),
            ),
        ];
        for (name, token) in cases {
            let result = auth.authenticate(&request_with(token.as_deref())).await;
            assert!(
                matches!(result, Err(AppError::Unauthorized(_))),
                "{name}: {result:?}"
            );
        }
        assert!(
            auth.authenticate(&request_with(Some(&hs256(good, SECRET))))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_basic_scheme_is_refused() {
        let mut request = HttpRequest::default();
        request
            .headers
            .insert("authorization".into(), "Basic dXNlcjpwYXNz".into());
        assert!(matches!(
            authenticator(None, None).authenticate(&request).await,
            Err(AppError::Unauthorized(_))
        ));
    }

    #[tokio::test]
    async fn gateway_verified_claims_are_trusted() {
        let request = HttpRequest {
            gateway_claims: Some(HashMap::from([("sub".to_string(), "bob".to_string())])),
            ..HttpRequest::default()
        };
        assert_eq!(
            authenticator(None, None)
                .authenticate(&request)
                .await
                .unwrap()
                .subject,
            "bob"
        );
    }

    #[tokio::test]
    async fn es256_tokens_verify_against_the_jwks() {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let public = pair.public_key().as_ref();
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
            "x": b64(&public[1..33]), "y": b64(&public[33..65])}]});
        let auth = Authenticator::new(&AuthConfig {
            jwks: Some(jwks.to_string()),
            ..AuthConfig::default()
        })
        .unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        let key = EncodingKey::from_ec_der(pkcs8.as_ref());
        let token = encode(&header, &json!({"sub": "svc", "exp": now() + 600}), &key).unwrap();
        assert_eq!(
            auth.authenticate(&request_with(Some(&token)))
                .await
                .unwrap()
                .subject,
            "svc"
        );
        header.kid = Some("unknown".into());
        let stranger = encode(&header, &json!({"sub": "svc", "exp": now() + 600}), &key).unwrap();
        assert!(
            auth.authenticate(&request_with(Some(&stranger)))
                .await
                .is_err()
        );
        // With only a JWKS configured, HS256 tokens are not accepted at all.
        assert!(
            auth.authenticate(&request_with(Some(&hs256(
                json!({"exp": now() + 600}),
                SECRET
            ))))
            .await
            .is_err()
        );
    }
}
