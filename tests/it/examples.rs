//! Every shipped example on data Prometheus scraped itself from the fixture cluster's exporters
//! (`tests/fixtures/cluster.py`, scraped as kube-prometheus-stack would): ingress-nginx in both
//! honorLabels modes, the Istio Gateway API example, the resource rules and the chart's default
//! rules, read through a real kubectl; and the copies of each rule checked against their source.

use crate::common;

use std::path::{Path, PathBuf};

use common::{
    Adapter, Prometheus, Scrape, assert_close, commented_rule, doc_blocks,
    ingress_rules_honoring_labels, quantity,
};
use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The custom-metrics path an HPA's first (Object) metric reads, and its metric selector.
fn object_metric_path(hpa_path: &str) -> String {
    let hpa = yaml(&read(hpa_path));
    let namespace = hpa["metadata"]["namespace"].as_str().unwrap();
    let object = &hpa["spec"]["metrics"][0]["object"];
    assert_eq!(hpa["spec"]["metrics"][0]["type"], "Object");
    let described = &object["describedObject"];
    let resource = match (
        described["apiVersion"].as_str().unwrap(),
        described["kind"].as_str().unwrap(),
    ) {
        ("networking.k8s.io/v1", "Ingress") => "ingresses.networking.k8s.io",
        ("v1", "Service") => "services",
        other => panic!("no resource for {other:?}"),
    };
    format!(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/{resource}/{}/{}",
        described["name"].as_str().unwrap(),
        object["metric"]["name"].as_str().unwrap()
    )
}

/// A Prometheus scraping the fixture cluster as `scrape` says, and the adapter serving `rules`
/// from it.
fn serving(dir: &Path, rules: &Path, scrape: Scrape) -> (Prometheus, Adapter) {
    let prometheus = Prometheus::scraping(dir, scrape);
    let adapter = Adapter::start(dir, rules, &prometheus.url(), &[]);
    (prometheus, adapter)
}

/// The value of a single-object MetricValueList.
fn value(adapter: &Adapter, path: &str) -> f64 {
    let list = adapter.get_json(path);
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{path}: {list}");
    quantity(items[0]["value"].as_str().unwrap())
}

/// What an operator following the ingress-nginx example gets, for `rules` on data scraped with
/// `honor_labels` as given.
fn ingress_example(honor_labels: bool, rules: &Path, dir: &Path) {
    let (_prometheus, adapter) = serving(dir, rules, Scrape::honoring_labels(honor_labels));
    // The HPA's own path, read with a real kubectl: Ingress `web` serves 9/s + 1/s errors + 1/s
    // through its canary backend.
    let hpa = object_metric_path("charts/prom-adapter/examples/ingress-nginx-hpa.yaml");
    assert_eq!(
        hpa,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/ingresses.networking.k8s.io/web/nginx_ingress_requests_per_second"
    );
    assert_close(value(&adapter, &hpa), 11.0, "Ingress web");
    let service = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second";
    assert_close(value(&adapter, service), 11.0, "Service web");
    // metric.selector narrows: only errors, or only the main backend (canary="").
    assert_close(
        value(
            &adapter,
            &format!("{service}?metricLabelSelector=status%3D500"),
        ),
        1.0,
        "Service web, 5xx",
    );
    assert_close(
        value(
            &adapter,
            &format!("{service}?metricLabelSelector=canary%3D"),
        ),
        10.0,
        "Service web without canary traffic",
    );
    assert_close(
        value(
            &adapter,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/other/ingresses.networking.k8s.io/api/nginx_ingress_requests_per_second",
        ),
        5.0,
        "Ingress api",
    );
    // Every Ingress of a namespace, and nothing for the controller's own namespace or Service.
    let all = adapter.get_json(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/ingresses.networking.k8s.io/*/nginx_ingress_requests_per_second",
    );
    let names: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["describedObject"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web"], "{all}");
    let (code, body) = adapter.curl("/apis/custom.metrics.k8s.io/v1beta2/namespaces/ingress-nginx/services/ingress-nginx-controller-metrics/nginx_ingress_requests_per_second");
    assert_eq!(code, 404, "{body}");
}

#[test]
fn the_ingress_nginx_example_serves_per_ingress_and_per_service_rates_on_a_default_install() {
    let dir = tempfile::tempdir().unwrap();
    ingress_example(false, &repo("config/ingress-nginx.yaml"), dir.path());
}

#[test]
fn the_ingress_nginx_example_serves_the_same_rates_with_honor_labels() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("ingress-nginx-honor-labels.yaml");
    std::fs::write(&rules, ingress_rules_honoring_labels()).unwrap();
    ingress_example(true, &rules, dir.path());
}

/// The custom metrics an adapter serves, without the placeholder of an empty discovery.
fn served(adapter: &Adapter) -> Vec<String> {
    let discovery = adapter.get_json("/apis/custom.metrics.k8s.io/v1beta2");
    let mut names: Vec<String> = discovery["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .filter(|n| !n.ends_with("/prom_adapter_no_metric_discovered_yet"))
        .collect();
    names.sort();
    names
}

#[test]
fn each_ingress_nginx_variant_is_wrong_for_the_other_setting() {
    // The default-install rule on labels honored: its seriesQuery finds nothing.
    let dir = tempfile::tempdir().unwrap();
    let honored = dir.path().join("honored");
    let (_prometheus, adapter) = serving(
        &honored,
        &repo("config/ingress-nginx.yaml"),
        Scrape::honoring_labels(true),
    );
    assert_eq!(served(&adapter), Vec::<String>::new());
    // The honorLabels variant on a default install: it serves every request through the
    // controller as the controller's namespace and metrics Service, the mistake this example
    // used to make.
    let default = dir.path().join("default");
    std::fs::create_dir_all(&default).unwrap();
    let rules = default.join("honor-labels.yaml");
    std::fs::write(&rules, ingress_rules_honoring_labels()).unwrap();
    let (_prometheus, adapter) = serving(&default, &rules, Scrape::honoring_labels(false));
    assert_close(
        value(
            &adapter,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ingress-nginx/services/ingress-nginx-controller-metrics/nginx_ingress_requests_per_second",
        ),
        16.0,
        "all traffic, on the controller's Service",
    );
    let (code, body) = adapter.curl("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second");
    assert_eq!(code, 404, "{body}");
}

#[test]
fn the_gateway_api_example_serves_each_services_rate_through_the_gateway_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_prometheus, adapter) = serving(
        dir.path(),
        &repo("config/istio-gateway.yaml"),
        Scrape::default(),
    );
    // The gateway reports 8/s + 0.5/s of 503s to checkout; checkout's sidecar reports them again
    // (reporter="destination"), which must not double the rate.
    let hpa = object_metric_path("charts/prom-adapter/examples/istio-gateway-hpa.yaml");
    assert_eq!(
        hpa,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/store/services/checkout/istio_requests_per_second"
    );
    assert_close(value(&adapter, &hpa), 8.5, "Service checkout");
    assert_close(
        value(
            &adapter,
            &format!("{hpa}?metricLabelSelector=response_code%3D503"),
        ),
        0.5,
        "Service checkout, 503s",
    );
    let all = adapter.get_json(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/store/services/*/istio_requests_per_second",
    );
    let mut rates: Vec<(String, f64)> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["describedObject"]["name"].as_str().unwrap().to_owned(),
                quantity(i["value"].as_str().unwrap()),
            )
        })
        .collect();
    rates.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(rates.len(), 2, "{all}");
    assert_eq!(rates[0].0, "catalog");
    assert_close(rates[0].1, 3.0, "Service catalog");
    // The scrape's `namespace` is the gateway's: nothing is served there.
    let (code, body) = adapter.curl("/apis/custom.metrics.k8s.io/v1beta2/namespaces/istio-ingress/services/checkout/istio_requests_per_second");
    assert_eq!(code, 404, "{body}");
}

/// `kubectl top pod` rows: name → (cores, bytes).
fn top_pods(adapter: &Adapter, namespace: &str) -> Vec<(String, f64, f64)> {
    let (ok, stdout, stderr) = adapter.kubectl(&["top", "pod", "-n", namespace, "--no-headers"]);
    assert!(ok, "{stderr}");
    stdout
        .lines()
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            (cells[0].to_owned(), quantity(cells[1]), quantity(cells[2]))
        })
        .collect()
}

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

/// (name, cores, bytes) of each entry of a PodMetrics' containers or a NodeMetricsList's items.
fn usages(entries: &Value, name: impl Fn(&Value) -> &Value) -> Vec<(String, f64, f64)> {
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                name(e).as_str().unwrap().to_owned(),
                quantity(e["usage"]["cpu"].as_str().unwrap()),
                quantity(e["usage"]["memory"].as_str().unwrap()),
            )
        })
        .collect()
}

/// Resource metrics from `rules` match what the fixture's containers and nodes use.
fn resource_rules_serve_usage(adapter: &Adapter, what: &str) {
    // Containers only: the pod-level cgroup and the pause container (container="") are left out.
    let web = top_pods(adapter, "default");
    let names: Vec<&str> = web.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "queue-exporter-6b7c8d9f4-w1x2y",
            "web-6d4cf56db6-abcde",
            "web-6d4cf56db6-fghij"
        ],
        "{what}"
    );
    assert_close(web[1].1, 0.25, &format!("{what}: web pod CPU"));
    assert_close(web[1].2, 100.0 * MIB, &format!("{what}: web pod memory"));
    let checkout = adapter
        .get_json("/apis/metrics.k8s.io/v1beta1/namespaces/store/pods/checkout-7f8d9c6b5-p4q5r");
    let containers = usages(&checkout["containers"], |c| &c["name"]);
    assert_eq!(containers.len(), 2, "{what}: {checkout}");
    assert_eq!(
        (containers[0].0.as_str(), containers[1].0.as_str()),
        ("app", "istio-proxy")
    );
    assert_close(containers[0].1, 0.5, &format!("{what}: checkout app CPU"));
    assert_close(
        containers[1].2,
        50.0 * MIB,
        &format!("{what}: sidecar memory"),
    );
    // Nodes: node-exporter's busy CPU and used memory, named through kube_pod_info.
    let nodes = adapter.get_json("/apis/metrics.k8s.io/v1beta1/nodes");
    let usage = usages(&nodes["items"], |n| &n["metadata"]["name"]);
    assert_eq!(usage.len(), 2, "{what}: {nodes}");
    assert_eq!(
        (usage[0].0.as_str(), usage[1].0.as_str()),
        ("node-a", "node-b")
    );
    assert_close(usage[0].1, 1.5, &format!("{what}: node-a CPU"));
    assert_close(usage[0].2, 2.0 * GIB, &format!("{what}: node-a memory"));
    assert_close(usage[1].1, 0.75, &format!("{what}: node-b CPU"));
    assert_close(usage[1].2, GIB, &format!("{what}: node-b memory"));
}

#[test]
fn every_shipped_resource_rule_serves_container_and_node_usage() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::scraping(dir.path(), Scrape::default());
    // config/kube-prometheus.yaml reads the kubelet's /metrics/resource, which kube-prometheus
    // scrapes and kube-prometheus-stack does not: it is not for this setup.
    for file in [
        "config/demo.yaml",
        "config/config-gen-default.yaml",
        "config/chart-resource-example.yaml",
    ] {
        let sub = dir.path().join(file.replace('/', "_"));
        std::fs::create_dir_all(&sub).unwrap();
        let adapter = Adapter::start(&sub, &repo(file), &prometheus.url(), &[]);
        resource_rules_serve_usage(&adapter, file);
    }
}

#[test]
fn the_charts_default_rules_count_each_container_once() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("default-rules.yaml");
    std::fs::write(
        &rules,
        format!(
            "rules:\n{}",
            read("charts/prom-adapter/files/default-rules.yaml")
        ),
    )
    .unwrap();
    let (_prometheus, adapter) = serving(dir.path(), &rules, Scrape::default());
    let base = "/apis/custom.metrics.k8s.io/v1beta2/namespaces";
    // Per pod: its containers, without the pod cgroup and pause container that hold them again.
    assert_close(
        value(
            &adapter,
            &format!("{base}/default/pods/web-6d4cf56db6-abcde/cpu_usage"),
        ),
        0.25,
        "web pod cpu_usage",
    );
    assert_close(
        value(
            &adapter,
            &format!("{base}/store/pods/checkout-7f8d9c6b5-p4q5r/cpu_usage"),
        ),
        0.55,
        "checkout pod cpu_usage (app and sidecar)",
    );
    assert_close(
        value(
            &adapter,
            &format!("{base}/store/pods/checkout-7f8d9c6b5-p4q5r/memory_working_set_bytes"),
        ),
        250.0 * MIB,
        "checkout pod memory",
    );
    // Per namespace: the sum of its containers.
    assert_close(
        value(&adapter, &format!("{base}/default/metrics/cpu_usage")),
        0.505,
        "namespace default cpu_usage",
    );
    // The template rules map any label named like a resource: node-exporter's series carry the
    // node-exporter pod (a target label).
    assert_close(
        value(
            &adapter,
            &format!("{base}/monitoring/pods/kps-prometheus-node-exporter-4xk2p/node_load1"),
        ),
        3.0,
        "node_load1 on the node-exporter pod",
    );
}

/// A rules file's rule list (or one key of it) as JSON, for comparing copies.
fn rules_of(text: &str, key: &str) -> Value {
    yaml(text)[key].clone()
}

/// The rule of `list` whose seriesQuery mentions `series`.
fn rule_for(list: &Value, series: &str) -> Value {
    let found: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["seriesQuery"]
                .as_str()
                .unwrap_or_default()
                .contains(series)
        })
        .collect();
    assert_eq!(found.len(), 1, "one rule for {series} in {list}");
    found[0].clone()
}

#[test]
fn every_copy_of_the_ingress_nginx_gateway_resource_and_default_rules_is_the_source() {
    let ingress_file = read("config/ingress-nginx.yaml");
    let ingress = rules_of(&ingress_file, "rules")[0].clone();
    let honoring = rules_of(&ingress_rules_honoring_labels(), "rules")[0].clone();
    let chart_ingress = read("charts/prom-adapter/ci/ingress-nginx-values.yaml");
    let chart_values = yaml(&chart_ingress);
    assert_eq!(chart_values["rules"]["custom"][0], ingress, "chart values");
    let chart_honoring = commented_rule(&chart_ingress, "honorLabels: true");
    assert_eq!(yaml(&chart_honoring)[0], honoring, "chart values' variant");
    let demo = read("config/demo.yaml");
    assert_eq!(
        rule_for(
            &rules_of(&demo, "rules"),
            "nginx_ingress_controller_requests"
        ),
        ingress,
        "config/demo.yaml"
    );
    // The README's walk-through and install section show the same rules.
    let walkthrough = yaml(&doc_blocks("docs/rules.md", "## Writing rules", "yaml")[0]);
    assert_eq!(walkthrough["rules"][0], ingress, "README: Writing rules");
    let install = doc_blocks("README.md", "### Scale on ingress request rate", "yaml");
    assert_eq!(
        install.len(),
        2,
        "README: Scale on ingress shows both variants"
    );
    assert_eq!(
        yaml(&install[0])["rules"][0],
        ingress,
        "README: Scale on ingress"
    );
    assert_eq!(
        yaml(&install[1])["rules"][0],
        honoring,
        "README: honorLabels variant"
    );
    // Each variant is what its setting stores: the default one maps the exported_* labels.
    assert_eq!(
        ingress["resources"]["overrides"]["exported_namespace"]["resource"],
        "namespace"
    );
    assert_eq!(
        honoring["resources"]["overrides"]["namespace"]["resource"],
        "namespace"
    );

    let gateway = rules_of(&read("config/istio-gateway.yaml"), "rules")[0].clone();
    let chart_gateway = yaml(&read("charts/prom-adapter/ci/istio-gateway-values.yaml"));
    assert_eq!(chart_gateway["rules"]["custom"][0], gateway, "chart values");
    assert_eq!(
        rule_for(&rules_of(&demo, "rules"), "istio_requests_total"),
        gateway,
        "config/demo.yaml"
    );
    let readme_gateway = yaml(
        &doc_blocks(
            "docs/install.md",
            "### Scale on Gateway API request rate",
            "yaml",
        )[0],
    );
    assert_eq!(readme_gateway["rules"][0], gateway, "README: Gateway API");

    let resource = rules_of(&demo, "resourceRules");
    let chart_resource = yaml(&read(
        "charts/prom-adapter/ci/external-resource-values.yaml",
    ));
    assert_eq!(
        chart_resource["rules"]["resource"], resource,
        "chart values"
    );
    assert_eq!(
        rules_of(&read("config/config-gen-default.yaml"), "resourceRules"),
        resource,
        "config/config-gen-default.yaml"
    );

    let defaults = yaml(&read("charts/prom-adapter/files/default-rules.yaml"));
    let defaults = defaults.as_array().unwrap();
    for file in [
        "config/chart-default.yaml",
        "config/config-gen-default.yaml",
    ] {
        assert_eq!(
            rules_of(&read(file), "rules").as_array().unwrap(),
            defaults,
            "{file}"
        );
    }
    let demo_rules = rules_of(&demo, "rules");
    let demo_defaults: Vec<&Value> = demo_rules
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| defaults.contains(r))
        .collect();
    assert_eq!(demo_defaults.len(), defaults.len(), "config/demo.yaml");
}

/// Splits a command line as a shell would for the README's commands: words, and '…' quoting.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            _ => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The README and every page of `docs/`, by path from the repository's root.
pub fn doc_pages() -> Vec<String> {
    let mut pages = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(repo("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// Every `$ command` of the `console` blocks of the README and `docs/`, with the lines shown
/// after it.
fn readme_commands() -> Vec<(String, Vec<String>)> {
    let mut commands = Vec::new();
    for page in doc_pages() {
        commands.extend(console_commands(&read(&page)));
    }
    commands
}

/// Every `$ command` of a page's `console` blocks, with the lines shown after it.
fn console_commands(page: &str) -> Vec<(String, Vec<String>)> {
    let mut commands = Vec::new();
    for block in page.split("```console\n").skip(1) {
        let block = block.split("```").next().unwrap();
        for chunk in block.split("$ ").filter(|c| !c.is_empty()) {
            let mut lines = chunk.lines();
            let command = lines.next().unwrap().to_owned();
            commands.push((command, lines.map(str::to_owned).collect()));
        }
    }
    commands
}

/// Whether two quantities as the API or kubectl print them agree, within rate()'s jitter on
/// live data and kubectl's rounding down to a milli-unit.
fn quantities_agree(shown: &str, got: &str) -> bool {
    let (shown, got) = (quantity(shown), quantity(got));
    (shown - got).abs() <= shown.abs() * 0.03 + 0.0011
}

/// Compares what the README shows with what the command printed: JSON answers field by field
/// (any timestamp; values within `quantities_agree`), text line by line with the same allowance
/// for the quantity columns of tables.
fn assert_output_matches(command: &str, shown: &[String], got: &str) {
    if shown.first().is_some_and(|l| l.starts_with('{')) {
        let mut shown: Value = serde_json::from_str(&shown.join("\n")).unwrap();
        let mut got: Value = serde_json::from_str(got).unwrap_or_else(|e| panic!("{e}: {got}"));
        for (list, what) in [(&mut shown, "README"), (&mut got, "output")] {
            for item in list["items"].as_array_mut().expect(what) {
                item["timestamp"] = Value::Null;
            }
        }
        let value = |v: &Value, i: usize| v["items"][i]["value"].as_str().unwrap().to_owned();
        for i in 0..shown["items"].as_array().unwrap().len() {
            assert!(
                quantities_agree(&value(&shown, i), &value(&got, i)),
                "{command}: README shows {}, the command printed {}",
                value(&shown, i),
                value(&got, i)
            );
            shown["items"][i]["value"] = Value::Null;
            got["items"][i]["value"] = Value::Null;
        }
        assert_eq!(got, shown, "{command}");
        return;
    }
    let got: Vec<&str> = got.lines().map(str::trim_end).collect();
    assert_eq!(got.len(), shown.len(), "{command}:\n{}", got.join("\n"));
    let mut table = false;
    for (shown, got) in shown.iter().zip(&got) {
        let shown = shown.trim_end();
        table |= shown.starts_with("OBJECT") || shown.starts_with("NAME ");
        if table && !shown.starts_with("OBJECT") && !shown.starts_with("NAME ") {
            let (a, b): (Vec<&str>, Vec<&str>) = (
                shown.split_whitespace().collect(),
                got.split_whitespace().collect(),
            );
            assert_eq!(a.len(), b.len(), "{command}: {got}");
            assert_eq!(a[0], b[0], "{command}: {got}");
            for (x, y) in a[1..].iter().zip(&b[1..]) {
                assert!(
                    quantities_agree(x, y),
                    "{command}: README {shown}, printed {got}"
                );
            }
        } else {
            assert_eq!(*got, shown, "{command}");
        }
    }
}

#[test]
fn the_readme_shows_what_its_commands_print_on_the_fixture_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (prometheus, adapter) = serving(dir.path(), &repo("config/demo.yaml"), Scrape::default());
    // On a loaded machine the first relist can come before every exporter's history is in
    // Prometheus: wait until the README's first metric is served (the next relist, 2 s later).
    let first = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/ingresses.networking.k8s.io/web/nginx_ingress_requests_per_second";
    let deadline = std::time::Instant::now() + common::PATIENCE;
    while adapter.curl(first).0 != 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    // `rules.yaml` of the --why example: the honorLabels variant, on this default install.
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, ingress_rules_honoring_labels()).unwrap();
    let commands = readme_commands();
    assert!(commands.len() >= 8, "{commands:?}");
    for (command, shown) in &commands {
        let words = shell_words(command);
        let output = match words[0].as_str() {
            "prom-adapter" => {
                let args: Vec<String> = words[1..]
                    .iter()
                    .map(|w| match w.as_str() {
                        "http://prometheus:9090" => prometheus.url(),
                        "rules.yaml" => rules.display().to_string(),
                        _ => w.clone(),
                    })
                    .collect();
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_prom-adapter"))
                    .current_dir(repo(""))
                    .args(&args)
                    .output()
                    .unwrap();
                String::from_utf8(out.stdout).unwrap()
            }
            "kubectl" => {
                // The README's own connection flags are the demo's; the harness adds its own.
                let mut args: Vec<&str> = Vec::new();
                let mut rest = words[1..].iter();
                while let Some(word) = rest.next() {
                    match word.as_str() {
                        "--server" | "--token" => {
                            rest.next();
                        }
                        "--insecure-skip-tls-verify" => {}
                        other => args.push(other),
                    }
                }
                let (ok, stdout, stderr) = adapter.kubectl(&args);
                assert!(ok, "{command}: {stderr}");
                stdout
            }
            other => panic!("the README runs {other}, which this test does not know"),
        };
        assert_output_matches(command, shown, &output);
    }

    // The migration guide's checks after the switch that need only the adapter: its
    // `kubectl get --raw` lines, with a namespace and metric of the demo. (`kubectl get
    // apiservice` and the HPAs' conditions need a cluster.)
    let checks = doc_blocks(
        "docs/migrating.md",
        "## Migrating from prometheus-adapter",
        "sh",
    );
    let raw: Vec<&str> = checks
        .iter()
        .flat_map(|b| b.lines())
        .filter(|l| l.starts_with("kubectl get --raw"))
        .collect();
    assert_eq!(raw.len(), 2, "{checks:?}");
    for line in raw {
        let command = line.split(" | ").next().unwrap();
        let path = shell_words(&command.replace('"', "'"))[3]
            .replace("NS", "default")
            .replace("METRIC", "cpu_usage");
        let (ok, stdout, stderr) = adapter.kubectl(&["get", "--raw", &path]);
        assert!(ok, "{line}: {stderr}");
        let answer: Value = serde_json::from_str(&stdout).unwrap();
        match answer["kind"].as_str() {
            Some("APIResourceList") => assert!(
                answer["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["name"] == "pods/cpu_usage"),
                "{line}: {answer}"
            ),
            Some("MetricValueList") => assert!(
                !answer["items"].as_array().unwrap().is_empty(),
                "{line}: {answer}"
            ),
            _ => panic!("{line}: {answer}"),
        }
    }
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings (outside code blocks).
fn anchors(page: &str) -> Vec<String> {
    let mut in_code = false;
    let mut found = Vec::new();
    for line in page.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            found.push(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

#[test]
fn the_readme_reaches_every_docs_page_and_every_link_lands() {
    let pages = doc_pages();
    let readme = read("README.md");
    // Short enough to read first: what it is, the two commands, install, one example, the pages.
    assert!(
        readme.lines().count() <= 250,
        "README.md has {} lines; move a section to docs/",
        readme.lines().count()
    );
    for page in pages.iter().filter(|p| p.starts_with("docs/")) {
        assert!(
            readme.contains(&format!("]({page})")),
            "README links no {page}"
        );
    }
    let mut checked = 0;
    for page in &pages {
        let text = read(page);
        let dir = std::path::Path::new(page).parent().unwrap();
        for link in text.split("](").skip(1) {
            let target = link.split(')').next().unwrap();
            if target.starts_with("http") || target.contains(' ') {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
            let file = if path.is_empty() {
                std::path::PathBuf::from(page)
            } else {
                dir.join(path)
            };
            assert!(
                repo(file.to_str().unwrap()).exists(),
                "{page}: ({target}) names no file"
            );
            if !fragment.is_empty() {
                let anchors = anchors(&read(file.to_str().unwrap()));
                assert!(
                    anchors.iter().any(|a| a == fragment),
                    "{page}: ({target}): no such heading; there are {anchors:?}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} links checked");
}
