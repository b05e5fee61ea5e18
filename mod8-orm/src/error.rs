//! The crate's one error type, with variants named by meaning.

use std::borrow::Cow;

/// Result alias used by every repository method.
pub type Result<T, E = OrmError> = std::result::Result<T, E>;

/// Everything a repository call can fail with.
///
/// Driver errors are mapped in one place ([`OrmError::from_sqlx`]): unique violations become
/// [`OrmError::Conflict`] naming the field, broken references [`OrmError::NotFound`], lost
/// connections [`OrmError::Unavailable`]; the rest keep the driver error as their source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrmError {
    /// The input was rejected before the database was touched.
    #[error("invalid {field}: {message}")]
    Validation {
        /// The offending field (`email`, `username`, `quantity`, ...).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The row asked for does not exist.
    #[error("{entity} not found: {key}")]
    NotFound {
        /// The kind of row (`user`, `country`, ...).
        entity: &'static str,
        /// The key that was looked up.
        key: String,
    },
    /// The write collides with existing data (a unique field, or stock that ran out).
    #[error("conflict on {field}: {message}")]
    Conflict {
        /// The field whose constraint was violated (`email`, `username`, `sku`, `stock`, ...).
        field: &'static str,
        /// A readable explanation.
        message: String,
    },
    /// The backend cannot do this.
    #[error("{operation} is not supported by the {backend} backend")]
    Unsupported {
        /// What was asked for.
        operation: &'static str,
        /// The backend that refused.
        backend: &'static str,
    },
    /// The database could not be reached (pool timeout, closed pool, I/O); worth retrying.
    #[error("{backend} is unavailable: {source}")]
    Unavailable {
        /// The backend (`postgres`, `sqlite`).
        backend: &'static str,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },
    /// Any other database failure, with the driver error as its source.
    #[error("{backend} error: {source}")]
    Backend {
        /// The backend (`postgres`, `sqlite`).
        backend: &'static str,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },
    /// A statement failed inside a unit of work and the database aborted the transaction
    /// (PostgreSQL refuses further statements until it is rolled back); the commit rolled
    /// back instead. Contain expected failures in a nested unit (a savepoint).
    #[error("the transaction was aborted by an earlier failed statement and has been rolled back")]
    TransactionAborted,
    /// Applying the crate's migrations failed.
    #[error("migration {version} on {backend} failed: {message}")]
    Migration {
        /// The backend (`postgres`, `sqlite`).
        backend: &'static str,
        /// The migration version.
        version: i64,
        /// What went wrong.
        message: String,
    },
}

impl OrmError {
    /// Whether retrying the same call later may succeed (the database was unreachable, or a
    /// serialization failure / deadlock / busy database aborted the statement).
    pub fn is_transient(&self) -> bool {
        match self {
            OrmError::Unavailable { .. } => true,
            OrmError::Backend {
                source: sqlx::Error::Database(db),
                ..
            } => matches!(
                db.code().as_deref(),
                // PostgreSQL: serialization_failure, deadlock_detected, too_many_connections.
                Some("40001") | Some("40P01") | Some("53300")
                    // SQLite: SQLITE_BUSY, SQLITE_LOCKED and their extended codes.
                    | Some("5") | Some("6") | Some("261") | Some("517") | Some("262")
            ),
            _ => false,
        }
    }

    /// A validation error for `field`.
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        OrmError::Validation {
            field,
            message: message.into(),
        }
    }

    /// A not-found error for `entity` looked up by `key`.
    pub fn not_found(entity: &'static str, key: impl ToString) -> Self {
        OrmError::NotFound {
            entity,
            key: key.to_string(),
        }
    }

    /// Maps a driver error from `backend` to the variant that says what it means.
    pub fn from_sqlx(backend: &'static str, err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => OrmError::NotFound {
                entity: "row",
                key: String::from("(query returned no rows)"),
            },
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => OrmError::Unavailable {
                backend,
                source: err,
            },
            sqlx::Error::Database(db) => match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => {
                    let field = conflict_field(db.constraint(), db.message());
                    OrmError::Conflict {
                        field,
                        message: format!("a row with this {field} already exists"),
                    }
                }
                sqlx::error::ErrorKind::ForeignKeyViolation => OrmError::NotFound {
                    entity: "referenced row",
                    key: db
                        .constraint()
                        .map(Cow::Borrowed)
                        .unwrap_or(Cow::Borrowed("foreign key"))
                        .into_owned(),
                },
                _ => OrmError::Backend {
                    backend,
                    source: err,
                },
            },
            _ => OrmError::Backend {
                backend,
                source: err,
            },
        }
    }
}

/// The field a unique violation is about, from PostgreSQL's constraint name
/// (`users_email_key`) or SQLite's message (`UNIQUE constraint failed: users.email`).
fn conflict_field(constraint: Option<&str>, message: &str) -> &'static str {
    let text = constraint.unwrap_or(message);
    // Most specific names first: SQLite's message for cities names `cities.country_id`.
    const NEEDLES: [(&str, &str); 6] = [
        ("email", "email"),
        ("username", "username"),
        ("sku", "sku"),
        ("iso_code", "iso_code"),
        ("cities", "city"),
        ("id", "id"),
    ];
    for (needle, field) in NEEDLES {
        if text.contains(needle) {
            return field;
        }
    }
    "unique key"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_field_reads_both_dialects() {
        assert_eq!(conflict_field(Some("users_email_key"), ""), "email");
        assert_eq!(
            conflict_field(None, "UNIQUE constraint failed: users.username"),
            "username"
        );
        assert_eq!(
            conflict_field(None, "UNIQUE constraint failed: products.sku"),
            "sku"
        );
        assert_eq!(conflict_field(Some("whatever"), ""), "unique key");
    }

    #[test]
    fn transient_only_for_unavailable() {
        let e = OrmError::Unavailable {
            backend: "sqlite",
            source: sqlx::Error::PoolTimedOut,
        };
        assert!(e.is_transient());
        assert!(!OrmError::validation("email", "bad").is_transient());
        assert!(!OrmError::not_found("user", 1).is_transient());
    }
}
