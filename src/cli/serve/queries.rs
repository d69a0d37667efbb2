//! How Prometheus queries are shared between callers, and limited: the flags, their defaults and checks, and what they resolve to.

use std::time::Duration;

use clap::Args;

use super::{HPA_SYNC, Problems, at_least_one, duration};
use prom_adapter_core::plan::{DEFAULT_MAX_QUERY_LENGTH, QueryShaping};
use prom_adapter_provider::query_cache::QuerySharing;

/// How Prometheus queries are shared between callers, and limited.
#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Queries")]
#[serde(default)]
pub struct QueryArgs {
    /// How long an instant query's answer is served again; 0 keeps none (identical queries in
    /// flight are still merged). Shorter than the HPA's 15s sync [default: 5s].
    #[arg(long)]
    pub query_cache_ttl: Option<String>,
    /// Instant queries are evaluated at the request time rounded down to this step, so that
    /// replicas and repeated callers share answers; 0 keeps the request time [default: 5s].
    #[arg(long)]
    pub query_time_step: Option<String>,
    /// Prometheus calls running at once [default: 64].
    #[arg(long)]
    pub prometheus_max_concurrent_queries: Option<u32>,
    /// Prometheus calls waiting for a slot, each at most --prometheus-timeout; more are answered
    /// 503 at once [default: 1024].
    #[arg(long)]
    pub prometheus_max_queued_queries: Option<u32>,
    /// The longest query sent, in bytes: a longer one (many objects by name) is sent as several,
    /// whose answers are merged. The default fits VictoriaMetrics' 16 KiB [default: 16000].
    #[arg(long)]
    pub max_query_length: Option<u32>,
    /// Ask for each requested object by name, even where one query for every object of the
    /// namespace would answer every request for the metric there (see "Sharing queries").
    #[arg(long)]
    pub disable_query_batching: bool,
}

impl QueryArgs {
    /// With `queue_timeout`, how long a call may wait for a slot (the Prometheus timeout).
    pub(super) fn resolve(
        &self,
        p: &mut Problems,
        queue_timeout: Duration,
    ) -> (QuerySharing, QueryShaping) {
        let ttl = p.take(duration(&self.query_cache_ttl, "5s", "--query-cache-ttl"));
        if ttl >= HPA_SYNC {
            p.note(format!("--query-cache-ttl ({ttl:?}) must be shorter than the HPA controller's 15s sync, or HPAs would read the same value twice"));
        }
        let time_step = p.take(duration(&self.query_time_step, "5s", "--query-time-step"));
        if time_step >= HPA_SYNC {
            p.note(format!(
                "--query-time-step ({time_step:?}) must be shorter than the HPA controller's 15s sync"
            ));
        }
        let max_length = self
            .max_query_length
            .map_or(DEFAULT_MAX_QUERY_LENGTH, |n| n as usize);
        if max_length < 1024 {
            p.note(format!("--max-query-length ({max_length}) must be at least 1024 bytes, room for one object's query"));
        }
        let sharing = QuerySharing {
            ttl,
            time_step,
            max_concurrent: p.take(at_least_one(
                self.prometheus_max_concurrent_queries,
                64,
                "--prometheus-max-concurrent-queries",
            )),
            max_queued: self.prometheus_max_queued_queries.unwrap_or(1024) as usize,
            queue_timeout,
        };
        let shaping = QueryShaping {
            batch: !self.disable_query_batching,
            max_length,
        };
        (sharing, shaping)
    }
}
