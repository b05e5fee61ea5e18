//! The outbox relay: publishes the rows that registration and checkout wrote in their SQL
//! transactions (topics [`USER_DATA_TOPIC`], [`ORDER_PLACED_TOPIC`] and
//! [`PRODUCT_UPDATED_TOPIC`], each along its own route), and
//! marks them sent only after the broker confirmed them. A broker outage delays events (rows
//! stay pending and are claimed again when their lease runs out) but never loses them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mod8_mq::domain::{OrderPlaced, Pipeline, ProductEvent, UserData};
use mod8_mq::{Envelope, Payload, Route};
use mod8_orm::{Database, OutboxMessage};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use uuid::Uuid;

/// Outbox topic of the `UserData` event written at registration.
pub const USER_DATA_TOPIC: &str = "user_data";

/// Outbox topic of the [`OrderPlaced`] event written by checkout (an [`OutboxEvent`] whose
/// aggregate is the order), published along [`mod8_mq::domain::Topology::order_placed_route`].
pub const ORDER_PLACED_TOPIC: &str = "order.placed";

/// Outbox topic of a catalog product change (created, updated, archived): an
/// [`OutboxEvent`] of a [`ProductEvent`], published along the topology's product-events route.
pub const PRODUCT_UPDATED_TOPIC: &str = "product.updated";

/// How many rows one pass claims.
const BATCH: u32 = 100;

/// Counters of the relay, for metrics and the demo report.
#[derive(Debug, Default)]
pub struct OutboxCounters {
    /// Rows enqueued by this process.
    pub enqueued: AtomicU64,
    /// Rows published, confirmed and marked sent by this process.
    pub sent: AtomicU64,
    /// Publish attempts that failed (the rows stay pending).
    pub failures: AtomicU64,
    /// Rows that can never be published (unknown topic, payload that is not `UserData`),
    /// logged once at error level and then skipped whenever a claim returns them again.
    unpublishable: Mutex<HashSet<Uuid>>,
}

impl OutboxCounters {
    /// Rows this process enqueued that are not yet confirmed and marked sent.
    pub fn backlog(&self) -> u64 {
        self.enqueued
            .load(Ordering::Relaxed)
            .saturating_sub(self.sent.load(Ordering::Relaxed))
    }

    /// Distinct rows found unpublishable so far (they stay unsent in the outbox table, for
    /// an operator to fix or remove).
    pub fn unpublishable(&self) -> u64 {
        self.unpublishable.lock().map_or(0, |s| s.len() as u64)
    }

    /// Remembers `id` as unpublishable; `true` the first time.
    fn newly_unpublishable(&self, id: Uuid) -> bool {
        self.unpublishable.lock().is_ok_and(|mut s| s.insert(id))
    }

    fn is_unpublishable(&self, id: Uuid) -> bool {
        self.unpublishable.lock().is_ok_and(|s| s.contains(&id))
    }
}

/// The app's handle on its outbox relay: the relay's counters and its wake-up. A flow that
/// committed an outbox row calls [`Outbox::notify`]; cloning shares the same relay.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    counters: Arc<OutboxCounters>,
    wake: Arc<Notify>,
}

impl Outbox {
    /// A handle with zeroed counters and no relay running yet (see [`Outbox::relay`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// A transaction holding an outbox row committed: counts the row as enqueued and wakes the
    /// relay so it publishes now instead of at its next poll.
    pub fn notify(&self) {
        self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// The relay's counters.
    pub fn counters(&self) -> &OutboxCounters {
        &self.counters
    }

    /// Rows this process enqueued that are not yet confirmed and marked sent
    /// ([`OutboxCounters::backlog`]).
    pub fn backlog(&self) -> u64 {
        self.counters.backlog()
    }

    /// Distinct rows found unpublishable so far ([`OutboxCounters::unpublishable`]).
    pub fn unpublishable(&self) -> u64 {
        self.counters.unpublishable()
    }

    /// The relay for this handle: it updates these counters and wakes on [`Outbox::notify`].
    /// Run it with [`run_relay`].
    pub fn relay(
        &self,
        sql: mod8_orm::DynDatabase,
        pipeline: Pipeline,
        poll: Duration,
        lease: Duration,
        retention: Duration,
    ) -> Relay {
        Relay {
            sql,
            pipeline,
            counters: self.counters.clone(),
            wake: self.wake.clone(),
            poll,
            lease,
            retention,
        }
    }
}

/// The payload of an outbox row: the event, the aggregate it is about and the event's id.
///
/// The event id becomes the published message's id, so every publish of the row (a relay
/// retry after an unconfirmed publish, or two relays whose leases overlapped) carries the same
/// id and consumers de-duplicate by it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxEvent<T> {
    /// The id of the aggregate the event is about (the user's id for [`USER_DATA_TOPIC`]).
    pub aggregate_id: String,
    /// The event's id: the published message's id.
    pub event_id: Uuid,
    /// The event itself.
    pub event: T,
}

impl<T: Serialize> OutboxEvent<T> {
    /// A new event about `aggregate_id`, with a fresh id.
    pub fn new(aggregate_id: impl Into<String>, event: T) -> Self {
        OutboxEvent {
            aggregate_id: aggregate_id.into(),
            event_id: Uuid::new_v4(),
            event,
        }
    }

    /// The row payload.
    ///
    /// # Errors
    ///
    /// The event failing to serialise.
    pub fn to_payload(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}

/// The envelope of a row: an [`OutboxEvent`] is published under its event id; a bare
/// `UserData` payload (rows written before payloads carried ids) under the row's id. Either
/// way a row published twice (a crash between confirm and mark-sent) carries the same
/// message id and de-duplicating consumers drop the copy.
fn envelope(row: &OutboxMessage) -> Result<Envelope<UserData>, serde_json::Error> {
    let (id, data) = match serde_json::from_value::<OutboxEvent<UserData>>(row.payload.clone()) {
        Ok(event) => (event.event_id, event.event),
        Err(_) => (row.id, serde_json::from_value(row.payload.clone())?),
    };
    let mut envelope = Envelope::new(data);
    envelope.id = id;
    envelope.timestamp = row.created_at;
    Ok(envelope)
}

/// The envelope of a row of a topic whose payload is always an [`OutboxEvent`]: published
/// under the event's id, so every publish of the row carries the same message id.
fn event_envelope<T: Payload + serde::de::DeserializeOwned>(
    row: &OutboxMessage,
) -> Result<Envelope<T>, serde_json::Error> {
    let event = serde_json::from_value::<OutboxEvent<T>>(row.payload.clone())?;
    let mut envelope = Envelope::new(event.event);
    envelope.id = event.event_id;
    envelope.timestamp = row.created_at;
    Ok(envelope)
}

/// The envelopes of one topic claimed in a pass, each with its row's id (an envelope's id is
/// its event's id, not the row's).
struct Group<T> {
    envelopes: Vec<Envelope<T>>,
    row_ids: Vec<Uuid>,
}

impl<T> Default for Group<T> {
    fn default() -> Self {
        Group {
            envelopes: Vec::new(),
            row_ids: Vec::new(),
        }
    }
}

impl<T: Payload> Group<T> {
    fn push(&mut self, envelope: Envelope<T>, row_id: Uuid) {
        self.envelopes.push(envelope);
        self.row_ids.push(row_id);
    }

    /// Publishes the group along `route` with confirms; the rows of confirmed envelopes go to
    /// `confirmed`, failures are counted in `pass` (those rows stay pending).
    async fn publish(
        &self,
        pipeline: &Pipeline,
        counters: &OutboxCounters,
        route: &Route,
        pass: &mut Pass,
        confirmed: &mut Vec<Uuid>,
    ) {
        if self.envelopes.is_empty() {
            return;
        }
        let results = match pipeline.producer().send_batch(&self.envelopes, route).await {
            Ok(results) => results,
            Err(e) => {
                counters
                    .failures
                    .fetch_add(self.envelopes.len() as u64, Ordering::Relaxed);
                tracing::warn!(error = %e, rows = self.envelopes.len(), kind = T::KIND, "outbox publish failed; rows stay pending");
                pass.failed += self.envelopes.len();
                return;
            }
        };
        for ((envelope, row_id), result) in self.envelopes.iter().zip(&self.row_ids).zip(results) {
            match result {
                Ok(()) => confirmed.push(*row_id),
                Err(e) => {
                    counters.failures.fetch_add(1, Ordering::Relaxed);
                    pass.failed += 1;
                    tracing::warn!(id = %envelope.id, error = %e, "outbox publish not confirmed; row stays pending");
                }
            }
        }
    }
}

/// What one [`relay_once`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Rows claimed (a full batch means more may be waiting).
    pub claimed: usize,
    /// Rows published, confirmed and marked sent.
    pub sent: u64,
    /// Rows whose publish failed or was not confirmed (they stay pending).
    pub failed: usize,
    /// Rows skipped as unpublishable.
    pub unpublishable: usize,
}

impl Pass {
    /// Every publish of the pass failed: the broker is likely down, so the relay backs off.
    pub fn all_failed(&self) -> bool {
        self.failed > 0 && self.sent == 0
    }
}

/// One pass: claim pending rows, publish them with confirms, mark the confirmed ones sent.
///
/// # Errors
///
/// The database failing to claim or mark rows. Publish failures are not errors here: the
/// rows stay pending and are retried on a later pass.
pub async fn relay_once(
    sql: &dyn Database,
    pipeline: &Pipeline,
    counters: &OutboxCounters,
    lease: Duration,
) -> mod8_orm::Result<Pass> {
    let rows = sql.claim_pending(BATCH, lease).await?;
    let mut pass = Pass {
        claimed: rows.len(),
        ..Pass::default()
    };
    if rows.is_empty() {
        return Ok(pass);
    }
    let mut user_data = Group::<UserData>::default();
    let mut orders_placed = Group::<OrderPlaced>::default();
    let mut products = Group::<ProductEvent>::default();
    for row in &rows {
        if counters.is_unpublishable(row.id) {
            // Logged and counted when first found; the claim returns it again each lease.
            pass.unpublishable += 1;
            continue;
        }
        let parsed = match row.topic.as_str() {
            USER_DATA_TOPIC => envelope(row)
                .map(|e| user_data.push(e, row.id))
                .map_err(|e| format!("payload is not UserData: {e}")),
            ORDER_PLACED_TOPIC => event_envelope::<OrderPlaced>(row)
                .map(|e| orders_placed.push(e, row.id))
                .map_err(|e| format!("payload is not an OrderPlaced event: {e}")),
            PRODUCT_UPDATED_TOPIC => event_envelope::<ProductEvent>(row)
                .map(|e| products.push(e, row.id))
                .map_err(|e| format!("payload is not a product event: {e}")),
            other => Err(format!("unknown topic {other:?}")),
        };
        if let Err(reason) = parsed {
            pass.unpublishable += 1;
            if counters.newly_unpublishable(row.id) {
                tracing::error!(id = %row.id, topic = %row.topic, payload = %row.payload, %reason,
                    "outbox row can never be published; skipped from now on (it stays unsent in the table)");
            }
        }
    }
    let topology = pipeline.topology();
    let mut confirmed = Vec::with_capacity(rows.len());
    user_data
        .publish(
            pipeline,
            counters,
            &topology.user_data_route(),
            &mut pass,
            &mut confirmed,
        )
        .await;
    orders_placed
        .publish(
            pipeline,
            counters,
            &topology.order_placed_route(),
            &mut pass,
            &mut confirmed,
        )
        .await;
    products
        .publish(
            pipeline,
            counters,
            &topology.product_events_route(),
            &mut pass,
            &mut confirmed,
        )
        .await;
    if !confirmed.is_empty() {
        let marked = sql.mark_sent(&confirmed).await?;
        counters.sent.fetch_add(marked, Ordering::Relaxed);
        pass.sent = marked;
    }
    Ok(pass)
}

/// What the relay runs on and how often.
#[derive(Clone)]
pub struct Relay {
    /// Where the outbox lives.
    pub sql: mod8_orm::DynDatabase,
    /// Where rows are published (along its topology's user data route).
    pub pipeline: Pipeline,
    /// Counters shared with the app.
    pub counters: Arc<OutboxCounters>,
    /// Notified when a registration committed a row.
    pub wake: Arc<Notify>,
    /// Pass interval when nothing woke the relay.
    pub poll: Duration,
    /// How long a claimed row is reserved for one pass.
    pub lease: Duration,
    /// How long sent rows are kept before the relay deletes them (checked every
    /// [`PURGE_INTERVAL`]).
    pub retention: Duration,
}

/// How often the relay deletes sent rows older than [`Relay::retention`].
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// First delay after a failed pass; it doubles per failed pass up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest delay between passes while the database or the broker keeps failing (also the
/// longest an event waits after the broker comes back).
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Whether the relay should stop: shutdown was asked for, or the sender is gone (the app was
/// dropped without [`crate::App::shutdown`]).
fn stopping(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// Runs the relay until `shutdown` flips to `true` or its sender is dropped: a pass whenever
/// `wake` is notified (a registration committed) or every `poll`, and again at once while
/// passes come back full. A pass whose every publish failed, or a database error, backs off
/// exponentially (100 ms doubling up to [`MAX_BACKOFF`]) instead of retrying at once.
pub async fn run_relay(relay: Relay, mut shutdown: watch::Receiver<bool>) {
    let Relay {
        sql,
        pipeline,
        counters,
        wake,
        poll,
        lease,
        retention,
    } = relay;
    let mut backoff: Option<Duration> = None;
    let mut last_purge: Option<tokio::time::Instant> = None;
    loop {
        if last_purge.is_none_or(|at| at.elapsed() >= PURGE_INTERVAL) {
            last_purge = Some(tokio::time::Instant::now());
            match sql.purge_sent(retention).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(rows = n, "purged sent outbox rows"),
                Err(e) => tracing::warn!(error = %e, "purging sent outbox rows failed"),
            }
        }
        let failed = match relay_once(sql.as_ref(), &pipeline, &counters, lease).await {
            Ok(pass) if pass.all_failed() => true,
            Ok(pass) if pass.claimed as u32 >= BATCH => continue,
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay pass failed; backing off");
                true
            }
        };
        if failed {
            let delay = backoff.map_or(FIRST_BACKOFF, |b| (b * 2).min(MAX_BACKOFF));
            backoff = Some(delay);
            // Not cut short by `wake`: under load registrations would wake it at once.
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => {}
            }
            if stopping(&shutdown) {
                break;
            }
            continue;
        }
        backoff = None;
        if stopping(&shutdown) {
            break;
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(poll) => {}
            // An error means the sender was dropped; `stopping` below sees it.
            _ = shutdown.changed() => {}
        }
        if stopping(&shutdown) {
            // One last pass so rows committed just before shutdown are not left for the next start.
            let _ = relay_once(sql.as_ref(), &pipeline, &counters, lease).await;
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{App, AppConfig};

    fn user_data(n: usize) -> serde_json::Value {
        serde_json::json!({
            "username": format!("user{n}"),
            "email": format!("user{n}@example.com"),
            "registration_date": "2024-05-01",
        })
    }

    #[tokio::test]
    async fn a_registration_row_carries_the_user_id_and_an_event_id_published_as_message_id() {
        let app = App::build(AppConfig::embedded()).await.unwrap();
        let registered = app
            .register(crate::flows::registration::Registration {
                username: "outboxer".into(),
                email: "outboxer@example.com".into(),
                address: None,
            })
            .await
            .unwrap();
        let rows = app
            .sql
            .claim_pending(10, Duration::from_millis(1))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        let event: OutboxEvent<UserData> = serde_json::from_value(rows[0].payload.clone()).unwrap();
        assert_eq!(event.aggregate_id, registered.user.id.to_string());
        assert_eq!(event.event.username, "outboxer");
        let published = envelope(&rows[0]).unwrap();
        assert_eq!(
            published.id, event.event_id,
            "the message id is the event id"
        );
        assert_ne!(event.event_id, rows[0].id);
        // Relayed, the row (found by its row id, not the message id) is marked sent.
        tokio::time::sleep(Duration::from_millis(5)).await; // the 1 ms lease is over
        let counters = OutboxCounters::default();
        let pass = relay_once(
            app.sql.as_ref(),
            &app.pipeline,
            &counters,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(pass.sent, 1, "{pass:?}");
        assert_eq!(app.sql.count_pending().await.unwrap(), 0);
        // A row written before payloads carried ids is still published, under its row id.
        let old = app
            .sql
            .enqueue(USER_DATA_TOPIC, user_data(7))
            .await
            .unwrap();
        assert_eq!(envelope(&old).unwrap().id, old.id);
    }

    fn relay(app: &App, counters: Arc<OutboxCounters>, lease: Duration) -> Relay {
        Relay {
            sql: app.sql.clone(),
            pipeline: app.pipeline.clone(),
            counters,
            wake: Arc::new(Notify::new()),
            poll: Duration::from_millis(10),
            retention: Duration::from_secs(3600),
            lease,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_relay_purges_sent_rows_past_the_retention_and_keeps_unsent_ones() {
        let app = App::build(AppConfig::embedded()).await.unwrap();
        let sent = app
            .sql
            .enqueue(USER_DATA_TOPIC, user_data(1))
            .await
            .unwrap();
        app.sql.mark_sent(&[sent.id]).await.unwrap();
        app.broker.close().await.unwrap(); // the unsent row below stays unsent
        app.sql
            .enqueue(USER_DATA_TOPIC, user_data(2))
            .await
            .unwrap();
        assert_eq!(app.sql.count_outbox_rows().await.unwrap(), 2);
        let mut keep = relay(&app, Arc::default(), Duration::from_secs(10));
        keep.retention = Duration::from_secs(3600);
        let mut purge = keep.clone();
        purge.retention = Duration::ZERO;
        for (relay, rows_after) in [(keep, 2), (purge, 1)] {
            let (shutdown, rx) = watch::channel(false);
            let task = tokio::spawn(run_relay(relay, rx));
            tokio::time::sleep(Duration::from_millis(50)).await;
            shutdown.send(true).unwrap();
            task.await.unwrap();
            assert_eq!(app.sql.count_outbox_rows().await.unwrap(), rows_after);
        }
        assert_eq!(app.sql.count_pending().await.unwrap(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_relay_stops_when_the_app_is_dropped_without_shutdown() {
        let app = App::build(AppConfig::embedded()).await.unwrap();
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(run_relay(
            relay(&app, Arc::default(), Duration::from_secs(10)),
            rx,
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(shutdown); // what dropping the app without shutdown() does to the relay
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the relay stops once its shutdown sender is gone")
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_broker_is_retried_with_backoff() {
        let app = App::build(AppConfig::embedded()).await.unwrap();
        for n in 0..BATCH as usize {
            app.sql
                .enqueue(USER_DATA_TOPIC, user_data(n))
                .await
                .unwrap();
        }
        app.broker.close().await.unwrap(); // every publish now fails
        let counters = Arc::new(OutboxCounters::default());
        let (shutdown, rx) = watch::channel(false);
        // A 1 ms lease makes every failed row claimable again at once: without a backoff
        // the relay would claim and fail full batches in a tight loop.
        let task = tokio::spawn(run_relay(
            relay(&app, counters.clone(), Duration::from_millis(1)),
            rx,
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        shutdown.send(true).unwrap();
        task.await.unwrap();
        let passes = counters.failures.load(Ordering::Relaxed) / u64::from(BATCH);
        // 0, 0.1, 0.3, 0.7 s (+ the last pass at shutdown).
        assert!(
            (2..=6).contains(&passes),
            "{passes} failed passes in 1 s; expected a backoff"
        );
        assert_eq!(app.sql.count_pending().await.unwrap(), u64::from(BATCH));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn notify_counts_the_row_and_wakes_the_relay() {
        let app = App::build(AppConfig::embedded()).await.unwrap();
        let outbox = Outbox::new();
        // Polling once an hour: only `notify` makes the relay pass again soon.
        let relay = outbox.relay(
            app.sql.clone(),
            app.pipeline.clone(),
            Duration::from_secs(3600),
            Duration::from_secs(10),
            Duration::from_secs(3600),
        );
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(run_relay(relay, rx));
        tokio::time::sleep(Duration::from_millis(100)).await; // its first pass: nothing pending
        app.sql
            .enqueue(USER_DATA_TOPIC, user_data(1))
            .await
            .unwrap();
        outbox.notify();
        tokio::time::timeout(Duration::from_secs(10), async {
            while outbox.counters().sent.load(Ordering::Relaxed) < 1 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the notified relay publishes the row");
        assert_eq!(outbox.counters().enqueued.load(Ordering::Relaxed), 1);
        assert_eq!(outbox.backlog(), 0);
        assert_eq!(app.sql.count_pending().await.unwrap(), 0);
        shutdown.send(true).unwrap();
        task.await.unwrap();
        app.shutdown().await;
    }

    #[tokio::test]
    async fn the_backlog_metric_counts_every_unsent_row_not_just_this_process() {
        let app = App::build(AppConfig::embedded()).await.unwrap();
        // Rows another process enqueued (this one's counters never saw them).
        for n in 0..2 {
            app.sql
                .enqueue(USER_DATA_TOPIC, user_data(n))
                .await
                .unwrap();
        }
        assert_eq!(app.outbox.backlog(), 0);
        assert_eq!(app.metrics_snapshot().await.outbox_backlog, Some(2));
    }

    #[tokio::test]
    async fn unpublishable_rows_are_logged_once_then_skipped() {
        let app = App::build(AppConfig::embedded()).await.unwrap();
        let counters = OutboxCounters::default();
        app.sql.enqueue("order_placed", user_data(1)).await.unwrap();
        app.sql
            .enqueue(USER_DATA_TOPIC, serde_json::json!({"unexpected": true}))
            .await
            .unwrap();
        app.sql
            .enqueue(USER_DATA_TOPIC, user_data(2))
            .await
            .unwrap();
        let lease = Duration::from_millis(1);
        let first = relay_once(app.sql.as_ref(), &app.pipeline, &counters, lease)
            .await
            .unwrap();
        assert_eq!(
            first,
            Pass {
                claimed: 3,
                sent: 1,
                failed: 0,
                unpublishable: 2
            }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Claimed again once the lease ran out, skipped without another publish attempt.
        let second = relay_once(app.sql.as_ref(), &app.pipeline, &counters, lease)
            .await
            .unwrap();
        assert_eq!(second.unpublishable, 2);
        assert_eq!(second.failed + second.sent as usize, 0);
        assert!(!second.all_failed());
        assert_eq!(counters.unpublishable(), 2, "each row counted once");
        app.shutdown().await;
    }

    #[tokio::test]
    async fn an_order_placed_row_is_published_under_its_event_id_along_the_order_route() {
        let app = App::build(AppConfig::embedded()).await.unwrap();
        let topology = &app.config.topology;
        let queue = "order_events";
        app.broker
            .declare_queue(&mod8_mq::QueueSpec::named(queue))
            .await
            .unwrap();
        app.broker
            .bind(&mod8_mq::BindingSpec::new(
                queue,
                &topology.data_exchange,
                mod8_mq::domain::Topology::ORDER_PLACED_KEY,
            ))
            .await
            .unwrap();
        let event = OutboxEvent::new(
            "order-1",
            OrderPlaced {
                order_id: Uuid::new_v4(),
                user_id: Uuid::new_v4(),
                total_cents: 500,
                lines: Vec::new(),
            },
        );
        let payload = event.to_payload().unwrap();
        app.sql
            .enqueue(ORDER_PLACED_TOPIC, payload.clone())
            .await
            .unwrap();
        // Not an OrderPlaced event: never publishable under this topic.
        app.sql
            .enqueue(ORDER_PLACED_TOPIC, user_data(1))
            .await
            .unwrap();
        app.sql
            .enqueue(USER_DATA_TOPIC, user_data(2))
            .await
            .unwrap();
        let rows = app
            .sql
            .claim_pending(10, Duration::from_millis(1))
            .await
            .unwrap();
        let row = rows.iter().find(|r| r.payload == payload).unwrap();
        let envelope = event_envelope::<OrderPlaced>(row).unwrap();
        assert_eq!(
            envelope.id, event.event_id,
            "the message id is the event id"
        );
        assert_eq!(envelope.payload, event.event);
        tokio::time::sleep(Duration::from_millis(5)).await; // the 1 ms lease is over
        let counters = OutboxCounters::default();
        let pass = relay_once(
            app.sql.as_ref(),
            &app.pipeline,
            &counters,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(
            pass,
            Pass {
                claimed: 3,
                sent: 2,
                failed: 0,
                unpublishable: 1
            }
        );
        assert_eq!(
            app.broker.queue_depth(queue).await.unwrap(),
            1,
            "the order event, not the user data"
        );
        app.shutdown().await;
    }
}
