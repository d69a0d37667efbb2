//! `prom-adapter explain` against a real Prometheus: per-rule reports, answers as the API gives them, and one test per `--why` verdict, each with the fix it suggests.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{Prometheus, Scrape};
use serde_json::Value;

/// The ingress-nginx rule of `config/ingress-nginx.yaml` (without its commented variant), with
/// `edit` applied to its text.
fn ingress_rule(edit: impl Fn(String) -> String) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ingress-nginx.yaml"),
    )
    .unwrap();
    let end = text.find("# With `honorLabels").unwrap();
    edit(text[..end].to_owned())
}

/// A cluster-scoped metric: the kubelet's running pods, by the `node` label of its target.
const NODE_RULE: &str = "- seriesQuery: 'kubelet_running_pods{node!=\"\"}'\n  resources: {overrides: {node: {resource: node}}}\n  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'\n";

/// Runs `explain` with `rules` against `prometheus`; returns (exit success, stdout, stderr).
fn explain(
    dir: &Path,
    prometheus: &Prometheus,
    rules: &str,
    args: &[&str],
) -> (bool, String, String) {
    let file = dir.join("rules.yaml");
    std::fs::write(&file, rules).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_prom-adapter"))
        .arg("explain")
        .arg(format!("--config={}", file.display()))
        .arg(format!("--prometheus-url={}", prometheus.url()))
        .arg("--metrics-max-age=1h")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `explain --why PATH --output json` against a fresh Prometheus scraping the fixture cluster.
fn why(rules: &str, path: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::scraping(dir.path(), Scrape::default());
    let (ok, stdout, stderr) = explain(
        dir.path(),
        &prometheus,
        rules,
        &["--why", "--output=json", path],
    );
    assert!(ok, "{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn assert_verdict(finding: &Value, verdict: &str, rule: Option<&str>) {
    assert_eq!(finding["verdict"], verdict, "{finding:#}");
    if let Some(rule) = rule {
        assert_eq!(finding["rule"], rule, "{finding:#}");
    }
}

fn text(finding: &Value, field: &str) -> String {
    finding[field].as_str().unwrap_or_default().to_owned()
}

const WEB_SERVICE: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second";

#[test]
fn why_no_series_names_the_rule_and_the_query_to_check() {
    let rules = ingress_rule(|t| {
        format!(
            "{t}- seriesQuery: 'http_requests_total{{namespace!=\"\",pod!=\"\"}}'\n  resources: {{overrides: {{namespace: {{resource: namespace}}, pod: {{resource: pod}}}}}}\n  name: {{matches: \"^(.*)_total$\", as: \"${{1}}_per_second\"}}\n  metricsQuery: 'sum(rate(<<.Series>>{{<<.LabelMatchers>>}}[2m])) by (<<.GroupBy>>)'\n"
        )
    });
    let finding = why(
        &rules,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/web-6d4cf56db6-abcde/http_requests_per_second",
    );
    assert_verdict(&finding, "no_series", Some("rules[1]"));
    assert!(
        text(&finding, "explanation").contains("in the last 1h"),
        "{finding:#}"
    );
    assert!(
        text(&finding, "fix")
            .contains("count by (__name__) (http_requests_total{namespace!=\"\",pod!=\"\"})"),
        "{finding:#}"
    );
}

#[test]
fn why_dropped_by_filter_names_the_filter() {
    let rules = ingress_rule(|t| {
        t.replace(
            "  resources:\n",
            "  seriesFilters: [{isNot: \"_requests$\"}]\n  resources:\n",
        )
    });
    let finding = why(&rules, WEB_SERVICE);
    assert_verdict(&finding, "dropped_by_filter", Some("rules[0]"));
    assert_eq!(
        text(&finding, "fix"),
        "Change rules[0].seriesFilters[0].isNot so that it keeps nginx_ingress_controller_requests, or remove that filter."
    );
}

#[test]
fn why_name_does_not_match_suggests_a_matching_name_rule() {
    let rules = ingress_rule(|t| {
        t.replace(
            "^nginx_ingress_controller_requests$",
            "^nginx_ingress_requests$",
        )
    });
    let finding = why(&rules, WEB_SERVICE);
    assert_verdict(&finding, "name_does_not_match", Some("rules[0]"));
    assert!(
        text(&finding, "fix").contains(
            "name: {matches: \"^nginx_ingress_controller_requests$\", as: \"nginx_ingress_requests_per_second\"}"
        ),
        "{finding:#}"
    );
}

#[test]
fn why_name_becomes_other_says_which_name_the_rule_produces() {
    let finding = why(
        &ingress_rule(|t| t),
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_controller_requests_per_second",
    );
    assert_verdict(&finding, "name_becomes_other", Some("rules[0]"));
    assert!(
        text(&finding, "fix").starts_with("Ask for nginx_ingress_requests_per_second"),
        "{finding:#}"
    );
}

#[test]
fn why_no_label_for_resource_suggests_the_override() {
    let rules = ingress_rule(|t| {
        t.replace(
            "      ingress: {group: networking.k8s.io, resource: ingress}\n",
            "",
        )
    });
    let finding = why(
        &rules,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/ingresses.networking.k8s.io/web/nginx_ingress_requests_per_second",
    );
    assert_verdict(&finding, "no_label_for_resource", Some("rules[0]"));
    assert!(
        text(&finding, "explanation").contains("it is served for namespaces, services"),
        "{finding:#}"
    );
    assert!(
        text(&finding, "fix").contains(
            "resources: {overrides: {ingress: {group: networking.k8s.io, resource: ingresses}}}"
        ),
        "{finding:#}"
    );
}

#[test]
fn why_scope_mismatch_gives_the_path_to_ask() {
    let finding = why(
        &format!("rules:\n{NODE_RULE}"),
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/nodes/node-a/kubelet_running_pods",
    );
    assert_verdict(&finding, "scope_mismatch", None);
    assert_eq!(
        text(&finding, "fix"),
        "Ask /apis/custom.metrics.k8s.io/v1beta2/nodes/node-a/kubelet_running_pods"
    );
}

#[test]
fn why_renamed_by_scrape_names_the_exported_labels_and_the_overrides_to_use() {
    // The rule for honorLabels: true (ingress-nginx's own label names), on a default install.
    let finding = why(&common::ingress_rules_honoring_labels(), WEB_SERVICE);
    assert_verdict(&finding, "renamed_by_scrape", Some("rules[0]"));
    let explanation = text(&finding, "explanation");
    assert!(
        explanation.contains("No nginx_ingress_controller_requests series has namespace=\"default\" or service=\"web\"")
            && explanation.contains("`namespace` holds ingress-nginx")
            && explanation.contains("`exported_namespace` holds 2 values (default, other)"),
        "{finding:#}"
    );
    assert_eq!(
        text(&finding, "fix"),
        "In rules[0], map the exporter's labels: resources: {overrides: {exported_namespace: {resource: namespace}, ingress: {group: networking.k8s.io, resource: ingress}, exported_service: {resource: service}}}, and seriesQuery: 'nginx_ingress_controller_requests{exported_namespace!=\"\",ingress!=\"\"}'. Or set honorLabels: true on the ServiceMonitor or PodMonitor that scrapes these series, so that namespace and service keep the exporter's values."
    );
}

#[test]
fn why_no_sample_lists_the_objects_prometheus_has() {
    let finding = why(
        &ingress_rule(|t| t),
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/ghost/nginx_ingress_requests_per_second",
    );
    assert_verdict(&finding, "no_sample", Some("rules[0]"));
    assert!(
        text(&finding, "explanation").contains("The series name these objects: web."),
        "{finding:#}"
    );
    assert!(
        text(&finding, "fix").contains("ask for that name"),
        "{finding:#}"
    );
    assert!(
        text(&finding, "query").contains("service=\"ghost\""),
        "{finding:#}"
    );
}

#[test]
fn why_nan_points_at_the_division() {
    let rules = "externalRules:\n- seriesQuery: 'queue_consumer_lag{namespace!=\"\"}'\n  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)\n  resources: {overrides: {namespace: {resource: namespace}}}\n";
    let finding = why(
        rules,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_consumer_lag?labelSelector=name%3Dstuck",
    );
    assert_verdict(&finding, "nan", Some("externalRules[0]"));
    assert!(
        text(&finding, "fix").contains("guard the divisor"),
        "{finding:#}"
    );
}

#[test]
fn why_served_gives_the_value_and_text_output_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::scraping(dir.path(), Scrape::default());
    let rules = ingress_rule(|t| t);
    let (ok, stdout, stderr) = explain(
        dir.path(),
        &prometheus,
        &rules,
        &["--output=json", "--why", WEB_SERVICE],
    );
    assert!(ok, "{stderr}");
    let finding: Value = serde_json::from_str(&stdout).unwrap();
    assert_verdict(&finding, "served", Some("rules[0]"));
    let value = common::quantity(finding["value"].as_str().unwrap());
    common::assert_close(value, 11.0, "web requests/s");

    let (ok, stdout, _) = explain(dir.path(), &prometheus, &rules, &["--why", WEB_SERVICE]);
    assert!(ok);
    assert!(
        stdout.starts_with("verdict  served (rules[0])\n"),
        "{stdout}"
    );
    assert!(
        !stdout.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn live_explain_reports_every_rule_and_answers_requests_as_the_api_does() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::scraping(dir.path(), Scrape::default());
    let rules = ingress_rule(|t| {
        t.replace(
            "  resources:\n",
            "  seriesFilters: [{isNot: \"^nginx_ingress_controller_bytes\"}]\n  resources:\n",
        )
        .replace("[2m]", "[5s]")
            + NODE_RULE
    });
    let (ok, stdout, stderr) = explain(dir.path(), &prometheus, &rules, &["--output=json"]);
    assert!(ok, "{stderr}");
    let listing: Value = serde_json::from_str(&stdout).unwrap();
    // The offline shape stays, with the per-rule reports added.
    assert!(
        listing["custom"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["metric"] == "nginx_ingress_requests_per_second"
                && c["resource"] == "ingresses.networking.k8s.io")
    );
    let ingress = &listing["rules"][0];
    // web: 2 statuses and its canary backend; api: 2 statuses.
    assert_eq!(ingress["series"], 5, "{ingress:#}");
    assert_eq!(ingress["filters"][0]["filter"], "seriesFilters[0].isNot");
    assert_eq!(ingress["filters"][0]["dropped"], 0);
    assert_eq!(ingress["filters"][1]["filter"], "name.matches");
    assert_eq!(
        ingress["metrics"],
        serde_json::json!(["nginx_ingress_requests_per_second"])
    );
    assert_eq!(ingress["resources"]["exported_service"], "services");
    assert_eq!(
        ingress["resources"]["ingress"],
        "ingresses.networking.k8s.io"
    );
    assert!(
        ingress["unmapped_labels"]
            .as_array()
            .unwrap()
            .contains(&Value::from("status")),
        "{ingress:#}"
    );
    assert_eq!(listing["rules"][1]["scope"], "cluster");
    // The fixture Prometheus scrapes every 2s (its /api/v1/status/config says so).
    assert_eq!(
        listing["warnings"],
        serde_json::json!([{
            "at": "rules[0].metricsQuery",
            "message": "the range window [5s] is shorter than four scrape intervals (2s × 4 = 8s): rate() over it sees too few samples and the metric goes missing or jumps. Use [8s] or more"
        }])
    );

    let (ok, stdout, _) = explain(dir.path(), &prometheus, &rules, &[]);
    assert!(ok);
    assert!(
        stdout.contains("rules[0]  nginx_ingress_controller_requests"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  metrics   nginx_ingress_requests_per_second"),
        "{stdout}"
    );

    // A `*` request: the objects Prometheus has, with the values the API serves.
    let rules = rules.replace("[5s]", "[2m]");
    let (ok, stdout, stderr) = explain(
        dir.path(),
        &prometheus,
        &rules,
        &[
            "--output=json",
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/*/nginx_ingress_requests_per_second",
        ],
    );
    assert!(ok, "{stderr}");
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        answer["query"]
            .as_str()
            .unwrap()
            .contains("exported_service=\"web\""),
        "{answer:#}"
    );
    assert_eq!(answer["values"][0]["object"], "web");
    common::assert_close(
        common::quantity(answer["values"][0]["value"].as_str().unwrap()),
        11.0,
        "web requests/s",
    );

    // A path that loses its metric says why, and exits 1.
    let (ok, stdout, _) = explain(
        dir.path(),
        &prometheus,
        &rules,
        &[
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/nodes/node-a/kubelet_running_pods",
        ],
    );
    assert!(!ok);
    assert!(stdout.starts_with("verdict  scope_mismatch"), "{stdout}");

    // The rule for honorLabels: true, on a default install: a warning names the rename.
    let honoring = common::ingress_rules_honoring_labels();
    let (ok, stdout, stderr) = explain(dir.path(), &prometheus, &honoring, &["--output=json"]);
    assert!(ok, "{stderr}");
    let listing: Value = serde_json::from_str(&stdout).unwrap();
    let warnings = listing["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0]["at"], "rules[0].resources.overrides.namespace");
    let message = warnings[0]["message"].as_str().unwrap();
    assert!(
        message.contains("`service` holds ingress-nginx-controller-metrics")
            && message.contains("exported_service: {resource: service}"),
        "{message}"
    );
}

#[test]
fn live_explain_answers_metrics_k8s_io_paths_with_their_queries_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::scraping(dir.path(), Scrape::default());
    let rules =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.yaml"))
            .unwrap();
    let answer = |path: &str| {
        let (ok, stdout, stderr) =
            explain(dir.path(), &prometheus, &rules, &["--output=json", path]);
        assert!(ok, "{path}: {stderr}");
        serde_json::from_str::<Value>(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    };
    // The nodes Prometheus has series for, as `serve --standalone` finds them, with the values
    // `kubectl top` gets from `serve` (node-b: 0.75 cores, 1 GiB).
    let nodes = answer("/apis/metrics.k8s.io/v1beta1/nodes");
    let query = nodes["query"].as_str().unwrap();
    assert!(
        query.starts_with("cpu: ")
            && query.contains("\nmemory: ")
            && query.contains(r#"node=~"node\\-a|node\\-b""#),
        "{query}"
    );
    let values = nodes["values"].as_array().unwrap();
    assert_eq!(values[0]["object"], "node-a", "{values:?}");
    assert_eq!(values[1]["object"], "node-b", "{values:?}");
    let value = values[1]["value"].as_str().unwrap();
    let (cpu, memory) = value
        .strip_prefix("cpu=")
        .and_then(|v| v.split_once(" memory="))
        .unwrap_or_else(|| panic!("{value}"));
    common::assert_close(common::quantity(cpu), 0.75, "node-b CPU");
    assert_eq!(memory, "1Gi");

    // One pod: a row per container (web's app container: 0.25 cores, 100 MiB).
    let pod = answer("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web-6d4cf56db6-abcde");
    assert!(
        pod["query"]
            .as_str()
            .unwrap()
            .contains(r#"pod="web-6d4cf56db6-abcde""#),
        "{pod:#}"
    );
    let containers: Vec<&str> = pod["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["object"].as_str().unwrap())
        .collect();
    assert!(
        containers.contains(&"web-6d4cf56db6-abcde/app"),
        "{containers:?}"
    );
    let app = pod["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["object"] == "web-6d4cf56db6-abcde/app")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let (cpu, memory) = app
        .strip_prefix("cpu=")
        .and_then(|v| v.split_once(" memory="))
        .unwrap();
    common::assert_close(common::quantity(cpu), 0.25, "app CPU");
    assert_eq!(memory, "100Mi");

    // A pod Prometheus has no series for: the queries to check, then the 404's message, exit 1.
    let (ok, stdout, stderr) = explain(
        dir.path(),
        &prometheus,
        &rules,
        &["/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/ghost"],
    );
    assert!(!ok && stderr.contains("ghost"), "{stderr}");
    assert!(
        stdout.starts_with("cpu: ") && stdout.contains(r#"pod="ghost""#),
        "{stdout}"
    );
    let (ok, _, stderr) = explain(
        dir.path(),
        &prometheus,
        &rules,
        &["--why", "/apis/metrics.k8s.io/v1beta1/nodes/node-a"],
    );
    assert!(
        !ok && stderr.contains("--why follows custom and external metrics"),
        "{stderr}"
    );
}
