//! End-to-end tests: the adapter binary against a real Prometheus and VictoriaMetrics, queried with a real kubectl.

use crate::common;

use std::path::PathBuf;

use common::{Adapter, Prometheus, Scrape, VictoriaMetrics, assert_close, quantity};

/// Past the default `--query-cache-ttl` (5s): answers kept from before a Prometheus outage are
/// served until then.
const KEPT_ANSWERS_EXPIRE: std::time::Duration = std::time::Duration::from_millis(5200);

fn demo_rules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo.yaml")
}

/// A Prometheus scraping the fixture cluster, as a default kube-prometheus-stack install does:
/// the data the demo's rules are written for.
fn scraping(dir: &std::path::Path) -> Prometheus {
    Prometheus::scraping(dir, Scrape::default())
}

fn single_value(list: &serde_json::Value) -> f64 {
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{list}");
    quantity(items[0]["value"].as_str().unwrap())
}

fn ingress_requests_per_second(adapter: &Adapter) {
    // Through ingress-nginx to `web`: 9 req/s with status 200, 1 with 500, 1 to its canary.
    let service = adapter.get_json("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second");
    assert_eq!(service["kind"], "MetricValueList");
    assert_eq!(service["items"][0]["describedObject"]["kind"], "Service");
    assert_eq!(service["items"][0]["describedObject"]["apiVersion"], "v1");
    assert_close(single_value(&service), 11.0, "service web requests/s");

    let ingress = adapter.get_json(
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/ingresses.networking.k8s.io/web/nginx_ingress_requests_per_second",
    );
    assert_eq!(
        ingress["items"][0]["describedObject"]["apiVersion"],
        "networking.k8s.io/v1"
    );
    assert_eq!(
        ingress["items"][0]["metricName"],
        "nginx_ingress_requests_per_second"
    );
    assert_close(single_value(&ingress), 11.0, "ingress web requests/s");

    let errors = adapter.get_json(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second?metricLabelSelector=status%3D500",
    );
    assert_close(single_value(&errors), 1.0, "service web 5xx/s");
    assert_eq!(
        errors["items"][0]["metric"]["selector"]["matchLabels"]["status"],
        "500"
    );
    let other = adapter.get_json("/apis/custom.metrics.k8s.io/v1beta2/namespaces/other/services/api/nginx_ingress_requests_per_second");
    assert_close(single_value(&other), 5.0, "service api requests/s");
}

#[test]
fn serves_custom_metrics_from_prometheus_to_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let mut prometheus = scraping(dir.path());
    let adapter = Adapter::start(dir.path(), &demo_rules(), &prometheus.url(), &[]);

    // Discovery document through a real kubectl.
    let discovery = adapter.get_json("/apis/custom.metrics.k8s.io/v1beta2");
    assert_eq!(discovery["kind"], "APIResourceList");
    let names: Vec<&str> = discovery["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for expected in [
        "services/nginx_ingress_requests_per_second",
        "ingresses.networking.k8s.io/nginx_ingress_requests_per_second",
        "pods/cpu_usage",
        "pods/memory_working_set_bytes",
        "namespaces/cpu_usage",
        "nodes/kubelet_running_pods",
        "services/istio_requests_per_second",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let nodes = discovery["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "nodes/kubelet_running_pods")
        .unwrap();
    assert_eq!(nodes["namespaced"], false);

    ingress_requests_per_second(&adapter);

    // The chart's default rules over cAdvisor series: every pod of the namespace, through `*`,
    // each its containers' usage (not the pod cgroup and pause container as well).
    let cpu =
        adapter.get_json("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/cpu_usage");
    let items: Vec<(&str, f64)> = cpu["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["describedObject"]["name"].as_str().unwrap(),
                quantity(i["value"].as_str().unwrap()),
            )
        })
        .collect();
    assert_eq!(items.len(), 3, "{cpu}");
    assert_eq!(items[0].0, "queue-exporter-6b7c8d9f4-w1x2y");
    // 0.005 cores, truncated to milli-units as prometheus-adapter's quantities are: 4m or 5m.
    assert!((0.0039..=0.0051).contains(&items[0].1), "{cpu}");
    assert_eq!(items[1].0, "web-6d4cf56db6-abcde");
    assert_close(items[1].1, 0.25, "web pod cpu");
    let memory = adapter.get_json("/apis/custom.metrics.k8s.io/v1beta1/namespaces/other/pods/api-5c9b8d7f6-klmno/memory_working_set_bytes");
    assert_close(single_value(&memory), 100.0 * 1024.0 * 1024.0, "pod memory");

    // A cluster-scoped resource: the kubelet's running pods, by its target's `node` label.
    let node =
        adapter.get_json("/apis/custom.metrics.k8s.io/v1beta2/nodes/node-a/kubelet_running_pods");
    assert_close(single_value(&node), 5.0, "node-a pods");
    assert!(
        node["items"][0]["describedObject"]
            .get("namespace")
            .is_none()
    );
    // Through the Istio gateway, once (the sidecar's reports are left out).
    let checkout = adapter.get_json("/apis/custom.metrics.k8s.io/v1beta2/namespaces/store/services/checkout/istio_requests_per_second");
    assert_close(single_value(&checkout), 8.5, "checkout requests/s");
    let all_nodes =
        adapter.get_json("/apis/custom.metrics.k8s.io/v1beta1/nodes/%2A/kubelet_running_pods");
    assert_eq!(all_nodes["items"].as_array().unwrap().len(), 2);

    // Namespace metrics.
    let ns = adapter
        .get_json("/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/metrics/cpu_usage");
    assert_eq!(ns["items"][0]["describedObject"]["kind"], "Namespace");

    // Unknown metric: a 404 Status.
    let (ok, _, stderr) = adapter.kubectl_raw(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/no_such_metric",
    );
    assert!(!ok);
    assert!(stderr.contains("NotFound"), "{stderr}");
    let (code, body) = adapter
        .curl("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/no_such_metric");
    assert_eq!(code, 404);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(
        status["message"],
        "the server could not find the metric no_such_metric for pods"
    );
    // Wrong scope is not found either.
    assert_eq!(
        adapter
            .curl("/apis/custom.metrics.k8s.io/v1beta2/pods/x/cpu_usage")
            .0,
        404
    );
    // A named object without samples.
    let (code, body) =
        adapter.curl("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/ghost/cpu_usage");
    assert_eq!(code, 404, "{body}");
    assert!(
        body.contains("the server could not find the metric cpu_usage for pods ghost"),
        "{body}"
    );
    // A bad metricLabelSelector is a 400 Status.
    let (code, body) = adapter.curl("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second?metricLabelSelector=status%20in%20(");
    assert_eq!(code, 400, "{body}");

    // The APIs are read-only; health endpoints answer plainly.
    let (code, body) = adapter.curl_method(
        "POST",
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/cpu_usage",
    );
    assert_eq!(code, 405, "{body}");
    assert!(body.contains("MethodNotAllowed"), "{body}");
    assert_eq!(adapter.curl("/livez"), (200, "ok".to_owned()));
    assert_eq!(adapter.curl("/readyz"), (200, "ok".to_owned()));
    let (code, body) = adapter.curl("/apis/nope.example.com/v1");
    assert_eq!(code, 404);
    assert!(body.contains(r#""reason":"NotFound""#), "{body}");

    // Prometheus goes away: once the answers kept from before have expired, 503 Status; the
    // server stays up, and recovers.
    prometheus.stop();
    std::thread::sleep(KEPT_ANSWERS_EXPIRE);
    let (code, body) = adapter.curl("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second");
    assert_eq!(code, 503, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("ServiceUnavailable"))
    );
    assert_eq!(adapter.curl("/healthz").0, 200, "the adapter stays up");
    // Twenty more failures in well under the 10 s interval leave one warning line, not 21.
    for _ in 0..20 {
        assert_eq!(adapter.curl("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second").0, 503);
    }
    let warned = adapter.log().matches("request failed").count();
    assert!(
        (1..=2).contains(&warned),
        "{warned} warning lines for 21 failed requests:\n{}",
        adapter.log()
    );
    // Discovery keeps the last good registry while Prometheus is down.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let discovery = adapter.get_json("/apis/custom.metrics.k8s.io/v1beta2");
    assert!(!discovery["resources"].as_array().unwrap().is_empty());
    prometheus.restart();
    ingress_requests_per_second(&adapter);

    // Self metrics count requests and Prometheus calls.
    let (code, metrics) = adapter.curl("/metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("prom_adapter_prometheus_requests_total{backend=\"default\",endpoint=\"/api/v1/query\",outcome=\"unavailable\"}"), "{metrics}");
    assert!(metrics.contains("prom_adapter_discovery_series_shapes"));
}

#[test]
fn serves_the_ingress_scenario_from_victoriametrics() {
    let dir = tempfile::tempdir().unwrap();
    let vm = VictoriaMetrics::scraping(dir.path(), Scrape::default());
    let adapter = Adapter::start(dir.path(), &demo_rules(), &vm.url(), &[]);
    ingress_requests_per_second(&adapter);
}

#[test]
fn long_metric_selectors_are_served_with_get_and_with_post() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = scraping(dir.path());
    // 800 excluded paths make a query of about 10 KiB: past the GET limit, so it goes by POST.
    let paths: Vec<String> = (0..800).map(|i| format!("p{i:04}")).collect();
    let path = format!(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second?metricLabelSelector=path%20notin%20({})",
        paths.join(",")
    );
    for verb in ["--prometheus-verb=GET", "--prometheus-verb=POST"] {
        let adapter = Adapter::start(dir.path(), &demo_rules(), &prometheus.url(), &[verb]);
        ingress_requests_per_second(&adapter);
        let (code, body) = adapter.curl(&path);
        assert_eq!(code, 200, "{verb}: {body}");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_close(
            single_value(&list),
            11.0,
            "requests/s excluding 800 other paths",
        );
        let expressions = &list["items"][0]["metric"]["selector"]["matchExpressions"][0];
        assert_eq!(expressions["operator"], "NotIn");
        assert_eq!(expressions["values"].as_array().unwrap().len(), 800);
    }
}

#[test]
fn tls_flags_choose_the_protocol_versions_served() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path());
    let tls13 = Adapter::start(
        dir.path(),
        &demo_rules(),
        &prometheus.url(),
        &["--tls-min-version=VersionTLS13"],
    );
    let default = Adapter::start(dir.path(), &demo_rules(), &prometheus.url(), &[]);
    let handshake = |port: u16, max: &str| {
        std::process::Command::new("curl")
            .args([
                "-ksf",
                "-o",
                "/dev/null",
                "--tls-max",
                max,
                &format!("https://127.0.0.1:{port}/livez"),
            ])
            .status()
            .unwrap()
            .success()
    };
    assert!(
        !handshake(tls13.port, "1.2"),
        "TLS 1.2 refused with --tls-min-version=VersionTLS13"
    );
    assert!(handshake(tls13.port, "1.3"));
    assert!(handshake(default.port, "1.2"), "TLS 1.2 served by default");
}

/// Before anything is discovered, each group version lists one placeholder resource rather than
/// none: kubectl 1.26 and later fail discovery on an empty list ("received empty response for"),
/// on every command that reads it.
#[test]
fn discovery_never_lists_an_empty_group_version() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path());
    let rules = dir.path().join("absent.yaml");
    std::fs::write(&rules, "rules:\n- seriesQuery: 'no_such_series'\n  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'\nexternalRules:\n- seriesQuery: 'no_such_series'\n  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'\n").unwrap();
    let adapter = Adapter::start(dir.path(), &rules, &prometheus.url(), &[]);
    let discovery = adapter.get_json("/apis/custom.metrics.k8s.io/v1beta1");
    let resources = discovery["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 1, "{discovery}");
    let placeholder = resources[0]["name"].as_str().unwrap();
    assert!(placeholder.starts_with("namespaces/"), "{placeholder}");
    // The placeholder is not a metric.
    let (code, _) = adapter.curl(&format!(
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/metrics/{}",
        &placeholder["namespaces/".len()..]
    ));
    assert_eq!(code, 404);
    let external = adapter.get_json("/apis/external.metrics.k8s.io/v1beta1");
    assert_eq!(
        external["resources"].as_array().unwrap().len(),
        1,
        "{external}"
    );
    // kubectl's own discovery reads every group version and succeeds.
    for group in ["custom.metrics.k8s.io", "external.metrics.k8s.io"] {
        let (ok, stdout, stderr) = adapter.kubectl(&["api-resources", "--api-group", group]);
        assert!(ok && !stderr.contains("empty response"), "{stdout}{stderr}");
        assert!(stdout.contains("MetricValueList"), "{stdout}");
    }
}

#[test]
fn sigterm_fails_readiness_first_then_drains_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = scraping(dir.path());
    let mut adapter = Adapter::start(
        dir.path(),
        &demo_rules(),
        &prometheus.url(),
        // Long enough for the requests below on a slow machine: they must land in the delay.
        &["--shutdown-delay=20s"],
    );
    assert_eq!(adapter.curl("/readyz").0, 200);
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &adapter.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    assert!(
        common::wait_for(|| adapter.curl("/readyz").0 == 503),
        "not ready once shutdown begins"
    );
    assert_eq!(adapter.curl("/livez").0, 200, "still alive while draining");
    ingress_requests_per_second(&adapter);
    let status = adapter
        .wait_exit(std::time::Duration::from_secs(20) + common::PATIENCE)
        .expect("exits after the delay");
    assert!(status.success(), "{status}");
}

#[test]
fn the_serving_certificate_is_reloaded_when_its_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    for pki in [&first, &second] {
        std::fs::create_dir_all(pki).unwrap();
        common::write_pki(pki);
    }
    let serving = dir.path().join("serving");
    std::fs::create_dir_all(&serving).unwrap();
    let install = |from: &std::path::Path| {
        std::fs::copy(from.join("server.crt"), serving.join("tls.crt")).unwrap();
        std::fs::copy(from.join("server.key"), serving.join("tls.key")).unwrap();
    };
    install(&first);
    let prometheus = Prometheus::start(dir.path());
    let cert_flag = format!("--tls-cert-file={}", serving.join("tls.crt").display());
    let key_flag = format!(
        "--tls-private-key-file={}",
        serving.join("tls.key").display()
    );
    let adapter = Adapter::start(
        dir.path(),
        &demo_rules(),
        &prometheus.url(),
        &[&cert_flag, &key_flag, "--tls-reload-interval=200ms"],
    );
    let trusted_by = |ca: &std::path::Path| {
        std::process::Command::new("curl")
            .args(["-sf", "-o", "/dev/null", "--cacert"])
            .arg(ca.join("ca.crt"))
            .arg(format!("https://127.0.0.1:{}/livez", adapter.port))
            .status()
            .unwrap()
            .success()
    };
    assert!(trusted_by(&first) && !trusted_by(&second));

    install(&second);
    assert!(
        common::wait_for(|| trusted_by(&second)) && !trusted_by(&first),
        "the new certificate is served without a restart"
    );

    // A broken pair is not loaded: the last good certificate stays.
    std::fs::write(serving.join("tls.key"), "not a key").unwrap();
    let log = || std::fs::read_to_string(&adapter.log).unwrap();
    assert!(
        common::wait_for(|| log().contains("serving certificate not reloaded")),
        "{}",
        log()
    );
    assert!(trusted_by(&second));
}

#[test]
fn aggregated_discovery_is_negotiated_and_cached_by_etag() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = scraping(dir.path());
    let adapter = Adapter::start(dir.path(), &demo_rules(), &prometheus.url(), &[]);
    let accept = "Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let (code, output) = adapter.curl_with(&["-H", accept, "-D", "-"], "/apis");
    assert_eq!(code, 200);
    let (head, body) = output.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains(
            "content-type: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ),
        "{head}"
    );
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an ETag")
        .trim()
        .to_owned();
    let list: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(list["kind"], "APIGroupDiscoveryList");
    let group = &list["items"][0];
    assert_eq!(group["metadata"]["name"], "custom.metrics.k8s.io");
    let versions: Vec<&str> = group["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["v1beta1", "v1beta2"]);
    for version in group["versions"].as_array().unwrap() {
        let services = version["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "services")
            .expect("services");
        assert_eq!(services["scope"], "Namespaced");
        assert!(
            services["subresources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["subresource"] == "nginx_ingress_requests_per_second")
        );
        assert!(!services["responseKind"].is_null());
    }
    // kube-aggregator revalidates with If-None-Match.
    let (code, _) = adapter.curl_with(
        &["-H", accept, "-H", &format!("If-None-Match: {etag}")],
        "/apis",
    );
    assert_eq!(code, 304);
    // Without the Accept header: the legacy document.
    let legacy = adapter.get_json("/apis");
    assert_eq!(legacy["kind"], "APIGroupList");
    // A real kubectl reads the aggregated document.
    let (_, stdout, _) = adapter.kubectl(&["api-versions"]);
    assert!(
        stdout.contains("custom.metrics.k8s.io/v1beta1")
            && stdout.contains("custom.metrics.k8s.io/v1beta2")
            && stdout.contains("external.metrics.k8s.io/v1beta1"),
        "{stdout}"
    );
    // kubectl api-resources shows which resources have metrics.
    let (_, stdout, _) = adapter.kubectl(&[
        "api-resources",
        "--api-group=custom.metrics.k8s.io",
        "--no-headers",
    ]);
    let listed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for resource in [
        "services",
        "pods",
        "nodes",
        "namespaces",
        "ingresses.networking.k8s.io",
    ] {
        assert!(listed.contains(&resource), "{resource} not in {listed:?}");
    }
}

#[test]
fn openapi_documents_are_valid_and_cacheable() {
    let validator = std::path::Path::new(
        &std::env::var("PROM_ADAPTER_TOOLS")
            .unwrap_or_else(|_| "/var/tmp/prom-adapter-tools".into()),
    )
    .join("venv/bin/openapi-spec-validator");
    assert!(
        validator.exists(),
        "{} is missing: run `make deps`",
        validator.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path());
    let adapter = Adapter::start(dir.path(), &demo_rules(), &prometheus.url(), &[]);
    let root = adapter.get_json("/openapi/v3");
    let mut documents = vec![("v2.json".to_owned(), "/openapi/v2".to_owned())];
    for (name, entry) in root["paths"].as_object().unwrap() {
        documents.push((
            format!("{}.json", name.replace('/', "_")),
            entry["serverRelativeURL"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(
        documents.len(),
        5,
        "v2 and one v3 document per served version (two custom, one external, one resource)"
    );
    for (file, path) in documents {
        let (code, output) = adapter.curl_with(&["-D", "-"], &path);
        assert_eq!(code, 200, "{path}");
        let (head, body) = output.split_once("\r\n\r\n").unwrap();
        assert!(body.len() < 64 * 1024, "{path} is {} bytes", body.len());
        let file = dir.path().join(file);
        std::fs::write(&file, body).unwrap();
        let checked = std::process::Command::new(&validator)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&checked.stdout)
        );
        let etag = head
            .lines()
            .find_map(|l| l.strip_prefix("etag: "))
            .expect("an ETag")
            .trim()
            .to_owned();
        assert_eq!(
            adapter
                .curl_with(&["-H", &format!("If-None-Match: {etag}")], &path)
                .0,
            304,
            "{path}"
        );
    }
    assert_eq!(
        adapter.curl("/openapi/v3/apis/custom.metrics.k8s.io/v9").0,
        404
    );
}

/// A request the adapter must refuse: its code and the `Status` object's message.
fn status_of(adapter: &Adapter, path: &str) -> (u16, String) {
    let (code, body) = adapter.curl(path);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["kind"], "Status", "{body}");
    (
        code,
        status["message"].as_str().unwrap_or_default().to_owned(),
    )
}

const EXTERNAL_RULES: &str = r#"externalRules:
- seriesQuery: 'queue_consumer_lag{namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
- seriesQuery: 'queue_consumer_lag{namespace!=""}'
  name: {matches: ^queue_consumer_lag$, as: queue_consumer_lag_cluster_wide}
  resources: {namespaced: false}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
# No namespace mapping: prometheus-adapter failed every request of such a rule (its #282).
- seriesQuery: 'queue_messages_ready'
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)
"#;

/// `name → value` of an ExternalMetricValueList.
fn external_values(list: &serde_json::Value) -> Vec<(String, f64)> {
    assert_eq!(list["kind"], "ExternalMetricValueList", "{list}");
    let mut values: Vec<(String, f64)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            assert!(!item["metricName"].as_str().unwrap().is_empty());
            let timestamp = item["timestamp"].as_str().unwrap();
            assert!(
                timestamp.len() == 20 && timestamp.ends_with('Z'),
                "{timestamp}"
            );
            (
                item["metricLabels"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                quantity(item["value"].as_str().unwrap()),
            )
        })
        .collect();
    values.sort_by(|a, b| a.0.cmp(&b.0));
    values
}

#[test]
fn serves_external_metrics_by_namespace_and_selector() {
    let dir = tempfile::tempdir().unwrap();
    let mut prometheus = Prometheus::start(dir.path());
    let rules = dir.path().join("external.yaml");
    std::fs::write(&rules, EXTERNAL_RULES).unwrap();
    let adapter = Adapter::start(dir.path(), &rules, &prometheus.url(), &[]);
    let base = "/apis/external.metrics.k8s.io/v1beta1";

    // Discovery tells each metric's real scope.
    let discovery = adapter.get_json(base);
    let mut scopes: Vec<(String, bool)> = discovery["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["kind"], "ExternalMetricValueList");
            (
                r["name"].as_str().unwrap().to_owned(),
                r["namespaced"].as_bool().unwrap(),
            )
        })
        .collect();
    scopes.sort();
    assert_eq!(
        scopes,
        vec![
            ("queue_consumer_lag".to_owned(), true),
            ("queue_consumer_lag_cluster_wide".to_owned(), false),
            ("queue_messages_ready".to_owned(), true),
        ]
    );

    // Through a real kubectl: one item per series, with the series' labels.
    let q1 = adapter.get_json(&format!(
        "{base}/namespaces/default/queue_consumer_lag?labelSelector=name%3Dq1"
    ));
    assert_eq!(
        q1["items"][0]["metricLabels"],
        serde_json::json!({"name": "q1"})
    );
    assert_eq!(external_values(&q1), vec![("q1".to_owned(), 12.0)]);
    // Every queue of the namespace; NaN is 0, not a garbage quantity.
    let all = adapter.get_json(&format!("{base}/namespaces/default/queue_consumer_lag"));
    assert_eq!(
        external_values(&all),
        vec![
            ("q1".to_owned(), 12.0),
            ("q2".to_owned(), 3.0),
            ("stuck".to_owned(), 0.0)
        ]
    );
    let other = adapter.get_json(&format!("{base}/namespaces/other/queue_consumer_lag"));
    assert_eq!(external_values(&other), vec![("q1".to_owned(), 7.0)]);
    // Set-based selectors.
    let set = adapter.get_json(&format!(
        "{base}/namespaces/default/queue_consumer_lag?labelSelector=name%20in%20(q1,q2)"
    ));
    assert_eq!(
        external_values(&set),
        vec![("q1".to_owned(), 12.0), ("q2".to_owned(), 3.0)]
    );
    let notin = adapter.get_json(&format!(
        "{base}/namespaces/default/queue_consumer_lag?labelSelector=name%20notin%20(q1,stuck)"
    ));
    assert_eq!(external_values(&notin), vec![("q2".to_owned(), 3.0)]);
    // `namespaced: false`: every namespace, whichever the request names.
    let wide = adapter.get_json(&format!(
        "{base}/namespaces/team-a/queue_consumer_lag_cluster_wide?labelSelector=name%3Dq1"
    ));
    assert_eq!(external_values(&wide), vec![("q1".to_owned(), 19.0)]);
    // A rule without a namespace mapping answers (with the `namespace` label), not 500.
    let unmapped = adapter.get_json(&format!("{base}/namespaces/default/queue_messages_ready"));
    assert_eq!(unmapped["items"], serde_json::json!([]));

    // Bad input.
    let status = |path: &str| status_of(&adapter, path);
    assert_eq!(
        status(&format!("{base}/namespaces/team-a/nope")),
        (
            404,
            "the server could not find the metric nope for namespaces".to_owned()
        )
    );
    assert_eq!(
        status(&format!(
            "{base}/namespaces/default/queue_consumer_lag?labelSelector=lag%3E3"
        ))
        .0,
        400,
        "PromQL has no label comparison"
    );
    assert_eq!(
        status(&format!(
            "{base}/namespaces/default/queue_consumer_lag?labelSelector=name%20in%20("
        ))
        .0,
        400
    );
    assert_eq!(status(&format!("{base}/queue_consumer_lag")).0, 404);

    // Prometheus down: 503, nothing partial.
    prometheus.stop();
    std::thread::sleep(KEPT_ANSWERS_EXPIRE);
    let (code, message) = status(&format!("{base}/namespaces/default/queue_consumer_lag"));
    assert_eq!(code, 503, "{message}");
}

#[test]
fn serves_resource_metrics_to_kubectl_top() {
    let dir = tempfile::tempdir().unwrap();
    let mut prometheus = scraping(dir.path());
    let adapter = Adapter::start(dir.path(), &demo_rules(), &prometheus.url(), &[]);
    const MIB: f64 = 1024.0 * 1024.0;

    // A real `kubectl top pod`: the containers' usage (0.25 cores and 100 MiB for web's app
    // container); the pod cgroup and the pause container are left out by the containerQuery.
    let (ok, stdout, stderr) = adapter.kubectl(&["top", "pod", "-n", "default", "--no-headers"]);
    assert!(ok, "{stderr}");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    assert_eq!(rows[0][0], "queue-exporter-6b7c8d9f4-w1x2y");
    assert_eq!(rows[1][0], "web-6d4cf56db6-abcde");
    assert_eq!(rows[2][0], "web-6d4cf56db6-fghij");
    for row in &rows[1..] {
        assert_close(quantity(row[1]), 0.25, "pod CPU cores");
        assert_close(quantity(row[2]), 100.0 * MIB, "pod memory bytes");
    }
    // (`kubectl top node` also lists nodes from the core API, which only a cluster has.)
    let nodes = adapter.get_json("/apis/metrics.k8s.io/v1beta1/nodes");
    assert_eq!(nodes["kind"], "NodeMetricsList");
    assert_eq!(
        nodes["items"][0]["metadata"]["name"], "node-a",
        "sorted by name"
    );
    assert_close(
        quantity(nodes["items"][0]["usage"]["cpu"].as_str().unwrap()),
        1.5,
        "node-a CPU cores",
    );

    // NodeMetrics and PodMetrics as `kubectl get --raw` shows them.
    let node = adapter.get_json("/apis/metrics.k8s.io/v1beta1/nodes/node-b");
    assert_eq!(
        (
            node["kind"].as_str(),
            node["metadata"]["name"].as_str(),
            node["window"].as_str()
        ),
        (Some("NodeMetrics"), Some("node-b"), Some("5m0s"))
    );
    assert_close(
        quantity(node["usage"]["cpu"].as_str().unwrap()),
        0.75,
        "node-b CPU",
    );
    assert_eq!(node["usage"]["memory"], "1Gi");
    let pods = adapter.get_json("/apis/metrics.k8s.io/v1beta1/pods");
    assert_eq!(pods["kind"], "PodMetricsList");
    let names: Vec<(&str, &str)> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(p.get("kind").is_none(), "list items carry no kind");
            (
                p["metadata"]["namespace"].as_str().unwrap(),
                p["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by namespace, then name");
    assert_eq!(
        names.len(),
        prometheus.objects()["pods"].as_array().unwrap().len()
    );
    // Containers in name order.
    let checkout = adapter
        .get_json("/apis/metrics.k8s.io/v1beta1/namespaces/store/pods/checkout-7f8d9c6b5-p4q5r");
    assert_eq!(checkout["kind"], "PodMetrics");
    assert_eq!(checkout["containers"][0]["name"], "app");
    assert_eq!(checkout["containers"][0]["usage"]["memory"], "200Mi");
    assert_eq!(checkout["containers"][1]["name"], "istio-proxy");
    let one = adapter.get_json(
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?fieldSelector=metadata.name%3Dweb-6d4cf56db6-fghij",
    );
    assert_eq!(one["items"].as_array().unwrap().len(), 1);

    // The Table form, and JSON for a client that offers protobuf first.
    let (code, table) = adapter.curl_with(
        &[
            "-H",
            "Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        ],
        "/apis/metrics.k8s.io/v1beta1/nodes",
    );
    assert_eq!(code, 200);
    let table: serde_json::Value = serde_json::from_str(&table).unwrap();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["rows"][0]["cells"][0], "node-a");
    assert_eq!(table["rows"][0]["cells"][3], "5m0s");
    let (code, output) = adapter.curl_with(
        &[
            "-H",
            "Accept: application/vnd.kubernetes.protobuf, application/json",
            "-D",
            "-",
        ],
        "/apis/metrics.k8s.io/v1beta1/nodes",
    );
    assert_eq!(code, 200);
    assert!(
        output.contains("content-type: application/json"),
        "{output}"
    );

    // Bad input.
    let status = |path: &str| status_of(&adapter, path);
    assert_eq!(
        status("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope"),
        (404, r#"pods "nope" not found"#.to_owned())
    );
    assert_eq!(
        status("/apis/metrics.k8s.io/v1beta1/nodes/node-z"),
        (404, r#"nodes "node-z" not found"#.to_owned())
    );
    assert_eq!(
        status("/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=status.phase%3DRunning").0,
        400
    );
    assert_eq!(
        status("/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%20in%20(").0,
        400
    );

    // Prometheus down: 503, nothing partial.
    prometheus.stop();
    std::thread::sleep(KEPT_ANSWERS_EXPIRE);
    assert_eq!(status("/apis/metrics.k8s.io/v1beta1/pods").0, 503);
    assert_eq!(status("/apis/metrics.k8s.io/v1beta1/nodes").0, 503);
}

/// Resource rules for the backfilled data of `tests/fixtures/gen_openmetrics.py` (its series
/// carry the labels as written there, including a root cgroup with `instance` as the node).
const BACKFILL_RESOURCE_RULES: &str = r#"resourceRules:
  cpu:
    containerQuery: sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>,container!="",container!="POD"}[5m])) by (<<.GroupBy>>)
    nodeQuery: sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>, id='/'}[5m])) by (<<.GroupBy>>)
    resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}, instance: {resource: node}}}
    containerLabel: container
  memory:
    containerQuery: sum(container_memory_working_set_bytes{<<.LabelMatchers>>,container!="",container!="POD"}) by (<<.GroupBy>>)
    nodeQuery: sum(container_memory_working_set_bytes{<<.LabelMatchers>>,id='/'}) by (<<.GroupBy>>)
    resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}, instance: {resource: node}}}
    containerLabel: container
  window: 5m
"#;

#[test]
fn negative_and_nan_usage_is_served_as_zero() {
    // No exporter prints these; metrics-server clamps them (the third case of prometheus-adapter's
    // pkg/resourceprovider/provider_test.go), and so must we: a pod whose "app" working set is
    // negative and whose "sidecar" one is NaN.
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path());
    let rules = dir.path().join("resource.yaml");
    std::fs::write(&rules, BACKFILL_RESOURCE_RULES).unwrap();
    let adapter = Adapter::start(dir.path(), &rules, &prometheus.url(), &[]);
    let odd = adapter.get_json("/apis/metrics.k8s.io/v1beta1/namespaces/odd/pods/odd-0");
    let containers: Vec<(&str, &str, f64)> = odd["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["usage"]["memory"].as_str().unwrap(),
                quantity(c["usage"]["cpu"].as_str().unwrap()),
            )
        })
        .collect();
    assert_eq!(containers.len(), 2, "{odd}");
    assert_eq!((containers[0].0, containers[0].1), ("app", "0"));
    assert_eq!((containers[1].0, containers[1].1), ("sidecar", "0"));
    assert_close(containers[1].2, 0.1, "sidecar CPU");
}

#[test]
fn sigterm_stops_the_server_even_when_stderr_is_a_closed_pipe() {
    // A log shipper or `tee` that dies leaves stderr a pipe without a reader. Logging must not
    // take the shutdown down with it.
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_prom-adapter"))
        .args(["--standalone", "--prometheus-url", "http://127.0.0.1:9"])
        .arg(format!("--config={}", demo_rules().display()))
        .arg(format!("--secure-port={port}"))
        .arg(format!("--cert-dir={}", dir.path().display()))
        .arg("--shutdown-delay=0s")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let livez = format!("https://127.0.0.1:{port}/livez");
    let deadline = std::time::Instant::now() + common::PATIENCE;
    while !std::process::Command::new("curl")
        .args(["-kfs", "-o", "/dev/null", &livez])
        .status()
        .unwrap()
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the adapter did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(child.stderr.take());
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = std::time::Instant::now() + common::PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running {:?} after SIGTERM", common::PATIENCE);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
}

/// Prometheus stops for longer than the max age and starts again on the same data: discovery keeps
/// every metric throughout. Targets are scraped every 10 s, so the listings of the first seconds
/// after the restart come before Prometheus has scraped again; they reach back to the last good
/// listing instead of the last 30 s (the max age), in which no sample was taken.
#[test]
fn every_metric_stays_served_across_a_prometheus_restart() {
    let dir = tempfile::tempdir().unwrap();
    let scrape = Scrape {
        interval: 10,
        ..Scrape::default()
    };
    let mut prometheus = Prometheus::scraping(dir.path(), scrape);
    let adapter = Adapter::start(
        dir.path(),
        &demo_rules(),
        &prometheus.url(),
        &["--metrics-max-age=30s"],
    );
    ingress_requests_per_second(&adapter);
    let served = |adapter: &Adapter| -> Vec<String> {
        let (code, body) = adapter.curl("/apis/custom.metrics.k8s.io/v1beta2");
        assert_eq!(code, 200, "{body}");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut names: Vec<String> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    let before = served(&adapter);
    assert!(before.len() > 50, "{before:?}");
    // Watch the served metrics while Prometheus is down for 35 s (longer than the max age),
    // starts, and the adapter relists twice more after every target was scraped again.
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (watching, adapter_port) = (watching.clone(), adapter.port);
        let before = before.clone();
        std::thread::spawn(move || {
            let mut dropped = Vec::new();
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                let body = std::process::Command::new("curl")
                    .args(["-ks", "--max-time", "10"])
                    .arg(format!(
                        "https://127.0.0.1:{adapter_port}/apis/custom.metrics.k8s.io/v1beta2"
                    ))
                    .output()
                    .unwrap()
                    .stdout;
                let list: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if let Some(resources) = list["resources"].as_array() {
                    let names: Vec<&str> = resources
                        .iter()
                        .filter_map(|r| r["name"].as_str())
                        .collect();
                    dropped.extend(
                        before
                            .iter()
                            .filter(|name| !names.contains(&name.as_str()))
                            .cloned(),
                    );
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            dropped
        })
    };
    prometheus.stop();
    std::thread::sleep(std::time::Duration::from_secs(35));
    prometheus.restart();
    std::thread::sleep(std::time::Duration::from_secs(5));
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut dropped = watcher.join().unwrap();
    dropped.sort();
    dropped.dedup();
    assert!(dropped.is_empty(), "dropped for a while: {dropped:?}");
    assert_eq!(served(&adapter), before);
}

/// Before its first discovery has completed (here Prometheus is not there at all), the adapter
/// does not know that a metric is missing: 503 with the reason, not 404, for custom and
/// external metrics alike.
#[test]
fn a_metric_asked_before_discovery_is_unavailable_not_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!("http://127.0.0.1:{}", common::free_port());
    let adapter = Adapter::start_serving(dir.path(), &demo_rules(), &nowhere, &[]);
    for path in [
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second",
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_messages_ready",
    ] {
        let (code, body) = adapter.curl(path);
        assert_eq!(code, 503, "{path}: {body}");
        assert!(body.contains("not discovered yet"), "{body}");
        assert!(body.contains(r#""reason":"ServiceUnavailable""#), "{body}");
    }
    assert_eq!(adapter.curl("/readyz").0, 503, "not ready either");
}
