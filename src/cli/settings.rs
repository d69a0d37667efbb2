//! The adapter's own settings, layered: defaults < settings file < `PROM_ADAPTER_*` environment < flags.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Every setting of `serve`, after layering. Names are snake_case because the environment source
/// lowercases keys (`PROM_ADAPTER_PROMETHEUS_URL` → `prometheus_url`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Rules file.
    pub config: Option<PathBuf>,
    /// Prometheus base URL.
    pub prometheus_url: String,
    /// Extra `key=value` headers for Prometheus.
    pub prometheus_header: Vec<String>,
    /// Bearer token file for Prometheus.
    pub prometheus_token_file: Option<PathBuf>,
    /// CA bundle for Prometheus.
    pub prometheus_ca_file: Option<PathBuf>,
    /// Client certificate for Prometheus.
    pub prometheus_client_tls_cert_file: Option<PathBuf>,
    /// Client key for Prometheus.
    pub prometheus_client_tls_key_file: Option<PathBuf>,
    /// Kubeconfig whose current context's credentials and CA reach Prometheus.
    pub prometheus_auth_config: Option<PathBuf>,
    /// Reach Prometheus with the pod's service-account token and CA.
    pub prometheus_auth_incluster: bool,
    /// Where the pod's service-account token and CA are mounted (settings file or environment only).
    pub service_account_dir: PathBuf,
    /// `GET` or `POST`.
    pub prometheus_verb: String,
    /// Timeout of every Prometheus call (Go duration).
    pub prometheus_timeout: String,
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
    /// Largest Prometheus answer read.
    pub prometheus_max_response_bytes: String,
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

/// A setting value given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum FlagValue {
    /// A scalar.
    One(String),
    /// A repeated flag.
    Many(Vec<String>),
    /// A boolean switch.
    Bool(bool),
}

/// Why settings could not be assembled.
#[derive(Debug, thiserror::Error)]
#[error("invalid settings: {0}")]
pub struct Error(String);

/// Layers defaults, the optional settings file, `PROM_ADAPTER_*` variables and flags (highest).
pub fn load(
    settings_file: Option<&Path>,
    env: &[(String, String)],
    flags: &[(&str, FlagValue)],
) -> Result<Settings, Error> {
    use config::{Config, Environment, File, FileFormat};
    let err = |e: config::ConfigError| Error(e.to_string());
    let mut builder = Config::builder()
        .set_default("prometheus_url", "https://localhost")
        .and_then(|b| b.set_default("prometheus_header", Vec::<String>::new()))
        .and_then(|b| b.set_default("prometheus_verb", "GET"))
        .and_then(|b| b.set_default("prometheus_timeout", "30s"))
        .and_then(|b| b.set_default("metrics_relist_interval", "10m"))
        .and_then(|b| b.set_default("metrics_max_age", "0"))
        .and_then(|b| b.set_default("secure_port", 6443))
        .and_then(|b| b.set_default("cert_dir", "apiserver.local.config/certificates"))
        .and_then(|b| b.set_default("tls_san", Vec::<String>::new()))
        .and_then(|b| b.set_default("tls_cipher_suites", Vec::<String>::new()))
        .and_then(|b| b.set_default("standalone", false))
        .and_then(|b| b.set_default("prometheus_auth_incluster", false))
        .and_then(|b| {
            b.set_default(
                "service_account_dir",
                crate::prometheus::transport::SERVICE_ACCOUNT_DIR,
            )
        })
        .and_then(|b| b.set_default("discovery_interval", "10m"))
        .and_then(|b| b.set_default("client_qps", 20.0))
        .and_then(|b| b.set_default("client_burst", 40))
        .and_then(|b| b.set_default("authentication_skip_lookup", false))
        .and_then(|b| b.set_default("authentication_tolerate_lookup_failure", false))
        .and_then(|b| b.set_default("authentication_config_refresh_interval", "1m"))
        .and_then(|b| b.set_default("requestheader_allowed_names", Vec::<String>::new()))
        .and_then(|b| b.set_default("requestheader_username_headers", vec!["X-Remote-User"]))
        .and_then(|b| b.set_default("requestheader_group_headers", vec!["X-Remote-Group"]))
        .and_then(|b| {
            b.set_default(
                "requestheader_extra_headers_prefix",
                vec!["X-Remote-Extra-"],
            )
        })
        .and_then(|b| {
            b.set_default(
                "authorization_always_allow_paths",
                vec!["/healthz", "/readyz", "/livez"],
            )
        })
        .and_then(|b| b.set_default("authentication_timeout", "10s"))
        .and_then(|b| b.set_default("authorization_timeout", "10s"))
        .and_then(|b| b.set_default("max_reviews_in_flight", 256))
        .and_then(|b| b.set_default("max_reviews_per_client", 32))
        .and_then(|b| b.set_default("prometheus_max_response_bytes", "64Mi"))
        .and_then(|b| b.set_default("tls_handshake_timeout", "10s"))
        .and_then(|b| b.set_default("max_concurrent_tls_handshakes", 8192))
        .and_then(|b| b.set_default("authentication_token_webhook_cache_ttl", "10s"))
        .and_then(|b| b.set_default("authorization_webhook_cache_authorized_ttl", "10s"))
        .and_then(|b| b.set_default("authorization_webhook_cache_unauthorized_ttl", "10s"))
        .and_then(|b| b.set_default("v", 0))
        .and_then(|b| b.set_default("log_format", "text"))
        .and_then(|b| b.set_default("shutdown_delay", "2s"))
        .and_then(|b| b.set_default("tls_reload_interval", "10s"))
        .and_then(|b| b.set_default("shutdown_timeout", "10s"))
        .map_err(err)?;
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
    for (key, value) in flags {
        builder = match value {
            FlagValue::One(v) => builder.set_override(*key, v.as_str()),
            FlagValue::Many(v) => builder.set_override(*key, v.clone()),
            FlagValue::Bool(v) => builder.set_override(*key, *v),
        }
        .map_err(err)?;
    }
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
        let flags = [
            ("secure_port", FlagValue::One("9443".into())),
            ("standalone", FlagValue::Bool(true)),
        ];
        let s = load(Some(&file), &env, &flags).unwrap();
        assert_eq!(
            s.prometheus_url, "http://from-file:9090",
            "file over default"
        );
        assert_eq!(s.metrics_relist_interval, "2m", "environment over file");
        assert_eq!(s.secure_port, 9443, "flag over environment");
        assert_eq!(s.v, 2);
        assert!(s.standalone);
        assert_eq!(s.prometheus_header, vec!["X-Scope-OrgID=a", "X-B=c"]);
        assert_eq!(s.prometheus_verb, "GET", "default");
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
        assert!(load(None, &env, &[]).is_err());
        assert!(load(Some(Path::new("/nonexistent/settings.yaml")), &[], &[]).is_err());
        // A misspelt key is an error, not silently the default.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("settings.yaml");
        std::fs::write(&file, "promethues_url: http://x\n").unwrap();
        let error = load(Some(&file), &[], &[]).unwrap_err().to_string();
        assert!(error.contains("promethues_url"), "{error}");
        let env = vec![(
            "PROM_ADAPTER_PROMETHEUS_ULR".to_owned(),
            "http://x".to_owned(),
        )];
        assert!(load(None, &env, &[]).is_err());
    }
}
