//! Outbound Kubernetes client: the connection and its throttles, and the LIST of object names by label selector; discovery, watches, selected objects and reviews in the submodules.
//!
//! (Named `cluster`, not `kube`, so that it does not shadow the `kube` crate.)

pub mod discovery;
mod objects;
mod pod_index;
mod review;
mod watch;

pub use objects::SelectedObjects;
pub use watch::PodsAndNodes;

use std::path::Path;
use std::sync::Arc;

use kube::api::{Api, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use kube::core::{ApiResource, GroupVersionKind};

use prom_adapter_core::promql::LabelSelector;
use prom_adapter_core::resources::ResourceInfo;
use prom_adapter_provider::BackendError;

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
/// call to the API server takes a token; tokens refill at `qps` up to `burst`. Callers get tokens
/// in the order they asked: one client's many waiting reviews cannot keep passing another's, so a
/// request waits at most for those ahead of it (at most `--max-reviews-per-client` per other client).
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
        // tokio's Mutex is fair: holding it while waiting for the next token queues the callers.
        let mut state = self.state.lock().await;
        let (tokens, last) = &mut *state;
        loop {
            *tokens = (*tokens + last.elapsed().as_secs_f64() * self.qps).min(self.burst);
            *last = tokio::time::Instant::now();
            if *tokens >= 1.0 {
                *tokens -= 1.0;
                return;
            }
            tokio::time::sleep(std::time::Duration::from_secs_f64(
                (1.0 - *tokens) / self.qps,
            ))
            .await;
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
}
impl Cluster {
    /// The names of the `resource` objects in `namespace` that `selector` selects, by a metadata
    /// LIST (through the throttle, within `LIST_TIMEOUT`).
    async fn list_names(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        selector: &LabelSelector,
    ) -> Result<Vec<String>, BackendError> {
        {
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test(start_paused = true)]
    async fn throttle_serves_callers_in_the_order_they_asked() {
        let throttle = Arc::new(Throttle::new(10.0, 1));
        throttle.acquire().await;
        let next_token = tokio::time::Instant::now() + std::time::Duration::from_millis(100);
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let ask = |name: &'static str, at: Option<tokio::time::Instant>| {
            let (throttle, order) = (throttle.clone(), order.clone());
            tokio::spawn(async move {
                if let Some(at) = at {
                    tokio::time::sleep_until(at).await;
                }
                throttle.acquire().await;
                order.lock().unwrap().push(name);
            })
        };
        // One caller asks just as the next token is due; another asked before it and waits.
        let later = ask("later", Some(next_token));
        tokio::task::yield_now().await;
        let earlier = ask("earlier", None);
        earlier.await.unwrap();
        later.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["earlier", "later"]);
    }
}
