//! `serve`'s settings: declared once in argument groups (each a set of flags, and of snake_case settings-file keys and `PROM_ADAPTER_*` variables, layered by `settings::load`), and resolved into typed config or every problem at once.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use super::PrometheusArgs;
use prom_adapter_backend::prometheus;
use prom_adapter_core::model::parse_duration;
use prom_adapter_core::plan::DEFAULT_MAX_QUERY_LENGTH;
use prom_adapter_provider::discovery::DiscoveryConfig;
use prom_adapter_provider::query_cache::QuerySharing;
use prom_adapter_serve::server;
use prom_adapter_serve::{ClusterSettings, ServeConfig};

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
    /// Named backends that rules choose with `backend:` (settings file only: see
    /// `cli::backends`).
    #[arg(skip)]
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub backends: std::collections::BTreeMap<String, super::backends::BackendSettings>,
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
    /// How queries are shared and limited (layered and read on its own: see `settings::load`).
    #[command(flatten)]
    #[serde(skip)]
    pub queries: QueryArgs,
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

/// How Prometheus queries are shared between callers, and limited.
#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Queries")]
#[serde(default)]
pub struct QueryArgs {
    /// How long an instant query's answer is served again; 0 keeps none (identical queries in
    /// flight are still merged). Shorter than the HPA's 15s sync [default: 5s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_cache_ttl: Option<String>,
    /// Instant queries are evaluated at the request time rounded down to this step, so that
    /// replicas and repeated callers share answers; 0 keeps the request time [default: 5s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_time_step: Option<String>,
    /// Prometheus calls running at once [default: 64].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus_max_concurrent_queries: Option<u32>,
    /// Prometheus calls waiting for a slot, each at most --prometheus-timeout; more are answered
    /// 503 at once [default: 1024].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus_max_queued_queries: Option<u32>,
    /// The longest query sent, in bytes: a longer one (many objects by name) is sent as several,
    /// whose answers are merged. The default fits VictoriaMetrics' 16 KiB [default: 16000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_query_length: Option<u32>,
    /// Ask for each requested object by name, even where one query for every object of the
    /// namespace would answer every request for the metric there (see "Sharing queries").
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disable_query_batching: bool,
}

/// The HPA controller's default sync period: cached answers must be younger.
const HPA_SYNC: Duration = Duration::from_secs(15);

/// The problems found while resolving settings: every one is reported, not just the first.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    /// The value, or `T::default()` with the error noted (the result is discarded then).
    fn take<T: Default>(&mut self, result: anyhow::Result<T>) -> T {
        self.maybe(result).unwrap_or_default()
    }

    fn maybe<T>(&mut self, result: anyhow::Result<T>) -> Option<T> {
        result.map_err(|e| self.0.push(format!("{e:#}"))).ok()
    }

    fn note(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }
}

/// A duration setting, more than zero.
fn positive(value: &Option<String>, default: &str, flag: &'static str) -> anyhow::Result<Duration> {
    match parse_duration(value.as_deref().unwrap_or(default)).context(flag)? {
        d if d.is_zero() => bail!("{flag} must be greater than zero"),
        d => Ok(d),
    }
}

/// A duration setting, zero allowed.
fn duration(value: &Option<String>, default: &str, flag: &'static str) -> anyhow::Result<Duration> {
    parse_duration(value.as_deref().unwrap_or(default)).context(flag)
}

/// A count setting, at least one.
fn at_least_one(value: Option<u32>, default: u32, flag: &'static str) -> anyhow::Result<usize> {
    match value.unwrap_or(default) {
        0 => bail!("{flag} must be at least 1"),
        n => Ok(n as usize),
    }
}

/// A list setting, or its default when no layer gave one (an empty list given is kept).
fn list(values: &Option<Vec<String>>, default: &[&str]) -> Vec<String> {
    match values {
        Some(values) => values.clone(),
        None => default.iter().map(|v| v.to_string()).collect(),
    }
}

/// Every setting of `serve`, layered (flags over environment over settings file), checked and
/// typed, with the defaults of those no layer gave; or every problem at once.
pub fn resolve(settings: &ServeArgs) -> anyhow::Result<ServeConfig> {
    let ServeArgs {
        discovery,
        tls,
        authentication: authn,
        authorization: authz,
        ..
    } = settings;
    let mut p = Problems::default();
    if settings.config.is_none() {
        p.note("no rules file specified (use --config FILE)");
    }
    if settings.standalone && discovery.lister_kubeconfig.is_some() {
        p.note("--standalone runs without a cluster; drop --lister-kubeconfig, or drop --standalone to use the cluster");
    }
    // Checked in every mode: a bad value is an error even where nothing uses it yet.
    let auth = prom_adapter_serve::auth::AuthConfig {
        request_header: prom_adapter_serve::auth::RequestHeaderConfig {
            allowed_names: authn.requestheader_allowed_names.clone(),
            username_headers: list(&authn.requestheader_username_headers, &["X-Remote-User"]),
            group_headers: list(&authn.requestheader_group_headers, &["X-Remote-Group"]),
            extra_headers_prefixes: list(
                &authn.requestheader_extra_headers_prefix,
                &["X-Remote-Extra-"],
            ),
        },
        always_allow_paths: list(
            &authz.authorization_always_allow_paths,
            &["/healthz", "/readyz", "/livez"],
        ),
        token_ttl: p.take(duration(
            &settings
                .authentication
                .authentication_token_webhook_cache_ttl,
            "10s",
            "--authentication-token-webhook-cache-ttl",
        )),
        allowed_ttl: p.take(duration(
            &settings
                .authorization
                .authorization_webhook_cache_authorized_ttl,
            "10s",
            "--authorization-webhook-cache-authorized-ttl",
        )),
        denied_ttl: p.take(duration(
            &settings
                .authorization
                .authorization_webhook_cache_unauthorized_ttl,
            "10s",
            "--authorization-webhook-cache-unauthorized-ttl",
        )),
        authentication_timeout: p.take(positive(
            &authn.authentication_timeout,
            "10s",
            "--authentication-timeout",
        )),
        authorization_timeout: p.take(positive(
            &authz.authorization_timeout,
            "10s",
            "--authorization-timeout",
        )),
        max_reviews_in_flight: p.take(at_least_one(
            authz.max_reviews_in_flight,
            256,
            "--max-reviews-in-flight",
        )),
        max_reviews_per_client: p.take(at_least_one(
            authz.max_reviews_per_client,
            32,
            "--max-reviews-per-client",
        )),
    };
    let cluster_settings = ClusterSettings {
        authentication_kubeconfig: authn.authentication_kubeconfig.clone(),
        authorization_kubeconfig: authz.authorization_kubeconfig.clone(),
        auth,
        kubeconfig: discovery.lister_kubeconfig.clone(),
        qps: discovery.client_qps.unwrap_or(20.0),
        burst: discovery.client_burst.unwrap_or(40),
        skip_lookup: authn.authentication_skip_lookup,
        tolerate_lookup_failure: settings
            .authentication
            .authentication_tolerate_lookup_failure,
        auth_refresh_interval: p.take(positive(
            &settings
                .authentication
                .authentication_config_refresh_interval,
            "1m",
            "--authentication-config-refresh-interval",
        )),
        client_cas: server::ClientCas {
            requestheader: authn.requestheader_client_ca_file.clone(),
            client: authn.client_ca_file.clone(),
        },
        discovery_interval: p.take(positive(
            &discovery.discovery_interval,
            "10m",
            "--discovery-interval",
        )),
    };
    // With a cluster every request is authenticated and authorized; --standalone authenticates
    // nothing, so it stays on loopback.
    let default_bind = if settings.standalone {
        "127.0.0.1"
    } else {
        "0.0.0.0"
    };
    let bind = settings.bind_address.as_deref().unwrap_or(default_bind);
    let ip: Option<IpAddr> = p.maybe(
        bind.parse()
            .with_context(|| format!("--bind-address {bind:?} is not an IP address")),
    );
    if let Some(ip) = ip
        && settings.standalone
        && !ip.is_loopback()
    {
        p.note(format!("--standalone serves without authentication and only binds to loopback addresses; {ip} is not one"));
    }
    let relist_interval = p.take(positive(
        &discovery.metrics_relist_interval,
        "10m",
        "--metrics-relist-interval",
    ));
    let max_age = match p.take(duration(
        &discovery.metrics_max_age,
        "0",
        "--metrics-max-age",
    )) {
        d if d.is_zero() => relist_interval,
        d if d < relist_interval => {
            p.note(format!("--metrics-max-age ({d:?}) must not be less than --metrics-relist-interval ({relist_interval:?})"));
            d
        }
        d => d,
    };
    let prometheus = p.maybe(
        settings.prometheus.client_config(
            settings
                .prometheus_url
                .as_deref()
                .unwrap_or("https://localhost"),
            settings
                .service_account_dir
                .as_deref()
                .unwrap_or(Path::new(prometheus::transport::SERVICE_ACCOUNT_DIR)),
        ),
    );
    let shutdown = server::Shutdown {
        delay: p.take(duration(&settings.shutdown_delay, "2s", "--shutdown-delay")),
        drain: p.take(duration(
            &settings.shutdown_timeout,
            "10s",
            "--shutdown-timeout",
        )),
    };
    let policy = p.maybe(
        server::TlsPolicy::from_flags(tls.tls_min_version.as_deref(), &tls.tls_cipher_suites)
            .map_err(anyhow::Error::from),
    );
    let handshakes = server::HandshakeLimits {
        timeout: p.take(positive(
            &tls.tls_handshake_timeout,
            "10s",
            "--tls-handshake-timeout",
        )),
        max_concurrent: p.take(at_least_one(
            tls.max_concurrent_tls_handshakes,
            8192,
            "--max-concurrent-tls-handshakes",
        )),
    };
    let tls_reload_interval = p.take(positive(
        &tls.tls_reload_interval,
        "10s",
        "--tls-reload-interval",
    ));
    let queries = &settings.queries;
    let ttl = p.take(duration(
        &queries.query_cache_ttl,
        "5s",
        "--query-cache-ttl",
    ));
    if ttl >= HPA_SYNC {
        p.note(format!("--query-cache-ttl ({ttl:?}) must be shorter than the HPA controller's 15s sync, or HPAs would read the same value twice"));
    }
    let time_step = p.take(duration(
        &queries.query_time_step,
        "5s",
        "--query-time-step",
    ));
    if time_step >= HPA_SYNC {
        p.note(format!(
            "--query-time-step ({time_step:?}) must be shorter than the HPA controller's 15s sync"
        ));
    }
    let max_concurrent = p.take(at_least_one(
        queries.prometheus_max_concurrent_queries,
        64,
        "--prometheus-max-concurrent-queries",
    ));
    let max_queued = queries.prometheus_max_queued_queries.unwrap_or(1024) as usize;
    let max_query_length = queries
        .max_query_length
        .map_or(DEFAULT_MAX_QUERY_LENGTH, |n| n as usize);
    if max_query_length < 1024 {
        p.note(format!("--max-query-length ({max_query_length}) must be at least 1024 bytes, room for one object's query"));
    }
    let sharing = QuerySharing {
        ttl,
        time_step,
        max_concurrent,
        max_queued,
        queue_timeout: prometheus.as_ref().map_or(HPA_SYNC, |p| p.timeout),
    };
    let backends = super::backends::resolve(
        &settings.backends,
        &sharing,
        settings
            .service_account_dir
            .as_deref()
            .unwrap_or(Path::new(prometheus::transport::SERVICE_ACCOUNT_DIR)),
    )
    .unwrap_or_else(|problems| {
        p.0.extend(problems);
        Vec::new()
    });
    let (Some(rules_path), Some(ip), Some(prometheus), Some((policy, tls_warnings)), []) = (
        settings.config.clone(),
        ip,
        prometheus,
        policy,
        p.0.as_slice(),
    ) else {
        bail!("{}", p.0.join("\n"));
    };
    for warning in tls_warnings {
        tracing::warn!("{warning}");
    }
    Ok(ServeConfig {
        shaping: prom_adapter_core::plan::QueryShaping {
            batch: !queries.disable_query_batching,
            max_length: max_query_length,
        },
        sharing,
        backends,
        rules_path,
        prometheus,
        discovery: DiscoveryConfig {
            relist_interval,
            max_age,
        },
        addr: SocketAddr::new(ip, settings.secure_port.unwrap_or(6443)),
        shutdown,
        handshakes,
        cluster: (!settings.standalone).then_some(cluster_settings),
        tls_reload_interval,
        tls: server::TlsSource {
            client_cas: server::ClientCas {
                requestheader: authn.requestheader_client_ca_file.clone(),
                client: authn.client_ca_file.clone(),
            },
            policy,
            cert_file: tls.tls_cert_file.clone(),
            key_file: tls.tls_private_key_file.clone(),
            cert_dir: settings
                .tls
                .cert_dir
                .clone()
                .unwrap_or_else(|| "apiserver.local.config/certificates".into()),
            extra_sans: tls.tls_san.clone(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_setting_is_reported_at_once() {
        let settings = ServeArgs {
            discovery: crate::cli::serve::DiscoveryArgs {
                metrics_relist_interval: Some("soon".into()),
                discovery_interval: Some("0s".into()),
                ..Default::default()
            },
            bind_address: Some("not-an-ip".into()),
            authorization: crate::cli::serve::AuthorizationArgs {
                max_reviews_in_flight: Some(0),
                ..Default::default()
            },
            prometheus: crate::cli::PrometheusArgs {
                prometheus_verb: Some("PUT".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let error = resolve(&settings).err().unwrap().to_string();
        for problem in [
            "no rules file specified",
            "--metrics-relist-interval",
            "--discovery-interval must be greater than zero",
            "--bind-address \"not-an-ip\" is not an IP address",
            "--max-reviews-in-flight must be at least 1",
            "unsupported Prometheus HTTP verb \"PUT\"",
        ] {
            assert!(error.contains(problem), "{problem}: {error}");
        }
        assert_eq!(error.lines().count(), 6, "{error}");
    }

    #[test]
    fn defaults_fill_what_no_layer_gave() {
        let settings = ServeArgs {
            config: Some("rules.yaml".into()),
            standalone: true,
            ..Default::default()
        };
        let config = resolve(&settings).unwrap();
        assert_eq!(config.addr, "127.0.0.1:6443".parse().unwrap());
        assert_eq!(config.discovery.relist_interval, Duration::from_secs(600));
        assert_eq!(config.discovery.max_age, Duration::from_secs(600));
        assert_eq!(config.prometheus.url, "https://localhost");
        assert_eq!(config.prometheus.timeout, Duration::from_secs(30));
        assert!(config.cluster.is_none());
        let config = resolve(&ServeArgs {
            standalone: false,
            ..settings
        })
        .unwrap();
        let cluster = config.cluster.unwrap();
        assert_eq!(
            cluster.auth.request_header.username_headers,
            ["X-Remote-User"]
        );
        assert_eq!(cluster.qps, 20.0);
        assert_eq!(config.addr, "0.0.0.0:6443".parse().unwrap());
    }
}
