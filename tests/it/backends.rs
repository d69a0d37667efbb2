//! Named backends from the settings file: a rule on a real Prometheus (the default backend) and rules on a real VictoriaMetrics behind a recording proxy, whose tenant header follows the request's namespace; the VictoriaMetrics going down fails only its own rules.

use crate::common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::proxy::RecordingProxy;
use common::{Adapter, Prometheus, Scrape, VictoriaMetrics};

const INGRESS: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second";

/// The shipped ingress-nginx rule (default backend), and a custom and an external rule on `vm`.
fn rules_text() -> String {
    let ingress = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/ingress-nginx.yaml"),
    )
    .unwrap();
    format!(
        r#"{ingress}
- seriesQuery: 'jobs_queued{{namespace!="",pod!=""}}'
  resources: {{overrides: {{namespace: {{resource: namespace}}, pod: {{resource: pod}}}}}}
  metricsQuery: 'sum(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'
  backend: vm
externalRules:
- seriesQuery: 'jobs_queued{{namespace!=""}}'
  resources: {{overrides: {{namespace: {{resource: namespace}}}}}}
  name: {{as: jobs_queued_total}}
  metricsQuery: 'sum(<<.Series>>{{<<.LabelMatchers>>}})'
  backend: vm
"#
    )
}

#[test]
fn rules_reach_their_backends_with_the_namespaces_tenant_and_a_down_backend_fails_only_its_rules() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::scraping(dir.path(), Scrape::default());
    // Queue depth per worker pod for the last ten minutes, in `shop` and `default`.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        / 15_000
        * 15_000;
    let mut text = String::new();
    for (namespace, pod, depth) in [("shop", "worker-0", 7), ("default", "worker-1", 3)] {
        for point in 0..40u64 {
            let at = now_ms - (39 - point) * 15_000;
            text.push_str(&format!(
                "jobs_queued{{namespace=\"{namespace}\",pod=\"{pod}\",job=\"worker\"}} {depth} {at}\n"
            ));
        }
    }
    let vm_dir = dir.path().join("vm");
    std::fs::create_dir_all(&vm_dir).unwrap();
    let vm = VictoriaMetrics::importing_text(&vm_dir, &text);
    let vm_port: u16 = vm.url().rsplit(':').next().unwrap().parse().unwrap();
    let proxy = RecordingProxy::start(vm_port);

    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, rules_text()).unwrap();
    let settings = dir.path().join("settings.yaml");
    std::fs::write(
        &settings,
        format!(
            "backends:\n  vm:\n    url: {}\n    headers:\n      X-Scope-OrgID: '<<.Tenant>>'\n    tenants:\n      shop: team-shop\n    default_tenant: '<<.Namespace>>'\n    discovery_tenant: team-all\n    timeout: 30s\n",
            proxy.url()
        ),
    )
    .unwrap();
    let settings_flag = format!("--settings={}", settings.display());
    let adapter = Adapter::start(dir.path(), &rules, &prometheus.url(), &[&settings_flag]);

    // Both backends' metrics are discovered and served.
    let value = |path: &str| {
        let (code, body) = adapter.curl(path);
        assert_eq!(code, 200, "{path}: {body}");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        list["items"][0]["value"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        value("/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/worker-0/jobs_queued"),
        "7"
    );
    assert_eq!(
        value("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/jobs_queued_total"),
        "3"
    );
    value(INGRESS);

    // The tenant header followed each request's namespace; discovery used its own tenant.
    let seen = proxy.seen();
    let tenant_of = |needle: &str| {
        seen.iter()
            .filter(|s| s.decoded().contains(needle))
            .map(|s| s.header("X-Scope-OrgID").unwrap_or("<none>").to_owned())
            .collect::<Vec<_>>()
    };
    let shop = tenant_of(r#"namespace="shop""#);
    assert!(
        !shop.is_empty() && shop.iter().all(|t| t == "team-shop"),
        "{shop:?}"
    );
    let default = tenant_of(r#"namespace="default""#);
    assert!(
        !default.is_empty() && default.iter().all(|t| t == "default"),
        "{default:?}"
    );
    let discovery: Vec<_> = seen
        .iter()
        .filter(|s| s.target.starts_with("/api/v1/series"))
        .map(|s| s.header("X-Scope-OrgID").unwrap_or("<none>").to_owned())
        .collect();
    assert!(
        !discovery.is_empty() && discovery.iter().all(|t| t == "team-all"),
        "{discovery:?}"
    );
    // Prometheus never saw the VictoriaMetrics rules' queries: the proxy saw only those.
    assert!(seen.iter().all(|s| !s.decoded().contains("nginx_ingress")));

    // `check` warns that with each namespace its own tenant, a namespace called team-shop would
    // read the shop's tenant.
    let checked = std::process::Command::new(env!("CARGO_BIN_EXE_prom-adapter"))
        .arg("check")
        .arg(format!("--config={}", rules.display()))
        .arg(&settings_flag)
        .arg("--strict")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&checked.stdout);
    assert!(
        !checked.status.success(),
        "--strict fails on the warning: {out}"
    );
    assert!(
        out.contains(
            "backends.vm.tenants.shop: tenant \"team-shop\" is also a valid namespace name"
        ),
        "{out}"
    );

    // explain and simulate, given serve's settings file, read each rule from its backend too.
    let explained = common::stdout_of(
        std::process::Command::new(env!("CARGO_BIN_EXE_prom-adapter"))
            .arg("explain")
            .arg(format!("--config={}", rules.display()))
            .arg(format!("--prometheus-url={}", prometheus.url()))
            .arg(&settings_flag)
            .arg("--output=json")
            .arg("/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/worker-0/jobs_queued"),
    );
    let explained: serde_json::Value = serde_json::from_slice(&explained).unwrap();
    assert_eq!(explained["values"][0]["value"], "7", "{explained}");
    let hpa = dir.path().join("hpa.yaml");
    std::fs::write(
        &hpa,
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: worker, namespace: shop}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: worker}\n  maxReplicas: 10\n  metrics:\n  - type: External\n    external:\n      metric: {name: jobs_queued_total}\n      target: {type: AverageValue, averageValue: '2'}\n",
    )
    .unwrap();
    let simulated = common::stdout_of(
        std::process::Command::new(env!("CARGO_BIN_EXE_prom-adapter"))
            .arg("simulate")
            .arg(format!("--config={}", rules.display()))
            .arg(format!("--hpa={}", hpa.display()))
            .arg(format!("--prometheus-url={}", prometheus.url()))
            .arg(&settings_flag)
            .args(["--start=now-5m", "--end=now-1m", "--output=json"]),
    );
    let simulated: serde_json::Value = serde_json::from_slice(&simulated).unwrap();
    assert_eq!(
        simulated["queries"][0], r#"sum(jobs_queued{namespace="shop"})"#,
        "{simulated}"
    );
    // 7 queued jobs at 2 per replica: 4 replicas.
    let last = simulated["steps"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["replicas"], 4, "{last}");
    let ranges: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.target.starts_with("/api/v1/query_range"))
        .map(|s| s.header("X-Scope-OrgID").unwrap_or("<none>").to_owned())
        .collect();
    assert!(
        !ranges.is_empty() && ranges.iter().all(|t| t == "team-shop"),
        "{ranges:?}"
    );

    // VictoriaMetrics goes down: its rules answer 503, the Prometheus rule still answers 200, and
    // the adapter stays ready.
    drop(vm);
    std::thread::sleep(Duration::from_millis(200));
    let (code, body) = adapter
        .curl("/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/worker-0/jobs_queued");
    assert_eq!(code, 503, "{body}");
    let (code, body) =
        adapter.curl("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/jobs_queued_total");
    assert_eq!(code, 503, "{body}");
    value(INGRESS);
    std::thread::sleep(Duration::from_secs(3)); // a relist or two against the dead backend
    assert_eq!(adapter.curl("/readyz").0, 200);
    value(INGRESS);
    let metrics = adapter.curl("/metrics").1;
    assert!(
        metrics.contains(r#"prom_adapter_prometheus_requests_total{backend="vm",endpoint="/api/v1/query",outcome="ok"}"#),
        "{metrics}"
    );
    // `explain` goes on without the dead backend: the Prometheus rule is listed, and a note
    // says which listings failed.
    let explained = std::process::Command::new(env!("CARGO_BIN_EXE_prom-adapter"))
        .arg("explain")
        .arg(format!("--config={}", rules.display()))
        .arg(format!("--prometheus-url={}", prometheus.url()))
        .arg(&settings_flag)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&explained.stdout),
        String::from_utf8_lossy(&explained.stderr),
    );
    assert!(explained.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("nginx_ingress"), "{stdout}");
    assert!(
        stderr.contains("note: listing the series of") && stderr.contains("jobs_queued"),
        "{stderr}"
    );
}

#[test]
fn rules_naming_an_undeclared_backend_stop_the_start_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, rules_text()).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_prom-adapter"))
        .args([
            &format!("--config={}", rules.display()),
            "--prometheus-url=http://127.0.0.1:9",
            "--standalone",
            &format!("--cert-dir={}", dir.path().join("certs").display()),
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("rules[1].backend: no backend \"vm\": the settings declare no `backends:`")
            && stderr.contains("externalRules[0].backend"),
        "{stderr}"
    );
}
