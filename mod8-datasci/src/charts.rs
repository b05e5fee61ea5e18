//! Charts with plotters: segment distribution, P(alive) and expected purchases by frequency
//! and recency, calibration vs holdout purchases and the distribution of predicted CLV, as SVG,
//! or PNG by the file extension.
//!
//! PNG needs plotters to rasterise text itself. Its `ttf` font engine needs the system's
//! fontconfig/freetype, so the `png` feature (default) uses the pure-Rust `ab_glyph` engine
//! with DejaVu Sans from the `dejavu` crate, registered as plotters' `"sans-serif"` on first
//! use. Without that feature `.png` paths are refused with [`Error::Unsupported`] (plotters'
//! fallback engine cannot draw glyphs).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use chrono::NaiveDate;

use serde::{Deserialize, Serialize};

use crate::bgnbd::BgNbd;
use crate::clv::{ClvOptions, CustomerPrediction, HoldoutEvaluation};
use crate::error::{Error, Result};
use crate::insights::{InsightsGenerator, SegmentReport};
use crate::purchase::PurchaseModel;
use crate::rfm::{Rfm, RfmSummary};
use crate::transactions::Transaction;

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::backend("plotters", e.to_string())
}

/// The image format of a chart file, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Svg,
    #[cfg(feature = "png")]
    Png,
}

/// A chart file format, for the chart sets that write one file per format
/// ([`ClvChartSet::render`]); the single-chart functions pick the format by the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChartFormat {
    /// SVG, always available.
    Svg,
    /// PNG, with the `png` feature (refused with [`Error::Unsupported`] without it).
    Png,
}

impl ChartFormat {
    /// The file extension, without the dot: `"svg"` or `"png"`.
    pub fn extension(self) -> &'static str {
        match self {
            ChartFormat::Svg => "svg",
            ChartFormat::Png => "png",
        }
    }

    /// Every format this build can write: SVG, and PNG with the `png` feature.
    pub fn available() -> &'static [ChartFormat] {
        if cfg!(feature = "png") {
            &[ChartFormat::Svg, ChartFormat::Png]
        } else {
            &[ChartFormat::Svg]
        }
    }
}

fn format_of(path: &Path) -> Result<Format> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("svg") {
        return Ok(Format::Svg);
    }
    #[cfg(feature = "png")]
    if ext.eq_ignore_ascii_case("png") {
        return Ok(Format::Png);
    }
    let supported = if cfg!(feature = "png") {
        "SVG and PNG only"
    } else {
        "SVG only: the `png` feature is off"
    };
    Err(Error::unsupported(
        format!("writing a .{ext} chart ({supported})"),
        "plotters",
    ))
}

/// With `ab_glyph`, plotters looks every font family up in its own table, for SVG text layout
/// too, so the bundled font must be registered before anything is drawn.
#[cfg(feature = "png")]
fn register_fonts() -> Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(plot_error(
            "the bundled DejaVu Sans font could not be loaded",
        ))
    }
}

#[cfg(not(feature = "png"))]
fn register_fonts() -> Result<()> {
    Ok(())
}

/// Runs `$draw(root)` on an SVG or PNG drawing area of `$size` for `$path`.
macro_rules! render {
    ($path:expr, $size:expr, $draw:expr) => {{
        let path: &Path = $path;
        let format = format_of(path)?;
        register_fonts()?;
        match format {
            Format::Svg => $draw(SVGBackend::new(path, $size).into_drawing_area()),
            #[cfg(feature = "png")]
            Format::Png => $draw(BitMapBackend::new(path, $size).into_drawing_area()),
        }
    }};
}

/// A colour for `v` in [0, 1]: dark blue → teal → yellow (viridis-like, readable in print).
fn colour(v: f64) -> RGBColor {
    let stops = [
        (68.0, 1.0, 84.0),
        (33.0, 145.0, 140.0),
        (253.0, 231.0, 37.0),
    ];
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (i, t) = if v < 0.5 {
        (0, v * 2.0)
    } else {
        (1, (v - 0.5) * 2.0)
    };
    let (a, b) = (stops[i], stops[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * t).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Bar chart of users per segment (labels carry the share) to `path` (`.svg`, or `.png` with
/// the `png` feature).
///
/// # Errors
///
/// [`Error::Unsupported`] for another extension; [`Error::Backend`] when drawing or writing
/// fails.
pub fn render_segment_distribution(path: &Path, report: &SegmentReport) -> Result<()> {
    render!(path, (800, 500), |root| draw_segment_distribution(
        root, report
    ))
}

fn draw_segment_distribution<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    report: &SegmentReport,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(plot_error)?;
    let max = report
        .segments
        .iter()
        .map(|s| s.users)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let names: Vec<String> = report
        .segments
        .iter()
        .map(|s| format!("{} ({:.1}%)", s.segment, 100.0 * s.share))
        .collect();
    let n = names.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Users per segment ({} users)", report.total_users),
            ("sans-serif", 24),
        )
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..n - 0.5, 0f64..max * 1.1)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(names.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("users")
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(report.segments.iter().enumerate().map(|(i, s)| {
            let x = i as f64;
            Rectangle::new(
                [(x - 0.35, 0.0), (x + 0.35, s.users as f64)],
                colour(i as f64 / 3.0).filled(),
            )
        }))
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn heatmap(
    path: &Path,
    title: &str,
    max_frequency: u32,
    max_t: f64,
    value: impl Fn(u32, f64) -> Result<f64>,
) -> Result<()> {
    format_of(path)?;
    if max_frequency > 1000 {
        return Err(Error::validation(
            "max_frequency",
            format!("chart frequency axis is limited to 1000, got {max_frequency}"),
        ));
    }
    if !(max_t.is_finite() && max_t > 0.0) {
        return Err(Error::validation(
            "t_weeks",
            format!("chart needs a positive T, got {max_t}"),
        ));
    }
    let steps = 40usize;
    let dr = max_t / steps as f64;
    let mut cells = Vec::with_capacity((max_frequency as usize + 1) * steps);
    let mut top = 0.0f64;
    for f in 0..=max_frequency {
        for k in 0..steps {
            let recency = if f == 0 { 0.0 } else { (k as f64 + 0.5) * dr };
            let v = value(f, recency)?;
            top = top.max(v);
            cells.push((f, k, v));
        }
    }
    let top = if top > 0.0 { top } else { 1.0 };
    let grid = Heatmap {
        title,
        top,
        max_t,
        max_frequency,
        dr,
        cells: &cells,
    };
    render!(path, (900, 650), |root| draw_heatmap(root, &grid))
}

/// A computed heat map, ready to draw.
struct Heatmap<'a> {
    title: &'a str,
    top: f64,
    max_t: f64,
    max_frequency: u32,
    dr: f64,
    cells: &'a [(u32, usize, f64)],
}

fn draw_heatmap<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, grid: &Heatmap<'_>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let Heatmap {
        title,
        top,
        max_t,
        max_frequency,
        dr,
        cells,
    } = *grid;
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{title} (max {top:.3})"), ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..max_t, -0.5f64..max_frequency as f64 + 0.5)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("recency: weeks from first to last purchase")
        .y_desc("frequency: repeat purchases")
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(cells.iter().map(|&(f, k, v)| {
            let y = f as f64;
            let x0 = k as f64 * dr;
            Rectangle::new(
                [(x0, y - 0.5), (x0 + dr, y + 0.5)],
                colour(v / top).filled(),
            )
        }))
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// P(alive) of a customer aged `t_weeks` for every frequency `0..=max_frequency` and recency
/// in 40 steps over `(0, t_weeks)`, as a heat map (bright = likely alive).
///
/// # Errors
///
/// As [`render_segment_distribution`], plus [`Error::Validation`] for a non-positive `t_weeks`
/// or `max_frequency` above 1000.
pub fn render_probability_alive_matrix(
    path: &Path,
    model: &BgNbd,
    max_frequency: u32,
    t_weeks: f64,
) -> Result<()> {
    render_model_probability_alive_matrix(
        path,
        &PurchaseModel::BgNbd(*model),
        max_frequency,
        t_weeks,
    )
}

/// [`render_probability_alive_matrix`] for any continuous-time purchase model.
///
/// # Errors
///
/// As [`render_probability_alive_matrix`], plus the model's errors.
pub fn render_model_probability_alive_matrix(
    path: &Path,
    model: &PurchaseModel,
    max_frequency: u32,
    t_weeks: f64,
) -> Result<()> {
    heatmap(
        path,
        &format!("P(alive) of a customer aged {t_weeks:.1} weeks"),
        max_frequency,
        t_weeks,
        |f, recency| {
            model.p_alive(&Rfm {
                frequency: f,
                recency,
                t: t_weeks,
                monetary_value: 0.0,
            })
        },
    )
}

/// Expected purchases in the next `horizon_weeks` of a customer aged `t_weeks`, by frequency
/// and recency, as a heat map.
///
/// # Errors
///
/// As [`render_probability_alive_matrix`], plus [`Error::NotConverged`] from the model.
pub fn render_expected_purchases_matrix(
    path: &Path,
    model: &BgNbd,
    max_frequency: u32,
    t_weeks: f64,
    horizon_weeks: f64,
) -> Result<()> {
    render_model_expected_purchases_matrix(
        path,
        &PurchaseModel::BgNbd(*model),
        max_frequency,
        t_weeks,
        horizon_weeks,
    )
}

/// [`render_expected_purchases_matrix`] for any continuous-time purchase model.
///
/// # Errors
///
/// As [`render_expected_purchases_matrix`].
pub fn render_model_expected_purchases_matrix(
    path: &Path,
    model: &PurchaseModel,
    max_frequency: u32,
    t_weeks: f64,
    horizon_weeks: f64,
) -> Result<()> {
    heatmap(
        path,
        &format!(
            "Expected purchases in the next {horizon_weeks:.0} weeks (age {t_weeks:.1} weeks)"
        ),
        max_frequency,
        t_weeks,
        |f, recency| {
            model.expected_purchases(
                &Rfm {
                    frequency: f,
                    recency,
                    t: t_weeks,
                    monetary_value: 0.0,
                },
                horizon_weeks,
            )
        },
    )
}

/// The P(alive) and expected-purchases matrices of `model`, as [`ClvChartSet`] draws them:
/// `probability_alive.svg` and `expected_purchases.svg` (next 52 weeks) into `dir` (created if
/// missing), with T = the oldest customer's age and frequencies up to the 99th percentile of
/// the summary (at least 5). Returns the files written.
///
/// # Errors
///
/// [`Error::Backend`] (`"io"`) when the directory cannot be created; as the single charts.
pub fn render_clv_charts(dir: &Path, model: &BgNbd, summary: &RfmSummary) -> Result<Vec<PathBuf>> {
    ClvChartSet::new(model, summary).render(dir, &[ChartFormat::Svg])
}

/// Weeks ahead in the expected-purchases matrix of [`ClvChartSet`].
const MATRIX_HORIZON_WEEKS: f64 = 52.0;

/// The matrix axes for a summary: T = the oldest customer's age (at least 1 week), frequencies
/// up to the 99th percentile (clamped to 5..=1000).
fn matrix_axes(summary: &RfmSummary) -> (u32, f64) {
    let t = summary
        .customers
        .iter()
        .map(|c| c.rfm.t)
        .fold(0.0, f64::max)
        .max(1.0);
    let mut freqs: Vec<u32> = summary.customers.iter().map(|c| c.rfm.frequency).collect();
    freqs.sort_unstable();
    let p99 = freqs
        .get(freqs.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or(0);
    (p99.clamp(5, 1000), t)
}

/// The charts `mod8 clv plot` writes, each in every format asked for, as `dir/{name}.{ext}`:
///
/// | file | chart | needs |
/// |---|---|---|
/// | `probability_alive` | P(alive) by frequency and recency ([`render_probability_alive_matrix`]) | the BG/NBD model and the summary it was fitted on |
/// | `expected_purchases` | expected purchases in the next 52 weeks, by frequency and recency ([`render_expected_purchases_matrix`]) | same |
/// | `segments` | users per heuristic segment ([`render_segment_distribution`]) | [`ClvChartSet::with_segments`] |
/// | `calibration_holdout` | actual vs predicted holdout purchases per calibration frequency ([`render_calibration_holdout`]) | [`ClvChartSet::with_holdout`] |
/// | `clv_distribution` | histogram of predicted CLV ([`render_clv_distribution`]) | [`ClvChartSet::with_clv_distribution`] |
///
/// The matrices use T = the oldest customer's age and frequencies up to the 99th percentile of
/// the summary (at least 5).
///
/// ```
/// use mod8_datasci::{read_summary, BgNbd, ChartFormat, ClvChartSet};
/// let summary = read_summary(
///     "customer_id,frequency,recency,T,monetary_value\nc1,2,30.43,38.86,22.35\nc2,0,0,38.86,0\n"
///         .as_bytes(),
/// )?;
/// let model = BgNbd::new(0.24, 4.41, 0.79, 2.43)?;
/// let dir = std::env::temp_dir().join("mod8-datasci-doc-chart-set");
/// let written = ClvChartSet::new(&model, &summary).render(&dir, &[ChartFormat::Svg])?;
/// assert_eq!(written.len(), 2);
/// assert!(written[0].ends_with("probability_alive.svg"));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), mod8_datasci::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ClvChartSet<'a> {
    model: PurchaseModel,
    summary: &'a RfmSummary,
    segments: Option<&'a SegmentReport>,
    holdout: Option<&'a HoldoutEvaluation>,
    predictions: Option<(&'a [CustomerPrediction], ClvOptions)>,
}

impl<'a> ClvChartSet<'a> {
    /// The two BG/NBD matrices of `model`, with axes from `summary`.
    pub fn new(model: &'a BgNbd, summary: &'a RfmSummary) -> Self {
        Self::for_model(PurchaseModel::BgNbd(*model), summary)
    }

    /// The two matrices of any continuous-time purchase model (BG/NBD, Pareto/NBD, MBG/NBD),
    /// with axes from `summary`.
    pub fn for_model(model: PurchaseModel, summary: &'a RfmSummary) -> Self {
        ClvChartSet {
            model,
            summary,
            segments: None,
            holdout: None,
            predictions: None,
        }
    }

    /// Adds the segment distribution (`segments`).
    pub fn with_segments(mut self, report: &'a SegmentReport) -> Self {
        self.segments = Some(report);
        self
    }

    /// Adds the calibration-vs-holdout chart (`calibration_holdout`).
    pub fn with_holdout(mut self, evaluation: &'a HoldoutEvaluation) -> Self {
        self.holdout = Some(evaluation);
        self
    }

    /// Adds the distribution of predicted CLV (`clv_distribution`); `options` are the ones the
    /// predictions were made with (the caption states the horizon and discount rate).
    pub fn with_clv_distribution(
        mut self,
        predictions: &'a [CustomerPrediction],
        options: ClvOptions,
    ) -> Self {
        self.predictions = Some((predictions, options));
        self
    }

    /// Writes every chart of the set in every format of `formats` into `dir` (created if
    /// missing), chart by chart in the order of the table above; returns the files written.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] (`"io"`) when the directory cannot be created;
    /// [`Error::Unsupported`] for PNG without the `png` feature; as the single charts.
    pub fn render(&self, dir: &Path, formats: &[ChartFormat]) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(Error::io)?;
        let (max_f, t) = matrix_axes(self.summary);
        let mut written = Vec::new();
        let mut each = |name: &str, draw: &dyn Fn(&Path) -> Result<()>| -> Result<()> {
            for format in formats {
                let path = dir.join(format!("{name}.{}", format.extension()));
                draw(&path)?;
                written.push(path);
            }
            Ok(())
        };
        each("probability_alive", &|path| {
            render_model_probability_alive_matrix(path, &self.model, max_f, t)
        })?;
        each("expected_purchases", &|path| {
            render_model_expected_purchases_matrix(
                path,
                &self.model,
                max_f,
                t,
                MATRIX_HORIZON_WEEKS,
            )
        })?;
        if let Some(report) = self.segments {
            each("segments", &|path| {
                render_segment_distribution(path, report)
            })?;
        }
        if let Some(evaluation) = self.holdout {
            each("calibration_holdout", &|path| {
                render_calibration_holdout(path, evaluation)
            })?;
        }
        if let Some((predictions, options)) = self.predictions {
            each("clv_distribution", &|path| {
                render_clv_distribution(path, predictions, &options)
            })?;
        }
        Ok(written)
    }
}

/// Mean actual and predicted holdout purchases per calibration frequency (the last bucket
/// holds that frequency and above), as two lines, with the totals, MAE and RMSE in the caption:
/// lifetimes' `plot_calibration_purchases_vs_holdout_purchases`. Empty buckets are left out.
///
/// # Errors
///
/// As [`render_segment_distribution`], plus [`Error::EmptyInput`] when no bucket has customers.
pub fn render_calibration_holdout(path: &Path, evaluation: &HoldoutEvaluation) -> Result<()> {
    format_of(path)?;
    let points: Vec<(f64, f64, f64)> = evaluation
        .buckets
        .iter()
        .filter(|b| b.customers > 0)
        .map(|b| (b.frequency as f64, b.actual_mean, b.predicted_mean))
        .collect();
    if points.is_empty() {
        return Err(Error::EmptyInput {
            what: "holdout evaluation has no customers to chart".into(),
        });
    }
    render!(path, (900, 600), |root| draw_calibration_holdout(
        root, evaluation, &points
    ))
}

fn draw_calibration_holdout<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    evaluation: &HoldoutEvaluation,
    points: &[(f64, f64, f64)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(plot_error)?;
    let last = evaluation.buckets.len().saturating_sub(1) as f64;
    let top = points
        .iter()
        .map(|p| p.1.max(p.2))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(0.1);
    let last_label = evaluation.buckets.last().map(|b| b.frequency).unwrap_or(0);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Holdout purchases: actual {:.0} vs predicted {:.1} (MAE {:.3}, RMSE {:.3})",
                evaluation.actual_total,
                evaluation.predicted_total,
                evaluation.mean_absolute_error,
                evaluation.root_mean_squared_error
            ),
            ("sans-serif", 22),
        )
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..last + 0.5, 0f64..top * 1.1)
        .map_err(plot_error)?;
    let x_desc = format!(
        "purchases in the calibration period (to {})",
        evaluation.calibration_end
    );
    let y_desc = format!(
        "mean purchases in the holdout ({:.1} weeks to {})",
        evaluation.holdout_weeks, evaluation.holdout_end
    );
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(evaluation.buckets.len().max(1))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() > 1e-6 || i < 0.0 {
                String::new()
            } else if i as u32 == last_label {
                format!("{last_label}+")
            } else {
                format!("{i:.0}")
            }
        })
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(plot_error)?;
    let actual = colour(0.0);
    let predicted = colour(0.6);
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|p| (p.0, p.1)),
            actual.stroke_width(2),
        ))
        .map_err(plot_error)?
        .label("actual")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], actual.stroke_width(2)));
    chart
        .draw_series(
            points
                .iter()
                .map(|p| Circle::new((p.0, p.1), 4, actual.filled())),
        )
        .map_err(plot_error)?;
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|p| (p.0, p.2)),
            predicted.stroke_width(2),
        ))
        .map_err(plot_error)?
        .label("predicted (BG/NBD)")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], predicted.stroke_width(2)));
    chart
        .draw_series(
            points
                .iter()
                .map(|p| TriangleMarker::new((p.0, p.2), 5, predicted.filled())),
        )
        .map_err(plot_error)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Bars in the CLV histogram.
const CLV_BINS: usize = 30;

/// Histogram of the predicted CLV of `predictions` (customers per CLV band) up to the 99th
/// percentile; the last bar also holds the customers above it (the caption says from where).
/// The caption states the customers, the median and mean CLV and the horizon of `options`.
///
/// # Errors
///
/// As [`render_segment_distribution`], plus [`Error::EmptyInput`] when no prediction has a
/// finite CLV.
pub fn render_clv_distribution(
    path: &Path,
    predictions: &[CustomerPrediction],
    options: &ClvOptions,
) -> Result<()> {
    format_of(path)?;
    let mut values: Vec<f64> = predictions
        .iter()
        .map(|p| p.clv)
        .filter(|v| v.is_finite())
        .collect();
    if values.is_empty() {
        return Err(Error::EmptyInput {
            what: "no predicted CLV to chart".into(),
        });
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    };
    let mean = values.iter().sum::<f64>() / n as f64;
    let lowest = values[0].min(0.0);
    let p99 = values[(n - 1) * 99 / 100];
    let cap = if p99 > lowest {
        p99
    } else {
        values[n - 1].max(lowest + 1.0)
    };
    let width = (cap - lowest) / CLV_BINS as f64;
    let mut counts = [0usize; CLV_BINS];
    for v in &values {
        let k = (((v - lowest) / width).floor().max(0.0) as usize).min(CLV_BINS - 1);
        counts[k] += 1;
    }
    let above = values.iter().filter(|v| **v > cap).count();
    let histogram = ClvHistogram {
        counts,
        lowest,
        width,
        cap,
        above,
        caption: format!(
            "Predicted CLV over {} x {} weeks ({n} customers, median {median:.2}, mean {mean:.2})",
            options.periods, options.period_weeks
        ),
        discount: options.discount_rate,
    };
    render!(path, (900, 600), |root| draw_clv_distribution(
        root, &histogram
    ))
}

/// A computed CLV histogram, ready to draw.
struct ClvHistogram {
    counts: [usize; CLV_BINS],
    lowest: f64,
    width: f64,
    cap: f64,
    above: usize,
    caption: String,
    discount: f64,
}

fn draw_clv_distribution<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    h: &ClvHistogram,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(plot_error)?;
    let top = h.counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(&h.caption, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(h.lowest..h.cap, 0f64..top * 1.1)
        .map_err(plot_error)?;
    let x_desc = if h.above > 0 {
        format!(
            "CLV, discounted {}% per period (last bar: {} customers above {:.2} included)",
            100.0 * h.discount,
            h.above,
            h.cap
        )
    } else {
        format!("CLV, discounted {}% per period", 100.0 * h.discount)
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc(x_desc)
        .y_desc("customers")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(h.counts.iter().enumerate().map(|(k, &c)| {
            let x0 = h.lowest + k as f64 * h.width;
            Rectangle::new([(x0, 0.0), (x0 + h.width, c as f64)], colour(0.35).filled())
        }))
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Everything `mod8 clv plot --out DIR` draws for a transaction history, into `dir`:
/// `probability_alive.svg` and `expected_purchases.svg` ([`render_clv_charts`], from a BG/NBD
/// fit on the transactions up to `calibration_end`) and `segments.svg` (the heuristic
/// segmentation of every customer as of `calibration_end`). Returns the files written.
///
/// Only BG/NBD is fitted: none of the charts needs a spend model, so a history whose spend
/// cannot be fitted (all amounts zero, every amount the same) still plots.
///
/// # Errors
///
/// As [`RfmSummary::from_transactions`], [`BgNbd::fit`] and [`render_clv_charts`].
pub fn render_transaction_charts(
    dir: &Path,
    transactions: &[Transaction],
    calibration_end: NaiveDate,
) -> Result<Vec<PathBuf>> {
    let summary = RfmSummary::from_transactions(transactions, calibration_end)?;
    let fit = BgNbd::fit(&summary.points())?;
    let report = InsightsGenerator::default().report_transactions(transactions, calibration_end)?;
    ClvChartSet::new(&fit.params, &summary)
        .with_segments(&report)
        .render(dir, &[ChartFormat::Svg])
}

/// [`render_segment_distribution`] into `dir/segments.svg`; returns the path.
///
/// # Errors
///
/// As [`render_clv_charts`].
pub fn render_segment_chart(dir: &Path, report: &SegmentReport) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(Error::io)?;
    let path = dir.join("segments.svg");
    render_segment_distribution(&path, report)?;
    Ok(path)
}
