//! Criterion benchmarks for mod8-orm: the embedded SQLite backend (in memory and in a WAL
//! file) always, PostgreSQL when `MOD8_POSTGRES_URL` is set (in a database created for the run
//! and dropped afterwards), each beside its reference measured in the same run.
//!
//! - `lookup/<target>`: `get_user` by primary key on `sqlite-memory`, `sqlite-file` (answered
//!   on the calling thread, the default) and `postgres`; the floor `rusqlite-memory` / `rusqlite-file` (the same row through SQLite's
//!   C API on the calling thread, decoded into the same `User`); `sqlx-file-connection` (the
//!   same statement through sqlx alone on one SQLite connection: the worker-thread hop);
//!   and, for PostgreSQL, `sqlx-pg-pool` / `sqlx-pg-connection`. The pgbench reference
//!   (`pgbench -S -M prepared -c 1`) runs from `benches/pgbench_reference.sh` after the
//!   PostgreSQL lookups (set `MOD8_BENCH_PGBENCH_SECS=0` to skip it; default 10 s).
//! - `chain/<target>/eager/<n>`: users with Address → City → Country in one statement, for 50
//!   and 1,000 users; `rusqlite-memory` is the floor. `chain/<target>/n_plus_one/<n>`: the naive
//!   loop (a page of users from `list_users`, then one location query per user).
//! - `bulk_insert/<target>/users`: `create_users` with 100,000 users per iteration, each into
//!   an emptied `users` table (emptied outside the timed part).
//!
//! Every timed call is also recorded on its own; at the end the bench prints p50 / p99 / mean
//! of the samples taken after criterion's warm-up, the same-run ratios against the targets,
//! and the load average at the start and the end (the numbers are only comparable within one
//! run). Select with criterion's filter, e.g. `cargo bench -p mod8-orm --bench orm --
//! 'lookup|chain'`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use mod8_orm::chrono::{DateTime, Utc};
use mod8_orm::testing::{seed_world, TestDb};
use mod8_orm::uuid::Uuid;
use mod8_orm::{
    Address, City, Country, Database, DynDatabase, Location, NewUser, OrmConfig, PageRequest, User,
    UserWithLocation,
};
use tokio::runtime::Runtime;

const USERS: usize = 1_000;
const BULK: usize = 100_000;
const WARM_UP: Duration = Duration::from_secs(2);
const USER_COLS: &str =
    "id, email, username, address_id, profile_score, is_verified, created_at, last_active_at";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The per-call samples of every benchmark, for the percentile table.
#[derive(Default)]
struct Report {
    rows: RefCell<Vec<(String, Vec<Duration>)>>,
}

impl Report {
    /// Criterion benchmark `id` in `group`: each call of `f` timed on its own; the samples
    /// taken after the warm-up are kept under `label`.
    fn bench<F, Fut, T>(
        &self,
        group: &mut BenchmarkGroup<'_, WallTime>,
        rt: &Runtime,
        id: &str,
        label: String,
        f: F,
    ) where
        F: FnMut() -> Fut,
        Fut: Future<Output = T>,
    {
        let samples = RefCell::new(Vec::new());
        let first = RefCell::new(None::<Instant>);
        let f = RefCell::new(f);
        group.bench_function(id, |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (samples, first, f) = (&samples, &first, &f);
                async move {
                    let warm_until = *first.borrow_mut().get_or_insert_with(Instant::now) + WARM_UP;
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let call = (f.borrow_mut())();
                        std::hint::black_box(call.await);
                        let took = start.elapsed();
                        total += took;
                        if start > warm_until {
                            samples.borrow_mut().push(took);
                        }
                    }
                    total
                }
            })
        });
        let samples = samples.into_inner();
        if !samples.is_empty() {
            self.rows.borrow_mut().push((label, samples));
        }
    }

    /// The samples of `label`, if it ran.
    fn samples(&self, label: &str) -> Option<Vec<Duration>> {
        let rows = self.rows.borrow();
        rows.iter()
            .find(|(l, _)| l == label)
            .map(|(_, samples)| samples.clone())
    }

    fn add(&self, label: String, samples: Vec<Duration>) {
        self.rows.borrow_mut().push((label, samples));
    }

    fn print(&self) {
        println!(
            "\n{:<44} {:>10} {:>10} {:>10} {:>8}",
            "figure", "p50", "p99", "mean", "samples"
        );
        for (label, samples) in self.rows.borrow().iter() {
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            record_figure(
                &format!("{label}: p50"),
                us(percentile(samples, 0.50)),
                "us",
            );
            record_figure(
                &format!("{label}: p99"),
                us(percentile(samples, 0.99)),
                "us",
            );
            println!(
                "{label:<44} {:>10} {:>10} {:>10} {:>8}",
                show(percentile(samples, 0.50)),
                show(percentile(samples, 0.99)),
                show(mean(samples)),
                samples.len()
            );
        }
        let ratio = |what: &str, a: &str, b: &str, target: &str| {
            if let (Some(x), Some(y)) = (self.samples(a), self.samples(b)) {
                let r = |f: fn(&[Duration]) -> Duration| f(&x).as_secs_f64() / f(&y).as_secs_f64();
                println!(
                    "{what}: {a} / {b}: p50 {:.3}, p99 {:.3}, mean {:.3} (target {target})",
                    r(|s| percentile(s, 0.50)),
                    r(|s| percentile(s, 0.99)),
                    r(mean),
                );
            }
        };
        println!();
        ratio(
            "point lookup",
            "lookup sqlite-memory",
            "lookup postgres",
            "<= 0.333",
        );
        ratio(
            "point lookup",
            "lookup sqlite-file",
            "lookup postgres",
            "<= 0.333",
        );
        ratio(
            "point lookup vs floor",
            "lookup sqlite-memory",
            "lookup rusqlite-memory",
            "-",
        );
        ratio(
            "point lookup vs floor",
            "lookup sqlite-file",
            "lookup rusqlite-file",
            "-",
        );
        ratio(
            "point lookup vs sqlx alone",
            "lookup sqlite-file",
            "lookup sqlx-file-connection",
            "-",
        );
        for n in [50, USERS] {
            ratio(
                "chain vs floor",
                &format!("chain sqlite-memory eager {n}"),
                &format!("chain rusqlite-memory eager {n}"),
                "-",
            );
            ratio(
                "chain",
                &format!("chain sqlite-memory eager {n}"),
                &format!("chain postgres eager {n}"),
                "< 1",
            );
            ratio(
                "chain",
                &format!("chain sqlite-file eager {n}"),
                &format!("chain postgres eager {n}"),
                "< 1",
            );
        }
    }
}

/// Appends one figure to the file named by `MOD8_BENCH_FIGURES`, if set, as a JSON line
/// (`{"bench", "figure", "value", "unit"}`): what `scripts/compare-peers.sh` reads to print
/// mod8's figures beside the Python peers' and the server tools'.
fn record_figure(figure: &str, value: f64, unit: &str) {
    use std::io::Write;
    let Ok(path) = std::env::var("MOD8_BENCH_FIGURES") else {
        return;
    };
    let line = serde_json::json!({
        "bench": "mod8-orm",
        "figure": figure,
        "value": value,
        "unit": unit,
    });
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        eprintln!("cannot append to MOD8_BENCH_FIGURES={path}: {e}");
    }
}

fn percentile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn mean(samples: &[Duration]) -> Duration {
    samples.iter().sum::<Duration>() / samples.len().max(1) as u32
}

fn show(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else {
        format!("{us:.1} µs")
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| String::from("unknown"))
}

/// One database under measurement, with a plain sqlx pool onto it for emptying the users
/// table before the bulk inserts.
struct Bench {
    name: &'static str,
    db: DynDatabase,
    raw: Raw,
    /// Set for PostgreSQL: drops the database created for the run.
    test_db: Option<TestDb>,
}

enum Raw {
    /// The in-memory store itself: its pool is taken only for the bulk inserts, which run
    /// last (reaching the pool retires the store's pinned connection).
    SqliteStore(mod8_orm::sqlite::SqliteStore),
    Sqlite(mod8_orm::sqlx::SqlitePool),
    Postgres(mod8_orm::sqlx::PgPool),
}

impl Raw {
    /// Removes every user (the bulk insert runs last, so the seeded ones are no longer needed).
    async fn empty_users(&self) {
        match self {
            Raw::SqliteStore(store) => {
                mod8_orm::sqlx::query("DELETE FROM users")
                    .execute(store.pool())
                    .await
                    .unwrap();
            }
            Raw::Sqlite(pool) => {
                mod8_orm::sqlx::query("DELETE FROM users")
                    .execute(pool)
                    .await
                    .unwrap();
            }
            Raw::Postgres(pool) => {
                // CASCADE: orders reference users (the benchmarks place none).
                mod8_orm::sqlx::query("TRUNCATE users CASCADE")
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    }

    async fn close(self) {
        match self {
            Raw::SqliteStore(_) => {}
            Raw::Sqlite(pool) => pool.close().await,
            Raw::Postgres(pool) => pool.close().await,
        }
    }
}

/// The databases to measure: SQLite in memory and in a WAL file always, PostgreSQL when its
/// URL is set.
fn backends(rt: &Runtime, dir: &Path) -> Vec<Bench> {
    let memory = rt
        .block_on(mod8_orm::sqlite::SqliteStore::connect(&OrmConfig::new(
            "sqlite::memory:",
        )))
        .unwrap();
    let file_url = format!("sqlite://{}", dir.join("bench.db").display());
    let file = rt.block_on(OrmConfig::new(&file_url).connect()).unwrap();
    let file_pool = rt
        .block_on(mod8_orm::sqlx::SqlitePool::connect(&file_url))
        .unwrap();
    let mut out = vec![
        Bench {
            name: "sqlite-memory",
            raw: Raw::SqliteStore(memory.clone()),
            db: std::sync::Arc::new(memory),
            test_db: None,
        },
        Bench {
            name: "sqlite-file",
            db: file,
            raw: Raw::Sqlite(file_pool),
            test_db: None,
        },
    ];
    match std::env::var("MOD8_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let test_db = rt.block_on(TestDb::postgres(url.trim())).unwrap();
            let pool = rt
                .block_on(
                    mod8_orm::sqlx::postgres::PgPoolOptions::new()
                        .max_connections(4)
                        .connect(test_db.url()),
                )
                .unwrap();
            out.push(Bench {
                name: "postgres",
                db: test_db.db.clone(),
                raw: Raw::Postgres(pool),
                test_db: Some(test_db),
            });
        }
        _ => eprintln!("skipping PostgreSQL benchmarks: MOD8_POSTGRES_URL not set"),
    }
    out
}

/// 1,000 users spread over the seeded cities, each with an address.
async fn seed_users(db: &dyn Database) -> Vec<User> {
    let world = seed_world(db).await;
    let mut users = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let city = &world.cities[i % world.cities.len()];
        let address = db
            .create_address(mod8_orm::NewAddress {
                street: format!("Bench street {i}"),
                postal_code: format!("{:05}", i),
                city_id: city.id,
            })
            .await
            .unwrap();
        let mut u = NewUser::new(format!("bench{i}@example.org"), format!("bench{i}"));
        u.address_id = Some(address.id);
        u.profile_score = (i % 100) as f64;
        users.push(db.create_user(u).await.unwrap());
    }
    users
}

/// The floor: SQLite through rusqlite on the calling thread, no worker, no pool.
mod floor {
    use super::*;
    use rusqlite::{Connection, OpenFlags, Row};

    /// A read-only connection to the bench's SQLite file.
    pub(super) fn open_file(path: &Path) -> Connection {
        Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .unwrap()
    }

    /// An in-memory database with the crate's SQLite schema, filled from the bench's file.
    pub(super) fn copy_to_memory(path: &Path) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        let mut scripts: Vec<_> = std::fs::read_dir("migrations/sqlite")
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        scripts.sort();
        for script in scripts {
            conn.execute_batch(&std::fs::read_to_string(script).unwrap())
                .unwrap();
        }
        conn.execute("ATTACH DATABASE ?1 AS src", [path.to_str().unwrap()])
            .unwrap();
        for table in ["countries", "cities", "addresses", "users"] {
            conn.execute_batch(&format!(
                "INSERT INTO main.{table} SELECT * FROM src.{table}"
            ))
            .unwrap();
        }
        conn.execute_batch("DETACH DATABASE src; ANALYZE").unwrap();
        conn
    }

    fn uuid(row: &Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
        Ok(Uuid::from_slice(row.get_ref(i)?.as_blob()?).unwrap())
    }

    fn time(row: &Row<'_>, i: usize) -> rusqlite::Result<DateTime<Utc>> {
        Ok(DateTime::parse_from_rfc3339(row.get_ref(i)?.as_str()?)
            .unwrap()
            .with_timezone(&Utc))
    }

    fn user(row: &Row<'_>) -> rusqlite::Result<User> {
        Ok(User {
            id: uuid(row, 0)?,
            email: row.get(1)?,
            username: row.get(2)?,
            address_id: row
                .get_ref(3)?
                .as_blob_or_null()?
                .map(|b| Uuid::from_slice(b).unwrap()),
            profile_score: row.get(4)?,
            is_verified: row.get(5)?,
            created_at: time(row, 6)?,
            last_active_at: time(row, 7)?,
        })
    }

    /// `get_user` by hand.
    pub(super) fn get_user(conn: &Connection, id: Uuid) -> User {
        let mut statement = conn
            .prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE id = ?1"))
            .unwrap();
        statement
            .query_row([id.as_bytes().as_slice()], user)
            .unwrap()
    }

    /// `users_with_location` by hand (the same statement, decoded into the same types).
    pub(super) fn users_with_location(conn: &Connection, n: usize) -> Vec<UserWithLocation> {
        let mut statement = conn
            .prepare_cached(
                "SELECT u.id, u.email, u.username, u.address_id, u.profile_score, \
                 u.is_verified, u.created_at, u.last_active_at, a.id, a.street, a.postal_code, \
                 ci.id, ci.name, ci.region, co.id, co.name, co.iso_code, co.population, \
                 co.gdp_per_capita_cents FROM users u \
                 LEFT JOIN addresses a ON a.id = u.address_id \
                 LEFT JOIN cities ci ON ci.id = a.city_id \
                 LEFT JOIN countries co ON co.id = ci.country_id \
                 ORDER BY u.created_at, u.id LIMIT ?1 OFFSET 0",
            )
            .unwrap();
        statement
            .query_map([n as i64], |row| {
                let user = user(row)?;
                let country = Country {
                    id: uuid(row, 14)?,
                    name: row.get(15)?,
                    iso_code: row.get(16)?,
                    population: row.get(17)?,
                    gdp_per_capita_cents: row.get(18)?,
                };
                let city = City {
                    id: uuid(row, 11)?,
                    name: row.get(12)?,
                    region: row.get(13)?,
                    country_id: country.id,
                };
                let address = Address {
                    id: uuid(row, 8)?,
                    street: row.get(9)?,
                    postal_code: row.get(10)?,
                    city_id: city.id,
                };
                Ok(UserWithLocation {
                    user,
                    location: Some(Location {
                        address,
                        city,
                        country,
                    }),
                })
            })
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
    }
}

/// Runs `benches/pgbench_reference.sh` and returns its per-transaction latencies.
fn pgbench_reference() -> Option<Vec<Duration>> {
    let secs = std::env::var("MOD8_BENCH_PGBENCH_SECS").unwrap_or_else(|_| String::from("10"));
    if secs.trim() == "0" {
        return None;
    }
    let out = std::process::Command::new("bash")
        .arg("benches/pgbench_reference.sh")
        .arg(secs.trim())
        .stderr(std::process::Stdio::inherit())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("pgbench reference failed: {}", out.status);
        return None;
    }
    // One latency in microseconds per line.
    let samples: Vec<Duration> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .map(Duration::from_micros)
        .collect();
    (!samples.is_empty()).then_some(samples)
}

fn benches(c: &mut Criterion) {
    let load_at_start = load_average();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let benches = backends(&rt, dir.path());
    let report = Report::default();
    let mut seeded = Vec::new();
    for bench in &benches {
        seeded.push(rt.block_on(seed_users(&*bench.db)));
    }
    let file_path = dir.path().join("bench.db");
    let floor_memory = floor::copy_to_memory(&file_path);
    let floor_file = floor::open_file(&file_path);
    // Both floors hold the file's rows.
    let floor_users = &seeded[1];
    let floor_next = AtomicUsize::new(0);
    let floor_pick =
        || floor_users[floor_next.fetch_add(7919, Ordering::Relaxed) % floor_users.len()].id;

    // Point lookups.
    let mut group = c.benchmark_group("lookup");
    group.warm_up_time(WARM_UP);
    group.throughput(Throughput::Elements(1));
    for (bench, users) in benches.iter().zip(&seeded) {
        let db: &dyn Database = &*bench.db;
        let next = AtomicUsize::new(0);
        let pick = || users[next.fetch_add(7919, Ordering::Relaxed) % users.len()].id;
        report.bench(
            &mut group,
            &rt,
            bench.name,
            format!("lookup {}", bench.name),
            || {
                let id = pick();
                async move { db.get_user(id).await.unwrap() }
            },
        );
        if bench.name == "sqlite-file" {
            report.bench(
                &mut group,
                &rt,
                "rusqlite-file",
                String::from("lookup rusqlite-file"),
                || {
                    let (conn, id) = (&floor_file, floor_pick());
                    async move { floor::get_user(conn, id) }
                },
            );
            // Attribution: the statement through sqlx alone on one connection of its own.
            let conn = tokio::sync::Mutex::new(
                rt.block_on(mod8_orm::sqlx::Connection::connect(&format!(
                    "sqlite://{}",
                    file_path.display()
                )))
                .map(|c: mod8_orm::sqlx::SqliteConnection| c)
                .unwrap(),
            );
            let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
            report.bench(
                &mut group,
                &rt,
                "sqlx-file-connection",
                String::from("lookup sqlx-file-connection"),
                || {
                    let (conn, sql, id) = (&conn, &sql, pick());
                    async move {
                        let mut conn = conn.lock().await;
                        mod8_orm::sqlx::query_as::<_, User>(sql)
                            .bind(id)
                            .fetch_optional(&mut *conn)
                            .await
                            .unwrap()
                    }
                },
            );
        }
        if bench.name == "sqlite-memory" {
            // The same rows, copied into rusqlite's own in-memory database.
            report.bench(
                &mut group,
                &rt,
                "rusqlite-memory",
                String::from("lookup rusqlite-memory"),
                || {
                    let (conn, id) = (&floor_memory, floor_pick());
                    async move { floor::get_user(conn, id) }
                },
            );
        }
        if let (Raw::Postgres(_), Some(test_db)) = (&bench.raw, &bench.test_db) {
            // Attribution: the same lookup through sqlx alone, on a pool and on one connection.
            let pool = rt
                .block_on(
                    mod8_orm::sqlx::postgres::PgPoolOptions::new()
                        .max_connections(4)
                        .test_before_acquire(false)
                        .connect(test_db.url()),
                )
                .unwrap();
            let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
            report.bench(
                &mut group,
                &rt,
                "sqlx-pg-pool",
                String::from("lookup sqlx-pg-pool"),
                || {
                    let (pool, sql, id) = (&pool, &sql, pick());
                    async move {
                        mod8_orm::sqlx::query_as::<_, User>(sql)
                            .bind(id)
                            .fetch_optional(pool)
                            .await
                            .unwrap()
                    }
                },
            );
            let conn = tokio::sync::Mutex::new(rt.block_on(pool.acquire()).unwrap().detach());
            report.bench(
                &mut group,
                &rt,
                "sqlx-pg-connection",
                String::from("lookup sqlx-pg-connection"),
                || {
                    let (conn, sql, id) = (&conn, &sql, pick());
                    async move {
                        let mut conn = conn.lock().await;
                        mod8_orm::sqlx::query_as::<_, User>(sql)
                            .bind(id)
                            .fetch_optional(&mut *conn)
                            .await
                            .unwrap()
                    }
                },
            );
            rt.block_on(pool.close());
            // Only beside the PostgreSQL lookup (not when a filter skipped it).
            if report.samples("lookup postgres").is_some() {
                if let Some(samples) = pgbench_reference() {
                    report.add(String::from("lookup pgbench -S -M prepared"), samples);
                }
            }
        }
    }
    group.finish();

    // Users with Address → City → Country.
    for (bench, _) in benches.iter().zip(&seeded) {
        let name = bench.name;
        let db: &dyn Database = &*bench.db;
        let mut group = c.benchmark_group(format!("chain/{name}"));
        group.warm_up_time(WARM_UP);
        for n in [50_usize, USERS] {
            group.throughput(Throughput::Elements(n as u64));
            let page = PageRequest::first(n as u32);
            report.bench(
                &mut group,
                &rt,
                &format!("eager/{n}"),
                format!("chain {name} eager {n}"),
                || async move {
                    let users = db.users_with_location(page).await.unwrap();
                    assert_eq!(users.len(), n);
                    users
                },
            );
            if name == "sqlite-memory" {
                report.bench(
                    &mut group,
                    &rt,
                    &format!("rusqlite-memory/{n}"),
                    format!("chain rusqlite-memory eager {n}"),
                    || {
                        let conn = &floor_memory;
                        async move { floor::users_with_location(conn, n) }
                    },
                );
            }
            report.bench(
                &mut group,
                &rt,
                &format!("n_plus_one/{n}"),
                format!("chain {name} n_plus_one {n}"),
                || async move {
                    let users = db.list_users(page).await.unwrap().items;
                    let mut out = Vec::with_capacity(users.len());
                    for u in users {
                        let location = db.location(u.address_id.unwrap()).await.unwrap();
                        out.push((u, location));
                    }
                    out
                },
            );
        }
        group.finish();
    }

    // Bulk insert, last: it replaces the seeded users.
    for bench in &benches {
        let name = bench.name;
        let db: &dyn Database = &*bench.db;
        let mut group = c.benchmark_group(format!("bulk_insert/{name}"));
        group.sample_size(10);
        group.throughput(Throughput::Elements(BULK as u64));
        let round = AtomicUsize::new(0);
        group.bench_function("users", |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let round = &round;
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        // Every iteration starts from an empty table, so later ones do not
                        // pay for a bigger table and index; emptying is not timed.
                        bench.raw.empty_users().await;
                        let r = round.fetch_add(1, Ordering::Relaxed);
                        let batch: Vec<NewUser> = (0..BULK)
                            .map(|i| {
                                NewUser::new(format!("b{r}x{i}@example.org"), format!("b{r}x{i}"))
                            })
                            .collect();
                        let start = Instant::now();
                        let n = db.create_users(batch).await.unwrap();
                        total += start.elapsed();
                        assert_eq!(n, BULK as u64);
                    }
                    total
                }
            })
        });
        group.finish();
    }

    report.print();
    println!(
        "load average (1, 5, 15 min): start {load_at_start}, end {}",
        load_average()
    );
    for bench in benches {
        rt.block_on(bench.raw.close());
        rt.block_on(bench.db.close());
        if let Some(test_db) = bench.test_db {
            rt.block_on(test_db.teardown());
        }
    }
}

criterion_group!(orm, benches);
criterion_main!(orm);
