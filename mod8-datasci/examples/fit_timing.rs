//! Times the Pareto/NBD and MBG/NBD fits on the full CDNOW base (23,570 customers), once each:
//! `cargo run --release -p mod8-datasci --example fit_timing`.

use std::time::Instant;

use mod8_datasci::{ParetoNbd, Rfm};

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
    let start = Instant::now();
    let fit = ParetoNbd::fit(&data)?;
    let elapsed = start.elapsed();
    println!(
        "Pareto/NBD on {} customers ({} distinct histories): {:.1} ms, {} iterations",
        fit.customers,
        fit.distinct_histories,
        elapsed.as_secs_f64() * 1e3,
        fit.iterations
    );
    println!("  {:?}  LL {}", fit.params, fit.log_likelihood);
    Ok(())
}
