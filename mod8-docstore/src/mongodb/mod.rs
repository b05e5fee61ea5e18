//! The MongoDB backend, on the official `mongodb` driver (any server speaking MongoDB's wire
//! protocol).
//!
//! Analytics run as aggregation pipelines and inserts as unordered bulk writes; the exact
//! documents sent are built in `commands` and `schema` (unit-tested without a server). Errors
//! are mapped in one place (`error_map`): duplicate keys become [`Error::Conflict`], a server
//! lacking a feature (`$geoNear`, TTL or `2dsphere` indexes, `$jsonSchema`, some operators)
//! becomes [`Error::Unsupported`] with the server's message, never a silent fallback.
//!
//! # Activity counts
//!
//! [`EventStore::activity_summary`] reads per-user, per-month bucket documents in the
//! `user_activity` collection, which logging an event upserts; a summary is a handful of reads
//! by `_id`, index lookups on MongoDB.
//!
//! # Transactions and change streams
//!
//! At connect the store asks the server `hello` what it is ([`Capabilities::from_hello`]):
//! only a replica set (or a sharded cluster) has multi-document transactions and change
//! streams. With transactions, [`EventStore::log_event`] and [`EventStore::log_event_once`]
//! insert the event and update its activity bucket in one transaction (retried whole on a
//! transient transaction error, such as two writers updating one bucket), so the log and the
//! counts never disagree; without, the event is inserted first and counted just after, as
//! documented on those methods. The other writes need none: each is one document update, or
//! (bulk inserts) reports its failures per document. With change streams
//! [`DocStore::watch_events`] follows the event log; without, it is [`Error::Unsupported`].
//!
//! # FerretDB 1.x
//!
//! Probed on v1.24 (SQLite and PostgreSQL backends). [`MongoDocStore::is_ferretdb`] tells it
//! apart at connect.
//!
//! - It has no `$jsonSchema` validators or `collMod`, no TTL or `2dsphere` indexes, no
//!   `$geoNear`, `$min`/`$max` accumulators, `$lookup` or date operators: the calls that need
//!   them fail with [`Error::Unsupported`] carrying the server's message, and setup reports
//!   those steps as [`SetupOutcome::Unsupported`](crate::SetupOutcome::Unsupported).
//! - It computes only the first accumulator of a `$group` correctly, so there each
//!   multi-accumulator `$group` runs as one pipeline per accumulator, merged by `_id` on the
//!   client.
//! - It uses no index for any filter, not even `_id` (its PostgreSQL backend filters with
//!   `@>`, its SQLite backend indexes a different expression than it queries): reading a
//!   user's events scans them all, and each activity bucket read scans the buckets — one per
//!   user and month, far fewer than the events.
//! - It applies `$inc` without isolation (concurrent increments of one document are lost), so
//!   there the store serialises activity bucket updates per bucket — within one process only;
//!   two processes logging events of one user at once can lose counts.
//! - It is a standalone server (no `setName` in `hello`): no transactions, no change streams.
//! - Without TTL indexes, expired log entries are not deleted; [`DocStore::recent_logs`] still
//!   leaves them out.

mod activity;
mod bulk;
mod commands;
mod convert;
mod error_map;
mod ferretdb;
mod schema;
mod setup;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bson::{doc, oid::ObjectId, Bson, Document};
use chrono::Utc;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};

use self::bulk::insert_unordered;
use self::convert::{as_f64, as_u64, from_doc, to_doc};
use self::error_map::{map, BACKEND};
use self::ferretdb::{grouped, name_profile_key, Workarounds};
use crate::model::{
    event_id_for_message, purchases_from_sums, ActivitySummary, ActivityWindow, AnalyticsSnapshot,
    BulkFailure, BulkInsertResult, CategoryPurchases, CohortMetrics, DayRange, Event, EventFilter,
    EventLogged, EventTypeCount, GeoPoint, MetricsUpdate, NearbyEvent, ProfileDocument,
    Subscription, TimeWindow, UserEventCounts, PROFILE_ENTITY,
};
use crate::setup::{self as names, LogEntry, SetupOptions, SetupReport};
use crate::{
    validate, Capabilities, DataProcessing, DocStore, DocStoreConfig, Error, EventStore,
    ProfileStore, Result,
};

/// How long a transaction is run again after transient transaction errors (write conflicts
/// between writers of one activity bucket) before the last error is returned; MongoDB's own
/// `withTransaction` helpers allow 120 s.
const TRANSACTION_RETRY_LIMIT: Duration = Duration::from_secs(30);
/// How many times a commit whose outcome is unknown is sent again.
const COMMIT_ATTEMPTS: u32 = 5;

/// The MongoDB document store. Cheap to clone (the driver's client is a handle to a pool).
#[derive(Clone, Debug)]
pub struct MongoDocStore {
    db: Database,
    events: Collection<Event>,
    profiles: Collection<ProfileDocument>,
    logs: Collection<LogEntry>,
    analytics: Collection<AnalyticsSnapshot>,
    activity: Collection<Document>,
    markers: Collection<Document>,
    /// What the server needs worked around (FerretDB 1.x; see the module docs).
    workarounds: Workarounds,
    /// Transactions and change streams, from `hello` at connect.
    capabilities: Capabilities,
    log_retention: Arc<RwLock<Duration>>,
}

impl MongoDocStore {
    /// Connects to the server at `config.url` and uses `config.database` (else the URL's path,
    /// else [`crate::DEFAULT_DATABASE`]). [`Error::Validation`] naming `url` for a URL that is
    /// not `mongodb://` or `mongodb+srv://`; [`Error::Unavailable`] when the server does not
    /// answer.
    pub async fn connect(config: &DocStoreConfig) -> Result<Self> {
        let url = config.url.trim();
        if !(url.starts_with("mongodb://") || url.starts_with("mongodb+srv://")) {
            return Err(Error::validation(
                "url",
                "expected a mongodb:// or mongodb+srv:// URL",
            ));
        }
        let mut options = ClientOptions::parse(url)
            .await
            .map_err(|e| map(e, "parse the MongoDB URL"))?;
        if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(Duration::from_secs(10));
        }
        let name = config
            .database
            .clone()
            .or_else(|| options.default_database.clone())
            .unwrap_or_else(|| crate::DEFAULT_DATABASE.to_owned());
        let client = Client::with_options(options).map_err(|e| map(e, "create the client"))?;
        Self::from_database(client.database(&name)).await
    }

    /// Uses an existing driver database handle (asks the server what it is).
    pub async fn from_database(db: Database) -> Result<Self> {
        let workarounds = Workarounds::detect(&db).await?;
        let capabilities = detect_capabilities(&db).await?;
        Ok(MongoDocStore {
            events: db.collection(names::EVENTS),
            profiles: db.collection(names::PROFILES),
            logs: db.collection(names::LOGS),
            analytics: db.collection(names::ANALYTICS),
            activity: db.collection(activity::ACTIVITY),
            markers: db.collection(names::MARKERS),
            db,
            workarounds,
            capabilities,
            log_retention: Arc::new(RwLock::new(SetupOptions::default().log_retention)),
        })
    }

    /// Whether the server is FerretDB (which lacks some features; see the module docs).
    pub fn is_ferretdb(&self) -> bool {
        self.workarounds.is_ferretdb()
    }

    /// The driver's database handle, for what this crate does not cover.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Drops the whole database (tests and demos).
    pub async fn drop_database(&self) -> Result<()> {
        self.db.drop().await.map_err(|e| map(e, "drop database"))
    }

    fn retention(&self) -> Duration {
        match self.log_retention.read() {
            Ok(r) => *r,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Inserts `event` and counts it: in one transaction where the server has them (see the
    /// module docs), else the insert and then the count. A failure says whether the event
    /// stayed in the log ([`LogFailure`]); a duplicate `_id` is [`Error::Conflict`].
    async fn insert_counted(
        &self,
        event: &Event,
        operation: &str,
    ) -> std::result::Result<(), LogFailure> {
        if !self.capabilities.transactions {
            self.events
                .insert_one(event)
                .await
                .map_err(|e| LogFailure::NotLogged(map(e, operation)))?;
            return self
                .count_activity(std::slice::from_ref(event))
                .await
                .map_err(LogFailure::LoggedNotCounted);
        }
        // Every failure below aborts the transaction: nothing stays in the log.
        let updates = activity::bucket_updates(std::slice::from_ref(event));
        let mut session = self
            .db
            .client()
            .start_session()
            .await
            .map_err(|e| LogFailure::NotLogged(map(e, operation)))?;
        let started = std::time::Instant::now();
        let mut attempt: u64 = 0;
        loop {
            match self
                .insert_counted_once(&mut session, event, &updates, operation)
                .await
            {
                Ok(()) => return Ok(()),
                Err(Failed::Driver(e))
                    if e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR)
                        && started.elapsed() < TRANSACTION_RETRY_LIMIT =>
                {
                    // A short, growing pause, so that writers conflicting on one bucket do
                    // not all retry at once.
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(attempt.min(20) * 5)).await;
                }
                Err(Failed::Driver(e)) => return Err(LogFailure::NotLogged(map(e, operation))),
                Err(Failed::Mapped(e)) => return Err(LogFailure::NotLogged(e)),
            }
        }
    }

    /// One run of [`MongoDocStore::insert_counted`]'s transaction; aborted on any failure.
    async fn insert_counted_once(
        &self,
        session: &mut mongodb::ClientSession,
        event: &Event,
        updates: &[Document],
        operation: &str,
    ) -> std::result::Result<(), Failed> {
        session.start_transaction().await.map_err(Failed::Driver)?;
        let written: std::result::Result<Option<Error>, mongodb::error::Error> = async {
            self.events.insert_one(event).session(&mut *session).await?;
            let reply = self
                .db
                .run_command(
                    doc! { "update": activity::ACTIVITY, "updates": updates, "ordered": false },
                )
                .session(&mut *session)
                .await?;
            Ok(bucket_write_error(&reply, operation))
        }
        .await;
        let failure = match written {
            Ok(None) => None,
            Ok(Some(error)) => Some(Failed::Mapped(error)),
            Err(e) => Some(Failed::Driver(e)),
        };
        if let Some(failure) = failure {
            let _ = session.abort_transaction().await;
            return Err(failure);
        }
        // A commit whose outcome is unknown may be retried as it is (the server applies it
        // once); a transient error means it did not apply, and the caller runs it all again.
        let mut commits = 1;
        loop {
            match session.commit_transaction().await {
                Ok(()) => return Ok(()),
                Err(e)
                    if e.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT)
                        && commits < COMMIT_ATTEMPTS =>
                {
                    commits += 1;
                }
                Err(e) => return Err(Failed::Driver(e)),
            }
        }
    }

    /// Upserts the activity buckets (see `activity`) of events already in the log.
    async fn count_activity<'a>(&self, events: impl IntoIterator<Item = &'a Event>) -> Result<()> {
        let updates = activity::bucket_updates(events);
        match self.workarounds.bucket_locks() {
            None => {
                for chunk in updates.chunks(500) {
                    self.send_bucket_updates(chunk).await?;
                }
            }
            Some(locks) => {
                for update in &updates {
                    let id = update
                        .get_document("q")
                        .and_then(|q| q.get_str("_id"))
                        .unwrap_or_default();
                    let _serialised = locks.lock(id).await;
                    self.send_bucket_updates(std::slice::from_ref(update))
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn send_bucket_updates(&self, updates: &[Document]) -> Result<()> {
        const OPERATION: &str = "count activity";
        let reply = self
            .command(
                doc! { "update": activity::ACTIVITY, "updates": updates, "ordered": false },
                OPERATION,
            )
            .await?;
        match bucket_write_error(&reply, OPERATION) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    async fn command(&self, cmd: Document, operation: &str) -> Result<Document> {
        self.db
            .run_command(cmd)
            .await
            .map_err(|e| map(e, operation))
    }

    async fn aggregate<T: Into<String>>(
        &self,
        collection: &str,
        pipeline: Vec<Document>,
        operation: T,
    ) -> Result<Vec<Document>> {
        let operation = operation.into();
        self.db
            .collection::<Document>(collection)
            .aggregate(pipeline)
            .await
            .map_err(|e| map(e, &operation))?
            .try_collect()
            .await
            .map_err(|e| map(e, &operation))
    }
}

/// Why logging an event failed, and whether the event is in the log all the same.
enum LogFailure {
    /// Nothing was written (or the transaction was aborted).
    NotLogged(Error),
    /// The event is in the log but its counting failed (no transactions).
    LoggedNotCounted(Error),
}

impl From<LogFailure> for Error {
    fn from(failure: LogFailure) -> Self {
        match failure {
            LogFailure::NotLogged(e) | LogFailure::LoggedNotCounted(e) => e,
        }
    }
}

/// Why a run of a transaction failed: a driver error (whose labels say whether to run it
/// again) or a write error already mapped.
enum Failed {
    Driver(mongodb::error::Error),
    Mapped(Error),
}

/// The first write error in the reply to an `update` command of activity buckets, mapped.
fn bucket_write_error(reply: &Document, operation: &str) -> Option<Error> {
    let errors = reply.get_array("writeErrors").ok()?;
    let Some(Bson::Document(first)) = errors.first() else {
        return None;
    };
    let code = first.get_i32("code").unwrap_or_default();
    let message = first.get_str("errmsg").unwrap_or("write error");
    let info = first.get_document("errInfo").ok();
    Some(error_map::classify_write(code, message, info, operation))
}

/// Asks the server `hello` (`isMaster` on servers older than MongoDB 4.4.2) what it can do.
async fn detect_capabilities(db: &Database) -> Result<Capabilities> {
    let reply = match db.run_command(doc! { "hello": 1 }).await {
        Ok(reply) => reply,
        Err(_) => db
            .run_command(doc! { "isMaster": 1 })
            .await
            .map_err(|e| map(e, "hello"))?,
    };
    Ok(Capabilities::from_hello(&reply))
}

#[async_trait]
impl ProfileStore for MongoDocStore {
    async fn insert_profile(&self, profile: ProfileDocument) -> Result<ObjectId> {
        let mut profile = validate::profile(profile)?;
        let id = *profile.id.get_or_insert_with(ObjectId::new);
        match self.profiles.insert_one(&profile).await {
            Ok(_) => Ok(id),
            Err(e) => Err(name_profile_key(self, map(e, "insert profile"), &profile).await),
        }
    }

    async fn insert_profiles(&self, profiles: Vec<ProfileDocument>) -> Result<BulkInsertResult> {
        let mut result = BulkInsertResult::default();
        let (mut docs, mut ids, mut positions) = (Vec::new(), Vec::new(), Vec::new());
        for (index, profile) in profiles.into_iter().enumerate() {
            match validate::profile(profile) {
                Ok(mut p) => {
                    ids.push(*p.id.get_or_insert_with(ObjectId::new));
                    positions.push(index);
                    docs.push(p);
                }
                Err(error) => result.failures.push(BulkFailure { index, error }),
            }
        }
        // The unique keys of each profile by input index, to name a conflict's key.
        let keys: HashMap<usize, ProfileDocument> = positions
            .iter()
            .zip(&docs)
            .map(|(&index, p)| {
                let mut keys = ProfileDocument::new(&p.user_id, &p.username, &p.email);
                keys.id = p.id;
                (index, keys)
            })
            .collect();
        insert_unordered(
            &self.profiles,
            docs,
            ids,
            positions,
            &mut result,
            "insert profiles",
        )
        .await?;
        for mut failure in std::mem::take(&mut result.failures) {
            if let Some(profile) = keys.get(&failure.index) {
                failure.error = name_profile_key(self, failure.error, profile).await;
            }
            result.failures.push(failure);
        }
        Ok(result)
    }

    async fn profile_by_username(&self, username: &str) -> Result<Option<ProfileDocument>> {
        validate::check_name("username", username)?;
        self.profiles
            .find_one(doc! { "username": username })
            .await
            .map_err(|e| map(e, "find profile"))
    }

    async fn find_profiles_by_interest(
        &self,
        interest: &str,
        limit: usize,
    ) -> Result<Vec<ProfileDocument>> {
        validate::check_name("interest", interest)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.profiles
            .find(doc! { "profile.interests": interest })
            .sort(doc! { "username": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(|e| map(e, "find profiles by interest"))?
            .try_collect()
            .await
            .map_err(|e| map(e, "find profiles by interest"))
    }

    async fn add_subscription(&self, username: &str, subscription: Subscription) -> Result<()> {
        validate::check_name("username", username)?;
        let subscription = to_doc(&validate::subscription(subscription)?)?;
        let r = self
            .profiles
            .update_one(
                doc! { "username": username },
                doc! { "$push": { "subscriptions": subscription } },
            )
            .await
            .map_err(|e| map(e, "add subscription"))?;
        if r.matched_count == 0 {
            return Err(Error::not_found(PROFILE_ENTITY, username));
        }
        Ok(())
    }

    async fn update_metrics(&self, username: &str, update: MetricsUpdate) -> Result<()> {
        validate::check_name("username", username)?;
        validate::metrics_update(&update)?;
        let mut change = doc! { "$inc": {
            "metrics.profile_views": update.profile_views,
            "metrics.content_views": update.content_views,
        }};
        if let Some(score) = update.engagement_score {
            change.insert("$set", doc! { "metrics.engagement_score": score });
        }
        let r = self
            .profiles
            .update_one(doc! { "username": username }, change)
            .await
            .map_err(|e| map(e, "update metrics"))?;
        if r.matched_count == 0 {
            return Err(Error::not_found(PROFILE_ENTITY, username));
        }
        Ok(())
    }

    async fn apply_activity(&self, user_id: &str, a: crate::ActivityUpdate) -> Result<bool> {
        validate::check_name("user_id", user_id)?;
        validate::activity_update(&a)?;
        // One update of one document (atomic): matched only while the id is not among the
        // applied ones, it adds the deltas and appends the id in the same step. FerretDB 1.x
        // applies updates as unguarded read-modify-writes: there the updates of one profile
        // are serialised (within this process, as activity buckets are).
        let _guard = match self.workarounds.bucket_locks() {
            Some(locks) => Some(locks.lock(&format!("profile:{user_id}")).await),
            None => None,
        };
        let counted = format!("metrics.event_counts.{}", a.event_type);
        // The common case, a type the profile already counts: one update, matched only then.
        let known = doc! { "user_id": user_id, counted.as_str(): { "$exists": true } };
        let applied = if self.apply_counted(known, &counted, &a).await? {
            true
        } else {
            // Not applied: the type is new to this profile, the event was applied before, or
            // there is no profile. One read tells which (every filtered read and update is a
            // scan of the collection on FerretDB 1.x, so each one saved counts).
            let profile = self
                .profiles
                .find_one(doc! { "user_id": user_id })
                .await
                .map_err(|e| map(e, "apply activity"))?
                .ok_or_else(|| Error::not_found(PROFILE_ENTITY, user_id))?;
            if profile.metrics.applied_events.contains(&a.event_id) {
                false
            } else {
                // Counted by name while there is room, else under `other`. (Two writers
                // adding new types at once on MongoDB may both see room: the bound is then
                // exceeded by at most the number of such writers.)
                let key = if profile.metrics.event_counts.len() < crate::MAX_EVENT_TYPES
                    || profile.metrics.event_counts.contains_key(&a.event_type)
                {
                    counted
                } else {
                    format!("metrics.event_counts.{}", crate::OTHER_EVENT_TYPE)
                };
                if self
                    .apply_counted(doc! { "user_id": user_id }, &key, &a)
                    .await?
                {
                    true
                } else {
                    // Between the read and the update another writer applied it, or the
                    // profile went away.
                    let exists = self
                        .profiles
                        .count_documents(doc! { "user_id": user_id })
                        .await
                        .map_err(|e| map(e, "apply activity"))?;
                    if exists == 0 {
                        return Err(Error::not_found(PROFILE_ENTITY, user_id));
                    }
                    false
                }
            }
        };
        if applied && a.interest.is_some() {
            // `$addToSet` cannot bound the array: past MAX_PROFILE_INTERESTS the oldest goes.
            // One interest is added at a time, so one `$pop` restores the bound; the filter
            // (the element past the bound exists) makes it a no-op otherwise.
            let past = format!("profile.interests.{}", crate::MAX_PROFILE_INTERESTS);
            self.profiles
                .update_one(
                    doc! { "user_id": user_id, past.as_str(): { "$exists": true } },
                    doc! { "$pop": { "profile.interests": -1 } },
                )
                .await
                .map_err(|e| map(e, "apply activity"))?;
        }
        Ok(applied)
    }
}

impl MongoDocStore {
    /// Applies `a` counting it under the field `counted` to the profile matching `filter`
    /// whose applied ids do not include `a`'s, in one update: whether one matched (and so was
    /// applied).
    async fn apply_counted(
        &self,
        filter: Document,
        counted: &str,
        a: &crate::ActivityUpdate,
    ) -> Result<bool> {
        let slice = -i32::try_from(crate::MAX_APPLIED_EVENTS).unwrap_or(i32::MAX);
        let mut change = doc! {
            "$inc": {
                "metrics.engagement_score": a.score,
                "metrics.content_views": a.content_views,
                counted: 1_i64,
            },
            "$push": { "metrics.applied_events": { "$each": [&a.event_id], "$slice": slice } },
        };
        if let Some(interest) = &a.interest {
            change.insert("$addToSet", doc! { "profile.interests": interest });
        }
        let mut guarded = filter;
        guarded.insert("metrics.applied_events", doc! { "$ne": &a.event_id });
        let r = self
            .profiles
            .update_one(guarded, change)
            .await
            .map_err(|e| map(e, "apply activity"))?;
        Ok(r.matched_count == 1)
    }
}

#[async_trait]
impl EventStore for MongoDocStore {
    async fn log_event(&self, event: Event) -> Result<ObjectId> {
        let mut event = validate::event(event)?;
        let id = *event.id.get_or_insert_with(ObjectId::new);
        self.insert_counted(&event, "log event").await?;
        Ok(id)
    }

    async fn log_event_once(&self, message_id: &str, event: Event) -> Result<EventLogged> {
        let mut event = validate::event(event)?;
        validate::check_name("message_id", message_id)?;
        let id = event_id_for_message(message_id);
        event.id = Some(id);
        event.message_id = Some(message_id.to_owned());
        match self.insert_counted(&event, "log event").await {
            Ok(()) => Ok(EventLogged { id, inserted: true }),
            // Logged by this call: a conflict from counting is no repeat of the message.
            Err(LogFailure::LoggedNotCounted(error)) => Err(error),
            Err(LogFailure::NotLogged(error)) => {
                if !matches!(error, Error::Conflict { .. }) {
                    return Err(error);
                }
                let stored = self
                    .events
                    .find_one(doc! { "_id": id })
                    .await
                    .map_err(|e| map(e, "find event"))?;
                match stored {
                    Some(s) if s.message_id.as_deref() == Some(message_id) => Ok(EventLogged {
                        id,
                        inserted: false,
                    }),
                    _ => Err(error),
                }
            }
        }
    }

    async fn log_events(&self, events: Vec<Event>) -> Result<BulkInsertResult> {
        let mut result = BulkInsertResult::default();
        let n = events.len();
        let (mut docs, mut ids, mut positions) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (index, event) in events.into_iter().enumerate() {
            match validate::event(event) {
                Ok(mut e) => {
                    ids.push(*e.id.get_or_insert_with(ObjectId::new));
                    positions.push(index);
                    docs.push(e);
                }
                Err(error) => result.failures.push(BulkFailure { index, error }),
            }
        }
        // Which of the valid events land is known only after the insert; count those (kept
        // without their payloads, which the counts do not need). By input position, not by
        // id: two events in one batch may carry the same caller-chosen id, and only the first
        // lands.
        let logged: Vec<(usize, Event)> = docs
            .iter()
            .zip(&positions)
            .map(|(e, &index)| {
                let event = Event {
                    id: e.id,
                    user_id: e.user_id.clone(),
                    event_type: e.event_type.clone(),
                    timestamp: e.timestamp,
                    metadata: None,
                    geo: None,
                    session_info: None,
                    message_id: None,
                };
                (index, event)
            })
            .collect();
        insert_unordered(
            &self.events,
            docs,
            ids,
            positions,
            &mut result,
            "log events",
        )
        .await?;
        let failed: HashSet<usize> = result.failures.iter().map(|f| f.index).collect();
        let logged: Vec<&Event> = logged
            .iter()
            .filter(|(index, _)| !failed.contains(index))
            .map(|(_, e)| e)
            .collect();
        self.count_activity(logged).await?;
        Ok(result)
    }

    async fn event_distribution(&self, window: TimeWindow) -> Result<Vec<EventTypeCount>> {
        let rows = grouped(
            self,
            names::EVENTS,
            commands::event_distribution(window),
            "event distribution ($group)",
        )
        .await?;
        let mut out: Vec<EventTypeCount> = rows
            .iter()
            .map(|d| EventTypeCount {
                event_type: d.get_str("_id").unwrap_or_default().to_owned(),
                count: as_u64(d.get("count")),
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
        // Two disjoint parts split by the (immutable) timestamp, so the ids always match the
        // counted recent events: the older events counted on the server, the recent ones
        // streamed (type and message id only) and counted here.
        let older = grouped(
            self,
            names::EVENTS,
            commands::user_older_event_counts(user_id, recent_since),
            "user event counts ($group)",
        )
        .await?;
        let mut counts: HashMap<String, u64> = older
            .iter()
            .map(|d| {
                (
                    d.get_str("_id").unwrap_or_default().to_owned(),
                    as_u64(d.get("count")),
                )
            })
            .collect();
        let mut recent_ids = Vec::new();
        let mut cursor = self
            .db
            .collection::<Document>(names::EVENTS)
            .find(commands::user_recent_events(user_id, recent_since))
            .projection(doc! { "_id": 0, "event_type": 1, "message_id": 1 })
            .await
            .map_err(|e| map(e, "user event counts (recent events)"))?;
        while let Some(d) = cursor
            .try_next()
            .await
            .map_err(|e| map(e, "user event counts (recent events)"))?
        {
            let event_type = d.get_str("event_type").unwrap_or_default();
            *counts.entry(event_type.to_owned()).or_default() += 1;
            if let Ok(id) = d.get_str("message_id") {
                recent_ids.push(id.to_owned());
            }
        }
        Ok(UserEventCounts::sorted(counts, recent_ids))
    }

    async fn user_activity(&self, window: TimeWindow, top: usize) -> Result<Vec<ActivityWindow>> {
        if top == 0 {
            return Ok(Vec::new());
        }
        let rows = grouped(
            self,
            names::EVENTS,
            commands::user_activity(window, top),
            "user activity ($min/$max in $group)",
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for d in &rows {
            let date = |k: &str| {
                d.get_datetime(k)
                    .map(|t| t.to_chrono())
                    .map_err(|e| Error::backend(BACKEND, e))
            };
            out.push(ActivityWindow {
                user_id: d.get_str("_id").unwrap_or_default().to_owned(),
                events: as_u64(d.get("events")),
                first_seen: date("first_seen")?,
                last_seen: date("last_seen")?,
            });
        }
        out.sort_by(|a, b| {
            b.events
                .cmp(&a.events)
                .then_with(|| a.user_id.cmp(&b.user_id))
        });
        out.truncate(top);
        Ok(out)
    }

    async fn purchase_analytics(&self, window: TimeWindow) -> Result<Vec<CategoryPurchases>> {
        let rows = grouped(
            self,
            names::EVENTS,
            commands::purchase_analytics(window),
            "purchase analytics ($group)",
        )
        .await?;
        Ok(purchases_from_sums(rows.iter().map(|d| {
            (
                d.get_str("_id").ok().map(str::to_owned),
                as_u64(d.get("purchases")),
                as_f64(d.get("revenue")),
            )
        })))
    }

    async fn activity_summary(&self, user_id: &str, days: DayRange) -> Result<ActivitySummary> {
        validate::activity_query(user_id, &days)?;
        let mut summary = ActivitySummary {
            user_id: user_id.to_owned(),
            ..ActivitySummary::default()
        };
        // One read by `_id` per month, all in flight at once.
        let reads = activity::bucket_ids(user_id, &days)
            .into_iter()
            .map(|id| async move { self.activity.find_one(doc! { "_id": id }).await });
        let buckets = futures::future::try_join_all(reads)
            .await
            .map_err(|e| map(e, "read activity"))?;
        for bucket in buckets.iter().flatten() {
            activity::add_bucket(&mut summary, bucket, &days);
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
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = self
            .aggregate(
                names::EVENTS,
                commands::events_near(point, max_distance_m, limit),
                "$geoNear",
            )
            .await?;
        rows.into_iter()
            .map(|mut d| {
                let distance_m = as_f64(d.get("distance_m"));
                d.remove("distance_m");
                Ok(NearbyEvent {
                    event: from_doc(&d)?,
                    distance_m,
                })
            })
            .collect()
    }
}

#[async_trait]
impl DataProcessing for MongoDocStore {
    async fn cohort_metrics(&self, activity: TimeWindow) -> Result<Vec<CohortMetrics>> {
        let rows = grouped(
            self,
            names::PROFILES,
            commands::cohort_metrics(activity),
            "cohort metrics ($dateToString, $lookup)",
        )
        .await?;
        let mut out: Vec<CohortMetrics> = rows
            .iter()
            .map(|d| {
                CohortMetrics::new(
                    d.get_str("_id").unwrap_or_default().to_owned(),
                    as_u64(d.get("users")),
                    as_u64(d.get("active_users")),
                    as_u64(d.get("events")),
                )
            })
            .collect();
        out.sort_by(|a, b| a.month.cmp(&b.month));
        Ok(out)
    }

    async fn export_events(
        &self,
        filter: EventFilter,
        batch_size: usize,
    ) -> Result<BoxStream<'static, Result<Vec<Event>>>> {
        validate::event_filter(&filter)?;
        let batch_size = batch_size.max(1);
        let cursor = self
            .events
            .find(commands::export_filter(&filter))
            .sort(doc! { "timestamp": 1, "_id": 1 })
            .batch_size(u32::try_from(batch_size).unwrap_or(u32::MAX))
            .await
            .map_err(|e| map(e, "export events"))?;
        Ok(cursor
            .map(|r| r.map_err(|e| map(e, "export events")))
            .chunks(batch_size)
            .map(|chunk| chunk.into_iter().collect::<Result<Vec<Event>>>())
            .boxed())
    }

    async fn save_analytics(&self, name: &str, result: serde_json::Value) -> Result<ObjectId> {
        let snapshot = validate::snapshot(name, result)?;
        let id = snapshot.id.unwrap_or_else(ObjectId::new);
        self.analytics
            .insert_one(&snapshot)
            .await
            .map_err(|e| map(e, "save analytics"))?;
        Ok(id)
    }

    async fn latest_analytics(&self, name: &str) -> Result<Option<AnalyticsSnapshot>> {
        validate::check_name("name", name)?;
        self.analytics
            .find_one(doc! { "name": name })
            .sort(doc! { "computed_at": -1, "_id": -1 })
            .await
            .map_err(|e| map(e, "latest analytics"))
    }
}

#[async_trait]
impl DocStore for MongoDocStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn watch_events(&self) -> Result<BoxStream<'static, Result<Event>>> {
        const OPERATION: &str = "watch_events (change streams)";
        if !self.capabilities.change_streams {
            return Err(Error::unsupported(OPERATION, BACKEND));
        }
        let changes = self
            .events
            .watch()
            .pipeline([doc! { "$match": { "operationType": "insert" } }])
            .await
            .map_err(|e| map(e, OPERATION))?;
        Ok(changes
            .filter_map(|change| async move {
                match change {
                    Ok(change) => change.full_document.map(Ok),
                    Err(e) => Some(Err(map(e, OPERATION))),
                }
            })
            .boxed())
    }

    async fn setup(&self, options: &SetupOptions) -> Result<SetupReport> {
        let report = setup::run(&self.db, options).await?;
        match self.log_retention.write() {
            Ok(mut r) => *r = options.log_retention,
            Err(poisoned) => *poisoned.into_inner() = options.log_retention,
        }
        Ok(report)
    }

    async fn append_log(&self, entry: LogEntry) -> Result<ObjectId> {
        validate::check_name("level", &entry.level)?;
        let mut entry = entry;
        entry.created_at = crate::model::truncate_to_millis(entry.created_at);
        let id = *entry.id.get_or_insert_with(ObjectId::new);
        self.logs
            .insert_one(&entry)
            .await
            .map_err(|e| map(e, "append log"))?;
        Ok(id)
    }

    async fn claim_marker(&self, key: &str) -> Result<bool> {
        validate::check_name("key", key)?;
        let marker = doc! { "_id": key, "at": bson::DateTime::now() };
        match self.markers.insert_one(marker).await {
            Ok(_) => Ok(true),
            Err(e) => match map(e, "claim marker") {
                Error::Conflict { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn release_marker(&self, key: &str) -> Result<bool> {
        validate::check_name("key", key)?;
        let r = self
            .markers
            .delete_one(doc! { "_id": key })
            .await
            .map_err(|e| map(e, "release marker"))?;
        Ok(r.deleted_count > 0)
    }

    async fn purge_markers(
        &self,
        prefix: &str,
        claimed_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64> {
        validate::check_marker_prefix(prefix)?;
        // An anchored regular expression of the literal prefix (metacharacters escaped).
        let pattern = format!("^{}", regex_escape(prefix));
        let r = self
            .markers
            .delete_many(doc! {
                "_id": { "$regex": pattern },
                "at": { "$lt": bson::DateTime::from_chrono(claimed_before) },
            })
            .await
            .map_err(|e| map(e, "purge markers"))?;
        Ok(r.deleted_count)
    }

    async fn recent_logs(&self, limit: usize) -> Result<Vec<LogEntry>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The TTL monitor deletes lazily (about once a minute), so expired entries are also
        // filtered out here; on servers without TTL indexes this filter is the only expiry.
        let cutoff = names::log_cutoff(Utc::now(), self.retention());
        self.logs
            .find(doc! { "created_at": { "$gte": bson::DateTime::from_chrono(cutoff) } })
            .sort(doc! { "created_at": -1, "_id": -1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(|e| map(e, "recent logs"))?
            .try_collect()
            .await
            .map_err(|e| map(e, "recent logs"))
    }
}

/// `text` with every regular-expression metacharacter escaped.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if "\\^$.|?*+()[]{}/-".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
