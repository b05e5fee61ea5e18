//! Criterion benchmarks of three workloads, each with a reference beside it (targets and results:
//! see BENCHMARKS.md at the repository root):
//!
//! - `profile`: profile + segment 1,000,000 synthetic users (heuristic tier), beside one plain
//!   pass reading the same users (the memory-bandwidth floor);
//! - `fit`: BG/NBD + Gamma-Gamma on 25,000 simulated customers and on the full CDNOW base
//!   (23,570), Pareto/NBD on the full CDNOW base, with summary building from transactions
//!   measured separately;
//! - `recommend`: building item-to-item CF from 10,000 users over 1,000 products, and
//!   recommendations for all 10,000 users.
//!
//! Every benchmark runs twice: with criterion's wall clock (`wall/...`) and with this thread's
//! CPU time from `/proc/thread-self/schedstat` (`cpu/...`, Linux only). On a shared machine the
//! wall clock also counts time spent waiting for a core; CPU time is the per-core figure.

#![allow(clippy::unwrap_used)] // benches may unwrap

use std::hint::black_box;

use chrono::NaiveDate;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mod8_datasci::simulate::{
    simulate_transactions, synthetic_activity, synthetic_catalog, synthetic_customers,
    SimulationParams,
};
use mod8_datasci::{
    AnalyticsEngine, BgNbd, ClvFit, GammaGamma, ParetoNbd, RecommendationEngine, Rfm, RfmSummary,
    Segment,
};

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 30).unwrap()
}

/// CPU time of the calling thread in nanoseconds (first field of schedstat).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Criterion measurement: CPU time of the benchmarking thread.
struct CpuTime;

static WALL: WallTime = WallTime;

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Values are nanoseconds, exactly what the wall-clock formatter expects.
        WALL.formatter()
    }
}

fn profile<M: Measurement + 'static>(c: &mut Criterion<M>) {
    let users = synthetic_activity(1_000_000, as_of(), 1);
    let engine = AnalyticsEngine::heuristic();
    let mut group = c.benchmark_group(format!("{}/profile", clock::<M>()));
    group.throughput(Throughput::Elements(users.len() as u64));
    group.sample_size(10);
    group.bench_function("profile+segment 1M users (heuristic)", |b| {
        b.iter(|| {
            let mut counts = [0usize; 4];
            let mut value = 0.0;
            for u in &users {
                let p = engine.profile(u, as_of()).unwrap();
                counts[p.segment as usize] += 1;
                value += p.lifetime_value + p.engagement;
            }
            black_box((counts, value))
        })
    });
    group.bench_function("segment only 1M users", |b| {
        b.iter(|| {
            let mut counts = [0usize; 4];
            for u in &users {
                counts[engine.segment(u, as_of()) as usize] += 1;
            }
            black_box(counts)
        })
    });
    group.bench_function("reference: one pass reading the users", |b| {
        b.iter(|| {
            let mut acc = 0.0;
            for u in &users {
                acc += u.purchases.total_amount + u.activity.sessions as f64;
            }
            black_box(acc)
        })
    });
    group.finish();
    black_box(Segment::Active);
}

fn simulated_transactions(customers: usize) -> (Vec<mod8_datasci::Transaction>, NaiveDate) {
    let params = SimulationParams {
        bgnbd: BgNbd::new(0.25, 4.8, 0.72, 2.16).unwrap(),
        gamma_gamma: GammaGamma::new(6.3, 3.6, 15.0).unwrap(),
        customers,
        min_age_weeks: 0.0,
        max_age_weeks: 0.0,
        seed: 9,
    };
    let start = NaiveDate::from_ymd_opt(1997, 1, 1).unwrap();
    let end = NaiveDate::from_ymd_opt(1997, 9, 30).unwrap();
    (simulate_transactions(&params, start, 84, end).unwrap(), end)
}

fn cdnow_full() -> Vec<Rfm> {
    include_str!("../tests/data/cdnow_full_summary.csv")
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let days = |s: &str| s.parse::<f64>().unwrap() / 7.0;
            Rfm::new(
                f[0].parse().unwrap(),
                days(f[1]),
                days(f[2]),
                f[3].parse().unwrap(),
            )
            .unwrap()
        })
        .collect()
}

fn fit<M: Measurement + 'static>(c: &mut Criterion<M>) {
    let (tx, end) = simulated_transactions(25_000);
    let summary = RfmSummary::from_transactions(&tx, end).unwrap();
    let points = summary.points();
    let cdnow = cdnow_full();
    let mut group = c.benchmark_group(format!("{}/fit", clock::<M>()));
    group.sample_size(20);
    group.bench_function("BG/NBD + Gamma-Gamma, 25,000 simulated customers", |b| {
        b.iter(|| black_box(ClvFit::fit_points(black_box(&points)).unwrap()))
    });
    group.bench_function("BG/NBD + Gamma-Gamma, full CDNOW (23,570)", |b| {
        b.iter(|| black_box(ClvFit::fit_points(black_box(&cdnow)).unwrap()))
    });
    group.bench_function("Pareto/NBD, full CDNOW (23,570)", |b| {
        b.iter(|| black_box(ParetoNbd::fit(black_box(&cdnow)).unwrap()))
    });
    group.bench_function("RFM summary from transactions, 25,000 customers", |b| {
        b.iter(|| black_box(RfmSummary::from_transactions(black_box(&tx), end).unwrap()))
    });
    group.finish();
}

fn recommend<M: Measurement + 'static>(c: &mut Criterion<M>) {
    let catalog = synthetic_catalog(1_000, 20, 1);
    let customers = synthetic_customers(10_000, &catalog, as_of(), 2);
    let engine = AnalyticsEngine::heuristic();
    let segments: Vec<Segment> = customers
        .iter()
        .map(|c| engine.profile_customer(c, as_of()).unwrap().segment)
        .collect();
    let recs =
        RecommendationEngine::build(&catalog, &customers, as_of(), Default::default()).unwrap();
    let mut group = c.benchmark_group(format!("{}/recommend", clock::<M>()));
    group.sample_size(10);
    group.bench_function("build item-CF, 10,000 users x 1,000 products", |b| {
        b.iter(|| {
            black_box(
                RecommendationEngine::build(&catalog, &customers, as_of(), Default::default())
                    .unwrap(),
            )
        })
    });
    group.throughput(Throughput::Elements(customers.len() as u64));
    group.bench_function("top-10 for 10,000 users", |b| {
        b.iter(|| {
            let mut n = 0;
            for (c, s) in customers.iter().zip(&segments) {
                n += recs.recommend(&c.purchases, *s, 10).len();
            }
            black_box(n)
        })
    });
    group.finish();
}

fn clock<M: 'static>() -> &'static str {
    if std::any::TypeId::of::<M>() == std::any::TypeId::of::<CpuTime>() {
        "cpu"
    } else {
        "wall"
    }
}

criterion_group!(wall, profile, fit, recommend);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(CpuTime);
    targets = profile, fit, recommend
}
criterion_main!(wall, cpu);
