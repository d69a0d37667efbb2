//! (f) A token flood: what the legitimate client (the HPA controller's token, from its own
//! address, a request and a 5 ms pause, again) waits while 256 connections flood the adapter for
//! 10 s, beside the same client with no
//! flood and under a flood without tokens (answered 401 with no review, so only the connections
//! and requests cost). In cluster mode, against the stand-in kube-apiserver and a real Prometheus.
//! The hardening test `a_token_flood_does_not_hold_up_a_legitimate_client` shows the same flood's
//! behaviour without timing it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::apiserver::ApiServer;
use crate::common::flood::{Flood, no_token, random_token};
use crate::common::{Adapter, Prometheus, Scrape, https_client as client};

const NAMED_POD: &str =
    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/web-6d4cf56db6-abcde/cpu_usage";
const TOKEN_REVIEWS: &str = "POST /apis/authentication.k8s.io/v1/tokenreviews";
const HPA_TOKEN: &str = "hpa-controller";
const CONNECTIONS: usize = 256;
const FLOOD_FOR: Duration = Duration::from_secs(10);

fn percentile_ms(sorted: &[Duration], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

pub async fn flood() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::scraping(dir.path(), Scrape::default());
    let apiserver = ApiServer::start(dir.path());
    apiserver.add_user(HPA_TOKEN, "system:serviceaccount:kube-system:hpa", &[]);
    for pod in ["web-6d4cf56db6-abcde", "web-6d4cf56db6-fghij"] {
        apiserver.add_object("", "pods", Some("default"), pod, &[("app", "web")]);
    }
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo.yaml");
    // Answers kept 3 s: the legitimate token and decision are reviewed again during each flood.
    let adapter = Adapter::start_in_cluster(
        dir.path(),
        &rules,
        &prometheus.url(),
        &apiserver.kubeconfig,
        &[
            "--authentication-token-webhook-cache-ttl=3s",
            "--authorization-webhook-cache-authorized-ttl=3s",
        ],
    );
    let target = format!("https://127.0.0.1:{}{NAMED_POD}", adapter.port);
    let attacker = client(None);
    let legitimate = client(Some(IpAddr::from([127, 0, 0, 2])));
    let get = || legitimate.get(&target).bearer_auth(HPA_TOKEN).send();
    assert_eq!(get().await.unwrap().status(), 200);

    println!(
        "\n(f) the HPA controller's requests while {CONNECTIONS} connections flood the adapter for {}s (cluster mode, stand-in kube-apiserver)",
        FLOOD_FOR.as_secs()
    );
    println!(
        "{:<40} {:>8} {:>8} {:>8} {:>9} {:>13} {:>22} {:>14}",
        "flood",
        "requests",
        "p50 ms",
        "p99 ms",
        "max ms",
        "flood req/s",
        "flood answers",
        "TokenReviews/s"
    );
    type Token = fn(usize, usize) -> Option<String>;
    let floods: [(&str, Option<Token>); 3] = [
        ("none", None),
        ("no token (401, no review)", Some(no_token)),
        ("random tokens (a TokenReview each)", Some(random_token)),
    ];
    for (name, token) in floods {
        let reviews_before = apiserver.count(TOKEN_REVIEWS);
        let flood = token.map(|token| Flood::start(&attacker, &target, CONNECTIONS, token));
        let started = Instant::now();
        let mut latencies = Vec::new();
        while started.elapsed() < FLOOD_FOR {
            let began = Instant::now();
            let response = get().await.unwrap();
            latencies.push(began.elapsed());
            assert_eq!(response.status(), 200, "{:?}", response.text().await);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Counted over the same seconds as the legitimate client's requests: the flood's last
        // requests in flight and their reviews come after.
        let (seconds, reviews, sent) = (
            started.elapsed().as_secs_f64(),
            apiserver.count(TOKEN_REVIEWS) - reviews_before,
            flood.as_ref().map_or(0, Flood::sent),
        );
        let answers = match flood {
            Some(flood) => Some(flood.stop().await),
            None => None,
        };
        latencies.sort();
        let by_status = answers.map_or(String::from("-"), |a| {
            a.by_status
                .iter()
                .map(|(status, n)| format!("{n}×{status}"))
                .collect::<Vec<_>>()
                .join(" ")
        });
        println!(
            "{name:<40} {:>8} {:>8.2} {:>8.2} {:>9.2} {:>13.0} {by_status:>22} {:>14.1}",
            latencies.len(),
            percentile_ms(&latencies, 50),
            percentile_ms(&latencies, 99),
            latencies.last().unwrap().as_secs_f64() * 1000.0,
            sent as f64 / seconds,
            reviews as f64 / seconds,
        );
    }
}
