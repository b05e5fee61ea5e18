//! The in-memory backend: the embedded default, with the same semantics as MongoDB (the same
//! conformance suite passes on both) but no durability across restarts and no sharing between
//! processes.
//!
//! One `tokio::sync::RwLock` guards plain Rust collections: events are kept as typed structs in
//! one `Vec` (about 300 bytes per event beyond its strings), profiles in a `Vec` with hash
//! indexes on the three unique keys. Analytics scan the events under the read lock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bson::oid::ObjectId;
use chrono::Utc;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::RwLock;

use crate::model::{
    event_id_for_message, ActivitySummary, ActivityWindow, AnalyticsSnapshot, BulkFailure,
    BulkInsertResult, CategoryPurchases, CohortMetrics, DayRange, Event, EventFilter, EventLogged,
    EventTypeCount, GeoPoint, MetricsUpdate, NearbyEvent, ProfileDocument, Subscription,
    TimeWindow, PURCHASE,
};
use crate::setup::{self, LogEntry, SetupOptions, SetupOutcome, SetupReport};
use crate::{validate, DataProcessing, DocStore, Error, EventStore, ProfileStore, Result};

const BACKEND: &str = "memory";
/// The entities named in conflicts and not-found errors, as the MongoDB backend names them.
const PROFILE: &str = crate::model::PROFILE_ENTITY;
const EVENT: &str = crate::model::EVENT_ENTITY;

/// The in-memory document store. Cheap to clone: clones share the same data.
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
#[derive(Clone, Default)]
pub struct MemoryDocStore {
    inner: Arc<RwLock<Inner>>,
}

impl std::fmt::Debug for MemoryDocStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryDocStore").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    profiles: Vec<ProfileDocument>,
    by_username: HashMap<String, usize>,
    by_email: HashMap<String, usize>,
    by_user_id: HashMap<String, usize>,
    events: Vec<Event>,
    /// Every event's `_id`, so a caller-chosen id that is taken is a conflict, as it is on
    /// MongoDB's `_id` index (about 16-30 bytes per event).
    event_ids: HashSet<ObjectId>,
    logs: VecDeque<LogEntry>,
    analytics: Vec<AnalyticsSnapshot>,
    /// The log retention applied by the last setup (`None` before the first setup).
    applied_retention: Option<Duration>,
    /// [`DocStore::claim_marker`]'s markers.
    markers: HashSet<String>,
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
        Ok(id)
    }

    fn profile_mut(&mut self, username: &str) -> Result<&mut ProfileDocument> {
        validate::check_name("username", username)?;
        self.by_username
            .get(username)
            .and_then(|&i| self.profiles.get_mut(i))
            .ok_or_else(|| Error::not_found(PROFILE, username))
    }

    /// Stores a validated event whose id is set; [`Error::Conflict`] if the id is taken.
    fn push_event(&mut self, event: Event, id: ObjectId) -> Result<ObjectId> {
        if !self.event_ids.insert(id) {
            return Err(Error::conflict(
                EVENT,
                "_id",
                format!("event _id {id} exists"),
            ));
        }
        self.events.push(event);
        Ok(id)
    }

    fn events_in(&self, window: TimeWindow) -> impl Iterator<Item = &Event> {
        self.events
            .iter()
            .filter(move |e| window.contains(e.timestamp))
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

impl MemoryDocStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryDocStore::default()
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
        let count = metrics.event_counts.entry(a.event_type).or_default();
        *count = count.saturating_add(1);
        metrics.applied_events.push(a.event_id);
        let excess = metrics
            .applied_events
            .len()
            .saturating_sub(crate::MAX_APPLIED_EVENTS);
        metrics.applied_events.drain(..excess);
        if let Some(interest) = a.interest {
            if !profile.profile.interests.contains(&interest) {
                profile.profile.interests.push(interest);
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
                .events
                .iter()
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
        inner.events.reserve(valid.len());
        inner.event_ids.reserve(valid.len());
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
            .events
            .iter()
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
            .events
            .iter()
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
        // Events are never removed, so positions stay valid; only the matching positions are
        // held (4 bytes each), and each batch is cloned under a short read lock.
        let positions: Vec<u32> = {
            let inner = self.inner.read().await;
            let mut positions: Vec<u32> = inner
                .events
                .iter()
                .enumerate()
                .filter(|(_, e)| filter.matches(e))
                .filter_map(|(i, _)| u32::try_from(i).ok())
                .collect();
            positions.sort_by_key(|&i| inner.events.get(i as usize).map(|e| (e.timestamp, e.id)));
            positions
        };
        let store = self.inner.clone();
        let chunks: Vec<Vec<u32>> = positions.chunks(batch_size).map(<[u32]>::to_vec).collect();
        Ok(stream::iter(chunks)
            .then(move |chunk| {
                let store = store.clone();
                async move {
                    let inner = store.read().await;
                    Ok(chunk
                        .iter()
                        .filter_map(|&i| inner.events.get(i as usize).cloned())
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
        Ok(self.inner.write().await.markers.insert(key.to_owned()))
    }

    async fn release_marker(&self, key: &str) -> Result<bool> {
        validate::check_name("key", key)?;
        Ok(self.inner.write().await.markers.remove(key))
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
