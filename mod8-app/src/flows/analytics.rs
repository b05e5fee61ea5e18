//! Flow 2, real-time analytics: count the event in the user's engagement counters in the
//! cache tier (Redis when configured) and publish it to the `analytics` fanout. Its consumers
//! store the raw event in the document store and feed the live dashboard, which raises an
//! alert when a user crosses the configured threshold.

use std::collections::HashMap;
use std::time::Duration;

use mod8_cache::EntryOptions;
use mod8_datasci::ActivityCounts;
use mod8_mq::domain::{Analytics, PublishOptions};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::activity::count_event;
use crate::error::{AppError, AppResult};
use crate::{keys, App};

/// How long engagement counters live in the cache without new events.
const COUNTERS_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest accepted event type.
const MAX_EVENT_TYPE: usize = 64;
/// Most properties accepted on one event.
const MAX_PROPERTIES: usize = 32;

/// An event to record (`POST /api/events`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// The user it happened to.
    pub user_id: Uuid,
    /// What happened: `session`, `page_view`, `click`, `search`, `cart_add`, `review`,
    /// `purchase`, or any other lower-case name.
    pub event_type: String,
    /// Free-form details (`product`, `price`, `category`, ...). Keys may not start with `$` or
    /// contain `.`.
    #[serde(default)]
    pub properties: HashMap<String, serde_json::Value>,
}

/// An accepted event (202).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventAccepted {
    /// The published message's id.
    pub message_id: Uuid,
    /// The user's engagement counters after this event.
    pub counters: ActivityCounts,
}

/// Checks an event before anything is stored or published.
///
/// # Errors
///
/// [`AppError::Validation`] naming `event_type` or `properties`.
pub fn validate_event(event: &EventInput) -> AppResult<()> {
    let t = &event.event_type;
    if t.is_empty() || t.len() > MAX_EVENT_TYPE {
        return Err(AppError::validation(
            "event_type",
            format!("must be 1 to {MAX_EVENT_TYPE} characters"),
        ));
    }
    if !t
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return Err(AppError::validation(
            "event_type",
            "may contain only a-z, 0-9, '_' and '-'",
        ));
    }
    if event.properties.len() > MAX_PROPERTIES {
        return Err(AppError::validation(
            "properties",
            format!("at most {MAX_PROPERTIES} properties"),
        ));
    }
    if let Some(key) = event
        .properties
        .keys()
        .find(|k| k.is_empty() || k.starts_with('$') || k.contains('.'))
    {
        return Err(AppError::validation(
            "properties",
            format!("key {key:?} is empty, starts with '$' or contains '.'"),
        ));
    }
    Ok(())
}

impl App {
    /// Records an event: bumps the user's counters in the cache and publishes it (confirmed)
    /// to the analytics fanout.
    ///
    /// The counter update is read-modify-write: concurrent events of one user in several
    /// processes may lose an increment in the cache; the event log in the document store
    /// (written by the consumer) stays exact and is what profiles are computed from.
    ///
    /// # Errors
    ///
    /// [`AppError::Validation`], [`AppError::NotFound`] for an unknown user, and
    /// [`AppError::Unavailable`] when the broker does not confirm (the client should retry).
    pub async fn record_event(&self, event: EventInput) -> AppResult<EventAccepted> {
        validate_event(&event)?;
        self.user(event.user_id).await?;
        let key = keys::counters(event.user_id);
        let mut counters: ActivityCounts = self.cache.get(&key).await?.unwrap_or_default();
        count_event(&mut counters, &event.event_type);
        let options = EntryOptions::ttl(COUNTERS_TTL);
        self.cache.set(&key, &counters, &options).await?;
        let message = Analytics {
            event_type: event.event_type,
            user_id: event.user_id.to_string(),
            properties: event.properties,
        };
        let message_id = self
            .call(
                "mq.publish_analytics",
                "broker",
                self.pipeline
                    .publish_analytics(message, PublishOptions::new()),
            )
            .await?;
        Ok(EventAccepted {
            message_id,
            counters,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t: &str) -> EventInput {
        EventInput {
            user_id: Uuid::nil(),
            event_type: t.into(),
            properties: HashMap::new(),
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert!(validate_event(&event("page_view")).is_ok());
        for bad in ["", "Page View", "a.b", &"x".repeat(65)] {
            match validate_event(&event(bad)) {
                Err(AppError::Validation { field, .. }) => assert_eq!(field, "event_type"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let mut e = event("click");
        e.properties.insert("$where".into(), serde_json::json!(1));
        match validate_event(&e) {
            Err(AppError::Validation { field, .. }) => assert_eq!(field, "properties"),
            other => panic!("{other:?}"),
        }
    }
}
