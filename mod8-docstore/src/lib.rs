#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use async_trait::async_trait;
use bson::oid::ObjectId;
use futures::stream::BoxStream;

mod capabilities;
mod config;
mod error;
mod export;
mod forward;
mod model;
mod setup;
mod validate;

pub mod memory;
#[cfg(feature = "mongodb")]
#[cfg_attr(docsrs, doc(cfg(feature = "mongodb")))]
pub mod mongodb;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use crate::capabilities::Capabilities;
pub use crate::config::{
    connect, DocStoreConfig, DynDocStore, MemoryLimits, DEFAULT_DATABASE, DEFAULT_MAX_EVENTS,
    DEFAULT_MAX_EVENT_BYTES,
};
pub use crate::error::{BoxError, Error, Result};
pub use crate::export::export_ndjson;
pub use crate::memory::{MemoryDocStore, MemoryStats};
pub use crate::model::{
    event_id_for_message, truncate_to_millis, ActivitySummary, ActivityUpdate, ActivityWindow,
    AnalyticsSnapshot, BulkFailure, BulkInsertResult, CategoryPurchases, CohortMetrics, DayRange,
    Event, EventFilter, EventLogged, EventMetadata, EventTypeCount, ExpertiseLevel, Geo, GeoPoint,
    MetricsUpdate, NearbyEvent, ProfileDetails, ProfileDocument, ProfileMetrics, SessionInfo,
    Subscription, SubscriptionStatus, TimeWindow, UserEventCounts, MAX_ACTIVITY_DAYS,
    MAX_APPLIED_EVENTS, MAX_EVENT_TYPES, MAX_PROFILE_INTERESTS, OTHER_EVENT_TYPE, PURCHASE,
};
#[cfg(feature = "mongodb")]
#[cfg_attr(docsrs, doc(cfg(feature = "mongodb")))]
pub use crate::mongodb::MongoDocStore;
pub use crate::setup::{
    LogEntry, OnUnsupported, SetupOptions, SetupOutcome, SetupReport, SetupStep,
};
pub use crate::validate::check_event;
/// The BSON crate whose types ([`DocumentId`]) appear in this API.
pub use bson;
/// The id type of stored documents (BSON ObjectId).
pub use bson::oid::ObjectId as DocumentId;
/// The `chrono` crate whose `DateTime<Utc>` appears in this API.
pub use chrono;
/// The `futures` crate whose `BoxStream` appears in this API
/// ([`DataProcessing::export_events`]); its `StreamExt` reads the batches.
pub use futures;
/// The `serde_json` crate whose `Value` appears in this API.
pub use serde_json;

/// User profiles: unique username, e-mail and user id; interests, metrics and subscriptions.
#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// Stores a new profile and returns its id. [`Error::Conflict`] when the username, e-mail
    /// or user id is taken; [`Error::Validation`] naming the field for a bad document.
    async fn insert_profile(&self, profile: ProfileDocument) -> Result<ObjectId>;

    /// Stores many profiles, unordered: every valid, non-conflicting profile lands, and the
    /// result lists the failures by input index.
    async fn insert_profiles(&self, profiles: Vec<ProfileDocument>) -> Result<BulkInsertResult>;

    /// The profile with `username`, if any.
    async fn profile_by_username(&self, username: &str) -> Result<Option<ProfileDocument>>;

    /// Profiles listing `interest`, by username, at most `limit`.
    async fn find_profiles_by_interest(
        &self,
        interest: &str,
        limit: usize,
    ) -> Result<Vec<ProfileDocument>>;

    /// Appends a subscription to the user's history. [`Error::NotFound`] for an unknown user.
    async fn add_subscription(&self, username: &str, subscription: Subscription) -> Result<()>;

    /// Sets the engagement score and adds to the view counters. [`Error::NotFound`] for an
    /// unknown user.
    async fn update_metrics(&self, username: &str, update: MetricsUpdate) -> Result<()>;

    /// Applies one event to the metrics of the profile of `user_id`, atomically (one document
    /// update) and once per [`ActivityUpdate::event_id`]: adds the score and content views,
    /// counts the event type in `metrics.event_counts` (under [`OTHER_EVENT_TYPE`] once
    /// [`MAX_EVENT_TYPES`] types are counted), adds the interest (keeping the last
    /// [`MAX_PROFILE_INTERESTS`]). `Ok(true)` when
    /// applied, `Ok(false)` when this event id was applied before (nothing changes; the last
    /// [`MAX_APPLIED_EVENTS`] ids are remembered). [`Error::NotFound`] for a user without a
    /// profile; [`Error::Validation`] naming the field for an empty id or type, a type that
    /// starts with `$` or contains `.`, or a score that is not finite.
    async fn apply_activity(&self, user_id: &str, activity: ActivityUpdate) -> Result<bool>;
}

/// The event log (a time series) and the analytics over it.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Logs one event and returns its id.
    async fn log_event(&self, event: Event) -> Result<ObjectId>;

    /// Logs the event of message `message_id` once: its id is [`event_id_for_message`] and
    /// the message id is stored with it, so logging the same message again (a redelivery) is
    /// success with [`EventLogged::inserted`] `false` and changes nothing — no second document,
    /// no second count in [`EventStore::activity_summary`]. [`Error::Validation`] for an empty
    /// message id or a bad event; [`Error::Conflict`] if another message's event holds the id.
    ///
    /// As with [`EventStore::log_event`] the event is written first and counted just after:
    /// if counting fails (or the process stops between the two) the event is logged and a
    /// retry of the same message finds it logged, so the summary may miss that one event.
    /// Where the server has transactions ([`Capabilities::transactions`]) both happen in one
    /// transaction instead, so a failed call leaves neither and its retry counts the event;
    /// the in-memory backend applies both under one lock.
    async fn log_event_once(&self, message_id: &str, event: Event) -> Result<EventLogged>;

    /// Logs many events in one unordered bulk write; failures are listed by input index.
    async fn log_events(&self, events: Vec<Event>) -> Result<BulkInsertResult>;

    /// Events per type in `window`, most frequent first (ties by type name).
    async fn event_distribution(&self, window: TimeWindow) -> Result<Vec<EventTypeCount>>;

    /// The `top` most active users in `window`: events, first and last seen; most events first
    /// (ties by user id).
    async fn user_activity(&self, window: TimeWindow, top: usize) -> Result<Vec<ActivityWindow>>;

    /// [`PURCHASE`] events with a price in `window`, per category: count, revenue and average
    /// price; highest revenue first (ties by category).
    async fn purchase_analytics(&self, window: TimeWindow) -> Result<Vec<CategoryPurchases>>;

    /// How many events of each type `user_id` logged on the UTC days of `days`, and the latest
    /// of them.
    ///
    /// The store keeps these counts as events are logged, so the cost of this call does not
    /// grow with the log. Events logged through this crate are counted; documents written into
    /// the store by other means are not. Concurrent logs are all counted. The event is written
    /// first and counted just after, so a reader can see an event in the log a moment before
    /// its count; if counting fails the log call returns the error with the event already in
    /// the log. [`Error::Validation`] for an empty `user_id`, `days.first > days.last`, or a
    /// range longer than [`MAX_ACTIVITY_DAYS`].
    async fn activity_summary(&self, user_id: &str, days: DayRange) -> Result<ActivitySummary>;

    /// Every event `user_id` logged, counted per type, with the message ids of the counted
    /// events timestamped at or after `recent_since` (see [`UserEventCounts`]): what a
    /// counter kept elsewhere is rebuilt from.
    ///
    /// Consistent by construction: the ids are those of exactly the counted events at or after
    /// `recent_since`, also while events are logged concurrently (an event's timestamp never
    /// changes, so each event falls on one side of `recent_since`; events older than it are
    /// counted by one aggregation, the recent ones are read one by one with their ids). An
    /// event logged during the call may or may not be included; if it is recent it is in both
    /// the counts and the ids or in neither. On the in-memory backend the answer covers the
    /// events its bounds kept. [`Error::Validation`] naming `user_id` for an empty id or one
    /// that starts with `$`.
    async fn user_event_counts(
        &self,
        user_id: &str,
        recent_since: chrono::DateTime<chrono::Utc>,
    ) -> Result<UserEventCounts>;

    /// Events with a location within `max_distance_m` metres of `point`, nearest first, at most
    /// `limit`.
    async fn events_near(
        &self,
        point: GeoPoint,
        max_distance_m: f64,
        limit: usize,
    ) -> Result<Vec<NearbyEvent>>;
}

/// Processing across collections: cohorts and exports that stream.
#[async_trait]
pub trait DataProcessing: Send + Sync {
    /// Profiles grouped by sign-up month (UTC), with how many were active (had events) in
    /// `activity` and their events per user; oldest month first.
    async fn cohort_metrics(&self, activity: TimeWindow) -> Result<Vec<CohortMetrics>>;

    /// The events passing `filter`, oldest first, as a stream of batches of at most
    /// `batch_size` (at least 1). Only one batch is held at a time.
    async fn export_events(
        &self,
        filter: EventFilter,
        batch_size: usize,
    ) -> Result<BoxStream<'static, Result<Vec<Event>>>>;

    /// Stores an aggregated result under `name` in the `analytics` collection and returns its
    /// id. [`Error::Validation`] for a name or keys that would become operators.
    async fn save_analytics(&self, name: &str, result: serde_json::Value) -> Result<ObjectId>;

    /// The newest result stored under `name`, if any.
    async fn latest_analytics(&self, name: &str) -> Result<Option<AnalyticsSnapshot>>;
}

/// A whole document store: profiles, events, processing, expiring logs and the setup that
/// creates collections, validators and indexes.
///
/// Backends: [`MemoryDocStore`] (always compiled, the embedded default) and `MongoDocStore`
/// (feature `mongodb`). Pick one by URL with [`connect`] or [`DocStoreConfig::connect`]; share
/// one as a [`DynDocStore`].
///
/// The in-memory backend is **bounded**: its event log keeps at most
/// [`MemoryLimits::max_events`] events taking about [`MemoryLimits::max_event_bytes`] (and,
/// when set, none older than [`MemoryLimits::event_retention`]), evicting the oldest first and
/// counting each eviction ([`DocStore::memory_stats`]). An evicted event is gone from every
/// query on that backend; the MongoDB backend keeps every event.
#[async_trait]
pub trait DocStore: ProfileStore + EventStore + DataProcessing {
    /// The backend name (`memory`, `mongodb`).
    fn backend(&self) -> &'static str;

    /// Creates (or brings up to date) collections, validators and indexes. Idempotent: a
    /// second run reports every step [`SetupOutcome::Unchanged`]; a changed log retention is
    /// applied to the existing TTL index. [`Error::Validation`] naming `log_retention`, before
    /// anything changes, for a retention that is not whole seconds from 1 to `i32::MAX`.
    ///
    /// Steps the server does not support are reported as [`SetupOutcome::Unsupported`] with the
    /// server's message, or returned as [`Error::Unsupported`] when
    /// [`SetupOptions::on_unsupported`] is [`OnUnsupported::Fail`].
    async fn setup(&self, options: &SetupOptions) -> Result<SetupReport>;

    /// Appends an entry to the expiring log.
    async fn append_log(&self, entry: LogEntry) -> Result<ObjectId>;

    /// The newest log entries still inside the retention, newest first, at most `limit`.
    async fn recent_logs(&self, limit: usize) -> Result<Vec<LogEntry>>;

    /// Sets the durable marker `key` if it is absent, atomically: `true` when this call set it,
    /// `false` when it was set before (by any process, before any restart). Made for effects
    /// that must happen once (a welcome notification per user): claim the marker first, do
    /// the effect only when the claim is `true`, and [`DocStore::release_marker`] it if the
    /// effect failed so a retry can claim it again. Markers are kept until released.
    /// [`Error::Validation`] naming `key` for an empty key or one starting with `$`.
    async fn claim_marker(&self, key: &str) -> Result<bool>;

    /// Removes the marker `key`; `true` when it was set.
    async fn release_marker(&self, key: &str) -> Result<bool>;

    /// Removes the markers whose key starts with `prefix` and that were claimed before
    /// `claimed_before`; returns how many. This is what bounds the markers of effects whose
    /// redelivery window has passed (a notification's marker need not outlive the last
    /// possible redelivery of its message). An empty prefix is an [`Error::Validation`]
    /// naming `prefix`: purging every kind of marker at once must not happen by accident.
    async fn purge_markers(
        &self,
        prefix: &str,
        claimed_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64>;

    /// What the server behind this store can do beyond single-document writes
    /// ([`Capabilities`]), as detected at connect. The default, for a backend that does not
    /// say, is [`Capabilities::none`].
    fn capabilities(&self) -> Capabilities {
        Capabilities::none()
    }

    /// The events logged from now on, each as it lands, from a change stream on the event
    /// log. The stream ends with an error if the server closes it.
    ///
    /// Only where [`Capabilities::change_streams`] is true (a MongoDB replica set or sharded
    /// cluster). Elsewhere — a standalone server, FerretDB 1.x, the in-memory backend — it is
    /// [`Error::Unsupported`] naming `watch_events (change streams)`, and a caller that follows
    /// the log polls instead: [`DataProcessing::export_events`] with a window
    /// [`TimeWindow::since`] the newest timestamp it has seen (events are returned oldest
    /// first, so the last one read is the next checkpoint; events sharing that timestamp are
    /// returned again and told apart by id).
    async fn watch_events(&self) -> Result<BoxStream<'static, Result<Event>>> {
        Err(Error::unsupported(
            "watch_events (change streams)",
            self.backend(),
        ))
    }

    /// For the in-memory backend, how full it is and how many events its bounds evicted
    /// ([`MemoryStats`]); `None` for backends whose data lives on a server (the default).
    fn memory_stats(&self) -> Option<MemoryStats> {
        None
    }
}
