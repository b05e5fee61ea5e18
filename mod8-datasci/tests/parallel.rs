//! Spreading the work over threads (feature `parallel`) changes no result: predictions equal
//! the one-by-one path bit for bit, and a fit gives the same bits on one thread or several.

#![allow(clippy::unwrap_used, clippy::float_cmp)] // tests may unwrap and compare exactly

use chrono::{Days, NaiveDate};
use mod8_datasci::simulate::{simulate_customers, SimulationParams};
use mod8_datasci::{
    BgNbd, ClvFit, ClvModel, ClvOptions, CustomerPrediction, CustomerSummary, Error, GammaGamma,
    Rfm, RfmSummary,
};

fn end() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 30).unwrap()
}

/// `n` simulated customers; with `whole_days` their recency and age are rounded to days (few
/// distinct histories, as from dated orders), otherwise nearly every history is distinct.
fn base(n: usize, whole_days: bool) -> RfmSummary {
    let points = simulate_customers(&SimulationParams {
        bgnbd: BgNbd::new(0.25, 4.8, 0.72, 2.16).unwrap(),
        gamma_gamma: GammaGamma::new(6.3, 3.6, 15.0).unwrap(),
        customers: n,
        min_age_weeks: 1.0,
        max_age_weeks: 80.0,
        seed: 42,
    })
    .unwrap();
    let customers = points
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let rfm = if whole_days {
                let t = (p.t * 7.0).round();
                Rfm::new(
                    p.frequency,
                    (p.recency * 7.0).round().min(t) / 7.0,
                    t / 7.0,
                    p.monetary_value,
                )
                .unwrap()
            } else {
                p
            };
            CustomerSummary {
                customer_id: format!("c{i:07}"),
                first_purchase: Some(end() - Days::new((rfm.t * 7.0) as u64)),
                rfm,
            }
        })
        .collect();
    RfmSummary::from_customers(end(), customers).unwrap()
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// Every field, bit for bit (NaN-safe, and -0.0 ≠ 0.0).
fn same_bits(a: &CustomerPrediction, b: &CustomerPrediction) -> bool {
    let bits = |p: &CustomerPrediction| {
        [
            p.recency,
            p.t,
            p.monetary_value,
            p.p_alive,
            p.p_alive_at_horizon,
            p.expected_purchases,
            p.expected_average_spend,
            p.clv,
        ]
        .map(f64::to_bits)
    };
    a.customer_id == b.customer_id && a.frequency == b.frequency && bits(a) == bits(b)
}

#[test]
fn predictions_are_the_one_by_one_predictions_bit_for_bit() {
    let summary = base(40_000, true);
    let fit = ClvFit::fit(&summary).unwrap();
    let model = fit.model().unwrap();
    let options = ClvOptions::default();
    let horizon = 26.0;
    let one_by_one: Vec<CustomerPrediction> = summary
        .customers
        .iter()
        .map(|c| model.predict(c, horizon, &options).unwrap())
        .collect();
    for threads in [1, 2, 3] {
        let all = pool(threads).install(|| model.predict_all(&summary, horizon, &options).unwrap());
        assert_eq!(all.len(), one_by_one.len());
        assert!(
            all.iter().zip(&one_by_one).all(|(a, b)| same_bits(a, b)),
            "{threads} threads"
        );
    }
    // On rayon's global pool, as callers run it.
    let all = model.predict_all(&summary, horizon, &options).unwrap();
    assert!(all.iter().zip(&one_by_one).all(|(a, b)| same_bits(a, b)));
    // A prediction's figures are those of the models' own functions, bit for bit (it
    // evaluates the horizon and the lifetime value's horizons together).
    for (c, p) in summary.customers.iter().zip(&all).step_by(97) {
        let bg = &model.bgnbd;
        assert_eq!(p.p_alive.to_bits(), bg.p_alive(&c.rfm).to_bits());
        let at_horizon = bg.p_alive_after(&c.rfm, horizon).unwrap();
        assert_eq!(p.p_alive_at_horizon.to_bits(), at_horizon.to_bits());
        let expected = bg.expected_purchases(&c.rfm, horizon).unwrap();
        assert_eq!(p.expected_purchases.to_bits(), expected.to_bits());
        let clv = model.clv(&c.rfm, &options).unwrap();
        assert_eq!(p.clv.to_bits(), clv.to_bits());
        // The lifetime value's formula spelled out, one horizon at a time.
        let spend = model.expected_average_spend(&c.rfm).unwrap();
        let (mut by_hand, mut previous) = (0.0, 0.0);
        for k in 1..=options.periods {
            let cumulative = bg
                .expected_purchases(&c.rfm, k as f64 * options.period_weeks)
                .unwrap();
            by_hand +=
                spend * (cumulative - previous) / (1.0 + options.discount_rate).powi(k as i32);
            previous = cumulative;
        }
        assert_eq!(p.clv.to_bits(), by_hand.max(0.0).to_bits());
        let spend = model.expected_average_spend(&c.rfm).unwrap();
        assert_eq!(p.expected_average_spend.to_bits(), spend.to_bits());
    }
}

#[test]
fn a_failing_prediction_reports_the_first_failure() {
    let summary = base(5_000, true);
    let model = ClvModel::new(
        BgNbd::new(0.25, 4.8, 0.72, 2.16).unwrap(),
        GammaGamma::new(6.3, 3.6, 15.0).unwrap(),
    )
    .unwrap();
    let bad = ClvOptions {
        period_weeks: -1.0,
        ..ClvOptions::default()
    };
    for threads in [1, 2] {
        let err = pool(threads)
            .install(|| model.predict_all(&summary, 10.0, &bad))
            .unwrap_err();
        assert!(
            matches!(&err, Error::Validation { field, .. } if field == "period_weeks"),
            "{err:?}"
        );
        let err = pool(threads)
            .install(|| model.predict_all(&summary, -1.0, &ClvOptions::default()))
            .unwrap_err();
        assert!(
            matches!(&err, Error::Validation { field, .. } if field == "t"),
            "{err:?}"
        );
    }
}

#[test]
fn fits_do_not_depend_on_the_number_of_threads() {
    // Continuous histories: every customer is its own group, so the likelihood sums run over
    // several chunks.
    let summary = base(30_000, false);
    let on_one = pool(1).install(|| ClvFit::fit(&summary).unwrap());
    assert!(on_one.bgnbd.distinct_histories > 20_000);
    assert!(on_one.gamma_gamma.customers > 5_000);
    for threads in [2, 3] {
        let on_many = pool(threads).install(|| ClvFit::fit(&summary).unwrap());
        assert_eq!(on_one, on_many, "{threads} threads");
        assert_eq!(
            on_one.bgnbd.log_likelihood.to_bits(),
            on_many.bgnbd.log_likelihood.to_bits()
        );
    }
    // The chunked sum is the plain per-customer sum up to rounding.
    let params = on_one.bgnbd.params;
    let plain = params.total_log_likelihood(&summary.points());
    let rel = (on_one.bgnbd.log_likelihood - plain).abs() / plain.abs();
    assert!(
        rel < 1e-12,
        "{} vs {plain}: {rel:e}",
        on_one.bgnbd.log_likelihood
    );
    let gg = on_one.gamma_gamma.params;
    let plain: f64 = summary
        .points()
        .iter()
        .filter(|p| p.frequency > 0 && p.monetary_value > 0.0)
        .map(|p| gg.log_likelihood(p.frequency, p.monetary_value))
        .sum();
    let rel = (on_one.gamma_gamma.log_likelihood - plain).abs() / plain.abs();
    assert!(
        rel < 1e-12,
        "{} vs {plain}: {rel:e}",
        on_one.gamma_gamma.log_likelihood
    );
}
