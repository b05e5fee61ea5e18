//! Flow 2, real-time analytics: publish the event to the `analytics` fanout, then count it
//! once (atomically, keyed by its message id) in the user's engagement counters in the cache
//! tier (Redis when configured). Its consumers store the raw event in the document store
//! (counting it again by the same id, a no-op unless the API's count was lost) and feed the
//! live dashboard, which raises an alert when a user crosses the configured threshold.

use std::collections::HashMap;
use std::time::Duration;

use mod8_cache::{Cache, CounterOptions};
use mod8_datasci::ActivityCounts;
use mod8_mq::domain::{Analytics, PublishOptions};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::activity::{counter_deltas, counts_from_counter, counts_from_fields};
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
#[derive(utoipa::ToSchema)]
pub struct EventInput {
    /// The user it happened to.
    pub user_id: Uuid,
    /// What happened: `session`, `page_view`, `click`, `search`, `cart_add`, `review`,
    /// `purchase`, or any other lower-case name.
    #[schema(pattern = r"^[a-z0-9_-]{1,64}$")]
    pub event_type: String,
    /// Free-form details (`product`, `price`, `category`, ...). Keys may not start with `$` or
    /// contain `.`.
    #[serde(default)]
    pub properties: HashMap<String, serde_json::Value>,
}

/// An accepted event (202).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
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

/// How long the cache remembers that a message was counted: a second count of the same
/// message id within it is a no-op. Longer than any redelivery delay (retries back off for
/// minutes, not days).
pub const COUNTED_ONCE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Counts the event of `message_id` (of `event_type`, by `user_id`) into the user's engagement
/// counter, once: one atomic, idempotent increment keyed by the message id, so concurrent
/// events never lose an increment and a second count of the same message (the consumer after
/// the API, a redelivery) changes nothing. Returns the counters after it.
///
/// # Errors
///
/// The cache's error: the count is then missing until another count of the same message
/// id succeeds.
pub async fn count_once(
    cache: &Cache,
    user_id: Uuid,
    event_type: &str,
    message_id: Uuid,
) -> mod8_cache::Result<ActivityCounts> {
    let deltas = counter_deltas(event_type);
    let options = CounterOptions::ttl(COUNTERS_TTL)
        .with_idempotency(message_id.to_string(), COUNTED_ONCE_WINDOW);
    let update = cache
        .increment(&keys::counters(user_id), &deltas, &options)
        .await?;
    Ok(counts_from_fields(
        deltas.iter().map(|(f, _)| *f).zip(update.values),
    ))
}

impl App {
    /// Records an event: publishes it (confirmed) to the analytics fanout, then counts it in
    /// the user's engagement counters ([`count_once`], keyed by the message id).
    ///
    /// Counting happens only after the broker confirmed: an event answered with
    /// [`AppError::Unavailable`] (503) was not counted, so the client's retry counts once. The
    /// analytics consumer counts the same message id again, which is a no-op unless this count
    /// was lost (the process stopped or the cache failed between the confirm and the count):
    /// then the consumer's count is the one that lands. A redelivered message is a no-op too.
    /// A count that fails here is logged, not answered with an error (the event is accepted;
    /// a retry would publish it twice); the answer then carries the counters as last read.
    ///
    /// # Errors
    ///
    /// [`AppError::Validation`], [`AppError::NotFound`] for an unknown user, and
    /// [`AppError::Unavailable`] when the broker does not confirm (the client should retry).
    pub async fn record_event(&self, event: EventInput) -> AppResult<EventAccepted> {
        validate_event(&event)?;
        self.user(event.user_id).await?;
        let user_id = event.user_id;
        let event_type = event.event_type.clone();
        let message = Analytics {
            event_type: event.event_type,
            user_id: user_id.to_string(),
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
        let counted = self.call(
            "cache.count_event",
            "cache",
            count_once(&self.cache, user_id, &event_type, message_id),
        );
        let counters = match counted.await {
            Ok(counters) => counters,
            Err(e) => {
                tracing::warn!(%message_id, error = %e, "engagement count failed; the analytics consumer counts it");
                self.engagement_counters(user_id).await.unwrap_or_default()
            }
        };
        Ok(EventAccepted {
            message_id,
            counters,
        })
    }

    /// A user's engagement counters (zero for a user without recorded events or whose counter
    /// expired).
    ///
    /// # Errors
    ///
    /// [`AppError::Unavailable`] when the cache does not answer.
    pub async fn engagement_counters(&self, user_id: Uuid) -> AppResult<ActivityCounts> {
        let counter = self
            .call(
                "cache.counter",
                "cache",
                self.cache.counter(&keys::counters(user_id)),
            )
            .await?;
        Ok(counts_from_counter(&counter))
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
