//! Bearer-token authentication and authorisation of the HTTP API.
//!
//! Every request but `GET /healthz` and `POST /api/users` (registration) carries
//! `Authorization: Bearer <token>`. A token is a JWT signed with HS256 by one of the keys of
//! [`AuthConfig`]: its header names the key (`kid`), its claims say
//! who it speaks for (`sub`), with which [`Scope`], and until when (`exp`, always checked).
//!
//! | scope | may |
//! |---|---|
//! | `user` (`sub` = the user's id) | read its own profile and recommendations, record its own events |
//! | `service` | record events for any user |
//! | `admin` | everything: any user's data and events, `/api/insights`, `/metrics`, `POST /api/tokens` |
//!
//! A request without a valid token is answered 401 `unauthorized` (with
//! `WWW-Authenticate: Bearer`); a valid token asking for what its scope does not allow, 403
//! `forbidden`.
//!
//! Getting a token: registration answers the new user's token in its 201 body (`token`). Later
//! tokens — a user's whose token expired, or a service's — are issued by an admin through
//! `POST /api/tokens` (there is no password login: the API stores no credentials). The first
//! admin token comes from whoever holds a key: `mod8 serve` prints one at startup when it runs
//! on a generated development key; with configured keys, mint one with any HS256 JWT tool (see
//! the README).
//!
//! Key rotation: the first configured key signs, every configured key verifies, by `kid`; a
//! token whose key was removed from the configuration is refused. HMAC verification is the
//! `ring` crate's, which compares in constant time; nothing else here compares secrets. Tokens
//! are never logged: the request log records the request id, method, route and status only.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::AuthConfig;
use crate::error::AppError;
use crate::App;

/// Seconds of clock skew tolerated on `exp` between the servers that issue and check tokens.
pub const LEEWAY_SECS: u64 = 5;

/// What a token may do (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// One user's own resources (`sub` is the user id).
    User,
    /// Records events for any user (an ingesting backend).
    Service,
    /// Everything, including insights, metrics and issuing tokens.
    Admin,
}

/// The claims of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Whom the token speaks for: the user id for [`Scope::User`], a name otherwise.
    pub sub: String,
    /// What it may do.
    pub scope: Scope,
    /// Issued at (seconds since the Unix epoch).
    pub iat: u64,
    /// Expires at (seconds since the Unix epoch).
    pub exp: u64,
}

/// A freshly signed token.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    /// The JWT to send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Always `Bearer`.
    #[schema(value_type = String)]
    pub token_type: &'static str,
    /// Its scope.
    pub scope: Scope,
    /// Its subject.
    pub sub: String,
    /// When it stops being accepted.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Why a request was not authenticated or not authorised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("no bearer token: send `Authorization: Bearer <token>`")]
    Missing,
    /// An `Authorization` header of another scheme or not readable.
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    /// Not a JWT at all.
    #[error("the bearer token is not a well-formed JWT ({0})")]
    Malformed(String),
    /// Not signed with HS256.
    #[error("the token is signed with {0}; only HS256 is accepted")]
    WrongAlgorithm(String),
    /// The header names no key.
    #[error("the token names no key id (kid)")]
    NoKeyId,
    /// Signed by a key that is not (or no longer) configured.
    #[error("the token's key {kid:?} is not accepted (unknown or retired)")]
    UnknownKey {
        /// The key id the token names.
        kid: String,
    },
    /// Past its `exp`.
    #[error("the token has expired")]
    Expired,
    /// A bad signature or bad claims.
    #[error("the token is not valid ({0})")]
    Invalid(String),
    /// Valid, but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// The token could not be signed (an internal fault).
    #[error("signing a token failed: {0}")]
    Signing(String),
}

impl From<AuthError> for AppError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Forbidden(message) => AppError::Forbidden(message),
            AuthError::Signing(message) => {
                AppError::Internal(anyhow::anyhow!("signing a token: {message}"))
            }
            other => AppError::Unauthorized(other.to_string()),
        }
    }
}

struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Signs and verifies tokens with the configured keys (built once, in [`App::build`]).
pub struct Authenticator {
    /// Non-empty; the first signs.
    keys: Vec<Key>,
    ttl: Duration,
    development: bool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field(
                "kids",
                &self.keys.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .field("ttl", &self.ttl)
            .field("development", &self.development)
            .finish()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Authenticator {
    /// The configured keys; with none, one random 256-bit development key (kid `dev-…`) that
    /// lives as long as this value: tokens it signs die with the process.
    pub fn new(config: &AuthConfig) -> Self {
        let to_key = |kid: &str, secret: &[u8]| Key {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        };
        if config.keys.is_empty() {
            let mut secret = [0u8; 32];
            rand::rng().fill_bytes(&mut secret);
            let kid = format!("dev-{}", &Uuid::new_v4().simple().to_string()[..8]);
            return Self {
                keys: vec![to_key(&kid, &secret)],
                ttl: config.token_ttl,
                development: true,
            };
        }
        Self {
            keys: config
                .keys
                .iter()
                .map(|k| to_key(&k.kid, &k.secret))
                .collect(),
            ttl: config.token_ttl,
            development: false,
        }
    }

    /// Whether it signs with a generated development key (no keys were configured).
    pub fn is_development(&self) -> bool {
        self.development
    }

    /// The id of the key that signs new tokens.
    pub fn signing_kid(&self) -> &str {
        self.keys.first().map_or("", |k| k.kid.as_str())
    }

    /// Lifetime of the tokens it issues.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `sub` with `scope`, signed with the first key, expiring after the
    /// configured lifetime.
    ///
    /// # Errors
    ///
    /// [`AuthError::Signing`] if signing fails (it does not for HS256 with a valid key).
    pub fn issue(&self, scope: Scope, sub: &str) -> Result<IssuedToken, AuthError> {
        let key = self
            .keys
            .first()
            .ok_or_else(|| AuthError::Signing("no signing key".into()))?;
        let iat = now_secs();
        let exp = iat.saturating_add(self.ttl.as_secs());
        let claims = Claims {
            sub: sub.to_owned(),
            scope,
            iat,
            exp,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| AuthError::Signing(e.to_string()))?;
        let expires_at = i64::try_from(exp)
            .ok()
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        Ok(IssuedToken {
            token,
            token_type: "Bearer",
            scope,
            sub: sub.to_owned(),
            expires_at,
        })
    }

    /// The claims of `token` if one of the configured keys signed it (by `kid`), with HS256,
    /// and it has not expired.
    ///
    /// # Errors
    ///
    /// Which check failed (never echoing the token).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::HS256 {
            return Err(AuthError::WrongAlgorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(AuthError::NoKeyId)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(AuthError::UnknownKey { kid })?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            })
    }

    /// The claims of the bearer token in `headers`.
    ///
    /// # Errors
    ///
    /// No or another `Authorization` scheme, or a token [`Authenticator::verify`] refuses.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Claims, AuthError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?;
        let value = value.to_str().map_err(|_| AuthError::NotBearer)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::NotBearer);
        }
        self.verify(token.trim())
    }
}

/// The outcome of authenticating a request, put in its extensions by the rate limiter (which
/// keys by token subject) so [`Caller`] does not verify the token twice.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated(pub(crate) Result<Claims, AuthError>);

/// The authenticated caller of a request: an extractor that answers 401 when the request has
/// no valid token.
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, AppError> {
        let outcome = match parts.extensions.get::<Authenticated>() {
            Some(Authenticated(outcome)) => outcome.clone(),
            None => app.auth.authenticate(&parts.headers),
        };
        Ok(Self(outcome?))
    }
}

impl Caller {
    /// The token's scope.
    pub fn scope(&self) -> Scope {
        self.0.scope
    }

    fn is_user(&self, id: Uuid) -> bool {
        self.0.scope == Scope::User && self.0.sub.parse::<Uuid>().ok() == Some(id)
    }

    /// Admin scope, or 403.
    ///
    /// # Errors
    ///
    /// [`AuthError::Forbidden`] for any other scope.
    pub fn require_admin(&self) -> Result<(), AuthError> {
        if self.0.scope == Scope::Admin {
            Ok(())
        } else {
            Err(AuthError::Forbidden(
                "this route needs an admin token".into(),
            ))
        }
    }

    /// May read user `id`'s profile and recommendations: the user itself, or an admin.
    ///
    /// # Errors
    ///
    /// [`AuthError::Forbidden`] for another user's token or a service token.
    pub fn may_read_user(&self, id: Uuid) -> Result<(), AuthError> {
        if self.0.scope == Scope::Admin || self.is_user(id) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "this token may not read user {id}'s data"
            )))
        }
    }

    /// May record an event for user `id`: the user itself, a service, or an admin.
    ///
    /// # Errors
    ///
    /// [`AuthError::Forbidden`] for another user's token.
    pub fn may_record_for(&self, id: Uuid) -> Result<(), AuthError> {
        if matches!(self.0.scope, Scope::Admin | Scope::Service) || self.is_user(id) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "this token may not record events for user {id}"
            )))
        }
    }
}

/// `POST /api/tokens` body: which token to issue (admin only).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The scope of the new token.
    pub scope: Scope,
    /// For `user` tokens: the user (must exist).
    #[serde(default)]
    pub user_id: Option<Uuid>,
    /// For `service` and `admin` tokens: who it is for (`[a-z0-9_.-]`, 1–64 characters;
    /// default the scope's name).
    #[serde(default)]
    pub subject: Option<String>,
}

impl TokenRequest {
    /// The subject the token gets, checked against the scope.
    ///
    /// # Errors
    ///
    /// A validation error naming `user_id` or `subject`.
    pub fn subject(&self) -> Result<String, AppError> {
        match (self.scope, self.user_id, &self.subject) {
            (Scope::User, Some(id), None) => Ok(id.to_string()),
            (Scope::User, None, _) => Err(AppError::validation(
                "user_id",
                "a user token needs the user's id",
            )),
            (Scope::User, Some(_), Some(_)) => Err(AppError::validation(
                "subject",
                "a user token's subject is its user id; leave subject out",
            )),
            (_, Some(_), _) => Err(AppError::validation(
                "user_id",
                "only user tokens name a user",
            )),
            (scope, None, subject) => {
                let default = if scope == Scope::Service {
                    "service"
                } else {
                    "admin"
                };
                let subject = subject.as_deref().unwrap_or(default);
                let valid = !subject.is_empty()
                    && subject.len() <= 64
                    && subject.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b)
                    });
                if valid {
                    Ok(subject.to_owned())
                } else {
                    Err(AppError::validation(
                        "subject",
                        "1 to 64 characters of a-z, 0-9, `_`, `.`, `-`",
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthKey;

    fn config(keys: &[(&str, &str)]) -> AuthConfig {
        AuthConfig {
            keys: keys
                .iter()
                .map(|(kid, secret)| AuthKey {
                    kid: (*kid).to_owned(),
                    secret: secret.repeat(32).into_bytes(),
                })
                .collect(),
            ..AuthConfig::default()
        }
    }

    #[test]
    fn a_token_verifies_with_its_key_and_names_its_subject_and_scope() {
        let auth = Authenticator::new(&config(&[("k1", "a")]));
        let issued = auth.issue(Scope::Service, "ingest").unwrap();
        let claims = auth.verify(&issued.token).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.scope),
            ("ingest", Scope::Service)
        );
        assert_eq!(claims.exp - claims.iat, auth.ttl().as_secs());
    }

    #[test]
    fn rotation_verifies_old_kids_while_listed_and_refuses_them_once_removed() {
        let old = Authenticator::new(&config(&[("old", "a")]));
        let token = old.issue(Scope::Admin, "admin").unwrap().token;
        let rotated = Authenticator::new(&config(&[("new", "b"), ("old", "a")]));
        assert_eq!(rotated.signing_kid(), "new");
        assert!(rotated.verify(&token).is_ok());
        let retired = Authenticator::new(&config(&[("new", "b")]));
        assert_eq!(
            retired.verify(&token),
            Err(AuthError::UnknownKey { kid: "old".into() })
        );
        // The same kid with another secret: a bad signature.
        let forged = Authenticator::new(&config(&[("old", "c")]));
        assert!(matches!(forged.verify(&token), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn expired_and_malformed_tokens_are_refused() {
        let secret = "a".repeat(32);
        let auth = Authenticator::new(&config(&[("k", "a")]));
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k".into());
        let claims = Claims {
            sub: "x".into(),
            scope: Scope::Admin,
            iat: now_secs() - 7200,
            exp: now_secs() - 3600,
        };
        let expired = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        assert_eq!(auth.verify(&expired), Err(AuthError::Expired));
        assert!(matches!(auth.verify("nope"), Err(AuthError::Malformed(_))));
        let mut headers = HeaderMap::new();
        assert_eq!(auth.authenticate(&headers), Err(AuthError::Missing));
        headers.insert(
            header::AUTHORIZATION,
            "Basic YWxhZGRpbjpvcGVu".parse().unwrap(),
        );
        assert_eq!(auth.authenticate(&headers), Err(AuthError::NotBearer));
    }

    #[test]
    fn without_keys_a_development_key_is_generated_per_process() {
        let a = Authenticator::new(&AuthConfig::default());
        let b = Authenticator::new(&AuthConfig::default());
        assert!(a.is_development());
        let token = a.issue(Scope::Admin, "admin").unwrap().token;
        assert!(a.verify(&token).is_ok());
        assert!(b.verify(&token).is_err(), "two dev keys must differ");
        assert!(!format!("{a:?}").contains("secret"));
    }
}
