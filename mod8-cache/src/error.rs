//! The crate's one error type.

use std::error::Error as StdError;

/// A boxed error from a backend driver, kept as the `source` of [`CacheError::Backend`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong in `mod8-cache`.
///
/// The typed [`Cache`](crate::Cache) front fails open: backend errors are logged (rate limited)
/// and treated as misses, so callers of [`Cache::get`](crate::Cache::get) and
/// [`Cache::get_or_load`](crate::Cache::get_or_load) never see them. The raw
/// [`CacheStore`](crate::CacheStore) trait reports them so backends can be tested.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The input was rejected before reaching a backend (empty key, zero TTL, bad URL...).
    #[error("invalid input: {0}")]
    Validation(String),
    /// The key or resource does not exist where existence was required.
    #[error("not found: {0}")]
    NotFound(String),
    /// A conflicting value or state prevented the operation.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend cannot do this operation (or the cargo feature it needs is off).
    #[error("{operation} is not supported by the {backend} backend")]
    Unsupported {
        /// What was asked for.
        operation: &'static str,
        /// Which backend refused.
        backend: &'static str,
    },
    /// The backend cannot be reached right now (connection refused, timeout, reconnecting).
    #[error("cache backend unavailable: {0}")]
    Unavailable(String),
    /// A value could not be encoded or decoded with the configured codec.
    #[error("codec error: {0}")]
    Codec(String),
    /// Any other backend error, with the driver's error as source.
    #[error("{backend} backend error: {source}")]
    Backend {
        /// Which backend failed.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

impl CacheError {
    /// Whether retrying the same operation later may succeed (the backend was unreachable or
    /// slow), as opposed to an error that will repeat (bad input, unsupported operation).
    pub fn is_transient(&self) -> bool {
        match self {
            CacheError::Unavailable(_) => true,
            CacheError::Backend { source, .. } => {
                #[cfg(feature = "redis")]
                if let Some(e) = source.downcast_ref::<fred::error::Error>() {
                    return crate::redis::is_transient(e);
                }
                let _ = source;
                false
            }
            CacheError::Validation(_)
            | CacheError::NotFound(_)
            | CacheError::Conflict(_)
            | CacheError::Unsupported { .. }
            | CacheError::Codec(_) => false,
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = CacheError> = std::result::Result<T, E>;
