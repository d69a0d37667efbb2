//! The `--recommend` search over one week at a 15 s sync (40,321 syncs per candidate): how many
//! candidates it replays, how long it takes and how many per second, on generated ingress traffic
//! (a daily cycle with a daily burst) for the shipped example HPA.

use std::time::Instant;

use prom_adapter_backend::prometheus::RangeSeries;
use prom_adapter_tools::simulate::hpa;
use prom_adapter_tools::simulate::recommend::{self, Objective, Space};
use prom_adapter_tools::simulate::replay::{MetricHistory, Options, PodModel, Prepared};

const DAY: i64 = 86_400;

fn rate(t: i64) -> f64 {
    let phase = t.rem_euclid(DAY) as f64 / DAY as f64;
    let cycle = 210.0 - 190.0 * (2.0 * std::f64::consts::PI * (phase - 14.0 / 24.0 + 0.5)).cos();
    let day = t.div_euclid(DAY);
    let burst = day * DAY + 3600 * (9 + (day * 5).rem_euclid(9));
    cycle
        + if (burst..burst + 900).contains(&t) {
            300.0
        } else {
            0.0
        }
}

pub fn recommend() {
    let manifest = include_str!("../../charts/prom-adapter/examples/ingress-nginx-hpa.yaml");
    let hpa = hpa::parse(manifest).expect("the shipped example parses");
    let start = 1_790_000_000 / DAY * DAY;
    let end = start + 7 * DAY;
    let options = Options {
        start,
        end,
        sync_seconds: 15,
        initial_replicas: 2,
        pod_model: PodModel::Conserving,
        pod_requests: Default::default(),
        oscillation_window_seconds: 600,
    };
    let history = MetricHistory {
        metric: hpa.metrics[0].clone(),
        query: String::new(),
        pod_label: None,
        series: vec![RangeSeries {
            labels: Default::default(),
            points: (start..=end)
                .step_by(15)
                .map(|t| (t as f64, rate(t)))
                .collect(),
        }],
    };
    let objective = Objective {
        slo_bound: 60.0,
        slo_percent: 99.0,
        max_events_per_hour: 6,
        warm_up_seconds: 600,
    };
    let space = Space {
        min_replicas_floor: 2,
        tune_tolerance: false,
    };
    println!(
        "\n(e) simulate --recommend: one week at a 15 s sync, the shipped example HPA, SLO 60 req/s per replica for 99% of the time, at most 6 scale events an hour; {} threads",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<28} {:>10} {:>10} {:>12} {:>10} {:>14} {:>14}",
        "search",
        "candidates",
        "stopped",
        "candidates/s",
        "seconds",
        "replica-h now",
        "replica-h rec"
    );
    let began = Instant::now();
    let prepared = Prepared::new(&hpa, std::slice::from_ref(&history), &options, 1.0);
    let prepare_seconds = began.elapsed().as_secs_f64();
    for (label, tune_tolerance) in [("windows and policies", false), ("… and tolerances", true)] {
        let space = Space {
            tune_tolerance,
            ..space.clone()
        };
        let found = recommend::search(&hpa, &prepared, &options, &objective, &space);
        println!(
            "{label:<28} {:>10} {:>10} {:>12.0} {:>10.2} {:>14.1} {:>14.1}",
            found.candidates,
            found.pruned,
            found.candidates_per_second(),
            found.seconds,
            found.current.score.replica_seconds as f64 / 3600.0,
            found.best.score.replica_seconds as f64 / 3600.0,
        );
    }
    println!(
        "(preparing the week's observations once: {:.1} ms; the goal is a search under 60 s)",
        prepare_seconds * 1000.0
    );
}
