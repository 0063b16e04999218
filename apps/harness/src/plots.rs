//! The report's PNG plots: per-class IoU bars and a latency histogram.
//!
//! Drawn with `plotters` into an RGB buffer and encoded with `image`, with DejaVu Sans embedded
//! in the binary, so a plot looks the same on a machine without fonts or font libraries.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Colour of the bars in both plots (tests find the bars by it).
pub const BAR: RGBColor = RGBColor(0x2f, 0x6f, 0xb5);
/// Colour of the p50/p95 markers of the latency histogram.
pub const MARKER: RGBColor = RGBColor(0xd9, 0x48, 0x1c);

const FONT: &str = "sans-serif";

/// A drawn plot: `width * height` RGB pixels.
#[derive(Clone, Debug)]
pub struct Plot {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("drawing the plot: {0}")]
    Draw(String),
    #[error("{path}: {message}")]
    Write { path: String, message: String },
}

fn draw_error(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| panic!("the embedded DejaVu Sans is a valid font"));
    });
}

impl Plot {
    fn blank(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            rgb: vec![255; width as usize * height as usize * 3],
        }
    }

    pub fn save_png(&self, path: &Path) -> Result<(), PlotError> {
        image::save_buffer(
            path,
            &self.rgb,
            self.width,
            self.height,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| PlotError::Write {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// The colour at `(x, y)`.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

/// One bar per class: its IoU in percent (`iou` in 0..=1), the value written above the bar.
pub fn iou_bars(title: &str, classes: &[(String, f64)]) -> Result<Plot, PlotError> {
    register_font();
    // Wide enough for the class names under their bars.
    let width = (160 + 70 * classes.len() as u32).clamp(480, 2400);
    let mut plot = Plot::blank(width, 420);
    {
        let root = BitMapBackend::with_buffer(&mut plot.rgb, (plot.width, plot.height))
            .into_drawing_area();
        let n = classes.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..n, 0.0..105.0)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(11)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(WHITE)
            .y_desc("IoU (%)")
            .label_style((FONT, 13))
            .draw()
            .map_err(draw_error)?;
        // Class names centred under their bars, in pixels below the axis.
        let (_, axis_y) = chart.backend_coord(&(0.0, 0.0));
        let under = (FONT, 13)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Top));
        for (i, (name, _)) in classes.iter().enumerate() {
            let (x, _) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            root.draw(&Text::new(name.clone(), (x, axis_y + 8), under.clone()))
                .map_err(draw_error)?;
        }
        chart
            .draw_series(classes.iter().enumerate().map(|(i, (_, iou))| {
                let x = i as f64;
                Rectangle::new([(x + 0.15, 0.0), (x + 0.85, iou * 100.0)], BAR.filled())
            }))
            .map_err(draw_error)?;
        chart
            .draw_series(classes.iter().enumerate().map(|(i, (_, iou))| {
                Text::new(
                    format!("{:.1}", iou * 100.0),
                    (i as f64 + 0.5, iou * 100.0 + 1.0),
                    (FONT, 12)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )
            }))
            .map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    Ok(plot)
}

/// How many of `values` fall in each of `bins` equal bins over `[lo, hi]` (the last one closed).
pub fn histogram(values: &[f64], bins: usize, lo: f64, hi: f64) -> Vec<usize> {
    let mut counts = vec![0; bins.max(1)];
    let span = (hi - lo).max(f64::EPSILON);
    for &v in values.iter().filter(|v| v.is_finite()) {
        let at = (((v - lo) / span) * counts.len() as f64).floor();
        let at = (at.max(0.0) as usize).min(counts.len() - 1);
        counts[at] += 1;
    }
    counts
}

/// Latencies in milliseconds as a histogram, with the p50 and p95 marked.
pub fn latency_histogram(
    title: &str,
    latencies_ms: &[f64],
    p50: Option<f64>,
    p95: Option<f64>,
) -> Result<Plot, PlotError> {
    register_font();
    let mut plot = Plot::blank(720, 420);
    let finite: Vec<f64> = latencies_ms
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if finite.is_empty() {
        (0.0, 1.0)
    } else if hi - lo < 1e-6 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let bins = ((finite.len() as f64).sqrt().ceil() as usize).clamp(5, 40);
    let counts = histogram(&finite, bins, lo, hi);
    let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.1;
    let step = (hi - lo) / bins as f64;
    {
        let root = BitMapBackend::with_buffer(&mut plot.rgb, (plot.width, plot.height))
            .into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, 0.0..top)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .y_label_formatter(&|v| {
                if v.fract() == 0.0 {
                    format!("{v:.0}")
                } else {
                    String::new()
                }
            })
            .x_desc("latency per frame (ms)")
            .y_desc("frames")
            .label_style((FONT, 13))
            .draw()
            .map_err(draw_error)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &count)| {
                let x0 = lo + step * i as f64;
                Rectangle::new(
                    [(x0 + step * 0.05, 0.0), (x0 + step * 0.95, count as f64)],
                    BAR.filled(),
                )
            }))
            .map_err(draw_error)?;
        for (name, value) in [("p50", p50), ("p95", p95)] {
            let Some(value) = value else { continue };
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(value, 0.0), (value, top)],
                    MARKER.stroke_width(2),
                )))
                .map_err(draw_error)?;
            // The text beside its line, on the side with room for it.
            let (x, y) =
                chart.backend_coord(&(value, top * if name == "p50" { 0.97 } else { 0.88 }));
            let right_half = value > (lo + hi) / 2.0;
            let (dx, anchor) = if right_half {
                (-6, HPos::Right)
            } else {
                (6, HPos::Left)
            };
            let digits = if value < 10.0 { 2 } else { 1 };
            root.draw(&Text::new(
                format!("{name} {value:.digits$} ms"),
                (x + dx, y),
                (FONT, 13)
                    .into_font()
                    .color(&MARKER)
                    .pos(Pos::new(anchor, VPos::Center)),
            ))
            .map_err(draw_error)?;
        }
        root.present().map_err(draw_error)?;
    }
    Ok(plot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_bar(p: [u8; 3]) -> bool {
        p == [BAR.0, BAR.1, BAR.2]
    }

    /// Height in pixels of the bar colour in column `x`.
    fn bar_height(plot: &Plot, x: u32) -> u32 {
        (0..plot.height)
            .filter(|&y| is_bar(plot.pixel(x, y)))
            .count() as u32
    }

    /// Columns holding the bar colour, grouped into runs: one run per bar.
    fn bar_runs(plot: &Plot) -> Vec<(u32, u32)> {
        let mut runs = Vec::new();
        let mut start = None;
        for x in 0..plot.width {
            match (bar_height(plot, x) > 0, start) {
                (true, None) => start = Some(x),
                (false, Some(s)) => {
                    runs.push((s, x));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            runs.push((s, plot.width));
        }
        runs
    }

    #[test]
    fn bars_are_as_tall_as_their_iou() {
        let plot = iou_bars(
            "IoU per class",
            &[
                ("full".into(), 1.0),
                ("half".into(), 0.5),
                ("none".into(), 0.0),
                ("quarter".into(), 0.25),
            ],
        )
        .unwrap();
        let runs = bar_runs(&plot);
        assert_eq!(runs.len(), 3, "the empty class draws no bar: {runs:?}");
        let heights: Vec<f64> = runs
            .iter()
            .map(|&(a, b)| bar_height(&plot, (a + b) / 2) as f64)
            .collect();
        assert!((heights[1] / heights[0] - 0.5).abs() < 0.02, "{heights:?}");
        assert!((heights[2] / heights[0] - 0.25).abs() < 0.02, "{heights:?}");
        // Bars stand in class order, left to right, with text drawn besides them.
        assert!(runs[0].1 < runs[1].0 && runs[1].1 < runs[2].0);
        let dark = plot
            .rgb
            .chunks(3)
            .filter(|p| p[0] < 80 && p[1] < 80 && p[2] < 80)
            .count();
        assert!(dark > 500, "labels and axes are drawn ({dark} dark pixels)");
    }

    #[test]
    fn histogram_counts_every_value_once() {
        let counts = histogram(&[0.0, 0.5, 1.0, 9.99, 10.0, f64::NAN], 5, 0.0, 10.0);
        assert_eq!(counts, vec![3, 0, 0, 0, 2]);
        assert_eq!(histogram(&[], 3, 0.0, 1.0), vec![0, 0, 0]);
    }

    #[test]
    fn the_latency_histogram_marks_its_percentiles() {
        let latencies: Vec<f64> = (0..100).map(|i| 10.0 + (i % 10) as f64).collect();
        let plot = latency_histogram("latency", &latencies, Some(14.5), Some(19.0)).unwrap();
        let marker = |p: [u8; 3]| p == [MARKER.0, MARKER.1, MARKER.2];
        let marker_columns = (0..plot.width)
            .filter(|&x| {
                (0..plot.height)
                    .filter(|&y| marker(plot.pixel(x, y)))
                    .count()
                    > 200
            })
            .count();
        assert!(
            (2..=6).contains(&marker_columns),
            "two vertical markers, {marker_columns} columns"
        );
        // Ten distinct values, equally often: the bars are of one height.
        let runs = bar_runs(&plot);
        assert!(runs.len() >= 5, "{runs:?}");
        let heights: Vec<u32> = runs
            .iter()
            .map(|&(a, b)| bar_height(&plot, (a + b) / 2))
            .filter(|&h| h > 0)
            .collect();
        let (min, max) = (heights.iter().min().unwrap(), heights.iter().max().unwrap());
        assert!(*max > 100, "{heights:?}");
        assert!(max - min <= max / 2 + 2, "{heights:?}");
    }

    #[test]
    fn a_single_latency_still_plots() {
        let plot = latency_histogram("latency", &[5.0], Some(5.0), Some(5.0)).unwrap();
        assert!(!bar_runs(&plot).is_empty());
    }
}
