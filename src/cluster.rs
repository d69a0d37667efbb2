//! Outbound Kubernetes client: the resource table from API discovery, and object names by label selector.
//!
//! (Named `cluster`, not `kube`, so that it does not shadow the `kube` crate.)

use std::path::Path;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use kube::api::{Api, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::collections::BTreeMap;

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::core::discovery::v2::APIGroupDiscoveryList;
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::promql::LabelSelector;
use crate::provider::resource::{NodeRef, PodRef, ResourceObjects};
use crate::provider::{BackendError, ObjectLister};
use crate::resources::{ResourceInfo, ResourceTable};

/// Why a Kubernetes call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable configuration: no kubeconfig file and not running in a pod.
    #[error("cannot configure the Kubernetes client: {0}")]
    Config(String),
    /// A request to kube-apiserver failed.
    #[error("Kubernetes API request failed: {0}")]
    Api(#[from] kube::Error),
}

/// A connection to the cluster's API server.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    /// Lists and discovery (`--client-qps`, `--client-burst`).
    throttle: Arc<Throttle>,
    /// TokenReviews and SubjectAccessReviews, apart from lists so that neither starves the other.
    review_throttle: Arc<Throttle>,
}

/// kube-apiserver's delegating authenticator and authorizer allow their clients 200 requests per
/// second with bursts of 400: reviews limit how fast every request can be answered.
const REVIEW_QPS: f32 = 200.0;
/// How long a label-selector list may take, waiting for the throttle included: the HPA controller
/// gives up on a metrics request after about 30 s, and a stalled list should not hold it that long.
const LIST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const REVIEW_BURST: u32 = 400;

/// Client-side rate limit (`--client-qps`, `--client-burst`), like client-go's token bucket: every
/// call to the API server takes a token; tokens refill at `qps` up to `burst`.
struct Throttle {
    qps: f64,
    burst: f64,
    state: tokio::sync::Mutex<(f64, tokio::time::Instant)>,
}

impl Throttle {
    fn new(qps: f32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            qps: f64::from(qps).max(0.001),
            burst,
            state: tokio::sync::Mutex::new((burst, tokio::time::Instant::now())),
        }
    }

    async fn acquire(&self) {
        loop {
            let wait = {
                let mut state = self.state.lock().await;
                let (tokens, last) = &mut *state;
                *tokens = (*tokens + last.elapsed().as_secs_f64() * self.qps).min(self.burst);
                *last = tokio::time::Instant::now();
                if *tokens >= 1.0 {
                    *tokens -= 1.0;
                    return;
                }
                std::time::Duration::from_secs_f64((1.0 - *tokens) / self.qps)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

impl Cluster {
    /// Connects with a kubeconfig file, or else as `kubectl` would (`KUBECONFIG`, `~/.kube/config`,
    /// then the pod's service account).
    pub async fn connect(kubeconfig: Option<&Path>, qps: f32, burst: u32) -> Result<Self, Error> {
        let mut config = match kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path)
                    .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
                kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
            }
            None => kube::Config::infer()
                .await
                .map_err(|e| Error::Config(e.to_string()))?,
        };
        let agent = concat!("prom-adapter/", env!("CARGO_PKG_VERSION"));
        if let Ok(value) = agent.parse() {
            config.headers.push((http::header::USER_AGENT, value));
        }
        let client = kube::Client::try_from(config).map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self {
            client,
            throttle: Arc::new(Throttle::new(qps, burst)),
            review_throttle: Arc::new(Throttle::new(REVIEW_QPS, REVIEW_BURST)),
        })
    }

    /// Every resource the server offers (preferred version of each group), for resolving names
    /// and scopes. Subresources are left out. Aggregated discovery (two requests, Kubernetes
    /// 1.26+) is used where the server offers it; otherwise one request per group, as before.
    pub async fn resource_table(&self) -> Result<ResourceTable, Error> {
        match self.aggregated_resource_table().await {
            Ok(Some(table)) => return Ok(table),
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, "aggregated discovery failed; using the per-group documents")
            }
        }
        self.legacy_resource_table().await
    }

    /// `None` when the server answered with the legacy documents (it does not serve aggregated
    /// discovery, and the Accept header lets it fall back to plain JSON).
    async fn aggregated_resource_table(&self) -> Result<Option<ResourceTable>, Error> {
        self.throttle.acquire().await;
        let core = self.client.list_core_api_versions_aggregated().await?;
        self.throttle.acquire().await;
        let groups = self.client.list_api_groups_aggregated().await?;
        if core.items.is_empty() || groups.items.is_empty() {
            return Ok(None);
        }
        let mut entries = resources_of_aggregated(&core);
        entries.extend(resources_of_aggregated(&groups));
        Ok(Some(ResourceTable::new(entries)))
    }

    async fn legacy_resource_table(&self) -> Result<ResourceTable, Error> {
        let mut entries = Vec::new();
        self.throttle.acquire().await;
        let core = self.client.list_core_api_versions().await?;
        if core.versions.iter().any(|v| v == "v1") {
            self.throttle.acquire().await;
            let list = self.client.list_core_api_resources("v1").await?;
            entries.extend(resources_of("", "v1", &list));
        }
        self.throttle.acquire().await;
        for group in self.client.list_api_groups().await?.groups {
            let Some(preferred) = group
                .preferred_version
                .or_else(|| group.versions.first().cloned())
            else {
                continue;
            };
            self.throttle.acquire().await;
            match self
                .client
                .list_api_group_resources(&preferred.group_version)
                .await
            {
                Ok(list) => entries.extend(resources_of(&group.name, &preferred.version, &list)),
                // One broken aggregated API must not hide every other group.
                Err(error) => {
                    tracing::warn!(group_version = %preferred.group_version, %error, "skipping a group in discovery")
                }
            }
        }
        Ok(ResourceTable::new(entries))
    }
}

/// The preferred version of each group in an aggregated discovery document. Versions come in
/// preference order; a version marked `Stale` (its aggregated API server did not answer) is
/// skipped, as client-go does, so the next one is used if there is one.
fn resources_of_aggregated(list: &APIGroupDiscoveryList) -> Vec<ResourceInfo> {
    let mut entries = Vec::new();
    for group in &list.items {
        let group_name = group
            .metadata
            .as_ref()
            .and_then(|m| m.name.as_deref())
            .unwrap_or_default();
        let mut versions = group.versions.iter().filter(|v| {
            let stale = v.freshness.as_deref() == Some("Stale");
            if stale {
                tracing::warn!(group = group_name, version = ?v.version, "discovery marks this group version stale; skipping it");
            }
            !stale
        });
        let Some(preferred) = versions.next() else {
            continue;
        };
        let version = preferred.version.clone().unwrap_or_default();
        for resource in &preferred.resources {
            let Some(plural) = resource.resource.as_deref().filter(|p| !p.contains('/')) else {
                continue;
            };
            let kind = resource
                .response_kind
                .as_ref()
                .and_then(|k| k.kind.clone())
                .unwrap_or_default();
            let singular = match resource.singular_resource.as_deref() {
                Some(singular) if !singular.is_empty() => singular.to_owned(),
                _ => kind.to_ascii_lowercase(),
            };
            entries.push(ResourceInfo {
                group: group_name.to_owned(),
                version: version.clone(),
                kind,
                plural: plural.to_owned(),
                singular,
                namespaced: resource.scope.as_deref() == Some("Namespaced"),
            });
        }
    }
    entries
}

fn resources_of(
    group: &str,
    version: &str,
    list: &k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList,
) -> Vec<ResourceInfo> {
    list.resources
        .iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| ResourceInfo {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: r.kind.clone(),
            plural: r.name.clone(),
            singular: if r.singular_name.is_empty() {
                r.kind.to_ascii_lowercase()
            } else {
                r.singular_name.clone()
            },
            namespaced: r.namespaced,
        })
        .collect()
}

impl ObjectLister for Cluster {
    fn names<'a>(
        &'a self,
        resource: &'a ResourceInfo,
        namespace: Option<&'a str>,
        selector: &'a LabelSelector,
    ) -> BoxFuture<'a, Result<Vec<String>, BackendError>> {
        Box::pin(async move {
            let gvk = GroupVersionKind::gvk(&resource.group, &resource.version, &resource.kind);
            let api_resource = ApiResource::from_gvk_with_plural(&gvk, &resource.plural);
            let api: Api<DynamicObject> = match namespace {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &api_resource),
                None => Api::all_with(self.client.clone(), &api_resource),
            };
            let params = ListParams::default().labels(&selector.to_string());
            // Names only: metadata lists keep the answer small for large namespaces. The wait for
            // the throttle counts against the deadline too.
            let list = tokio::time::timeout(LIST_TIMEOUT, async {
                self.throttle.acquire().await;
                api.list_metadata(&params).await
            })
            .await
            .map_err(|_| {
                BackendError::Unavailable(format!(
                    "listing {} got no answer within {LIST_TIMEOUT:?}",
                    resource.plural
                ))
            })?
            .map_err(|e| match &e {
                kube::Error::Api(status) if status.code == 403 => BackendError::Failed(format!(
                    "listing {}: {e}; the adapter's service account needs `list` on it (Helm chart: rbac.listResources)",
                    resource.group_resource()
                )),
                _ => BackendError::Unavailable(format!("listing {}: {e}", resource.plural)),
            })?;
            Ok(list
                .items
                .into_iter()
                .filter_map(|o| o.metadata.name)
                .collect())
        })
    }
}

/// Running pods and nodes from watches (metadata only), so that `metrics.k8s.io` requests never
/// list from the API server, as metrics-server's informers do.
#[derive(Clone)]
pub struct PodsAndNodes {
    pods: Store<PartialObjectMeta<Pod>>,
    nodes: Store<PartialObjectMeta<Node>>,
}

impl PodsAndNodes {
    /// The two caches, and the watches that fill them. Until the watches start, a request waits
    /// briefly for the first list and then answers 503.
    pub fn new(cluster: &Cluster) -> (Self, PodAndNodeWatches) {
        let (pods, pod_writer) = reflector::store();
        let (nodes, node_writer) = reflector::store();
        let watches = PodAndNodeWatches {
            client: cluster.client.clone(),
            pod_writer,
            node_writer,
        };
        (Self { pods, nodes }, watches)
    }
}

/// The watches behind `PodsAndNodes`, not started yet: only rules with `resourceRules` need
/// them, and a reload may add those later.
pub struct PodAndNodeWatches {
    client: kube::Client,
    pod_writer: reflector::store::Writer<PartialObjectMeta<Pod>>,
    node_writer: reflector::store::Writer<PartialObjectMeta<Node>>,
}

impl PodAndNodeWatches {
    /// Starts both watches on the current runtime; they retry with backoff for as long as the
    /// runtime lives.
    pub fn start(self) {
        let running = watcher::Config::default().fields("status.phase=Running");
        let pods_api = Api::<PartialObjectMeta<Pod>>::all(self.client.clone());
        let nodes_api = Api::<PartialObjectMeta<Node>>::all(self.client);
        let pod_events = watcher(pods_api, running)
            .default_backoff()
            .reflect(self.pod_writer);
        let node_events = watcher(nodes_api, watcher::Config::default())
            .default_backoff()
            .reflect(self.node_writer);
        tokio::spawn(drain("pods", pod_events));
        tokio::spawn(drain("nodes", node_events));
        tracing::info!("watching running pods and nodes for metrics.k8s.io");
    }
}

/// Runs a watch stream, logging its errors (the backoff retries them).
async fn drain<T>(what: &'static str, events: impl Stream<Item = Result<T, watcher::Error>>) {
    futures_util::pin_mut!(events);
    while let Some(event) = events.next().await {
        if let Err(error) = event {
            tracing::warn!(%error, "watching {what} failed; retrying");
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
        _ => Err(BackendError::Unavailable(format!(
            "the {what} cache has not synced with the cluster yet"
        ))),
    }
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
            synced(&self.pods, "pod").await?;
            Ok(self
                .pods
                .state()
                .iter()
                .filter_map(|pod| {
                    let meta = &pod.metadata;
                    let pod_namespace = meta.namespace.clone()?;
                    if namespace.is_some_and(|ns| ns != pod_namespace) {
                        return None;
                    }
                    Some(PodRef {
                        namespace: pod_namespace,
                        name: meta.name.clone()?,
                        labels: labels_of(meta),
                    })
                })
                .collect())
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

impl crate::auth::Reviewer for Cluster {
    fn review_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<crate::auth::User>, crate::auth::ReviewError>> {
        use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
        Box::pin(async move {
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token.to_owned()),
                    ..TokenReviewSpec::default()
                },
                ..TokenReview::default()
            };
            self.review_throttle.acquire().await;
            let answer = Api::<TokenReview>::all(self.client.clone())
                .create(&kube::api::PostParams::default(), &review)
                .await
                .map_err(|e| crate::auth::ReviewError(e.to_string()))?;
            let status = answer.status.unwrap_or_default();
            if !status.authenticated.unwrap_or(false) {
                return Ok(None);
            }
            let info = status.user.unwrap_or_default();
            Ok(Some(crate::auth::User {
                name: info.username.unwrap_or_default(),
                uid: info.uid.unwrap_or_default(),
                groups: info.groups.unwrap_or_default(),
                extra: info.extra.unwrap_or_default().into_iter().collect(),
            }))
        })
    }

    fn review_access<'a>(
        &'a self,
        user: &'a crate::auth::User,
        attributes: &'a crate::auth::Attributes,
    ) -> BoxFuture<'a, Result<crate::auth::Decision, crate::auth::ReviewError>> {
        use crate::auth::Attributes;
        use k8s_openapi::api::authorization::v1::{
            NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
        };
        Box::pin(async move {
            let mut spec = SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone().into_iter().collect()),
                ..SubjectAccessReviewSpec::default()
            };
            match attributes {
                Attributes::Resource {
                    verb,
                    group,
                    version,
                    resource,
                    subresource,
                    namespace,
                    name,
                } => {
                    let some = |s: &String| (!s.is_empty()).then(|| s.clone());
                    spec.resource_attributes = Some(ResourceAttributes {
                        verb: Some(verb.clone()),
                        group: Some(group.clone()),
                        version: some(version),
                        resource: some(resource),
                        subresource: some(subresource),
                        namespace: some(namespace),
                        name: some(name),
                        ..ResourceAttributes::default()
                    });
                }
                Attributes::NonResource { verb, path } => {
                    spec.non_resource_attributes = Some(NonResourceAttributes {
                        verb: Some(verb.clone()),
                        path: Some(path.clone()),
                    });
                }
            }
            let review = SubjectAccessReview {
                spec,
                ..SubjectAccessReview::default()
            };
            self.review_throttle.acquire().await;
            let answer = Api::<SubjectAccessReview>::all(self.client.clone())
                .create(&kube::api::PostParams::default(), &review)
                .await
                .map_err(|e| crate::auth::ReviewError(e.to_string()))?;
            let status = answer.status.unwrap_or_default();
            Ok(crate::auth::Decision {
                allowed: status.allowed && !status.denied.unwrap_or(false),
                reason: status.reason.unwrap_or_default(),
            })
        })
    }
}

impl Cluster {
    /// Reads the authentication ConfigMap kube-apiserver publishes for extension servers; `None`
    /// when it does not exist.
    pub async fn authentication_config(
        &self,
    ) -> Result<Option<crate::auth::sources::AuthenticationConfig>, Error> {
        use k8s_openapi::api::core::v1::ConfigMap;
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), "kube-system");
        self.throttle.acquire().await;
        let Some(map) = api.get_opt("extension-apiserver-authentication").await? else {
            return Ok(None);
        };
        let data = map.data.unwrap_or_default();
        // The list values are JSON-encoded string arrays, e.g. ["X-Remote-User"].
        let list = |key: &str| -> Vec<String> {
            data.get(key)
                .and_then(|v| serde_json::from_str::<Vec<String>>(v).ok())
                .unwrap_or_default()
        };
        Ok(Some(crate::auth::sources::AuthenticationConfig {
            client_ca: data.get("client-ca-file").map(|v| v.clone().into_bytes()),
            requestheader_ca: data
                .get("requestheader-client-ca-file")
                .map(|v| v.clone().into_bytes()),
            allowed_names: list("requestheader-allowed-names"),
            username_headers: list("requestheader-username-headers"),
            group_headers: list("requestheader-group-headers"),
            extra_headers_prefixes: list("requestheader-extra-headers-prefix"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_discovery_gives_the_first_fresh_version_of_each_group() {
        // Trimmed from what kube-apiserver 1.31 serves at /apis, plus a stale aggregated API.
        let document = serde_json::json!({
            "kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
            "items": [
                {"metadata": {"name": "autoscaling", "creationTimestamp": null}, "versions": [
                    {"version": "v2", "freshness": "Current", "resources": [
                        {"resource": "horizontalpodautoscalers", "singularResource": "horizontalpodautoscaler",
                         "responseKind": {"group": "", "version": "", "kind": "HorizontalPodAutoscaler"},
                         "scope": "Namespaced", "shortNames": ["hpa"], "verbs": ["get", "list"],
                         "subresources": [{"subresource": "status", "verbs": ["get"]}]}]},
                    {"version": "v1", "freshness": "Current", "resources": []}]},
                {"metadata": {"name": "metrics.example.com", "creationTimestamp": null}, "versions": [
                    {"version": "v2", "freshness": "Stale", "resources": [
                        {"resource": "gauges", "responseKind": {"kind": "Gauge"}, "scope": "Cluster"}]},
                    {"version": "v1", "resources": [
                        {"resource": "gauges", "responseKind": {"kind": "Gauge"}, "scope": "Cluster"}]}]},
                {"metadata": {"name": "broken.example.com"}, "versions": [
                    {"version": "v1", "freshness": "Stale", "resources": []}]}
            ]
        });
        let list: APIGroupDiscoveryList = serde_json::from_value(document).unwrap();
        let entries = resources_of_aggregated(&list);
        let hpa = ResourceInfo {
            group: "autoscaling".into(),
            version: "v2".into(),
            kind: "HorizontalPodAutoscaler".into(),
            plural: "horizontalpodautoscalers".into(),
            singular: "horizontalpodautoscaler".into(),
            namespaced: true,
        };
        let gauge = ResourceInfo {
            group: "metrics.example.com".into(),
            version: "v1".into(),
            kind: "Gauge".into(),
            plural: "gauges".into(),
            // No singularResource (aggregated APIs may omit it): the lowercase kind.
            singular: "gauge".into(),
            namespaced: false,
        };
        assert_eq!(entries, vec![hpa, gauge]);
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_allows_a_burst_then_the_rate() {
        let throttle = Throttle::new(10.0, 3);
        let started = tokio::time::Instant::now();
        for _ in 0..3 {
            throttle.acquire().await;
        }
        assert_eq!(
            started.elapsed(),
            std::time::Duration::ZERO,
            "the burst is free"
        );
        throttle.acquire().await;
        throttle.acquire().await;
        let waited = started.elapsed().as_secs_f64();
        assert!(
            (0.15..0.3).contains(&waited),
            "two more tokens at 10/s take about 0.2 s, took {waited}"
        );
    }
}
