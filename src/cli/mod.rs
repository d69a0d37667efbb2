//! Command-line interface: `serve` (also the default, with prometheus-adapter's flag names), `check`, `explain` and `simulate`, and prometheus-adapter's legacy arguments.

pub mod prometheus;
pub mod settings;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use prometheus::PrometheusArgs;

/// prom-adapter: Kubernetes metrics APIs backed by Prometheus.
#[derive(Debug, Parser)]
#[command(name = "prom-adapter", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; without one, serve.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `serve`, accepted without the subcommand as prometheus-adapter takes them.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the metrics APIs.
    Serve(Box<ServeArgs>),
    /// Validate a rules file offline; exit 1 with every error.
    Check {
        /// The rules file.
        #[arg(long)]
        config: PathBuf,
        /// Exit 1 on warnings too (for CI).
        #[arg(long)]
        strict: bool,
    },
    /// Show what a rules file discovers from series (a file, or a live Prometheus), the PromQL a
    /// request runs and what it returns, and with --why the step that loses a metric.
    Explain(Box<ExplainArgs>),
    /// Replay an autoscaling/v2 HPA over Prometheus history with the HPA controller's algorithm.
    Simulate(Box<SimulateArgs>),
}

/// `simulate` arguments.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The rules file (how each HPA metric becomes PromQL, as `serve` does it).
    #[arg(long)]
    pub config: PathBuf,
    /// Prometheus base URL.
    #[arg(long)]
    pub prometheus_url: String,
    /// How to reach Prometheus.
    #[command(flatten)]
    pub client: PrometheusArgs,
    /// The HorizontalPodAutoscaler manifest (autoscaling/v2, YAML).
    #[arg(long)]
    pub hpa: PathBuf,
    /// First sync: RFC 3339, Unix seconds, or now-1h.
    #[arg(long)]
    pub start: String,
    /// Last sync: RFC 3339, Unix seconds, or now.
    #[arg(long, default_value = "now")]
    pub end: String,
    /// Time between syncs (kube-controller-manager's --horizontal-pod-autoscaler-sync-period).
    #[arg(long, default_value = "15s")]
    pub step: String,
    /// Replicas before the first sync [default: minReplicas].
    #[arg(long)]
    pub initial_replicas: Option<i32>,
    /// How Pods and Resource metrics follow the simulated replicas: `observed` (each pod's own
    /// series) or `conserving` (the observed total spread over the simulated pods).
    #[arg(long, default_value = "observed", value_parser = ["observed", "conserving"])]
    pub pod_model: String,
    /// Regular expression for the target's pod names [default: the target's name, a dash, anything].
    #[arg(long)]
    pub pods: Option<String>,
    /// A pod's request for Resource Utilization metrics (repeatable): cpu=250m, memory=256Mi.
    #[arg(long)]
    pub pod_request: Vec<String>,
    /// Direction changes closer together than this count as oscillations.
    #[arg(long, default_value = "10m")]
    pub oscillation_window: String,
    /// `table`, `json` or `svg`.
    #[arg(long, default_value = "table", value_parser = ["table", "json", "svg"])]
    pub output: String,
    /// Explain in words why the replica count is what it is at this time.
    #[arg(long)]
    pub explain_at: Option<String>,
}

/// `explain` arguments.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The rules file.
    #[arg(long)]
    pub config: PathBuf,
    /// Series from a file: a Prometheus `/api/v1/series` JSON answer, or one series per line
    /// (`name{label="v"}`).
    #[arg(
        long,
        required_unless_present = "prometheus_url",
        conflicts_with = "prometheus_url"
    )]
    pub series: Option<PathBuf>,
    /// List the series from this Prometheus instead, and run the queries.
    #[arg(long)]
    pub prometheus_url: Option<String>,
    /// How to reach Prometheus.
    #[command(flatten)]
    pub client: PrometheusArgs,
    /// How far back series are listed, as serve's --metrics-max-age (serve's default is its
    /// relist interval, 10m).
    #[arg(long, default_value = "10m")]
    pub metrics_max_age: String,
    /// Walk the request path through the pipeline and name the step that loses its metric, with
    /// the fix (needs --prometheus-url).
    #[arg(long, requires_all = ["prometheus_url", "request_path"])]
    pub why: bool,
    /// `text` or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
    /// A request path, e.g. `/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/*/metric`.
    pub request_path: Option<String>,
    /// Object names a `*` request's selector would resolve to (with --series; a live Prometheus
    /// gives the names it has).
    #[arg(long, value_delimiter = ',')]
    pub objects: Vec<String>,
}

/// `serve`'s settings, declared once: as flags, and (snake_case) as settings-file keys and
/// `PROM_ADAPTER_*` variables. Unset flags fall through to the environment, the settings file,
/// and the defaults the `serve` command applies where it reads each one.
#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ServeArgs {
    /// Settings file (YAML, snake_case keys as the flags).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub settings: Option<PathBuf>,
    /// Rules file (prometheus-adapter format).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// Prometheus base URL [default: https://localhost].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus_url: Option<String>,
    /// How to reach Prometheus (layered and read on its own: see `settings::load`).
    #[command(flatten)]
    #[serde(skip)]
    pub prometheus: PrometheusArgs,
    /// Where the pod's service-account token and CA are mounted, for
    /// --prometheus-auth-incluster (settings file or environment only).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_dir: Option<PathBuf>,
    /// How often series are relisted [default: 10m].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_relist_interval: Option<String>,
    /// How far back series are listed; 0 = the relist interval [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_max_age: Option<String>,
    /// HTTPS port [default: 6443].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure_port: Option<u16>,
    /// Address to bind [default: 0.0.0.0; 127.0.0.1 with --standalone].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_address: Option<String>,
    /// Serving certificate (PEM).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// Serving key (PEM).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Where a self-signed certificate is kept when none is given.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_dir: Option<PathBuf>,
    /// Extra subject alternative name for the self-signed certificate (repeatable).
    #[arg(long)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_san: Vec<String>,
    /// How often the certificate files are checked for changes [default: 10s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_reload_interval: Option<String>,
    /// Lowest TLS version served: VersionTLS12 (default) or VersionTLS13.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_min_version: Option<String>,
    /// TLS 1.2 cipher suites, Go names, comma-separated (TLS 1.3 suites are always on).
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_cipher_suites: Vec<String>,
    /// Kubeconfig for the adapter's Kubernetes client [default: KUBECONFIG, ~/.kube/config, or the pod's service account].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lister_kubeconfig: Option<PathBuf>,
    /// Requests per second to the Kubernetes API, sustained [default: 20].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_qps: Option<f32>,
    /// Requests to the Kubernetes API allowed in a burst [default: 40].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_burst: Option<u32>,
    /// How often the cluster's resources are re-discovered [default: 10m].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_interval: Option<String>,
    /// Kubeconfig for TokenReview [default: the lister's].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// Kubeconfig for SubjectAccessReview [default: the lister's].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// Paths served without authentication or authorization; `*` at the end matches a prefix
    /// [default: /healthz,/readyz,/livez].
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_always_allow_paths: Option<Vec<String>>,
    /// Do not read client CAs and request-header settings from the authentication ConfigMap.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub authentication_skip_lookup: bool,
    /// Start even if the authentication ConfigMap cannot be read (it is retried).
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub authentication_tolerate_lookup_failure: bool,
    /// How often client CAs are re-read from their files or the ConfigMap [default: 1m].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_config_refresh_interval: Option<String>,
    /// CA of user client certificates (user = CN, groups = O).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// CA of the front-proxy client certificate kube-apiserver presents.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Common names the front-proxy certificate may have [default: any the CA signed].
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requestheader_allowed_names: Vec<String>,
    /// Headers holding the user name [default: X-Remote-User].
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requestheader_username_headers: Option<Vec<String>>,
    /// Headers holding groups [default: X-Remote-Group].
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requestheader_group_headers: Option<Vec<String>>,
    /// Prefixes of headers holding extra attributes [default: X-Remote-Extra-].
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requestheader_extra_headers_prefix: Option<Vec<String>>,
    /// How long TokenReview answers are kept [default: 10s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_token_webhook_cache_ttl: Option<String>,
    /// How long allowed SubjectAccessReview answers are kept [default: 10s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_webhook_cache_authorized_ttl: Option<String>,
    /// How long denied SubjectAccessReview answers are kept [default: 10s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_webhook_cache_unauthorized_ttl: Option<String>,
    /// How long a TokenReview may take, waiting for the cluster included [default: 10s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_timeout: Option<String>,
    /// How long a SubjectAccessReview may take, waiting for the cluster included [default: 10s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_timeout: Option<String>,
    /// TokenReviews and SubjectAccessReviews running at once; more wait, within their deadline [default: 256].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_reviews_in_flight: Option<u32>,
    /// Reviews one client may have running at once (TokenReviews per address, SubjectAccessReviews per user); more wait, and past four times as many get 429 [default: 32].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_reviews_per_client: Option<u32>,
    /// How long a client may take to complete the TLS handshake [default: 10s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_handshake_timeout: Option<String>,
    /// TLS handshakes in progress at once, over all workers [default: 8192].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_tls_handshakes: Option<u32>,
    /// Run without a cluster: built-in resource table, loopback only.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub standalone: bool,
    /// Log verbosity as klog's: 0-4 info, 5-7 debug, 8+ trace.
    #[arg(short = 'v', long = "v")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v: Option<u8>,
    /// Log format: text or json.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    /// On SIGTERM, how long /readyz fails before connections stop being accepted [default: 2s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_delay: Option<String>,
    /// On SIGTERM, how long in-flight requests may take to finish [default: 10s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout: Option<String>,
}

/// prometheus-adapter flags that we accept but that change nothing here, and why.
const IGNORED_FLAGS: &[(&str, bool, &str)] = &[
    ("disable-http2", false, "prom-adapter serves HTTP/1.1 only"),
    ("profiling", false, "there are no profiling endpoints"),
    (
        "contention-profiling",
        false,
        "there are no profiling endpoints",
    ),
    (
        "enable-priority-and-fairness",
        false,
        "prom-adapter has no request queueing",
    ),
    ("vmodule", true, "use RUST_LOG for per-module levels"),
    ("log-flush-frequency", true, "logs are written unbuffered"),
    (
        "http2-max-streams-per-connection",
        true,
        "prom-adapter serves HTTP/1.1 only",
    ),
    (
        "permit-port-sharing",
        false,
        "not supported; the flag is ignored",
    ),
    (
        "permit-address-sharing",
        false,
        "not supported; the flag is ignored",
    ),
    // klog's flags, which older prometheus-adapter manifests pass: logs always go to stderr.
    ("logtostderr", false, KLOG),
    ("alsologtostderr", false, KLOG),
    ("stderrthreshold", true, KLOG),
    ("log-dir", true, KLOG),
    ("log-file", true, KLOG),
    ("log-file-max-size", true, KLOG),
    ("log-backtrace-at", true, KLOG),
    ("skip-headers", false, KLOG),
    ("skip-log-headers", false, KLOG),
    ("add-dir-header", false, KLOG),
    ("one-output", false, KLOG),
];

/// Why klog's flags are ignored.
const KLOG: &str = "a klog flag; prom-adapter always logs to stderr (-v sets the level, --log-format text or json)";

/// The subcommands, which a first argument may name.
const SUBCOMMANDS: &[&str] = &["serve", "check", "explain", "simulate", "help"];

/// prometheus-adapter flags that would change behaviour and are not implemented yet.
const UNSUPPORTED_FLAGS: &[&str] = &["tls-sni-cert-key", "debug-socket-path"];

/// Removes prometheus-adapter flags that we ignore (returning a warning for each) and refuses
/// those that are not implemented yet, so that no flag is ever silently dropped.
pub fn screen_legacy_flags(args: Vec<String>) -> Result<(Vec<String>, Vec<String>), String> {
    let mut kept = Vec::with_capacity(args.len());
    let mut warnings = Vec::new();
    let mut iter = args.into_iter().peekable();
    // The program name.
    kept.extend(iter.next());
    // prometheus-adapter's image and chart pass the binary's path (`/adapter`) as the first
    // argument, which pflag ignores.
    if let Some(first) = iter.peek()
        && !first.starts_with('-')
        && !SUBCOMMANDS.contains(&first.as_str())
        && (first.contains('/') || first.ends_with("adapter"))
    {
        warnings.push(format!(
            "ignoring the argument {first:?}: prometheus-adapter's manifests name its binary first; prom-adapter needs no such argument"
        ));
        iter.next();
    }
    while let Some(arg) = iter.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            kept.push(arg);
            continue;
        };
        let (name, inline_value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        if UNSUPPORTED_FLAGS.contains(&name) || name.starts_with("audit-") {
            return Err(format!(
                "flag --{name} (from prometheus-adapter) is not supported by this version of prom-adapter; remove it to start"
            ));
        }
        if let Some((_, takes_value, why)) = IGNORED_FLAGS.iter().find(|(n, ..)| *n == name) {
            if *takes_value && inline_value.is_none() {
                iter.next();
            }
            warnings.push(format!("ignoring flag --{name}: {why}"));
            continue;
        }
        kept.push(arg);
    }
    Ok((kept, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prometheus_adapter_argument_lists_parse_without_a_subcommand() {
        let cli = Cli::try_parse_from(args(&[
            "prom-adapter",
            "--config=/etc/adapter/config.yaml",
            "--prometheus-url=http://prom:9090/",
            "--metrics-relist-interval=1m",
            "--secure-port=6443",
            "--v=4",
            "--cert-dir=/tmp/cert",
        ]))
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.v, Some(4));
        // The flags given, and only those, are the top settings layer.
        let given = config::Config::try_from(&cli.serve).unwrap();
        assert_eq!(given.get_string("metrics_relist_interval").unwrap(), "1m");
        assert_eq!(given.get_int("secure_port").unwrap(), 6443);
        assert!(given.get_string("prometheus_verb").is_err());
        assert!(given.get_bool("standalone").is_err());
        assert!(
            Cli::try_parse_from(args(&["prom-adapter", "-v", "6"]))
                .unwrap()
                .serve
                .v
                == Some(6)
        );
    }

    #[test]
    fn the_binary_path_and_klog_flags_of_old_manifests_are_ignored_with_a_warning() {
        let (kept, warnings) = screen_legacy_flags(args(&[
            "prom-adapter",
            "/adapter",
            "--logtostderr=true",
            "--alsologtostderr",
            "--stderrthreshold",
            "INFO",
            "--log-file=/var/log/adapter.log",
            "--v=4",
        ]))
        .unwrap();
        assert_eq!(kept, args(&["prom-adapter", "--v=4"]));
        assert_eq!(warnings.len(), 5, "{warnings:?}");
        assert!(warnings[0].contains("\"/adapter\""));
        assert!(warnings[1].contains("--logtostderr") && warnings[1].contains("klog"));
        // A subcommand or a flag in first place is kept.
        for first in ["check", "serve", "--config=x"] {
            let (kept, _) = screen_legacy_flags(args(&["prom-adapter", first])).unwrap();
            assert_eq!(kept.len(), 2, "{first}");
        }
    }

    #[test]
    fn ignored_flags_warn_and_unsupported_flags_fail() {
        let (kept, warnings) = screen_legacy_flags(args(&[
            "prom-adapter",
            "--vmodule",
            "x=2",
            "--disable-http2",
            "--config=x",
            "--profiling=false",
        ]))
        .unwrap();
        assert_eq!(kept, args(&["prom-adapter", "--config=x"]));
        assert_eq!(warnings.len(), 3);
        assert!(warnings[0].contains("vmodule"));
        let error =
            screen_legacy_flags(args(&["prom-adapter", "--tls-sni-cert-key=/x"])).unwrap_err();
        assert!(error.contains("--tls-sni-cert-key"));
        assert!(screen_legacy_flags(args(&["prom-adapter", "--audit-log-path=/x"])).is_err());
        // TLS policy flags are real flags now.
        let cli = Cli::try_parse_from(args(&[
            "prom-adapter",
            "--tls-min-version=VersionTLS13",
            "--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        ]))
        .unwrap();
        assert_eq!(cli.serve.tls_cipher_suites.len(), 2);
    }
}
