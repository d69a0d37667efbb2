//! Running pods and nodes for `metrics.k8s.io`, from metadata-only watches (as metrics-server's informers), started once rules with `resourceRules` are served.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};

use super::Cluster;
use super::pod_index::PodIndex;
use prom_adapter_provider::BackendError;
use prom_adapter_provider::resource_objects::{NodeRef, PodRef, ResourceObjects};
use prom_adapter_telemetry::Metrics;

/// Running pods and nodes from watches (metadata only), so that `metrics.k8s.io` requests never
/// list from the API server, as metrics-server's informers do.
#[derive(Clone)]
pub struct PodsAndNodes {
    pods: std::sync::Arc<PodIndex>,
    nodes: Store<PartialObjectMeta<Node>>,
}

impl PodsAndNodes {
    /// The two caches, and the watches that fill them. Until the watches start, a request waits
    /// briefly for the first list and then answers 503.
    pub fn new(cluster: &Cluster, metrics: std::sync::Arc<Metrics>) -> (Self, PodAndNodeWatches) {
        let pods = std::sync::Arc::new(PodIndex::default());
        let (nodes, node_writer) = reflector::store();
        let watches = PodAndNodeWatches {
            client: cluster.client.clone(),
            pods: pods.clone(),
            node_writer,
            metrics,
        };
        (Self { pods, nodes }, watches)
    }
}

/// The watches behind `PodsAndNodes`, not started yet: only rules with `resourceRules` need
/// them, and a reload may add those later.
pub struct PodAndNodeWatches {
    client: kube::Client,
    pods: std::sync::Arc<PodIndex>,
    node_writer: reflector::store::Writer<PartialObjectMeta<Node>>,
    metrics: std::sync::Arc<Metrics>,
}

impl PodAndNodeWatches {
    /// Runs both watches; they retry with backoff until dropped.
    pub async fn run(self) {
        let running = watcher::Config::default().fields("status.phase=Running");
        let pods_api = Api::<PartialObjectMeta<Pod>>::all(self.client.clone());
        let nodes_api = Api::<PartialObjectMeta<Node>>::all(self.client);
        let pod_events = watcher(pods_api, running)
            .default_backoff()
            .inspect_ok(|event| self.pods.apply(event));
        let node_events = watcher(nodes_api, watcher::Config::default())
            .default_backoff()
            .modify(|node| node.metadata.managed_fields = None)
            .reflect(self.node_writer);
        tracing::info!("watching running pods and nodes for metrics.k8s.io");
        futures_util::future::join(
            drain("running-pods", pod_events, &self.metrics),
            drain("nodes", node_events, &self.metrics),
        )
        .await;
    }
}

/// Runs a watch stream, logging and counting its errors (the backoff retries them, listing again
/// when the watch's version has expired).
pub(super) async fn drain<T>(
    what: &'static str,
    events: impl Stream<Item = Result<T, watcher::Error>>,
    metrics: &Metrics,
) {
    futures_util::pin_mut!(events);
    while let Some(event) = events.next().await {
        if let Err(error) = event {
            metrics.record_watch_failure(what);
            tracing::warn!(%error, "watching {what} failed; retrying with backoff");
        }
    }
}

/// Waits briefly for a cache's first full list; a request before that is a 503, not an empty
/// answer.
async fn synced<K>(store: &Store<K>, what: &str) -> Result<(), BackendError>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    match tokio::time::timeout(CACHE_SYNC_WAIT, store.wait_until_ready()).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(not_synced(what)),
    }
}

fn not_synced(what: &str) -> BackendError {
    BackendError::Unavailable(format!(
        "the {what} cache has not synced with the cluster yet"
    ))
}

/// How long a request waits for the pod or node cache's first sync.
const CACHE_SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn labels_of(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

impl ResourceObjects for PodsAndNodes {
    fn running_pods<'a>(
        &'a self,
        namespace: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<PodRef>, BackendError>> {
        Box::pin(async move {
            if !self.pods.wait_ready(CACHE_SYNC_WAIT).await {
                return Err(not_synced("pod"));
            }
            let mut pods = Vec::new();
            self.pods.each(namespace, |namespace, name, labels| {
                pods.push(PodRef {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    labels: labels.clone(),
                })
            });
            Ok(pods)
        })
    }

    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeRef>, BackendError>> {
        Box::pin(async move {
            synced(&self.nodes, "node").await?;
            Ok(self
                .nodes
                .state()
                .iter()
                .filter_map(|node| {
                    Some(NodeRef {
                        name: node.metadata.name.clone()?,
                        labels: labels_of(&node.metadata),
                    })
                })
                .collect())
        })
    }
}
