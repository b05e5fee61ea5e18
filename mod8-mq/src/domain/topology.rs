//! mod8's own exchanges and queues: names (configurable; the defaults are the production
//! names), the priority ceiling, the retry delays, and the [`Declarations`] they make.

use serde::{Deserialize, Serialize};

use crate::broker::Broker;
use crate::declarations::{
    BindingSpec, DeadLetterRoute, DeadLetterStrategy, Declarations, ExchangeKind, ExchangeSpec,
    QueueSpec, QueueType, RetryPolicy,
};
use crate::domain::messages::{Notification, NotificationChannel};
use crate::envelope::{Payload, DEFAULT_MAX_RETRIES};
use crate::error::Result;
use crate::producer::Route;
use crate::runner::{Consumer, Handler};
use crate::DynBroker;

/// mod8's topology: names of every exchange and queue, the priority ceiling and the retry
/// policy. [`Topology::default`] gives the production names; [`Topology::declarations`] is
/// what a broker declares for it.
///
/// # Quorum queues
///
/// [`Topology::with_quorum_queues`] (for a RabbitMQ cluster) declares the user data and
/// analytics queues, the dead-letter queue and the retry delay queues as quorum queues,
/// replicated over the cluster's nodes:
///
/// - the work queues count deliveries: a message handed back more than
///   [`Topology::delivery_limit`] times (requeued, or unsettled when its consumer died) is
///   dead-lettered by the broker to the dead-letter exchange (`dlq`), at least once
///   ([`DeadLetterStrategy::AtLeastOnce`], which RabbitMQ 3.10 added and which needs
///   `x-overflow: reject-publish`, so such a queue refuses publishes when bounded and full
///   rather than dropping its oldest message). Such dead letters carry RabbitMQ's `x-death`
///   header, not the consumer's `x-mod8-reason`;
/// - the delay queues expire messages back to their work queue at least once too;
/// - **the notification queue stays a classic priority queue**: quorum queues have no
///   priorities in RabbitMQ 3.10, and urgent notifications must jump the queue. It lives on
///   the node that declared it and is unavailable while that node is down. Urgency on user
///   data and analytics has no effect with quorum queues (they are handled in turn).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Direct exchange for user data (`data_processing`).
    pub data_exchange: String,
    /// Queue for user data (`user_data_queue`).
    pub user_data_queue: String,
    /// Routing key of user data (`user_data`).
    pub user_data_key: String,
    /// Queue for catalog product events (`product_events_queue`), bound to the data exchange
    /// with [`Topology::product_events_key`].
    #[serde(default = "default_product_events_queue")]
    pub product_events_queue: String,
    /// Routing key of product events on the data exchange (`product.updated`).
    #[serde(default = "default_product_events_key")]
    pub product_events_key: String,
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
    /// Classic queues (the default) or quorum queues for a cluster (see
    /// [Quorum queues](#quorum-queues)).
    #[serde(default)]
    pub queue_type: QueueType,
    /// With quorum queues, the work queues' `x-delivery-limit` (default
    /// [`DEFAULT_DELIVERY_LIMIT`]); ignored with classic queues.
    #[serde(default = "default_delivery_limit")]
    pub delivery_limit: u32,
}

/// The work queues' `x-delivery-limit` with quorum queues: a message handed back more often is
/// dead-lettered.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 10;

fn default_max_retries() -> u32 {
    DEFAULT_MAX_RETRIES
}

fn default_delivery_limit() -> u32 {
    DEFAULT_DELIVERY_LIMIT
}

fn default_product_events_queue() -> String {
    "product_events_queue".into()
}

fn default_product_events_key() -> String {
    "product.updated".into()
}

impl Default for Topology {
    fn default() -> Self {
        let dead_letter = DeadLetterRoute::default();
        Topology {
            data_exchange: "data_processing".into(),
            user_data_queue: "user_data_queue".into(),
            user_data_key: "user_data".into(),
            product_events_queue: default_product_events_queue(),
            product_events_key: default_product_events_key(),
            notifications_exchange: "notifications".into(),
            notification_queue: "notification_queue".into(),
            analytics_exchange: "analytics".into(),
            analytics_queue: "analytics_queue".into(),
            dead_letter_exchange: dead_letter.exchange,
            dead_letter_queue: dead_letter.routing_key,
            max_priority: 10,
            retry: RetryPolicy::default(),
            max_retries: DEFAULT_MAX_RETRIES,
            queue_type: QueueType::Classic,
            delivery_limit: DEFAULT_DELIVERY_LIMIT,
        }
    }
}

impl Topology {
    /// Routing key of order-placed events on the data exchange.
    pub const ORDER_PLACED_KEY: &'static str = "order.placed";

    /// The default topology with every name prefixed by `prefix` and `.` (for tests and for
    /// several applications sharing one virtual host).
    pub fn with_prefix(prefix: &str) -> Self {
        let d = Topology::default();
        let p = |name: String| format!("{prefix}.{name}");
        Topology {
            data_exchange: p(d.data_exchange),
            user_data_queue: p(d.user_data_queue),
            user_data_key: d.user_data_key,
            product_events_queue: p(d.product_events_queue),
            product_events_key: d.product_events_key,
            notifications_exchange: p(d.notifications_exchange),
            notification_queue: p(d.notification_queue),
            analytics_exchange: p(d.analytics_exchange),
            analytics_queue: p(d.analytics_queue),
            dead_letter_exchange: p(d.dead_letter_exchange),
            dead_letter_queue: p(d.dead_letter_queue),
            max_priority: d.max_priority,
            retry: d.retry,
            max_retries: d.max_retries,
            queue_type: d.queue_type,
            delivery_limit: d.delivery_limit,
        }
    }

    /// Declares quorum queues, for a RabbitMQ cluster (see [Quorum queues](#quorum-queues)).
    pub fn with_quorum_queues(mut self) -> Self {
        self.queue_type = QueueType::Quorum;
        self
    }

    /// Sets the work queues' delivery limit (with quorum queues).
    pub fn with_delivery_limit(mut self, limit: u32) -> Self {
        self.delivery_limit = limit;
        self
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
    pub fn notification_key(channel: NotificationChannel) -> String {
        format!("notification.{}", channel.as_str())
    }

    /// The exchanges, in declaration order.
    pub fn exchanges(&self) -> Vec<ExchangeSpec> {
        vec![
            ExchangeSpec::new(&self.data_exchange, ExchangeKind::Direct),
            ExchangeSpec::new(&self.notifications_exchange, ExchangeKind::Topic),
            ExchangeSpec::new(&self.analytics_exchange, ExchangeKind::Fanout),
            ExchangeSpec::new(&self.dead_letter_exchange, ExchangeKind::Direct),
        ]
    }

    /// A work queue of this topology: with classic queues, priorities enabled (as
    /// [`Topology::priority_queue`]); with quorum queues, a quorum queue whose deliveries are
    /// limited to [`Topology::delivery_limit`], then dead-lettered at least once to the
    /// dead-letter queue.
    pub fn work_queue(&self, name: &str) -> QueueSpec {
        match self.queue_type {
            QueueType::Classic => self.priority_queue(name),
            QueueType::Quorum => QueueSpec::named(name)
                .quorum()
                .with_delivery_limit(self.delivery_limit)
                .with_dead_letter(&self.dead_letter_exchange, &self.dead_letter_queue)
                .with_dead_letter_strategy(DeadLetterStrategy::AtLeastOnce),
        }
    }

    /// A classic queue with priorities up to [`Topology::max_priority`] (the notification
    /// queue, whatever [`Topology::queue_type`]).
    pub fn priority_queue(&self, name: &str) -> QueueSpec {
        QueueSpec::named(name).with_max_priority(self.max_priority)
    }

    /// The queues, in declaration order (without the retry delay queues).
    pub fn queues(&self) -> Vec<QueueSpec> {
        let dead_letter = QueueSpec::named(&self.dead_letter_queue);
        vec![
            self.work_queue(&self.user_data_queue),
            self.priority_queue(&self.notification_queue),
            self.work_queue(&self.analytics_queue),
            match self.queue_type {
                QueueType::Classic => dead_letter,
                QueueType::Quorum => dead_letter.quorum(),
            },
            self.work_queue(&self.product_events_queue),
        ]
    }

    /// The bindings, in declaration order.
    pub fn bindings(&self) -> Vec<BindingSpec> {
        vec![
            BindingSpec::new(
                &self.user_data_queue,
                &self.data_exchange,
                &self.user_data_key,
            ),
            BindingSpec::new(
                &self.notification_queue,
                &self.notifications_exchange,
                "notification.#",
            ),
            BindingSpec::new(&self.analytics_queue, &self.analytics_exchange, ""),
            BindingSpec::new(
                &self.dead_letter_queue,
                &self.dead_letter_exchange,
                &self.dead_letter_queue,
            ),
            BindingSpec::new(
                &self.product_events_queue,
                &self.data_exchange,
                &self.product_events_key,
            ),
        ]
    }

    /// The delay queues declared with the topology: one per distinct delay of the first
    /// [`Topology::max_retries`] retries of each work queue, in declaration order (see
    /// [`RetryPolicy::retry_queue`]).
    pub fn retry_queues(&self) -> Vec<QueueSpec> {
        let mut specs: Vec<QueueSpec> = Vec::new();
        for queue in [
            &self.user_data_queue,
            &self.notification_queue,
            &self.analytics_queue,
            &self.product_events_queue,
        ] {
            specs.extend(
                self.retry
                    .retry_queues_as(queue, self.max_retries, self.queue_type),
            );
        }
        specs
    }

    /// Everything a broker declares for this topology, on connect and again after every
    /// reconnect: [`exchanges`](Topology::exchanges), [`queues`](Topology::queues) and
    /// [`retry_queues`](Topology::retry_queues), [`bindings`](Topology::bindings).
    pub fn declarations(&self) -> Declarations {
        Declarations {
            exchanges: self.exchanges(),
            queues: self
                .queues()
                .into_iter()
                .chain(self.retry_queues())
                .collect(),
            bindings: self.bindings(),
        }
    }

    /// What to delete to tear the topology down (for tests and teardown, with
    /// [`BrokerExt::delete_all`](crate::BrokerExt::delete_all)): [`Topology::declarations`]
    /// plus the delay queues consumers declare on first use for up to `max_retries` retries
    /// of each work queue.
    pub fn teardown(&self, max_retries: u32) -> Declarations {
        self.clone()
            .with_max_retries(self.max_retries.max(max_retries))
            .declarations()
    }

    /// Where this topology's consumers send dead letters: the dead-letter exchange, keyed by
    /// the dead-letter queue's name.
    pub fn dead_letter_route(&self) -> DeadLetterRoute {
        DeadLetterRoute::new(&self.dead_letter_exchange, &self.dead_letter_queue)
    }

    /// A consumer of `queue` on `broker` that retries with this topology's
    /// [`retry`](Topology::retry) policy and dead-letters along
    /// [`Topology::dead_letter_route`].
    pub fn consumer<T: Payload>(
        &self,
        broker: DynBroker,
        queue: impl Into<String>,
        handler: impl Handler<T>,
    ) -> Consumer<T> {
        Consumer::new(broker, queue, handler)
            .with_retry(self.retry)
            .with_retry_queue_type(self.queue_type)
            .with_dead_letter(self.dead_letter_route())
    }

    /// The route of user data events.
    pub fn user_data_route(&self) -> Route {
        Route::new(self.data_exchange.clone(), self.user_data_key.clone())
    }

    /// The route of catalog product events ([`crate::domain::ProductEvent`]).
    pub fn product_events_route(&self) -> Route {
        Route::new(self.data_exchange.clone(), self.product_events_key.clone())
    }

    /// The route of a notification (`notification.<channel>`, normal priority).
    pub fn notification_route(&self, notification: &Notification) -> Route {
        Route::new(
            self.notifications_exchange.clone(),
            Topology::notification_key(notification.channel),
        )
    }

    /// The route of analytics events (fanout).
    pub fn analytics_route(&self) -> Route {
        Route::new(self.analytics_exchange.clone(), "")
    }

    /// The route of [`OrderPlaced`](crate::domain::OrderPlaced) events: the data exchange
    /// with the key [`Topology::ORDER_PLACED_KEY`]. A service that wants them binds its own
    /// queue to the data exchange with that key. The route does not make the publish fail
    /// when no queue is bound (the event is then dropped by the broker): the order is
    /// committed either way, and nothing in this topology consumes order events itself.
    pub fn order_placed_route(&self) -> Route {
        Route::new(self.data_exchange.clone(), Self::ORDER_PLACED_KEY).with_unroutable_dropped()
    }

    /// Declares another subscriber queue on the analytics fanout exchange: every analytics
    /// event is copied to it.
    pub async fn declare_analytics_subscriber(
        &self,
        broker: &dyn Broker,
        queue: &str,
    ) -> Result<()> {
        broker.declare_queue(&self.work_queue(queue)).await?;
        broker
            .bind(&BindingSpec::new(queue, &self.analytics_exchange, ""))
            .await
    }

    /// Messages waiting in the dead-letter queue.
    pub async fn dead_letter_count(&self, broker: &dyn Broker) -> Result<u64> {
        broker.queue_depth(&self.dead_letter_queue).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
                "product_events_queue.retry.1000ms",
                "product_events_queue.retry.2000ms",
            ]
        );
        assert!(Topology::default()
            .with_max_retries(0)
            .retry_queues()
            .is_empty());
        // Configurations written before the field existed still load, with the default.
        let mut json = serde_json::to_value(Topology::default()).unwrap();
        json.as_object_mut().unwrap().remove("max_retries");
        json.as_object_mut().unwrap().remove("product_events_queue");
        json.as_object_mut().unwrap().remove("product_events_key");
        let back: Topology = serde_json::from_value(json).unwrap();
        assert_eq!(back.max_retries, DEFAULT_MAX_RETRIES);
        assert_eq!(back.product_events_queue, "product_events_queue");
        assert_eq!(back.product_events_route().routing_key, "product.updated");
    }

    #[test]
    fn quorum_topology_keeps_the_notification_queue_classic() {
        let t = Topology::default()
            .with_max_retries(2)
            .with_quorum_queues()
            .with_delivery_limit(4);
        let d = t.declarations();
        for spec in &d.queues {
            assert!(spec.validate().is_ok(), "{spec:?}");
            let classic = spec.name == "notification_queue";
            assert_eq!(
                spec.queue_type,
                if classic {
                    QueueType::Classic
                } else {
                    QueueType::Quorum
                },
                "{spec:?}"
            );
            assert_eq!(spec.max_priority.is_some(), classic, "{spec:?}");
        }
        let work = t.work_queue("user_data_queue");
        assert_eq!(work.delivery_limit, Some(4));
        assert_eq!(work.dead_letter_exchange.as_deref(), Some("dead_letter"));
        assert_eq!(work.dead_letter_routing_key.as_deref(), Some("dlq"));
        assert_eq!(work.dead_letter_strategy, DeadLetterStrategy::AtLeastOnce);
        let delay = d
            .queues
            .iter()
            .find(|q| q.name == "user_data_queue.retry.1000ms")
            .unwrap();
        assert_eq!(delay.dead_letter_strategy, DeadLetterStrategy::AtLeastOnce);
        // The same delay queue a consumer declares on first use.
        assert_eq!(
            delay,
            &t.retry
                .retry_queue_as("user_data_queue", 0, QueueType::Quorum)
        );
        // Classic by default, and configurations without the fields load as classic.
        let mut json = serde_json::to_value(Topology::default()).unwrap();
        let obj = json.as_object_mut().unwrap();
        obj.remove("queue_type");
        obj.remove("delivery_limit");
        let back: Topology = serde_json::from_value(json).unwrap();
        assert_eq!(back, Topology::default());
        assert_eq!(back.queue_type, QueueType::Classic);
    }

    #[test]
    fn declarations_hold_work_dead_letter_and_retry_queues() {
        let t = Topology::default().with_max_retries(2);
        let d = t.declarations();
        assert_eq!(d.exchanges, t.exchanges());
        assert_eq!(d.bindings, t.bindings());
        let names: Vec<&str> = d.queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "user_data_queue",
                "notification_queue",
                "analytics_queue",
                "dlq",
                "product_events_queue",
                "user_data_queue.retry.1000ms",
                "user_data_queue.retry.2000ms",
                "notification_queue.retry.1000ms",
                "notification_queue.retry.2000ms",
                "analytics_queue.retry.1000ms",
                "analytics_queue.retry.2000ms",
                "product_events_queue.retry.1000ms",
                "product_events_queue.retry.2000ms",
            ]
        );
        // Teardown also covers delay queues declared on first use for more retries.
        let teardown = t.teardown(3);
        assert!(teardown
            .queues
            .iter()
            .any(|q| q.name == "analytics_queue.retry.4000ms"));
        assert_eq!(
            t.dead_letter_route(),
            crate::declarations::DeadLetterRoute::default()
        );
    }

    #[test]
    fn order_placed_events_go_to_the_data_exchange_under_their_own_key() {
        let t = Topology::with_prefix("shop");
        let route = t.order_placed_route();
        assert_eq!(route.exchange, "shop.data_processing");
        assert_eq!(route.routing_key, "order.placed");
        assert_ne!(route.routing_key, t.user_data_key, "not user data's queue");
        assert!(!route.mandatory, "no subscriber is not a failure");
    }
}
