//! The live dashboard: event counts by type and per-user rates over a sliding window, fed by
//! a second subscriber of the `analytics` fanout, raising an alert when a user crosses the
//! configured threshold.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// What the live dashboard shows.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DashboardSnapshot {
    /// Events seen per type since start, most frequent first.
    pub events_by_type: Vec<(String, u64)>,
    /// Events seen since start.
    pub total_events: u64,
    /// Alerts raised since start.
    pub alerts: u64,
}

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
    recent: HashMap<String, VecDeque<Instant>>,
}

impl LiveDashboard {
    /// A dashboard alerting when one user has `threshold` events within `window`.
    pub fn new(threshold: u64, window: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            window,
            state: Mutex::new(State::default()),
        }
    }

    /// Counts one event; returns `true` exactly when this event takes its user to the threshold
    /// (one alert per crossing, not one per event above it).
    pub fn record(&self, user_id: &str, event_type: &str, now: Instant) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        *s.by_type.entry(event_type.to_owned()).or_default() += 1;
        s.total += 1;
        let recent = s.recent.entry(user_id.to_owned()).or_default();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            recent.pop_front();
        }
        recent.push_back(now);
        let crossed = recent.len() as u64 == self.threshold;
        if crossed {
            s.alerts += 1;
        }
        crossed
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_once_per_crossing_within_the_window() {
        let live = LiveDashboard::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(!live.record("u1", "view", t0));
        assert!(!live.record("u1", "view", t0 + Duration::from_secs(1)));
        assert!(live.record("u1", "click", t0 + Duration::from_secs(2)));
        assert!(
            !live.record("u1", "view", t0 + Duration::from_secs(3)),
            "no second alert above the threshold"
        );
        // Another user is counted separately.
        assert!(!live.record("u2", "view", t0));
        // Far later the window has emptied: the count starts again.
        assert!(!live.record("u1", "view", t0 + Duration::from_secs(60)));
        let snap = live.snapshot();
        assert_eq!(snap.total_events, 6);
        assert_eq!(snap.alerts, 1);
        assert_eq!(snap.events_by_type[0], ("view".to_owned(), 5));
    }
}
