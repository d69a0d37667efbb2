//! A simulation as a text table with a summary, or as a self-contained SVG chart of the metric, its target and the replicas over time.

use std::fmt::Write as _;

use super::controller::Target;
use super::hpa::{Hpa, Source};
use super::replay::{PodModel, Simulation, Step};

/// `HH:MM:SS` in UTC.
pub fn clock(unix: i64) -> String {
    let seconds = unix.rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

fn model_words(model: PodModel) -> &'static str {
    match model {
        PodModel::Observed => {
            "observed (each pod's own series; simulated pods beyond them have no value)"
        }
        PodModel::Conserving => {
            "conserving (the observed total spread over the simulated replicas)"
        }
    }
}

/// One line per sync, then a summary.
pub fn table(hpa: &Hpa, simulation: &Simulation) -> String {
    let mut out = String::new();
    let per_pod = hpa
        .metrics
        .iter()
        .any(|m| matches!(m.source, Source::Pods { .. } | Source::Resource { .. }));
    if per_pod {
        let _ = writeln!(out, "pod model: {}", model_words(simulation.pod_model));
    }
    for (i, metric) in hpa.metrics.iter().enumerate() {
        let _ = writeln!(
            out,
            "metric {}: {} target {}",
            i + 1,
            metric.label(),
            target_words(metric.target)
        );
    }
    let mut header = format!("{:<10}", "TIME (UTC)");
    for i in 0..hpa.metrics.len() {
        let _ = write!(header, "  {:>18}", format!("METRIC {} → PROPOSAL", i + 1));
    }
    let _ = writeln!(
        out,
        "{header}  {:>7}  {:>10}  {:>8}  REASON",
        "DESIRED", "STABILIZED", "REPLICAS"
    );
    for step in &simulation.steps {
        let mut line = format!("{:<10}", clock(step.time));
        for metric in &step.metrics {
            let cell = match (metric.value, metric.proposal) {
                (Some(value), Some(proposal)) => format!("{} → {proposal}", number(value)),
                _ => "no value".to_owned(),
            };
            let _ = write!(line, "  {cell:>18}");
        }
        let _ = writeln!(
            out,
            "{line}  {:>7}  {:>10}  {:>8}  {}",
            optional(step.desired),
            optional(step.stabilized),
            step.replicas,
            step.reason
        );
    }
    let summary = &simulation.summary;
    let _ = writeln!(
        out,
        "\n{} scale-ups, {} scale-downs, {} oscillations (direction changes in the window); replicas {}–{}; {} s at minReplicas {}, {} s at maxReplicas {}",
        summary.scale_ups,
        summary.scale_downs,
        summary.oscillations,
        summary.replicas_range.0,
        summary.replicas_range.1,
        summary.seconds_at_min,
        hpa.rules.min_replicas,
        summary.seconds_at_max,
        hpa.rules.max_replicas
    );
    out
}

fn optional(value: Option<i32>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn number(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn target_words(target: Target) -> String {
    match target {
        Target::Value(m) => format!("Value {}", number(m as f64 / 1000.0)),
        Target::AverageValue(m) => format!("AverageValue {}", number(m as f64 / 1000.0)),
        Target::Utilization(p) => format!("Utilization {p}%"),
    }
}

/// The target line for the first metric at a step: what its value is compared with.
fn target_at(hpa: &Hpa, step: &Step) -> Option<f64> {
    let metric = hpa.metrics.first()?;
    match (&metric.source, metric.target) {
        (_, Target::Value(m)) => Some(m as f64 / 1000.0),
        // Object and External AverageValue compare the total with target × replicas.
        (Source::Object { .. } | Source::External { .. }, Target::AverageValue(m)) => {
            Some(m as f64 / 1000.0 * f64::from(step.current.max(1)))
        }
        (_, Target::AverageValue(m)) => Some(m as f64 / 1000.0),
        (_, Target::Utilization(_)) => None,
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The first metric, its target and the replicas over time, on one chart.
pub fn svg(hpa: &Hpa, simulation: &Simulation) -> String {
    const W: f64 = 960.0;
    const H: f64 = 440.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 70.0;
    const TOP: f64 = 50.0;
    const BOTTOM: f64 = 60.0;
    let steps = &simulation.steps;
    let (t0, t1) = match (steps.first(), steps.last()) {
        (Some(first), Some(last)) if last.time > first.time => {
            (first.time as f64, last.time as f64)
        }
        (Some(first), _) => (first.time as f64, first.time as f64 + 1.0),
        _ => (0.0, 1.0),
    };
    let values: Vec<Option<f64>> = steps
        .iter()
        .map(|s| s.metrics.first().and_then(|m| m.value))
        .collect();
    let targets: Vec<Option<f64>> = steps.iter().map(|s| target_at(hpa, s)).collect();
    let value_max = values
        .iter()
        .chain(&targets)
        .flatten()
        .fold(0.0f64, |a, b| a.max(*b))
        .max(1e-9)
        * 1.1;
    let replicas_max = steps
        .iter()
        .map(|s| s.replicas)
        .max()
        .unwrap_or(1)
        .max(hpa.rules.min_replicas)
        .max(1) as f64
        * 1.2;
    let x = |t: i64| LEFT + (t as f64 - t0) / (t1 - t0) * (W - LEFT - RIGHT);
    let y_value = |v: f64| H - BOTTOM - v / value_max * (H - TOP - BOTTOM);
    let y_replicas = |r: f64| H - BOTTOM - r / replicas_max * (H - TOP - BOTTOM);
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="{W}" height="{H}" fill="#ffffff"/>
<text x="{LEFT}" y="24" font-size="16" font-weight="bold">HPA {} — simulated with prom-adapter</text>
"##,
        escape(&format!("{}/{}", hpa.namespace, hpa.name))
    );
    // Axes and grid.
    let _ = writeln!(
        out,
        r##"<g stroke="#888888"><line x1="{LEFT}" y1="{}" x2="{}" y2="{}"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}"/><line x1="{}" y1="{TOP}" x2="{}" y2="{}"/></g>"##,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM,
        W - RIGHT,
        W - RIGHT,
        H - BOTTOM
    );
    for i in 0..=5 {
        let fraction = f64::from(i) / 5.0;
        let t = t0 + fraction * (t1 - t0);
        let px = LEFT + fraction * (W - LEFT - RIGHT);
        let value = fraction * value_max;
        let replicas = fraction * replicas_max;
        let py = H - BOTTOM - fraction * (H - TOP - BOTTOM);
        let _ = writeln!(
            out,
            r##"<text x="{px}" y="{}" text-anchor="middle">{}</text><line x1="{LEFT}" y1="{py}" x2="{}" y2="{py}" stroke="#eeeeee"/><text x="{}" y="{}" text-anchor="end" fill="#1f77b4">{}</text><text x="{}" y="{}" fill="#2ca02c">{:.1}</text>"##,
            H - BOTTOM + 18.0,
            clock(t as i64),
            W - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            number(value),
            W - RIGHT + 6.0,
            py + 4.0,
            replicas
        );
    }
    let path = |points: &[(f64, f64)]| {
        points
            .iter()
            .enumerate()
            .map(|(i, (px, py))| format!("{}{px:.1},{py:.1}", if i == 0 { "M" } else { "L" }))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let value_points: Vec<(f64, f64)> = steps
        .iter()
        .zip(&values)
        .filter_map(|(s, v)| v.map(|v| (x(s.time), y_value(v))))
        .collect();
    let target_points: Vec<(f64, f64)> = steps
        .iter()
        .zip(&targets)
        .filter_map(|(s, v)| v.map(|v| (x(s.time), y_value(v))))
        .collect();
    let mut replica_points = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let y = y_replicas(f64::from(step.replicas));
        if i > 0 {
            replica_points.push((x(step.time), y_replicas(f64::from(steps[i - 1].replicas))));
        }
        replica_points.push((x(step.time), y));
    }
    let _ = writeln!(
        out,
        r##"<path d="{}" fill="none" stroke="#ff7f0e" stroke-width="2" stroke-dasharray="6 4"/>
<path d="{}" fill="none" stroke="#1f77b4" stroke-width="2"/>
<path d="{}" fill="none" stroke="#2ca02c" stroke-width="2.5"/>"##,
        path(&target_points),
        path(&value_points),
        path(&replica_points)
    );
    let label = hpa.metrics.first().map(|m| m.label()).unwrap_or_default();
    let legend_y = H - 18.0;
    // About 7 px per character at 12 px: the next entries start after the metric's label.
    let target_x = LEFT + 20.0 + label.chars().count() as f64 * 7.0 + 24.0;
    let replicas_x = target_x + 90.0;
    let _ = writeln!(
        out,
        r##"<g font-size="12"><rect x="{LEFT}" y="{}" width="14" height="4" fill="#1f77b4"/><text x="{}" y="{legend_y}">{}</text><rect x="{}" y="{}" width="14" height="4" fill="#ff7f0e"/><text x="{}" y="{legend_y}">target</text><rect x="{}" y="{}" width="14" height="4" fill="#2ca02c"/><text x="{}" y="{legend_y}">replicas (right axis)</text></g>
<text x="{}" y="{}" text-anchor="end" fill="#555555">{} scale-ups, {} scale-downs, {} oscillations</text>
</svg>"##,
        legend_y - 4.0,
        LEFT + 20.0,
        escape(&label),
        target_x,
        legend_y - 4.0,
        target_x + 20.0,
        replicas_x,
        legend_y - 4.0,
        replicas_x + 20.0,
        W - RIGHT,
        TOP - 8.0,
        simulation.summary.scale_ups,
        simulation.summary.scale_downs,
        simulation.summary.oscillations
    );
    out
}
