//! The crate's one error type, with variants named by meaning.

use std::borrow::Cow;

/// A boxed error from a driver or the operating system.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a repository call can fail with.
///
/// Driver errors are mapped in one place ([`Error::from_sqlx`]): unique violations become
/// [`Error::Conflict`] naming the entity and field, broken references [`Error::NotFound`],
/// lost connections [`Error::Unavailable`]; the rest keep the driver error (a boxed
/// [`sqlx::Error`]) as their source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input rejected before it reached a backend; `field` names what was wrong.
    #[error("invalid {field}: {message}")]
    Validation {
        /// The offending field (`email`, `username`, `quantity`, ...) or environment variable.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The thing asked for does not exist.
    #[error("{entity} not found: {key}")]
    NotFound {
        /// The kind of row (`user`, `country`, ...).
        entity: &'static str,
        /// The key that was looked up.
        key: String,
    },
    /// A unique value is taken, or an existing thing differs from what was asked for (stock
    /// that ran out).
    #[error("conflict on {entity} {field}: {message}")]
    Conflict {
        /// The entity whose value is taken (`user`, `product`, `country`, `city`; `row` for a
        /// primary key or an unknown constraint).
        entity: &'static str,
        /// The field whose constraint was violated (`email`, `username`, `sku`, `stock`, ...).
        field: String,
        /// A readable explanation.
        message: String,
    },
    /// The backend cannot do this operation (detail may go into `operation`).
    #[error("{operation} is not supported by the {backend} backend")]
    Unsupported {
        /// What was asked for.
        operation: String,
        /// The backend that refused.
        backend: &'static str,
    },
    /// The backend could not be reached or did not answer in time (pool timeout, closed
    /// pool, I/O): transient.
    #[error("{backend} is unavailable: {source}")]
    Unavailable {
        /// The backend (`postgres`, `sqlite`).
        backend: &'static str,
        /// The driver error (a [`sqlx::Error`] when it comes from the database).
        #[source]
        source: BoxError,
    },
    /// Anything else the backend reported.
    #[error("{backend} error: {source}")]
    Backend {
        /// The backend (`postgres`, `sqlite`).
        backend: &'static str,
        /// The driver error (a [`sqlx::Error`] when it comes from the database).
        #[source]
        source: BoxError,
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

impl Error {
    /// Whether retrying the same operation may succeed: the database was unreachable, or a
    /// serialization failure / deadlock / busy database aborted the statement (read from the
    /// SQLSTATE of a [`sqlx::Error`] inside [`Error::Backend`]).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unavailable { .. } => true,
            Error::Backend { source, .. } => match source.downcast_ref::<sqlx::Error>() {
                Some(sqlx::Error::Database(db)) => matches!(
                    db.code().as_deref(),
                    // PostgreSQL: serialization_failure, deadlock_detected, too_many_connections.
                    Some("40001") | Some("40P01") | Some("53300")
                        // SQLite: SQLITE_BUSY, SQLITE_LOCKED and their extended codes.
                        | Some("5") | Some("6") | Some("261") | Some("517") | Some("262")
                ),
                _ => false,
            },
            _ => false,
        }
    }

    /// A validation error for `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A not-found error for `entity` looked up by `key`.
    pub fn not_found(entity: &'static str, key: impl ToString) -> Self {
        Error::NotFound {
            entity,
            key: key.to_string(),
        }
    }

    /// A conflict on `entity`'s `field`.
    pub fn conflict(
        entity: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Conflict {
            entity,
            field: field.into(),
            message: message.into(),
        }
    }

    /// An operation `backend` cannot do.
    pub fn unsupported(operation: impl Into<String>, backend: &'static str) -> Self {
        Error::Unsupported {
            operation: operation.into(),
            backend,
        }
    }

    /// `backend` could not be reached (transient).
    pub fn unavailable(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Unavailable {
            backend,
            source: source.into(),
        }
    }

    /// Any other failure `backend` reported.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend,
            source: source.into(),
        }
    }

    /// Maps a driver error from `backend` to the variant that says what it means (for hosts
    /// running their own statements on a store's pool, too).
    pub fn from_sqlx(backend: &'static str, err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => Error::NotFound {
                entity: "row",
                key: String::from("(query returned no rows)"),
            },
            sqlx::Error::Io(_) | sqlx::Error::Tls(_)
                if mod8_rules::tls_failure::is_certificate_refusal(&err.to_string()) =>
            {
                Error::unavailable(backend, mod8_rules::tls_failure::TlsFailure(err))
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Error::unavailable(backend, err),
            sqlx::Error::Database(db) => match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => {
                    let (field, entity) = unique_violation(db.constraint(), db.message());
                    Error::conflict(
                        entity,
                        field,
                        format!("a {entity} with this {field} already exists"),
                    )
                }
                sqlx::error::ErrorKind::ForeignKeyViolation => Error::NotFound {
                    entity: "referenced row",
                    key: db
                        .constraint()
                        .map(Cow::Borrowed)
                        .unwrap_or(Cow::Borrowed("foreign key"))
                        .into_owned(),
                },
                _ => Error::backend(backend, err),
            },
            _ => Error::backend(backend, err),
        }
    }
}

/// Every unique constraint of the schema: PostgreSQL's constraint (or unique index) name,
/// the columns SQLite names in its message, and the field and entity the caller knows.
const UNIQUE_CONSTRAINTS: [(&str, &str, &str, &str); 12] = [
    ("users_email_key", "users.email", "email", "user"),
    ("users_username_key", "users.username", "username", "user"),
    // The unique index on `lower(email)`: SQLite names an expression index, not columns.
    (
        "users_email_lower_unique",
        "index 'users_email_lower_unique'",
        "email",
        "user",
    ),
    (
        "users_username_key_unique",
        "users.username_key",
        "username",
        "user",
    ),
    ("products_sku_key", "products.sku", "sku", "product"),
    (
        "product_variants_sku_key",
        "product_variants.sku",
        "sku",
        "variant",
    ),
    ("categories_slug_key", "categories.slug", "slug", "category"),
    (
        "reviews_one_per_user",
        "reviews.product_id, reviews.user_id",
        "user_id",
        "review",
    ),
    (
        "product_images_position_key",
        "product_images.product_id, product_images.position",
        "position",
        "image",
    ),
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
        assert_eq!(field(Some("users_email_lower_unique"), ""), "email");
        assert_eq!(
            field(
                None,
                "UNIQUE constraint failed: index 'users_email_lower_unique'"
            ),
            "email"
        );
        assert_eq!(field(Some("users_username_key_unique"), ""), "username");
        assert_eq!(
            field(None, "UNIQUE constraint failed: users.username_key"),
            "username"
        );
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
        let e = Error::Unavailable {
            backend: "sqlite",
            source: Box::new(sqlx::Error::PoolTimedOut),
        };
        assert!(e.is_transient());
        assert!(Error::from_sqlx("sqlite", sqlx::Error::PoolTimedOut).is_transient());
        assert!(!Error::validation("email", "bad").is_transient());
        assert!(!Error::not_found("user", 1).is_transient());
        assert!(!Error::backend("postgres", "a message, not a driver error").is_transient());
    }

    /// A database error with a given SQLSTATE, as a driver would report it.
    #[derive(Debug)]
    struct Coded(&'static str);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error {}", self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn backend_errors_are_transient_by_their_sqlstate() {
        let coded =
            |code| Error::from_sqlx("postgres", sqlx::Error::Database(Box::new(Coded(code))));
        for code in ["40001", "40P01", "53300", "5", "6", "261", "517", "262"] {
            let e = coded(code);
            assert!(matches!(e, Error::Backend { .. }), "{e:?}");
            assert!(e.is_transient(), "{code}");
        }
        assert!(!coded("23502").is_transient());
    }
}
