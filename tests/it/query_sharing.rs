//! Queries shared between callers, against a real Prometheus behind a recording proxy: identical concurrent requests make one Prometheus call, a kept answer is served again, and it expires after its TTL.

use crate::common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::proxy::RecordingProxy;
use common::{Adapter, Prometheus, Scrape};

const PATH: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second";

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn identical_concurrent_requests_make_one_call_and_kept_answers_expire() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::scraping(dir.path(), Scrape::default());
    let proxy = RecordingProxy::start(prometheus.port);
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo.yaml");
    let step = 10.0;
    let adapter = Adapter::start(
        dir.path(),
        &rules,
        &proxy.url(),
        &["--query-cache-ttl=2s", "--query-time-step=10s"],
    );
    let queries = || {
        proxy
            .seen()
            .iter()
            .filter(|s| {
                s.target.starts_with("/api/v1/query")
                    && s.decoded().contains("nginx_ingress_controller_requests")
            })
            .count()
    };
    // Start just after a step begins, so that every request below falls in that step.
    while unix_now() % step > 0.3 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = unix_now();
    let before = queries();
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..16)
            .map(|_| scope.spawn(|| adapter.curl(PATH)))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let value = |body: &str| {
        let list: serde_json::Value = serde_json::from_str(body).unwrap();
        list["items"][0]["value"].as_str().unwrap().to_owned()
    };
    assert!(answers.iter().all(|(code, _)| *code == 200), "{answers:?}");
    let first = value(&answers[0].1);
    assert!(
        answers.iter().all(|(_, body)| value(body) == first),
        "one value for all: {answers:?}"
    );
    assert_eq!(
        queries() - before,
        1,
        "16 identical concurrent requests, one Prometheus query"
    );

    std::thread::sleep(Duration::from_millis(800));
    let (code, body) = adapter.curl(PATH);
    assert_eq!((code, value(&body)), (200, first.clone()));
    assert_eq!(
        queries() - before,
        1,
        "within the TTL the kept answer is served"
    );

    std::thread::sleep(Duration::from_millis(1700));
    let (code, body) = adapter.curl(PATH);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        value(&body),
        first,
        "the same step evaluates to the same value"
    );
    assert_eq!(
        queries() - before,
        2,
        "past the TTL the query is sent again"
    );
    assert!(unix_now() - started < step, "the test ran within one step");

    let metrics = adapter.curl("/metrics").1;
    for result in ["hit", "merged", "miss"] {
        assert!(
            metrics.contains(&format!(
                "prom_adapter_query_cache_total{{result=\"{result}\"}}"
            )),
            "{result}: {metrics}"
        );
    }
}
