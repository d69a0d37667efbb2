//! Bad input never panics: pseudo-random and mutated inputs through every parser that sees user or network data.

use prom_adapter_core::promql::{LabelSelector, Series, SeriesSelector};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const ALPHABET: &[&str] = &[
    "a",
    "z",
    "0",
    "9",
    "_",
    "-",
    ".",
    "/",
    "=",
    "!",
    "~",
    "\"",
    "'",
    "`",
    "\\",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    ",",
    ":",
    " ",
    "\n",
    "\t",
    "#",
    "<<",
    ">>",
    "<<.Series>>",
    "in",
    "notin",
    "$1",
    "${1}",
    "é",
    "☃",
    "\u{0}",
    "- ",
    "rules:",
    "seriesQuery: ",
    "metricsQuery: ",
    "name:",
    "  ",
    "__name__",
    "\"data\":[",
    "{\"__name__\":\"x\"}",
    "\"status\":\"success\"",
    "null",
    "true",
    "&a",
    "*a",
    "%2A",
];

fn random_text(rng: &mut Rng, max_pieces: usize) -> String {
    (0..rng.below(max_pieces))
        .map(|_| ALPHABET[rng.below(ALPHABET.len())])
        .collect()
}

/// Mutates a valid input: deletes, duplicates or inserts a piece at random places.
fn mutate(rng: &mut Rng, base: &str) -> String {
    let mut text = base.to_owned();
    for _ in 0..1 + rng.below(4) {
        let mut at = rng.below(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        match rng.below(3) {
            0 => {
                let mut end = (at + rng.below(8)).min(text.len());
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.replace_range(at..end, "");
            }
            1 => text.insert_str(at, ALPHABET[rng.below(ALPHABET.len())]),
            _ => {
                let piece = text[at..].chars().take(5).collect::<String>();
                text.insert_str(at, &piece);
            }
        }
    }
    text
}

#[test]
fn parsers_reject_bad_input_without_panicking() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let rules =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.yaml")).unwrap();
    let series_answer = r#"{"status":"success","data":[{"__name__":"up","job":"a"},{"__name__":"x","pod":"p\"q"}]}"#;
    let mut rejected = 0;
    for round in 0..1500 {
        let text = if round % 2 == 0 {
            random_text(&mut rng, 40)
        } else {
            mutate(&mut rng, &rules)
        };
        rejected +=
            usize::from(prom_adapter_core::config::parse_rules(&text, "fuzz.yaml").is_err());
        let _ = LabelSelector::parse(&text).map(|s| s.to_matchers());
        let _ = SeriesSelector::parse(&text);
        let _ = Series::parse(&text);
        let answer = mutate(&mut rng, series_answer);
        let _ = prom_adapter_backend::prometheus::decode_series(answer.as_bytes());
        let _ = prom_adapter_backend::prometheus::decode_series(text.as_bytes());
        let _ = prom_adapter_core::model::parse_duration(&text);
        let path = mutate(&mut rng, "namespaces/default/pods/%2A/metric");
        let query: std::collections::HashMap<String, String> = [
            ("labelSelector", mutate(&mut rng, "app=web,tier in (a,b)")),
            (
                "metricLabelSelector",
                mutate(&mut rng, "status!=500,!canary"),
            ),
            ("fieldSelector", mutate(&mut rng, "metadata.name=x")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let _ = prom_adapter_core::request::parse_custom(&path, &query);
        // Names and namespaces in request paths, credentials, and values that reach templates.
        let full = mutate(
            &mut rng,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods.apps/web.v1%2Ecanary/cpu_usage",
        );
        if let Ok(attributes) = prom_adapter_serve::auth::Attributes::from_request("GET", &full) {
            let _ = attributes.check_names();
            let canonical = attributes.canonical(|r| Some(r.to_ascii_lowercase()));
            let _ = canonical.forbidden_message(&text);
        }
        let _ = prom_adapter_serve::auth::Attributes::from_request(&text, &text);
        let _ = prom_adapter_core::object_names::decode_segment(&text);
        let _ = prom_adapter_core::object_names::check_namespace(&text);
        let _ = prom_adapter_core::object_names::check_object_name(&text, &text, true);
        let _ = prom_adapter_core::object_names::check_token("metric", &text);
        let _ = prom_adapter_serve::auth::bearer_token(&mutate(&mut rng, "Bearer abc.def"));
        let _ = prom_adapter_core::promql::template_alternation(&[text.as_str(), path.as_str()]);
        let _ = prom_adapter_core::rules::QueryTemplate::compile(&text);
        // explain's inputs: Prometheus's configuration, request paths, and the lint and --why
        // walks over whatever rules and series parsed.
        let config = mutate(
            &mut rng,
            "global:\n  scrape_interval: 15s\nscrape_configs:\n- job_name: a\n  scrape_interval: 1m\n",
        );
        let _ = prom_adapter_tools::explain::lint::ScrapeIntervals::from_prometheus_config(&config);
        // simulate's inputs: HPA manifests, times and quantities.
        let manifest = mutate(&mut rng, include_str!("../../config/hpa/shop.yaml"));
        let _ = prom_adapter_tools::simulate::hpa::parse(&manifest);
        let _ = prom_adapter_tools::simulate::parse_time(&text, 0);
        let _ = prom_adapter_core::model::parse_quantity_milli(&mutate(&mut rng, "1.5e3Mi"));
        let request = mutate(
            &mut rng,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/web/cpu_usage?metricLabelSelector=a%3Db",
        );
        if let (Ok(rules), Ok(request)) = (
            prom_adapter_core::config::parse_rules(&text, "fuzz.yaml"),
            prom_adapter_core::request::parse_request_path(&request),
        ) {
            let series: Vec<Series> = [
                r#"container_cpu_usage_seconds_total{namespace="default",pod="web",container="c"}"#,
                r#"node_load{node="a"}"#,
            ]
            .iter()
            .filter_map(|s| Series::parse(s).ok())
            .collect();
            let table = prom_adapter_core::resources::ResourceTable::builtin();
            let registry =
                prom_adapter_core::registry::Registry::from_series(&rules, &series, &table);
            let _ = prom_adapter_tools::explain::why::walk(
                &rules, &registry, &series, &table, &request, "now",
            );
            let _ = prom_adapter_tools::explain::lint::static_warnings(&rules);
            let _ = prom_adapter_tools::explain::lint::series_warnings(&rules, &series, &table);
        }
    }
    // The inputs were mostly invalid: make sure they were really exercised.
    assert!(rejected > 300, "only {rejected} rules inputs were rejected");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Values of the serve flags that bound reviews, answers and handshakes: every bad one is a clear
/// error before anything starts, never a panic.
#[test]
fn hostile_values_of_the_limit_flags_are_errors() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.yaml");
    let hostile = [
        "",
        "0",
        "-1",
        "abc",
        "99999999999999999999999",
        "1e400",
        "☃",
        "0s",
        "64Zi",
    ];
    for flag in [
        "--authentication-timeout",
        "--authorization-timeout",
        "--max-reviews-in-flight",
        "--max-reviews-per-client",
        "--prometheus-max-response-bytes",
        "--tls-handshake-timeout",
        "--max-concurrent-tls-handshakes",
    ] {
        for value in hostile {
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_prom-adapter"))
                .args(["--standalone", "--config", rules])
                .arg("--prometheus-url=http://127.0.0.1:9")
                .arg(format!("--secure-port={}", free_port()))
                .arg(format!("{flag}={value}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // A value taken as valid would start a server: stop it rather than wait forever.
            let deadline = std::time::Instant::now() + crate::common::PATIENCE;
            while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                matches!(out.status.code(), Some(1 | 2)),
                "{flag}={value:?}: {:?} {stderr}",
                out.status
            );
            assert!(!stderr.contains("panicked"), "{flag}={value:?}: {stderr}");
        }
    }
}
