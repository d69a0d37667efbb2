//! Requests become PromQL here, and only here: the API's providers, `explain`, `explain --why` and `simulate` all plan through these (pure functions of the rules, the registry and the resource table).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use crate::failure::Error;
use crate::model::{GroupResource, Sample};
use crate::promql::LabelSelector;
use crate::registry::Registry;
use crate::request::CustomRequest;
use crate::resources::{ResourceInfo, ResourceTable};
use crate::rules::{
    self, DiscoveryRule, QueryRequest, ResourceRule, RuleSet, build_custom_query,
    build_external_query, build_resource_query, resource_template,
};

/// Where a custom metric request's values come from: the pure lookup shared by the API and
/// `explain`.
pub struct QueryPlan<'s> {
    /// The rule that serves the metric.
    pub rule: &'s DiscoveryRule,
    /// Its index in `rules`.
    pub rule_index: usize,
    /// The series `.Series` renders as.
    pub series: Arc<str>,
    /// The described resource, normalised.
    pub resource: GroupResource,
    /// What the resource table says of it.
    pub info: &'s ResourceInfo,
    /// The label that holds object names.
    pub label: String,
}

impl<'s> QueryPlan<'s> {
    /// Looks the request's metric up; unknown resources, metrics and scopes are not found.
    pub fn new(
        rules: &'s RuleSet,
        registry: &Registry,
        table: &'s ResourceTable,
        request: &CustomRequest,
    ) -> Result<Self, Error> {
        let not_found = || Error::MetricNotFound {
            metric: request.metric.clone(),
            resource: request.resource.clone(),
        };
        let info = table
            .resolve(&GroupResource::parse(&request.resource))
            .ok_or_else(not_found)?;
        let resource = info.group_resource();
        let source = registry
            .custom(&resource, request.namespace.is_some(), &request.metric)
            .ok_or_else(not_found)?;
        let rule = &rules.custom[source.rule];
        let label = rule
            .resources
            .label_for_resource(&resource, table)
            .map_err(|_| not_found())?;
        Ok(Self {
            rule,
            rule_index: source.rule,
            series: source.series.clone(),
            resource,
            info,
            label,
        })
    }

    /// The PromQL for these object names, or the provider's error (a matcher PromQL cannot
    /// express is a bad request; any other failure means the metric is not served).
    pub fn query(
        &self,
        table: &ResourceTable,
        request: &CustomRequest,
        names: &[String],
    ) -> Result<String, Error> {
        self.build(table, request, names)
            .map_err(|e| self.request_error(request, e))
    }

    /// A matcher PromQL cannot express is a bad request; any other failure to build the query
    /// means the metric is not served.
    fn request_error(&self, request: &CustomRequest, error: rules::Error) -> Error {
        match error {
            rules::Error::Matcher(e) => Error::BadRequest(e.to_string()),
            _ => self.not_found(request),
        }
    }

    fn query_request<'r>(
        &self,
        request: &'r CustomRequest,
        names: &'r [String],
    ) -> QueryRequest<'r> {
        QueryRequest {
            namespace: request.namespace.as_deref(),
            metric_selector: &request.metric_selector,
            names,
        }
    }

    /// The queries that answer for these object names (see `QueryShaping::plan`).
    pub fn queries(
        &self,
        table: &ResourceTable,
        request: &CustomRequest,
        names: &[String],
        shaping: QueryShaping,
    ) -> Result<PlannedQueries, Error> {
        shaping.plan(
            self.rule.metrics_query.per_object(),
            names,
            || {
                build_custom_query(
                    self.rule,
                    table,
                    &self.series,
                    &self.resource,
                    &self.query_request(request, &[]),
                    true,
                )
                .map_err(|e| self.request_error(request, e))
            },
            &|part| self.query(table, request, part),
        )
    }

    /// The PromQL for these object names, or the rules code's own error (`--why` names it).
    pub fn build(
        &self,
        table: &ResourceTable,
        request: &CustomRequest,
        names: &[String],
    ) -> Result<String, rules::Error> {
        build_custom_query(
            self.rule,
            table,
            &self.series,
            &self.resource,
            &self.query_request(request, names),
            false,
        )
    }

    /// The label that holds namespace names in the rule's series.
    pub fn namespace_label(&self, table: &ResourceTable) -> Result<String, rules::Error> {
        self.rule
            .resources
            .label_for_resource(&GroupResource::new("", "namespaces"), table)
    }

    /// The request's metric is not served.
    pub fn not_found(&self, request: &CustomRequest) -> Error {
        Error::MetricNotFound {
            metric: request.metric.clone(),
            resource: request.resource.clone(),
        }
    }
}

/// An external metrics request, planned: the `externalRules` entry that serves it and its PromQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalPlan {
    /// The rule's index in `externalRules`.
    pub rule: usize,
    /// The query.
    pub query: String,
}

/// Why an external metrics request has no query.
#[derive(Debug, Clone, PartialEq)]
pub enum ExternalPlanError {
    /// No rule produces the metric (in the discovered series).
    NoSuchMetric,
    /// The rule's query cannot be built for this request.
    Query {
        /// The rule's index in `externalRules`.
        rule: usize,
        /// Why.
        error: rules::Error,
    },
}

/// Plans an external metrics request: `metric` in `namespace`, its series chosen by `selector`.
pub fn external_query(
    rules: &RuleSet,
    registry: &Registry,
    table: &ResourceTable,
    namespace: &str,
    metric: &str,
    selector: &LabelSelector,
) -> Result<ExternalPlan, ExternalPlanError> {
    let source = registry
        .external(metric)
        .ok_or(ExternalPlanError::NoSuchMetric)?;
    let request = QueryRequest {
        namespace: Some(namespace),
        metric_selector: selector,
        names: &[],
    };
    build_external_query(
        &rules.external[source.rule],
        table,
        &source.series,
        &request,
    )
    .map(|query| ExternalPlan {
        rule: source.rule,
        query,
    })
    .map_err(|error| ExternalPlanError::Query {
        rule: source.rule,
        error,
    })
}

/// What `--max-query-length` is unless set: under VictoriaMetrics' default `-search.maxQueryLen`
/// (16 KiB), the shortest limit among Prometheus-compatible backends.
pub const DEFAULT_MAX_QUERY_LENGTH: usize = 16_000;

/// How requests for objects become queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryShaping {
    /// Ask once for every object of the namespace (or cluster), then keep the asked ones, when the
    /// template gives each object a value of its own (`QueryTemplate::per_object`).
    pub batch: bool,
    /// Otherwise, the longest query (bytes) before the names are asked in parts.
    pub max_length: usize,
}

impl Default for QueryShaping {
    fn default() -> Self {
        Self {
            batch: true,
            max_length: DEFAULT_MAX_QUERY_LENGTH,
        }
    }
}

/// The queries that answer one request for objects; their samples together hold every asked
/// object's value (and, batched, other objects' too, which the caller drops).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedQueries {
    /// The queries.
    pub queries: Vec<String>,
    /// How they were made: `batched` (one for every object), `named` or `split` (the names in
    /// parts), for `/metrics`.
    pub shape: &'static str,
}

impl QueryShaping {
    /// One query for every object (`every_object`) when batching is on and the template is
    /// `per_object`: requests for the same metric and namespace, whichever objects they name,
    /// then share one query. Otherwise the names' query, in parts when it is longer than
    /// `max_length`, at most `MAX_QUERY_PARTS` of them.
    pub fn plan<E: From<TooManyParts>>(
        self,
        per_object: Result<(), &str>,
        names: &[String],
        every_object: impl FnOnce() -> Result<String, E>,
        build: &dyn Fn(&[String]) -> Result<String, E>,
    ) -> Result<PlannedQueries, E> {
        if self.batch && per_object.is_ok() {
            return Ok(PlannedQueries {
                queries: vec![every_object()?],
                shape: "batched",
            });
        }
        let queries = split_by_length(names, self.max_length, build)?;
        Ok(PlannedQueries {
            shape: if queries.len() > 1 { "split" } else { "named" },
            queries,
        })
    }
}

/// The most queries one request for objects is split into. Past it the request is refused
/// before any query is sent: parts are what one request can make Prometheus (and the adapter's
/// memory) carry, and at the default `--max-query-length` 64 parts name about 20,000 objects.
pub const MAX_QUERY_PARTS: usize = 64;

/// A request whose object names do not fit `MAX_QUERY_PARTS` queries of `--max-query-length`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "asking for these {objects} objects needs more than {MAX_QUERY_PARTS} queries of at most {max_length} bytes (--max-query-length); select fewer objects or shorten metricLabelSelector"
)]
pub struct TooManyParts {
    /// The objects asked for.
    pub objects: usize,
    /// `--max-query-length`.
    pub max_length: usize,
}

impl From<TooManyParts> for Error {
    fn from(refused: TooManyParts) -> Self {
        Error::BadRequest(refused.to_string())
    }
}

/// The queries `build` makes for `names`, halving the names until each query is at most
/// `max_length` bytes (or names one object). A query that selects objects by name and groups by
/// the object label gives each object the same value whichever other names it lists, so the
/// parts' answers together are the whole one's. Past `MAX_QUERY_PARTS` parts it stops building
/// and refuses, so the query text it holds stays within `MAX_QUERY_PARTS` parts.
pub fn split_by_length<E: From<TooManyParts>>(
    names: &[String],
    max_length: usize,
    build: &dyn Fn(&[String]) -> Result<String, E>,
) -> Result<Vec<String>, E> {
    let mut parts = Vec::new();
    let too_many = TooManyParts {
        objects: names.len(),
        max_length,
    };
    split_into(names, max_length, build, &mut parts, &too_many)?;
    Ok(parts)
}

fn split_into<E: From<TooManyParts>>(
    names: &[String],
    max_length: usize,
    build: &dyn Fn(&[String]) -> Result<String, E>,
    parts: &mut Vec<String>,
    too_many: &TooManyParts,
) -> Result<(), E> {
    let query = build(names)?;
    if query.len() <= max_length || names.len() <= 1 {
        if parts.len() == MAX_QUERY_PARTS {
            return Err(too_many.clone().into());
        }
        parts.push(query);
        return Ok(());
    }
    drop(query);
    let (first, second) = names.split_at(names.len() / 2);
    split_into(first, max_length, build, parts, too_many)?;
    split_into(second, max_length, build, parts, too_many)
}

/// One usage (CPU or memory) of a resource metrics request, planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// The query, one sample per object and container.
    pub query: String,
    /// The label that holds object names.
    pub label: String,
}

/// Plans `rule` (`resourceRules.cpu` or `.memory`) for the `resource` (pods or nodes) objects
/// `names`, in `namespace` for pods.
pub fn usage_query(
    rule: &ResourceRule,
    table: &ResourceTable,
    resource: &GroupResource,
    namespace: Option<&str>,
    names: &[String],
) -> Result<UsageQuery, rules::Error> {
    let request = QueryRequest {
        namespace,
        metric_selector: &LabelSelector::default(),
        names,
    };
    Ok(UsageQuery {
        query: build_resource_query(rule, table, resource, &request, false)?,
        label: rule.resources.label_for_resource(resource, table)?,
    })
}

/// The queries that answer `usage_query` for `names`, shaped (see `QueryShaping::plan`).
pub fn usage_queries(
    rule: &ResourceRule,
    table: &ResourceTable,
    resource: &GroupResource,
    namespace: Option<&str>,
    names: &[String],
    shaping: QueryShaping,
) -> Result<PlannedQueries, Error> {
    let request = QueryRequest {
        namespace,
        metric_selector: &LabelSelector::default(),
        names,
    };
    shaping.plan(
        resource_template(rule, &request).per_object(),
        names,
        || build_resource_query(rule, table, resource, &request, true).map_err(Error::Query),
        &|part| {
            usage_query(rule, table, resource, namespace, part)
                .map(|usage| usage.query)
                .map_err(Error::Query)
        },
    )
}

/// Samples → per-object values: the value of each object that `label` names, in the order the
/// objects first appear; the last sample naming an object wins, as prometheus-adapter reads a
/// result.
pub fn values_by_object<'s>(samples: &'s [Sample], label: &str) -> Vec<(&'s str, f64)> {
    let mut positions: HashMap<&str, usize> = HashMap::with_capacity(samples.len());
    let mut values: Vec<(&str, f64)> = Vec::with_capacity(samples.len());
    for sample in samples {
        let Some(name) = sample.labels.get(label) else {
            continue;
        };
        match positions.entry(name) {
            Entry::Occupied(seen) => values[*seen.get()].1 = sample.value,
            Entry::Vacant(new) => {
                new.insert(values.len());
                values.push((name, sample.value));
            }
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(labels: &[(&str, &str)], value: f64, timestamp: f64) -> Sample {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Sample {
            labels: labels.collect(),
            value,
            timestamp,
        }
    }

    #[test]
    fn each_object_gets_its_last_sample_in_first_seen_order() {
        let samples = [
            sample(&[("pod", "b")], 1.0, 0.0),
            sample(&[("pod", "a")], 2.0, 0.0),
            sample(&[("instance", "x")], 9.0, 0.0),
            sample(&[("pod", "b")], 3.0, 0.0),
        ];
        assert_eq!(
            values_by_object(&samples, "pod"),
            vec![("b", 3.0), ("a", 2.0)]
        );
        assert!(values_by_object(&samples, "service").is_empty());
    }

    #[test]
    fn long_object_lists_are_split_until_each_query_fits() {
        let names: Vec<String> = (0..100).map(|i| format!("pod-{i:03}")).collect();
        let build = |part: &[String]| Ok::<_, Error>(format!("x{{pod=~\"{}\"}}", part.join("|")));
        let whole = build(&names).unwrap();
        assert_eq!(
            split_by_length(&names, whole.len(), &build).unwrap(),
            vec![whole]
        );
        let parts = split_by_length(&names, 200, &build).unwrap();
        assert!(
            parts.len() > 1 && parts.iter().all(|q| q.len() <= 200),
            "{parts:?}"
        );
        // Every name is asked once, in order.
        let asked: Vec<&str> = parts
            .iter()
            .flat_map(|q| q["x{pod=~\"".len()..q.len() - 2].split('|'))
            .collect();
        assert_eq!(asked, names.iter().map(String::as_str).collect::<Vec<_>>());
        // A single name too long on its own is still asked, alone.
        assert_eq!(split_by_length(&names[..1], 5, &build).unwrap().len(), 1);
    }

    #[test]
    fn a_request_needing_more_than_the_most_parts_is_refused_before_it_is_all_built() {
        let names: Vec<String> = (0..1200).map(|i| format!("pod-{i:04}")).collect();
        let built = std::cell::Cell::new(0);
        // A selector long enough that each object needs a query of its own.
        let build = |part: &[String]| {
            built.set(built.get() + 1);
            Ok::<_, Error>(format!(
                "x{{s!~\"{}\",pod=~\"{}\"}}",
                "a".repeat(4000),
                part.join("|")
            ))
        };
        let Err(Error::BadRequest(message)) = split_by_length(&names, 4030, &build) else {
            panic!("1,200 one-object queries were planned");
        };
        assert!(
            message.contains("1200 objects") && message.contains("64 queries"),
            "{message}"
        );
        // Building stopped at the part past the limit: the halvings down to 65 leaves, not the
        // 2,399 builds of every object's query.
        assert!(built.get() < 200, "{} queries built", built.get());
        // The most parts are still planned.
        let parts = split_by_length(&names[..MAX_QUERY_PARTS], 4030, &build).unwrap();
        assert_eq!(parts.len(), MAX_QUERY_PARTS);
    }
}
