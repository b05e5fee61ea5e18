//! Per-user activity counts kept beside the event log, for
//! [`crate::EventStore::activity_summary`].
//!
//! One bucket document per user and UTC month in the `user_activity` collection:
//!
//! ```text
//! { _id: "<user_id>|2026-11", user_id: "<user_id>", month: "2026-11",
//!   days: { "22": { n: { "page_view": 3, "click": 1 }, last: ISODate(...) } } }
//! ```
//!
//! Logging an event upserts its bucket (`$inc` of the day's count for its type, `$max` of the
//! day's latest timestamp), so a summary over at most [`crate::MAX_ACTIVITY_DAYS`] days is a
//! handful of reads by `_id` whatever the size of the log. On MongoDB those are index lookups.
//! FerretDB 1.x uses no index even for `_id` (its PostgreSQL backend filters with `@>`, its
//! SQLite backend indexes a different expression than it queries), so there each read scans the
//! buckets — one per user and month, far fewer than the events a `user_id` query would scan.
//! The `_id` ends with the fixed-width `|YYYY-MM`, so it is unambiguous for any user id.
//!
//! Event types become field names, so `%` and `.` are escaped (`%25`, `%2E`); validation has
//! already refused a leading `$`.

use std::collections::BTreeMap;

use bson::{doc, Bson, DateTime as BsonDateTime, Document};
use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::model::{ActivitySummary, DayRange, Event};

/// The collection holding the buckets.
pub(crate) const ACTIVITY: &str = "user_activity";

/// The `_id` of `user_id`'s bucket for the month of `day`.
pub(crate) fn bucket_id(user_id: &str, day: NaiveDate) -> String {
    format!("{user_id}|{}", month_key(day))
}

fn month_key(day: NaiveDate) -> String {
    format!("{:04}-{:02}", day.year(), day.month())
}

/// `event_type` as a field name (no `.`; `%` escaped so decoding is exact).
pub(crate) fn encode_type(event_type: &str) -> String {
    event_type.replace('%', "%25").replace('.', "%2E")
}

/// The inverse of [`encode_type`].
pub(crate) fn decode_type(field: &str) -> String {
    field.replace("%2E", ".").replace("%25", "%")
}

/// One `update` statement per bucket touched by `events` (counts merged client-side), in a
/// stable order.
pub(crate) fn bucket_updates<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<Document> {
    // bucket id -> (user, month, field -> increment, day -> latest)
    type Bucket = (
        String,
        String,
        BTreeMap<String, i64>,
        BTreeMap<String, DateTime<Utc>>,
    );
    let mut buckets: BTreeMap<String, Bucket> = BTreeMap::new();
    for e in events {
        let day = e.timestamp.date_naive();
        let bucket = buckets
            .entry(bucket_id(&e.user_id, day))
            .or_insert_with(|| {
                (
                    e.user_id.clone(),
                    month_key(day),
                    BTreeMap::new(),
                    BTreeMap::new(),
                )
            });
        let dd = format!("{:02}", day.day());
        *bucket
            .2
            .entry(format!("days.{dd}.n.{}", encode_type(&e.event_type)))
            .or_default() += 1;
        let latest = bucket
            .3
            .entry(format!("days.{dd}.last"))
            .or_insert(e.timestamp);
        *latest = (*latest).max(e.timestamp);
    }
    buckets
        .into_iter()
        .map(|(id, (user_id, month, incs, lasts))| {
            let inc: Document = incs.into_iter().map(|(k, n)| (k, Bson::Int64(n))).collect();
            let max: Document = lasts
                .into_iter()
                .map(|(k, t)| (k, Bson::DateTime(BsonDateTime::from_chrono(t))))
                .collect();
            doc! {
                "q": { "_id": id },
                "u": {
                    "$inc": inc,
                    "$max": max,
                    "$setOnInsert": { "user_id": user_id, "month": month },
                },
                "upsert": true,
            }
        })
        .collect()
}

/// The bucket ids covering `days`, one per month, oldest first.
pub(crate) fn bucket_ids(user_id: &str, days: &DayRange) -> Vec<String> {
    let mut ids = Vec::new();
    let mut month = days.first.with_day(1).unwrap_or(days.first);
    while month <= days.last {
        ids.push(bucket_id(user_id, month));
        month = match month.checked_add_months(chrono::Months::new(1)) {
            Some(next) => next,
            None => break,
        };
    }
    ids
}

/// Adds the days of `bucket` that fall in `days` to `summary`. Malformed parts (not written by
/// this crate) are skipped.
pub(crate) fn add_bucket(summary: &mut ActivitySummary, bucket: &Document, days: &DayRange) {
    let Some(month) = bucket
        .get_str("month")
        .ok()
        .and_then(|m| NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").ok())
    else {
        return;
    };
    let Ok(by_day) = bucket.get_document("days") else {
        return;
    };
    for (dd, day_doc) in by_day {
        let in_range = dd
            .parse::<u32>()
            .ok()
            .and_then(|d| month.with_day(d))
            .is_some_and(|d| days.contains(d));
        let Bson::Document(day_doc) = day_doc else {
            continue;
        };
        if !in_range {
            continue;
        }
        if let Ok(counts) = day_doc.get_document("n") {
            for (field, n) in counts {
                let n = match n {
                    Bson::Int64(n) => *n,
                    Bson::Int32(n) => i64::from(*n),
                    Bson::Double(n) => *n as i64,
                    _ => continue,
                };
                *summary.counts.entry(decode_type(field)).or_default() += n.max(0) as u64;
            }
        }
        if let Ok(last) = day_doc.get_datetime("last") {
            summary.last_event_at = summary.last_event_at.max(Some(last.to_chrono()));
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .expect("valid")
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid")
    }

    #[test]
    fn event_types_round_trip_through_field_names() {
        for t in ["click", "a.b", "50%", "%2E", "x.%.y"] {
            let f = encode_type(t);
            assert!(!f.contains('.'), "{f}");
            assert_eq!(decode_type(&f), t);
        }
    }

    #[test]
    fn updates_merge_events_per_bucket() {
        let events = vec![
            Event::new("u1", "click").at(at(2026, 11, 22, 1)),
            Event::new("u1", "click").at(at(2026, 11, 22, 5)),
            Event::new("u1", "a.b").at(at(2026, 11, 3, 1)),
            Event::new("u1", "click").at(at(2026, 12, 1, 0)),
            Event::new("u2", "click").at(at(2026, 11, 22, 1)),
        ];
        let updates = bucket_updates(&events);
        assert_eq!(updates.len(), 3);
        assert_eq!(
            updates[0],
            doc! {
                "q": { "_id": "u1|2026-11" },
                "u": {
                    "$inc": { "days.03.n.a%2Eb": 1_i64, "days.22.n.click": 2_i64 },
                    "$max": {
                        "days.03.last": BsonDateTime::from_chrono(at(2026, 11, 3, 1)),
                        "days.22.last": BsonDateTime::from_chrono(at(2026, 11, 22, 5)),
                    },
                    "$setOnInsert": { "user_id": "u1", "month": "2026-11" },
                },
                "upsert": true,
            }
        );
    }

    #[test]
    fn bucket_ids_cover_every_month_of_the_range() {
        let ids = bucket_ids("u", &DayRange::new(date(2026, 11, 30), date(2027, 2, 1)));
        assert_eq!(ids, ["u|2026-11", "u|2026-12", "u|2027-01", "u|2027-02"]);
        let one = bucket_ids("u", &DayRange::new(date(2026, 2, 3), date(2026, 2, 3)));
        assert_eq!(one, ["u|2026-02"]);
    }

    #[test]
    fn only_days_in_range_are_added() {
        let bucket = doc! {
            "_id": "u|2026-11", "user_id": "u", "month": "2026-11",
            "days": {
                "02": { "n": { "click": 4_i64 }, "last": BsonDateTime::from_chrono(at(2026, 11, 2, 9)) },
                "20": { "n": { "click": 1_i64, "a%2Eb": 2_i64 }, "last": BsonDateTime::from_chrono(at(2026, 11, 20, 7)) },
                "xx": { "n": { "click": 100_i64 } },
            },
        };
        let mut s = ActivitySummary::default();
        add_bucket(
            &mut s,
            &bucket,
            &DayRange::new(date(2026, 11, 10), date(2026, 11, 30)),
        );
        assert_eq!(s.count("click"), 1);
        assert_eq!(s.count("a.b"), 2);
        assert_eq!(s.last_event_at, Some(at(2026, 11, 20, 7)));
    }
}
