//! The `--prometheus-*` flags, declared once: serve, explain and simulate take the same ones (serve also layers them under the settings file and environment), and they become a client configuration here, defaults included.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};

use prom_adapter_backend::prometheus;
use prom_adapter_core::model::parse_duration;

/// How to reach Prometheus (the URL is each command's own: serve defaults it, explain without it
/// works offline, simulate requires it). Unset values take the defaults of `client_config`.
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
#[serde(default)]
pub struct PrometheusArgs {
    /// Extra `key=value` header for Prometheus (repeatable), e.g. X-Scope-OrgID=tenant.
    #[arg(long)]
    pub prometheus_header: Vec<String>,
    /// File with a bearer token for Prometheus; re-read when it changes.
    #[arg(long)]
    pub prometheus_token_file: Option<PathBuf>,
    /// CA bundle to verify Prometheus.
    #[arg(long)]
    pub prometheus_ca_file: Option<PathBuf>,
    /// Client certificate for Prometheus.
    #[arg(long)]
    pub prometheus_client_tls_cert_file: Option<PathBuf>,
    /// Client key for Prometheus.
    #[arg(long)]
    pub prometheus_client_tls_key_file: Option<PathBuf>,
    /// Kubeconfig whose current context's credentials (token, token file or client certificate)
    /// and CA reach Prometheus, e.g. through kube-rbac-proxy; the URL stays --prometheus-url's.
    #[arg(long, conflicts_with = "prometheus_auth_incluster")]
    pub prometheus_auth_config: Option<PathBuf>,
    /// Reach Prometheus with the pod's service-account token (re-read) and CA.
    #[arg(long)]
    pub prometheus_auth_incluster: bool,
    /// GET or POST [default: GET; long queries always use POST].
    #[arg(long)]
    pub prometheus_verb: Option<String>,
    /// Timeout of each Prometheus call [default: 30s].
    #[arg(long)]
    pub prometheus_timeout: Option<String>,
    /// Largest Prometheus answer read, e.g. 64Mi; larger ones fail with an error naming the size [default: 64Mi].
    #[arg(long)]
    pub prometheus_max_response_bytes: Option<String>,
}

impl PrometheusArgs {
    /// The client configuration for `url`; `service_account_dir` is where
    /// `--prometheus-auth-incluster` finds the pod's token and CA.
    pub fn client_config(
        &self,
        url: &str,
        service_account_dir: &Path,
    ) -> anyhow::Result<prometheus::ClientConfig> {
        let max_response_bytes = self
            .prometheus_max_response_bytes
            .as_deref()
            .unwrap_or("64Mi");
        let max_response_bytes =
            match prom_adapter_core::model::parse_quantity_milli(max_response_bytes) {
                Ok(milli) if milli >= 1000 => (milli / 1000) as u64,
                Ok(_) => bail!("--prometheus-max-response-bytes must be at least 1 byte"),
                Err(e) => bail!("--prometheus-max-response-bytes: {e}"),
            };
        let timeout = parse_duration(self.prometheus_timeout.as_deref().unwrap_or("30s"))
            .context("--prometheus-timeout")?;
        if timeout.is_zero() {
            bail!("--prometheus-timeout must be greater than zero");
        }
        let verb = match self
            .prometheus_verb
            .as_deref()
            .unwrap_or("GET")
            .to_ascii_uppercase()
            .as_str()
        {
            "GET" => prometheus::Verb::Get,
            "POST" => prometheus::Verb::Post,
            other => bail!(
                "unsupported Prometheus HTTP verb {other:?}; supported verbs: \"GET\" and \"POST\""
            ),
        };
        let headers = self
            .prometheus_header
            .iter()
            .map(|h| match h.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (h.clone(), String::new()),
            })
            .collect();
        let client_cert = match (
            &self.prometheus_client_tls_cert_file,
            &self.prometheus_client_tls_key_file,
        ) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => bail!(
                "--prometheus-client-tls-cert-file and --prometheus-client-tls-key-file must be given together"
            ),
        };
        Ok(prometheus::ClientConfig {
            url: url.to_owned(),
            timeout,
            headers,
            token_file: self.prometheus_token_file.clone(),
            ca_file: self.prometheus_ca_file.clone(),
            client_cert,
            verb,
            max_response_bytes,
            transport: match (&self.prometheus_auth_config, self.prometheus_auth_incluster) {
                (Some(path), _) => Some(prometheus::transport::from_kubeconfig(path)?),
                (None, true) => Some(prometheus::transport::in_cluster(service_account_dir)?),
                (None, false) => None,
            },
        })
    }
}
