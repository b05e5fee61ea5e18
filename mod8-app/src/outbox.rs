//! The outbox relay: publishes the rows that registration wrote in its SQL transaction, and
//! marks them sent only after the broker confirmed them. A broker outage delays events (rows
//! stay pending and are claimed again when their lease runs out) but never loses them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mod8_mq::{Envelope, Producer, UserData};
use mod8_orm::{Database, OutboxMessage};
use tokio::sync::{watch, Notify};

/// Outbox topic of the `UserData` event written at registration.
pub const USER_DATA_TOPIC: &str = "user_data";

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
}

impl OutboxCounters {
    /// Rows this process enqueued that are not yet confirmed and marked sent.
    pub fn backlog(&self) -> u64 {
        self.enqueued
            .load(Ordering::Relaxed)
            .saturating_sub(self.sent.load(Ordering::Relaxed))
    }
}

/// The envelope for an outbox row: its id is the row's id, so a row published twice (a crash
/// between confirm and mark-sent) carries the same message id and de-duplicating consumers
/// drop the copy.
fn envelope(row: &OutboxMessage) -> Result<Envelope<UserData>, serde_json::Error> {
    let data: UserData = serde_json::from_value(row.payload.clone())?;
    let mut envelope = Envelope::new(data);
    envelope.id = row.id;
    envelope.timestamp = row.created_at;
    Ok(envelope)
}

/// One pass: claim pending rows, publish them with confirms, mark the confirmed ones sent.
/// Returns how many rows were claimed (a full batch means more may be waiting).
///
/// # Errors
///
/// The database failing to claim or mark rows. Publish failures are not errors here: the
/// rows stay pending and are retried on a later pass.
pub async fn relay_once(
    sql: &dyn Database,
    producer: &Producer,
    counters: &OutboxCounters,
    lease: Duration,
) -> mod8_orm::Result<usize> {
    let rows = sql.claim_pending(BATCH, lease).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut envelopes = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.topic != USER_DATA_TOPIC {
            tracing::error!(id = %row.id, topic = %row.topic, "outbox row with an unknown topic left pending");
            continue;
        }
        match envelope(row) {
            Ok(e) => envelopes.push(e),
            Err(e) => {
                tracing::error!(id = %row.id, error = %e, "outbox row whose payload is not UserData left pending");
            }
        }
    }
    let route = producer.user_data_route();
    let results = match producer.send_batch(&envelopes, &route).await {
        Ok(results) => results,
        Err(e) => {
            counters.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, rows = rows.len(), "outbox publish failed; rows stay pending");
            return Ok(rows.len());
        }
    };
    let mut confirmed = Vec::with_capacity(envelopes.len());
    for (envelope, result) in envelopes.iter().zip(results) {
        match result {
            Ok(()) => confirmed.push(envelope.id),
            Err(e) => {
                counters.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(id = %envelope.id, error = %e, "outbox publish not confirmed; row stays pending");
            }
        }
    }
    if !confirmed.is_empty() {
        let marked = sql.mark_sent(&confirmed).await?;
        counters.sent.fetch_add(marked, Ordering::Relaxed);
    }
    Ok(rows.len())
}

/// What the relay runs on and how often.
#[derive(Clone)]
pub struct Relay {
    /// Where the outbox lives.
    pub sql: mod8_orm::DynDatabase,
    /// Where rows are published.
    pub producer: Producer,
    /// Counters shared with the app.
    pub counters: Arc<OutboxCounters>,
    /// Notified when a registration committed a row.
    pub wake: Arc<Notify>,
    /// Pass interval when nothing woke the relay.
    pub poll: Duration,
    /// How long a claimed row is reserved for one pass.
    pub lease: Duration,
}

/// Runs the relay until `shutdown` flips to `true`: a pass whenever `wake` is notified (a
/// registration committed) or every `poll`, and again at once while passes come back full.
/// Errors back off exponentially up to 30 s.
pub async fn run_relay(relay: Relay, mut shutdown: watch::Receiver<bool>) {
    let Relay {
        sql,
        producer,
        counters,
        wake,
        poll,
        lease,
    } = relay;
    let mut backoff = Duration::from_millis(100);
    loop {
        match relay_once(sql.as_ref(), &producer, &counters, lease).await {
            Ok(n) if n as u32 >= BATCH => continue,
            Ok(_) => backoff = Duration::from_millis(100),
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay pass failed; backing off");
                backoff = (backoff * 2).min(Duration::from_secs(30));
                tokio::select! {
                    () = tokio::time::sleep(backoff) => continue,
                    _ = shutdown.changed() => {}
                }
            }
        }
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(poll) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            // One last pass so rows committed just before shutdown are not left for the next start.
            let _ = relay_once(sql.as_ref(), &producer, &counters, lease).await;
            break;
        }
    }
}
