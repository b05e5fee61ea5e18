//! `mod8 bench`: drives the flows at scale on the configured backends and prints throughput
//! and latency percentiles (registrations/s, events/s, personalisation cold and warm, cache
//! hit ratio); `--json FILE` writes the same figures as JSON.
//!
//! `--instances N` benchmarks the deployment instead: N `mod8 serve --role api` processes and
//! `--workers` worker processes on the environment's shared backends, driven over HTTP
//! ([`run_instances`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use serde::Serialize;

use crate::flows::analytics::EventInput;
use crate::flows::registration::Registration;
use crate::{App, AppConfig, ConsumerCounts};

/// Options of `mod8 bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Users to register (each then gets `--events-per-user` events and two personalisation
    /// requests, cold and warm).
    #[arg(long, default_value_t = 1_000)]
    pub users: usize,
    /// Events recorded per user.
    #[arg(long, default_value_t = 5)]
    pub events_per_user: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Instead of running the flows in this process: spawn this many `mod8 serve --role api`
    /// processes (plus `--workers` workers) on the environment's shared backends and drive
    /// them over HTTP; with 2 or more, a round with one API instance runs first and the
    /// scaling factor is printed (see [`run_instances`]).
    #[arg(long)]
    pub instances: Option<usize>,
    /// `mod8 serve --role worker` processes beside the API instances (with `--instances`).
    #[arg(long, default_value_t = 1, requires = "instances")]
    pub workers: usize,
    /// Requests per catalog read phase (product page and category page, each cold and
    /// warm, one at a time so the figures are latencies, not queueing).
    #[arg(long, default_value_t = 2_000)]
    pub page_requests: usize,
    /// Orders placed in the checkout phase.
    #[arg(long, default_value_t = 400)]
    pub checkouts: usize,
    /// Clients placing orders at once in the checkout phase.
    #[arg(long, default_value_t = 8)]
    pub checkout_clients: usize,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Latency {
    /// Percentiles of `samples` (nearest rank); all zero for no samples.
    pub fn of(samples: &mut [Duration]) -> Self {
        if samples.is_empty() {
            return Self {
                p50_ms: 0.0,
                p95_ms: 0.0,
                p99_ms: 0.0,
                max_ms: 0.0,
            };
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1].as_secs_f64() * 1e3
        };
        Self {
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// One phase: how many operations, how fast, how slow.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// What was measured.
    pub name: &'static str,
    /// Operations completed.
    pub ops: usize,
    /// Operations that failed.
    pub errors: usize,
    /// Completed operations per second of wall time.
    pub ops_per_sec: f64,
    /// Per-operation latency.
    pub latency: Latency,
}

/// Everything `mod8 bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Which backend each part used.
    pub backends: Vec<String>,
    /// Users registered.
    pub users: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// Cache hit ratio over the whole run.
    pub cache_hit_ratio: f64,
    /// How the analytics consumer kept up: events it stored (acked or dead-lettered) and the
    /// seconds from the first event accepted to the last stored. The cold phase starts only
    /// once it has caught up, so the two do not compete.
    pub events_stored: u64,
    /// See [`BenchReport::events_stored`].
    pub events_stored_secs: f64,
    /// SQL statements one cold category page of [`LISTING_PAGE`] products took (the listing
    /// is one statement by design; this checks it).
    pub listing_statements: u64,
}

/// Products on the category page the catalog phases read.
pub const LISTING_PAGE: u32 = 50;

/// Most the benchmark waits for the analytics consumer to store the recorded events.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);

/// Events the analytics consumer has finished with (acked or dead-lettered).
async fn analytics_done(app: &App) -> u64 {
    app.consumer_stats()
        .await
        .iter()
        .filter(|c| c.name == ConsumerCounts::ANALYTICS)
        .map(ConsumerCounts::finished)
        .sum()
}

async fn measure<I, F, Fut, T, E>(
    name: &'static str,
    concurrency: usize,
    inputs: Vec<I>,
    op: F,
) -> (Phase, Vec<T>)
where
    F: Fn(I) -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let started = Instant::now();
    let results: Vec<(Duration, Result<T, E>)> = stream::iter(inputs)
        .map(|input| {
            let fut = op(input);
            async move {
                let t = Instant::now();
                let r = fut.await;
                (t.elapsed(), r)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let wall = started.elapsed().as_secs_f64();
    let mut samples = Vec::with_capacity(results.len());
    let mut values = Vec::with_capacity(results.len());
    let mut errors = 0;
    let mut first_error = None;
    for (elapsed, r) in results {
        match r {
            Ok(v) => {
                samples.push(elapsed);
                values.push(v);
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    if let Some(e) = first_error {
        tracing::warn!(phase = name, errors, first = %e, "operations failed");
    }
    let phase = Phase {
        name,
        ops: samples.len(),
        errors,
        ops_per_sec: if wall > 0.0 {
            samples.len() as f64 / wall
        } else {
            0.0
        },
        latency: Latency::of(&mut samples),
    };
    (phase, values)
}

/// Runs the benchmark on an app whose background work is started.
///
/// # Errors
///
/// The catalogue cannot be created.
pub async fn bench(app: &Arc<App>, args: &BenchArgs) -> anyhow::Result<BenchReport> {
    super::seed::catalogue(app).await?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let registrations: Vec<Registration> = (0..args.users)
        .map(|i| Registration {
            username: format!("bench_{run}_{i}"),
            email: format!("bench.{run}.{i}@example.com"),
            address: None,
        })
        .collect();
    let (registered, users) = measure("registration", args.concurrency, registrations, |r| {
        let app = app.clone();
        async move { app.register(r).await.map(|r| r.user.id) }
    })
    .await;

    let mut events = Vec::with_capacity(users.len() * args.events_per_user);
    let mut rng = rand::rng();
    for id in &users {
        for _ in 0..args.events_per_user {
            events.push(EventInput {
                user_id: *id,
                event_type: super::seed::random_event_type(&mut rng).to_owned(),
                properties: Default::default(),
            });
        }
    }
    let stored_before = analytics_done(app).await;
    let events_started = Instant::now();
    let (recorded, _) = measure("event", args.concurrency, events, |e| {
        let app = app.clone();
        async move { app.record_event(e).await }
    })
    .await;
    let expected = stored_before + recorded.ops as u64;
    while analytics_done(app).await < expected && events_started.elapsed() < DRAIN_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events_stored = analytics_done(app).await.saturating_sub(stored_before);
    let events_stored_secs = events_started.elapsed().as_secs_f64();

    // Cold: drop what registration cached, so each request computes.
    for id in &users {
        app.cache
            .invalidate_tag(&crate::keys::user_tag(*id))
            .await?;
    }
    let personalise = |id| {
        let app = app.clone();
        async move { app.recommendations(id).await }
    };
    let (cold, _) = measure(
        "personalisation cold",
        args.concurrency,
        users.clone(),
        personalise,
    )
    .await;
    let (warm, _) = measure(
        "personalisation warm",
        args.concurrency,
        users.clone(),
        personalise,
    )
    .await;
    let mut phases = vec![registered, recorded, cold, warm];
    let catalog = catalog_phases(app, args, &run, &users).await?;
    phases.extend(catalog.phases);
    Ok(BenchReport {
        backends: app.config.describe(),
        users: args.users,
        concurrency: args.concurrency,
        phases,
        cache_hit_ratio: app.cache.stats().hit_ratio(),
        events_stored,
        events_stored_secs,
        listing_statements: catalog.listing_statements,
    })
}

/// What [`catalog_phases`] measured.
struct CatalogPhases {
    phases: Vec<Phase>,
    listing_statements: u64,
}

/// Times `n` calls of `op` one after another; `before` runs untimed ahead of each (to make
/// the call cold).
async fn sequential<B, BF, F, Fut, T, E>(name: &'static str, n: usize, before: B, op: F) -> Phase
where
    B: Fn(usize) -> BF,
    BF: std::future::Future<Output = ()>,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut samples = Vec::with_capacity(n);
    let mut errors = 0;
    let mut first_error = None;
    let mut busy = Duration::ZERO;
    for i in 0..n {
        before(i).await;
        let t = Instant::now();
        let r = op(i).await;
        let elapsed = t.elapsed();
        busy += elapsed;
        match r {
            Ok(_) => samples.push(elapsed),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    if let Some(e) = first_error {
        tracing::warn!(phase = name, errors, first = %e, "operations failed");
    }
    Phase {
        name,
        ops: samples.len(),
        errors,
        ops_per_sec: if busy.is_zero() {
            0.0
        } else {
            samples.len() as f64 / busy.as_secs_f64()
        },
        latency: Latency::of(&mut samples),
    }
}

/// The catalog and shop phases: a product page and a category page of [`LISTING_PAGE`]
/// products, each cold (its cache entry dropped first) and warm, then orders placed by
/// `--checkout-clients` clients at once. They run on a category of their own, made for
/// this run with [`LISTING_PAGE`] + 10 products of ample stock.
async fn catalog_phases(
    app: &Arc<App>,
    args: &BenchArgs,
    run: &str,
    users: &[uuid::Uuid],
) -> anyhow::Result<CatalogPhases> {
    use mod8_orm::{ListingQuery, NewCatalogProduct, NewCategory, NewVariant};

    let category = app
        .create_category(NewCategory {
            parent_id: None,
            slug: format!("bench-{run}"),
            name: format!("Bench {run}"),
        })
        .await?;
    let mut products = Vec::new();
    let mut variants = Vec::new();
    for i in 0..(LISTING_PAGE as usize + 10) {
        let view = app
            .create_product(NewCatalogProduct {
                sku: format!("BENCH-{run}-{i}"),
                name: format!("Bench product {i}"),
                category_id: category.id,
                brand: Some("mod8".to_owned()),
                description: "A product the benchmark reads and orders.".to_owned(),
                attributes: serde_json::json!({}),
                variants: vec![NewVariant {
                    sku: format!("BENCH-{run}-{i}-V"),
                    options: Default::default(),
                    price_cents: 1_000 + i as i64,
                    currency: "EUR".to_owned(),
                    initial_stock: 1_000_000,
                }],
                images: Vec::new(),
            })
            .await?;
        products.push(view.page.product.id);
        variants.extend(view.page.variants.first().map(|v| v.variant.id));
    }
    let n = args.page_requests;
    let product_of = |i: usize| products[i % products.len()];
    let page = |i: usize| {
        let app = app.clone();
        let id = product_of(i);
        async move { app.product_view(id).await }
    };
    let drop_page = |i: usize| {
        let app = app.clone();
        let id = product_of(i);
        async move {
            let _ = app.cache.delete(&crate::keys::product(id)).await;
        }
    };
    let product_cold = sequential("product page cold", n, drop_page, page).await;
    let product_warm = sequential("product page warm", n, |_| async {}, page).await;

    let listing = |_| {
        let app = app.clone();
        let query = ListingQuery {
            limit: LISTING_PAGE,
            ..ListingQuery::default()
        };
        async move { app.category_listing(category.id, query).await }
    };
    let drop_listings = |_| {
        let app = app.clone();
        async move {
            let _ = app
                .cache
                .invalidate_tag(crate::keys::category_listing_tag())
                .await;
        }
    };
    drop_listings(0).await;
    let before = app.sql.statements_executed();
    let first = listing(0).await?;
    let listing_statements = app.sql.statements_executed() - before;
    anyhow::ensure!(
        first.items.len() == LISTING_PAGE as usize,
        "the category page held {} products, not {LISTING_PAGE}",
        first.items.len()
    );
    let listing_cold = sequential("category page cold", n, drop_listings, listing).await;
    let listing_warm = sequential("category page warm", n, |_| async {}, listing).await;

    let orders: Vec<(uuid::Uuid, uuid::Uuid)> = (0..args.checkouts)
        .filter(|_| !users.is_empty())
        .map(|i| (users[i % users.len()], variants[i % variants.len()]))
        .collect();
    let (checkout, _) = measure(
        "checkout",
        args.checkout_clients,
        orders,
        |(user, variant)| {
            let app = app.clone();
            async move { app.checkout(user, checkout_input(variant)).await }
        },
    )
    .await;
    Ok(CatalogPhases {
        phases: vec![
            product_cold,
            product_warm,
            listing_cold,
            listing_warm,
            checkout,
        ],
        listing_statements,
    })
}

/// One unit of `variant`, shipped to a Berlin address made with the order.
fn checkout_input(variant: uuid::Uuid) -> crate::flows::shop::CheckoutInput {
    use crate::flows::registration::AddressInput;
    use crate::flows::shop::{AddressRef, CartItemInput, CheckoutInput};
    CheckoutInput {
        lines: Some(vec![CartItemInput {
            variant_id: variant,
            quantity: 1,
        }]),
        shipping_address: Some(AddressRef::New(AddressInput {
            street: "Benchstrasse 1".to_owned(),
            postal_code: "10115".to_owned(),
            city: "Berlin".to_owned(),
            country_code: "DE".to_owned(),
        })),
        billing_address: None,
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "mod8 bench: {} users, concurrency {}",
            self.users, self.concurrency
        )?;
        for b in &self.backends {
            writeln!(f, "  {b}")?;
        }
        writeln!(
            f,
            "\n{:<22} {:>8} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}",
            "phase", "ops", "errors", "ops/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
        )?;
        for p in &self.phases {
            writeln!(
                f,
                "{:<22} {:>8} {:>7} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                p.name,
                p.ops,
                p.errors,
                p.ops_per_sec,
                p.latency.p50_ms,
                p.latency.p95_ms,
                p.latency.p99_ms,
                p.latency.max_ms
            )?;
        }
        writeln!(
            f,
            "\nanalytics consumer stored {} events {:.1} s after the first was accepted ({:.0}/s)",
            self.events_stored,
            self.events_stored_secs,
            self.events_stored as f64 / self.events_stored_secs.max(1e-9)
        )?;
        writeln!(
            f,
            "a cold category page of {LISTING_PAGE} took {} SQL statement(s)",
            self.listing_statements
        )?;
        writeln!(f, "cache hit ratio {:.3}", self.cache_hit_ratio)
    }
}

/// `mod8 bench` on the environment's backends.
///
/// # Errors
///
/// A backend that cannot be reached, or the JSON file cannot be written.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(instances) = args.instances {
        let report = run_instances(&args, instances).await?;
        print!("{report}");
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
            println!("wrote {}", path.display());
        }
        if report.rounds.iter().any(|r| !r.counters_exact) {
            anyhow::bail!("engagement counters were not exact");
        }
        return Ok(());
    }
    let app = App::build(AppConfig::from_env()?).await?;
    app.start().await?;
    let result = bench(&app, &args).await;
    app.shutdown().await;
    let report = result?;
    print!("{report}");
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

// ---- `--instances`: API and worker processes driven over HTTP ----------------------------

/// One round of [`run_instances`]: the figures with `api_instances` API processes.
#[derive(Debug, Clone, Serialize)]
pub struct InstancesRound {
    /// `mod8 serve --role api` processes the requests were spread over (round robin).
    pub api_instances: usize,
    /// `mod8 serve --role worker` processes beside them.
    pub workers: usize,
    /// `POST /api/users`.
    pub registrations: Phase,
    /// `POST /api/events`.
    pub events: Phase,
    /// Whether every user's engagement counters equal, type by type, the events accepted for
    /// that user.
    pub counters_exact: bool,
    /// Users whose counters differ (at most the first 5, as `user: counted vs sent`).
    pub counter_mismatches: Vec<String>,
    /// Seconds from the last event accepted until the work queues were empty (the workers
    /// had stored everything).
    pub drain_secs: f64,
}

/// How much faster the last round was than the first.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Scaling {
    /// API instances of the first round.
    pub from: usize,
    /// API instances of the last round.
    pub to: usize,
    /// Registrations/s of the last round over the first's.
    pub registrations: f64,
    /// Events/s of the last round over the first's.
    pub events: f64,
}

/// What `mod8 bench --instances` measured.
#[derive(Debug, Clone, Serialize)]
pub struct InstancesReport {
    /// Which backend each part used.
    pub backends: Vec<String>,
    /// Users registered per round.
    pub users: usize,
    /// Events per user per round.
    pub events_per_user: usize,
    /// Requests in flight at once (over all instances).
    pub concurrency: usize,
    /// One API instance, then `--instances` (one round when that is 1).
    pub rounds: Vec<InstancesRound>,
    /// Last round over first, when there are two.
    pub scaling: Option<Scaling>,
    /// Where the processes' logs are.
    pub logs: PathBuf,
}

impl std::fmt::Display for InstancesReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "mod8 bench --instances: {} users x {} events per round, concurrency {}, over HTTP",
            self.users, self.events_per_user, self.concurrency
        )?;
        for b in &self.backends {
            writeln!(f, "  {b}")?;
        }
        writeln!(
            f,
            "\n{:>9} {:>8} {:>16} {:>10} {:>9} {:>8} {:>10}",
            "api inst", "workers", "registrations/s", "events/s", "errors", "drain s", "counters"
        )?;
        for r in &self.rounds {
            writeln!(
                f,
                "{:>9} {:>8} {:>16.0} {:>10.0} {:>9} {:>8.1} {:>10}",
                r.api_instances,
                r.workers,
                r.registrations.ops_per_sec,
                r.events.ops_per_sec,
                r.registrations.errors + r.events.errors,
                r.drain_secs,
                if r.counters_exact { "exact" } else { "WRONG" }
            )?;
            for m in &r.counter_mismatches {
                writeln!(f, "    counter mismatch {m}")?;
            }
        }
        if let Some(s) = &self.scaling {
            writeln!(
                f,
                "\nscaling {} -> {} API instances: registrations/s x{:.2}, events/s x{:.2}",
                s.from, s.to, s.registrations, s.events
            )?;
        }
        writeln!(f, "process logs in {}", self.logs.display())
    }
}

/// The variables every spawned process gets on top of the environment: the API's rate
/// limits out of the way (all requests come from one address).
const UNLIMITED: [(&str, &str); 4] = [
    ("MOD8_RATE_LIMIT_PER_SEC", "1000000"),
    ("MOD8_RATE_LIMIT_BURST", "1000000"),
    ("MOD8_REGISTRATIONS_PER_MIN", "1000000"),
    ("MOD8_REGISTRATION_BURST", "1000000"),
];

/// `mod8 bench --instances N`: for one API instance, then N (one round when N is 1), spawns
/// that many `mod8 serve --role api` processes of this binary plus `args.workers` workers,
/// registers `args.users` users and sends `args.events_per_user` events each over HTTP
/// (round robin over the instances, `args.concurrency` in flight), checks every user's
/// engagement counters are exact, waits for the workers to empty the work queues and stops
/// the processes. Needs shared backends (PostgreSQL, Redis, RabbitMQ, MongoDB wire): with an
/// embedded one each process would have its own.
///
/// Tokens: `MOD8_AUTH_KEYS` when set, else a random key for this run, given to every process.
///
/// # Errors
///
/// A backend that is embedded or unreachable, a process that does not start, or N = 0.
pub async fn run_instances(args: &BenchArgs, instances: usize) -> anyhow::Result<InstancesReport> {
    use anyhow::Context;
    if instances == 0 {
        anyhow::bail!("--instances must be at least 1");
    }
    let mut config = AppConfig::from_env()?;
    let shared = config.sql.url.starts_with("postgres")
        && config.docs.url.starts_with("mongodb")
        && config.cache.redis_url.is_some()
        && config.mq.url.starts_with("amqp");
    if !shared {
        anyhow::bail!(
            "--instances needs shared backends: set MOD8_POSTGRES_URL, MOD8_MONGODB_URL, \
             MOD8_REDIS_URL and MOD8_AMQP_URL (embedded ones would be one per process)"
        );
    }
    let mut env: Vec<(String, String)> = UNLIMITED
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    if config.auth.keys.is_empty() {
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let keys = format!("bench:{secret}");
        config.auth.keys = crate::config::AuthConfig::parse_keys(&keys)?;
        env.push(("MOD8_AUTH_KEYS".to_owned(), keys));
    }
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let logs = std::env::temp_dir().join(format!("mod8-bench-{run}"));
    std::fs::create_dir_all(&logs)
        .with_context(|| format!("creating the log directory {}", logs.display()))?;
    let exe = std::env::current_exe().context("locating the mod8 binary")?;
    let inspector = App::build(config).await?;
    let mut counts = vec![1];
    if instances > 1 {
        counts.push(instances);
    }
    let mut rounds = Vec::new();
    // Each round's processes get a document database of their own, dropped afterwards: the
    // workers' profile updates cost more the more profiles the store holds (a scan each on
    // FerretDB 1.x), so a round on the previous round's profiles would not compare.
    let base_db = inspector
        .config
        .docs
        .database
        .clone()
        .unwrap_or_else(|| "mod8".to_owned());
    for n in counts {
        let db = format!("{base_db}_bench_{run}_{n}");
        let mut round_env = env.clone();
        round_env.push(("MOD8_MONGODB_DATABASE".to_owned(), db.clone()));
        let cluster = crate::commands::cluster::Cluster::new(&exe, round_env, false, &logs);
        let result = instances_round(args, &inspector, cluster, n, &format!("{run}_{n}")).await;
        let mut docs = inspector.config.docs.clone();
        docs.database = Some(db.clone());
        match mod8_docstore::MongoDocStore::connect(&docs).await {
            Ok(store) => {
                if let Err(e) = store.database().drop().await {
                    tracing::warn!(database = %db, error = %e, "could not drop the round's document database");
                }
            }
            Err(e) => {
                tracing::warn!(database = %db, error = %e, "could not drop the round's document database")
            }
        }
        match result {
            Ok(round) => rounds.push(round),
            Err(e) => {
                inspector.shutdown().await;
                return Err(e);
            }
        }
    }
    let scaling = match (rounds.first(), rounds.last()) {
        (Some(a), Some(b)) if rounds.len() > 1 => Some(Scaling {
            from: a.api_instances,
            to: b.api_instances,
            registrations: b.registrations.ops_per_sec / a.registrations.ops_per_sec.max(1e-9),
            events: b.events.ops_per_sec / a.events.ops_per_sec.max(1e-9),
        }),
        _ => None,
    };
    let backends = inspector.config.describe();
    inspector.shutdown().await;
    Ok(InstancesReport {
        backends,
        users: args.users,
        events_per_user: args.events_per_user,
        concurrency: args.concurrency,
        rounds,
        scaling,
        logs,
    })
}

/// The HTTP answer's body when it has the expected status, else an error naming both.
async fn expect_status(
    response: reqwest::Result<reqwest::Response>,
    expected: u16,
) -> anyhow::Result<serde_json::Value> {
    let response = response?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    if status.as_u16() != expected {
        anyhow::bail!("HTTP {status} (expected {expected}): {body}");
    }
    Ok(body)
}

async fn instances_round(
    args: &BenchArgs,
    inspector: &App,
    mut cluster: crate::commands::cluster::Cluster,
    n: usize,
    run: &str,
) -> anyhow::Result<InstancesRound> {
    use crate::Role;
    for _ in 0..n {
        cluster.spawn(Role::Api).await?;
    }
    for _ in 0..args.workers {
        cluster.spawn(Role::Worker).await?;
    }
    let apis = cluster.urls(Role::Api);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let admin = inspector
        .auth
        .issue(crate::http::auth::Scope::Admin, "bench")?
        .token;

    let (registrations, users) = measure(
        "registration",
        args.concurrency,
        (0..args.users).collect(),
        |i: usize| {
            let url = format!("{}/api/users", apis[i % apis.len()]);
            let request = http.post(url).json(&serde_json::json!({
                "username": format!("bench_{run}_{i}"),
                "email": format!("bench.{run}.{i}@example.com"),
            }));
            async move {
                let body = expect_status(request.send().await, 201).await?;
                body["user"]["id"]
                    .as_str()
                    .and_then(|id| id.parse::<uuid::Uuid>().ok())
                    .ok_or_else(|| anyhow::anyhow!("no user id in {body}"))
            }
        },
    )
    .await;

    let mut rng = rand::rng();
    let mut events = Vec::with_capacity(users.len() * args.events_per_user);
    for (u, id) in users.iter().enumerate() {
        for _ in 0..args.events_per_user {
            events.push((u, *id, super::seed::random_event_type(&mut rng).to_owned()));
        }
    }
    let (events_phase, accepted) = measure(
        "event",
        args.concurrency,
        events.into_iter().enumerate().collect(),
        |(i, (u, id, event_type)): (usize, (usize, uuid::Uuid, String))| {
            let url = format!("{}/api/events", apis[i % apis.len()]);
            let request = http.post(url).bearer_auth(&admin).json(&serde_json::json!({
                "user_id": id,
                "event_type": event_type,
            }));
            async move {
                expect_status(request.send().await, 202).await?;
                Ok::<_, anyhow::Error>((u, event_type))
            }
        },
    )
    .await;
    let accepted_at = Instant::now();

    // What each user's counters must say: the events accepted for it, type by type.
    let mut expected = vec![crate::activity::counts_from_fields([]); users.len()];
    for (u, event_type) in &accepted {
        let deltas = crate::activity::counter_deltas(event_type);
        let mut fields: Vec<(&str, i64)> = Vec::new();
        let current = &expected[*u];
        for (field, delta) in deltas {
            fields.push((field, i64::from(field_value(current, field)) + delta));
        }
        expected[*u] = crate::activity::counts_from_fields(fields);
    }
    let checked: Vec<(usize, Result<mod8_datasci::ActivityCounts, crate::AppError>)> =
        stream::iter(users.iter().enumerate())
            .map(|(u, id)| async move { (u, inspector.engagement_counters(*id).await) })
            .buffer_unordered(args.concurrency.max(1))
            .collect()
            .await;
    let mut counter_mismatches = Vec::new();
    let mut wrong = 0;
    for (u, counted) in checked {
        let ok = matches!(&counted, Ok(c) if *c == expected[u]);
        if !ok {
            wrong += 1;
            if counter_mismatches.len() < 5 {
                counter_mismatches.push(format!("{}: {counted:?} vs {:?}", users[u], expected[u]));
            }
        }
    }

    // Let the workers finish before the processes stop.
    let topology = &inspector.config.topology;
    let queues = [
        topology.user_data_queue.clone(),
        topology.notification_queue.clone(),
        topology.analytics_queue.clone(),
        inspector.config.live_queue.clone(),
    ];
    loop {
        let mut pending = 0;
        for q in &queues {
            pending += inspector
                .broker
                .queue_depth(q)
                .await
                .unwrap_or(u64::MAX / 8);
        }
        if pending == 0 || accepted_at.elapsed() > DRAIN_TIMEOUT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain_secs = accepted_at.elapsed().as_secs_f64();
    let killed = cluster.stop_all().await;
    if !killed.is_empty() {
        tracing::warn!(?killed, "instances had to be killed after SIGTERM");
    }
    Ok(InstancesRound {
        api_instances: n,
        workers: args.workers,
        registrations,
        events: events_phase,
        counters_exact: wrong == 0,
        counter_mismatches,
        drain_secs,
    })
}

/// The value of counter `field` in `counts` (0 for a field it does not have).
fn field_value(counts: &mod8_datasci::ActivityCounts, field: &str) -> u32 {
    match field {
        "sessions" => counts.sessions,
        "page_views" => counts.page_views,
        "clicks" => counts.clicks,
        "searches" => counts.searches,
        "cart_adds" => counts.cart_adds,
        "reviews" => counts.reviews,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(&mut samples);
        assert_eq!(
            (l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms),
            (50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(Latency::of(&mut []).p99_ms, 0.0);
    }

    /// Every phase runs every operation on the embedded backends, the consumer stores every
    /// event before the cold phase, and the warm phase is served from the cache.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_run_completes_every_phase() {
        let app = App::build(AppConfig::embedded()).await.unwrap();
        app.start().await.unwrap();
        let args = BenchArgs {
            users: 12,
            events_per_user: 3,
            concurrency: 4,
            json: None,
            instances: None,
            workers: 1,
            page_requests: 30,
            checkouts: 20,
            checkout_clients: 8,
        };
        let report = bench(&app, &args).await;
        app.shutdown().await;
        let report = report.unwrap();
        let ops: Vec<(&str, usize, usize)> = report
            .phases
            .iter()
            .map(|p| (p.name, p.ops, p.errors))
            .collect();
        assert_eq!(
            ops,
            [
                ("registration", 12, 0),
                ("event", 36, 0),
                ("personalisation cold", 12, 0),
                ("personalisation warm", 12, 0),
                ("product page cold", 30, 0),
                ("product page warm", 30, 0),
                ("category page cold", 30, 0),
                ("category page warm", 30, 0),
                ("checkout", 20, 0),
            ]
        );
        assert_eq!(
            report.listing_statements, 1,
            "one statement per listing page"
        );
        assert_eq!(report.events_stored, 36);
        assert!(report.cache_hit_ratio > 0.0);
        let text = report.to_string();
        assert!(
            text.contains("analytics consumer stored 36 events"),
            "{text}"
        );
    }
}
