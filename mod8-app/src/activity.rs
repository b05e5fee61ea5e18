//! How an event type feeds a user's engagement counters ([`ActivityCounts`]): the analytics
//! flow counts each recorded event into the live counters in the cache, and personalisation
//! counts the event log's per-type totals the same way.

use std::collections::BTreeMap;

use mod8_datasci::ActivityCounts;

/// The fields of a user's engagement counter in the cache (one per [`ActivityCounts`] field,
/// in its order), plus [`TOTAL_FIELD`].
pub const COUNTER_FIELDS: [&str; 6] = [
    "sessions",
    "page_views",
    "clicks",
    "searches",
    "cart_adds",
    "reviews",
];

/// The counter field that counts every event, whatever its type.
pub const TOTAL_FIELD: &str = "events";

/// The [`COUNTER_FIELDS`] entry an event type feeds, if any (the same mapping as
/// [`count_event`]).
pub fn counter_field(event_type: &str) -> Option<&'static str> {
    let mut probe = ActivityCounts::default();
    count_event(&mut probe, event_type);
    let counts = as_array(&probe);
    counts
        .iter()
        .position(|&n| n > 0)
        .map(|i| COUNTER_FIELDS[i])
}

/// The increment one event of `event_type` makes to a user's engagement counter: 1 on its
/// field and on [`TOTAL_FIELD`], 0 on the others (so the answer carries every field).
pub fn counter_deltas(event_type: &str) -> Vec<(&'static str, i64)> {
    let field = counter_field(event_type);
    COUNTER_FIELDS
        .iter()
        .map(|&f| (f, i64::from(Some(f) == field)))
        .chain(std::iter::once((TOTAL_FIELD, 1)))
        .collect()
}

/// A user's engagement counter fields from the user's events per type (as the event log
/// counts them): each event counted with [`counter_deltas`], so the result is what counting
/// every one of them live gives. Every field of [`counter_deltas`] is present, in its order.
pub fn counter_fields_from_type_counts<'a>(
    counts: impl IntoIterator<Item = (&'a str, u64)>,
) -> Vec<(&'static str, i64)> {
    let mut fields: Vec<(&'static str, i64)> = COUNTER_FIELDS
        .iter()
        .map(|&f| (f, 0))
        .chain(std::iter::once((TOTAL_FIELD, 0)))
        .collect();
    for (event_type, n) in counts {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        for ((_, value), (_, delta)) in fields.iter_mut().zip(counter_deltas(event_type)) {
            *value = value.saturating_add(delta.saturating_mul(n));
        }
    }
    fields
}

/// [`ActivityCounts`] from a counter's fields (missing fields are 0, values clamped to `u32`).
pub fn counts_from_fields<'a>(fields: impl IntoIterator<Item = (&'a str, i64)>) -> ActivityCounts {
    let mut counts = ActivityCounts::default();
    for (field, value) in fields {
        let value = u32::try_from(value.max(0)).unwrap_or(u32::MAX);
        match field {
            "sessions" => counts.sessions = value,
            "page_views" => counts.page_views = value,
            "clicks" => counts.clicks = value,
            "searches" => counts.searches = value,
            "cart_adds" => counts.cart_adds = value,
            "reviews" => counts.reviews = value,
            _ => {}
        }
    }
    counts
}

/// [`counts_from_fields`] over a counter as [`mod8_cache::Cache::counter`] reads it.
pub fn counts_from_counter(counter: &BTreeMap<String, i64>) -> ActivityCounts {
    counts_from_fields(counter.iter().map(|(k, v)| (k.as_str(), *v)))
}

/// What one event of `event_type` adds to a profile's `metrics.engagement_score`: 10 for a
/// purchase, 5 for a cart add or review, 2 for a click or search, 1 for anything else.
pub fn engagement_weight(event_type: &str) -> f64 {
    match event_type {
        "purchase" => 10.0,
        "cart_add" | "add_to_cart" | "review" => 5.0,
        "click" | "search" => 2.0,
        _ => 1.0,
    }
}

/// Whether an event of `event_type` shows interest in its `category` property (a view, a
/// click, a cart add or a purchase).
pub fn shows_interest(event_type: &str) -> bool {
    matches!(
        event_type,
        "page_view" | "view" | "click" | "cart_add" | "add_to_cart" | "purchase"
    )
}

fn as_array(c: &ActivityCounts) -> [u32; 6] {
    [
        c.sessions,
        c.page_views,
        c.clicks,
        c.searches,
        c.cart_adds,
        c.reviews,
    ]
}

/// Adds one event to the counters it belongs to.
pub fn count_event(counters: &mut ActivityCounts, event_type: &str) {
    count_events(counters, event_type, 1);
}

/// Adds `n` events of `event_type` to the counter it feeds (saturating; unknown types are
/// ignored), as [`count_event`].
pub fn count_events(counters: &mut ActivityCounts, event_type: &str, n: u64) {
    let slot = match event_type {
        "session" | "login" => &mut counters.sessions,
        "page_view" | "view" => &mut counters.page_views,
        "click" => &mut counters.clicks,
        "search" => &mut counters.searches,
        "cart_add" | "add_to_cart" => &mut counters.cart_adds,
        "review" => &mut counters.reviews,
        _ => return,
    };
    *slot = slot.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_known_types_and_ignores_others() {
        let mut c = ActivityCounts::default();
        for t in [
            "session",
            "page_view",
            "page_view",
            "click",
            "cart_add",
            "purchase",
            "odd",
        ] {
            count_event(&mut c, t);
        }
        assert_eq!(
            (c.sessions, c.page_views, c.clicks, c.cart_adds),
            (1, 2, 1, 1)
        );
        assert_eq!((c.searches, c.reviews), (0, 0));
    }

    #[test]
    fn counter_deltas_follow_count_event() {
        for t in [
            "session",
            "login",
            "page_view",
            "click",
            "search",
            "add_to_cart",
            "review",
        ] {
            let mut expected = ActivityCounts::default();
            count_event(&mut expected, t);
            let deltas = counter_deltas(t);
            assert_eq!(counts_from_fields(deltas.iter().copied()), expected, "{t}");
            assert!(deltas.contains(&(TOTAL_FIELD, 1)));
        }
        // Per-type totals give what counting each event does.
        let events = ["click", "page_view", "click", "purchase", "odd", "login"];
        let mut live = vec![0i64; 7];
        for t in events {
            for (v, (_, d)) in live.iter_mut().zip(counter_deltas(t)) {
                *v += d;
            }
        }
        let rebuilt = counter_fields_from_type_counts([
            ("click", 2),
            ("page_view", 1),
            ("purchase", 1),
            ("odd", 1),
            ("login", 1),
        ]);
        assert_eq!(rebuilt.iter().map(|(_, v)| *v).collect::<Vec<_>>(), live);
        assert_eq!(rebuilt.last(), Some(&(TOTAL_FIELD, 6)));
        let purchase = counter_deltas("purchase");
        assert_eq!(purchase.iter().map(|(_, d)| d).sum::<i64>(), 1);
        assert_eq!(counter_field("purchase"), None);
    }
}
