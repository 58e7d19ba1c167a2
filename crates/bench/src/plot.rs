//! The latency plot: percentile distributions (HdrHistogram style, x = percentile on a log scale
//! of 1/(1-q)) of the open-loop phases, raw vs gateway, as a PNG.
//!
//! Text needs a TrueType font; the plot uses the first of a few common system fonts and is
//! skipped (with a note in the report) when none is installed.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::{
    prelude::*,
    style::{FontStyle, register_font},
};

use crate::report::{Phase, Side};

const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// (legend, points, colour) of one curve.
type Series = (String, Vec<(f64, f64)>, RGBColor);

/// Registers a system font as "sans-serif"; false when none was found (also used by
/// redrec-eval's chart).
pub fn ensure_font() -> bool {
    static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        for path in FONTS {
            if let Ok(bytes) = std::fs::read(path) {
                // plotters keeps registered fonts for the life of the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// One colour per curve: blues for raw, reds for the gateway; darker at higher load.
fn color(side: Side, load: f64, writes: bool) -> (u8, u8, u8) {
    match (side, writes, load > 0.65) {
        (Side::Raw, false, false) => (31, 119, 180),
        (Side::Raw, false, true) => (8, 48, 107),
        (Side::Raw, true, _) => (23, 190, 207),
        (Side::Gateway, false, false) => (255, 127, 14),
        (Side::Gateway, false, true) => (214, 39, 40),
        (Side::Gateway, true, _) => (148, 103, 189),
    }
}

/// x coordinate of quantile q: log10(1 / (1 - q)), so 90% -> 1, 99% -> 2, 99.9% -> 3.
pub fn x_of(q: f64) -> f64 {
    (1.0 / (1.0 - q.min(0.99999))).log10()
}

/// Draws the percentile curves of the open-loop phases. Returns false when no font is installed.
pub fn latency_plot(phases: &[Phase], path: &Path) -> Result<bool> {
    if !ensure_font() {
        return Ok(false);
    }
    let series: Vec<Series> = phases
        .iter()
        .filter(|p| p.mode == "open" && p.run.latency.count > 0)
        .map(|p| {
            let (r, g, b) = color(p.side, p.load.unwrap_or(0.0), p.writes.is_some());
            (
                format!("{} {}", p.side.name(), p.label()),
                p.run
                    .latency
                    .curve
                    .iter()
                    .map(|&(q, ms)| (x_of(q), ms.max(0.001)))
                    .collect(),
                RGBColor(r, g, b),
            )
        })
        .collect();
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * 1.5;
    let y_min = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(f64::INFINITY, f64::min)
        .clamp(0.01, 1.0)
        / 1.5;
    let root = BitMapBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Latency by percentile (open loop, from intended send time)",
            ("sans-serif", 22),
        )
        .margin(15)
        .margin_right(40)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..4.0f64, (y_min..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(5)
        .x_label_formatter(&|x| match x.round() as i64 {
            0 => "0%".into(),
            1 => "90%".into(),
            2 => "99%".into(),
            3 => "99.9%".into(),
            4 => "99.99%".into(),
            _ => String::new(),
        })
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()?;
    for (name, points, color) in series {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    legend_and_write(&mut chart, &root, SeriesLabelPosition::UpperLeft, path)?;
    Ok(true)
}

/// Draws the series legend at `position` (white box, black border) and writes the chart.
pub fn legend_and_write<'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, CT>,
    root: &DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>,
    position: SeriesLabelPosition,
    path: &Path,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_percentiles_to_log_axis() {
        assert!((x_of(0.9) - 1.0).abs() < 1e-9);
        assert!((x_of(0.99) - 2.0).abs() < 1e-9);
        assert!((x_of(0.999) - 3.0).abs() < 1e-9);
        assert_eq!(x_of(0.0), 0.0);
        assert!(x_of(1.0).is_finite());
    }

    #[test]
    fn draws_a_png_when_a_font_is_installed() {
        use crate::{driver::RunResult, stats::LatencySummary};
        let phase = |side, load| Phase {
            side,
            mode: "open".into(),
            concurrency: None,
            load: Some(load),
            writes: None,
            cpu_stages: Vec::new(),
            run: RunResult {
                offered_qps: Some(100.0),
                achieved_qps: 100.0,
                ok: 10,
                errors: 0,
                first_error: None,
                elapsed_secs: 1.0,
                latency: LatencySummary {
                    count: 10,
                    curve: vec![(0.0, 0.5), (0.5, 1.0), (0.99, 4.0), (0.9999, 9.0)],
                    ..LatencySummary::default()
                },
                by_kind: vec![],
            },
            cpu: vec![],
            stages: vec![],
        };
        let path =
            std::env::temp_dir().join(format!("redrec-bench-plot-{}.png", std::process::id()));
        let drawn =
            latency_plot(&[phase(Side::Raw, 0.5), phase(Side::Gateway, 0.8)], &path).unwrap();
        let font = FONTS.iter().any(|f| std::path::Path::new(f).is_file());
        assert_eq!(drawn, font);
        if drawn {
            let bytes = std::fs::read(&path).unwrap();
            assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
            std::fs::remove_file(&path).unwrap();
        }
    }
}
