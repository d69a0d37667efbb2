//! The serving certificate, TLS versions and suites, and handshake limits: the flags, their defaults and checks, and what they resolve to.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{Problems, at_least_one, positive};
use prom_adapter_serve::server;

/// The serving certificate, TLS versions and suites, and handshake limits.
#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "TLS")]
#[serde(default)]
pub struct TlsArgs {
    /// Serving certificate (PEM).
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// Serving key (PEM).
    #[arg(long)]
    pub tls_private_key_file: Option<PathBuf>,
    /// Where a self-signed certificate is kept when none is given.
    #[arg(long)]
    pub cert_dir: Option<PathBuf>,
    /// Extra subject alternative name for the self-signed certificate (repeatable).
    #[arg(long)]
    pub tls_san: Vec<String>,
    /// How often the certificate files are checked for changes [default: 10s].
    #[arg(long)]
    pub tls_reload_interval: Option<String>,
    /// Lowest TLS version served: VersionTLS12 (default) or VersionTLS13.
    #[arg(long)]
    pub tls_min_version: Option<String>,
    /// TLS 1.2 cipher suites, Go names, comma-separated (TLS 1.3 suites are always on).
    #[arg(long, value_delimiter = ',')]
    pub tls_cipher_suites: Vec<String>,
    /// How long a client may take to complete the TLS handshake [default: 10s].
    #[arg(long)]
    pub tls_handshake_timeout: Option<String>,
    /// TLS handshakes in progress at once, over all workers [default: 8192].
    #[arg(long)]
    pub max_concurrent_tls_handshakes: Option<u32>,
}

/// The TLS settings, typed.
pub(super) struct Tls {
    /// `None` when the versions or suites were refused (a problem is noted).
    pub source: Option<server::TlsSource>,
    /// About the suites given (e.g. TLS 1.3 suites, which are always on).
    pub warnings: Vec<String>,
    pub handshakes: server::HandshakeLimits,
    pub reload_interval: Duration,
}

impl TlsArgs {
    /// With `client_cas`, the CAs the authentication flags name.
    pub(super) fn resolve(&self, p: &mut Problems, client_cas: server::ClientCas) -> Tls {
        let policy = p.maybe(
            server::TlsPolicy::from_flags(self.tls_min_version.as_deref(), &self.tls_cipher_suites)
                .map_err(anyhow::Error::from),
        );
        let (source, warnings) = match policy {
            Some((policy, warnings)) => (
                Some(server::TlsSource {
                    client_cas,
                    policy,
                    cert_file: self.tls_cert_file.clone(),
                    key_file: self.tls_private_key_file.clone(),
                    cert_dir: self
                        .cert_dir
                        .clone()
                        .unwrap_or_else(|| "apiserver.local.config/certificates".into()),
                    extra_sans: self.tls_san.clone(),
                }),
                warnings,
            ),
            None => (None, Vec::new()),
        };
        Tls {
            source,
            warnings,
            handshakes: server::HandshakeLimits {
                timeout: p.take(positive(
                    &self.tls_handshake_timeout,
                    "10s",
                    "--tls-handshake-timeout",
                )),
                max_concurrent: p.take(at_least_one(
                    self.max_concurrent_tls_handshakes,
                    8192,
                    "--max-concurrent-tls-handshakes",
                )),
            },
            reload_interval: p.take(positive(
                &self.tls_reload_interval,
                "10s",
                "--tls-reload-interval",
            )),
        }
    }
}
