//! Custom metrics: one object by name, or every object of a selector, resolved through the registry and Prometheus.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{
    BackendError, Backends, Error, MetricsBackend, ObjectLister, QueryOptions, SharedSnapshot,
};
use prom_adapter_core::model::{GroupResource, QuantityFormat, quantity_from_f64};
use prom_adapter_core::plan::{PlannedQueries, QueryPlan, QueryShaping, values_by_object};
use prom_adapter_core::promql::{LabelMatcher, LabelSelectorJson, MatchOp};
use prom_adapter_core::request::{CustomRequest, ObjectName};
use prom_adapter_core::resources::ResourceTable;

/// The object a value describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedObject {
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Namespace, for namespaced objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// `group/version` (`v1` for core).
    pub api_version: String,
}

/// One value of a custom metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    /// The object.
    pub object: DescribedObject,
    /// The metric name.
    pub metric: String,
    /// The value as a Kubernetes quantity.
    pub value: String,
    /// `metricLabelSelector`, echoed.
    pub selector: Option<LabelSelectorJson>,
}

/// The custom metrics service.
#[derive(Clone)]
pub struct CustomMetrics {
    snapshot: SharedSnapshot,
    backends: Backends,
    max_age: Duration,
    objects: Option<Arc<dyn ObjectLister>>,
    unknown_resource: Option<Arc<tokio::sync::Notify>>,
    options: QueryOptions,
}

impl CustomMetrics {
    /// A service reading the shared snapshot. `*` selects objects through `objects` (the
    /// cluster); without one, it selects the objects Prometheus has series for within `max_age`.
    pub fn new(
        snapshot: SharedSnapshot,
        backends: impl Into<Backends>,
        max_age: Duration,
        objects: Option<Arc<dyn ObjectLister>>,
    ) -> Self {
        Self {
            snapshot,
            backends: backends.into(),
            max_age,
            objects,
            unknown_resource: None,
            options: QueryOptions::default(),
        }
    }

    /// How requests for objects become queries, and where each rule's queries are counted.
    #[must_use]
    pub fn with_query_options(mut self, options: QueryOptions) -> Self {
        self.options = options;
        self
    }

    /// The backend a rule's calls go to, for a request about `namespace`.
    fn backend_for(
        &self,
        plan: &QueryPlan<'_>,
        namespace: Option<&str>,
    ) -> Result<Arc<dyn MetricsBackend>, Error> {
        Ok(self
            .backends
            .for_rule(plan.rule.backend_name(), namespace)?)
    }

    /// Signals `notify` whenever a request names a resource the table does not know, so that API
    /// discovery runs again (a CRD may have been installed since).
    #[must_use]
    pub fn with_rediscovery(mut self, notify: Arc<tokio::sync::Notify>) -> Self {
        self.unknown_resource = Some(notify);
        self
    }

    /// The shared snapshot (for discovery documents).
    pub fn snapshot(&self) -> &SharedSnapshot {
        &self.snapshot
    }

    /// Answers one request at time `now` (Unix seconds).
    pub async fn get(&self, request: &CustomRequest, now: f64) -> Result<Vec<MetricValue>, Error> {
        let snapshot = self.snapshot.load_full();
        if let Some(notify) = &self.unknown_resource
            && snapshot
                .table
                .resolve(&GroupResource::parse(&request.resource))
                .is_none()
        {
            notify.notify_one();
        }
        let plan = QueryPlan::new(
            &snapshot.rules,
            &snapshot.registry,
            &snapshot.table,
            request,
        )
        .map_err(|e| snapshot.unless_undiscovered(e))?;
        let names = match &request.name {
            ObjectName::Named(name) => vec![name.clone()],
            ObjectName::All if self.objects.is_some() => {
                let lister = self.objects.as_ref().expect("checked by the guard");
                let names = lister
                    .names(
                        plan.info,
                        request.namespace.as_deref(),
                        &request.label_selector,
                    )
                    .await
                    .map_err(Error::ListFailed)?;
                if names.is_empty() {
                    // As prometheus-adapter: a selector that matches nothing is "not found".
                    return Err(plan.not_found(request));
                }
                names
            }
            ObjectName::All => {
                if !request.label_selector.is_empty() {
                    return Err(Error::BadRequest(
                        "labelSelector needs a cluster to list objects; this adapter runs with --standalone".into(),
                    ));
                }
                let names = self
                    .names_in_prometheus(&plan, &snapshot.table, request, now)
                    .await?;
                if names.is_empty() {
                    return Err(plan.not_found(request));
                }
                names
            }
        };
        let backend = &self.backend_for(&plan, tenant_namespace(request, &plan))?;
        let planned = plan.queries(&snapshot.table, request, &names, self.options.shaping)?;
        let samples = match self.ask(&plan, backend, &planned, now).await {
            // The namespace's query can fail for another object's sake (a duplicate series in a
            // join, a size limit): ask for these objects by name, as without batching.
            Err(Error::Backend(BackendError::Failed(reason) | BackendError::TooLarge(reason)))
                if planned.shape == "batched" =>
            {
                tracing::warn!(rule = plan.rule.position, %reason, "the query for every object failed; asking by name");
                let by_name = QueryShaping {
                    batch: false,
                    ..self.options.shaping
                };
                let planned = plan.queries(&snapshot.table, request, &names, by_name)?;
                self.ask(&plan, backend, &planned, now).await?
            }
            other => other?,
        };
        let (info, label) = (plan.info, &plan.label);
        let samples = samples.as_slice();
        let by_name: HashMap<&str, f64> = values_by_object(&samples, label).into_iter().collect();
        let selector = request.metric_selector.to_json();
        let mut values = Vec::with_capacity(names.len());
        for name in &names {
            let Some(&raw) = by_name.get(name.as_str()) else {
                continue;
            };
            let value = match quantity_from_f64(raw, QuantityFormat::DecimalSi) {
                Ok(value) => value,
                Err(e) if request.name == ObjectName::All => {
                    tracing::warn!(resource = %plan.resource, object = %name, metric = %request.metric, error = %e, "skipping unrepresentable value");
                    continue;
                }
                Err(e) => return Err(Error::Internal(format!("{} {name}: {e}", plan.resource))),
            };
            values.push(MetricValue {
                object: DescribedObject {
                    kind: info.kind.clone(),
                    namespace: request.namespace.clone(),
                    name: name.clone(),
                    api_version: info.api_version(),
                },
                metric: request.metric.clone(),
                value,
                selector: selector.clone(),
            });
        }
        if let ObjectName::Named(name) = &request.name
            && values.is_empty()
        {
            return Err(Error::ObjectNotFound {
                metric: request.metric.clone(),
                resource: request.resource.clone(),
                name: name.clone(),
            });
        }
        Ok(values)
    }

    /// Runs the planned queries at once; their samples together hold the answer (batched, other
    /// objects' values too, which only the asked names pick from).
    async fn ask(
        &self,
        plan: &QueryPlan<'_>,
        backend: &Arc<dyn MetricsBackend>,
        planned: &PlannedQueries,
        now: f64,
    ) -> Result<super::Samples, Error> {
        self.options
            .record(&format!("rules[{}]", plan.rule.position), planned);
        super::ask_parts(backend.as_ref(), &planned.queries, now).await
    }

    /// Without a cluster there is no object list: use the object names Prometheus has for the series.
    async fn names_in_prometheus(
        &self,
        plan: &QueryPlan<'_>,
        table: &ResourceTable,
        request: &CustomRequest,
        now: f64,
    ) -> Result<Vec<String>, Error> {
        let internal = |e: prom_adapter_core::promql::Error| Error::Internal(e.to_string());
        let mut matchers =
            vec![LabelMatcher::new("__name__", MatchOp::Equal, &*plan.series).map_err(internal)?];
        if let Some(namespace) = &request.namespace {
            let ns_label = plan
                .namespace_label(table)
                .map_err(|_| plan.not_found(request))?;
            matchers.push(
                LabelMatcher::new(&ns_label, MatchOp::Equal, namespace.as_str())
                    .map_err(internal)?,
            );
        }
        let selector = prom_adapter_core::promql::selector(&matchers);
        let start = now - self.max_age.as_secs_f64().max(60.0);
        let mut names = self
            .backend_for(plan, tenant_namespace(request, plan))?
            .label_values(&plan.label, &selector, start, now)
            .await?;
        names.sort();
        Ok(names)
    }
}

/// The namespace whose tenant a named backend serves the request in: the request's, or the
/// namespace a `namespaces/NAME/metrics/…` request is about. Other cluster-scoped objects (nodes,
/// persistent volumes) have none and go to the backend's discovery tenant.
fn tenant_namespace<'r>(request: &'r CustomRequest, plan: &QueryPlan<'_>) -> Option<&'r str> {
    match (&request.namespace, &request.name) {
        (Some(namespace), _) => Some(namespace),
        (None, ObjectName::Named(name))
            if plan.resource == GroupResource::new("", "namespaces") =>
        {
            Some(name)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::BackendError;
    use prom_adapter_core::model::{QueryResult, Sample};
    use prom_adapter_core::promql::LabelSelector;

    use crate::fake::FakeBackend;
    use prom_adapter_core::registry::SeriesShape;

    const RULES: &str = r#"
rules:
- seriesQuery: 'http_requests_total'
  resources: {overrides: {pod: {resource: pod}, namespace: {resource: namespace}}}
  name: {matches: ^(.*)_total$}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"#;

    fn service() -> (Arc<FakeBackend>, CustomMetrics) {
        let snapshot = crate::fake::snapshot(
            RULES,
            HashMap::from([(
                "http_requests_total".to_owned(),
                Arc::new(vec![SeriesShape::new(
                    "http_requests_total",
                    ["pod", "namespace"],
                )]),
            )]),
        );
        let backend = Arc::new(FakeBackend::default());
        (
            backend.clone(),
            CustomMetrics::new(snapshot, backend, Duration::from_secs(600), None),
        )
    }

    fn request(name: ObjectName, label_selector: &str) -> CustomRequest {
        CustomRequest {
            resource: "pods".into(),
            namespace: Some("default".into()),
            name,
            metric: "http_requests".into(),
            label_selector: LabelSelector::parse(label_selector).unwrap(),
            metric_selector: LabelSelector::default(),
        }
    }

    fn vector(values: &[(&str, f64)]) -> Result<QueryResult, BackendError> {
        Ok(QueryResult::Vector(
            values
                .iter()
                .map(|(pod, v)| Sample {
                    labels: HashMap::from([("pod".to_owned(), pod.to_string())]),
                    value: *v,
                    timestamp: 0.0,
                })
                .collect(),
        ))
    }

    /// The rule keeps pods apart, so one query for the namespace's pods answers every request.
    const BATCHED: &str = r#"sum(http_requests_total{namespace="default"}) by (pod)"#;

    #[tokio::test]
    async fn star_uses_the_object_names_prometheus_has_and_handles_nan_and_inf() {
        let (backend, custom) = service();
        backend
            .labels
            .lock()
            .unwrap()
            .insert("pod".into(), vec!["c".into(), "a".into(), "b".into()]);
        backend.queries.lock().unwrap().insert(
            BATCHED.into(),
            vector(&[
                ("a", f64::NAN),
                ("b", f64::INFINITY),
                ("c", 2.5),
                ("d", 1.0),
            ]),
        );
        let values = custom
            .get(&request(ObjectName::All, ""), 0.0)
            .await
            .unwrap();
        let got: Vec<(&str, &str)> = values
            .iter()
            .map(|v| (v.object.name.as_str(), v.value.as_str()))
            .collect();
        // NaN reads as 0; +Inf cannot be a quantity, so `b` is left out rather than sent as garbage.
        // `d` is in the namespace's answer but not among the objects asked.
        assert_eq!(got, vec![("a", "0"), ("c", "2500m")]);
        assert_eq!(values[0].object.kind, "Pod");
        assert_eq!(values[0].object.api_version, "v1");
    }

    #[tokio::test]
    async fn a_single_object_with_an_infinite_value_is_an_error() {
        let (backend, custom) = service();
        backend
            .queries
            .lock()
            .unwrap()
            .insert(BATCHED.into(), vector(&[("a", 1.0), ("b", f64::INFINITY)]));
        let error = custom
            .get(&request(ObjectName::Named("b".into()), ""), 0.0)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, Error::Internal(m) if m.contains("infinite")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn errors_map_to_their_kinds() {
        let (backend, custom) = service();
        let named = request(ObjectName::Named("a".into()), "");
        assert!(matches!(
            custom.get(&named, 0.0).await,
            Err(Error::ObjectNotFound { .. })
        ));
        backend.queries.lock().unwrap().insert(
            BATCHED.into(),
            Err(BackendError::Unavailable("down".into())),
        );
        assert!(matches!(
            custom.get(&named, 0.0).await,
            Err(Error::Backend(BackendError::Unavailable(_)))
        ));
        assert!(matches!(
            custom.get(&request(ObjectName::All, "app=web"), 0.0).await,
            Err(Error::BadRequest(_))
        ));
        assert!(
            matches!(
                custom.get(&request(ObjectName::All, ""), 0.0).await,
                Err(Error::MetricNotFound { .. })
            ),
            "no objects"
        );
        let mut wrong_scope = named.clone();
        wrong_scope.namespace = None;
        assert!(matches!(
            custom.get(&wrong_scope, 0.0).await,
            Err(Error::MetricNotFound { .. })
        ));
    }

    #[tokio::test]
    async fn a_metric_missing_before_discovery_has_completed_is_unavailable_not_not_found() {
        let snapshot = crate::fake::snapshot(RULES, HashMap::new());
        let backend = Arc::new(FakeBackend::default());
        let custom = CustomMetrics::new(
            snapshot.clone(),
            backend.clone(),
            Duration::from_secs(600),
            None,
        );
        let named = request(ObjectName::Named("a".into()), "");
        assert!(matches!(
            custom.get(&named, 0.0).await,
            Err(Error::MetricNotFound { .. })
        ));
        snapshot.rcu(|current| crate::Snapshot {
            discovered: false,
            ..(**current).clone()
        });
        let error = custom.get(&named, 0.0).await.unwrap_err();
        assert!(matches!(&error, Error::NotDiscovered), "{error:?}");
        assert!(backend.seen_queries.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn objects_are_asked_by_name_when_batching_is_off() {
        let (backend, custom) = service();
        let by_name = QueryShaping {
            batch: false,
            ..QueryShaping::default()
        };
        let custom = custom.with_query_options(QueryOptions {
            shaping: by_name,
            metrics: None,
        });
        backend.queries.lock().unwrap().insert(
            r#"sum(http_requests_total{namespace="default",pod="b"}) by (pod)"#.into(),
            vector(&[("b", 4.0)]),
        );
        let values = custom
            .get(&request(ObjectName::Named("b".into()), ""), 0.0)
            .await
            .unwrap();
        assert_eq!(values[0].value, "4");
        assert_eq!(
            *backend.seen_queries.lock().unwrap(),
            vec![r#"sum(http_requests_total{namespace="default",pod="b"}) by (pod)"#.to_owned()]
        );
    }

    #[tokio::test]
    async fn a_batched_answer_gives_each_asked_object_its_own_value() {
        let (backend, custom) = service();
        backend.queries.lock().unwrap().insert(
            BATCHED.into(),
            vector(&[("a", 1.0), ("b", 2.0), ("c", 3.0)]),
        );
        for (pod, value) in [("a", "1"), ("c", "3")] {
            let values = custom
                .get(&request(ObjectName::Named(pod.into()), ""), 0.0)
                .await
                .unwrap();
            assert_eq!(values.len(), 1);
            assert_eq!(
                (values[0].object.name.as_str(), values[0].value.as_str()),
                (pod, value)
            );
        }
        assert_eq!(*backend.seen_queries.lock().unwrap(), vec![BATCHED; 2]);
    }

    #[tokio::test]
    async fn a_failed_namespace_query_is_asked_again_by_name() {
        let (backend, custom) = service();
        backend.queries.lock().unwrap().insert(
            BATCHED.into(),
            Err(BackendError::Failed(
                "many-to-many matching not allowed".into(),
            )),
        );
        backend.queries.lock().unwrap().insert(
            r#"sum(http_requests_total{namespace="default",pod="b"}) by (pod)"#.into(),
            vector(&[("b", 2.0)]),
        );
        let values = custom
            .get(&request(ObjectName::Named("b".into()), ""), 0.0)
            .await
            .unwrap();
        assert_eq!(values[0].value, "2");
        // An unavailable backend is not asked twice.
        backend.queries.lock().unwrap().insert(
            BATCHED.into(),
            Err(BackendError::Unavailable("down".into())),
        );
        backend.seen_queries.lock().unwrap().clear();
        assert!(matches!(
            custom
                .get(&request(ObjectName::Named("b".into()), ""), 0.0)
                .await,
            Err(Error::Backend(BackendError::Unavailable(_)))
        ));
        assert_eq!(*backend.seen_queries.lock().unwrap(), vec![BATCHED]);
    }

    /// Records where each call was routed.
    #[derive(Default)]
    struct RecordingRouter {
        routed: std::sync::Mutex<Vec<(String, Option<String>)>>,
        backend: Arc<FakeBackend>,
    }

    impl crate::BackendRouter for RecordingRouter {
        fn route(
            &self,
            name: &str,
            namespace: Option<&str>,
        ) -> Result<Arc<dyn MetricsBackend>, BackendError> {
            self.routed
                .lock()
                .unwrap()
                .push((name.to_owned(), namespace.map(str::to_owned)));
            Ok(self.backend.clone())
        }
    }

    #[tokio::test]
    async fn a_named_backend_serves_in_the_requests_namespace_or_the_namespace_asked_about() {
        let rules = r#"
rules:
- seriesQuery: 'jobs_queued'
  resources: {overrides: {pod: {resource: pod}, namespace: {resource: namespace}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  backend: vm
"#;
        let snapshot = crate::fake::snapshot(
            rules,
            HashMap::from([(
                "vm\u{1f}jobs_queued".to_owned(),
                Arc::new(vec![SeriesShape::new("jobs_queued", ["pod", "namespace"])]),
            )]),
        );
        let default = Arc::new(FakeBackend::default());
        let router = Arc::new(RecordingRouter::default());
        let backends = Backends::new(default.clone()).with_named(router.clone());
        let custom = CustomMetrics::new(snapshot, backends, Duration::from_secs(600), None);
        let mut pod = request(ObjectName::Named("a".into()), "");
        pod.metric = "jobs_queued".into();
        let _ = custom.get(&pod, 0.0).await;
        let namespace = CustomRequest {
            resource: "namespaces".into(),
            namespace: None,
            name: ObjectName::Named("shop".into()),
            ..pod.clone()
        };
        let _ = custom.get(&namespace, 0.0).await;
        assert_eq!(
            *router.routed.lock().unwrap(),
            vec![
                ("vm".to_owned(), Some("default".to_owned())),
                ("vm".to_owned(), Some("shop".to_owned())),
            ]
        );
        assert!(
            default.seen_queries.lock().unwrap().is_empty(),
            "the default backend is not asked"
        );
        assert_eq!(
            *router.backend.seen_queries.lock().unwrap(),
            vec![
                r#"sum(jobs_queued{namespace="default"}) by (pod)"#.to_owned(),
                r#"sum(jobs_queued{namespace!=""}) by (namespace)"#.to_owned(),
            ]
        );
    }

    /// A Prometheus with pods `p-0000`…: the query for `pending` never answers, the one for
    /// `failing` fails at once, the others answer at once; it counts the queries asked.
    struct PartsBackend {
        pods: usize,
        pending: &'static str,
        failing: &'static str,
        asked: std::sync::atomic::AtomicUsize,
    }

    impl MetricsBackend for PartsBackend {
        fn series_shapes<'a>(
            &'a self,
            _: &'a str,
            _: f64,
            _: f64,
        ) -> futures_util::future::BoxFuture<'a, Result<(Vec<SeriesShape>, u64), BackendError>>
        {
            Box::pin(async { Ok((Vec::new(), 0)) })
        }
        fn label_values<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: f64,
            _: f64,
        ) -> futures_util::future::BoxFuture<'a, Result<Vec<String>, BackendError>> {
            let names = (0..self.pods).map(|i| format!("p-{i:04}")).collect();
            Box::pin(async { Ok(names) })
        }
        fn query<'a>(
            &'a self,
            promql: &'a str,
            _: f64,
        ) -> futures_util::future::BoxFuture<'a, Result<QueryResult, BackendError>> {
            self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                if promql.contains(self.pending) {
                    std::future::pending::<()>().await;
                }
                if promql.contains(self.failing) {
                    return Err(BackendError::Failed("bad data".into()));
                }
                Ok(QueryResult::Vector(Vec::new().into()))
            })
        }
    }

    /// Every pod of the namespace, asked for by name, one query per pod.
    fn split_service(backend: Arc<PartsBackend>) -> CustomMetrics {
        let (_, custom) = service();
        CustomMetrics {
            backends: Backends::from(backend as Arc<dyn MetricsBackend>),
            ..custom
        }
        .with_query_options(QueryOptions {
            shaping: QueryShaping {
                batch: false,
                max_length: 70,
            },
            metrics: None,
        })
    }

    #[tokio::test]
    async fn a_request_needing_too_many_queries_is_refused_before_any_is_asked() {
        let backend = Arc::new(PartsBackend {
            pods: 1200,
            pending: "none",
            failing: "none",
            asked: Default::default(),
        });
        let error = split_service(backend.clone())
            .get(&request(ObjectName::All, ""), 0.0)
            .await
            .unwrap_err();
        let Error::BadRequest(message) = &error else {
            panic!("{error:?}");
        };
        assert!(message.contains("1200 objects"), "{message}");
        assert_eq!(backend.asked.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_failed_part_ends_the_request_without_waiting_for_the_rest() {
        // 40 parts: the first never answers, the third fails. Awaiting every part in order
        // would wait for the first forever.
        let backend = Arc::new(PartsBackend {
            pods: 40,
            pending: "\"p-0000\"",
            failing: "\"p-0002\"",
            asked: Default::default(),
        });
        let answer = tokio::time::timeout(
            Duration::from_secs(3600),
            split_service(backend.clone()).get(&request(ObjectName::All, ""), 0.0),
        )
        .await
        .expect("the request waited for a part that never answers");
        assert!(
            matches!(answer, Err(Error::Backend(BackendError::Failed(_)))),
            "{answer:?}"
        );
        // At most `PARTS_AT_ONCE` parts were ever running: the ones after the failure were not
        // asked.
        let asked = backend.asked.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            asked <= 2 * crate::PARTS_AT_ONCE,
            "{asked} of 40 parts were asked"
        );
    }
}
