//! `mod8 clv fit|predict|plot`: customer lifetime value from a transactions CSV.
//!
//! The input is `customer_id,date,amount` with a header row and ISO dates. Transactions are
//! summarised up to the calibration end (several on one day count as one purchase of their
//! sum); BG/NBD and Gamma-Gamma are fitted by maximum likelihood in weeks
//! ([`mod8_datasci::ClvFit`]). Bad input is reported with its row and field and a non-zero exit.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;

use anyhow::Context;
use chrono::NaiveDate;
use mod8_datasci::{ClvFit, ClvOptions, RfmSummary};

fn fit_file(
    transactions: &Path,
    calibration_end: NaiveDate,
) -> anyhow::Result<(RfmSummary, ClvFit)> {
    let file = File::open(transactions)
        .with_context(|| format!("cannot open {}", transactions.display()))?;
    let (summary, fit) = ClvFit::from_csv(BufReader::new(file), calibration_end)
        .with_context(|| format!("{}", transactions.display()))?;
    for warning in fit.warnings() {
        eprintln!("warning: {warning}");
    }
    Ok((summary, fit))
}

/// Fit and print `{"customers":N,"bgnbd":{...},"gamma_gamma":{...}}` on stdout.
///
/// # Errors
///
/// Unreadable file, bad rows (named by row and field), or a fit that did not converge.
pub fn fit(transactions: &Path, calibration_end: NaiveDate) -> anyhow::Result<()> {
    let (_, fit) = fit_file(transactions, calibration_end)?;
    println!("{}", fit.report().to_json());
    Ok(())
}

/// Fit, then write per-customer predictions (P(alive), expected purchases over the CLV horizon,
/// expected spend, CLV) as CSV on stdout.
///
/// # Errors
///
/// As [`fit`], plus a Gamma-Gamma fit with q ≤ 1, which has no finite mean spend.
pub fn predict(
    transactions: &Path,
    calibration_end: NaiveDate,
    options: ClvOptions,
) -> anyhow::Result<()> {
    let (summary, fit) = fit_file(transactions, calibration_end)?;
    let model = fit.model()?;
    let predictions = model.predict_all(&summary, options.horizon_weeks(), &options)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    mod8_datasci::write_predictions_csv(&mut out, &predictions)?;
    out.flush()?;
    Ok(())
}

/// Write the probability-alive and expected-purchases charts (from a BG/NBD fit) and the
/// segment distribution (heuristic segments as of the calibration end) as SVG into `out`.
///
/// Only BG/NBD is fitted: the charts need no spend model, so a file whose spend cannot be
/// modelled (all amounts zero, all the same) still plots.
///
/// # Errors
///
/// Unreadable file, bad rows, a BG/NBD fit that did not converge, or a directory or chart that
/// cannot be written.
pub fn plot(transactions: &Path, calibration_end: NaiveDate, out: &Path) -> anyhow::Result<()> {
    let file = File::open(transactions)
        .with_context(|| format!("cannot open {}", transactions.display()))?;
    let tx = mod8_datasci::read_transactions(
        BufReader::new(file),
        mod8_datasci::ReadOptions::default().with_calibration_end(calibration_end),
    )
    .with_context(|| format!("{}", transactions.display()))?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let written = mod8_datasci::render_transaction_charts(out, &tx, calibration_end)
        .with_context(|| format!("{}", transactions.display()))?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}
