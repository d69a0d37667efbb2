//! `serve`'s settings, declared once in argument groups: each is a set of flags (clap) and of snake_case settings-file keys and `PROM_ADAPTER_*` variables (serde), layered by `settings::load`.

use std::path::PathBuf;

use clap::Args;

use super::PrometheusArgs;

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
    /// HTTPS port [default: 6443].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure_port: Option<u16>,
    /// Address to bind [default: 0.0.0.0; 127.0.0.1 with --standalone].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_address: Option<String>,
    /// Run without a cluster: built-in resource table, loopback only.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub standalone: bool,
    /// On SIGTERM, how long /readyz fails before connections stop being accepted [default: 2s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_delay: Option<String>,
    /// On SIGTERM, how long in-flight requests may take to finish [default: 10s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout: Option<String>,
    /// Series discovery and the cluster's resources (layered and read on its own: see `settings::load`).
    #[command(flatten)]
    #[serde(skip)]
    pub discovery: DiscoveryArgs,
    /// The serving certificate, TLS versions and suites, and handshake limits (layered and read on its own: see `settings::load`).
    #[command(flatten)]
    #[serde(skip)]
    pub tls: TlsArgs,
    /// Who is asking: client certificates, the front proxy's headers, TokenReview (layered and read on its own: see `settings::load`).
    #[command(flatten)]
    #[serde(skip)]
    pub authentication: AuthenticationArgs,
    /// What they may read: SubjectAccessReview, and limits on reviews of both kinds (layered and read on its own: see `settings::load`).
    #[command(flatten)]
    #[serde(skip)]
    pub authorization: AuthorizationArgs,
    /// Log level and format (layered and read on its own: see `settings::load`).
    #[command(flatten)]
    #[serde(skip)]
    pub logging: LoggingArgs,
}

/// Series discovery and the cluster's resources.
#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Discovery")]
#[serde(default)]
pub struct DiscoveryArgs {
    /// How often series are relisted [default: 10m].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_relist_interval: Option<String>,
    /// How far back series are listed; 0 = the relist interval [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_max_age: Option<String>,
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
}

/// The serving certificate, TLS versions and suites, and handshake limits.
#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "TLS")]
#[serde(default)]
pub struct TlsArgs {
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
    /// How long a client may take to complete the TLS handshake [default: 10s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_handshake_timeout: Option<String>,
    /// TLS handshakes in progress at once, over all workers [default: 8192].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_tls_handshakes: Option<u32>,
}

/// Who is asking: client certificates, the front proxy's headers, TokenReview.
#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Authentication")]
#[serde(default)]
pub struct AuthenticationArgs {
    /// Kubeconfig for TokenReview [default: the lister's].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_kubeconfig: Option<PathBuf>,
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
    /// How long a TokenReview may take, waiting for the cluster included [default: 10s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_timeout: Option<String>,
}

/// What they may read: SubjectAccessReview, and limits on reviews of both kinds.
#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Authorization")]
#[serde(default)]
pub struct AuthorizationArgs {
    /// Kubeconfig for SubjectAccessReview [default: the lister's].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// Paths served without authentication or authorization; `*` at the end matches a prefix
    /// [default: /healthz,/readyz,/livez].
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_always_allow_paths: Option<Vec<String>>,
    /// How long allowed SubjectAccessReview answers are kept [default: 10s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_webhook_cache_authorized_ttl: Option<String>,
    /// How long denied SubjectAccessReview answers are kept [default: 10s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_webhook_cache_unauthorized_ttl: Option<String>,
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
}

/// Log level and format.
#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Logging")]
#[serde(default)]
pub struct LoggingArgs {
    /// Log verbosity as klog's: 0-4 info, 5-7 debug, 8+ trace.
    #[arg(short = 'v', long = "v")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v: Option<u8>,
    /// Log format: text or json.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
}
