//! What the broker must hold: exchanges, queues, bindings, retry (delay) queues and the
//! dead-letter queue. Names are configurable; the defaults are the production names.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::message::DEFAULT_MAX_RETRIES;

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

/// Growing delays between retries: `base * 2^n` for the n-th retry (n from 0), at most `cap`.
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
}

/// Header naming why a message was dead-lettered.
pub const HEADER_REASON: &str = "x-mod8-reason";
/// Header with the number of processing attempts a dead-lettered message had.
pub const HEADER_ATTEMPTS: &str = "x-mod8-attempts";
/// Header naming the queue a dead-lettered message came from.
pub const HEADER_ORIGINAL_QUEUE: &str = "x-mod8-original-queue";

/// The declared topology: names of every exchange and queue, the priority ceiling and the
/// retry policy. [`Topology::default`] gives the production names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Direct exchange for user data (`data_processing`).
    pub data_exchange: String,
    /// Queue for user data (`user_data_queue`).
    pub user_data_queue: String,
    /// Routing key of user data (`user_data`).
    pub user_data_key: String,
    /// Topic exchange for notifications (`notifications`).
    pub notifications_exchange: String,
    /// Queue for notifications (`notification_queue`), bound with `notification.#`.
    pub notification_queue: String,
    /// Fanout exchange for analytics (`analytics`).
    pub analytics_exchange: String,
    /// Queue for analytics (`analytics_queue`).
    pub analytics_queue: String,
    /// Exchange dead letters are published to (`dead_letter`, direct).
    pub dead_letter_exchange: String,
    /// The dead-letter queue (`dlq`).
    pub dead_letter_queue: String,
    /// `x-max-priority` of the work queues (10).
    pub max_priority: u8,
    /// Delays between retries.
    pub retry: RetryPolicy,
    /// Retries whose delay queues are declared with the topology, for each work queue
    /// (default [`DEFAULT_MAX_RETRIES`], the envelopes' default `max_retries`). A message
    /// allowed more retries gets its further delay queues declared on first use.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
}

fn default_max_retries() -> u32 {
    DEFAULT_MAX_RETRIES
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            data_exchange: "data_processing".into(),
            user_data_queue: "user_data_queue".into(),
            user_data_key: "user_data".into(),
            notifications_exchange: "notifications".into(),
            notification_queue: "notification_queue".into(),
            analytics_exchange: "analytics".into(),
            analytics_queue: "analytics_queue".into(),
            dead_letter_exchange: "dead_letter".into(),
            dead_letter_queue: "dlq".into(),
            max_priority: 10,
            retry: RetryPolicy::default(),
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }
}

impl Topology {
    /// The default topology with every name prefixed by `prefix` and `.` (for tests and for
    /// several applications sharing one virtual host).
    pub fn with_prefix(prefix: &str) -> Self {
        let d = Topology::default();
        let p = |name: String| format!("{prefix}.{name}");
        Topology {
            data_exchange: p(d.data_exchange),
            user_data_queue: p(d.user_data_queue),
            user_data_key: d.user_data_key,
            notifications_exchange: p(d.notifications_exchange),
            notification_queue: p(d.notification_queue),
            analytics_exchange: p(d.analytics_exchange),
            analytics_queue: p(d.analytics_queue),
            dead_letter_exchange: p(d.dead_letter_exchange),
            dead_letter_queue: p(d.dead_letter_queue),
            max_priority: d.max_priority,
            retry: d.retry,
            max_retries: d.max_retries,
        }
    }

    /// Sets how many retries get their delay queues declared with the topology (see
    /// [`Topology::max_retries`]).
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Routing key of a notification sent through `channel`: `notification.<channel>`.
    pub fn notification_key(channel: crate::message::NotificationChannel) -> String {
        format!("notification.{}", channel.as_str())
    }

    /// The exchanges, in declaration order.
    pub fn exchanges(&self) -> Vec<ExchangeSpec> {
        let ex = |name: &str, kind| ExchangeSpec {
            name: name.to_owned(),
            kind,
        };
        vec![
            ex(&self.data_exchange, ExchangeKind::Direct),
            ex(&self.notifications_exchange, ExchangeKind::Topic),
            ex(&self.analytics_exchange, ExchangeKind::Fanout),
            ex(&self.dead_letter_exchange, ExchangeKind::Direct),
        ]
    }

    /// A work queue of this topology (priority enabled).
    pub fn work_queue(&self, name: &str) -> QueueSpec {
        QueueSpec::named(name).with_max_priority(self.max_priority)
    }

    /// The queues, in declaration order.
    pub fn queues(&self) -> Vec<QueueSpec> {
        vec![
            self.work_queue(&self.user_data_queue),
            self.work_queue(&self.notification_queue),
            self.work_queue(&self.analytics_queue),
            QueueSpec::named(&self.dead_letter_queue),
        ]
    }

    /// The bindings, in declaration order.
    pub fn bindings(&self) -> Vec<BindingSpec> {
        let b = |queue: &str, exchange: &str, key: &str| BindingSpec {
            queue: queue.to_owned(),
            exchange: exchange.to_owned(),
            key: key.to_owned(),
        };
        vec![
            b(
                &self.user_data_queue,
                &self.data_exchange,
                &self.user_data_key,
            ),
            b(
                &self.notification_queue,
                &self.notifications_exchange,
                "notification.#",
            ),
            b(&self.analytics_queue, &self.analytics_exchange, ""),
            b(
                &self.dead_letter_queue,
                &self.dead_letter_exchange,
                &self.dead_letter_queue,
            ),
        ]
    }

    /// The delay queue for retry number `retry` of messages from `queue`: its messages
    /// expire after [`RetryPolicy::delay`] and are dead-lettered back to `queue` through the
    /// default exchange. Nothing consumes it, so nobody sleeps.
    pub fn retry_queue(&self, queue: &str, retry: u32) -> QueueSpec {
        let delay = self.retry.delay(retry);
        QueueSpec {
            name: format!("{queue}.retry.{}ms", delay.as_millis()),
            max_priority: None,
            message_ttl: Some(delay),
            dead_letter_exchange: Some(String::new()),
            dead_letter_routing_key: Some(queue.to_owned()),
            max_length: None,
        }
    }

    /// The delay queues declared with the topology: one per distinct delay of the first
    /// [`Topology::max_retries`] retries of each work queue, in declaration order.
    pub fn retry_queues(&self) -> Vec<QueueSpec> {
        let mut specs: Vec<QueueSpec> = Vec::new();
        for queue in [
            &self.user_data_queue,
            &self.notification_queue,
            &self.analytics_queue,
        ] {
            for retry in 0..self.max_retries {
                let spec = self.retry_queue(queue, retry);
                // Capped delays repeat: one queue serves them all.
                if !specs.iter().any(|s| s.name == spec.name) {
                    specs.push(spec);
                }
            }
        }
        specs
    }

    /// Every queue name this topology can create for `queue`'s retries with up to
    /// `max_retries` retries (for teardown).
    pub fn retry_queue_names(&self, queue: &str, max_retries: u32) -> Vec<String> {
        let mut names: Vec<String> = (0..max_retries)
            .map(|n| self.retry_queue(queue, n).name)
            .collect();
        names.dedup();
        names
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

    #[test]
    fn retry_queues_cover_max_retries_of_each_work_queue() {
        let t = Topology::default()
            .with_retry(RetryPolicy {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(2),
            })
            .with_max_retries(3);
        let names: Vec<String> = t.retry_queues().into_iter().map(|q| q.name).collect();
        // Delays 1 s, 2 s, 2 s (capped): two queues per work queue.
        assert_eq!(
            names,
            [
                "user_data_queue.retry.1000ms",
                "user_data_queue.retry.2000ms",
                "notification_queue.retry.1000ms",
                "notification_queue.retry.2000ms",
                "analytics_queue.retry.1000ms",
                "analytics_queue.retry.2000ms",
            ]
        );
        assert!(Topology::default()
            .with_max_retries(0)
            .retry_queues()
            .is_empty());
        // Configurations written before the field existed still load, with the default.
        let mut json = serde_json::to_value(Topology::default()).unwrap();
        json.as_object_mut().unwrap().remove("max_retries");
        let back: Topology = serde_json::from_value(json).unwrap();
        assert_eq!(back.max_retries, crate::message::DEFAULT_MAX_RETRIES);
    }
}
