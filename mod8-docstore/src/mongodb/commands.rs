//! The exact query pipelines and filters the MongoDB backend sends, built by pure functions so
//! unit tests can assert them without a server. (What setup sends is in `schema`.)

use bson::{doc, Bson, DateTime as BsonDateTime, Document};

use crate::model::{EventFilter, GeoPoint, TimeWindow, PURCHASE};
use crate::setup;

/// The `$match` condition for `field` inside `window`.
pub(crate) fn window_match(field: &str, window: TimeWindow) -> Document {
    let mut range = Document::new();
    if let Some(s) = window.start {
        range.insert("$gte", BsonDateTime::from_chrono(s));
    }
    if let Some(e) = window.end {
        range.insert("$lt", BsonDateTime::from_chrono(e));
    }
    if range.is_empty() {
        Document::new()
    } else {
        doc! { field: range }
    }
}

/// The find filter for an export.
pub(crate) fn export_filter(filter: &EventFilter) -> Document {
    let mut f = window_match("timestamp", filter.window);
    if let Some(u) = &filter.user_id {
        f.insert("user_id", u.as_str());
    }
    if let Some(t) = &filter.event_type {
        f.insert("event_type", t.as_str());
    }
    f
}

/// A `$group` stage with its accumulators, optionally followed by `$sort` / `$limit`, either as
/// one pipeline or — for servers that compute only one accumulator per `$group` correctly
/// (FerretDB 1.x returns zeros for the others) — as one pipeline per accumulator, merged by
/// `_id` on the client (the sort and limit then happen on the client too).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Grouped {
    pub(crate) prefix: Vec<Document>,
    pub(crate) id: Bson,
    pub(crate) accumulators: Vec<(&'static str, Document)>,
    pub(crate) suffix: Vec<Document>,
}

impl Grouped {
    /// The pipelines to run: one (`split == false`) or one per accumulator.
    pub(crate) fn pipelines(&self, split: bool) -> Vec<Vec<Document>> {
        let group = |accs: &[(&'static str, Document)]| {
            let mut g = doc! { "_id": self.id.clone() };
            for (name, acc) in accs {
                g.insert(*name, acc.clone());
            }
            doc! { "$group": g }
        };
        if split && self.accumulators.len() > 1 {
            self.accumulators
                .iter()
                .map(|acc| {
                    let mut p = self.prefix.clone();
                    p.push(group(std::slice::from_ref(acc)));
                    p
                })
                .collect()
        } else {
            let mut p = self.prefix.clone();
            p.push(group(&self.accumulators));
            p.extend(self.suffix.iter().cloned());
            vec![p]
        }
    }
}

fn match_stage(filter: Document) -> Vec<Document> {
    if filter.is_empty() {
        Vec::new()
    } else {
        vec![doc! { "$match": filter }]
    }
}

/// Events per type in a window, most frequent first.
pub(crate) fn event_distribution(window: TimeWindow) -> Grouped {
    Grouped {
        prefix: match_stage(window_match("timestamp", window)),
        id: Bson::String("$event_type".into()),
        accumulators: vec![("count", doc! { "$sum": 1 })],
        suffix: vec![doc! { "$sort": { "count": -1, "_id": 1 } }],
    }
}

/// The find filter of one user's events timestamped at or after `since` (read one by one,
/// with their message ids, by `user_event_counts`).
pub(crate) fn user_recent_events(user_id: &str, since: chrono::DateTime<chrono::Utc>) -> Document {
    doc! { "user_id": user_id, "timestamp": { "$gte": BsonDateTime::from_chrono(since) } }
}

/// One user's events timestamped before `until`, counted per type (the older part of
/// `user_event_counts`).
pub(crate) fn user_older_event_counts(
    user_id: &str,
    until: chrono::DateTime<chrono::Utc>,
) -> Grouped {
    Grouped {
        prefix: match_stage(
            doc! { "user_id": user_id, "timestamp": { "$lt": BsonDateTime::from_chrono(until) } },
        ),
        id: Bson::String("$event_type".into()),
        accumulators: vec![("count", doc! { "$sum": 1 })],
        suffix: Vec::new(),
    }
}

/// The most active users in a window.
pub(crate) fn user_activity(window: TimeWindow, top: usize) -> Grouped {
    Grouped {
        prefix: match_stage(window_match("timestamp", window)),
        id: Bson::String("$user_id".into()),
        accumulators: vec![
            ("events", doc! { "$sum": 1 }),
            ("first_seen", doc! { "$min": "$timestamp" }),
            ("last_seen", doc! { "$max": "$timestamp" }),
        ],
        suffix: vec![
            doc! { "$sort": { "events": -1, "_id": 1 } },
            doc! { "$limit": i64::try_from(top).unwrap_or(i64::MAX) },
        ],
    }
}

/// Priced purchases per category in a window.
pub(crate) fn purchase_analytics(window: TimeWindow) -> Grouped {
    let mut filter = window_match("timestamp", window);
    filter.insert("event_type", PURCHASE);
    filter.insert("metadata.price", doc! { "$type": "number" });
    Grouped {
        prefix: match_stage(filter),
        id: Bson::String("$metadata.category".into()),
        accumulators: vec![
            ("purchases", doc! { "$sum": 1 }),
            ("revenue", doc! { "$sum": "$metadata.price" }),
        ],
        suffix: vec![doc! { "$sort": { "revenue": -1, "_id": 1 } }],
    }
}

/// Events near a point, nearest first (`$geoNear` must be the first stage).
pub(crate) fn events_near(point: GeoPoint, max_distance_m: f64, limit: usize) -> Vec<Document> {
    vec![
        doc! { "$geoNear": {
            "near": { "type": "Point", "coordinates": [point.longitude, point.latitude] },
            "key": "geo.location",
            "distanceField": "distance_m",
            "maxDistance": max_distance_m,
            "spherical": true,
        }},
        doc! { "$limit": i64::try_from(limit).unwrap_or(i64::MAX) },
    ]
}

/// Cohorts by sign-up month on `user_profiles`, joined with each user's event count in the
/// activity window.
pub(crate) fn cohort_metrics(activity: TimeWindow) -> Grouped {
    let mut conditions = vec![Bson::Document(doc! { "$eq": ["$user_id", "$$uid"] })];
    if let Some(s) = activity.start {
        conditions.push(Bson::Document(
            doc! { "$gte": ["$timestamp", BsonDateTime::from_chrono(s)] },
        ));
    }
    if let Some(e) = activity.end {
        conditions.push(Bson::Document(
            doc! { "$lt": ["$timestamp", BsonDateTime::from_chrono(e)] },
        ));
    }
    Grouped {
        prefix: vec![
            doc! { "$project": {
                "_id": 0,
                "user_id": 1,
                "month": { "$dateToString": {
                    "format": "%Y-%m", "date": "$created_at", "timezone": "UTC",
                }},
            }},
            doc! { "$lookup": {
                "from": setup::EVENTS,
                "let": { "uid": "$user_id" },
                "pipeline": [
                    { "$match": { "$expr": { "$and": conditions } } },
                    { "$count": "n" },
                ],
                "as": "activity",
            }},
            doc! { "$project": {
                "month": 1,
                "events": { "$ifNull": [{ "$arrayElemAt": ["$activity.n", 0] }, 0] },
            }},
        ],
        id: Bson::String("$month".into()),
        accumulators: vec![
            ("users", doc! { "$sum": 1 }),
            (
                "active_users",
                doc! { "$sum": { "$cond": [{ "$gt": ["$events", 0] }, 1, 0] } },
            ),
            ("events", doc! { "$sum": "$events" }),
        ],
        suffix: vec![doc! { "$sort": { "_id": 1 } }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(day: u32) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).unwrap()
    }

    #[test]
    fn distribution_is_match_group_sort() {
        let p = event_distribution(TimeWindow::between(t(1), t(2))).pipelines(false);
        assert_eq!(
            p,
            vec![vec![
                doc! { "$match": { "timestamp": {
                    "$gte": BsonDateTime::from_chrono(t(1)), "$lt": BsonDateTime::from_chrono(t(2)),
                }}},
                doc! { "$group": { "_id": "$event_type", "count": { "$sum": 1 } } },
                doc! { "$sort": { "count": -1, "_id": 1 } },
            ]]
        );
        // One accumulator: splitting changes nothing.
        assert_eq!(
            event_distribution(TimeWindow::all()).pipelines(true),
            event_distribution(TimeWindow::all()).pipelines(false)
        );
    }

    #[test]
    fn user_activity_groups_min_max_and_limits() {
        let p = user_activity(TimeWindow::all(), 5).pipelines(false);
        assert_eq!(
            p,
            vec![vec![
                doc! { "$group": {
                    "_id": "$user_id",
                    "events": { "$sum": 1 },
                    "first_seen": { "$min": "$timestamp" },
                    "last_seen": { "$max": "$timestamp" },
                }},
                doc! { "$sort": { "events": -1, "_id": 1 } },
                doc! { "$limit": 5_i64 },
            ]]
        );
        let split = user_activity(TimeWindow::all(), 5).pipelines(true);
        assert_eq!(split.len(), 3);
        assert_eq!(
            split[1],
            vec![doc! { "$group": { "_id": "$user_id", "first_seen": { "$min": "$timestamp" } } }]
        );
    }

    #[test]
    fn purchase_analytics_matches_priced_purchases() {
        let p = purchase_analytics(TimeWindow::since(t(3))).pipelines(false);
        assert_eq!(
            p,
            vec![vec![
                doc! { "$match": {
                    "timestamp": { "$gte": BsonDateTime::from_chrono(t(3)) },
                    "event_type": "purchase",
                    "metadata.price": { "$type": "number" },
                }},
                doc! { "$group": {
                    "_id": "$metadata.category",
                    "purchases": { "$sum": 1 },
                    "revenue": { "$sum": "$metadata.price" },
                }},
                doc! { "$sort": { "revenue": -1, "_id": 1 } },
            ]]
        );
        let split = purchase_analytics(TimeWindow::all()).pipelines(true);
        assert_eq!(split.len(), 2);
        assert_eq!(
            split[1][1],
            doc! { "$group": { "_id": "$metadata.category", "revenue": { "$sum": "$metadata.price" } } }
        );
    }

    #[test]
    fn events_near_is_a_spherical_geo_near() {
        assert_eq!(
            events_near(GeoPoint::new(13.4, 52.5), 1500.0, 10),
            vec![
                doc! { "$geoNear": {
                    "near": { "type": "Point", "coordinates": [13.4, 52.5] },
                    "key": "geo.location",
                    "distanceField": "distance_m",
                    "maxDistance": 1500.0,
                    "spherical": true,
                }},
                doc! { "$limit": 10_i64 },
            ]
        );
    }

    #[test]
    fn cohort_pipeline_joins_events_by_user_in_the_window() {
        let p = cohort_metrics(TimeWindow::since(t(1))).pipelines(false);
        assert_eq!(p.len(), 1);
        let p = &p[0];
        assert_eq!(
            p[0],
            doc! { "$project": { "_id": 0, "user_id": 1, "month": { "$dateToString": {
            "format": "%Y-%m", "date": "$created_at", "timezone": "UTC" } } } }
        );
        assert_eq!(
            p[1],
            doc! { "$lookup": {
                "from": "events",
                "let": { "uid": "$user_id" },
                "pipeline": [
                    { "$match": { "$expr": { "$and": [
                        { "$eq": ["$user_id", "$$uid"] },
                        { "$gte": ["$timestamp", BsonDateTime::from_chrono(t(1))] },
                    ] } } },
                    { "$count": "n" },
                ],
                "as": "activity",
            }}
        );
        assert_eq!(
            p[2],
            doc! { "$project": {
                "month": 1,
                "events": { "$ifNull": [{ "$arrayElemAt": ["$activity.n", 0] }, 0] },
            }}
        );
        assert_eq!(
            p[3],
            doc! { "$group": {
                "_id": "$month",
                "users": { "$sum": 1 },
                "active_users": { "$sum": { "$cond": [{ "$gt": ["$events", 0] }, 1, 0] } },
                "events": { "$sum": "$events" },
            }}
        );
        assert_eq!(p[4], doc! { "$sort": { "_id": 1 } });
        assert_eq!(p.len(), 5);
    }

    #[test]
    fn cohort_pipeline_bounded_window_and_split_per_accumulator() {
        let window = TimeWindow::between(t(1), t(2));
        let split = cohort_metrics(window).pipelines(true);
        // The same three prefix stages, then one accumulator each; no $sort (done on the
        // client after merging).
        let prefix = vec![
            doc! { "$project": { "_id": 0, "user_id": 1, "month": { "$dateToString": {
            "format": "%Y-%m", "date": "$created_at", "timezone": "UTC" } } } },
            doc! { "$lookup": {
                "from": "events",
                "let": { "uid": "$user_id" },
                "pipeline": [
                    { "$match": { "$expr": { "$and": [
                        { "$eq": ["$user_id", "$$uid"] },
                        { "$gte": ["$timestamp", BsonDateTime::from_chrono(t(1))] },
                        { "$lt": ["$timestamp", BsonDateTime::from_chrono(t(2))] },
                    ] } } },
                    { "$count": "n" },
                ],
                "as": "activity",
            }},
            doc! { "$project": {
                "month": 1,
                "events": { "$ifNull": [{ "$arrayElemAt": ["$activity.n", 0] }, 0] },
            }},
        ];
        let with = |group: Document| {
            let mut p = prefix.clone();
            p.push(doc! { "$group": group });
            p
        };
        assert_eq!(
            split,
            vec![
                with(doc! { "_id": "$month", "users": { "$sum": 1 } }),
                with(doc! { "_id": "$month", "active_users": {
                    "$sum": { "$cond": [{ "$gt": ["$events", 0] }, 1, 0] },
                }}),
                with(doc! { "_id": "$month", "events": { "$sum": "$events" } }),
            ]
        );
    }

    #[test]
    fn export_filter_combines_window_user_and_type() {
        assert_eq!(export_filter(&EventFilter::default()), doc! {});
        let filter = EventFilter {
            user_id: Some("ann".into()),
            event_type: Some("view".into()),
            window: TimeWindow::between(t(1), t(2)),
        };
        assert_eq!(
            export_filter(&filter),
            doc! {
                "timestamp": {
                    "$gte": BsonDateTime::from_chrono(t(1)),
                    "$lt": BsonDateTime::from_chrono(t(2)),
                },
                "user_id": "ann",
                "event_type": "view",
            }
        );
        let only_end = EventFilter {
            window: TimeWindow {
                start: None,
                end: Some(t(2)),
            },
            ..EventFilter::default()
        };
        assert_eq!(
            export_filter(&only_end),
            doc! { "timestamp": { "$lt": BsonDateTime::from_chrono(t(2)) } }
        );
    }
}
