//! The `simulate` command: fetch an HPA's metric histories from Prometheus and replay the controller over them.

use std::process::ExitCode;

use anyhow::{Context, bail};

use prom_adapter_backend::prometheus;
use prom_adapter_core::model::parse_duration;
use prom_adapter_core::resources::ResourceTable;

/// `simulate`: fetches the HPA's metric histories and replays the controller over them.
pub fn run(args: &crate::cli::SimulateArgs) -> anyhow::Result<ExitCode> {
    use prom_adapter_tools::simulate::{self, history, hpa, render, replay};
    let (backends, rules) =
        super::explain::backends_and_rules(&args.config, args.settings.as_deref())?;
    let manifest = std::fs::read_to_string(&args.hpa)
        .with_context(|| format!("cannot read HPA manifest {}", args.hpa.display()))?;
    let hpa = hpa::parse(&manifest)?;
    let now = prom_adapter_telemetry::clock::unix_now() as i64;
    let start = simulate::parse_time(&args.start, now)?;
    let end = simulate::parse_time(&args.end, now)?;
    if end <= start {
        bail!("--end must be after --start");
    }
    let sync = parse_duration(&args.step).context("--step")?;
    if sync.as_secs() == 0 {
        bail!("--step must be at least 1s");
    }
    simulate::check_syncs(start, end, sync.as_secs())?;
    if let Some(replicas) = args.initial_replicas
        && !(0..=hpa::MAX_REPLICAS).contains(&replicas)
    {
        bail!(
            "--initial-replicas {replicas}: a simulation replays 0 to {} replicas",
            hpa::MAX_REPLICAS
        );
    }
    let oscillation = parse_duration(&args.oscillation_window).context("--oscillation-window")?;
    let mut pod_requests = std::collections::HashMap::new();
    for request in &args.pod_request {
        let Some((resource, quantity)) = request.split_once('=') else {
            bail!("--pod-request {request:?}: write RESOURCE=QUANTITY, e.g. cpu=250m");
        };
        let milli = prom_adapter_core::model::parse_quantity_milli(quantity)
            .map_err(|e| anyhow::anyhow!("--pod-request {request:?}: {e}"))?;
        pod_requests.insert(resource.to_owned(), milli);
    }
    if args.output == "yaml" && !args.recommend {
        bail!("--output yaml writes the recommended HPA: add --recommend");
    }
    let objective = args
        .recommend
        .then(|| super::recommend::objective(args, &hpa))
        .transpose()?;
    let explain_at = args
        .explain_at
        .as_deref()
        .map(|t| simulate::parse_time(t, now))
        .transpose()?;
    let pods = args
        .pods
        .clone()
        .unwrap_or_else(|| format!("{}-.*", regex::escape(&hpa.target_name)));
    let config = args.client.client_config(
        &args.prometheus_url,
        std::path::Path::new(prometheus::transport::SERVICE_ACCOUNT_DIR),
    )?;
    let table = ResourceTable::builtin();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let history = runtime.block_on(async {
        let client = prometheus::Client::new(config)?;
        let clients = prometheus::BackendClients::new(client, &backends)?;
        history::fetch(
            &clients,
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
        pod_model: match args.pod_model.as_deref() {
            Some("conserving") => replay::PodModel::Conserving,
            Some(_) => replay::PodModel::Observed,
            // The search moves replicas far from the observed ones: only a model where the load
            // follows them can score it.
            None if args.recommend => replay::PodModel::Conserving,
            None => replay::PodModel::Observed,
        },
        pod_requests,
        oscillation_window_seconds: oscillation.as_secs() as i64,
    };
    if let Some(objective) = objective {
        return super::recommend::run(args, &hpa, &manifest, &history, &options, &objective);
    }
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
