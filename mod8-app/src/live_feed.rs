//! The live dashboard as a feed: [`LiveFeed`] turns what the process knows into
//! [`LiveFrame`]s — event rates per type, cache hit ratio, queue depths, outbox backlog,
//! recent alerts — and hands them to a bounded number of subscribers ([`LiveSubscription`]),
//! which `GET /api/live` streams as Server-Sent Events (see [`crate::http::live`]).
//!
//! - **One producer, only while watched.** A ticker task builds a frame every
//!   [`LiveFeedConfig::interval`] and broadcasts it when a figure changed; it starts with the
//!   first subscriber and stops after the last one left, so nobody watching costs nothing.
//! - **Round trips never hold a frame up.** Queue depths, dead letters and the outbox backlog
//!   need a dependency to answer: they are read in a task of their own
//!   ([`round_trip_figures`], bounded by [`LiveFeedConfig::round_trip_timeout`], one read at a
//!   time), and frames carry the last values read with their [`RoundTripStatus`] (`pending`
//!   before the first answer, `stale` when reads stopped answering). A broker that hangs
//!   leaves those figures stale; every other figure keeps moving.
//! - **A subscriber that falls behind gets a fresh snapshot**, not a queue of stale updates and
//!   not a silent disconnect: each subscriber has a bounded buffer
//!   ([`LiveFeedConfig::buffer`] frames); when it overflows, the subscriber's next message is
//!   the latest frame as a [`LiveMessageKind::Snapshot`] with [`SnapshotReason::Lagged`] and
//!   the number of updates it missed.
//! - **Bounded.** At most [`LiveFeedConfig::max_subscribers`] subscriptions at once
//!   ([`LiveFeed::subscribe`] refuses the next with [`FeedFull`]); the frame shows at most
//!   [`TOP_EVENT_TYPES`] event types and [`crate::live::RECENT_ALERTS`] alerts; the rate window
//!   keeps at most [`RATE_SAMPLES`] samples.
//!
//! Event counts come from the process's [`crate::live::LiveDashboard`], which the
//! live-dashboard consumer feeds: a process of role `api` runs no consumers, so its event
//! figures stay at zero (`role` in the frame says which process answered).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{broadcast, OwnedSemaphorePermit, Semaphore};
use utoipa::ToSchema;

use crate::live::AlertRecord;
use crate::App;

/// Event types a frame lists (the most frequent); the rest are summed in
/// [`EventFigures::other_types`].
pub const TOP_EVENT_TYPES: usize = 12;
/// Most samples the rate window keeps (one is taken at most every window / this).
pub const RATE_SAMPLES: usize = 20;
/// Event types a rate sample remembers; a type beyond them has no rate (`null`).
const SAMPLED_TYPES: usize = 256;

/// How the live feed runs (`AppConfig::live_feed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFeedConfig {
    /// How often a frame is built (sent only when a figure changed). Default 1 s.
    pub interval: Duration,
    /// How long a stream may send nothing before a keepalive comment goes out (keeps proxies
    /// and the server's idle timeout from closing a quiet stream). Default 15 s; keep it well
    /// under the HTTP idle timeout (60 s by default).
    pub keepalive: Duration,
    /// Frames buffered per subscriber; one that falls further behind gets a fresh snapshot
    /// instead. Default 16.
    pub buffer: usize,
    /// Subscriptions at once in this process (`MOD8_LIVE_MAX_SUBSCRIBERS`, default 64); the
    /// next is refused (503 with `Retry-After` on `GET /api/live`).
    pub max_subscribers: usize,
    /// Longest one read of the round-trip figures (queue depths, dead letters, outbox
    /// backlog) may take; a read that times out keeps the previous values. Default 2 s.
    pub round_trip_timeout: Duration,
    /// The window event rates and the recent cache hit ratio are measured over. Default 10 s.
    pub rate_window: Duration,
}

impl Default for LiveFeedConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            keepalive: Duration::from_secs(15),
            buffer: 16,
            max_subscribers: 64,
            round_trip_timeout: Duration::from_secs(2),
            rate_window: Duration::from_secs(10),
        }
    }
}

/// Why a snapshot was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotReason {
    /// The subscription's first message.
    Connected,
    /// The subscriber fell more than [`LiveFeedConfig::buffer`] frames behind; the updates it
    /// missed were dropped and this is the latest state.
    Lagged,
}

/// One event type's figures.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EventTypeFigures {
    /// The event type (`page_view`, `purchase`, ...).
    pub event_type: String,
    /// Events of this type since the process started.
    pub count: u64,
    /// Events of this type per second over the rate window; `null` until two samples exist.
    pub rate_per_sec: Option<f64>,
}

/// The analytics events the live-dashboard consumer counted.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EventFigures {
    /// Events since the process started (each message once).
    pub total: u64,
    /// Events per second over the rate window; `null` until two samples exist.
    pub rate_per_sec: Option<f64>,
    /// The window the rates are measured over, in seconds.
    pub window_secs: f64,
    /// The most frequent types (at most [`TOP_EVENT_TYPES`]), most frequent first.
    pub by_type: Vec<EventTypeFigures>,
    /// Events of the types not listed in `by_type`.
    pub other_types: u64,
}

/// The cache's lookups.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CacheFigures {
    /// The cache's name.
    pub name: String,
    /// Lookups answered from the cache since start.
    pub hits: u64,
    /// Lookups not answered from the cache since start.
    pub misses: u64,
    /// `hits / (hits + misses)` since start; `null` before the first lookup.
    pub hit_ratio: Option<f64>,
    /// The same over the rate window; `null` when there was no lookup in it.
    pub recent_hit_ratio: Option<f64>,
}

/// One queue's depth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct QueueDepth {
    /// The queue's name.
    pub queue: String,
    /// Messages waiting in it.
    pub depth: u64,
}

/// Whether the round-trip figures are current.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoundTripStatus {
    /// Not read yet: the values are empty or `null`.
    #[default]
    Pending,
    /// The last read answered recently.
    Fresh,
    /// No read answered for a while (a dependency is slow or down): the values are the last
    /// ones read.
    Stale,
}

/// What needs a round trip to a dependency: read in the background, never waited for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct RoundTripFigures {
    /// Whether these values are current.
    pub status: RoundTripStatus,
    /// Messages waiting per queue (queues that did not answer are left out).
    pub queue_depths: Vec<QueueDepth>,
    /// Messages in the dead-letter queue; `null` when the broker did not answer.
    pub dead_letters: Option<u64>,
    /// Unsent outbox rows (every process's); `null` when the database did not answer.
    pub outbox_backlog: Option<u64>,
}

/// Activity alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AlertFigures {
    /// Alerts published since the process started.
    pub total: u64,
    /// The newest ones, newest first.
    pub recent: Vec<AlertRecord>,
}

/// One state of the live dashboard: the `data` of every `GET /api/live` event.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LiveFrame {
    /// Increases by one with every frame this process built; a subscriber's frames have
    /// increasing numbers, with gaps only where it was sent a `lagged` snapshot.
    pub seq: u64,
    /// When the frame was built.
    pub at: DateTime<Utc>,
    /// On snapshots only: why it was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<SnapshotReason>,
    /// On `lagged` snapshots only: how many updates the subscriber missed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
    /// What the answering process runs (`api`, `worker`, `all`); `null` when its background
    /// work is not started. Event figures are counted only where the consumers run.
    pub role: Option<crate::Role>,
    /// Analytics events.
    pub events: EventFigures,
    /// Cache lookups.
    pub cache: CacheFigures,
    /// Queue depths, dead letters and outbox backlog, as last read.
    pub dependencies: RoundTripFigures,
    /// Activity alerts.
    pub alerts: AlertFigures,
}

impl LiveFrame {
    /// Whether every figure equals `other`'s (the frame number, times and snapshot fields
    /// aside): nothing to send.
    fn same_figures(&self, other: &Self) -> bool {
        self.role == other.role
            && self.events == other.events
            && self.cache == other.cache
            && self.dependencies == other.dependencies
            && self.alerts == other.alerts
    }
}

/// Whether a message is a snapshot or an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveMessageKind {
    /// A whole state to start from: the first message, and after falling behind.
    Snapshot,
    /// The next state.
    Update,
}

impl LiveMessageKind {
    /// The SSE event name: `snapshot` or `update`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Update => "update",
        }
    }
}

/// One message of a [`LiveSubscription`].
#[derive(Debug, Clone)]
pub struct LiveMessage {
    /// Snapshot or update.
    pub kind: LiveMessageKind,
    /// The state (every message carries all of it).
    pub frame: Arc<LiveFrame>,
}

/// [`LiveFeed::subscribe`] refused: [`LiveFeedConfig::max_subscribers`] are subscribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the live feed has its maximum of {max} subscribers")]
pub struct FeedFull {
    /// The bound.
    pub max: usize,
}

/// A rate-window sample.
#[derive(Debug)]
struct Sample {
    at: Instant,
    total: u64,
    by_type: HashMap<String, u64>,
    /// Whether `by_type` holds every type there was (not cut at [`SAMPLED_TYPES`]).
    complete: bool,
    hits: u64,
    misses: u64,
}

#[derive(Debug, Default)]
struct FeedState {
    seq: u64,
    last: Option<Arc<LiveFrame>>,
    samples: VecDeque<Sample>,
    round_trip: RoundTripFigures,
    round_trip_started: Option<Instant>,
    round_trip_answered: Option<Instant>,
}

/// The live dashboard feed of one process (see the module docs). Shared as `Arc<LiveFeed>`.
pub struct LiveFeed {
    app: Arc<App>,
    config: LiveFeedConfig,
    sender: broadcast::Sender<Arc<LiveFrame>>,
    permits: Arc<Semaphore>,
    state: Mutex<FeedState>,
    ticking: AtomicBool,
    reading: AtomicBool,
}

impl std::fmt::Debug for LiveFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveFeed")
            .field("config", &self.config)
            .field("subscribers", &self.subscribers())
            .finish_non_exhaustive()
    }
}

impl LiveFeed {
    /// The feed of `app`, with `app.config.live_feed`.
    pub fn new(app: Arc<App>) -> Arc<Self> {
        let config = app.config.live_feed.clone();
        let (sender, _) = broadcast::channel(config.buffer.max(1));
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(
                config.max_subscribers.clamp(1, Semaphore::MAX_PERMITS),
            )),
            app,
            config,
            sender,
            state: Mutex::new(FeedState::default()),
            ticking: AtomicBool::new(false),
            reading: AtomicBool::new(false),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &LiveFeedConfig {
        &self.config
    }

    /// Subscriptions open now.
    pub fn subscribers(&self) -> usize {
        self.config
            .max_subscribers
            .clamp(1, Semaphore::MAX_PERMITS)
            .saturating_sub(self.permits.available_permits())
    }

    /// A subscription whose first message is a snapshot of the state now; it holds one of the
    /// [`LiveFeedConfig::max_subscribers`] places until dropped.
    ///
    /// # Errors
    ///
    /// [`FeedFull`] when every place is taken.
    pub fn subscribe(self: &Arc<Self>) -> Result<LiveSubscription, FeedFull> {
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| FeedFull {
                max: self.config.max_subscribers,
            })?;
        // Subscribe before taking the snapshot: a frame built in between arrives on the
        // receiver and is skipped by its number, rather than lost.
        let receiver = self.sender.subscribe();
        self.ensure_ticking();
        // The round-trip figures come in a later frame, read from now on.
        self.start_round_trip();
        let first = self.refresh();
        Ok(LiveSubscription {
            feed: self.clone(),
            receiver,
            last_seq: first.seq,
            first: Some(first),
            _permit: permit,
        })
    }

    /// The newest frame (built now if none was yet).
    pub fn latest(&self) -> Arc<LiveFrame> {
        let last = self.state.lock().ok().and_then(|s| s.last.clone());
        last.unwrap_or_else(|| self.refresh())
    }

    /// Starts the ticker unless it runs (see [`LiveFeed::tick_loop`] for the hand-over).
    fn ensure_ticking(self: &Arc<Self>) {
        if !self.ticking.swap(true, Ordering::AcqRel) {
            tokio::spawn(self.clone().tick_loop());
        }
    }

    /// Builds a frame every interval while anyone subscribes. When the last subscriber has
    /// left it clears `ticking` and looks again: a subscriber that came in between either saw
    /// `ticking` still set (and this loop goes on, having set it again) or cleared (and started
    /// a new loop, so this one ends) — never none and never two.
    async fn tick_loop(self: Arc<Self>) {
        // The subscriber that started it has its snapshot: the first tick is one interval on.
        let period = self.config.interval.max(Duration::from_millis(1));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if self.sender.receiver_count() == 0 {
                self.ticking.store(false, Ordering::Release);
                if self.sender.receiver_count() == 0 || self.ticking.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
            self.start_round_trip();
            self.refresh();
        }
    }

    /// Reads the round-trip figures in a task of its own, unless a read is in flight or one
    /// started less than an interval (at least 250 ms) ago.
    fn start_round_trip(self: &Arc<Self>) {
        let gap = self.config.interval.max(Duration::from_millis(250));
        {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            if state.round_trip_started.is_some_and(|t| t.elapsed() < gap) {
                return;
            }
            if self.reading.swap(true, Ordering::AcqRel) {
                return;
            }
            state.round_trip_started = Some(Instant::now());
        }
        let feed = self.clone();
        tokio::spawn(async move {
            let read = tokio::time::timeout(
                feed.config.round_trip_timeout,
                round_trip_figures(&feed.app),
            )
            .await;
            match read {
                Ok(figures) => {
                    if let Ok(mut state) = feed.state.lock() {
                        state.round_trip = figures;
                        state.round_trip_answered = Some(Instant::now());
                    }
                }
                Err(_) => tracing::debug!(
                    timeout = ?feed.config.round_trip_timeout,
                    "live feed: the round-trip figures did not answer in time; keeping the last"
                ),
            }
            feed.reading.store(false, Ordering::Release);
        });
    }

    /// Builds the frame of now; when a figure changed since the last one, it becomes the
    /// latest and is broadcast. Returns the latest.
    fn refresh(&self) -> Arc<LiveFrame> {
        let dashboard = self.app.live.snapshot();
        let recent_alerts = self.app.live.recent_alerts();
        let stats = self.app.cache.stats();
        let now = Instant::now();
        let Ok(mut state) = self.state.lock() else {
            // A poisoned lock: a frame of this moment, not recorded.
            return Arc::new(self.frame(0, &dashboard, recent_alerts, &stats, None, None));
        };
        let state = &mut *state;
        // The rate window: forget samples from long ago (the ticker may have been stopped),
        // drop what is older than the window while keeping one to measure from, and add a
        // sample at most every window / RATE_SAMPLES.
        let window = self.config.rate_window.max(Duration::from_millis(1));
        while state
            .samples
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.at) >= window * 2)
        {
            state.samples.pop_front();
        }
        while state
            .samples
            .get(1)
            .is_some_and(|s| now.saturating_duration_since(s.at) >= window)
        {
            state.samples.pop_front();
        }
        let due = state
            .samples
            .back()
            .is_none_or(|s| now.saturating_duration_since(s.at) >= window / RATE_SAMPLES as u32);
        if due {
            if state.samples.len() > RATE_SAMPLES {
                state.samples.pop_front();
            }
            state.samples.push_back(Sample {
                at: now,
                total: dashboard.total_events,
                by_type: dashboard
                    .events_by_type
                    .iter()
                    .take(SAMPLED_TYPES)
                    .cloned()
                    .collect(),
                complete: dashboard.events_by_type.len() <= SAMPLED_TYPES,
                hits: stats.hits,
                misses: stats.misses,
            });
        }
        // Rates need a span of at least one sampling step: over less they are noise.
        let oldest = state
            .samples
            .front()
            .filter(|s| now.saturating_duration_since(s.at) >= window / RATE_SAMPLES as u32);
        // Stale once no read answered for a few read gaps beyond the read timeout.
        let stale_after = self.config.interval.max(Duration::from_millis(250)) * 3
            + self.config.round_trip_timeout;
        let mut round_trip = state.round_trip.clone();
        round_trip.status = match state.round_trip_answered {
            None => RoundTripStatus::Pending,
            Some(t) if now.saturating_duration_since(t) > stale_after => RoundTripStatus::Stale,
            Some(_) => RoundTripStatus::Fresh,
        };
        let mut frame = self.frame(
            state.seq + 1,
            &dashboard,
            recent_alerts,
            &stats,
            oldest.map(|s| (s, now)),
            Some(round_trip),
        );
        if let Some(last) = &state.last {
            if last.same_figures(&frame) {
                return last.clone();
            }
        }
        state.seq += 1;
        frame.seq = state.seq;
        let frame = Arc::new(frame);
        state.last = Some(frame.clone());
        // Sent under the lock, so frames reach every receiver in number order. No receiver
        // is not an error: the frame is kept as the latest.
        let _ = self.sender.send(frame.clone());
        frame
    }

    fn frame(
        &self,
        seq: u64,
        dashboard: &crate::live::DashboardSnapshot,
        recent_alerts: Vec<AlertRecord>,
        stats: &mod8_cache::CacheStats,
        since: Option<(&Sample, Instant)>,
        round_trip: Option<RoundTripFigures>,
    ) -> LiveFrame {
        let elapsed = since.map(|(s, now)| now.saturating_duration_since(s.at).as_secs_f64());
        let rate = |now: u64, then: u64| -> Option<f64> {
            let secs = elapsed.filter(|e| *e > 0.0)?;
            Some(round3(now.saturating_sub(then) as f64 / secs))
        };
        let by_type: Vec<EventTypeFigures> = dashboard
            .events_by_type
            .iter()
            .take(TOP_EVENT_TYPES)
            .map(|(event_type, count)| EventTypeFigures {
                event_type: event_type.clone(),
                count: *count,
                rate_per_sec: since.and_then(|(s, _)| match s.by_type.get(event_type) {
                    Some(then) => rate(*count, *then),
                    None if s.complete => rate(*count, 0),
                    None => None,
                }),
            })
            .collect();
        let listed: u64 = by_type.iter().map(|t| t.count).sum();
        let lookups = stats.hits + stats.misses;
        let recent_hit_ratio = since.and_then(|(s, _)| {
            let hits = stats.hits.saturating_sub(s.hits);
            let total = hits + stats.misses.saturating_sub(s.misses);
            (total > 0).then(|| round3(hits as f64 / total as f64))
        });
        LiveFrame {
            seq,
            at: Utc::now(),
            reason: None,
            missed: None,
            role: self.app.role(),
            events: EventFigures {
                total: dashboard.total_events,
                rate_per_sec: since.and_then(|(s, _)| rate(dashboard.total_events, s.total)),
                window_secs: self.config.rate_window.as_secs_f64(),
                by_type,
                other_types: dashboard.total_events.saturating_sub(listed),
            },
            cache: CacheFigures {
                name: self.app.cache.name().to_owned(),
                hits: stats.hits,
                misses: stats.misses,
                hit_ratio: (lookups > 0).then(|| round3(stats.hit_ratio())),
                recent_hit_ratio,
            },
            dependencies: round_trip.unwrap_or_default(),
            alerts: AlertFigures {
                total: dashboard.alerts,
                recent: recent_alerts,
            },
        }
    }
}

/// Rates and ratios to three decimals: enough for a chart, and a frame does not count as
/// changed for noise in the last bits.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The figures that need a round trip to a dependency: queue depths, dead letters, outbox
/// backlog. The one place the live feed reads them (through [`App::metrics_snapshot`], whose
/// reads each have [`crate::AppConfig::call_timeout`]); the caller bounds the whole read by
/// [`LiveFeedConfig::round_trip_timeout`] and runs it off the stream, so a dependency that
/// hangs only leaves these values stale. Point it at a background collector's last values
/// where one exists.
pub async fn round_trip_figures(app: &App) -> RoundTripFigures {
    let snapshot = app.metrics_snapshot().await;
    RoundTripFigures {
        status: RoundTripStatus::Fresh,
        queue_depths: snapshot
            .queue_depths
            .into_iter()
            .map(|(queue, depth)| QueueDepth { queue, depth })
            .collect(),
        dead_letters: snapshot.dead_letters,
        outbox_backlog: snapshot.outbox_backlog,
    }
}

/// One subscriber's messages ([`LiveFeed::subscribe`]): a snapshot first, then an update per
/// changed frame, and a snapshot again whenever it fell behind. Holds its place among the
/// [`LiveFeedConfig::max_subscribers`] until dropped.
#[derive(Debug)]
pub struct LiveSubscription {
    feed: Arc<LiveFeed>,
    receiver: broadcast::Receiver<Arc<LiveFrame>>,
    last_seq: u64,
    first: Option<Arc<LiveFrame>>,
    _permit: OwnedSemaphorePermit,
}

impl LiveSubscription {
    /// The next message; waits for the next changed frame. `None` only if the feed is gone.
    pub async fn next(&mut self) -> Option<LiveMessage> {
        if let Some(frame) = self.first.take() {
            return Some(snapshot(&frame, SnapshotReason::Connected, None));
        }
        loop {
            match self.receiver.recv().await {
                // Already covered by the snapshot this subscriber was sent.
                Ok(frame) if frame.seq <= self.last_seq => {}
                Ok(frame) => {
                    self.last_seq = frame.seq;
                    return Some(LiveMessage {
                        kind: LiveMessageKind::Update,
                        frame,
                    });
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // Start again at the channel's tail, then take the latest: the frames
                    // still buffered are stale (and would overflow again), and one sent in
                    // between arrives on the new receiver and is skipped by its number.
                    self.receiver = self.receiver.resubscribe();
                    let latest = self.feed.latest();
                    self.last_seq = latest.seq;
                    return Some(snapshot(&latest, SnapshotReason::Lagged, Some(missed)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The feed it subscribes to.
    pub fn feed(&self) -> &Arc<LiveFeed> {
        &self.feed
    }
}

fn snapshot(frame: &LiveFrame, reason: SnapshotReason, missed: Option<u64>) -> LiveMessage {
    let mut frame = frame.clone();
    frame.reason = Some(reason);
    frame.missed = missed;
    LiveMessage {
        kind: LiveMessageKind::Snapshot,
        frame: Arc::new(frame),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn feed(config: LiveFeedConfig) -> (Arc<App>, Arc<LiveFeed>) {
        let mut app_config = crate::AppConfig::embedded();
        app_config.live_feed = config;
        let app = App::build(app_config).await.unwrap();
        let feed = LiveFeed::new(app.clone());
        (app, feed)
    }

    fn count(app: &App, n: usize, kind: &str) {
        for _ in 0..n {
            app.live
                .record(uuid::Uuid::new_v4(), "u1", kind, Instant::now());
        }
    }

    #[tokio::test]
    async fn the_first_message_is_a_snapshot_and_changes_follow_as_updates() {
        let (app, feed) = feed(LiveFeedConfig {
            interval: Duration::from_millis(10),
            ..LiveFeedConfig::default()
        })
        .await;
        count(&app, 2, "view");
        let mut sub = feed.subscribe().unwrap();
        let first = sub.next().await.unwrap();
        assert_eq!(first.kind, LiveMessageKind::Snapshot);
        assert_eq!(first.frame.reason, Some(SnapshotReason::Connected));
        assert_eq!(first.frame.events.total, 2);
        assert_eq!(first.frame.events.by_type[0].event_type, "view");
        count(&app, 3, "click");
        let update = loop {
            let m = sub.next().await.unwrap();
            assert_eq!(m.kind, LiveMessageKind::Update);
            assert!(m.frame.seq > first.frame.seq);
            if m.frame.events.total == 5 {
                break m;
            }
        };
        assert_eq!(update.frame.reason, None);
        assert_eq!(update.frame.events.by_type[0].event_type, "click");
        assert_eq!(update.frame.events.other_types, 0);
        app.shutdown().await;
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_gets_the_latest_as_a_snapshot() {
        // No ticker interval short enough to matter: frames are made by hand here.
        let (app, feed) = feed(LiveFeedConfig {
            interval: Duration::from_secs(3600),
            buffer: 2,
            ..LiveFeedConfig::default()
        })
        .await;
        let mut sub = feed.subscribe().unwrap();
        let first = sub.next().await.unwrap();
        for _ in 0..10 {
            count(&app, 1, "view");
            feed.refresh();
        }
        let m = sub.next().await.unwrap();
        assert_eq!(m.kind, LiveMessageKind::Snapshot);
        assert_eq!(m.frame.reason, Some(SnapshotReason::Lagged));
        // Eleven frames went through a buffer of two: the subscription's own first one (its
        // snapshot, also broadcast) and the ten above.
        assert_eq!(m.frame.missed, Some(9));
        assert_eq!(m.frame.events.total, 10, "the latest state");
        assert_eq!(m.frame.seq, first.frame.seq + 10);
        // Then updates again, none of the stale buffered ones.
        count(&app, 1, "view");
        feed.refresh();
        let m = sub.next().await.unwrap();
        assert_eq!(m.kind, LiveMessageKind::Update);
        assert_eq!(m.frame.events.total, 11);
        app.shutdown().await;
    }

    #[tokio::test]
    async fn subscriptions_are_bounded_and_a_dropped_one_frees_its_place() {
        let (app, feed) = feed(LiveFeedConfig {
            max_subscribers: 2,
            ..LiveFeedConfig::default()
        })
        .await;
        let a = feed.subscribe().unwrap();
        let _b = feed.subscribe().unwrap();
        assert_eq!(feed.subscribe().unwrap_err(), FeedFull { max: 2 });
        assert_eq!(feed.subscribers(), 2);
        drop(a);
        assert_eq!(feed.subscribers(), 1);
        assert!(feed.subscribe().is_ok());
        app.shutdown().await;
    }

    #[tokio::test]
    async fn an_unchanged_state_makes_no_new_frame() {
        let (app, feed) = feed(LiveFeedConfig {
            interval: Duration::from_secs(3600),
            ..LiveFeedConfig::default()
        })
        .await;
        let a = feed.refresh();
        let b = feed.refresh();
        assert_eq!(a.seq, b.seq);
        count(&app, 1, "view");
        let c = feed.refresh();
        assert_eq!(c.seq, a.seq + 1);
        app.shutdown().await;
    }

    #[tokio::test]
    async fn rates_and_the_recent_hit_ratio_are_measured_over_the_window() {
        let (app, feed) = feed(LiveFeedConfig {
            interval: Duration::from_secs(3600),
            rate_window: Duration::from_millis(200),
            ..LiveFeedConfig::default()
        })
        .await;
        let first = feed.refresh();
        assert_eq!(first.events.rate_per_sec, None, "one sample: no rate yet");
        assert_eq!(first.cache.hit_ratio, None, "no lookup yet");
        tokio::time::sleep(Duration::from_millis(20)).await;
        count(&app, 4, "view");
        let frame = feed.refresh();
        let rate = frame.events.rate_per_sec.unwrap();
        assert!(rate > 0.0, "{rate}");
        assert_eq!(frame.events.by_type[0].rate_per_sec, Some(rate));
        app.shutdown().await;
    }

    #[tokio::test]
    async fn the_ticker_stops_without_subscribers_and_starts_again_with_one() {
        let (app, feed) = feed(LiveFeedConfig {
            interval: Duration::from_millis(5),
            ..LiveFeedConfig::default()
        })
        .await;
        let sub = feed.subscribe().unwrap();
        assert!(feed.ticking.load(Ordering::Acquire));
        drop(sub);
        for _ in 0..400 {
            if !feed.ticking.load(Ordering::Acquire) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!feed.ticking.load(Ordering::Acquire), "stopped");
        let mut sub = feed.subscribe().unwrap();
        sub.next().await.unwrap();
        count(&app, 1, "view");
        let m = sub.next().await.unwrap();
        assert_eq!(m.frame.events.total, 1, "the new ticker sends updates");
        app.shutdown().await;
    }

    #[tokio::test]
    async fn the_round_trip_figures_arrive_in_a_later_frame() {
        let (app, feed) = feed(LiveFeedConfig {
            interval: Duration::from_millis(10),
            ..LiveFeedConfig::default()
        })
        .await;
        let mut sub = feed.subscribe().unwrap();
        let mut frame = sub.next().await.unwrap().frame;
        while frame.dependencies.status == RoundTripStatus::Pending {
            frame = sub.next().await.unwrap().frame;
        }
        let queues: Vec<&str> = frame
            .dependencies
            .queue_depths
            .iter()
            .map(|q| q.queue.as_str())
            .collect();
        assert!(
            queues.contains(&app.config.live_queue.as_str()),
            "{queues:?}"
        );
        assert_eq!(frame.dependencies.status, RoundTripStatus::Fresh);
        assert_eq!(frame.dependencies.outbox_backlog, Some(0));
        assert_eq!(frame.dependencies.dead_letters, Some(0));
        app.shutdown().await;
    }
}
