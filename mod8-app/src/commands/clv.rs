//! `mod8 clv fit|predict|plot`: customer lifetime value from a transaction log or a
//! per-customer summary.
//!
//! A transaction log is `customer_id,date,amount` with a header row and ISO dates. Transactions
//! are summarised up to the calibration end (several on one day count as one purchase of their
//! sum); later ones are held out — counted on stderr, and with a holdout end compared with
//! what the model predicts for them. A summary is `customer_id,frequency,recency,T,monetary_value`
//! in weeks, lifetimes' input. BG/NBD and Gamma-Gamma are fitted by maximum likelihood in weeks
//! ([`mod8_datasci::ClvFit`]). Bad input is reported with its row and field and a non-zero exit.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDate;
use mod8_datasci::{
    BgNbd, ChartFormat, ClvChartSet, ClvFit, ClvModel, ClvOptions, FitReport, GammaGamma,
    HoldoutEvaluation, HoldoutPeriod, InsightsGenerator, ReadOptions, RfmSummary, Transaction,
};
use serde::Serialize;

/// Calibration-frequency buckets of the holdout evaluation: 0, 1, …, 6 and 7+ (as lifetimes'
/// calibration-vs-holdout plot).
const HOLDOUT_LAST_BUCKET: u32 = 7;

/// Where `mod8 clv` reads its customers from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClvSource {
    /// A transaction log (`customer_id,date,amount`).
    Transactions {
        /// The CSV file.
        path: PathBuf,
        /// Last day of the calibration period: later transactions are held out.
        calibration_end: NaiveDate,
        /// Last day of the holdout period, for the calibration/holdout evaluation (`fit` and
        /// `plot`); transactions after it are ignored.
        holdout_end: Option<NaiveDate>,
    },
    /// A per-customer summary (`customer_id,frequency,recency,T,monetary_value`, weeks).
    Summary {
        /// The CSV file.
        path: PathBuf,
    },
}

impl ClvSource {
    fn path(&self) -> &Path {
        match self {
            ClvSource::Transactions { path, .. } | ClvSource::Summary { path } => path,
        }
    }
}

/// A transaction log split at the calibration end.
struct Log {
    transactions: Vec<Transaction>,
    calibration_end: NaiveDate,
    holdout: Option<HoldoutPeriod>,
}

/// The calibration summary, and the log it came from (none for a summary file).
struct Input {
    summary: RfmSummary,
    log: Option<Log>,
}

fn open(path: &Path) -> anyhow::Result<BufReader<File>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(BufReader::new(file))
}

fn load(source: &ClvSource) -> anyhow::Result<Input> {
    let label = || source.path().display().to_string();
    match source {
        ClvSource::Summary { path } => {
            let summary = mod8_datasci::read_summary(open(path)?).with_context(label)?;
            Ok(Input { summary, log: None })
        }
        ClvSource::Transactions {
            path,
            calibration_end,
            holdout_end,
        } => {
            // Checked before the file is read: a wrong holdout end fails at once.
            let holdout = holdout_end
                .map(|end| HoldoutPeriod::new(*calibration_end, end))
                .transpose()
                .context("--holdout-end")?;
            let transactions = mod8_datasci::read_transactions(open(path)?, ReadOptions::default())
                .with_context(label)?;
            let summary = RfmSummary::from_transactions(&transactions, *calibration_end)
                .with_context(label)?;
            let log = Log {
                transactions,
                calibration_end: *calibration_end,
                holdout,
            };
            report_held_out(&log);
            Ok(Input {
                summary,
                log: Some(log),
            })
        }
    }
}

/// Tells the user (stderr) what the calibration period left out.
fn report_held_out(log: &Log) {
    let end = log.calibration_end;
    let later: Vec<&Transaction> = log.transactions.iter().filter(|t| t.date > end).collect();
    if later.is_empty() {
        if log.holdout.is_some() {
            eprintln!(
                "warning: no transactions after the calibration end {end}: every actual holdout purchase count is 0"
            );
        }
        return;
    }
    match log.holdout {
        None => eprintln!(
            "note: {} transaction(s) after the calibration end {end} held out (not used by the fit; --holdout-end evaluates the fit on them)",
            later.len()
        ),
        Some(period) => {
            let holdout_end = period.holdout_end();
            let ignored = later.iter().filter(|t| t.date > holdout_end).count();
            eprintln!(
                "note: {} transaction(s) after the calibration end {end} held out: {} in the holdout period to {holdout_end}, {ignored} after it (ignored)",
                later.len(),
                later.len() - ignored
            );
            let mut first_seen: HashMap<&str, NaiveDate> = HashMap::new();
            for t in &log.transactions {
                let first = first_seen.entry(t.customer_id.as_str()).or_insert(t.date);
                *first = (*first).min(t.date);
            }
            let newcomers = first_seen
                .values()
                .filter(|&&d| d > end && d <= holdout_end)
                .count();
            if newcomers > 0 {
                eprintln!(
                    "note: {newcomers} customer(s) first seen in the holdout period are not in the calibrated base and not evaluated"
                );
            }
            let last = later.iter().map(|t| t.date).max().unwrap_or(end);
            if last < holdout_end {
                eprintln!(
                    "warning: the last transaction is on {last}, before the holdout end {holdout_end}: the model predicts purchases for the whole holdout period"
                );
            }
        }
    }
}

fn fit_input(source: &ClvSource) -> anyhow::Result<(Input, ClvFit)> {
    let input = load(source)?;
    let fit = ClvFit::fit(&input.summary).with_context(|| source.path().display().to_string())?;
    for warning in fit.warnings() {
        eprintln!("warning: {warning}");
    }
    Ok((input, fit))
}

/// `fit`'s JSON with the holdout evaluation appended.
#[derive(Serialize)]
struct FitWithHoldout<'a> {
    #[serde(flatten)]
    fit: FitReport,
    holdout: &'a HoldoutEvaluation,
}

/// Fit and print `{"customers":N,"bgnbd":{...},"gamma_gamma":{...}}` on stdout; with a holdout
/// end, a `"holdout"` object follows (the [`HoldoutEvaluation`]: predicted vs actual holdout
/// purchases per calibration frequency 0–6 and 7+, totals, MAE and RMSE).
///
/// # Errors
///
/// Unreadable file, bad rows (named by row and field), a holdout end not after the
/// calibration end, or a fit that did not converge.
pub fn fit(source: ClvSource) -> anyhow::Result<()> {
    let (input, fit) = fit_input(&source)?;
    let report = fit.report();
    let holdout = input
        .log
        .as_ref()
        .and_then(|log| log.holdout.map(|period| (log, period)));
    let json = match holdout {
        None => report.to_json(),
        Some((log, period)) => {
            let evaluation = HoldoutEvaluation::of_fit(
                &fit.bgnbd,
                &log.transactions,
                period,
                HOLDOUT_LAST_BUCKET,
            )?;
            serde_json::to_string(&FitWithHoldout {
                fit: report,
                holdout: &evaluation,
            })?
        }
    };
    println!("{json}");
    Ok(())
}

/// Fit, then write per-customer predictions (P(alive), expected purchases over the CLV horizon,
/// expected spend, CLV) as CSV on stdout, in the order of the input (sorted by customer id for
/// a transaction log, file order for a summary).
///
/// # Errors
///
/// As [`fit`], plus a Gamma-Gamma fit with q ≤ 1, which has no finite mean spend, and invalid
/// `options`.
pub fn predict(source: ClvSource, options: ClvOptions) -> anyhow::Result<()> {
    let (input, fit) = fit_input(&source)?;
    let model = fit.model()?;
    let predictions = model.predict_all(&input.summary, options.horizon_weeks(), &options)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    mod8_datasci::write_predictions_csv(&mut out, &predictions)?;
    out.flush()?;
    Ok(())
}

/// Write the charts into `out`, each as SVG and PNG ([`ClvChartSet`]), and list the files on
/// stdout: the probability-alive and expected-purchases matrices (from a BG/NBD fit); for a
/// transaction log the segment distribution (heuristic segments as of the calibration end)
/// and, with a holdout end, calibration vs holdout purchases; and the distribution of
/// predicted CLV over `options`' horizon.
///
/// Only BG/NBD is required: when the spend model cannot be fitted (all amounts zero, all the
/// same, q ≤ 1) the CLV distribution is left out with a warning and the other charts are still
/// written.
///
/// # Errors
///
/// Unreadable file, bad rows, a holdout end not after the calibration end, a BG/NBD fit that
/// did not converge, invalid `options`, or a directory or chart that cannot be written.
pub fn plot(source: ClvSource, options: ClvOptions, out: &Path) -> anyhow::Result<()> {
    let label = || source.path().display().to_string();
    let input = load(&source)?;
    let points = input.summary.points();
    let bgnbd = BgNbd::fit(&points).with_context(label)?;
    let (segments, holdout) = match &input.log {
        None => (None, None),
        Some(log) => {
            let segments = InsightsGenerator::default()
                .report_transactions(&log.transactions, log.calibration_end)?;
            let holdout = log
                .holdout
                .map(|period| {
                    HoldoutEvaluation::of_fit(
                        &bgnbd,
                        &log.transactions,
                        period,
                        HOLDOUT_LAST_BUCKET,
                    )
                })
                .transpose()?;
            (Some(segments), holdout)
        }
    };
    let predictions = match GammaGamma::fit(&points)
        .and_then(|spend| ClvModel::new(bgnbd.params, spend.params))
    {
        Ok(model) => Some(model.predict_all(&input.summary, options.horizon_weeks(), &options)?),
        Err(e) => {
            eprintln!("warning: no CLV distribution chart: {e}");
            None
        }
    };
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut charts = ClvChartSet::new(&bgnbd.params, &input.summary);
    if let Some(report) = &segments {
        charts = charts.with_segments(report);
    }
    if let Some(evaluation) = &holdout {
        charts = charts.with_holdout(evaluation);
    }
    if let Some(predictions) = &predictions {
        charts = charts.with_clv_distribution(predictions, options);
    }
    let written = charts
        .render(out, ChartFormat::available())
        .with_context(label)?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}
