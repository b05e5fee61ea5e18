//! The exact command and pipeline documents the MongoDB backend sends, built by pure functions
//! so unit tests can assert them without a server.

use bson::{doc, Bson, DateTime as BsonDateTime, Document};

use crate::model::{EventFilter, GeoPoint, TimeWindow, PURCHASE};
use crate::setup;

/// One index the store wants: its collection, name and full `createIndexes` spec.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndexSpec {
    pub(crate) collection: &'static str,
    pub(crate) name: &'static str,
    pub(crate) spec: Document,
}

/// `$jsonSchema` validator for `events`.
pub(crate) fn events_validator() -> Document {
    doc! { "$jsonSchema": {
        "bsonType": "object",
        "required": ["user_id", "event_type", "timestamp"],
        "properties": {
            "user_id": { "bsonType": "string", "minLength": 1 },
            "event_type": { "bsonType": "string", "minLength": 1 },
            "timestamp": { "bsonType": "date" },
            "metadata": { "bsonType": "object", "properties": {
                "price": { "bsonType": ["double", "int", "long", "decimal"], "minimum": 0 },
            }},
            "geo": { "bsonType": "object", "properties": {
                "location": {
                    "bsonType": "object",
                    "required": ["type", "coordinates"],
                    "properties": {
                        "type": { "enum": ["Point"] },
                        "coordinates": { "bsonType": "array", "minItems": 2, "maxItems": 2 },
                    },
                },
            }},
        },
    }}
}

/// `$jsonSchema` validator for `user_profiles`.
pub(crate) fn profiles_validator() -> Document {
    doc! { "$jsonSchema": {
        "bsonType": "object",
        "required": ["user_id", "username", "email", "created_at"],
        "properties": {
            "user_id": { "bsonType": "string", "minLength": 1 },
            "username": { "bsonType": "string", "minLength": 1 },
            "email": { "bsonType": "string", "pattern": "^[^@]+@[^@]+\\.[^@]+$" },
            "created_at": { "bsonType": "date" },
            "profile": { "bsonType": "object", "properties": {
                "interests": { "bsonType": "array", "items": { "bsonType": "string" } },
                "project_count": { "bsonType": ["int", "long"], "minimum": 0 },
            }},
            "subscriptions": { "bsonType": "array", "items": {
                "bsonType": "object",
                "required": ["plan", "started_at", "status"],
            }},
        },
    }}
}

/// `create` with a validator.
pub(crate) fn create_collection(name: &str, validator: Option<Document>) -> Document {
    let mut cmd = doc! { "create": name };
    if let Some(v) = validator {
        cmd.insert("validator", v);
        cmd.insert("validationLevel", "strict");
        cmd.insert("validationAction", "error");
    }
    cmd
}

/// `collMod` replacing a collection's validator.
pub(crate) fn set_validator(name: &str, validator: Document) -> Document {
    doc! {
        "collMod": name,
        "validator": validator,
        "validationLevel": "strict",
        "validationAction": "error",
    }
}

/// The indexes setup creates, with `log_retention_secs` on the TTL index (an `int`, the type
/// MongoDB keeps `expireAfterSeconds` in; validated to be at least 1).
pub(crate) fn indexes(log_retention_secs: i32) -> Vec<IndexSpec> {
    let spec = |collection, name, key: Document, extra: Document| {
        let mut spec = doc! { "key": key, "name": name };
        spec.extend(extra);
        IndexSpec {
            collection,
            name,
            spec,
        }
    };
    vec![
        spec(
            setup::PROFILES,
            setup::IDX_USERNAME,
            doc! { "username": 1 },
            doc! { "unique": true },
        ),
        spec(
            setup::PROFILES,
            setup::IDX_EMAIL,
            doc! { "email": 1 },
            doc! { "unique": true },
        ),
        spec(
            setup::PROFILES,
            setup::IDX_USER_ID,
            doc! { "user_id": 1 },
            doc! { "unique": true },
        ),
        spec(
            setup::PROFILES,
            setup::IDX_INTERESTS,
            doc! { "profile.interests": 1 },
            doc! {},
        ),
        spec(
            setup::EVENTS,
            setup::IDX_USER_TIME,
            doc! { "user_id": 1, "timestamp": -1 },
            doc! {},
        ),
        spec(
            setup::EVENTS,
            setup::IDX_TIME,
            doc! { "timestamp": 1 },
            doc! {},
        ),
        spec(
            setup::EVENTS,
            setup::IDX_GEO,
            doc! { "geo.location": "2dsphere" },
            doc! {},
        ),
        spec(
            setup::LOGS,
            setup::IDX_LOG_TTL,
            doc! { "created_at": 1 },
            doc! { "expireAfterSeconds": log_retention_secs },
        ),
        spec(
            setup::ANALYTICS,
            setup::IDX_ANALYTICS,
            doc! { "name": 1, "computed_at": -1 },
            doc! {},
        ),
    ]
}

/// `createIndexes` for one index.
pub(crate) fn create_index(index: &IndexSpec) -> Document {
    doc! { "createIndexes": index.collection, "indexes": [index.spec.clone()] }
}

/// `collMod` changing a TTL index's retention in place.
pub(crate) fn set_ttl(collection: &str, index: &str, seconds: i32) -> Document {
    doc! { "collMod": collection, "index": { "name": index, "expireAfterSeconds": seconds } }
}

/// `dropIndexes` for one index (when its definition changed in code).
pub(crate) fn drop_index(collection: &str, index: &str) -> Document {
    doc! { "dropIndexes": collection, "index": index }
}

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

    #[test]
    fn setup_commands() {
        let idx = indexes(3600);
        assert_eq!(idx.len(), 9);
        assert_eq!(
            create_index(&idx[0]),
            doc! { "createIndexes": "user_profiles", "indexes": [
                { "key": { "username": 1 }, "name": "username_unique", "unique": true },
            ]}
        );
        assert_eq!(
            create_index(&idx[6]),
            doc! { "createIndexes": "events", "indexes": [
                { "key": { "geo.location": "2dsphere" }, "name": "geo_location_2dsphere" },
            ]}
        );
        assert_eq!(
            create_index(&idx[7]),
            doc! { "createIndexes": "logs", "indexes": [
                { "key": { "created_at": 1 }, "name": "created_at_ttl", "expireAfterSeconds": 3600_i32 },
            ]}
        );
        assert_eq!(
            set_ttl("logs", "created_at_ttl", 60),
            doc! { "collMod": "logs", "index": { "name": "created_at_ttl", "expireAfterSeconds": 60_i32 } }
        );
        assert_eq!(
            drop_index("events", "user_id_timestamp"),
            doc! { "dropIndexes": "events", "index": "user_id_timestamp" }
        );
        assert_eq!(create_collection("logs", None), doc! { "create": "logs" });
    }

    /// The events validator as a literal, so any change to it shows up here.
    fn events_schema() -> Document {
        doc! { "$jsonSchema": {
            "bsonType": "object",
            "required": ["user_id", "event_type", "timestamp"],
            "properties": {
                "user_id": { "bsonType": "string", "minLength": 1 },
                "event_type": { "bsonType": "string", "minLength": 1 },
                "timestamp": { "bsonType": "date" },
                "metadata": { "bsonType": "object", "properties": {
                    "price": { "bsonType": ["double", "int", "long", "decimal"], "minimum": 0 },
                }},
                "geo": { "bsonType": "object", "properties": {
                    "location": {
                        "bsonType": "object",
                        "required": ["type", "coordinates"],
                        "properties": {
                            "type": { "enum": ["Point"] },
                            "coordinates": { "bsonType": "array", "minItems": 2, "maxItems": 2 },
                        },
                    },
                }},
            },
        }}
    }

    #[test]
    fn create_events_with_its_validator() {
        assert_eq!(
            create_collection("events", Some(events_validator())),
            doc! {
                "create": "events",
                "validator": events_schema(),
                "validationLevel": "strict",
                "validationAction": "error",
            }
        );
    }

    #[test]
    fn coll_mod_replaces_the_validators() {
        assert_eq!(
            set_validator("events", events_validator()),
            doc! {
                "collMod": "events",
                "validator": events_schema(),
                "validationLevel": "strict",
                "validationAction": "error",
            }
        );
        assert_eq!(
            set_validator("user_profiles", profiles_validator()),
            doc! {
                "collMod": "user_profiles",
                "validator": { "$jsonSchema": {
                    "bsonType": "object",
                    "required": ["user_id", "username", "email", "created_at"],
                    "properties": {
                        "user_id": { "bsonType": "string", "minLength": 1 },
                        "username": { "bsonType": "string", "minLength": 1 },
                        "email": { "bsonType": "string", "pattern": "^[^@]+@[^@]+\\.[^@]+$" },
                        "created_at": { "bsonType": "date" },
                        "profile": { "bsonType": "object", "properties": {
                            "interests": { "bsonType": "array", "items": { "bsonType": "string" } },
                            "project_count": { "bsonType": ["int", "long"], "minimum": 0 },
                        }},
                        "subscriptions": { "bsonType": "array", "items": {
                            "bsonType": "object",
                            "required": ["plan", "started_at", "status"],
                        }},
                    },
                }},
                "validationLevel": "strict",
                "validationAction": "error",
            }
        );
    }
}
