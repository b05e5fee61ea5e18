//! The [`Envelope`] every typed message travels in, and the [`Payload`] trait of what it
//! carries.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The JSON content type every envelope is sent with.
pub const CONTENT_TYPE: &str = "application/json";

/// Retries an envelope gets unless its producer says otherwise.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// A payload type that can travel in an [`Envelope`].
///
/// `KIND` is written into the envelope (`type`) and checked by consumers, so a message of
/// the wrong type is rejected to the dead-letter queue instead of being misread.
pub trait Payload: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The message type name, for example `user_data`.
    const KIND: &'static str;
}

/// A message: metadata plus a typed payload. Serialised as JSON on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Unique id, also the AMQP `message_id` (used for de-duplication).
    pub id: Uuid,
    /// The payload's [`Payload::KIND`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The message itself.
    pub payload: T,
    /// When the message was created.
    pub timestamp: DateTime<Utc>,
    /// Ties related messages together (for example all messages of one signup).
    pub correlation_id: Option<Uuid>,
    /// How many times processing has been retried so far.
    pub retry_count: u32,
    /// How many retries are allowed before the message goes to the dead-letter queue.
    pub max_retries: u32,
}

impl<T: Payload> Envelope<T> {
    /// A new envelope with a fresh id, the current time and [`DEFAULT_MAX_RETRIES`].
    pub fn new(payload: T) -> Self {
        Envelope {
            id: Uuid::new_v4(),
            kind: T::KIND.to_owned(),
            payload,
            timestamp: Utc::now(),
            correlation_id: None,
            retry_count: 0,
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets how many retries are allowed.
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// The JSON bytes sent on the wire.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self)
            .map_err(|e| Error::validation("payload", format!("cannot serialise: {e}")))
    }

    /// Parses wire bytes, checking that the envelope carries a `T`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let raw: Envelope<serde_json::Value> = serde_json::from_slice(bytes).map_err(|e| {
            Error::validation("message", format!("parse error: not an envelope: {e}"))
        })?;
        if raw.kind != T::KIND {
            return Err(Error::validation(
                "message",
                format!(
                    "parse error: expected message type '{}', got '{}'",
                    T::KIND,
                    raw.kind
                ),
            ));
        }
        let payload = serde_json::from_value(raw.payload).map_err(|e| {
            Error::validation(
                "payload",
                format!("parse error: bad '{}' payload: {e}", T::KIND),
            )
        })?;
        Ok(Envelope {
            id: raw.id,
            kind: raw.kind,
            payload,
            timestamp: raw.timestamp,
            correlation_id: raw.correlation_id,
            retry_count: raw.retry_count,
            max_retries: raw.max_retries,
        })
    }
}
