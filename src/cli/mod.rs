//! Command-line interface: `serve` (also the default, with prometheus-adapter's flag names), `check`, `explain` and `simulate`.

pub mod backends;
mod legacy;
pub mod prometheus;
pub mod serve;
pub mod settings;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use legacy::screen_legacy_flags;
pub use prometheus::PrometheusArgs;
pub use serve::ServeArgs;

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
        /// serve's settings file: its `backends:` are checked, and so are the rules' `backend:`
        /// references to them.
        #[arg(long, value_name = "FILE")]
        settings: Option<PathBuf>,
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
    /// serve's settings file: rules with `backend:` read from its `backends:`, as in serve.
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
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
    /// series) or `conserving` (the observed total spread over the simulated pods) [default:
    /// observed; conserving with --recommend].
    #[arg(long, value_parser = ["observed", "conserving"])]
    pub pod_model: Option<String>,
    /// Regular expression for the target's pod names [default: the target's name, a dash, anything].
    #[arg(long)]
    pub pods: Option<String>,
    /// A pod's request for Resource Utilization metrics (repeatable): cpu=250m, memory=256Mi.
    #[arg(long)]
    pub pod_request: Vec<String>,
    /// Direction changes closer together than this count as oscillations.
    #[arg(long, default_value = "10m")]
    pub oscillation_window: String,
    /// `table`, `json` or `svg`; with --recommend also `yaml`, the recommended HPA.
    #[arg(long, default_value = "table", value_parser = ["table", "json", "svg", "yaml"])]
    pub output: String,
    /// Explain in words why the replica count is what it is at this time.
    #[arg(long, conflicts_with = "recommend")]
    pub explain_at: Option<String>,
    /// Search the HPA's own settings (targets, minReplicas, stabilization windows, policies;
    /// maxReplicas is raised when 20% more traffic would reach it) for the fewest
    /// replica-seconds that meet --slo without flapping; every candidate is scored by this
    /// replay.
    #[arg(long)]
    pub recommend: bool,
    /// With --recommend: the first metric's value per replica stays at or below VALUE for at
    /// least PERCENT of the time, written VALUE or VALUE@PERCENT (60@99.5) [default: the
    /// metric's current target, @99].
    #[arg(long, requires = "recommend", value_name = "VALUE[@PERCENT]")]
    pub slo: Option<String>,
    /// With --recommend: at most this many scale events in any hour (a scale event is a change
    /// of replicas the other way from the one before; changes the same way belong to it).
    #[arg(long, default_value_t = 6, requires = "recommend")]
    pub max_scale_events_per_hour: u32,
    /// With --recommend: the lowest minReplicas to propose [default: 2, or the HPA's own if
    /// lower].
    #[arg(long, requires = "recommend")]
    pub min_replicas_floor: Option<i32>,
    /// With --recommend: also search behavior.scaleUp/scaleDown.tolerance (clusters where the
    /// HPAConfigurableTolerance feature is on: by default from Kubernetes 1.35).
    #[arg(long, requires = "recommend")]
    pub tune_tolerance: bool,
    /// With --recommend: how long after --start every candidate runs unscored, so that none is
    /// judged on its cold start.
    #[arg(long, default_value = "10m", requires = "recommend")]
    pub warm_up: String,
    /// With --recommend: say in words what each changed setting does, measured by replaying the
    /// recommendation with that one setting as it is today.
    #[arg(long, requires = "recommend")]
    pub explain: bool,
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
    /// serve's settings file: rules with `backend:` list series and query from its
    /// `backends:`, as in serve (with --prometheus-url).
    #[arg(long, value_name = "FILE", requires = "prometheus_url")]
    pub settings: Option<PathBuf>,
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
        assert_eq!(cli.serve.logging.v, Some(4));
        // The flags given, and only those, are the top settings layer (group by group).
        let [given, _, discovery, ..] = cli.serve.groups_given().map(Result::unwrap);
        assert_eq!(
            discovery.get_string("metrics_relist_interval").unwrap(),
            "1m"
        );
        assert!(discovery.get_string("discovery_interval").is_err());
        assert_eq!(given.get_int("secure_port").unwrap(), 6443);
        assert!(given.get_string("prometheus_verb").is_err());
        assert!(given.get_bool("standalone").is_err());
        assert!(
            Cli::try_parse_from(args(&["prom-adapter", "-v", "6"]))
                .unwrap()
                .serve
                .logging
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
        assert_eq!(cli.serve.tls.tls_cipher_suites.len(), 2);
    }
}
