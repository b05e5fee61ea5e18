//! The one place where driver and server errors become [`crate::Error`]s, including the
//! recognition of "this server does not support that" replies.

use mongodb::error::{ErrorKind, WriteFailure};

use crate::Error;

pub(crate) const BACKEND: &str = "mongodb";

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

/// Converts a driver error raised by `operation` into the crate's error.
pub(crate) fn map(err: mongodb::error::Error, operation: &str) -> Error {
    let transient = err.contains_label("RetryableWriteError")
        || err.contains_label("TransientTransactionError");
    match &*err.kind {
        ErrorKind::Command(c) => classify(c.code, &c.message, operation, err.clone()),
        ErrorKind::Write(WriteFailure::WriteError(w)) => {
            classify(w.code, &w.message, operation, err.clone())
        }
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. } => Error::Unavailable {
            backend: BACKEND,
            message: format!("{operation}: {err}"),
        },
        _ if transient => Error::Unavailable {
            backend: BACKEND,
            message: format!("{operation}: {err}"),
        },
        _ => Error::backend(BACKEND, err),
    }
}

/// Classifies one server reply; also used per document for bulk-write errors.
pub(crate) fn classify(
    code: i32,
    message: &str,
    operation: &str,
    source: mongodb::error::Error,
) -> Error {
    if code == DUPLICATE_KEY {
        Error::conflict(message)
    } else if code == VALIDATION_FAILURE {
        Error::validation(
            "document",
            format!("rejected by the server's validator: {message}"),
        )
    } else if is_unsupported(code, message) {
        Error::Unsupported {
            operation: operation.to_owned(),
            backend: BACKEND,
            message: message.to_owned(),
        }
    } else {
        Error::backend(BACKEND, source)
    }
}

/// Classifies one failed document of a bulk write (no driver error of its own).
pub(crate) fn classify_write(code: i32, message: &str, operation: &str) -> Error {
    if code == DUPLICATE_KEY {
        Error::conflict(message)
    } else if code == VALIDATION_FAILURE {
        Error::validation(
            "document",
            format!("rejected by the server's validator: {message}"),
        )
    } else {
        Error::Backend {
            backend: BACKEND,
            source: format!("{operation}: server error {code}: {message}").into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
