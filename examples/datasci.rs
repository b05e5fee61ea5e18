//! mod8-datasci on a realistic synthetic customer base: profiles and segments with both model
//! tiers, a BG/NBD + Gamma-Gamma fit with a calibration/holdout check, predictions,
//! recommendations, the insights report and SVG charts.
//!
//! `cargo run -p mod8-examples --example datasci [-- OUT_DIR]` (charts go to OUT_DIR, default
//! `<temp>/mod8-datasci-charts`). Pure computation: no services needed.

use std::path::PathBuf;

use mod8_datasci::simulate::{
    simulate_transactions, synthetic_catalog, synthetic_customers, SimulationParams,
};
use mod8_datasci::{
    evaluate_holdout, AnalyticsEngine, BgNbd, ClvFit, ClvOptions, GammaGamma, InsightsGenerator,
    NaiveDate, PredictionKind, Predictor, RecommendationEngine, RfmSummary,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("mod8-datasci-charts"));
    let today = NaiveDate::from_ymd_opt(2024, 6, 30).ok_or("bad date")?;

    // 1. A shop: 500 products in 12 categories, 20,000 customers with activity and purchases.
    let catalog = synthetic_catalog(500, 12, 7);
    let customers = synthetic_customers(20_000, &catalog, today, 11);
    let purchases: usize = customers.iter().map(|c| c.purchases.len()).sum();
    println!(
        "customer base: {} customers, {} purchases, {} products",
        customers.len(),
        purchases,
        catalog.len()
    );

    // 2. Transaction history for the probabilistic tier: fit on a calibration period, check
    //    the predictions on the holdout period that follows.
    let params = SimulationParams {
        bgnbd: BgNbd::new(0.25, 4.8, 0.72, 2.16)?,
        gamma_gamma: GammaGamma::new(6.3, 3.6, 15.0)?,
        customers: 20_000,
        min_age_weeks: 0.0,
        max_age_weeks: 0.0,
        seed: 3,
    };
    let start = NaiveDate::from_ymd_opt(2023, 1, 1).ok_or("bad date")?;
    let calibration_end = NaiveDate::from_ymd_opt(2023, 9, 30).ok_or("bad date")?;
    let transactions = simulate_transactions(&params, start, 84, today)?;
    let summary = RfmSummary::from_transactions(&transactions, calibration_end)?;
    let fit = ClvFit::fit(&summary)?;
    println!(
        "\nclv fit (calibration to {calibration_end}): {}",
        fit.report().to_json()
    );
    for w in fit.warnings() {
        println!("  warning: {w}");
    }
    let holdout = evaluate_holdout(&transactions, calibration_end, today, 7)?;
    println!(
        "holdout {:.0} weeks: predicted {:.0} purchases, actual {:.0} (MAE {:.2} per customer)",
        holdout.holdout_weeks,
        holdout.predicted_total,
        holdout.actual_total,
        holdout.mean_absolute_error
    );
    for b in &holdout.buckets {
        println!(
            "  frequency {}{:<2} {:>6} customers  actual {:>5.2}  predicted {:>5.2}",
            b.frequency,
            if b.and_above { "+" } else { "" },
            b.customers,
            b.actual_mean,
            b.predicted_mean
        );
    }
    let model = fit.model()?;
    let predictions = model.predict_all(&summary, 52.0, &ClvOptions::default())?;
    let mut best: Vec<_> = predictions.iter().collect();
    best.sort_by(|a, b| b.clv.total_cmp(&a.clv));
    println!("top customers by 12-month CLV:");
    for p in best.iter().take(3) {
        println!(
            "  {}: x={} P(alive)={:.2} → {:.2} in a year, {:.1} purchases, CLV {:.2}",
            p.customer_id,
            p.frequency,
            p.p_alive,
            p.p_alive_at_horizon,
            p.expected_purchases,
            p.clv
        );
    }

    // 3. Profiles with each tier; the report from the heuristic one.
    for engine in [
        AnalyticsEngine::heuristic(),
        AnalyticsEngine::probabilistic(model),
    ] {
        let profiles = customers
            .iter()
            .map(|c| engine.profile_customer(c, today))
            .collect::<Result<Vec<_>, _>>()?;
        let report = InsightsGenerator::default().report(&profiles);
        println!("\n[{} tier]\n{}", engine.model().name(), report.to_text());
        if engine.model().name() == "heuristic" {
            let chart = mod8_datasci::render_segment_chart(&out_dir, &report)?;
            println!("segment chart: {}", chart.display());
        }
    }

    // 4. Predictions and recommendations for a few customers.
    let recommendations =
        RecommendationEngine::build(&catalog, &customers, today, Default::default())?;
    let manager =
        Predictor::new(AnalyticsEngine::heuristic()).with_recommendations(recommendations, 3);
    for customer in customers.iter().filter(|c| !c.purchases.is_empty()).take(3) {
        println!(
            "\n{} ({} purchases):",
            customer.user_id,
            customer.purchases.len()
        );
        for kind in [
            PredictionKind::Churn,
            PredictionKind::LifetimeValue,
            PredictionKind::NextPurchase,
            PredictionKind::Recommendation,
        ] {
            let p = manager.predict(kind, customer, today)?;
            println!("  {kind:?}: {} (confidence {:.2})", p.value, p.confidence);
        }
    }

    // 5. The model charts.
    for file in mod8_datasci::render_clv_charts(&out_dir, &fit.bgnbd.params, &summary)? {
        println!("chart: {}", file.display());
    }
    Ok(())
}
