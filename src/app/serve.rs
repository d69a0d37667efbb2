//! The `serve` command: settings layered and resolved (`cli::serve`), logging started, then the server (`prom_adapter_serve::serve`).

use std::process::ExitCode;

use crate::cli::ServeArgs;
use crate::cli::serve::resolve;
use crate::cli::settings;
use prom_adapter_telemetry::init_logging;

pub fn run(args: ServeArgs, warnings: Vec<String>) -> anyhow::Result<ExitCode> {
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("PROM_ADAPTER_"))
        .collect();
    let settings = settings::load(args.settings.as_deref(), &env, &args)?;
    let (verbosity, format) = settings.logging.resolve()?;
    init_logging(verbosity, format);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let serve_config = resolve(&settings)?;
    prom_adapter_serve::serve(serve_config)?;
    Ok(ExitCode::SUCCESS)
}
