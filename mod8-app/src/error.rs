//! The app's error type and its HTTP mapping.
//!
//! Every failure a request can meet becomes one [`AppError`]; [`IntoResponse`] turns it into a
//! status and the body `{"error":{"code":"...","message":"..."}}` that every error response of
//! the API carries.
//! Internal failures never leak their cause to the client: the body carries the request id,
//! and the cause is logged under the same id (see [`crate::http`]).

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// A failure of an app operation, by meaning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The request could not be read (malformed JSON, wrong content type): 400.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The input was readable but not valid; `field` names what was wrong: 422.
    #[error("invalid {field}: {message}")]
    Validation {
        /// The offending field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No valid bearer token: missing, malformed, signed by an unknown key, badly signed or
    /// expired (the message says which): 401 with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token whose scope or subject does not allow this request: 403.
    #[error("{0}")]
    Forbidden(String),
    /// The caller went over its rate limit: 429 with `Retry-After` (whole seconds).
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the next request may be accepted (at least 1).
        retry_after_secs: u64,
    },
    /// The thing asked for does not exist: 404.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique value is already taken; `field` names which: 409.
    #[error("{field} already exists")]
    Conflict {
        /// The field whose value is taken (`email`, `username`, ...).
        field: String,
    },
    /// The request conflicts with the current state of what it acts on — too little stock,
    /// an order status that cannot make this move, a review already written; `field` names
    /// what (`stock`, `status`, `user_id`) and `message` says why: 409 `conflict`.
    #[error("{message}")]
    StateConflict {
        /// What conflicts.
        field: String,
        /// Why, for a person (which variant, how many are available, ...).
        message: String,
    },
    /// A conditional write named a version that is no longer current (a stale `If-Match`, or
    /// a concurrent write won): 412. Read the resource again and retry with its new tag.
    #[error("{0}")]
    PreconditionFailed(String),
    /// A write that must be conditional came without its condition (no `If-Match`): 428.
    #[error("{0}")]
    PreconditionRequired(String),
    /// The backend behind the operation cannot do it (a server lacking a feature): 501.
    #[error("{0}")]
    Unsupported(String),
    /// A dependency the operation needs is down, or failed in a way that retrying may fix: 503.
    #[error("{dependency} unavailable: {message}")]
    Unavailable {
        /// Which dependency (`postgres`, `redis`, ...).
        dependency: &'static str,
        /// What went wrong.
        message: String,
    },
    /// Anything else: 500; the cause is logged, never sent.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// Shorthand for [`AppError::Validation`].
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::StateConflict { .. } => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            Self::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code in the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Validation { .. } => "validation",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::RateLimited { .. } => "rate_limited",
            Self::NotFound(_) => "not_found",
            Self::Conflict { .. } => "conflict",
            Self::StateConflict { .. } => "conflict",
            Self::PreconditionFailed(_) => "precondition_failed",
            Self::PreconditionRequired(_) => "precondition_required",
            Self::Unsupported(_) => "unsupported",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

/// Most characters of a quoted input (`"..."` or `` `...` ``) a client message keeps.
pub const ECHO_CHARS: usize = mod8_rules::ECHO_CHARS;
/// Most characters of a 4xx message.
pub const MAX_MESSAGE_CHARS: usize = 512;

/// A 4xx message as the client sees it: every quoted input (`"..."`, `` `...` ``) cut to
/// [`ECHO_CHARS`] characters with `…`, and so is any unquoted run without whitespace (the
/// decoder prefixes its message with the path to the bad value, which holds the client's
/// keys), Rust type names the JSON decoder puts in its messages
/// replaced by what they mean to a client (`expected struct EventInput` → `expected an
/// object`, `expected u32` → `expected a non-negative integer`), and the whole cut to
/// [`MAX_MESSAGE_CHARS`] characters. The body of a request never comes back unbounded, and
/// the API's internal names never leak.
pub fn client_message(raw: &str) -> String {
    let named = replace_type_names(&shorten_runs(&shorten_quoted(raw)));
    let mut chars = named.chars();
    let head: String = chars.by_ref().take(MAX_MESSAGE_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Cuts every `"..."` and `` `...` `` span longer than [`ECHO_CHARS`] characters.
fn shorten_quoted(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(4 * MAX_MESSAGE_CHARS));
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' && c != '`' {
            continue;
        }
        let close = c;
        let mut kept = 0usize;
        let mut cut = false;
        let mut escaped = false;
        for inner in chars.by_ref() {
            let closing = inner == close && !escaped;
            escaped = close == '"' && inner == '\\' && !escaped;
            if closing {
                if cut {
                    // Never end on half an escape sequence.
                    while out.ends_with('\\') {
                        out.pop();
                    }
                    out.push('…');
                }
                out.push(close);
                break;
            }
            if kept < ECHO_CHARS {
                out.push(inner);
                kept += 1;
            } else {
                cut = true;
            }
        }
        if chars.peek().is_none() && cut && !out.ends_with(close) {
            out.push('…');
        }
    }
    out
}

/// Cuts every run without whitespace longer than [`ECHO_CHARS`] characters (plus a little
/// room for the quotes and punctuation around a quoted input already cut).
fn shorten_runs(message: &str) -> String {
    const ROOM: usize = 8;
    let mut out = String::with_capacity(message.len().min(4 * MAX_MESSAGE_CHARS));
    for piece in message.split_inclusive(char::is_whitespace) {
        let word = piece.trim_end_matches(char::is_whitespace);
        if word.chars().count() > ECHO_CHARS + ROOM {
            out.extend(word.chars().take(ECHO_CHARS));
            out.push('…');
            out.push_str(&piece[word.len()..]);
        } else {
            out.push_str(piece);
        }
    }
    out
}

/// Replaces the Rust type names serde puts in its messages (`struct EventInput`, `enum
/// Channel`, `tuple variant E::V`, `u32`, `f64`, ...) by what they mean in JSON.
fn replace_type_names(message: &str) -> String {
    // Words (identifiers with `::` paths) and the text between them.
    let mut tokens: Vec<&str> = Vec::new();
    let mut start = 0;
    let mut in_word = false;
    for (i, c) in message.char_indices() {
        let word_char = c.is_alphanumeric() || c == '_' || c == ':';
        if word_char != in_word && i > start {
            tokens.push(&message[start..i]);
            start = i;
        }
        in_word = word_char;
    }
    tokens.push(&message[start..]);

    let is_word = |t: &str| {
        t.chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    };
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        // `<kind> <Name>`: kind is `struct`, `enum`, `tuple struct`, `unit variant`, ...
        let next_word = |j: usize| {
            (tokens.get(j) == Some(&" "))
                .then(|| tokens.get(j + 1).copied())
                .flatten()
                .filter(|w| is_word(w))
        };
        let kind_and_len = match t {
            "tuple" | "unit" | "newtype" | "struct"
                if matches!(next_word(i + 1), Some("struct" | "variant")) =>
            {
                Some((next_word(i + 1) == Some("struct"), 3))
            }
            "struct" => Some((true, 1)),
            "enum" => Some((false, 1)),
            _ => None,
        };
        // Only where serde names what it expected, and only a type's name (`CamelCase`).
        let expected = out.ends_with("expected ");
        if let (true, Some((is_struct, len))) = (expected, kind_and_len) {
            let name = next_word(i + len);
            if name.is_some_and(|n| n.starts_with(|c: char| c.is_ascii_uppercase())) {
                out.push_str(if is_struct {
                    "an object"
                } else {
                    "one of the allowed values"
                });
                i += len + 2;
                continue;
            }
        }
        out.push_str(match t {
            "u8" | "u16" | "u32" | "u64" | "u128" | "usize" if expected => "a non-negative integer",
            "i8" | "i16" | "i32" | "i64" | "i128" | "isize" if expected => "an integer",
            "f32" | "f64" if expected => "a number",
            "char" if expected => "a single character",
            other => other,
        });
        i += 1;
    }
    out
}

/// Marker put on a 500 response so the request-id middleware can log the cause and add the
/// request id to the body (the error itself does not know which request it belongs to).
#[derive(Clone, Debug)]
pub struct InternalErrorCause(pub String);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let message = match &self {
            // 4xx messages may quote what the client sent, or (from a decoder) name Rust types.
            Self::BadRequest(_) | Self::Validation { .. } => client_message(&self.to_string()),
            _ => self.to_string(),
        };
        let mut error = json!({ "code": code, "message": message });
        match &self {
            Self::Validation { field, .. }
            | Self::Conflict { field }
            | Self::StateConflict { field, .. } => {
                error["field"] = json!(field);
            }
            Self::Internal(_) => error["message"] = json!("internal error"),
            _ => {}
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        match self {
            Self::Internal(cause) => {
                response
                    .extensions_mut()
                    .insert(InternalErrorCause(format!("{cause:#}")));
            }
            Self::Unauthorized(_) => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"mod8\""),
                );
            }
            Self::RateLimited { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

/// `From<$error> for AppError` for one library's error, by meaning. The five libraries share
/// one error shape (`Validation`, `NotFound`, `Conflict`, `Unsupported`, `Unavailable`,
/// `Backend`, plus `is_transient()`), so they are all mapped by this one rule:
///
/// - `Validation` → 422 naming the field; `NotFound` → 404; `Conflict` → 409 naming the field;
/// - `Unsupported` → 501;
/// - `Unavailable`, and any other error whose `is_transient()` is true (a SQL serialization
///   failure, a broker that did not confirm in time, ...) → 503: retrying may succeed;
/// - the crate's own variants listed after the dependency name, as given;
/// - anything else → 500, the cause logged under the request id, never sent.
macro_rules! map_by_meaning {
    ($error:ty, $dependency:literal $(, $own:pat => $mapped:expr)* $(,)?) => {
        impl From<$error> for AppError {
            fn from(e: $error) -> Self {
                type E = $error;
                match e {
                    E::Validation { field, message } => Self::Validation { field, message },
                    E::NotFound { entity, key } => Self::NotFound(format!("{entity} {key}")),
                    E::Conflict { field, .. } => Self::Conflict { field },
                    e @ E::Unsupported { .. } => Self::Unsupported(e.to_string()),
                    E::Unavailable { source, .. } => Self::Unavailable {
                        dependency: $dependency,
                        message: source.to_string(),
                    },
                    $($own => $mapped,)*
                    e if e.is_transient() => Self::Unavailable {
                        dependency: $dependency,
                        message: e.to_string(),
                    },
                    e => Self::Internal(anyhow::Error::new(e).context($dependency)),
                }
            }
        }
    };
}

map_by_meaning!(mod8_orm::Error, "sql");
map_by_meaning!(mod8_docstore::Error, "docs");
map_by_meaning!(
    mod8_mq::Error,
    "broker",
    // Closed by its owner: the app is shutting down, so this request meets a dependency that
    // is going away (503), not an internal fault (500).
    e @ mod8_mq::Error::Closed { .. } => Self::Unavailable {
        dependency: "broker",
        message: e.to_string(),
    },
);
map_by_meaning!(mod8_datasci::Error, "analytics");
// The cache fails open for backend trouble: what reaches here is mostly a bad key or a value
// that cannot be encoded (`Codec`, a 500).
map_by_meaning!(mod8_cache::Error, "cache");

/// An error shared by every waiter of one cache load (the cache hands each caller the same
/// `Arc`), turned back into an owned error: the error itself when this was the last holder,
/// otherwise a copy with the same status, code and message. An internal error's copy keeps
/// its cause as text (with its context chain) rather than the original error value.
impl From<Arc<AppError>> for AppError {
    fn from(e: Arc<AppError>) -> Self {
        match Arc::try_unwrap(e) {
            Ok(e) => e,
            Err(e) => match e.as_ref() {
                AppError::BadRequest(m) => AppError::BadRequest(m.clone()),
                AppError::Validation { field, message } => AppError::validation(field, message),
                AppError::Unauthorized(m) => AppError::Unauthorized(m.clone()),
                AppError::Forbidden(m) => AppError::Forbidden(m.clone()),
                AppError::RateLimited { retry_after_secs } => AppError::RateLimited {
                    retry_after_secs: *retry_after_secs,
                },
                AppError::NotFound(m) => AppError::NotFound(m.clone()),
                AppError::Conflict { field } => AppError::Conflict {
                    field: field.clone(),
                },
                AppError::StateConflict { field, message } => AppError::StateConflict {
                    field: field.clone(),
                    message: message.clone(),
                },
                AppError::PreconditionFailed(m) => AppError::PreconditionFailed(m.clone()),
                AppError::PreconditionRequired(m) => AppError::PreconditionRequired(m.clone()),
                AppError::Unsupported(m) => AppError::Unsupported(m.clone()),
                AppError::Unavailable {
                    dependency,
                    message,
                } => AppError::Unavailable {
                    dependency,
                    message: message.clone(),
                },
                AppError::Internal(inner) => AppError::Internal(anyhow::anyhow!("{inner:#}")),
            },
        }
    }
}

/// Result of an app operation.
pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_cut_echoed_input_and_name_no_rust_types() {
        let long = "x".repeat(500);
        for raw in [
            format!("invalid type: string \"{long}\", expected a string"),
            format!("unknown field `{long}`, expected `user_id`"),
            format!("{long}: unknown field"),
            format!("invalid email: \"{long}"),
        ] {
            let m = client_message(&raw);
            assert!(!m.contains(&"x".repeat(ECHO_CHARS + 1)), "{m}");
            assert!(m.contains(&format!("{}…", "x".repeat(ECHO_CHARS))), "{m}");
        }
        assert!(client_message(&"word ".repeat(1_000)).chars().count() <= MAX_MESSAGE_CHARS + 1);
        for (raw, want) in [
            (
                "invalid type: integer `5`, expected struct EventInput at line 1 column 1",
                "invalid type: integer `5`, expected an object at line 1 column 1",
            ),
            (
                "invalid type: string \"a\", expected u32",
                "invalid type: string \"a\", expected a non-negative integer",
            ),
            ("expected f64", "expected a number"),
            ("expected tuple struct Point", "expected an object"),
            (
                "expected enum Channel",
                "expected one of the allowed values",
            ),
            (
                "unknown variant `sms2`, expected unit variant Channel::Sms",
                "unknown variant `sms2`, expected one of the allowed values",
            ),
            // Short quoted input and ordinary words are left alone.
            ("invalid email: \"ada\"", "invalid email: \"ada\""),
            ("the struct of enumerations", "the struct of enumerations"),
        ] {
            assert_eq!(client_message(raw), want, "{raw}");
        }
    }

    #[test]
    fn statuses_and_codes_follow_the_design() {
        let cases = [
            (AppError::BadRequest("x".into()), 400, "bad_request"),
            (AppError::validation("email", "bad"), 422, "validation"),
            (AppError::NotFound("user 1".into()), 404, "not_found"),
            (
                AppError::Unauthorized("no token".into()),
                401,
                "unauthorized",
            ),
            (AppError::Forbidden("not yours".into()), 403, "forbidden"),
            (
                AppError::RateLimited {
                    retry_after_secs: 3,
                },
                429,
                "rate_limited",
            ),
            (
                AppError::Conflict {
                    field: "email".into(),
                },
                409,
                "conflict",
            ),
            (
                AppError::Unavailable {
                    dependency: "redis",
                    message: "down".into(),
                },
                503,
                "unavailable",
            ),
            (AppError::Unsupported("$geoNear".into()), 501, "unsupported"),
            (AppError::Internal(anyhow::anyhow!("boom")), 500, "internal"),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(error.code(), code);
        }
    }

    #[test]
    fn a_closed_broker_is_unavailable_not_internal() {
        let error = AppError::from(mod8_mq::Error::Closed {
            backend: "rabbitmq",
        });
        assert_eq!(error.status().as_u16(), 503, "{error}");
    }

    #[test]
    fn a_shared_error_comes_back_with_its_status_code_and_message() {
        let cases = [
            AppError::BadRequest("x".into()),
            AppError::validation("email", "bad"),
            AppError::NotFound("user 1".into()),
            AppError::Conflict {
                field: "email".into(),
            },
            AppError::Unavailable {
                dependency: "redis",
                message: "down".into(),
            },
            AppError::Unsupported("$geoNear".into()),
            AppError::Internal(anyhow::anyhow!("boom").context("sql")),
        ];
        for error in cases {
            let (status, code, message) = (error.status(), error.code(), error.to_string());
            let shared = Arc::new(error);
            // Another waiter still holds it: a copy.
            let other = shared.clone();
            let copy = AppError::from(shared);
            assert_eq!(
                (copy.status(), copy.code(), copy.to_string()),
                (status, code, message.clone())
            );
            // The last holder gets the error itself.
            let last = AppError::from(other);
            assert_eq!((last.status(), last.to_string()), (status, message));
        }
    }

    /// The status, code and `field` of the response body an error gets.
    async fn response_of(error: AppError) -> (u16, serde_json::Value) {
        let response = error.into_response();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (status, body)
    }

    /// The shared variants of every library's error, built with its own constructors, in the
    /// same order: validation, not found, conflict, unsupported, unavailable, and a backend
    /// error that retrying would not fix.
    macro_rules! shared_variants {
        ($error:ty) => {{
            type E = $error;
            [
                AppError::from(E::validation("email", "not an email address")),
                AppError::from(E::not_found("user", "ada")),
                AppError::from(E::conflict("user", "username", "taken")),
                AppError::from(E::unsupported("$geoNear", "mongodb")),
                AppError::from(E::unavailable("server", "connection refused")),
                AppError::from(E::backend("server", "password=hunter2 rejected")),
            ]
        }};
    }

    #[tokio::test]
    async fn every_library_error_is_mapped_by_meaning() {
        let libraries = [
            ("orm", shared_variants!(mod8_orm::Error)),
            ("docstore", shared_variants!(mod8_docstore::Error)),
            ("cache", shared_variants!(mod8_cache::Error)),
            ("mq", shared_variants!(mod8_mq::Error)),
            ("datasci", shared_variants!(mod8_datasci::Error)),
        ];
        let expected = [
            (422, "validation", Some("email")),
            (404, "not_found", None),
            (409, "conflict", Some("username")),
            (501, "unsupported", None),
            (503, "unavailable", None),
            (500, "internal", None),
        ];
        for (library, errors) in libraries {
            for (error, (status, code, field)) in errors.into_iter().zip(expected) {
                let shown = error.to_string();
                let (got, body) = response_of(error).await;
                assert_eq!(got, status, "{library}: {shown}");
                let error = &body["error"];
                assert_eq!(error["code"], code, "{library}: {body}");
                assert!(error["message"].is_string(), "{library}: {body}");
                assert_eq!(
                    error["field"].as_str(),
                    field,
                    "{library}: the field is named for validation and conflicts only: {body}"
                );
                assert!(
                    !body.to_string().contains("hunter2"),
                    "{library}: an internal cause leaked: {body}"
                );
            }
        }
    }

    #[tokio::test]
    async fn unsupported_is_501_with_the_error_body() {
        let error = AppError::from(mod8_docstore::Error::unsupported(
            "$geoNear (server: not implemented yet)",
            "mongodb",
        ));
        let (status, body) = response_of(error).await;
        assert_eq!(status, 501);
        assert_eq!(
            body,
            serde_json::json!({"error": {
                "code": "unsupported",
                "message": "$geoNear (server: not implemented yet) is not supported by the mongodb backend",
            }})
        );
    }

    #[test]
    fn a_document_store_conflict_is_409_with_its_field() {
        let error = AppError::from(mod8_docstore::Error::conflict(
            "user profile",
            "username",
            "E11000 duplicate key error",
        ));
        assert_eq!(error.status().as_u16(), 409, "{error}");
        assert_eq!(error.code(), "conflict");
        assert!(
            matches!(&error, AppError::Conflict { field } if field == "username"),
            "{error:?}"
        );
    }

    /// A serialization failure (SQLSTATE 40001) as PostgreSQL reports it: retrying may
    /// succeed, so the client is told to come back (503), not that the server broke (500).
    #[tokio::test]
    async fn a_transient_sql_backend_error_is_503() {
        let Some(error) = serialization_failure().await else {
            return;
        };
        assert!(
            matches!(error, mod8_orm::Error::Backend { .. }),
            "not Unavailable: {error:?}"
        );
        assert!(error.is_transient(), "{error:?}");
        let error = AppError::from(error);
        assert_eq!(error.status().as_u16(), 503, "{error}");
        assert_eq!(error.code(), "unavailable");
    }

    /// A real serialization failure: two serializable transactions on PostgreSQL that each
    /// read what the other writes; the second to commit fails with SQLSTATE 40001. `None`
    /// (after a skip line) without `MOD8_POSTGRES_URL`; a failure then when
    /// `MOD8_REQUIRE_SERVICES=1`.
    async fn serialization_failure() -> Option<mod8_orm::Error> {
        use mod8_orm::sqlx::{Connection, Executor, PgConnection};
        let url = mod8_testkit::service_url("MOD8_POSTGRES_URL", "app error mapping (40001)")?;
        let table = mod8_testkit::unique_name("mod8_app_ssi");
        let mut setup = PgConnection::connect(&url).await.unwrap();
        setup
            .execute(format!("CREATE TABLE {table} (k int PRIMARY KEY, v int NOT NULL)").as_str())
            .await
            .unwrap();
        setup
            .execute(format!("INSERT INTO {table} VALUES (1, 0), (2, 0)").as_str())
            .await
            .unwrap();
        let mut a = PgConnection::connect(&url).await.unwrap();
        let mut b = PgConnection::connect(&url).await.unwrap();
        for c in [&mut a, &mut b] {
            c.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
                .await
                .unwrap();
        }
        // Write skew: each reads both rows, then writes the row the other one read.
        let sum = format!("SELECT sum(v) FROM {table}");
        a.execute(sum.as_str()).await.unwrap();
        b.execute(sum.as_str()).await.unwrap();
        a.execute(format!("UPDATE {table} SET v = v + 1 WHERE k = 1").as_str())
            .await
            .unwrap();
        a.execute("COMMIT").await.unwrap();
        // PostgreSQL refuses b's write or its commit, whichever it detects the cycle at.
        let failed = match b
            .execute(format!("UPDATE {table} SET v = v + 1 WHERE k = 2").as_str())
            .await
        {
            Err(e) => e,
            Ok(_) => b.execute("COMMIT").await.expect_err("write skew must fail"),
        };
        drop(b);
        setup
            .execute(format!("DROP TABLE {table}").as_str())
            .await
            .unwrap();
        Some(mod8_orm::Error::from_sqlx("postgres", failed))
    }

    #[test]
    fn auth_and_rate_limit_errors_carry_their_headers() {
        let response = AppError::Unauthorized("no token".into()).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        let response = AppError::RateLimited {
            retry_after_secs: 7,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let response = AppError::Internal(anyhow::anyhow!("password=hunter2")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let cause = response.extensions().get::<InternalErrorCause>().unwrap();
        assert!(cause.0.contains("hunter2"));
    }
}
