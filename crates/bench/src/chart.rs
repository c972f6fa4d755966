//! `concurrency`: one endpoint under 1 to 256 concurrent connections, and the chart of its
//! throughput and latency against concurrency (`docs/benchmarks-concurrency.svg`).

use crate::{list_load, Sample};
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// Concurrent connections tried, in order.
pub const LEVELS: &[usize] = &[1, 2, 4, 8, 16, 32, 64, 128, 256];

/// `GET /resources` with both filters over the 100k resources the caller imported, at every
/// level for `seconds` each.
pub async fn sweep(
    client: &reqwest::Client,
    base: &str,
    seconds: u64,
) -> Result<Vec<(usize, Sample)>> {
    let mut out = vec![];
    for &connections in LEVELS {
        out.push((
            connections,
            list_load(client, base, connections, seconds).await?,
        ));
    }
    Ok(out)
}

/// Draws throughput (left) and p50/p99 latency (right) against connections, on a log₂ axis.
pub fn draw(path: &Path, title: &str, points: &[(usize, Sample)]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("chart: {e}");
    let root = SVGBackend::new(path, (960, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(480);
    let x = |c: usize| (c as f64).log2();
    let x_max = x(*LEVELS.last().unwrap_or(&1));
    let label = |v: &f64| format!("{}", 2f64.powf(*v).round());

    let tp_max = points.iter().map(|(_, s)| s.per_sec).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&left)
        .caption("throughput (req/s)", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..tp_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("concurrent connections")
        .x_labels(LEVELS.len())
        .x_label_formatter(&label)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    let tp: Vec<(f64, f64)> = points.iter().map(|(c, s)| (x(*c), s.per_sec)).collect();
    chart
        .draw_series(LineSeries::new(tp.clone(), BLUE.stroke_width(2)))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(tp.iter().map(|p| Circle::new(*p, 3, BLUE.filled())))
        .map_err(|e| err(&e))?;

    let lat_max = points.iter().map(|(_, s)| s.p99_ms).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&right)
        .caption("latency (ms)", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..lat_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("concurrent connections")
        .x_labels(LEVELS.len())
        .x_label_formatter(&label)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    for (name, color, pick) in [
        ("p50", GREEN, (|s: &Sample| s.p50_ms) as fn(&Sample) -> f64),
        ("p99", RED, |s: &Sample| s.p99_ms),
    ] {
        let series: Vec<(f64, f64)> = points.iter().map(|(c, s)| (x(*c), pick(s))).collect();
        chart
            .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(series.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
