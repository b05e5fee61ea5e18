//! What a broker must hold, as data: exchanges, queues and bindings ([`Declarations`]), the
//! delay queues of retries ([`RetryPolicy`]) and where dead letters go ([`DeadLetterRoute`]).
//! Nothing here knows an application's names; an application builds its own set (for mod8,
//! [`Topology::declarations`](crate::domain::Topology::declarations)).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How an exchange routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeKind {
    /// To queues whose binding key equals the routing key.
    Direct,
    /// To queues whose binding pattern matches (`*` one word, `#` zero or more words).
    Topic,
    /// To every bound queue.
    Fanout,
}

/// An exchange to declare. Always durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeSpec {
    /// Name.
    pub name: String,
    /// Routing behaviour.
    pub kind: ExchangeKind,
}

impl ExchangeSpec {
    /// An exchange named `name` routing as `kind`.
    pub fn new(name: impl Into<String>, kind: ExchangeKind) -> Self {
        ExchangeSpec {
            name: name.into(),
            kind,
        }
    }
}

/// The kind of queue RabbitMQ keeps ([`QueueSpec::queue_type`], `x-queue-type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueType {
    /// A classic queue: lives on the one node that declared it (unavailable while that node is
    /// down); the only kind with priorities ([`QueueSpec::max_priority`]) in RabbitMQ 3.10.
    #[default]
    Classic,
    /// A quorum queue (`x-queue-type: quorum`): replicated (Raft) over the cluster's nodes,
    /// it keeps serving while a majority of them is up. In RabbitMQ 3.10 it has no priorities
    /// (a spec with [`QueueSpec::max_priority`] is refused; such queues stay classic); it has a
    /// delivery count ([`QueueSpec::delivery_limit`]), message TTL, `x-max-length` with
    /// `reject-publish`, and at-least-once dead-lettering
    /// ([`DeadLetterStrategy::AtLeastOnce`]). The in-process broker keeps the same rules.
    Quorum,
}

impl QueueType {
    /// The `x-queue-type` value: `classic` or `quorum`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

/// How a quorum queue dead-letters ([`QueueSpec::dead_letter_strategy`],
/// `x-dead-letter-strategy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterStrategy {
    /// RabbitMQ's default: a dead letter is published once, without a confirm; one the target
    /// does not take (missing, full, a node down) is lost.
    #[default]
    AtMostOnce,
    /// `x-dead-letter-strategy: at-least-once` (RabbitMQ 3.10 and later, quorum queues only):
    /// the source queue keeps a dead letter until the target queue confirms it, retrying, so
    /// none is lost (one may arrive twice). RabbitMQ requires `x-overflow: reject-publish`
    /// on the source queue for it (otherwise it quietly falls back to at-most-once), so such a
    /// queue is always declared with it; and the `stream_queue` feature flag, on by default
    /// in clusters created with 3.9 or later.
    AtLeastOnce,
}

/// A queue to declare. Always durable.
///
/// Priorities and quorum queues do not mix in RabbitMQ 3.10: a priority queue
/// ([`QueueSpec::max_priority`]) is a classic queue, and declaring a
/// [`QueueType::Quorum`] spec with a priority ceiling is an
/// [`Error::Validation`](crate::Error::Validation), as are the quorum-only settings
/// ([`QueueSpec::delivery_limit`], [`DeadLetterStrategy::AtLeastOnce`]) on a classic queue
/// (RabbitMQ would ignore them there without a word).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSpec {
    /// Name.
    pub name: String,
    /// `x-max-priority`: highest priority honoured (priorities above are treated as this).
    pub max_priority: Option<u8>,
    /// `x-message-ttl`: messages expire after this long (used by retry queues).
    pub message_ttl: Option<Duration>,
    /// `x-dead-letter-exchange`: where expired messages go (`""` is the default exchange).
    pub dead_letter_exchange: Option<String>,
    /// `x-dead-letter-routing-key`: routing key for dead-lettered messages.
    pub dead_letter_routing_key: Option<String>,
    /// `x-max-length` with `x-overflow: reject-publish`: at most this many ready messages;
    /// a publish to a full queue is refused, which a confirmed publish reports as
    /// [`Error::Nacked`](crate::Error::Nacked). (RabbitMQ's default overflow, `drop-head`,
    /// would silently discard the oldest message, so it is never used.) `None`: unbounded.
    #[serde(default)]
    pub max_length: Option<u32>,
    /// `x-queue-type`: classic (the default) or quorum.
    #[serde(default)]
    pub queue_type: QueueType,
    /// `x-delivery-limit` (quorum queues): a message handed back (requeued, or unsettled when
    /// its consumer's channel closed) more than this many times is dead-lettered (to
    /// [`QueueSpec::dead_letter_exchange`]; dropped when there is none) instead of being
    /// delivered again. The broker keeps the count (`x-delivery-count` header on redeliveries),
    /// so a message that crashes every consumer cannot loop forever. `None`: no limit.
    #[serde(default)]
    pub delivery_limit: Option<u32>,
    /// `x-dead-letter-strategy` (quorum queues): at-most-once (the default) or at-least-once.
    #[serde(default)]
    pub dead_letter_strategy: DeadLetterStrategy,
}

impl QueueSpec {
    /// A plain durable queue.
    pub fn named(name: impl Into<String>) -> Self {
        QueueSpec {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Sets `x-max-priority`.
    pub fn with_max_priority(mut self, max: u8) -> Self {
        self.max_priority = Some(max);
        self
    }

    /// Bounds the queue to `max` ready messages; publishes beyond are refused (see
    /// [`QueueSpec::max_length`]).
    pub fn with_max_length(mut self, max: u32) -> Self {
        self.max_length = Some(max);
        self
    }

    /// Makes it a quorum queue ([`QueueType::Quorum`]).
    pub fn quorum(mut self) -> Self {
        self.queue_type = QueueType::Quorum;
        self
    }

    /// Sets `x-delivery-limit` (quorum queues; see [`QueueSpec::delivery_limit`]).
    pub fn with_delivery_limit(mut self, limit: u32) -> Self {
        self.delivery_limit = Some(limit);
        self
    }

    /// Sends dead letters to `exchange` with `routing_key` (`x-dead-letter-exchange`,
    /// `x-dead-letter-routing-key`).
    pub fn with_dead_letter(
        mut self,
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
    ) -> Self {
        self.dead_letter_exchange = Some(exchange.into());
        self.dead_letter_routing_key = Some(routing_key.into());
        self
    }

    /// Sets `x-dead-letter-strategy` (quorum queues; see [`DeadLetterStrategy`]).
    pub fn with_dead_letter_strategy(mut self, strategy: DeadLetterStrategy) -> Self {
        self.dead_letter_strategy = strategy;
        self
    }

    /// Whether the spec is one RabbitMQ 3.10 can declare as meant: a quorum queue without
    /// priorities; quorum-only settings only on a quorum queue; at-least-once dead-lettering
    /// only with somewhere to dead-letter to. Otherwise an
    /// [`Error::Validation`](crate::Error::Validation) naming the queue argument.
    pub fn validate(&self) -> crate::Result<()> {
        let refuse = |field: &str, message: String| {
            Err(crate::Error::validation(
                field,
                format!("queue '{}': {message}", self.name),
            ))
        };
        match self.queue_type {
            QueueType::Quorum if self.max_priority.is_some() => refuse(
                "x-max-priority",
                "quorum queues have no priorities (RabbitMQ 3.10); a priority queue must \
                 stay classic"
                    .into(),
            ),
            QueueType::Classic if self.delivery_limit.is_some() => refuse(
                "x-delivery-limit",
                "only quorum queues count deliveries; declare it as a quorum queue".into(),
            ),
            QueueType::Classic if self.dead_letter_strategy == DeadLetterStrategy::AtLeastOnce => {
                refuse(
                    "x-dead-letter-strategy",
                    "at-least-once dead-lettering needs a quorum queue".into(),
                )
            }
            _ if self.dead_letter_strategy == DeadLetterStrategy::AtLeastOnce
                && self.dead_letter_exchange.is_none() =>
            {
                refuse(
                    "x-dead-letter-strategy",
                    "at-least-once dead-lettering needs a dead-letter exchange".into(),
                )
            }
            _ => Ok(()),
        }
    }
}

/// A queue bound to an exchange with a key (ignored by fanout exchanges).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingSpec {
    /// Queue name.
    pub queue: String,
    /// Exchange name.
    pub exchange: String,
    /// Binding key or topic pattern.
    pub key: String,
}

impl BindingSpec {
    /// Binds `queue` to `exchange` with `key`.
    pub fn new(
        queue: impl Into<String>,
        exchange: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        BindingSpec {
            queue: queue.into(),
            exchange: exchange.into(),
            key: key.into(),
        }
    }
}

/// A set of exchanges, queues and bindings a broker declares on connect and declares again
/// after every reconnect. Declared in this order: every exchange, every queue, every binding
/// (each list in its own order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declarations {
    /// Exchanges.
    #[serde(default)]
    pub exchanges: Vec<ExchangeSpec>,
    /// Queues.
    #[serde(default)]
    pub queues: Vec<QueueSpec>,
    /// Bindings.
    #[serde(default)]
    pub bindings: Vec<BindingSpec>,
}

impl Declarations {
    /// An empty set.
    pub fn new() -> Self {
        Declarations::default()
    }

    /// Adds an exchange.
    pub fn with_exchange(mut self, exchange: ExchangeSpec) -> Self {
        self.exchanges.push(exchange);
        self
    }

    /// Adds a queue.
    pub fn with_queue(mut self, queue: QueueSpec) -> Self {
        self.queues.push(queue);
        self
    }

    /// Adds a binding.
    pub fn with_binding(mut self, binding: BindingSpec) -> Self {
        self.bindings.push(binding);
        self
    }

    /// Adds everything in `other` after what is already here.
    pub fn with_declarations(mut self, other: Declarations) -> Self {
        self.exchanges.extend(other.exchanges);
        self.queues.extend(other.queues);
        self.bindings.extend(other.bindings);
        self
    }

    /// Whether there is nothing to declare.
    pub fn is_empty(&self) -> bool {
        self.exchanges.is_empty() && self.queues.is_empty() && self.bindings.is_empty()
    }
}

/// Growing delays between retries: `base * 2^n` for the n-th retry (n from 0), at most `cap`.
///
/// A retried message waits in a delay queue ([`RetryPolicy::retry_queue`]) whose TTL is the
/// delay and whose dead-letter target is the work queue again, so nothing sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub base: Duration,
    /// Longest delay.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// 1 s, 2 s, 4 s, … up to 5 minutes.
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay queue for retry number `retry` of messages from `queue`
    /// (`<queue>.retry.<ms>ms`): its messages expire after [`RetryPolicy::delay`] and are
    /// dead-lettered back to `queue` through the default exchange. Nothing consumes it, so
    /// nobody sleeps.
    pub fn retry_queue(&self, queue: &str, retry: u32) -> QueueSpec {
        self.retry_queue_as(queue, retry, QueueType::Classic)
    }

    /// [`RetryPolicy::retry_queue`] as a queue of `queue_type`: a quorum delay queue also
    /// dead-letters at least once ([`DeadLetterStrategy::AtLeastOnce`]), so a message whose
    /// delay is over reaches its work queue again even across a node failure.
    pub fn retry_queue_as(&self, queue: &str, retry: u32, queue_type: QueueType) -> QueueSpec {
        let delay = self.delay(retry);
        let spec = QueueSpec {
            name: format!("{queue}.retry.{}ms", delay.as_millis()),
            max_priority: None,
            message_ttl: Some(delay),
            dead_letter_exchange: Some(String::new()),
            dead_letter_routing_key: Some(queue.to_owned()),
            ..QueueSpec::default()
        };
        match queue_type {
            QueueType::Classic => spec,
            QueueType::Quorum => spec
                .quorum()
                .with_dead_letter_strategy(DeadLetterStrategy::AtLeastOnce),
        }
    }

    /// The distinct delay queues of the first `max_retries` retries of `queue`, in order
    /// (capped delays repeat, and one queue serves them all).
    pub fn retry_queues(&self, queue: &str, max_retries: u32) -> Vec<QueueSpec> {
        self.retry_queues_as(queue, max_retries, QueueType::Classic)
    }

    /// [`RetryPolicy::retry_queues`] as queues of `queue_type` (see
    /// [`RetryPolicy::retry_queue_as`]).
    pub fn retry_queues_as(
        &self,
        queue: &str,
        max_retries: u32,
        queue_type: QueueType,
    ) -> Vec<QueueSpec> {
        let mut specs: Vec<QueueSpec> = Vec::new();
        for retry in 0..max_retries {
            let spec = self.retry_queue_as(queue, retry, queue_type);
            if !specs.iter().any(|s| s.name == spec.name) {
                specs.push(spec);
            }
        }
        specs
    }
}

/// Where a consumer publishes the messages it gives up on: an exchange and a routing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterRoute {
    /// Exchange dead letters are published to.
    pub exchange: String,
    /// Their routing key.
    pub routing_key: String,
}

impl DeadLetterRoute {
    /// Dead letters go to `exchange` with `routing_key`.
    pub fn new(exchange: impl Into<String>, routing_key: impl Into<String>) -> Self {
        DeadLetterRoute {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
        }
    }
}

impl Default for DeadLetterRoute {
    /// Exchange `dead_letter`, routing key `dlq`: the names
    /// [`Topology::default`](crate::domain::Topology::default) declares.
    fn default() -> Self {
        DeadLetterRoute::new("dead_letter", "dlq")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_specs_are_checked() {
        let ok = [
            QueueSpec::named("q"),
            QueueSpec::named("q").with_max_priority(10),
            QueueSpec::named("q").quorum(),
            QueueSpec::named("q")
                .quorum()
                .with_delivery_limit(3)
                .with_dead_letter("dlx", "dlq")
                .with_dead_letter_strategy(DeadLetterStrategy::AtLeastOnce),
        ];
        for spec in ok {
            assert!(spec.validate().is_ok(), "{spec:?}");
        }
        let refused = [
            (
                QueueSpec::named("q").quorum().with_max_priority(10),
                "x-max-priority",
            ),
            (
                QueueSpec::named("q").with_delivery_limit(3),
                "x-delivery-limit",
            ),
            (
                QueueSpec::named("q")
                    .with_dead_letter("dlx", "dlq")
                    .with_dead_letter_strategy(DeadLetterStrategy::AtLeastOnce),
                "x-dead-letter-strategy",
            ),
            (
                QueueSpec::named("q")
                    .quorum()
                    .with_dead_letter_strategy(DeadLetterStrategy::AtLeastOnce),
                "x-dead-letter-strategy",
            ),
        ];
        for (spec, argument) in refused {
            let err = spec.validate().unwrap_err();
            assert!(
                matches!(&err, crate::Error::Validation { field, message }
                    if field == argument && message.contains("'q'")),
                "{spec:?}: {err:?}"
            );
        }
        // Specs written before these fields existed still load, as classic queues.
        let old: QueueSpec = serde_json::from_str(
            r#"{"name":"q","max_priority":null,
            "message_ttl":null,"dead_letter_exchange":null,"dead_letter_routing_key":null}"#,
        )
        .unwrap();
        assert_eq!(old, QueueSpec::named("q"));
    }

    #[test]
    fn delays_double_and_cap() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(500),
        };
        assert_eq!(p.delay(0), Duration::from_millis(100));
        assert_eq!(p.delay(1), Duration::from_millis(200));
        assert_eq!(p.delay(2), Duration::from_millis(400));
        assert_eq!(p.delay(3), Duration::from_millis(500));
        assert_eq!(p.delay(u32::MAX), Duration::from_millis(500));
        assert_eq!(RetryPolicy::default().delay(2), Duration::from_secs(4));
    }
}
