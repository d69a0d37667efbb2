//! The leaves every edge uses: logging set-up, the adapter's own metrics (`/metrics`), the wall clock (`clock`) and thinned repeating log lines (`throttle`). Depends only on the core.

pub mod clock;
pub mod throttle;

use std::time::Duration;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use prom_adapter_core::registry::Registry as MetricRegistry;

/// The adapter's own metrics. Labels are low-cardinality: route patterns, codes, endpoints.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    prometheus_requests: IntCounterVec,
    prometheus_duration: HistogramVec,
    discovery_duration: prometheus::Histogram,
    discovery_failed_queries: IntCounter,
    discovered_series: IntGauge,
    discovered_shapes: IntGauge,
    custom_metrics: IntGauge,
    external_metrics: IntGauge,
    last_relist: Gauge,
    reload_successful: IntGauge,
    reload_success_time: Gauge,
    reloads: IntCounterVec,
    query_sharing: IntCounterVec,
    rule_queries: IntCounterVec,
    rule_metrics: IntGaugeVec,
    queued_calls: IntGaugeVec,
    rejected_calls: IntCounterVec,
    object_lookups: IntCounterVec,
    watch_failures: IntCounterVec,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "prom_adapter_http_requests_total",
                "API requests served, by route and status code.",
            ),
            &["route", "code"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "prom_adapter_http_request_duration_seconds",
                "API request latency, by route.",
            ),
            &["route"],
        )
        .expect("valid metric");
        let prometheus_requests = IntCounterVec::new(
            Opts::new(
                "prom_adapter_prometheus_requests_total",
                "Calls to Prometheus, by backend (default: --prometheus-url), endpoint and outcome (ok, unavailable, error).",
            ),
            &["backend", "endpoint", "outcome"],
        )
        .expect("valid metric");
        let prometheus_duration = HistogramVec::new(
            HistogramOpts::new(
                "prom_adapter_prometheus_request_duration_seconds",
                "Latency of calls to Prometheus, by backend and endpoint.",
            ),
            &["backend", "endpoint"],
        )
        .expect("valid metric");
        let discovery_duration = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "prom_adapter_discovery_duration_seconds",
                "Duration of one discovery relist.",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
        )
        .expect("valid metric");
        let discovery_failed_queries = IntCounter::new(
            "prom_adapter_discovery_failed_queries_total",
            "Series queries that failed during discovery (their last good answer was kept).",
        )
        .expect("valid metric");
        let discovered_series = IntGauge::new(
            "prom_adapter_discovery_series",
            "Series read in the last relist.",
        )
        .expect("valid metric");
        let discovered_shapes = IntGauge::new(
            "prom_adapter_discovery_series_shapes",
            "Distinct (metric name, label names) shapes held after the last relist.",
        )
        .expect("valid metric");
        let custom_metrics = IntGauge::new(
            "prom_adapter_custom_metrics",
            "Custom metrics served (resource × scope × name).",
        )
        .expect("valid metric");
        let external_metrics =
            IntGauge::new("prom_adapter_external_metrics", "External metrics served.")
                .expect("valid metric");
        let last_relist = Gauge::new(
            "prom_adapter_discovery_last_success_timestamp_seconds",
            "Unix time of the last relist in which every series query succeeded.",
        )
        .expect("valid metric");
        let reload_successful = IntGauge::new(
            "prom_adapter_config_last_reload_successful",
            "1 when the last rules-file reload succeeded (or none was tried), 0 when the last good rules are still served after a failed one.",
        )
        .expect("valid metric");
        reload_successful.set(1);
        let reload_success_time = Gauge::new(
            "prom_adapter_config_last_reload_success_timestamp_seconds",
            "Unix time the serving rules were loaded (at start, or by the last successful reload).",
        )
        .expect("valid metric");
        reload_success_time.set(crate::clock::unix_now());
        let reloads = IntCounterVec::new(
            Opts::new(
                "prom_adapter_config_reloads_total",
                "Rules-file reloads tried, by trigger (file, signal) and result (success, failure).",
            ),
            &["trigger", "result"],
        )
        .expect("valid metric");
        // Exposed at zero from the start, for dashboards and alerts.
        for trigger in ["file", "signal"] {
            for result in ["success", "failure"] {
                reloads.with_label_values(&[trigger, result]);
            }
        }
        let query_sharing = IntCounterVec::new(
            Opts::new(
                "prom_adapter_query_cache_total",
                "Instant queries by backend and how they were answered: hit (a kept answer), merged (joined the same query in flight), miss (sent to Prometheus), previous (the previous step's kept answer, served while this step's is asked), ahead (sent before a periodic caller's next request, not for a request).",
            ),
            &["backend", "result"],
        )
        .expect("valid metric");
        let rule_queries = IntCounterVec::new(
            Opts::new(
                "prom_adapter_rule_queries_total",
                "Instant queries asked for API requests, before sharing, by rule (rules[3], externalRules[0], resourceRules.cpu) and shape (batched: one for every object of a namespace; named; split: the names in parts; external).",
            ),
            &["rule", "shape"],
        )
        .expect("valid metric");
        let rule_metrics = IntGaugeVec::new(
            Opts::new(
                "prom_adapter_rule_metrics",
                "Metrics each rule serves after the last relist, by rule (rules[3], externalRules[0]) and its seriesQuery; 0 when its series are gone or another rule's metrics take its names.",
            ),
            &["rule", "series_query"],
        )
        .expect("valid metric");
        let queued_calls = IntGaugeVec::new(
            Opts::new(
                "prom_adapter_prometheus_queued_calls",
                "Prometheus calls waiting for a slot (--prometheus-max-concurrent-queries), by backend.",
            ),
            &["backend"],
        )
        .expect("valid metric");
        let rejected_calls = IntCounterVec::new(
            Opts::new(
                "prom_adapter_prometheus_rejected_calls_total",
                "Prometheus calls refused (answered 503), by backend: the queue was full, or no slot came free in time.",
            ),
            &["backend"],
        )
        .expect("valid metric");
        let object_lookups = IntCounterVec::new(
            Opts::new(
                "prom_adapter_object_lookups_total",
                "Objects selected for pods/* and other label-selector requests in a cluster, by how: watch (the pod watch's cache), hit (a kept list), merged (joined the same list in flight), list (a LIST sent to kube-apiserver).",
            ),
            &["source"],
        )
        .expect("valid metric");
        for source in ["watch", "hit", "merged", "list"] {
            object_lookups.with_label_values(&[source]);
        }
        let watch_failures = IntCounterVec::new(
            Opts::new(
                "prom_adapter_watch_failures_total",
                "Kubernetes watches that failed and are retried with backoff, by watch (pods, running-pods, nodes).",
            ),
            &["watch"],
        )
        .expect("valid metric");
        for watch in ["pods", "running-pods", "nodes"] {
            watch_failures.with_label_values(&[watch]);
        }
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(prometheus_requests.clone()),
            Box::new(prometheus_duration.clone()),
            Box::new(discovery_duration.clone()),
            Box::new(discovery_failed_queries.clone()),
            Box::new(discovered_series.clone()),
            Box::new(discovered_shapes.clone()),
            Box::new(custom_metrics.clone()),
            Box::new(external_metrics.clone()),
            Box::new(last_relist.clone()),
            Box::new(reload_successful.clone()),
            Box::new(reload_success_time.clone()),
            Box::new(reloads.clone()),
            Box::new(query_sharing.clone()),
            Box::new(rule_queries.clone()),
            Box::new(rule_metrics.clone()),
            Box::new(queued_calls.clone()),
            Box::new(rejected_calls.clone()),
            Box::new(object_lookups.clone()),
            Box::new(watch_failures.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            registry,
            http_requests,
            http_duration,
            prometheus_requests,
            prometheus_duration,
            discovery_duration,
            discovery_failed_queries,
            discovered_series,
            discovered_shapes,
            custom_metrics,
            external_metrics,
            last_relist,
            reload_successful,
            reload_success_time,
            reloads,
            query_sharing,
            rule_queries,
            rule_metrics,
            queued_calls,
            rejected_calls,
            object_lookups,
            watch_failures,
        }
    }

    /// Records how the objects of one label-selector request were found.
    pub fn record_object_lookup(&self, source: &str) {
        self.object_lookups.with_label_values(&[source]).inc();
    }

    /// Records one failure of `watch` (it retries with backoff).
    pub fn record_watch_failure(&self, watch: &str) {
        self.watch_failures.with_label_values(&[watch]).inc();
    }

    /// Exposes `backend`'s sharing and queue series from the start (at zero), so that dashboards
    /// and alerts see them before the first refusal.
    pub fn init_backend(&self, backend: &str) {
        for result in ["hit", "merged", "miss", "previous", "ahead"] {
            self.query_sharing.with_label_values(&[backend, result]);
        }
        self.queued_calls.with_label_values(&[backend]);
        self.rejected_calls.with_label_values(&[backend]);
    }

    /// Records how one instant query to `backend` was answered: `hit`, `merged` or `miss`.
    pub fn record_query_sharing(&self, backend: &str, result: &str) {
        self.query_sharing
            .with_label_values(&[backend, result])
            .inc();
    }

    /// Records `count` queries asked for one request to `rule`, made in `shape`.
    pub fn record_rule_queries(&self, rule: &str, shape: &str, count: usize) {
        self.rule_queries
            .with_label_values(&[rule, shape])
            .inc_by(count as u64);
    }

    /// Sets the number of calls to `backend` waiting for a slot.
    pub fn set_queued(&self, backend: &str, queued: usize) {
        self.queued_calls
            .with_label_values(&[backend])
            .set(queued as i64);
    }

    /// Records one call to `backend` refused for want of a slot.
    pub fn record_queue_rejection(&self, backend: &str) {
        self.rejected_calls.with_label_values(&[backend]).inc();
    }

    /// Records one rules-file reload: `trigger` is `file` or `signal`.
    pub fn record_reload(&self, trigger: &str, success: bool, now: f64) {
        let result = if success { "success" } else { "failure" };
        self.reloads.with_label_values(&[trigger, result]).inc();
        self.reload_successful.set(i64::from(success));
        if success {
            self.reload_success_time.set(now);
        }
    }

    /// Records one served API request.
    pub fn record_request(&self, route: &str, code: u16, elapsed: Duration) {
        self.http_requests
            .with_label_values(&[route, &code.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// Records one call to Prometheus.
    pub fn record_prometheus_call(
        &self,
        backend: &str,
        endpoint: &str,
        outcome: &str,
        elapsed: Duration,
    ) {
        self.prometheus_requests
            .with_label_values(&[backend, endpoint, outcome])
            .inc();
        self.prometheus_duration
            .with_label_values(&[backend, endpoint])
            .observe(elapsed.as_secs_f64());
    }

    /// Records one discovery relist.
    pub fn record_discovery(
        &self,
        elapsed: Duration,
        failures: usize,
        series: u64,
        shapes: usize,
        (rules, registry): (&prom_adapter_core::rules::RuleSet, &MetricRegistry),
        now: f64,
    ) {
        self.discovery_duration.observe(elapsed.as_secs_f64());
        self.discovery_failed_queries.inc_by(failures as u64);
        self.discovered_series.set(series as i64);
        self.discovered_shapes.set(shapes as i64);
        self.custom_metrics.set(registry.custom_len() as i64);
        self.external_metrics.set(registry.external_len() as i64);
        // Rules a reload removed must not linger with their last count.
        self.rule_metrics.reset();
        for (list, rules, sources) in [
            (
                "rules",
                &rules.custom,
                registry
                    .custom_metrics()
                    .map(|(_, s)| s.rule)
                    .collect::<Vec<_>>(),
            ),
            (
                "externalRules",
                &rules.external,
                registry.external_metrics().map(|(_, s)| s.rule).collect(),
            ),
        ] {
            for (index, rule) in rules.iter().enumerate() {
                let served = sources.iter().filter(|&&s| s == index).count();
                // The seriesQuery keeps a rule's series apart from the one a reload moves into
                // its position.
                self.rule_metrics
                    .with_label_values(&[
                        format!("{list}[{}]", rule.position).as_str(),
                        &rule.series_query,
                    ])
                    .set(served as i64);
            }
        }
        if failures == 0 {
            self.last_relist.set(now);
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global logger. `verbosity` follows klog's `-v`: 0–4 info, 5–7 debug, 8+ trace;
/// `RUST_LOG` overrides it.
pub fn init_logging(verbosity: u8, format: LogFormat) {
    let level = match verbosity {
        0..=4 => "info",
        5..=7 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("warn,prom_adapter={level}"))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // tracing-subscriber reports a failed write with eprintln!, which panics when stderr is a
        // closed pipe; a panic in the signal task would leave SIGTERM unanswered.
        .log_internal_errors(false)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
