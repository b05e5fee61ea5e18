//! The in-process broker: the embedded default when no RabbitMQ URL is configured.
//!
//! It keeps RabbitMQ's semantics for everything mod8 uses — direct, topic (`*`, `#`) and
//! fanout routing, the default exchange, `x-max-priority`, `x-message-ttl` with
//! dead-lettering (which is how retry delays work), `x-max-length` with `reject-publish`
//! (a full queue nacks the publish), mandatory publishing, prefetch, and
//! redelivery of messages that were delivered but never acknowledged — so the same
//! conformance suite passes on both backends.
//!
//! It is **single-process and not durable**: messages live in this process's memory, are
//! lost when it exits, and cannot be shared with another process.
//!
//! It is **bounded**: besides a queue's own `x-max-length`, every queue holds at most
//! [`MemoryQueueLimits::max_length`] ready messages of at most
//! [`MemoryQueueLimits::max_bytes`] bytes of bodies in all (by default 10,000 messages and
//! 16 MiB). A full queue refuses a publish the way RabbitMQ's `x-overflow: reject-publish`
//! does: the publish fails with [`Error::Nacked`] (transient), so the producer keeps the
//! message (an outbox row stays unsent, an API call answers 503) — nothing is dropped
//! silently. Each refusal is counted per queue ([`MemoryBroker::stats`]). Dead letters that
//! a full dead-letter queue refuses are dropped, as RabbitMQ drops them, and counted too.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use serde::{Deserialize, Serialize};

use crate::broker::{Acknowledge, Broker, Delivery, DeliveryStream, Headers, Publication};
use crate::declarations::{
    BindingSpec, Declarations, ExchangeKind, ExchangeSpec, QueueSpec, QueueType,
};
use crate::error::{Error, Result};

const BACKEND: &str = "memory";

/// Ready messages an in-process queue holds by default ([`MemoryQueueLimits::max_length`]).
pub const DEFAULT_MAX_QUEUE_LENGTH: u32 = 10_000;
/// Bytes of message bodies an in-process queue holds by default
/// ([`MemoryQueueLimits::max_bytes`]): 16 MiB.
pub const DEFAULT_MAX_QUEUE_BYTES: usize = 16 * 1024 * 1024;

/// The bounds every queue of a [`MemoryBroker`] has, whatever it was declared with (a
/// queue's own, smaller `x-max-length` still applies). The defaults
/// ([`DEFAULT_MAX_QUEUE_LENGTH`], [`DEFAULT_MAX_QUEUE_BYTES`]) suit a development or
/// embedded process whose consumers keep up; a queue reaches them only when its consumer
/// stalls.
///
/// ```
/// use mod8_mq::memory::MemoryQueueLimits;
/// let limits = MemoryQueueLimits::default();
/// assert_eq!((limits.max_length, limits.max_bytes), (10_000, 16 << 20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryQueueLimits {
    /// The most ready messages a queue holds (`MOD8_MQ_MAX_QUEUE_LENGTH`).
    pub max_length: u32,
    /// The most bytes of message bodies a queue's ready messages hold
    /// (`MOD8_MQ_MAX_QUEUE_BYTES`); a single message larger than this is refused too.
    pub max_bytes: usize,
}

impl Default for MemoryQueueLimits {
    fn default() -> Self {
        MemoryQueueLimits {
            max_length: DEFAULT_MAX_QUEUE_LENGTH,
            max_bytes: DEFAULT_MAX_QUEUE_BYTES,
        }
    }
}

/// One queue's occupancy and refusals ([`MemoryBrokerStats::queues`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryQueueStats {
    /// The queue's name.
    pub name: String,
    /// Ready messages now.
    pub messages: u64,
    /// Bytes of their bodies.
    pub bytes: u64,
    /// The bound on `messages` (the smaller of the queue's `x-max-length` and the broker's).
    pub max_length: u64,
    /// The bound on `bytes`.
    pub max_bytes: u64,
    /// Publishes the queue refused because it was full, since it was declared.
    pub rejected: u64,
}

/// What [`MemoryBroker::stats`] reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryBrokerStats {
    /// Every queue, by name.
    pub queues: Vec<MemoryQueueStats>,
    /// Dead letters (expired messages) dropped because their dead-letter queue was full or
    /// they had nowhere to go, since the broker started.
    pub dead_letters_dropped: u64,
}

/// The in-process broker. Cheap to clone; clones share the same queues.
#[derive(Clone)]
pub struct MemoryBroker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("MemoryBroker")
            .field("exchanges", &state.exchanges.len())
            .field("queues", &state.queues.len())
            .field("closed", &state.closed)
            .finish_non_exhaustive()
    }
}

struct Inner {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    exchanges: HashMap<String, Exchange>,
    queues: HashMap<String, Queue>,
    next_seq: u64,
    closed: bool,
    limits: MemoryQueueLimits,
    dead_letters_dropped: u64,
}

struct Exchange {
    kind: ExchangeKind,
    bindings: Vec<(String, String)>,
}

struct Queue {
    spec: QueueSpec,
    /// Ready messages by priority; FIFO within one priority.
    levels: BTreeMap<u8, VecDeque<Stored>>,
    notify: Arc<Notify>,
    /// Bytes of the ready messages' bodies.
    bytes: usize,
    /// Publishes refused because the queue was full.
    rejected: u64,
}

#[derive(Clone)]
struct Stored {
    seq: u64,
    body: Vec<u8>,
    exchange: String,
    routing_key: String,
    message_id: Option<String>,
    priority: Option<u8>,
    headers: Headers,
    redelivered: bool,
    /// Times the message was handed back (requeued, or unsettled when its subscription
    /// ended): a quorum queue's delivery count.
    returns: u32,
}

impl Queue {
    fn len(&self) -> usize {
        self.levels.values().map(VecDeque::len).sum()
    }

    fn level_of(&self, priority: Option<u8>) -> u8 {
        match self.spec.max_priority {
            Some(max) => priority.unwrap_or(0).min(max),
            None => 0,
        }
    }

    fn pop(&mut self) -> Option<Stored> {
        let message = self
            .levels
            .values_mut()
            .rev()
            .find(|level| !level.is_empty())
            .and_then(VecDeque::pop_front)?;
        self.bytes = self.bytes.saturating_sub(message.body.len());
        Some(message)
    }

    fn remove(&mut self, seq: u64) -> Option<Stored> {
        for level in self.levels.values_mut() {
            if let Some(pos) = level.iter().position(|m| m.seq == seq) {
                let message = level.remove(pos)?;
                self.bytes = self.bytes.saturating_sub(message.body.len());
                return Some(message);
            }
        }
        None
    }

    /// The bound on ready messages: the queue's own `x-max-length` or the broker's, whichever
    /// is smaller.
    fn max_length(&self, limits: &MemoryQueueLimits) -> usize {
        let broker = limits.max_length as usize;
        self.spec
            .max_length
            .map_or(broker, |own| (own as usize).min(broker))
    }

    /// Whether one more message of `size` bytes would pass a bound.
    fn full(&self, limits: &MemoryQueueLimits, size: usize) -> bool {
        self.len() >= self.max_length(limits) || self.bytes.saturating_add(size) > limits.max_bytes
    }
}

/// Whether a topic `pattern` (`*` one word, `#` zero or more words) matches `key`.
pub(crate) fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|i| go(rest, &k[i..])),
            Some((&"*", rest)) => !k.is_empty() && go(rest, &k[1..]),
            Some((word, rest)) => k.first() == Some(word) && go(rest, &k[1..]),
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    };
    go(&p, &k)
}

fn first_difference(old: &QueueSpec, new: &QueueSpec) -> Option<&'static str> {
    if old.max_priority != new.max_priority {
        Some("x-max-priority")
    } else if old.message_ttl != new.message_ttl {
        Some("x-message-ttl")
    } else if old.dead_letter_exchange != new.dead_letter_exchange {
        Some("x-dead-letter-exchange")
    } else if old.dead_letter_routing_key != new.dead_letter_routing_key {
        Some("x-dead-letter-routing-key")
    } else if old.max_length != new.max_length {
        Some("x-max-length")
    } else if old.queue_type != new.queue_type {
        Some("x-queue-type")
    } else if old.delivery_limit != new.delivery_limit {
        Some("x-delivery-limit")
    } else if old.dead_letter_strategy != new.dead_letter_strategy {
        Some("x-dead-letter-strategy")
    } else {
        None
    }
}

impl MemoryBroker {
    /// A broker with `declarations` declared (every exchange, every queue, every binding, in
    /// order) and the default queue bounds ([`MemoryQueueLimits::default`]). A declaration
    /// that fails — a name declared twice with different arguments, a binding to a missing
    /// queue or exchange, an empty name — is the error it would be on
    /// [`Broker::declare_queue`] and its siblings.
    pub fn new(declarations: Declarations) -> Result<Self> {
        Self::with_limits(declarations, MemoryQueueLimits::default())
    }

    /// [`MemoryBroker::new`] with every queue bounded by `limits`.
    pub fn with_limits(declarations: Declarations, limits: MemoryQueueLimits) -> Result<Self> {
        let broker = MemoryBroker::default();
        {
            let mut state = broker.inner.lock();
            state.limits = limits;
            for exchange in &declarations.exchanges {
                state.declare_exchange(exchange)?;
            }
            for queue in &declarations.queues {
                state.declare_queue(queue)?;
            }
            for binding in &declarations.bindings {
                state.bind(binding)?;
            }
        }
        Ok(broker)
    }
}

impl MemoryBroker {
    /// Every queue's occupancy, bounds and refused publishes (sorted by name), and the dead
    /// letters dropped.
    pub fn stats(&self) -> MemoryBrokerStats {
        let state = self.inner.lock();
        let mut queues: Vec<MemoryQueueStats> = state
            .queues
            .iter()
            .map(|(name, q)| MemoryQueueStats {
                name: name.clone(),
                messages: q.len() as u64,
                bytes: q.bytes as u64,
                max_length: q.max_length(&state.limits) as u64,
                max_bytes: state.limits.max_bytes as u64,
                rejected: q.rejected,
            })
            .collect();
        queues.sort_by(|a, b| a.name.cmp(&b.name));
        MemoryBrokerStats {
            queues,
            dead_letters_dropped: state.dead_letters_dropped,
        }
    }

    /// The bounds every queue has.
    pub fn limits(&self) -> MemoryQueueLimits {
        self.inner.lock().limits
    }
}

impl Default for MemoryBroker {
    /// A broker with nothing declared and the default queue bounds.
    fn default() -> Self {
        MemoryBroker {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
            }),
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the maps half-updated in a way that
        // breaks later operations, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn closed() -> Error {
    Error::Closed { backend: BACKEND }
}

impl State {
    fn declare_exchange(&mut self, spec: &ExchangeSpec) -> Result<()> {
        if spec.name.is_empty() {
            return Err(Error::validation(
                "exchange",
                "the default exchange ('') cannot be declared",
            ));
        }
        match self.exchanges.get(&spec.name) {
            Some(existing) if existing.kind != spec.kind => Err(Error::conflict(
                "exchange",
                "type",
                format!(
                    "exchange '{}' declared as {:?}, already exists as {:?}",
                    spec.name, spec.kind, existing.kind
                ),
            )),
            Some(_) => Ok(()),
            None => {
                self.exchanges.insert(
                    spec.name.clone(),
                    Exchange {
                        kind: spec.kind,
                        bindings: Vec::new(),
                    },
                );
                Ok(())
            }
        }
    }

    fn declare_queue(&mut self, spec: &QueueSpec) -> Result<()> {
        if spec.name.is_empty() {
            return Err(Error::validation("queue", "a queue needs a name"));
        }
        spec.validate()?;
        match self.queues.get(&spec.name) {
            Some(existing) => match first_difference(&existing.spec, spec) {
                Some(argument) => Err(Error::conflict(
                    "queue",
                    argument,
                    format!(
                        "queue '{}' declared as {spec:?}, already exists as {:?}",
                        spec.name, existing.spec
                    ),
                )),
                None => Ok(()),
            },
            None => {
                self.queues.insert(
                    spec.name.clone(),
                    Queue {
                        spec: spec.clone(),
                        levels: BTreeMap::new(),
                        notify: Arc::new(Notify::new()),
                        bytes: 0,
                        rejected: 0,
                    },
                );
                Ok(())
            }
        }
    }

    fn bind(&mut self, binding: &BindingSpec) -> Result<()> {
        if !self.queues.contains_key(&binding.queue) {
            return Err(Error::not_found("queue", &binding.queue));
        }
        let exchange = self
            .exchanges
            .get_mut(&binding.exchange)
            .ok_or_else(|| Error::not_found("exchange", &binding.exchange))?;
        let pair = (binding.queue.clone(), binding.key.clone());
        if !exchange.bindings.contains(&pair) {
            exchange.bindings.push(pair);
        }
        Ok(())
    }

    /// Queues a message published to `exchange` with `key` reaches.
    fn route(&self, exchange: &str, key: &str) -> Result<Vec<String>> {
        if exchange.is_empty() {
            return Ok(if self.queues.contains_key(key) {
                vec![key.to_owned()]
            } else {
                Vec::new()
            });
        }
        let ex = self
            .exchanges
            .get(exchange)
            .ok_or_else(|| Error::not_found("exchange", exchange))?;
        let mut queues: Vec<String> = ex
            .bindings
            .iter()
            .filter(|(_, pattern)| match ex.kind {
                ExchangeKind::Direct => pattern == key,
                ExchangeKind::Topic => topic_matches(pattern, key),
                ExchangeKind::Fanout => true,
            })
            .map(|(queue, _)| queue.clone())
            .collect();
        queues.sort();
        queues.dedup();
        Ok(queues)
    }

    /// Puts `message` in `queue`; false when the queue is full (its `x-max-length` or the
    /// broker's [`MemoryQueueLimits`], with `reject-publish`) and refuses it, counted.
    fn enqueue(&mut self, inner: &Arc<Inner>, queue: &str, mut message: Stored) -> bool {
        self.next_seq += 1;
        message.seq = self.next_seq;
        let limits = self.limits;
        let Some(q) = self.queues.get_mut(queue) else {
            return true;
        };
        if q.full(&limits, message.body.len()) {
            q.rejected += 1;
            return false;
        }
        let level = q.level_of(message.priority);
        let seq = message.seq;
        q.bytes += message.body.len();
        q.levels.entry(level).or_default().push_back(message);
        q.notify.notify_waiters();
        if let (Some(ttl), Ok(runtime)) =
            (q.spec.message_ttl, tokio::runtime::Handle::try_current())
        {
            // Messages of one TTL queue expire in order; each one's timer dead-letters it.
            // (Outside a Tokio runtime there is no timer, and messages stay until consumed.)
            let weak = Arc::downgrade(inner);
            let queue = queue.to_owned();
            runtime.spawn(async move {
                tokio::time::sleep(ttl).await;
                if let Some(inner) = weak.upgrade() {
                    expire(&inner, &queue, seq);
                }
            });
        }
        true
    }

    /// Routes `message` to every matching queue.
    fn deliver(&mut self, inner: &Arc<Inner>, message: Stored) -> Result<Routed> {
        let targets = self.route(&message.exchange, &message.routing_key)?;
        let mut refused = false;
        for queue in &targets {
            refused |= !self.enqueue(inner, queue, message.clone());
        }
        Ok(Routed {
            queues: targets.len(),
            refused,
        })
    }
}

/// Where a published message went.
struct Routed {
    /// How many queues it matched.
    queues: usize,
    /// Whether a full queue (`reject-publish`) refused it; RabbitMQ then nacks the publish,
    /// while the other matching queues keep their copy.
    refused: bool,
}

fn expire(inner: &Arc<Inner>, queue: &str, seq: u64) {
    let mut state = inner.lock();
    let Some(q) = state.queues.get_mut(queue) else {
        return;
    };
    let Some(message) = q.remove(seq) else {
        return;
    };
    dead_letter(&mut state, inner, queue, message, "an expired message");
}

/// Sends `message`, taken off `queue`, to the queue's dead-letter exchange; without one it
/// is dropped, like RabbitMQ does. `what` names it in the log.
fn dead_letter(
    state: &mut State,
    inner: &Arc<Inner>,
    queue: &str,
    mut message: Stored,
    what: &str,
) {
    let Some(q) = state.queues.get(queue) else {
        return;
    };
    let dlx = q.spec.dead_letter_exchange.clone();
    let dlrk = q.spec.dead_letter_routing_key.clone();
    if let Some(dlx) = dlx {
        if let Some(key) = dlrk {
            message.routing_key = key;
        }
        message.exchange = dlx;
        message.redelivered = false;
        // Like RabbitMQ, a dead letter with nowhere to go, or refused by a full queue, is
        // dropped: counted, and logged.
        let (exchange, key) = (message.exchange.clone(), message.routing_key.clone());
        let delivered = state
            .deliver(inner, message)
            .is_ok_and(|routed| routed.queues > 0 && !routed.refused);
        if !delivered {
            state.dead_letters_dropped += 1;
            tracing::warn!(
                queue,
                dead_letter_exchange = %exchange,
                routing_key = %key,
                "dropped {what}: its dead-letter queue is full or missing"
            );
        }
    }
}

struct MemoryAcker {
    inner: Weak<Inner>,
    queue: String,
    message: Option<Stored>,
    _permit: OwnedSemaphorePermit,
}

impl MemoryAcker {
    fn give_back(&mut self) {
        let (Some(inner), Some(mut message)) = (self.inner.upgrade(), self.message.take()) else {
            return;
        };
        let mut state = inner.lock();
        if let Some(q) = state.queues.get_mut(&self.queue) {
            message.returns = message.returns.saturating_add(1);
            if q.spec.queue_type == QueueType::Quorum {
                // A quorum queue counts deliveries, says so in a header, and past its
                // `x-delivery-limit` dead-letters the message instead of delivering it again.
                message
                    .headers
                    .insert("x-delivery-count".into(), message.returns.to_string());
                if q.spec
                    .delivery_limit
                    .is_some_and(|limit| message.returns > limit)
                {
                    message.redelivered = false;
                    dead_letter(
                        &mut state,
                        &inner,
                        &self.queue,
                        message,
                        "a message past its delivery limit",
                    );
                    return;
                }
            }
            message.redelivered = true;
            let level = q.level_of(message.priority);
            // Back where it was: it was counted in the bound when it was queued, so a
            // redelivery is never refused.
            q.bytes += message.body.len();
            q.levels.entry(level).or_default().push_front(message);
            q.notify.notify_waiters();
        }
    }
}

impl Drop for MemoryAcker {
    fn drop(&mut self) {
        // Dropped without a decision: like a closed AMQP channel, redeliver.
        self.give_back();
    }
}

#[async_trait]
impl Acknowledge for MemoryAcker {
    async fn ack(mut self: Box<Self>) -> Result<()> {
        self.message = None;
        Ok(())
    }

    async fn requeue(mut self: Box<Self>) -> Result<()> {
        self.give_back();
        Ok(())
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Broker for MemoryBroker {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn memory_stats(&self) -> Option<MemoryBrokerStats> {
        Some(self.stats())
    }

    async fn declare_exchange(&self, spec: &ExchangeSpec) -> Result<()> {
        let mut state = self.inner.lock();
        if state.closed {
            return Err(closed());
        }
        state.declare_exchange(spec)
    }

    async fn declare_queue(&self, spec: &QueueSpec) -> Result<()> {
        let mut state = self.inner.lock();
        if state.closed {
            return Err(closed());
        }
        state.declare_queue(spec)
    }

    async fn bind(&self, binding: &BindingSpec) -> Result<()> {
        let mut state = self.inner.lock();
        if state.closed {
            return Err(closed());
        }
        state.bind(binding)
    }

    async fn delete_queue(&self, name: &str) -> Result<()> {
        let mut state = self.inner.lock();
        if let Some(q) = state.queues.remove(name) {
            q.notify.notify_waiters();
        }
        for exchange in state.exchanges.values_mut() {
            exchange.bindings.retain(|(queue, _)| queue != name);
        }
        Ok(())
    }

    async fn delete_exchange(&self, name: &str) -> Result<()> {
        self.inner.lock().exchanges.remove(name);
        Ok(())
    }

    async fn publish(&self, publication: Publication) -> Result<()> {
        let mut state = self.inner.lock();
        if state.closed {
            return Err(closed());
        }
        let mandatory = publication.mandatory;
        let message = Stored {
            seq: 0,
            body: publication.body,
            exchange: publication.exchange,
            routing_key: publication.routing_key,
            message_id: publication.message_id,
            priority: publication.priority,
            headers: publication.headers,
            redelivered: false,
            returns: 0,
        };
        let (exchange, key) = (message.exchange.clone(), message.routing_key.clone());
        let routed = state.deliver(&self.inner, message)?;
        if routed.queues == 0 && mandatory {
            return Err(Error::Unroutable {
                exchange,
                routing_key: key,
                reply: "NO_ROUTE".into(),
            });
        }
        if routed.refused {
            return Err(Error::Nacked {
                exchange,
                routing_key: key,
            });
        }
        Ok(())
    }

    async fn publish_batch(&self, publications: Vec<Publication>) -> Vec<Result<()>> {
        let mut results = Vec::with_capacity(publications.len());
        for publication in publications {
            results.push(self.publish(publication).await);
        }
        results
    }

    async fn subscribe(&self, queue: &str, prefetch: u16) -> Result<DeliveryStream> {
        {
            let state = self.inner.lock();
            if state.closed {
                return Err(closed());
            }
            if !state.queues.contains_key(queue) {
                return Err(Error::not_found("queue", queue));
            }
        }
        let window = Arc::new(Semaphore::new(usize::from(prefetch.max(1))));
        let start = (Arc::downgrade(&self.inner), queue.to_owned(), window);
        let stream = futures::stream::unfold(start, |(weak, queue, window)| async move {
            let permit = window.clone().acquire_owned().await.ok()?;
            loop {
                let inner = weak.upgrade()?;
                let notify = {
                    let mut state = inner.lock();
                    if state.closed {
                        return None;
                    }
                    // A deleted queue ends the subscription, as RabbitMQ cancels consumers.
                    let q = state.queues.get_mut(&queue)?;
                    if let Some(message) = q.pop() {
                        let (body, exchange, routing_key, message_id, headers) = (
                            message.body.clone(),
                            message.exchange.clone(),
                            message.routing_key.clone(),
                            message.message_id.clone(),
                            message.headers.clone(),
                        );
                        let (priority, redelivered) = (message.priority, message.redelivered);
                        let mut delivery = Delivery::new(
                            body,
                            Box::new(MemoryAcker {
                                inner: weak.clone(),
                                queue: queue.clone(),
                                message: Some(message),
                                _permit: permit,
                            }),
                        );
                        delivery.exchange = exchange;
                        delivery.routing_key = routing_key;
                        delivery.message_id = message_id;
                        delivery.priority = priority;
                        delivery.headers = headers;
                        delivery.redelivered = redelivered;
                        drop(state);
                        return Some((Ok(delivery), (weak, queue, window)));
                    }
                    q.notify.clone()
                };
                let notified = notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                // Re-check after registering so a message queued in between is not missed.
                let ready = {
                    let state = inner.lock();
                    state.closed || state.queues.get(&queue).is_none_or(|q| q.len() > 0)
                };
                drop(inner);
                if !ready {
                    notified.await;
                }
            }
        });
        Ok(stream.boxed())
    }

    async fn queue_depth(&self, queue: &str) -> Result<u64> {
        let state = self.inner.lock();
        state
            .queues
            .get(queue)
            .map(|q| q.len() as u64)
            .ok_or_else(|| Error::not_found("queue", queue))
    }

    async fn close(&self) -> Result<()> {
        let mut state = self.inner.lock();
        state.closed = true;
        for q in state.queues.values() {
            q.notify.notify_waiters();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn topic_patterns() {
        assert!(topic_matches("notification.#", "notification.email"));
        assert!(topic_matches("notification.#", "notification"));
        assert!(topic_matches("notification.*", "notification.sms"));
        assert!(!topic_matches("notification.*", "notification.sms.urgent"));
        assert!(topic_matches("#.urgent", "notification.sms.urgent"));
        assert!(topic_matches("*.sms.*", "notification.sms.urgent"));
        assert!(!topic_matches("notification.email", "notification.sms"));
        assert!(topic_matches("#", ""));
    }
}
