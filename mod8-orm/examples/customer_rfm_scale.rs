//! How long `AnalyticsRepository::customer_rfm` takes over millions of orders on PostgreSQL,
//! beside the server's own `EXPLAIN ANALYZE` time for its statement, and how much memory the
//! client needs while streaming the customers.
//!
//! ```text
//! MOD8_POSTGRES_URL=postgres://mod8:mod8@127.0.0.1:5432/mod8 \
//!   cargo run -p mod8-orm --release --example customer_rfm_scale [orders] [customers]
//! ```
//!
//! Defaults: 10,000,000 orders of 1,000,000 customers over 2022–2024. A scratch database is
//! created on that server (the role needs `CREATEDB`), migrated, filled with one
//! `INSERT ... SELECT generate_series` per table (timed), and dropped at the end.

#![allow(clippy::unwrap_used)] // an example may unwrap

use std::time::Instant;

use mod8_orm::chrono::NaiveDate;
use mod8_orm::futures::TryStreamExt;
use mod8_orm::sqlx::{self, Connection, Executor, Row};
use mod8_orm::{AnalyticsRepository, Backend, CustomerRfm, OrmConfig};

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    match query {
        Some(q) => format!("{}/{name}?{q}", &base[..path]),
        None => format!("{}/{name}", &base[..path]),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let orders: i64 = args.next().map_or(10_000_000, |s| s.parse().unwrap());
    let customers: i64 = args.next().map_or(1_000_000, |s| s.parse().unwrap());
    let admin_url = std::env::var("MOD8_POSTGRES_URL").expect("set MOD8_POSTGRES_URL");
    let name = format!("mod8_rfm_scale_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    println!("scratch database {name}; load average {}", load_average());
    let url = with_database(&admin_url, &name);
    let outcome = run(&url, orders, customers).await;
    let db_gone = admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await;
    println!("dropped {name}: {}", db_gone.is_ok());
    outcome.unwrap();
}

async fn run(url: &str, orders: i64, customers: i64) -> Result<(), mod8_orm::Error> {
    let db = OrmConfig::new(url).connect().await?;
    let pool = sqlx::PgPool::connect(url).await.unwrap();

    let started = Instant::now();
    pool.execute(
        format!(
            "INSERT INTO users (id, email, username, profile_score, is_verified, created_at, \
               last_active_at, username_key) \
             SELECT md5('u' || i)::uuid, 'u' || i || '@example.org', 'u' || i, 50, false, \
               timestamptz '2022-01-01', timestamptz '2024-12-31', 'u' || i \
             FROM generate_series(1::bigint, {customers}) AS i"
        )
        .as_str(),
    )
    .await
    .unwrap();
    let users_took = started.elapsed();

    // Order i belongs to customer 1 + (i * 7919) mod customers (so a customer's orders are
    // spread over the table, as in a real history), at a pseudo-random second of 2022–2024;
    // 10 % cancelled, 10 % placed (unpaid), 40 % paid, 40 % shipped.
    let started = Instant::now();
    pool.execute(
        format!(
            "INSERT INTO orders (id, user_id, created_at, status, total_cents) \
             SELECT gen_random_uuid(), md5('u' || (1 + (i * 7919) % {customers}))::uuid, \
               timestamptz '2022-01-01 00:00:00+00' \
                 + make_interval(secs => (i * 104729) % (3 * 365 * 86400)), \
               CASE i % 10 WHEN 0 THEN 'cancelled' WHEN 1 THEN 'placed' \
                 WHEN 2 THEN 'paid' WHEN 3 THEN 'paid' WHEN 4 THEN 'paid' WHEN 5 THEN 'paid' \
                 ELSE 'shipped' END, \
               100 + (i * 31) % 20000 \
             FROM generate_series(1::bigint, {orders}) AS i"
        )
        .as_str(),
    )
    .await
    .unwrap();
    let orders_took = started.elapsed();
    let started = Instant::now();
    pool.execute("VACUUM ANALYZE orders").await.unwrap();
    let analyze_took = started.elapsed();
    let size: String =
        sqlx::query_scalar("SELECT pg_size_pretty(pg_total_relation_size('orders'))")
            .fetch_one(&pool)
            .await
            .unwrap();
    println!(
        "generated {customers} users in {:.1} s and {orders} orders ({size} with indexes) in \
         {:.1} s, VACUUM ANALYZE {:.1} s; load average {}",
        users_took.as_secs_f64(),
        orders_took.as_secs_f64(),
        analyze_took.as_secs_f64(),
        load_average()
    );

    let end = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    let sql = CustomerRfm::statement(Backend::Postgres);
    for run in 1..=2 {
        let plan: Vec<String> = sqlx::query(&format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"))
            .bind(end)
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>(0))
            .collect();
        if run == 1 {
            println!("EXPLAIN (ANALYZE, BUFFERS), run 1:");
            for line in &plan {
                println!("  {line}");
            }
        } else {
            let time = plan.iter().find(|l| l.starts_with("Execution Time"));
            println!(
                "EXPLAIN ANALYZE, run 2: {}",
                time.map_or("?", |s| s.as_str())
            );
        }
    }

    let rss_before = peak_rss_mib();
    for run in 1..=2 {
        let started = Instant::now();
        let (mut n, mut repeat, mut spend) = (0_u64, 0_u64, 0_i64);
        let mut rows = db.customer_rfm(end);
        while let Some(c) = rows.try_next().await? {
            n += 1;
            repeat += u64::from(c.frequency);
            spend += c.repeat_spend_cents;
        }
        drop(rows);
        println!(
            "customer_rfm, run {run}: {n} customers ({repeat} repeat purchase days, {spend} \
             repeat cents) streamed in {:.2} s; peak RSS {:.1} MiB (before streaming {:.1} MiB); \
             load average {}",
            started.elapsed().as_secs_f64(),
            peak_rss_mib(),
            rss_before,
            load_average()
        );
    }
    pool.close().await;
    db.close().await;
    Ok(())
}
