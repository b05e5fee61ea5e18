//! The documents (events, user profiles) and the shapes of query results.
//!
//! Every document is a plain serde type. Timestamps are `chrono` values; they are stored as
//! BSON dates in MongoDB and as RFC 3339 strings in JSON (see the `timestamp` module), at
//! millisecond precision (the precision BSON keeps), in every backend.

use std::collections::BTreeMap;

use bson::oid::ObjectId;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// The event type counted by [`crate::EventStore::purchase_analytics`].
pub const PURCHASE: &str = "purchase";

/// The entity [`crate::Error::NotFound`] and [`crate::Error::Conflict`] name for profiles.
pub(crate) const PROFILE_ENTITY: &str = "user profile";
/// The entity [`crate::Error::Conflict`] names for events.
pub(crate) const EVENT_ENTITY: &str = "event";

/// One thing a user did, at a point in time: the event log is a time series of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The store's id, set when the event is logged (or chosen by the caller).
    #[serde(rename = "_id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Who did it (the application's user id).
    pub user_id: String,
    /// What happened (`page_view`, `search`, [`PURCHASE`], ...).
    pub event_type: String,
    /// When it happened; defaults to now when absent from JSON.
    #[serde(with = "timestamp", default = "now")]
    pub timestamp: DateTime<Utc>,
    /// What it was about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<EventMetadata>,
    /// Where it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
    /// On what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_info: Option<SessionInfo>,
    /// The message the event came from, when it was logged with
    /// [`EventStore::log_event_once`](crate::EventStore::log_event_once) (its unique key);
    /// set by that call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// What [`EventStore::log_event_once`](crate::EventStore::log_event_once) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLogged {
    /// The event's id ([`event_id_for_message`] of its message id).
    pub id: ObjectId,
    /// `true` when this call stored the event, `false` when the message's event was stored
    /// before (a redelivery): nothing changed.
    pub inserted: bool,
}

/// The id of the event logged for message `message_id`: 12 bytes of two 64-bit FNV-1a hashes
/// of it (stable across versions and processes). Two message ids that hash alike are told
/// apart by the stored message id (the second is a conflict, never a silent duplicate).
pub fn event_id_for_message(message_id: &str) -> ObjectId {
    fn fnv1a(bytes: &[u8], basis: u64) -> u64 {
        bytes.iter().fold(basis, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }
    let a = fnv1a(message_id.as_bytes(), 0xcbf2_9ce4_8422_2325);
    let b = fnv1a(message_id.as_bytes(), 0x6c62_272e_07bb_0142);
    let mut id = [0u8; 12];
    id[..8].copy_from_slice(&a.to_be_bytes());
    id[8..].copy_from_slice(&b.to_be_bytes()[..4]);
    ObjectId::from_bytes(id)
}

/// What an event was about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Product id or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Price paid or shown; finite and not negative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    /// Product category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Free-form extras. Keys must not start with `$` or contain `.` (they would become query
    /// operators or paths); nested objects are checked too.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extras: BTreeMap<String, serde_json::Value>,
}

/// Where an event happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Geo {
    /// Country name or code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// City name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// The point, stored as a GeoJSON `Point` (`{"type":"Point","coordinates":[lon,lat]}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<GeoPoint>,
}

/// A WGS84 point. Serialized as a GeoJSON `Point`, longitude first.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GeoJsonPoint", into = "GeoJsonPoint")]
pub struct GeoPoint {
    /// Longitude in degrees, within [-180, 180].
    pub longitude: f64,
    /// Latitude in degrees, within [-90, 90].
    pub latitude: f64,
}

impl GeoPoint {
    /// A point at `longitude`, `latitude` (degrees; checked when stored or queried).
    pub fn new(longitude: f64, latitude: f64) -> Self {
        GeoPoint {
            longitude,
            latitude,
        }
    }

    /// Great-circle distance in metres on the sphere MongoDB uses for `2dsphere` queries.
    pub fn distance_m(&self, other: &GeoPoint) -> f64 {
        const EARTH_RADIUS_M: f64 = 6_378_100.0;
        let (lat1, lat2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.longitude - self.longitude).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }
}

#[derive(Serialize, Deserialize)]
struct GeoJsonPoint {
    #[serde(rename = "type")]
    kind: String,
    coordinates: [f64; 2],
}

impl From<GeoPoint> for GeoJsonPoint {
    fn from(p: GeoPoint) -> Self {
        GeoJsonPoint {
            kind: "Point".to_owned(),
            coordinates: [p.longitude, p.latitude],
        }
    }
}

impl TryFrom<GeoJsonPoint> for GeoPoint {
    type Error = String;
    fn try_from(p: GeoJsonPoint) -> Result<Self, String> {
        if p.kind != "Point" {
            return Err(format!("expected a GeoJSON Point, got {:?}", p.kind));
        }
        Ok(GeoPoint::new(p.coordinates[0], p.coordinates[1]))
    }
}

/// The device and app an event came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Device kind (`mobile`, `desktop`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Operating system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// App version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
}

impl Event {
    /// An event of `event_type` by `user_id`, happening now.
    pub fn new(user_id: impl Into<String>, event_type: impl Into<String>) -> Self {
        Event {
            id: None,
            user_id: user_id.into(),
            event_type: event_type.into(),
            timestamp: now(),
            metadata: None,
            geo: None,
            session_info: None,
            message_id: None,
        }
    }

    /// A [`PURCHASE`] of `product` in `category` at `price`.
    pub fn purchase(
        user_id: impl Into<String>,
        product: impl Into<String>,
        category: impl Into<String>,
        price: f64,
    ) -> Self {
        Event::new(user_id, PURCHASE).with_metadata(EventMetadata {
            product: Some(product.into()),
            price: Some(price),
            category: Some(category.into()),
            extras: BTreeMap::new(),
        })
    }

    /// This event at `timestamp` instead of now.
    pub fn at(mut self, timestamp: DateTime<Utc>) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// This event with `metadata`.
    pub fn with_metadata(mut self, metadata: EventMetadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// This event with a location (and optional country and city).
    pub fn with_geo(mut self, geo: Geo) -> Self {
        self.geo = Some(geo);
        self
    }

    /// This event with session information.
    pub fn with_session(mut self, session_info: SessionInfo) -> Self {
        self.session_info = Some(session_info);
        self
    }
}

/// A user's flexible profile. `user_id`, `username` and `email` are each unique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileDocument {
    /// The store's id, set on insert (or chosen by the caller).
    #[serde(rename = "_id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// The application's user id (what events carry in [`Event::user_id`]).
    pub user_id: String,
    /// Unique user name.
    pub username: String,
    /// Unique e-mail address.
    pub email: String,
    /// Sign-up time; cohorts are formed by its month.
    #[serde(with = "timestamp", default = "now")]
    pub created_at: DateTime<Utc>,
    /// Interests and experience.
    #[serde(default)]
    pub profile: ProfileDetails,
    /// Engagement counters.
    #[serde(default)]
    pub metrics: ProfileMetrics,
    /// Subscription history, oldest first.
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
}

impl ProfileDocument {
    /// A profile for `user_id` with `username` and `email`, created now.
    pub fn new(
        user_id: impl Into<String>,
        username: impl Into<String>,
        email: impl Into<String>,
    ) -> Self {
        ProfileDocument {
            id: None,
            user_id: user_id.into(),
            username: username.into(),
            email: email.into(),
            created_at: now(),
            profile: ProfileDetails::default(),
            metrics: ProfileMetrics::default(),
            subscriptions: Vec::new(),
        }
    }

    /// This profile with `interests`.
    pub fn with_interests<I, S>(mut self, interests: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.profile.interests = interests.into_iter().map(Into::into).collect();
        self
    }

    /// This profile created at `created_at` instead of now.
    pub fn created_at(mut self, created_at: DateTime<Utc>) -> Self {
        self.created_at = created_at;
        self
    }
}

/// What a user is into.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileDetails {
    /// Topics of interest (searchable with [`crate::ProfileStore::find_profiles_by_interest`]).
    #[serde(default)]
    pub interests: Vec<String>,
    /// Self-declared expertise.
    #[serde(default)]
    pub expertise_level: ExpertiseLevel,
    /// Number of projects.
    #[serde(default)]
    pub project_count: i64,
}

/// Self-declared expertise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ExpertiseLevel {
    /// New to it.
    #[default]
    Beginner,
    /// Comfortable.
    Intermediate,
    /// Very experienced.
    Advanced,
    /// Teaches others.
    Expert,
}

/// Engagement counters kept on the profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileMetrics {
    /// Engagement score (finite).
    #[serde(default)]
    pub engagement_score: f64,
    /// Times the profile was viewed.
    #[serde(default)]
    pub profile_views: i64,
    /// Content items the user viewed.
    #[serde(default)]
    pub content_views: i64,
    /// Events applied with [`ProfileStore::apply_activity`](crate::ProfileStore::apply_activity),
    /// per event type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub event_counts: BTreeMap<String, i64>,
    /// The ids of the most recent [`MAX_APPLIED_EVENTS`] applied activities, oldest first (what
    /// makes [`ProfileStore::apply_activity`](crate::ProfileStore::apply_activity) idempotent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_events: Vec<String>,
}

/// How many applied activity ids a profile remembers: a repeat of an activity older than the
/// user's last this-many activities would count again (redeliveries come within minutes).
pub const MAX_APPLIED_EVENTS: usize = 128;

/// Most interests a profile keeps: [`crate::ProfileStore::apply_activity`] appends a new
/// interest and drops the oldest past this many, so events with ever new categories cannot
/// grow a profile without limit.
pub const MAX_PROFILE_INTERESTS: usize = 32;

/// Most event types a profile counts by name in `metrics.event_counts`; events of further new
/// types are counted under [`OTHER_EVENT_TYPE`], so a profile has at most this many keys plus
/// that one however many type names clients invent.
pub const MAX_EVENT_TYPES: usize = 32;

/// The `metrics.event_counts` key of event types past [`MAX_EVENT_TYPES`].
pub const OTHER_EVENT_TYPE: &str = "other";

/// One event's contribution to a profile's metrics
/// ([`ProfileStore::apply_activity`](crate::ProfileStore::apply_activity)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityUpdate {
    /// The event's unique id (a message id): applied at most once per profile.
    pub event_id: String,
    /// Its type: `metrics.event_counts.<type>` grows by one (or `other`, past
    /// [`MAX_EVENT_TYPES`] types).
    pub event_type: String,
    /// Added to `metrics.engagement_score` (finite).
    pub score: f64,
    /// Added to `metrics.content_views`.
    pub content_views: i64,
    /// Added to `profile.interests` if absent (the oldest dropped past
    /// [`MAX_PROFILE_INTERESTS`]).
    pub interest: Option<String>,
}

/// A change to [`ProfileMetrics`]: set the score, add to the counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsUpdate {
    /// New engagement score, if it changes.
    pub engagement_score: Option<f64>,
    /// Added to `profile_views`.
    pub profile_views: i64,
    /// Added to `content_views`.
    pub content_views: i64,
}

/// One subscription period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    /// Plan name.
    pub plan: String,
    /// When it started.
    #[serde(with = "timestamp")]
    pub started_at: DateTime<Utc>,
    /// Its state.
    pub status: SubscriptionStatus,
}

/// The state of a [`Subscription`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SubscriptionStatus {
    /// Trial period.
    Trial,
    /// Paid and running.
    Active,
    /// Ended by the user.
    Cancelled,
    /// Ran out.
    Expired,
}

/// A half-open time range `[start, end)`; an absent bound is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    /// Inclusive start.
    pub start: Option<DateTime<Utc>>,
    /// Exclusive end.
    pub end: Option<DateTime<Utc>>,
}

impl TimeWindow {
    /// All of time.
    pub fn all() -> Self {
        TimeWindow::default()
    }

    /// `[start, end)`.
    pub fn between(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        TimeWindow {
            start: Some(start),
            end: Some(end),
        }
    }

    /// From `start` on.
    pub fn since(start: DateTime<Utc>) -> Self {
        TimeWindow {
            start: Some(start),
            end: None,
        }
    }

    /// Whether `t` falls inside.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t < e)
    }
}

/// Which events to export.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventFilter {
    /// Only this user's events.
    pub user_id: Option<String>,
    /// Only events of this type.
    pub event_type: Option<String>,
    /// Only events inside this window.
    pub window: TimeWindow,
}

impl EventFilter {
    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &Event) -> bool {
        self.user_id.as_ref().is_none_or(|u| *u == event.user_id)
            && self
                .event_type
                .as_ref()
                .is_none_or(|t| *t == event.event_type)
            && self.window.contains(event.timestamp)
    }
}

/// How many events of one type, in [`crate::EventStore::event_distribution`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTypeCount {
    /// The event type.
    pub event_type: String,
    /// How many.
    pub count: u64,
}

/// Every event one user logged, counted per type, and the message ids of the recent ones:
/// what [`crate::EventStore::user_event_counts`] answers, made to rebuild counters kept
/// elsewhere (a cache) from the log.
///
/// The ids are those of exactly the counted events timestamped at or after the call's
/// `recent_since` that were logged with
/// [`EventStore::log_event_once`](crate::EventStore::log_event_once): a rebuild can mark them
/// as counted, so a late count of the same message does not count it again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEventCounts {
    /// Events per type, most frequent first (ties by type name); types with no event absent.
    pub counts: Vec<EventTypeCount>,
    /// The message ids of the counted events timestamped at or after `recent_since`, sorted.
    pub recent_message_ids: Vec<String>,
}

impl UserEventCounts {
    /// Events of `event_type` (0 when none).
    pub fn count(&self, event_type: &str) -> u64 {
        self.counts
            .iter()
            .find(|c| c.event_type == event_type)
            .map_or(0, |c| c.count)
    }

    /// Events of every type.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.count).sum()
    }

    /// Builds the answer from per-type counts and ids in any order: sorts both as documented.
    pub(crate) fn sorted(
        counts: impl IntoIterator<Item = (String, u64)>,
        mut recent_message_ids: Vec<String>,
    ) -> Self {
        let mut counts: Vec<EventTypeCount> = counts
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .map(|(event_type, count)| EventTypeCount { event_type, count })
            .collect();
        counts.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.event_type.cmp(&b.event_type))
        });
        recent_message_ids.sort();
        UserEventCounts {
            counts,
            recent_message_ids,
        }
    }
}

/// One user's activity in a window, in [`crate::EventStore::user_activity`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityWindow {
    /// The user.
    pub user_id: String,
    /// Events in the window.
    pub events: u64,
    /// First event in the window.
    pub first_seen: DateTime<Utc>,
    /// Last event in the window.
    pub last_seen: DateTime<Utc>,
}

/// The longest [`DayRange`] [`crate::EventStore::activity_summary`] accepts, in days.
pub const MAX_ACTIVITY_DAYS: i64 = 366;

/// An inclusive range of UTC calendar days, for [`crate::EventStore::activity_summary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DayRange {
    /// First day counted.
    pub first: NaiveDate,
    /// Last day counted (inclusive).
    pub last: NaiveDate,
}

impl DayRange {
    /// `[first, last]`, both inclusive.
    pub fn new(first: NaiveDate, last: NaiveDate) -> Self {
        DayRange { first, last }
    }

    /// The `days` days ending with `last` (inclusive): `ending(today, 90)` is the last 90
    /// days including today. `days == 0` is treated as 1.
    pub fn ending(last: NaiveDate, days: u32) -> Self {
        let back = chrono::Days::new(u64::from(days.max(1) - 1));
        DayRange {
            first: last.checked_sub_days(back).unwrap_or(NaiveDate::MIN),
            last,
        }
    }

    /// Whether `day` lies in the range.
    pub fn contains(&self, day: NaiveDate) -> bool {
        self.first <= day && day <= self.last
    }

    /// Days in the range (0 when `first > last`).
    pub fn len_days(&self) -> i64 {
        (self.last - self.first).num_days() + 1
    }
}

/// How many events of each type one user logged over a [`DayRange`], in
/// [`crate::EventStore::activity_summary`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivitySummary {
    /// The user.
    pub user_id: String,
    /// Events per event type (types with no events are absent).
    pub counts: BTreeMap<String, u64>,
    /// The latest event counted; `None` when there were none.
    pub last_event_at: Option<DateTime<Utc>>,
}

impl ActivitySummary {
    /// Events of `event_type` (0 when none).
    pub fn count(&self, event_type: &str) -> u64 {
        self.counts.get(event_type).copied().unwrap_or(0)
    }

    /// Events of every type.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// Purchases in one category, in [`crate::EventStore::purchase_analytics`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryPurchases {
    /// The category (`None` for purchases without one).
    pub category: Option<String>,
    /// Number of priced purchases.
    pub purchases: u64,
    /// Sum of their prices.
    pub revenue: f64,
    /// `revenue / purchases`.
    pub average_price: f64,
}

/// An event found by [`crate::EventStore::events_near`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NearbyEvent {
    /// The event.
    pub event: Event,
    /// Its distance from the query point, in metres.
    pub distance_m: f64,
}

/// One sign-up cohort, in [`crate::DataProcessing::cohort_metrics`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohortMetrics {
    /// Sign-up month, `YYYY-MM` (UTC).
    pub month: String,
    /// Profiles created that month.
    pub users: u64,
    /// Of those, users with at least one event in the activity window.
    pub active_users: u64,
    /// Their events in the activity window.
    pub events: u64,
    /// `events / users`.
    pub events_per_user: f64,
}

/// A stored analytics result (the `analytics` collection): a named JSON document, newest wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsSnapshot {
    /// The store's id.
    #[serde(rename = "_id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// What it is (`event_distribution/daily`, ...).
    pub name: String,
    /// When it was computed.
    #[serde(with = "timestamp", default = "now")]
    pub computed_at: DateTime<Utc>,
    /// The result. Keys must not start with `$` or contain `.`.
    pub result: serde_json::Value,
}

/// The outcome of a bulk insert: the rest lands even when some documents fail.
#[derive(Debug, Default)]
pub struct BulkInsertResult {
    /// Ids of the documents inserted, in input order.
    pub inserted_ids: Vec<ObjectId>,
    /// The documents that failed, by input index, with the reason.
    pub failures: Vec<BulkFailure>,
}

/// One document a bulk insert could not store.
#[derive(Debug)]
pub struct BulkFailure {
    /// Its index in the input.
    pub index: usize,
    /// Why ([`crate::Error::Validation`], [`crate::Error::Conflict`], ...).
    pub error: crate::Error,
}

pub(crate) fn now() -> DateTime<Utc> {
    truncate_to_millis(Utc::now())
}

/// `t` without its sub-millisecond part (BSON dates keep milliseconds).
pub fn truncate_to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// Serde for timestamps: a BSON date for BSON serializers (which are not human-readable when
/// the backend asks so), RFC 3339 for JSON and other human-readable formats.
pub(crate) mod timestamp {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serialize `t` (see the module docs).
    pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            t.serialize(s)
        } else {
            bson::DateTime::from_chrono(*t).serialize(s)
        }
    }

    /// Deserialize a timestamp (see the module docs).
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        if d.is_human_readable() {
            DateTime::<Utc>::deserialize(d)
        } else {
            bson::DateTime::deserialize(d).map(|t| t.to_chrono())
        }
    }
}

impl CohortMetrics {
    pub(crate) fn new(month: String, users: u64, active_users: u64, events: u64) -> Self {
        CohortMetrics {
            month,
            users,
            active_users,
            events,
            events_per_user: if users == 0 {
                0.0
            } else {
                events as f64 / users as f64
            },
        }
    }
}

/// Per-category (count, revenue) sums into the sorted result both backends return.
pub(crate) fn purchases_from_sums(
    sums: impl Iterator<Item = (Option<String>, u64, f64)>,
) -> Vec<CategoryPurchases> {
    let mut out: Vec<CategoryPurchases> = sums
        .filter(|(_, n, _)| *n > 0)
        .map(|(category, purchases, revenue)| CategoryPurchases {
            category,
            purchases,
            revenue,
            average_price: revenue / purchases as f64,
        })
        .collect();
    out.sort_by(|a, b| {
        b.revenue
            .total_cmp(&a.revenue)
            .then_with(|| a.category.cmp(&b.category))
    });
    out
}
