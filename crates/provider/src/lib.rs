//! The services behind the APIs: discovery, and custom and external metrics lookups; IO only through the `MetricsBackend` trait.

pub mod custom;
pub mod discovery;
pub mod external;
pub mod fair_slots;
pub mod query_cache;
pub mod resource;
pub mod resource_objects;

use std::sync::Arc;

use prom_adapter_core::plan;

use futures_util::future::BoxFuture;

use prom_adapter_core::model::{QueryResult, Sample};
use prom_adapter_core::promql::LabelSelector;
use prom_adapter_core::registry::{Registry, SeriesShape};
use prom_adapter_core::resources::{ResourceInfo, ResourceTable};
use prom_adapter_core::rules::RuleSet;

pub use prom_adapter_core::failure::{BackendError, Error};

/// What the providers need from Prometheus (implemented by `prometheus::Client`, faked in tests).
pub trait MetricsBackend: Send + Sync + 'static {
    /// Distinct series shapes for a selector in `[start, end]`, and the number of series read.
    fn series_shapes<'a>(
        &'a self,
        selector: &'a str,
        start: f64,
        end: f64,
    ) -> BoxFuture<'a, Result<(Vec<SeriesShape>, u64), BackendError>>;
    /// Values of a label on series matching a selector in `[start, end]`.
    fn label_values<'a>(
        &'a self,
        label: &'a str,
        selector: &'a str,
        start: f64,
        end: f64,
    ) -> BoxFuture<'a, Result<Vec<String>, BackendError>>;
    /// An instant query at `time`.
    fn query<'a>(
        &'a self,
        promql: &'a str,
        time: f64,
    ) -> BoxFuture<'a, Result<QueryResult, BackendError>>;
}

/// The named backends of the settings' `backends:` (implemented by `prometheus::NamedBackends`):
/// where a rule with `backend:` sends its calls.
pub trait BackendRouter: Send + Sync + 'static {
    /// The backend called `name`, for a request about `namespace` (`None`: discovery), whose
    /// URL and headers may follow the namespace's tenant.
    fn route(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<Arc<dyn MetricsBackend>, BackendError>;
}

/// How a provider asks for objects (`plan::QueryShaping`), and where it counts each rule's
/// queries.
#[derive(Clone, Default)]
pub struct QueryOptions {
    /// Batched per namespace, or by name in parts.
    pub shaping: plan::QueryShaping,
    /// Counts `prom_adapter_rule_queries_total`.
    pub metrics: Option<Arc<prom_adapter_telemetry::Metrics>>,
}

impl QueryOptions {
    /// Counts the queries planned for one request to `rule`.
    fn record(&self, rule: &str, planned: &plan::PlannedQueries) {
        if let Some(metrics) = &self.metrics {
            metrics.record_rule_queries(rule, planned.shape, planned.queries.len());
        }
    }
}

/// The most parts of one request asked at once: a request split into many queries holds at most
/// this many of the backend's slots, and waits for them one part at a time.
pub const PARTS_AT_ONCE: usize = 4;

/// Instant vector samples of every planned query, `PARTS_AT_ONCE` at a time, the first failure
/// ending the request: the parts still running or waiting are dropped (their calls cancelled,
/// their queue places given back) rather than awaited.
async fn ask_parts(
    backend: &dyn MetricsBackend,
    queries: &[String],
    time: f64,
) -> Result<Samples, Error> {
    use futures_util::{StreamExt, TryStreamExt};
    let mut answers: Vec<Arc<[Sample]>> = vec![Arc::from([]); queries.len()];
    let mut parts = futures_util::stream::iter(queries.iter().enumerate())
        .map(|(index, query)| async move {
            tracing::debug!(%query, "metric query");
            match backend.query(query, time).await? {
                QueryResult::Vector(samples) => Ok((index, samples)),
                _ => Err(Error::Internal(format!(
                    "query {query:?} did not return an instant vector"
                ))),
            }
        })
        .buffer_unordered(PARTS_AT_ONCE);
    while let Some((index, samples)) = parts.try_next().await? {
        answers[index] = samples;
    }
    Ok(Samples(answers))
}

/// The samples of a request's query parts, shared with the query cache's kept answers rather
/// than copied for each request.
pub struct Samples(Vec<Arc<[Sample]>>);

impl Samples {
    /// Every sample, in the parts' order, as one slice: borrowed for a single part (a batched
    /// query, the usual case), copied for several.
    pub fn as_slice(&self) -> std::borrow::Cow<'_, [Sample]> {
        match self.0.as_slice() {
            [] => std::borrow::Cow::Borrowed(&[]),
            [single] => std::borrow::Cow::Borrowed(single),
            several => {
                std::borrow::Cow::Owned(several.iter().flat_map(|p| p.iter().cloned()).collect())
            }
        }
    }
}

/// Where calls go: the default backend, and the settings' named backends for rules with
/// `backend:`. The one routing decision of the providers and discovery.
#[derive(Clone)]
pub struct Backends {
    default: Arc<dyn MetricsBackend>,
    named: Option<Arc<dyn BackendRouter>>,
}

impl Backends {
    /// Every call to `default`, until named backends are added.
    pub fn new(default: Arc<dyn MetricsBackend>) -> Self {
        Self {
            default,
            named: None,
        }
    }

    /// Rules with `backend:` reach theirs through `named`.
    #[must_use]
    pub fn with_named(mut self, named: Arc<dyn BackendRouter>) -> Self {
        self.named = Some(named);
        self
    }

    /// The backend of a rule whose `backend:` is `backend` (`None`: the default), for a request
    /// about `namespace` (`None`: discovery), whose tenant it may follow.
    pub fn for_rule(
        &self,
        backend: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Arc<dyn MetricsBackend>, BackendError> {
        match (backend, &self.named) {
            (None, _) => Ok(self.default.clone()),
            (Some(name), Some(named)) => named.route(name, namespace),
            (Some(name), None) => Err(BackendError::Failed(format!(
                "the rule names backend {name:?}, and the settings declare no backends"
            ))),
        }
    }
}

impl<B: MetricsBackend> From<Arc<B>> for Backends {
    fn from(default: Arc<B>) -> Self {
        Self::new(default)
    }
}

impl From<Arc<dyn MetricsBackend>> for Backends {
    fn from(default: Arc<dyn MetricsBackend>) -> Self {
        Self::new(default)
    }
}

/// Lists the names of objects a label selector chooses (implemented by `cluster::Cluster`).
pub trait ObjectLister: Send + Sync + 'static {
    /// Names of the `resource` objects in `namespace` (all namespaces when `None`) matching `selector`.
    fn names<'a>(
        &'a self,
        resource: &'a ResourceInfo,
        namespace: Option<&'a str>,
        selector: &'a LabelSelector,
    ) -> BoxFuture<'a, Result<Vec<String>, BackendError>>;
}

/// Everything a request needs from discovery, swapped as one unit.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The compiled rules.
    pub rules: Arc<RuleSet>,
    /// The resource table the registry was built with.
    pub table: Arc<ResourceTable>,
    /// Discovered metrics.
    pub registry: Arc<Registry>,
    /// Whether every series query of the default backend has been answered: until then a metric
    /// missing from the registry is not known to be missing (503, not 404).
    pub discovered: bool,
}

impl Snapshot {
    /// `error`; but a metric not found before discovery has completed is not known to be
    /// missing: the backend is unavailable for it (503 with the reason, not 404).
    pub fn unless_undiscovered(&self, error: Error) -> Error {
        match error {
            Error::MetricNotFound { .. } if !self.discovered => Error::NotDiscovered,
            other => other,
        }
    }
}

/// The current snapshot, read lock-free by every request.
pub type SharedSnapshot = Arc<arc_swap::ArcSwap<Snapshot>>;

/// A scripted backend for provider and API tests: answers from tables and can be told to fail
/// (for other crates' tests, with the `fake` feature).
#[cfg(any(test, feature = "fake"))]
pub mod fake {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use futures_util::future::BoxFuture;

    use super::{BackendError, MetricsBackend};
    use prom_adapter_core::model::QueryResult;
    use prom_adapter_core::registry::SeriesShape;

    /// A sample with these labels.
    pub fn sample(
        labels: &[(&str, &str)],
        value: f64,
        timestamp: f64,
    ) -> prom_adapter_core::model::Sample {
        prom_adapter_core::model::Sample {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
            timestamp,
        }
    }

    /// A shared snapshot of `rules` (YAML) with the built-in resource table and a registry built
    /// from these series shapes, keyed by `seriesQuery`.
    pub fn snapshot(
        rules: &str,
        shapes: HashMap<String, std::sync::Arc<Vec<SeriesShape>>>,
    ) -> super::SharedSnapshot {
        use std::sync::Arc;
        let rules = prom_adapter_core::config::parse_rules(rules, "test").unwrap();
        let table = prom_adapter_core::resources::ResourceTable::builtin();
        let registry = prom_adapter_core::registry::Registry::build(&rules, &shapes, &table);
        Arc::new(arc_swap::ArcSwap::from_pointee(super::Snapshot {
            rules: Arc::new(rules),
            table: Arc::new(table),
            registry: Arc::new(registry),
            discovered: true,
        }))
    }

    #[derive(Default)]
    pub struct FakeBackend {
        pub series: Mutex<HashMap<String, Result<Vec<SeriesShape>, BackendError>>>,
        pub labels: Mutex<HashMap<String, Vec<String>>>,
        pub queries: Mutex<HashMap<String, Result<QueryResult, BackendError>>>,
        pub seen_queries: Mutex<Vec<String>>,
        /// The client (`fair_slots::current_client`) each query in `seen_queries` was made for.
        pub seen_clients: Mutex<Vec<String>>,
        /// The evaluation time of each query in `seen_queries`.
        pub seen_query_times: Mutex<Vec<f64>>,
        pub seen_series: Mutex<Vec<String>>,
        /// The `[start, end]` window of each label values call.
        pub seen_labels: Mutex<Vec<(f64, f64)>>,
        /// The `[start, end]` window of each series listing in `seen_series`.
        pub seen_series_windows: Mutex<Vec<(f64, f64)>>,
        /// How long each query and label-values call takes.
        pub delay: std::time::Duration,
    }

    impl FakeBackend {
        async fn after_delay<T>(&self, answer: T) -> T {
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            answer
        }
    }

    impl FakeBackend {
        /// Scripts the answer to a series selector.
        pub fn answer_series(
            &self,
            selector: &str,
            answer: Result<Vec<SeriesShape>, BackendError>,
        ) {
            self.series
                .lock()
                .unwrap()
                .insert(selector.to_owned(), answer);
        }
    }

    impl MetricsBackend for FakeBackend {
        fn series_shapes<'a>(
            &'a self,
            selector: &'a str,
            start: f64,
            end: f64,
        ) -> BoxFuture<'a, Result<(Vec<SeriesShape>, u64), BackendError>> {
            self.seen_series.lock().unwrap().push(selector.to_owned());
            self.seen_series_windows.lock().unwrap().push((start, end));
            let answer = self
                .series
                .lock()
                .unwrap()
                .get(selector)
                .cloned()
                .unwrap_or(Ok(Vec::new()));
            Box::pin(async move {
                answer.map(|s| {
                    let n = s.len() as u64;
                    (s, n)
                })
            })
        }
        fn label_values<'a>(
            &'a self,
            label: &'a str,
            _: &'a str,
            start: f64,
            end: f64,
        ) -> BoxFuture<'a, Result<Vec<String>, BackendError>> {
            self.seen_labels.lock().unwrap().push((start, end));
            let answer = self
                .labels
                .lock()
                .unwrap()
                .get(label)
                .cloned()
                .unwrap_or_default();
            Box::pin(self.after_delay(Ok(answer)))
        }
        fn query<'a>(
            &'a self,
            promql: &'a str,
            time: f64,
        ) -> BoxFuture<'a, Result<QueryResult, BackendError>> {
            self.seen_queries.lock().unwrap().push(promql.to_owned());
            let client = crate::fair_slots::current_client();
            self.seen_clients.lock().unwrap().push(client.to_string());
            self.seen_query_times.lock().unwrap().push(time);
            let answer = self
                .queries
                .lock()
                .unwrap()
                .get(promql)
                .cloned()
                .unwrap_or(Ok(QueryResult::Vector(std::sync::Arc::from([]))));
            Box::pin(self.after_delay(answer))
        }
    }
}
