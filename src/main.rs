//! prom-adapter's entry point: parses the command line, wires the parts together, and owns exit codes and error printing.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;

use futures_util::future::BoxFuture;
use prom_adapter::api::AppState;
use prom_adapter::cli::{Cli, Command, ExplainArgs, ServeArgs, screen_legacy_flags};
use prom_adapter::cluster::{Cluster, PodsAndNodes};
use prom_adapter::config::{self, settings};
use prom_adapter::model::parse_duration;
use prom_adapter::model::{QueryResult, SeriesShape};
use prom_adapter::prometheus;
use prom_adapter::provider::custom::CustomMetrics;
use prom_adapter::provider::discovery::{Discovery, DiscoveryConfig, Health};
use prom_adapter::provider::external::ExternalMetrics;
use prom_adapter::provider::resource::{PrometheusObjects, ResourceMetrics, ResourceObjects};
use prom_adapter::provider::{
    BackendError, MetricsBackend, ObjectLister, SharedSnapshot, Snapshot,
};
use prom_adapter::reload::RulesReloader;
use prom_adapter::resources::ResourceTable;
use prom_adapter::telemetry::{self, LogFormat, Metrics};
use prom_adapter::{explain, server};

/// mimalloc gives freed memory back to the system within milliseconds; glibc's allocator kept
/// hundreds of megabytes after a burst of large Prometheus answers had been decoded and dropped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    server::install_crypto_provider();
    let (args, warnings) = match screen_legacy_flags(std::env::args().collect()) {
        Ok(screened) => screened,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    let result = match cli.command {
        None => serve(cli.serve, warnings),
        Some(Command::Serve(args)) => serve(*args, warnings),
        Some(Command::Check { config, strict }) => check(&config, strict),
        Some(Command::Explain(args)) => run_explain(&args),
        Some(Command::Simulate(args)) => run_simulate(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path, strict: bool) -> anyhow::Result<ExitCode> {
    match config::load_rules(path) {
        Ok(rules) => {
            for line in explain::summarize(&rules) {
                println!("{line}");
            }
            let warnings = explain::lint::static_warnings(&rules);
            for warning in &warnings {
                println!("{warning}");
            }
            if strict && !warnings.is_empty() {
                eprintln!(
                    "{}: {} warning(s), which --strict treats as failures",
                    path.display(),
                    warnings.len()
                );
                return Ok(ExitCode::FAILURE);
            }
            println!(
                "{}: OK ({} rules, {} externalRules, resourceRules {})",
                path.display(),
                rules.custom.len(),
                rules.external.len(),
                if rules.resource.is_some() {
                    "present"
                } else {
                    "absent"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            // The whole chain: a read error says why ("No such file or directory").
            eprintln!("{:#}", anyhow::Error::from(error));
            Ok(ExitCode::FAILURE)
        }
    }
}

fn run_explain(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let rules = config::load_rules(&args.config)?;
    let table = ResourceTable::builtin();
    match (&args.series, &args.prometheus_url) {
        (Some(file), _) => explain_offline(args, &rules, &table, file),
        (None, Some(url)) => explain_live(args, rules, table, url),
        (None, None) => bail!("give --series FILE or --prometheus-url URL"),
    }
}

fn explain_offline(
    args: &ExplainArgs,
    rules: &prom_adapter::rules::RuleSet,
    table: &ResourceTable,
    file: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read series file {}", file.display()))?;
    let series = explain::parse_series_file(&text)?;
    let registry = prom_adapter::registry::Registry::from_series(rules, &series, table);
    let json = args.output == "json";
    match &args.request_path {
        Some(path) => {
            let query = explain::query_for_path(rules, &registry, table, path, &args.objects)?;
            if json {
                println!("{}", serde_json::json!({ "query": query }));
            } else {
                println!("{query}");
            }
        }
        None => {
            let listing = explain::listing(&registry);
            let mut warnings = explain::lint::static_warnings(rules);
            warnings.extend(explain::lint::series_warnings(rules, &series, table));
            if json {
                let mut value = serde_json::to_value(&listing)?;
                value["warnings"] = serde_json::to_value(&warnings)?;
                println!("{value}");
            } else {
                print!("{}", explain::render_listing(&listing, series.len()));
                for warning in &warnings {
                    println!("{warning}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `explain --prometheus-url`: lists the series of every `seriesQuery` from Prometheus, then
/// reports, answers or diagnoses with the providers `serve` uses.
fn explain_live(
    args: &ExplainArgs,
    rules: prom_adapter::rules::RuleSet,
    table: ResourceTable,
    url: &str,
) -> anyhow::Result<ExitCode> {
    use prom_adapter::explain::{live, report, why};
    let max_age = parse_duration(&args.metrics_max_age).context("--metrics-max-age")?;
    let config = client_config_from_flags(url, &args.client)?;
    let json = args.output == "json";
    let style = live::Style::new(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client = prometheus::Client::new(config)?;
        let now = prom_adapter::provider::unix_now();
        let start = now - max_age.as_secs_f64();
        let series = explain::list_series(&client, &rules, start, now).await?;
        let window = format!(
            "in the last {} (--metrics-max-age)",
            prom_adapter::model::format_go_duration(max_age)
        );
        let registry = prom_adapter::registry::Registry::from_series(&rules, &series, &table);
        let Some(path) = &args.request_path else {
            let listing = explain::listing(&registry);
            let reports = report::rule_reports(&rules, &series, &table);
            let mut warnings = explain::lint::static_warnings(&rules);
            warnings.extend(explain::lint::series_warnings(&rules, &series, &table));
            // Prometheus-compatible backends may not serve their configuration.
            match client
                .config_yaml()
                .await
                .map_err(|e| e.to_string())
                .and_then(|yaml| explain::lint::ScrapeIntervals::from_prometheus_config(&yaml))
            {
                Ok(intervals) => {
                    warnings.extend(explain::lint::window_warnings(&rules, &series, &intervals))
                }
                Err(error) => {
                    eprintln!("note: range windows not checked against scrape intervals: {error}")
                }
            }
            if json {
                let mut value = serde_json::to_value(&listing)?;
                value["rules"] = serde_json::to_value(&reports)?;
                value["warnings"] = serde_json::to_value(&warnings)?;
                println!("{value}");
            } else {
                print!("{}", live::render_reports(&reports, style));
                println!();
                print!("{}", explain::render_listing(&listing, series.len()));
                for warning in &warnings {
                    println!("{warning}");
                }
            }
            return Ok(ExitCode::SUCCESS);
        };
        let backend: Arc<dyn MetricsBackend> =
            Arc::new(InstrumentedClient::new(client, Arc::new(Metrics::new())));
        if let Some(resource_path) = explain::parse_resource_path(path) {
            let resource_path = resource_path?;
            anyhow::ensure!(
                !args.why,
                "--why follows custom and external metrics through discovery; a metrics.k8s.io path has no discovery: without --why, explain prints its queries and the values they give"
            );
            let snapshot = Arc::new(arc_swap::ArcSwap::from_pointee(Snapshot {
                registry: Arc::new(registry),
                rules: Arc::new(rules),
                table: Arc::new(table),
            }));
            // The queries first, over the objects serve would query: they are what to check
            // when a value is missing.
            let objects =
                live::resource_objects(snapshot.clone(), backend.clone(), &resource_path)
                    .await
                    .map_err(|e| anyhow::anyhow!("listing the {}: {e}", resource_path.resource))?;
            let queries = if objects.is_empty() {
                format!(
                    "no {} with series in Prometheus (as --standalone finds them)",
                    resource_path.resource
                )
            } else {
                let loaded = snapshot.load();
                explain::resource_queries(&loaded.rules, &loaded.table, &resource_path, &objects)?
            };
            let values = live::resource_values(snapshot, backend, &resource_path, now).await;
            if json {
                let answer = match &values {
                    Ok(values) => serde_json::json!({ "query": queries, "values": values }),
                    Err(error) => serde_json::json!({ "query": queries, "error": error }),
                };
                println!("{answer}");
            } else {
                println!("{queries}");
                match &values {
                    Ok(values) => print!("{}", live::render_values(values, style)),
                    Err(error) => eprintln!("error: {error}"),
                }
            }
            return Ok(if values.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        let request = explain::parse_request_path(path)?;
        let finding = match why::walk(&rules, &registry, &series, &table, &request, &window) {
            why::Walk::Lost(finding) => finding,
            why::Walk::Query(probe) if args.why => {
                let result = backend
                    .query(&probe.query, now)
                    .await
                    .map_err(|e| anyhow::anyhow!("running {}: {e}", probe.query))?;
                why::judge(&probe, &result)
            }
            why::Walk::Query(probe) => {
                let snapshot = Arc::new(arc_swap::ArcSwap::from_pointee(Snapshot {
                    registry: Arc::new(registry),
                    rules: Arc::new(rules),
                    table: Arc::new(table),
                }));
                let values = live::values(snapshot, backend, &request, max_age, now)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "query": probe.query, "values": values })
                    );
                } else {
                    println!("{}", probe.query);
                    print!("{}", live::render_values(&values, style));
                }
                return Ok(ExitCode::SUCCESS);
            }
        };
        if json {
            println!("{}", serde_json::to_string(&finding)?);
        } else {
            print!("{}", live::render_finding(&finding, style));
        }
        // --why reports any verdict as its answer; a plain request path that loses its metric
        // has no query to show.
        Ok(if args.why || finding.verdict == why::Verdict::Served {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

/// `simulate`: fetches the HPA's metric histories and replays the controller over them.
fn run_simulate(args: &prom_adapter::cli::SimulateArgs) -> anyhow::Result<ExitCode> {
    use prom_adapter::simulate::{self, history, hpa, render, replay};
    let rules = config::load_rules(&args.config)?;
    let manifest = std::fs::read_to_string(&args.hpa)
        .with_context(|| format!("cannot read HPA manifest {}", args.hpa.display()))?;
    let hpa = hpa::parse(&manifest)?;
    let now = prom_adapter::provider::unix_now() as i64;
    let start = simulate::parse_time(&args.start, now)?;
    let end = simulate::parse_time(&args.end, now)?;
    if end <= start {
        bail!("--end must be after --start");
    }
    let sync = parse_duration(&args.step).context("--step")?;
    if sync.as_secs() == 0 {
        bail!("--step must be at least 1s");
    }
    let oscillation = parse_duration(&args.oscillation_window).context("--oscillation-window")?;
    let mut pod_requests = std::collections::HashMap::new();
    for request in &args.pod_request {
        let Some((resource, quantity)) = request.split_once('=') else {
            bail!("--pod-request {request:?}: write RESOURCE=QUANTITY, e.g. cpu=250m");
        };
        let milli = prom_adapter::model::parse_quantity_milli(quantity)
            .map_err(|e| anyhow::anyhow!("--pod-request {request:?}: {e}"))?;
        pod_requests.insert(resource.to_owned(), milli);
    }
    let explain_at = args
        .explain_at
        .as_deref()
        .map(|t| simulate::parse_time(t, now))
        .transpose()?;
    let pods = args
        .pods
        .clone()
        .unwrap_or_else(|| format!("{}-.*", regex::escape(&hpa.target_name)));
    let config = client_config_from_flags(&args.prometheus_url, &args.client)?;
    let table = ResourceTable::builtin();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let history = runtime.block_on(async {
        let client = prometheus::Client::new(config)?;
        history::fetch(
            &client,
            &rules,
            &table,
            &hpa,
            &pods,
            start as f64,
            end as f64,
            sync,
        )
        .await
        .map_err(anyhow::Error::from)
    })?;
    let options = replay::Options {
        start,
        end,
        sync_seconds: sync.as_secs() as i64,
        initial_replicas: args.initial_replicas.unwrap_or(hpa.rules.min_replicas),
        pod_model: if args.pod_model == "conserving" {
            replay::PodModel::Conserving
        } else {
            replay::PodModel::Observed
        },
        pod_requests,
        oscillation_window_seconds: oscillation.as_secs() as i64,
    };
    let simulation = replay::replay(&hpa, &history.metrics, &options);
    let explanation = explain_at.map(|t| {
        replay::explain_at(&hpa, &simulation, t, render::clock)
            .unwrap_or_else(|| format!("{} is before the first sync.\n", render::clock(t)))
    });
    match args.output.as_str() {
        "json" => {
            let queries: Vec<&str> = history.metrics.iter().map(|m| m.query.as_str()).collect();
            let mut value = serde_json::to_value(&simulation)?;
            value["queries"] = serde_json::to_value(queries)?;
            if let Some(text) = &explanation {
                value["explanation"] = serde_json::Value::from(text.as_str());
            }
            println!("{value}");
        }
        "svg" => print!("{}", render::svg(&hpa, &simulation)),
        _ => match &explanation {
            Some(text) => print!("{text}"),
            None => {
                for metric in &history.metrics {
                    println!("query: {}", metric.query);
                }
                print!("{}", render::table(&hpa, &simulation));
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// A Prometheus client configuration from `explain`'s and `simulate`'s flags.
fn client_config_from_flags(
    url: &str,
    flags: &prom_adapter::cli::PrometheusClientArgs,
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
struct ClientFlags<'a> {
    url: &'a str,
    timeout: &'a str,
    verb: &'a str,
    headers: &'a [String],
    token_file: Option<std::path::PathBuf>,
    ca_file: Option<std::path::PathBuf>,
    client_cert: (Option<std::path::PathBuf>, Option<std::path::PathBuf>),
    max_response_bytes: &'a str,
    auth_config: Option<std::path::PathBuf>,
    auth_incluster: bool,
    service_account_dir: &'a std::path::Path,
}

/// A Prometheus client configuration from the flags `serve`, `explain` and `simulate` share.
fn client_config(flags: ClientFlags<'_>) -> anyhow::Result<prometheus::ClientConfig> {
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
    let max_response_bytes = match prom_adapter::model::parse_quantity_milli(max_response_bytes) {
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
    auth: prom_adapter::auth::AuthConfig,
    /// Where client CAs come from when not from files.
    skip_lookup: bool,
    tolerate_lookup_failure: bool,
    auth_refresh_interval: Duration,
    client_cas: server::ClientCas,
}

fn serve(args: ServeArgs, warnings: Vec<String>) -> anyhow::Result<ExitCode> {
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("PROM_ADAPTER_"))
        .collect();
    let settings = settings::load(args.settings.as_deref(), &env, &args.overrides())?;
    let format = match settings.log_format.as_str() {
        "json" => LogFormat::Json,
        "text" => LogFormat::Text,
        other => bail!("--log-format must be text or json, not {other:?}"),
    };
    telemetry::init_logging(settings.v, format);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let serve_config = validate(&settings)?;
    let (rules, rules_text) = config::load_rules_and_text(&serve_config.rules_path)?;
    rules.warn_about_load();
    let rules = Arc::new(rules);
    let server::ServingTls {
        config: tls,
        certificate,
        peers,
    } = server::tls_config(&serve_config.tls)?;
    let metrics = Arc::new(Metrics::new());
    let client = prometheus::Client::new(serve_config.prometheus.clone())?;
    let backend: Arc<dyn MetricsBackend> =
        Arc::new(InstrumentedClient::new(client.clone(), metrics.clone()));
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
    actix_web::rt::System::new().block_on(async move {
        // First, so that SIGHUP reloads from here on instead of ending the process.
        let (updates, rule_updates) = tokio::sync::mpsc::channel(1);
        let reloader = RulesReloader::new(
            serve_config.rules_path.clone(),
            rules_text.into_bytes(),
            rules,
            updates,
            metrics.clone(),
        );
        let mut serving_rules = reloader.subscribe();
        let reload_rules = actix_web::rt::spawn(reloader.run());
        // The kube client must be made inside this runtime, which drives its connections.
        let cluster = match &serve_config.cluster {
            Some(cluster) => Some(connect_cluster(cluster, &snapshot).await?),
            None => None,
        };
        let objects: Option<Arc<dyn ObjectLister>> = cluster
            .clone()
            .map(|c| Arc::new(c) as Arc<dyn ObjectLister>);
        // Running pods and nodes for metrics.k8s.io: watched in a cluster, read from Prometheus
        // without one.
        // The watches start with the first rules that have resourceRules.
        let pods_and_nodes: Option<Arc<dyn ResourceObjects>> = cluster.as_ref().map(|cluster| {
            let (caches, watches) = PodsAndNodes::new(cluster);
            actix_web::rt::spawn(async move {
                loop {
                    let wanted = serving_rules.borrow_and_update().resource.is_some();
                    if wanted {
                        break;
                    }
                    if serving_rules.changed().await.is_err() {
                        return;
                    }
                }
                watches.start();
            });
            Arc::new(caches) as Arc<dyn ResourceObjects>
        });
        let gate = match (&serve_config.cluster, &cluster) {
            (Some(settings), Some(lister)) => Some(Arc::new(auth_gate(settings, lister).await?)),
            _ => None,
        };
        let auth_refresh = match (&serve_config.cluster, &cluster, &gate) {
            (Some(settings), Some(lister), Some(gate)) => {
                let sources = ClientAuthSources {
                    cas: settings.client_cas.clone(),
                    request_header: settings.auth.request_header.clone(),
                    skip: settings.skip_lookup,
                };
                match sources.apply(lister, &peers, gate).await {
                    Ok(()) => {}
                    Err(error) if settings.tolerate_lookup_failure => {
                        tracing::warn!(error = format!("{error:#}"), "client CAs not loaded yet; retrying")
                    }
                    Err(error) => {
                        return Err(error.context("loading client CAs (--authentication-tolerate-lookup-failure starts anyway)"));
                    }
                }
                let (lister, gate, authority) = (lister.clone(), gate.clone(), peers.clone());
                let interval = settings.auth_refresh_interval;
                Some(actix_web::rt::spawn(async move {
                    loop {
                        actix_web::rt::time::sleep(interval).await;
                        if let Err(error) = sources.apply(&lister, &authority, &gate).await {
                            tracing::warn!(error = format!("{error:#}"), "client CAs not refreshed; the previous ones stay");
                        }
                    }
                }))
            }
            _ => None,
        };
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
                    Arc::new(InstrumentedClient::new(client, metrics.clone()));
                let source: Arc<dyn ResourceObjects> = match &pods_and_nodes {
                    Some(watched) => watched.clone(),
                    None => Arc::new(PrometheusObjects::new(snapshot.clone(), backend.clone())),
                };
                let resource = Some(ResourceMetrics::new(snapshot.clone(), backend.clone(), source));
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
        let refresh_handle = cluster.map(|cluster| {
            let interval = serve_config
                .cluster
                .as_ref()
                .map_or(Duration::from_secs(600), |c| c.discovery_interval);
            actix_web::rt::spawn(refresh_resource_table(cluster, snapshot.clone(), interval, unknown_resource.clone(), table_changed.clone()))
        });
        let discovery = Discovery::new(
            backend,
            snapshot,
            serve_config.discovery,
            metrics,
            health.clone(),
        );
        let loop_handle = actix_web::rt::spawn(discovery.run(rule_updates, table_changed));
        let reload_handle =
            actix_web::rt::spawn(certificate.watch(serve_config.tls_reload_interval));
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
        loop_handle.abort();
        reload_handle.abort();
        reload_rules.abort();
        for handle in [refresh_handle, auth_refresh].into_iter().flatten() {
            handle.abort();
        }
        result.map_err(anyhow::Error::from)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Connects to the cluster and installs its resource table (the built-in one stays, with a
/// warning, if discovery fails now; the refresh retries).
async fn connect_cluster(
    settings: &ClusterSettings,
    snapshot: &SharedSnapshot,
) -> anyhow::Result<Cluster> {
    let cluster = Cluster::connect(settings.kubeconfig.as_deref(), settings.qps, settings.burst)
        .await
        .context(
            "no cluster to serve (give --lister-kubeconfig, or --standalone to run without one)",
        )?;
    match cluster.resource_table().await {
        Ok(table) => {
            let table = Arc::new(table);
            snapshot.rcu(|current| Snapshot {
                table: table.clone(),
                ..(**current).clone()
            });
        }
        Err(error) => {
            tracing::warn!(%error, "API discovery failed; using the built-in resource table until it succeeds")
        }
    }
    Ok(cluster)
}

/// Where client CAs and request-header settings come from: the flags, and the authentication
/// ConfigMap for whatever they leave out.
#[derive(Clone)]
struct ClientAuthSources {
    cas: server::ClientCas,
    request_header: prom_adapter::auth::RequestHeaderConfig,
    skip: bool,
}

impl ClientAuthSources {
    /// Reads the CA files, and the authentication ConfigMap for whatever they do not give (as
    /// kube-apiserver's extension servers do), then installs the result.
    async fn apply(
        &self,
        cluster: &Cluster,
        authority: &server::ClientAuthority,
        gate: &prom_adapter::auth::Gate,
    ) -> anyhow::Result<()> {
        let (mut requestheader, mut client) = self.cas.read()?;
        let mut request_header = self.request_header.clone();
        if !self.skip && (requestheader.is_none() || client.is_none()) {
            let published = cluster
                .authentication_config()
                .await
                .context("reading kube-system/extension-apiserver-authentication")?
                .unwrap_or_default();
            if requestheader.is_none() && published.requestheader_ca.is_some() {
                requestheader = published.requestheader_ca;
                let or = |values: Vec<String>, default: &Vec<String>| {
                    if values.is_empty() {
                        default.clone()
                    } else {
                        values
                    }
                };
                request_header = prom_adapter::auth::RequestHeaderConfig {
                    allowed_names: published.allowed_names,
                    username_headers: or(
                        published.username_headers,
                        &request_header.username_headers,
                    ),
                    group_headers: or(published.group_headers, &request_header.group_headers),
                    extra_headers_prefixes: or(
                        published.extra_headers_prefixes,
                        &request_header.extra_headers_prefixes,
                    ),
                };
            }
            if client.is_none() {
                client = published.client_ca;
            }
        }
        if authority.update(requestheader.as_deref(), client.as_deref())? {
            tracing::info!(
                front_proxy = requestheader.is_some(),
                client = client.is_some(),
                "client CAs loaded"
            );
        }
        gate.set_request_header(request_header);
        Ok(())
    }
}

/// The authenticator and authorizer, each asking the cluster given by its own kubeconfig or else
/// the lister's.
async fn auth_gate(
    settings: &ClusterSettings,
    lister: &Cluster,
) -> anyhow::Result<prom_adapter::auth::Gate> {
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
    Ok(prom_adapter::auth::Gate::with_reviewers(
        Box::new(authentication),
        Box::new(authorization),
        settings.auth.clone(),
    ))
}

/// Re-reads the cluster's resources every `interval`, so that CRDs installed later are served
/// (from the next relist on).
async fn refresh_resource_table(
    cluster: Cluster,
    snapshot: SharedSnapshot,
    interval: Duration,
    unknown_resource: Arc<tokio::sync::Notify>,
    table_changed: Arc<tokio::sync::Notify>,
) {
    // On-demand refreshes (a request named an unknown resource) are spaced out so that a client
    // asking for nonsense cannot keep the API server busy.
    const MIN_GAP: Duration = Duration::from_secs(2);
    let mut last = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = actix_web::rt::time::sleep(interval) => {}
            _ = unknown_resource.notified() => {
                if let Some(wait) = MIN_GAP.checked_sub(last.elapsed()) {
                    actix_web::rt::time::sleep(wait).await;
                }
            }
        }
        last = std::time::Instant::now();
        match cluster.resource_table().await {
            Ok(table) if *snapshot.load().table != table => {
                warn_about_unknown_overrides(&snapshot.load().rules, &table);
                // Whatever else changed meanwhile (a relist) is kept: only the table is replaced.
                let table = Arc::new(table);
                snapshot.rcu(|current| Snapshot {
                    table: table.clone(),
                    ..(**current).clone()
                });
                tracing::info!("resource table changed");
                table_changed.notify_one();
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "API discovery failed; keeping the previous resource table")
            }
        }
    }
}

/// Overrides naming resources the cluster does not serve are not fatal (the CRD may come later);
/// say which, each time the table changes.
fn warn_about_unknown_overrides(rules: &prom_adapter::rules::RuleSet, table: &ResourceTable) {
    for (key, list) in [("rules", &rules.custom), ("externalRules", &rules.external)] {
        for rule in list.iter() {
            let index = rule.position;
            for (label, resource) in rule.resources.overrides() {
                if table.resolve(resource).is_none() {
                    tracing::warn!(rule = format!("{key}[{index}]"), %label, %resource, "override names a resource the cluster does not serve (yet)");
                }
            }
        }
    }
}

/// A duration flag that must be more than zero.
fn positive(value: &str, flag: &'static str) -> anyhow::Result<Duration> {
    match parse_duration(value).context(flag)? {
        d if d.is_zero() => bail!("{flag} must be greater than zero"),
        d => Ok(d),
    }
}

/// A count flag that must be at least one.
fn at_least_one(value: u32, flag: &'static str) -> anyhow::Result<usize> {
    match value {
        0 => bail!("{flag} must be at least 1"),
        n => Ok(n as usize),
    }
}

fn validate(settings: &settings::Settings) -> anyhow::Result<ServeConfig> {
    let Some(rules_path) = settings.config.clone() else {
        bail!("no rules file specified (use --config FILE)");
    };
    if settings.standalone && settings.lister_kubeconfig.is_some() {
        bail!(
            "--standalone runs without a cluster; drop --lister-kubeconfig, or drop --standalone to use the cluster"
        );
    }
    // Checked in every mode: a bad value is an error even where nothing uses it yet.
    let authentication_timeout =
        positive(&settings.authentication_timeout, "--authentication-timeout")?;
    let authorization_timeout =
        positive(&settings.authorization_timeout, "--authorization-timeout")?;
    let max_reviews_in_flight =
        at_least_one(settings.max_reviews_in_flight, "--max-reviews-in-flight")?;
    let max_reviews_per_client =
        at_least_one(settings.max_reviews_per_client, "--max-reviews-per-client")?;
    let cluster = if settings.standalone {
        None
    } else {
        let ttl = |value: &str, flag: &'static str| parse_duration(value).context(flag);
        Some(ClusterSettings {
            authentication_kubeconfig: settings.authentication_kubeconfig.clone(),
            authorization_kubeconfig: settings.authorization_kubeconfig.clone(),
            auth: prom_adapter::auth::AuthConfig {
                request_header: prom_adapter::auth::RequestHeaderConfig {
                    allowed_names: settings.requestheader_allowed_names.clone(),
                    username_headers: settings.requestheader_username_headers.clone(),
                    group_headers: settings.requestheader_group_headers.clone(),
                    extra_headers_prefixes: settings.requestheader_extra_headers_prefix.clone(),
                },
                always_allow_paths: settings.authorization_always_allow_paths.clone(),
                token_ttl: ttl(
                    &settings.authentication_token_webhook_cache_ttl,
                    "--authentication-token-webhook-cache-ttl",
                )?,
                allowed_ttl: ttl(
                    &settings.authorization_webhook_cache_authorized_ttl,
                    "--authorization-webhook-cache-authorized-ttl",
                )?,
                denied_ttl: ttl(
                    &settings.authorization_webhook_cache_unauthorized_ttl,
                    "--authorization-webhook-cache-unauthorized-ttl",
                )?,
                authentication_timeout,
                authorization_timeout,
                max_reviews_in_flight,
                max_reviews_per_client,
            },
            kubeconfig: settings.lister_kubeconfig.clone(),
            qps: settings.client_qps,
            burst: settings.client_burst,
            skip_lookup: settings.authentication_skip_lookup,
            tolerate_lookup_failure: settings.authentication_tolerate_lookup_failure,
            auth_refresh_interval: match parse_duration(
                &settings.authentication_config_refresh_interval,
            )
            .context("--authentication-config-refresh-interval")?
            {
                d if d.is_zero() => {
                    bail!("--authentication-config-refresh-interval must be greater than zero")
                }
                d => d,
            },
            client_cas: server::ClientCas {
                requestheader: settings.requestheader_client_ca_file.clone(),
                client: settings.client_ca_file.clone(),
            },
            discovery_interval: match parse_duration(&settings.discovery_interval)
                .context("--discovery-interval")?
            {
                d if d.is_zero() => bail!("--discovery-interval must be greater than zero"),
                d => d,
            },
        })
    };
    // With a cluster every request is authenticated and authorized; --standalone authenticates
    // nothing, so it stays on loopback.
    let default_bind = if settings.standalone {
        "127.0.0.1"
    } else {
        "0.0.0.0"
    };
    let bind = settings
        .bind_address
        .clone()
        .unwrap_or_else(|| default_bind.to_owned());
    let ip: IpAddr = bind
        .parse()
        .with_context(|| format!("--bind-address {bind:?} is not an IP address"))?;
    if settings.standalone && !ip.is_loopback() {
        bail!(
            "--standalone serves without authentication and only binds to loopback addresses; {ip} is not one"
        );
    }
    let relist_interval =
        parse_duration(&settings.metrics_relist_interval).context("--metrics-relist-interval")?;
    if relist_interval.is_zero() {
        bail!("--metrics-relist-interval must be greater than zero");
    }
    let max_age = match parse_duration(&settings.metrics_max_age).context("--metrics-max-age")? {
        d if d.is_zero() => relist_interval,
        d if d < relist_interval => bail!(
            "--metrics-max-age ({d:?}) must not be less than --metrics-relist-interval ({relist_interval:?})"
        ),
        d => d,
    };
    let prometheus = client_config(ClientFlags {
        url: &settings.prometheus_url,
        timeout: &settings.prometheus_timeout,
        verb: &settings.prometheus_verb,
        headers: &settings.prometheus_header,
        token_file: settings.prometheus_token_file.clone(),
        ca_file: settings.prometheus_ca_file.clone(),
        client_cert: (
            settings.prometheus_client_tls_cert_file.clone(),
            settings.prometheus_client_tls_key_file.clone(),
        ),
        max_response_bytes: &settings.prometheus_max_response_bytes,
        auth_config: settings.prometheus_auth_config.clone(),
        auth_incluster: settings.prometheus_auth_incluster,
        service_account_dir: &settings.service_account_dir,
    })?;
    let shutdown = server::Shutdown {
        delay: parse_duration(&settings.shutdown_delay).context("--shutdown-delay")?,
        drain: parse_duration(&settings.shutdown_timeout).context("--shutdown-timeout")?,
    };
    let (policy, tls_warnings) = server::TlsPolicy::from_flags(
        settings.tls_min_version.as_deref(),
        &settings.tls_cipher_suites,
    )?;
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
        addr: SocketAddr::new(ip, settings.secure_port),
        shutdown,
        handshakes: server::HandshakeLimits {
            timeout: positive(&settings.tls_handshake_timeout, "--tls-handshake-timeout")?,
            max_concurrent: at_least_one(
                settings.max_concurrent_tls_handshakes,
                "--max-concurrent-tls-handshakes",
            )?,
        },
        cluster,
        tls_reload_interval: match parse_duration(&settings.tls_reload_interval)
            .context("--tls-reload-interval")?
        {
            d if d.is_zero() => bail!("--tls-reload-interval must be greater than zero"),
            d => d,
        },
        tls: server::TlsSource {
            client_cas: server::ClientCas {
                requestheader: settings.requestheader_client_ca_file.clone(),
                client: settings.client_ca_file.clone(),
            },
            policy,
            cert_file: settings.tls_cert_file.clone(),
            key_file: settings.tls_private_key_file.clone(),
            cert_dir: settings.cert_dir.clone(),
            extra_sans: settings.tls_san.clone(),
        },
    })
}

/// The client as the providers see it, with every call counted and timed.
struct InstrumentedClient {
    client: prometheus::Client,
    metrics: Arc<Metrics>,
}

impl InstrumentedClient {
    /// Wraps a client.
    fn new(client: prometheus::Client, metrics: Arc<Metrics>) -> Self {
        Self { client, metrics }
    }

    async fn observe<T>(
        &self,
        endpoint: &str,
        call: impl std::future::Future<Output = Result<T, prometheus::Error>>,
    ) -> Result<T, BackendError> {
        let started = std::time::Instant::now();
        let result = call.await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) if e.is_unavailable() => "unavailable",
            Err(_) => "error",
        };
        self.metrics
            .record_prometheus_call(endpoint, outcome, started.elapsed());
        result.map_err(|e| {
            if e.is_unavailable() {
                BackendError::Unavailable(e.to_string())
            } else {
                BackendError::Failed(e.to_string())
            }
        })
    }
}

impl MetricsBackend for InstrumentedClient {
    fn series_shapes<'a>(
        &'a self,
        selector: &'a str,
        start: f64,
        end: f64,
    ) -> BoxFuture<'a, Result<(Vec<SeriesShape>, u64), BackendError>> {
        Box::pin(self.observe(
            "/api/v1/series",
            self.client.series_shapes(selector, start, end),
        ))
    }

    fn label_values<'a>(
        &'a self,
        label: &'a str,
        selector: &'a str,
        start: f64,
        end: f64,
    ) -> BoxFuture<'a, Result<Vec<String>, BackendError>> {
        Box::pin(self.observe(
            "/api/v1/label/values",
            self.client.label_values(label, selector, start, end),
        ))
    }

    fn query<'a>(
        &'a self,
        promql: &'a str,
        time: f64,
    ) -> BoxFuture<'a, Result<QueryResult, BackendError>> {
        Box::pin(self.observe("/api/v1/query", self.client.query(promql, time)))
    }
}
