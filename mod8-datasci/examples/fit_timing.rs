//! Times the Pareto/NBD and MBG/NBD fits on the full CDNOW base (23,570 customers):
//! `cargo run --release -p mod8-datasci --example fit_timing`. Each fit runs 5 times and the
//! fastest is reported, as wall time and, on Linux, as the thread's CPU time (from
//! `/proc/thread-self/schedstat`), which a busy machine does not inflate.

use std::time::{Duration, Instant};

use mod8_datasci::{MbgNbd, ParetoNbd, Rfm};

/// This thread's CPU time so far, where Linux reports it.
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// The result and the fastest wall and CPU times (ms) of five runs.
fn fastest<T>(mut fit: impl FnMut() -> T) -> (Option<T>, f64, Option<f64>) {
    let (mut wall, mut cpu, mut result) = (f64::INFINITY, None::<f64>, None);
    for _ in 0..5 {
        let (start, cpu_start) = (Instant::now(), thread_cpu_time());
        result = Some(fit());
        wall = wall.min(start.elapsed().as_secs_f64() * 1e3);
        if let (Some(a), Some(b)) = (cpu_start, thread_cpu_time()) {
            let ms = (b - a).as_secs_f64() * 1e3;
            cpu = Some(cpu.map_or(ms, |c| c.min(ms)));
        }
    }
    (result, wall, cpu)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = include_str!("../tests/data/cdnow_full_summary.csv")
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let days =
                |s: &str| -> Result<f64, std::num::ParseFloatError> { Ok(s.parse::<f64>()? / 7.0) };
            Ok(Rfm::new(
                f[0].parse()?,
                days(f[1])?,
                days(f[2])?,
                f[3].parse()?,
            )?)
        })
        .collect::<Result<Vec<Rfm>, Box<dyn std::error::Error>>>()?;

    let cpu = |ms: Option<f64>| ms.map_or_else(String::new, |ms| format!(", {ms:.1} ms CPU"));
    let (fit, wall, cpu_ms) = fastest(|| ParetoNbd::fit(&data));
    let fit = fit.ok_or("no run")??;
    println!(
        "Pareto/NBD, {} customers ({} distinct histories): {wall:.1} ms{}, {} iterations\n  {:?}, log-likelihood {}",
        fit.customers,
        fit.distinct_histories,
        cpu(cpu_ms),
        fit.iterations,
        fit.params,
        fit.log_likelihood
    );
    let (fit, wall, cpu_ms) = fastest(|| MbgNbd::fit(&data));
    let fit = fit.ok_or("no run")??;
    println!(
        "MBG/NBD, {} customers ({} distinct histories): {wall:.1} ms{}, {} iterations\n  {:?}, log-likelihood {}",
        fit.customers,
        fit.distinct_histories,
        cpu(cpu_ms),
        fit.iterations,
        fit.params,
        fit.log_likelihood
    );
    Ok(())
}
