//! The MongoDB backend, on the official `mongodb` driver (any server speaking MongoDB's wire
//! protocol).
//!
//! Analytics run as aggregation pipelines and inserts as unordered bulk writes; the exact
//! documents sent are built in `commands` (unit-tested without a server). Errors are mapped in
//! one place (`error_map`): duplicate keys become [`Error::Conflict`], a server lacking a
//! feature (`$geoNear`, TTL or `2dsphere` indexes, `$jsonSchema`, some operators) becomes
//! [`Error::Unsupported`] with the server's message, never a silent fallback.
//!
//! FerretDB 1.x computes only the first accumulator of a `$group` correctly (the others come
//! back as zeros). On FerretDB (detected from `buildInfo` at connect) each multi-accumulator
//! `$group` therefore runs as one pipeline per accumulator, merged by `_id` on the client.

mod activity;
mod commands;
mod error_map;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bson::{doc, oid::ObjectId, Bson, Document};
use chrono::Utc;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use mongodb::error::ErrorKind;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};

use self::commands::Grouped;
use self::error_map::{map, BACKEND};
use crate::model::{
    purchases_from_sums, ActivitySummary, AnalyticsSnapshot, BulkFailure, BulkInsertResult,
    CategoryPurchases, CohortMetrics, DayRange, Event, EventFilter, EventTypeCount, GeoPoint,
    MetricsUpdate, NearbyEvent, Subscription, TimeWindow, UserActivity, UserProfile,
};
use crate::setup::{self, LogEntry, SetupOptions, SetupOutcome, SetupReport};
use crate::{validate, DataProcessing, DocStore, Error, EventStore, ProfileStore, Result};

/// Striped locks serialising activity bucket updates on FerretDB (see `bucket_locks`).
const BUCKET_LOCKS: usize = 64;

/// The MongoDB document store. Cheap to clone (the driver's client is a handle to a pool).
#[derive(Clone, Debug)]
pub struct MongoDocStore {
    db: Database,
    events: Collection<Event>,
    profiles: Collection<UserProfile>,
    logs: Collection<LogEntry>,
    analytics: Collection<AnalyticsSnapshot>,
    activity: Collection<Document>,
    /// On FerretDB 1.x, which applies `$inc` as an unguarded read-modify-write (concurrent
    /// increments of one document are lost), activity bucket updates are serialised per bucket
    /// through these striped locks; `None` on MongoDB, where `$inc` is atomic.
    bucket_locks: Option<Arc<[tokio::sync::Mutex<()>]>>,
    /// One accumulator per `$group` (FerretDB 1.x; see the module docs).
    split_groups: bool,
    log_retention: Arc<RwLock<Duration>>,
}

impl MongoDocStore {
    /// Connects to `url` and uses `database` (else the URL's path, else
    /// [`crate::DEFAULT_DATABASE`]). Fails with [`Error::Unavailable`] when the server does not
    /// answer.
    pub async fn connect(url: &str, database: Option<&str>) -> Result<Self> {
        let mut options = ClientOptions::parse(url)
            .await
            .map_err(|e| map(e, "parse the MongoDB URL"))?;
        if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(Duration::from_secs(10));
        }
        let name = database
            .map(str::to_owned)
            .or_else(|| options.default_database.clone())
            .unwrap_or_else(|| crate::DEFAULT_DATABASE.to_owned());
        let client = Client::with_options(options).map_err(|e| map(e, "create the client"))?;
        Self::from_database(client.database(&name)).await
    }

    /// Uses an existing driver database handle (asks the server what it is).
    pub async fn from_database(db: Database) -> Result<Self> {
        let info = db
            .run_command(doc! { "buildInfo": 1 })
            .await
            .map_err(|e| map(e, "buildInfo"))?;
        let split_groups = info.contains_key("ferretdbVersion");
        Ok(MongoDocStore {
            events: db.collection(setup::EVENTS),
            profiles: db.collection(setup::PROFILES),
            logs: db.collection(setup::LOGS),
            analytics: db.collection(setup::ANALYTICS),
            activity: db.collection(activity::ACTIVITY),
            bucket_locks: split_groups.then(|| {
                (0..BUCKET_LOCKS)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect()
            }),
            db,
            split_groups,
            log_retention: Arc::new(RwLock::new(SetupOptions::default().log_retention)),
        })
    }

    /// Whether the server is FerretDB (which lacks some features; see the module docs).
    pub fn is_ferretdb(&self) -> bool {
        self.split_groups
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

    /// Upserts the activity buckets (see `activity`) of events already in the log.
    async fn count_activity<'a>(&self, events: impl IntoIterator<Item = &'a Event>) -> Result<()> {
        let updates = activity::bucket_updates(events);
        match &self.bucket_locks {
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
                    let mut hasher = std::collections::hash_map::DefaultHasher::new();
                    std::hash::Hash::hash(id, &mut hasher);
                    let stripe = std::hash::Hasher::finish(&hasher) as usize % locks.len();
                    let _serialised = locks[stripe].lock().await;
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
        if let Ok(errors) = reply.get_array("writeErrors") {
            if let Some(Bson::Document(first)) = errors.first() {
                let code = first.get_i32("code").unwrap_or_default();
                let message = first.get_str("errmsg").unwrap_or("write error");
                let info = first.get_document("errInfo").ok();
                return Err(error_map::classify_write(code, message, info, OPERATION));
            }
        }
        Ok(())
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

    /// Runs a grouped pipeline (split per accumulator on FerretDB) and returns one document per
    /// group with `_id` and every accumulator.
    async fn grouped(
        &self,
        collection: &str,
        grouped: Grouped,
        operation: &str,
    ) -> Result<Vec<Document>> {
        let mut pipelines = grouped.pipelines(self.split_groups).into_iter();
        let Some(first) = pipelines.next() else {
            return Ok(Vec::new());
        };
        let mut rows = self.aggregate(collection, first, operation).await?;
        let mut at: HashMap<String, usize> = rows
            .iter()
            .enumerate()
            .map(|(i, d)| (group_key(d), i))
            .collect();
        for pipeline in pipelines {
            for row in self.aggregate(collection, pipeline, operation).await? {
                let key = group_key(&row);
                let i = match at.get(&key) {
                    Some(&i) => i,
                    None => {
                        rows.push(doc! { "_id": row.get("_id").cloned().unwrap_or(Bson::Null) });
                        at.insert(key, rows.len() - 1);
                        rows.len() - 1
                    }
                };
                if let Some(target) = rows.get_mut(i) {
                    for (k, v) in row {
                        if k != "_id" {
                            target.insert(k, v);
                        }
                    }
                }
            }
        }
        Ok(rows)
    }

    async fn setup_collection(
        &self,
        name: &str,
        validator: Option<Document>,
        existing: &HashMap<String, Document>,
        options: &SetupOptions,
        report: &mut SetupReport,
    ) -> Result<()> {
        match (existing.get(name), validator) {
            (None, None) => {
                self.command(commands::create_collection(name, None), "create collection")
                    .await?;
                report.push(setup::collection_target(name), SetupOutcome::Created);
            }
            (None, Some(v)) => {
                match self
                    .command(
                        commands::create_collection(name, Some(v)),
                        "$jsonSchema validator",
                    )
                    .await
                {
                    Ok(_) => {
                        report.push(setup::collection_target(name), SetupOutcome::Created);
                        report.push(setup::validator_target(name), SetupOutcome::Created);
                    }
                    Err(Error::Unsupported { message, .. }) => {
                        // Create it without the validator so the indexes can follow.
                        self.command(commands::create_collection(name, None), "create collection")
                            .await?;
                        report.push(setup::collection_target(name), SetupOutcome::Created);
                        unsupported(report, setup::validator_target(name), message, options)?;
                    }
                    Err(e) => return Err(e),
                }
            }
            (Some(_), None) => {
                report.push(setup::collection_target(name), SetupOutcome::Unchanged);
            }
            (Some(info), Some(v)) => {
                report.push(setup::collection_target(name), SetupOutcome::Unchanged);
                let current = info
                    .get_document("options")
                    .ok()
                    .and_then(|o| o.get_document("validator").ok());
                if current == Some(&v) {
                    report.push(setup::validator_target(name), SetupOutcome::Unchanged);
                } else {
                    match self
                        .command(commands::set_validator(name, v), "collMod validator")
                        .await
                    {
                        Ok(_) => report.push(setup::validator_target(name), SetupOutcome::Updated),
                        Err(Error::Unsupported { message, .. }) => {
                            unsupported(report, setup::validator_target(name), message, options)?
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    /// The collection's indexes by name, as the server describes them (`key`, `name`,
    /// `unique`, `expireAfterSeconds`, ...).
    async fn list_indexes(&self, collection: &str) -> Result<HashMap<String, Document>> {
        let indexes: Vec<Document> = self
            .db
            .collection::<Document>(collection)
            .list_indexes()
            .await
            .map_err(|e| map(e, "listIndexes"))?
            .with_type::<Document>()
            .try_collect()
            .await
            .map_err(|e| map(e, "listIndexes"))?;
        Ok(indexes
            .into_iter()
            .filter_map(|d| Some((d.get_str("name").ok()?.to_owned(), d)))
            .collect())
    }

    async fn setup_index(
        &self,
        index: &commands::IndexSpec,
        existing: &HashMap<String, Document>,
        options: &SetupOptions,
        report: &mut SetupReport,
    ) -> Result<()> {
        let target = setup::index_target(index.collection, index.name);
        let outcome = match existing.get(index.name) {
            None => SetupOutcome::Created,
            Some(current) => {
                let same_key =
                    current.get_document("key").ok() == index.spec.get_document("key").ok();
                let want_ttl = index.spec.get("expireAfterSeconds").and_then(as_i64);
                let have_ttl = current.get("expireAfterSeconds").and_then(as_i64);
                let want_unique = index.spec.get_bool("unique").unwrap_or(false);
                let have_unique = current.get_bool("unique").unwrap_or(false);
                if !same_key
                    || want_unique != have_unique
                    || want_ttl.is_some() != have_ttl.is_some()
                {
                    self.command(
                        commands::drop_index(index.collection, index.name),
                        "dropIndexes",
                    )
                    .await?;
                    SetupOutcome::Updated
                } else if want_ttl != have_ttl {
                    let seconds = index.spec.get_i32("expireAfterSeconds").unwrap_or_default();
                    let cmd = commands::set_ttl(index.collection, index.name, seconds);
                    return match self.command(cmd, "collMod TTL index").await {
                        Ok(_) => {
                            report.push(target, SetupOutcome::Updated);
                            Ok(())
                        }
                        Err(Error::Unsupported { message, .. }) => {
                            unsupported(report, target, message, options)
                        }
                        Err(e) => Err(e),
                    };
                } else {
                    report.push(target, SetupOutcome::Unchanged);
                    return Ok(());
                }
            }
        };
        let operation = format!("index {} on {}", index.name, index.collection);
        match self
            .command(commands::create_index(index), &operation)
            .await
        {
            Ok(_) => report.push(target, outcome),
            Err(Error::Unsupported { message, .. }) => {
                unsupported(report, target, message, options)?
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

fn as_i64(b: &Bson) -> Option<i64> {
    match b {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        // Seconds as a double: whole seconds are what the server keeps.
        Bson::Double(v) if v.is_finite() => Some(*v as i64),
        _ => None,
    }
}

fn as_u64(b: Option<&Bson>) -> u64 {
    b.and_then(as_i64)
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(0)
}

fn as_f64(b: Option<&Bson>) -> f64 {
    match b {
        Some(Bson::Double(v)) => *v,
        Some(Bson::Int32(v)) => f64::from(*v),
        Some(Bson::Int64(v)) => *v as f64,
        _ => 0.0,
    }
}

fn group_key(d: &Document) -> String {
    d.get("_id")
        .cloned()
        .unwrap_or(Bson::Null)
        .into_relaxed_extjson()
        .to_string()
}

/// Records an unsupported setup step, or fails with it when setup is strict.
fn unsupported(
    report: &mut SetupReport,
    target: String,
    message: String,
    options: &SetupOptions,
) -> Result<()> {
    if options.strict {
        return Err(Error::Unsupported {
            operation: target,
            backend: BACKEND,
            message,
        });
    }
    // Debug, not warn: the step is in the returned report, and the caller decides how loudly
    // to say it (mod8-app warns once per step).
    tracing::debug!(step = %target, %message, "setup step not supported by the server");
    report.push(target, SetupOutcome::Unsupported { message });
    Ok(())
}

/// A document read back from an aggregation, as a typed value (raw BSON round trip, so
/// timestamps stay BSON dates).
fn from_doc<T: serde::de::DeserializeOwned>(d: &Document) -> Result<T> {
    let bytes = bson::to_vec(d).map_err(|e| Error::backend(BACKEND, e))?;
    bson::from_slice(&bytes).map_err(|e| Error::backend(BACKEND, e))
}

fn to_doc<T: serde::Serialize>(v: &T) -> Result<Document> {
    bson::to_raw_document_buf(v)
        .and_then(|raw| raw.to_document().map_err(serde::ser::Error::custom))
        .map_err(|e| Error::backend(BACKEND, e))
}

/// Unordered bulk insert of already validated documents; `positions[i]` is the input index of
/// `docs[i]`.
async fn insert_unordered<T>(
    collection: &Collection<T>,
    docs: Vec<T>,
    ids: Vec<ObjectId>,
    positions: Vec<usize>,
    result: &mut BulkInsertResult,
    operation: &str,
) -> Result<()>
where
    T: serde::Serialize + Send + Sync,
{
    if docs.is_empty() {
        return Ok(());
    }
    let failed: HashSet<usize> = match collection.insert_many(docs).ordered(false).await {
        Ok(_) => HashSet::new(),
        Err(e) => match &*e.kind {
            ErrorKind::InsertMany(bulk) if bulk.write_concern_error.is_none() => {
                let mut failed = HashSet::new();
                for w in bulk.write_errors.iter().flatten() {
                    failed.insert(w.index);
                    result.failures.push(BulkFailure {
                        index: positions.get(w.index).copied().unwrap_or(w.index),
                        error: error_map::classify_write(
                            w.code,
                            &w.message,
                            w.details.as_ref(),
                            operation,
                        ),
                    });
                }
                failed
            }
            _ => return Err(map(e, operation)),
        },
    };
    result.inserted_ids.extend(
        ids.into_iter()
            .enumerate()
            .filter(|(i, _)| !failed.contains(i))
            .map(|(_, id)| id),
    );
    result.failures.sort_by_key(|f| f.index);
    Ok(())
}

#[async_trait]
impl ProfileStore for MongoDocStore {
    async fn insert_profile(&self, profile: UserProfile) -> Result<ObjectId> {
        let mut profile = validate::profile(profile)?;
        let id = *profile.id.get_or_insert_with(ObjectId::new);
        self.profiles
            .insert_one(&profile)
            .await
            .map_err(|e| map(e, "insert profile"))?;
        Ok(id)
    }

    async fn insert_profiles(&self, profiles: Vec<UserProfile>) -> Result<BulkInsertResult> {
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
        insert_unordered(
            &self.profiles,
            docs,
            ids,
            positions,
            &mut result,
            "insert profiles",
        )
        .await?;
        Ok(result)
    }

    async fn profile_by_username(&self, username: &str) -> Result<Option<UserProfile>> {
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
    ) -> Result<Vec<UserProfile>> {
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
            return Err(Error::not_found(format!(
                "profile with username {username:?}"
            )));
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
            return Err(Error::not_found(format!(
                "profile with username {username:?}"
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl EventStore for MongoDocStore {
    async fn log_event(&self, event: Event) -> Result<ObjectId> {
        let mut event = validate::event(event)?;
        let id = *event.id.get_or_insert_with(ObjectId::new);
        self.events
            .insert_one(&event)
            .await
            .map_err(|e| map(e, "log event"))?;
        self.count_activity(std::slice::from_ref(&event)).await?;
        Ok(id)
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
        let rows = self
            .grouped(
                setup::EVENTS,
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

    async fn user_activity(&self, window: TimeWindow, top: usize) -> Result<Vec<UserActivity>> {
        if top == 0 {
            return Ok(Vec::new());
        }
        let rows = self
            .grouped(
                setup::EVENTS,
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
            out.push(UserActivity {
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
        let rows = self
            .grouped(
                setup::EVENTS,
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
                setup::EVENTS,
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
        let rows = self
            .grouped(
                setup::PROFILES,
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
        crate::memory::check_filter(&filter)?;
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

    async fn setup(&self, options: &SetupOptions) -> Result<SetupReport> {
        // Before any server call: a bad retention changes nothing.
        let retention_secs = validate::log_retention(options.log_retention)?;
        let existing: HashMap<String, Document> = self
            .db
            .list_collections()
            .await
            .map_err(|e| map(e, "listCollections"))?
            .map(|r| {
                r.and_then(|spec| {
                    let name = spec.name.clone();
                    bson::to_document(&spec)
                        .map(|d| (name, d))
                        .map_err(Into::into)
                })
            })
            .try_collect()
            .await
            .map_err(|e| map(e, "listCollections"))?;
        let mut report = SetupReport::default();
        for (name, validator) in [
            (setup::EVENTS, commands::events_validator()),
            (setup::PROFILES, commands::profiles_validator()),
        ] {
            self.setup_collection(name, Some(validator), &existing, options, &mut report)
                .await?;
        }
        for name in [setup::LOGS, setup::ANALYTICS] {
            self.setup_collection(name, None, &existing, options, &mut report)
                .await?;
        }
        let mut indexes_by_collection: HashMap<&str, HashMap<String, Document>> = HashMap::new();
        for c in [
            setup::PROFILES,
            setup::EVENTS,
            setup::LOGS,
            setup::ANALYTICS,
        ] {
            indexes_by_collection.insert(c, self.list_indexes(c).await?);
        }
        for index in commands::indexes(retention_secs) {
            let existing = indexes_by_collection
                .get(index.collection)
                .cloned()
                .unwrap_or_default();
            self.setup_index(&index, &existing, options, &mut report)
                .await?;
        }
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

    async fn recent_logs(&self, limit: usize) -> Result<Vec<LogEntry>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The TTL monitor deletes lazily (about once a minute), so expired entries are also
        // filtered out here; on servers without TTL indexes this filter is the only expiry.
        let cutoff = setup::log_cutoff(Utc::now(), self.retention());
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
