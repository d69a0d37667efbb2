//! The Helm chart, rendered offline with helm 3 for every values file under `charts/prom-adapter/ci/`:
//! lint, schema validation for Kubernetes 1.27 and 1.33, and what the rendered objects must say.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use serde_json::Value;

use crate::common;
use crate::common::stdout_of;

fn tools() -> PathBuf {
    PathBuf::from(
        std::env::var("PROM_ADAPTER_TOOLS")
            .unwrap_or_else(|_| "/var/tmp/prom-adapter-tools".into()),
    )
}

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/prom-adapter")
}

/// Runs helm with a scratch HOME (helm writes its config and cache there).
fn helm(args: &[&str]) -> String {
    let (ok, stdout, stderr) = helm_status(args);
    assert!(ok, "helm {args:?}: {stdout}{stderr}");
    stdout
}

/// Runs helm: (success, stdout, stderr).
fn helm_status(args: &[&str]) -> (bool, String, String) {
    let helm = tools().join("helm/helm");
    assert!(
        helm.exists(),
        "{} is missing: run `make deps`",
        helm.display()
    );
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(&helm)
        .env("HOME", home.path())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn values_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart().join("ci"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    files
}

/// `helm template` of a values file, as a list of objects.
fn render(values: &Path) -> (String, Vec<Value>) {
    let chart = chart();
    let yaml = helm(&[
        "template",
        "demo",
        chart.to_str().unwrap(),
        "--namespace",
        "monitoring",
        "--values",
        values.to_str().unwrap(),
    ]);
    let objects = objects_of(&yaml);
    (yaml, objects)
}

/// The objects of a multi-document YAML stream.
fn objects_of(yaml: &str) -> Vec<Value> {
    let objects = pipe(
        Command::new(tools().join("venv/bin/python")).args([
            "-c",
            "import sys, yaml, json; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))",
        ]),
        yaml.as_bytes(),
    );
    serde_json::from_slice(&objects).unwrap()
}

/// Runs a filter: `input` on stdin, stdout back; fails the test if it fails.
fn pipe(command: &mut Command, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{command:?} failed");
    out.stdout
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
fn every_example_lints_and_validates_for_kubernetes_1_27_and_1_33() {
    let chart = chart();
    for values in values_files() {
        helm(&[
            "lint",
            "--strict",
            chart.to_str().unwrap(),
            "--values",
            values.to_str().unwrap(),
        ]);
        let (yaml, _) = render(&values);
        validate_for_kubernetes(&yaml, &values.display().to_string());
    }
}

/// Every object in `yaml` passes `kubernetes-validate --strict` for Kubernetes 1.27 and 1.33.
pub(crate) fn validate_for_kubernetes(yaml: &str, what: &str) {
    let rendered = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rendered.path(), yaml).unwrap();
    for version in ["1.27.0", "1.33.0"] {
        let out = Command::new(tools().join("venv/bin/kubernetes-validate"))
            .args(["--strict", "-k", version, "--quiet"])
            .arg(rendered.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what} for {version}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn rendered_rules_load_and_rendered_flags_parse() {
    for values in values_files() {
        let (_, objects) = render(&values);
        let config = find(&objects, "ConfigMap")[0]["data"]["config.yaml"]
            .as_str()
            .unwrap()
            .to_owned();
        let rules = prom_adapter_core::config::parse_rules(&config, "ConfigMap")
            .unwrap_or_else(|e| panic!("{}: {e}\n{config}", values.display()));
        // The APIServices follow the rules.
        let apis: Vec<&str> = find(&objects, "APIService")
            .iter()
            .map(|a| a["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            apis.contains(&"v1beta2.custom.metrics.k8s.io"),
            !rules.custom.is_empty(),
            "{apis:?}"
        );
        assert_eq!(
            apis.contains(&"v1beta1.external.metrics.k8s.io"),
            !rules.external.is_empty()
        );
        assert_eq!(
            apis.contains(&"v1beta1.metrics.k8s.io"),
            rules.resource.is_some()
        );

        assert_args_parse(&objects);
    }
}

/// The Deployment's arguments are exactly flags the binary accepts, with nothing ignored.
fn assert_args_parse(objects: &[Value]) {
    let container = &find(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    let mut args = vec!["prom-adapter".to_owned()];
    args.extend(
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned()),
    );
    let (args, warnings) = prom_adapter::cli::screen_legacy_flags(args).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let cli =
        prom_adapter::cli::Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(matches!(
        cli.command,
        Some(prom_adapter::cli::Command::Serve(_))
    ));
}

#[test]
fn tls_is_verified_with_the_ca_that_signed_the_serving_certificate() {
    let (_, objects) = render(&chart().join("ci/default-values.yaml"));
    let secret = find(&objects, "Secret")[0];
    let decode = |key: &str| {
        let text = secret["data"][key].as_str().unwrap();
        pipe(Command::new("base64").arg("-d"), text.as_bytes())
    };
    let ca_pem = decode("ca.crt");
    let cert_pem = decode("tls.crt");
    for api in find(&objects, "APIService") {
        assert_eq!(api["spec"]["caBundle"], secret["data"]["ca.crt"], "{api}");
        assert!(api["spec"].get("insecureSkipTLSVerify").is_none());
    }
    let (_, ca) = x509_parser::pem::parse_x509_pem(&ca_pem).unwrap();
    let ca = ca.parse_x509().unwrap();
    let (_, cert) = x509_parser::pem::parse_x509_pem(&cert_pem).unwrap();
    let cert = cert.parse_x509().unwrap();
    assert_eq!(
        cert.issuer(),
        ca.subject(),
        "the serving certificate is the CA's"
    );
    assert!(ca.is_ca());
    let names: Vec<String> = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.contains("demo-prom-adapter.monitoring.svc")),
        "{names:?}"
    );
}

#[test]
fn the_pod_runs_locked_down_and_rbac_grants_reads_only() {
    for values in values_files() {
        let (_, objects) = render(&values);
        let pod = &find(&objects, "Deployment")[0]["spec"]["template"]["spec"];
        // No service-link variables: a Service named prom-adapter would inject
        // PROM_ADAPTER_SERVICE_HOST and the like into the adapter's own settings namespace.
        assert_eq!(pod["enableServiceLinks"], false);
        let security = &pod["containers"][0]["securityContext"];
        assert_eq!(security["runAsNonRoot"], true);
        assert_eq!(security["readOnlyRootFilesystem"], true);
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
        let probes = &pod["containers"][0];
        assert_eq!(probes["livenessProbe"]["httpGet"]["path"], "/livez");
        assert_eq!(probes["readinessProbe"]["httpGet"]["path"], "/readyz");
        for role in find(&objects, "ClusterRole") {
            for rule in role["rules"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    assert!(
                        ["get", "list", "watch"].contains(&verb.as_str().unwrap()),
                        "{} grants {verb}",
                        role["metadata"]["name"]
                    );
                }
                if rule["resources"] == serde_json::json!(["*"]) {
                    for group in rule["apiGroups"].as_array().unwrap() {
                        assert!(
                            group.as_str().unwrap().ends_with("metrics.k8s.io"),
                            "{} grants every resource of {group}",
                            role["metadata"]["name"]
                        );
                    }
                }
            }
        }
        // Every binding names a role that exists or a built-in one.
        let roles: Vec<&str> = find(&objects, "ClusterRole")
            .iter()
            .map(|r| r["metadata"]["name"].as_str().unwrap())
            .collect();
        for binding in find(&objects, "ClusterRoleBinding")
            .into_iter()
            .chain(find(&objects, "RoleBinding"))
        {
            let name = binding["roleRef"]["name"].as_str().unwrap();
            assert!(
                roles.contains(&name)
                    || [
                        "system:auth-delegator",
                        "extension-apiserver-authentication-reader"
                    ]
                    .contains(&name),
                "{} points at {name}, which nothing defines",
                binding["metadata"]["name"]
            );
        }
    }
}

#[test]
fn cert_manager_issues_the_serving_certificate_and_injects_the_ca() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "certManager:\n  enabled: true\n").unwrap();
    let (_, objects) = render(file.path());
    assert_eq!(
        find(&objects, "Certificate").len(),
        2,
        "a CA and a serving certificate"
    );
    assert!(
        find(&objects, "Secret").is_empty(),
        "cert-manager makes the secret"
    );
    let serving = find(&objects, "Certificate")
        .into_iter()
        .find(|c| c["metadata"]["name"] == "demo-prom-adapter-serving")
        .expect("a serving Certificate");
    assert!(
        serving["spec"]["dnsNames"]
            .as_array()
            .unwrap()
            .contains(&Value::from("demo-prom-adapter.monitoring.svc"))
    );
    let volumes = &find(&objects, "Deployment")[0]["spec"]["template"]["spec"]["volumes"];
    let tls = volumes
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tls")
        .unwrap();
    assert_eq!(tls["secret"]["secretName"], serving["spec"]["secretName"]);
    for api in find(&objects, "APIService") {
        assert_eq!(
            api["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "monitoring/demo-prom-adapter-serving"
        );
    }
}

#[test]
fn each_example_hpa_is_valid_and_its_values_render_the_shipped_rules() {
    // tests/it/examples.rs reads each HPA's metric through the adapter, with the rules file named
    // here, on data Prometheus scraped; this checks the chart serves that same rules file.
    for (values, rules, hpa) in [
        (
            "ci/ingress-nginx-values.yaml",
            "config/ingress-nginx.yaml",
            "examples/ingress-nginx-hpa.yaml",
        ),
        (
            "ci/istio-gateway-values.yaml",
            "config/istio-gateway.yaml",
            "examples/istio-gateway-hpa.yaml",
        ),
    ] {
        let (_, objects) = render(&chart().join(values));
        let config = find(&objects, "ConfigMap")[0]["data"]["config.yaml"]
            .as_str()
            .unwrap()
            .to_owned();
        let shipped =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rules)).unwrap();
        assert_eq!(
            yaml_to_json(&config)["rules"],
            yaml_to_json(&shipped)["rules"],
            "{values} renders {rules}"
        );
        let hpa = chart().join(hpa);
        let out = Command::new(tools().join("venv/bin/kubernetes-validate"))
            .args(["--strict", "-k", "1.27.0", "--quiet"])
            .arg(&hpa)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            hpa.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// A YAML document as JSON, through the same PyYAML the renderer uses.
fn yaml_to_json(text: &str) -> Value {
    let json = pipe(
        Command::new(tools().join("venv/bin/python")).args([
            "-c",
            "import sys, yaml, json; print(json.dumps(yaml.safe_load(sys.stdin)))",
        ]),
        text.as_bytes(),
    );
    serde_json::from_slice(&json).unwrap()
}

#[test]
fn a_prometheus_community_values_file_keeps_its_meaning() {
    let path = chart().join("ci/prometheus-community-values.yaml");
    let values = yaml_to_json(&std::fs::read_to_string(&path).unwrap());
    let (_, objects) = render(&path);
    // The prometheus-community chart writes `rules.custom` under `rules:` and `rules.external`
    // under `externalRules:`, each rule as given.
    let config = yaml_to_json(
        find(&objects, "ConfigMap")[0]["data"]["config.yaml"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(config["rules"], values["rules"]["custom"]);
    assert_eq!(config["externalRules"], values["rules"]["external"]);
    assert!(config.get("resourceRules").is_none());
    let deployment = find(&objects, "Deployment")[0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/team"],
        "metrics"
    );
    let container = &pod["spec"]["containers"][0];
    // Helm merges maps: the user's requests, and our default memory limit unless they set one.
    assert_eq!(
        container["resources"]["requests"],
        values["resources"]["requests"]
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for expected in [
        "--prometheus-url=http://prometheus.monitoring.svc:9090",
        "--v=6",
        "--metrics-relist-interval=30s",
    ] {
        assert!(args.contains(&expected), "{expected} not in {args:?}");
    }
}

#[test]
fn the_service_monitor_scrapes_the_https_port_with_the_serving_ca() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "serviceMonitor:\n  enabled: true\n").unwrap();
    let (_, objects) = render(file.path());
    let monitor = find(&objects, "ServiceMonitor")[0];
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(
        (
            endpoint["port"].as_str(),
            endpoint["path"].as_str(),
            endpoint["scheme"].as_str()
        ),
        (Some("https"), Some("/metrics"), Some("https"))
    );
    let secret = find(&objects, "Secret")[0];
    assert_eq!(
        endpoint["tlsConfig"]["ca"]["secret"]["name"],
        secret["metadata"]["name"]
    );
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        find(&objects, "Service")[0]["spec"]["selector"]
    );
    // The HA example turns the NetworkPolicy on; it admits the https port only.
    let (_, ha) = render(&chart().join("ci/ha-values.yaml"));
    let policy = find(&ha, "NetworkPolicy")[0];
    assert_eq!(
        policy["spec"]["ingress"],
        serde_json::json!([{"ports": [{"port": "https", "protocol": "TCP"}]}])
    );
}

#[test]
fn the_rules_configmap_is_mounted_for_reload_and_a_restart_on_change_is_opt_in() {
    let deployment = |values: &str| {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), values).unwrap();
        let (_, objects) = render(file.path());
        find(&objects, "Deployment")[0].clone()
    };
    let default = deployment("{}\n");
    let pod = &default["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "rules")
        .unwrap();
    // kubelet never updates a subPath mount; the adapter watches the mounted directory.
    assert!(mount.get("subPath").is_none(), "{mount}");
    let config_flag = format!(
        "--config={}/config.yaml",
        mount["mountPath"].as_str().unwrap()
    );
    assert!(
        container["args"]
            .as_array()
            .unwrap()
            .contains(&Value::from(config_flag.as_str())),
        "{}",
        container["args"]
    );
    assert!(
        pod["metadata"]["annotations"]
            .get("checksum/rules")
            .is_none(),
        "no restart on a rules change unless asked for: {}",
        pod["metadata"]
    );

    let checksum = |values: &str| {
        deployment(values)["spec"]["template"]["metadata"]["annotations"]["checksum/rules"]
            .as_str()
            .expect("a checksum/rules annotation")
            .to_owned()
    };
    let before = checksum("rules:\n  restartOnChange: true\npodAnnotations: {team: metrics}\n");
    assert_eq!(before.len(), 64, "{before}");
    let after = checksum(
        "rules:\n  restartOnChange: true\n  custom:\n  - seriesQuery: 'x_total{namespace!=\"\"}'\n    resources: {template: <<.Resource>>}\n    metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'\n",
    );
    assert_ne!(before, after, "a rules change changes the checksum");
    let with_annotations =
        deployment("rules:\n  restartOnChange: true\npodAnnotations: {team: metrics}\n");
    assert_eq!(
        with_annotations["spec"]["template"]["metadata"]["annotations"]["team"], "metrics",
        "pod annotations are kept"
    );
}

/// (group, resource, verb) triples a ClusterRole grants.
fn grants(role: &Value) -> std::collections::BTreeSet<(String, String, String)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let mut grants = std::collections::BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    grants.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    grants
}

/// What the adapter lists for the overrides of rendered rules: (group, plural), resolved by the
/// adapter's own resource table.
fn listed_by_overrides(objects: &[Value]) -> Vec<(String, String)> {
    let Some(config) = find(objects, "ConfigMap")
        .first()
        .and_then(|c| c["data"]["config.yaml"].as_str())
    else {
        return vec![];
    };
    let rules = prom_adapter_core::config::parse_rules(config, "ConfigMap").unwrap();
    let table = prom_adapter_core::resources::ResourceTable::builtin();
    let mut listed = vec![];
    for rule in rules.custom.iter().chain(&rules.external) {
        for (label, resource) in rule.resources.overrides() {
            let info = table
                .resolve(resource)
                .unwrap_or_else(|| panic!("override {label}: {resource} is not a known resource"));
            listed.push((info.group.clone(), info.plural.clone()));
        }
    }
    listed
}

#[test]
fn rbac_lets_the_adapter_list_every_resource_the_rules_name_and_nothing_more() {
    let reader = |objects: &[Value]| {
        find(objects, "ClusterRole")
            .into_iter()
            .find(|r| r["metadata"]["name"] == "demo-prom-adapter-resource-reader")
            .expect("a resource-reader ClusterRole")
            .clone()
    };
    for values in values_files() {
        let (_, objects) = render(&values);
        let granted = grants(&reader(&objects));
        for (group, plural) in listed_by_overrides(&objects) {
            assert!(
                granted.contains(&(group.clone(), plural.clone(), "list".into())),
                "{}: the rules map {plural}.{group} but the adapter may not list it: {granted:?}",
                values.display()
            );
        }
    }

    // Every spelling a rule may use, with and without a group, plus rbac.listResources.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        r#"
rules:
  default: false
  custom:
  - seriesQuery: 'x_total{namespace!="",ingress!=""}'
    resources:
      overrides:
        namespace: {resource: namespace}
        ingress: {resource: ingress}
        netpol: {resource: NetworkPolicy}
        deploy: {group: apps, resource: deployments}
        claim: {resource: persistentvolumeclaim}
    metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  external:
  - seriesQuery: 'queue_depth{job!=""}'
    resources: {overrides: {job: {group: batch, resource: job}}}
    metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
rbac:
  listResources: [{group: apps, resource: statefulset}]
"#,
    )
    .unwrap();
    let (_, objects) = render(file.path());
    let granted = grants(&reader(&objects));
    let triple = |g: &str, r: &str, v: &str| (g.to_owned(), r.to_owned(), v.to_owned());
    let mut expected: std::collections::BTreeSet<_> = ["namespaces", "nodes", "pods", "services"]
        .into_iter()
        .flat_map(|r| ["get", "list", "watch"].map(|v| triple("", r, v)))
        .collect();
    for (group, plural) in listed_by_overrides(&objects) {
        if !(group.is_empty() && ["namespaces", "pods"].contains(&plural.as_str())) {
            expected.insert(triple(&group, &plural, "list"));
        }
    }
    expected.insert(triple("apps", "statefulsets", "list"));
    assert_eq!(granted, expected);
    assert!(granted.contains(&triple("networking.k8s.io", "ingresses", "list")));
    assert!(granted.contains(&triple("networking.k8s.io", "networkpolicies", "list")));
    assert!(granted.contains(&triple("", "persistentvolumeclaims", "list")));
}

/// `kubectl kustomize` of a directory under manifests/.
fn kustomize(dir: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("manifests")
        .join(dir);
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_plain_manifests_are_the_rendered_chart_and_build_with_kustomize() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fresh = tempfile::tempdir().unwrap();
    let out = Command::new(root.join("scripts/render-manifests.sh"))
        .arg(fresh.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in [
        "base/prom-adapter.yaml",
        "alerts/prometheus-rule.yaml",
        "alerts/rules.yaml",
    ] {
        let committed = std::fs::read_to_string(root.join("manifests").join(file)).unwrap();
        assert!(
            std::fs::read_to_string(fresh.path().join(file)).unwrap() == committed,
            "manifests/{file} is out of date with the chart: run `make manifests` and commit the result"
        );
    }

    let base = kustomize("base");
    validate_for_kubernetes(&base, "manifests/base");
    let objects = objects_of(&base);
    for object in &objects {
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/managed-by"], "kustomize",
            "{}",
            object["metadata"]["name"]
        );
    }
    // No private key in the repository: cert-manager issues the serving certificate and injects
    // its CA.
    assert!(find(&objects, "Secret").is_empty());
    assert_eq!(find(&objects, "Certificate").len(), 2);
    for api in find(&objects, "APIService") {
        assert_eq!(
            api["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "monitoring/prom-adapter-serving"
        );
        assert!(api["spec"].get("insecureSkipTLSVerify").is_none());
    }
    assert_args_parse(&objects);

    // The documented overlay: its rules replace the ConfigMap's, under the same name (the
    // adapter reloads it), and its Prometheus URL replaces the base's.
    let overlay = kustomize("overlays/example");
    validate_for_kubernetes(&overlay, "manifests/overlays/example");
    let objects = objects_of(&overlay);
    let config = find(&objects, "ConfigMap")[0];
    assert_eq!(config["metadata"]["name"], "prom-adapter");
    let rules = prom_adapter_core::config::parse_rules(
        config["data"]["config.yaml"].as_str().unwrap(),
        "overlay ConfigMap",
    )
    .unwrap();
    assert_eq!(
        rules.distinct_series_queries(),
        vec!["http_requests_total{namespace!=\"\",pod!=\"\"}"]
    );
    let deployment = find(&objects, "Deployment")[0];
    assert!(
        deployment["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .contains(&Value::from(
                "--prometheus-url=http://prometheus.observability.svc:9090"
            ))
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"],
        "prom-adapter"
    );
    assert_args_parse(&objects);
}

#[test]
fn host_network_dns_and_deployment_annotations_from_community_values_are_honoured() {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let yaml = helm(&[
        "template",
        "demo",
        chart,
        "--set",
        "hostNetwork.enabled=true",
        "--set",
        "dnsPolicy=ClusterFirstWithHostNet",
        "--set",
        "dnsConfig.options[0].name=ndots",
        "--set-string",
        "dnsConfig.options[0].value=2",
        "--set",
        "listenPort=4443",
        "--set-string",
        "deploymentAnnotations.reloader\\.stakater\\.com/auto=true",
    ]);
    validate_for_kubernetes(&yaml, "hostNetwork values");
    let objects = objects_of(&yaml);
    let deployment = find(&objects, "Deployment")[0];
    assert_eq!(
        deployment["metadata"]["annotations"]["reloader.stakater.com/auto"],
        "true"
    );
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_eq!(pod["dnsConfig"]["options"][0]["name"], "ndots");
    let container = &pod["containers"][0];
    assert_eq!(container["ports"][0]["containerPort"], 4443);
    assert!(
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--secure-port=4443")
    );
    // Off by default.
    let plain = objects_of(&helm(&["template", "demo", chart]));
    let pod = &find(&plain, "Deployment")[0]["spec"]["template"]["spec"];
    assert!(pod.get("hostNetwork").is_none() && pod.get("dnsPolicy").is_none());
}

#[test]
fn tls_enable_without_certificates_fails_the_render_and_prometheus_adapters_image_warns() {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let (ok, _, stderr) = helm_status(&["template", "demo", chart, "--set", "tls.enable=true"]);
    assert!(!ok);
    assert!(
        stderr
            .contains("tls.enable is true but tls.ca, tls.certificate and tls.key are not all set"),
        "{stderr}"
    );
    // `helm template` leaves NOTES.txt out and `helm install --dry-run` needs a cluster: render
    // the same file as a ConfigMap of a scratch copy of the chart.
    let notes = |extra: &[&str]| {
        let copy = tempfile::tempdir().unwrap();
        let status = Command::new("cp")
            .args(["-r", chart])
            .arg(copy.path().join("chart"))
            .status()
            .unwrap();
        assert!(status.success());
        let templates = copy.path().join("chart/templates");
        let text = std::fs::read_to_string(templates.join("NOTES.txt")).unwrap();
        std::fs::write(
            templates.join("zz-notes.yaml"),
            format!(
                "{{{{- define \"test.notes\" -}}}}\n{text}\n{{{{- end -}}}}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{{{ include \"test.notes\" . | toJson }}}}\n"
            ),
        )
        .unwrap();
        let copied = copy.path().join("chart");
        let mut args = vec!["template", "demo", copied.to_str().unwrap()];
        args.extend_from_slice(extra);
        let objects = objects_of(&helm(&args));
        objects
            .iter()
            .find(|o| o["metadata"]["name"] == "notes")
            .unwrap()["data"]["notes"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let pinned = notes(&[
        "--set",
        "image.repository=registry.k8s.io/prometheus-adapter/prometheus-adapter",
        "--set",
        "image.tag=v0.12.0",
    ]);
    assert!(
        pinned.contains(
            "WARNING: image.repository is registry.k8s.io/prometheus-adapter/prometheus-adapter"
        ),
        "{pinned}"
    );
    let plain = notes(&[]);
    assert!(!plain.contains("WARNING: image.repository"));
    // How to verify the install: the rollout, the APIServices, and a raw request per API.
    for line in [
        "kubectl -n default rollout status deploy/demo-prom-adapter",
        "kubectl get apiservices -l app.kubernetes.io/instance=demo",
        "kubectl get --raw /apis/custom.metrics.k8s.io/v1beta2",
    ] {
        assert!(plain.contains(line), "{line}\n{plain}");
    }
}

#[test]
fn the_community_keys_we_used_to_ignore_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        r#"
customLabels: {team: metrics}
customAnnotations: {example.com/owner: platform}
extraContainers:
  - name: rbac-proxy
    image: quay.io/brancz/kube-rbac-proxy:v0.18.0
    args: ["--upstream=http://127.0.0.1:9090/"]
extraManifests:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: "{{ .Release.Name }}-extra"}
    data: {a: b}
  - |
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: {{ .Release.Name }}-extra-text
service:
  clusterIP: 10.96.0.50
  ipDualStack: {enabled: true, ipFamilies: [IPv4, IPv6], ipFamilyPolicy: RequireDualStack}
rbac:
  customMetrics: {resources: ["pods/*"]}
  externalMetrics: {resources: ["queue_depth"]}
podDisruptionBudget: {enabled: true, unhealthyPodEvictionPolicy: AlwaysAllow}
certManager: {enabled: true, caCertRevisionHistoryLimit: 2, certRevisionHistoryLimit: 3}
serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}
rules:
  external:
    - seriesQuery: 'queue_depth{namespace!=""}'
      resources: {overrides: {namespace: {resource: namespace}}}
      metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
"#,
    )
    .unwrap();
    let (_, objects) = render(&values);
    for object in &objects {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        if name.starts_with("demo-extra") {
            continue;
        }
        assert_eq!(object["metadata"]["labels"]["team"], "metrics", "{name}");
        assert_eq!(
            object["metadata"]["annotations"]["example.com/owner"], "platform",
            "{name}"
        );
    }
    let names: Vec<&str> = objects
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    assert!(
        names.contains(&"demo-extra") && names.contains(&"demo-extra-text"),
        "{names:?}"
    );
    let pod = &find(&objects, "Deployment")[0]["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][1]["name"], "rbac-proxy");
    let service = &find(&objects, "Service")[0]["spec"];
    assert_eq!(service["clusterIP"], "10.96.0.50");
    assert_eq!(service["ipFamilies"], serde_json::json!(["IPv4", "IPv6"]));
    assert_eq!(service["ipFamilyPolicy"], "RequireDualStack");
    let reader = find(&objects, "ClusterRole")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "demo-prom-adapter-metrics-reader")
        .expect("the HPA controller's role");
    let by_group: Vec<(String, Value)> = reader["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["apiGroups"][0].as_str().unwrap().to_owned(),
                r["resources"].clone(),
            )
        })
        .collect();
    assert!(by_group.contains(&(
        "custom.metrics.k8s.io".into(),
        serde_json::json!(["pods/*"])
    )));
    assert!(by_group.contains(&(
        "external.metrics.k8s.io".into(),
        serde_json::json!(["queue_depth"])
    )));
    assert_eq!(
        find(&objects, "PodDisruptionBudget")[0]["spec"]["unhealthyPodEvictionPolicy"],
        "AlwaysAllow"
    );
    let limits: Vec<&Value> = find(&objects, "Certificate")
        .iter()
        .map(|c| &c["spec"]["revisionHistoryLimit"])
        .collect();
    assert_eq!(limits, [&serde_json::json!(2), &serde_json::json!(3)]);
    // The ServiceMonitor keeps the labels Prometheus selects it by, beside the custom ones.
    let monitor = find(&objects, "ServiceMonitor")[0];
    assert_eq!(
        monitor["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    assert!(monitor["metadata"]["annotations"].get("release").is_none());
}

#[test]
fn an_upgrade_of_a_community_release_keeps_every_apiservice_and_points_it_at_our_service() {
    // The prometheus-community chart's APIServices for a values file (its templates, restated as
    // facts): custom iff rules.default or rules.custom, external iff rules.external, resource
    // metrics iff rules.resource; v1beta1 only, each named VERSION.GROUP.
    let path = chart().join("ci/prometheus-community-values.yaml");
    let values = yaml_to_json(&std::fs::read_to_string(&path).unwrap());
    let rules = &values["rules"];
    let present = |v: &Value| v.as_array().is_some_and(|a| !a.is_empty()) || v.is_object();
    let mut theirs = Vec::new();
    if rules["default"] == true || present(&rules["custom"]) {
        theirs.push("v1beta1.custom.metrics.k8s.io");
    }
    if present(&rules["external"]) {
        theirs.push("v1beta1.external.metrics.k8s.io");
    }
    if present(&rules["resource"]) {
        theirs.push("v1beta1.metrics.k8s.io");
    }
    assert!(theirs.len() >= 2, "{theirs:?}");
    // The README's path 1, `helm upgrade RELEASE charts/prom-adapter -n NS -f your-values.yaml`,
    // rendered with `helm template` and the same arguments.
    let upgrade = migration_blocks()[0].trim().to_owned();
    let words: Vec<&str> = upgrade.split_whitespace().collect();
    assert_eq!(
        words[..4],
        [
            "helm",
            "upgrade",
            "prometheus-adapter",
            "charts/prom-adapter"
        ],
        "README: {upgrade}"
    );
    let chart = chart();
    let mut args = vec!["template", words[2], chart.to_str().unwrap()];
    for word in &words[4..] {
        args.push(match *word {
            "your-values.yaml" => path.to_str().unwrap(),
            other => other,
        });
    }
    let yaml = helm(&args);
    let objects = objects_of(&yaml);
    let ours: Vec<&Value> = find(&objects, "APIService");
    let names: Vec<&str> = ours
        .iter()
        .map(|a| a["metadata"]["name"].as_str().unwrap())
        .collect();
    for name in &theirs {
        assert!(
            names.contains(name),
            "{name} would be deleted by the upgrade: {names:?}"
        );
    }
    // Each APIService points at a Service of the release, with the port it serves on.
    let services = find(&objects, "Service");
    for api in &ours {
        let target = &api["spec"]["service"];
        assert_eq!(target["namespace"], "monitoring");
        let service = services
            .iter()
            .find(|s| s["metadata"]["name"] == target["name"])
            .unwrap_or_else(|| panic!("{} points at a missing Service", api["metadata"]["name"]));
        assert_eq!(service["spec"]["ports"][0]["port"], target["port"]);
    }
    // No name twice: the upgrade neither duplicates nor fights over an object.
    let mut keys: Vec<(String, String)> = objects
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap().to_owned(),
                o["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let count = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), count);
}

/// A values file that sets every key of the prometheus-community chart 5.3.0 (its values.yaml,
/// restated as facts: 75 keys), each to a value of the type that chart takes.
const EVERY_COMMUNITY_KEY: &str = r#"
affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/os, operator: In, values: [linux]}]}]}}}
topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: x}}}]
nameOverride: adapter
fullnameOverride: metrics-adapter
image: {repository: example.com/prom-adapter, tag: v9.9.9, pullPolicy: Always, pullSecrets: [regcred]}
logLevel: 6
metricsRelistInterval: 30s
listenPort: 4443
nodeSelector: {kubernetes.io/os: linux}
priorityClassName: system-cluster-critical
namespaceOverride: metrics
customAnnotations: {example.com/owner: platform}
customLabels: {team: metrics}
prometheus: {url: http://prometheus.monitoring.svc, port: 9090, path: /prom}
replicas: 2
podSecurityContext: {fsGroup: 10001}
securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}, readOnlyRootFilesystem: true, runAsNonRoot: true, runAsUser: 10001, seccompProfile: {type: RuntimeDefault}}
rbac:
  create: true
  useAuthReaderClusterRole: true
  externalMetrics: {resources: ["*"]}
  customMetrics: {resources: ["*"]}
automountServiceAccountToken: true
serviceAccount: {create: true, name: adapter-sa, annotations: {example.com/sa: "yes"}, automountServiceAccountToken: true}
dnsConfig: {options: [{name: ndots, value: "2"}]}
resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 512Mi}}
livenessProbe: {httpGet: {path: /healthz, port: https, scheme: HTTPS}, initialDelaySeconds: 30, timeoutSeconds: 5}
readinessProbe: {httpGet: {path: /healthz, port: https, scheme: HTTPS}, initialDelaySeconds: 30, timeoutSeconds: 5}
startupProbe: {httpGet: {path: /healthz, port: https, scheme: HTTPS}, failureThreshold: 30}
rules:
  default: true
  custom:
    - seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
      resources: {template: <<.Resource>>}
      name: {matches: "^(.*)_total$", as: "${1}_per_second"}
      metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
  existing: ""
  external:
    - seriesQuery: 'queue_depth{namespace!=""}'
      resources: {overrides: {namespace: {resource: namespace}}}
      metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  resource:
    cpu:
      containerQuery: 'sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>,container!=""}[3m])) by (<<.GroupBy>>)'
      nodeQuery: 'sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>,id="/"}[3m])) by (<<.GroupBy>>)'
      resources: {overrides: {node: {resource: node}, namespace: {resource: namespace}, pod: {resource: pod}}}
      containerLabel: container
    memory:
      containerQuery: 'sum(container_memory_working_set_bytes{<<.LabelMatchers>>,container!=""}) by (<<.GroupBy>>)'
      nodeQuery: 'sum(container_memory_working_set_bytes{<<.LabelMatchers>>,id="/"}) by (<<.GroupBy>>)'
      resources: {overrides: {node: {resource: node}, namespace: {resource: namespace}, pod: {resource: pod}}}
      containerLabel: container
    window: 3m
service:
  annotations: {example.com/svc: "yes"}
  port: 8443
  type: ClusterIP
  clusterIP: 10.96.0.50
  ipDualStack: {enabled: true, ipFamilies: [IPv4, IPv6], ipFamilyPolicy: PreferDualStack}
tls: {enable: false, ca: "", key: "", certificate: ""}
env: [{name: GOMAXPROCS, value: "2"}]
extraArguments: [--prometheus-timeout=20s]
extraContainers: [{name: sidecar, image: example.com/sidecar:1}]
extraVolumes: [{name: extra, emptyDir: {}}]
extraVolumeMounts: [{name: extra, mountPath: /extra}]
tolerations: [{key: dedicated, operator: Equal, value: metrics, effect: NoSchedule}]
podLabels: {example.com/pod: "yes"}
podAnnotations: {example.com/pod: "yes"}
deploymentAnnotations: {reloader.stakater.com/auto: "true"}
hostNetwork: {enabled: true}
dnsPolicy: ClusterFirstWithHostNet
strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 0, maxUnavailable: 1}}
podDisruptionBudget: {enabled: true, minAvailable: null, maxUnavailable: 1, unhealthyPodEvictionPolicy: IfHealthyBudget}
certManager: {enabled: false, caCertDuration: 43800h0m0s, certDuration: 8760h0m0s, caCertRevisionHistoryLimit: 2, certRevisionHistoryLimit: 3}
extraManifests: [{apiVersion: v1, kind: ConfigMap, metadata: {name: extra}, data: {a: b}}]
revisionHistoryLimit: 5
"#;

/// The prometheus-community chart's values keys (5.3.0).
const COMMUNITY_KEYS: [&str; 75] = [
    "affinity",
    "topologySpreadConstraints",
    "nameOverride",
    "fullnameOverride",
    "image.repository",
    "image.tag",
    "image.pullPolicy",
    "image.pullSecrets",
    "logLevel",
    "metricsRelistInterval",
    "listenPort",
    "nodeSelector",
    "priorityClassName",
    "namespaceOverride",
    "customAnnotations",
    "customLabels",
    "prometheus.url",
    "prometheus.port",
    "prometheus.path",
    "replicas",
    "podSecurityContext",
    "securityContext",
    "rbac.create",
    "rbac.useAuthReaderClusterRole",
    "rbac.externalMetrics.resources",
    "rbac.customMetrics.resources",
    "automountServiceAccountToken",
    "serviceAccount.create",
    "serviceAccount.name",
    "serviceAccount.annotations",
    "serviceAccount.automountServiceAccountToken",
    "dnsConfig",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "rules.default",
    "rules.custom",
    "rules.existing",
    "rules.external",
    "rules.resource",
    "service.annotations",
    "service.port",
    "service.type",
    "service.clusterIP",
    "service.ipDualStack.enabled",
    "service.ipDualStack.ipFamilies",
    "service.ipDualStack.ipFamilyPolicy",
    "tls.enable",
    "tls.ca",
    "tls.key",
    "tls.certificate",
    "env",
    "extraArguments",
    "extraContainers",
    "extraVolumes",
    "extraVolumeMounts",
    "tolerations",
    "podLabels",
    "podAnnotations",
    "deploymentAnnotations",
    "hostNetwork.enabled",
    "dnsPolicy",
    "strategy",
    "podDisruptionBudget.enabled",
    "podDisruptionBudget.minAvailable",
    "podDisruptionBudget.maxUnavailable",
    "podDisruptionBudget.unhealthyPodEvictionPolicy",
    "certManager.enabled",
    "certManager.caCertDuration",
    "certManager.certDuration",
    "certManager.caCertRevisionHistoryLimit",
    "certManager.certRevisionHistoryLimit",
    "extraManifests",
    "revisionHistoryLimit",
];

#[test]
fn every_community_key_renders_and_the_schema_refuses_what_the_chart_would_ignore() {
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, EVERY_COMMUNITY_KEY).unwrap();
    let community = yaml_to_json(EVERY_COMMUNITY_KEY);
    for key in COMMUNITY_KEYS {
        let value = key.split('.').fold(&community, |v, k| &v[k]);
        assert!(
            !value.is_null() || key.ends_with("minAvailable"),
            "{key} is not set"
        );
    }
    assert_eq!(COMMUNITY_KEYS.len(), 75);

    let (yaml, objects) = render(&values);
    validate_for_kubernetes(&yaml, "every community key");
    let deployment = find(&objects, "Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["imagePullSecrets"],
        serde_json::json!([{"name": "regcred"}]),
        "the community chart's secret names become LocalObjectReferences"
    );
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(deployment["metadata"]["namespace"], "metrics");
    assert_eq!(deployment["metadata"]["name"], "metrics-adapter");
    // `minAvailable:` left empty, as the community chart's values.yaml has it, is unset.
    let budget = &find(&objects, "PodDisruptionBudget")[0]["spec"];
    assert_eq!(
        (budget.get("minAvailable"), &budget["maxUnavailable"]),
        (None, &serde_json::json!(1))
    );
    // An empty string or 0 is unset too, as the community chart reads it (`if`): the default
    // maxUnavailable stays.
    for set in [
        "podDisruptionBudget.minAvailable=0",
        "podDisruptionBudget.minAvailable=",
    ] {
        let (_, objects) =
            render_with(&["--set", "podDisruptionBudget.enabled=true", "--set", set]);
        let budget = &find(&objects, "PodDisruptionBudget")[0]["spec"];
        assert_eq!(
            (budget.get("minAvailable"), &budget["maxUnavailable"]),
            (None, &serde_json::json!(1)),
            "{set}"
        );
    }
    let (_, objects) = render_with(&[
        "--set",
        "podDisruptionBudget.enabled=true",
        "--set-string",
        "podDisruptionBudget.minAvailable=50%",
    ]);
    let budget = &find(&objects, "PodDisruptionBudget")[0]["spec"];
    assert_eq!(
        (&budget["minAvailable"], budget.get("maxUnavailable")),
        (&serde_json::json!("50%"), None)
    );

    // Kubernetes' own {name: …} form of pull secrets works too.
    let (_, objects) = render_with(&["--set", "image.pullSecrets[0].name=regcred"]);
    assert_eq!(
        find(&objects, "Deployment")[0]["spec"]["template"]["spec"]["imagePullSecrets"],
        serde_json::json!([{"name": "regcred"}])
    );
    // The 3.x chart's runAsUser is honoured over the default securityContext's.
    let (_, objects) = render_with(&["--set", "runAsUser=2000", "--set", "psp.create=false"]);
    assert_eq!(
        find(&objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["securityContext"]
            ["runAsUser"],
        2000
    );

    // What the chart cannot honour fails the render, naming the key.
    let chart = chart();
    for (set, message) in [
        (
            "nosuchkey=1",
            "Additional property nosuchkey is not allowed",
        ),
        (
            "hostNetwork=true",
            "hostNetwork: Invalid type. Expected: object",
        ),
        (
            "rbac.customMetricsResources[0]=x",
            "Additional property customMetricsResources is not allowed",
        ),
        (
            "commonLabels.a=b",
            "Additional property commonLabels is not allowed",
        ),
        (
            "rateInterval=5m",
            "Additional property rateInterval is not allowed",
        ),
        ("replicas=two", "replicas: Invalid type. Expected: integer"),
        ("dnsPolicy=ClusterFirstWithHostnet", "dnsPolicy"),
        (
            "tls.enable=yes",
            "tls.enable: Invalid type. Expected: boolean",
        ),
        (
            "psp.create=true",
            "psp.create: PodSecurityPolicy was removed in Kubernetes 1.25",
        ),
    ] {
        let (ok, _, stderr) =
            helm_status(&["template", "demo", chart.to_str().unwrap(), "--set", set]);
        assert!(!ok, "--set {set} rendered");
        assert!(stderr.contains(message), "--set {set}: {stderr}");
    }
    // A parent chart's `global` values, and the `enabled` an umbrella chart's `condition:` reads,
    // are allowed; so are ports written as strings, as the community chart's templates take them.
    render_with(&[
        "--set",
        "global.imageRegistry=example.com",
        "--set",
        "enabled=true",
        "--set-string",
        "listenPort=4443",
        "--set-string",
        "service.port=8443",
    ]);
}

/// `helm template` of the chart with extra arguments (`--set …`), as a list of objects.
fn render_with(args: &[&str]) -> (String, Vec<Value>) {
    let chart = chart();
    let mut all = vec!["template", "demo", chart.to_str().unwrap()];
    all.extend_from_slice(args);
    let yaml = helm(&all);
    let objects = objects_of(&yaml);
    (yaml, objects)
}

/// The `sh` blocks of docs/migrating.md's "Migrating from prometheus-adapter" section, in order: the
/// path 1 upgrade, the APIService hand-over, the checks after the switch.
fn migration_blocks() -> Vec<String> {
    let blocks = common::doc_blocks(
        "docs/migrating.md",
        "## Migrating from prometheus-adapter",
        "sh",
    );
    assert_eq!(blocks.len(), 3, "{blocks:?}");
    blocks
}

#[test]
fn the_readme_hand_over_lets_a_new_release_adopt_the_community_releases_apiservices() {
    // A cluster with a community release `prometheus-adapter` in `monitoring`: its APIServices
    // carry Helm's ownership label and annotations.
    let dir = tempfile::tempdir().unwrap();
    let cluster = common::apiserver::ApiServer::start(dir.path());
    cluster.add_resource(common::apiserver::Resource::new(
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        false,
    ));
    let community = [
        "v1beta1.custom.metrics.k8s.io",
        "v1beta1.external.metrics.k8s.io",
        "v1beta1.metrics.k8s.io",
    ];
    for name in community {
        cluster.add_object(
            "apiregistration.k8s.io",
            "apiservices",
            None,
            name,
            &[("app.kubernetes.io/managed-by", "Helm")],
        );
        cluster.annotate(
            "apiregistration.k8s.io",
            "apiservices",
            name,
            &[
                ("meta.helm.sh/release-name", "prometheus-adapter"),
                ("meta.helm.sh/release-namespace", "monitoring"),
            ],
        );
    }
    // The README's loop, each `kubectl annotate` run by a real kubectl.
    let hand_over = &migration_blocks()[1];
    let (list, body) = hand_over
        .split_once("for api in ")
        .and_then(|(_, rest)| rest.split_once("; do"))
        .unwrap_or_else(|| panic!("README: {hand_over}"));
    let command: String = body.split("done").next().unwrap().replace("\\\n", " ");
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words[..2], ["kubectl", "annotate"], "{command}");
    for api in list.split_whitespace() {
        let args: Vec<&str> = words[1..]
            .iter()
            .map(|w| if *w == "$api" { api } else { w })
            .collect();
        let out = Command::new(common::kubectl())
            .arg(format!("--kubeconfig={}", cluster.kubeconfig.display()))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let annotation = |key: &str| {
        words
            .iter()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} in {command}"))
            .to_owned()
    };
    let (release, namespace) = (
        annotation("meta.helm.sh/release-name"),
        annotation("meta.helm.sh/release-namespace"),
    );
    // Then: install the release the annotations name, uninstall the community release, and
    // upgrade the new one (which re-creates the APIServices that uninstall deletes).
    let steps: Vec<Vec<&str>> = hand_over
        .split("done")
        .nth(1)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<&str>>())
        .filter(|w| !w.is_empty())
        .collect();
    let helm_step = |verb: &str| -> (String, String) {
        let step = steps
            .iter()
            .find(|w| w[..2] == ["helm", verb])
            .unwrap_or_else(|| panic!("README: no helm {verb} after the loop: {hand_over}"));
        let namespace = step
            .windows(2)
            .find(|w| w[0] == "-n")
            .map(|w| w[1].to_owned())
            .unwrap_or_else(|| panic!("README: helm {verb} without -n"));
        (step[2].to_owned(), namespace)
    };
    let verbs: Vec<&str> = steps.iter().map(|w| w[1]).collect();
    assert_eq!(verbs, ["install", "uninstall", "upgrade"], "{hand_over}");
    assert_eq!(helm_step("install"), (release.clone(), namespace.clone()));
    assert_eq!(helm_step("upgrade"), (release.clone(), namespace.clone()));
    assert_eq!(
        helm_step("uninstall"),
        ("prometheus-adapter".to_owned(), "monitoring".to_owned()),
        "the community release"
    );
    // Helm (3.2+) adopts an existing object only when it carries the managed-by label and its
    // annotations name the installing release and namespace (helm's `checkOwnership`, restated);
    // every APIService the new release renders that exists must pass.
    let values = chart().join("ci/prometheus-community-values.yaml");
    let chart = chart();
    let objects = objects_of(&helm(&[
        "template",
        &release,
        chart.to_str().unwrap(),
        "--namespace",
        &namespace,
        "--values",
        values.to_str().unwrap(),
    ]));
    let mut adopted = 0;
    for api in find(&objects, "APIService") {
        let name = api["metadata"]["name"].as_str().unwrap();
        let Some((labels, annotations)) =
            cluster.metadata("apiregistration.k8s.io", "apiservices", name)
        else {
            continue;
        };
        assert_eq!(
            labels
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("Helm"),
            "{name}"
        );
        assert_eq!(
            annotations.get("meta.helm.sh/release-name"),
            Some(&release),
            "{name}"
        );
        assert_eq!(
            annotations.get("meta.helm.sh/release-namespace"),
            Some(&namespace),
            "{name}"
        );
        adopted += 1;
    }
    // These values serve custom and external metrics: both community APIServices are handed over.
    assert!(adopted >= 2, "{adopted}");
    // A name the loop leaves out would still belong to the old release.
    for name in community {
        let (_, annotations) = cluster
            .metadata("apiregistration.k8s.io", "apiservices", name)
            .unwrap();
        assert_eq!(annotations["meta.helm.sh/release-name"], release, "{name}");
    }
}

#[test]
fn the_default_install_is_highly_available() {
    // Two replicas, a budget of one unavailable, and a spread over nodes by the pods' own labels.
    let (_, objects) = render_with(&[]);
    let deployment = find(&objects, "Deployment")[0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        find(&objects, "PodDisruptionBudget")[0]["spec"]["maxUnavailable"],
        1
    );
    // An evicted adapter breaks every HPA on its metrics: critical, as metrics-server is.
    assert_eq!(
        deployment["spec"]["template"]["spec"]["priorityClassName"],
        "system-cluster-critical"
    );
    // GKE admits pods of that class outside kube-system only under a quota scoped to it.
    let quota = &find(&objects, "ResourceQuota")[0]["spec"];
    assert_eq!(
        quota["scopeSelector"]["matchExpressions"][0],
        serde_json::json!({"scopeName": "PriorityClass", "operator": "In", "values": ["system-cluster-critical"]})
    );
    assert_eq!(quota["hard"]["pods"], "100");
    let (_, objects) = render_with(&["--set", "priorityClassName="]);
    assert!(
        find(&objects, "Deployment")[0]["spec"]["template"]["spec"]
            .get("priorityClassName")
            .is_none()
    );
    assert!(find(&objects, "ResourceQuota").is_empty());
    let (_, objects) = render_with(&["--namespace", "kube-system"]);
    assert!(find(&objects, "ResourceQuota").is_empty());
    let spread = &deployment["spec"]["template"]["spec"]["topologySpreadConstraints"];
    assert_eq!(spread[0]["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(spread[0]["whenUnsatisfiable"], "ScheduleAnyway");
    assert_eq!(
        spread[0]["labelSelector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    // One replica has nothing to spread; constraints given replace the default one.
    let (_, objects) = render_with(&["--set", "replicas=1"]);
    let pod = &find(&objects, "Deployment")[0]["spec"]["template"]["spec"];
    assert!(pod.get("topologySpreadConstraints").is_none(), "{pod}");
    let (_, objects) = render_with(&[
        "--set",
        "topologySpreadConstraints[0].maxSkew=2",
        "--set",
        "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
        "--set",
        "topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
    ]);
    let spread =
        &find(&objects, "Deployment")[0]["spec"]["template"]["spec"]["topologySpreadConstraints"];
    assert_eq!(spread.as_array().unwrap().len(), 1);
    assert_eq!(spread[0]["topologyKey"], "topology.kubernetes.io/zone");
}

/// The PrometheusRule CRD of `../shared/corpus/crds`, when the corpus is beside the project.
fn prometheus_rule_crd() -> Option<PathBuf> {
    let crd = std::env::var_os("PROM_ADAPTER_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"))
        .join("crds/monitoring.coreos.com_prometheusrules.yaml");
    if crd.is_file() {
        Some(crd)
    } else {
        eprintln!(
            "no PrometheusRule CRD at {}: its schema is not checked",
            crd.display()
        );
        None
    }
}

#[test]
fn the_alerts_and_dashboard_render_validate_and_the_alerts_pass_their_unit_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The chart renders them only when asked, with the operator's labels and its own selectors.
    let (_, objects) = render_with(&[]);
    assert!(find(&objects, "PrometheusRule").is_empty());
    let (yaml, objects) = render_with(&[
        "--namespace",
        "monitoring",
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.additionalLabels.release=kube-prometheus-stack",
        "--set",
        "prometheusRule.alertLabels.team=platform",
        "--set",
        "dashboard.enabled=true",
    ]);
    validate_for_kubernetes(&yaml, "prometheusRule.enabled and dashboard.enabled");
    // The dashboard, for Grafana's sidecar: labelled, and the shipped JSON as it is.
    let dashboard = find(&objects, "ConfigMap")
        .into_iter()
        .find(|c| c["metadata"]["name"] == "demo-prom-adapter-dashboard")
        .expect("the dashboard ConfigMap");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let shipped: Value = serde_json::from_str(
        &std::fs::read_to_string(chart().join("files/dashboard.json")).unwrap(),
    )
    .unwrap();
    let rendered: Value =
        serde_json::from_str(dashboard["data"]["prom-adapter.json"].as_str().unwrap()).unwrap();
    assert_eq!(rendered, shipped);
    let rule = find(&objects, "PrometheusRule")[0];
    assert_eq!(
        rule["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let alerts = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    assert_eq!(alerts.len(), 8);
    for alert in alerts {
        let name = alert["alert"].as_str().unwrap();
        assert_eq!(alert["labels"]["team"], "platform", "{name}");
        for key in ["summary", "description", "runbook_url"] {
            assert!(alert["annotations"][key].is_string(), "{name}: {key}");
        }
        // Each alert has a runbook section in docs/runbooks.md, where its runbook_url points.
        let anchor = name.to_lowercase();
        assert!(
            alert["annotations"]["runbook_url"]
                .as_str()
                .unwrap()
                .ends_with(&format!("docs/runbooks.md#{anchor}")),
            "{name}"
        );
        let runbooks = std::fs::read_to_string(root.join("docs/runbooks.md")).unwrap();
        assert!(
            runbooks.contains(&format!("\n## {name}\n")),
            "docs/runbooks.md has no runbook for {name}"
        );
    }
    // The committed copies (manifests/alerts) are checked against the chart by
    // the_plain_manifests_are_the_rendered_chart_and_build_with_kustomize; their schema here.
    if let Some(crd) = prometheus_rule_crd() {
        let rendered = tempfile_with(&yaml);
        for file in [
            rendered.path().to_path_buf(),
            root.join("manifests/alerts/prometheus-rule.yaml"),
        ] {
            stdout_of(
                Command::new(tools().join("venv/bin/python"))
                    .arg(root.join("scripts/validate-crd.py"))
                    .arg(&crd)
                    .arg(&file),
            );
        }
    }
    // promtool checks the rules and runs their unit tests: series that fire each alert, and
    // series that do not.
    for args in [
        ["check", "rules", "manifests/alerts/rules.yaml"],
        ["test", "rules", "tests/fixtures/alerts-test.yaml"],
    ] {
        stdout_of(Command::new("promtool").args(args).current_dir(root));
    }
}

fn tempfile_with(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

#[test]
fn the_charts_readme_lists_every_value_and_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fresh = tempfile::NamedTempFile::new().unwrap();
    stdout_of(
        Command::new(tools().join("venv/bin/python"))
            .arg(root.join("scripts/chart-readme.py"))
            .arg(fresh.path()),
    );
    let generated = std::fs::read_to_string(fresh.path()).unwrap();
    assert!(
        generated == std::fs::read_to_string(chart().join("README.md")).unwrap(),
        "charts/prom-adapter/README.md is out of date with values.yaml: run `make manifests` and commit the result"
    );
    // Every value, by its path, with its default as the chart renders it.
    let values = yaml_to_json(&std::fs::read_to_string(chart().join("values.yaml")).unwrap());
    fn paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
        match value.as_object() {
            Some(map) if !map.is_empty() => {
                for (key, child) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    paths(child, &path, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut all = Vec::new();
    paths(&values, "", &mut all);
    assert!(all.len() > 80, "{}", all.len());
    for path in &all {
        assert!(
            generated.contains(&format!("| `{path}` | `")),
            "{path} is not listed"
        );
    }
    assert!(generated.contains("| `priorityClassName` | `\"system-cluster-critical\"` |"));
    assert!(generated.contains("| `replicas` | `2` |"));
}
