//! `prom-adapter simulate` against a real Prometheus holding a step change in ingress request rate: the replay scales up within a few syncs, scales down only after the stabilization window, explains why, and draws an SVG that headless Chromium renders.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Prometheus, Scrape, stdout_of};
use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A Prometheus scraping the fixture cluster, where Ingress `web` serves 20 req/s, and 600 req/s
/// from 14 to 34 minutes into the last 50. Returns it with (surge start, surge end).
fn step_change(dir: &Path) -> (Prometheus, i64, i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let start = now - 3000;
    let (surge_from, surge_to) = (start + 840, start + 2040);
    let scrape = Scrape {
        history: 3000,
        interval: 10,
        surge: Some(("web", surge_from, surge_to, 20.0, 600.0)),
        ..Scrape::default()
    };
    (Prometheus::scraping(dir, scrape), surge_from, surge_to)
}

/// Runs `simulate` with the ingress-nginx rules and the chart's example HPA.
fn simulate(prometheus: &Prometheus, args: &[String]) -> String {
    simulate_with(
        &repo("config/ingress-nginx.yaml"),
        &repo("charts/prom-adapter/examples/ingress-nginx-hpa.yaml"),
        prometheus,
        args,
    )
}

fn simulate_with(rules: &Path, hpa: &Path, prometheus: &Prometheus, args: &[String]) -> String {
    String::from_utf8(stdout_of(
        Command::new(env!("CARGO_BIN_EXE_prom-adapter"))
            .arg("simulate")
            .arg(format!("--config={}", rules.display()))
            .arg(format!("--hpa={}", hpa.display()))
            .arg(format!("--prometheus-url={}", prometheus.url()))
            .args(args),
    ))
    .unwrap()
}

#[test]
fn a_surge_scales_up_within_syncs_and_down_only_after_the_stabilization_window() {
    let dir = tempfile::tempdir().unwrap();
    let (prometheus, surge_from, surge_to) = step_change(dir.path());
    let range = [
        format!("--start={}", surge_from - 600),
        format!("--end={}", surge_to + 900),
    ];
    let json: Value = serde_json::from_str(&simulate(
        &prometheus,
        &[range[0].clone(), range[1].clone(), "--output=json".into()],
    ))
    .unwrap();
    assert_eq!(
        json["queries"][0],
        "sum(rate(nginx_ingress_controller_requests{exported_namespace=\"default\",ingress=\"web\"}[2m])) by (ingress)",
        "the PromQL serve runs for this HPA metric"
    );
    let steps = json["steps"].as_array().unwrap();
    let replicas = |step: &Value| step["replicas"].as_i64().unwrap();
    let time = |step: &Value| step["time"].as_i64().unwrap();
    // 20 req/s against averageValue 50 asks for 1 replica: minReplicas 2 holds.
    let before: Vec<&Value> = steps.iter().filter(|s| time(s) < surge_from).collect();
    assert!(before.iter().all(|s| replicas(s) == 2), "{before:#?}");
    // A fresh controller remembers the starting size for one window (the legacy 300 s), which
    // holds the recommendation of 1 at 2; after that, minReplicas is what holds it.
    assert_eq!(steps[0]["reason"], "ScaleDownStabilized");
    assert!(
        before
            .iter()
            .filter(|s| time(s) > steps[0]["time"].as_i64().unwrap() + 300)
            .all(|s| s["reason"] == "TooFewReplicas"),
        "{before:#?}"
    );

    // The rate over [2m] needs two syncs to leave the ±10% band: a scale-up by surge + 45 s,
    // each step at most max(2 × current, 4) (no behavior: the legacy path).
    let first_up = steps.iter().find(|s| replicas(s) > 2).expect("a scale-up");
    assert!(
        time(first_up) > surge_from && time(first_up) <= surge_from + 45,
        "first scale-up at +{} s",
        time(first_up) - surge_from
    );
    for step in steps {
        let current = step["current"].as_i64().unwrap();
        assert!(replicas(step) <= (2 * current).max(4), "{step}");
    }
    // 600 req/s / 50 = 12. When the ramp of the [2m] rate lands a sync at a rate in (500, 550],
    // the HPA steps to 11 and stays there: 600 / (50 × 11) = 1.09 is inside its ±10% tolerance.
    // Which sync sees which rate depends on the scrape phase, so both are right.
    let peak = steps.iter().map(replicas).max().unwrap();
    assert!((11..=12).contains(&peak), "peak {peak}");

    // After the surge the recommendations fall at once, but the 300 s window keeps the peak of the
    // surge's last sync: no scale-down before surge end + 300 s.
    let first_down = steps
        .iter()
        .find(|s| time(s) > surge_to && replicas(s) < s["current"].as_i64().unwrap())
        .expect("a scale-down");
    let delay = time(first_down) - surge_to;
    assert!(
        (300..=330).contains(&delay),
        "first scale-down {delay} s after the surge"
    );
    let held = steps.iter().find(|s| time(s) == surge_to + 150).unwrap();
    assert_eq!(held["reason"], "ScaleDownStabilized", "{held}");
    assert_eq!(replicas(held), peak);
    assert_eq!(replicas(steps.last().unwrap()), 2, "back to minReplicas");
    let summary = &json["summary"];
    assert!(summary["scale_ups"].as_u64().unwrap() >= 3, "{summary}");
    assert!(summary["scale_downs"].as_u64().unwrap() >= 1);
    assert_eq!(summary["oscillations"], 0);

    // --explain-at names the window and when replicas can fall.
    let explanation = simulate(
        &prometheus,
        &[
            range[0].clone(),
            range[1].clone(),
            format!("--explain-at={}", surge_to + 150),
        ],
    );
    let fall = prom_adapter_tools::simulate::render::clock(time(first_down));
    assert!(
        explanation.contains("inside the 300 s scale-down stabilization window"),
        "{explanation}"
    );
    assert!(
        explanation.contains(&format!("the recommendation of {peak} from")),
        "{explanation}"
    );
    assert!(
        explanation.contains(&format!("replicas can fall at {fall}")),
        "expected {fall}: {explanation}\n{:#?}",
        steps
            .iter()
            .filter(|s| (surge_to - 30..=surge_to + 360).contains(&time(s)))
            .map(|s| (
                prom_adapter_tools::simulate::render::clock(time(s)),
                s["desired"].clone(),
                replicas(s),
                s["reason"].clone()
            ))
            .collect::<Vec<_>>()
    );
}

#[test]
fn the_svg_is_xml_that_chromium_renders_with_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let (prometheus, surge_from, surge_to) = step_change(dir.path());
    let svg = simulate(
        &prometheus,
        &[
            format!("--start={}", surge_from - 300),
            format!("--end={}", surge_to + 900),
            "--output=svg".into(),
        ],
    );
    let file = dir.path().join("simulation.svg");
    std::fs::write(&file, &svg).unwrap();
    // Well-formed XML with the SVG namespace.
    let parsed = stdout_of(
        Command::new("python3")
            .args([
                "-c",
                "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); print(r.tag, r.get('width'), r.get('height'), len(r.findall('{http://www.w3.org/2000/svg}path')))",
            ])
            .arg(&file),
    );
    assert_eq!(
        String::from_utf8(parsed).unwrap().trim(),
        "{http://www.w3.org/2000/svg}svg 960 440 3"
    );
    // The replicas axis has whole-number ticks only, and the legend says what each line is: the
    // Object AverageValue target is compared with the total, so its line is target × replicas.
    let texts: Value = serde_json::from_slice(&stdout_of(
        Command::new("python3")
            .args([
                "-c",
                "import sys, json, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); n = '{http://www.w3.org/2000/svg}'; print(json.dumps({'ticks': [t.text for t in r.iter(n + 'text') if t.get('class') == 'replica-tick'], 'legend': [t.text for g in r.iter(n + 'g') if g.get('class') == 'legend' for t in g.iter(n + 'text')]}))",
            ])
            .arg(&file),
    ))
    .unwrap();
    let ticks: Vec<&str> = texts["ticks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(ticks.len() >= 3, "{ticks:?}");
    assert!(
        ticks.iter().all(|t| t.parse::<u32>().is_ok()),
        "whole replica ticks: {ticks:?}"
    );
    let numbers: Vec<u32> = ticks.iter().map(|t| t.parse().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[1] > w[0]), "{numbers:?}");
    assert!(
        *numbers.last().unwrap() >= 12,
        "the axis reaches the peak: {numbers:?}"
    );
    let legend: Vec<&str> = texts["legend"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        legend,
        [
            "target 50 × replicas",
            "nginx_ingress_requests_per_second (ingress.networking.k8s.io web)",
            "replicas (right axis)"
        ]
    );

    // Headless Chromium, with the flags this machine's closed network needs.
    let png = dir.path().join("simulation.png");
    let profile = dir.path().join("chromium-profile");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=960,440",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", file.display()))
        .output()
        .expect("chromium is installed (make deps)");
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let colours = stdout_of(
        Command::new("python3")
            .arg(repo("tests/fixtures/png_colors.py"))
            .arg(&png),
    );
    let image: Value = serde_json::from_slice(&colours).unwrap();
    assert_eq!(
        (image["width"].as_u64(), image["height"].as_u64()),
        (Some(960), Some(440))
    );
    let counts = image["colours"].as_object().unwrap();
    let pixels = |colour: &str| counts.get(colour).and_then(Value::as_u64).unwrap_or(0);
    let total: u64 = counts.values().filter_map(Value::as_u64).sum();
    assert!(
        pixels("#ffffff") < total * 98 / 100,
        "the screenshot is blank: {counts:?}"
    );
    // The metric (blue), target (orange) and replicas (green) lines are all drawn. Anti-aliasing
    // shades a varying share of a line's pixels: count those within a few steps of its colour.
    let rgb = |hex: &str| -> Option<[i32; 3]> {
        let hex = hex.strip_prefix('#')?;
        let channel = |i: usize| i32::from_str_radix(hex.get(i..i + 2)?, 16).ok();
        Some([channel(0)?, channel(2)?, channel(4)?])
    };
    let near = |colour: &str| -> u64 {
        let target = rgb(colour).unwrap();
        counts
            .iter()
            .filter(|(hex, _)| {
                rgb(hex).is_some_and(|c| (0..3).all(|i| (c[i] - target[i]).abs() <= 48))
            })
            .filter_map(|(_, n)| n.as_u64())
            .sum()
    };
    for (name, colour) in [
        ("metric", "#1f77b4"),
        ("target", "#ff7f0e"),
        ("replicas", "#2ca02c"),
    ] {
        assert!(
            near(colour) > 200,
            "no {name} line ({colour}): {} pixels near it",
            near(colour)
        );
    }
}

#[test]
fn pods_and_resource_metrics_use_the_targets_pods_and_the_chosen_pod_model() {
    let dir = tempfile::tempdir().unwrap();
    let scrape = Scrape {
        history: 600,
        ..Scrape::default()
    };
    let prometheus = Prometheus::scraping(dir.path(), scrape);
    let hpa = dir.path().join("hpa.yaml");
    std::fs::write(
        &hpa,
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web, namespace: default}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  maxReplicas: 10\n  metrics:\n  - type: Pods\n    pods:\n      metric: {name: cpu_usage}\n      target: {type: AverageValue, averageValue: 100m}\n  - type: Resource\n    resource:\n      name: cpu\n      target: {type: Utilization, averageUtilization: 50}\n",
    )
    .unwrap();
    let run = |extra: &[&str]| -> Value {
        let args: Vec<String> = ["--start=now-2m", "--end=now-1m", "--output=json"]
            .iter()
            .chain(extra)
            .map(|a| a.to_string())
            .collect();
        let out = simulate_with(&repo("config/demo.yaml"), &hpa, &prometheus, &args);
        serde_json::from_str(&out).unwrap()
    };
    let observed = run(&["--pod-request=cpu=250m", "--initial-replicas=2"]);
    // The web Deployment's two pods, not the `api` pod or other namespaces.
    for query in observed["queries"].as_array().unwrap() {
        let query = query.as_str().unwrap();
        assert!(
            query.contains(
                r#"namespace="default",pod=~"web\\-6d4cf56db6\\-abcde|web\\-6d4cf56db6\\-fghij""#
            ),
            "{query}"
        );
    }
    let step = &observed["steps"][0];
    // cpu_usage (the demo's default rules: the pod's containers) is 0.25 cores per pod: ratio
    // 2.5 → ceil(2.5 × 2) = 5. CPU utilization of the containers: 0.25 of 250m = 100% against
    // 50% → ceil(2 × 2) = 4. The maximum, 5, is limited to max(2 × 2, 4) = 4.
    assert_eq!(step["metrics"][0]["proposal"], 5, "{step:#}");
    assert_eq!(step["metrics"][1]["proposal"], 4, "{step:#}");
    assert_eq!(
        (step["desired"].as_i64(), step["replicas"].as_i64()),
        (Some(5), Some(4))
    );
    assert_eq!(step["reason"], "ScaleUpLimit");
    assert_eq!(observed["pod_model"], "observed");

    // Without the pods' requests, Utilization has no value: the Pods metric still scales up.
    let conserving = run(&["--pod-model=conserving", "--initial-replicas=4"]);
    let step = &conserving["steps"][0];
    assert!(
        step["metrics"][1]["error"]
            .as_str()
            .unwrap()
            .contains("--pod-request cpu="),
        "{step:#}"
    );
    // Conserving: 2 × 0.25 = 0.5 cores over 4 pods = 0.125 each → ratio 1.25 → ceil(5) = 5.
    assert_eq!(step["metrics"][0]["proposal"], 5, "{step:#}");
    assert_eq!(conserving["pod_model"], "conserving");
}
