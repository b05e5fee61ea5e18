//! Reads through SQLite's C API (`rusqlite`), beside sqlx: point lookups on the calling
//! thread, pages of users with their locations on Tokio's blocking pool.
//!
//! sqlx runs each SQLite connection on a worker thread of its own, and every statement is a
//! hand-over to that thread and back: two wake-ups across threads, which cost more than a
//! lookup itself (see the module docs of [`crate::sqlite`]). A lookup by primary key or by a
//! unique index touches a few B-tree pages; run on the caller's thread it takes a few µs.
//!
//! [`DirectReads`] keeps a few connections of its own to the same database — the same file,
//! or the same shared-cache in-memory database sqlx opened — and answers such reads on
//! them. It answers only when it can answer exactly as sqlx would; everything else goes
//! through sqlx as before ("falls back"):
//!
//! - it never waits: its connections have no busy timeout, so a lookup that would wait for a
//!   lock (a writer committing on a file, or a table another connection of a shared in-memory
//!   database has written in an open transaction) fails at once and falls back, and sqlx then
//!   waits as it always did;
//! - it decodes only the stored forms sqlx itself writes (a UUID as a 16-byte blob, a time as
//!   RFC 3339 text, a real, an integer flag); any other value falls back, and sqlx's own
//!   decoding (with its error) applies;
//! - any other error falls back too, and the connection that gave it is closed;
//! - it opens at most as many connections as the store's pool may, and falls back when all of
//!   them are busy;
//! - its connections are read-only (`PRAGMA query_only`), and a unit of work never uses
//!   them: inside a transaction every read goes through the transaction.
//!
//! A lookup here reads the last committed state, as a call on another pooled connection
//! would.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use sqlx::sqlite::SqliteConnectOptions;
use uuid::Uuid;

use crate::model::{Address, City, Country, Location, User, UserWithLocation};
use crate::PoolUsage;

/// Connections for lookups on the calling thread, to the database a SQLite store's pool
/// opened.
pub(crate) struct DirectReads {
    /// The name sqlx opened the database under (a path, or the shared in-memory name).
    filename: String,
    flags: OpenFlags,
    /// Connections not in use.
    idle: Mutex<Vec<Connection>>,
    /// Connections open, idle or in use.
    open: AtomicU32,
    /// The most connections it opens.
    max: u32,
    /// Lookups answered here.
    answered: AtomicU64,
    /// Lookups left to sqlx (all connections busy, a lock, an undecoded value, an error).
    fell_back: AtomicU64,
    /// Set when the store's pool closes: from then on every lookup falls back (and fails as
    /// the closed pool does).
    closed: AtomicBool,
}

impl std::fmt::Debug for DirectReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectReads")
            .field("filename", &self.filename)
            .field("open", &self.open.load(Ordering::Relaxed))
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl DirectReads {
    /// Direct reads on the database `options` (parsed from `url`, in memory if `memory`)
    /// name, at most `max` connections; `None` when another connection could not be sure to
    /// see the same database: a private in-memory database (each connection has its own), a
    /// VFS or `immutable` given in the URL, or a first connection that does not open.
    pub(crate) fn new(
        options: &SqliteConnectOptions,
        url: &str,
        memory: bool,
        max: u32,
    ) -> Option<Self> {
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v)
        };
        if (memory && param("cache") == Some("private"))
            || param("vfs").is_some()
            || param("immutable").is_some()
        {
            return None;
        }
        let filename = options.get_filename().to_str()?.to_owned();
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if memory {
            // sqlx opens every in-memory database it is given in shared-cache mode, under a
            // name of its own (`file:sqlx-in-memory-N`) for `:memory:`; a connection with
            // the same name and flags joins it.
            flags |= OpenFlags::SQLITE_OPEN_MEMORY | OpenFlags::SQLITE_OPEN_SHARED_CACHE;
        } else {
            flags |= OpenFlags::SQLITE_OPEN_PRIVATE_CACHE;
        }
        let reads = DirectReads {
            filename,
            flags,
            idle: Mutex::new(Vec::new()),
            open: AtomicU32::new(0),
            max: max.max(1),
            answered: AtomicU64::new(0),
            fell_back: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        };
        // Open one now: a database this cannot open is left to sqlx from the start.
        let first = reads.connect().ok()?;
        reads.open.store(1, Ordering::Relaxed);
        reads.idle_connections().push(first);
        Some(reads)
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let mut conn = Connection::open_with_flags(&self.filename, self.flags)?;
        // Never wait for a lock: a lookup that would wait falls back to sqlx, which does.
        conn.busy_timeout(Duration::ZERO)?;
        conn.pragma_update(None, "query_only", true)?;
        // From here on, every statement SQLite runs on it, as a DEBUG event of this module
        // (as sqlx logs its statements under `sqlx::query`).
        conn.profile(Some(log_statement));
        Ok(conn)
    }

    fn idle_connections(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // A panic while the list was held cannot leave it half-changed (push and pop only).
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `read` on a connection of its own; `None` to fall back to sqlx (see the module
    /// docs).
    fn with_connection<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<Option<T>>,
    ) -> Option<T> {
        let answer = self.try_connection(read);
        let counter = if answer.is_some() {
            &self.answered
        } else {
            &self.fell_back
        };
        counter.fetch_add(1, Ordering::Relaxed);
        answer
    }

    fn try_connection<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<Option<T>>,
    ) -> Option<T> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let taken = self.idle_connections().pop();
        let conn = match taken {
            Some(conn) => conn,
            None => {
                // All busy: open one more if the bound allows, else fall back.
                let opened = self
                    .open
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < self.max).then_some(n + 1)
                    });
                if opened.is_err() {
                    return None;
                }
                match self.connect() {
                    Ok(conn) => conn,
                    Err(e) => {
                        self.open.fetch_sub(1, Ordering::AcqRel);
                        tracing::debug!(error = %e, "sqlite direct read: connection did not open");
                        return None;
                    }
                }
            }
        };
        match read(&conn) {
            Ok(answer) => {
                self.give_back(conn);
                answer
            }
            Err(e) if would_wait(&e) => {
                self.give_back(conn);
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "sqlite direct read failed; sqlx answers instead");
                self.open.fetch_sub(1, Ordering::AcqRel);
                None
            }
        }
    }

    fn give_back(&self, conn: Connection) {
        if self.closed.load(Ordering::Acquire) {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        self.idle_connections().push(conn);
    }

    /// The user `sql` (selecting [`crate::sql::USER_COLS`] in order, with one parameter)
    /// finds for `key`: `Some(None)` when there is none, `None` to fall back.
    pub(crate) fn user(&self, sql: &str, key: Key<'_>) -> Option<Option<User>> {
        self.with_connection(|conn| {
            let mut statement = conn.prepare_cached(sql)?;
            let mut rows = statement.query([key])?;
            let Some(row) = rows.next()? else {
                return Ok(Some(None));
            };
            Ok(user_from_row(row).map(Some))
        })
    }

    /// A page of users with their location chains, in registration order (the page
    /// `users_with_location` reads): `None` to fall back.
    pub(crate) fn users_with_location(
        &self,
        limit: i64,
        offset: i64,
    ) -> Option<Vec<UserWithLocation>> {
        self.with_connection(|conn| {
            let mut statement = conn.prepare_cached(USERS_WITH_LOCATION)?;
            let mut rows = statement.query([limit, offset])?;
            let mut page = Vec::with_capacity(usize::try_from(limit).unwrap_or(0).min(1024));
            while let Some(row) = rows.next()? {
                match user_with_location(row) {
                    Some(user) => page.push(user),
                    None => return Ok(None),
                }
            }
            Ok(Some(page))
        })
    }

    /// Closes the idle connections; every later lookup falls back.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let closed = std::mem::take(&mut *self.idle_connections());
        let n = u32::try_from(closed.len()).unwrap_or(u32::MAX);
        self.open.fetch_sub(n, Ordering::AcqRel);
    }

    /// Lookups answered here and lookups left to sqlx so far.
    pub(crate) fn stats(&self) -> crate::sqlite::DirectReadStats {
        crate::sqlite::DirectReadStats {
            answered: self.answered.load(Ordering::Relaxed),
            fell_back: self.fell_back.load(Ordering::Relaxed),
        }
    }

    /// How many connections are open and idle, as a pool's figures (`pool="direct"`).
    pub(crate) fn usage(&self) -> PoolUsage {
        let idle = u32::try_from(self.idle_connections().len()).unwrap_or(u32::MAX);
        PoolUsage {
            pool: "direct",
            size: self.open.load(Ordering::Acquire).max(idle),
            idle,
            max: self.max,
        }
    }
}

/// SQLite's report of a statement it ran on a direct connection.
fn log_statement(sql: &str, elapsed: Duration) {
    tracing::debug!(statement = sql, ?elapsed, "direct read");
}

/// The one parameter of a direct lookup, bound as sqlx binds it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Key<'a> {
    /// A UUID: a 16-byte blob.
    Id(Uuid),
    /// Text.
    Text(&'a str),
}

impl ToSql for Key<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Key::Id(id) => ToSqlOutput::Borrowed(ValueRef::Blob(id.as_bytes())),
            Key::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

/// Whether `e` says the lookup would have had to wait for a lock.
fn would_wait(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// A page of users with their chains: [`crate::sql::USER_COLS`], then the address, city and
/// country columns, each joined by primary key; the page through `users_created_idx`.
pub(crate) const USERS_WITH_LOCATION: &str = "SELECT u.id, u.email, u.username, u.address_id, \
     u.profile_score, u.is_verified, u.created_at, u.last_active_at, \
     a.id, a.street, a.postal_code, ci.id, ci.name, ci.region, \
     co.id, co.name, co.iso_code, co.population, co.gdp_per_capita_cents \
     FROM users u \
     LEFT JOIN addresses a ON a.id = u.address_id \
     LEFT JOIN cities ci ON ci.id = a.city_id \
     LEFT JOIN countries co ON co.id = ci.country_id \
     ORDER BY u.created_at, u.id LIMIT ?1 OFFSET ?2";

/// A user and its chain from a row of [`USERS_WITH_LOCATION`]: the whole chain or none, as
/// the joined columns decode through sqlx; `None` when a value is not in a form sqlx writes.
fn user_with_location(row: &rusqlite::Row<'_>) -> Option<UserWithLocation> {
    let user = user_from_row(row)?;
    let value = |i: usize| row.get_ref(i).ok();
    let chain: Option<Vec<ValueRef<'_>>> = (8..19).map(value).collect();
    let chain = chain?;
    if chain.iter().any(|v| matches!(v, ValueRef::Null)) {
        // A column of the chain missing (no address, or a dangling link): no location.
        return Some(UserWithLocation {
            user,
            location: None,
        });
    }
    let country = Country {
        id: uuid(chain[6])?,
        name: text(chain[7])?.to_owned(),
        iso_code: text(chain[8])?.to_owned(),
        population: integer(chain[9])?,
        gdp_per_capita_cents: integer(chain[10])?,
    };
    let city = City {
        id: uuid(chain[3])?,
        name: text(chain[4])?.to_owned(),
        region: text(chain[5])?.to_owned(),
        country_id: country.id,
    };
    let address = Address {
        id: uuid(chain[0])?,
        street: text(chain[1])?.to_owned(),
        postal_code: text(chain[2])?.to_owned(),
        city_id: city.id,
    };
    Some(UserWithLocation {
        user,
        location: Some(Location {
            address,
            city,
            country,
        }),
    })
}

fn integer(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(n) => Some(n),
        _ => None,
    }
}

/// A user from a row of [`crate::sql::USER_COLS`]; `None` when a value is not in a form sqlx
/// writes (sqlx then reads the row and decodes it its way).
fn user_from_row(row: &rusqlite::Row<'_>) -> Option<User> {
    let value = |i: usize| row.get_ref(i).ok();
    Some(User {
        id: uuid(value(0)?)?,
        email: text(value(1)?)?.to_owned(),
        username: text(value(2)?)?.to_owned(),
        address_id: match value(3)? {
            ValueRef::Null => None,
            v => Some(uuid(v)?),
        },
        profile_score: match value(4)? {
            ValueRef::Real(x) => x,
            // A whole number stored in a REAL column comes back as REAL; an INTEGER here
            // was written by hand, and is exact below 2^53.
            ValueRef::Integer(n) if n.unsigned_abs() < (1 << 53) => n as f64,
            _ => return None,
        },
        is_verified: match value(5)? {
            ValueRef::Integer(0) => false,
            ValueRef::Integer(1) => true,
            _ => return None,
        },
        created_at: time(value(6)?)?,
        last_active_at: time(value(7)?)?,
    })
}

fn uuid(v: ValueRef<'_>) -> Option<Uuid> {
    match v {
        ValueRef::Blob(b) => Uuid::from_slice(b).ok(),
        _ => None,
    }
}

fn text(v: ValueRef<'_>) -> Option<&str> {
    match v {
        ValueRef::Text(t) => std::str::from_utf8(t).ok(),
        _ => None,
    }
}

/// RFC 3339 text, the form sqlx writes a `DateTime<Utc>` in.
fn time(v: ValueRef<'_>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text(v)?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
