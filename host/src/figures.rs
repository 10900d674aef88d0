//! Figures and tables every method's report writes: SVG line plots (plotters) and a table as
//! `name.md` beside `name.json`.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde::Serialize;

/// A line plot of accuracy (percent) against `x`, one series per `(name, points)`, to SVG.
pub fn plot(
    path: &Path,
    title: &str,
    x_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    log_x: bool,
) -> Result<()> {
    let pct: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(n, p)| (n.clone(), p.iter().map(|&(x, y)| (x, 100.0 * y)).collect()))
        .collect();
    plot_series(path, title, x_label, "accuracy (%)", &pct, log_x)
}

/// A line plot of `y` (as given, clamped to 0..=100 for the axis) against `x`, one series per
/// `(name, points)`, to SVG.
pub fn plot_series(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    log_x: bool,
) -> Result<()> {
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return Ok(());
    }
    let fx = |x: f64| if log_x { x.max(1e-9).log2() } else { x };
    let (x0, x1) = (fx(x0), fx(x1).max(fx(x0) + 1e-9));
    let pad = ((y1 - y0) * 0.05).max(0.5);
    let (y0, y1) = ((y0 - pad).max(0.0), (y1 + pad).min(100.0));
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(if log_x {
                format!("log2 {x_label}")
            } else {
                x_label.to_string()
            })
            .y_desc(y_label)
            .draw()?;
        for (k, (name, p)) in series.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    p.iter().map(|&(x, y)| (fx(x), y)),
                    color.stroke_width(2),
                ))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Write `name.md`, `name.json` into `dir`.
pub fn write_tables<T: Serialize>(dir: &Path, name: &str, markdown: &str, json: &T) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let md = dir.join(format!("{name}.md"));
    std::fs::write(&md, markdown).with_context(|| format!("cannot write {}", md.display()))?;
    let js = dir.join(format!("{name}.json"));
    std::fs::write(&js, serde_json::to_string_pretty(json)?)
        .with_context(|| format!("cannot write {}", js.display()))?;
    Ok(())
}
