//! The offline commands and the example rules files, through the real binary.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_prom-adapter"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_example_rules_file_loads() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo("config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let (code, stdout, stderr) = run(&["check", "--config", path.to_str().unwrap()]);
            assert_eq!(code, 0, "{}: {stderr}", path.display());
            assert!(stdout.contains(": OK ("), "{stdout}");
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} example files");
    let (_, stdout, _) = run(&[
        "check",
        "--config",
        repo("config/sample-config.yaml").to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("(4 rules, 2 externalRules, resourceRules absent)"),
        "{stdout}"
    );
    // check says which rules serve asks once per namespace, and why the others are asked by name.
    let (_, stdout, _) = run(&[
        "check",
        "--config",
        repo("config/demo.yaml").to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("batched: one query for all objects (per namespace)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("resourceRules.cpu.containerQuery: batched"),
        "{stdout}"
    );
}

/// Writes `contents` as a rules file and runs `check` on it: (exit code, stderr, file name).
fn check_text(dir: &Path, contents: &str) -> (i32, String, String) {
    let file = dir.join("bad.yaml");
    std::fs::write(&file, contents).unwrap();
    let (code, _, stderr) = run(&["check", "--config", file.to_str().unwrap()]);
    (code, stderr, file.display().to_string())
}

#[test]
fn check_reports_every_error_with_file_line_and_field_path() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr, f) = check_text(
        dir.path(),
        "rules:\n- seriesQuery: 'x{a=\"b\"}'\n  name: {matches: '^(.*)_total$', as: '$1_per_second'}\n  metricsQuery: 'sum(<<.Series'\n- seriesFilters: [{is: '('}]\n  metricsQuery: x\n",
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("{f}:4:")) && stderr.contains("rules[0].metricsQuery"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rules[1].seriesQuery: is required"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rules[1].seriesFilters[0].is: invalid regular expression"),
        "{stderr}"
    );

    // Structural mistakes are reported together too, with their field paths.
    let (code, stderr, f) = check_text(
        dir.path(),
        "rules:\n- seriesQuery: x\n  metricQuery: y\nexternalrules: []\n",
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "{f}:3:3: rules[0].metricQuery: unknown field `metricQuery`"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{f}:4:1: externalrules: unknown field")),
        "{stderr}"
    );

    // A YAML syntax error is reported with its position.
    let (code, stderr, f) = check_text(dir.path(), "rules:\n- seriesQuery: [x\n");
    assert_eq!(code, 1);
    assert!(stderr.contains(&format!("{f}:")), "{stderr}");

    // A file that cannot be read says why.
    let (code, _, stderr) = run(&["check", "--config", "/nonexistent/rules.yaml"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("No such file or directory"), "{stderr}");
}

#[test]
fn explain_lists_metrics_and_renders_queries_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let series = dir.path().join("series.txt");
    std::fs::write(
        &series,
        "container_some_usage{pod=\"somepod\",namespace=\"somens\",container=\"c\"}\nnginx_ingress_controller_requests{namespace=\"ingress-nginx\",exported_namespace=\"default\",exported_service=\"web\",ingress=\"web\",status=\"200\"}\n",
    )
    .unwrap();
    let config = repo("config/demo.yaml");
    let (code, stdout, stderr) = run(&[
        "explain",
        "--config",
        config.to_str().unwrap(),
        "--series",
        series.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let listing: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let custom = listing["custom"].as_array().unwrap();
    assert!(
        custom
            .iter()
            .any(|c| c["resource"] == "ingresses.networking.k8s.io"
                && c["metric"] == "nginx_ingress_requests_per_second"
                && c["namespaced"] == true
                && c["series"] == "nginx_ingress_controller_requests")
    );
    assert!(
        custom
            .iter()
            .any(|c| c["resource"] == "pods" && c["metric"] == "some_usage" && c["rule"].is_u64())
    );
    assert!(listing["external"].as_array().unwrap().is_empty());

    let (code, stdout, stderr) = run(&[
        "explain",
        "--config",
        config.to_str().unwrap(),
        "--series",
        series.to_str().unwrap(),
        "--output",
        "json",
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/somens/pods/*/some_usage",
        "--objects",
        "somepod1,somepod2",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let query: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        query["query"],
        r#"sum(container_some_usage{namespace="somens",pod=~"somepod1|somepod2",container!="",container!="POD"}) by (pod)"#
    );
    // The rule keeps pods apart, so serve asks once for the namespace's pods.
    assert_eq!(
        query["batched"],
        r#"sum(container_some_usage{namespace="somens",container!="",container!="POD"}) by (pod)"#
    );
}

#[test]
fn serve_refuses_what_it_cannot_do_safely() {
    let config = repo("config/demo.yaml");
    let dir = tempfile::tempdir().unwrap();
    let cert_dir = format!("--cert-dir={}", dir.path().display());
    // Without --standalone it needs a cluster, and says how to give one.
    let (code, _, stderr) = run(&[
        "--config",
        config.to_str().unwrap(),
        "--prometheus-url",
        "http://127.0.0.1:1",
        &cert_dir,
        "--lister-kubeconfig=/nonexistent/kubeconfig",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("/nonexistent/kubeconfig"), "{stderr}");
    assert!(stderr.contains("--standalone"), "{stderr}");
    let (code, _, stderr) = run(&[
        "--standalone",
        "--config",
        config.to_str().unwrap(),
        "--bind-address",
        "0.0.0.0",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("loopback"), "{stderr}");
    let (code, _, stderr) = run(&["--tls-sni-cert-key=/x", "--standalone"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--tls-sni-cert-key"), "{stderr}");
}

#[test]
fn check_warns_about_rules_that_load_but_will_fail_and_still_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(
        &file,
        "externalRules:\n- seriesQuery: 'queue_depth'\n  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(&["check", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let warnings: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 1, "{stdout}");
    assert!(
        warnings[0].starts_with("warning: externalRules[0].resources: no label maps to namespaces"),
        "{stdout}"
    );
    // --strict makes the same warnings a failure, for CI.
    let (code, _, stderr) = run(&["check", "--strict", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("1 warning(s), which --strict treats as failures"),
        "{stderr}"
    );
}

#[test]
fn check_refuses_templates_that_cannot_render() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    let rules = [
        "rules:",
        "- seriesQuery: 'a_total{namespace!=\"\",pod!=\"\"}'",
        "  resources: {template: <<.Resource>>}",
        "  metricsQuery: 'sum(<<.Series>>{<<.LabelMatcher>>}) by (<<.GroupBy>>)'",
        "- seriesQuery: 'b_total{namespace!=\"\",pod!=\"\"}'",
        "  resources: {template: <<.Resource>>}",
        "  metricsQuery: '<<nosuch .Series>>'",
        "- seriesQuery: 'c_total{namespace!=\"\",pod!=\"\"}'",
        "  resources: {template: <<.Resource>>}",
        "  metricsQuery: '<<range 10000000>><<$.Series>><<end>>'",
    ];
    std::fs::write(&file, rules.join("\n") + "\n").unwrap();
    let (code, stdout, stderr) = run(&["check", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let at = |line: usize, needle: &str| {
        let prefix = format!("{}:{line}:", file.display());
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&prefix) && l.contains(needle)),
            "line {line} {needle:?}: {stderr}"
        );
    };
    at(4, ".LabelMatcher is not a template field");
    at(7, "nosuch");
    at(10, "longer than 1048576 bytes");
}

#[test]
fn a_rule_without_a_metrics_query_is_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(
        &file,
        "rules:\n- seriesQuery: 'http_requests_total{namespace!=\"\",pod!=\"\"}'\n  resources: {template: <<.Resource>>}\n- seriesQuery: 'queue_depth{namespace!=\"\"}'\n  resources: {template: <<.Resource>>}\n  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'\n- seriesQuery: 'jobs_total{namespace!=\"\"}'\n  resources: {template: <<.Resource>>}\n  metricsQuery: 'sum(${.Series}${${.LabelMatchers}$}) by (${.GroupBy}$)'\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(&["check", "--config", file.to_str().unwrap()]);
    // prometheus-adapter starts with this file, so check passes, and says what it left out.
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "warning: {}:2:3: rules[0].metricsQuery: is missing or empty",
            file.display()
        )),
        "{stdout}"
    );
    // A query in the 2018 demo build's `${ }$` syntax never worked with prometheus-adapter either.
    assert!(
        stdout.contains(&format!(
            "warning: {}:9:17: rules[2].metricsQuery: uses the `${{…}}$` delimiters",
            file.display()
        )) && stdout.contains("sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)")
            && stdout.contains("the rule is skipped"),
        "{stdout}"
    );
    // The rule that is kept is still called by its place in the file.
    assert!(stdout.contains("rules[1]: queue_depth"), "{stdout}");
    assert!(stdout.contains("OK (1 rules"), "{stdout}");
    let (code, _, _) = run(&["check", "--strict", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 1);
}

#[test]
fn resource_rules_without_a_node_mapping_or_container_label_load_with_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let file = resource_rules_file(
        dir.path(),
        "sum(rate(c{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)",
        "namespace: {resource: namespace}, pod: {resource: pod}",
        "",
    );
    let (code, stdout, stderr) = run(&["check", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    for field in ["cpu", "memory"] {
        assert!(
            stdout.contains(&format!(
                "resourceRules.{field}.resources: maps no label to nodes, so nodes requests fail"
            )),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!(
                "resourceRules.{field}.containerLabel: is missing, so each pod is reported as one container named \"\""
            )),
            "{stdout}"
        );
    }
    assert!(stdout.contains("resourceRules present"), "{stdout}");
}

#[test]
fn resource_rules_in_the_2018_template_syntax_are_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let file = resource_rules_file(
        dir.path(),
        "sum(rate(c{${.LabelMatchers}$}[1m])) by (${.GroupBy}$)",
        "namespace: {resource: namespace}, pod: {resource: pod}, node: {resource: node}",
        "    containerLabel: container\n",
    );
    // prometheus-adapter starts with this file and fails every metrics.k8s.io request.
    let (code, stdout, stderr) = run(&["check", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    for field in ["cpu", "memory"] {
        assert!(
            stdout.lines().any(|l| l.starts_with("warning: ")
                && l.contains(&format!(
                    "resourceRules.{field}.containerQuery: uses the `${{…}}$` delimiters"
                ))
                && l.contains("resourceRules (metrics.k8s.io) are skipped")),
            "{stdout}"
        );
    }
    let (code, _, _) = run(&["check", "--strict", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 1);
}

/// A rules file of `resourceRules` only: cpu and memory with this containerQuery, a nodeQuery in
/// the usual syntax, these overrides, and `extra` lines under each.
fn resource_rules_file(
    dir: &std::path::Path,
    container_query: &str,
    overrides: &str,
    extra: &str,
) -> std::path::PathBuf {
    let file = dir.join("rules.yaml");
    let rule = |name: &str| {
        format!(
            "  {name}:\n    containerQuery: '{container_query}'\n    nodeQuery: 'sum(rate(c{{<<.LabelMatchers>>}}[1m])) by (<<.GroupBy>>)'\n    resources:\n      overrides: {{{overrides}}}\n{extra}"
        )
    };
    std::fs::write(
        &file,
        format!(
            "resourceRules:\n{}{}  window: 1m\n",
            rule("cpu"),
            rule("memory")
        ),
    )
    .unwrap();
    file
}

#[test]
fn check_with_settings_checks_the_backends_rules_name() {
    let dir = tempfile::tempdir().unwrap();
    let settings = repo("config/settings/backends.yaml");
    // docs/backends.md shows the example settings file as it is (without its comments).
    let example: String = std::fs::read_to_string(&settings)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let page = std::fs::read_to_string(repo("docs/backends.md")).unwrap();
    assert!(
        page.contains(&format!("```yaml\n{example}```")),
        "{example}"
    );
    let rules = |backend: &str| {
        let file = dir.path().join(format!("{backend}.yaml"));
        std::fs::write(
            &file,
            format!("rules:\n- seriesQuery: 'http_requests_total{{namespace!=\"\",pod!=\"\"}}'\n  resources: {{overrides: {{namespace: {{resource: namespace}}, pod: {{resource: pod}}}}}}\n  metricsQuery: 'sum(rate(<<.Series>>{{<<.LabelMatchers>>}}[2m])) by (<<.GroupBy>>)'\n  backend: {backend}\n"),
        )
        .unwrap();
        file
    };
    for backend in ["thanos", "mimir", "vmcluster"] {
        let file = rules(backend);
        let (code, stdout, stderr) = run(&[
            "check",
            "--config",
            file.to_str().unwrap(),
            "--settings",
            settings.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{backend}: {stderr}");
        assert!(stdout.contains(&format!("; backend {backend}")), "{stdout}");
    }
    let file = rules("nope");
    let (code, _, stderr) = run(&[
        "check",
        "--config",
        file.to_str().unwrap(),
        "--settings",
        settings.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(":5:12: rules[0].backend: no backend \"nope\": the settings' `backends:` are mimir, thanos, vmcluster"),
        "{stderr}"
    );
    // Without the settings, the reference is listed as not checked.
    let (code, stdout, _) = run(&["check", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("backend \"nope\" is not checked"),
        "{stdout}"
    );
}

/// Credentials in a Prometheus URL (`user:password@`, which is sent as basic auth) never reach a
/// log line, at any level and in either format, nor an error the tools print.
#[test]
fn a_password_in_a_prometheus_url_is_never_printed() {
    const SECRET: &str = "planted-s3cret";
    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!(
        "http://reader:{SECRET}@127.0.0.1:{}",
        crate::common::free_port()
    );
    for format in ["text", "json"] {
        let log_format = format!("--log-format={format}");
        let adapter = crate::common::Adapter::start_serving(
            dir.path(),
            &repo("config/demo.yaml"),
            &nowhere,
            &["-v", "8", &log_format],
        );
        // Discovery fails (nothing listens there) and says where it could not reach, and a
        // request is refused for it.
        assert!(
            crate::common::wait_for(|| adapter.log().matches("series listing failed").count() > 3),
            "{}",
            adapter.log()
        );
        adapter
            .curl("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_messages_ready");
        let log = adapter.log();
        assert!(log.contains("reader:xxxxx@127.0.0.1"), "{log}");
        assert!(!log.contains(SECRET), "{format} log: {log}");
    }
    let settings = dir.path().join("settings.yaml");
    std::fs::write(
        &settings,
        format!("backends:\n  vm:\n    url: \"http://reader:{SECRET}@[broken\"\n"),
    )
    .unwrap();
    let config = repo("config/demo.yaml");
    let config = config.to_str().unwrap();
    let window = ["--start", "now-10m", "--end", "now"];
    for args in [
        vec!["explain", "--config", config, "--prometheus-url", &nowhere],
        [
            vec!["simulate", "--config", config, "--prometheus-url", &nowhere],
            vec!["--hpa", "config/hpa/shop.yaml"],
            window.to_vec(),
        ]
        .concat(),
        vec![
            "check",
            "--config",
            config,
            "--settings",
            settings.to_str().unwrap(),
        ],
    ] {
        let (code, stdout, stderr) = run(&args);
        assert_ne!(code, 0, "{args:?}: {stdout}{stderr}");
        assert!(
            !stdout.contains(SECRET) && !stderr.contains(SECRET),
            "{args:?}: {stdout}{stderr}"
        );
        assert!(
            stderr.contains("xxxxx") || stdout.contains("xxxxx"),
            "{args:?}: {stdout}{stderr}"
        );
    }
}

/// `simulate` refuses, before asking Prometheus, a run it could not hold: a time past the year
/// 9999, more syncs than a run replays, more replicas than a simulation models (each once ran
/// the process out of memory).
#[test]
fn simulate_refuses_runs_it_cannot_hold() {
    let config = repo("config/demo.yaml");
    let nowhere = format!("http://127.0.0.1:{}", crate::common::free_port());
    let base = [
        "simulate",
        "--config",
        config.to_str().unwrap(),
        "--prometheus-url",
        &nowhere,
        "--hpa",
        "config/hpa/shop.yaml",
    ];
    for (extra, says) in [
        (
            &["--start", "0", "--end", "1e18"][..],
            "\"1e18\" is not a time",
        ),
        (
            &["--start", "0", "--end", "now"][..],
            "a run replays at most 200000",
        ),
        (
            &[
                "--start",
                "now-1h",
                "--end",
                "now",
                "--initial-replicas",
                "2147483647",
            ][..],
            "--initial-replicas 2147483647: a simulation replays 0 to 100000 replicas",
        ),
    ] {
        let (code, stdout, stderr) = run(&[&base[..], extra].concat());
        assert_eq!(code, 1, "{extra:?}: {stdout}{stderr}");
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
        assert!(
            !stderr.contains("Prometheus"),
            "refused before any call: {stderr}"
        );
    }
}
