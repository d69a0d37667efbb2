//! Rules-file hot reload on a running adapter, against a real Prometheus: edits, broken edits, a ConfigMap-style `..data` symlink swap, and SIGHUP.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Adapter, Prometheus, Scrape, assert_close, quantity};

fn ingress_rules() -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/ingress-nginx.yaml"),
    )
    .unwrap()
}

/// The ingress rules plus one for `kubelet_running_pods`, a cluster-scoped metric of nodes.
fn ingress_and_node_rules() -> String {
    format!(
        "{}\n- seriesQuery: 'kubelet_running_pods{{node!=\"\"}}'\n  resources: {{overrides: {{node: {{resource: node}}}}}}\n  metricsQuery: 'max(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'\n",
        ingress_rules()
    )
}

const NODE_METRIC: &str = "nodes/kubelet_running_pods";
const NODE_PODS: &str = "/apis/custom.metrics.k8s.io/v1beta2/nodes/node-a/kubelet_running_pods";

/// A Prometheus scraping the fixture cluster (ingress-nginx without honorLabels).
fn scraping(dir: &Path) -> Prometheus {
    Prometheus::scraping(dir, Scrape::default())
}
const INGRESS_RATE: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second";

/// The custom metrics the discovery document lists, as `resource/metric`.
fn served(adapter: &Adapter) -> Vec<String> {
    let (code, body) = adapter.curl("/apis/custom.metrics.k8s.io/v1beta1");
    assert_eq!(code, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The value of one of the adapter's own metrics (the first line starting with `series`).
fn own_metric(adapter: &Adapter, series: &str) -> Option<f64> {
    let (code, text) = adapter.curl("/metrics");
    assert_eq!(code, 200);
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// Polls `check` for up to `common::PATIENCE`; panics with the adapter's log when it never holds.
fn eventually(adapter: &Adapter, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + common::PATIENCE;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{what} did not happen; adapter log:\n{}",
        std::fs::read_to_string(&adapter.log).unwrap_or_default()
    );
}

/// node-a's running pods, as the kubelet reports them.
fn node_pods(adapter: &Adapter) -> f64 {
    let list = adapter.get_json(NODE_PODS);
    quantity(list["items"][0]["value"].as_str().unwrap())
}

#[test]
fn edits_apply_without_a_restart_and_a_broken_edit_keeps_the_last_good_rules() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = scraping(dir.path());
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    let rules = rules_dir.join("config.yaml");
    std::fs::write(&rules, ingress_rules()).unwrap();
    let adapter = Adapter::start(dir.path(), &rules, &prometheus.url(), &[]);
    let pid = adapter.pid();
    assert!(!served(&adapter).contains(&NODE_METRIC.to_owned()));
    assert_eq!(adapter.curl(NODE_PODS).0, 404);

    // A good edit: the new metric is discovered and served by the same process.
    std::fs::write(&rules, ingress_and_node_rules()).unwrap();
    eventually(&adapter, "serving the node metric after the edit", || {
        served(&adapter).contains(&NODE_METRIC.to_owned())
    });
    assert_close(node_pods(&adapter), 5.0, "node-a pods");
    assert_eq!(adapter.pid(), pid);
    assert_eq!(
        own_metric(&adapter, "prom_adapter_config_last_reload_successful"),
        Some(1.0)
    );
    let log = std::fs::read_to_string(&adapter.log).unwrap();
    assert!(
        log.contains("rules reloaded") && log.contains(NODE_METRIC),
        "the log names the metric that appeared:\n{log}"
    );

    // A broken edit (an invalid regular expression and an unclosed template action): the
    // previous rules keep serving, the reload metric drops to 0, and the log names both errors.
    let broken = ingress_and_node_rules()
        .replace("^nginx_ingress_controller_requests$", "(")
        .replace("by (<<.GroupBy>>)'\n", "by (<<.GroupBy)'\n");
    std::fs::write(&rules, &broken).unwrap();
    eventually(&adapter, "the failed reload being counted", || {
        own_metric(&adapter, "prom_adapter_config_last_reload_successful") == Some(0.0)
    });
    let log = std::fs::read_to_string(&adapter.log).unwrap();
    assert!(log.contains("rules reload failed"), "{log}");
    let problems: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("invalid rules file"))
        .collect();
    let file = rules.display().to_string();
    let line = |needle: &str| {
        1 + broken
            .lines()
            .position(|l| l.contains(needle) && !l.trim_start().starts_with('#'))
            .unwrap()
    };
    let (matches, query) = (line("matches: \"(\""), line("metricsQuery"));
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&format!("{file}:{matches}:14: rules[0].name.matches"))),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&format!("{file}:{query}:17: rules[0].metricsQuery"))),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("rules[1].metricsQuery")),
        "{problems:#?}"
    );
    assert_close(node_pods(&adapter), 5.0, "node-a pods after a broken edit");
    let ingress = adapter.get_json(INGRESS_RATE);
    assert_close(
        quantity(ingress["items"][0]["value"].as_str().unwrap()),
        11.0,
        "service web requests/s after a broken edit",
    );
    assert_eq!(adapter.curl("/readyz").0, 200);

    // Fixing the file (back to the ingress rules only) removes the node metric.
    std::fs::write(&rules, ingress_rules()).unwrap();
    eventually(&adapter, "the node metric disappearing", || {
        !served(&adapter).contains(&NODE_METRIC.to_owned())
    });
    assert_eq!(
        own_metric(&adapter, "prom_adapter_config_last_reload_successful"),
        Some(1.0)
    );
    assert_eq!(adapter.curl(NODE_PODS).0, 404);
}

/// Lays out `dir` as kubelet does for a ConfigMap volume: the key is a symlink through `..data`,
/// which points at a timestamped directory; an update writes a new directory and renames a new
/// `..data` over the old one.
fn configmap_update(dir: &Path, generation: u32, content: &str) {
    let data = format!("..2026_11_27_00_00_0{generation}.000000001");
    std::fs::create_dir(dir.join(&data)).unwrap();
    std::fs::write(dir.join(&data).join("config.yaml"), content).unwrap();
    std::os::unix::fs::symlink(&data, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    if !dir.join("config.yaml").exists() {
        std::os::unix::fs::symlink("..data/config.yaml", dir.join("config.yaml")).unwrap();
    }
}

#[test]
fn a_configmap_volume_update_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = scraping(dir.path());
    let volume = dir.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    configmap_update(&volume, 1, &ingress_rules());
    let adapter = Adapter::start(
        dir.path(),
        &volume.join("config.yaml"),
        &prometheus.url(),
        &[],
    );
    assert!(!served(&adapter).contains(&NODE_METRIC.to_owned()));
    configmap_update(&volume, 2, &ingress_and_node_rules());
    eventually(
        &adapter,
        "serving the node metric after the ..data swap",
        || served(&adapter).contains(&NODE_METRIC.to_owned()),
    );
    assert_close(node_pods(&adapter), 5.0, "node-a pods");
}

#[test]
fn sighup_reloads_a_file_the_directory_watch_cannot_see() {
    // The rules path is a symlink into another directory: the adapter watches the symlink's
    // directory, so editing the target is not seen until SIGHUP asks for a reload.
    let dir = tempfile::tempdir().unwrap();
    let prometheus = scraping(dir.path());
    let (watched, elsewhere) = (dir.path().join("watched"), dir.path().join("elsewhere"));
    std::fs::create_dir(&watched).unwrap();
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("rules.yaml"), ingress_rules()).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("rules.yaml"), watched.join("config.yaml")).unwrap();
    let adapter = Adapter::start(
        dir.path(),
        &watched.join("config.yaml"),
        &prometheus.url(),
        &[],
    );
    std::fs::write(elsewhere.join("rules.yaml"), ingress_and_node_rules()).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &adapter.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    eventually(&adapter, "serving the node metric after SIGHUP", || {
        served(&adapter).contains(&NODE_METRIC.to_owned())
    });
    assert_eq!(
        own_metric(
            &adapter,
            "prom_adapter_config_reloads_total{result=\"success\",trigger=\"signal\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        own_metric(
            &adapter,
            "prom_adapter_config_reloads_total{result=\"success\",trigger=\"file\"}"
        ),
        Some(0.0),
        "the directory watch saw nothing (the series is exposed at zero from the start)"
    );
    assert_eq!(
        adapter.curl("/livez").0,
        200,
        "SIGHUP does not end the process"
    );
}
