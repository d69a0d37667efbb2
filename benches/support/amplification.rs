//! (g) One user's amplifying requests: what the HPA controller's requests wait while 16 clients
//! of another user send `pods/*` requests over 1,200 pods whose rule is asked by name, each
//! request split into as many queries as the bounds allow (an 8 KiB `metricLabelSelector`, long
//! pod names), beside the same controller alone and under the same clients sending the 17 KB
//! selector that once split one request into 1,200 queries (now refused before any query). In
//! cluster mode against the stand-in kube-apiserver and a real Prometheus, with the query cache
//! off so that every request reaches the backend's queue. The tests
//! `a_clients_burst_holds_half_the_queue_and_another_client_gets_the_next_slot` and
//! `a_request_needing_too_many_queries_is_refused_before_any_is_asked` show the same without
//! timing it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::apiserver::ApiServer;
use crate::common::{Adapter, Prometheus, Scrape, https_client as client};

const VICTIM_PATH: &str =
    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/web-6d4cf56db6-abcde/cpu_usage";
const HPA_TOKEN: &str = "hpa-controller";
const ATTACKER_TOKEN: &str = "mallory";
const ATTACKERS: usize = 16;
const PODS: usize = 1200;
const RUN_FOR: Duration = Duration::from_secs(10);

/// Two rules on one series: `cpu_usage` keeps pods apart (batched, the HPA's); `cpu_usage_share`
/// divides by a cluster total, so it is asked by name, in parts.
const RULES: &str = r#"
rules:
- seriesQuery: 'container_cpu_usage_seconds_total{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: ^container_(.*)_seconds_total$, as: "${1}"}
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>)
- seriesQuery: 'container_cpu_usage_seconds_total{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: ^container_(.*)_seconds_total$, as: "${1}_share"}
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>) / scalar(sum(rate(<<.Series>>{namespace!=""}[5m])))
"#;

fn percentile_ms(sorted: &[Duration], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// A `metricLabelSelector` of about `bytes` bytes excluding paths, one of them `round` so that
/// no two requests share a query.
fn selector(bytes: usize, round: usize) -> String {
    let mut values = vec![format!("round-{round}")];
    let mut length = 0;
    while length < bytes {
        let value = format!("p{:04}", values.len());
        length += value.len() + 1;
        values.push(value);
    }
    format!("path notin ({})", values.join(","))
}

pub async fn amplification() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::scraping(dir.path(), Scrape::default());
    let apiserver = ApiServer::start(dir.path());
    apiserver.add_user(HPA_TOKEN, "system:serviceaccount:kube-system:hpa", &[]);
    apiserver.add_user(ATTACKER_TOKEN, "mallory", &[]);
    for pod in ["web-6d4cf56db6-abcde", "web-6d4cf56db6-fghij"] {
        apiserver.add_object("", "pods", Some("default"), pod, &[("app", "web")]);
    }
    for i in 0..PODS {
        let name = format!("batch-worker-{i:05}-{}", "x".repeat(40));
        apiserver.add_object("", "pods", Some("default"), &name, &[("app", "batch")]);
    }
    let rules = dir.path().join("amplification-rules.yaml");
    std::fs::write(&rules, RULES).unwrap();
    let adapter = Adapter::start_in_cluster(
        dir.path(),
        &rules,
        &prometheus.url(),
        &apiserver.kubeconfig,
        &["--query-cache-ttl=0s", "--query-time-step=0s"],
    );
    let base = format!("https://127.0.0.1:{}", adapter.port);
    let victim_url = format!("{base}{VICTIM_PATH}");
    let http = client(None);
    let get = || http.get(&victim_url).bearer_auth(HPA_TOKEN).send();
    assert_eq!(get().await.unwrap().status(), 200);

    println!(
        "\n(g) the HPA controller's requests while {ATTACKERS} clients of another user send pods/* requests over {PODS} pods for {}s (cluster mode, query cache off)",
        RUN_FOR.as_secs()
    );
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>9} {:>26}",
        "attack", "requests", "p50 ms", "p99 ms", "max ms", "attack answers"
    );
    let attacks: [(&str, Option<usize>); 3] = [
        ("none", None),
        ("17 KB selector (400 before any query)", Some(17_000)),
        ("8 KB selector, ~10 queries per request", Some(8_000)),
    ];
    for (name, selector_bytes) in attacks {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicUsize::new(0));
        let attackers: Vec<_> = (0..selector_bytes.map_or(0, |_| ATTACKERS))
            .map(|_| {
                let (http, base, stop, rounds) =
                    (http.clone(), base.clone(), stop.clone(), rounds.clone());
                let bytes = selector_bytes.unwrap_or_default();
                tokio::spawn(async move {
                    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
                    while !stop.load(Ordering::SeqCst) {
                        let round = rounds.fetch_add(1, Ordering::SeqCst);
                        let url = format!(
                            "{base}/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/cpu_usage_share"
                        );
                        let answer = http
                            .get(&url)
                            .bearer_auth(ATTACKER_TOKEN)
                            .query(&[
                                ("labelSelector", "app=batch".to_owned()),
                                ("metricLabelSelector", selector(bytes, round)),
                            ])
                            .send()
                            .await;
                        let status = answer.map_or(0, |a| a.status().as_u16());
                        *by_status.entry(status).or_default() += 1;
                    }
                    by_status
                })
            })
            .collect();
        let started = Instant::now();
        let mut latencies = Vec::new();
        while started.elapsed() < RUN_FOR {
            let began = Instant::now();
            let response = get().await.unwrap();
            latencies.push(began.elapsed());
            assert_eq!(response.status(), 200, "{:?}", response.text().await);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.store(true, Ordering::SeqCst);
        let mut answers: BTreeMap<u16, usize> = BTreeMap::new();
        for attacker in attackers {
            for (status, n) in attacker.await.unwrap() {
                *answers.entry(status).or_default() += n;
            }
        }
        latencies.sort();
        let answers = if answers.is_empty() {
            "-".to_owned()
        } else {
            (answers.iter())
                .map(|(status, n)| format!("{n}×{status}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "{name:<44} {:>8} {:>8.2} {:>8.2} {:>9.2} {answers:>26}",
            latencies.len(),
            percentile_ms(&latencies, 50),
            percentile_ms(&latencies, 99),
            latencies.last().unwrap().as_secs_f64() * 1000.0,
        );
    }
}
