//! The crate's one error type.

/// A boxed error from a driver or the operating system.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `mod8-cache`.
///
/// The typed [`Cache`](crate::Cache) front fails open: backend errors are logged (rate limited)
/// and treated as misses, so callers of [`Cache::get`](crate::Cache::get) and
/// [`Cache::get_or_load`](crate::Cache::get_or_load) never see them. The raw
/// [`CacheStore`](crate::CacheStore) trait reports them so backends can be tested.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input rejected before it reached a backend; `field` names what was wrong.
    #[error("invalid {field}: {message}")]
    Validation {
        /// What was rejected: `key`, `ttl`, `tag`, `pattern`, `url`, `codec`, or the
        /// environment variable that held a malformed value.
        field: String,
        /// Why it was rejected.
        message: String,
    },
    /// The thing asked for does not exist.
    #[error("{entity} not found: {key}")]
    NotFound {
        /// What kind of thing was asked for.
        entity: &'static str,
        /// Which one.
        key: String,
    },
    /// A unique value is taken, or an existing thing differs from what was asked for.
    #[error("conflict on {entity} {field}: {message}")]
    Conflict {
        /// What kind of thing conflicts.
        entity: &'static str,
        /// Which of its fields.
        field: String,
        /// How it conflicts.
        message: String,
    },
    /// The backend cannot do this operation (detail may go into `operation`).
    #[error("{operation} is not supported by the {backend} backend")]
    Unsupported {
        /// What was asked for.
        operation: String,
        /// Which backend refused.
        backend: &'static str,
    },
    /// The backend could not be reached or did not answer in time: transient.
    #[error("{backend} is unavailable: {source}")]
    Unavailable {
        /// Which backend.
        backend: &'static str,
        /// What the driver reported.
        #[source]
        source: BoxError,
    },
    /// Anything else the backend reported.
    #[error("{backend} error: {source}")]
    Backend {
        /// Which backend failed.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// A value could not be encoded or decoded with the configured codec.
    #[error("codec error: {0}")]
    Codec(String),
}

impl Error {
    /// Whether retrying the same operation may succeed (one retry policy for every backend):
    /// the backend was unreachable or slow, as opposed to an error that will repeat (bad input,
    /// unsupported operation).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unavailable { .. } => true,
            Error::Backend { source, .. } => {
                #[cfg(feature = "redis")]
                if let Some(e) = source.downcast_ref::<fred::error::Error>() {
                    return crate::redis::is_transient(e);
                }
                let _ = source;
                false
            }
            Error::Validation { .. }
            | Error::NotFound { .. }
            | Error::Conflict { .. }
            | Error::Unsupported { .. }
            | Error::Codec(_) => false,
        }
    }

    /// An [`Error::Validation`]: `field` names what was wrong.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// An [`Error::NotFound`].
    pub fn not_found(entity: &'static str, key: impl ToString) -> Self {
        Error::NotFound {
            entity,
            key: key.to_string(),
        }
    }

    /// An [`Error::Conflict`].
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

    /// An [`Error::Unsupported`].
    pub fn unsupported(operation: impl Into<String>, backend: &'static str) -> Self {
        Error::Unsupported {
            operation: operation.into(),
            backend,
        }
    }

    /// An [`Error::Unavailable`] (a `String` or `&str` becomes the source too).
    pub fn unavailable(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Unavailable {
            backend,
            source: source.into(),
        }
    }

    /// An [`Error::Backend`].
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend,
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn unavailable_is_transient_and_caller_mistakes_are_not() {
        assert!(Error::unavailable("redis", "connection refused").is_transient());
        assert!(!Error::validation("key", "must not be empty").is_transient());
        assert!(!Error::unsupported("redis", "memory").is_transient());
        assert!(!Error::backend("redis", "WRONGTYPE").is_transient());
        assert_eq!(
            Error::validation("ttl", "must be greater than zero").to_string(),
            "invalid ttl: must be greater than zero"
        );
    }
}
