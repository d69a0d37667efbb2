//! The `--prometheus-*` client flags shared by serve, explain and simulate, turned into a client configuration.

use anyhow::{Context, bail};

use crate::model::parse_duration;
use crate::prometheus;

/// A Prometheus client configuration from `explain`'s and `simulate`'s flags.
pub fn client_config_from_flags(
    url: &str,
    flags: &crate::cli::PrometheusClientArgs,
) -> anyhow::Result<prometheus::ClientConfig> {
    client_config(ClientFlags {
        url,
        timeout: &flags.prometheus_timeout,
        verb: &flags.prometheus_verb,
        headers: &flags.prometheus_header,
        token_file: flags.prometheus_token_file.clone(),
        ca_file: flags.prometheus_ca_file.clone(),
        client_cert: (
            flags.prometheus_client_tls_cert_file.clone(),
            flags.prometheus_client_tls_key_file.clone(),
        ),
        max_response_bytes: &flags.prometheus_max_response_bytes,
        auth_config: flags.prometheus_auth_config.clone(),
        auth_incluster: flags.prometheus_auth_incluster,
        service_account_dir: std::path::Path::new(prometheus::transport::SERVICE_ACCOUNT_DIR),
    })
}

/// The `--prometheus-*` flags, as given.
pub struct ClientFlags<'a> {
    pub url: &'a str,
    pub timeout: &'a str,
    pub verb: &'a str,
    pub headers: &'a [String],
    pub token_file: Option<std::path::PathBuf>,
    pub ca_file: Option<std::path::PathBuf>,
    pub client_cert: (Option<std::path::PathBuf>, Option<std::path::PathBuf>),
    pub max_response_bytes: &'a str,
    pub auth_config: Option<std::path::PathBuf>,
    pub auth_incluster: bool,
    pub service_account_dir: &'a std::path::Path,
}

/// A Prometheus client configuration from the flags `serve`, `explain` and `simulate` share.
pub fn client_config(flags: ClientFlags<'_>) -> anyhow::Result<prometheus::ClientConfig> {
    let ClientFlags {
        url,
        timeout,
        verb,
        headers,
        token_file,
        ca_file,
        client_cert,
        max_response_bytes,
        auth_config,
        auth_incluster,
        service_account_dir,
    } = flags;
    let max_response_bytes = match crate::model::parse_quantity_milli(max_response_bytes) {
        Ok(milli) if milli >= 1000 => (milli / 1000) as u64,
        Ok(_) => bail!("--prometheus-max-response-bytes must be at least 1 byte"),
        Err(e) => bail!("--prometheus-max-response-bytes: {e}"),
    };
    let timeout = parse_duration(timeout).context("--prometheus-timeout")?;
    if timeout.is_zero() {
        bail!("--prometheus-timeout must be greater than zero");
    }
    let verb = match verb.to_ascii_uppercase().as_str() {
        "GET" => prometheus::Verb::Get,
        "POST" => prometheus::Verb::Post,
        other => bail!(
            "unsupported Prometheus HTTP verb {other:?}; supported verbs: \"GET\" and \"POST\""
        ),
    };
    let headers = headers
        .iter()
        .map(|h| match h.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (h.clone(), String::new()),
        })
        .collect();
    let client_cert = match client_cert {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => bail!(
            "--prometheus-client-tls-cert-file and --prometheus-client-tls-key-file must be given together"
        ),
    };
    Ok(prometheus::ClientConfig {
        url: url.to_owned(),
        timeout,
        headers,
        token_file,
        ca_file,
        client_cert,
        verb,
        max_response_bytes,
        transport: match (auth_config, auth_incluster) {
            (Some(path), _) => Some(prometheus::transport::from_kubeconfig(&path)?),
            (None, true) => Some(prometheus::transport::in_cluster(service_account_dir)?),
            (None, false) => None,
        },
    })
}
