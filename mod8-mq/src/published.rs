//! Messages a [`Producer`](crate::Producer) published, counted per route, for metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Routes counted apart at most; publishes along further routes are counted together under
/// [`PublishedCount::OTHER`], so a caller inventing routing keys cannot grow the table.
pub const MAX_COUNTED_ROUTES: usize = 64;

/// Confirmed publishes along one route ([`Producer::published`](crate::Producer::published)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedCount {
    /// The exchange (empty: the default exchange), or [`PublishedCount::OTHER`].
    pub exchange: String,
    /// The routing key, or [`PublishedCount::OTHER`].
    pub routing_key: String,
    /// Messages the broker confirmed along this route.
    pub messages: u64,
}

impl PublishedCount {
    /// The exchange and routing key of publishes beyond [`MAX_COUNTED_ROUTES`] routes.
    pub const OTHER: &'static str = "other";
}

/// Counts per (exchange, routing key), bounded by [`MAX_COUNTED_ROUTES`].
#[derive(Debug, Default)]
pub(crate) struct PublishedCounts(Mutex<BTreeMap<(String, String), u64>>);

impl PublishedCounts {
    pub(crate) fn add(&self, exchange: &str, routing_key: &str, messages: u64) {
        if messages == 0 {
            return;
        }
        let Ok(mut counts) = self.0.lock() else {
            return;
        };
        let key = (exchange.to_owned(), routing_key.to_owned());
        let key = if counts.contains_key(&key) || counts.len() < MAX_COUNTED_ROUTES {
            key
        } else {
            (
                PublishedCount::OTHER.to_owned(),
                PublishedCount::OTHER.to_owned(),
            )
        };
        *counts.entry(key).or_default() += messages;
    }

    pub(crate) fn snapshot(&self) -> Vec<PublishedCount> {
        self.0
            .lock()
            .map(|counts| {
                counts
                    .iter()
                    .map(|((exchange, routing_key), messages)| PublishedCount {
                        exchange: exchange.clone(),
                        routing_key: routing_key.clone(),
                        messages: *messages,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_past_the_bound_are_counted_together() {
        let counts = PublishedCounts::default();
        for i in 0..MAX_COUNTED_ROUTES + 10 {
            counts.add("x", &format!("key.{i}"), 1);
        }
        counts.add("x", "key.0", 2);
        let snapshot = counts.snapshot();
        assert_eq!(snapshot.len(), MAX_COUNTED_ROUTES + 1);
        let other = snapshot
            .iter()
            .find(|c| c.exchange == PublishedCount::OTHER)
            .unwrap();
        assert_eq!(other.messages, 10);
        let first = snapshot.iter().find(|c| c.routing_key == "key.0").unwrap();
        assert_eq!(first.messages, 3);
    }
}
