//! `simulate --recommend`: the objective from the flags, the search over the fetched history, its sensitivity and explanation, and the output (report, YAML manifest, JSON or SVG).

use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::SimulateArgs;
use prom_adapter_core::model::parse_duration;
use prom_adapter_tools::simulate::controller::Target;
use prom_adapter_tools::simulate::history::History;
use prom_adapter_tools::simulate::hpa::{self, Hpa, Source};
use prom_adapter_tools::simulate::recommend::{self, Objective, Report, Space};
use prom_adapter_tools::simulate::render;
use prom_adapter_tools::simulate::replay::{self, Options, Prepared};

/// Reads `--slo VALUE[@PERCENT]` (default: the first metric's target, @99).
fn slo(text: Option<&str>, hpa: &Hpa) -> anyhow::Result<(f64, f64)> {
    let Some(text) = text else {
        let target = hpa
            .metrics
            .first()
            .map(|m| recommend::target_value(m.target))
            .context("the HPA has no metric")?;
        return Ok((target, 99.0));
    };
    let (value, percent) = match text.split_once('@') {
        Some((value, percent)) => (value, Some(percent.trim().trim_end_matches('%'))),
        None => (text, None),
    };
    let invalid = || {
        anyhow::anyhow!(
            "--slo {text:?}: write VALUE or VALUE@PERCENT, e.g. 60 or 60@99.5 (the first metric's value per replica stays at or below VALUE for PERCENT of the time)"
        )
    };
    let value: f64 = value.trim().parse().map_err(|_| invalid())?;
    let percent: f64 = match percent {
        Some(p) => p.parse().map_err(|_| invalid())?,
        None => 99.0,
    };
    if !(value.is_finite() && value > 0.0 && percent > 0.0 && percent <= 100.0) {
        return Err(invalid());
    }
    Ok((value, percent))
}

/// The objective `--recommend` searches for.
pub fn objective(args: &SimulateArgs, hpa: &Hpa) -> anyhow::Result<Objective> {
    let (slo_bound, slo_percent) = slo(args.slo.as_deref(), hpa)?;
    if args.max_scale_events_per_hour == 0 {
        bail!(
            "--max-scale-events-per-hour must be at least 1: an HPA that never scales needs none"
        );
    }
    let warm_up = parse_duration(&args.warm_up).context("--warm-up")?;
    Ok(Objective {
        slo_bound,
        slo_percent,
        max_events_per_hour: args.max_scale_events_per_hour,
        warm_up_seconds: warm_up.as_secs() as i64,
    })
}

/// Searches, then prints in `args.output`.
pub fn run(
    args: &SimulateArgs,
    hpa: &Hpa,
    manifest: &str,
    history: &History,
    options: &Options,
    objective: &Objective,
) -> anyhow::Result<ExitCode> {
    for metric in &hpa.metrics {
        if let (Source::Resource { name }, Target::Utilization(_)) = (&metric.source, metric.target)
            && !options.pod_requests.contains_key(name)
        {
            bail!(
                "--recommend needs each pod's {name} request for the Utilization metric: give --pod-request {name}=QUANTITY (Prometheus does not have it, and without it the metric never scales)"
            );
        }
    }
    let range = options.end - options.start;
    // The warm-up never takes more than a tenth of the history.
    let objective = Objective {
        warm_up_seconds: objective.warm_up_seconds.min(range / 10),
        ..objective.clone()
    };
    let space = Space {
        min_replicas_floor: args
            .min_replicas_floor
            .unwrap_or_else(|| hpa.rules.min_replicas.min(2))
            .max(1),
        tune_tolerance: args.tune_tolerance,
    };
    let prepared = Prepared::new(hpa, &history.metrics, options, 1.0);
    let mut found = recommend::search(hpa, &prepared, options, &objective, &space);
    let busier = Prepared::new(hpa, &history.metrics, options, 1.2);
    let quieter = Prepared::new(hpa, &history.metrics, options, 0.8);
    if let Some(max) = recommend::headroom(hpa, &found.best.settings, &busier, options, &objective)
    {
        found.best.settings.rules.max_replicas = max;
        found.best.score =
            recommend::rescore(hpa, &found.best.settings, &prepared, options, &objective);
        found.feasible = found.best.score.feasible(&objective);
    }
    let sensitivity = [(0.8, &quieter), (1.2, &busier)]
        .into_iter()
        .map(|(factor, traffic)| {
            recommend::sensitivity(
                hpa,
                &found.best.settings,
                factor,
                traffic,
                options,
                &objective,
            )
        })
        .collect();
    let effects = if args.explain {
        recommend::explain(hpa, &found, &prepared, options, &objective)
    } else {
        Vec::new()
    };
    let warnings = recommend::warnings(hpa, &prepared, options, &found);
    let recommended_manifest = hpa::with_settings(
        manifest,
        &found.best.settings.rules,
        &found.best.settings.targets,
    )?;
    let report = Report {
        hpa: hpa.clone(),
        objective: objective.clone(),
        per_replica: recommend::Load::new(hpa, &prepared).divides_by_replicas(),
        recommendation: found,
        effects,
        sensitivity,
        warnings,
        range: (options.start, options.end),
        sync_seconds: options.sync_seconds,
        syncs: prepared.times.len(),
    };
    match args.output.as_str() {
        "yaml" => {
            let found = &report.recommendation;
            print!(
                "# Recommended by prom-adapter simulate --recommend over {} to {}:\n# {} replica-hours (today {}), {} s over the SLO (today {} s).\n{recommended_manifest}",
                prom_adapter_core::model::format_timestamp(options.start),
                prom_adapter_core::model::format_timestamp(options.end),
                found.best.score.replica_seconds / 3600,
                found.current.score.replica_seconds / 3600,
                found.best.score.seconds_over_slo,
                found.current.score.seconds_over_slo,
            );
            for warning in &report.warnings {
                eprintln!("warning: {warning}");
            }
        }
        "json" => println!("{}", json(&report, &recommended_manifest)),
        "svg" => {
            let current = replay::replay_prepared(hpa, &prepared, options);
            let recommended = replay::replay_prepared(
                &report.recommendation.best.settings.apply(hpa),
                &prepared,
                options,
            );
            print!("{}", render::comparison_svg(hpa, &current, &recommended));
        }
        _ => print!("{}", render::recommendation(&report)),
    }
    Ok(ExitCode::SUCCESS)
}

fn json(report: &Report, manifest: &str) -> serde_json::Value {
    let found = &report.recommendation;
    let point = |e: &recommend::Evaluated| {
        serde_json::json!({
            "settings": recommend::settings_words(&e.settings),
            "score": e.score,
        })
    };
    serde_json::json!({
        "objective": {
            "slo_bound": report.objective.slo_bound,
            "slo_percent": report.objective.slo_percent,
            "per_replica": report.per_replica,
            "max_scale_events_per_hour": report.objective.max_events_per_hour,
            "warm_up_seconds": report.objective.warm_up_seconds,
        },
        "feasible": found.feasible,
        "current": point(&found.current),
        "recommended": point(&found.best),
        "changes": recommend::changes(&found.current.settings, &found.best.settings)
            .iter()
            .map(|c| serde_json::json!({"field": c.field(), "from": c.from, "to": c.to}))
            .collect::<Vec<_>>(),
        "effects": report.effects.iter().map(|e| serde_json::json!({
            "field": e.change.field(), "without": e.without, "words": e.words,
        })).collect::<Vec<_>>(),
        "front": found.front.iter().map(point).collect::<Vec<_>>(),
        "sensitivity": report.sensitivity.iter().map(|s| serde_json::json!({
            "factor": s.factor,
            "score": s.score,
            "best_target": recommend::target_words(s.best_target),
        })).collect::<Vec<_>>(),
        "candidates": found.candidates,
        "pruned": found.pruned,
        "search_seconds": found.seconds,
        "candidates_per_second": found.candidates_per_second(),
        "syncs": report.syncs,
        "warnings": report.warnings,
        "manifest": manifest,
    })
}
