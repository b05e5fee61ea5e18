//! BG/NBD and Gamma-Gamma fits checked against the lifetimes package on CDNOW, and against
//! parameters used to simulate a customer base.

#![allow(clippy::unwrap_used)] // tests may unwrap

use chrono::NaiveDate;
use mod8_datasci::simulate::{simulate_customers, simulate_transactions, SimulationParams};
use mod8_datasci::{BgNbd, ClvFit, Error, GammaGamma, HoldoutEvaluation, HoldoutPeriod, Rfm};

fn cdnow() -> Vec<Rfm> {
    let text = include_str!("data/cdnow_summary.csv");
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            Rfm::new(
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4].parse().unwrap(),
            )
            .unwrap()
        })
        .collect()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

#[test]
fn cdnow_fit_matches_lifetimes() {
    let data = cdnow();
    assert_eq!(data.len(), 2357);
    let fit = ClvFit::fit_points(&data).unwrap();
    let bg = fit.bgnbd.params;
    // lifetimes 0.11.3 BetaGeoFitter on the same file.
    let reference = BgNbd::new(
        0.2425929282798216,
        4.4135322652718125,
        0.7928859664406493,
        2.42575238262571,
    )
    .unwrap();
    for (ours, theirs) in [
        (bg.r, reference.r),
        (bg.alpha, reference.alpha),
        (bg.a, reference.a),
        (bg.b, reference.b),
    ] {
        assert!(
            rel(ours, theirs) < 1e-5,
            "BG/NBD {bg:?} vs lifetimes {reference:?}"
        );
    }
    // Total log-likelihood in weeks, lifetimes' objective evaluated unscaled: −9582.4256.
    assert!(
        (fit.bgnbd.log_likelihood - -9582.425560567366).abs() < 1e-6,
        "{}",
        fit.bgnbd.log_likelihood
    );

    let gg = fit.gamma_gamma.params;
    let reference =
        GammaGamma::new(6.248802496079201, 3.74458846092242, 15.447748064915702).unwrap();
    assert_eq!(fit.gamma_gamma.customers, 946);
    assert_eq!(fit.gamma_gamma.excluded_no_repeat, 2357 - 946);
    for (ours, theirs) in [
        (gg.p, reference.p),
        (gg.q, reference.q),
        (gg.gamma, reference.gamma),
    ] {
        assert!(
            rel(ours, theirs) < 1e-5,
            "Gamma-Gamma {gg:?} vs lifetimes {reference:?}"
        );
    }
    assert!(fit.model().is_ok());
    assert!(fit.warnings().is_empty());
}

#[test]
fn recovers_simulated_parameters() {
    // 30,000 customers aged 30–52 weeks drawn from known parameters. Tolerances: 10 % on r
    // and α, 20 % on a and b (the dropout parameters are the least identified: only
    // repeat-buyers' silence informs them), 20 % on the Gamma-Gamma parameters (p·γ/(q−1),
    // the mean spend, within 3 %).
    let truth_bg = BgNbd::new(0.6, 4.0, 0.9, 3.0).unwrap();
    let truth_gg = GammaGamma::new(5.0, 4.0, 20.0).unwrap();
    let data = simulate_customers(&SimulationParams {
        bgnbd: truth_bg,
        gamma_gamma: truth_gg,
        customers: 30_000,
        min_age_weeks: 30.0,
        max_age_weeks: 52.0,
        seed: 42,
    })
    .unwrap();
    let fit = ClvFit::fit_points(&data).unwrap();
    let bg = fit.bgnbd.params;
    assert!(rel(bg.r, truth_bg.r) < 0.10, "{bg:?}");
    assert!(rel(bg.alpha, truth_bg.alpha) < 0.10, "{bg:?}");
    assert!(rel(bg.a, truth_bg.a) < 0.20, "{bg:?}");
    assert!(rel(bg.b, truth_bg.b) < 0.20, "{bg:?}");
    let gg = fit.gamma_gamma.params;
    assert!(rel(gg.p, truth_gg.p) < 0.20, "{gg:?}");
    assert!(rel(gg.q, truth_gg.q) < 0.20, "{gg:?}");
    assert!(rel(gg.gamma, truth_gg.gamma) < 0.20, "{gg:?}");
    let mean = gg.p * gg.gamma / (gg.q - 1.0);
    assert!(rel(mean, 5.0 * 20.0 / 3.0) < 0.03, "mean spend {mean}");
}

#[test]
fn csv_pipeline_and_holdout() {
    let params = SimulationParams {
        bgnbd: BgNbd::new(0.5, 5.0, 0.8, 2.5).unwrap(),
        gamma_gamma: GammaGamma::new(6.0, 4.0, 15.0).unwrap(),
        customers: 3_000,
        min_age_weeks: 0.0,
        max_age_weeks: 0.0,
        seed: 7,
    };
    let start = NaiveDate::from_ymd_opt(2023, 1, 1).unwrap();
    let calibration_end = NaiveDate::from_ymd_opt(2023, 9, 30).unwrap();
    let holdout_end = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    let tx = simulate_transactions(&params, start, 84, holdout_end).unwrap();

    // Write the calibration part as CSV and run the `clv fit` pipeline on it.
    let mut csv = String::from("customer_id,date,amount\n");
    for t in tx.iter().filter(|t| t.date <= calibration_end) {
        csv.push_str(&format!("{},{},{}\n", t.customer_id, t.date, t.amount));
    }
    let (summary, fit) = ClvFit::from_csv(csv.as_bytes(), calibration_end).unwrap();
    let report = fit.report();
    assert_eq!(report.customers, summary.len());
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["customers"].as_u64().unwrap() as usize, summary.len());
    for k in ["r", "alpha", "a", "b", "log_likelihood"] {
        assert!(json["bgnbd"][k].is_f64(), "{k}");
    }
    // Transactions after the calibration end are held out by the fit pipeline: the whole
    // log gives the same summary and fit as its calibration part.
    let mut whole = String::from("customer_id,date,amount\n");
    for t in &tx {
        whole.push_str(&format!("{},{},{}\n", t.customer_id, t.date, t.amount));
    }
    assert!(tx.iter().any(|t| t.date > calibration_end));
    let (whole_summary, whole_fit) = ClvFit::from_csv(whole.as_bytes(), calibration_end).unwrap();
    assert_eq!(whole_summary, summary);
    assert_eq!(whole_fit, fit);
    // Bad rows in the held-out part are still errors.
    let mut late = csv.clone();
    late.push_str("c000001,2023-10-01,-5\n");
    let err = ClvFit::from_csv(late.as_bytes(), calibration_end).unwrap_err();
    assert!(err.to_string().contains("field `amount`"), "{err}");

    // Holdout: the totals agree within 10 % and every populated bucket within 35 %.
    let eval = mod8_datasci::evaluate_holdout(&tx, calibration_end, holdout_end, 7).unwrap();
    // The same evaluation of the fit already made (no second fit).
    let period = HoldoutPeriod::new(calibration_end, holdout_end).unwrap();
    assert_eq!(
        HoldoutEvaluation::of_fit(&fit.bgnbd, &tx, period, 7).unwrap(),
        eval
    );
    assert!(eval.root_mean_squared_error >= eval.mean_absolute_error);
    assert!(eval.mean_absolute_error > 0.0);
    assert!(
        rel(eval.predicted_total, eval.actual_total) < 0.10,
        "{eval:#?}"
    );
    for b in eval.buckets.iter().filter(|b| b.customers >= 50) {
        assert!(
            (b.predicted_mean - b.actual_mean).abs() < 0.35 * b.actual_mean.max(0.5),
            "{b:?}"
        );
    }
}

/// The full CDNOW base (23,570 customers) as lifetimes summarised it, in weeks.
fn cdnow_full() -> Vec<Rfm> {
    include_str!("data/cdnow_full_summary.csv")
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

#[test]
fn full_cdnow_fit_matches_lifetimes() {
    let data = cdnow_full();
    assert_eq!(data.len(), 23_570);
    let fit = ClvFit::fit_points(&data).unwrap();
    let bg = fit.bgnbd.params;
    let reference = [
        0.25162401142410373,
        4.78894517032702,
        0.7234330357287728,
        2.1610869813722062,
    ];
    for (ours, theirs) in [bg.r, bg.alpha, bg.a, bg.b].into_iter().zip(reference) {
        assert!(
            rel(ours, theirs) < 1e-5,
            "{bg:?} vs lifetimes {reference:?}"
        );
    }
    assert!((fit.bgnbd.log_likelihood - -95368.44393316093).abs() < 1e-2);
    assert_eq!(fit.gamma_gamma.customers, 9_450);
    assert_eq!(fit.gamma_gamma.excluded_non_positive_spend, 1);
    assert_eq!(fit.warnings().len(), 1);
    let gg = fit.gamma_gamma.params;
    let reference = [6.275358592842394, 3.6244502103901337, 14.983688961931101];
    for (ours, theirs) in [gg.p, gg.q, gg.gamma].into_iter().zip(reference) {
        assert!(
            rel(ours, theirs) < 1e-5,
            "{gg:?} vs lifetimes {reference:?}"
        );
    }
}

fn simulated(bgnbd: BgNbd, gamma_gamma: GammaGamma, seed: u64) -> Vec<Rfm> {
    simulate_customers(&SimulationParams {
        bgnbd,
        gamma_gamma,
        customers: 2_000,
        min_age_weeks: 20.0,
        max_age_weeks: 52.0,
        seed,
    })
    .unwrap()
}

fn assert_not_converged<T: std::fmt::Debug>(
    result: mod8_datasci::Result<T>,
    model: &str,
    reason: &str,
) {
    match result {
        Err(Error::NotConverged {
            model: m,
            reason: r,
        }) => {
            assert_eq!(m, model);
            assert!(r.contains(reason), "{r}");
            let message = Error::NotConverged {
                model: m,
                reason: r,
            }
            .to_string();
            assert!(message.contains("fit did not converge"), "{message}");
        }
        other => panic!("expected {model} NotConverged ({reason}), got {other:?}"),
    }
}

#[test]
fn customers_who_never_drop_out_give_no_bgnbd_fit() {
    // Simulated with p ~ Beta(a, 1e9): nobody drops out, so the dropout distribution is not
    // identified. Depending on the sample the fit runs off with a → 0 (b → ∞), or with a and b
    // growing together (a point mass at a tiny dropout probability); both are refused.
    let spend = GammaGamma::new(6.0, 4.0, 15.0).unwrap();
    for (a, seed, reason) in [
        (1.0, 1, "parameter a runs off"),
        (2.0, 2, "parameter a runs off"),
        (0.5, 1, "parameters a and b run off"),
    ] {
        let data = simulated(BgNbd::new(0.5, 5.0, a, 1e9).unwrap(), spend, seed);
        assert_not_converged(BgNbd::fit(&data), "BG/NBD", reason);
        assert_not_converged(ClvFit::fit_points(&data), "BG/NBD", reason);
    }
}

#[test]
fn identical_spend_gives_no_gamma_gamma_fit() {
    let mut data = simulated(
        BgNbd::new(0.5, 5.0, 0.8, 2.5).unwrap(),
        GammaGamma::new(6.0, 4.0, 15.0).unwrap(),
        5,
    );
    for d in data.iter_mut().filter(|d| d.frequency > 0) {
        d.monetary_value = 25.0;
    }
    // BG/NBD is unaffected; Gamma-Gamma's q runs to the box.
    assert!(BgNbd::fit(&data).is_ok());
    assert_not_converged(
        GammaGamma::fit(&data),
        "Gamma-Gamma",
        "parameter q ran to its bound",
    );
    assert_not_converged(ClvFit::fit_points(&data), "Gamma-Gamma", "parameter q");
}

#[test]
fn heavy_tailed_spend_is_fitted_but_reported_and_refused() {
    // ν ~ Gamma(q = 0.9, γ): the population mean spend is infinite. The fit finds q < 1,
    // warns about it, and refuses to value customers with it.
    let data = simulated(
        BgNbd::new(0.5, 5.0, 0.8, 2.5).unwrap(),
        GammaGamma::new(2.0, 0.9, 15.0).unwrap(),
        5,
    );
    let fit = ClvFit::fit_points(&data).unwrap();
    let q = fit.gamma_gamma.params.q;
    assert!(q < 1.0 && rel(q, 0.9) < 0.15, "q = {q}");
    let warnings = fit.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with(&format!("Gamma-Gamma q = {q:.4} ≤ 1")),
        "{warnings:?}"
    );
    assert!(matches!(fit.model(), Err(Error::InfiniteMeanSpend { .. })));
}

/// A well-formed SVG document (plotters writes one element per line; checked loosely).
fn assert_svg(path: &std::path::Path) -> String {
    let svg = std::fs::read_to_string(path).unwrap();
    assert!(svg.trim_start().starts_with("<svg"), "{}", path.display());
    assert!(svg.trim_end().ends_with("</svg>"), "{}", path.display());
    assert!(!svg.contains("NaN"), "{}", path.display());
    svg
}

#[test]
fn purchase_counts_and_charts_need_no_spend_model() {
    let params = SimulationParams {
        bgnbd: BgNbd::new(0.5, 5.0, 0.8, 2.5).unwrap(),
        gamma_gamma: GammaGamma::new(6.0, 4.0, 15.0).unwrap(),
        customers: 3_000,
        min_age_weeks: 0.0,
        max_age_weeks: 0.0,
        seed: 7,
    };
    let start = NaiveDate::from_ymd_opt(2023, 1, 1).unwrap();
    let calibration_end = NaiveDate::from_ymd_opt(2023, 9, 30).unwrap();
    let holdout_end = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    let tx = simulate_transactions(&params, start, 84, holdout_end).unwrap();
    // The same purchases, all free: nothing for Gamma-Gamma to fit.
    let free: Vec<_> = tx
        .iter()
        .map(|t| mod8_datasci::Transaction {
            amount: 0.0,
            ..t.clone()
        })
        .collect();
    let summary = mod8_datasci::RfmSummary::from_transactions(&free, calibration_end).unwrap();
    assert!(matches!(
        ClvFit::fit(&summary),
        Err(Error::EmptyInput { .. })
    ));

    // The holdout evaluation only counts purchases: same result as with the real amounts.
    let paid = mod8_datasci::evaluate_holdout(&tx, calibration_end, holdout_end, 7).unwrap();
    let unpaid = mod8_datasci::evaluate_holdout(&free, calibration_end, holdout_end, 7).unwrap();
    assert_eq!(paid, unpaid);
    assert_eq!(unpaid.customers, summary.len());

    // The charts too: the two BG/NBD matrices and the segment distribution.
    let dir = tempfile::tempdir().unwrap();
    let calibration: Vec<_> = free
        .into_iter()
        .filter(|t| t.date <= calibration_end)
        .collect();
    let written =
        mod8_datasci::render_transaction_charts(dir.path(), &calibration, calibration_end).unwrap();
    let names: Vec<_> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "probability_alive.svg",
            "expected_purchases.svg",
            "segments.svg"
        ]
    );
    for path in &written {
        assert_svg(path);
    }
    let segments = assert_svg(&written[2]);
    assert!(
        segments.contains(&format!("Users per segment ({} users)", summary.len())),
        "segments chart does not count every customer"
    );
}
