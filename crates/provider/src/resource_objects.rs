//! Where the running pods and nodes of `metrics.k8s.io` come from: the port, and its `--standalone` source (the pods and nodes Prometheus has series for).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{BackendError, MetricsBackend, SharedSnapshot};
use prom_adapter_core::model::{GroupResource, QueryResult};
use prom_adapter_core::promql::{LabelMatcher, MatchOp};

/// A running pod, as the object source knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels, for label selectors and the answer's metadata.
    pub labels: BTreeMap<String, String>,
}

/// A node, as the object source knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// Where the running pods and the nodes come from: the cluster, or Prometheus' label values in
/// `--standalone` mode.
pub trait ResourceObjects: Send + Sync + 'static {
    /// Running pods in `namespace` (every namespace when `None`).
    fn running_pods<'a>(
        &'a self,
        namespace: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<PodRef>, BackendError>>;
    /// Every node.
    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeRef>, BackendError>>;
}

/// `count by (labels) ({labels!=""})`: the query `--standalone` finds pods (namespace and pod
/// labels) and nodes with.
pub fn combinations_query(labels: &[&str]) -> Result<String, prom_adapter_core::promql::Error> {
    let matchers = labels
        .iter()
        .map(|l| LabelMatcher::new(l, MatchOp::NotEqual, ""))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(format!(
        "count by ({}) ({})",
        labels.join(","),
        prom_adapter_core::promql::selector(&matchers)
    ))
}

/// Without a cluster: the pods and nodes Prometheus has series for (labels as the rules map
/// them), so `kubectl top` works against a Prometheus alone. Objects carry no labels.
pub struct PrometheusObjects {
    snapshot: SharedSnapshot,
    backend: Arc<dyn MetricsBackend>,
}

impl PrometheusObjects {
    /// Objects from `backend`, labelled as the snapshot's `resourceRules.cpu` maps them.
    pub fn new(snapshot: SharedSnapshot, backend: Arc<dyn MetricsBackend>) -> Self {
        Self { snapshot, backend }
    }

    fn label(&self, resource: &str) -> Result<String, BackendError> {
        let snapshot = self.snapshot.load();
        let rules =
            snapshot.rules.resource.as_ref().ok_or_else(|| {
                BackendError::Failed("the rules file has no resourceRules".into())
            })?;
        rules
            .cpu
            .resources
            .label_for_resource(&GroupResource::new("", resource), &snapshot.table)
            .map_err(|e| BackendError::Failed(e.to_string()))
    }

    /// Every combination of these labels' values at now.
    async fn combinations(&self, labels: &[&str]) -> Result<Vec<Vec<String>>, BackendError> {
        let promql = combinations_query(labels).map_err(|e| BackendError::Failed(e.to_string()))?;
        let result = self
            .backend
            .query(&promql, prom_adapter_telemetry::clock::unix_now())
            .await?;
        let QueryResult::Vector(samples) = result else {
            return Err(BackendError::Failed(format!(
                "{promql} did not return a vector"
            )));
        };
        Ok(samples
            .iter()
            .map(|s| {
                labels
                    .iter()
                    .map(|l| s.labels.get(*l).cloned().unwrap_or_default())
                    .collect()
            })
            .collect())
    }
}

impl ResourceObjects for PrometheusObjects {
    fn running_pods<'a>(
        &'a self,
        namespace: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<PodRef>, BackendError>> {
        Box::pin(async move {
            let (ns_label, pod_label) = (self.label("namespaces")?, self.label("pods")?);
            let mut pods: Vec<PodRef> = self
                .combinations(&[&ns_label, &pod_label])
                .await?
                .into_iter()
                .filter_map(|values| {
                    let [namespace, name]: [String; 2] = values.try_into().ok()?;
                    Some(PodRef {
                        namespace,
                        name,
                        labels: BTreeMap::new(),
                    })
                })
                .filter(|p| namespace.is_none_or(|ns| p.namespace == ns))
                .collect();
            pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            Ok(pods)
        })
    }

    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeRef>, BackendError>> {
        Box::pin(async move {
            let node_label = self.label("nodes")?;
            let names: BTreeSet<String> = self
                .combinations(&[&node_label])
                .await?
                .into_iter()
                .filter_map(|mut values| values.pop())
                .collect();
            Ok(names
                .into_iter()
                .map(|name| NodeRef {
                    name,
                    labels: BTreeMap::new(),
                })
                .collect())
        })
    }
}
