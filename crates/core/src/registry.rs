//! An immutable snapshot of discovered metrics: series shapes run through the rules, looked up by resource, scope and name.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub use crate::model::SeriesShape;
use crate::model::{CustomMetricInfo, GroupResource};
use crate::promql::Series;
use crate::resources::ResourceTable;
use crate::rules::{DiscoveryRule, RuleSet};

/// Which rule serves a metric, and from which series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSource {
    /// Index of the rule in `rules` or `externalRules`.
    pub rule: usize,
    /// The series name `.Series` renders as.
    pub series: Arc<str>,
}

/// Discovered custom and external metrics.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    custom: BTreeMap<CustomMetricInfo, MetricSource>,
    external: BTreeMap<String, MetricSource>,
}

/// The distinct shapes of `series`, sorted: what discovery keeps of a listing.
pub fn shapes_of<'s>(series: impl Iterator<Item = &'s Series>) -> Vec<SeriesShape> {
    let mut shapes: Vec<SeriesShape> = series
        .map(|s| SeriesShape::new(&s.name, s.labels.keys()))
        .collect();
    shapes.sort();
    shapes.dedup();
    shapes
}

impl Registry {
    /// Runs series shapes (by `rules::discovery_key`) through the rules. Rules are applied in order and
    /// shapes in sorted order, so when two produce the same metric the later one wins, every time.
    pub fn build(
        rules: &RuleSet,
        shapes: &HashMap<String, Arc<Vec<SeriesShape>>>,
        table: &ResourceTable,
    ) -> Self {
        let mut registry = Registry::default();
        let shapes_of = |rule: &DiscoveryRule| {
            shapes
                .get(&rule.discovery_key())
                .map(|s| s.as_slice())
                .unwrap_or_default()
        };
        let source = |rule, shape: &SeriesShape| MetricSource {
            rule,
            series: shape.name.clone(),
        };
        for (index, rule) in rules.custom.iter().enumerate() {
            for shape in shapes_of(rule) {
                let Some(metric) = rule.metric_name_for(&shape.name) else {
                    continue;
                };
                for label in &shape.labels {
                    if let Some(info) = rule.resources.resource_for_label(label, table) {
                        let key = CustomMetricInfo {
                            resource: info.group_resource(),
                            namespaced: info.namespaced,
                            metric: metric.clone(),
                        };
                        registry.custom.insert(key, source(index, shape));
                    }
                }
            }
        }
        for (index, rule) in rules.external.iter().enumerate() {
            for shape in shapes_of(rule) {
                if let Some(metric) = rule.metric_name_for(&shape.name) {
                    registry.external.insert(metric, source(index, shape));
                }
            }
        }
        registry
    }

    /// Runs series (with their label values) through the rules as discovery would, matching each
    /// `seriesQuery` the way Prometheus does: for offline tools and tests.
    pub fn from_series(rules: &RuleSet, series: &[Series], table: &ResourceTable) -> Self {
        let shapes: HashMap<String, Arc<Vec<SeriesShape>>> = rules
            .custom
            .iter()
            .chain(&rules.external)
            .map(|rule| {
                let matched = series.iter().filter(|s| rule.series_selector.matches(s));
                (rule.discovery_key(), Arc::new(shapes_of(matched)))
            })
            .collect();
        Self::build(rules, &shapes, table)
    }

    /// Every custom metric, sorted by resource, scope and name.
    pub fn custom_metrics(&self) -> impl Iterator<Item = (&CustomMetricInfo, &MetricSource)> {
        self.custom.iter()
    }

    /// Every external metric, sorted by name.
    pub fn external_metrics(&self) -> impl Iterator<Item = (&String, &MetricSource)> {
        self.external.iter()
    }

    /// The source of a custom metric; `resource` must be normalised (plural, canonical group).
    pub fn custom(
        &self,
        resource: &GroupResource,
        namespaced: bool,
        metric: &str,
    ) -> Option<&MetricSource> {
        let key = CustomMetricInfo {
            resource: resource.clone(),
            namespaced,
            metric: metric.to_owned(),
        };
        self.custom.get(&key)
    }

    /// The source of an external metric.
    pub fn external(&self, metric: &str) -> Option<&MetricSource> {
        self.external.get(metric)
    }

    /// Every served metric as `resource/metric` (custom) or `external/metric`, for logs and
    /// diffs.
    pub fn served_names(&self) -> std::collections::BTreeSet<String> {
        let custom = self
            .custom
            .keys()
            .map(|info| format!("{}/{}", info.resource, info.metric));
        let external = self.external.keys().map(|name| format!("external/{name}"));
        custom.chain(external).collect()
    }

    /// Number of custom metric entries (resource × scope × name).
    pub fn custom_len(&self) -> usize {
        self.custom.len()
    }

    /// Number of external metrics.
    pub fn external_len(&self) -> usize {
        self.external.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::LabelSelector;
    use crate::rules::{QueryRequest, build_custom_query};

    /// prometheus-adapter's `DefaultConfig(1m, "kube_")` (its pkg/custom-provider/series_registry_test.go).
    const DEFAULT_CONFIG_KUBE: &str = r#"
rules:
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: ^container_(.*)_seconds_total$}
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[1m])) by (<<.GroupBy>>)
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  seriesFilters: [{isNot: ^container_.*_seconds_total$}]
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: ^container_(.*)_total$}
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[1m])) by (<<.GroupBy>>)
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  seriesFilters: [{isNot: ^container_.*_total$}]
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: ^container_(.*)$}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>,container!="POD"}) by (<<.GroupBy>>)
- seriesQuery: '{kube_namespace!="",__name__!~"^container_.*"}'
  seriesFilters: [{isNot: .*_total$}]
  resources: {template: kube_<<.Resource>>}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
- seriesQuery: '{kube_namespace!="",__name__!~"^container_.*"}'
  seriesFilters: [{isNot: .*_seconds_total}]
  resources: {template: kube_<<.Resource>>}
  name: {matches: ^(.*)_total$}
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)
- seriesQuery: '{kube_namespace!="",__name__!~"^container_.*"}'
  resources: {template: kube_<<.Resource>>}
  name: {matches: ^(.*)_seconds_total$}
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)
"#;

    fn registry_4_4() -> (RuleSet, Registry) {
        let rules = crate::config::parse_rules(DEFAULT_CONFIG_KUBE, "test").unwrap();
        let series = [
            r#"container_some_time_seconds_total{pod="somepod",namespace="somens",container="somecont"}"#,
            r#"container_some_count_total{pod="somepod",namespace="somens",container="somecont"}"#,
            r#"container_some_usage{pod="somepod",namespace="somens",container="somecont"}"#,
            r#"node_gigawatts{kube_node="somenode",kube_namespace="x"}"#,
            r#"service_proxy_packets{kube_service="somesvc",kube_namespace="somens"}"#,
            r#"ingress_hits_total{kube_ingress="someingress",kube_service="somesvc",kube_pod="backend1",kube_namespace="somens"}"#,
            r#"ingress_hits_total{kube_ingress="someingress",kube_service="somesvc",kube_pod="backend2",kube_namespace="somens"}"#,
            r#"volume_claims_total{kube_persistentvolume="somepv",kube_namespace="x"}"#,
            r#"work_queue_wait_seconds_total{kube_deployment="somedep",kube_namespace="somens"}"#,
            r#"node_fan_seconds_total{kube_node="somenode",kube_namespace="x"}"#,
        ];
        let series: Vec<Series> = series.iter().map(|s| Series::parse(s).unwrap()).collect();
        let registry = Registry::from_series(&rules, &series, &ResourceTable::builtin());
        (rules, registry)
    }

    #[test]
    fn lists_the_metrics_of_reference_4_4() {
        let (_, registry) = registry_4_4();
        let listed: Vec<String> = registry
            .custom_metrics()
            .map(|(info, _)| format!("{}/{}/{}", info.resource, info.namespaced, info.metric))
            .collect();
        // prometheus-adapter's pkg/custom-provider/series_registry_test.go with real API groups;
        // the namespace-labelled node/PV series of this fixture also register for namespaces
        // (their seriesQuery requires kube_namespace).
        let mut expected = vec![
            "pods/true/some_count",
            "namespaces/false/some_count",
            "pods/true/some_time",
            "namespaces/false/some_time",
            "pods/true/some_usage",
            "namespaces/false/some_usage",
            "services/true/ingress_hits",
            "ingresses.networking.k8s.io/true/ingress_hits",
            "pods/true/ingress_hits",
            "namespaces/false/ingress_hits",
            "services/true/service_proxy_packets",
            "namespaces/false/service_proxy_packets",
            "deployments.apps/true/work_queue_wait",
            "namespaces/false/work_queue_wait",
            "nodes/false/node_gigawatts",
            "persistentvolumes/false/volume_claims",
            "nodes/false/node_fan",
            "namespaces/false/node_gigawatts",
            "namespaces/false/volume_claims",
            "namespaces/false/node_fan",
        ];
        expected.sort();
        let mut listed_sorted = listed.clone();
        listed_sorted.sort();
        assert_eq!(listed_sorted, expected);
        assert!(
            !listed.iter().any(|m| m.starts_with("containers")),
            "the container label maps to nothing"
        );
    }

    #[test]
    fn renders_the_queries_of_reference_4_4() {
        let (rules, registry) = registry_4_4();
        let table = ResourceTable::builtin();
        let query = |resource: &str,
                     namespaced: bool,
                     metric: &str,
                     ns: Option<&str>,
                     names: &[&str],
                     selector: &str| {
            let resolved = table
                .resolve(&GroupResource::parse(resource))
                .unwrap()
                .group_resource();
            let source = registry.custom(&resolved, namespaced, metric).unwrap();
            let selector = LabelSelector::parse(selector).unwrap();
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            let request = QueryRequest {
                namespace: ns,
                metric_selector: &selector,
                names: &names,
            };
            build_custom_query(
                &rules.custom[source.rule],
                &table,
                &source.series,
                &resolved,
                &request,
                false,
            )
            .unwrap()
        };
        let cases = [
            (
                query(
                    "pods",
                    true,
                    "some_usage",
                    Some("somens"),
                    &["somepod1", "somepod2"],
                    "",
                ),
                r#"sum(container_some_usage{namespace="somens",pod=~"somepod1|somepod2",container!="POD"}) by (pod)"#,
            ),
            (
                query(
                    "pods",
                    true,
                    "some_count",
                    Some("somens"),
                    &["somepod1", "somepod2"],
                    "",
                ),
                r#"sum(rate(container_some_count_total{namespace="somens",pod=~"somepod1|somepod2",container!="POD"}[1m])) by (pod)"#,
            ),
            (
                query(
                    "pods",
                    true,
                    "some_time",
                    Some("somens"),
                    &["somepod1", "somepod2"],
                    "",
                ),
                r#"sum(rate(container_some_time_seconds_total{namespace="somens",pod=~"somepod1|somepod2",container!="POD"}[1m])) by (pod)"#,
            ),
            (
                query(
                    "service",
                    true,
                    "ingress_hits",
                    Some("somens"),
                    &["somesvc"],
                    "",
                ),
                r#"sum(rate(ingress_hits_total{kube_namespace="somens",kube_service="somesvc"}[1m])) by (kube_service)"#,
            ),
            (
                query(
                    "service",
                    true,
                    "ingress_hits",
                    Some("somens"),
                    &["somesvc"],
                    "param1=value1",
                ),
                r#"sum(rate(ingress_hits_total{param1="value1",kube_namespace="somens",kube_service="somesvc"}[1m])) by (kube_service)"#,
            ),
            (
                query(
                    "ingress.networking.k8s.io",
                    true,
                    "ingress_hits",
                    Some("somens"),
                    &["someingress"],
                    "",
                ),
                r#"sum(rate(ingress_hits_total{kube_namespace="somens",kube_ingress="someingress"}[1m])) by (kube_ingress)"#,
            ),
            (
                query(
                    "pod",
                    true,
                    "ingress_hits",
                    Some("somens"),
                    &["somepod"],
                    "",
                ),
                r#"sum(rate(ingress_hits_total{kube_namespace="somens",kube_pod="somepod"}[1m])) by (kube_pod)"#,
            ),
            (
                query(
                    "service",
                    true,
                    "service_proxy_packets",
                    Some("somens"),
                    &["somesvc"],
                    "",
                ),
                r#"sum(service_proxy_packets{kube_namespace="somens",kube_service="somesvc"}) by (kube_service)"#,
            ),
            (
                query(
                    "deployment.apps",
                    true,
                    "work_queue_wait",
                    Some("somens"),
                    &["somedep"],
                    "",
                ),
                r#"sum(rate(work_queue_wait_seconds_total{kube_namespace="somens",kube_deployment="somedep"}[1m])) by (kube_deployment)"#,
            ),
            (
                query("node", false, "node_gigawatts", None, &["somenode"], ""),
                r#"sum(node_gigawatts{kube_node="somenode"}) by (kube_node)"#,
            ),
            (
                query(
                    "persistentvolume",
                    false,
                    "volume_claims",
                    None,
                    &["somepv"],
                    "",
                ),
                r#"sum(rate(volume_claims_total{kube_persistentvolume="somepv"}[1m])) by (kube_persistentvolume)"#,
            ),
            (
                query("node", false, "node_fan", None, &["somenode"], ""),
                r#"sum(rate(node_fan_seconds_total{kube_node="somenode"}[1m])) by (kube_node)"#,
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn scope_comes_from_the_resource_table_not_from_labels() {
        // prometheus-adapter registered IngressClasses (cluster-scoped) as namespaced because the
        // series also had other labels.
        let rules = crate::config::parse_rules(
            "rules:\n- seriesQuery: 'x'\n  resources: {template: <<.Resource>>}\n  metricsQuery: x\n",
            "test",
        )
        .unwrap();
        let shapes = HashMap::from([(
            "x".to_owned(),
            Arc::new(vec![SeriesShape::new("x", ["ingressclass", "job"])]),
        )]);
        let registry = Registry::build(&rules, &shapes, &ResourceTable::builtin());
        let scopes: Vec<(String, bool)> = registry
            .custom_metrics()
            .map(|(i, _)| (i.resource.to_string(), i.namespaced))
            .collect();
        assert_eq!(
            scopes,
            vec![
                ("jobs.batch".to_owned(), true),
                ("ingressclasses.networking.k8s.io".to_owned(), false)
            ]
        );
    }
}
