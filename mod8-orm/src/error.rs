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
                    let (field, entity) = unique_violation(db.constraint(), db.message());
                    OrmError::Conflict {
                        field,
                        message: format!("a {entity} with this {field} already exists"),
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

/// Every unique constraint of the schema: PostgreSQL's constraint (or unique index) name,
/// the columns SQLite names in its message, and the field and entity the caller knows.
const UNIQUE_CONSTRAINTS: [(&str, &str, &str, &str); 6] = [
    ("users_email_key", "users.email", "email", "user"),
    ("users_username_key", "users.username", "username", "user"),
    ("products_sku_key", "products.sku", "sku", "product"),
    (
        "countries_iso_code_key",
        "countries.iso_code",
        "iso_code",
        "country",
    ),
    ("countries_name_idx", "countries.name", "name", "country"),
    (
        "cities_name_per_country",
        "cities.country_id, cities.name",
        "name",
        "city",
    ),
];

/// The field and entity a unique violation is about, from PostgreSQL's constraint name
/// (`users_email_key`) or SQLite's message (`UNIQUE constraint failed: users.email`). Names
/// are matched exactly (a substring test read `countries_name_idx` as a conflict on `id`).
fn unique_violation(constraint: Option<&str>, message: &str) -> (&'static str, &'static str) {
    let sqlite_columns = message
        .strip_prefix("UNIQUE constraint failed: ")
        .map(str::trim);
    for (name, columns, field, entity) in UNIQUE_CONSTRAINTS {
        if constraint == Some(name) || sqlite_columns == Some(columns) {
            return (field, entity);
        }
    }
    // Primary keys: `<table>_pkey` on PostgreSQL, `<table>.id` on SQLite.
    let primary_key = constraint.is_some_and(|c| c.ends_with("_pkey"))
        || sqlite_columns.is_some_and(|c| !c.contains(',') && c.ends_with(".id"));
    if primary_key {
        return ("id", "row");
    }
    ("unique key", "row")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violations_read_both_dialects() {
        let field = |c: Option<&str>, m: &str| unique_violation(c, m).0;
        assert_eq!(field(Some("users_email_key"), ""), "email");
        assert_eq!(
            field(None, "UNIQUE constraint failed: users.username"),
            "username"
        );
        assert_eq!(field(None, "UNIQUE constraint failed: products.sku"), "sku");
        // `countries_name_idx` contains "id"; it is the country's name.
        assert_eq!(
            unique_violation(Some("countries_name_idx"), ""),
            ("name", "country")
        );
        assert_eq!(
            unique_violation(None, "UNIQUE constraint failed: countries.name"),
            ("name", "country")
        );
        assert_eq!(
            unique_violation(
                None,
                "UNIQUE constraint failed: cities.country_id, cities.name"
            ),
            ("name", "city")
        );
        assert_eq!(field(Some("users_pkey"), ""), "id");
        assert_eq!(field(None, "UNIQUE constraint failed: users.id"), "id");
        assert_eq!(field(Some("whatever_id_idx"), ""), "unique key");
        assert_eq!(
            field(None, "UNIQUE constraint failed: t.email_id"),
            "unique key"
        );
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
