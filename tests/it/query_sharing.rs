//! Queries shared between callers and kept within length limits, against a real Prometheus (behind a recording proxy) and VictoriaMetrics: identical concurrent requests make one call, a kept answer is served again and expires, replicas agree within a step, and a long object list is asked in parts.

use crate::common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::proxy::RecordingProxy;
use common::{Adapter, Prometheus, Scrape, VictoriaMetrics};

const PATH: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second";

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The evaluation step these tests give the adapters, in seconds (`--query-time-step`, which must
/// stay under 15 s).
const STEP: f64 = 10.0;

/// Seconds into a step after which the samples stamped at or before its start are in Prometheus:
/// a scrape interval (and timeout) of the fixture, and a margin.
const SCRAPED: f64 = 2.5;

/// Runs `scenario` until one run falls within one evaluation step, so that every query it made
/// was evaluated at the same time, and returns what that run saw. Each run starts with at least
/// half a step left, and late enough in it that every sample stamped before the step's time has
/// been scraped (the fixture's interval is 2 s, its scrape timeout as long); one that straddles a
/// step anyway (a busy machine), or that says its own timing did not hold (`Err`), is run again
/// after `settle`: the assertions are on what one good run saw, never on how fast it went.
fn within_one_step<T>(settle: Duration, mut scenario: impl FnMut() -> Result<T, String>) -> T {
    let mut missed = Vec::new();
    for run in 0..10 {
        if run > 0 {
            std::thread::sleep(settle);
        }
        while !(SCRAPED..=STEP / 2.0).contains(&(unix_now() % STEP)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let started = unix_now();
        let outcome = scenario();
        let ended = unix_now();
        match outcome {
            Ok(seen) if (started / STEP).floor() == (ended / STEP).floor() => return seen,
            Ok(_) => missed.push(format!("ran {:.1}s across a step", ended - started)),
            Err(why) => missed.push(why),
        }
        eprintln!("again: {}", missed.last().unwrap());
    }
    panic!("no run of ten fit its timing: {missed:?}");
}

/// What one run of `identical_concurrent_requests_make_one_call_and_kept_answers_expire` saw.
struct Sharing {
    concurrent: Vec<(u16, String)>,
    queries_after_concurrent: usize,
    within_ttl: (u16, String),
    queries_within_ttl: usize,
    past_ttl: (u16, String),
    queries_past_ttl: usize,
    kept_or_joined: u64,
    sent: u64,
}

#[test]
fn identical_concurrent_requests_make_one_call_and_kept_answers_expire() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::scraping(dir.path(), Scrape::default());
    let proxy = RecordingProxy::start(prometheus.port);
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo.yaml");
    let ttl = 3.0;
    let adapter = Adapter::start(
        dir.path(),
        &rules,
        &proxy.url(),
        &["--query-cache-ttl=3s", "--query-time-step=10s"],
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
    let cache = |result: &str| -> u64 {
        let metrics = adapter.curl("/metrics").1;
        let name =
            format!("prom_adapter_query_cache_total{{backend=\"default\",result=\"{result}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name.as_str()))
            .map_or(0, |value| value.parse().unwrap())
    };
    // A run again starts once the last one's kept answers have expired.
    let seen = within_one_step(Duration::from_secs_f64(ttl), || {
        let (before, sent_before) = (queries(), cache("miss"));
        let kept_or_joined_before = cache("hit") + cache("merged");
        let started = unix_now();
        let concurrent: Vec<(u16, String)> = std::thread::scope(|scope| {
            let calls: Vec<_> = (0..16)
                .map(|_| scope.spawn(|| adapter.curl(PATH)))
                .collect();
            calls.into_iter().map(|c| c.join().unwrap()).collect()
        });
        let (answered, queries_after_concurrent) = (unix_now(), queries() - before);
        std::thread::sleep(Duration::from_millis(500));
        let within_ttl = adapter.curl(PATH);
        if unix_now() >= started + ttl {
            return Err("the request meant to be within the TTL came after it".into());
        }
        let queries_within_ttl = queries() - before;
        // Every answer of the first 16 was kept from before `answered`: expired by now.
        std::thread::sleep(Duration::from_secs_f64(
            (answered + ttl + 0.2 - unix_now()).max(0.0),
        ));
        let past_ttl = adapter.curl(PATH);
        Ok(Sharing {
            concurrent,
            queries_after_concurrent,
            within_ttl,
            queries_within_ttl,
            past_ttl,
            queries_past_ttl: queries() - before,
            kept_or_joined: cache("hit") + cache("merged") - kept_or_joined_before,
            sent: cache("miss") - sent_before,
        })
    });
    let value = |body: &str| {
        let list: serde_json::Value = serde_json::from_str(body).unwrap();
        list["items"][0]["value"].as_str().unwrap().to_owned()
    };
    let answers = &seen.concurrent;
    assert!(answers.iter().all(|(code, _)| *code == 200), "{answers:?}");
    let first = value(&answers[0].1);
    assert!(
        answers.iter().all(|(_, body)| value(body) == first),
        "one value for all: {answers:?}"
    );
    assert_eq!(
        seen.queries_after_concurrent, 1,
        "16 identical concurrent requests, one Prometheus query"
    );
    assert_eq!(seen.within_ttl.0, 200, "{}", seen.within_ttl.1);
    assert_eq!(value(&seen.within_ttl.1), first);
    assert_eq!(
        seen.queries_within_ttl, 1,
        "within the TTL the kept answer is served"
    );
    assert_eq!(seen.past_ttl.0, 200, "{}", seen.past_ttl.1);
    assert_eq!(
        value(&seen.past_ttl.1),
        first,
        "the same step evaluates to the same value"
    );
    assert_eq!(
        seen.queries_past_ttl, 2,
        "past the TTL the query is sent again"
    );
    // The answers without a call were kept ones (hit) or joined one in flight (merged): how
    // many of each depends on how the 16 curl processes overlapped.
    assert_eq!(seen.sent, 2);
    assert_eq!(seen.kept_or_joined, 16);
}

#[test]
fn two_replicas_answer_the_same_values_within_one_step() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::scraping(dir.path(), Scrape::default());
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo.yaml");
    // No kept answers: each replica asks Prometheus itself, at the step's time.
    let flags = ["--query-cache-ttl=0", "--query-time-step=10s"];
    let replica = |name: &str| {
        let home = dir.path().join(name);
        std::fs::create_dir_all(&home).unwrap();
        Adapter::start(&home, &rules, &prometheus.url(), &flags)
    };
    let (a, b) = (replica("a"), replica("b"));
    let paths = [
        PATH,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/cpu_usage",
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_consumer_lag",
    ];
    let values = |adapter: &Adapter, path: &str| {
        let (code, body) = adapter.curl(path);
        assert_eq!(code, 200, "{path}: {body}");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        let items = list["items"].as_array().unwrap().clone();
        assert!(!items.is_empty(), "{path}: {body}");
        items.iter().map(|i| i["value"].clone()).collect::<Vec<_>>()
    };
    for path in paths {
        let (first, second) = within_one_step(Duration::ZERO, || {
            let first = values(&a, path);
            // The other replica, a moment later in the same step.
            std::thread::sleep(Duration::from_millis(500));
            Ok((first, values(&b, path)))
        });
        assert_eq!(first, second, "{path}");
    }
}

#[test]
fn a_2000_pod_list_over_victoriametrics_is_served_within_its_16_kib_limit() {
    let dir = tempfile::tempdir().unwrap();
    // 2,000 running pods of one namespace, with CPU and memory for the last ten minutes. Their
    // names make a 42 KB alternation, well past VictoriaMetrics' 16 KiB query limit.
    let now_ms = (unix_now() as u64) / 15 * 15 * 1000;
    let mut text = String::new();
    for pod in 0..2000 {
        let labels = format!(
            r#"namespace="bench-00",pod="web-6d4cf56db6-{pod:05}",container="app",job="kubelet""#
        );
        for point in 0..40u64 {
            let at = now_ms - (39 - point) * 15_000;
            text.push_str(&format!(
                "container_cpu_usage_seconds_total{{{labels}}} {} {at}\n",
                point as f64 * 3.75
            ));
            text.push_str(&format!(
                "container_memory_working_set_bytes{{{labels}}} 104857600 {at}\n"
            ));
        }
    }
    let vm = VictoriaMetrics::importing_text(dir.path(), &text);
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo.yaml");
    let path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/bench-00/pods/*/cpu_usage";
    // Batched (one query for the namespace's pods), and by name in parts.
    for (name, flags) in [
        ("batched", &[][..]),
        ("split", &["--disable-query-batching"][..]),
    ] {
        let adapter_dir = dir.path().join(name);
        std::fs::create_dir_all(&adapter_dir).unwrap();
        let adapter = Adapter::start(&adapter_dir, &rules, &vm.url(), flags);
        let (code, body) = adapter.curl(path);
        assert_eq!(code, 200, "{name}: {body}");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), 2000, "{name}");
        let (code, body) = adapter.curl("/apis/metrics.k8s.io/v1beta1/namespaces/bench-00/pods");
        assert_eq!(code, 200, "{name}: {body}");
        let pods: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(pods["items"].as_array().unwrap().len(), 2000, "{name}");
        let metrics = adapter.curl("/metrics").1;
        assert!(
            metrics.contains(&format!(
                "prom_adapter_rule_queries_total{{rule=\"resourceRules.cpu\",shape=\"{name}\"}}"
            )),
            "{name}: {metrics}"
        );
    }

    // The same list as one query is past VictoriaMetrics' limit: it refuses it.
    let whole_dir = dir.path().join("whole");
    std::fs::create_dir_all(&whole_dir).unwrap();
    let whole = Adapter::start(
        &whole_dir,
        &rules,
        &vm.url(),
        &["--disable-query-batching", "--max-query-length=1000000"],
    );
    let (code, body) = whole.curl(path);
    assert_eq!(code, 500, "{body}");
    let log = std::fs::read_to_string(&whole.log).unwrap();
    assert!(log.contains("too long"), "{log}");
}

#[test]
fn batched_and_by_name_queries_give_every_object_the_same_value() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::scraping(dir.path(), Scrape::default());
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo.yaml");
    let adapter = |name: &str, extra: &[&str]| {
        let home = dir.path().join(name);
        std::fs::create_dir_all(&home).unwrap();
        let mut flags = vec!["--query-cache-ttl=0", "--query-time-step=10s"];
        flags.extend_from_slice(extra);
        Adapter::start(&home, &rules, &prometheus.url(), &flags)
    };
    let (batched, by_name) = (
        adapter("batched", &[]),
        adapter("by-name", &["--disable-query-batching"]),
    );
    // The items, without the time each replica answered at.
    let items = |adapter: &Adapter, path: &str| {
        let (code, body) = adapter.curl(path);
        assert_eq!(code, 200, "{path}: {body}");
        let mut list: serde_json::Value = serde_json::from_str(&body).unwrap();
        let items = list["items"].as_array_mut().unwrap();
        for item in items.iter_mut() {
            let item = item.as_object_mut().unwrap();
            item.remove("timestamp");
            if let Some(metadata) = item.get_mut("metadata") {
                metadata["creationTimestamp"] = serde_json::Value::Null;
            }
        }
        items.clone()
    };
    // Every namespaced custom metric the rules serve, for every object, then for one by name.
    let (_, discovery) = batched.curl("/apis/custom.metrics.k8s.io/v1beta2");
    let discovery: serde_json::Value = serde_json::from_str(&discovery).unwrap();
    let mut compared = 0;
    for resource in discovery["resources"].as_array().unwrap() {
        let (name, namespaced) = (
            resource["name"].as_str().unwrap(),
            resource["namespaced"] == true,
        );
        let Some((kind, metric)) = name.split_once('/') else {
            continue;
        };
        if !namespaced {
            continue;
        }
        let path =
            format!("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/{kind}/*/{metric}");
        let (code, _) = batched.curl(&path);
        if code == 404 {
            continue; // no object in `default` has it
        }
        let (every, by_name_every) = within_one_step(Duration::ZERO, || {
            Ok((items(&batched, &path), items(&by_name, &path)))
        });
        assert_eq!(every, by_name_every, "{path}");
        if every.is_empty() {
            continue; // series within --metrics-max-age, but no value now
        }
        let first = every[0]["describedObject"]["name"].as_str().unwrap();
        let one = format!(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/{kind}/{first}/{metric}"
        );
        let (batched_one, by_name_one) = within_one_step(Duration::ZERO, || {
            Ok((items(&batched, &one), items(&by_name, &one)))
        });
        assert_eq!(batched_one, by_name_one, "{one}");
        compared += 1;
    }
    assert!(
        compared >= 5,
        "only {compared} metrics had objects in `default`"
    );
    let pods = "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods";
    let (usage, by_name_usage) = within_one_step(Duration::ZERO, || {
        Ok((items(&batched, pods), items(&by_name, pods)))
    });
    assert!(!usage.is_empty());
    assert_eq!(usage, by_name_usage);
    // Every rule of the demo's that these requests reached was batched.
    let metrics = batched.curl("/metrics").1;
    assert!(metrics.contains(r#"shape="batched"}"#), "{metrics}");
    assert!(!metrics.contains(r#"shape="named"}"#), "{metrics}");
}
