//! The crate's one error type.

use std::time::Duration;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `mod8-mq`, named by meaning rather than by backend.
///
/// [`Error::is_transient`] tells whether trying again later can succeed; the consumer uses it
/// to choose between a retry and the dead-letter queue, the producer to decide whether a
/// publish is worth repeating after a reconnect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is invalid (an empty name, an unparsable URL, a payload that is not JSON of
    /// the expected type).
    #[error("invalid input: {0}")]
    Validation(String),
    /// A queue or exchange does not exist.
    #[error("{entity} not found")]
    NotFound {
        /// What is missing, for example `queue 'orders'`.
        entity: String,
    },
    /// A declaration conflicts with an existing entity declared with different arguments.
    #[error("{entity} already exists with a different '{argument}': {message}")]
    Conflict {
        /// The entity, for example `queue 'user_data_queue'`.
        entity: String,
        /// The argument that differs, for example `x-max-priority`.
        argument: String,
        /// The broker's own explanation.
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
    /// The broker was closed by its owner ([`Broker::close`](crate::Broker::close)); nothing
    /// on this handle works again. Not transient: a consumer on a closed broker ends with it
    /// (for its supervisor to act on) instead of resubscribing forever.
    #[error("the {backend} broker was closed")]
    Closed {
        /// The backend's name.
        backend: &'static str,
    },
    /// The broker cannot be reached now (connection lost, reconnect still failing).
    #[error("{backend} is unavailable: {reason}")]
    Unavailable {
        /// The backend's name.
        backend: &'static str,
        /// Why.
        reason: String,
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
    /// Any other failure from the backend's driver.
    #[error("{backend} error: {source}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// Whether the same operation may succeed if tried again later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. } | Error::ConfirmTimeout { .. } | Error::Nacked { .. }
        )
    }

    /// A [`Error::Validation`] from anything printable.
    pub fn validation(message: impl Into<String>) -> Self {
        Error::Validation(message.into())
    }
}
