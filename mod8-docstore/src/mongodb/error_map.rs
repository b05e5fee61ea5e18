//! The one place where driver and server errors become [`crate::Error`]s, including the
//! recognition of "this server does not support that" replies.

use bson::{Bson, Document};
use mongodb::error::{ErrorKind, WriteFailure};

use crate::model::{EVENT_ENTITY, PROFILE_ENTITY};
use crate::{setup, Error};

pub(crate) const BACKEND: &str = "mongodb";

/// The field of a conflict whose unique key the server did not name.
pub(crate) const UNNAMED_KEY: &str = "unique key";

/// Server error codes meaning "duplicate key".
const DUPLICATE_KEY: i32 = 11000;
/// `DocumentValidationFailure`: the `$jsonSchema` validator rejected the document.
const VALIDATION_FAILURE: i32 = 121;

/// Whether a server reply (code, message) means the server lacks a feature, as opposed to a
/// bad request or a failure. MongoDB-compatible servers answer missing features in a few ways:
/// - `NotImplemented` (238), `CommandNotSupported` (115), `CommandNotFound` (59),
///   `OperationNotSupportedInTransaction`-style "not supported" texts;
/// - `BadValue` (2) with "unknown operator" (FerretDB for `$nearSphere`, `$geoWithin`);
/// - `IndexNotFound` (27) "can't find index with key" in reply to `createIndexes` (FerretDB for
///   a `2dsphere` key it does not know; MongoDB never answers `createIndexes` that way).
pub(crate) fn is_unsupported(code: i32, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    match code {
        238 | 115 | 59 => true,
        2 => m.contains("unknown operator") || m.contains("not implemented"),
        27 => m.contains("can't find index with key"),
        _ => m.contains("not implemented") || m.contains("is not supported"),
    }
}

/// A driver error with the operation that raised it, kept as the source of
/// [`Error::Unavailable`] so neither is lost (its own source is the driver's error).
#[derive(Debug)]
struct Failed {
    operation: String,
    source: mongodb::error::Error,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.operation, self.source)
    }
}

impl std::error::Error for Failed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Converts a driver error raised by `operation` into the crate's error.
pub(crate) fn map(err: mongodb::error::Error, operation: &str) -> Error {
    let transient = err.contains_label("RetryableWriteError")
        || err.contains_label("TransientTransactionError");
    match &*err.kind {
        ErrorKind::Command(c) => classify(c.code, &c.message, None, operation, err.clone()),
        ErrorKind::Write(WriteFailure::WriteError(w)) => classify(
            w.code,
            &w.message,
            w.details.as_ref(),
            operation,
            err.clone(),
        ),
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. } => unavailable(err, operation),
        _ if transient => unavailable(err, operation),
        _ => Error::backend(BACKEND, err),
    }
}

fn unavailable(source: mongodb::error::Error, operation: &str) -> Error {
    let failed = Failed {
        operation: operation.to_owned(),
        source,
    };
    // The driver retries a refused handshake until server selection gives up, and reports it
    // inside the topology description: say it was TLS.
    if mod8_rules::tls_failure::is_certificate_refusal(&failed.to_string()) {
        return Error::unavailable(BACKEND, mod8_rules::tls_failure::TlsFailure(failed));
    }
    Error::unavailable(BACKEND, failed)
}

/// The server's message when `err` is its reply that it does not support what was asked
/// (setup reports these steps with the message verbatim).
pub(crate) fn unsupported_reply(err: &mongodb::error::Error) -> Option<&str> {
    match &*err.kind {
        ErrorKind::Command(c) if is_unsupported(c.code, &c.message) => Some(&c.message),
        ErrorKind::Write(WriteFailure::WriteError(w)) if is_unsupported(w.code, &w.message) => {
            Some(&w.message)
        }
        _ => None,
    }
}

/// An [`Error::Unsupported`] for `operation`, with the server's `message` folded in.
pub(crate) fn unsupported(operation: &str, message: &str) -> Error {
    Error::unsupported(format!("{operation} (server: {message})"), BACKEND)
}

/// Classifies one server reply; `err_info` is the write error's `errInfo`, if any.
pub(crate) fn classify(
    code: i32,
    message: &str,
    err_info: Option<&Document>,
    operation: &str,
    source: mongodb::error::Error,
) -> Error {
    if code == DUPLICATE_KEY {
        duplicate_key(message)
    } else if code == VALIDATION_FAILURE {
        validator_rejection(message, err_info)
    } else if is_unsupported(code, message) {
        unsupported(operation, message)
    } else {
        Error::backend(BACKEND, source)
    }
}

/// Classifies one failed document of a bulk write (no driver error of its own); `err_info` is
/// its `errInfo`, if any.
pub(crate) fn classify_write(
    code: i32,
    message: &str,
    err_info: Option<&Document>,
    operation: &str,
) -> Error {
    if code == DUPLICATE_KEY {
        duplicate_key(message)
    } else if code == VALIDATION_FAILURE {
        validator_rejection(message, err_info)
    } else {
        Error::backend(
            BACKEND,
            format!("{operation}: server error {code}: {message}"),
        )
    }
}

/// A duplicate-key reply as an [`Error::Conflict`] naming the entity (from the collection) and
/// the unique field (from the index) the server names: MongoDB's and FerretDB's replies read
/// `E11000 duplicate key error collection: <db>.<collection> index: <index> dup key: {...}`.
/// FerretDB 1.x names no index; then the field is `_id` for collections whose only unique key
/// it is, and [`UNNAMED_KEY`] for profiles (see `ferretdb::name_profile_key`). What the
/// reply does not name at all is `document` and [`UNNAMED_KEY`].
pub(crate) fn duplicate_key(message: &str) -> Error {
    let word_after = |label: &str| {
        let at = message.find(label)? + label.len();
        message[at..]
            .split_whitespace()
            .next()
            .map(|w| w.trim_end_matches([',', ';']))
    };
    let collection =
        word_after("collection: ").map(|c| c.rsplit_once('.').map_or(c, |(_, name)| name));
    let entity = collection.map_or("document", entity_of);
    let field = match (word_after("index: "), collection) {
        (Some(index), _) => field_of_index(index),
        (None, Some(c)) if c != setup::PROFILES && entity != "document" => "_id",
        (None, _) => UNNAMED_KEY,
    };
    Error::conflict(entity, field, message)
}

/// The entity stored in `collection`.
fn entity_of(collection: &str) -> &'static str {
    match collection {
        setup::PROFILES => PROFILE_ENTITY,
        setup::EVENTS => EVENT_ENTITY,
        setup::LOGS => "log entry",
        setup::ANALYTICS => "analytics snapshot",
        super::activity::ACTIVITY => "activity bucket",
        _ => "document",
    }
}

/// The field a unique index of this crate is on (the index name itself for any other index).
fn field_of_index(index: &str) -> &str {
    match index {
        "_id_" => "_id",
        setup::IDX_USERNAME => "username",
        setup::IDX_EMAIL => "email",
        setup::IDX_USER_ID => "user_id",
        other => other,
    }
}

/// A document the server's `$jsonSchema` validator rejected, as a validation error naming the
/// property the server blames.
fn validator_rejection(message: &str, err_info: Option<&Document>) -> Error {
    Error::validation(
        rejected_field(err_info),
        format!("rejected by the server's validator: {message}"),
    )
}

/// The property a validator rejection is about, as a dotted path (`metadata.price`), read from
/// the `errInfo.details.schemaRulesNotSatisfied` MongoDB 5+ sends with code 121; `document`
/// when there is none (older servers, other MongoDB-compatible servers) or it names no
/// property (a rule on the whole document).
pub(crate) fn rejected_field(err_info: Option<&Document>) -> String {
    err_info
        .and_then(|info| info.get_document("details").ok())
        .and_then(|details| details.get_array("schemaRulesNotSatisfied").ok())
        .and_then(|rules| field_in_rules(rules, ""))
        .unwrap_or_else(|| "document".to_owned())
}

/// The first property named by `rules` (each `{ operatorName, ... }`), below `path`.
/// `properties` rules list `propertiesNotSatisfied: [{ propertyName, details: [rules] }]`,
/// `required` lists `missingProperties`, `additionalProperties` the extra names; `items` and
/// the combinators (`allOf`, `anyOf`, ...) nest their rules under `details`.
fn field_in_rules(rules: &[Bson], path: &str) -> Option<String> {
    let join = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    for rule in rules.iter().filter_map(Bson::as_document) {
        let property = rule
            .get_array("propertiesNotSatisfied")
            .ok()
            .and_then(|props| props.iter().filter_map(Bson::as_document).next());
        if let Some(property) = property {
            if let Ok(name) = property.get_str("propertyName") {
                let here = join(name);
                let deeper = property
                    .get_array("details")
                    .ok()
                    .and_then(|details| field_in_rules(details, &here));
                return Some(deeper.unwrap_or(here));
            }
        }
        for names in ["missingProperties", "additionalProperties"] {
            let first = rule
                .get_array(names)
                .ok()
                .and_then(|a| a.first())
                .and_then(Bson::as_str);
            if let Some(name) = first {
                return Some(join(name));
            }
        }
        if let Some(found) = rule
            .get_array("details")
            .ok()
            .and_then(|details| field_in_rules(details, path))
        {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    /// `errInfo` as MongoDB 5+ shapes it for a `$jsonSchema` failure.
    fn err_info(rules: Vec<Document>) -> Document {
        doc! {
            "failingDocumentId": 1,
            "details": { "operatorName": "$jsonSchema", "schemaRulesNotSatisfied": rules },
        }
    }

    #[test]
    fn validator_rejection_names_the_property_the_server_blames() {
        // A nested property: metadata.price below its minimum.
        let nested = err_info(vec![doc! {
            "operatorName": "properties",
            "propertiesNotSatisfied": [{
                "propertyName": "metadata",
                "details": [{
                    "operatorName": "properties",
                    "propertiesNotSatisfied": [{
                        "propertyName": "price",
                        "details": [{
                            "operatorName": "minimum",
                            "specifiedAs": { "minimum": 0 },
                            "reason": "comparison failed",
                            "consideredValue": -2.0,
                        }],
                    }],
                }],
            }],
        }]);
        let err = classify_write(
            121,
            "Document failed validation",
            Some(&nested),
            "log events",
        );
        assert_eq!(err.field(), Some("metadata.price"));
        assert!(
            err.to_string().contains("Document failed validation"),
            "{err}"
        );

        // A missing required field at the top level.
        let missing = err_info(vec![doc! {
            "operatorName": "required",
            "specifiedAs": { "required": ["user_id", "event_type", "timestamp"] },
            "missingProperties": ["event_type"],
        }]);
        assert_eq!(rejected_field(Some(&missing)), "event_type");

        // A required field missing in an array item: subscriptions.status (the item index is
        // not part of the path, as in this crate's own validation errors).
        let item = err_info(vec![doc! {
            "operatorName": "properties",
            "propertiesNotSatisfied": [{
                "propertyName": "subscriptions",
                "details": [{
                    "operatorName": "items",
                    "reason": "At least one item did not match the sub-schema",
                    "itemIndex": 0,
                    "details": [{
                        "operatorName": "required",
                        "specifiedAs": { "required": ["plan", "started_at", "status"] },
                        "missingProperties": ["status"],
                    }],
                }],
            }],
        }]);
        assert_eq!(rejected_field(Some(&item)), "subscriptions.status");

        // A property that fails on its own type names itself.
        let own = err_info(vec![doc! {
            "operatorName": "properties",
            "propertiesNotSatisfied": [{
                "propertyName": "timestamp",
                "details": [{ "operatorName": "bsonType", "specifiedAs": { "bsonType": "date" } }],
            }],
        }]);
        assert_eq!(rejected_field(Some(&own)), "timestamp");
    }

    #[test]
    fn validator_rejection_without_details_names_the_document() {
        // Servers before 5.0 (and other MongoDB-wire servers) send no errInfo.
        let err = classify_write(121, "Document failed validation", None, "insert profile");
        assert_eq!(err.field(), Some("document"));
        // A rule on the whole document (bsonType) names no property.
        let whole = err_info(vec![doc! {
            "operatorName": "bsonType",
            "specifiedAs": { "bsonType": "object" },
        }]);
        assert_eq!(rejected_field(Some(&whole)), "document");
        assert_eq!(rejected_field(Some(&doc! {})), "document");
        // Other codes are unaffected.
        assert!(matches!(
            classify_write(11000, "E11000 duplicate key", Some(&whole), "insert"),
            Error::Conflict { .. }
        ));
    }

    #[test]
    fn duplicate_keys_name_the_entity_and_the_field() {
        let conflict = |message: &str| match duplicate_key(message) {
            Error::Conflict { entity, field, .. } => (entity, field),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            conflict(
                "E11000 duplicate key error collection: m8.user_profiles index: email_unique \
                 dup key: { email: \"a@b.io\" }"
            ),
            ("user profile", "email".to_owned())
        );
        assert_eq!(
            conflict("E11000 duplicate key error collection: m8.events index: _id_"),
            ("event", "_id".to_owned())
        );
        assert_eq!(
            conflict("E11000 duplicate key error collection: m8.other index: name_1 dup key"),
            ("document", "name_1".to_owned())
        );
        assert_eq!(
            conflict("E11000 duplicate key error"),
            ("document", "unique key".to_owned())
        );
        // FerretDB 1.x names the collection only (verbatim reply of v1.24).
        assert_eq!(
            conflict("E11000 duplicate key error collection: m8.events"),
            ("event", "_id".to_owned())
        );
        assert_eq!(
            conflict("E11000 duplicate key error collection: m8.user_profiles"),
            ("user profile", "unique key".to_owned())
        );
    }

    #[test]
    fn ferretdb_replies_are_recognised_as_unsupported() {
        // Verbatim replies of FerretDB v1.24 (SQLite handler), probed while writing this.
        assert!(is_unsupported(
            238,
            "`aggregate` stage \"$geoNear\" is not implemented yet"
        ));
        assert!(is_unsupported(2, "unknown operator: $nearSphere"));
        assert!(is_unsupported(
            27,
            "can't find index with key: { geo.location: \"2dsphere\" }"
        ));
        assert!(is_unsupported(
            238,
            "Index option \"expireAfterSeconds\" is not implemented yet"
        ));
        assert!(!is_unsupported(2, "bad value for limit"));
        assert!(!is_unsupported(11000, "E11000 duplicate key error"));
    }
}
