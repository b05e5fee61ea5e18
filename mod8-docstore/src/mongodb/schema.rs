//! What the collections should look like — their `$jsonSchema` validators and indexes — and
//! the exact commands that create or change them, built by pure functions so unit tests can
//! assert them without a server. `setup` runs them.

use bson::{doc, Document};

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

#[cfg(test)]
mod tests {
    use super::*;

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
