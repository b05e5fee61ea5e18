//! The live dashboard: event counts by type and per-user rates over a sliding window, fed by
//! a second subscriber of the `analytics` fanout, raising an alert when a user reaches the
//! configured threshold.
//!
//! Messages can be delivered more than once (a handler that fails is retried), so each event
//! is counted once per message id, and an alert is only considered sent once its publish
//! succeeded: a redelivery after a failed publish raises it again instead of losing it.
//!
//! [`LiveDashboardHandler`] is the consumer's handler: it feeds a [`LiveDashboard`] and
//! publishes the alerts it asks for.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mod8_mq::domain::{
    Analytics, Notification, NotificationChannel, Pipeline, PublishOptions, Urgency,
};
use mod8_mq::{ConsumerHandle, DynBroker, Envelope, Handler, Outcome};
use serde::Serialize;
use uuid::Uuid;

/// What the live dashboard shows.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DashboardSnapshot {
    /// Events seen per type since start, most frequent first.
    pub events_by_type: Vec<(String, u64)>,
    /// Events seen since start (each message once, however often it was delivered).
    pub total_events: u64,
    /// Alerts published since start.
    pub alerts: u64,
}

/// One alert the live dashboard raised and published ([`LiveDashboard::recent_alerts`]).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AlertRecord {
    /// The user who crossed the threshold.
    pub user_id: String,
    /// When the alert was published.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The user's events within the window when it was raised.
    pub events_in_window: u64,
}

/// How many published alerts [`LiveDashboard::recent_alerts`] keeps (the newest).
pub const RECENT_ALERTS: usize = 20;

/// Live counters. Cheap to update; one lock, held for a few map operations.
#[derive(Debug)]
pub struct LiveDashboard {
    threshold: u64,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    by_type: HashMap<String, u64>,
    total: u64,
    alerts: u64,
    users: HashMap<String, UserWindow>,
    records_since_sweep: u32,
    /// The newest published alerts, oldest first, at most [`RECENT_ALERTS`].
    recent_alerts: VecDeque<AlertRecord>,
}

/// Where a user's alert for the current crossing stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Alert {
    /// Below the threshold, or at it with no alert attempted yet.
    #[default]
    None,
    /// A handler is publishing it; others must not publish a second one.
    Publishing,
    /// Published; no other alert until the user drops below the threshold again.
    Sent,
}

#[derive(Debug, Default)]
struct UserWindow {
    /// Events within the window, oldest first, with their message ids.
    recent: VecDeque<(Instant, Uuid)>,
    /// The ids in `recent`, to recognise a redelivered message.
    ids: HashSet<Uuid>,
    alert: Alert,
}

/// Distinct event types counted by name; events of any further type are counted under
/// [`OTHER_EVENT_TYPES`], so a client inventing types cannot grow the dashboard.
pub const MAX_EVENT_TYPES: usize = 256;

/// The name events beyond [`MAX_EVENT_TYPES`] distinct types are counted under.
pub const OTHER_EVENT_TYPES: &str = "other";

/// Records between sweeps of users whose window has emptied (so the map does not keep every
/// user ever seen).
const SWEEP_EVERY: u32 = 4096;

impl LiveDashboard {
    /// A dashboard alerting when one user has `threshold` events within `window`.
    pub fn new(threshold: u64, window: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            window,
            state: Mutex::new(State::default()),
        }
    }

    /// Counts the event of message `message_id` (a redelivered message is not counted again)
    /// and says whether an alert is due: the user has at least the threshold of events within
    /// the window and no alert for this crossing was sent or is being published. When it
    /// returns `true` the caller publishes the alert and reports the outcome with
    /// [`LiveDashboard::alert_published`] or [`LiveDashboard::alert_failed`].
    pub fn record(&self, message_id: Uuid, user_id: &str, event_type: &str, now: Instant) -> bool {
        let Ok(mut guard) = self.state.lock() else {
            return false;
        };
        let s = &mut *guard;
        let user = s.users.entry(user_id.to_owned()).or_default();
        while let Some(&(at, id)) = user.recent.front() {
            if now.saturating_duration_since(at) <= self.window {
                break;
            }
            user.recent.pop_front();
            user.ids.remove(&id);
        }
        if user.ids.insert(message_id) {
            user.recent.push_back((now, message_id));
            let known = s.by_type.contains_key(event_type);
            let name = if known || s.by_type.len() < MAX_EVENT_TYPES {
                event_type
            } else {
                OTHER_EVENT_TYPES
            };
            *s.by_type.entry(name.to_owned()).or_default() += 1;
            s.total += 1;
        }
        let due = if (user.recent.len() as u64) < self.threshold {
            // Below the threshold again: the next crossing alerts anew.
            user.alert = Alert::None;
            false
        } else if user.alert == Alert::None {
            user.alert = Alert::Publishing;
            true
        } else {
            false
        };
        s.records_since_sweep += 1;
        if s.records_since_sweep >= SWEEP_EVERY {
            s.records_since_sweep = 0;
            let window = self.window;
            s.users.retain(|_, u| {
                u.alert == Alert::Publishing
                    || u.recent
                        .back()
                        .is_some_and(|(at, _)| now.saturating_duration_since(*at) <= window)
            });
        }
        due
    }

    /// The alert [`LiveDashboard::record`] asked for was published.
    pub fn alert_published(&self, user_id: &str) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        s.alerts += 1;
        let mut events_in_window = 0;
        if let Some(user) = s.users.get_mut(user_id) {
            events_in_window = user.recent.len() as u64;
            if user.alert == Alert::Publishing {
                user.alert = Alert::Sent;
            }
        }
        if s.recent_alerts.len() >= RECENT_ALERTS {
            s.recent_alerts.pop_front();
        }
        s.recent_alerts.push_back(AlertRecord {
            user_id: user_id.to_owned(),
            at: chrono::Utc::now(),
            events_in_window,
        });
    }

    /// The newest published alerts (at most [`RECENT_ALERTS`]), newest first.
    pub fn recent_alerts(&self) -> Vec<AlertRecord> {
        let Ok(s) = self.state.lock() else {
            return Vec::new();
        };
        s.recent_alerts.iter().rev().cloned().collect()
    }

    /// The alert [`LiveDashboard::record`] asked for could not be published; the message will
    /// be redelivered, and its [`LiveDashboard::record`] asks for the alert again.
    pub fn alert_failed(&self, user_id: &str) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if let Some(user) = s.users.get_mut(user_id) {
            if user.alert == Alert::Publishing {
                user.alert = Alert::None;
            }
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> DashboardSnapshot {
        let Ok(s) = self.state.lock() else {
            return DashboardSnapshot::default();
        };
        let mut events_by_type: Vec<_> = s.by_type.iter().map(|(k, v)| (k.clone(), *v)).collect();
        events_by_type.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        DashboardSnapshot {
            events_by_type,
            total_events: s.total,
            alerts: s.alerts,
        }
    }
}

/// Who receives the activity alerts.
pub const ALERT_RECIPIENT: &str = "ops@mod8.local";

/// The live-dashboard consumer's handler: counts each analytics event on the
/// [`LiveDashboard`] and, when a user crosses the threshold, publishes an urgent alert
/// notification to [`ALERT_RECIPIENT`] (correlated with the event).
///
/// An alert that cannot be published is not lost: the event is retried (or dead-lettered,
/// for a permanent failure) and its redelivery raises the alert again.
#[derive(Debug, Clone)]
pub struct LiveDashboardHandler {
    live: Arc<LiveDashboard>,
    pipeline: Pipeline,
}

impl LiveDashboardHandler {
    /// A handler feeding `live` and publishing alerts with `pipeline`.
    pub fn new(live: Arc<LiveDashboard>, pipeline: Pipeline) -> Self {
        Self { live, pipeline }
    }

    /// Starts consuming `queue` (a subscriber queue of the analytics fanout), with the retry
    /// policy and dead-letter route of the pipeline's topology.
    ///
    /// # Errors
    ///
    /// The consumer cannot subscribe to the queue.
    pub async fn start(
        self,
        broker: DynBroker,
        queue: impl Into<String>,
    ) -> mod8_mq::Result<ConsumerHandle> {
        let topology = self.pipeline.topology().clone();
        topology.consumer(broker, queue, self).start().await
    }
}

#[async_trait]
impl Handler<Analytics> for LiveDashboardHandler {
    async fn handle(&self, message: &Envelope<Analytics>) -> Outcome {
        let event = &message.payload;
        // Counted once per message id; `true` until an alert for this crossing is
        // published, so a redelivery after a failed publish raises it again.
        if !self.live.record(
            message.id,
            &event.user_id,
            &event.event_type,
            Instant::now(),
        ) {
            return Outcome::Ack;
        }
        let alert = Notification {
            recipient: ALERT_RECIPIENT.into(),
            subject: format!("activity alert for user {}", event.user_id),
            content: format!("user {} crossed the live-activity threshold", event.user_id),
            channel: NotificationChannel::Email,
        };
        match self
            .pipeline
            .publish_notification(
                alert,
                PublishOptions {
                    urgency: Urgency::Urgent,
                    correlation_id: message.correlation_id,
                },
            )
            .await
        {
            Ok(_) => {
                self.live.alert_published(&event.user_id);
                Outcome::Ack
            }
            Err(e) => {
                tracing::warn!(user_id = %event.user_id, error = %e, "activity alert not published; the event will be redelivered");
                self.live.alert_failed(&event.user_id);
                Outcome::from_error(&e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(live: &LiveDashboard, user: &str, kind: &str, at: Instant) -> bool {
        live.record(Uuid::new_v4(), user, kind, at)
    }

    #[test]
    fn alerts_once_per_crossing_within_the_window() {
        let live = LiveDashboard::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert!(!record(&live, "u1", "view", t0));
        assert!(!record(&live, "u1", "view", t0 + s(1)));
        assert!(record(&live, "u1", "click", t0 + s(2)));
        live.alert_published("u1");
        assert!(
            !record(&live, "u1", "view", t0 + s(3)),
            "no second alert above the threshold"
        );
        // Another user is counted separately.
        assert!(!record(&live, "u2", "view", t0));
        // Far later the window has emptied: the count starts again, and a new crossing
        // alerts again.
        assert!(!record(&live, "u1", "view", t0 + s(60)));
        assert!(!record(&live, "u1", "view", t0 + s(61)));
        assert!(record(&live, "u1", "view", t0 + s(62)));
        live.alert_published("u1");
        let snap = live.snapshot();
        assert_eq!(snap.total_events, 8);
        assert_eq!(snap.alerts, 2);
        assert_eq!(snap.events_by_type[0], ("view".to_owned(), 7));
        let recent = live.recent_alerts();
        assert_eq!(recent.len(), 2);
        assert!(recent
            .iter()
            .all(|a| a.user_id == "u1" && a.events_in_window == 3));
        assert!(recent[0].at >= recent[1].at, "newest first");
    }

    #[test]
    fn event_types_beyond_the_bound_are_counted_as_other() {
        let live = LiveDashboard::new(u64::MAX, Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..MAX_EVENT_TYPES + 500 {
            record(&live, &format!("u{i}"), &format!("type_{i}"), t0);
        }
        record(&live, "u0", "type_0", t0);
        let snap = live.snapshot();
        assert_eq!(snap.total_events, MAX_EVENT_TYPES as u64 + 501);
        assert_eq!(snap.events_by_type.len(), MAX_EVENT_TYPES + 1);
        assert_eq!(snap.events_by_type[0], ("other".to_owned(), 500));
        let counted: u64 = snap.events_by_type.iter().map(|(_, n)| n).sum();
        assert_eq!(counted, snap.total_events, "nothing dropped");
        assert!(snap.events_by_type.contains(&("type_0".to_owned(), 2)));
    }

    #[test]
    fn recent_alerts_keep_only_the_newest() {
        let live = LiveDashboard::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..RECENT_ALERTS + 5 {
            let user = format!("u{i}");
            assert!(record(&live, &user, "view", t0));
            live.alert_published(&user);
        }
        let recent = live.recent_alerts();
        assert_eq!(recent.len(), RECENT_ALERTS);
        assert_eq!(recent[0].user_id, format!("u{}", RECENT_ALERTS + 4));
        assert_eq!(recent[RECENT_ALERTS - 1].user_id, "u5");
        assert_eq!(live.snapshot().alerts, (RECENT_ALERTS + 5) as u64);
    }

    #[test]
    fn a_redelivery_after_a_failed_alert_publish_raises_the_alert_again() {
        let live = LiveDashboard::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(!record(&live, "u1", "view", t0));
        assert!(!record(&live, "u1", "view", t0));
        let third = Uuid::new_v4();
        assert!(live.record(third, "u1", "view", t0));
        // The publish failed; the message comes back. It is not counted twice (the count
        // would pass the threshold without meeting it) and the alert is due again.
        live.alert_failed("u1");
        assert!(live.record(third, "u1", "view", t0 + Duration::from_millis(100)));
        live.alert_published("u1");
        let snap = live.snapshot();
        assert_eq!(snap.total_events, 3, "a redelivered message counts once");
        assert_eq!(snap.alerts, 1);
    }

    #[test]
    fn an_alert_being_published_is_not_raised_twice() {
        let live = LiveDashboard::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(!record(&live, "u1", "view", t0));
        assert!(record(&live, "u1", "view", t0));
        // Another event handled while the first alert is still being published.
        assert!(!record(&live, "u1", "view", t0));
        live.alert_published("u1");
        assert_eq!(live.snapshot().alerts, 1);
    }

    fn analytics(user: &str) -> Envelope<Analytics> {
        Envelope::new(Analytics {
            event_type: "click".into(),
            user_id: user.into(),
            properties: HashMap::new(),
        })
    }

    #[tokio::test]
    async fn the_handler_publishes_one_alert_per_crossing_and_acks_redeliveries() {
        let app = crate::App::build(crate::AppConfig::embedded())
            .await
            .unwrap();
        let live = Arc::new(LiveDashboard::new(1, Duration::from_secs(60)));
        let handler = LiveDashboardHandler::new(live.clone(), app.pipeline.clone());
        let message = analytics("u1");
        assert!(matches!(handler.handle(&message).await, Outcome::Ack));
        assert_eq!(live.snapshot().alerts, 1);
        let queue = app.config.topology.notification_queue.clone();
        assert_eq!(app.broker.queue_depth(&queue).await.unwrap(), 1);
        // The same message again (a redelivery): acknowledged, no second alert.
        assert!(matches!(handler.handle(&message).await, Outcome::Ack));
        let snap = live.snapshot();
        assert_eq!((snap.total_events, snap.alerts), (1, 1));
        assert_eq!(app.broker.queue_depth(&queue).await.unwrap(), 1);
        app.shutdown().await;
    }

    #[tokio::test]
    async fn an_alert_that_cannot_be_published_is_due_again_on_redelivery() {
        let app = crate::App::build(crate::AppConfig::embedded())
            .await
            .unwrap();
        app.broker.close().await.unwrap(); // every publish now fails
        let live = Arc::new(LiveDashboard::new(1, Duration::from_secs(60)));
        let handler = LiveDashboardHandler::new(live.clone(), app.pipeline.clone());
        let message = analytics("u1");
        assert!(!matches!(handler.handle(&message).await, Outcome::Ack));
        assert_eq!(live.snapshot().alerts, 0);
        assert!(
            live.record(message.id, "u1", "click", Instant::now()),
            "the alert is asked for again"
        );
        assert_eq!(live.snapshot().total_events, 1, "the event counted once");
        app.shutdown().await;
    }
}
