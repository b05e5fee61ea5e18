//! Input checks shared by every backend: the same document is rejected the same way whether it
//! goes to MongoDB or stays in memory, and nothing user-supplied can become a query operator.

use std::time::Duration;

use crate::model::{
    truncate_to_millis, DayRange, Event, EventFilter, GeoPoint, MetricsUpdate, ProfileDocument,
    Subscription, MAX_ACTIVITY_DAYS,
};
use crate::{Error, Result};

/// Longest accepted identifier-like string (user id, username, event type, plan, interest).
const MAX_NAME_LEN: usize = 256;

/// A key that MongoDB would read as an operator (`$...`) or a path (`a.b`), an empty key or
/// one with NUL: the rule is [`mod8_rules::field_name_problem`], the one the analytics API
/// and consumer apply to event properties too.
fn check_key(path: &str, key: &str) -> Result<()> {
    match mod8_rules::field_name_problem(key) {
        None => Ok(()),
        // An empty name or one with NUL is named by its parent's path (it cannot be printed).
        Some(problem) if key.is_empty() || key.contains('\0') => {
            Err(Error::validation(path, format!("a field name {problem}")))
        }
        Some(problem) => Err(Error::validation(
            format!("{path}.{key}"),
            format!("the field name {problem}"),
        )),
    }
}

fn check_json(path: &str, value: &serde_json::Value) -> Result<()> {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                check_key(path, k)?;
                check_json(&format!("{path}.{k}"), v)?;
            }
            Ok(())
        }
        serde_json::Value::Array(items) => items.iter().try_for_each(|v| check_json(path, v)),
        _ => Ok(()),
    }
}

/// A required identifier-like string: not empty, not too long, not an operator or field path
/// when used as a query value (`$where`, `$gt`).
pub(crate) fn check_name(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::validation(field, "is required"));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(Error::validation(
            field,
            format!("longer than {MAX_NAME_LEN} bytes"),
        ));
    }
    if value.starts_with('$') {
        return Err(Error::validation(field, "must not start with '$'"));
    }
    if value.contains('\0') {
        return Err(Error::validation(field, "must not contain NUL"));
    }
    Ok(())
}

/// Coordinates inside [-180, 180] × [-90, 90].
pub(crate) fn check_point(field: &str, p: &GeoPoint) -> Result<()> {
    if !(p.longitude.is_finite() && (-180.0..=180.0).contains(&p.longitude)) {
        return Err(Error::validation(
            field,
            format!("longitude {} outside [-180, 180]", p.longitude),
        ));
    }
    if !(p.latitude.is_finite() && (-90.0..=90.0).contains(&p.latitude)) {
        return Err(Error::validation(
            field,
            format!("latitude {} outside [-90, 90]", p.latitude),
        ));
    }
    Ok(())
}

fn check_optional_text(field: &str, value: &Option<String>) -> Result<()> {
    match value {
        Some(v) if v.starts_with('$') => Err(Error::validation(
            field,
            format!("{} must not start with '$'", mod8_rules::echo(v)),
        )),
        _ => Ok(()),
    }
}

/// Checks an event as [`crate::EventStore::log_event`] and the other event writers do,
/// without storing it: what this rejects, the store rejects with the same error. For callers
/// that accept events to store later (an API in front of a queue).
///
/// # Errors
///
/// [`Error::Validation`] naming the field (`user_id`, `event_type`, `metadata.product`,
/// `metadata.category`, `metadata.price`, `metadata.extras...`, `geo...`).
pub fn check_event(e: &Event) -> Result<()> {
    event(e.clone()).map(|_| ())
}

/// Checks an event and normalizes it for storage (millisecond timestamp).
pub(crate) fn event(mut e: Event) -> Result<Event> {
    check_name("user_id", &e.user_id)?;
    check_name("event_type", &e.event_type)?;
    if let Some(m) = &e.metadata {
        check_optional_text("metadata.product", &m.product)?;
        check_optional_text("metadata.category", &m.category)?;
        if let Some(price) = m.price {
            if !price.is_finite() || price < 0.0 {
                return Err(Error::validation(
                    "metadata.price",
                    format!("{price} is not a finite, non-negative price"),
                ));
            }
        }
        for (k, v) in &m.extras {
            check_key("metadata.extras", k)?;
            check_json(&format!("metadata.extras.{k}"), v)?;
        }
        // The size bounds of event properties (key count, depth, serialized size).
        mod8_rules::properties("metadata.extras", &m.extras)?;
    }
    if let Some(g) = &e.geo {
        check_optional_text("geo.country", &g.country)?;
        check_optional_text("geo.city", &g.city)?;
        if let Some(p) = &g.location {
            check_point("geo.location", p)?;
        }
    }
    e.timestamp = truncate_to_millis(e.timestamp);
    Ok(e)
}

/// Checks a profile and normalizes it for storage.
pub(crate) fn profile(mut p: ProfileDocument) -> Result<ProfileDocument> {
    check_name("user_id", &p.user_id)?;
    check_name("username", &p.username)?;
    check_name("email", &p.email)?;
    match p.email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => {}
        _ => return Err(Error::validation("email", "not an e-mail address")),
    }
    for interest in &p.profile.interests {
        check_name("profile.interests", interest)?;
    }
    if p.profile.project_count < 0 {
        return Err(Error::validation("profile.project_count", "negative"));
    }
    if !p.metrics.engagement_score.is_finite() {
        return Err(Error::validation("metrics.engagement_score", "not finite"));
    }
    p.created_at = truncate_to_millis(p.created_at);
    p.subscriptions = p
        .subscriptions
        .into_iter()
        .map(subscription)
        .collect::<Result<_>>()?;
    Ok(p)
}

/// Checks a snapshot to store in `analytics`.
pub(crate) fn snapshot(
    name: &str,
    result: serde_json::Value,
) -> Result<crate::model::AnalyticsSnapshot> {
    check_name("name", name)?;
    check_json("result", &result)?;
    Ok(crate::model::AnalyticsSnapshot {
        id: Some(bson::oid::ObjectId::new()),
        name: name.to_owned(),
        computed_at: crate::model::now(),
        result,
    })
}

/// Checks a subscription and normalizes it for storage.
pub(crate) fn subscription(mut s: Subscription) -> Result<Subscription> {
    check_name("subscriptions.plan", &s.plan)?;
    s.started_at = truncate_to_millis(s.started_at);
    Ok(s)
}

/// Checks a metrics update (a finite score).
pub(crate) fn metrics_update(u: &MetricsUpdate) -> Result<()> {
    if let Some(score) = u.engagement_score {
        if !score.is_finite() {
            return Err(Error::validation("metrics.engagement_score", "not finite"));
        }
    }
    Ok(())
}

/// An activity [`crate::ProfileStore::apply_activity`] accepts.
pub(crate) fn activity_update(u: &crate::model::ActivityUpdate) -> Result<()> {
    check_name("event_id", &u.event_id)?;
    check_key("event_type", &u.event_type)?;
    check_name("event_type", &u.event_type)?;
    if !u.score.is_finite() {
        return Err(Error::validation("score", "not finite"));
    }
    check_optional_text("interest", &u.interest)?;
    Ok(())
}

/// A user id and a day range [`crate::EventStore::activity_summary`] accepts.
pub(crate) fn activity_query(user_id: &str, days: &DayRange) -> Result<()> {
    check_name("user_id", user_id)?;
    if days.first > days.last {
        return Err(Error::validation(
            "days",
            format!("first day {} is after last day {}", days.first, days.last),
        ));
    }
    if days.len_days() > MAX_ACTIVITY_DAYS {
        return Err(Error::validation(
            "days",
            format!(
                "{} days is longer than the {MAX_ACTIVITY_DAYS} allowed",
                days.len_days()
            ),
        ));
    }
    Ok(())
}

/// A log retention both backends apply the same way, as the TTL index's `expireAfterSeconds`:
/// whole seconds (the index's unit, so the in-memory store cannot keep entries a fraction of a
/// second longer than MongoDB), at least 1 (0 would expire entries at once) and at most
/// `i32::MAX` (the largest value MongoDB accepts; also keeps `now - retention` far from
/// chrono's range limits).
pub(crate) fn log_retention(retention: Duration) -> Result<i32> {
    const FIELD: &str = "log_retention";
    if retention.subsec_nanos() != 0 {
        return Err(Error::validation(
            FIELD,
            format!("{retention:?} is not a whole number of seconds"),
        ));
    }
    match i32::try_from(retention.as_secs()) {
        Ok(secs) if secs >= 1 => Ok(secs),
        Ok(_) => Err(Error::validation(FIELD, "must be at least 1 second")),
        Err(_) => Err(Error::validation(
            FIELD,
            format!(
                "{} seconds is longer than the {} allowed",
                retention.as_secs(),
                i32::MAX
            ),
        )),
    }
}

/// An export filter whose user id and event type cannot become operators.
pub(crate) fn event_filter(filter: &EventFilter) -> Result<()> {
    if let Some(u) = &filter.user_id {
        check_name("user_id", u)?;
    }
    if let Some(t) = &filter.event_type {
        check_name("event_type", t)?;
    }
    Ok(())
}

/// A distance for [`crate::EventStore::events_near`]: finite, not negative.
pub(crate) fn distance(max_distance_m: f64) -> Result<()> {
    if !max_distance_m.is_finite() || max_distance_m < 0.0 {
        return Err(Error::validation(
            "max_distance_m",
            "must be a finite, non-negative distance",
        ));
    }
    Ok(())
}

/// A marker prefix for [`crate::DocStore::purge_markers`]: not empty, not starting with `$`.
pub(crate) fn check_marker_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() || prefix.starts_with('$') {
        return Err(Error::Validation {
            field: "prefix".into(),
            message: "a marker prefix must not be empty or start with '$'".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventMetadata, Geo};

    #[test]
    fn operator_keys_in_extras_are_rejected_with_their_path() {
        let mut m = EventMetadata::default();
        m.extras
            .insert("nested".into(), serde_json::json!({"ok": {"$where": "1"}}));
        let err = event(Event::new("u", "click").with_metadata(m)).unwrap_err();
        assert_eq!(err.field(), Some("metadata.extras.nested.ok.$where"));

        let mut m = EventMetadata::default();
        m.extras.insert("a.b".into(), serde_json::json!(1));
        let err = event(Event::new("u", "click").with_metadata(m)).unwrap_err();
        assert_eq!(err.field(), Some("metadata.extras.a.b"));
    }

    #[test]
    fn extras_are_bounded_in_items_depth_and_size() {
        for big in [
            serde_json::json!(vec![0; 7_000]),
            serde_json::json!("x".repeat(mod8_rules::MAX_PROPERTIES_BYTES)),
            serde_json::json!({"a": {"b": {"c": {"d": 1}}}}),
        ] {
            let mut m = EventMetadata::default();
            m.extras.insert("big".into(), big.clone());
            let err = event(Event::new("u", "click").with_metadata(m)).unwrap_err();
            assert_eq!(err.field(), Some("metadata.extras"), "{big}");
        }
        let mut m = EventMetadata::default();
        m.extras.insert("fine".into(), serde_json::json!([1, 2, 3]));
        let e = Event::new("u", "click").with_metadata(m);
        assert!(check_event(&e).is_ok());
    }

    #[test]
    fn coordinates_outside_the_globe_are_rejected() {
        for (lon, lat) in [(180.1, 0.0), (0.0, -90.5), (f64::NAN, 0.0)] {
            let geo = Geo {
                location: Some(GeoPoint::new(lon, lat)),
                ..Geo::default()
            };
            let err = event(Event::new("u", "click").with_geo(geo)).unwrap_err();
            assert_eq!(err.field(), Some("geo.location"));
        }
        assert!(check_point("p", &GeoPoint::new(-180.0, 90.0)).is_ok());
    }

    #[test]
    fn log_retention_is_whole_seconds_from_1_to_i32_max() {
        assert_eq!(log_retention(Duration::from_secs(1)).unwrap(), 1);
        assert_eq!(
            log_retention(Duration::from_secs(i32::MAX as u64)).unwrap(),
            i32::MAX
        );
        for bad in [
            Duration::ZERO,
            Duration::from_millis(500),
            Duration::from_millis(1500),
            Duration::from_secs(i32::MAX as u64 + 1),
            Duration::MAX,
        ] {
            let err = log_retention(bad).unwrap_err();
            assert_eq!(err.field(), Some("log_retention"), "{bad:?}");
        }
    }

    #[test]
    fn profile_needs_a_real_email_and_plain_names() {
        let err = profile(ProfileDocument::new("1", "ada", "nope")).unwrap_err();
        assert_eq!(err.field(), Some("email"));
        let err = profile(ProfileDocument::new("1", "$ne", "a@b.io")).unwrap_err();
        assert_eq!(err.field(), Some("username"));
        assert!(profile(ProfileDocument::new("1", "ada", "ada@example.com")).is_ok());
    }
}
