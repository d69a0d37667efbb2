//! `explain --why`: walks one metric request through the pipeline (series, filters, naming, resource labels, scope, query, value) and names the first step that loses it, with the fix.

use serde::Serialize;

use super::report::{dropping_filter, matched};
use super::{abbreviate, rename};
use prom_adapter_core::model::{GroupResource, QuantityFormat, QueryResult, quantity_from_f64};
use prom_adapter_core::plan::{self, ExternalPlanError, QueryPlan};
use prom_adapter_core::promql::Series;
use prom_adapter_core::registry::Registry;
use prom_adapter_core::request::ObjectName;
use prom_adapter_core::request::RequestPath;
use prom_adapter_core::resources::{ResourceInfo, ResourceTable};
use prom_adapter_core::rules::{DiscoveryRule, RuleSet};

/// The step that loses a metric, or `served` when none does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The request names a resource the adapter does not know.
    UnknownResource,
    /// The rule's `seriesQuery` matches no series in the max-age window.
    NoSeries,
    /// A `seriesFilters` entry removes the series.
    DroppedByFilter,
    /// `name.matches` does not match the series name.
    NameDoesNotMatch,
    /// `name.as` turns the series into another metric name.
    NameBecomesOther,
    /// No rule produces the metric from any series the rules match.
    NotProduced,
    /// No label of the series maps to the requested resource.
    NoLabelForResource,
    /// The metric exists for the resource, but in the other scope.
    ScopeMismatch,
    /// The rule maps a label whose value the scrape target replaced: the exporter's value is in
    /// `exported_<label>`.
    RenamedByScrape,
    /// The query returns no sample for the object.
    NoSample,
    /// The query returns NaN for the object.
    #[serde(rename = "nan")]
    NaN,
    /// The query returns ±Inf or a value beyond a quantity's range.
    Infinite,
    /// The request's selector cannot be expressed in PromQL, or needs a cluster.
    BadRequest,
    /// The rule's `metricsQuery` template does not render.
    TemplateError,
    /// Nothing loses it: the API serves a value.
    Served,
}

/// What `--why` concludes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The verdict.
    pub verdict: Verdict,
    /// The rule concerned (`rules[0]`), when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// What happened, in words.
    pub explanation: String,
    /// What to change (empty when served).
    pub fix: String,
    /// The PromQL run, when the walk got that far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The value the API serves, when it serves one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Finding {
    fn new(verdict: Verdict, rule: Option<String>, explanation: String, fix: String) -> Self {
        Self {
            verdict,
            rule,
            explanation,
            fix,
            query: None,
            value: None,
        }
    }
}

/// A query to run to finish the walk: discovery keeps the metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The rule that serves the metric.
    pub rule: String,
    /// The rule's named backend (`None`: the default), where the query goes.
    pub backend: Option<String>,
    /// The PromQL the API runs.
    pub query: String,
    /// The label holding object names (custom metrics).
    pub label: Option<String>,
    /// The object asked for by name (custom), or `None` for `*` and external metrics.
    pub object: Option<String>,
    /// Object names the series carry, to suggest when the object has no sample.
    pub known_objects: Vec<String>,
    /// What the request is about, for messages (`pods web-1`, `namespace default`).
    pub subject: String,
}

/// The first half of the walk: a verdict from the series alone, or the query that decides.
#[derive(Debug, Clone, PartialEq)]
pub enum Walk {
    /// A step before the query loses the metric.
    Lost(Finding),
    /// Run this query and `judge` its result.
    Query(Probe),
}

/// Walks a request through discovery over `series` (as listed within `max_age`, described
/// in `window` for messages); `registry` is what those series discover.
pub fn walk(
    rules: &RuleSet,
    registry: &Registry,
    series: &[Series],
    table: &ResourceTable,
    request: &RequestPath,
    window: &str,
) -> Walk {
    match request {
        RequestPath::Custom(request) => {
            let Some(info) = table.resolve(&GroupResource::parse(&request.resource)) else {
                return Walk::Lost(Finding::new(
                    Verdict::UnknownResource,
                    None,
                    format!(
                        "{:?} is not in explain's built-in table of Kubernetes resources (explain does not read a cluster, so custom resources are unknown to it).",
                        request.resource
                    ),
                    "For a built-in resource, write its plural with its group: pods, services, deployments.apps, ingresses.networking.k8s.io. For a custom resource, check the rule against a cluster with `serve`.".into(),
                ));
            };
            let resource = info.group_resource();
            let namespaced = request.namespace.is_some();
            let metric = &request.metric;
            if registry.custom(&resource, namespaced, metric).is_some() {
                return custom_probe(rules, registry, table, request, series);
            }
            if registry.custom(&resource, !namespaced, metric).is_some() {
                return Walk::Lost(scope_mismatch(info, request));
            }
            let served_for: Vec<_> = registry
                .custom_metrics()
                .filter(|(i, _)| i.metric == *metric)
                .collect();
            if let Some((_, source)) = served_for.first() {
                let resources: Vec<String> = served_for
                    .iter()
                    .map(|(i, _)| i.resource.to_string())
                    .collect();
                return Walk::Lost(no_label(
                    rules,
                    source.rule,
                    &source.series,
                    series,
                    info,
                    metric,
                    &resources,
                ));
            }
            Walk::Lost(unproduced(
                rules,
                "rules",
                &rules.custom,
                metric,
                series,
                window,
                Some(info),
            ))
        }
        RequestPath::External(prom_adapter_core::request::ExternalRequest {
            namespace,
            metric,
            selector,
        }) => match plan::external_query(rules, registry, table, namespace, metric, selector) {
            Ok(plan) => Walk::Query(Probe {
                rule: format!("externalRules[{}]", plan.rule),
                backend: rules.external[plan.rule].backend_name().map(str::to_owned),
                query: plan.query,
                label: None,
                object: None,
                known_objects: vec![],
                subject: format!("namespace {namespace}"),
            }),
            Err(ExternalPlanError::NoSuchMetric) => Walk::Lost(unproduced(
                rules,
                "externalRules",
                &rules.external,
                metric,
                series,
                window,
                None,
            )),
            Err(ExternalPlanError::Query { rule, error }) => {
                Walk::Lost(query_error(format!("externalRules[{rule}]"), error))
            }
        },
    }
}

/// The second half: what the query's result means for the request.
pub fn judge(probe: &Probe, result: &QueryResult) -> Finding {
    let finding = |verdict, explanation, fix| Finding {
        query: Some(probe.query.clone()),
        ..Finding::new(verdict, Some(probe.rule.clone()), explanation, fix)
    };
    let samples = match result {
        QueryResult::Vector(samples) => samples.clone(),
        QueryResult::Scalar(sample) => std::sync::Arc::from([sample.clone()]),
        QueryResult::Matrix => {
            return finding(
                    Verdict::NoSample,
                    "The query returns a range vector, which the metrics APIs cannot serve.".into(),
                    "End metricsQuery in an instant vector: wrap range selectors in a function such as rate() or max_over_time().".into(),
                );
        }
    };
    // What the API serves: for custom metrics one value per object (the last sample naming it,
    // as the provider reads the result), for external metrics one item per sample.
    let values: Vec<(String, f64)> = match &probe.label {
        Some(label) => plan::values_by_object(&samples, label)
            .into_iter()
            .filter(|(name, _)| probe.object.as_deref().is_none_or(|o| o == *name))
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
        None => samples
            .iter()
            .map(|s| {
                let labels: Vec<String> =
                    s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                (format!("{{{}}}", labels.join(",")), s.value)
            })
            .collect(),
    };
    if values.is_empty() {
        let known = if probe.known_objects.is_empty() {
            String::new()
        } else {
            format!(
                " The series name these objects: {}.",
                abbreviate(&probe.known_objects, 10)
            )
        };
        let (explanation, fix) = match &probe.label {
            Some(label) if !samples.is_empty() && samples.iter().all(|s| !s.labels.contains_key(label)) => (
                format!(
                    "The query returns {} sample(s), none with a {label} label, so no object can be told apart.",
                    samples.len()
                ),
                format!("Keep the object label in the result: end metricsQuery with `by (<<.GroupBy>>)` (here `by ({label})`)."),
            ),
            Some(label) if !samples.is_empty() => (
                format!(
                    "The query returns {} sample(s), none with {label}=\"{}\" for {}.{known}",
                    samples.len(),
                    probe.object.as_deref().unwrap_or("*"),
                    probe.subject
                ),
                "Ask for the name Prometheus has for the object (the label value above); if it is right, the object has no recent samples.".into(),
            ),
            _ => (
                format!("The query returns no sample for {}.{known}", probe.subject),
                "Run the query in Prometheus. If the object's name differs from the label value Prometheus has, ask for that name; if the series are there but the result is empty, a matcher in metricsQuery or a range window shorter than the scrape interval (use at least four intervals, e.g. [2m] for 30s) empties it.".into(),
            ),
        };
        return finding(Verdict::NoSample, explanation, fix);
    }
    if let Some((object, _)) = values.iter().find(|(_, v)| v.is_nan()) {
        return finding(
            Verdict::NaN,
            format!(
                "The query returns NaN for {object} in {} (the API serves it as 0).",
                probe.subject
            ),
            "metricsQuery divides by zero or rates over too few samples: guard the divisor (`/ (… > 0)`), or widen the range window.".into(),
        );
    }
    let rendered: Vec<(String, Result<String, String>)> = values
        .iter()
        .map(|(object, v)| {
            (
                object.clone(),
                quantity_from_f64(*v, QuantityFormat::DecimalSi).map_err(|e| e.to_string()),
            )
        })
        .collect();
    if let Some((object, Err(error))) = rendered.iter().find(|(_, r)| r.is_err()) {
        return finding(
            Verdict::Infinite,
            format!(
                "The query returns a value for {object} that no Kubernetes quantity holds ({error}): the API answers 500 for that object alone and leaves it out of lists."
            ),
            "metricsQuery divides by zero (+Inf) or overflows: guard the divisor (`/ (… > 0)`) or scale the value.".into(),
        );
    }
    let value = match rendered.as_slice() {
        [(_, Ok(single))] => single.clone(),
        several => several
            .iter()
            .map(|(object, r)| format!("{object}={}", r.as_deref().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", "),
    };
    Finding {
        value: Some(value.clone()),
        ..finding(
            Verdict::Served,
            format!(
                "Nothing loses it: the API serves {value} for {}.",
                probe.subject
            ),
            String::new(),
        )
    }
}

fn custom_probe(
    rules: &RuleSet,
    registry: &Registry,
    table: &ResourceTable,
    request: &prom_adapter_core::request::CustomRequest,
    series: &[Series],
) -> Walk {
    let plan = match QueryPlan::new(rules, registry, table, request) {
        Ok(plan) => plan,
        Err(error) => {
            return Walk::Lost(Finding::new(
                Verdict::NoLabelForResource,
                None,
                error.to_string(),
                "Map a label of the series to the resource in resources.overrides.".into(),
            ));
        }
    };
    let rule_name = format!("rules[{}]", plan.rule_index);
    let namespace_label = plan.namespace_label(table).ok();
    let rule_series: Vec<&Series> = matched(plan.rule, series)
        .into_iter()
        .filter(|s| *s.name == *plan.series)
        .collect();
    let mut asked: Vec<(&str, &str)> = Vec::new();
    if let (Some(ns), Some(label)) = (&request.namespace, &namespace_label) {
        asked.push((label, ns));
    }
    if let ObjectName::Named(name) = &request.name {
        asked.push((&plan.label, name));
    }
    if let Some(finding) = renamed_by_scrape(&rule_name, plan.rule, &rule_series, &asked) {
        return Walk::Lost(finding);
    }
    let mut known: Vec<String> = rule_series
        .iter()
        .filter(|s| match (&request.namespace, &namespace_label) {
            (Some(ns), Some(label)) => s.labels.get(label) == Some(ns),
            _ => true,
        })
        .filter_map(|s| s.labels.get(&plan.label).cloned())
        .collect();
    known.sort();
    known.dedup();
    let (object, names) = match &request.name {
        ObjectName::Named(name) => (Some(name.clone()), vec![name.clone()]),
        ObjectName::All if !request.label_selector.is_empty() => {
            return Walk::Lost(Finding::new(
                Verdict::BadRequest,
                Some(rule_name),
                "explain has no cluster to list the objects a labelSelector chooses.".into(),
                "Drop labelSelector (explain then takes the objects Prometheus has), or ask for one object by name.".into(),
            ));
        }
        ObjectName::All => (None, known.clone()),
    };
    let subject = format!("{} {}", plan.resource, object.as_deref().unwrap_or("*"));
    match plan.build(table, request, &names) {
        Ok(query) => Walk::Query(Probe {
            rule: rule_name,
            backend: plan.rule.backend_name().map(str::to_owned),
            query,
            label: Some(plan.label.clone()),
            object,
            known_objects: known,
            subject,
        }),
        Err(error) => Walk::Lost(query_error(rule_name, error)),
    }
}

/// The request asks for a value that the rule's label does not hold on any series but its
/// `exported_` twin does: the scrape target's label took the exporter's place.
fn renamed_by_scrape(
    rule_name: &str,
    rule: &DiscoveryRule,
    series: &[&Series],
    asked: &[(&str, &str)],
) -> Option<Finding> {
    let renames = rename::renamed_overrides(rule, series);
    let lost: Vec<(&rename::Rename, &str)> = asked
        .iter()
        .filter_map(|(label, value)| {
            let rename = renames.iter().find(|r| r.label == *label)?;
            (!rename.target_values.contains(*value) && rename.exporter_values.contains(*value))
                .then_some((rename, *value))
        })
        .collect();
    if lost.is_empty() {
        return None;
    }
    let asked: Vec<String> = lost
        .iter()
        .map(|(r, value)| format!("{}=\"{value}\"", r.label))
        .collect();
    let lost: Vec<&rename::Rename> = lost.iter().map(|(r, _)| *r).collect();
    let series_name = series.first().map_or("", |s| s.name.as_str());
    Some(Finding::new(
        Verdict::RenamedByScrape,
        Some(rule_name.to_owned()),
        format!(
            "No {series_name} series has {}, so the query would find nothing: {}.",
            asked.join(" or "),
            rename::describe(rule_name, &lost)
        ),
        rename::fix(rule_name, rule, &renames),
    ))
}

/// A query the rules code could not build, as a verdict.
fn query_error(rule: String, error: prom_adapter_core::rules::Error) -> Finding {
    use prom_adapter_core::rules::Error;
    let (verdict, fix) = match &error {
        Error::Matcher(_) => (
            Verdict::BadRequest,
            "Write the selector with =, !=, in, notin, exists or !exists on label names PromQL accepts (the API answers 400 to it).".to_owned(),
        ),
        Error::NoLabelForResource(resource) => (
            Verdict::NoLabelForResource,
            format!(
                "Map the label that holds {resource} in {rule}.resources.overrides (for namespaces: namespace: {{resource: namespace}})."
            ),
        ),
        Error::Render(_) | Error::EmptyQuery => (
            Verdict::TemplateError,
            format!("Fix {rule}.metricsQuery: `prom-adapter check` shows the fields it may use."),
        ),
        Error::QueryTooLong(_) => (
            Verdict::TemplateError,
            format!(
                "Make {rule}.metricsQuery render a shorter query: a `range` over request values repeats its body once per value, and a selector over many objects is better as a label selector."
            ),
        ),
    };
    Finding::new(
        verdict,
        Some(rule),
        format!("The query cannot be built: {error}."),
        fix,
    )
}

const CLUSTER_SCOPED: &str = "cluster-scoped, and the request puts it in a namespace";

fn scope_mismatch(
    info: &ResourceInfo,
    request: &prom_adapter_core::request::CustomRequest,
) -> Finding {
    let name = match &request.name {
        ObjectName::Named(name) => name.clone(),
        ObjectName::All => "*".to_owned(),
    };
    let resource = info.group_resource();
    let (scope, object) = if info.namespaced {
        (
            "namespaced, and the request names no namespace",
            format!("namespaces/NAMESPACE/{resource}/{name}"),
        )
    } else if resource.resource == "namespaces" && resource.group.is_empty() {
        (CLUSTER_SCOPED, format!("namespaces/{name}/metrics"))
    } else {
        (CLUSTER_SCOPED, format!("{resource}/{name}"))
    };
    let path = format!(
        "/apis/custom.metrics.k8s.io/v1beta2/{object}/{}",
        request.metric
    );
    Finding::new(
        Verdict::ScopeMismatch,
        None,
        format!(
            "{} is served for {resource}, which is {scope}.",
            request.metric
        ),
        format!("Ask {path}"),
    )
}

fn no_label(
    rules: &RuleSet,
    rule_index: usize,
    series_name: &str,
    series: &[Series],
    wanted: &ResourceInfo,
    metric: &str,
    served_for: &[String],
) -> Finding {
    let rule = &rules.custom[rule_index];
    let mut labels: Vec<String> = matched(rule, series)
        .into_iter()
        .filter(|s| s.name == series_name)
        .flat_map(|s| s.labels.keys().cloned())
        .collect();
    labels.sort();
    labels.dedup();
    let resource = wanted.group_resource();
    let candidate = labels
        .iter()
        .find(|l| {
            let l = l.to_ascii_lowercase();
            l == wanted.singular
                || l == wanted.plural
                || l.ends_with(&format!("_{}", wanted.singular))
        })
        .cloned()
        .unwrap_or_else(|| "LABEL".to_owned());
    let group = if wanted.group.is_empty() {
        String::new()
    } else {
        format!("group: {}, ", wanted.group)
    };
    let served = if served_for.is_empty() {
        "no resource".to_owned()
    } else {
        served_for.join(", ")
    };
    Finding::new(
        Verdict::NoLabelForResource,
        Some(format!("rules[{rule_index}]")),
        format!(
            "{metric} comes from series {series_name} (labels: {}), and no label maps to {resource}; it is served for {served}.",
            labels.join(", ")
        ),
        format!(
            "Map the label that holds {} names in rules[{rule_index}]: resources: {{overrides: {{{candidate}: {{{group}resource: {}}}}}}}",
            wanted.kind, wanted.plural
        ),
    )
}

/// The metric is produced by no rule: find the rule and series the user most likely meant and
/// say which step drops it.
fn unproduced(
    rules: &RuleSet,
    key: &str,
    list: &[DiscoveryRule],
    metric: &str,
    series: &[Series],
    window: &str,
    resource: Option<&ResourceInfo>,
) -> Finding {
    // How likely a (rule, series) is the one meant, compared as (class, shared prefix):
    // class 4: kept and named `metric` (served unless no label maps); 3: kept, and the series is
    // itself called `metric` (the rule renames it); 2: named `metric` once a filter is passed;
    // 1: only a shared name prefix.
    let mut best: Option<((u8, usize), usize, String)> = None;
    let mut best_empty: Option<(usize, usize)> = None;
    for (index, rule) in list.iter().enumerate() {
        let matched = matched(rule, series);
        if matched.is_empty() {
            let score = affinity(metric, &rule.series_query);
            if best_empty.is_none_or(|(s, _)| score > s) {
                best_empty = Some((score, index));
            }
            continue;
        }
        let mut names: Vec<&str> = matched.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let produced = rule.name.metric_name(name);
            let kept = dropping_filter(rule, name).is_none();
            let exact = produced.as_deref() == Some(metric);
            let class = match (exact, kept, name == metric) {
                (true, true, _) => 4,
                (false, true, true) => 3,
                (true, false, _) => 2,
                _ => 1,
            };
            let prefix = common_prefix(metric, name)
                .max(produced.as_deref().map_or(0, |p| common_prefix(metric, p)));
            let score = (class, prefix);
            if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                best = Some((score, index, name.to_owned()));
            }
        }
    }
    const RELATED: usize = 4;
    let (candidate_class, candidate_prefix) = best.as_ref().map_or((0, 0), |(s, _, _)| *s);
    if let Some((score, index)) = best_empty
        && candidate_class < 2
        && score >= RELATED
        && score > candidate_prefix
    {
        let query = &list[index].series_query;
        let position = list[index].position;
        return Finding::new(
            Verdict::NoSeries,
            Some(format!("{key}[{position}]")),
            format!(
                "{key}[{position}].seriesQuery {query} matches no series in Prometheus {window}."
            ),
            format!(
                "Run `count by (__name__) ({query})` in Prometheus over a longer range. If it finds nothing, correct the metric name or the label matchers of seriesQuery; if it finds series, they are older than the window: make sure they are still scraped, or raise --metrics-max-age."
            ),
        );
    }
    let Some(((class, _), index, name)) =
        best.filter(|((class, prefix), _, _)| *class >= 2 || *prefix >= RELATED)
    else {
        let mut produced: Vec<String> = list
            .iter()
            .flat_map(|rule| {
                matched(rule, series)
                    .into_iter()
                    .filter_map(|s| rule.metric_name_for(&s.name))
            })
            .collect();
        produced.sort();
        produced.dedup();
        return Finding::new(
            Verdict::NotProduced,
            None,
            format!(
                "No {key} entry produces {metric} from the series Prometheus has {window}; they produce: {}.",
                if produced.is_empty() {
                    "nothing".to_owned()
                } else {
                    abbreviate(&produced, 10)
                }
            ),
            format!(
                "Check the metric name in the request, or add a rule whose seriesQuery selects the series {metric} should come from."
            ),
        );
    };
    let rule = &list[index];
    let rule_name = format!("{key}[{}]", rule.position);
    if let Some(filter) = dropping_filter(rule, &name) {
        let regex = rule.filters[filter].regex().as_str();
        if filter < rule.series_filters {
            let origin = rule.filter_origin(filter);
            return Finding::new(
                Verdict::DroppedByFilter,
                Some(rule_name.clone()),
                format!(
                    "Series {name} matches {rule_name}.seriesQuery, but {rule_name}.{origin} ({regex}) removes it."
                ),
                format!(
                    "Change {rule_name}.{origin} so that it keeps {name}, or remove that filter."
                ),
            );
        }
        let escaped = regex::escape(&name);
        return Finding::new(
            Verdict::NameDoesNotMatch,
            Some(rule_name.clone()),
            format!(
                "Series {name} matches {rule_name}.seriesQuery, but {rule_name}.name.matches ({regex}) does not match it, so the rule drops it."
            ),
            format!(
                "Make {rule_name}.name.matches match {name}, e.g. name: {{matches: \"^{escaped}$\", as: \"{metric}\"}}."
            ),
        );
    }
    let produced = rule.name.metric_name(&name).unwrap_or_default();
    if class != 4 {
        return Finding::new(
            Verdict::NameBecomesOther,
            Some(rule_name.clone()),
            format!(
                "{rule_name} names series {name} \"{produced}\" (name.as {:?}), not {metric}.",
                rule.name.as_template()
            ),
            format!(
                "Ask for {produced}, or change {rule_name}.name.as so that it produces {metric}."
            ),
        );
    }
    // Named right and kept, yet not served: none of its labels maps to a resource.
    match resource {
        Some(wanted) => no_label(rules, index, &name, series, wanted, metric, &[]),
        None => Finding::new(
            Verdict::NotProduced,
            Some(rule_name),
            format!("{metric} is produced but not served."),
            String::new(),
        ),
    }
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

/// How closely a text (a selector) relates to a metric name: the longest common prefix with any
/// identifier in it.
fn affinity(metric: &str, text: &str) -> usize {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .map(|word| common_prefix(metric, word))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prom_adapter_core::model::Sample;

    const RULES: &str = r#"
rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
"#;

    fn walk_path(path: &str) -> Walk {
        walk_with(
            RULES,
            &[
                r#"http_requests_total{namespace="a",pod="p1"}"#,
                r#"http_requests_total{namespace="a",pod="p2"}"#,
            ],
            path,
        )
    }

    /// The walk of `path` over `rules` and series written in selector notation.
    fn walk_with(rules: &str, series: &[&str], path: &str) -> Walk {
        let rules = prom_adapter_core::config::parse_rules(rules, "test").unwrap();
        let series: Vec<Series> = series.iter().map(|s| Series::parse(s).unwrap()).collect();
        let request = prom_adapter_core::request::parse_request_path(path).unwrap();
        let table = ResourceTable::builtin();
        let registry = Registry::from_series(&rules, &series, &table);
        walk(
            &rules,
            &registry,
            &series,
            &table,
            &request,
            "in the last 10m",
        )
    }

    fn lost(walk: Walk) -> Finding {
        match walk {
            Walk::Lost(finding) => finding,
            Walk::Query(probe) => panic!("expected a verdict, got a query: {probe:?}"),
        }
    }

    #[test]
    fn an_unrelated_metric_lists_what_the_rules_produce() {
        let finding = lost(walk_path(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/a/pods/p1/queue_depth",
        ));
        assert_eq!(finding.verdict, Verdict::NotProduced);
        assert!(
            finding
                .explanation
                .ends_with("they produce: http_requests_per_second."),
            "{}",
            finding.explanation
        );
    }

    #[test]
    fn an_unknown_resource_says_how_to_name_one() {
        let finding = lost(walk_path(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/a/widgets/w/http_requests_per_second",
        ));
        assert_eq!(finding.verdict, Verdict::UnknownResource);
        assert!(finding.fix.contains("deployments.apps"));
    }

    #[test]
    fn a_discovered_metric_is_judged_by_its_samples() {
        let Walk::Query(probe) = walk_path(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/a/pods/p2/http_requests_per_second",
        ) else {
            panic!("the metric is discovered");
        };
        assert_eq!(probe.known_objects, vec!["p1", "p2"]);
        assert_eq!(
            probe.query,
            r#"sum(rate(http_requests_total{namespace="a",pod="p2"}[2m])) by (pod)"#
        );
        let sample = |pod: &str, value: f64| Sample {
            labels: [("pod".to_owned(), pod.to_owned())].into(),
            value,
            timestamp: 0.0,
        };
        let served = judge(&probe, &QueryResult::Vector(vec![sample("p2", 2.5)].into()));
        assert_eq!(
            (served.verdict, served.value.as_deref()),
            (Verdict::Served, Some("2500m"))
        );
        let missing = judge(&probe, &QueryResult::Vector(vec![sample("p1", 1.0)].into()));
        assert_eq!(missing.verdict, Verdict::NoSample);
        assert!(
            missing.explanation.contains(
                "none with pod=\"p2\" for pods p2. The series name these objects: p1, p2."
            ),
            "{}",
            missing.explanation
        );
        let nan = judge(
            &probe,
            &QueryResult::Vector(vec![sample("p2", f64::NAN)].into()),
        );
        assert_eq!(nan.verdict, Verdict::NaN);
        assert_eq!(
            judge(&probe, &QueryResult::Matrix).verdict,
            Verdict::NoSample
        );
    }

    #[test]
    fn query_errors_get_their_own_verdicts() {
        // `>` cannot be written in PromQL: the API answers 400.
        let finding = lost(walk_path(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/a/pods/p1/http_requests_per_second?metricLabelSelector=code%3E500",
        ));
        assert_eq!(finding.verdict, Verdict::BadRequest, "{finding:?}");
        // A label the request does not carry fails when the query renders.
        let finding = lost(walk_with(
            &RULES.replace("by (<<.GroupBy>>)", "by (<<.LabelValuesByName.bogus>>)"),
            &[r#"http_requests_total{namespace="a",pod="p1"}"#],
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/a/pods/p1/http_requests_per_second",
        ));
        assert_eq!(finding.verdict, Verdict::TemplateError, "{finding:?}");
        assert!(
            finding.fix.contains("rules[0].metricsQuery"),
            "{}",
            finding.fix
        );
        // `*` with a labelSelector needs a cluster.
        let finding = lost(walk_path(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/a/pods/*/http_requests_per_second?labelSelector=app%3Dweb",
        ));
        assert_eq!(finding.verdict, Verdict::BadRequest);
    }

    #[test]
    fn values_are_judged_per_object_as_the_api_serves_them() {
        let Walk::Query(probe) = walk_path(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/a/pods/*/http_requests_per_second",
        ) else {
            panic!("the metric is discovered");
        };
        let sample = |pod: &str, value: f64| Sample {
            labels: [("pod".to_owned(), pod.to_owned())].into(),
            value,
            timestamp: 0.0,
        };
        // Two samples for p1 (a query that keeps a container label): the API keeps the last.
        let served = judge(
            &probe,
            &QueryResult::Vector(
                vec![sample("p1", 1.0), sample("p1", 2.0), sample("p2", 3.0)].into(),
            ),
        );
        assert_eq!(served.value.as_deref(), Some("p1=2, p2=3"));
        let infinite = judge(
            &probe,
            &QueryResult::Vector(vec![sample("p1", f64::INFINITY)].into()),
        );
        assert_eq!(infinite.verdict, Verdict::Infinite);
        // A result without the pod label cannot be told apart per object.
        let grouped_away = judge(
            &probe,
            &QueryResult::Vector(
                vec![Sample {
                    labels: Default::default(),
                    value: 1.0,
                    timestamp: 0.0,
                }]
                .into(),
            ),
        );
        assert_eq!(grouped_away.verdict, Verdict::NoSample);
        assert!(
            grouped_away.fix.contains("by (pod)"),
            "{}",
            grouped_away.fix
        );
    }

    #[test]
    fn a_rule_that_keeps_and_renames_the_series_is_preferred_to_one_that_filters_it() {
        // prometheus-adapter's default config: rules[0] serves *_total series as rates without
        // the suffix; rules[1] serves everything else as is and filters *_total out. Asking for
        // the series' own name is answered by the rule that keeps it.
        let finding = lost(walk_with(
            r#"
rules:
- seriesQuery: '{namespace!="",pod!=""}'
  seriesFilters: [{is: "^.*_total$"}]
  resources: {template: <<.Resource>>}
  name: {matches: "^(.*)_total$"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
- seriesQuery: '{namespace!="",pod!=""}'
  seriesFilters: [{isNot: "^.*_total$"}]
  resources: {template: <<.Resource>>}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"#,
            &[r#"some_count_total{namespace="a",pod="p1"}"#],
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/a/pods/p1/some_count_total",
        ));
        assert_eq!(finding.verdict, Verdict::NameBecomesOther, "{finding:?}");
        assert_eq!(finding.rule.as_deref(), Some("rules[0]"));
        assert!(
            finding.fix.starts_with("Ask for some_count"),
            "{}",
            finding.fix
        );
    }
}
