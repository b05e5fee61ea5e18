//! Flow 2, real-time analytics: publish the event to the `analytics` fanout, then count it
//! once (atomically, keyed by its message id) in the user's engagement counters in the cache
//! tier (Redis when configured). Its consumers store the raw event in the document store
//! (counting it again by the same id, a no-op unless the API's count was lost) and feed the
//! live dashboard, which raises an alert when a user crosses the configured threshold.

use std::collections::HashMap;
use std::time::Duration;

use mod8_cache::{Cache, CounterInit, CounterOptions};
use mod8_datasci::ActivityCounts;
use mod8_docstore::DocStore;
use mod8_mq::domain::{Analytics, PublishOptions};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::activity::{
    counter_deltas, counter_fields_from_type_counts, counts_from_counter, counts_from_fields,
};
use crate::error::{AppError, AppResult};
use crate::sinks::to_document_event;
use crate::{keys, App};

/// How long engagement counters live in the cache without new events.
const COUNTERS_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// An event to record (`POST /api/events`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct EventInput {
    /// The user it happened to.
    pub user_id: Uuid,
    /// What happened: `session`, `page_view`, `click`, `search`, `cart_add`, `review`,
    /// `purchase`, or any other name of 1–64 characters `a-z`, `0-9`, `_`, `-`.
    #[schema(pattern = r"^[a-z0-9_-]{1,64}$")]
    pub event_type: String,
    /// Free-form details. `product` (or `product_id`) and `category`, when strings, must not
    /// start with `$`; `price` (or `amount`), when a number, must not be negative. Keys at
    /// every depth must not be empty, start with `$` or contain `.` or NUL. Bounded: at most
    /// [`mod8_rules::MAX_PROPERTIES`] properties, [`mod8_rules::MAX_PROPERTIES_ITEMS`] keys
    /// and array elements in all (counted at every depth), [`mod8_rules::MAX_PROPERTIES_DEPTH`]
    /// levels and [`mod8_rules::MAX_PROPERTIES_BYTES`] bytes of JSON.
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

/// Checks an event before anything is stored, counted or published, with the functions its
/// consumers apply: the analytics consumer's ([`mod8_mq::domain::validate_analytics`]: the
/// event type and the properties' keys and size, [`mod8_rules`]) and the document store's,
/// on the very document the event-log consumer will store ([`to_document_event`] checked by
/// [`mod8_docstore::check_event`]: `$`-prefixed product or category, negative price). So an
/// event accepted here is never dead-lettered for its content.
///
/// # Errors
///
/// [`AppError::Validation`] naming `event_type`, `properties` or the property
/// (`properties.product`, `properties.price`, ...).
pub fn validate_event(event: &EventInput) -> AppResult<()> {
    let message = Analytics {
        event_type: event.event_type.clone(),
        user_id: event.user_id.to_string(),
        properties: event.properties.clone(),
    };
    mod8_mq::domain::validate_analytics(&message)?;
    mod8_docstore::check_event(&to_document_event(&message, chrono::Utc::now())).map_err(
        |e| match e {
            mod8_docstore::Error::Validation { field, message } => {
                AppError::validation(property_field(&field), message)
            }
            other => AppError::from(other),
        },
    )
}

/// The API's name for a document-store field of an event: `metadata.extras.a` is the
/// property `properties.a`, `metadata.price` the property `properties.price`.
fn property_field(field: &str) -> String {
    if let Some(rest) = field.strip_prefix("metadata.extras") {
        format!("properties{rest}")
    } else if let Some(rest) = field.strip_prefix("metadata.") {
        format!("properties.{rest}")
    } else {
        field.to_owned()
    }
}

/// How long the cache remembers that a message was counted: a second count of the same
/// message id within it is a no-op. Longer than any redelivery delay (retries back off for
/// minutes, not days).
pub const COUNTED_ONCE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// How far back a rebuild marks the message ids of the events it counted as counted: the
/// idempotency window, plus an hour for clocks apart (an event's timestamp is its
/// publisher's; marking more of the included events than needed is harmless).
const REBUILD_MARKS_SINCE: Duration = Duration::from_secs(COUNTED_ONCE_WINDOW.as_secs() + 3_600);

/// Rebuilds tried in a row by [`count_once`] before it gives up (a counter that vanishes again
/// right after each rebuild: only a cache dropping keys under memory pressure would).
const MAX_REBUILDS: usize = 3;

/// What [`rebuild_counters`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountersRebuild {
    /// The counter was missing and was rebuilt from `events` events of the log.
    Rebuilt {
        /// The counters now.
        counts: ActivityCounts,
        /// Events of the log they count.
        events: u64,
    },
    /// The counter existed (or another rebuild or count created it meanwhile): unchanged.
    Present {
        /// The counters now.
        counts: ActivityCounts,
    },
    /// The counter was missing and the log holds no event of the user: nothing was created
    /// (the counters are zero).
    NoEvents,
}

impl CountersRebuild {
    /// The user's counters after the rebuild.
    pub fn counts(&self) -> ActivityCounts {
        match self {
            CountersRebuild::Rebuilt { counts, .. } | CountersRebuild::Present { counts } => {
                *counts
            }
            CountersRebuild::NoEvents => ActivityCounts::default(),
        }
    }
}

/// Rebuilds the engagement counter of `user_id` from the event log, if it is missing.
///
/// Counts the user's logged events per type ([`mod8_docstore::EventStore::user_event_counts`]),
/// turns them into counter fields with the live mapping
/// ([`counter_fields_from_type_counts`]), and initialises the counter only if it is still
/// absent, marking the message ids of the recent events it included as counted, in one atomic
/// step ([`Cache::init_counter`]). So:
///
/// - an event logged before the rebuild and counted after it (its first count's marker lost
///   with the cache) is a repeat: not counted twice;
/// - an event counted before it is logged is not lost: every count is an existing-only
///   increment ([`count_once`]), so none lands while the counter is missing, and one that finds
///   it missing rebuilds first and counts after — the event is then either in the log (and
///   marked) or counted on top;
/// - of concurrent rebuilds the first to initialise wins and the others change nothing.
///
/// With `create_empty` a user without logged events gets a counter of zeros (what a count
/// needs to land on); without, nothing is created and [`CountersRebuild::NoEvents`] comes back.
///
/// The result is exact as long as the cache keeps a counter and its markers together or loses
/// them together (a restart, a flush, an expiry: the counter outlives every marker). If the
/// counter alone is removed (deleted by hand, or evicted for memory on its own) while the
/// marker of an event counted but not yet logged survives, that event is not counted again
/// when it is logged.
///
/// # Errors
///
/// The document store's or the cache's.
pub async fn rebuild_counters(
    cache: &Cache,
    docs: &dyn DocStore,
    user_id: Uuid,
    create_empty: bool,
) -> AppResult<CountersRebuild> {
    let since = chrono::Utc::now()
        - chrono::Duration::from_std(REBUILD_MARKS_SINCE).unwrap_or(chrono::Duration::days(2));
    let log = docs.user_event_counts(&user_id.to_string(), since).await?;
    let events = log.total();
    if events == 0 && !create_empty {
        return Ok(CountersRebuild::NoEvents);
    }
    let fields = counter_fields_from_type_counts(
        log.counts.iter().map(|c| (c.event_type.as_str(), c.count)),
    );
    let init =
        CounterInit::ttl(COUNTERS_TTL).with_applied(log.recent_message_ids, COUNTED_ONCE_WINDOW);
    let update = cache
        .init_counter(&keys::counters(user_id), &fields, &init)
        .await?;
    let counts = counts_from_fields(fields.iter().map(|(f, _)| *f).zip(update.values));
    Ok(if update.applied {
        tracing::info!(%user_id, events, "engagement counters rebuilt from the event log");
        CountersRebuild::Rebuilt { counts, events }
    } else {
        CountersRebuild::Present { counts }
    })
}

/// Counts the event of `message_id` (of `event_type`, by `user_id`) into the user's engagement
/// counter, once: one atomic, idempotent increment keyed by the message id, so concurrent
/// events never lose an increment and a second count of the same message (the consumer after
/// the API, a redelivery) changes nothing. Returns the counters after it.
///
/// The increment applies only to a counter that exists. When the counter is missing (the
/// cache restarted, was flushed, or the counter expired), it is first rebuilt from the event
/// log ([`rebuild_counters`]) and the increment is tried again: a counter never restarts
/// from zero, and the event is counted exactly once whether or not the rebuild found it in
/// the log.
///
/// # Errors
///
/// The cache's or the document store's error: the count is then missing until another count
/// of the same message id succeeds.
pub async fn count_once(
    cache: &Cache,
    docs: &dyn DocStore,
    user_id: Uuid,
    event_type: &str,
    message_id: Uuid,
) -> AppResult<ActivityCounts> {
    let deltas = counter_deltas(event_type);
    let options = CounterOptions::ttl(COUNTERS_TTL)
        .with_idempotency(message_id.to_string(), COUNTED_ONCE_WINDOW)
        .existing_only();
    let key = keys::counters(user_id);
    for _ in 0..MAX_REBUILDS {
        let update = cache.increment(&key, &deltas, &options).await?;
        if !update.missing {
            return Ok(counts_from_fields(
                deltas.iter().map(|(f, _)| *f).zip(update.values),
            ));
        }
        rebuild_counters(cache, docs, user_id, true).await?;
    }
    Err(AppError::Unavailable {
        dependency: "cache",
        message: format!(
            "the engagement counter of {user_id} was missing again after {MAX_REBUILDS} rebuilds"
        ),
    })
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
    /// [`AppError::Validation`] ([`validate_event`]: nothing is published or counted),
    /// [`AppError::NotFound`] for an unknown user, and
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
            count_once(
                &self.cache,
                self.docs.as_ref(),
                user_id,
                &event_type,
                message_id,
            ),
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

    /// Starts the engagement counter of a user who has just registered at zero, unless it exists:
    /// the rebuild of a user whose log is empty, without reading the log. So the first events of a
    /// new user are counted as increments from zero, each answered with its own count, instead of
    /// the first count rebuilding from a log the consumer may have filled meanwhile.
    ///
    /// Only for a user who cannot have logged events before (just created): for any other user a
    /// counter of zeros would hide the events of the log, and [`rebuild_counters`] is the call.
    /// Exact with concurrent counts like any rebuild (set only if absent; every count increments
    /// an existing counter only).
    ///
    /// # Errors
    ///
    /// The cache's.
    pub async fn start_engagement_counters(&self, user_id: Uuid) -> AppResult<()> {
        let zeros = counter_fields_from_type_counts(std::iter::empty());
        let (key, init) = (keys::counters(user_id), CounterInit::ttl(COUNTERS_TTL));
        let started = self.cache.init_counter(&key, &zeros, &init);
        self.call("cache.init_counter", "cache", started).await?;
        Ok(())
    }

    /// A user's engagement counters (zero for a user without recorded events).
    ///
    /// A counter missing from the cache (a restart, a flush, an expiry) is rebuilt from the
    /// event log first ([`rebuild_counters`], nothing created for a user without logged
    /// events), so the answer counts every logged event after a loss too.
    ///
    /// # Errors
    ///
    /// [`AppError::Unavailable`] when the cache, or for a missing counter the document store,
    /// does not answer.
    pub async fn engagement_counters(&self, user_id: Uuid) -> AppResult<ActivityCounts> {
        let counter = self
            .call(
                "cache.counter",
                "cache",
                self.cache.counter(&keys::counters(user_id)),
            )
            .await?;
        if !counter.is_empty() {
            return Ok(counts_from_counter(&counter));
        }
        let rebuilt = self
            .call(
                "counters.rebuild",
                "docs",
                rebuild_counters(&self.cache, self.docs.as_ref(), user_id, false),
            )
            .await?;
        Ok(rebuilt.counts())
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
        for (key, value, field) in [
            ("product", serde_json::json!("$gt"), "properties.product"),
            ("product_id", serde_json::json!("$gt"), "properties.product"),
            ("category", serde_json::json!("$ne"), "properties.category"),
            ("price", serde_json::json!(-1.0), "properties.price"),
            ("amount", serde_json::json!(-5), "properties.price"),
            ("big", serde_json::json!(vec![0; 7_000]), "properties"),
        ] {
            let mut e = event("purchase");
            e.properties.insert(key.into(), value);
            match validate_event(&e) {
                Err(AppError::Validation { field: f, .. }) => assert_eq!(f, field, "{key}"),
                other => panic!("{key}: {other:?}"),
            }
        }
    }
}
