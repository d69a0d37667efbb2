//! `prom-adapter simulate --recommend` over a week of ingress traffic (a daily cycle and daily bursts) in a real Prometheus: the recommendation beats the shipped example HPA on replica-seconds without more time over the SLO, its manifest validates, and a plain `simulate` of that manifest replays exactly what the search scored.

use crate::common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Prometheus, Scrape, stdout_of};
use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

const DAY: i64 = 86_400;

/// Requests per second of Ingress `web` at Unix time `t`: 20 at night, 400 at 14:00 UTC, and a
/// 15-minute burst of 300 more each day at an hour that moves from day to day.
fn rate(t: i64) -> f64 {
    let day_phase = (t.rem_euclid(DAY)) as f64 / DAY as f64;
    let cycle =
        210.0 - 190.0 * (2.0 * std::f64::consts::PI * (day_phase - 14.0 / 24.0 + 0.5)).cos();
    let day = t.div_euclid(DAY);
    let burst_start = day * DAY + 3600 * (9 + (day * 5).rem_euclid(9));
    let burst = if (burst_start..burst_start + 900).contains(&t) {
        300.0
    } else {
        0.0
    };
    cycle + burst
}

/// The label set Prometheus stores for Ingress `web`'s request counter when it scrapes the
/// fixture cluster's ingress-nginx controller (job, instance, namespace and the
/// `exported_namespace` collision are Prometheus's).
fn scraped_labels(dir: &Path) -> Vec<(String, String)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let scrape = Scrape {
        history: 120,
        interval: 10,
        surge: Some(("web", now - 60, now - 30, 20.0, 40.0)),
        ..Scrape::default()
    };
    let prometheus = Prometheus::scraping(dir, scrape);
    let out = stdout_of(
        Command::new("curl")
            .args(["-fsS", "-G"])
            .arg(format!("{}/api/v1/series", prometheus.url()))
            .args([
                "--data-urlencode",
                r#"match[]=nginx_ingress_controller_requests{ingress="web"}"#,
            ]),
    );
    let answer: Value = serde_json::from_slice(&out).unwrap();
    let series = answer["data"].as_array().unwrap();
    assert_eq!(
        series.len(),
        1,
        "one counter for the surging Ingress: {answer}"
    );
    let labels = series[0].as_object().unwrap();
    assert_eq!(labels["exported_namespace"], "default", "{labels:?}");
    labels
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

/// A week of that counter, one sample every 15 s, ending at `end`, as OpenMetrics for promtool.
fn week_of_traffic(labels: &[(String, String)], start: i64, end: i64) -> String {
    let rendered = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect::<Vec<_>>()
        .join(",");
    let mut out = String::from(
        "# HELP nginx_ingress_controller_requests The total number of client requests\n# TYPE nginx_ingress_controller_requests unknown\n",
    );
    // A counter that has been up for a day before the week starts.
    let mut count: f64 = 1_000_000.0;
    let mut t = start;
    while t <= end {
        let _ = writeln!(
            out,
            "nginx_ingress_controller_requests{{{rendered}}} {} {t}",
            count.floor()
        );
        count += rate(t) * 15.0;
        t += 15;
    }
    out.push_str("# EOF\n");
    out
}

fn recommend(prometheus: &Prometheus, hpa: &Path, args: &[String]) -> Vec<u8> {
    stdout_of(
        Command::new(env!("CARGO_BIN_EXE_prom-adapter"))
            .arg("simulate")
            .arg(format!(
                "--config={}",
                repo("config/ingress-nginx.yaml").display()
            ))
            .arg(format!("--hpa={}", hpa.display()))
            .arg(format!("--prometheus-url={}", prometheus.url()))
            .args(args),
    )
}

#[test]
fn a_week_of_ingress_traffic_gets_a_cheaper_hpa_without_more_time_over_the_slo() {
    let dir = tempfile::tempdir().unwrap();
    let labels = scraped_labels(&dir.path().join("scrape"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let end = now / 15 * 15 - 3600;
    let start = end - 7 * DAY;
    let om = dir.path().join("week.om");
    std::fs::write(&om, week_of_traffic(&labels, start - 900, end)).unwrap();
    let prometheus = Prometheus::start_with_openmetrics(&dir.path().join("week"), om);
    let example = repo("charts/prom-adapter/examples/ingress-nginx-hpa.yaml");
    let range = [
        format!("--start={start}"),
        format!("--end={end}"),
        "--initial-replicas=2".to_owned(),
        "--slo=60@100".to_owned(),
    ];
    let args = |extra: &[&str]| -> Vec<String> {
        range
            .iter()
            .cloned()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };
    let report: Value = serde_json::from_slice(&recommend(
        &prometheus,
        &example,
        &args(&["--recommend", "--explain", "--output=json"]),
    ))
    .unwrap();
    let (current, best) = (&report["current"]["score"], &report["recommended"]["score"]);
    let number = |v: &Value| v.as_i64().unwrap();
    assert_eq!(report["syncs"], 7 * DAY / 15 + 1);
    assert!(report["feasible"].as_bool().unwrap(), "{report:#}");
    assert!(
        number(&best["replica_seconds"]) < number(&current["replica_seconds"]),
        "{report:#}"
    );
    assert!(
        number(&best["seconds_over_slo"]) <= number(&current["seconds_over_slo"]),
        "{report:#}"
    );
    assert!(number(&best["busiest_hour_events"]) <= 6);
    // Every changed setting is explained in words, measured.
    let changes = report["changes"].as_array().unwrap();
    assert!(!changes.is_empty());
    assert_eq!(report["effects"].as_array().unwrap().len(), changes.len());
    for effect in report["effects"].as_array().unwrap() {
        assert!(
            effect["words"]
                .as_str()
                .unwrap()
                .contains("replica-seconds"),
            "{effect}"
        );
    }
    assert_eq!(report["sensitivity"].as_array().unwrap().len(), 2);
    // A week is enough history: no warning says otherwise.
    assert_eq!(report["warnings"], serde_json::json!([]), "{report:#}");
    assert!(report["front"].as_array().unwrap().len() >= 2);
    assert!(report["candidates"].as_u64().unwrap() > 100);

    // The manifest is a valid autoscaling/v2 HPA…
    let yaml = String::from_utf8(recommend(
        &prometheus,
        &example,
        &args(&["--recommend", "--output=yaml"]),
    ))
    .unwrap();
    assert_eq!(yaml, {
        let manifest = report["manifest"].as_str().unwrap();
        let header: String = yaml.lines().take(2).map(|l| format!("{l}\n")).collect();
        format!("{header}{manifest}")
    });
    crate::chart::validate_for_kubernetes(&yaml, "the recommended HPA");
    // …and `simulate` of it replays exactly what the search scored.
    let recommended = dir.path().join("recommended.yaml");
    std::fs::write(&recommended, &yaml).unwrap();
    let replay: Value = serde_json::from_slice(&recommend(
        &prometheus,
        &recommended,
        &args(&["--output=json"])[..3]
            .iter()
            .cloned()
            .chain(["--output=json".to_owned()])
            .collect::<Vec<_>>(),
    ))
    .unwrap();
    let warm_up = report["objective"]["warm_up_seconds"].as_i64().unwrap();
    let replica_seconds: i64 = replay["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| number(&s["time"]) >= start + warm_up)
        .map(|s| number(&s["replicas"]) * 15)
        .sum();
    assert_eq!(replica_seconds, number(&best["replica_seconds"]));

    // The last two days are enough for what the other outputs show. The SVG draws the metric and
    // both replays over the same traffic.
    let two_days = |output: &str| {
        recommend(
            &prometheus,
            &example,
            &[
                format!("--start={}", end - 2 * DAY),
                format!("--end={end}"),
                "--recommend".to_owned(),
                format!("--output={output}"),
            ],
        )
    };
    let svg = dir.path().join("both.svg");
    std::fs::write(&svg, two_days("svg")).unwrap();
    let drawn: Value = serde_json::from_slice(&stdout_of(
        Command::new("python3")
            .args([
                "-c",
                "import sys, json, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); n = '{http://www.w3.org/2000/svg}'; print(json.dumps({'paths': len(r.findall(n + 'path')), 'legend': [t.text for g in r.iter(n + 'g') if g.get('class') == 'legend' for t in g.iter(n + 'text')], 'ticks': [t.text for t in r.iter(n + 'text') if t.get('class') == 'replica-tick']}))",
            ])
            .arg(&svg),
    ))
    .unwrap();
    assert_eq!(drawn["paths"], 3, "{drawn}");
    assert_eq!(
        drawn["legend"],
        serde_json::json!([
            "nginx_ingress_requests_per_second (ingress.networking.k8s.io web)",
            "replicas today (right axis)",
            "replicas recommended (right axis)"
        ])
    );
    assert!(
        drawn["ticks"].as_array().unwrap().iter().all(|t| t
            .as_str()
            .unwrap()
            .parse::<u32>()
            .is_ok()),
        "{drawn}"
    );
    // The table names what was searched and how fast; two days are too few, and it says so.
    let table = String::from_utf8(two_days("table")).unwrap();
    assert!(table.contains("candidates/s"), "{table}");
    assert!(table.contains("Pareto front"), "{table}");
    assert!(table.contains("fewer than three daily cycles"), "{table}");
}
