//! prom-adapter's entry point: screens prometheus-adapter's legacy flags, parses the command line, dispatches to the command's composition root, and owns error printing and exit codes.

use std::process::ExitCode;

use clap::Parser;

use prom_adapter::app;
use prom_adapter::cli::{Cli, Command, screen_legacy_flags};

/// mimalloc gives freed memory back to the system within milliseconds; glibc's allocator kept
/// hundreds of megabytes after a burst of large Prometheus answers had been decoded and dropped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    prom_adapter_serve::server::install_crypto_provider();
    let (args, warnings) = match screen_legacy_flags(std::env::args().collect()) {
        Ok(screened) => screened,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    let result = match cli.command {
        None => app::serve::run(cli.serve, warnings),
        Some(Command::Serve(args)) => app::serve::run(*args, warnings),
        Some(Command::Check {
            config,
            strict,
            settings,
        }) => app::explain::check(&config, strict, settings.as_deref()),
        Some(Command::Explain(args)) => app::explain::run(&args),
        Some(Command::Simulate(args)) => app::simulate::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
