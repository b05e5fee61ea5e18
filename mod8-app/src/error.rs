//! The app's error type and its HTTP mapping.
//!
//! Every failure a request can meet becomes one [`AppError`]; [`IntoResponse`] turns it into a
//! status and the body `{"error":{"code":"...","message":"..."}}` that every error response of
//! the API carries.
//! Internal failures never leak their cause to the client: the body carries the request id,
//! and the cause is logged under the same id (see [`crate::http`]).

use std::sync::Arc;

use axum::http::StatusCode;
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
    /// The thing asked for does not exist: 404.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique value is already taken; `field` names which: 409.
    #[error("{field} already exists")]
    Conflict {
        /// The field whose value is taken (`email`, `username`, ...).
        field: String,
    },
    /// A dependency the operation needs is down: 503.
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
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code in the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Validation { .. } => "validation",
            Self::NotFound(_) => "not_found",
            Self::Conflict { .. } => "conflict",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

/// Marker put on a 500 response so the request-id middleware can log the cause and add the
/// request id to the body (the error itself does not know which request it belongs to).
#[derive(Clone, Debug)]
pub struct InternalErrorCause(pub String);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let mut error = json!({ "code": code, "message": self.to_string() });
        match &self {
            Self::Validation { field, .. } | Self::Conflict { field } => {
                error["field"] = json!(field);
            }
            Self::Internal(_) => error["message"] = json!("internal error"),
            _ => {}
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        if let Self::Internal(cause) = self {
            response
                .extensions_mut()
                .insert(InternalErrorCause(format!("{cause:#}")));
        }
        response
    }
}

impl From<mod8_orm::Error> for AppError {
    fn from(e: mod8_orm::Error) -> Self {
        use mod8_orm::Error as E;
        match e {
            E::Validation { field, message } => Self::validation(field, message),
            E::NotFound { entity, key } => Self::NotFound(format!("{entity} {key}")),
            E::Conflict { field, .. } => Self::Conflict { field },
            E::Unavailable { source, .. } => Self::Unavailable {
                dependency: "sql",
                message: source.to_string(),
            },
            other => Self::Internal(anyhow::Error::new(other).context("sql")),
        }
    }
}

impl From<mod8_docstore::Error> for AppError {
    fn from(e: mod8_docstore::Error) -> Self {
        use mod8_docstore::Error as E;
        match e {
            E::Validation { field, message } => Self::Validation { field, message },
            e @ E::NotFound { .. } => Self::NotFound(e.to_string()),
            E::Unavailable { source, .. } => Self::Unavailable {
                dependency: "docs",
                message: source.to_string(),
            },
            other => Self::Internal(anyhow::Error::new(other).context("docs")),
        }
    }
}

impl From<mod8_mq::Error> for AppError {
    fn from(e: mod8_mq::Error) -> Self {
        use mod8_mq::Error as E;
        match e {
            E::Validation { field, message } => Self::validation(field, message),
            E::Unavailable { source, .. } => Self::Unavailable {
                dependency: "broker",
                message: source.to_string(),
            },
            // Closed by its owner: the app is shutting down, so this request meets a
            // dependency that is going away (503), not an internal fault (500).
            e @ E::Closed { .. } => Self::Unavailable {
                dependency: "broker",
                message: e.to_string(),
            },
            other if other.is_transient() => Self::Unavailable {
                dependency: "broker",
                message: other.to_string(),
            },
            other => Self::Internal(anyhow::Error::new(other).context("broker")),
        }
    }
}

impl From<mod8_datasci::Error> for AppError {
    fn from(e: mod8_datasci::Error) -> Self {
        Self::Internal(anyhow::Error::new(e).context("analytics"))
    }
}

impl From<mod8_cache::Error> for AppError {
    fn from(e: mod8_cache::Error) -> Self {
        // The cache fails open for backend trouble; what reaches here is a bad key or a
        // value that cannot be encoded, both programming errors.
        Self::Internal(anyhow::Error::new(e).context("cache"))
    }
}

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
                AppError::NotFound(m) => AppError::NotFound(m.clone()),
                AppError::Conflict { field } => AppError::Conflict {
                    field: field.clone(),
                },
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
    fn statuses_and_codes_follow_the_design() {
        let cases = [
            (AppError::BadRequest("x".into()), 400, "bad_request"),
            (AppError::validation("email", "bad"), 422, "validation"),
            (AppError::NotFound("user 1".into()), 404, "not_found"),
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

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let response = AppError::Internal(anyhow::anyhow!("password=hunter2")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let cause = response.extensions().get::<InternalErrorCause>().unwrap();
        assert!(cause.0.contains("hunter2"));
    }
}
