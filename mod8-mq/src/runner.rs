//! Consuming: a [`Handler`] decides [`Outcome::Ack`], [`Outcome::Retry`] or
//! [`Outcome::Reject`]; a [`Consumer`] runs it with prefetch and concurrency, retries through
//! delay queues, dead-letters with reason headers, resubscribes after connection loss, and
//! shuts down gracefully. The same runner serves every [`Broker`](crate::Broker); it knows
//! no application's queues, only the [`RetryPolicy`] and [`DeadLetterRoute`] it is given.

use std::collections::HashSet;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use self::dedup::{Claim, Dedup};
use crate::broker::{Delivery, DeliveryStream, DynBroker, Publication};
use crate::declarations::{DeadLetterRoute, QueueSpec, QueueType, RetryPolicy};
use crate::envelope::{Envelope, Payload, CONTENT_TYPE};
use crate::error::{Error, Result};
use crate::producer::envelope_properties;

mod dedup;

/// Header naming why a message was dead-lettered.
pub const HEADER_REASON: &str = "x-mod8-reason";
/// Header with the number of processing attempts a dead-lettered message had.
pub const HEADER_ATTEMPTS: &str = "x-mod8-attempts";
/// Header naming the queue a dead-lettered message came from.
pub const HEADER_ORIGINAL_QUEUE: &str = "x-mod8-original-queue";

/// What a handler decided about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done; acknowledge it.
    Ack,
    /// A transient failure: deliver it again after the retry policy's delay, or dead-letter it
    /// once its `max_retries` are used up.
    Retry {
        /// Why (kept in the dead-letter headers if retries run out).
        reason: String,
    },
    /// A permanent failure: dead-letter it now.
    Reject {
        /// Why (the dead-letter `x-mod8-reason` header).
        reason: String,
    },
}

impl Outcome {
    /// [`Outcome::Retry`] with a reason.
    pub fn retry(reason: impl Into<String>) -> Self {
        Outcome::Retry {
            reason: reason.into(),
        }
    }

    /// [`Outcome::Reject`] with a reason.
    pub fn reject(reason: impl Into<String>) -> Self {
        Outcome::Reject {
            reason: reason.into(),
        }
    }

    /// Retry for a transient error, reject for a permanent one (see [`Error::is_transient`]).
    pub fn from_error(error: &Error) -> Self {
        if error.is_transient() {
            Outcome::retry(error.to_string())
        } else {
            Outcome::reject(error.to_string())
        }
    }
}

/// Processes messages of type `T`.
#[async_trait]
pub trait Handler<T: Payload>: Send + Sync + 'static {
    /// Handles one message; the consumer acknowledges it after this returns.
    async fn handle(&self, message: &Envelope<T>) -> Outcome;
}

#[async_trait]
impl<T: Payload, H: Handler<T> + ?Sized> Handler<T> for Arc<H> {
    async fn handle(&self, message: &Envelope<T>) -> Outcome {
        (**self).handle(message).await
    }
}

/// A [`Handler`] made from an async closure; see [`handler_fn`].
pub struct FnHandler<F, T> {
    f: F,
    _t: PhantomData<fn(T)>,
}

impl<F, T> std::fmt::Debug for FnHandler<F, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnHandler")
            .field("payload", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

/// A handler from a closure taking the envelope (cloned) and returning a future of
/// [`Outcome`].
pub fn handler_fn<T, F, Fut>(f: F) -> FnHandler<F, T>
where
    T: Payload + Clone,
    F: Fn(Envelope<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    FnHandler { f, _t: PhantomData }
}

#[async_trait]
impl<T, F, Fut> Handler<T> for FnHandler<F, T>
where
    T: Payload + Clone,
    F: Fn(Envelope<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    async fn handle(&self, message: &Envelope<T>) -> Outcome {
        (self.f)(message.clone()).await
    }
}

/// Counters of one consumer, for tests and monitoring.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    acked: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    duplicates: AtomicU64,
    resubscribed: AtomicU64,
    received: AtomicU64,
    in_flight: AtomicU64,
    failed: AtomicU64,
}

impl ConsumerStats {
    /// Messages handled and acknowledged.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }
    /// Messages sent to a retry queue.
    pub fn retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }
    /// Messages sent to the dead-letter queue.
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered.load(Ordering::Relaxed)
    }
    /// Messages skipped because their id was already processed.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }
    /// Times the subscription was lost and made again.
    pub fn resubscribed(&self) -> u64 {
        self.resubscribed.load(Ordering::Relaxed)
    }
    /// Deliveries taken from the queue (each redelivery counts again).
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
    /// Deliveries taken and not settled yet (being handled, or waiting to be given back):
    /// the consumer's unacknowledged messages.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }
    /// Deliveries that failed: given back to their queue because they could not be passed on
    /// (retry or dead-letter queue unreachable), or left unsettled for the broker to
    /// redeliver because the ack did not reach it.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// Consumer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerOptions {
    /// Unacknowledged deliveries the broker may hand over at once (QoS). Default 32.
    pub prefetch: u16,
    /// Messages handled at the same time. Default 8.
    pub concurrency: usize,
    /// Remember this many processed message ids and skip repeats (for idempotency).
    /// Default `None` (off).
    pub dedup_capacity: Option<usize>,
    /// How long a subscription may go without a delivery before the consumer checks that its
    /// queue still exists. A broker is meant to cancel the consumers of a deleted queue, but
    /// not every one always does (RabbitMQ 3.10 was seen not to when a quorum queue was
    /// deleted while the consumer's registration was still in flight); the check ends such a
    /// subscription, so a consumer never waits on a queue that is gone. Default 5 s; at
    /// least [`MIN_IDLE_QUEUE_CHECK`].
    pub idle_queue_check: Duration,
}

/// The shortest [`ConsumerOptions::idle_queue_check`] a consumer uses (a shorter one is
/// raised to it), so an idle consumer never polls its broker in a tight loop.
pub const MIN_IDLE_QUEUE_CHECK: Duration = Duration::from_millis(100);

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            prefetch: 32,
            concurrency: 8,
            dedup_capacity: None,
            idle_queue_check: Duration::from_secs(5),
        }
    }
}

/// Runs a [`Handler`] over one queue. Build with [`Consumer::new`], start with
/// [`Consumer::start`].
pub struct Consumer<T: Payload> {
    broker: DynBroker,
    queue: String,
    handler: Arc<dyn Handler<T>>,
    options: ConsumerOptions,
    retry: RetryPolicy,
    /// The kind of the delay queues it declares on first use.
    retry_queue_type: QueueType,
    dead_letter: DeadLetterRoute,
}

impl<T: Payload> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("broker", &self.broker.backend())
            .field("queue", &self.queue)
            .field("options", &self.options)
            .field("retry", &self.retry)
            .field("dead_letter", &self.dead_letter)
            .finish_non_exhaustive()
    }
}

impl<T: Payload> Consumer<T> {
    /// A consumer of `queue` with default options, the default [`RetryPolicy`] and the
    /// default [`DeadLetterRoute`]; set both to match what the broker declared
    /// ([`Consumer::with_retry`], [`Consumer::with_dead_letter`]).
    pub fn new(broker: DynBroker, queue: impl Into<String>, handler: impl Handler<T>) -> Self {
        Consumer {
            broker,
            queue: queue.into(),
            handler: Arc::new(handler),
            options: ConsumerOptions::default(),
            retry: RetryPolicy::default(),
            retry_queue_type: QueueType::Classic,
            dead_letter: DeadLetterRoute::default(),
        }
    }

    /// Sets the kind of the delay queues the consumer declares on first use (see
    /// [`RetryPolicy::retry_queue_as`]; classic by default). It must match how the topology
    /// declared the same queues: [`Topology::consumer`](crate::domain::Topology::consumer)
    /// sets it from the topology.
    pub fn with_retry_queue_type(mut self, queue_type: QueueType) -> Self {
        self.retry_queue_type = queue_type;
        self
    }

    /// Sets the delays between retries: a retried message waits in the delay queue
    /// [`RetryPolicy::retry_queue`] names (declared on first use if it does not exist).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets where messages that are rejected, unreadable or out of retries are published.
    pub fn with_dead_letter(mut self, route: DeadLetterRoute) -> Self {
        self.dead_letter = route;
        self
    }

    /// Sets all options.
    pub fn with_options(mut self, options: ConsumerOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the prefetch (QoS).
    pub fn with_prefetch(mut self, prefetch: u16) -> Self {
        self.options.prefetch = prefetch.max(1);
        self
    }

    /// Sets how long an idle subscription waits before checking that its queue still exists
    /// (see [`ConsumerOptions::idle_queue_check`]; at least [`MIN_IDLE_QUEUE_CHECK`]).
    pub fn with_idle_queue_check(mut self, after: Duration) -> Self {
        self.options.idle_queue_check = after.max(MIN_IDLE_QUEUE_CHECK);
        self
    }

    /// Sets how many messages are handled at once.
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.options.concurrency = concurrency.max(1);
        self
    }

    /// Skips messages whose id is among the last `capacity` processed ones. A copy that
    /// arrives while another copy of the same id is being handled waits for that one: it is
    /// skipped if that one was acknowledged, handled otherwise.
    pub fn with_dedup(mut self, capacity: usize) -> Self {
        self.options.dedup_capacity = Some(capacity.max(1));
        self
    }

    /// Subscribes (failing now if the queue cannot be consumed) and runs in the background
    /// until [`ConsumerHandle::shutdown`].
    pub async fn start(self) -> Result<ConsumerHandle> {
        let stream = self
            .broker
            .subscribe(&self.queue, self.options.prefetch)
            .await?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (fatal_tx, fatal_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(ConsumerStats::default());
        let ctx = Arc::new(Context {
            broker: self.broker,
            queue: self.queue,
            handler: self.handler,
            retry: self.retry,
            retry_queue_type: self.retry_queue_type,
            dead_letter: self.dead_letter,
            stats: stats.clone(),
            dedup: self.options.dedup_capacity.map(Dedup::new),
            declared: Mutex::new(HashSet::new()),
            setbacks: AtomicU32::new(0),
            stop: stop_rx.clone(),
            fatal: fatal_tx,
        });
        let task = tokio::spawn(run(ctx, stream, self.options, stop_rx, fatal_rx));
        Ok(ConsumerHandle {
            stop: stop_tx,
            task,
            stats,
        })
    }
}

/// A running consumer. Dropping the handle also stops the consumer gracefully, in the
/// background; [`ConsumerHandle::shutdown`] waits for it and reports its result.
#[derive(Debug)]
pub struct ConsumerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<()>>,
    stats: Arc<ConsumerStats>,
}

impl ConsumerHandle {
    /// The consumer's counters.
    pub fn stats(&self) -> &ConsumerStats {
        &self.stats
    }

    /// Whether the consumer has stopped (after shutdown or a permanent error).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops taking new messages, lets the ones being handled finish and settles them, then
    /// returns. Messages received but not started go back to the queue.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(Error::backend("consumer", e)),
        }
    }
}

struct Context<T: Payload> {
    broker: DynBroker,
    queue: String,
    handler: Arc<dyn Handler<T>>,
    retry: RetryPolicy,
    retry_queue_type: QueueType,
    dead_letter: DeadLetterRoute,
    stats: Arc<ConsumerStats>,
    dedup: Option<Dedup>,
    /// Retry queues already declared by this consumer.
    declared: Mutex<HashSet<String>>,
    /// Messages in a row that could not be passed on (retry queue or dead-letter queue);
    /// sets the pause before such a message is given back.
    setbacks: AtomicU32,
    /// Set when the consumer is told to stop (cuts those pauses short).
    stop: watch::Receiver<bool>,
    /// A permanent error that must end the consumer.
    fatal: mpsc::UnboundedSender<Error>,
}

/// Longest pause before a message that could not be passed on is given back.
const MAX_SETBACK_PAUSE: Duration = Duration::from_secs(5);

impl<T: Payload> Context<T> {
    /// The pause before giving back the next message that could not be passed on: 100 ms,
    /// doubling with each such message in a row, at most [`MAX_SETBACK_PAUSE`].
    fn setback_pause(&self) -> Duration {
        let n = self.setbacks.fetch_add(1, Ordering::Relaxed);
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        Duration::from_millis(100)
            .saturating_mul(factor)
            .min(MAX_SETBACK_PAUSE)
    }

    /// A message was passed on: the cause of earlier setbacks is gone.
    fn passed_on(&self) {
        self.setbacks.store(0, Ordering::Relaxed);
    }
}

async fn run<T: Payload>(
    ctx: Arc<Context<T>>,
    first: DeliveryStream,
    options: ConsumerOptions,
    mut stop: watch::Receiver<bool>,
    mut fatal: mpsc::UnboundedReceiver<Error>,
) -> Result<()> {
    let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
    // Options set whole (`with_options`) are bounded here as the setters bound them.
    let idle_queue_check = options.idle_queue_check.max(MIN_IDLE_QUEUE_CHECK);
    let mut tasks = JoinSet::new();
    let mut stream = Some(first);
    let mut backoff = Duration::from_millis(50);
    let mut outcome = Ok(());
    // When the subscription last showed its queue exists (a delivery, or a check).
    let mut seen_alive = tokio::time::Instant::now();
    'outer: loop {
        let Some(current) = stream.as_mut() else {
            // The subscription was lost: subscribe again, with growing pauses, until it works,
            // the error is permanent, or we are told to stop. The first pause comes before
            // the first attempt too, so a resubscription does not race what ended the last one
            // (a queue being deleted, a node going away) and a broker that keeps cancelling is
            // not asked again in a tight loop.
            tokio::select! {
                _ = stop.changed() => break 'outer,
                _ = tokio::time::sleep(backoff) => {}
            }
            tokio::select! {
                _ = stop.changed() => break 'outer,
                Some(e) = fatal.recv() => {
                    outcome = Err(e);
                    break 'outer;
                }
                result = ctx.broker.subscribe(&ctx.queue, options.prefetch) => match result {
                    Ok(s) => {
                        ctx.stats.resubscribed.fetch_add(1, Ordering::Relaxed);
                        backoff = Duration::from_millis(50);
                        stream = Some(s);
                        seen_alive = tokio::time::Instant::now();
                    }
                    Err(e) if e.is_transient() => {
                        tracing::warn!(queue = %ctx.queue, error = %e, "resubscribe failed; backing off");
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => {
                        tracing::error!(queue = %ctx.queue, error = %e, "consumer stops: cannot subscribe");
                        outcome = Err(e);
                        break 'outer;
                    }
                },
            }
            continue;
        };
        // Wait for a free handler slot first, so prefetched messages stay with the broker's
        // accounting rather than piling up here.
        let permit = tokio::select! {
            _ = stop.changed() => break 'outer,
            Some(e) = fatal.recv() => {
                outcome = Err(e);
                break 'outer;
            }
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break 'outer,
            },
        };
        tokio::select! {
            _ = stop.changed() => break 'outer,
            Some(e) = fatal.recv() => {
                outcome = Err(e);
                break 'outer;
            }
            _ = tokio::time::sleep_until(seen_alive + idle_queue_check) => {
                drop(permit);
                match ctx.broker.queue_depth(&ctx.queue).await {
                    Err(Error::NotFound { .. }) => {
                        tracing::warn!(queue = %ctx.queue, "queue gone without the broker cancelling the subscription; resubscribing");
                        stream = None;
                    }
                    Err(e) => {
                        tracing::debug!(queue = %ctx.queue, error = %e, "idle queue check failed");
                    }
                    Ok(_) => {}
                }
                seen_alive = tokio::time::Instant::now();
            }
            item = current.next() => match item {
                Some(Ok(delivery)) => {
                    seen_alive = tokio::time::Instant::now();
                    let ctx = ctx.clone();
                    ctx.stats.received.fetch_add(1, Ordering::Relaxed);
                    ctx.stats.in_flight.fetch_add(1, Ordering::Relaxed);
                    tasks.spawn(async move {
                        // Settled (or handed back) when `process` returns, panics included.
                        let _in_flight = InFlight(ctx.stats.clone());
                        process(&ctx, delivery).await;
                        drop(permit);
                    });
                }
                Some(Err(e)) => {
                    tracing::warn!(queue = %ctx.queue, error = %e, "subscription failed; resubscribing");
                    stream = None;
                }
                None => {
                    tracing::warn!(queue = %ctx.queue, "subscription ended; resubscribing");
                    stream = None;
                }
            },
        }
        while tasks.try_join_next().is_some() {}
    }
    // Graceful: finish and settle what is being handled while the subscription (and so its
    // channel) is still open, then let it go; unstarted deliveries return to the queue.
    while tasks.join_next().await.is_some() {}
    drop(stream);
    // A permanent error met while finishing is still the consumer's result.
    match fatal.try_recv() {
        Ok(e) if outcome.is_ok() => Err(e),
        _ => outcome,
    }
}

/// One delivery being handled: counted in [`ConsumerStats::in_flight`] until dropped.
struct InFlight(Arc<ConsumerStats>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn process<T: Payload>(ctx: &Context<T>, delivery: Delivery) {
    let mut envelope = match Envelope::<T>::from_bytes(&delivery.body) {
        Ok(envelope) => envelope,
        Err(e) => {
            let body = delivery.body.clone();
            let reason = e.to_string();
            dead_letter(ctx, delivery, body, &reason, 1, None).await;
            return;
        }
    };
    // Claimed before handling, not only recorded after the ack: with concurrency above one,
    // two copies in flight at once would otherwise both be handled.
    let mut claim = None;
    if let Some(dedup) = &ctx.dedup {
        match dedup.claim(envelope.id).await {
            Claim::Duplicate => {
                if settle(ctx, delivery.ack().await) {
                    ctx.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            Claim::Handle(in_flight) => claim = Some(in_flight),
        }
    }
    let outcome = AssertUnwindSafe(ctx.handler.handle(&envelope))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Outcome::retry("the handler panicked"));
    match outcome {
        Outcome::Ack => {
            // Processed even if the ack below is lost: the redelivered copy is a duplicate.
            if let Some(in_flight) = claim.take() {
                in_flight.processed();
            }
            if settle(ctx, delivery.ack().await) {
                ctx.stats.acked.fetch_add(1, Ordering::Relaxed);
            }
        }
        Outcome::Retry { reason } if envelope.retry_count < envelope.max_retries => {
            let spec =
                ctx.retry
                    .retry_queue_as(&ctx.queue, envelope.retry_count, ctx.retry_queue_type);
            envelope.retry_count += 1;
            let body = match envelope.to_bytes() {
                Ok(body) => body,
                Err(e) => {
                    let (body, reason) = (delivery.body.clone(), e.to_string());
                    dead_letter(
                        ctx,
                        delivery,
                        body,
                        &reason,
                        envelope.retry_count,
                        Some(&envelope),
                    )
                    .await;
                    return;
                }
            };
            if let Err(e) = ensure_declared(ctx, &spec).await {
                give_back(ctx, delivery, e, "declaring the retry queue").await;
                return;
            }
            let mut publication = Publication::new("", spec.name.clone(), body)
                .with_header("x-mod8-last-error", reason);
            envelope_properties(&mut publication, &envelope);
            publication.priority = delivery.priority;
            match ctx.broker.publish(publication).await {
                Ok(()) => {
                    ctx.passed_on();
                    if settle(ctx, delivery.ack().await) {
                        ctx.stats.retried.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Not confirmed by the broker: keep the original rather than lose it.
                Err(e) => give_back(ctx, delivery, e, "publishing to the retry queue").await,
            }
        }
        Outcome::Retry { reason } => {
            let reason = format!("retries exhausted ({}): {reason}", envelope.max_retries);
            let attempts = envelope.retry_count + 1;
            let body = envelope
                .to_bytes()
                .unwrap_or_else(|_| delivery.body.clone());
            dead_letter(ctx, delivery, body, &reason, attempts, Some(&envelope)).await;
        }
        Outcome::Reject { reason } => {
            let attempts = envelope.retry_count + 1;
            let body = delivery.body.clone();
            dead_letter(
                ctx,
                delivery,
                body,
                &format!("rejected: {reason}"),
                attempts,
                Some(&envelope),
            )
            .await;
        }
    }
}

async fn ensure_declared<T: Payload>(ctx: &Context<T>, spec: &QueueSpec) -> Result<()> {
    let known = ctx
        .declared
        .lock()
        .map(|d| d.contains(&spec.name))
        .unwrap_or(false);
    if !known {
        ctx.broker.declare_queue(spec).await?;
        if let Ok(mut d) = ctx.declared.lock() {
            d.insert(spec.name.clone());
        }
    }
    Ok(())
}

async fn dead_letter<T: Payload>(
    ctx: &Context<T>,
    delivery: Delivery,
    body: Vec<u8>,
    reason: &str,
    attempts: u32,
    envelope: Option<&Envelope<T>>,
) {
    let mut publication = Publication::new(
        ctx.dead_letter.exchange.clone(),
        ctx.dead_letter.routing_key.clone(),
        body,
    )
    .with_header(HEADER_REASON, reason)
    .with_header(HEADER_ATTEMPTS, attempts.to_string())
    .with_header(HEADER_ORIGINAL_QUEUE, ctx.queue.clone());
    match envelope {
        Some(envelope) => envelope_properties(&mut publication, envelope),
        // Not a readable envelope: keep what the delivery said about itself.
        None => {
            publication.message_id = delivery.message_id.clone();
            publication.content_type = Some(CONTENT_TYPE.into());
        }
    }
    tracing::info!(queue = %ctx.queue, reason, attempts, "dead-lettering a message");
    match ctx.broker.publish(publication).await {
        Ok(()) => {
            ctx.passed_on();
            if settle(ctx, delivery.ack().await) {
                ctx.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
            }
        }
        Err(e) => give_back(ctx, delivery, e, "publishing to the dead-letter queue").await,
    }
}

/// A message could not be passed on (to its retry queue or the dead-letter queue), so it
/// goes back to its queue rather than being lost. Given back at once it would come straight
/// back and spin through the consumer while the cause lasts, so a transient cause gets a
/// growing pause first (cut short by shutdown); a permanent one (a missing exchange, a
/// conflicting declaration) will not go away by itself, so the consumer stops with it for
/// its supervisor to act on.
async fn give_back<T: Payload>(ctx: &Context<T>, delivery: Delivery, error: Error, step: &str) {
    ctx.stats.failed.fetch_add(1, Ordering::Relaxed);
    if error.is_transient() {
        let pause = ctx.setback_pause();
        tracing::warn!(queue = %ctx.queue, error = %error, ?pause, "{step} failed; requeueing after a pause");
        let mut stop = ctx.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|stopping| *stopping) => {}
        }
        settle(ctx, delivery.requeue().await);
    } else {
        tracing::error!(queue = %ctx.queue, error = %error, "{step} failed permanently; requeueing and stopping the consumer");
        // Stop taking messages first, so this one is not handed straight back to us. (The
        // receiver is gone only when the consumer has already ended.)
        let _ = ctx.fatal.send(error);
        settle(ctx, delivery.requeue().await);
    }
}

/// Whether the broker was told. A failed ack means the channel is gone and the broker will
/// redeliver the message, so it is worth a log line, not a failure — but the message must
/// not be counted as settled.
fn settle<T: Payload>(ctx: &Context<T>, result: Result<()>) -> bool {
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(queue = %ctx.queue, error = %e, "could not settle a delivery; the broker will redeliver it");
            ctx.stats.failed.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}
