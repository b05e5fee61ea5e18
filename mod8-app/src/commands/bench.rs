//! `mod8 bench`: drives the flows at scale on the configured backends and prints throughput
//! and latency percentiles (registrations/s, events/s, personalisation cold and warm, cache
//! hit ratio); `--json FILE` writes the same figures as JSON.

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
}

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

async fn measure<I, F, Fut, T>(
    name: &'static str,
    concurrency: usize,
    inputs: Vec<I>,
    op: F,
) -> (Phase, Vec<T>)
where
    F: Fn(I) -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::AppError>>,
{
    let started = Instant::now();
    let results: Vec<(Duration, Result<T, crate::AppError>)> = stream::iter(inputs)
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
    let (warm, _) = measure("personalisation warm", args.concurrency, users, personalise).await;
    Ok(BenchReport {
        backends: app.config.describe(),
        users: args.users,
        concurrency: args.concurrency,
        phases: vec![registered, recorded, cold, warm],
        cache_hit_ratio: app.cache.stats().hit_ratio(),
        events_stored,
        events_stored_secs,
    })
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
        writeln!(f, "cache hit ratio {:.3}", self.cache_hit_ratio)
    }
}

/// `mod8 bench` on the environment's backends.
///
/// # Errors
///
/// A backend that cannot be reached, or the JSON file cannot be written.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
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
            ]
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
