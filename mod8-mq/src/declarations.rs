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

/// A queue to declare. Always durable.
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
        let delay = self.delay(retry);
        QueueSpec {
            name: format!("{queue}.retry.{}ms", delay.as_millis()),
            max_priority: None,
            message_ttl: Some(delay),
            dead_letter_exchange: Some(String::new()),
            dead_letter_routing_key: Some(queue.to_owned()),
            max_length: None,
        }
    }

    /// The distinct delay queues of the first `max_retries` retries of `queue`, in order
    /// (capped delays repeat, and one queue serves them all).
    pub fn retry_queues(&self, queue: &str, max_retries: u32) -> Vec<QueueSpec> {
        let mut specs: Vec<QueueSpec> = Vec::new();
        for retry in 0..max_retries {
            let spec = self.retry_queue(queue, retry);
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
