//! Typed messages: the [`Envelope`] every message travels in, and the three payloads.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
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
        serde_json::to_vec(self).map_err(|e| Error::validation(format!("cannot serialise: {e}")))
    }

    /// Parses wire bytes, checking that the envelope carries a `T`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let raw: Envelope<serde_json::Value> = serde_json::from_slice(bytes)
            .map_err(|e| Error::validation(format!("parse error: not an envelope: {e}")))?;
        if raw.kind != T::KIND {
            return Err(Error::validation(format!(
                "parse error: expected message type '{}', got '{}'",
                T::KIND,
                raw.kind
            )));
        }
        let payload = serde_json::from_value(raw.payload).map_err(|e| {
            Error::validation(format!("parse error: bad '{}' payload: {e}", T::KIND))
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

/// A user registered or changed their profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserData {
    /// Login name.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Day of registration.
    pub registration_date: NaiveDate,
}

impl Payload for UserData {
    const KIND: &'static str = "user_data";
}

/// How a notification reaches its recipient; also the last word of its routing key
/// (`notification.email`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationChannel {
    /// Email.
    Email,
    /// Text message.
    Sms,
    /// Mobile push.
    Push,
}

impl NotificationChannel {
    /// The routing-key word: `email`, `sms`, `push`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationChannel::Email => "email",
            NotificationChannel::Sms => "sms",
            NotificationChannel::Push => "push",
        }
    }
}

/// A message to send to a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Address (email, phone number, device) of the recipient.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Body.
    pub content: String,
    /// Delivery channel.
    pub channel: NotificationChannel,
}

impl Payload for Notification {
    const KIND: &'static str = "notification";
}

/// Something a user did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analytics {
    /// What happened, for example `signup` or `purchase`.
    pub event_type: String,
    /// Who did it.
    pub user_id: String,
    /// Free-form details.
    #[serde(default)]
    pub properties: HashMap<String, serde_json::Value>,
}

impl Payload for Analytics {
    const KIND: &'static str = "analytics";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_and_checks_type() {
        let env = Envelope::new(Notification {
            recipient: "a@example.com".into(),
            subject: "hi".into(),
            content: "hello".into(),
            channel: NotificationChannel::Email,
        })
        .with_max_retries(5);
        let bytes = env.to_bytes().unwrap();
        let back = Envelope::<Notification>::from_bytes(&bytes).unwrap();
        assert_eq!(back, env);
        let wrong = Envelope::<UserData>::from_bytes(&bytes).unwrap_err();
        assert!(wrong
            .to_string()
            .contains("expected message type 'user_data'"));
        assert!(Envelope::<UserData>::from_bytes(b"not json").is_err());
    }
}
