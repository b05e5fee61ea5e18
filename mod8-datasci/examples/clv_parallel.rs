//! Timing of the CLV fit and predictions for a million customers, on one thread and on every
//! core (rayon, feature `parallel`), and a check that both give the same bits.
//!
//! ```text
//! cargo run -p mod8-datasci --release --example clv_parallel [customers] [continuous]
//! ```
//!
//! The customers are drawn from the BG/NBD + Gamma-Gamma story (`mod8_datasci::simulate`) with
//! ages of 1 to 104 weeks, and their recency and age rounded to whole days, as a summary built
//! from dated orders has them (customers then share histories, which `predict_all` forecasts
//! once each); with `continuous`, they are left unrounded, so nearly every history is distinct
//! (the worst case). Each timing is the best of three runs, with the CPU time of all threads
//! beside the wall-clock time, and the machine's load average before and after: on a shared
//! machine other work takes cores away, which slows the wall clock but not the CPU time.

#![allow(clippy::unwrap_used)] // an example may unwrap

use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use mod8_datasci::simulate::{simulate_customers, SimulationParams};
use mod8_datasci::{BgNbd, ClvFit, ClvOptions, CustomerSummary, GammaGamma, Rfm, RfmSummary};

/// CPU time of every thread of this process so far (the first field of each thread's
/// schedstat, in nanoseconds; Linux only). Exited threads are not counted, so measure with
/// rayon's pool already started.
fn process_cpu() -> Duration {
    let ns: u64 = std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| {
                    let path = t.ok()?.path().join("schedstat");
                    std::fs::read_to_string(path)
                        .ok()?
                        .split_whitespace()
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .sum()
        })
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// A timing: the best wall-clock time of the runs, and the CPU time of that run (all threads).
#[derive(Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: Duration,
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.3} s wall ({:.3} s CPU)",
            self.wall.as_secs_f64(),
            self.cpu.as_secs_f64()
        )
    }
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Timing, T) {
    let mut best = Timing {
        wall: Duration::MAX,
        cpu: Duration::ZERO,
    };
    let mut out = None;
    for _ in 0..runs {
        let (start, cpu) = (Instant::now(), process_cpu());
        let value = f();
        let run = Timing {
            wall: start.elapsed(),
            cpu: process_cpu().saturating_sub(cpu),
        };
        if run.wall < best.wall {
            best = run;
        }
        out = Some(value);
    }
    (best, out.unwrap())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn main() {
    let customers: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1_000_000);
    let continuous = std::env::args().nth(2).as_deref() == Some("continuous");
    let end = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    let days = |weeks: f64| {
        if continuous {
            weeks * 7.0
        } else {
            (weeks * 7.0).round()
        }
    };
    let points = simulate_customers(&SimulationParams {
        bgnbd: BgNbd::new(0.25, 4.8, 0.72, 2.16).unwrap(),
        gamma_gamma: GammaGamma::new(6.3, 3.6, 15.0).unwrap(),
        customers,
        min_age_weeks: 1.0,
        max_age_weeks: 104.0,
        seed: 7,
    })
    .unwrap();
    let summary = RfmSummary::from_customers(
        end,
        points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let t_days = days(p.t);
                let rfm = Rfm::new(
                    p.frequency,
                    days(p.recency).min(t_days) / 7.0,
                    t_days / 7.0,
                    (p.monetary_value * 100.0).round() / 100.0,
                )
                .unwrap();
                CustomerSummary {
                    customer_id: format!("c{i:08}"),
                    first_purchase: Some(end - Days::new(t_days.round() as u64)),
                    rfm,
                }
            })
            .collect(),
    )
    .unwrap();
    let threads = rayon::current_num_threads();
    // Start rayon's global pool now, so its threads exist when CPU time is measured.
    rayon::broadcast(|_| ());
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    println!(
        "{customers} customers ({}), {threads} rayon threads, load average before: {}",
        if continuous {
            "continuous recency and T"
        } else {
            "recency and T in whole days"
        },
        load_average()
    );

    let (fit_1, fit_seq) = best_of(3, || one.install(|| ClvFit::fit(&summary).unwrap()));
    let (fit_n, fit_par) = best_of(3, || ClvFit::fit(&summary).unwrap());
    assert_eq!(fit_seq, fit_par, "the fit does not depend on the threads");
    println!(
        "fit (BG/NBD {} distinct histories, {} iterations; Gamma-Gamma {} customers, {} iterations):\n  \
         1 thread {fit_1}, {threads} threads {fit_n}: {:.2}x",
        fit_par.bgnbd.distinct_histories,
        fit_par.bgnbd.iterations,
        fit_par.gamma_gamma.customers,
        fit_par.gamma_gamma.iterations,
        fit_1.wall.as_secs_f64() / fit_n.wall.as_secs_f64(),
    );

    let model = fit_par.model().unwrap();
    let options = ClvOptions::default();
    let horizon = options.horizon_weeks();
    let (predict_1, seq) = best_of(3, || {
        one.install(|| model.predict_all(&summary, horizon, &options).unwrap())
    });
    let (predict_n, par) = best_of(3, || {
        model.predict_all(&summary, horizon, &options).unwrap()
    });
    assert_eq!(seq, par, "predictions do not depend on the threads");
    println!(
        "predict_all:\n  1 thread {predict_1}, {threads} threads {predict_n}: {:.2}x",
        predict_1.wall.as_secs_f64() / predict_n.wall.as_secs_f64(),
    );
    println!("load average after: {}", load_average());
}
