//! `serve`'s settings: declared once in argument groups (each a set of flags, and of snake_case settings-file keys and `PROM_ADAPTER_*` variables, layered by `settings::load`), and resolved into typed config or every problem at once.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use super::PrometheusArgs;
use prom_adapter_backend::prometheus;
use prom_adapter_core::model::parse_duration;
use prom_adapter_serve::{ClusterSettings, ServeConfig, server};

mod authentication;
mod authorization;
mod discovery;
mod logging;
mod queries;
mod tls;

pub use authentication::AuthenticationArgs;
pub use authorization::AuthorizationArgs;
pub use discovery::DiscoveryArgs;
pub use logging::LoggingArgs;
pub use queries::QueryArgs;
pub use tls::TlsArgs;

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
    pub config: Option<PathBuf>,
    /// Prometheus base URL [default: https://localhost].
    #[arg(long)]
    pub prometheus_url: Option<String>,
    /// How to reach Prometheus (layered and read on its own: see `settings::load`).
    #[command(flatten)]
    #[serde(skip)]
    pub prometheus: PrometheusArgs,
    /// Named backends that rules choose with `backend:` (settings file only: see
    /// `cli::backends`).
    #[arg(skip)]
    pub backends: std::collections::BTreeMap<String, super::backends::BackendSettings>,
    /// Where the pod's service-account token and CA are mounted, for
    /// --prometheus-auth-incluster (settings file or environment only).
    #[arg(skip)]
    pub service_account_dir: Option<PathBuf>,
    /// HTTPS port [default: 6443].
    #[arg(long)]
    pub secure_port: Option<u16>,
    /// Address to bind [default: 0.0.0.0; 127.0.0.1 with --standalone].
    #[arg(long)]
    pub bind_address: Option<String>,
    /// Run without a cluster: built-in resource table, loopback only.
    #[arg(long)]
    pub standalone: bool,
    /// On SIGTERM, how long /readyz fails before connections stop being accepted [default: 2s].
    #[arg(long)]
    pub shutdown_delay: Option<String>,
    /// On SIGTERM, how long in-flight requests may take to finish [default: 10s].
    #[arg(long)]
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

impl ServeArgs {
    /// The flags given, group by group, for `settings::load` to layer over the environment.
    pub(super) fn groups_given(&self) -> [Result<config::Config, config::ConfigError>; 8] {
        [
            given(self),
            given(&self.prometheus),
            given(&self.discovery),
            given(&self.tls),
            given(&self.authentication),
            given(&self.authorization),
            given(&self.logging),
            given(&self.queries),
        ]
    }

    /// Every group read from the layered settings (each on its own: see `settings::load`).
    pub(super) fn read_groups(
        reads: &mut super::settings::Reads,
    ) -> Result<Self, super::settings::Error> {
        let mut settings: ServeArgs = reads.group()?;
        settings.prometheus = reads.group()?;
        settings.discovery = reads.group()?;
        settings.tls = reads.group()?;
        settings.authentication = reads.group()?;
        settings.authorization = reads.group()?;
        settings.logging = reads.group()?;
        settings.queries = reads.group()?;
        Ok(settings)
    }
}

/// A group's flags as given: what clap left unset (`None`, `false`, an empty list) is left out,
/// so that it does not hide the environment and the settings file.
fn given(group: &impl serde::Serialize) -> Result<config::Config, config::ConfigError> {
    use serde_json::Value;
    let mut value =
        serde_json::to_value(group).map_err(|e| config::ConfigError::Message(e.to_string()))?;
    if let Value::Object(fields) = &mut value {
        fields.retain(|_, value| match value {
            Value::Null | Value::Bool(false) => false,
            Value::Array(items) => !items.is_empty(),
            Value::Object(fields) => !fields.is_empty(),
            _ => true,
        });
    }
    config::Config::try_from(&value)
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
/// typed, with the defaults of those no layer gave; or every problem at once. Each group resolves
/// its own settings; this composes them.
pub fn resolve(settings: &ServeArgs) -> anyhow::Result<ServeConfig> {
    let mut p = Problems::default();
    if settings.config.is_none() {
        p.note("no rules file specified (use --config FILE)");
    }
    if settings.standalone && settings.discovery.lister_kubeconfig.is_some() {
        p.note("--standalone runs without a cluster; drop --lister-kubeconfig, or drop --standalone to use the cluster");
    }
    // Checked in every mode: a bad value is an error even where nothing uses it yet.
    let mut cluster = ClusterSettings::default();
    let discovery = settings.discovery.resolve(&mut p, &mut cluster);
    settings.authentication.resolve(&mut p, &mut cluster);
    settings.authorization.resolve(&mut p, &mut cluster);
    let tls = settings.tls.resolve(&mut p, cluster.client_cas.clone());
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
    let service_account_dir = settings
        .service_account_dir
        .as_deref()
        .unwrap_or(Path::new(prometheus::transport::SERVICE_ACCOUNT_DIR));
    let prometheus = p.maybe(
        settings.prometheus.client_config(
            settings
                .prometheus_url
                .as_deref()
                .unwrap_or("https://localhost"),
            service_account_dir,
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
    let queue_timeout = prometheus.as_ref().map_or(HPA_SYNC, |p| p.timeout);
    let (sharing, shaping) = settings.queries.resolve(&mut p, queue_timeout);
    let backends = super::backends::resolve(&settings.backends, &sharing, service_account_dir)
        .unwrap_or_else(|problems| {
            p.0.extend(problems);
            Vec::new()
        });
    let (Some(rules_path), Some(ip), Some(prometheus), Some(tls_source), []) = (
        settings.config.clone(),
        ip,
        prometheus,
        tls.source,
        p.0.as_slice(),
    ) else {
        bail!("{}", p.0.join("\n"));
    };
    for warning in tls.warnings {
        tracing::warn!("{warning}");
    }
    Ok(ServeConfig {
        rules_path,
        prometheus,
        discovery,
        addr: SocketAddr::new(ip, settings.secure_port.unwrap_or(6443)),
        tls: tls_source,
        shutdown,
        handshakes: tls.handshakes,
        tls_reload_interval: tls.reload_interval,
        sharing,
        shaping,
        backends,
        cluster: (!settings.standalone).then_some(cluster),
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
