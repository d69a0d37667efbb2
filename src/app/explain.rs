//! The `check` and `explain` commands: load a rules file and report on it, offline or against a live Prometheus.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::cli::ExplainArgs;
use prom_adapter_backend::prometheus;
use prom_adapter_core::model::parse_duration;
use prom_adapter_core::resources::ResourceTable;
use prom_adapter_provider::{Backends, MetricsBackend, Snapshot};
use prom_adapter_telemetry::Metrics;
use prom_adapter_tools::explain;

/// `check`: validates a rules file offline and prints one line per rule; exit 1 on an error (or
/// a warning, with `strict`).
pub fn check(
    path: &std::path::Path,
    strict: bool,
    settings: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let mut settings_warnings = Vec::new();
    let backends = match settings {
        Some(file) => {
            let backends = load_backends(file)?;
            for backend in &backends {
                settings_warnings.extend(backend.tenancy.warnings().into_iter().map(|warning| {
                    format!("{}: backends.{}.{warning}", file.display(), backend.name)
                }));
            }
            Some(backends.into_iter().map(|b| b.name).collect::<Vec<_>>())
        }
        None => None,
    };
    let known: Option<Vec<&str>> = backends
        .as_ref()
        .map(|names| names.iter().map(String::as_str).collect());
    match prom_adapter_serve::reload::load_rules_and_text(path, known.as_deref())
        .map(|(rules, _)| rules)
    {
        Ok(rules) => {
            if backends.is_none() {
                for rule in rules.custom.iter().chain(&rules.external) {
                    if let Some(backend) = &rule.backend {
                        println!(
                            "{}:{}:{}: backend {:?} is not checked: give --settings with serve's settings file",
                            path.display(),
                            backend.line,
                            backend.column,
                            backend.name
                        );
                    }
                }
            }
            for line in explain::summarize(&rules) {
                println!("{line}");
            }
            let warnings = explain::lint::static_warnings(&rules);
            for warning in &warnings {
                println!("{warning}");
            }
            for warning in &settings_warnings {
                println!("{warning}");
            }
            let warned = warnings.len() + settings_warnings.len();
            if strict && warned > 0 {
                eprintln!(
                    "{}: {warned} warning(s), which --strict treats as failures",
                    path.display(),
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

/// The settings file's `backends:`, each checked as `serve` checks it (`explain`, `simulate` and
/// `check` take serve's settings file for them).
pub fn load_backends(
    file: &std::path::Path,
) -> anyhow::Result<Vec<prom_adapter_backend::prometheus::NamedBackendConfig>> {
    let settings = crate::cli::settings::load(Some(file), &[], &crate::cli::ServeArgs::default())?;
    let sharing = prom_adapter_provider::query_cache::QuerySharing {
        ttl: std::time::Duration::ZERO,
        time_step: std::time::Duration::ZERO,
        max_concurrent: 64,
        max_queued: 1024,
        queue_timeout: std::time::Duration::from_secs(30),
    };
    let service_account_dir = settings
        .service_account_dir
        .clone()
        .unwrap_or_else(|| prom_adapter_backend::prometheus::transport::SERVICE_ACCOUNT_DIR.into());
    crate::cli::backends::resolve(&settings.backends, &sharing, &service_account_dir)
        .map_err(|problems| anyhow::anyhow!("{}: {}", file.display(), problems.join("\n  ")))
}

/// The backends of `settings` (none without it), and the rules checked against them.
pub(crate) fn backends_and_rules(
    config: &std::path::Path,
    settings: Option<&std::path::Path>,
) -> anyhow::Result<(
    Vec<prom_adapter_backend::prometheus::NamedBackendConfig>,
    prom_adapter_core::rules::RuleSet,
)> {
    let backends = match settings {
        Some(file) => load_backends(file)?,
        None => Vec::new(),
    };
    let known: Vec<&str> = backends.iter().map(|b| b.name.as_str()).collect();
    let (rules, _) =
        prom_adapter_serve::reload::load_rules_and_text(config, settings.map(|_| &known[..]))?;
    Ok((backends, rules))
}

/// `explain`: offline over a series file, or live against `--prometheus-url`.
pub fn run(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let (backends, rules) = backends_and_rules(&args.config, args.settings.as_deref())?;
    let table = ResourceTable::builtin();
    match (&args.series, &args.prometheus_url) {
        (Some(file), _) => explain_offline(args, &rules, &table, file),
        (None, Some(url)) => explain_live(args, rules, table, url, backends),
        (None, None) => bail!("give --series FILE or --prometheus-url URL"),
    }
}

fn explain_offline(
    args: &ExplainArgs,
    rules: &prom_adapter_core::rules::RuleSet,
    table: &ResourceTable,
    file: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read series file {}", file.display()))?;
    let series = explain::parse_series_file(&text)?;
    let registry = prom_adapter_core::registry::Registry::from_series(rules, &series, table);
    let json = args.output == "json";
    match &args.request_path {
        Some(path) => {
            let query = explain::query_for_path(rules, &registry, table, path, &args.objects)?;
            let batched = explain::batched_query_for_path(rules, &registry, table, path);
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "query": query, "batched": batched })
                );
            } else {
                println!("{query}");
                if let Some(batched) = batched {
                    println!(
                        "# serve asks once for every object of the namespace and keeps these objects' values (--disable-query-batching asks the query above):\n{batched}"
                    );
                }
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
    rules: prom_adapter_core::rules::RuleSet,
    table: ResourceTable,
    url: &str,
    backends: Vec<prometheus::NamedBackendConfig>,
) -> anyhow::Result<ExitCode> {
    use prom_adapter_tools::explain::{live, report, why};
    let max_age = parse_duration(&args.metrics_max_age).context("--metrics-max-age")?;
    let config = args.client.client_config(
        url,
        std::path::Path::new(prometheus::transport::SERVICE_ACCOUNT_DIR),
    )?;
    let json = args.output == "json";
    let style = live::Style::new(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client = prometheus::Client::new(config)?;
        let clients = prometheus::BackendClients::new(client.clone(), &backends)?;
        let metrics = Arc::new(Metrics::new());
        let router = (!backends.is_empty())
            .then(|| prometheus::SharedNamedBackends::new(backends, metrics.clone()).router())
            .transpose()?;
        let now = prom_adapter_telemetry::clock::unix_now();
        let start = now - max_age.as_secs_f64();
        let listed = clients.list_series(&rules, start, now).await?;
        for failure in &listed.failed {
            eprintln!("note: {failure}; its rules discover nothing here");
        }
        let series = listed.series.clone();
        let window = format!(
            "in the last {} (--metrics-max-age)",
            prom_adapter_core::model::format_go_duration(max_age)
        );
        let registry = listed.registry(&rules, &table);
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
            Arc::new(prometheus::InstrumentedClient::new(client, metrics));
        let mut backends = Backends::new(backend.clone());
        if let Some(router) = router {
            backends = backends.with_named(Arc::new(router));
        }
        // What the providers read, as `serve` would hold it after this relist.
        let snapshot = Arc::new(arc_swap::ArcSwap::from_pointee(Snapshot {
            registry: Arc::new(registry),
            rules: Arc::new(rules),
            table: Arc::new(table),
            discovered: true,
        }));
        let loaded = snapshot.load_full();
        if let Some(resource_path) = prom_adapter_core::request::parse_resource_path(path) {
            let resource_path = resource_path?;
            anyhow::ensure!(
                !args.why,
                "--why follows custom and external metrics through discovery; a metrics.k8s.io path has no discovery: without --why, explain prints its queries and the values they give"
            );
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
        let request = prom_adapter_core::request::parse_request_path(path)?;
        let (rules, table) = (&loaded.rules, &loaded.table);
        let finding = match why::walk(rules, &loaded.registry, &series, table, &request, &window) {
            why::Walk::Lost(finding) => finding,
            why::Walk::Query(probe) if args.why => {
                let backend = backends
                    .for_rule(probe.backend.as_deref(), request.namespace())
                    .map_err(|e| anyhow::anyhow!("backend {:?}: {e}", probe.backend))?;
                let result = backend
                    .query(&probe.query, now)
                    .await
                    .map_err(|e| anyhow::anyhow!("running {}: {e}", probe.query))?;
                why::judge(&probe, &result)
            }
            why::Walk::Query(probe) => {
                let values = live::values(snapshot, backends, &request, max_age, now)
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
