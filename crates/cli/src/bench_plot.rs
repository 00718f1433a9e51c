//! `enet-dtls bench --plot FILE.svg`: the RTT distributions (cumulative, one line per
//! workload) and the throughput bars (small messages per second, transfer MB/s, and with the
//! rpc part the Godot RPC calls per second of each server), drawn with `plotters`' SVG backend.

use std::path::Path;

use plotters::prelude::*;

use super::{Outcome, Report};

/// Colours of the workloads, in the order they are listed.
const COLOURS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// Draws the report's RTT distributions and throughput bars into `path` (SVG).
pub(super) fn draw(report: &Report, path: &Path) -> Result<(), String> {
    let rpc: Vec<(String, f64)> = report.rpc.as_ref().map_or_else(Vec::new, |r| {
        r.rows
            .iter()
            .filter_map(|(n, o)| o.done().map(|f| ((*n).to_string(), f.calls_per_s)))
            .collect()
    });
    let columns = if report.rpc.is_some() { 4 } else { 3 };
    let root = SVGBackend::new(path, (500 * columns, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((1, columns as usize));
    rtt_cdf(report, &panels[0]).map_err(|e| format!("RTT panel: {e}"))?;
    let small: Vec<(String, f64)> = report
        .small
        .iter()
        .filter_map(|(n, o)| o.done().map(|m| ((*n).to_string(), m.msgs_per_s)))
        .collect();
    bars(
        &panels[1],
        "small reliable messages/s (echoed)",
        "messages per second",
        &small,
    )
    .map_err(|e| format!("messages panel: {e}"))?;
    let mut tput: Vec<(String, f64)> = report
        .transfer
        .iter()
        .filter_map(|(n, o)| o.done().map(|x| (format!("{n} transfer"), *x)))
        .collect();
    if let Some(Outcome::Done(r)) = &report.netsim {
        // Same unit family (per second), but a different scale: shown as its own bar only
        // when there is no transfer to show.
        if tput.is_empty() {
            tput.push(("netsim kdgram/s".into(), r.datagrams_per_s / 1000.0));
        }
    }
    bars(
        &panels[2],
        &format!(
            "transfer in 1 MiB packets ({} MiB)",
            report.sizes.transfer_bytes >> 20
        ),
        "MB/s",
        &tput,
    )
    .map_err(|e| format!("transfer panel: {e}"))?;
    if report.rpc.is_some() {
        bars(
            &panels[3],
            "Godot RPCs: send_message calls/s",
            "calls per second",
            &rpc,
        )
        .map_err(|e| format!("rpc panel: {e}"))?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Cumulative distribution of each workload's ping-pong RTT (x: microseconds up to the
/// largest p99, y: share of pings at or below).
fn rtt_cdf(report: &Report, area: &Area<'_>) -> Result<(), Box<dyn std::error::Error>> {
    let series: Vec<(&str, Vec<f64>)> = report
        .small
        .iter()
        .filter_map(|(n, o)| {
            let m = o.done()?;
            let mut v = m.samples.clone();
            v.sort_by(f64::total_cmp);
            (!v.is_empty()).then_some((*n, v))
        })
        .collect();
    let x_max = series
        .iter()
        .map(|(_, v)| super::quantile(v, 0.995))
        .fold(1.0f64, f64::max)
        * 1.05;
    let mut chart = ChartBuilder::on(area)
        .caption("ping-pong RTT distribution", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..x_max, 0.0..100.0)?;
    chart
        .configure_mesh()
        .x_desc("round trip (µs)")
        .y_desc("% of pings at or below")
        .draw()?;
    for (i, (name, v)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let n = v.len() as f64;
        let points = v
            .iter()
            .enumerate()
            .filter(|(_, x)| **x <= x_max)
            .map(|(k, x)| (*x, (k + 1) as f64 * 100.0 / n));
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// One bar per `(label, value)`.
fn bars(
    area: &Area<'_>,
    title: &str,
    unit: &str,
    rows: &[(String, f64)],
) -> Result<(), Box<dyn std::error::Error>> {
    let y_max = rows.iter().map(|(_, v)| *v).fold(1.0f64, f64::max) * 1.15;
    let n = rows.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..n as f64, 0.0..y_max)?;
    let labels: Vec<String> = rows.iter().map(|(l, _)| l.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x: &f64| {
            let centre = x - 0.5;
            if (centre - centre.round()).abs() < 1e-6 && centre >= 0.0 {
                labels
                    .get(centre.round() as usize)
                    .cloned()
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y: &f64| format!("{y:.0}"))
        .y_desc(unit)
        .draw()?;
    for (i, (_, v)) in rows.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let x = i as f64;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x + 0.15, 0.0), (x + 0.85, *v)],
            colour.filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{v:.0}"),
            (x + 0.3, *v + y_max * 0.02),
            ("sans-serif", 14),
        )))?;
    }
    Ok(())
}
