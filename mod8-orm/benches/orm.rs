//! Criterion benchmarks for mod8-orm, on SQLite (in memory) always and on PostgreSQL when
//! `MOD8_POSTGRES_URL` is set (in a database created for the run and dropped afterwards).
//!
//! - `users_with_location/<backend>/<mode>/<n>`: the eager one-statement load against the naive
//!   N + 1 loop (one plain `SELECT` of users, then one location query per user), for 50 and
//!   1,000 users;
//! - `lookup/<backend>/get_user`: point lookup by primary key (compare with
//!   `pgbench -S -M prepared -c 1` on the same server);
//! - `bulk_insert/<backend>/users`: `create_users` with 100,000 users per iteration, each into
//!   an emptied `users` table (emptied outside the timed part).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mod8_orm::sqlite::SqliteStore;
use mod8_orm::testing::{seed_world, TestDb};
use mod8_orm::{Database, DynDatabase, NewUser, OrmConfig, PageRequest, User};
use tokio::runtime::Runtime;

const USERS: usize = 1_000;
const BULK: usize = 100_000;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One database under measurement, with a plain sqlx pool onto it for the statements the
/// repositories do not offer (the naive loop's user query, emptying tables).
struct Bench {
    name: &'static str,
    db: DynDatabase,
    raw: Raw,
    /// Set for PostgreSQL: drops the database created for the run.
    test_db: Option<TestDb>,
}

enum Raw {
    Sqlite(SqliteStore),
    Postgres(mod8_orm::sqlx::PgPool),
}

impl Raw {
    /// The first `n` users by id, in one plain statement (the "1" of N + 1).
    async fn users(&self, n: usize) -> Vec<User> {
        let sql = format!("SELECT {USER_COLS} FROM users ORDER BY id LIMIT $1");
        let n = n as i64;
        match self {
            Raw::Sqlite(store) => mod8_orm::sqlx::query_as(&sql)
                .bind(n)
                .fetch_all(store.pool())
                .await
                .unwrap(),
            Raw::Postgres(pool) => mod8_orm::sqlx::query_as(&sql)
                .bind(n)
                .fetch_all(pool)
                .await
                .unwrap(),
        }
    }

    /// Removes every user (the bulk insert runs last, so the seeded ones are no longer needed).
    async fn empty_users(&self) {
        match self {
            Raw::Sqlite(store) => {
                mod8_orm::sqlx::query("DELETE FROM users")
                    .execute(store.pool())
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
}

const USER_COLS: &str =
    "id, email, username, address_id, profile_score, is_verified, created_at, last_active_at";

/// The databases to measure: SQLite always, PostgreSQL when its URL is set.
fn backends(rt: &Runtime) -> Vec<Bench> {
    let store = rt
        .block_on(SqliteStore::connect(&OrmConfig::new("sqlite::memory:")))
        .unwrap();
    let mut out = vec![Bench {
        name: "sqlite",
        db: std::sync::Arc::new(store.clone()),
        raw: Raw::Sqlite(store),
        test_db: None,
    }];
    if let Ok(url) = std::env::var("MOD8_POSTGRES_URL") {
        if !url.trim().is_empty() {
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
    } else {
        eprintln!("skipping PostgreSQL benchmarks: MOD8_POSTGRES_URL not set");
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

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let benches = backends(&rt);
    for bench in &benches {
        let name = bench.name;
        let db: &dyn Database = &*bench.db;
        let users = rt.block_on(seed_users(db));

        let mut group = c.benchmark_group(format!("users_with_location/{name}"));
        for n in [50_usize, USERS] {
            group.throughput(Throughput::Elements(n as u64));
            let page = PageRequest::first(n as u32);
            group.bench_with_input(BenchmarkId::new("eager", n), &n, |b, _| {
                b.to_async(&rt)
                    .iter(|| async { db.users_with_location(page).await.unwrap() })
            });
            group.bench_with_input(BenchmarkId::new("n_plus_one", n), &n, |b, _| {
                b.to_async(&rt).iter(|| async {
                    let users = bench.raw.users(n).await;
                    let mut out = Vec::with_capacity(users.len());
                    for u in users {
                        let location = db.location(u.address_id.unwrap()).await.unwrap();
                        out.push((u, location));
                    }
                    out
                })
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("lookup/{name}"));
        group.throughput(Throughput::Elements(1));
        let next = AtomicUsize::new(0);
        group.bench_function("get_user", |b| {
            b.to_async(&rt).iter(|| async {
                let i = next.fetch_add(7919, Ordering::Relaxed) % users.len();
                db.get_user(users[i].id).await.unwrap()
            })
        });
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
            let sql = "SELECT id, email, username, address_id, profile_score, is_verified, \
                       created_at, last_active_at FROM users WHERE id = $1";
            group.bench_function("sqlx_pool", |b| {
                b.to_async(&rt).iter(|| async {
                    let i = next.fetch_add(7919, Ordering::Relaxed) % users.len();
                    mod8_orm::sqlx::query_as::<_, User>(sql)
                        .bind(users[i].id)
                        .fetch_optional(&pool)
                        .await
                        .unwrap()
                })
            });
            let conn = std::sync::Arc::new(tokio::sync::Mutex::new(
                rt.block_on(pool.acquire()).unwrap().detach(),
            ));
            group.bench_function("sqlx_connection", |b| {
                b.to_async(&rt).iter(|| async {
                    let i = next.fetch_add(7919, Ordering::Relaxed) % users.len();
                    let mut conn = conn.lock().await;
                    mod8_orm::sqlx::query_as::<_, User>(sql)
                        .bind(users[i].id)
                        .fetch_optional(&mut *conn)
                        .await
                        .unwrap()
                })
            });
            rt.block_on(pool.close());
        }
        group.finish();

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
    for bench in benches {
        match bench.raw {
            Raw::Sqlite(store) => rt.block_on(store.close()),
            Raw::Postgres(pool) => rt.block_on(pool.close()),
        }
        if let Some(test_db) = bench.test_db {
            rt.block_on(test_db.teardown());
        }
    }
}

criterion_group!(orm, benches);
criterion_main!(orm);
