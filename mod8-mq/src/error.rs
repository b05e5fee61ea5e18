//! The crate's one error type.

use std::time::Duration;

/// A boxed error from a driver or the operating system.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `mod8-mq`, named by meaning rather than by backend.
///
/// [`Error::is_transient`] tells whether trying again later can succeed; the consumer uses it
/// to choose between a retry and the dead-letter queue, the producer to decide whether a
/// publish is worth repeating after a reconnect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input rejected before it reached a backend; `field` names what was wrong (an empty
    /// name, an unparsable URL, a payload that is not JSON of the expected type).
    #[error("invalid {field}: {message}")]
    Validation {
        /// What was wrong, for example `url`, `username` or `message`.
        field: String,
        /// Why it was rejected.
        message: String,
    },
    /// The thing asked for does not exist: a queue or an exchange.
    #[error("{entity} not found: {key}")]
    NotFound {
        /// The kind of thing: `exchange` or `queue`.
        entity: &'static str,
        /// Its name.
        key: String,
    },
    /// A declaration conflicts with an existing entity declared with different arguments.
    #[error("conflict on {entity} {field}: {message}")]
    Conflict {
        /// The kind of thing: `exchange` or `queue`.
        entity: &'static str,
        /// The argument that differs, for example `type` or `x-max-priority`.
        field: String,
        /// The broker's explanation, naming the entity.
        message: String,
    },
    /// The backend cannot do this (or was compiled without the feature that does).
    #[error("{operation} is not supported by the {backend} backend")]
    Unsupported {
        /// The operation that was asked for.
        operation: String,
        /// The backend's name.
        backend: &'static str,
    },
    /// The broker cannot be reached now (connection lost, reconnect still failing): transient.
    #[error("{backend} is unavailable: {source}")]
    Unavailable {
        /// The backend's name.
        backend: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// Any other failure the backend's driver reported.
    #[error("{backend} error: {source}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The broker was closed by its owner ([`Broker::close`](crate::Broker::close)); nothing
    /// on this handle works again. Not transient: a consumer on a closed broker ends with it
    /// (for its supervisor to act on) instead of resubscribing forever.
    #[error("the {backend} broker was closed")]
    Closed {
        /// The backend's name.
        backend: &'static str,
    },
    /// The broker negatively acknowledged a published message (it could not take it).
    #[error(
        "the broker refused (nacked) the message to exchange '{exchange}' with key '{routing_key}'"
    )]
    Nacked {
        /// Exchange the message was published to.
        exchange: String,
        /// Its routing key.
        routing_key: String,
    },
    /// A mandatory message matched no queue and the broker returned it.
    #[error("unroutable message to exchange '{exchange}' with key '{routing_key}': {reply}")]
    Unroutable {
        /// Exchange the message was published to.
        exchange: String,
        /// Its routing key.
        routing_key: String,
        /// The broker's reply text (`NO_ROUTE`).
        reply: String,
    },
    /// The broker did not confirm a message within the publish timeout.
    #[error("no publisher confirm within {timeout:?}")]
    ConfirmTimeout {
        /// The timeout that elapsed.
        timeout: Duration,
    },
}

/// A broken input rule (`mod8_rules`) is a validation error naming the same field.
impl From<mod8_rules::Invalid> for Error {
    fn from(e: mod8_rules::Invalid) -> Self {
        Error::validation(e.field, e.message)
    }
}

impl Error {
    /// Whether retrying the same operation may succeed: [`Error::Unavailable`],
    /// [`Error::ConfirmTimeout`] and [`Error::Nacked`] (a full queue may drain).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. } | Error::ConfirmTimeout { .. } | Error::Nacked { .. }
        )
    }

    /// An [`Error::Validation`] naming `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// An [`Error::NotFound`]: the `entity` (`exchange`, `queue`) named `key` does not exist.
    pub fn not_found(entity: &'static str, key: impl ToString) -> Self {
        Error::NotFound {
            entity,
            key: key.to_string(),
        }
    }

    /// An [`Error::Conflict`] on `field` of an `entity` (`exchange`, `queue`).
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

    /// An [`Error::Unavailable`] (transient); a `String` works as the source.
    pub fn unavailable(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Unavailable {
            backend,
            source: source.into(),
        }
    }

    /// An [`Error::Backend`]; a `String` works as the source.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend,
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_shapes_display_and_transience() {
        let e = Error::validation("url", "unknown scheme");
        assert_eq!(e.to_string(), "invalid url: unknown scheme");
        assert!(!e.is_transient());
        let e = Error::not_found("queue", "orders");
        assert_eq!(e.to_string(), "queue not found: orders");
        let e = Error::unavailable("amqp", "connection refused");
        assert_eq!(e.to_string(), "amqp is unavailable: connection refused");
        assert!(e.is_transient());
        assert!(Error::ConfirmTimeout {
            timeout: Duration::from_secs(1)
        }
        .is_transient());
        assert!(!Error::backend("amqp", "boom").is_transient());
        assert!(!Error::Closed { backend: "amqp" }.is_transient());
    }
}
