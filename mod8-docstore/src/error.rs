//! The crate's one error type.

/// A boxed error from a driver or the operating system.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a document store, named by meaning rather than by backend.
///
/// Backends convert their own errors into this enum in one place (for MongoDB, the private
/// `mongodb::error_map` module), so callers match on meaning and one retry policy serves every
/// backend through [`Error::is_transient`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input rejected before it reached a backend (or by the server's validator); `field`
    /// names what was wrong: a bad value, a missing required field, a key that would become a
    /// query operator, coordinates out of range.
    #[error("invalid {field}: {message}")]
    Validation {
        /// The offending field, as a dotted path (`metadata.extras.$where`, `geo.location`).
        field: String,
        /// Why it was rejected.
        message: String,
    },
    /// The thing asked for does not exist.
    #[error("{entity} not found: {key}")]
    NotFound {
        /// What kind of thing was looked for (`user profile`).
        entity: &'static str,
        /// The key it was looked for by (the username).
        key: String,
    },
    /// A unique value is taken, or an existing thing differs from what was asked for.
    #[error("conflict on {entity} {field}: {message}")]
    Conflict {
        /// What kind of thing collided (`user profile`, `event`).
        entity: &'static str,
        /// The unique key that collided (`username`, `email`, `user_id`, `_id`).
        field: String,
        /// What collided, as far as the backend says.
        message: String,
    },
    /// The backend (or the server behind it) cannot do this operation. Never a silent
    /// fallback: the caller decides what to do instead.
    #[error("{operation} is not supported by the {backend} backend")]
    Unsupported {
        /// The operation that was refused, with the server's own message when there is one,
        /// for example `$geoNear (server: ... is not implemented yet)`.
        operation: String,
        /// The backend name (`mongodb`, `memory`).
        backend: &'static str,
    },
    /// The backend could not be reached or did not answer in time (network, timeout, server
    /// selection): transient, retrying later may succeed.
    #[error("{backend} is unavailable: {source}")]
    Unavailable {
        /// The backend name.
        backend: &'static str,
        /// What failed, with the driver's error.
        #[source]
        source: BoxError,
    },
    /// Anything else the backend reported.
    #[error("{backend} error: {source}")]
    Backend {
        /// The backend name.
        backend: &'static str,
        /// The backend's own error.
        #[source]
        source: BoxError,
    },
}

/// A broken input rule (`mod8_rules`) is a validation error naming the same field.
impl From<mod8_rules::Invalid> for Error {
    fn from(e: mod8_rules::Invalid) -> Self {
        Error::validation(e.field, e.message)
    }
}

impl Error {
    /// Whether retrying the same operation may succeed (one retry policy for every backend):
    /// true for [`Error::Unavailable`].
    ///
    /// ```
    /// use mod8_docstore::Error;
    /// assert!(Error::unavailable("mongodb", "connection refused").is_transient());
    /// assert!(!Error::validation("email", "missing @").is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// An [`Error::Validation`] for `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// An [`Error::NotFound`]: no `entity` with `key`.
    pub fn not_found(entity: &'static str, key: impl ToString) -> Self {
        Error::NotFound {
            entity,
            key: key.to_string(),
        }
    }

    /// An [`Error::Conflict`] on `entity`'s unique `field`.
    pub fn conflict(
        entity: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Conflict {
            entity,
            field: field.into(),
            message: message.into(),
        }
    }

    /// An [`Error::Unsupported`]: `backend` cannot do `operation`.
    pub fn unsupported(operation: impl Into<String>, backend: &'static str) -> Self {
        Error::Unsupported {
            operation: operation.into(),
            backend,
        }
    }

    /// An [`Error::Unavailable`]: `backend` could not be reached.
    pub fn unavailable(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Unavailable {
            backend,
            source: source.into(),
        }
    }

    /// An [`Error::Backend`]: any other failure `backend` reported.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend,
            source: source.into(),
        }
    }

    /// The field named by a [`Error::Validation`], if this is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Validation { field, .. } => Some(field),
            _ => None,
        }
    }
}
