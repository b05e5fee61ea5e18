//! `mod8 clv fit|predict|plot|compare`: customer lifetime value from a transaction log, a
//! per-customer summary or the configured database's orders, with BG/NBD (default),
//! Pareto/NBD, MBG/NBD or BG/BB for purchases and Gamma-Gamma for spend.
//!
//! A transaction log is `customer_id,date,amount` with a header row and ISO dates. Transactions
//! are summarised up to the calibration end (several on one day count as one purchase of their
//! sum); later ones are held out — counted on stderr, and with a holdout end compared with
//! what the model predicts for them. A summary is `customer_id,frequency,recency,T,monetary_value`
//! in weeks, lifetimes' input. `--from-db` builds that summary with one SQL aggregate over the
//! orders of the configured database (`MOD8_POSTGRES_URL`, else the embedded SQLite). The
//! continuous-time models are fitted by maximum likelihood in weeks ([`mod8_datasci::ClvFit`],
//! [`mod8_datasci::PurchaseModel`]).
//!
//! BG/BB is for discrete transaction opportunities: its input is a transaction log cut into
//! opportunities of `--period-days` days from each customer's first transaction
//! ([`mod8_datasci::BgBbSummary::from_transactions`]), or a summary
//! `customer_id,frequency,recency,n_periods,monetary_value` in opportunities
//! ([`mod8_datasci::read_bgbb_summary`]). Any other combination (BG/BB on weekly histories or
//! the database, `--period-days` with a continuous-time model) is refused with an error saying
//! what to give instead. Bad input is reported with its row and field and a non-zero exit.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDate;
use mod8_datasci::{
    BgBb, BgBbSummary, ChartFormat, ClvChartSet, ClvFit, ClvOptions, CustomerSummary, FitReport,
    GammaGamma, HoldoutError, HoldoutEvaluation, HoldoutPeriod, InsightsGenerator, PurchaseModel,
    PurchaseModelFit, PurchaseModelKind, ReadOptions, Rfm, RfmSummary, Transaction,
};
use mod8_orm::futures::TryStreamExt;
use mod8_orm::AnalyticsRepository;
use serde::Serialize;
use serde_json::{json, Map, Value};

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
        /// Last day of the holdout period, for the calibration/holdout evaluation (`fit`,
        /// `plot` and `compare`); transactions after it are ignored.
        holdout_end: Option<NaiveDate>,
    },
    /// A per-customer summary (`customer_id,frequency,recency,T,monetary_value`, weeks; or
    /// `customer_id,frequency,recency,n_periods,monetary_value` for BG/BB).
    Summary {
        /// The CSV file.
        path: PathBuf,
    },
    /// The orders of the configured database, summarised by one SQL aggregate
    /// (`customer_rfm`): purchases (paid or shipped orders) up to and including the
    /// calibration end; later orders are not used.
    Database {
        /// Last day of the calibration period.
        calibration_end: NaiveDate,
    },
}

impl ClvSource {
    fn label(&self) -> String {
        match self {
            ClvSource::Transactions { path, .. } | ClvSource::Summary { path } => {
                path.display().to_string()
            }
            ClvSource::Database { calibration_end } => {
                format!("the database's orders up to {calibration_end}")
            }
        }
    }
}

/// What `mod8 clv` is asked to model: the input, the purchase model and, for BG/BB on a
/// transaction log, the length of one opportunity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClvRequest {
    /// The customers.
    pub source: ClvSource,
    /// The purchase model; `None` is BG/NBD with `fit`'s original JSON.
    pub model: Option<PurchaseModelKind>,
    /// Days per transaction opportunity (BG/BB on a transaction log only).
    pub period_days: Option<u32>,
}

impl ClvRequest {
    /// BG/NBD on `source`, as `mod8 clv` does without `--model`.
    pub fn new(source: ClvSource) -> Self {
        ClvRequest {
            source,
            model: None,
            period_days: None,
        }
    }

    fn kind(&self) -> PurchaseModelKind {
        self.model.unwrap_or(PurchaseModelKind::BgNbd)
    }
}

/// A transaction log split at the calibration end.
struct Log {
    transactions: Vec<Transaction>,
    calibration_end: NaiveDate,
    holdout: Option<HoldoutPeriod>,
}

/// The calibration summary, and the log it came from (none for a summary file or the
/// database).
struct Input {
    summary: RfmSummary,
    log: Option<Log>,
}

fn open(path: &Path) -> anyhow::Result<BufReader<File>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(BufReader::new(file))
}

/// The summary of the database's orders up to `calibration_end`: one SQL aggregate, streamed
/// row by row into [`RfmSummary::from_customers`] (amounts from cents to currency units, as a
/// transaction log exported from the orders has them).
///
/// # Errors
///
/// The database failing, a calibration end outside years 1–9999, or no purchase up to it.
pub async fn summary_from_db(
    db: &mod8_orm::DynDatabase,
    calibration_end: NaiveDate,
) -> anyhow::Result<RfmSummary> {
    let mut rows = db.customer_rfm(calibration_end);
    let mut customers = Vec::new();
    while let Some(c) = rows.try_next().await? {
        customers.push(CustomerSummary {
            customer_id: c.user_id.to_string(),
            first_purchase: Some(c.first_purchase),
            rfm: Rfm::new(c.frequency, c.recency, c.t, c.monetary_value_cents / 100.0)?,
        });
    }
    drop(rows);
    if customers.is_empty() {
        anyhow::bail!("the database has no purchases (paid or shipped orders) on or before the calibration end {calibration_end}");
    }
    Ok(RfmSummary::from_customers(calibration_end, customers)?)
}

/// Hint for a summary of the wrong kind.
fn summary_hint(e: &mod8_datasci::Error, model: PurchaseModelKind) -> Option<&'static str> {
    match e {
        mod8_datasci::Error::InvalidRecord { row: 1, field, .. } => {
            if field == "n_periods" && !model.is_discrete() {
                Some("this is a BG/BB summary (opportunities): use --model bgbb")
            } else if field == "T" && model.is_discrete() {
                Some("BG/BB needs discrete opportunities: a summary customer_id,frequency,recency,n_periods,monetary_value, or --transactions with --calibration-end and --period-days")
            } else {
                None
            }
        }
        _ => None,
    }
}

fn with_hint<T>(
    result: mod8_datasci::Result<T>,
    model: PurchaseModelKind,
    label: String,
) -> anyhow::Result<T> {
    result.map_err(|e| {
        let hint = summary_hint(&e, model);
        let e = anyhow::Error::new(e).context(label);
        match hint {
            Some(h) => e.context(h),
            None => e,
        }
    })
}

/// Loads the weekly (continuous-time) summary.
async fn load(request: &ClvRequest) -> anyhow::Result<Input> {
    let source = &request.source;
    if let Some(days) = request.period_days {
        anyhow::bail!(
            "--period-days {days} cuts time into opportunities for BG/BB; --model {} works on weekly histories (drop --period-days, or use --model bgbb)",
            request.kind()
        );
    }
    match source {
        ClvSource::Summary { path } => {
            let summary = with_hint(
                mod8_datasci::read_summary(open(path)?),
                request.kind(),
                source.label(),
            )?;
            Ok(Input { summary, log: None })
        }
        ClvSource::Database { calibration_end } => {
            let db = mod8_orm::OrmConfig::from_env()?
                .connect()
                .await
                .context("connecting the SQL store")?;
            let summary = summary_from_db(&db, *calibration_end).await?;
            eprintln!(
                "note: {} customer(s) summarised from the database's orders up to {calibration_end}",
                summary.len()
            );
            Ok(Input { summary, log: None })
        }
        ClvSource::Transactions {
            path,
            calibration_end,
            holdout_end,
        } => {
            let label = || source.label();
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

/// Loads BG/BB's opportunity summary.
fn load_bgbb(request: &ClvRequest) -> anyhow::Result<BgBbSummary> {
    let source = &request.source;
    match (source, request.period_days) {
        (ClvSource::Summary { path }, None) => with_hint(
            mod8_datasci::read_bgbb_summary(open(path)?),
            PurchaseModelKind::BgBb,
            source.label(),
        ),
        (ClvSource::Summary { .. }, Some(_)) => anyhow::bail!(
            "--period-days applies to --transactions; a BG/BB summary is already in opportunities"
        ),
        (
            ClvSource::Transactions {
                path,
                calibration_end,
                holdout_end,
            },
            Some(days),
        ) => {
            if holdout_end.is_some() {
                anyhow::bail!("--holdout-end is not available with --model bgbb (the holdout evaluation counts purchases in weeks)");
            }
            let transactions = mod8_datasci::read_transactions(open(path)?, ReadOptions::default())
                .with_context(|| source.label())?;
            let later = transactions
                .iter()
                .filter(|t| t.date > *calibration_end)
                .count();
            if later > 0 {
                eprintln!("note: {later} transaction(s) after the calibration end {calibration_end} not used");
            }
            BgBbSummary::from_transactions(&transactions, *calibration_end, days)
                .with_context(|| source.label())
        }
        (ClvSource::Transactions { .. }, None) => anyhow::bail!(
            "--model bgbb needs discrete opportunities: give --period-days N (days per opportunity) with --transactions"
        ),
        (ClvSource::Database { .. }, _) => anyhow::bail!(
            "--model bgbb is not available with --from-db (the database summary is in weeks): export a transaction log and give --period-days"
        ),
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

/// The Gamma-Gamma fit of a BG/BB input.
fn bgbb_fit(
    summary: &BgBbSummary,
) -> anyhow::Result<(mod8_datasci::BgBbFit, mod8_datasci::GammaGammaFit)> {
    let fit = BgBb::fit(&summary.observations())?;
    let spend = GammaGamma::fit(&summary.spend_points())?;
    Ok((fit, spend))
}

fn warn_spend(spend: &mod8_datasci::GammaGammaFit) {
    if spend.excluded_non_positive_spend > 0 {
        eprintln!(
            "warning: {} customer(s) with a non-positive average repeat spend were excluded from the Gamma-Gamma fit",
            spend.excluded_non_positive_spend
        );
    }
    if !spend.params.has_finite_mean() {
        eprintln!(
            "warning: Gamma-Gamma q = {:.4} ≤ 1: the fitted spend distribution has no finite mean, so it cannot be used for lifetime value",
            spend.params.q
        );
    }
}

/// Runs CPU-bound work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("the model task failed")?
}

/// `fit`'s JSON with the holdout evaluation appended.
#[derive(Serialize)]
struct FitWithHoldout<'a> {
    #[serde(flatten)]
    fit: FitReport,
    holdout: &'a HoldoutEvaluation,
}

/// `{"<model>":{params…,"log_likelihood":…}}` object of a fit.
fn model_object(params: &[(&str, f64)], log_likelihood: f64) -> Value {
    let mut object = Map::new();
    for (name, value) in params {
        object.insert((*name).to_owned(), json!(value));
    }
    object.insert("log_likelihood".to_owned(), json!(log_likelihood));
    Value::Object(object)
}

/// Fit and print the parameters as JSON on stdout.
///
/// Without `--model` (or with `--model bgnbd`):
/// `{"customers":N,"bgnbd":{"r","alpha","a","b","log_likelihood"},"gamma_gamma":{"p","q","gamma"}}`,
/// with a holdout end followed by `"holdout"` (the [`HoldoutEvaluation`]: predicted vs actual
/// holdout purchases per calibration frequency 0–6 and 7+, totals, MAE and RMSE). Other models
/// have the same shape with their own key and parameters: `"pareto_nbd":{"r","alpha","s",
/// "beta","log_likelihood"}`, `"mbgnbd":{"r","alpha","a","b","log_likelihood"}`,
/// `"bgbb":{"alpha","beta","gamma","delta","log_likelihood"}`; for Pareto/NBD and MBG/NBD the
/// holdout object is a [`HoldoutError`] (customers, totals, MAE, RMSE).
///
/// # Errors
///
/// Unreadable input, bad rows (named by row and field), a holdout end not after the
/// calibration end, a model that does not apply to the input, or a fit that did not converge.
pub async fn fit(request: ClvRequest) -> anyhow::Result<()> {
    let kind = request.kind();
    let json = match kind {
        PurchaseModelKind::BgNbd => {
            let input = load(&request).await?;
            let label = request.source.label();
            let (input, fit) = blocking(move || {
                let fit = ClvFit::fit(&input.summary).with_context(|| label)?;
                Ok((input, fit))
            })
            .await?;
            for warning in fit.warnings() {
                eprintln!("warning: {warning}");
            }
            let report = fit.report();
            match input
                .log
                .as_ref()
                .and_then(|log| log.holdout.map(|p| (log, p)))
            {
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
            }
        }
        PurchaseModelKind::BgBb => {
            let summary = load_bgbb(&request)?;
            let (fit, spend) = blocking(move || bgbb_fit(&summary)).await?;
            warn_spend(&spend);
            let p = fit.params;
            serde_json::to_string(&json!({
                "customers": fit.customers,
                "bgbb": model_object(
                    &[("alpha", p.alpha), ("beta", p.beta), ("gamma", p.gamma), ("delta", p.delta)],
                    fit.log_likelihood,
                ),
                "gamma_gamma": spend.params,
            }))?
        }
        _ => {
            let input = load(&request).await?;
            let (input, fit, spend) = fit_continuous(input, kind, request.source.label()).await?;
            warn_spend(&spend);
            let mut out = json!({
                "customers": input.summary.len(),
                kind.json_key(): model_object(&fit.model.parameters(), fit.log_likelihood),
                "gamma_gamma": spend.params,
            });
            if let Some((log, period)) = input.log.as_ref().and_then(|l| l.holdout.map(|p| (l, p)))
            {
                let error = fit
                    .model
                    .holdout_error(&input.summary, &log.transactions, period)?;
                out["holdout"] = serde_json::to_value(error)?;
            }
            serde_json::to_string(&out)?
        }
    };
    println!("{json}");
    Ok(())
}

/// Pareto/NBD or MBG/NBD and Gamma-Gamma on a weekly summary, off the async threads.
async fn fit_continuous(
    input: Input,
    kind: PurchaseModelKind,
    label: String,
) -> anyhow::Result<(Input, PurchaseModelFit, mod8_datasci::GammaGammaFit)> {
    blocking(move || {
        let points = input.summary.points();
        let fit = PurchaseModel::fit(kind, &points).with_context(|| label.clone())?;
        let spend = GammaGamma::fit(&points).with_context(|| label)?;
        Ok((input, fit, spend))
    })
    .await
}

/// Fit, then write per-customer predictions (P(alive) now and at the horizon, expected
/// purchases over the CLV horizon, expected spend, CLV) as CSV on stdout, in the order of the
/// input (sorted by customer id for a transaction log or the database, file order for a
/// summary). BG/BB's rows count opportunities: columns
/// `customer_id,frequency,recency,n_periods,monetary_value,…`, horizon = the next `--periods`
/// opportunities, each one discount period.
///
/// # Errors
///
/// As [`fit`], plus a Gamma-Gamma fit with q ≤ 1, which has no finite mean spend, and invalid
/// `options`.
pub async fn predict(request: ClvRequest, options: ClvOptions) -> anyhow::Result<()> {
    let kind = request.kind();
    let mut out = Vec::new();
    if kind == PurchaseModelKind::BgBb {
        let summary = load_bgbb(&request)?;
        let predictions = blocking(move || {
            let (fit, spend) = bgbb_fit(&summary)?;
            warn_spend(&spend);
            Ok(mod8_datasci::predict_bgbb(
                &fit.params,
                spend.params,
                &summary,
                &options,
            )?)
        })
        .await?;
        mod8_datasci::write_bgbb_predictions_csv(&mut out, &predictions)?;
    } else {
        let input = load(&request).await?;
        let label = request.source.label();
        let predictions = blocking(move || {
            let points = input.summary.points();
            let fit = PurchaseModel::fit(kind, &points).with_context(|| label.clone())?;
            let spend = GammaGamma::fit(&points).with_context(|| label)?;
            warn_spend(&spend);
            Ok(fit.model.predict_all(
                spend.params,
                &input.summary,
                options.horizon_weeks(),
                &options,
            )?)
        })
        .await?;
        mod8_datasci::write_predictions_csv(&mut out, &predictions)?;
    }
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    lock.write_all(&out)?;
    lock.flush()?;
    Ok(())
}

/// Write the charts into `out`, each as SVG and PNG ([`ClvChartSet`]), and list the files on
/// stdout: the probability-alive and expected-purchases matrices of the model; for a
/// transaction log the segment distribution (heuristic segments as of the calibration end)
/// and, with a holdout end and BG/NBD, calibration vs holdout purchases; and the distribution
/// of predicted CLV over `options`' horizon. BG/BB has no charts (an error says so).
///
/// Only the purchase model is required: when the spend model cannot be fitted (all amounts
/// zero, all the same, q ≤ 1) the CLV distribution is left out with a warning and the other
/// charts are still written.
///
/// # Errors
///
/// Unreadable input, bad rows, a holdout end not after the calibration end, a fit that did
/// not converge, invalid `options`, or a directory or chart that cannot be written.
pub async fn plot(request: ClvRequest, options: ClvOptions, out: &Path) -> anyhow::Result<()> {
    let kind = request.kind();
    if kind == PurchaseModelKind::BgBb {
        anyhow::bail!("mod8 clv plot draws the continuous-time models (bgnbd, pareto-nbd, mbgnbd); BG/BB has no charts yet");
    }
    let input = load(&request).await?;
    let label = request.source.label();
    let out = out.to_path_buf();
    let written = blocking(move || {
        let points = input.summary.points();
        let fit = PurchaseModel::fit(kind, &points).with_context(|| label.clone())?;
        let (segments, holdout) = match &input.log {
            None => (None, None),
            Some(log) => {
                let segments = InsightsGenerator::default()
                    .report_transactions(&log.transactions, log.calibration_end)?;
                let holdout = match (log.holdout, fit.model) {
                    (Some(period), PurchaseModel::BgNbd(params)) => {
                        let bgnbd = mod8_datasci::BgNbdFit {
                            params,
                            log_likelihood: fit.log_likelihood,
                            customers: fit.customers,
                            distinct_histories: 0,
                            iterations: fit.iterations,
                        };
                        Some(HoldoutEvaluation::of_fit(
                            &bgnbd,
                            &log.transactions,
                            period,
                            HOLDOUT_LAST_BUCKET,
                        )?)
                    }
                    (Some(_), _) => {
                        eprintln!(
                            "note: the calibration-vs-holdout chart is drawn for BG/NBD only"
                        );
                        None
                    }
                    (None, _) => None,
                };
                (Some(segments), holdout)
            }
        };
        let predictions = match GammaGamma::fit(&points) {
            Ok(spend) if spend.params.has_finite_mean() => Some(fit.model.predict_all(
                spend.params,
                &input.summary,
                options.horizon_weeks(),
                &options,
            )?),
            Ok(spend) => {
                eprintln!(
                    "warning: no CLV distribution chart: {}",
                    mod8_datasci::Error::InfiniteMeanSpend { q: spend.params.q }
                );
                None
            }
            Err(e) => {
                eprintln!("warning: no CLV distribution chart: {e}");
                None
            }
        };
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        let mut charts = ClvChartSet::for_model(fit.model, &input.summary);
        if let Some(report) = &segments {
            charts = charts.with_segments(report);
        }
        if let Some(evaluation) = &holdout {
            charts = charts.with_holdout(evaluation);
        }
        if let Some(predictions) = &predictions {
            charts = charts.with_clv_distribution(predictions, options);
        }
        charts
            .render(&out, ChartFormat::available())
            .with_context(|| label)
    })
    .await?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}

/// One model's row of `mod8 clv compare`.
#[derive(Debug, Clone, Serialize)]
pub struct ComparisonRow {
    /// `bgnbd`, `pareto-nbd`, `mbgnbd` or `bgbb`.
    pub model: PurchaseModelKind,
    /// Free parameters, k.
    pub parameters: usize,
    /// The fitted parameters by name (absent when the fit failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimates: Option<Map<String, Value>>,
    /// Total log-likelihood (absent when the fit failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_likelihood: Option<f64>,
    /// 2k − 2 ln L.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aic: Option<f64>,
    /// k ln n − 2 ln L, n = customers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bic: Option<f64>,
    /// Holdout error, with `--holdout-end`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holdout: Option<HoldoutError>,
    /// Why the model has no figures (a fit that did not converge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `mod8 clv compare`'s result.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Customers every model was fitted on.
    pub customers: usize,
    /// One row per model that applies to the input.
    pub models: Vec<ComparisonRow>,
}

impl Comparison {
    /// The aligned text table: model, k, log-likelihood, AIC, BIC and, when any row has one,
    /// holdout MAE and RMSE.
    pub fn to_table(&self) -> String {
        let with_holdout = self.models.iter().any(|r| r.holdout.is_some());
        let mut out = format!("{} customers\n", self.customers);
        out.push_str(&format!(
            "{:<12} {:>2} {:>16} {:>16} {:>16}",
            "model", "k", "log_likelihood", "AIC", "BIC"
        ));
        if with_holdout {
            out.push_str(&format!(" {:>12} {:>12}", "holdout_MAE", "holdout_RMSE"));
        }
        out.push('\n');
        let cell = |v: Option<f64>, width: usize| match v {
            Some(v) => format!("{v:>width$.4}"),
            None => format!("{:>width$}", "-"),
        };
        for r in &self.models {
            out.push_str(&format!(
                "{:<12} {:>2} {} {} {}",
                r.model.as_str(),
                r.parameters,
                cell(r.log_likelihood, 16),
                cell(r.aic, 16),
                cell(r.bic, 16)
            ));
            if with_holdout {
                out.push_str(&format!(
                    " {} {}",
                    cell(r.holdout.map(|h| h.mean_absolute_error), 12),
                    cell(r.holdout.map(|h| h.root_mean_squared_error), 12)
                ));
            }
            if let Some(e) = &r.error {
                out.push_str(&format!("  ({e})"));
            }
            out.push('\n');
        }
        out
    }
}

/// A fitted model's parameters by name, log-likelihood and holdout error.
type Fitted = (Vec<(&'static str, f64)>, f64, Option<HoldoutError>);

fn row(
    model: PurchaseModelKind,
    customers: usize,
    fitted: anyhow::Result<Fitted>,
) -> ComparisonRow {
    let k = model.parameter_count();
    match fitted {
        Ok((params, ll, holdout)) => ComparisonRow {
            model,
            parameters: k,
            estimates: Some(
                params
                    .into_iter()
                    .map(|(n, v)| (n.to_owned(), json!(v)))
                    .collect(),
            ),
            log_likelihood: Some(ll),
            aic: Some(mod8_datasci::aic(ll, k)),
            bic: Some(mod8_datasci::bic(ll, k, customers)),
            holdout,
            error: None,
        },
        Err(e) => ComparisonRow {
            model,
            parameters: k,
            estimates: None,
            log_likelihood: None,
            aic: None,
            bic: None,
            holdout: None,
            error: Some(format!("{e:#}")),
        },
    }
}

/// Fits every purchase model that applies to the input and compares them: on weekly
/// histories (a transaction log, a summary, the database) BG/NBD, Pareto/NBD and MBG/NBD; on
/// opportunities (`--period-days`, or a BG/BB summary) BG/BB alone — likelihoods of different
/// data are not comparable, so the two kinds are never mixed. A model whose fit fails keeps
/// its row with the error. With a holdout end each row has the holdout MAE and RMSE.
///
/// # Errors
///
/// Unreadable input or bad rows; `--model` is not an option of `compare`.
pub async fn compare(request: ClvRequest) -> anyhow::Result<Comparison> {
    let discrete = request.period_days.is_some()
        || match &request.source {
            ClvSource::Summary { path } => {
                let mut header = String::new();
                std::io::BufRead::read_line(&mut open(path)?, &mut header)?;
                header.split(',').any(|c| c.trim() == "n_periods")
            }
            _ => false,
        };
    if discrete {
        let request = ClvRequest {
            model: Some(PurchaseModelKind::BgBb),
            ..request
        };
        let summary = load_bgbb(&request)?;
        let customers = summary.len();
        let fitted = blocking(move || {
            let fit = BgBb::fit(&summary.observations())?;
            let p = fit.params;
            Ok((
                vec![
                    ("alpha", p.alpha),
                    ("beta", p.beta),
                    ("gamma", p.gamma),
                    ("delta", p.delta),
                ],
                fit.log_likelihood,
                None,
            ))
        })
        .await;
        return Ok(Comparison {
            customers,
            models: vec![row(PurchaseModelKind::BgBb, customers, fitted)],
        });
    }
    let input = load(&request).await?;
    blocking(move || {
        let points = input.summary.points();
        let customers = points.len();
        let models = PurchaseModelKind::CONTINUOUS
            .into_iter()
            .map(|kind| {
                let fitted = PurchaseModel::fit(kind, &points)
                    .map_err(anyhow::Error::from)
                    .and_then(|fit| {
                        let holdout =
                            match input.log.as_ref().and_then(|l| l.holdout.map(|p| (l, p))) {
                                Some((log, period)) => Some(fit.model.holdout_error(
                                    &input.summary,
                                    &log.transactions,
                                    period,
                                )?),
                                None => None,
                            };
                        Ok((fit.model.parameters().to_vec(), fit.log_likelihood, holdout))
                    });
                row(kind, customers, fitted)
            })
            .collect();
        Ok(Comparison { customers, models })
    })
    .await
}
