//! The Prometheus client as the providers' `MetricsBackend` port: every call counted and timed in the adapter's own metrics.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{Client, Error};
use prom_adapter_core::model::{QueryResult, SeriesShape};
use prom_adapter_provider::{BackendError, MetricsBackend};
use prom_adapter_telemetry::Metrics;

/// The client as the providers see it, with every call counted and timed.
pub struct InstrumentedClient {
    client: Client,
    metrics: Arc<Metrics>,
    /// The backend's name in `/metrics`: `default` for `--prometheus-url`.
    name: Arc<str>,
}

impl InstrumentedClient {
    /// Wraps the default backend's client.
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        Self::named(client, metrics, Arc::from("default"))
    }

    /// Wraps a named backend's client.
    pub fn named(client: Client, metrics: Arc<Metrics>, name: Arc<str>) -> Self {
        Self {
            client,
            metrics,
            name,
        }
    }

    async fn observe<T>(
        &self,
        endpoint: &str,
        call: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, BackendError> {
        let started = std::time::Instant::now();
        let result = call.await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) if e.is_unavailable() => "unavailable",
            Err(_) => "error",
        };
        self.metrics
            .record_prometheus_call(&self.name, endpoint, outcome, started.elapsed());
        result.map_err(|e| match e {
            Error::TooLarge { .. } => BackendError::TooLarge(e.to_string()),
            e if e.is_unavailable() => BackendError::Unavailable(e.to_string()),
            e => BackendError::Failed(e.to_string()),
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
