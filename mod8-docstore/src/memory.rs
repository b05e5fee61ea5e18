//! The in-memory backend: the embedded default, with the same semantics as MongoDB (the same
//! conformance suite passes on both) but no durability across restarts and no sharing between
//! processes.
//!
//! One `tokio::sync::RwLock` guards plain Rust collections: events are kept as typed structs in
//! one `VecDeque` in the order they were stored (about 300 bytes per event beyond its
//! strings), profiles in a `Vec` with hash indexes on the three unique keys. Analytics scan the
//! events under the read lock.
//!
//! The event log is **bounded** ([`MemoryLimits`]): by count, by an estimate of the events'
//! in-memory bytes and optionally by age. Logging an event past a bound evicts the oldest
//! events first (in the order they were stored); [`MemoryDocStore::stats`] counts the
//! evictions. Evicted events are gone from every query (analytics, activity summaries,
//! exports), and a message whose event was evicted is no longer recognised by
//! [`EventStore::log_event_once`] (a redelivery after that stores it again).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bson::oid::ObjectId;
use chrono::Utc;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::RwLock;

use crate::model::{
    event_id_for_message, ActivitySummary, ActivityWindow, AnalyticsSnapshot, BulkFailure,
    BulkInsertResult, CategoryPurchases, CohortMetrics, DayRange, Event, EventFilter, EventLogged,
    EventTypeCount, GeoPoint, MetricsUpdate, NearbyEvent, ProfileDocument, Subscription,
    TimeWindow, UserEventCounts, PURCHASE,
};
use crate::setup::{self, LogEntry, SetupOptions, SetupOutcome, SetupReport};
use crate::{
    validate, DataProcessing, DocStore, Error, EventStore, MemoryLimits, ProfileStore, Result,
};

const BACKEND: &str = "memory";
/// The entities named in conflicts and not-found errors, as the MongoDB backend names them.
const PROFILE: &str = crate::model::PROFILE_ENTITY;
const EVENT: &str = crate::model::EVENT_ENTITY;

/// The in-memory document store. Cheap to clone: clones share the same data.
///
/// Its event log is bounded by [`MemoryLimits`] (by default 100,000 events and about 64 MiB):
/// past a bound the oldest events are evicted, counted in [`MemoryStats::evictions`]. Build
/// one with other bounds with [`MemoryDocStore::with_limits`] or
/// [`DocStoreConfig::with_max_events`](crate::DocStoreConfig::with_max_events) and its
/// siblings.
///
/// ```
/// # tokio_test();
/// # fn tokio_test() { tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use mod8_docstore::{Event, EventStore, MemoryDocStore, TimeWindow};
/// let store = MemoryDocStore::new();
/// store.log_event(Event::new("u1", "click")).await?;
/// let counts = store.event_distribution(TimeWindow::all()).await?;
/// assert_eq!(counts[0].count, 1);
/// # Ok::<(), mod8_docstore::Error>(()) }).unwrap() }
/// ```
#[derive(Clone)]
pub struct MemoryDocStore {
    inner: Arc<RwLock<Inner>>,
    /// The figures [`MemoryDocStore::stats`] reads without taking the lock.
    counters: Arc<Counters>,
}

/// How full the in-memory store is, and what its bounds evicted
/// ([`MemoryDocStore::stats`], or [`DocStore::memory_stats`] through any handle).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Events held now.
    pub events: u64,
    /// The estimated in-memory bytes of the events held now (what
    /// [`MemoryLimits::max_event_bytes`] bounds).
    pub event_bytes: u64,
    /// Events evicted since the store was created, for any bound (count, bytes, age).
    pub evictions: u64,
    /// Profiles held now (one per user: bounded by the users the application registers).
    pub profiles: u64,
    /// Once-markers held now ([`DocStore::claim_marker`]).
    pub markers: u64,
    /// The bound on [`MemoryStats::events`].
    pub max_events: u64,
    /// The bound on [`MemoryStats::event_bytes`].
    pub max_event_bytes: u64,
}

/// The bounds, and figures updated under the write lock and read without it.
#[derive(Default)]
struct Counters {
    limits: MemoryLimits,
    events: AtomicU64,
    event_bytes: AtomicU64,
    evictions: AtomicU64,
    profiles: AtomicU64,
    markers: AtomicU64,
}

/// One stored event, with what the bounds need to know about it.
struct Stored {
    event: Event,
    /// Its estimated in-memory bytes ([`approx_event_bytes`]).
    bytes: usize,
    stored_at: Instant,
}

impl std::fmt::Debug for MemoryDocStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryDocStore").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    counters: Arc<Counters>,
    profiles: Vec<ProfileDocument>,
    by_username: HashMap<String, usize>,
    by_email: HashMap<String, usize>,
    by_user_id: HashMap<String, usize>,
    /// The events in the order they were stored: eviction takes from the front.
    events: VecDeque<Stored>,
    /// The sequence number of `events[0]`: every stored event has one, one more than the
    /// event before it, so an export's positions stay valid while the front is evicted.
    first_seq: u64,
    /// The sum of the held events' [`Stored::bytes`].
    event_bytes: usize,
    /// Every event's `_id`, so a caller-chosen id that is taken is a conflict, as it is on
    /// MongoDB's `_id` index (about 16-30 bytes per event).
    event_ids: HashSet<ObjectId>,
    logs: VecDeque<LogEntry>,
    analytics: Vec<AnalyticsSnapshot>,
    /// The log retention applied by the last setup (`None` before the first setup).
    applied_retention: Option<Duration>,
    /// [`DocStore::claim_marker`]'s markers.
    /// Each with when it was claimed.
    markers: HashMap<String, chrono::DateTime<Utc>>,
}

impl Inner {
    fn retention(&self) -> Duration {
        self.applied_retention
            .unwrap_or_else(|| SetupOptions::default().log_retention)
    }

    fn insert_profile(&mut self, profile: ProfileDocument) -> Result<ObjectId> {
        let mut profile = validate::profile(profile)?;
        if self.by_username.contains_key(&profile.username) {
            return Err(Error::conflict(
                PROFILE,
                "username",
                format!("username {:?} is taken", profile.username),
            ));
        }
        if self.by_email.contains_key(&profile.email) {
            return Err(Error::conflict(
                PROFILE,
                "email",
                format!("email {:?} is taken", profile.email),
            ));
        }
        if self.by_user_id.contains_key(&profile.user_id) {
            return Err(Error::conflict(
                PROFILE,
                "user_id",
                format!("user_id {:?} already has a profile", profile.user_id),
            ));
        }
        // A fresh ObjectId is unique by construction; only a caller-chosen id needs a check.
        if let Some(given) = profile.id {
            if self.profiles.iter().any(|p| p.id == Some(given)) {
                return Err(Error::conflict(
                    PROFILE,
                    "_id",
                    format!("_id {given} exists"),
                ));
            }
        }
        let id = *profile.id.get_or_insert_with(ObjectId::new);
        let at = self.profiles.len();
        self.by_username.insert(profile.username.clone(), at);
        self.by_email.insert(profile.email.clone(), at);
        self.by_user_id.insert(profile.user_id.clone(), at);
        self.profiles.push(profile);
        self.counters
            .profiles
            .store(self.profiles.len() as u64, Relaxed);
        Ok(id)
    }

    fn profile_mut(&mut self, username: &str) -> Result<&mut ProfileDocument> {
        validate::check_name("username", username)?;
        self.by_username
            .get(username)
            .and_then(|&i| self.profiles.get_mut(i))
            .ok_or_else(|| Error::not_found(PROFILE, username))
    }

    /// Stores a validated event whose id is set, evicting the oldest events first when a
    /// bound would be passed; [`Error::Conflict`] if the id is taken, [`Error::Validation`]
    /// naming `event` if the event alone is larger than the whole byte budget.
    fn push_event(&mut self, mut event: Event, id: ObjectId) -> Result<ObjectId> {
        if self.event_ids.contains(&id) {
            return Err(Error::conflict(
                EVENT,
                "_id",
                format!("event _id {id} exists"),
            ));
        }
        compact_event(&mut event);
        let bytes = approx_event_bytes(&event);
        if bytes > self.counters.limits.max_event_bytes {
            return Err(Error::validation(
                "event",
                format!(
                    "takes about {bytes} bytes in memory, more than the in-memory store's whole \
                     event budget of {} bytes",
                    self.counters.limits.max_event_bytes
                ),
            ));
        }
        let now = Instant::now();
        self.evict(now, bytes);
        self.event_ids.insert(id);
        self.events.push_back(Stored {
            event,
            bytes,
            stored_at: now,
        });
        self.event_bytes += bytes;
        self.publish_events();
        Ok(id)
    }

    /// Evicts from the front (the oldest stored) every event past the retention, then as many
    /// as it takes for one more event of `incoming` bytes to fit the count and byte bounds.
    fn evict(&mut self, now: Instant, incoming: usize) {
        let max_events = self.counters.limits.max_events.max(1);
        let mut evicted = 0u64;
        while let Some(front) = self.events.front() {
            let expired = self
                .counters
                .limits
                .event_retention
                .is_some_and(|r| now.saturating_duration_since(front.stored_at) >= r);
            let full = self.events.len() >= max_events
                || self.event_bytes.saturating_add(incoming) > self.counters.limits.max_event_bytes;
            if !expired && !full {
                break;
            }
            if let Some(old) = self.events.pop_front() {
                if let Some(id) = old.event.id {
                    self.event_ids.remove(&id);
                }
                self.event_bytes = self.event_bytes.saturating_sub(old.bytes);
                self.first_seq += 1;
                evicted += 1;
            }
        }
        if evicted > 0 {
            self.counters.evictions.fetch_add(evicted, Relaxed);
            // Give back the memory of a log that shrank for good (after a burst), not on
            // every eviction of a full one.
            if self.events.capacity() > 4 * self.events.len().max(1024) {
                self.events.shrink_to(2 * self.events.len());
                self.event_ids.shrink_to(2 * self.events.len());
            }
        }
    }

    fn publish_events(&self) {
        self.counters
            .events
            .store(self.events.len() as u64, Relaxed);
        self.counters
            .event_bytes
            .store(self.event_bytes as u64, Relaxed);
    }

    /// The held event with sequence number `seq` (see [`Inner::first_seq`]).
    fn event_at(&self, seq: u64) -> Option<&Event> {
        let at = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        self.events.get(at).map(|s| &s.event)
    }

    fn all_events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter().map(|s| &s.event)
    }

    fn events_in(&self, window: TimeWindow) -> impl Iterator<Item = &Event> {
        self.all_events()
            .filter(move |e| window.contains(e.timestamp))
    }
}

/// Allocator bookkeeping counted per heap allocation.
const ALLOCATION: usize = 16;
/// The share of a B-tree node one map entry takes beyond its key and value.
const MAP_ENTRY: usize =
    std::mem::size_of::<String>() + std::mem::size_of::<serde_json::Value>() + 16;
/// One id in the `_id` set (with the hash table's spare room).
const ID_ENTRY: usize = 2 * std::mem::size_of::<ObjectId>();

fn string_bytes(s: &str, capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        capacity.max(s.len()) + ALLOCATION
    }
}

fn opt_string_bytes(s: &Option<String>) -> usize {
    s.as_ref().map_or(0, |s| string_bytes(s, s.capacity()))
}

fn value_bytes(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    match value {
        Value::String(s) => string_bytes(s, s.capacity()),
        Value::Array(items) => {
            let own = if items.capacity() == 0 {
                0
            } else {
                items.capacity() * std::mem::size_of::<Value>() + ALLOCATION
            };
            own + items.iter().map(value_bytes).sum::<usize>()
        }
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| MAP_ENTRY + string_bytes(k, k.capacity()) + value_bytes(v))
            .sum(),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

/// What one stored event takes in memory, estimated from its contents: the fixed part, every
/// string and JSON value at its in-memory size (a JSON number in an array takes 32 bytes, not
/// the 2 of its text) with the allocator's share, and its entry in the `_id` set. An estimate
/// within tens of percent of the real figure, which is what the byte budget needs.
fn approx_event_bytes(e: &Event) -> usize {
    let mut bytes = std::mem::size_of::<Stored>()
        + ID_ENTRY
        + string_bytes(&e.user_id, e.user_id.capacity())
        + string_bytes(&e.event_type, e.event_type.capacity())
        + opt_string_bytes(&e.message_id);
    if let Some(m) = &e.metadata {
        bytes += std::mem::size_of::<crate::EventMetadata>()
            + opt_string_bytes(&m.product)
            + opt_string_bytes(&m.category)
            + m.extras
                .iter()
                .map(|(k, v)| MAP_ENTRY + string_bytes(k, k.capacity()) + value_bytes(v))
                .sum::<usize>();
    }
    if let Some(g) = &e.geo {
        bytes += std::mem::size_of::<crate::Geo>()
            + opt_string_bytes(&g.country)
            + opt_string_bytes(&g.city);
    }
    if let Some(s) = &e.session_info {
        bytes += std::mem::size_of::<crate::SessionInfo>()
            + opt_string_bytes(&s.device)
            + opt_string_bytes(&s.os)
            + opt_string_bytes(&s.app_version);
    }
    bytes
}

/// Drops the spare capacity JSON parsing leaves in arrays (they grow by doubling), so an
/// event is kept at its size.
fn compact_event(e: &mut Event) {
    fn compact(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Array(items) => {
                items.shrink_to_fit();
                items.iter_mut().for_each(compact);
            }
            serde_json::Value::Object(map) => map.values_mut().for_each(compact),
            serde_json::Value::String(s) => s.shrink_to_fit(),
            _ => {}
        }
    }
    if let Some(m) = &mut e.metadata {
        m.extras.values_mut().for_each(compact);
    }
}

/// Per-key accumulators for a few distinct keys (event types, categories): a linear search in
/// a small vector beats hashing every event's key; past 32 keys it becomes a hash map.
enum Tally<K, V> {
    Few(Vec<(K, V)>),
    Many(HashMap<K, V>),
}

impl<K: Eq + std::hash::Hash + Copy, V: Default> Tally<K, V> {
    fn new() -> Self {
        Tally::Few(Vec::new())
    }

    fn slot(&mut self, key: K) -> &mut V {
        if let Tally::Few(items) = self {
            if items.len() >= 32 && !items.iter().any(|(k, _)| *k == key) {
                *self = Tally::Many(std::mem::take(items).into_iter().collect());
            }
        }
        match self {
            Tally::Few(items) => {
                let at = match items.iter().position(|(k, _)| *k == key) {
                    Some(at) => at,
                    None => {
                        items.push((key, V::default()));
                        items.len() - 1
                    }
                };
                &mut items[at].1
            }
            Tally::Many(map) => map.entry(key).or_default(),
        }
    }

    fn into_vec(self) -> Vec<(K, V)> {
        match self {
            Tally::Few(items) => items,
            Tally::Many(map) => map.into_iter().collect(),
        }
    }
}

impl Default for MemoryDocStore {
    /// An empty store with the default bounds ([`MemoryLimits::default`]).
    fn default() -> Self {
        MemoryDocStore::with_limits(MemoryLimits::default())
    }
}

impl MemoryDocStore {
    /// An empty store with the default bounds ([`MemoryLimits::default`]).
    pub fn new() -> Self {
        MemoryDocStore::default()
    }

    /// An empty store bounded by `limits` (a `max_events` of 0 counts as 1).
    pub fn with_limits(limits: MemoryLimits) -> Self {
        let counters = Arc::new(Counters {
            limits,
            ..Counters::default()
        });
        MemoryDocStore {
            inner: Arc::new(RwLock::new(Inner {
                counters: counters.clone(),
                ..Inner::default()
            })),
            counters,
        }
    }

    /// The bounds this store applies.
    pub fn limits(&self) -> MemoryLimits {
        self.counters.limits
    }

    /// How full the store is and how many events its bounds evicted, read without waiting
    /// for the store's lock.
    pub fn stats(&self) -> MemoryStats {
        let c = &self.counters;
        let (max_events, max_event_bytes) = (c.limits.max_events.max(1), c.limits.max_event_bytes);
        MemoryStats {
            events: c.events.load(Relaxed),
            event_bytes: c.event_bytes.load(Relaxed),
            evictions: c.evictions.load(Relaxed),
            profiles: c.profiles.load(Relaxed),
            markers: c.markers.load(Relaxed),
            max_events: max_events as u64,
            max_event_bytes: max_event_bytes as u64,
        }
    }
}

#[async_trait]
impl ProfileStore for MemoryDocStore {
    async fn insert_profile(&self, profile: ProfileDocument) -> Result<ObjectId> {
        self.inner.write().await.insert_profile(profile)
    }

    async fn insert_profiles(&self, profiles: Vec<ProfileDocument>) -> Result<BulkInsertResult> {
        let mut inner = self.inner.write().await;
        let mut result = BulkInsertResult::default();
        for (index, profile) in profiles.into_iter().enumerate() {
            match inner.insert_profile(profile) {
                Ok(id) => result.inserted_ids.push(id),
                Err(error) => result.failures.push(BulkFailure { index, error }),
            }
        }
        Ok(result)
    }

    async fn profile_by_username(&self, username: &str) -> Result<Option<ProfileDocument>> {
        validate::check_name("username", username)?;
        let inner = self.inner.read().await;
        Ok(inner
            .by_username
            .get(username)
            .and_then(|&i| inner.profiles.get(i))
            .cloned())
    }

    async fn find_profiles_by_interest(
        &self,
        interest: &str,
        limit: usize,
    ) -> Result<Vec<ProfileDocument>> {
        validate::check_name("interest", interest)?;
        let inner = self.inner.read().await;
        let mut found: Vec<&ProfileDocument> = inner
            .profiles
            .iter()
            .filter(|p| p.profile.interests.iter().any(|i| i == interest))
            .collect();
        found.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(found.into_iter().take(limit).cloned().collect())
    }

    async fn add_subscription(&self, username: &str, subscription: Subscription) -> Result<()> {
        let subscription = validate::subscription(subscription)?;
        let mut inner = self.inner.write().await;
        inner
            .profile_mut(username)?
            .subscriptions
            .push(subscription);
        Ok(())
    }

    async fn update_metrics(&self, username: &str, update: MetricsUpdate) -> Result<()> {
        validate::metrics_update(&update)?;
        let mut inner = self.inner.write().await;
        let metrics = &mut inner.profile_mut(username)?.metrics;
        if let Some(score) = update.engagement_score {
            metrics.engagement_score = score;
        }
        metrics.profile_views = metrics.profile_views.saturating_add(update.profile_views);
        metrics.content_views = metrics.content_views.saturating_add(update.content_views);
        Ok(())
    }

    async fn apply_activity(&self, user_id: &str, a: crate::ActivityUpdate) -> Result<bool> {
        validate::check_name("user_id", user_id)?;
        validate::activity_update(&a)?;
        let mut inner = self.inner.write().await;
        let index = *inner
            .by_user_id
            .get(user_id)
            .ok_or_else(|| Error::not_found(PROFILE, user_id))?;
        let profile = &mut inner.profiles[index];
        let metrics = &mut profile.metrics;
        if metrics.applied_events.contains(&a.event_id) {
            return Ok(false);
        }
        metrics.engagement_score += a.score;
        metrics.content_views = metrics.content_views.saturating_add(a.content_views);
        let key = if metrics.event_counts.contains_key(&a.event_type)
            || metrics.event_counts.len() < crate::MAX_EVENT_TYPES
        {
            a.event_type
        } else {
            crate::OTHER_EVENT_TYPE.to_owned()
        };
        let count = metrics.event_counts.entry(key).or_default();
        *count = count.saturating_add(1);
        metrics.applied_events.push(a.event_id);
        let excess = metrics
            .applied_events
            .len()
            .saturating_sub(crate::MAX_APPLIED_EVENTS);
        metrics.applied_events.drain(..excess);
        if let Some(interest) = a.interest {
            let interests = &mut profile.profile.interests;
            if !interests.contains(&interest) {
                interests.push(interest);
                let excess = interests.len().saturating_sub(crate::MAX_PROFILE_INTERESTS);
                interests.drain(..excess);
            }
        }
        Ok(true)
    }
}

#[async_trait]
impl EventStore for MemoryDocStore {
    async fn log_event(&self, event: Event) -> Result<ObjectId> {
        let mut event = validate::event(event)?;
        let id = *event.id.get_or_insert_with(ObjectId::new);
        self.inner.write().await.push_event(event, id)
    }

    async fn log_event_once(&self, message_id: &str, event: Event) -> Result<EventLogged> {
        let mut event = validate::event(event)?;
        validate::check_name("message_id", message_id)?;
        let id = event_id_for_message(message_id);
        event.id = Some(id);
        event.message_id = Some(message_id.to_owned());
        let mut inner = self.inner.write().await;
        if inner.event_ids.contains(&id)
            && inner
                .all_events()
                .any(|e| e.id == Some(id) && e.message_id.as_deref() == Some(message_id))
        {
            return Ok(EventLogged {
                id,
                inserted: false,
            });
        }
        inner.push_event(event, id)?;
        Ok(EventLogged { id, inserted: true })
    }

    async fn log_events(&self, events: Vec<Event>) -> Result<BulkInsertResult> {
        // Validate and assign ids outside the lock; only the id checks and pushes hold it.
        let mut result = BulkInsertResult::default();
        let mut valid = Vec::with_capacity(events.len());
        for (index, event) in events.into_iter().enumerate() {
            match validate::event(event) {
                Ok(mut e) => {
                    let id = *e.id.get_or_insert_with(ObjectId::new);
                    valid.push((index, id, e));
                }
                Err(error) => result.failures.push(BulkFailure { index, error }),
            }
        }
        let mut inner = self.inner.write().await;
        // Room for the batch, up to the bound (a larger batch evicts its own first events).
        let room = valid.len().min(
            inner
                .counters
                .limits
                .max_events
                .saturating_sub(inner.events.len()),
        );
        inner.events.reserve(room);
        inner.event_ids.reserve(room);
        for (index, id, e) in valid {
            // Unordered, like MongoDB's bulk insert: a taken id fails alone.
            match inner.push_event(e, id) {
                Ok(id) => result.inserted_ids.push(id),
                Err(error) => result.failures.push(BulkFailure { index, error }),
            }
        }
        drop(inner);
        result.failures.sort_by_key(|f| f.index);
        Ok(result)
    }

    async fn event_distribution(&self, window: TimeWindow) -> Result<Vec<EventTypeCount>> {
        let inner = self.inner.read().await;
        let mut counts: Tally<&str, u64> = Tally::new();
        for e in inner.events_in(window) {
            *counts.slot(e.event_type.as_str()) += 1;
        }
        let mut out: Vec<EventTypeCount> = counts
            .into_vec()
            .into_iter()
            .map(|(t, count)| EventTypeCount {
                event_type: t.to_owned(),
                count,
            })
            .collect();
        out.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.event_type.cmp(&b.event_type))
        });
        Ok(out)
    }

    async fn user_event_counts(
        &self,
        user_id: &str,
        recent_since: chrono::DateTime<Utc>,
    ) -> Result<UserEventCounts> {
        validate::check_name("user_id", user_id)?;
        // One pass under one read lock: the counts and the ids see the same events.
        let inner = self.inner.read().await;
        let mut counts: HashMap<&str, u64> = HashMap::new();
        let mut recent = Vec::new();
        for e in inner.all_events().filter(|e| e.user_id == user_id) {
            *counts.entry(e.event_type.as_str()).or_default() += 1;
            if e.timestamp >= recent_since {
                if let Some(id) = &e.message_id {
                    recent.push(id.clone());
                }
            }
        }
        Ok(UserEventCounts::sorted(
            counts.into_iter().map(|(t, n)| (t.to_owned(), n)),
            recent,
        ))
    }

    async fn user_activity(&self, window: TimeWindow, top: usize) -> Result<Vec<ActivityWindow>> {
        let inner = self.inner.read().await;
        let mut users: HashMap<&str, ActivityWindow> = HashMap::new();
        for e in inner.events_in(window) {
            users
                .entry(e.user_id.as_str())
                .and_modify(|a| {
                    a.events += 1;
                    a.first_seen = a.first_seen.min(e.timestamp);
                    a.last_seen = a.last_seen.max(e.timestamp);
                })
                .or_insert_with(|| ActivityWindow {
                    user_id: e.user_id.clone(),
                    events: 1,
                    first_seen: e.timestamp,
                    last_seen: e.timestamp,
                });
        }
        let mut out: Vec<ActivityWindow> = users.into_values().collect();
        out.sort_by(|a, b| {
            b.events
                .cmp(&a.events)
                .then_with(|| a.user_id.cmp(&b.user_id))
        });
        out.truncate(top);
        Ok(out)
    }

    async fn purchase_analytics(&self, window: TimeWindow) -> Result<Vec<CategoryPurchases>> {
        let inner = self.inner.read().await;
        let mut by_category: Tally<Option<&str>, (u64, f64)> = Tally::new();
        for e in inner.events_in(window) {
            if e.event_type != PURCHASE {
                continue;
            }
            let Some(meta) = &e.metadata else { continue };
            let Some(price) = meta.price else { continue };
            let slot = by_category.slot(meta.category.as_deref());
            slot.0 += 1;
            slot.1 += price;
        }
        Ok(crate::model::purchases_from_sums(
            by_category
                .into_vec()
                .into_iter()
                .map(|(c, (n, sum))| (c.map(str::to_owned), n, sum)),
        ))
    }

    async fn activity_summary(&self, user_id: &str, days: DayRange) -> Result<ActivitySummary> {
        validate::activity_query(user_id, &days)?;
        let inner = self.inner.read().await;
        let mut summary = ActivitySummary {
            user_id: user_id.to_owned(),
            ..ActivitySummary::default()
        };
        for e in inner
            .all_events()
            .filter(|e| e.user_id == user_id && days.contains(e.timestamp.date_naive()))
        {
            *summary.counts.entry(e.event_type.clone()).or_default() += 1;
            summary.last_event_at = summary.last_event_at.max(Some(e.timestamp));
        }
        Ok(summary)
    }

    async fn events_near(
        &self,
        point: GeoPoint,
        max_distance_m: f64,
        limit: usize,
    ) -> Result<Vec<NearbyEvent>> {
        validate::check_point("point", &point)?;
        validate::distance(max_distance_m)?;
        let inner = self.inner.read().await;
        let mut near: Vec<(f64, &Event)> = inner
            .all_events()
            .filter_map(|e| {
                let at = e.geo.as_ref()?.location.as_ref()?;
                let d = point.distance_m(at);
                (d <= max_distance_m).then_some((d, e))
            })
            .collect();
        near.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        Ok(near
            .into_iter()
            .take(limit)
            .map(|(distance_m, e)| NearbyEvent {
                event: e.clone(),
                distance_m,
            })
            .collect())
    }
}

#[async_trait]
impl DataProcessing for MemoryDocStore {
    async fn cohort_metrics(&self, activity: TimeWindow) -> Result<Vec<CohortMetrics>> {
        let inner = self.inner.read().await;
        let mut events_per_user: HashMap<&str, u64> = HashMap::new();
        for e in inner.events_in(activity) {
            *events_per_user.entry(e.user_id.as_str()).or_default() += 1;
        }
        // month -> (users, active users, events)
        let mut cohorts: std::collections::BTreeMap<String, (u64, u64, u64)> = Default::default();
        for p in &inner.profiles {
            let slot = cohorts
                .entry(p.created_at.format("%Y-%m").to_string())
                .or_default();
            let n = events_per_user
                .get(p.user_id.as_str())
                .copied()
                .unwrap_or(0);
            slot.0 += 1;
            slot.1 += u64::from(n > 0);
            slot.2 += n;
        }
        Ok(cohorts
            .into_iter()
            .map(|(month, (users, active_users, events))| {
                CohortMetrics::new(month, users, active_users, events)
            })
            .collect())
    }

    async fn export_events(
        &self,
        filter: EventFilter,
        batch_size: usize,
    ) -> Result<BoxStream<'static, Result<Vec<Event>>>> {
        validate::event_filter(&filter)?;
        let batch_size = batch_size.max(1);
        // Only the matching events' sequence numbers are held (8 bytes each), and each batch
        // is cloned under a short read lock. A sequence number stays valid while older events
        // are evicted; an event evicted before its batch is read is left out.
        let seqs: Vec<u64> = {
            let inner = self.inner.read().await;
            let first = inner.first_seq;
            let mut seqs: Vec<u64> = inner
                .all_events()
                .enumerate()
                .filter(|(_, e)| filter.matches(e))
                .map(|(i, _)| first + i as u64)
                .collect();
            seqs.sort_by_key(|&seq| inner.event_at(seq).map(|e| (e.timestamp, e.id)));
            seqs
        };
        let store = self.inner.clone();
        let chunks: Vec<Vec<u64>> = seqs.chunks(batch_size).map(<[u64]>::to_vec).collect();
        Ok(stream::iter(chunks)
            .then(move |chunk| {
                let store = store.clone();
                async move {
                    let inner = store.read().await;
                    Ok(chunk
                        .iter()
                        .filter_map(|&seq| inner.event_at(seq).cloned())
                        .collect())
                }
            })
            .boxed())
    }

    async fn save_analytics(&self, name: &str, result: serde_json::Value) -> Result<ObjectId> {
        let snapshot = validate::snapshot(name, result)?;
        let id = snapshot.id.unwrap_or_else(ObjectId::new);
        self.inner.write().await.analytics.push(snapshot);
        Ok(id)
    }

    async fn latest_analytics(&self, name: &str) -> Result<Option<AnalyticsSnapshot>> {
        validate::check_name("name", name)?;
        let inner = self.inner.read().await;
        Ok(inner
            .analytics
            .iter()
            .filter(|a| a.name == name)
            .max_by(|a, b| {
                a.computed_at
                    .cmp(&b.computed_at)
                    .then_with(|| a.id.cmp(&b.id))
            })
            .cloned())
    }
}

#[async_trait]
impl DocStore for MemoryDocStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn memory_stats(&self) -> Option<MemoryStats> {
        Some(self.stats())
    }

    /// [`Capabilities::none`](crate::Capabilities::none): there is no server, so neither
    /// transactions nor change streams to offer (each call already applies its writes under
    /// one lock, an event and its counts together, so none is needed for atomicity), and
    /// [`DocStore::watch_events`] is [`Error::Unsupported`].
    fn capabilities(&self) -> crate::Capabilities {
        crate::Capabilities::none()
    }

    async fn setup(&self, options: &SetupOptions) -> Result<SetupReport> {
        validate::log_retention(options.log_retention)?;
        let retention = options.log_retention;
        let mut inner = self.inner.write().await;
        let first = inner.applied_retention.is_none();
        let fresh = if first {
            SetupOutcome::Created
        } else {
            SetupOutcome::Unchanged
        };
        let mut report = SetupReport::default();
        for c in [setup::EVENTS, setup::PROFILES] {
            report.push(setup::collection_target(c), fresh.clone());
            report.push(setup::validator_target(c), fresh.clone());
        }
        report.push(setup::collection_target(setup::LOGS), fresh.clone());
        report.push(setup::collection_target(setup::ANALYTICS), fresh.clone());
        for (c, i) in [
            (setup::PROFILES, setup::IDX_USERNAME),
            (setup::PROFILES, setup::IDX_EMAIL),
            (setup::PROFILES, setup::IDX_USER_ID),
            (setup::PROFILES, setup::IDX_INTERESTS),
            (setup::EVENTS, setup::IDX_USER_TIME),
            (setup::EVENTS, setup::IDX_TIME),
            (setup::EVENTS, setup::IDX_GEO),
        ] {
            report.push(setup::index_target(c, i), fresh.clone());
        }
        let ttl = match inner.applied_retention {
            None => SetupOutcome::Created,
            Some(r) if r == retention => SetupOutcome::Unchanged,
            Some(_) => SetupOutcome::Updated,
        };
        report.push(setup::index_target(setup::LOGS, setup::IDX_LOG_TTL), ttl);
        report.push(
            setup::index_target(setup::ANALYTICS, setup::IDX_ANALYTICS),
            fresh,
        );
        inner.applied_retention = Some(retention);
        Ok(report)
    }

    async fn append_log(&self, entry: LogEntry) -> Result<ObjectId> {
        validate::check_name("level", &entry.level)?;
        let mut entry = entry;
        entry.created_at = crate::model::truncate_to_millis(entry.created_at);
        let id = *entry.id.get_or_insert_with(ObjectId::new);
        let mut inner = self.inner.write().await;
        let cutoff = setup::log_cutoff(Utc::now(), inner.retention());
        // Entries arrive roughly in time order: expire from the front, like a TTL monitor.
        while inner.logs.front().is_some_and(|l| l.created_at < cutoff) {
            inner.logs.pop_front();
        }
        inner.logs.push_back(entry);
        Ok(id)
    }

    async fn claim_marker(&self, key: &str) -> Result<bool> {
        validate::check_name("key", key)?;
        let mut inner = self.inner.write().await;
        let claimed = match inner.markers.entry(key.to_owned()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(Utc::now());
                true
            }
        };
        inner
            .counters
            .markers
            .store(inner.markers.len() as u64, Relaxed);
        Ok(claimed)
    }

    async fn release_marker(&self, key: &str) -> Result<bool> {
        validate::check_name("key", key)?;
        let mut inner = self.inner.write().await;
        let released = inner.markers.remove(key).is_some();
        inner
            .counters
            .markers
            .store(inner.markers.len() as u64, Relaxed);
        Ok(released)
    }

    async fn purge_markers(
        &self,
        prefix: &str,
        claimed_before: chrono::DateTime<Utc>,
    ) -> Result<u64> {
        crate::validate::check_marker_prefix(prefix)?;
        let mut inner = self.inner.write().await;
        let before = inner.markers.len();
        inner
            .markers
            .retain(|key, at| !(key.starts_with(prefix) && *at < claimed_before));
        let purged = before - inner.markers.len();
        inner
            .counters
            .markers
            .store(inner.markers.len() as u64, Relaxed);
        Ok(purged as u64)
    }

    async fn recent_logs(&self, limit: usize) -> Result<Vec<LogEntry>> {
        let inner = self.inner.read().await;
        let cutoff = setup::log_cutoff(Utc::now(), inner.retention());
        let mut logs: Vec<&LogEntry> = inner
            .logs
            .iter()
            .filter(|l| l.created_at >= cutoff)
            .collect();
        logs.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.id.cmp(&a.id))
        });
        Ok(logs.into_iter().take(limit).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_the_same_past_the_small_vector() {
        let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        let mut tally: Tally<&str, u64> = Tally::new();
        for round in 0..3 {
            for (i, k) in keys.iter().enumerate() {
                if round < 2 || i % 2 == 0 {
                    *tally.slot(k.as_str()) += 1;
                }
            }
        }
        assert!(matches!(tally, Tally::Many(_)));
        let mut counts = tally.into_vec();
        counts.sort();
        assert_eq!(counts.len(), 40);
        assert_eq!(counts.iter().find(|(k, _)| *k == "k0").unwrap().1, 3);
        assert_eq!(counts.iter().find(|(k, _)| *k == "k1").unwrap().1, 2);
        assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 40 * 2 + 20);
    }
}
