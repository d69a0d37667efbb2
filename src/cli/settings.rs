//! The adapter's own settings, layered: defaults < settings file < `PROM_ADAPTER_*` environment < flags.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Every setting of `serve`, after layering. Names are snake_case because the environment source
/// lowercases keys (`PROM_ADAPTER_PROMETHEUS_URL` → `prometheus_url`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Rules file.
    pub config: Option<PathBuf>,
    /// Prometheus base URL.
    pub prometheus_url: String,
    /// The other `--prometheus-*` settings.
    #[serde(flatten)]
    pub prometheus: crate::cli::PrometheusArgs,
    /// Where the pod's service-account token and CA are mounted (settings file or environment only).
    pub service_account_dir: PathBuf,
    /// Discovery interval (Go duration).
    pub metrics_relist_interval: String,
    /// Discovery look-back; `0` means the relist interval.
    pub metrics_max_age: String,
    /// HTTPS port.
    pub secure_port: u16,
    /// Address to bind; default 0.0.0.0, or 127.0.0.1 with `standalone`.
    pub bind_address: Option<String>,
    /// Serving certificate.
    pub tls_cert_file: Option<PathBuf>,
    /// Serving key.
    pub tls_private_key_file: Option<PathBuf>,
    /// Where a self-signed certificate is written when none is given.
    pub cert_dir: PathBuf,
    /// Extra SANs for the self-signed certificate.
    pub tls_san: Vec<String>,
    /// How often the serving certificate files are checked for changes.
    pub tls_reload_interval: String,
    /// Lowest TLS version (`VersionTLS12`, `VersionTLS13`).
    pub tls_min_version: Option<String>,
    /// TLS 1.2 cipher suites (Go names).
    pub tls_cipher_suites: Vec<String>,
    /// Kubeconfig for the adapter's own Kubernetes client.
    pub lister_kubeconfig: Option<PathBuf>,
    /// How often the cluster's resources are re-discovered.
    pub discovery_interval: String,
    /// Sustained requests per second to the Kubernetes API.
    pub client_qps: f32,
    /// Burst of requests to the Kubernetes API.
    pub client_burst: u32,
    /// Skip the authentication ConfigMap.
    pub authentication_skip_lookup: bool,
    /// Start even if the authentication ConfigMap cannot be read.
    pub authentication_tolerate_lookup_failure: bool,
    /// How often client CAs are re-read.
    pub authentication_config_refresh_interval: String,
    /// CA of user client certificates.
    pub client_ca_file: Option<PathBuf>,
    /// CA of the front-proxy client certificate.
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Allowed front-proxy common names.
    pub requestheader_allowed_names: Vec<String>,
    /// User name headers.
    pub requestheader_username_headers: Vec<String>,
    /// Group headers.
    pub requestheader_group_headers: Vec<String>,
    /// Extra header prefixes.
    pub requestheader_extra_headers_prefix: Vec<String>,
    /// Kubeconfig for TokenReview.
    pub authentication_kubeconfig: Option<PathBuf>,
    /// Kubeconfig for SubjectAccessReview.
    pub authorization_kubeconfig: Option<PathBuf>,
    /// Paths that skip authentication and authorization.
    pub authorization_always_allow_paths: Vec<String>,
    /// Deadline of a TokenReview.
    pub authentication_timeout: String,
    /// Deadline of a SubjectAccessReview.
    pub authorization_timeout: String,
    /// Reviews running at once.
    pub max_reviews_in_flight: u32,
    /// Reviews one client address may have running.
    pub max_reviews_per_client: u32,
    /// Deadline of a TLS handshake.
    pub tls_handshake_timeout: String,
    /// TLS handshakes in progress at once.
    pub max_concurrent_tls_handshakes: u32,
    /// TTL of TokenReview answers.
    pub authentication_token_webhook_cache_ttl: String,
    /// TTL of allowed SubjectAccessReview answers.
    pub authorization_webhook_cache_authorized_ttl: String,
    /// TTL of denied SubjectAccessReview answers.
    pub authorization_webhook_cache_unauthorized_ttl: String,
    /// Run without a cluster: built-in resource table, loopback only.
    pub standalone: bool,
    /// klog-style verbosity.
    pub v: u8,
    /// `text` or `json`.
    pub log_format: String,
    /// On SIGTERM, how long readiness fails before connections stop being accepted.
    pub shutdown_delay: String,
    /// On SIGTERM, how long in-flight requests may take to finish.
    pub shutdown_timeout: String,
}

/// Why settings could not be assembled.
#[derive(Debug, thiserror::Error)]
#[error("invalid settings: {0}")]
pub struct Error(String);

impl Default for Settings {
    fn default() -> Self {
        let strings = |values: &[&str]| values.iter().map(|v| v.to_string()).collect();
        Self {
            config: None,
            prometheus_url: "https://localhost".into(),
            prometheus: crate::cli::PrometheusArgs::default(),
            service_account_dir: crate::prometheus::transport::SERVICE_ACCOUNT_DIR.into(),
            metrics_relist_interval: "10m".into(),
            metrics_max_age: "0".into(),
            secure_port: 6443,
            bind_address: None,
            tls_cert_file: None,
            tls_private_key_file: None,
            cert_dir: "apiserver.local.config/certificates".into(),
            tls_san: Vec::new(),
            tls_reload_interval: "10s".into(),
            tls_min_version: None,
            tls_cipher_suites: Vec::new(),
            lister_kubeconfig: None,
            discovery_interval: "10m".into(),
            client_qps: 20.0,
            client_burst: 40,
            authentication_skip_lookup: false,
            authentication_tolerate_lookup_failure: false,
            authentication_config_refresh_interval: "1m".into(),
            client_ca_file: None,
            requestheader_client_ca_file: None,
            requestheader_allowed_names: Vec::new(),
            requestheader_username_headers: strings(&["X-Remote-User"]),
            requestheader_group_headers: strings(&["X-Remote-Group"]),
            requestheader_extra_headers_prefix: strings(&["X-Remote-Extra-"]),
            authentication_kubeconfig: None,
            authorization_kubeconfig: None,
            authorization_always_allow_paths: strings(&["/healthz", "/readyz", "/livez"]),
            authentication_timeout: "10s".into(),
            authorization_timeout: "10s".into(),
            max_reviews_in_flight: 256,
            max_reviews_per_client: 32,
            tls_handshake_timeout: "10s".into(),
            max_concurrent_tls_handshakes: 8192,
            authentication_token_webhook_cache_ttl: "10s".into(),
            authorization_webhook_cache_authorized_ttl: "10s".into(),
            authorization_webhook_cache_unauthorized_ttl: "10s".into(),
            standalone: false,
            v: 0,
            log_format: "text".into(),
            shutdown_delay: "2s".into(),
            shutdown_timeout: "10s".into(),
        }
    }
}

/// Layers the defaults, the optional settings file, `PROM_ADAPTER_*` variables and the flags
/// that were given (`flags` serializes only those).
pub fn load(
    settings_file: Option<&Path>,
    env: &[(String, String)],
    flags: &impl serde::Serialize,
) -> Result<Settings, Error> {
    use config::{Config, Environment, File, FileFormat};
    let err = |e: config::ConfigError| Error(e.to_string());
    // What no layer sets takes `Settings::default()` (`#[serde(default)]`).
    let mut builder = Config::builder();
    if let Some(file) = settings_file {
        builder = builder.add_source(File::from(file).format(FileFormat::Yaml).required(true));
    }
    let env_map: config::Map<String, String> = env.iter().cloned().collect();
    builder = builder.add_source(
        Environment::with_prefix("PROM_ADAPTER")
            .prefix_separator("_")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("prometheus_header")
            .with_list_parse_key("tls_san")
            .with_list_parse_key("tls_cipher_suites")
            .with_list_parse_key("authorization_always_allow_paths")
            .with_list_parse_key("requestheader_allowed_names")
            .with_list_parse_key("requestheader_username_headers")
            .with_list_parse_key("requestheader_group_headers")
            .with_list_parse_key("requestheader_extra_headers_prefix")
            .source(Some(env_map)),
    );
    builder = builder.add_source(Config::try_from(flags).map_err(err)?);
    builder.build().map_err(err)?.try_deserialize().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_in_order_defaults_file_environment_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("settings.yaml");
        std::fs::write(&file, "prometheus_url: http://from-file:9090\nmetrics_relist_interval: 1m\nsecure_port: 7443\nv: 2\n").unwrap();
        let env = vec![
            (
                "PROM_ADAPTER_METRICS_RELIST_INTERVAL".to_owned(),
                "2m".to_owned(),
            ),
            ("PROM_ADAPTER_SECURE_PORT".to_owned(), "8443".to_owned()),
            (
                "PROM_ADAPTER_PROMETHEUS_HEADER".to_owned(),
                "X-Scope-OrgID=a,X-B=c".to_owned(),
            ),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ];
        let flags = crate::cli::ServeArgs {
            secure_port: Some(9443),
            standalone: true,
            ..Default::default()
        };
        let s = load(Some(&file), &env, &flags).unwrap();
        assert_eq!(
            s.prometheus_url, "http://from-file:9090",
            "file over default"
        );
        assert_eq!(s.metrics_relist_interval, "2m", "environment over file");
        assert_eq!(s.secure_port, 9443, "flag over environment");
        assert_eq!(s.v, 2);
        assert!(s.standalone);
        assert_eq!(
            s.prometheus.prometheus_header,
            vec!["X-Scope-OrgID=a", "X-B=c"]
        );
        assert_eq!(
            s.prometheus.prometheus_verb, None,
            "client_config's default"
        );
        assert_eq!(
            s.requestheader_username_headers,
            ["X-Remote-User"],
            "default list"
        );
        assert!(s.tls_san.is_empty());
        assert_eq!(
            s.cert_dir,
            PathBuf::from("apiserver.local.config/certificates")
        );
    }

    #[test]
    fn bad_values_are_errors() {
        let env = vec![(
            "PROM_ADAPTER_SECURE_PORT".to_owned(),
            "not-a-port".to_owned(),
        )];
        assert!(load(None, &env, &crate::cli::ServeArgs::default()).is_err());
        assert!(
            load(
                Some(Path::new("/nonexistent/settings.yaml")),
                &[],
                &crate::cli::ServeArgs::default()
            )
            .is_err()
        );
        // A misspelt key is an error, not silently the default.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("settings.yaml");
        std::fs::write(&file, "promethues_url: http://x\n").unwrap();
        let error = load(Some(&file), &[], &crate::cli::ServeArgs::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("promethues_url"), "{error}");
        let env = vec![(
            "PROM_ADAPTER_PROMETHEUS_ULR".to_owned(),
            "http://x".to_owned(),
        )];
        assert!(load(None, &env, &crate::cli::ServeArgs::default()).is_err());
    }
}
