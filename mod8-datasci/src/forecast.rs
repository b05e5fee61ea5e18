//! Lifetime-value predictions in two parts: the purchase forecast of a history (x, tₓ, T), which
//! BG/NBD alone decides, and what the customer's spend adds to it (expected spend per purchase,
//! discounted lifetime value).
//!
//! [`predict_all`] forecasts every distinct history once — customers summarised from dated
//! orders share histories a lot (every one-time buyer of the same day has the same one) — and
//! spreads both parts over rayon's threads (feature `parallel`). Every number is computed by the
//! same operations as for a single customer ([`predict`]), so the results are bit for bit those
//! of predicting the customers one by one.

use crate::clv::{ClvModel, ClvOptions, CustomerPrediction};
use crate::error::Result;
use crate::grouping::NumberMap;
use crate::parallel;
use crate::rfm::{CustomerSummary, Rfm, RfmSummary};

/// A history as a map key: frequency and the bits of recency and T.
type HistoryKey = (u32, u64, u64);

/// What BG/NBD says about one history.
struct Forecast {
    /// P(alive) at the calibration end.
    p_alive: f64,
    /// P(alive) at the horizon.
    p_alive_at_horizon: f64,
    /// Expected purchases up to the horizon.
    expected_purchases: f64,
    /// Expected purchases up to the end of each lifetime-value period, E[X(kΔ)], k = 1, 2, ….
    cumulative: Vec<f64>,
}

impl Forecast {
    /// The forecast of a (validated) history: P(alive) at the horizon first (which checks the
    /// horizon), then the expected purchases at the horizon and at the end of every period, all
    /// evaluated together.
    fn new(model: &ClvModel, rfm: &Rfm, horizon_weeks: f64, options: &ClvOptions) -> Result<Self> {
        let p_alive_at_horizon = model.bgnbd.p_alive_after(rfm, horizon_weeks)?;
        options.validate()?;
        let mut cumulative =
            expected_purchases_by_period(model, rfm, options, Some(horizon_weeks))?;
        // The horizon was evaluated last.
        let expected_purchases = cumulative.pop().unwrap_or(0.0);
        Ok(Forecast {
            p_alive: model.bgnbd.p_alive(rfm),
            p_alive_at_horizon,
            expected_purchases,
            cumulative,
        })
    }
}

/// E[X(kΔ)] at the end of every period k = 1..=`periods` of `options`, then at `extra` if
/// given, evaluated together (each value as `BgNbd::expected_purchases` gives it alone).
fn expected_purchases_by_period(
    model: &ClvModel,
    rfm: &Rfm,
    options: &ClvOptions,
    extra: Option<f64>,
) -> Result<Vec<f64>> {
    let mut horizons: Vec<f64> = (1..=options.periods)
        .map(|k| k as f64 * options.period_weeks)
        .collect();
    horizons.extend(extra);
    let mut values = vec![0.0; horizons.len()];
    model
        .bgnbd
        .expected_purchases_many(rfm, &horizons, &mut values)?;
    Ok(values)
}

/// (1 + d)ᵏ for k = 1..=`periods`: what the cash of period k is divided by.
fn discount_divisors(options: &ClvOptions) -> Vec<f64> {
    (1..=options.periods)
        .map(|k| (1.0 + options.discount_rate).powi(k as i32))
        .collect()
}

/// Σₖ spend · (E[X(kΔ)] − E[X((k−1)Δ)]) / (1+d)ᵏ, at least 0.
fn discounted(spend: f64, cumulative: &[f64], divisors: &[f64]) -> f64 {
    let mut total = 0.0;
    let mut previous = 0.0;
    for (&cumulative, &divisor) in cumulative.iter().zip(divisors) {
        total += spend * (cumulative - previous) / divisor;
        previous = cumulative;
    }
    total.max(0.0)
}

/// `ClvModel::clv`.
pub(crate) fn clv(model: &ClvModel, rfm: &Rfm, options: &ClvOptions) -> Result<f64> {
    options.validate()?;
    rfm.validate()?;
    let spend = model.expected_average_spend(rfm)?;
    let cumulative = expected_purchases_by_period(model, rfm, options, None)?;
    Ok(discounted(spend, &cumulative, &discount_divisors(options)))
}

/// The prediction for `customer` from the forecast of its history.
fn finish(
    model: &ClvModel,
    customer: &CustomerSummary,
    forecast: &Forecast,
    divisors: &[f64],
) -> Result<CustomerPrediction> {
    let rfm = &customer.rfm;
    let spend = model.expected_average_spend(rfm)?;
    Ok(CustomerPrediction {
        customer_id: customer.customer_id.clone(),
        frequency: rfm.frequency,
        recency: rfm.recency,
        t: rfm.t,
        monetary_value: rfm.monetary_value,
        p_alive: forecast.p_alive,
        p_alive_at_horizon: forecast.p_alive_at_horizon,
        expected_purchases: forecast.expected_purchases,
        expected_average_spend: spend,
        clv: discounted(spend, &forecast.cumulative, divisors),
    })
}

/// `ClvModel::predict`.
pub(crate) fn predict(
    model: &ClvModel,
    customer: &CustomerSummary,
    horizon_weeks: f64,
    options: &ClvOptions,
) -> Result<CustomerPrediction> {
    customer.rfm.validate()?;
    let forecast = Forecast::new(model, &customer.rfm, horizon_weeks, options)?;
    finish(model, customer, &forecast, &discount_divisors(options))
}

/// `ClvModel::predict_all`: each distinct history forecast once, customers finished from their
/// history's forecast, both spread over rayon's threads. When anything fails, the customers are
/// predicted one by one to report the first customer's error, as [`predict`] would.
pub(crate) fn predict_all(
    model: &ClvModel,
    summary: &RfmSummary,
    horizon_weeks: f64,
    options: &ClvOptions,
) -> Result<Vec<CustomerPrediction>> {
    let customers = &summary.customers;
    let shared = || -> Result<Vec<CustomerPrediction>> {
        // Histories in order of first appearance, and each customer's.
        let mut index: NumberMap<HistoryKey, usize> = NumberMap::default();
        let mut histories: Vec<&Rfm> = Vec::new();
        let mut history_of: Vec<(usize, &CustomerSummary)> = Vec::with_capacity(customers.len());
        for c in customers {
            c.rfm.validate()?;
            let key = (c.rfm.frequency, c.rfm.recency.to_bits(), c.rfm.t.to_bits());
            let h = *index.entry(key).or_insert_with(|| {
                histories.push(&c.rfm);
                histories.len() - 1
            });
            history_of.push((h, c));
        }
        drop(index);
        let forecasts = parallel::try_map(&histories, |rfm| {
            Forecast::new(model, rfm, horizon_weeks, options)
        })?;
        let divisors = discount_divisors(options);
        parallel::try_map(&history_of, |&(h, c)| {
            finish(model, c, &forecasts[h], &divisors)
        })
    };
    match shared() {
        Ok(predictions) => Ok(predictions),
        Err(_) => customers
            .iter()
            .map(|c| predict(model, c, horizon_weeks, options))
            .collect(),
    }
}
