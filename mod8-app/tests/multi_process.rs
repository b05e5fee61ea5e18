//! Many instances, with roles, on the real services (PostgreSQL, Redis, RabbitMQ, a MongoDB
//! wire server): two `mod8 serve --role api` and two `--role worker` processes of the built
//! binary, on a database, document database, cache prefix and queue names of their own.
//! Registrations and events go through both APIs; one worker is killed (SIGKILL) mid-run and
//! started again. Then every profile is stored once, every event stored once, the engagement
//! counters are exact, nothing is left in a queue or the outbox and nothing was dead-lettered;
//! and answers cached by API B (a profile, a product page) are not served stale beyond the
//! L1 bound after a write through API A (an order, a price change).
//!
//! Scale: `MOD8_MP_USERS` registrations and `MOD8_MP_EVENTS` events (defaults 1,000 and
//! 10,000: about two and a half minutes on a 2-core machine, where the document store is the
//! bottleneck — FerretDB 1.x scans a collection for every filtered read or update, so each
//! event's profile update costs time in proportion to the number of users; 2,000 and 20,000
//! take about four times as long).
#![allow(clippy::unwrap_used)]
#![cfg(unix)]

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::{stream, StreamExt, TryStreamExt};
use mod8_app::commands::cluster::Cluster;
use mod8_app::{App, AppConfig, Role};
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;

/// The L1 TTL every process runs with (`MOD8_CACHE_L1_TTL_SECS`): the documented bound on
/// how long another process may serve an entry it copied before a write, had it missed the
/// invalidation.
const L1_TTL: Duration = Duration::from_secs(3);

/// The event types sent, one per engagement counter.
const TYPES: [&str; 6] = [
    "session",
    "page_view",
    "click",
    "search",
    "cart_add",
    "review",
];

/// Requests in flight at once.
const CONCURRENCY: usize = 16;

fn scale(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// The variables that give every process `config`'s isolated backends, the same keys, no rate
/// limits in reach and a short L1 TTL.
fn process_env(config: &AppConfig, keys: &str) -> Vec<(String, String)> {
    let prefix = config
        .live_queue
        .strip_suffix(".live_dashboard_queue")
        .unwrap();
    let pairs = [
        ("MOD8_POSTGRES_URL", config.sql.url.clone()),
        ("MOD8_MONGODB_URL", config.docs.url.clone()),
        (
            "MOD8_MONGODB_DATABASE",
            config.docs.database.clone().unwrap(),
        ),
        ("MOD8_REDIS_URL", config.cache.redis_url.clone().unwrap()),
        ("MOD8_CACHE_PREFIX", config.cache.prefix.clone()),
        ("MOD8_CACHE_L1_TTL_SECS", L1_TTL.as_secs().to_string()),
        ("MOD8_AMQP_URL", config.mq.url.clone()),
        ("MOD8_QUEUE_PREFIX", prefix.to_owned()),
        ("MOD8_AUTH_KEYS", keys.to_owned()),
        ("MOD8_RATE_LIMIT_PER_SEC", "1000000".to_owned()),
        ("MOD8_RATE_LIMIT_BURST", "1000000".to_owned()),
        ("MOD8_REGISTRATIONS_PER_MIN", "1000000".to_owned()),
        ("MOD8_REGISTRATION_BURST", "1000000".to_owned()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// GET `url` with `token`; the status and the JSON body.
async fn get(http: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let r = http.get(url).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Depth of every work queue and the dead-letter queue, and the unsent outbox rows.
async fn backlog(app: &App) -> (Vec<(String, u64)>, u64, u64) {
    let topology = &app.config.topology;
    let mut depths = Vec::new();
    for q in [
        topology.user_data_queue.clone(),
        topology.notification_queue.clone(),
        topology.analytics_queue.clone(),
        app.config.live_queue.clone(),
    ] {
        let depth = app.broker.queue_depth(&q).await.unwrap();
        depths.push((q, depth));
    }
    let dead = topology
        .dead_letter_count(app.broker.as_ref())
        .await
        .unwrap();
    let outbox = app.sql.count_pending().await.unwrap();
    (depths, dead, outbox)
}

/// Documents in a collection of the run's document database.
async fn count_documents(config: &AppConfig, collection: &str) -> u64 {
    let docs = mod8_docstore::MongoDocStore::connect(&config.docs)
        .await
        .unwrap();
    docs.database()
        .collection::<Value>(collection)
        .count_documents(Default::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apis_and_two_workers_lose_nothing_and_count_everything_once() {
    let Some(config) = real_config("multi_process").await else {
        return;
    };
    with_real(config, |config| async move { run(config).await }).await;
}

async fn run(mut config: AppConfig) {
    let started = Instant::now();
    let users_n = scale("MOD8_MP_USERS", 1_000);
    let events_n = scale("MOD8_MP_EVENTS", 10_000);
    let keys = format!("mp:{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    config.auth.keys = mod8_app::config::AuthConfig::parse_keys(&keys).unwrap();
    // The test's own view of the backends (nothing started): seeds the catalogue, issues
    // tokens with the shared key, reads the stores at the end, and places the order.
    let inspector = App::build(config.clone()).await.unwrap();
    mod8_app::commands::seed::catalogue(&inspector)
        .await
        .unwrap();
    let admin = inspector
        .auth
        .issue(mod8_app::http::auth::Scope::Admin, "multi_process")
        .unwrap()
        .token;

    let logs = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::new(
        env!("CARGO_BIN_EXE_mod8"),
        process_env(&config, &keys),
        true,
        logs.path(),
    );
    let api_a = cluster.spawn(Role::Api).await.unwrap();
    let api_b = cluster.spawn(Role::Api).await.unwrap();
    let worker_1 = cluster.spawn(Role::Worker).await.unwrap();
    let worker_2 = cluster.spawn(Role::Worker).await.unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // Each process says its role; a worker serves no API.
    for (index, role) in [
        (api_a, "api"),
        (api_b, "api"),
        (worker_1, "worker"),
        (worker_2, "worker"),
    ] {
        let base = cluster.instance(index).unwrap().base_url();
        let (status, health) = get(&http, &format!("{base}/healthz"), &admin).await;
        assert_eq!(status, 200, "{health}");
        assert_eq!(health["role"], role, "{health}");
        let (status, _) = get(&http, &format!("{base}/metrics"), &admin).await;
        assert_eq!(status, 200, "{role}: /metrics");
    }
    let worker_base = cluster.instance(worker_1).unwrap().base_url();
    let (status, body) = get(&http, &format!("{worker_base}/api/insights"), &admin).await;
    assert_eq!(status, 404, "a worker serves no API: {body}");
    let apis = [
        cluster.instance(api_a).unwrap().base_url(),
        cluster.instance(api_b).unwrap().base_url(),
    ];

    // Registrations, alternating between the two APIs.
    let run_id = &Uuid::new_v4().simple().to_string()[..8];
    let registered: Vec<(Uuid, String)> = stream::iter(0..users_n)
        .map(|i| {
            let username = format!("mp_{run_id}_{i}");
            let request = http
                .post(format!("{}/api/users", apis[i % 2]))
                .json(&json!({"username": username, "email": format!("{username}@example.com")}));
            async move {
                let r = request.send().await.unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                assert_eq!(status, 201, "registration {i}: {body}");
                (
                    body["user"]["id"].as_str().unwrap().parse().unwrap(),
                    username,
                )
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let registered_at = started.elapsed();

    // Events: user i % users, type by a mix that differs per user; through both APIs.
    let events: Vec<(usize, Uuid, &str)> = (0..events_n)
        .map(|i| {
            let u = i % users_n;
            (u, registered[u].0, TYPES[(i / users_n + u) % TYPES.len()])
        })
        .collect();
    let mut expected: HashMap<Uuid, [u32; 6]> = HashMap::new();
    for (_, id, t) in &events {
        let slot = TYPES.iter().position(|x| x == t).unwrap();
        expected.entry(*id).or_default()[slot] += 1;
    }
    let send = |batch: Vec<(usize, (usize, Uuid, &'static str))>| {
        let http = http.clone();
        let admin = admin.clone();
        let apis = apis.clone();
        async move {
            stream::iter(batch)
                .map(|(i, (_, id, t))| {
                    let request = http
                        .post(format!("{}/api/events", apis[i % 2]))
                        .bearer_auth(&admin)
                        .json(&json!({"user_id": id, "event_type": t}));
                    async move {
                        let r = request.send().await.unwrap();
                        let status = r.status().as_u16();
                        let body = r.text().await.unwrap_or_default();
                        assert_eq!(status, 202, "event {i}: {body}");
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect::<Vec<()>>()
                .await;
        }
    };
    let mut numbered: Vec<_> = events.into_iter().enumerate().collect();
    let second_half = numbered.split_off(events_n / 2);
    send(numbered).await;
    // Worker 1 dies mid-run, with whatever it holds unacknowledged, and comes back while the
    // second half is sent.
    cluster.kill(worker_1).unwrap();
    let (_, restarted) = tokio::join!(send(second_half), cluster.restart(worker_1));
    restarted.unwrap();
    let sent_at = started.elapsed();

    // Everything reaches its store: the queues and the outbox empty, every event logged.
    // A bound for a stuck pipeline, not a speed requirement: 50 ms per event at the least.
    let drain = Duration::from_secs(120).max(Duration::from_millis(50 * events_n as u64));
    let deadline = Instant::now() + drain;
    loop {
        let (depths, _, outbox) = backlog(&inspector).await;
        // Counting the log is a scan of it on FerretDB: only once the queues are empty.
        let idle = depths.iter().all(|(_, d)| *d == 0) && outbox == 0;
        let logged = if idle {
            count_documents(&config, "events").await
        } else {
            0
        };
        if idle && logged >= events_n as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not drained within {drain:?}: queues {depths:?}, outbox {outbox}, \
             {logged}/{events_n} events logged"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained_at = started.elapsed();

    // Nothing dead-lettered, nothing left anywhere.
    let (depths, dead, outbox) = backlog(&inspector).await;
    assert_eq!(dead, 0, "dead letters");
    assert!(depths.iter().all(|(_, d)| *d == 0), "{depths:?}");
    assert_eq!(outbox, 0, "unsent outbox rows");

    // Every profile stored, once.
    assert_eq!(
        count_documents(&config, "user_profiles").await,
        users_n as u64,
        "profile documents"
    );
    let missing: Vec<String> = stream::iter(registered.iter())
        .map(|(_, name)| {
            let docs = inspector.docs.clone();
            async move {
                match docs.profile_by_username(name).await.unwrap() {
                    Some(_) => None,
                    None => Some(name.clone()),
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|m| async move { m })
        .collect()
        .await;
    assert!(missing.is_empty(), "profiles missing: {missing:?}");

    // Every event stored once: per user and type exactly what was sent, no message twice.
    let exported: Vec<Vec<mod8_docstore::Event>> = inspector
        .docs
        .export_events(mod8_docstore::EventFilter::default(), 1_000)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let stored: Vec<mod8_docstore::Event> = exported.into_iter().flatten().collect();
    assert_eq!(stored.len(), events_n, "events in the document store");
    let ids: HashSet<&str> = stored
        .iter()
        .map(|e| e.message_id.as_deref().unwrap())
        .collect();
    assert_eq!(ids.len(), events_n, "an event stored twice");
    let mut logged: HashMap<Uuid, [u32; 6]> = HashMap::new();
    for e in &stored {
        let slot = TYPES.iter().position(|t| *t == e.event_type).unwrap();
        logged.entry(e.user_id.parse().unwrap()).or_default()[slot] += 1;
    }
    assert_eq!(logged, expected, "stored events by user and type");

    // Counters exact: each user's equal what was sent to it, and so do the sums per type.
    let counted: Vec<(Uuid, [u32; 6])> = stream::iter(registered.iter())
        .map(|(id, _)| {
            let inspector = &inspector;
            async move {
                let c = inspector.engagement_counters(*id).await.unwrap();
                (
                    *id,
                    [
                        c.sessions,
                        c.page_views,
                        c.clicks,
                        c.searches,
                        c.cart_adds,
                        c.reviews,
                    ],
                )
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut sums = [0u32; 6];
    let mut sent = [0u32; 6];
    for (id, counts) in &counted {
        let want = expected.get(id).copied().unwrap_or_default();
        assert_eq!(*counts, want, "counters of {id}");
        for k in 0..6 {
            sums[k] += counts[k];
            sent[k] += want[k];
        }
    }
    assert_eq!(sums, sent, "counters summed per type");
    assert_eq!(sums.iter().sum::<u32>() as usize, events_n);

    // An answer API B caches (the profile) is not served stale after a write through API A:
    // B and A read it (B twice, the second from its cache), the user places an order through
    // A, and B answers the new profile within the L1 TTL (A's tag invalidation reaches B over
    // Redis pub/sub; had it been missed, B's L1 copy would expire within the TTL).
    let (user, _) = registered[0];
    let user_token = inspector
        .auth
        .issue(mod8_app::http::auth::Scope::User, &user.to_string())
        .unwrap()
        .token;
    let profile_at = |base: &str| format!("{base}/api/users/{user}/profile");
    let (status, before) = get(&http, &profile_at(&apis[1]), &user_token).await;
    assert_eq!(status, 200, "{before}");
    let (_, again) = get(&http, &profile_at(&apis[1]), &user_token).await;
    assert_eq!(again["cached"], true, "{again}");
    assert_eq!(again["profile"]["purchase_count"], 0, "{again}");
    let (_, on_a) = get(&http, &profile_at(&apis[0]), &user_token).await;
    assert_eq!(on_a["profile"]["purchase_count"], 0, "{on_a}");
    let books = inspector.sql.products(Some("books")).await.unwrap();
    // A simple product's one variant has the product's id.
    let r = http
        .post(format!("{}/api/users/{user}/orders", apis[0]))
        .bearer_auth(&user_token)
        .json(&json!({
            "lines": [{"variant_id": books[0].id, "quantity": 1}],
            "shipping_address": {"street": "2 Shop St", "postal_code": "10115",
                                 "city": "Berlin", "country_code": "DE"},
        }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let order: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 201, "the order through API A: {order}");
    let written = Instant::now();
    // A bounded wait: the L1 TTL plus time for one request, polled.
    let bound = L1_TTL + Duration::from_secs(5);
    for base in [&apis[1], &apis[0]] {
        loop {
            let (status, now) = get(&http, &profile_at(base), &user_token).await;
            assert_eq!(status, 200, "{now}");
            if now["profile"]["purchase_count"] == 1 {
                break;
            }
            assert!(
                written.elapsed() < bound,
                "{base} still serves the profile from before the order after {bound:?}: {now}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let fresh_after = written.elapsed();

    // The same for a product page: B caches it, an admin changes the price through A (with
    // the page's ETag), and B answers the new price within the bound.
    let product_at = |base: &str| format!("{base}/api/products/{}", books[0].id);
    let (status, page) = get(&http, &product_at(&apis[1]), &admin).await;
    assert_eq!(status, 200, "{page}");
    let (_, page) = get(&http, &product_at(&apis[1]), &admin).await;
    assert_eq!(page["cached"], true, "{page}");
    let version = page["product"]["version"].as_i64().unwrap();
    let variant = &page["variants"][0]["variant"];
    let new_price = variant["price_cents"].as_i64().unwrap() + 100;
    let r = http
        .patch(product_at(&apis[0]))
        .bearer_auth(&admin)
        .header("if-match", format!("\"{version}\""))
        .json(&json!({"prices": {variant["id"].as_str().unwrap(): new_price}}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "the price change through API A: {body}");
    let written = Instant::now();
    loop {
        let (status, now) = get(&http, &product_at(&apis[1]), &admin).await;
        assert_eq!(status, 200, "{now}");
        if now["variants"][0]["variant"]["price_cents"] == new_price {
            break;
        }
        assert!(
            written.elapsed() < bound,
            "API B still serves the old price after {bound:?}: {now}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let price_fresh_after = written.elapsed();

    let killed = cluster.stop_all().await;
    assert!(
        killed.is_empty(),
        "instances that ignored SIGTERM: {killed:?}"
    );
    inspector.shutdown().await;
    eprintln!(
        "multi_process: {users_n} registrations in {:.1} s, {events_n} events sent by {:.1} s \
         (worker killed and restarted at half), all stored by {:.1} s; profile fresh on both \
         APIs {:.0} ms after the order through A; B's product page fresh {:.0} ms after the \
         price change through A; total {:.1} s",
        registered_at.as_secs_f64(),
        sent_at.as_secs_f64(),
        drained_at.as_secs_f64(),
        fresh_after.as_secs_f64() * 1e3,
        price_fresh_after.as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64()
    );
}

/// `mod8 bench --instances 2`: a round with one API instance and one with two, each with a
/// worker and a document database of its own (dropped afterwards), counters checked exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_instances_compares_one_and_two_apis_and_leaves_no_round_database() {
    let Some(config) = real_config("bench_instances").await else {
        return;
    };
    with_real(config, |config| async move {
        let keys = format!(
            "bench:{}{}",
            Uuid::new_v4().simple(),
            Uuid::new_v4().simple()
        );
        let base = config.docs.database.clone().unwrap();
        let output = tokio::time::timeout(
            Duration::from_secs(600),
            tokio::process::Command::new(env!("CARGO_BIN_EXE_mod8"))
                .args([
                    "bench",
                    "--instances",
                    "2",
                    "--workers",
                    "1",
                    "--users",
                    "30",
                    "--events-per-user",
                    "3",
                    "--concurrency",
                    "4",
                ])
                .envs(process_env(&config, &keys))
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("mod8 bench --instances finished within 10 minutes")
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        // One row per round: API instances, workers, then the figures; no errors, counters
        // exact.
        let rows: Vec<Vec<&str>> = stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|w| w.len() == 7 && w[6] == "exact")
            .collect();
        assert_eq!(rows.len(), 2, "{stdout}");
        assert_eq!((rows[0][0], rows[1][0]), ("1", "2"), "{stdout}");
        assert!(rows.iter().all(|r| r[1] == "1" && r[4] == "0"), "{stdout}");
        assert!(stdout.contains("scaling 1 -> 2 API instances"), "{stdout}");
        let docs = mod8_docstore::MongoDocStore::connect(&config.docs)
            .await
            .unwrap();
        let left: Vec<String> = docs
            .database()
            .client()
            .list_database_names()
            .await
            .unwrap()
            .into_iter()
            .filter(|name| name.starts_with(&format!("{base}_bench_")))
            .collect();
        assert!(left.is_empty(), "round databases left behind: {left:?}");
    })
    .await;
}
