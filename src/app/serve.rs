//! The `serve` command: settings layered and resolved (`cli::serve`), logging started, then the server (`prom_adapter_serve::serve`).

use std::process::ExitCode;

use anyhow::bail;

use crate::cli::ServeArgs;
use crate::cli::serve::resolve;
use crate::cli::settings;
use prom_adapter_telemetry::{LogFormat, init_logging};

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
    init_logging(settings.logging.v.unwrap_or(0), format);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let serve_config = resolve(&settings)?;
    prom_adapter_serve::serve(serve_config)?;
    Ok(ExitCode::SUCCESS)
}
