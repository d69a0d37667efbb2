//! `explain` against a live Prometheus: values as the API serves them (through the same providers as `serve`), and the human-readable rendering of reports and findings.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::abbreviate;
use super::report::RuleReport;
use super::why::{Finding, Verdict};
use prom_adapter_core::request::{RequestPath, ResourcePath};
use prom_adapter_provider::custom::CustomMetrics;
use prom_adapter_provider::external::ExternalMetrics;
use prom_adapter_provider::{Backends, MetricsBackend, SharedSnapshot};

/// One object's value, as the API serves it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ObjectValue {
    /// The object's name (custom metrics) or the sample's labels (external metrics).
    pub object: String,
    /// The value as a Kubernetes quantity.
    pub value: String,
}

/// Answers a request the way `serve` would, without a cluster: `*` means the objects Prometheus
/// has series for.
pub async fn values(
    snapshot: SharedSnapshot,
    backends: Backends,
    request: &RequestPath,
    max_age: Duration,
    now: f64,
) -> Result<Vec<ObjectValue>, String> {
    match request {
        RequestPath::Custom(request) => {
            let custom = CustomMetrics::new(snapshot, backends, max_age, None);
            let values = custom.get(request, now).await.map_err(|e| e.to_string())?;
            Ok(values
                .into_iter()
                .map(|v| ObjectValue {
                    object: v.object.name,
                    value: v.value,
                })
                .collect())
        }
        RequestPath::External(request) => {
            let external = ExternalMetrics::new(snapshot, backends);
            let values = external
                .get(request, now)
                .await
                .map_err(|e| e.to_string())?;
            Ok(values
                .into_iter()
                .map(|v| ObjectValue {
                    object: match v.labels {
                        Some(labels) => {
                            let pairs: Vec<String> =
                                labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                            format!("{{{}}}", pairs.join(","))
                        }
                        None => "(scalar)".to_owned(),
                    },
                    value: v.value,
                })
                .collect())
        }
    }
}

/// The objects a `metrics.k8s.io` request covers without a cluster, as `serve --standalone`
/// finds them: the named one, or the pods or nodes Prometheus has series for.
pub async fn resource_objects(
    snapshot: SharedSnapshot,
    backend: Arc<dyn MetricsBackend>,
    path: &ResourcePath,
) -> Result<Vec<String>, String> {
    use prom_adapter_provider::resource_objects::{PrometheusObjects, ResourceObjects};
    if let Some(name) = &path.name {
        return Ok(vec![name.clone()]);
    }
    let objects = PrometheusObjects::new(snapshot, backend);
    if path.resource == "nodes" {
        let nodes = objects.nodes().await.map_err(|e| e.to_string())?;
        return Ok(nodes.into_iter().map(|n| n.name).collect());
    }
    let pods = objects
        .running_pods(path.namespace.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    Ok(pods.into_iter().map(|p| p.name).collect())
}

/// Answers a `metrics.k8s.io` request the way `serve --standalone` does: one row per pod
/// container, or per node.
pub async fn resource_values(
    snapshot: SharedSnapshot,
    backend: Arc<dyn MetricsBackend>,
    path: &ResourcePath,
    now: f64,
) -> Result<Vec<ObjectValue>, String> {
    use prom_adapter_provider::resource::{PodMetrics, ResourceMetrics};
    use prom_adapter_provider::resource_objects::PrometheusObjects;
    let objects = Arc::new(PrometheusObjects::new(snapshot.clone(), backend.clone()));
    let metrics = ResourceMetrics::new(snapshot, backend, objects);
    let usage = |cpu: &str, memory: &str| format!("cpu={cpu} memory={memory}");
    if path.resource == "nodes" {
        let nodes = match &path.name {
            Some(name) => vec![metrics.node(name, now).await.map_err(|e| e.to_string())?],
            None => metrics
                .nodes(&Default::default(), &Default::default(), now)
                .await
                .map_err(|e| e.to_string())?,
        };
        return Ok(nodes
            .into_iter()
            .map(|n| ObjectValue {
                object: n.node.name,
                value: usage(&n.cpu, &n.memory),
            })
            .collect());
    }
    let namespace = path.namespace.as_deref().unwrap_or_default();
    let pods: Vec<PodMetrics> = match &path.name {
        Some(name) => vec![
            metrics
                .pod(namespace, name, now)
                .await
                .map_err(|e| e.to_string())?,
        ],
        None => metrics
            .pods(
                Some(namespace),
                &Default::default(),
                &Default::default(),
                now,
            )
            .await
            .map_err(|e| e.to_string())?,
    };
    Ok(pods
        .into_iter()
        .flat_map(|pod| {
            pod.containers.into_iter().map(move |c| ObjectValue {
                object: format!("{}/{}", pod.pod.name, c.name),
                value: usage(&c.cpu, &c.memory),
            })
        })
        .collect())
}

/// ANSI styling, on only for a terminal without `NO_COLOR`.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    colour: bool,
}

impl Style {
    /// Colour when `terminal` is true and `NO_COLOR` is unset.
    pub fn new(terminal: bool) -> Self {
        Self {
            colour: terminal && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
}

/// The per-rule reports as a compact text table.
pub fn render_reports(reports: &[RuleReport], style: Style) -> String {
    let mut out = String::new();
    for report in reports {
        let _ = writeln!(out, "{}  {}", style.bold(&report.rule), report.series_query);
        let filters: Vec<String> = report
            .filters
            .iter()
            .map(|f| format!("{} ({}) drops {}", f.filter, f.regex, f.dropped))
            .collect();
        let _ = writeln!(
            out,
            "  series    {} matched{}",
            report.series,
            if filters.is_empty() {
                String::new()
            } else {
                format!("; {}", filters.join("; "))
            }
        );
        let _ = writeln!(
            out,
            "  metrics   {}",
            if report.metrics.is_empty() {
                "none".to_owned()
            } else {
                abbreviate(&report.metrics, 8)
            }
        );
        let mapped: Vec<String> = report
            .resources
            .iter()
            .map(|(label, resource)| format!("{label}→{resource}"))
            .collect();
        let _ = writeln!(
            out,
            "  labels    {}{}",
            if mapped.is_empty() {
                "none map to a resource".to_owned()
            } else {
                mapped.join(", ")
            },
            if report.unmapped_labels.is_empty() {
                String::new()
            } else {
                format!("; unmapped: {}", abbreviate(&report.unmapped_labels, 8))
            }
        );
        if !report.scope.is_empty() {
            let _ = writeln!(out, "  scope     {}", report.scope);
        }
    }
    out
}

/// Object values as a two-column table.
pub fn render_values(values: &[ObjectValue], style: Style) -> String {
    let width = values
        .iter()
        .map(|v| v.object.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut out = format!("{}\n", style.bold(&format!("{:<width$}  VALUE", "OBJECT")));
    for value in values {
        let _ = writeln!(out, "{:<width$}  {}", value.object, value.value);
    }
    out
}

/// A `--why` finding, one field per line.
pub fn render_finding(finding: &Finding, style: Style) -> String {
    let verdict = serde_json::to_value(finding.verdict)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let painted = if finding.verdict == Verdict::Served {
        style.paint("32", &verdict)
    } else {
        style.paint("31", &verdict)
    };
    let mut out = format!(
        "verdict  {painted}{}\n",
        finding
            .rule
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "why      {}", finding.explanation);
    if !finding.fix.is_empty() {
        let _ = writeln!(out, "fix      {}", finding.fix);
    }
    if let Some(query) = &finding.query {
        let _ = writeln!(out, "query    {query}");
    }
    if let Some(value) = &finding.value {
        let _ = writeln!(out, "value    {value}");
    }
    out
}
