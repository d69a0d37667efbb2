//! A simulation as a text table with a summary, or as a self-contained SVG chart of the metric, its target and the replicas over time.

use std::fmt::Write as _;

use super::controller::Target;
use super::hpa::{Hpa, Source};
use super::recommend::{Report, Score, changes, duration_words, settings_words};
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
            super::recommend::target_words(metric.target)
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

/// Whole numbers without decimals, others as `number` writes them.
fn compact(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        number(value)
    }
}

/// The target line for the first metric at a step, and what it is: the value its value is
/// compared with. Object and External `AverageValue` compare the total with target × replicas.
fn target_at(hpa: &Hpa, step: &Step) -> Option<f64> {
    let metric = hpa.metrics.first()?;
    match (&metric.source, metric.target) {
        (_, Target::Value(m)) => Some(m as f64 / 1000.0),
        (Source::Object { .. } | Source::External { .. }, Target::AverageValue(m)) => {
            Some(m as f64 / 1000.0 * f64::from(step.current.max(1)))
        }
        (_, Target::AverageValue(m)) => Some(m as f64 / 1000.0),
        (_, Target::Utilization(_)) => None,
    }
}

/// The legend of the target line: what `target_at` draws.
fn target_legend(hpa: &Hpa) -> String {
    match hpa.metrics.first().map(|m| (&m.source, m.target)) {
        Some((Source::Object { .. } | Source::External { .. }, Target::AverageValue(m))) => {
            format!("target {} × replicas", compact(m as f64 / 1000.0))
        }
        Some((_, Target::AverageValue(m))) => {
            format!("target {} per pod", compact(m as f64 / 1000.0))
        }
        Some((_, Target::Value(m))) => format!("target {}", compact(m as f64 / 1000.0)),
        _ => "target".into(),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Which axis a line is read against.
#[derive(Clone, Copy, PartialEq)]
enum Axis {
    /// The metric's units, on the left.
    Value,
    /// Replicas, on the right, in whole numbers.
    Replicas,
}

/// One line of a chart.
struct Line {
    legend: String,
    colour: &'static str,
    width: f64,
    dashed: bool,
    axis: Axis,
    /// Drawn as steps (a value holds until the next point).
    steps: bool,
    points: Vec<(i64, f64)>,
}

/// Whole-number ticks for 0..=`max`: a step of 1, 2 or 5 × 10ᵏ and the top it reaches.
fn integer_ticks(max: f64) -> (i64, i64) {
    let max = max.max(1.0);
    let mut step = 1i64;
    loop {
        for factor in [1, 2, 5] {
            let candidate = step * factor;
            if max / candidate as f64 <= 5.0 {
                let top = ((max / candidate as f64).ceil() as i64).max(1) * candidate;
                return (candidate, top);
            }
        }
        step *= 10;
    }
}

/// At most about two points per pixel column: each column keeps its lowest and highest value in
/// the order they came, so a week of syncs draws its peaks without a megabyte of path.
fn thin(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if points.len() <= 2000 {
        return points.to_vec();
    }
    let mut out = Vec::new();
    for column in points.chunk_by(|a, b| a.0.floor() == b.0.floor()) {
        let by_y = |a: &(usize, &(f64, f64)), b: &(usize, &(f64, f64))| a.1.1.total_cmp(&b.1.1);
        let (Some(low), Some(high)) = (
            column.iter().enumerate().min_by(by_y),
            column.iter().enumerate().max_by(by_y),
        ) else {
            continue;
        };
        let (first, second) = if low.0 <= high.0 {
            (low, high)
        } else {
            (high, low)
        };
        out.push(*first.1);
        if second.0 != first.0 {
            out.push(*second.1);
        }
    }
    out
}

/// A chart of value lines (left axis) and replica lines (right axis, whole numbers) over time.
fn chart(title: &str, lines: &[Line], footer: &str) -> String {
    const W: f64 = 960.0;
    const H: f64 = 440.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 70.0;
    const TOP: f64 = 50.0;
    const BOTTOM: f64 = 60.0;
    let times = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let (t0, t1) = match (times.clone().min(), times.max()) {
        (Some(a), Some(b)) if b > a => (a as f64, b as f64),
        (Some(a), _) => (a as f64, a as f64 + 1.0),
        _ => (0.0, 1.0),
    };
    let axis_max = |axis: Axis| {
        lines
            .iter()
            .filter(|l| l.axis == axis)
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max)
    };
    let value_max = axis_max(Axis::Value).max(1e-9) * 1.1;
    let (replica_step, replica_top) = integer_ticks(axis_max(Axis::Replicas) * 1.1);
    let plot_h = H - TOP - BOTTOM;
    let x = |t: i64| LEFT + (t as f64 - t0) / (t1 - t0) * (W - LEFT - RIGHT);
    let y = |axis: Axis, v: f64| match axis {
        Axis::Value => H - BOTTOM - v / value_max * plot_h,
        Axis::Replicas => H - BOTTOM - v / replica_top as f64 * plot_h,
    };
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="{W}" height="{H}" fill="#ffffff"/>
<text x="{LEFT}" y="24" font-size="16" font-weight="bold">{}</text>
"##,
        escape(title)
    );
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
    let span = t1 - t0;
    for i in 0..=5 {
        let fraction = f64::from(i) / 5.0;
        let t = (t0 + fraction * span) as i64;
        let label = if span > 2.0 * 86_400.0 {
            date_clock(t)
        } else {
            clock(t)
        };
        let py = H - BOTTOM - fraction * plot_h;
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{}" text-anchor="middle">{label}</text><line x1="{LEFT}" y1="{py}" x2="{}" y2="{py}" stroke="#eeeeee"/><text x="{}" y="{}" text-anchor="end" fill="#1f77b4">{}</text>"##,
            LEFT + fraction * (W - LEFT - RIGHT),
            H - BOTTOM + 18.0,
            W - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            number(fraction * value_max),
        );
    }
    // Replica ticks at whole numbers only.
    let mut tick = 0;
    while tick <= replica_top {
        let py = y(Axis::Replicas, tick as f64);
        let _ = writeln!(
            out,
            r##"<text class="replica-tick" x="{}" y="{}" fill="#2ca02c">{tick}</text>"##,
            W - RIGHT + 6.0,
            py + 4.0
        );
        tick += replica_step;
    }
    let path = |points: &[(f64, f64)]| {
        points
            .iter()
            .enumerate()
            .map(|(i, (px, py))| format!("{}{px:.1},{py:.1}", if i == 0 { "M" } else { "L" }))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for line in lines {
        let mut points = Vec::with_capacity(line.points.len() * 2);
        for (i, &(t, v)) in line.points.iter().enumerate() {
            if line.steps && i > 0 {
                points.push((x(t), y(line.axis, line.points[i - 1].1)));
            }
            points.push((x(t), y(line.axis, v)));
        }
        let dash = if line.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r##"<path d="{}" fill="none" stroke="{}" stroke-width="{}"{dash}/>"##,
            path(&thin(&points)),
            line.colour,
            line.width
        );
    }
    // The legend: each entry after the previous one's text (about 7 px per character).
    let legend_y = H - 18.0;
    let mut legend_x = LEFT;
    let _ = write!(out, r##"<g class="legend" font-size="12">"##);
    for line in lines {
        let axis = match line.axis {
            Axis::Value => "",
            Axis::Replicas => " (right axis)",
        };
        let text = format!("{}{axis}", line.legend);
        let _ = write!(
            out,
            r##"<rect x="{legend_x}" y="{}" width="14" height="4" fill="{}"/><text x="{}" y="{legend_y}">{}</text>"##,
            legend_y - 4.0,
            line.colour,
            legend_x + 20.0,
            escape(&text)
        );
        legend_x += 20.0 + text.chars().count() as f64 * 7.0 + 24.0;
    }
    let _ = writeln!(
        out,
        r##"</g>
<text x="{}" y="{}" text-anchor="end" fill="#555555">{}</text>
</svg>"##,
        W - RIGHT,
        TOP - 8.0,
        escape(footer)
    );
    out
}

/// `MM-DD HH:MM` in UTC, for charts over days.
fn date_clock(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:02}-{:02} {:02}:{:02}",
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => clock(unix),
    }
}

/// The first metric, its target and the replicas over time, on one chart.
pub fn svg(hpa: &Hpa, simulation: &Simulation) -> String {
    let steps = &simulation.steps;
    let label = hpa.metrics.first().map(|m| m.label()).unwrap_or_default();
    let lines = [
        Line {
            legend: target_legend(hpa),
            colour: "#ff7f0e",
            width: 2.0,
            dashed: true,
            axis: Axis::Value,
            steps: false,
            points: steps
                .iter()
                .filter_map(|s| target_at(hpa, s).map(|v| (s.time, v)))
                .collect(),
        },
        Line {
            legend: label,
            colour: "#1f77b4",
            width: 2.0,
            dashed: false,
            axis: Axis::Value,
            steps: false,
            points: steps
                .iter()
                .filter_map(|s| s.metrics.first()?.value.map(|v| (s.time, v)))
                .collect(),
        },
        Line {
            legend: "replicas".into(),
            colour: "#2ca02c",
            width: 2.5,
            dashed: false,
            axis: Axis::Replicas,
            steps: true,
            points: steps
                .iter()
                .map(|s| (s.time, f64::from(s.replicas)))
                .collect(),
        },
    ];
    let summary = &simulation.summary;
    chart(
        &format!(
            "HPA {}/{} — simulated with prom-adapter",
            hpa.namespace, hpa.name
        ),
        &lines,
        &format!(
            "{} scale-ups, {} scale-downs, {} oscillations",
            summary.scale_ups, summary.scale_downs, summary.oscillations
        ),
    )
}

/// The first metric and the replicas of two replays over the same traffic: the HPA as it is and
/// as recommended.
pub fn comparison_svg(hpa: &Hpa, current: &Simulation, recommended: &Simulation) -> String {
    let replicas = |simulation: &Simulation| -> Vec<(i64, f64)> {
        simulation
            .steps
            .iter()
            .map(|s| (s.time, f64::from(s.replicas)))
            .collect()
    };
    let lines = [
        Line {
            legend: hpa.metrics.first().map(|m| m.label()).unwrap_or_default(),
            colour: "#1f77b4",
            width: 1.5,
            dashed: false,
            axis: Axis::Value,
            steps: false,
            points: current
                .steps
                .iter()
                .filter_map(|s| s.metrics.first()?.value.map(|v| (s.time, v)))
                .collect(),
        },
        Line {
            legend: "replicas today".into(),
            colour: "#7f7f7f",
            width: 2.0,
            dashed: true,
            axis: Axis::Replicas,
            steps: true,
            points: replicas(current),
        },
        Line {
            legend: "replicas recommended".into(),
            colour: "#2ca02c",
            width: 2.5,
            dashed: false,
            axis: Axis::Replicas,
            steps: true,
            points: replicas(recommended),
        },
    ];
    chart(
        &format!(
            "HPA {}/{} — today and recommended, same traffic",
            hpa.namespace, hpa.name
        ),
        &lines,
        &format!(
            "replica changes: {} today, {} recommended",
            current.summary.scale_ups + current.summary.scale_downs,
            recommended.summary.scale_ups + recommended.summary.scale_downs
        ),
    )
}

/// Replica-hours with one decimal.
fn replica_hours(replica_seconds: i64) -> String {
    format!("{:.1}", replica_seconds as f64 / 3600.0)
}

fn over_words(score: &Score) -> String {
    format!(
        "{} ({:.2}%)",
        duration_words(score.seconds_over_slo),
        score.over_fraction() * 100.0
    )
}

fn events_words(score: &Score) -> String {
    format!(
        "{} in {} changes; busiest hour {}{}",
        score.scale_events,
        score.replica_changes,
        score.busiest_hour_events,
        if score.flapping { " (flaps)" } else { "" }
    )
}

/// `--recommend` as text: the objective, the comparison, the changed settings, the Pareto front,
/// the sensitivity and the warnings.
pub fn recommendation(report: &Report) -> String {
    let mut out = String::new();
    let hpa = &report.hpa;
    let found = &report.recommendation;
    let objective = &report.objective;
    let (start, end) = report.range;
    let metric = hpa.metrics.first().map(|m| m.label()).unwrap_or_default();
    let _ = writeln!(
        out,
        "HPA {}/{}: {:.1} days of history ({} syncs of {} s per candidate)",
        hpa.namespace,
        hpa.name,
        (end - start) as f64 / 86_400.0,
        report.syncs,
        report.sync_seconds
    );
    let _ = writeln!(
        out,
        "objective: {metric}{} ≤ {} for ≥ {}% of the time; at most {} scale events in any hour; then the fewest replica-seconds",
        if report.per_replica {
            " per replica"
        } else {
            ""
        },
        compact(objective.slo_bound),
        objective.slo_percent,
        objective.max_events_per_hour
    );
    let _ = writeln!(
        out,
        "searched {} candidates in {:.1} s: {:.0} candidates/s ({} stopped early: dominated by a finished candidate, or flapping)\n",
        found.candidates,
        found.seconds,
        found.candidates_per_second(),
        found.pruned
    );
    let (today, best) = (&found.current.score, &found.best.score);
    let change = if today.replica_seconds > 0 {
        format!(
            " ({:+.1}%)",
            (best.replica_seconds - today.replica_seconds) as f64 / today.replica_seconds as f64
                * 100.0
        )
    } else {
        String::new()
    };
    let title = if found.feasible {
        "RECOMMENDED"
    } else {
        "CLOSEST (misses the SLO)"
    };
    let rows = [
        (
            "replica-hours".to_owned(),
            replica_hours(today.replica_seconds),
            format!("{}{change}", replica_hours(best.replica_seconds)),
        ),
        (
            "time over the SLO".to_owned(),
            over_words(today),
            over_words(best),
        ),
        (
            "scale events".to_owned(),
            events_words(today),
            events_words(best),
        ),
        (
            "longest at maxReplicas".to_owned(),
            duration_words(today.longest_at_max_seconds),
            duration_words(best.longest_at_max_seconds),
        ),
        (
            "peak replicas".to_owned(),
            today.peak_replicas.to_string(),
            best.peak_replicas.to_string(),
        ),
    ];
    let _ = writeln!(out, "{:<24}  {:<34}  {title}", "", "TODAY");
    for (name, a, b) in rows {
        let _ = writeln!(out, "{name:<24}  {a:<34}  {b}");
    }
    let changes = changes(&found.current.settings, &found.best.settings);
    if changes.is_empty() {
        let _ = writeln!(
            out,
            "\nThe HPA's settings are already the best the search found."
        );
    } else {
        let _ = writeln!(out, "\nchanged settings:");
        for change in &changes {
            let _ = writeln!(
                out,
                "  {:<46}  {} → {}",
                change.field(),
                change.from,
                change.to
            );
        }
    }
    if !report.effects.is_empty() {
        let _ = writeln!(
            out,
            "\nwhy (the recommendation replayed with one setting as it is today):"
        );
        for effect in &report.effects {
            let _ = writeln!(out, "  - {}", effect.words);
        }
    }
    let _ = writeln!(
        out,
        "\nPareto front, cost against time over the SLO (candidates that do not flap; none is better on both; all of them in --output json):"
    );
    let _ = writeln!(
        out,
        "  {:>13}  {:>16}  SETTINGS",
        "REPLICA-HOURS", "OVER THE SLO"
    );
    // Points far over the SLO are on the front too (nothing is cheaper) but are no choice:
    // show those within five times the allowed share, or 1%.
    let allowed = ((100.0 - objective.slo_percent) / 100.0 * 5.0).max(0.01);
    let front: Vec<_> = found
        .front
        .iter()
        .filter(|p| p.score.over_fraction() <= allowed)
        .collect();
    // At most 12 points, spread along the front, always with its ends.
    let shown: Vec<usize> = if front.len() <= 12 {
        (0..front.len()).collect()
    } else {
        let mut picks: Vec<usize> = (0..12).map(|i| i * (front.len() - 1) / 11).collect();
        picks.dedup();
        picks
    };
    for i in shown {
        let point = front[i];
        // `headroom` may have raised the winner's maxReplicas after the search.
        let same_but_max = |a: &super::recommend::Settings, b: &super::recommend::Settings| {
            a.targets == b.targets
                && a.rules.min_replicas == b.rules.min_replicas
                && a.rules.behavior == b.rules.behavior
        };
        let mark = if same_but_max(&point.settings, &found.best.settings) {
            " ← recommended"
        } else if point.settings == found.current.settings {
            " ← today"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {:>13}  {:>20}  {}{mark}",
            replica_hours(point.score.replica_seconds),
            over_words(&point.score),
            settings_words(&point.settings)
        );
    }
    if !report.sensitivity.is_empty() {
        let _ = writeln!(
            out,
            "\nsensitivity (the recommendation on the same history with the traffic scaled):"
        );
        for s in &report.sensitivity {
            let _ = writeln!(
                out,
                "  ×{:.1}: {} replica-hours, {} over the SLO, scale events {}; the best first-metric target there: {}",
                s.factor,
                replica_hours(s.score.replica_seconds),
                over_words(&s.score),
                events_words(&s.score),
                super::recommend::target_words(s.best_target)
            );
        }
    }
    if !report.warnings.is_empty() {
        let _ = writeln!(out, "\nkeep in mind:");
        for warning in &report.warnings {
            let _ = writeln!(out, "  - {warning}");
        }
    }
    let _ = writeln!(
        out,
        "\n--output yaml writes the recommended HPA; --output svg draws both replays; --explain says what each change does."
    );
    out
}
