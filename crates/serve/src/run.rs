//! The server's composition root: the Prometheus and cluster clients, the providers, the background tasks and the HTTPS server, from a validated `ServeConfig`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::api::AppState;
use crate::auth::sources::ClientAuth;
use crate::cluster::{Cluster, PodsAndNodes, SelectedObjects};
use crate::reload::RulesReloader;
use crate::server;
use prom_adapter_backend::prometheus;
use prom_adapter_core::resources::ResourceTable;
use prom_adapter_provider::custom::CustomMetrics;
use prom_adapter_provider::discovery::{Discovery, DiscoveryConfig, Health};
use prom_adapter_provider::external::ExternalMetrics;
use prom_adapter_provider::query_cache::{QuerySharing, SharedQueries};
use prom_adapter_provider::resource::ResourceMetrics;
use prom_adapter_provider::resource_objects::{PrometheusObjects, ResourceObjects};
use prom_adapter_provider::{Backends, MetricsBackend, ObjectLister, Snapshot};
use prom_adapter_telemetry::Metrics;

/// Everything `serve` needs, validated.
pub struct ServeConfig {
    pub rules_path: std::path::PathBuf,
    pub prometheus: prometheus::ClientConfig,
    pub discovery: DiscoveryConfig,
    pub addr: SocketAddr,
    pub tls: server::TlsSource,
    pub shutdown: server::Shutdown,
    pub handshakes: server::HandshakeLimits,
    pub tls_reload_interval: std::time::Duration,
    pub sharing: QuerySharing,
    pub shaping: prom_adapter_core::plan::QueryShaping,
    /// The settings' named backends.
    pub backends: Vec<prometheus::NamedBackendConfig>,
    /// `None` with `--standalone`.
    pub cluster: Option<ClusterSettings>,
}

/// How to reach the cluster, and how to ask it about requests.
#[derive(Default)]
pub struct ClusterSettings {
    pub kubeconfig: Option<std::path::PathBuf>,
    pub discovery_interval: Duration,
    pub qps: f32,
    pub burst: u32,
    /// How long a label selector's list (other than pods') is kept.
    pub object_list_ttl: Duration,
    pub authentication_kubeconfig: Option<std::path::PathBuf>,
    pub authorization_kubeconfig: Option<std::path::PathBuf>,
    pub auth: crate::auth::AuthConfig,
    /// Where client CAs come from when not from files.
    pub skip_lookup: bool,
    pub tolerate_lookup_failure: bool,
    pub auth_refresh_interval: Duration,
    pub client_cas: server::ClientCas,
}

/// Serves until a signal ends the server: the rules, the clients, every background task and the
/// HTTPS server, in the server's runtime.
pub fn serve(serve_config: ServeConfig) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(run_server(serve_config))
}

/// Inside the server's runtime: the rules, the clients, every background task in one `JoinSet`,
/// and the HTTPS server; the tasks end when the server does.
async fn run_server(serve_config: ServeConfig) -> anyhow::Result<()> {
    let backend_names: Vec<String> = serve_config
        .backends
        .iter()
        .map(|b| b.name.clone())
        .collect();
    let known: Vec<&str> = backend_names.iter().map(String::as_str).collect();
    let (rules, rules_text) =
        crate::reload::load_rules_and_text(&serve_config.rules_path, Some(&known))?;
    crate::reload::log_load_warnings(&rules);
    let rules = Arc::new(rules);
    let server::ServingTls {
        config: tls,
        certificate,
        peers,
    } = server::tls_config(&serve_config.tls)?;
    let metrics = Arc::new(Metrics::new());
    let client = prometheus::Client::new(serve_config.prometheus.clone())?;
    // Every worker's and discovery's calls share the answers and the backend's slots.
    let queries = SharedQueries::new(serve_config.sharing.clone(), metrics.clone());
    let backend: Arc<dyn MetricsBackend> = Arc::new(queries.backend(Arc::new(
        prometheus::InstrumentedClient::new(client.clone(), metrics.clone()),
    )));
    // Each named backend's answers and slots, shared by every worker and discovery.
    let named = (!serve_config.backends.is_empty()).then(|| {
        prometheus::SharedNamedBackends::new(serve_config.backends.clone(), metrics.clone())
    });
    let serving = rules.clone();
    // A relist normally ends within the relist interval plus one call timeout; three intervals
    // without one means the loop is stuck.
    let health = Arc::new(Health::new(
        serve_config.discovery.relist_interval * 3 + serve_config.prometheus.timeout * 2,
    ));
    tracing::info!(
        rules = %serve_config.rules_path.display(),
        prometheus = %prometheus::redacted_url(&serve_config.prometheus.url),
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
    )
    .with_backends(backend_names);
    let serving_rules = reloader.subscribe();
    tasks.spawn_local(reloader.run());
    // The kube client must be made inside this runtime, which drives its connections.
    let (cluster, table) = match &serve_config.cluster {
        Some(settings) => {
            let (cluster, table) = crate::cluster::discovery::connect_with_table(
                settings.kubeconfig.as_deref(),
                settings.qps,
                settings.burst,
            )
            .await
            .context(NO_CLUSTER)?;
            (Some(cluster), table)
        }
        None => (None, ResourceTable::builtin()),
    };
    let table = Arc::new(table);
    // Written only by discovery from here on: relists, reloads and new resource tables.
    let snapshot = Arc::new(arc_swap::ArcSwap::from_pointee(Snapshot {
        rules: serving,
        table: table.clone(),
        registry: Arc::default(),
        discovered: false,
    }));
    let (tables, table_updates) = tokio::sync::watch::channel(table);
    // Objects by label selector: pods from a watch started by the first pods request, other
    // resources listed, merged in flight and kept briefly.
    let objects: Option<Arc<dyn ObjectLister>> = match (&cluster, &serve_config.cluster) {
        (Some(cluster), Some(settings)) => {
            let (objects, pod_watch) =
                SelectedObjects::new(cluster, settings.object_list_ttl, metrics.clone());
            tasks.spawn_local(pod_watch.run());
            Some(Arc::new(objects))
        }
        _ => None,
    };
    // Running pods and nodes for metrics.k8s.io: watched in a cluster, read from Prometheus
    // without one.
    let pods_and_nodes = cluster
        .as_ref()
        .map(|cluster| watch_pods_and_nodes(cluster, serving_rules, &metrics, &mut tasks));
    let gate = match (&serve_config.cluster, &cluster) {
        (Some(settings), Some(lister)) => Some(Arc::new(auth_gate(settings, lister).await?)),
        _ => None,
    };
    if let (Some(settings), Some(lister), Some(gate)) = (&serve_config.cluster, &cluster, &gate) {
        load_client_cas(settings, lister, gate, &peers, &mut tasks).await?;
    }
    let unknown_resource = Arc::new(tokio::sync::Notify::new());
    let worker_state = {
        let unknown_resource = unknown_resource.clone();
        let (snapshot, metrics, health) = (snapshot.clone(), metrics.clone(), health.clone());
        let max_age = serve_config.discovery.max_age;
        let options = prom_adapter_provider::QueryOptions {
            shaping: serve_config.shaping,
            metrics: Some(metrics.clone()),
        };
        let (client, queries, named) = (client.clone(), queries.clone(), named.clone());
        move || {
            // Each actix worker runs its own single-threaded runtime; a shared connection pool
            // would drive every Prometheus call from another thread.
            let client = client.with_fresh_connections().unwrap_or_else(|error| {
                tracing::warn!(%error, "sharing the discovery connection pool with a worker");
                client.clone()
            });
            let backend: Arc<dyn MetricsBackend> = Arc::new(queries.backend(Arc::new(
                prometheus::InstrumentedClient::new(client, metrics.clone()),
            )));
            let source: Arc<dyn ResourceObjects> = match &pods_and_nodes {
                Some(watched) => watched.clone(),
                None => Arc::new(PrometheusObjects::new(snapshot.clone(), backend.clone())),
            };
            let resource = Some(
                ResourceMetrics::new(snapshot.clone(), backend.clone(), source)
                    .with_query_options(options.clone()),
            );
            let mut backends = Backends::new(backend);
            if let Some(named) = &named {
                // Checked when the settings were resolved; a client that still fails to build
                // here leaves its rules' requests failing, not the server.
                match named.router() {
                    Ok(router) => backends = backends.with_named(Arc::new(router)),
                    Err(error) => tracing::error!(%error, "building the named backends' clients"),
                }
            }
            let external = ExternalMetrics::new(snapshot.clone(), backends.clone())
                .with_metrics(metrics.clone());
            let custom = CustomMetrics::new(snapshot.clone(), backends, max_age, objects.clone())
                .with_rediscovery(unknown_resource.clone())
                .with_query_options(options.clone());
            AppState {
                resource,
                external,
                custom,
                metrics: metrics.clone(),
                health: health.clone(),
                gate: gate.clone(),
            }
        }
    };
    if let (Some(cluster), Some(settings)) = (cluster, &serve_config.cluster) {
        tasks.spawn_local(crate::cluster::discovery::refresh_resource_table(
            cluster,
            tables,
            snapshot.clone(),
            settings.discovery_interval,
            unknown_resource,
        ));
    }
    let mut backends = Backends::new(backend);
    if let Some(named) = &named {
        backends = backends.with_named(Arc::new(named.router()?));
    }
    let discovery = Discovery::new(
        backends,
        snapshot,
        serve_config.discovery,
        metrics,
        health.clone(),
    );
    tasks.spawn_local(discovery.run(rule_updates, table_updates));
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
    mut serving_rules: tokio::sync::watch::Receiver<Arc<prom_adapter_core::rules::RuleSet>>,
    metrics: &Arc<Metrics>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Arc<dyn ResourceObjects> {
    let (caches, watches) = PodsAndNodes::new(cluster, metrics.clone());
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
