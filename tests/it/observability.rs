//! The adapter's own observability as shipped: the Grafana dashboard's queries run on a real Prometheus that scrapes a running adapter, and every metric they read is in the adapter's `/metrics`.

use crate::common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::{Adapter, Prometheus, Scrape};

fn dashboard() -> serde_json::Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/prom-adapter/files/dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every PromQL expression of the dashboard: its panels' targets and its variables' queries.
fn expressions(dashboard: &serde_json::Value) -> Vec<String> {
    let mut exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().unwrap().iter())
        .map(|target| target["expr"].as_str().unwrap().to_owned())
        .collect();
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]["query"].as_str() {
            // label_values(EXPR, label) is Grafana's; its EXPR is PromQL.
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.rsplit_once(','))
                .map(|(expr, _)| expr.to_owned())
                .unwrap_or_else(|| query.to_owned());
            exprs.push(inner);
        }
    }
    exprs
}

/// The metric names an expression reads (`prom_adapter_*`), by their text.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("prom_adapter_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

#[test]
fn every_dashboard_query_runs_on_a_prometheus_scraping_the_adapter_and_reads_exposed_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "prom-adapter");
    let exprs = expressions(&dashboard);
    assert!(exprs.len() >= 15, "{exprs:?}");

    // An adapter serving the demo rules over the fixture cluster's Prometheus, asked a few
    // requests so that its request histograms have series.
    let source = Prometheus::scraping(dir.path(), Scrape::default());
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo.yaml");
    let adapter_dir = dir.path().join("adapter");
    std::fs::create_dir_all(&adapter_dir).unwrap();
    let adapter = Adapter::start(&adapter_dir, &rules, &source.url(), &[]);
    for path in [
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/cpu_usage",
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_consumer_lag",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
    ] {
        assert_eq!(adapter.curl(path).0, 200, "{path}");
    }
    // Every metric the dashboard reads is exposed.
    let (_, exposition) = adapter.curl("/metrics");
    let exposed: BTreeSet<&str> = exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let read: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    let missing: Vec<&String> = read
        .iter()
        .filter(|m| !exposed.contains(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "not in /metrics: {missing:?}\n{exposition}"
    );

    // A second Prometheus scrapes the adapter as a ServiceMonitor would (job, instance), and
    // answers every query.
    let scraper_dir = dir.path().join("scraper");
    std::fs::create_dir_all(&scraper_dir).unwrap();
    let scraper = Prometheus::with_config(
        &scraper_dir,
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n- job_name: prom-adapter\n  scheme: https\n  tls_config: {{insecure_skip_verify: true}}\n  static_configs:\n  - targets: ['127.0.0.1:{}']\n",
            adapter.port
        ),
    );
    let query = |expr: &str| -> serde_json::Value {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-G", "--data-urlencode"])
            .arg(format!("query={expr}"))
            .arg(format!("{}/api/v1/query", scraper.url()))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{expr}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
    };
    // Three good scrapes, so that rates have samples to work with.
    assert!(
        common::wait_for(|| {
            query("sum_over_time(up{job=\"prom-adapter\"}[1m]) >= 3")["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        }),
        "the adapter was not scraped three times"
    );
    let mut answered = 0;
    for expr in &exprs {
        // Grafana's variables, as "All" and a minute's rate interval substitute them.
        let promql = expr
            .replace("$__rate_interval", "1m")
            .replace("$namespace", ".*")
            .replace("$job", ".*");
        let answer = query(&promql);
        assert_eq!(answer["status"], "success", "{promql}: {answer}");
        if !answer["data"]["result"].as_array().unwrap().is_empty() {
            answered += 1;
        }
    }
    // Most panels show data already; the others (refused calls, failed reloads, p99 of rare
    // routes) wait for their events.
    assert!(
        answered * 2 >= exprs.len(),
        "{answered} of {} queries returned data",
        exprs.len()
    );
}
