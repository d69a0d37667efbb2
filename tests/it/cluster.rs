//! The adapter with a cluster (a stand-in kube-apiserver) and a real Prometheus: objects chosen by
//! label selectors, and resources discovered after start.

use crate::common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::apiserver::{ApiServer, Resource};
use common::{Adapter, Prometheus, Scrape, assert_close, quantity};

fn demo_rules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo.yaml")
}

fn pod_names(list: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["describedObject"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// A Prometheus scraping the fixture cluster, as a default kube-prometheus-stack install does
/// (the data the demo's rules are written for).
fn scraping(dir: &std::path::Path) -> Prometheus {
    Prometheus::scraping(dir, Scrape::default())
}

/// A Prometheus scraping the fixture cluster and a stand-in apiserver that knows the `test`
/// token (which the harness's curl and kubectl present).
fn prometheus_and_cluster(dir: &std::path::Path) -> (Prometheus, ApiServer) {
    let prometheus = scraping(dir);
    let apiserver = ApiServer::start(dir);
    apiserver.add_user("test", "tester", &[]);
    (prometheus, apiserver)
}

#[test]
fn label_selectors_choose_the_objects_from_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (prometheus, apiserver) = prometheus_and_cluster(dir.path());
    apiserver.add_object(
        "",
        "pods",
        Some("default"),
        "web-6d4cf56db6-abcde",
        &[("app", "web")],
    );
    apiserver.add_object(
        "",
        "pods",
        Some("default"),
        "web-6d4cf56db6-fghij",
        &[("app", "web"), ("track", "canary")],
    );
    apiserver.add_object(
        "",
        "pods",
        Some("other"),
        "api-5c9b8d7f6-klmno",
        &[("app", "api")],
    );
    let adapter = Adapter::start_in_cluster(
        dir.path(),
        &demo_rules(),
        &prometheus.url(),
        &apiserver.kubeconfig,
        &[],
    );

    let all = adapter.get_json("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/cpu_usage?labelSelector=app%3Dweb");
    assert_eq!(
        pod_names(&all),
        ["web-6d4cf56db6-abcde", "web-6d4cf56db6-fghij"]
    );
    // Prometheus has both pods; only the one the selector chooses is queried and returned.
    let stable = adapter.get_json("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/cpu_usage?labelSelector=app%3Dweb,track!%3Dcanary");
    assert_eq!(pod_names(&stable), ["web-6d4cf56db6-abcde"]);
    assert_close(
        quantity(stable["items"][0]["value"].as_str().unwrap()),
        0.25,
        "pod cpu",
    );
    // A selector that matches nothing: 404, as prometheus-adapter.
    let (code, body) = adapter.curl("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/cpu_usage?labelSelector=app%3Dnone");
    assert_eq!(code, 404, "{body}");
    // The scope of every resource comes from the cluster.
    let nodes =
        adapter.get_json("/apis/custom.metrics.k8s.io/v1beta2/nodes/node-a/kubelet_running_pods");
    assert_close(
        quantity(nodes["items"][0]["value"].as_str().unwrap()),
        5.0,
        "node-a pods",
    );
}

#[test]
fn a_resource_installed_after_start_is_served_without_a_restart() {
    let requests = serve_a_resource_installed_after_start(false);
    assert!(
        requests.iter().any(|r| r.starts_with("GET /apis?")),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.starts_with("GET /apis/apps/v1?")),
        "aggregated discovery makes per-group documents unnecessary: {requests:?}"
    );
}

#[test]
fn a_cluster_without_aggregated_discovery_is_read_group_by_group() {
    let requests = serve_a_resource_installed_after_start(true);
    assert!(
        requests.iter().any(|r| r.starts_with("GET /apis/apps/v1?")),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|r| r.starts_with("GET /api/v1?")),
        "{requests:?}"
    );
}

/// A CRD appears in discovery after the adapter started, and a request naming it becomes
/// servable without a restart. Returns the requests the stand-in saw.
fn serve_a_resource_installed_after_start(legacy_discovery_only: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let (prometheus, apiserver) = prometheus_and_cluster(dir.path());
    if legacy_discovery_only {
        apiserver.serve_legacy_discovery_only();
    }
    let rules = dir.path().join("queues.yaml");
    std::fs::write(
        &rules,
        "rules:\n- seriesQuery: 'queue_messages_ready{queue!=\"\"}'\n  resources: {overrides: {queue: {group: example.com, resource: queue}}}\n  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'\n",
    )
    .unwrap();
    let adapter = Adapter::start_in_cluster(
        dir.path(),
        &rules,
        &prometheus.url(),
        &apiserver.kubeconfig,
        // Both intervals far away: the request naming an unknown resource makes the adapter
        // look again, and the new table is applied to the last listing at once.
        &["--discovery-interval=10m", "--metrics-relist-interval=10m"],
    );
    let path = "/apis/custom.metrics.k8s.io/v1beta2/queues.example.com/orders/queue_messages_ready";
    assert_eq!(
        adapter.curl(path).0,
        404,
        "not served before the CRD exists"
    );

    // Installed after start; the periodic rediscovery is 10 minutes away, so it is the request
    // naming an unknown resource that makes the adapter look again.
    apiserver.add_resource(Resource::new("example.com", "v1", "Queue", "queues", false));
    let deadline = Instant::now() + common::PATIENCE;
    let mut last = (0, String::new());
    while Instant::now() < deadline {
        last = adapter.curl(path);
        if last.0 == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(last.0, 200, "{}", last.1);
    let value: serde_json::Value = serde_json::from_str(&last.1).unwrap();
    assert_eq!(value["items"][0]["describedObject"]["kind"], "Queue");
    assert_eq!(
        value["items"][0]["describedObject"]["apiVersion"],
        "example.com/v1"
    );
    assert!(
        value["items"][0]["describedObject"]
            .get("namespace")
            .is_none(),
        "cluster-scoped, from discovery"
    );
    drop(adapter);
    apiserver.requests()
}

#[test]
fn requests_are_authenticated_by_token_review_and_authorized_by_access_review() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = scraping(dir.path());
    let apiserver = ApiServer::start(dir.path());
    apiserver.add_user("alice-token", "alice", &["dev"]);
    apiserver.add_user("bob-token", "bob", &["dev"]);
    apiserver.add_user("root-token", "root", &["system:masters"]);
    apiserver.deny("bob");
    apiserver.deny("root");
    let adapter = Adapter::start_in_cluster(
        dir.path(),
        &demo_rules(),
        &prometheus.url(),
        &apiserver.kubeconfig,
        &[],
    );
    let path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second";
    let as_user = |token: Option<&str>| {
        let header = token.map(|t| format!("Authorization: Bearer {t}"));
        let args: Vec<&str> = header.as_deref().map(|h| vec!["-H", h]).unwrap_or_default();
        adapter.curl_raw(&args, path)
    };
    let status = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap();

    let (code, body) = as_user(Some("alice-token"));
    assert_eq!(code, 200, "{body}");
    assert_close(
        quantity(status(&body)["items"][0]["value"].as_str().unwrap()),
        11.0,
        "requests/s",
    );

    let (code, body) = as_user(None);
    assert_eq!(code, 401, "no credentials: {body}");
    assert_eq!(status(&body)["reason"], "Unauthorized");
    let (code, _) = as_user(Some("forged-token"));
    assert_eq!(code, 401, "a token TokenReview rejects");

    let (code, body) = as_user(Some("bob-token"));
    assert_eq!(code, 403, "{body}");
    let denial = status(&body);
    assert_eq!(
        (denial["kind"].as_str(), denial["reason"].as_str()),
        (Some("Status"), Some("Forbidden"))
    );
    assert!(
        denial["message"].as_str().unwrap().contains(
            r#"User "bob" cannot get resource "services/nginx_ingress_requests_per_second""#
        ),
        "{denial}"
    );

    // system:masters is allowed without asking.
    assert_eq!(as_user(Some("root-token")).0, 200);

    // The caches spare the second lookups.
    let (tokens, reviews) = (
        apiserver.count("POST /apis/authentication.k8s.io/v1/tokenreviews"),
        apiserver.count("POST /apis/authorization.k8s.io/v1/subjectaccessreviews"),
    );
    assert_eq!(as_user(Some("alice-token")).0, 200);
    assert_eq!(as_user(Some("bob-token")).0, 403);
    assert_eq!(
        apiserver.count("POST /apis/authentication.k8s.io/v1/tokenreviews"),
        tokens
    );
    assert_eq!(
        apiserver.count("POST /apis/authorization.k8s.io/v1/subjectaccessreviews"),
        reviews
    );

    // A real kubectl with a token TokenReview accepts: a metric, and the resources that have
    // metrics in discovery.
    apiserver.add_user("test", "tester", &[]);
    let metric = adapter.get_json(path);
    assert_eq!(metric["items"][0]["describedObject"]["name"], "web");
    let (ok, stdout, stderr) = adapter.kubectl(&[
        "api-resources",
        "--api-group=custom.metrics.k8s.io",
        "--no-headers",
    ]);
    assert!(ok, "{stderr}");
    let listed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        listed.contains(&"services") && listed.contains(&"ingresses.networking.k8s.io"),
        "{listed:?}"
    );
    assert!(
        apiserver.count("POST /apis/authentication.k8s.io/v1/tokenreviews") > tokens,
        "kubectl's token went through TokenReview"
    );

    // Health endpoints need no credentials.
    for health in ["/healthz", "/readyz", "/livez"] {
        assert_eq!(adapter.curl_raw(&[], health).0, 200, "{health}");
    }
    assert_eq!(adapter.curl_raw(&[], "/metrics").0, 401);
}

#[test]
fn front_proxy_certificates_carry_the_user_in_request_headers() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = scraping(dir.path());
    let apiserver = ApiServer::start(dir.path());
    apiserver.deny("bob");
    let (front_proxy, users) = (dir.path().join("front-proxy"), dir.path().join("users"));
    for pki in [&front_proxy, &users] {
        std::fs::create_dir_all(pki).unwrap();
        common::write_pki(pki);
    }
    let flag = |name: &str, value: &std::path::Path| format!("--{name}={}", value.display());
    let requestheader_ca = flag("requestheader-client-ca-file", &front_proxy.join("ca.crt"));
    let client_ca = flag("client-ca-file", &users.join("ca.crt"));
    // write_pki's client certificates have the common name "client".
    let adapter = Adapter::start_in_cluster(
        dir.path(),
        &demo_rules(),
        &prometheus.url(),
        &apiserver.kubeconfig,
        &[
            &requestheader_ca,
            &client_ca,
            "--requestheader-allowed-names=client",
        ],
    );
    let path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second";
    let with_cert = |pki: &std::path::Path, headers: &[&str]| {
        let cert = pki.join("client.crt").display().to_string();
        let key = pki.join("client.key").display().to_string();
        let mut args: Vec<String> = vec!["--cert".into(), cert, "--key".into(), key];
        for h in headers {
            args.extend(["-H".to_owned(), h.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        adapter.curl_raw(&args, path).0
    };
    // The metric's first samples may still be on their way into Prometheus on a loaded machine
    // (a 404): what this test is about is the answer once they are there.
    let deadline = Instant::now() + common::PATIENCE;
    let proxied_alice = || {
        with_cert(
            &front_proxy,
            &["X-Remote-User: alice", "X-Remote-Group: dev"],
        )
    };
    let mut code = proxied_alice();
    while code == 404 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        code = proxied_alice();
    }
    assert_eq!(code, 200);
    assert_eq!(
        with_cert(&front_proxy, &["X-Remote-User: bob"]),
        403,
        "the proxied user is authorized"
    );
    assert_eq!(
        adapter.curl_raw(&["-H", "X-Remote-User: alice"], path).0,
        401,
        "headers without the certificate"
    );
    // A user certificate from the client CA authenticates as its common name; X-Remote-* headers
    // on that connection are ignored (bob would be denied).
    assert_eq!(with_cert(&users, &["X-Remote-User: bob"]), 200);
    assert!(
        apiserver.count("POST /apis/authentication.k8s.io/v1/tokenreviews") == 0,
        "certificates need no TokenReview"
    );

    // A front-proxy certificate whose common name is not allowed.
    let strict = Adapter::start_in_cluster(
        dir.path(),
        &demo_rules(),
        &prometheus.url(),
        &apiserver.kubeconfig,
        &[
            &requestheader_ca,
            "--requestheader-allowed-names=front-proxy-client",
        ],
    );
    let cert = front_proxy.join("client.crt").display().to_string();
    let key = front_proxy.join("client.key").display().to_string();
    assert_eq!(
        strict
            .curl_raw(
                &["--cert", &cert, "--key", &key, "-H", "X-Remote-User: alice"],
                path
            )
            .0,
        401
    );
}

#[test]
fn client_cas_come_from_the_authentication_configmap_and_rotate_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = scraping(dir.path());
    let apiserver = ApiServer::start(dir.path());
    let (first, second) = (dir.path().join("proxy-1"), dir.path().join("proxy-2"));
    for pki in [&first, &second] {
        std::fs::create_dir_all(pki).unwrap();
        common::write_pki(pki);
    }
    let publish = |pki: &std::path::Path| {
        let ca = std::fs::read_to_string(pki.join("ca.crt")).unwrap();
        apiserver.set_authentication_configmap(&[
            ("requestheader-client-ca-file", ca.as_str()),
            ("requestheader-allowed-names", r#"["client"]"#),
            ("requestheader-username-headers", r#"["X-Remote-User"]"#),
            ("requestheader-group-headers", r#"["X-Remote-Group"]"#),
            (
                "requestheader-extra-headers-prefix",
                r#"["X-Remote-Extra-"]"#,
            ),
        ]);
    };
    publish(&first);
    let adapter = Adapter::start_in_cluster(
        dir.path(),
        &demo_rules(),
        &prometheus.url(),
        &apiserver.kubeconfig,
        &["--authentication-config-refresh-interval=200ms"],
    );
    let path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second";
    let proxied_by = |pki: &std::path::Path| {
        let cert = pki.join("client.crt").display().to_string();
        let key = pki.join("client.key").display().to_string();
        adapter
            .curl_raw(
                &["--cert", &cert, "--key", &key, "-H", "X-Remote-User: alice"],
                path,
            )
            .0
    };
    // As above: wait out a 404 while the metric's first samples arrive on a loaded machine.
    let deadline = Instant::now() + common::PATIENCE;
    while proxied_by(&first) == 404 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(proxied_by(&first), 200);
    assert_ne!(
        proxied_by(&second),
        200,
        "a front-proxy CA the ConfigMap does not name"
    );

    // kube-apiserver rotates its front-proxy CA: the new one is trusted without a restart.
    publish(&second);
    let deadline = Instant::now() + common::PATIENCE;
    while proxied_by(&second) != 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(proxied_by(&second), 200);
    assert_ne!(proxied_by(&first), 200);
}

#[test]
fn malformed_requests_get_the_right_4xx_status_and_nothing_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let (prometheus, apiserver) = prometheus_and_cluster(dir.path());
    apiserver.add_object(
        "",
        "pods",
        Some("default"),
        "web-6d4cf56db6-abcde",
        &[("app", "web")],
    );
    let stranger = dir.path().join("stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    common::write_pki(&stranger);
    let proxy = dir.path().join("proxy");
    std::fs::create_dir_all(&proxy).unwrap();
    common::write_pki(&proxy);
    let requestheader_ca = format!(
        "--requestheader-client-ca-file={}",
        proxy.join("ca.crt").display()
    );
    let adapter = Adapter::start_in_cluster(
        dir.path(),
        &demo_rules(),
        &prometheus.url(),
        &apiserver.kubeconfig,
        &[&requestheader_ca],
    );
    let base = "/apis/custom.metrics.k8s.io/v1beta2";
    let long = format!(
        "{base}/namespaces/default/pods/{}/cpu_usage",
        "x".repeat(10_000)
    );
    let cases: Vec<(String, Vec<&str>, u16)> = vec![
        (
            format!("{base}/namespaces/default/pods/*/cpu_usage?labelSelector=app%20in%20("),
            vec![],
            400,
        ),
        (
            format!("{base}/namespaces/default/pods/*/cpu_usage?labelSelector=%"),
            vec![],
            400,
        ),
        (
            format!("{base}/namespaces/default/pods/*/cpu_usage?metricLabelSelector=a%3D%3D%3Db"),
            vec![],
            400,
        ),
        (
            format!("{base}/namespaces/default/pods/*/cpu_usage?metricLabelSelector=n%3E1"),
            vec![],
            400,
        ),
        (
            format!("{base}/namespaces/default/pods/x/cpu_usage?fieldSelector=metadata.name%3Dy"),
            vec![],
            400,
        ),
        (format!("{base}/pods/x"), vec![], 400),
        (format!("{base}/a/b/c/d"), vec![], 404),
        (
            "/apis/custom.metrics.k8s.io/v9/pods/x/m".to_owned(),
            vec![],
            404,
        ),
        (
            format!("{base}/namespaces/%ZZ/pods/x/cpu_usage"),
            vec![],
            400,
        ),
        (long, vec![], 400),
        (
            format!("{base}/namespaces/default/pods/*/cpu_usage"),
            vec!["-X", "DELETE"],
            405,
        ),
        ("/nope".to_owned(), vec![], 404),
    ];
    for (path, extra, expected) in &cases {
        let (code, body) = adapter.curl_with(extra, path);
        assert_eq!(code, *expected, "{path}: {body}");
        let status: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert_eq!(
            (status["kind"].as_str(), status["code"].as_u64()),
            (Some("Status"), Some(*expected as u64)),
            "{path}"
        );
    }
    // Credentials: empty or foreign schemes, and front-proxy headers on a bearer connection.
    let metric = format!("{base}/namespaces/default/pods/*/cpu_usage");
    for header in [
        "Authorization: Bearer",
        "Authorization: Basic dGVzdDp0ZXN0",
        "Authorization: Bearer  test",
        "X-Remote-User: system:admin",
    ] {
        let (code, body) = adapter.curl_raw(&["-H", header], &metric);
        assert_eq!(code, 401, "{header}: {body}");
    }
    // A client certificate no trusted CA signed: the TLS handshake fails, and nothing else does.
    let cert = stranger.join("client.crt").display().to_string();
    let key = stranger.join("client.key").display().to_string();
    assert_ne!(
        adapter
            .curl_raw(
                &["--cert", &cert, "--key", &key, "-H", "X-Remote-User: alice"],
                &metric
            )
            .0,
        200
    );
    assert_eq!(
        adapter.curl_raw(&[], "/healthz"),
        (200, "ok".to_owned()),
        "still serving"
    );
    assert_eq!(
        adapter
            .curl_with(&[], &format!("{metric}?labelSelector=app%3Dweb"))
            .0,
        200
    );
}

#[test]
fn resource_metrics_come_from_watched_running_pods_and_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let (prometheus, apiserver) = prometheus_and_cluster(dir.path());
    for (namespace, name, app) in [
        ("default", "web-6d4cf56db6-abcde", "web"),
        ("default", "web-6d4cf56db6-fghij", "web"),
        ("other", "api-5c9b8d7f6-klmno", "api"),
    ] {
        apiserver.add_object("", "pods", Some(namespace), name, &[("app", app)]);
    }
    // Prometheus still has its series, but the pod is no longer running.
    apiserver.set_pod_phase("default", "web-6d4cf56db6-fghij", "Succeeded");
    apiserver.add_object("", "nodes", None, "node-a", &[("zone", "a")]);
    apiserver.add_object("", "nodes", None, "node-b", &[("zone", "b")]);
    let adapter = Adapter::start_in_cluster(
        dir.path(),
        &demo_rules(),
        &prometheus.url(),
        &apiserver.kubeconfig,
        &[],
    );

    let (ok, stdout, stderr) = adapter.kubectl(&["top", "pod", "-n", "default", "--no-headers"]);
    assert!(ok, "{stderr}");
    let names: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, vec!["web-6d4cf56db6-abcde"], "running pods only");

    let web = adapter.get_json("/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%3Dweb");
    assert_eq!(web["items"].as_array().unwrap().len(), 1, "{web}");
    assert_eq!(
        web["items"][0]["metadata"]["labels"]["app"], "web",
        "labels from the cluster"
    );
    let api =
        adapter.get_json("/apis/metrics.k8s.io/v1beta1/namespaces/other/pods/api-5c9b8d7f6-klmno");
    assert_eq!(api["containers"][0]["usage"]["memory"], "100Mi");
    let zone_b = adapter.get_json("/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=zone%3Db");
    let nodes: Vec<&str> = zone_b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, vec!["node-b"]);
    let (code, _) =
        adapter.curl("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web-6d4cf56db6-fghij");
    assert_eq!(code, 404, "not running");

    // Every answer came from the watch caches: one list of each, then watches.
    let lists = |path: &str| {
        apiserver
            .requests()
            .iter()
            .filter(|r| r.starts_with(&format!("GET {path}?")) && !r.contains("watch=true"))
            .count()
    };
    assert_eq!(lists("/api/v1/pods"), 1, "{:?}", apiserver.requests());
    assert_eq!(lists("/api/v1/nodes"), 1);
    assert!(
        apiserver
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /api/v1/pods?")
                && r.contains("fieldSelector=status.phase%3DRunning")),
        "{:?}",
        apiserver.requests()
    );
}

#[test]
fn resource_rules_added_by_a_reload_start_the_pod_and_node_watches() {
    let dir = tempfile::tempdir().unwrap();
    let (prometheus, apiserver) = prometheus_and_cluster(dir.path());
    apiserver.add_object("", "nodes", None, "node-a", &[("zone", "a")]);
    apiserver.add_object("", "nodes", None, "node-b", &[("zone", "b")]);
    let rules = dir.path().join("rules").join("config.yaml");
    std::fs::create_dir(rules.parent().unwrap()).unwrap();
    let ingress = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/ingress-nginx.yaml");
    std::fs::copy(ingress, &rules).unwrap();
    let adapter = Adapter::start_in_cluster(
        dir.path(),
        &rules,
        &prometheus.url(),
        &apiserver.kubeconfig,
        &[],
    );
    let nodes = "/apis/metrics.k8s.io/v1beta1/nodes";
    assert_eq!(
        adapter.curl(nodes).0,
        404,
        "no resourceRules, no metrics.k8s.io"
    );
    let watched = |apiserver: &ApiServer| {
        apiserver
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /api/v1/nodes?"))
    };
    assert!(
        !watched(&apiserver),
        "nodes are not watched without resourceRules"
    );

    std::fs::copy(demo_rules(), &rules).unwrap();
    let deadline = Instant::now() + common::PATIENCE;
    while adapter.curl(nodes).0 != 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let list = adapter.get_json(nodes);
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["node-a", "node-b"], "{list}");
    assert!(watched(&apiserver));
}

/// An argument list from the port, the Prometheus URL, the cert dir and the rules file.
type ArgumentList = fn(u16, &str, &str, &str) -> Vec<String>;

#[test]
fn the_argument_lists_of_prometheus_adapters_chart_and_manifests_start_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (prometheus, apiserver) = prometheus_and_cluster(dir.path());
    let rules = demo_rules().display().to_string();
    let cert_dir = dir.path().join("serving-cert").display().to_string();
    // In a pod, the kubeconfig is the service account's; here the stand-in's, by KUBECONFIG.
    let env = [("KUBECONFIG", apiserver.kubeconfig.as_path())];
    let lists: [(&str, ArgumentList); 3] = [
        // prometheus-community/prometheus-adapter templates/deployment.yaml, in its order, with
        // the default values (listenPort 6443, tls disabled, metricsRelistInterval 1m, logLevel 4).
        // (The chart's cert dir is /tmp/cert; here one inside the test's directory.)
        ("community chart", |port, url, cert_dir, rules| {
            vec![
                "/adapter".into(),
                format!("--secure-port={port}"),
                format!("--cert-dir={cert_dir}"),
                format!("--prometheus-url={url}"),
                "--metrics-relist-interval=1m".into(),
                "--v=4".into(),
                format!("--config={rules}"),
            ]
        }),
        // prometheus-adapter's deploy/manifests/deployment.yaml (v0.12).
        ("deploy manifests", |port, url, cert_dir, rules| {
            vec![
                format!("--cert-dir={cert_dir}"),
                format!("--config={rules}"),
                "--metrics-relist-interval=1m".into(),
                format!("--prometheus-url={url}/"),
                format!("--secure-port={port}"),
                "--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,TLS_RSA_WITH_AES_128_GCM_SHA256".into(),
            ]
        }),
        // Older manifests (kube-prometheus before klog's flags were removed).
        ("klog-era manifests", |port, url, cert_dir, rules| {
            vec![
                "/adapter".into(),
                format!("--cert-dir={cert_dir}"),
                format!("--config={rules}"),
                "--logtostderr=true".into(),
                "--alsologtostderr".into(),
                "--stderrthreshold=INFO".into(),
                format!("--prometheus-url={url}/"),
                "--metrics-relist-interval=30s".into(),
                format!("--secure-port={port}"),
            ]
        }),
    ];
    for (source, args) in lists {
        let port = common::free_port();
        let args = args(port, &prometheus.url(), &cert_dir, &rules);
        let adapter = Adapter::start_exactly(dir.path(), port, &args, &env);
        let nodes = adapter
            .get_json("/apis/custom.metrics.k8s.io/v1beta2/nodes/node-a/kubelet_running_pods");
        assert_eq!(nodes["items"].as_array().map(Vec::len), Some(1), "{source}");
        let log = std::fs::read_to_string(&adapter.log).unwrap();
        if args[0] == "/adapter" {
            assert!(log.contains("ignoring the argument"), "{source}: {log}");
        }
    }
}

/// Pods by label selector come from a watch of every pod, started by the first request: two
/// HPAs with one selector, and every later request, cost no LIST; relabelled and deleted pods
/// are followed; a broken, expired watch lists again and recovers. Other resources are listed
/// once per selector within the cache's TTL.
#[test]
fn label_selectors_are_answered_from_a_pod_watch_that_follows_changes_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (prometheus, apiserver) = prometheus_and_cluster(dir.path());
    let (stable, canary) = ("web-6d4cf56db6-abcde", "web-6d4cf56db6-fghij");
    apiserver.add_object("", "pods", Some("default"), stable, &[("app", "web")]);
    apiserver.add_object("", "pods", Some("default"), canary, &[("app", "other")]);
    for service in ["web", "api"] {
        apiserver.add_object(
            "",
            "services",
            Some("default"),
            service,
            &[("tier", "front")],
        );
    }
    let adapter = Adapter::start_in_cluster(
        dir.path(),
        &demo_rules(),
        &prometheus.url(),
        &apiserver.kubeconfig,
        &["--object-list-cache-ttl=1h"],
    );
    const WEB_PODS: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/cpu_usage?labelSelector=app%3Dweb";
    let selected = || {
        let (code, body) = adapter.curl(WEB_PODS);
        match code {
            200 => pod_names(&serde_json::from_str(&body).unwrap()),
            404 => Vec::new(),
            _ => panic!("{code}: {body}"),
        }
    };
    assert_eq!(selected(), [stable]);
    // The first request started the pod watch; once it has listed, requests read its cache.
    let from_watch = || {
        let metrics = adapter.curl("/metrics").1;
        metrics.lines().any(|l| {
            l.starts_with("prom_adapter_object_lookups_total{source=\"watch\"}")
                && !l.ends_with(" 0")
        })
    };
    assert!(
        common::wait_for(|| selected() == [stable] && from_watch()),
        "{:?}",
        apiserver.requests()
    );
    let lists = || apiserver.count("GET /api/v1/namespaces/default/pods?");
    let listed_before = lists();
    assert!(listed_before <= 1, "{:?}", apiserver.requests());
    for _ in 0..10 {
        assert_eq!(selected(), [stable]);
    }
    assert_eq!(
        lists(),
        listed_before,
        "requests after the watch's sync list nothing"
    );

    // The canary joins the selection, then the stable pod is deleted.
    apiserver.set_labels("", "pods", Some("default"), canary, &[("app", "web")]);
    assert!(
        common::wait_for(|| selected().len() == 2),
        "{:?}",
        selected()
    );
    apiserver.delete_object("", "pods", Some("default"), stable);
    assert!(
        common::wait_for(|| selected() == [canary]),
        "{:?}",
        selected()
    );

    // The watch breaks, its version expires and watches are refused for a while; a change made
    // meanwhile is seen once the watch lists again.
    apiserver.break_watches(true, true);
    apiserver.set_labels("", "pods", Some("default"), canary, &[("app", "other")]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    apiserver.accept_watches();
    assert!(
        common::wait_for(|| selected().is_empty()),
        "{:?}",
        selected()
    );
    let metrics = adapter.curl("/metrics").1;
    assert!(
        metrics.lines().any(
            |l| l.starts_with("prom_adapter_watch_failures_total{watch=\"pods\"}")
                && !l.ends_with(" 0")
        ),
        "{metrics}"
    );
    assert_eq!(
        lists(),
        listed_before,
        "the watch recovered without per-request lists"
    );

    // Services are listed, once per selector while the list is kept.
    const FRONT: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/*/nginx_ingress_requests_per_second?labelSelector=tier%3Dfront";
    for _ in 0..5 {
        let (code, body) = adapter.curl(FRONT);
        assert_eq!(code, 200, "{body}");
    }
    assert_eq!(
        apiserver.count("GET /api/v1/namespaces/default/services?"),
        1
    );
}
