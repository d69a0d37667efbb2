//! The Prometheus side of a simulation: the series the rules discover over the range, the target's pods, and each metric's history by range query.

use std::time::Duration;

use super::Error;
use super::hpa::Hpa;
use super::plan::{self, MetricQuery};
use super::replay::MetricHistory;
use prom_adapter_backend::prometheus::{BackendClients, RangeSeries};
use prom_adapter_core::promql::{LabelMatcher, MatchOp};
use prom_adapter_core::resources::ResourceTable;
use prom_adapter_core::rules::RuleSet;

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
    clients: &BackendClients,
    rules: &RuleSet,
    table: &ResourceTable,
    hpa: &Hpa,
    pods: &str,
    start: f64,
    end: f64,
    sync: Duration,
) -> Result<History, Error> {
    let prometheus = |e: prom_adapter_backend::prometheus::Error| Error::Prometheus(e.to_string());
    // Discovery over the whole range (plus the usual 10 min before it), so that metrics that
    // existed at any moment are planned.
    let listed = clients
        .list_series(rules, start - 600.0, end)
        .await
        .map_err(|e| Error::Prometheus(e.to_string()))?;
    let registry = listed.registry(rules, table);
    let namespace = Some(hpa.namespace.as_str());
    let pod_names = match plan::pod_labels(rules, &registry, table, hpa) {
        Some((pod_label, namespace_label, backend)) => {
            let client = clients
                .client(backend.as_deref(), namespace)
                .map_err(prometheus)?;
            let matchers = [
                LabelMatcher::new(&namespace_label, MatchOp::Equal, hpa.namespace.as_str()),
                LabelMatcher::new(&pod_label, MatchOp::Regex, pods),
            ]
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Manifest(format!("--pods {pods:?}: {e}")))?;
            let mut names = client
                .label_values(
                    &pod_label,
                    &prom_adapter_core::promql::selector(&matchers),
                    start,
                    end,
                )
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
        backend,
    } in queries
    {
        let client = clients
            .client(backend.as_deref(), namespace)
            .map_err(prometheus)?;
        let mut series: Vec<RangeSeries> = Vec::new();
        for (from, to) in chunks(start, end, sync) {
            for part in client
                .query_range(&query, from, to, sync)
                .await
                .map_err(prometheus)?
            {
                match series.iter_mut().find(|s| s.labels == part.labels) {
                    Some(existing) => existing.points.extend(part.points),
                    None => series.push(part),
                }
            }
        }
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

/// Prometheus refuses range queries of more than 11,000 points per series; longer replays are
/// fetched in consecutive pieces that share the sync grid.
const POINTS_PER_QUERY: f64 = 10_000.0;

fn chunks(start: f64, end: f64, step: Duration) -> Vec<(f64, f64)> {
    let step = step.as_secs_f64().max(1.0);
    let span = step * (POINTS_PER_QUERY - 1.0);
    let mut pieces = Vec::new();
    let mut from = start;
    while from <= end {
        let to = (from + span).min(end);
        pieces.push((from, to));
        from = to + step;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_ranges_are_split_on_the_sync_grid_without_gaps_or_overlap() {
        let step = Duration::from_secs(15);
        assert_eq!(chunks(0.0, 600.0, step), vec![(0.0, 600.0)]);
        let pieces = chunks(0.0, 15.0 * 25_000.0, step);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[0], (0.0, 15.0 * 9_999.0));
        assert_eq!(pieces[1].0, 15.0 * 10_000.0);
        assert_eq!(pieces[2].1, 15.0 * 25_000.0);
        let points: f64 = pieces.iter().map(|(a, b)| (b - a) / 15.0 + 1.0).sum();
        assert_eq!(points, 25_001.0, "every sync exactly once");
    }
}
