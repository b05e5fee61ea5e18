//! Charts with plotters: segment distribution, P(alive) and expected purchases by frequency
//! and recency, as SVG, or PNG by the file extension.
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

use crate::activity::CustomerActivity;
use crate::bgnbd::BgNbd;
use crate::engine::AnalyticsEngine;
use crate::error::{Error, Result};
use crate::insights::{InsightsGenerator, SegmentReport};
use crate::rfm::{Rfm, RfmSummary};
use crate::transactions::{activity_by_customer, Transaction};

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
    heatmap(
        path,
        &format!("P(alive) of a customer aged {t_weeks:.1} weeks"),
        max_frequency,
        t_weeks,
        |f, recency| {
            Ok(model.p_alive(&Rfm {
                frequency: f,
                recency,
                t: t_weeks,
                monetary_value: 0.0,
            }))
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

/// The `mod8 clv plot --out DIR` set: `probability_alive.svg` and `expected_purchases.svg`
/// (next 52 weeks) into `dir` (created if missing), with T = the oldest customer's age and
/// frequencies up to the 99th percentile of the summary (at least 5). Returns the files written.
///
/// # Errors
///
/// [`Error::Backend`] (`"io"`) when the directory cannot be created; as the single charts.
pub fn render_clv_charts(dir: &Path, model: &BgNbd, summary: &RfmSummary) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(Error::io)?;
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
    let max_f = p99.clamp(5, 1000);
    let alive = dir.join("probability_alive.svg");
    render_probability_alive_matrix(&alive, model, max_f, t)?;
    let expected = dir.join("expected_purchases.svg");
    render_expected_purchases_matrix(&expected, model, max_f, t, 52.0)?;
    Ok(vec![alive, expected])
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
    let mut written = render_clv_charts(dir, &fit.params, &summary)?;
    let users: Vec<CustomerActivity> = activity_by_customer(transactions, calibration_end)
        .into_iter()
        .map(|(_, user)| user)
        .collect();
    let profiles = AnalyticsEngine::heuristic().profile_all(&users, calibration_end)?;
    let report = InsightsGenerator::default().report(&profiles);
    written.push(render_segment_chart(dir, &report)?);
    Ok(written)
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
