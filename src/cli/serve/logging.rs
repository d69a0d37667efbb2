//! Log level and format: the flags, and what they resolve to.

use anyhow::bail;
use clap::Args;

use prom_adapter_telemetry::LogFormat;

/// Log level and format.
#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Logging")]
#[serde(default)]
pub struct LoggingArgs {
    /// Log verbosity as klog's: 0-4 info, 5-7 debug, 8+ trace.
    #[arg(short = 'v', long = "v")]
    pub v: Option<u8>,
    /// Log format: text or json.
    #[arg(long)]
    pub log_format: Option<String>,
}

impl LoggingArgs {
    /// The klog verbosity (0 when not given) and the format; read before the other settings, so
    /// that their problems are logged as asked.
    pub fn resolve(&self) -> anyhow::Result<(u8, LogFormat)> {
        let format = match self.log_format.as_deref().unwrap_or("text") {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => bail!("--log-format must be text or json, not {other:?}"),
        };
        Ok((self.v.unwrap_or(0), format))
    }
}
