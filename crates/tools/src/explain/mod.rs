//! Rules authoring: summarise a rules file, list what it discovers from series (a file, or a live Prometheus), show a request's PromQL, and say why a metric is missing.

pub mod lint;
pub mod live;
pub mod rename;
pub mod report;
pub mod why;

use std::collections::BTreeMap;

use serde::Serialize;

use prom_adapter_core::plan::{self, QueryPlan, usage_query};
use prom_adapter_core::promql::Series;
use prom_adapter_core::registry::Registry;
use prom_adapter_core::request::{
    self, ExternalRequest, ObjectName, RequestPath, ResourcePath, parse_request_path,
    parse_resource_path,
};
use prom_adapter_core::resources::ResourceTable;
use prom_adapter_core::rules::RuleSet;

/// Why an explanation could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The series file could not be understood.
    #[error("series file: {0}")]
    Series(String),
    /// The request path is not one the adapter serves, or names no discovered metric.
    #[error("{0}")]
    Request(String),
    /// The request path could not be parsed.
    #[error("{0}")]
    Path(#[from] request::Error),
}

/// Whether `serve` asks the template once for every object of a namespace (unless
/// `--disable-query-batching`), or by name, and why.
fn batching(template: &prom_adapter_core::rules::QueryTemplate) -> String {
    match template.per_object() {
        Ok(()) => {
            "batched: one query for all objects (per namespace) answers every request".to_owned()
        }
        Err(why) => format!("asked by object name: {why}"),
    }
}

/// One line per rule, for `check`.
pub fn summarize(rules: &RuleSet) -> Vec<String> {
    let builtin = ResourceTable::builtin();
    let mut lines = Vec::new();
    for (at, rule) in rules.discovery_rules() {
        let mut resources: Vec<String> = rule
            .resources
            .overrides()
            .iter()
            .map(|(l, gr)| match builtin.resolve(gr) {
                Some(info) => format!("{l}→{}", info.group_resource()),
                // Fine for a custom resource of the cluster; a typo otherwise.
                None => format!("{l}→{gr} (not a built-in resource)"),
            })
            .collect();
        if let Some(template) = rule.resources.template() {
            resources.push(format!("template {}", template.source()));
        }
        if at.starts_with("externalRules") && !rule.resources.namespaced() {
            resources.push("not namespaced".to_owned());
        }
        let mut batching = if at.starts_with("externalRules") {
            String::new()
        } else {
            format!("; {}", batching(&rule.metrics_query))
        };
        if let Some(backend) = rule.backend_name() {
            batching.push_str(&format!("; backend {backend}"));
        }
        lines.push(format!(
            "{at}: {} → {:?} as {:?}; resources: {}; query {:?}{batching}",
            rule.series_query,
            rule.name.regex().as_str(),
            rule.name.as_template(),
            if resources.is_empty() {
                "none".to_owned()
            } else {
                resources.join(", ")
            },
            rule.metrics_query.source().trim()
        ));
    }
    if let Some(resource) = &rules.resource {
        lines.push(format!(
            "resourceRules: cpu and memory, container label {:?}, window {}",
            resource.cpu.container_label,
            prom_adapter_core::model::format_go_duration(resource.window)
        ));
        for (name, rule) in [("cpu", &resource.cpu), ("memory", &resource.memory)] {
            for (field, template) in [
                ("containerQuery", &rule.container_query),
                ("nodeQuery", &rule.node_query),
            ] {
                lines.push(format!(
                    "resourceRules.{name}.{field}: {}",
                    batching(template)
                ));
            }
        }
    }
    lines
}

/// Reads series from a Prometheus `/api/v1/series` JSON answer or from lines in selector notation.
pub fn parse_series_file(text: &str) -> Result<Vec<Series>, Error> {
    let trimmed = text.trim_start();
    // A JSON answer opens with `{"`; selector notation with `{label` or a metric name.
    let json = trimmed
        .strip_prefix('{')
        .is_some_and(|rest| rest.trim_start().starts_with('"'));
    if json {
        #[derive(serde::Deserialize)]
        struct Answer {
            data: Vec<BTreeMap<String, String>>,
        }
        let answer: Answer = serde_json::from_str(text)
            .map_err(|e| Error::Series(format!("not a /api/v1/series answer: {e}")))?;
        return answer
            .data
            .into_iter()
            .map(|labels| {
                Series::from_api_labels(labels)
                    .ok_or_else(|| Error::Series("a series has no __name__".into()))
            })
            .collect();
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|(n, line)| {
            Series::parse(line.trim()).map_err(|e| Error::Series(format!("line {}: {e}", n + 1)))
        })
        .collect()
}

/// The listing as text, one metric per line, and a count.
pub fn render_listing(listing: &Listing, series: usize) -> String {
    let mut out = String::new();
    for c in &listing.custom {
        let scope = if c.namespaced {
            "namespaced"
        } else {
            "cluster"
        };
        out.push_str(&format!(
            "custom   {}/{} ({scope}) <- {} [rules[{}]]\n",
            c.resource, c.metric, c.series, c.rule
        ));
    }
    for e in &listing.external {
        out.push_str(&format!(
            "external {} <- {} [externalRules[{}]]\n",
            e.metric, e.series, e.rule
        ));
    }
    out.push_str(&format!(
        "{} custom, {} external metrics from {series} series\n",
        listing.custom.len(),
        listing.external.len(),
    ));
    out
}

/// A list for one line: the first `shown` items and how many more.
pub(crate) fn abbreviate(items: &[String], shown: usize) -> String {
    if items.len() <= shown {
        items.join(", ")
    } else {
        format!(
            "{} and {} more",
            items[..shown].join(", "),
            items.len() - shown
        )
    }
}

/// A discovered custom metric, as `explain --output json` lists it.
#[derive(Debug, Serialize, PartialEq)]
pub struct CustomEntry {
    /// Group-resource, e.g. `deployments.apps`.
    pub resource: String,
    /// Scope.
    pub namespaced: bool,
    /// API metric name.
    pub metric: String,
    /// Series the query uses.
    pub series: String,
    /// Index in `rules`.
    pub rule: usize,
}

/// A discovered external metric.
#[derive(Debug, Serialize, PartialEq)]
pub struct ExternalEntry {
    /// API metric name.
    pub metric: String,
    /// Series the query uses.
    pub series: String,
    /// Index in `externalRules`.
    pub rule: usize,
}

/// Everything the rules produce from the series.
#[derive(Debug, Serialize, PartialEq)]
pub struct Listing {
    /// Custom metrics.
    pub custom: Vec<CustomEntry>,
    /// External metrics.
    pub external: Vec<ExternalEntry>,
}

/// Lists every metric the registry serves.
pub fn listing(registry: &Registry) -> Listing {
    Listing {
        custom: registry
            .custom_metrics()
            .map(|(info, source)| CustomEntry {
                resource: info.resource.to_string(),
                namespaced: info.namespaced,
                metric: info.metric.clone(),
                series: source.series.to_string(),
                rule: source.rule,
            })
            .collect(),
        external: registry
            .external_metrics()
            .map(|(metric, source)| ExternalEntry {
                metric: metric.clone(),
                series: source.series.to_string(),
                rule: source.rule,
            })
            .collect(),
    }
}

/// For a custom metrics path whose rule is batched (`QueryTemplate::per_object`), the one query
/// `serve` asks for every object of the namespace, whose answer it keeps to the asked objects;
/// `None` for other paths, and for rules asked by name.
pub fn batched_query_for_path(
    rules: &RuleSet,
    registry: &Registry,
    table: &ResourceTable,
    path: &str,
) -> Option<String> {
    let Ok(RequestPath::Custom(request)) = parse_request_path(path) else {
        return None;
    };
    let plan = QueryPlan::new(rules, registry, table, &request).ok()?;
    let planned = plan
        .queries(table, &request, &[], plan::QueryShaping::default())
        .ok()?;
    (planned.shape == "batched").then(|| planned.queries.concat())
}

/// The PromQL a request path runs, given the object names a selector would resolve to.
pub fn query_for_path(
    rules: &RuleSet,
    registry: &Registry,
    table: &ResourceTable,
    path: &str,
    objects: &[String],
) -> Result<String, Error> {
    if let Some(resource_path) = parse_resource_path(path) {
        return resource_queries(rules, table, &resource_path?, objects);
    }
    match parse_request_path(path)? {
        RequestPath::Custom(request) => {
            let plan = QueryPlan::new(rules, registry, table, &request).map_err(|e| {
                let scope = if request.namespace.is_some() {
                    "namespaced"
                } else {
                    "cluster-scoped"
                };
                Error::Request(format!("{e} ({scope}) in these series"))
            })?;
            let names: Vec<String> = match &request.name {
                ObjectName::Named(name) => vec![name.clone()],
                ObjectName::All if objects.is_empty() => {
                    return Err(Error::Request(
                        "`*` selects objects through the cluster: give their names with --objects a,b"
                            .into(),
                    ));
                }
                ObjectName::All => objects.to_vec(),
            };
            plan.query(table, &request, &names)
                .map_err(|e| Error::Request(e.to_string()))
        }
        RequestPath::External(ExternalRequest {
            namespace,
            metric,
            selector,
        }) => plan::external_query(rules, registry, table, &namespace, &metric, &selector)
            .map(|plan| plan.query)
            .map_err(|e| match e {
                plan::ExternalPlanError::NoSuchMetric => Error::Request(format!(
                    "the rules discover no external metric {metric} in these series"
                )),
                plan::ExternalPlanError::Query { error, .. } => Error::Request(error.to_string()),
            }),
    }
}

/// The CPU and memory queries a `metrics.k8s.io` request runs, as the resource metrics API builds
/// them from `resourceRules`, for these objects (the named one, or `objects` for a list).
pub fn resource_queries(
    rules: &RuleSet,
    table: &ResourceTable,
    path: &ResourcePath,
    objects: &[String],
) -> Result<String, Error> {
    let resource_rules = rules.resource.as_ref().ok_or_else(|| {
        Error::Request(
            "the rules file has no resourceRules, so metrics.k8s.io is not served".into(),
        )
    })?;
    let names: Vec<String> = match &path.name {
        Some(name) => vec![name.clone()],
        None if objects.is_empty() => {
            return Err(Error::Request(format!(
                "a {} list takes its objects from the cluster: give their names with --objects a,b",
                path.resource
            )));
        }
        None => objects.to_vec(),
    };
    let group_resource = prom_adapter_core::model::GroupResource::new("", path.resource);
    let query = |rule| {
        usage_query(
            rule,
            table,
            &group_resource,
            path.namespace.as_deref(),
            &names,
        )
        .map(|usage| usage.query)
        .map_err(|e| Error::Request(e.to_string()))
    };
    Ok(format!(
        "cpu: {}\nmemory: {}",
        query(&resource_rules.cpu)?,
        query(&resource_rules.memory)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_metrics_paths_show_their_cpu_and_memory_queries() {
        let rules = prom_adapter_core::config::parse_rules(
            include_str!("../../../../config/demo.yaml"),
            "demo.yaml",
        )
        .unwrap();
        let table = ResourceTable::builtin();
        let registry = Registry::from_series(&rules, &[], &table);
        let pod = query_for_path(
            &rules,
            &registry,
            &table,
            "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1",
            &[],
        )
        .unwrap();
        assert!(
            pod.starts_with("cpu: ")
                && pod.contains("\nmemory: ")
                && pod.contains(r#"pod="web-1""#),
            "{pod}"
        );
        assert!(pod.contains(r#"namespace="shop""#), "{pod}");
        let nodes = query_for_path(
            &rules,
            &registry,
            &table,
            "/apis/metrics.k8s.io/v1beta1/nodes",
            &["node-a".into(), "node-b".into()],
        )
        .unwrap();
        assert!(nodes.contains(r#"node=~"node\\-a|node\\-b""#), "{nodes}");
        let error = query_for_path(
            &rules,
            &registry,
            &table,
            "/apis/metrics.k8s.io/v1beta1/nodes",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("--objects"), "{error}");
    }

    const RULES: &str = r#"
rules:
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: ^container_(.*)$}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>,container!="POD"}) by (<<.GroupBy>>)
externalRules:
- seriesQuery: '{__name__="queue_depth",topic!=""}'
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (topic)
  resources: {namespaced: false}
"#;

    #[test]
    fn lists_and_explains_from_selector_lines_and_json() {
        let rules = prom_adapter_core::config::parse_rules(RULES, "test").unwrap();
        let lines = "container_some_usage{pod=\"p\",namespace=\"somens\",container=\"c\"}\ncontainer_x{pod=\"p\",namespace=\"n\",container=\"POD\"}\nqueue_depth{topic=\"t\"}\n";
        let json = r#"{"status":"success","data":[{"__name__":"container_some_usage","pod":"p","namespace":"somens","container":"c"},{"__name__":"queue_depth","topic":"t"}]}"#;
        for text in [lines, json] {
            let series = parse_series_file(text).unwrap();
            let table = ResourceTable::builtin();
            let registry = Registry::from_series(&rules, &series, &table);
            let listed = listing(&registry);
            let custom: Vec<(String, bool, String)> = listed
                .custom
                .iter()
                .map(|c| (c.resource.clone(), c.namespaced, c.metric.clone()))
                .collect();
            assert_eq!(
                custom,
                vec![
                    ("namespaces".into(), false, "some_usage".into()),
                    ("pods".into(), true, "some_usage".into())
                ]
            );
            assert_eq!(
                listed.external,
                vec![ExternalEntry {
                    metric: "queue_depth".into(),
                    series: "queue_depth".into(),
                    rule: 0
                }]
            );
            let q = query_for_path(
                &rules,
                &registry,
                &table,
                "/apis/custom.metrics.k8s.io/v1beta2/namespaces/somens/pods/*/some_usage",
                &["somepod1".into(), "somepod2".into()],
            )
            .unwrap();
            assert_eq!(
                q,
                r#"sum(container_some_usage{namespace="somens",pod=~"somepod1|somepod2",container!="POD"}) by (pod)"#
            );
            let q = query_for_path(&rules, &registry, &table, "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_depth?labelSelector=topic%3Dt", &[]).unwrap();
            assert_eq!(q, r#"sum(queue_depth{topic="t"}) by (topic)"#);
            assert!(
                query_for_path(
                    &rules,
                    &registry,
                    &table,
                    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/somens/pods/*/nope",
                    &["a".into()]
                )
                .is_err()
            );
        }
    }

    #[test]
    fn selector_lines_that_mention_data_are_not_taken_for_json() {
        let series = parse_series_file("{__name__=\"x\",job=\"data\"}\n").unwrap();
        assert_eq!(series[0].name, "x");
        assert!(
            parse_series_file("{\"status\":\"success\",\"data\":[{\"job\":\"x\"}]}").is_err(),
            "no __name__"
        );
    }

    #[test]
    fn bad_series_files_are_reported_with_their_line() {
        let err = parse_series_file("up{job=\"a\"}\nbroken{\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
