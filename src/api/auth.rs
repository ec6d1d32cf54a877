//! Bearer-token authentication (spec 7): HS256 with a shared secret, or RS256/ES256 against a configured
//! JWKS; `exp` and `nbf` always, `iss` and `aud` when configured. Claims an API Gateway JWT authorizer has
//! already verified are taken as they are. The token itself is never logged or echoed.

use super::request::HttpRequest;
use crate::config::{AuthConfig, ConfigError};
use crate::domain::AppError;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use std::collections::HashMap;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 30;

/// Who made the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
}

pub struct Authenticator {
    secret: Option<DecodingKey>,
    /// JWKS keys by `kid`, each with the algorithm it verifies.
    jwks: HashMap<String, (DecodingKey, Algorithm)>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Result<Authenticator, ConfigError> {
        let mut jwks = HashMap::new();
        if let Some(text) = &config.jwks {
            let invalid = |reason: String| ConfigError::Invalid {
                name: "JWT_JWKS",
                reason,
            };
            let set: JwkSet =
                serde_json::from_str(text).map_err(|e| invalid(format!("not a JWKS: {e}")))?;
            for jwk in &set.keys {
                let kid = jwk
                    .common
                    .key_id
                    .clone()
                    .ok_or_else(|| invalid("every key needs a kid".into()))?;
                let algorithm = match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    _ => {
                        return Err(invalid(format!(
                            "key '{kid}': only RSA (RS256) and EC P-256 (ES256) keys"
                        )));
                    }
                };
                let key =
                    DecodingKey::from_jwk(jwk).map_err(|e| invalid(format!("key '{kid}': {e}")))?;
                jwks.insert(kid, (key, algorithm));
            }
        }
        Ok(Authenticator {
            secret: config
                .hs256_secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.as_bytes())),
            jwks,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        })
    }

    pub fn authenticate(&self, request: &HttpRequest) -> Result<Principal, AppError> {
        if let Some(claims) = &request.gateway_claims {
            let subject = claims.get("sub").cloned().unwrap_or_default();
            return Ok(Principal { subject });
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
        self.verify(token)
    }

    fn verify(&self, token: &str) -> Result<Principal, AppError> {
        // `alg: none` and unknown algorithms fail here: the header parser only knows signing algorithms.
        let header = decode_header(token).map_err(|_| unauthorized("malformed token"))?;
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
        let data = decode::<Claims>(token, key, &validation).map_err(|err| {
            use jsonwebtoken::errors::ErrorKind;
            unauthorized(match err.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet",
                ErrorKind::InvalidSignature => "the token's signature is invalid",
                ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                ErrorKind::InvalidAudience => "the token's audience is not accepted",
                ErrorKind::MissingRequiredClaim(_) => "the token has no expiry",
                _ => "the token is invalid",
            })
        })?;
        Ok(Principal {
            subject: data.claims.sub.unwrap_or_default(),
        })
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
            hs256_secret: Some(SECRET.into()),
            jwks: None,
            issuer: issuer.map(String::from),
            audience: audience.map(String::from),
        })
        .unwrap()
    }

    #[test]
    fn a_valid_hs256_token_passes() {
        let token = hs256(json!({"sub": "alice", "exp": now() + 600}), SECRET);
        let principal = authenticator(None, None)
            .authenticate(&request_with(Some(&token)))
            .unwrap();
        assert_eq!(principal.subject, "alice");
    }

    #[test]
    fn every_bad_token_is_refused() {
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
            let result = auth.authenticate(&request_with(token.as_deref()));
            assert!(
                matches!(result, Err(AppError::Unauthorized(_))),
                "{name}: {result:?}"
            );
        }
        assert!(
            auth.authenticate(&request_with(Some(&hs256(good, SECRET))))
                .is_ok()
        );
    }

    #[test]
    fn a_basic_scheme_is_refused() {
        let mut request = HttpRequest::default();
        request
            .headers
            .insert("authorization".into(), "Basic dXNlcjpwYXNz".into());
        assert!(matches!(
            authenticator(None, None).authenticate(&request),
            Err(AppError::Unauthorized(_))
        ));
    }

    #[test]
    fn gateway_verified_claims_are_trusted() {
        let request = HttpRequest {
            gateway_claims: Some(HashMap::from([("sub".to_string(), "bob".to_string())])),
            ..HttpRequest::default()
        };
        assert_eq!(
            authenticator(None, None)
                .authenticate(&request)
                .unwrap()
                .subject,
            "bob"
        );
    }

    #[test]
    fn es256_tokens_verify_against_the_jwks() {
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
                .unwrap()
                .subject,
            "svc"
        );
        header.kid = Some("unknown".into());
        let stranger = encode(&header, &json!({"sub": "svc", "exp": now() + 600}), &key).unwrap();
        assert!(auth.authenticate(&request_with(Some(&stranger))).is_err());
        // With only a JWKS configured, HS256 tokens are not accepted at all.
        assert!(
            auth.authenticate(&request_with(Some(&hs256(
                json!({"exp": now() + 600}),
                SECRET
            ))))
            .is_err()
        );
    }
}
