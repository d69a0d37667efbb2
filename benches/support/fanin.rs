//! (d) Fan-in: N HPAs, each polling its own Service's metric every sync, through the adapter with
//! query sharing on and off, against the same queries sent straight to Prometheus.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{Adapter, Prometheus};
use crate::peak_rss_mib;

/// Distinct metrics, each living in one namespace (`ns-{m % 20}`): 50 (metric, namespace) pairs.
const METRICS: usize = 50;
const NAMESPACES: usize = 20;
const PODS_PER_SERVICE: usize = 2;
/// The HPA controller syncs every 15 s; the bench runs 5 times faster, and so do the adapter's
/// TTL and step (1 s for the default 5 s), so that callers per kept answer are as in real time.
const COMPRESSION: f64 = 5.0;
/// Syncs each HPA makes per run.
const SYNCS: usize = 4;

/// HPA `i`: its metric, namespace and Service.
fn hpa(i: usize) -> (String, String, String) {
    let metric = i % METRICS;
    (
        format!("app_m{metric:02}_requests"),
        format!("ns-{:02}", metric % NAMESPACES),
        format!("svc-{i:04}"),
    )
}

/// Two pods per Service, each counting `1 + i % 7` requests a second, with the target labels a
/// ServiceMonitor gives (`namespace`, `service`, `pod`, `container`, `endpoint`, `job`,
/// `instance`), from 15 minutes ago to an hour ahead at 15 s.
fn write_data(dir: &Path, services: usize) -> PathBuf {
    use std::io::Write;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start = now / 15 * 15 - 900;
    let times: Vec<u64> = (start..start + 4500).step_by(15).collect();
    let path = dir.join("fanin.om");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for metric in 0..METRICS {
        let name = format!("app_m{metric:02}_requests_total");
        writeln!(out, "# HELP {name} Requests served.\n# TYPE {name} counter").unwrap();
        for i in (metric..services).step_by(METRICS) {
            let (_, namespace, service) = hpa(i);
            let rate = 1 + i % 7;
            for p in 0..PODS_PER_SERVICE {
                let labels = format!(
                    r#"container="app",endpoint="http",instance="10.{}.{}.{p}:8080",job="{service}",namespace="{namespace}",pod="{service}-{p}",service="{service}""#,
                    i / 250,
                    i % 250
                );
                for (k, t) in times.iter().enumerate() {
                    writeln!(out, "{name}{{{labels}}} {} {t}", k * 15 * rate).unwrap();
                }
            }
        }
    }
    writeln!(out, "# EOF").unwrap();
    out.flush().unwrap();
    path
}

const RULES: &str = r#"rules:
- seriesQuery: '{__name__=~"^app_m[0-9]+_requests_total$",namespace!="",service!=""}'
  resources: {overrides: {namespace: {resource: namespace}, service: {resource: service}, pod: {resource: pod}}}
  name: {matches: ^(.*)_total$}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
"#;

/// (d2)'s rules: (d)'s, and the same series as External metrics (sum over a label selector, as
/// a queue-depth or request-rate HPA on another workload asks).
fn cluster_rules() -> String {
    format!(
        r#"{RULES}externalRules:
- seriesQuery: '{{__name__=~"^app_m[0-9]+_requests_total$",namespace!="",service!=""}}'
  resources: {{overrides: {{namespace: {{resource: namespace}}}}}}
  name: {{matches: ^(.*)_total$}}
  metricsQuery: 'sum(rate(<<.Series>>{{<<.LabelMatchers>>}}[2m]))'
"#
    )
}

/// How HPA `i` of (d2) asks for its metric.
#[derive(Clone, Copy, PartialEq)]
enum HpaKind {
    /// A Pods metric: `pods/*?labelSelector=app=svc-NNNN`, the Service's pods.
    PodsBySelector,
    /// An Object metric: the Service, by name.
    Object,
    /// An External metric: `?labelSelector=service=svc-NNNN`.
    External,
}

fn hpa_kind(i: usize) -> HpaKind {
    match i % 3 {
        0 => HpaKind::PodsBySelector,
        1 => HpaKind::Object,
        _ => HpaKind::External,
    }
}

struct Run {
    requests: usize,
    queries: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_per_1k: Option<f64>,
    peak_rss: Option<f64>,
    /// p50 and p99 of each kind of HPA, when the HPAs are of several kinds.
    by_kind: Vec<(f64, f64)>,
}

/// Instant queries Prometheus has evaluated since it started.
async fn evaluated_queries(client: &reqwest::Client, prometheus: &str) -> f64 {
    let text = client
        .get(format!("{prometheus}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| {
            l.starts_with(r#"prometheus_engine_query_duration_seconds_count{slice="inner_eval"}"#)
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// CPU seconds the process has used (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}

/// Each of `urls` is one HPA: polled once per period, the HPAs spread evenly over the period,
/// for `syncs` periods. Every answer must be a 200. Returns each request's latency.
async fn poll(
    client: &reqwest::Client,
    urls: &[String],
    syncs: usize,
    token: Option<&str>,
) -> Vec<Duration> {
    let period = Duration::from_secs_f64(15.0 / COMPRESSION);
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    let count = urls.len();
    let tasks: Vec<_> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let (client, url) = (client.clone(), url.clone());
            let token = token.map(str::to_owned);
            let offset = period.mul_f64(i as f64 / count as f64);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(syncs);
                for sync in 0..syncs {
                    tokio::time::sleep_until(start + offset + period * sync as u32).await;
                    let began = Instant::now();
                    let mut request = client.get(&url);
                    if let Some(token) = &token {
                        request = request.bearer_auth(token);
                    }
                    let response = request.send().await.expect("request");
                    let status = response.status();
                    let body = response.bytes().await.expect("body");
                    assert!(status.is_success(), "{url}: {status} {body:?}");
                    latencies.push(began.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count * syncs);
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at].as_secs_f64() * 1000.0
}

/// Polls `urls` as HPAs for `SYNCS` syncs after one to warm up, and measures the run; with
/// `kinds` (each URL's kind, `0..kind_count`), the percentiles of each kind too.
async fn measure(
    client: &reqwest::Client,
    prometheus: &str,
    urls: &[String],
    adapter: Option<&Adapter>,
    token: Option<&str>,
    kinds: Option<(&dyn Fn(usize) -> usize, usize)>,
) -> Run {
    // One sync to open connections and warm caches, as HPAs that have been running would have.
    poll(client, urls, 1, token).await;
    let queries_before = evaluated_queries(client, prometheus).await;
    let cpu_before = adapter.map(|a| cpu_seconds(a.pid()));
    let mut latencies = poll(client, urls, SYNCS, token).await;
    // `poll` gives each URL's latencies together, in the URLs' order.
    let by_kind = kinds.map_or_else(Vec::new, |(kind_of, count)| {
        (0..count)
            .map(|kind| {
                let mut of_kind: Vec<Duration> = (latencies.chunks(SYNCS).enumerate())
                    .filter(|(url, _)| kind_of(*url) == kind)
                    .flat_map(|(_, l)| l.iter().copied())
                    .collect();
                of_kind.sort();
                (percentile(&of_kind, 0.5), percentile(&of_kind, 0.99))
            })
            .collect()
    });
    latencies.sort();
    let queries = evaluated_queries(client, prometheus).await - queries_before;
    let requests = latencies.len();
    Run {
        requests,
        queries,
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        cpu_per_1k: adapter
            .zip(cpu_before)
            .map(|(a, before)| (cpu_seconds(a.pid()) - before) / requests as f64 * 1000.0),
        peak_rss: adapter.map(|a| peak_rss_mib(a.pid())),
        by_kind,
    }
}

pub async fn fanin() {
    let hpa_counts = [100usize, 500, 1500];
    let dir = tempfile::tempdir().unwrap();
    let om = write_data(dir.path(), hpa_counts[hpa_counts.len() - 1]);
    let prometheus = Prometheus::start_with_openmetrics(dir.path(), om);
    let rules = dir.path().join("fanin.yaml");
    std::fs::write(&rules, RULES).unwrap();
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let prometheus_url = prometheus.url();
    println!(
        "\n(d) fan-in: N HPAs, each polling its own Service's metric once per sync ({SYNCS} syncs after one to warm up, time compressed {COMPRESSION}x: a sync every {:.0} s, TTL and step 1 s for the default 5 s), over {METRICS} metrics in {NAMESPACES} namespaces ({METRICS} (metric, namespace) pairs), {PODS_PER_SERVICE} pods per Service, one Prometheus 2.42",
        15.0 / COMPRESSION
    );
    println!(
        "{:>5} {:<36} {:>8} {:>8} {:>9} {:>7} {:>11} {:>8} {:>8} {:>9}",
        "N",
        "path",
        "requests",
        "queries",
        "per sync",
        "q/req",
        "CPU s/1k",
        "p50 ms",
        "p99 ms",
        "RSS MiB"
    );
    let sharing = ["--query-cache-ttl=1s", "--query-time-step=1s"];
    let no_sharing = [
        "--query-cache-ttl=0",
        "--query-time-step=0",
        "--disable-query-batching",
    ];
    for n in hpa_counts {
        let direct_urls: Vec<String> = (0..n)
            .map(|i| {
                let (metric, namespace, service) = hpa(i);
                let query = format!(
                    r#"sum(rate({metric}_total{{namespace="{namespace}",service="{service}"}}[2m])) by (service)"#
                );
                let mut url =
                    reqwest::Url::parse(&format!("{prometheus_url}/api/v1/query")).unwrap();
                url.query_pairs_mut().append_pair("query", &query);
                url.to_string()
            })
            .collect();
        let direct = measure(&client, &prometheus_url, &direct_urls, None, None, None).await;
        print_run(n, "Prometheus, each HPA's query (HTTP)", &direct);
        for (label, flags) in [
            ("adapter, sharing on (HTTPS)", &sharing[..]),
            ("adapter, sharing off (HTTPS)", &no_sharing[..]),
        ] {
            let home = dir.path().join(format!("adapter-{n}-{}", flags.len()));
            std::fs::create_dir_all(&home).unwrap();
            let mut args = vec!["--metrics-relist-interval=10m", "--prometheus-timeout=10s"];
            args.extend_from_slice(flags);
            let adapter = Adapter::start(&home, &rules, &prometheus_url, &args);
            let urls: Vec<String> = (0..n)
                .map(|i| {
                    let (metric, namespace, service) = hpa(i);
                    format!(
                        "https://127.0.0.1:{}/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/services/{service}/{metric}",
                        adapter.port
                    )
                })
                .collect();
            let run = measure(&client, &prometheus_url, &urls, Some(&adapter), None, None).await;
            print_run(n, label, &run);
            drop(adapter);
        }
    }
    println!(
        "queries: Prometheus's own prometheus_engine_query_duration_seconds_count{{slice=\"inner_eval\"}} over the run; per sync: divided by {SYNCS}. With sharing, each (metric, namespace) pair is asked at most once per step (3 steps per sync), whatever N."
    );
}

fn print_run(n: usize, label: &str, run: &Run) {
    let or_dash =
        |v: Option<f64>, precision: usize| v.map_or("-".to_owned(), |v| format!("{v:.precision$}"));
    println!(
        "{n:>5} {label:<36} {:>8} {:>8.0} {:>9.0} {:>7.3} {:>11} {:>8.2} {:>8.2} {:>9}",
        run.requests,
        run.queries,
        run.queries / SYNCS as f64,
        run.queries / run.requests as f64,
        or_dash(run.cpu_per_1k, 3),
        run.p50_ms,
        run.p99_ms,
        or_dash(run.peak_rss, 1),
    );
}

/// The HPA token the cluster bench's requests carry.
const HPA_TOKEN: &str = "hpa-controller";

/// (d2) Fan-in in a cluster: as (d), against the stand-in kube-apiserver, with a third of the HPAs
/// on a Pods metric by label selector (the Service's pods, `app=svc-NNNN`: the request that lists
/// objects), a third on their Service's metric by name and a third on an External metric;
/// counting the LISTs and watches the adapter sends to the API server.
pub async fn fanin_cluster() {
    use crate::common::apiserver::ApiServer;
    let hpa_counts = [100usize, 500, 1500];
    let dir = tempfile::tempdir().unwrap();
    let services = hpa_counts[hpa_counts.len() - 1];
    let om = write_data(dir.path(), services);
    let prometheus = Prometheus::start_with_openmetrics(dir.path(), om);
    let apiserver = ApiServer::start(dir.path());
    apiserver.add_user(
        HPA_TOKEN,
        "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        &[],
    );
    for i in 0..services {
        let (_, namespace, service) = hpa(i);
        for p in 0..PODS_PER_SERVICE {
            let pod = format!("{service}-{p}");
            apiserver.add_object("", "pods", Some(&namespace), &pod, &[("app", &service)]);
        }
        apiserver.add_object(
            "",
            "services",
            Some(&namespace),
            &service,
            &[("app", &service)],
        );
    }
    let rules = dir.path().join("fanin.yaml");
    std::fs::write(&rules, cluster_rules()).unwrap();
    let client = crate::common::https_client(None);
    let prometheus_url = prometheus.url();
    println!(
        "\n(d2) fan-in in a cluster (stand-in kube-apiserver, TokenReview and SubjectAccessReview cached): N HPAs, a third each on a Pods metric by label selector, their Service's metric (Object) and an External metric by label selector, as (d) otherwise; LISTs are label-selector lists sent to the API server during the measured syncs"
    );
    println!(
        "{:>5} {:<36} {:>8} {:>8} {:>7} {:>6} {:>11} {:>8} {:>8} {:>9}   {:>13} {:>13} {:>13}",
        "N",
        "path",
        "requests",
        "queries",
        "q/req",
        "LISTs",
        "CPU s/1k",
        "p50 ms",
        "p99 ms",
        "RSS MiB",
        "Pods p50/p99",
        "Object",
        "External"
    );
    let kind_index = |i: usize| hpa_kind(i) as usize;
    let home = dir.path().join("adapter-cluster");
    std::fs::create_dir_all(&home).unwrap();
    let adapter = Adapter::start_in_cluster(
        &home,
        &rules,
        &prometheus_url,
        &apiserver.kubeconfig,
        &[
            "--metrics-relist-interval=10m",
            "--prometheus-timeout=10s",
            "--query-cache-ttl=1s",
            "--query-time-step=1s",
            "--object-list-cache-ttl=1s",
        ],
    );
    let lists = || {
        (apiserver.requests().iter())
            .filter(|r| r.starts_with("GET /api/v1/namespaces/") && r.contains("labelSelector="))
            .count()
    };
    for n in hpa_counts {
        let direct_urls: Vec<String> = (0..n)
            .map(|i| {
                let (metric, namespace, service) = hpa(i);
                let query = match hpa_kind(i) {
                    HpaKind::PodsBySelector => {
                        let pods: Vec<String> =
                            (0..PODS_PER_SERVICE).map(|p| format!("{service}-{p}")).collect();
                        format!(
                            r#"sum(rate({metric}_total{{namespace="{namespace}",pod=~"{}"}}[2m])) by (pod)"#,
                            pods.join("|")
                        )
                    }
                    HpaKind::Object => format!(
                        r#"sum(rate({metric}_total{{namespace="{namespace}",service="{service}"}}[2m])) by (service)"#
                    ),
                    HpaKind::External => format!(
                        r#"sum(rate({metric}_total{{service="{service}",namespace="{namespace}"}}[2m]))"#
                    ),
                };
                let mut url =
                    reqwest::Url::parse(&format!("{prometheus_url}/api/v1/query")).unwrap();
                url.query_pairs_mut().append_pair("query", &query);
                url.to_string()
            })
            .collect();
        let direct = measure(
            &client,
            &prometheus_url,
            &direct_urls,
            None,
            None,
            Some((&kind_index, 3)),
        )
        .await;
        print_cluster_run(n, "Prometheus, each HPA's query (HTTP)", &direct, None);
        let urls: Vec<String> = (0..n)
            .map(|i| {
                let (metric, namespace, service) = hpa(i);
                let origin = format!("https://127.0.0.1:{}/apis", adapter.port);
                let custom = format!("{origin}/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}");
                match hpa_kind(i) {
                    HpaKind::PodsBySelector => {
                        format!("{custom}/pods/*/{metric}?labelSelector=app%3D{service}")
                    }
                    HpaKind::Object => format!("{custom}/services/{service}/{metric}"),
                    HpaKind::External => format!(
                        "{origin}/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}?labelSelector=service%3D{service}"
                    ),
                }
            })
            .collect();
        // HPAs that have been running: the pod watch synced (the warm-up sync inside `measure`
        // may list before it has), and each HPA's rhythm known (the adapter asks a periodic
        // caller ahead once two intervals agree, so from its third request on).
        poll(&client, &urls, 2, Some(HPA_TOKEN)).await;
        let lists_before = lists();
        let run = measure(
            &client,
            &prometheus_url,
            &urls,
            Some(&adapter),
            Some(HPA_TOKEN),
            Some((&kind_index, 3)),
        )
        .await;
        print_cluster_run(
            n,
            "adapter in a cluster (HTTPS)",
            &run,
            Some(lists() - lists_before),
        );
    }
    println!(
        "LISTs: label-selector lists the stand-in received during the measured syncs (pods come from the adapter's pod watch; it sent {} watch requests in all).",
        apiserver
            .requests()
            .iter()
            .filter(|r| r.contains("watch=true"))
            .count()
    );
}

fn print_cluster_run(n: usize, label: &str, run: &Run, lists: Option<usize>) {
    let or_dash =
        |v: Option<f64>, precision: usize| v.map_or("-".to_owned(), |v| format!("{v:.precision$}"));
    let kinds: Vec<String> = (run.by_kind.iter())
        .map(|(p50, p99)| format!("{:>13}", format!("{p50:.2}/{p99:.2}")))
        .collect();
    println!(
        "{n:>5} {label:<36} {:>8} {:>8.0} {:>7.3} {:>6} {:>11} {:>8.2} {:>8.2} {:>9}   {}",
        run.requests,
        run.queries,
        run.queries / run.requests as f64,
        lists.map_or("-".to_owned(), |l| l.to_string()),
        or_dash(run.cpu_per_1k, 3),
        run.p50_ms,
        run.p99_ms,
        or_dash(run.peak_rss, 1),
        kinds.join(" "),
    );
}
