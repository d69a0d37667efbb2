//! Benchmarks printed as tables, each beside its reference point:
//! (a) latency of one object metric through the adapter against the same PromQL sent straight to
//!     Prometheus, at concurrency 1 and 32;
//! (b) discovery of a 1,000,000-series `/api/v1/series` answer served from a file, against `curl`
//!     downloading the same bytes, with the adapter's peak RSS;
//! (c) `metrics.k8s.io` pods across 50 namespaces × 40 pods, against the sum of the Prometheus
//!     queries the adapter runs for it;
//! (d) fan-in: 100, 500 and 1,500 HPAs polling through the adapter with query sharing on and off,
//!     against each HPA's query sent straight to Prometheus (`support/fanin.rs`); (d2) the same
//!     in a cluster (stand-in kube-apiserver), half the HPAs on Pods metrics by label selector,
//!     counting the LISTs the adapter sends;
//! (e) `simulate --recommend`: candidates per second and the search time for one week at 15 s
//!     (`support/recommend.rs`), against the 60 s the search must stay under;
//! (f) a token flood: the HPA controller's latency while 256 connections send random tokens,
//!     beside no flood and a flood without tokens (`support/flood.rs`);
//! (g) amplification: the HPA controller's latency while another user's requests split into as
//!     many queries as the bounds allow, beside no attack (`support/amplification.rs`).
//!
//! Run with `make bench` (release build). Needs Debian's prometheus package (`make deps`).

#[path = "support/amplification.rs"]
mod amplification;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/fanin.rs"]
mod fanin;
#[path = "support/flood.rs"]
mod flood;
#[path = "support/recommend.rs"]
mod recommend;

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Adapter, Prometheus};

const OBJECT_PATH: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second";
const DIRECT_QUERY: &str = r#"sum(rate(nginx_ingress_controller_requests{namespace="default",service="web"}[2m])) by (service)"#;

fn main() {
    prom_adapter_serve::server::install_crypto_provider();
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if only.as_deref().is_none_or(|o| "latency".contains(o)) {
        runtime.block_on(latency());
    }
    if only.as_deref().is_none_or(|o| "discovery".contains(o)) {
        discovery();
    }
    if only.as_deref().is_none_or(|o| "pods".contains(o)) {
        runtime.block_on(pods());
    }
    if only.as_deref().is_none_or(|o| "fanin".contains(o)) {
        runtime.block_on(fanin::fanin());
    }
    if only.as_deref().is_none_or(|o| "fanin-cluster".contains(o)) {
        runtime.block_on(fanin::fanin_cluster());
    }
    if only.as_deref().is_none_or(|o| "recommend".contains(o)) {
        recommend::recommend();
    }
    if only.as_deref().is_none_or(|o| "flood".contains(o)) {
        runtime.block_on(flood::flood());
    }
    if only.as_deref().is_none_or(|o| "amplification".contains(o)) {
        runtime.block_on(amplification::amplification());
    }
}

struct Stats {
    requests: usize,
    median_ms: f64,
    p99_ms: f64,
}

/// Sends `requests` GETs to each URL from `concurrency` tasks, alternating between the URLs
/// request by request so that both see the same load and the same Prometheus state.
async fn load(
    client: &reqwest::Client,
    urls: &[&str],
    concurrency: usize,
    requests: usize,
) -> Vec<Stats> {
    let per_task = (requests / concurrency).max(1);
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let client = client.clone();
            let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
            tokio::spawn(async move {
                let mut latencies = vec![Vec::with_capacity(per_task); urls.len()];
                for i in 0..per_task * urls.len() {
                    // Rotate the starting URL per task so that neither always goes first.
                    let which = (i + task) % urls.len();
                    let began = Instant::now();
                    let response = client.get(&urls[which]).send().await.expect("request");
                    assert!(
                        response.status().is_success(),
                        "{}: {}",
                        urls[which],
                        response.status()
                    );
                    let body = response.bytes().await.expect("body");
                    assert!(!body.is_empty());
                    latencies[which].push(began.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all: Vec<Vec<Duration>> = vec![Vec::new(); urls.len()];
    for task in tasks {
        for (which, latencies) in task.await.unwrap().into_iter().enumerate() {
            all[which].extend(latencies);
        }
    }
    all.into_iter()
        .map(|mut latencies| {
            latencies.sort();
            let at = |q: f64| {
                latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)]
                    .as_secs_f64()
                    * 1000.0
            };
            Stats {
                requests: latencies.len(),
                median_ms: at(0.5),
                p99_ms: at(0.99),
            }
        })
        .collect()
}

async fn latency() {
    // Scale 1: two series per status, the cheapest possible query, so the adapter's fixed cost
    // shows in full. Scale 10: 200 series, a Service behind a few ingress controllers.
    // Scale 100: 2,000 series, a busy ingress.
    for (scale, window, budget) in [
        (1u32, 7 * 3600u64, 2000usize),
        (10, 3 * 3600, 2000),
        (100, 2 * 3600, 300),
    ] {
        latency_at(scale, window, budget).await;
    }
}

async fn latency_at(scale: u32, window: u64, budget: usize) {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start_scaled(dir.path(), window, scale);
    // The backfilled series carry ingress-nginx's own label names, as with honorLabels: true.
    let rules = dir.path().join("ingress-nginx.yaml");
    std::fs::write(&rules, common::ingress_rules_honoring_labels()).unwrap();
    // Every request its own Prometheus query (no kept answers), so that the figures are the
    // adapter's overhead over the same query, not the cache's savings.
    let adapter = Adapter::start(
        dir.path(),
        &rules,
        &prometheus.url(),
        &["--metrics-relist-interval=10m", "--query-cache-ttl=0"],
    );
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let direct = {
        let mut url = reqwest::Url::parse(&format!("{}/api/v1/query", prometheus.url())).unwrap();
        url.query_pairs_mut().append_pair("query", DIRECT_QUERY);
        url.to_string()
    };
    let through = format!("https://127.0.0.1:{}{OBJECT_PATH}", adapter.port);
    // The floor of any answer through the adapter: one HTTPS round trip and no Prometheus call.
    let floor = format!("https://127.0.0.1:{}/livez", adapter.port);

    let series = if scale == 1 { 2 } else { 20 * scale };
    println!(
        "\n(a) one object metric summing {series} series: adapter vs the same PromQL sent straight to Prometheus 2.42"
    );
    println!(
        "{:<34} {:>5} {:>9} {:>11} {:>9}",
        "target", "conc.", "requests", "median ms", "p99 ms"
    );
    for concurrency in [1usize, 32] {
        let requests = if concurrency == 1 { budget } else { budget * 3 };
        // Warm up connections and caches on both paths.
        load(
            &client,
            &[&direct, &through, &floor],
            concurrency,
            concurrency * 5,
        )
        .await;
        let stats = load(&client, &[&direct, &through, &floor], concurrency, requests).await;
        let (d, a, f) = (&stats[0], &stats[1], &stats[2]);
        for (name, s) in [
            ("Prometheus /api/v1/query (HTTP)", d),
            ("adapter custom metric (HTTPS)", a),
            ("  adapter /livez (HTTPS, no query)", f),
        ] {
            println!(
                "{name:<34} {concurrency:>5} {:>9} {:>11.3} {:>9.3}",
                s.requests, s.median_ms, s.p99_ms
            );
        }
        println!(
            "{:<34} {concurrency:>5} {:>9} {:>10.1}% {:>8.1}%",
            "adapter overhead",
            "",
            (a.median_ms / d.median_ms - 1.0) * 100.0,
            (a.p99_ms / d.p99_ms - 1.0) * 100.0
        );
    }
    let (handler, inner) = adapter_breakdown(&adapter);
    println!(
        "inside the adapter, mean per request: {handler:.3} ms, of which {inner:.3} ms waiting for Prometheus"
    );
}

/// Mean milliseconds per request, cumulative since start, from the adapter's own histograms:
/// (the custom metrics handler, its call to Prometheus).
fn adapter_breakdown(adapter: &Adapter) -> (f64, f64) {
    let (_, text) = adapter.curl("/metrics");
    let mean = |prefix: &str| {
        let value = |suffix: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with(&format!("{prefix}_{suffix}{{")) && l.contains("custom.metrics")
                        || l.starts_with(&format!(
                            "{prefix}_{suffix}{{backend=\"default\",endpoint=\"/api/v1/query\""
                        ))
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        value("sum") / value("count").max(1.0) * 1000.0
    };
    (
        mean("prom_adapter_http_request_duration_seconds"),
        mean("prom_adapter_prometheus_request_duration_seconds"),
    )
}

/// Writes a `/api/v1/series` answer with `count` series: 100 metric names, a few label-set
/// shapes, and many distinct label values, like a busy cluster's cAdvisor and app metrics.
fn write_series_file(path: &Path, count: usize) -> u64 {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    out.write_all(br#"{"status":"success","data":["#).unwrap();
    for i in 0..count {
        if i > 0 {
            out.write_all(b",").unwrap();
        }
        let metric = i % 100;
        let pod = i / 100;
        let extra = if metric % 3 == 0 {
            r#","le":"0.5""#
        } else {
            ""
        };
        write!(
            out,
            r#"{{"__name__":"app_metric_{metric}_total","namespace":"ns-{}","pod":"app-{pod:07}-x7k2p","container":"app","instance":"10.{}.{}.{}:8080","job":"kubernetes-pods"{extra}}}"#,
            pod % 50,
            (pod >> 16) & 255,
            (pod >> 8) & 255,
            pod & 255
        )
        .unwrap();
    }
    out.write_all(b"]}").unwrap();
    out.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// Serves one file for every GET, as a stand-in Prometheus whose `/api/v1/series` answer is fixed.
fn serve_file(path: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let path = Arc::new(path);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let mut file = std::fs::File::open(&*path).unwrap();
                let len = file.metadata().unwrap().len();
                let mut stream = stream;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
                );
                stream.write_all(head.as_bytes()).unwrap();
                let _ = std::io::copy(&mut file, &mut stream);
            });
        }
    });
    port
}

pub(crate) fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        / 1024.0
}

fn discovery() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("series.json");
    let series = 1_000_000;
    let bytes = write_series_file(&file, series);
    let decode_only = {
        let body = std::fs::read(&file).unwrap();
        let began = Instant::now();
        // In 64 KiB chunks, as the body arrives from the network.
        let mut decoder = prom_adapter_backend::prometheus::SeriesDecoder::default();
        for chunk in body.chunks(64 * 1024) {
            decoder.feed(chunk).unwrap();
        }
        decoder.finish().unwrap();
        began.elapsed().as_secs_f64()
    };
    let port = serve_file(file);
    let url = format!("http://127.0.0.1:{port}/api/v1/series?match[]=x");

    let mut curl_times = Vec::new();
    for _ in 0..3 {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{time_total}", &url])
            .output()
            .unwrap();
        curl_times.push(String::from_utf8_lossy(&out.stdout).parse::<f64>().unwrap());
    }
    curl_times.sort_by(f64::total_cmp);

    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n- seriesQuery: '{__name__=~\"app_metric_.*\"}'\n  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}\n  name: {matches: ^(.*)_total$}\n  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)\n",
    )
    .unwrap();
    let adapter = Adapter::start(
        dir.path(),
        &rules,
        &format!("http://127.0.0.1:{port}"),
        &[
            "--metrics-relist-interval=1s",
            "--metrics-max-age=1m",
            "--prometheus-timeout=60s",
            "--log-format=json",
        ],
    );
    // Readiness means one full discovery is done; wait for two more.
    let deadline = Instant::now() + Duration::from_secs(120);
    let durations = loop {
        let log = std::fs::read_to_string(&adapter.log).unwrap();
        let durations: Vec<f64> = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["fields"]["message"] == "discovery finished")
            .filter_map(|v| v["fields"]["elapsed_ms"].as_f64())
            .collect();
        if durations.len() >= 3 || Instant::now() > deadline {
            break durations;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let discovered = adapter.get_json("/apis/custom.metrics.k8s.io/v1beta2");
    let metrics = discovered["resources"].as_array().map_or(0, Vec::len);
    let rss = peak_rss_mib(adapter.pid());
    if durations.is_empty() {
        println!(
            "\n(b) discovery: no relist finished within 120 s; see {}",
            adapter.log.display()
        );
        return;
    }
    let mut sorted = durations.clone();
    sorted.sort_by(f64::total_cmp);

    println!(
        "\n(b) discovery of one /api/v1/series answer: {series} series, {:.1} MiB of JSON, served from a file",
        bytes as f64 / 1048576.0
    );
    println!("{:<44} {:>12}", "measure", "value");
    println!(
        "{:<44} {:>11.3}s",
        "curl download of the same bytes (median of 3)", curl_times[1]
    );
    println!(
        "{:<44} {:>11.3}s",
        "adapter relist: fetch + decode + registry (median)",
        sorted[sorted.len() / 2] / 1000.0
    );
    println!(
        "{:<44} {:>11.3}s",
        "  decoding alone, from memory (in this process)", decode_only
    );
    println!("{:<44} {:>12}", "adapter relists measured", durations.len());
    println!("{:<44} {:>9.1}MiB", "adapter peak RSS (VmHWM)", rss);
    println!("{:<44} {:>12}", "custom metrics discovered", metrics);
}

/// The PromQL the adapter runs for an all-namespaces pod list: the object query of `--standalone`
/// (which pods exist) and, per namespace, the CPU and memory queries, built by the library
/// itself so that they are exactly the adapter's.
fn pod_list_queries(rules_path: &Path, pods: &[(String, String)]) -> Vec<String> {
    use prom_adapter_core::model::GroupResource;
    use prom_adapter_core::plan::{QueryShaping, usage_queries};
    use prom_adapter_core::resources::ResourceTable;
    let text = std::fs::read_to_string(rules_path).unwrap();
    let rules = prom_adapter_core::config::parse_rules(&text, "demo").unwrap();
    let resource = rules.resource.expect("resourceRules");
    let table = ResourceTable::builtin();
    let mut by_namespace: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (namespace, name) in pods {
        by_namespace
            .entry(namespace)
            .or_default()
            .push(name.clone());
    }
    let mut queries = vec![
        prom_adapter_provider::resource_objects::combinations_query(&["namespace", "pod"]).unwrap(),
    ];
    for (namespace, names) in &by_namespace {
        for rule in [&resource.cpu, &resource.memory] {
            let planned = usage_queries(
                rule,
                &table,
                &GroupResource::new("", "pods"),
                Some(namespace),
                names,
                QueryShaping::default(),
            )
            .unwrap();
            queries.extend(planned.queries);
        }
    }
    queries
}

async fn pods() {
    const NAMESPACES: u32 = 50;
    const PODS: u32 = 40;
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start_with_pods(dir.path(), 2 * 3600, NAMESPACES, PODS);
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo.yaml");
    let adapter = Adapter::start(
        dir.path(),
        &rules,
        &prometheus.url(),
        &["--metrics-relist-interval=10m"],
    );
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let url = format!(
        "https://127.0.0.1:{}/apis/metrics.k8s.io/v1beta1/pods",
        adapter.port
    );
    let answer: serde_json::Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    let pods: Vec<(String, String)> = answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["metadata"]["namespace"].as_str().unwrap().to_owned(),
                p["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        pods.len() >= (NAMESPACES * PODS) as usize,
        "only {} pods answered",
        pods.len()
    );
    let queries = pod_list_queries(&rules, &pods);
    let query_url = format!("{}/api/v1/query", prometheus.url());
    const ROUNDS: usize = 30;
    let mut through = Vec::with_capacity(ROUNDS);
    let mut direct_sum = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let began = Instant::now();
        let response = client.get(&url).send().await.unwrap();
        assert!(response.status().is_success());
        response.bytes().await.unwrap();
        through.push(began.elapsed());
        let mut sum = Duration::ZERO;
        for query in &queries {
            let began = Instant::now();
            let response = client
                .post(&query_url)
                .form(&[("query", query.as_str())])
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "{query}");
            response.bytes().await.unwrap();
            sum += began.elapsed();
        }
        direct_sum.push(sum);
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1000.0
    };
    let (adapter_ms, direct_ms) = (median(through), median(direct_sum));
    println!(
        "\n(c) metrics.k8s.io pods across {NAMESPACES} namespaces x {PODS} pods ({} pods answered, {} Prometheus queries per request), median of {ROUNDS}",
        pods.len(),
        queries.len()
    );
    println!("{:<58} {:>10}", "target", "median ms");
    println!(
        "{:<58} {:>10.1}",
        "sum of the same queries sent one by one to Prometheus", direct_ms
    );
    println!(
        "{:<58} {:>10.1}",
        "adapter GET /apis/metrics.k8s.io/v1beta1/pods", adapter_ms
    );
    println!(
        "{:<58} {:>9.1}%",
        "adapter vs the sum (8 namespaces at a time)",
        (adapter_ms / direct_ms - 1.0) * 100.0
    );
}
