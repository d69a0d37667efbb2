//! External metrics: a discovered `externalRules` metric, narrowed by a label selector, one value per Prometheus sample.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Error, MetricsBackend, SharedSnapshot};
use prom_adapter_core::model::{QuantityFormat, QueryResult, Sample, quantity_from_f64};
use prom_adapter_core::plan::ExternalPlanError;
use prom_adapter_core::request::ExternalRequest;
use prom_adapter_core::rules;

/// One value of an external metric.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalValue {
    /// The sample's labels; `None` for a scalar result.
    pub labels: Option<BTreeMap<String, String>>,
    /// The sample's timestamp (Unix seconds).
    pub timestamp: f64,
    /// The value as a Kubernetes quantity.
    pub value: String,
}

/// The external metrics service.
#[derive(Clone)]
pub struct ExternalMetrics {
    snapshot: SharedSnapshot,
    backends: super::Backends,
    metrics: Option<Arc<prom_adapter_telemetry::Metrics>>,
}

impl ExternalMetrics {
    /// A service reading the shared snapshot and querying `backends`.
    pub fn new(snapshot: SharedSnapshot, backends: impl Into<super::Backends>) -> Self {
        Self {
            snapshot,
            backends: backends.into(),
            metrics: None,
        }
    }

    /// Counts each rule's queries in `/metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<prom_adapter_telemetry::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The shared snapshot (for discovery documents).
    pub fn snapshot(&self) -> &SharedSnapshot {
        &self.snapshot
    }

    /// The PromQL a request runs.
    pub fn query_for(&self, request: &ExternalRequest) -> Result<String, Error> {
        self.plan(request).map(|(query, _, _)| query)
    }

    /// The PromQL a request runs, the rule it comes from (`externalRules[i]`) and the backend it
    /// goes to.
    fn plan(
        &self,
        request: &ExternalRequest,
    ) -> Result<(String, String, Arc<dyn MetricsBackend>), Error> {
        let snapshot = self.snapshot.load();
        prom_adapter_core::plan::external_query(
            &snapshot.rules,
            &snapshot.registry,
            &snapshot.table,
            &request.namespace,
            &request.metric,
            &request.selector,
        )
        .map(|plan| {
            let rule = &snapshot.rules.external[plan.rule];
            (
                plan.query,
                format!("externalRules[{}]", rule.position),
                plan.rule,
            )
        })
        .map_err(|e| match e {
            ExternalPlanError::NoSuchMetric => Error::MetricNotFound {
                metric: request.metric.clone(),
                resource: "namespaces".into(),
            },
            ExternalPlanError::Query {
                error: rules::Error::Matcher(e),
                ..
            } => Error::BadRequest(e.to_string()),
            ExternalPlanError::Query { error, .. } => Error::Query(error),
        })
        .map_err(|e| snapshot.unless_undiscovered(e))
        .and_then(|(query, rule_name, rule)| {
            let backend = self.backends.for_rule(
                snapshot.rules.external[rule].backend_name(),
                Some(&request.namespace),
            )?;
            Ok((query, rule_name, backend))
        })
    }

    /// Answers one request with a query at `now` (Unix seconds).
    pub async fn get(
        &self,
        request: &ExternalRequest,
        now: f64,
    ) -> Result<Vec<ExternalValue>, Error> {
        let (query, rule, backend) = self.plan(request)?;
        if let Some(metrics) = &self.metrics {
            metrics.record_rule_queries(&rule, "external", 1);
        }
        tracing::debug!(%query, "external metric query");
        match backend.query(&query, now).await? {
            QueryResult::Scalar(sample) => Ok(value_of(&request.metric, &sample, false)
                .into_iter()
                .collect()),
            QueryResult::Vector(samples) => Ok(samples
                .iter()
                .filter_map(|s| value_of(&request.metric, s, true))
                .collect()),
            QueryResult::Matrix => Err(Error::Internal(format!(
                "query {query:?} returned a range vector; external metrics need an instant vector or a scalar"
            ))),
        }
    }
}

/// A sample as an external value. A value no quantity can hold (±Inf, or too large) is left
/// out with a warning instead of becoming a garbage quantity, as prometheus-adapter's did.
fn value_of(metric: &str, sample: &Sample, with_labels: bool) -> Option<ExternalValue> {
    match quantity_from_f64(sample.value, QuantityFormat::DecimalSi) {
        Ok(value) => Some(ExternalValue {
            labels: with_labels.then(|| sample.labels.clone().into_iter().collect()),
            timestamp: sample.timestamp,
            value,
        }),
        Err(error) => {
            tracing::warn!(%metric, labels = ?sample.labels, %error, "skipping an external metric sample");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    use crate::BackendError;
    use crate::fake::FakeBackend;
    use prom_adapter_core::promql::LabelSelector;
    use prom_adapter_core::registry::SeriesShape;

    const RULES: &str = r#"
externalRules:
- seriesQuery: 'queue_consumer_lag{namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
- seriesQuery: 'queue_depth'
  resources: {namespaced: false}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
- seriesQuery: 'jobs_waiting'
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>})
"#;

    fn service() -> (ExternalMetrics, Arc<FakeBackend>) {
        // seriesQuery → what Prometheus answers it with.
        let shape = |query: &str, name: &str, labels: &[&str]| {
            (
                query.to_owned(),
                Arc::new(vec![SeriesShape::new(name, labels.iter().copied())]),
            )
        };
        let shapes = HashMap::from([
            shape(
                "queue_consumer_lag{namespace!=\"\"}",
                "queue_consumer_lag",
                &["name", "namespace"],
            ),
            shape("queue_depth", "queue_depth", &["name"]),
            shape("jobs_waiting", "jobs_waiting", &["queue"]),
        ]);
        let shared = crate::fake::snapshot(RULES, shapes);
        let backend = Arc::new(FakeBackend::default());
        (ExternalMetrics::new(shared, backend.clone()), backend)
    }

    fn request(namespace: &str, metric: &str, selector: &str) -> ExternalRequest {
        ExternalRequest {
            namespace: namespace.into(),
            metric: metric.into(),
            selector: LabelSelector::parse(selector).unwrap(),
        }
    }

    fn sample(labels: &[(&str, &str)], value: f64) -> Sample {
        crate::fake::sample(labels, value, 1_700_000_000.5)
    }

    #[test]
    fn queries_follow_the_rule_scope() {
        let (service, _) = service();
        // An external rule with the namespace override prometheus-adapter's
        // docs/externalmetrics.md recommends, namespaced and not.
        assert_eq!(
            service
                .query_for(&request("default", "queue_consumer_lag", "name=q1"))
                .unwrap(),
            r#"sum(queue_consumer_lag{name="q1",namespace="default"}) by (name)"#
        );
        assert_eq!(
            service
                .query_for(&request("default", "queue_depth", "name in (q2,q1)"))
                .unwrap(),
            r#"sum(queue_depth{name=~"q1|q2"}) by (name)"#
        );
        // No namespace mapping: the `namespace` label, where prometheus-adapter failed (#282).
        assert_eq!(
            service
                .query_for(&request("ci", "jobs_waiting", ""))
                .unwrap(),
            r#"sum(jobs_waiting{namespace="ci"})"#
        );
    }

    #[test]
    fn unknown_metrics_and_unsupported_operators_are_told_apart() {
        let (service, _) = service();
        let missing = service
            .query_for(&request("team-a", "nope", ""))
            .unwrap_err();
        assert_eq!(
            missing.to_string(),
            "the server could not find the metric nope for namespaces"
        );
        assert!(matches!(
            service.query_for(&request("default", "queue_depth", "size>3")),
            Err(Error::BadRequest(_))
        ));
    }

    #[tokio::test]
    async fn every_sample_becomes_an_item_and_unrepresentable_ones_are_dropped() {
        let (service, backend) = service();
        let query = r#"sum(queue_depth{name=~"q1|q2|q3"}) by (name)"#;
        backend.queries.lock().unwrap().insert(
            query.into(),
            Ok(QueryResult::Vector(
                vec![
                    sample(&[("name", "q1")], 12.0),
                    sample(&[("name", "q2")], f64::NAN),
                    sample(&[("name", "q3")], f64::INFINITY),
                ]
                .into(),
            )),
        );
        let values = service
            .get(&request("x", "queue_depth", "name in (q1,q2,q3)"), 0.0)
            .await
            .unwrap();
        let got: Vec<(String, String)> = values
            .iter()
            .map(|v| (v.labels.as_ref().unwrap()["name"].clone(), v.value.clone()))
            .collect();
        assert_eq!(
            got,
            vec![("q1".into(), "12".into()), ("q2".into(), "0".into())]
        );
        assert_eq!(values[0].timestamp, 1_700_000_000.5);
    }

    #[tokio::test]
    async fn scalars_empty_answers_matrices_and_outages() {
        let (service, backend) = service();
        let query = r#"sum(jobs_waiting{namespace="ci"})"#;
        let answer = |result: Result<QueryResult, BackendError>| {
            backend.queries.lock().unwrap().insert(query.into(), result);
        };
        let jobs = request("ci", "jobs_waiting", "");
        let get = || service.get(&jobs, 0.0);

        answer(Ok(QueryResult::Scalar(sample(&[], 2.5))));
        let values = get().await.unwrap();
        assert_eq!(values.len(), 1);
        assert_eq!(
            (values[0].labels.as_ref(), values[0].value.as_str()),
            (None, "2500m")
        );

        answer(Ok(QueryResult::Vector(Vec::new().into())));
        assert!(get().await.unwrap().is_empty());

        answer(Ok(QueryResult::Matrix));
        assert!(matches!(get().await, Err(Error::Internal(_))));

        answer(Err(BackendError::Unavailable("connection refused".into())));
        assert!(matches!(
            get().await,
            Err(Error::Backend(BackendError::Unavailable(_)))
        ));
    }
}
