//! The engines end to end on a synthetic base: profiles → report, both tiers, the model
//! predictor, recommendations and the charts.

#![allow(clippy::unwrap_used)] // tests may unwrap

use chrono::NaiveDate;
use mod8_datasci::simulate::{synthetic_catalog, synthetic_customers};
use mod8_datasci::{
    AnalyticsEngine, BgNbd, ClvModel, GammaGamma, InsightsGenerator, PredictionKind,
    PredictionValue, Predictor, RecommendationEngine, Segment,
};

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 30).unwrap()
}

fn cdnow() -> ClvModel {
    ClvModel::new(
        BgNbd::new(0.2426, 4.4135, 0.7929, 2.4258).unwrap(),
        GammaGamma::new(6.2488, 3.7446, 15.4477).unwrap(),
    )
    .unwrap()
}

#[test]
fn synthetic_base_profiles_into_every_segment() {
    let catalog = synthetic_catalog(200, 8, 1);
    let customers = synthetic_customers(2_000, &catalog, as_of(), 2);
    for engine in [
        AnalyticsEngine::heuristic(),
        AnalyticsEngine::probabilistic(cdnow()),
    ] {
        let profiles: Vec<_> = customers
            .iter()
            .map(|c| engine.profile_customer(c, as_of()).unwrap())
            .collect();
        for s in Segment::ALL {
            assert!(
                profiles.iter().any(|p| p.segment == s),
                "{s} empty with {engine:?}"
            );
        }
        for p in &profiles {
            assert!((0.0..=1.0).contains(&p.churn_risk));
            assert!((0.0..=100.0).contains(&p.engagement));
            assert!(p.lifetime_value >= 0.0 && p.lifetime_value.is_finite());
        }
        let report = InsightsGenerator::default().report(&profiles);
        assert_eq!(report.total_users, 2_000);
        assert_eq!(
            report.segments.iter().map(|s| s.users).sum::<usize>(),
            2_000
        );
        assert!((report.segments.iter().map(|s| s.share).sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(report.segments.iter().all(|s| !s.insights.is_empty()));
        let text = report.to_text();
        for s in Segment::ALL {
            assert!(text.contains(s.as_str()));
        }
    }
}

#[test]
fn predictor_dispatches_every_kind() {
    let catalog = synthetic_catalog(100, 5, 3);
    let customers = synthetic_customers(500, &catalog, as_of(), 4);
    let recs =
        RecommendationEngine::build(&catalog, &customers, as_of(), Default::default()).unwrap();
    let predictor =
        Predictor::new(AnalyticsEngine::probabilistic(cdnow())).with_recommendations(recs, 5);
    let loyal = customers.iter().max_by_key(|c| c.purchases.len()).unwrap();
    for kind in [
        PredictionKind::Churn,
        PredictionKind::LifetimeValue,
        PredictionKind::NextPurchase,
        PredictionKind::Recommendation,
    ] {
        let p = predictor.predict(kind, loyal, as_of()).unwrap();
        assert_eq!(p.kind, kind);
        assert!((0.0..=1.0).contains(&p.confidence), "{p:?}");
        match (&p.value, kind) {
            (PredictionValue::Probability(v), PredictionKind::Churn) => {
                assert!((0.0..=1.0).contains(v))
            }
            (PredictionValue::Amount(v), PredictionKind::LifetimeValue) => assert!(*v > 0.0),
            (PredictionValue::Date(_), PredictionKind::NextPurchase) => {}
            (PredictionValue::Products(list), PredictionKind::Recommendation) => {
                assert_eq!(list.len(), 5);
                let bought: Vec<&str> = loyal
                    .purchases
                    .iter()
                    .map(|p| p.product_id.as_str())
                    .collect();
                assert!(list
                    .iter()
                    .all(|r| !bought.contains(&r.product_id.as_str())));
            }
            other => panic!("mismatched prediction {other:?}"),
        }
    }
    let json = serde_json::to_string(
        &predictor
            .predict(PredictionKind::Churn, loyal, as_of())
            .unwrap(),
    )
    .unwrap();
    assert!(json.contains("\"kind\":\"churn\""), "{json}");
}

#[cfg(feature = "charts")]
#[test]
fn charts_are_written_as_svg() {
    use mod8_datasci::simulate::{simulate_transactions, SimulationParams};
    use mod8_datasci::RfmSummary;

    let dir = tempfile::tempdir().unwrap();
    let params = SimulationParams {
        bgnbd: cdnow().bgnbd,
        gamma_gamma: cdnow().gamma_gamma,
        customers: 500,
        min_age_weeks: 0.0,
        max_age_weeks: 0.0,
        seed: 5,
    };
    let tx = simulate_transactions(
        &params,
        NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        60,
        as_of(),
    )
    .unwrap();
    let summary = RfmSummary::from_transactions(&tx, as_of()).unwrap();
    let files = mod8_datasci::render_clv_charts(dir.path(), &cdnow().bgnbd, &summary).unwrap();
    assert_eq!(files.len(), 2);
    for f in &files {
        let svg = std::fs::read_to_string(f).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<rect"),
            "{}",
            f.display()
        );
    }
    let catalog = synthetic_catalog(50, 4, 1);
    let customers = synthetic_customers(300, &catalog, as_of(), 1);
    let engine = AnalyticsEngine::heuristic();
    let profiles: Vec<_> = customers
        .iter()
        .map(|c| engine.profile_customer(c, as_of()).unwrap())
        .collect();
    let report = InsightsGenerator::default().report(&profiles);
    let seg = mod8_datasci::render_segment_chart(dir.path(), &report).unwrap();
    assert!(std::fs::read_to_string(seg).unwrap().contains("active"));
    let jpg = mod8_datasci::render_segment_distribution(&dir.path().join("x.jpg"), &report);
    assert!(matches!(jpg, Err(mod8_datasci::Error::Unsupported { .. })));
    let png = dir.path().join("x.png");
    let result = mod8_datasci::render_segment_distribution(&png, &report);
    if cfg!(feature = "png") {
        result.unwrap();
        assert_png_with_text(&png, (800, 500));
    } else {
        assert!(matches!(
            result,
            Err(mod8_datasci::Error::Unsupported { .. })
        ));
    }
}

#[cfg(feature = "charts")]
/// A PNG of `size` whose caption strip (the top 40 rows, white but for the title) has dark
/// pixels: the title was rasterised, so the font engine works.
fn assert_png_with_text(path: &std::path::Path, size: (u32, u32)) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{}",
        path.display()
    );
    let image = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8();
    assert_eq!(image.dimensions(), size);
    let dark = (0..size.0)
        .flat_map(|x| (0..40).map(move |y| (x, y)))
        .filter(|&(x, y)| image.get_pixel(x, y).0.iter().all(|&c| c < 128))
        .count();
    assert!(
        dark > 50,
        "{}: no title text ({dark} dark pixels)",
        path.display()
    );
}

#[cfg(feature = "png")]
#[test]
fn model_charts_render_as_png() {
    let dir = tempfile::tempdir().unwrap();
    let model = mod8_datasci::BgNbd::new(0.24, 4.4, 0.79, 2.4).unwrap();
    let alive = dir.path().join("alive.png");
    mod8_datasci::render_probability_alive_matrix(&alive, &model, 10, 39.0).unwrap();
    assert_png_with_text(&alive, (900, 650));
    let expected = dir.path().join("expected.png");
    mod8_datasci::render_expected_purchases_matrix(&expected, &model, 10, 39.0, 52.0).unwrap();
    assert_png_with_text(&expected, (900, 650));
    // SVG keeps working with the font engine on (it lays text out with the same font).
    let svg = dir.path().join("alive.svg");
    mod8_datasci::render_probability_alive_matrix(&svg, &model, 10, 39.0).unwrap();
    assert!(std::fs::read_to_string(&svg).unwrap().contains("P(alive)"));
}

#[cfg(feature = "charts")]
/// A simulated log that goes on half a year after [`as_of`], with its calibration summary.
fn log_with_holdout() -> (Vec<mod8_datasci::Transaction>, mod8_datasci::RfmSummary) {
    use mod8_datasci::simulate::{simulate_transactions, SimulationParams};
    let params = SimulationParams {
        bgnbd: cdnow().bgnbd,
        gamma_gamma: cdnow().gamma_gamma,
        customers: 800,
        min_age_weeks: 0.0,
        max_age_weeks: 0.0,
        seed: 9,
    };
    let tx = simulate_transactions(
        &params,
        NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        60,
        NaiveDate::from_ymd_opt(2024, 12, 31).unwrap(),
    )
    .unwrap();
    let summary = mod8_datasci::RfmSummary::from_transactions(&tx, as_of()).unwrap();
    (tx, summary)
}

#[cfg(feature = "png")]
#[test]
fn the_clv_chart_set_writes_every_chart_as_svg_and_png() {
    use mod8_datasci::{ChartFormat, ClvChartSet, ClvOptions, HoldoutEvaluation, HoldoutPeriod};

    let (tx, summary) = log_with_holdout();
    let model = cdnow();
    let fit = mod8_datasci::BgNbdFit {
        params: model.bgnbd,
        log_likelihood: -1.0,
        customers: summary.len(),
        distinct_histories: summary.len(),
        iterations: 0,
    };
    let period =
        HoldoutPeriod::new(as_of(), NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()).unwrap();
    let holdout = HoldoutEvaluation::of_fit(&fit, &tx, period, 7).unwrap();
    let options = ClvOptions::default();
    let predictions = model
        .predict_all(&summary, options.horizon_weeks(), &options)
        .unwrap();
    let segments = InsightsGenerator::default()
        .report_transactions(&tx, as_of())
        .unwrap();
    assert_eq!(segments.total_users, summary.len());

    let dir = tempfile::tempdir().unwrap();
    let written = ClvChartSet::new(&model.bgnbd, &summary)
        .with_segments(&segments)
        .with_holdout(&holdout)
        .with_clv_distribution(&predictions, options)
        .render(dir.path(), ChartFormat::available())
        .unwrap();
    let names: Vec<_> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "probability_alive.svg",
            "probability_alive.png",
            "expected_purchases.svg",
            "expected_purchases.png",
            "segments.svg",
            "segments.png",
            "calibration_holdout.svg",
            "calibration_holdout.png",
            "clv_distribution.svg",
            "clv_distribution.png",
        ]
    );
    for (path, size) in written.iter().skip(1).step_by(2).zip([
        (900, 650),
        (900, 650),
        (800, 500),
        (900, 600),
        (900, 600),
    ]) {
        assert_png_with_text(path, size);
    }
    let svg = |name: &str| {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(text.trim_start().starts_with("<svg"), "{name}");
        assert!(text.trim_end().ends_with("</svg>"), "{name}");
        assert!(!text.contains("NaN"), "{name}");
        text
    };
    let holdout_svg = svg("calibration_holdout.svg");
    assert!(holdout_svg.contains(&format!(
        "Holdout purchases: actual {:.0} vs predicted {:.1} (MAE {:.3}, RMSE {:.3})",
        holdout.actual_total,
        holdout.predicted_total,
        holdout.mean_absolute_error,
        holdout.root_mean_squared_error
    )));
    assert!(holdout_svg.contains("predicted (BG/NBD)") && holdout_svg.contains("7+"));
    // One line per series (actual, predicted), with a marker per non-empty bucket each.
    let populated = holdout.buckets.iter().filter(|b| b.customers > 0).count();
    assert!(populated >= 5, "{holdout:?}");
    assert_eq!(holdout_svg.matches("<circle").count(), populated);
    let mean = predictions.iter().map(|p| p.clv).sum::<f64>() / predictions.len() as f64;
    let clv_svg = svg("clv_distribution.svg");
    assert!(
        clv_svg.contains(&format!(
            "Predicted CLV over 12 x 4.345 weeks ({} customers, median ",
            predictions.len()
        )) && clv_svg.contains(&format!("mean {mean:.2})")),
        "{clv_svg}"
    );
    // 30 bars (plus the background and plot-area rectangles).
    assert!(clv_svg.matches("<rect").count() >= 30);
    assert!(svg("segments.svg").contains(&format!("Users per segment ({} users)", summary.len())));

    // The single charts: unknown extensions refused, nothing to draw is an empty input.
    let jpg = dir.path().join("x.jpg");
    assert!(matches!(
        mod8_datasci::render_clv_distribution(&jpg, &predictions, &options),
        Err(mod8_datasci::Error::Unsupported { .. })
    ));
    assert!(matches!(
        mod8_datasci::render_calibration_holdout(&jpg, &holdout),
        Err(mod8_datasci::Error::Unsupported { .. })
    ));
    let empty = dir.path().join("empty.svg");
    assert!(matches!(
        mod8_datasci::render_clv_distribution(&empty, &[], &options),
        Err(mod8_datasci::Error::EmptyInput { .. })
    ));
    let nobody = HoldoutEvaluation {
        buckets: holdout
            .buckets
            .iter()
            .map(|b| mod8_datasci::HoldoutBucket {
                customers: 0,
                ..b.clone()
            })
            .collect(),
        ..holdout.clone()
    };
    assert!(matches!(
        mod8_datasci::render_calibration_holdout(&empty, &nobody),
        Err(mod8_datasci::Error::EmptyInput { .. })
    ));
    assert!(!empty.exists());
}

#[cfg(feature = "charts")]
#[test]
fn svg_only_chart_sets_keep_their_files() {
    // `render_clv_charts` and `render_transaction_charts` write SVG only, as before.
    let (tx, summary) = log_with_holdout();
    let dir = tempfile::tempdir().unwrap();
    let files = mod8_datasci::render_clv_charts(dir.path(), &cdnow().bgnbd, &summary).unwrap();
    let set = mod8_datasci::ClvChartSet::new(&cdnow().bgnbd, &summary)
        .render(&dir.path().join("set"), &[mod8_datasci::ChartFormat::Svg])
        .unwrap();
    for (a, b) in files.iter().zip(&set) {
        assert_eq!(a.file_name(), b.file_name());
        assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    }
    let files = mod8_datasci::render_transaction_charts(dir.path(), &tx, as_of()).unwrap();
    let names: Vec<_> = files
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
    assert_eq!(
        mod8_datasci::ChartFormat::available().contains(&mod8_datasci::ChartFormat::Png),
        cfg!(feature = "png")
    );
}
