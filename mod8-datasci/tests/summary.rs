//! `mod8 clv predict --summary`'s path (read the summary, fit BG/NBD + Gamma-Gamma, predict
//! with the default CLV options) checked customer by customer against lifetimes 0.11.3 on the
//! CDNOW summaries: P(alive), expected purchases over the horizon, expected average spend and
//! CLV agree to 1e-6 relative. The references (about 200 customers each, the extremes included)
//! and lifetimes' parameters are written by `data/lifetimes_predictions.py`; the formulas alone,
//! at lifetimes' parameters, agree far closer.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::HashMap;

use mod8_datasci::{
    read_summary, BgNbd, ClvFit, ClvModel, ClvOptions, CustomerPrediction, GammaGamma, RfmSummary,
};

/// lifetimes' bundled `cdnow_customers_summary_with_transactions.csv` (ID,x,t_x,T,zbar, weeks)
/// with mod8's summary header.
fn bundled_summary_csv() -> String {
    let text = include_str!("data/cdnow_summary.csv");
    let (header, rows) = text.split_once('\n').unwrap();
    assert_eq!(header.trim_end(), "ID,x,t_x,T,zbar"); // CRLF line ends, kept
    format!("customer_id,frequency,recency,T,monetary_value\n{rows}")
}

/// The full CDNOW summary (frequency,recency_days,T_days,monetary_value) in weeks, ids = row
/// numbers, with mod8's summary header.
fn full_summary_csv() -> String {
    let mut out = String::from("customer_id,frequency,recency,T,monetary_value\n");
    for (i, line) in include_str!("data/cdnow_full_summary.csv")
        .lines()
        .skip(1)
        .enumerate()
    {
        let f: Vec<&str> = line.split(',').collect();
        let weeks = |s: &str| s.parse::<f64>().unwrap() / 7.0;
        out.push_str(&format!(
            "{},{},{:?},{:?},{}\n",
            i + 1,
            f[0],
            weeks(f[1]),
            weeks(f[2]),
            f[3]
        ));
    }
    out
}

/// Predictions of `model` for every customer of the summary, by id, with the default options
/// (12 periods of 4.345 weeks at 1 %), as `mod8 clv predict` makes them.
fn predict(summary: &RfmSummary, model: &ClvModel) -> HashMap<String, CustomerPrediction> {
    let options = ClvOptions::default();
    model
        .predict_all(summary, options.horizon_weeks(), &options)
        .unwrap()
        .into_iter()
        .map(|p| (p.customer_id.clone(), p))
        .collect()
}

/// lifetimes' fitted parameters of `dataset` (`bundled` or `full`) as a model.
fn lifetimes_model(dataset: &str) -> (usize, ClvModel) {
    let json: serde_json::Value =
        serde_json::from_str(include_str!("data/lifetimes_parameters.json")).unwrap();
    let p = &json[dataset];
    let f = |model: &str, k: &str| p[model][k].as_f64().unwrap();
    let model = ClvModel::new(
        BgNbd::new(
            f("bgnbd", "r"),
            f("bgnbd", "alpha"),
            f("bgnbd", "a"),
            f("bgnbd", "b"),
        )
        .unwrap(),
        GammaGamma::new(
            f("gamma_gamma", "p"),
            f("gamma_gamma", "q"),
            f("gamma_gamma", "gamma"),
        )
        .unwrap(),
    )
    .unwrap();
    (p["customers"].as_u64().unwrap() as usize, model)
}

/// One lifetimes reference row.
#[derive(Debug, serde::Deserialize)]
struct Reference {
    customer_id: String,
    frequency: u32,
    recency: f64,
    #[serde(rename = "T")]
    t: f64,
    monetary_value: f64,
    p_alive: f64,
    expected_purchases: f64,
    expected_average_spend: f64,
    clv: f64,
}

fn references(csv: &str) -> Vec<Reference> {
    csv::Reader::from_reader(csv.as_bytes())
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn rel(ours: f64, theirs: f64) -> f64 {
    if ours == theirs {
        0.0
    } else {
        (ours - theirs).abs() / theirs.abs()
    }
}

/// Compares every reference customer at `tolerance`; returns the worst relative difference
/// per output (P(alive), expected purchases, expected average spend, CLV), printed for the
/// record (`cargo test -- --nocapture`).
fn compare(
    name: &str,
    summary: &RfmSummary,
    ours: &HashMap<String, CustomerPrediction>,
    reference_csv: &str,
    tolerance: f64,
) -> [f64; 4] {
    let references = references(reference_csv);
    assert!(references.len() >= 200, "{}", references.len());
    let mut worst = [0.0f64; 4];
    for r in &references {
        let p = &ours[&r.customer_id];
        // Same customer, same history (the reference file repeats the summary's values).
        assert_eq!(p.frequency, r.frequency, "{r:?}");
        assert!(rel(p.recency, r.recency) < 1e-12, "{r:?}");
        assert!(rel(p.t, r.t) < 1e-12, "{r:?}");
        assert!(rel(p.monetary_value, r.monetary_value) < 1e-12, "{r:?}");
        for (k, (label, ours, theirs)) in [
            ("p_alive", p.p_alive, r.p_alive),
            (
                "expected_purchases",
                p.expected_purchases,
                r.expected_purchases,
            ),
            (
                "expected_average_spend",
                p.expected_average_spend,
                r.expected_average_spend,
            ),
            ("clv", p.clv, r.clv),
        ]
        .into_iter()
        .enumerate()
        {
            let d = rel(ours, theirs);
            assert!(
                d < tolerance,
                "{name} customer {}: {label} {ours} vs lifetimes {theirs} (relative {d:e})",
                r.customer_id
            );
            worst[k] = worst[k].max(d);
        }
    }
    // The subset has the extremes: the top frequency, zero-frequency customers, the oldest.
    let max_frequency = summary.customers.iter().map(|c| c.rfm.frequency).max();
    assert_eq!(references.iter().map(|r| r.frequency).max(), max_frequency);
    assert!(references.iter().filter(|r| r.frequency == 0).count() >= 5);
    let oldest = summary
        .customers
        .iter()
        .map(|c| c.rfm.t)
        .fold(0.0, f64::max);
    assert!(references.iter().any(|r| r.t == oldest));
    println!(
        "{name}: {} customers, worst relative difference: p_alive {:e}, expected_purchases {:e}, expected_average_spend {:e}, clv {:e}",
        references.len(),
        worst[0],
        worst[1],
        worst[2],
        worst[3]
    );
    worst
}

/// The whole `predict --summary` path on `summary_csv` against lifetimes' references, and
/// mod8's formulas at lifetimes' own parameters.
fn check(dataset: &str, summary_csv: &str, reference_csv: &str) {
    let summary = read_summary(summary_csv.as_bytes()).unwrap();
    let (customers, lifetimes) = lifetimes_model(dataset);
    assert_eq!(summary.len(), customers);

    // mod8's fit: the same maximum-likelihood parameters.
    let fit = ClvFit::fit(&summary).unwrap();
    let ours = fit.model().unwrap();
    let pairs = [
        (ours.bgnbd.r, lifetimes.bgnbd.r),
        (ours.bgnbd.alpha, lifetimes.bgnbd.alpha),
        (ours.bgnbd.a, lifetimes.bgnbd.a),
        (ours.bgnbd.b, lifetimes.bgnbd.b),
        (ours.gamma_gamma.p, lifetimes.gamma_gamma.p),
        (ours.gamma_gamma.q, lifetimes.gamma_gamma.q),
        (ours.gamma_gamma.gamma, lifetimes.gamma_gamma.gamma),
    ];
    let worst_parameter = pairs.iter().map(|&(a, b)| rel(a, b)).fold(0.0, f64::max);
    assert!(
        worst_parameter < 1e-6,
        "{ours:?} vs lifetimes {lifetimes:?}"
    );
    println!("{dataset}: worst relative parameter difference {worst_parameter:e}");

    // End to end, as `mod8 clv predict --summary` computes them.
    compare(
        &format!("{dataset} (mod8 fit)"),
        &summary,
        &predict(&summary, &ours),
        reference_csv,
        1e-6,
    );
    // The formulas alone (P(alive), the hypergeometric expected purchases, spend, CLV).
    compare(
        &format!("{dataset} (lifetimes parameters)"),
        &summary,
        &predict(&summary, &lifetimes),
        reference_csv,
        1e-12,
    );
}

#[test]
fn bundled_cdnow_summary_predictions_match_lifetimes() {
    check(
        "bundled",
        &bundled_summary_csv(),
        include_str!("data/cdnow_lifetimes_predictions.csv"),
    );
}

#[test]
fn full_cdnow_summary_predictions_match_lifetimes() {
    check(
        "full",
        &full_summary_csv(),
        include_str!("data/cdnow_full_lifetimes_predictions.csv"),
    );
}
