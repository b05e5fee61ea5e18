//! How an event type feeds a user's engagement counters ([`ActivityCounts`]): the analytics
//! flow counts each recorded event into the live counters in the cache, and personalisation
//! counts the event log's per-type totals the same way.

use mod8_datasci::ActivityCounts;

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
}
