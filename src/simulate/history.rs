//! The Prometheus side of a simulation: the series the rules discover over the range, the target's pods, and each metric's history by range query.

use std::time::Duration;

use super::Error;
use super::hpa::Hpa;
use super::plan::{self, MetricQuery};
use super::replay::MetricHistory;
use crate::prometheus::Client;
use crate::promql::{LabelMatcher, MatchOp};
use crate::registry::Registry;
use crate::resources::ResourceTable;
use crate::rules::RuleSet;

/// Everything a replay needs from Prometheus.
pub struct History {
    /// Each metric's query and series.
    pub metrics: Vec<MetricHistory>,
    /// The target's pods found in the range (for per-pod metrics).
    pub pods: Vec<String>,
}

/// Fetches the history of every metric of `hpa` between `start` and `end`, one point per sync.
/// `pods` is a regular expression for the target's pod names (Prometheus anchors it).
#[allow(clippy::too_many_arguments)]
pub async fn fetch(
    client: &Client,
    rules: &RuleSet,
    table: &ResourceTable,
    hpa: &Hpa,
    pods: &str,
    start: f64,
    end: f64,
    sync: Duration,
) -> Result<History, Error> {
    let prometheus = |e: crate::prometheus::Error| Error::Prometheus(e.to_string());
    // Discovery over the whole range (plus the usual 10 min before it), so that metrics that
    // existed at any moment are planned.
    let series = crate::explain::list_series(client, rules, start - 600.0, end)
        .await
        .map_err(|e| Error::Prometheus(e.to_string()))?;
    let registry = Registry::from_series(rules, &series, table);
    let pod_names = match plan::pod_labels(rules, &registry, table, hpa) {
        Some((pod_label, namespace_label)) => {
            let matchers = [
                LabelMatcher::new(&namespace_label, MatchOp::Equal, hpa.namespace.as_str()),
                LabelMatcher::new(&pod_label, MatchOp::Regex, pods),
            ]
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Manifest(format!("--pods {pods:?}: {e}")))?;
            let mut names = client
                .label_values(&pod_label, &crate::promql::selector(&matchers), start, end)
                .await
                .map_err(prometheus)?;
            names.sort();
            names
        }
        None => Vec::new(),
    };
    let queries = plan::plan(rules, &registry, table, hpa, &pod_names)?;
    let mut metrics = Vec::with_capacity(queries.len());
    for MetricQuery {
        metric,
        query,
        pod_label,
    } in queries
    {
        let series = client
            .query_range(&query, start, end, sync)
            .await
            .map_err(prometheus)?;
        metrics.push(MetricHistory {
            metric,
            query,
            pod_label,
            series,
        });
    }
    Ok(History {
        metrics,
        pods: pod_names,
    })
}
