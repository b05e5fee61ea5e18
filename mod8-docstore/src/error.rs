//! The crate's one error type.

/// A result whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a document store, named by meaning rather than by backend.
///
/// Backends convert their own errors into this enum in one place (for MongoDB, the private
/// `mongodb::error_map` module), so callers match on meaning and one retry policy serves every
/// backend through [`Error::is_transient`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input was rejected before (or by) the store: a bad value, a missing required field, a
    /// key that would become a query operator, coordinates out of range.
    #[error("invalid {field}: {message}")]
    Validation {
        /// The offending field, as a dotted path (`metadata.extras.$where`, `geo.location`).
        field: String,
        /// Why it was rejected.
        message: String,
    },
    /// The document addressed by a key does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, for example `profile with username "ada"`.
        what: String,
    },
    /// A unique key (username, email, user id) is already taken.
    #[error("conflict: {message}")]
    Conflict {
        /// Which key collided, as far as the backend says.
        message: String,
    },
    /// The backend (or the server behind it) does not support this operation. Never a silent
    /// fallback: the caller decides what to do instead.
    #[error("{backend} does not support {operation}: {message}")]
    Unsupported {
        /// The operation that was refused, for example `$geoNear` or `2dsphere index`.
        operation: String,
        /// The backend name (`mongodb`, `memory`).
        backend: &'static str,
        /// The server's own message, verbatim.
        message: String,
    },
    /// The backend cannot be reached right now (network, timeout, server selection); retrying
    /// later may succeed.
    #[error("{backend} unavailable: {message}")]
    Unavailable {
        /// The backend name.
        backend: &'static str,
        /// What failed.
        message: String,
    },
    /// Any other backend failure.
    #[error("{backend} error: {source}")]
    Backend {
        /// The backend name.
        backend: &'static str,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Error {
    /// Whether retrying the same call later may succeed (the backend was unavailable).
    ///
    /// ```
    /// use mod8_docstore::Error;
    /// let e = Error::Unavailable { backend: "mongodb", message: "connection refused".into() };
    /// assert!(e.is_transient());
    /// assert!(!Error::validation("email", "missing @").is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// A [`Error::Validation`] for `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field named by a [`Error::Validation`], if this is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Validation { field, .. } => Some(field),
            _ => None,
        }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict {
            message: message.into(),
        }
    }

    pub(crate) fn backend(
        backend: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Backend {
            backend,
            source: Box::new(source),
        }
    }
}
