//! Query templates (`metricsQuery`, `containerQuery`, `nodeQuery`) and the arguments each request renders them with.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{DiscoveryRule, Error, ResourceMapping, ResourceRule};
use crate::model::GroupResource;
use crate::promql::{
    LabelMatcher, LabelSelector, MatchOp, join_matchers, literal_alternation, template_alternation,
};
use crate::resources::ResourceTable;

/// A Go template with `<<` `>>` delimiters, parsed once when the rules file is compiled.
#[derive(Clone)]
pub struct QueryTemplate {
    source: String,
    template: Arc<gotmpl::Template>,
    /// Whether one query for every object can answer for some of them, or why not.
    per_object: Result<(), String>,
}

impl std::fmt::Debug for QueryTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryTemplate")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The fields a query template may use (prometheus-adapter's `queryTemplateArgs`).
pub const TEMPLATE_FIELDS: [&str; 5] = [
    "Series",
    "LabelMatchers",
    "GroupBy",
    "GroupBySlice",
    "LabelValuesByName",
];

/// The longest query a template may render (bytes). Longer ones are refused at load and at
/// request time: a template that loops could otherwise send hundreds of megabytes per request.
pub const MAX_QUERY_BYTES: usize = 1 << 20;

/// A `fmt::Write` that refuses to grow past a limit, so that rendering stops there.
struct CappedText {
    text: String,
    limit: usize,
    exceeded: bool,
}

impl std::fmt::Write for CappedText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.text.len() + s.len() > self.limit {
            self.exceeded = true;
            return Err(std::fmt::Error);
        }
        self.text.push_str(s);
        Ok(())
    }
}

impl QueryTemplate {
    /// Parses a query template and renders it once for a synthetic request with every field
    /// filled, so that a template that cannot render (an unknown function, a field that does
    /// not exist, a loop past the limits) is refused when the rules file is loaded rather than
    /// on every request. The error is the template parser's or renderer's message.
    pub fn compile(source: &str) -> Result<Self, String> {
        let template = super::parse_go_template("metrics-query", source)?;
        let compiled = Self {
            source: source.to_owned(),
            template: Arc::new(template),
            per_object: super::batching::per_object(source),
        };
        // Only failures that no request could avoid refuse the template: a field or function
        // that does not exist, or a loop past the limits. A template may rightly render nothing,
        // or fail on an index, for made-up values (`<<if eq .Series "x">>`, `<<index .GroupBySlice 2>>`).
        match compiled.render_synthetic() {
            Err(Error::Render(message)) => {
                if let Some(field) = message.strip_prefix("map has no entry for key: ") {
                    // Every key the template names is in the synthetic `.LabelValuesByName`,
                    // so a missing key is a field of the template's data.
                    return Err(format!(
                        ".{field} is not a template field, so every request with this rule would fail; the fields are .{}",
                        TEMPLATE_FIELDS.join(", .")
                    ));
                }
                if message.starts_with("undefined function")
                    || message.contains("range iteration budget")
                {
                    return Err(format!("fails to render: {message}"));
                }
            }
            Err(error @ Error::QueryTooLong(_)) => return Err(error.to_string()),
            _ => {}
        }
        Ok(compiled)
    }

    /// Renders for a request with every field filled. `.LabelValuesByName` holds every word of
    /// the template, so a key that a real request would carry is never missing here; any other
    /// missing field is a mistake in the template.
    fn render_synthetic(&self) -> Result<String, Error> {
        let mut words = BTreeMap::new();
        for word in self
            .source
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
        {
            words.insert(word.to_owned(), "synthetic".to_owned());
        }
        let matchers = [
            LabelMatcher::new("namespace", MatchOp::Equal, "synthetic")?,
            LabelMatcher::new("pod", MatchOp::Regex, "synthetic-a|synthetic-b")?,
        ];
        self.render(
            "synthetic_series",
            &matchers,
            &words,
            &["pod".to_owned(), "container".to_owned()],
        )
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// `Ok` when each object's value depends only on its own series, so that one query for every
    /// object answers a request for any of them (see `batching::per_object`); otherwise why not.
    pub fn per_object(&self) -> Result<(), &str> {
        self.per_object.as_ref().map(|_| ()).map_err(String::as_str)
    }

    /// Renders with prometheus-adapter's fields: `.Series`, `.LabelMatchers`, `.LabelValuesByName`,
    /// `.GroupBy` and `.GroupBySlice`.
    pub fn render(
        &self,
        series: &str,
        matchers: &[LabelMatcher],
        values_by_name: &BTreeMap<String, String>,
        group_by: &[String],
    ) -> Result<String, Error> {
        use gotmpl::Value;
        let values: BTreeMap<Arc<str>, Value> = values_by_name
            .iter()
            .map(|(k, v)| (Arc::from(k.as_str()), Value::from(v.as_str())))
            .collect();
        let data = Value::from_entries([
            ("Series".to_owned(), Value::from(series)),
            (
                "LabelMatchers".to_owned(),
                Value::from(join_matchers(matchers)),
            ),
            ("LabelValuesByName".to_owned(), Value::from(values)),
            ("GroupBy".to_owned(), Value::from(group_by.join(","))),
            (
                "GroupBySlice".to_owned(),
                Value::from(
                    group_by
                        .iter()
                        .map(|g| Value::from(g.as_str()))
                        .collect::<Vec<_>>(),
                ),
            ),
        ]);
        let mut rendered = CappedText {
            text: String::new(),
            limit: MAX_QUERY_BYTES,
            exceeded: false,
        };
        let result = self.template.execute_fmt(&mut rendered, &data);
        if rendered.exceeded {
            return Err(Error::QueryTooLong(MAX_QUERY_BYTES));
        }
        result.map_err(|e| Error::Render(e.to_string()))?;
        if rendered.text.is_empty() {
            return Err(Error::EmptyQuery);
        }
        Ok(rendered.text)
    }
}

/// What an API request asks of a rule's query.
#[derive(Debug, Clone, Copy)]
pub struct QueryRequest<'a> {
    /// The request's namespace, if any.
    pub namespace: Option<&'a str>,
    /// `metricLabelSelector` (custom) or `labelSelector` (external).
    pub metric_selector: &'a LabelSelector,
    /// The object names to select.
    pub names: &'a [String],
}

/// Renders a custom metric query: matcher order is metric selector (by key), namespace, resource,
/// as in prometheus-adapter. With `every_object`, the query for every object of the request's
/// namespace: no object matcher, `request.names` unread; only for templates that are
/// `per_object`, whose answer, kept to the asked objects, is the by-name query's.
pub fn build_custom_query(
    rule: &DiscoveryRule,
    table: &ResourceTable,
    series: &str,
    resource: &GroupResource,
    request: &QueryRequest<'_>,
    every_object: bool,
) -> Result<String, Error> {
    let query = ObjectQuery {
        template: &rule.metrics_query,
        mapping: &rule.resources,
        series,
        extra_group_by: &[],
        every_object,
    };
    query.build(table, resource, request)
}

/// Renders a resource-metrics query for pods (per namespace, grouped by pod and container) or
/// nodes; with `every_object`, for every pod of the namespace or every node (see
/// `build_custom_query`).
pub fn build_resource_query(
    rule: &ResourceRule,
    table: &ResourceTable,
    resource: &GroupResource,
    request: &QueryRequest<'_>,
    every_object: bool,
) -> Result<String, Error> {
    let container = [rule.container_label.clone()];
    let query = ObjectQuery {
        template: resource_template(rule, request),
        mapping: &rule.resources,
        series: "",
        extra_group_by: if request.namespace.is_some() {
            &container
        } else {
            &[]
        },
        every_object,
    };
    query.build(table, resource, request)
}

/// The template a resource metrics request renders: `containerQuery` for pods (namespaced),
/// `nodeQuery` for nodes.
pub fn resource_template<'r>(
    rule: &'r ResourceRule,
    request: &QueryRequest<'_>,
) -> &'r QueryTemplate {
    match request.namespace {
        Some(_) => &rule.container_query,
        None => &rule.node_query,
    }
}

/// A query over objects of one resource, before the request is known.
struct ObjectQuery<'a> {
    template: &'a QueryTemplate,
    mapping: &'a ResourceMapping,
    series: &'a str,
    /// Labels grouped by besides the object's (the container label).
    extra_group_by: &'a [String],
    /// No object matcher: every object of the namespace (or cluster).
    every_object: bool,
}

impl ObjectQuery<'_> {
    fn build(
        &self,
        table: &ResourceTable,
        resource: &GroupResource,
        request: &QueryRequest<'_>,
    ) -> Result<String, Error> {
        let Self {
            template,
            mapping,
            series,
            extra_group_by,
            every_object,
        } = *self;
        let (mut matchers, mut values_by_name) = request.metric_selector.to_matchers()?;
        if let Some(namespace) = request.namespace.filter(|ns| !ns.is_empty()) {
            let label = mapping.label_for_resource(&GroupResource::new("", "namespaces"), table)?;
            matchers.push(LabelMatcher::new(&label, MatchOp::Equal, namespace)?);
            values_by_name.insert(label, template_alternation(&[namespace]));
        }
        let label = mapping.label_for_resource(resource, table)?;
        let names = request.names;
        if !every_object {
            matchers.push(match names {
                [single] => LabelMatcher::new(&label, MatchOp::Equal, single.as_str())?,
                [] => LabelMatcher::new(&label, MatchOp::Equal, "")?,
                several => LabelMatcher::new(&label, MatchOp::Regex, literal_alternation(several))?,
            });
        } else if request.namespace.is_none_or(str::is_empty) {
            // Every object of a cluster-scoped resource: without a namespace matcher the
            // selector could be empty, or hold only matchers that match the empty string
            // (`env!="prod"`), which Prometheus refuses. Only then, since Prometheus answers
            // `label!=""` by merging the series of every value of the label.
            matchers.push(LabelMatcher::new(&label, MatchOp::NotEqual, "")?);
        }
        values_by_name.insert(label.clone(), template_alternation(names));
        let mut group_by = Vec::with_capacity(1 + extra_group_by.len());
        group_by.push(label);
        group_by.extend_from_slice(extra_group_by);
        template.render(series, &matchers, &values_by_name, &group_by)
    }
}

/// Renders an external metric query: selector matchers, then the namespace unless the rule says
/// `namespaced: false`. A rule with no namespace mapping uses the `namespace` label, where
/// prometheus-adapter failed every request (its issue #282).
pub fn build_external_query(
    rule: &DiscoveryRule,
    table: &ResourceTable,
    series: &str,
    request: &QueryRequest<'_>,
) -> Result<String, Error> {
    let (mut matchers, mut values_by_name) = request.metric_selector.to_matchers()?;
    if let Some(namespace) = request
        .namespace
        .filter(|ns| rule.resources.namespaced() && !ns.is_empty())
    {
        let label = match rule
            .resources
            .label_for_resource(&GroupResource::new("", "namespaces"), table)
        {
            Err(Error::NoLabelForResource(_)) => "namespace".to_owned(),
            other => other?,
        };
        matchers.push(LabelMatcher::new(&label, MatchOp::Equal, namespace)?);
        values_by_name.insert(label, template_alternation(&[namespace]));
    }
    rule.metrics_query
        .render(series, &matchers, &values_by_name, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{NameMatcher, SeriesFilter};

    const UPSTREAM_RESOURCE_RULES: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/upstream-resource-rules.yaml"
    ));

    /// prometheus-adapter's test converter maps a resource to a label named after the resource
    /// itself; overrides express the same thing.
    fn mock_mapping() -> ResourceMapping {
        ResourceMapping::new(
            vec![
                ("namespaces".into(), GroupResource::new("", "namespaces")),
                ("resource".into(), GroupResource::new("group", "resource")),
            ],
            None,
            true,
        )
    }

    fn rule(template: &str) -> DiscoveryRule {
        DiscoveryRule {
            series_query: "x".into(),
            series_selector: crate::promql::SeriesSelector::parse("x").unwrap(),
            filters: Vec::<SeriesFilter>::new(),
            series_filters: 0,
            resources: mock_mapping(),
            name: NameMatcher::new(regex::Regex::new(".*").unwrap(), "$0".into()),
            metrics_query: QueryTemplate::compile(template).unwrap(),
            position: 0,
            backend: None,
        }
    }

    fn build(
        template: &str,
        namespace: Option<&str>,
        selector: &str,
        names: &[&str],
        extra: &[&str],
    ) -> String {
        let selector = LabelSelector::parse(selector).unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let request = QueryRequest {
            namespace,
            metric_selector: &selector,
            names: &names,
        };
        let rule = rule(template);
        let query = ObjectQuery {
            template: &rule.metrics_query,
            mapping: &rule.resources,
            series: "foo",
            extra_group_by: &extra,
            every_object: false,
        };
        query
            .build(
                &ResourceTable::builtin(),
                &GroupResource::new("group", "resource"),
                &request,
            )
            .unwrap()
    }

    #[test]
    fn build_selector_cases_of_reference_4_1() {
        assert_eq!(
            build("series <<.Series>>", None, "", &[], &[]),
            "series foo"
        );
        assert_eq!(
            build("<<.LabelMatchers>>", None, "", &["bar", "baz"], &[]),
            r#"resource=~"bar|baz""#
        );
        assert_eq!(
            build("<<.LabelMatchers>>", None, "", &["bar"], &[]),
            r#"resource="bar""#
        );
        assert_eq!(
            build("<<.LabelMatchers>>", None, "metric1=value1", &["bar"], &[]),
            r#"metric1="value1",resource="bar""#
        );
        assert_eq!(
            build(
                r#"<<index .LabelValuesByName "resource">>"#,
                None,
                "",
                &["bar"],
                &[]
            ),
            "bar"
        );
        assert_eq!(
            build(
                r#"<<index .LabelValuesByName "resource">>"#,
                None,
                "",
                &["bar", "baz"],
                &[]
            ),
            "bar|baz"
        );
        assert_eq!(
            build(
                r#"<<index .LabelValuesByName "namespaces">> <<index .LabelValuesByName "resource">>"#,
                Some("default"),
                "",
                &["bar", "baz"],
                &[]
            ),
            "default bar|baz"
        );
        assert_eq!(build("<<.GroupBy>>", None, "", &[], &[]), "resource");
        assert_eq!(
            build("<<.GroupBy>>", None, "", &[], &["extra", "groups"]),
            "resource,extra,groups"
        );
        assert_eq!(build("<<.GroupBySlice>>", None, "", &[], &[]), "[resource]");
        assert_eq!(
            build("<<.GroupBySlice>>", None, "", &[], &["extra", "groups"]),
            "[resource extra groups]"
        );
    }

    fn external(
        template: &str,
        namespaced: bool,
        namespace: Option<&str>,
        selector: &str,
    ) -> String {
        let mut rule = rule(template);
        rule.resources =
            ResourceMapping::new(rule.resources.overrides().to_vec(), None, namespaced);
        let selector = LabelSelector::parse(selector).unwrap();
        let request = QueryRequest {
            namespace,
            metric_selector: &selector,
            names: &[],
        };
        build_external_query(&rule, &ResourceTable::builtin(), "foo", &request).unwrap()
    }

    #[test]
    fn build_external_cases_of_reference_4_2() {
        assert_eq!(external("series <<.Series>>", true, None, ""), "series foo");
        assert_eq!(
            external(
                r#"<<index .LabelValuesByName "namespaces">>"#,
                true,
                Some("default"),
                ""
            ),
            "default"
        );
        assert_eq!(
            external(
                r#"x<<index .LabelValuesByName "namespaces">>"#,
                false,
                Some("default"),
                ""
            ),
            "x"
        );
        assert_eq!(
            external("<<.LabelMatchers>>", true, None, "foo=bar"),
            r#"foo="bar""#
        );
        assert_eq!(
            external("<<.LabelMatchers>>", true, Some("default"), "foo=bar"),
            r#"foo="bar",namespaces="default""#
        );
        assert_eq!(
            external("<<.LabelMatchers>>", true, None, "foo=bar,qux in (bar,baz)"),
            r#"foo="bar",qux=~"bar|baz""#
        );
        assert_eq!(
            external("<<.LabelValuesByName>>", true, None, "foo=bar"),
            "map[foo:bar]"
        );
        assert_eq!(
            external("<<.LabelValuesByName>>", true, None, "foo in (bar,baz)"),
            "map[foo:bar|baz]"
        );
        assert_eq!(
            external("<<.GroupBy>>|<<.GroupBySlice>>", true, None, ""),
            "|[]"
        );
    }

    #[test]
    fn external_rules_without_a_namespace_mapping_use_the_namespace_label() {
        let mut rule = rule("sum(<<.Series>>{<<.LabelMatchers>>}) by (name)");
        rule.resources = ResourceMapping::new(vec![], None, true);
        let selector = LabelSelector::parse("name=q1").unwrap();
        let request = QueryRequest {
            namespace: Some("default"),
            metric_selector: &selector,
            names: &[],
        };
        assert_eq!(
            build_external_query(
                &rule,
                &ResourceTable::builtin(),
                "queue_consumer_lag",
                &request
            )
            .unwrap(),
            r#"sum(queue_consumer_lag{name="q1",namespace="default"}) by (name)"#
        );
    }

    #[test]
    fn templates_that_cannot_render_are_refused_when_compiled() {
        for (source, says) in [
            ("<<.Series", "unclosed"),
            ("<<nosuch .Series>>", "nosuch"),
            ("<<.Nope>>", ".Nope is not a template field"),
            (
                "<<with .GroupBySlice>><<$.LabelMatcher>><<end>>",
                ".LabelMatcher is not",
            ),
            ("<<range 10000000>>x<<end>>", "range"),
            (
                "<<range 50000>><<$.LabelMatchers>><<$.LabelMatchers>><<end>>",
                "longer than 1048576 bytes",
            ),
        ] {
            let error = QueryTemplate::compile(source).unwrap_err();
            assert!(
                error.to_lowercase().contains(&says.to_lowercase()),
                "{source}: {error}"
            );
        }
        // Keys of .LabelValuesByName depend on the request: any the template names is there.
        for source in [
            "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
            r#"x{ns="<<.LabelValuesByName.namespace>>",p=~"<<index .LabelValuesByName "pod">>"}"#,
            "<<range .GroupBySlice>><<.>>,<<end>>",
            // Data-dependent results are the request's business, not the loader's.
            r#"<<if eq .Series "x">>sum(x)<<end>>"#,
            "sum(<<.Series>>) by (<<index .GroupBySlice 2>>)",
        ] {
            assert!(QueryTemplate::compile(source).is_ok(), "{source}");
        }
    }

    #[test]
    fn render_errors_at_request_time_are_reported() {
        let t = QueryTemplate::compile(r#"<<index .LabelValuesByName "pod">>x"#).unwrap();
        assert_eq!(
            t.render("x", &[], &BTreeMap::new(), &[]).unwrap(),
            "x",
            "index of a missing key is empty, as in Go"
        );
        let t = QueryTemplate::compile("<<.LabelValuesByName.pod>>").unwrap();
        assert!(matches!(
            t.render("x", &[], &BTreeMap::new(), &[]),
            Err(Error::Render(_))
        ));
        // A request whose values make the query too long is refused, not sent.
        let t = QueryTemplate::compile(r#"<<index .LabelValuesByName "pod">>"#).unwrap();
        let values = BTreeMap::from([("pod".to_owned(), "p|".repeat(MAX_QUERY_BYTES))]);
        assert_eq!(
            t.render("x", &[], &values, &[]),
            Err(Error::QueryTooLong(MAX_QUERY_BYTES))
        );
    }

    #[test]
    fn resource_queries_of_reference_4_7() {
        let rules = crate::config::parse_rules(UPSTREAM_RESOURCE_RULES, "test").unwrap();
        let resource_rules = rules.resource.unwrap();
        let table = ResourceTable::builtin();
        let everything = LabelSelector::default();
        let query =
            |rule: &ResourceRule, resource: &str, namespace: Option<&str>, names: &[&str]| {
                let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
                let request = QueryRequest {
                    namespace,
                    metric_selector: &everything,
                    names: &names,
                };
                build_resource_query(
                    rule,
                    &table,
                    &GroupResource::new("", resource),
                    &request,
                    false,
                )
                .unwrap()
            };
        let (cpu, memory) = (&resource_rules.cpu, &resource_rules.memory);
        assert_eq!(
            query(cpu, "pods", Some("some-ns"), &["pod1", "pod3"]),
            r#"sum(rate(container_cpu_usage_seconds_total{namespace="some-ns",pod=~"pod1|pod3"}[1m])) by (pod,container)"#
        );
        assert_eq!(
            query(cpu, "pods", Some("other-ns"), &["pod27"]),
            r#"sum(rate(container_cpu_usage_seconds_total{namespace="other-ns",pod="pod27"}[1m])) by (pod,container)"#
        );
        assert_eq!(
            query(memory, "pods", Some("some-ns"), &["pod1", "pod3"]),
            r#"sum(container_memory_working_set_bytes{namespace="some-ns",pod=~"pod1|pod3"}) by (pod,container)"#
        );
        assert_eq!(
            query(cpu, "nodes", None, &["node1", "node2"]),
            r#"sum(rate(container_cpu_usage_seconds_total{instance=~"node1|node2", id='/'}[1m])) by (instance)"#
        );
        assert_eq!(
            query(memory, "nodes", None, &["node1", "node2"]),
            r#"sum(container_memory_working_set_bytes{instance=~"node1|node2",id='/'}) by (instance)"#
        );
        assert_eq!(resource_rules.window, std::time::Duration::from_secs(60));
    }
}
