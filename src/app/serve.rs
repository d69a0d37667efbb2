//! The `serve` command's composition root: validated settings, the Prometheus and cluster clients, the providers, the background tasks and the HTTPS server.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::api::AppState;
use crate::auth::sources::ClientAuth;
use crate::cli::ServeArgs;
use crate::cli::settings;
use crate::cluster::{Cluster, PodsAndNodes};
use crate::model::parse_duration;
use crate::prometheus;
use crate::provider::custom::CustomMetrics;
use crate::provider::discovery::{Discovery, DiscoveryConfig, Health};
use crate::provider::external::ExternalMetrics;
use crate::provider::resource::ResourceMetrics;
use crate::provider::resource_objects::{PrometheusObjects, ResourceObjects};
use crate::provider::{MetricsBackend, ObjectLister, Snapshot};
use crate::reload::RulesReloader;
use crate::resources::ResourceTable;
use crate::server;
use crate::telemetry::{self, LogFormat, Metrics};

/// Everything `serve` needs, validated.
struct ServeConfig {
    rules_path: std::path::PathBuf,
    prometheus: prometheus::ClientConfig,
    discovery: DiscoveryConfig,
    addr: SocketAddr,
    tls: server::TlsSource,
    shutdown: server::Shutdown,
    handshakes: server::HandshakeLimits,
    tls_reload_interval: std::time::Duration,
    /// `None` with `--standalone`.
    cluster: Option<ClusterSettings>,
}

/// How to reach the cluster, and how to ask it about requests.
struct ClusterSettings {
    kubeconfig: Option<std::path::PathBuf>,
    discovery_interval: Duration,
    qps: f32,
    burst: u32,
    authentication_kubeconfig: Option<std::path::PathBuf>,
    authorization_kubeconfig: Option<std::path::PathBuf>,
    auth: crate::auth::AuthConfig,
    /// Where client CAs come from when not from files.
    skip_lookup: bool,
    tolerate_lookup_failure: bool,
    auth_refresh_interval: Duration,
    client_cas: server::ClientCas,
}

pub fn run(args: ServeArgs, warnings: Vec<String>) -> anyhow::Result<ExitCode> {
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("PROM_ADAPTER_"))
        .collect();
    let settings = settings::load(args.settings.as_deref(), &env, &args)?;
    let format = match settings.logging.log_format.as_deref().unwrap_or("text") {
        "json" => LogFormat::Json,
        "text" => LogFormat::Text,
        other => bail!("--log-format must be text or json, not {other:?}"),
    };
    telemetry::init_logging(settings.logging.v.unwrap_or(0), format);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let serve_config = resolve(&settings)?;
    actix_web::rt::System::new().block_on(run_server(serve_config))?;
    Ok(ExitCode::SUCCESS)
}

/// Inside the server's runtime: the rules, the clients, every background task in one `JoinSet`,
/// and the HTTPS server; the tasks end when the server does.
async fn run_server(serve_config: ServeConfig) -> anyhow::Result<()> {
    let (rules, rules_text) = crate::reload::load_rules_and_text(&serve_config.rules_path)?;
    rules.warn_about_load();
    let rules = Arc::new(rules);
    let server::ServingTls {
        config: tls,
        certificate,
        peers,
    } = server::tls_config(&serve_config.tls)?;
    let metrics = Arc::new(Metrics::new());
    let client = prometheus::Client::new(serve_config.prometheus.clone())?;
    let backend: Arc<dyn MetricsBackend> = Arc::new(prometheus::InstrumentedClient::new(
        client.clone(),
        metrics.clone(),
    ));
    let snapshot = Arc::new(arc_swap::ArcSwap::from_pointee(Snapshot {
        rules: rules.clone(),
        table: Arc::new(ResourceTable::builtin()),
        registry: Arc::default(),
    }));
    // A relist normally ends within the relist interval plus one call timeout; three intervals
    // without one means the loop is stuck.
    let health = Arc::new(Health::new(
        serve_config.discovery.relist_interval * 3 + serve_config.prometheus.timeout * 2,
    ));
    tracing::info!(
        rules = %serve_config.rules_path.display(),
        prometheus = %serve_config.prometheus.url,
        relist_interval = ?serve_config.discovery.relist_interval,
        mode = if serve_config.cluster.is_some() { "cluster" } else { "standalone" },
        "starting prom-adapter"
    );
    let mut tasks = tokio::task::JoinSet::new();
    // First, so that SIGHUP reloads from here on instead of ending the process.
    let (updates, rule_updates) = tokio::sync::mpsc::channel(1);
    let reloader = RulesReloader::new(
        serve_config.rules_path.clone(),
        rules_text.into_bytes(),
        rules,
        updates,
        metrics.clone(),
    );
    let serving_rules = reloader.subscribe();
    tasks.spawn_local(reloader.run());
    // The kube client must be made inside this runtime, which drives its connections.
    let cluster = match &serve_config.cluster {
        Some(settings) => Some(
            crate::cluster::discovery::connect_and_install_table(
                settings.kubeconfig.as_deref(),
                settings.qps,
                settings.burst,
                &snapshot,
            )
            .await
            .context(NO_CLUSTER)?,
        ),
        None => None,
    };
    let objects: Option<Arc<dyn ObjectLister>> = cluster
        .clone()
        .map(|c| Arc::new(c) as Arc<dyn ObjectLister>);
    // Running pods and nodes for metrics.k8s.io: watched in a cluster, read from Prometheus
    // without one.
    let pods_and_nodes = cluster
        .as_ref()
        .map(|cluster| watch_pods_and_nodes(cluster, serving_rules, &mut tasks));
    let gate = match (&serve_config.cluster, &cluster) {
        (Some(settings), Some(lister)) => Some(Arc::new(auth_gate(settings, lister).await?)),
        _ => None,
    };
    if let (Some(settings), Some(lister), Some(gate)) = (&serve_config.cluster, &cluster, &gate) {
        load_client_cas(settings, lister, gate, &peers, &mut tasks).await?;
    }
    let unknown_resource = Arc::new(tokio::sync::Notify::new());
    let table_changed = Arc::new(tokio::sync::Notify::new());
    let worker_state = {
        let unknown_resource = unknown_resource.clone();
        let (snapshot, metrics, health) = (snapshot.clone(), metrics.clone(), health.clone());
        let max_age = serve_config.discovery.max_age;
        let client = client.clone();
        move || {
            // Each actix worker runs its own single-threaded runtime; a shared connection pool
            // would drive every Prometheus call from another thread.
            let client = client.with_fresh_connections().unwrap_or_else(|error| {
                tracing::warn!(%error, "sharing the discovery connection pool with a worker");
                client.clone()
            });
            let backend: Arc<dyn MetricsBackend> =
                Arc::new(prometheus::InstrumentedClient::new(client, metrics.clone()));
            let source: Arc<dyn ResourceObjects> = match &pods_and_nodes {
                Some(watched) => watched.clone(),
                None => Arc::new(PrometheusObjects::new(snapshot.clone(), backend.clone())),
            };
            let resource = Some(ResourceMetrics::new(
                snapshot.clone(),
                backend.clone(),
                source,
            ));
            AppState {
                resource,
                external: ExternalMetrics::new(snapshot.clone(), backend.clone()),
                custom: CustomMetrics::new(snapshot.clone(), backend, max_age, objects.clone())
                    .with_rediscovery(unknown_resource.clone()),
                metrics: metrics.clone(),
                health: health.clone(),
                gate: gate.clone(),
            }
        }
    };
    if let (Some(cluster), Some(settings)) = (cluster, &serve_config.cluster) {
        tasks.spawn_local(crate::cluster::discovery::refresh_resource_table(
            cluster,
            snapshot.clone(),
            settings.discovery_interval,
            unknown_resource,
            table_changed.clone(),
        ));
    }
    let discovery = Discovery::new(
        backend,
        snapshot,
        serve_config.discovery,
        metrics,
        health.clone(),
    );
    tasks.spawn_local(discovery.run(rule_updates, table_changed));
    tasks.spawn_local(certificate.watch(serve_config.tls_reload_interval));
    let result = server::serve(
        worker_state,
        serve_config.addr,
        tls,
        peers,
        health,
        serve_config.shutdown,
        serve_config.handshakes,
    )
    .await;
    tasks.shutdown().await;
    result.map_err(anyhow::Error::from)
}

const NO_CLUSTER: &str =
    "no cluster to serve (give --lister-kubeconfig, or --standalone to run without one)";

/// The pods and nodes caches for metrics.k8s.io; their watches start (as a task of `tasks`)
/// with the first rules that have `resourceRules`.
fn watch_pods_and_nodes(
    cluster: &Cluster,
    mut serving_rules: tokio::sync::watch::Receiver<Arc<crate::rules::RuleSet>>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Arc<dyn ResourceObjects> {
    let (caches, watches) = PodsAndNodes::new(cluster);
    tasks.spawn_local(async move {
        loop {
            if serving_rules.borrow_and_update().resource.is_some() {
                break;
            }
            if serving_rules.changed().await.is_err() {
                return;
            }
        }
        watches.run().await;
    });
    Arc::new(caches)
}

/// Loads the client CAs now (a failure stops the start unless tolerated), then refreshes them
/// as a task of `tasks`.
async fn load_client_cas(
    settings: &ClusterSettings,
    lister: &Cluster,
    gate: &Arc<crate::auth::Gate>,
    peers: &Arc<server::ClientAuthority>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<()> {
    let sources = ClientAuthSources {
        cas: settings.client_cas.clone(),
        request_header: settings.auth.request_header.clone(),
        skip: settings.skip_lookup,
    };
    match sources.apply(lister, peers, gate).await {
        Ok(()) => {}
        Err(error) if settings.tolerate_lookup_failure => {
            tracing::warn!(
                error = format!("{error:#}"),
                "client CAs not loaded yet; retrying"
            )
        }
        Err(error) => {
            return Err(error.context(
                "loading client CAs (--authentication-tolerate-lookup-failure starts anyway)",
            ));
        }
    }
    let (lister, gate, authority) = (lister.clone(), gate.clone(), peers.clone());
    let interval = settings.auth_refresh_interval;
    tasks.spawn_local(async move {
        loop {
            actix_web::rt::time::sleep(interval).await;
            if let Err(error) = sources.apply(&lister, &authority, &gate).await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "client CAs not refreshed; the previous ones stay"
                );
            }
        }
    });
    Ok(())
}

/// Where client CAs and request-header settings come from: the flags, and the authentication
/// ConfigMap for whatever they leave out.
#[derive(Clone)]
struct ClientAuthSources {
    cas: server::ClientCas,
    request_header: crate::auth::RequestHeaderConfig,
    skip: bool,
}

impl ClientAuthSources {
    /// Reads the CA files, and the authentication ConfigMap for whatever they do not give (as
    /// kube-apiserver's extension servers do), then installs the result.
    async fn apply(
        &self,
        cluster: &Cluster,
        authority: &server::ClientAuthority,
        gate: &crate::auth::Gate,
    ) -> anyhow::Result<()> {
        let (requestheader_ca, client_ca) = self.cas.read()?;
        let mut auth = ClientAuth {
            requestheader_ca,
            client_ca,
            request_header: self.request_header.clone(),
        };
        if !self.skip && auth.incomplete() {
            let published = cluster
                .authentication_config()
                .await
                .context("reading kube-system/extension-apiserver-authentication")?
                .unwrap_or_default();
            auth = auth.completed_by(&published);
        }
        if authority.update(auth.requestheader_ca.as_deref(), auth.client_ca.as_deref())? {
            tracing::info!(
                front_proxy = auth.requestheader_ca.is_some(),
                client = auth.client_ca.is_some(),
                "client CAs loaded"
            );
        }
        gate.set_request_header(auth.request_header);
        Ok(())
    }
}

/// The authenticator and authorizer, each asking the cluster given by its own kubeconfig or else
/// the lister's.
async fn auth_gate(
    settings: &ClusterSettings,
    lister: &Cluster,
) -> anyhow::Result<crate::auth::Gate> {
    let connect = |path: &Option<std::path::PathBuf>, flag: &'static str| {
        let path = path.clone();
        let lister = lister.clone();
        async move {
            match path {
                Some(path) => Cluster::connect(Some(&path), settings.qps, settings.burst)
                    .await
                    .context(flag),
                None => Ok(lister),
            }
        }
    };
    let authentication = connect(
        &settings.authentication_kubeconfig,
        "--authentication-kubeconfig",
    )
    .await?;
    let authorization = connect(
        &settings.authorization_kubeconfig,
        "--authorization-kubeconfig",
    )
    .await?;
    Ok(crate::auth::Gate::with_reviewers(
        Box::new(authentication),
        Box::new(authorization),
        settings.auth.clone(),
    ))
}

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
fn resolve(settings: &ServeArgs) -> anyhow::Result<ServeConfig> {
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
    let auth = crate::auth::AuthConfig {
        request_header: crate::auth::RequestHeaderConfig {
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
