//! The objects of a `*` request's label selector, without a LIST per request: pods from a metadata watch of every pod (started by the first pods request), other resources (and pods until that watch has synced) from LISTs merged in flight and kept for a short TTL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{Notify, OnceCell};
use tokio::time::Instant;

use super::Cluster;
use super::pod_index::PodIndex;
use prom_adapter_core::promql::LabelSelector;
use prom_adapter_core::resources::ResourceInfo;
use prom_adapter_provider::{BackendError, ObjectLister};
use prom_adapter_telemetry::Metrics;

/// Lists kept at most; past it, lists are still merged in flight but not kept.
const MAX_KEPT_LISTS: usize = 4096;

type Names = Result<Arc<Vec<String>>, BackendError>;

/// One list: the same resource, namespace and selector.
type ListKey = (String, Option<String>, String);

struct Listing {
    names: Arc<OnceCell<Names>>,
    at: Instant,
}

/// Object names by label selector, for the custom metrics API in a cluster.
pub struct SelectedObjects {
    cluster: Cluster,
    pods: Arc<PodIndex>,
    start_pod_watch: Arc<Notify>,
    pod_watch_asked: AtomicBool,
    lists: Mutex<HashMap<ListKey, Listing>>,
    ttl: Duration,
    metrics: Arc<Metrics>,
}

/// The watch of every pod's metadata behind `SelectedObjects`, waiting for the first pods
/// request.
pub struct PodLabelWatch {
    client: kube::Client,
    pods: Arc<PodIndex>,
    start: Arc<Notify>,
    metrics: Arc<Metrics>,
}

impl SelectedObjects {
    /// The lookups, and the pod watch to run (it waits for the first pods request). Lists are
    /// kept for `ttl` (zero keeps none; identical lists in flight are still merged).
    pub fn new(cluster: &Cluster, ttl: Duration, metrics: Arc<Metrics>) -> (Self, PodLabelWatch) {
        let pods = Arc::new(PodIndex::default());
        let start = Arc::new(Notify::new());
        let watch = PodLabelWatch {
            client: cluster.client.clone(),
            pods: pods.clone(),
            start: start.clone(),
            metrics: metrics.clone(),
        };
        let objects = Self {
            cluster: cluster.clone(),
            pods,
            start_pod_watch: start,
            pod_watch_asked: AtomicBool::new(false),
            lists: Mutex::new(HashMap::new()),
            ttl,
            metrics,
        };
        (objects, watch)
    }

    /// The pods of `namespace` that `selector` selects, from the watch's cache once it has
    /// synced; `None` before (the caller lists).
    fn watched_pods(
        &self,
        namespace: Option<&str>,
        selector: &LabelSelector,
    ) -> Option<Vec<String>> {
        if !self.pod_watch_asked.swap(true, Ordering::SeqCst) {
            self.start_pod_watch.notify_one();
        }
        (self.pods.is_ready()).then(|| self.pods.selected(namespace, selector))
    }

    fn lists(&self) -> std::sync::MutexGuard<'_, HashMap<ListKey, Listing>> {
        // Nothing panics while the lock is held.
        self.lists.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The names a LIST gives, kept for the TTL and shared by identical lists in flight.
    async fn listed(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        selector: &LabelSelector,
    ) -> Names {
        let key = (
            resource.group_resource().to_string(),
            namespace.map(str::to_owned),
            selector.to_string(),
        );
        let now = Instant::now();
        let (names, source) = {
            let mut lists = self.lists();
            match lists.get(&key) {
                Some(listing) if listing.names.get().is_none() => (listing.names.clone(), "merged"),
                Some(listing)
                    if matches!(listing.names.get(), Some(Ok(_)))
                        && now.duration_since(listing.at) < self.ttl =>
                {
                    (listing.names.clone(), "hit")
                }
                _ => {
                    // Lists past the TTL go, and so do unanswered ones no caller waits for
                    // any more (the map holds the only reference).
                    lists.retain(|_, l| match l.names.get() {
                        None => Arc::strong_count(&l.names) > 1,
                        Some(_) => now.duration_since(l.at) < self.ttl,
                    });
                    let names = Arc::new(OnceCell::new());
                    if lists.len() < MAX_KEPT_LISTS {
                        let listing = Listing {
                            names: names.clone(),
                            at: now,
                        };
                        lists.insert(key.clone(), listing);
                    }
                    (names, "list")
                }
            }
        };
        self.metrics.record_object_lookup(source);
        let answer = names
            .get_or_init(|| async {
                self.cluster
                    .list_names(resource, namespace, selector)
                    .await
                    .map(Arc::new)
            })
            .await
            .clone();
        // A failed list is not kept; nor is any list without a TTL, once answered.
        if answer.is_err() || self.ttl.is_zero() {
            let mut lists = self.lists();
            if lists
                .get(&key)
                .is_some_and(|l| Arc::ptr_eq(&l.names, &names))
            {
                lists.remove(&key);
            }
        }
        answer
    }
}

impl ObjectLister for SelectedObjects {
    fn names<'a>(
        &'a self,
        resource: &'a ResourceInfo,
        namespace: Option<&'a str>,
        selector: &'a LabelSelector,
    ) -> BoxFuture<'a, Result<Vec<String>, BackendError>> {
        Box::pin(async move {
            if resource.group.is_empty()
                && resource.plural == "pods"
                && let Some(names) = self.watched_pods(namespace, selector)
            {
                self.metrics.record_object_lookup("watch");
                return Ok(names);
            }
            self.listed(resource, namespace, selector)
                .await
                .map(|names| names.as_ref().clone())
        })
    }
}

impl PodLabelWatch {
    /// Waits for the first pods request, then watches every pod's metadata (only names,
    /// namespaces and labels are kept), relisting with backoff when it breaks.
    pub async fn run(self) {
        self.start.notified().await;
        // `PartialObjectMeta`: metadata-only lists and watches on the wire.
        let pods = Api::<PartialObjectMeta<Pod>>::all(self.client);
        let events = watcher(pods, watcher::Config::default())
            .default_backoff()
            .inspect_ok(|event| self.pods.apply(event));
        tracing::info!("watching pods' labels for label-selector requests");
        super::watch::drain("pods", events, &self.metrics).await;
    }
}
