//! Raw rules file → compiled `RuleSet`: validates everything and collects every error with its position and field path.

use regex::Regex;
use serde_saphyr::Spanned;

use super::raw::{
    RawDiscoveryRule, RawGroupResource, RawNameMapping, RawRegexFilter, RawResourceMapping,
    RawResourceRule, RawResourceRules, RawRules,
};
use crate::model::{GroupResource, parse_duration};
use crate::promql::{SeriesSelector, is_valid_label_name};
use crate::resources::ResourceTable;
use crate::rules::{
    DiscoveryRule, LabelTemplate, LoadWarning, NameMatcher, QueryTemplate, ResourceMapping,
    ResourceRule, ResourceRules, RuleSet, SeriesFilter,
};

/// One problem in a rules file: where it is, which field, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub column: u64,
    /// Field path, e.g. `rules[3].name.as`.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.line, self.column, self.path, self.message
        )
    }
}

#[derive(Default)]
struct Collector {
    errors: Vec<Diagnostic>,
    /// What loading left out or filled in (warnings, not errors).
    load_warnings: Vec<Diagnostic>,
}

impl Collector {
    fn at<T>(&mut self, spanned: &Spanned<T>, path: &str, message: impl Into<String>) {
        self.errors.push(Diagnostic {
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn warn<T>(&mut self, spanned: &Spanned<T>, path: &str, message: impl Into<String>) {
        self.load_warnings.push(Diagnostic {
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Compiles a Go regular expression (as prometheus-adapter reads it) with Rust's `regex`.
    fn regex(&mut self, pattern: &Spanned<String>, path: &str) -> Option<Regex> {
        Regex::new(&crate::promql::go_regex::to_rust(&pattern.value))
            .map_err(|e| {
                // regex's message spans several lines with a caret; its last line says what is wrong.
                let text = e.to_string();
                let reason = text
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or_default()
                    .trim();
                let reason = reason.strip_prefix("error: ").unwrap_or(reason);
                self.at(
                    pattern,
                    path,
                    format!("invalid regular expression {:?}: {reason}", pattern.value),
                )
            })
            .ok()
    }

    /// Whether `query` is written in the `${.Field}$` syntax of prometheus-adapter's 2018 demo
    /// build; if so, records a load warning saying that `what` (the rule) is skipped.
    /// prometheus-adapter sent such a query as written, and Prometheus refused every request.
    fn skipped_for_old_delimiters(
        &mut self,
        query: Option<&Spanned<String>>,
        path: &str,
        what: &str,
    ) -> bool {
        let Some(query) = query else { return false };
        let Err(why) = crate::rules::refuse_old_delimiters(&query.value) else {
            return false;
        };
        self.warn(query, path, format!(
                "{why}; prometheus-adapter sent it as written and Prometheus refused every request, so {what} skipped"
            ));
        true
    }

    fn query_template(
        &mut self,
        source: Option<&Spanned<String>>,
        parent: &Spanned<impl Sized>,
        path: &str,
    ) -> Option<QueryTemplate> {
        match source {
            None => {
                self.at(parent, path, "is required: a Go template such as `sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)`");
                None
            }
            Some(s) if s.value.trim().is_empty() => {
                self.at(
                    s,
                    path,
                    "must not be empty: it renders the PromQL query for each request",
                );
                None
            }
            Some(s) => QueryTemplate::compile(&s.value)
                .map_err(|e| self.at(s, path, format!("invalid template: {e}")))
                .ok(),
        }
    }
}

/// Compiles a parsed rules file, reporting every error at once.
pub fn compile(raw: &RawRules) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut c = Collector::default();
    let mut rules = RuleSet::default();
    for (list, key, out) in [
        (&raw.rules, "rules", &mut rules.custom),
        (&raw.external_rules, "externalRules", &mut rules.external),
    ] {
        for (i, rule) in list.iter().flatten().enumerate() {
            if let Some(compiled) = compile_discovery_rule(&mut c, rule, &format!("{key}[{i}]"), i)
            {
                out.push(compiled);
            }
        }
    }
    if let Some(resource_rules) = &raw.resource_rules {
        rules.resource = compile_resource_rules(&mut c, resource_rules);
    }
    rules.load_warnings = c
        .load_warnings
        .into_iter()
        .map(|d| LoadWarning {
            at: format!("{}:{}: {}", d.line, d.column, d.path),
            why: d.message,
        })
        .collect();
    if c.errors.is_empty() {
        Ok(rules)
    } else {
        Err(c.errors)
    }
}

fn compile_discovery_rule(
    c: &mut Collector,
    rule: &Spanned<RawDiscoveryRule>,
    path: &str,
    position: usize,
) -> Option<DiscoveryRule> {
    let raw = &rule.value;
    let series = match &raw.series_query {
        None => {
            c.at(
                rule,
                &format!("{path}.seriesQuery"),
                "is required: a series selector such as `{namespace!=\"\",__name__=~\"http_.*\"}`",
            );
            None
        }
        Some(q) => SeriesSelector::parse(&q.value)
            .map_err(|e| c.at(q, &format!("{path}.seriesQuery"), e.to_string()))
            .ok()
            .map(|sel| (q.value.clone(), sel)),
    };
    let mut filters = Vec::new();
    for (i, filter) in raw.series_filters.iter().flatten().enumerate() {
        if let Some(f) = compile_filter(c, filter, &format!("{path}.seriesFilters[{i}]")) {
            filters.push(f);
        }
    }
    let series_filters = filters.len();
    let name = compile_name(c, raw.name.as_ref(), rule, &format!("{path}.name"));
    let explicit_matches = raw
        .name
        .as_ref()
        .and_then(|n| n.matches.as_ref())
        .is_some_and(|m| !m.value.is_empty());
    if let Some(name) = &name
        && explicit_matches
    {
        filters.push(SeriesFilter::Is(name.regex().clone()));
    }
    let resources = compile_mapping(c, raw.resources.as_ref(), &format!("{path}.resources"));
    let query_path = format!("{path}.metricsQuery");
    let missing_query = raw
        .metrics_query
        .as_ref()
        .is_none_or(|q| q.value.trim().is_empty());
    if missing_query {
        // prometheus-adapter loads such a rule and fails every request for its metrics.
        const MISSING: &str = "is missing or empty, so no request for this rule's metrics could be answered (prometheus-adapter loaded it and failed each one); the rule is skipped. Add a query such as `sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)`";
        match &raw.metrics_query {
            Some(query) => c.warn(query, &query_path, MISSING),
            None => c.warn(rule, &query_path, MISSING),
        }
        return None;
    }
    if c.skipped_for_old_delimiters(raw.metrics_query.as_ref(), &query_path, "the rule is") {
        return None;
    }
    let metrics_query = c.query_template(raw.metrics_query.as_ref(), rule, &query_path);
    let backend = match &raw.backend {
        Some(name) if !crate::rules::is_valid_backend_name(&name.value) => {
            c.at(
                name,
                &format!("{path}.backend"),
                format!(
                    "{:?} is not a backend name: lower-case letters, digits and `-`, starting with a letter, at most 63 characters, as the settings file's `backends:` keys",
                    name.value
                ),
            );
            None
        }
        Some(name) => Some(Some(crate::rules::BackendRef {
            name: name.value.clone(),
            line: name.referenced.line(),
            column: name.referenced.column(),
        })),
        None => Some(None),
    };
    let (series_query, series_selector) = series?;
    Some(DiscoveryRule {
        series_query,
        series_selector,
        filters,
        series_filters,
        resources: resources?,
        name: name?,
        metrics_query: metrics_query?,
        position,
        backend: backend?,
    })
}

fn compile_filter(
    c: &mut Collector,
    filter: &Spanned<RawRegexFilter>,
    path: &str,
) -> Option<SeriesFilter> {
    match (&filter.value.is, &filter.value.is_not) {
        (Some(is), None) => c.regex(is, &format!("{path}.is")).map(SeriesFilter::Is),
        (None, Some(is_not)) => c
            .regex(is_not, &format!("{path}.isNot"))
            .map(SeriesFilter::IsNot),
        (Some(is), Some(is_not)) => {
            c.at(filter, path, format!(
                "cannot have both an `is` ({:?}) and an `isNot` ({:?}) expression in one filter: use two filters",
                is.value, is_not.value
            ));
            None
        }
        (None, None) => {
            c.at(
                filter,
                path,
                "must have either an `is` or an `isNot` expression",
            );
            None
        }
    }
}

fn compile_name(
    c: &mut Collector,
    raw: Option<&RawNameMapping>,
    rule: &Spanned<RawDiscoveryRule>,
    path: &str,
) -> Option<NameMatcher> {
    let matches = raw
        .and_then(|n| n.matches.as_ref())
        .filter(|m| !m.value.is_empty());
    let regex = match matches {
        Some(m) => c.regex(m, &format!("{path}.matches"))?,
        None => Regex::new(".*").ok()?,
    };
    let groups = regex.captures_len() - 1;
    let as_ = raw
        .and_then(|n| n.as_.as_ref())
        .filter(|a| !a.value.is_empty());
    let template = match (as_, groups) {
        (Some(a), _) => a.value.clone(),
        (None, 0) => "$0".to_owned(),
        (None, 1) => "$1".to_owned(),
        (None, n) => {
            let message = format!(
                "is required because `matches` has {n} capture groups (expected e.g. `as: \"${{1}}_${{2}}\"`)"
            );
            let path = format!("{path}.as");
            match matches {
                Some(matches) => c.at(matches, &path, message),
                None => c.at(rule, &path, message),
            }
            return None;
        }
    };
    Some(NameMatcher::new(regex, template))
}

fn compile_mapping(
    c: &mut Collector,
    raw: Option<&RawResourceMapping>,
    path: &str,
) -> Option<ResourceMapping> {
    let Some(raw) = raw else {
        return Some(ResourceMapping::new(Vec::new(), None, true));
    };
    let mut ok = true;
    let template = match &raw.template {
        Some(t) if !t.value.is_empty() => match LabelTemplate::compile(&t.value) {
            Ok(template) => Some(template),
            Err(e) => {
                c.at(
                    t,
                    &format!("{path}.template"),
                    format!("invalid label template: {e} (expected e.g. `kube_<<.Resource>>`)"),
                );
                ok = false;
                None
            }
        },
        _ => None,
    };
    let mut overrides = Vec::new();
    for (label, target) in raw.overrides.iter().flat_map(|o| o.0.iter()) {
        let field = format!("{path}.overrides.{}", label.value);
        if !is_valid_label_name(&label.value) {
            c.at(
                label,
                &field,
                format!("{:?} is not a valid Prometheus label name", label.value),
            );
            ok = false;
        }
        match compile_override(target) {
            Some(gr) => overrides.push((label.value.clone(), gr)),
            None => {
                c.at(
                    label,
                    &format!("{field}.resource"),
                    "is required: a resource name such as `pod` or `deployments`",
                );
                ok = false;
            }
        }
    }
    ok.then(|| ResourceMapping::new(overrides, template, raw.namespaced.unwrap_or(true)))
}

fn compile_override(raw: &RawGroupResource) -> Option<GroupResource> {
    let resource = raw.resource.as_ref().filter(|r| !r.value.is_empty())?;
    Some(GroupResource::new(
        raw.group.clone().unwrap_or_default(),
        resource.value.clone(),
    ))
}

fn compile_resource_rules(
    c: &mut Collector,
    raw: &Spanned<RawResourceRules>,
) -> Option<ResourceRules> {
    let rules = &raw.value;
    let mut old_syntax = false;
    for (key, rule) in [("cpu", &rules.cpu), ("memory", &rules.memory)] {
        let Some(rule) = rule else { continue };
        for (field, query) in [
            ("containerQuery", &rule.value.container_query),
            ("nodeQuery", &rule.value.node_query),
        ] {
            old_syntax |= c.skipped_for_old_delimiters(
                query.as_ref(),
                &format!("resourceRules.{key}.{field}"),
                "resourceRules (metrics.k8s.io) are",
            );
        }
    }
    if old_syntax {
        return None;
    }
    let mut rule = |r: &Option<Spanned<RawResourceRule>>, key: &str| match r {
        Some(r) => compile_resource_rule(c, r, &format!("resourceRules.{key}")),
        None => {
            c.at(
                raw,
                &format!("resourceRules.{key}"),
                "is required: containerQuery, nodeQuery, resources and containerLabel",
            );
            None
        }
    };
    let cpu = rule(&rules.cpu, "cpu");
    let memory = rule(&rules.memory, "memory");
    let window = match &rules.window {
        Some(w) => parse_duration(&w.value)
            .map_err(|e| c.at(w, "resourceRules.window", e.to_string()))
            .ok(),
        None => Some(std::time::Duration::ZERO),
    };
    Some(ResourceRules {
        cpu: cpu?,
        memory: memory?,
        window: window?,
    })
}

fn compile_resource_rule(
    c: &mut Collector,
    raw: &Spanned<RawResourceRule>,
    path: &str,
) -> Option<ResourceRule> {
    let rule = &raw.value;
    let container_query = c.query_template(
        rule.container_query.as_ref(),
        raw,
        &format!("{path}.containerQuery"),
    );
    let node_query = c.query_template(rule.node_query.as_ref(), raw, &format!("{path}.nodeQuery"));
    let resources = compile_mapping(c, rule.resources.as_ref(), &format!("{path}.resources"));
    if let Some(mapping) = &resources {
        let table = ResourceTable::builtin();
        for needed in ["namespaces", "pods", "nodes"] {
            if mapping
                .label_for_resource(&GroupResource::new("", needed), &table)
                .is_err()
            {
                // prometheus-adapter loads this and fails those requests.
                c.warn(raw, &format!("{path}.resources"), format!(
                    "maps no label to {needed}, so {needed} requests fail, as in prometheus-adapter (add an override such as `{}: {{resource: {}}}` or a template)",
                    needed.trim_end_matches('s'), needed.trim_end_matches('s')
                ));
            }
        }
    }
    let container_label = match &rule.container_label {
        Some(l) if is_valid_label_name(&l.value) => Some(l.value.clone()),
        Some(l) => {
            c.at(
                l,
                &format!("{path}.containerLabel"),
                format!("{:?} is not a valid Prometheus label name", l.value),
            );
            None
        }
        None => {
            // prometheus-adapter groups by an empty label: one container named "" per pod.
            c.warn(
                raw,
                &format!("{path}.containerLabel"),
                "is missing, so each pod is reported as one container named \"\" with the pod's total, as in prometheus-adapter; set it to the label holding the container name, e.g. `container`",
            );
            Some(String::new())
        }
    };
    Some(ResourceRule {
        container_query: container_query?,
        node_query: node_query?,
        resources: resources?,
        container_label: container_label?,
    })
}

#[cfg(test)]
mod tests {
    /// A load warning as `(at, why)`.
    type Warning = (String, String);
    /// A diagnostic as `(line, path, message)`.
    type Problem = (u64, String, String);

    /// Compiles `text`: its diagnostics, or its load warnings.
    fn diagnostics(text: &str) -> Result<Vec<Warning>, Vec<Problem>> {
        match crate::config::parse_rules(text, "rules.yaml") {
            Ok(rules) => Ok(rules
                .load_warnings
                .into_iter()
                .map(|w| (w.at, w.why))
                .collect()),
            Err(crate::config::Error::Invalid { diagnostics, .. }) => Err(diagnostics
                .into_iter()
                .map(|d| (d.line, d.path, d.message))
                .collect()),
            Err(other) => panic!("{other}"),
        }
    }

    const QUERY: &str = "'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'";

    #[test]
    fn each_mistake_is_reported_with_its_line_path_and_what_was_expected() {
        // (rule body under `rules:`, line, field path, part of the message)
        let cases = [
            (
                format!("- resources: {{template: <<.Resource>>}}\n  metricsQuery: {QUERY}\n"),
                2,
                "rules[0].seriesQuery",
                "is required: a series selector",
            ),
            (
                format!("- seriesQuery: 'up{{'\n  resources: {{template: <<.Resource>>}}\n  metricsQuery: {QUERY}\n"),
                2,
                "rules[0].seriesQuery",
                "",
            ),
            (
                format!("- seriesQuery: up\n  seriesFilters: [{{is: '(a'}}]\n  resources: {{template: <<.Resource>>}}\n  metricsQuery: {QUERY}\n"),
                3,
                "rules[0].seriesFilters[0].is",
                "invalid regular expression \"(a\"",
            ),
            (
                format!("- seriesQuery: up\n  seriesFilters: [{{is: a, isNot: b}}]\n  resources: {{template: <<.Resource>>}}\n  metricsQuery: {QUERY}\n"),
                3,
                "rules[0].seriesFilters[0]",
                "cannot have both an `is` (\"a\") and an `isNot` (\"b\")",
            ),
            (
                format!("- seriesQuery: up\n  resources: {{overrides: {{pod: {{group: apps}}}}}}\n  metricsQuery: {QUERY}\n"),
                3,
                "rules[0].resources.overrides.pod.resource",
                "is required",
            ),
            (
                "- seriesQuery: up\n  resources: {template: <<.Resource>>}\n  metricsQuery: 'sum(<<.Nope>>)'\n".to_owned(),
                4,
                "rules[0].metricsQuery",
                "invalid template",
            ),
        ];
        for (body, line, path, message) in cases {
            let text = format!("rules:\n{body}");
            let found = diagnostics(&text).expect_err(&text);
            assert!(
                found
                    .iter()
                    .any(|(l, p, m)| *l == line && p == path && m.contains(message)),
                "{text}\nexpected line {line} {path}: {message}\nfound {found:?}"
            );
        }
    }

    #[test]
    fn every_mistake_of_a_file_is_reported_at_once() {
        let text = format!(
            "rules:\n- seriesQuery: 'up{{'\n  resources: {{template: <<.Resource>>}}\n  metricsQuery: {QUERY}\nexternalRules:\n- seriesQuery: up\n  seriesFilters: [{{isNot: '['}}]\n  metricsQuery: {QUERY}\n"
        );
        let paths: Vec<String> = diagnostics(&text)
            .unwrap_err()
            .into_iter()
            .map(|(_, p, _)| p)
            .collect();
        assert_eq!(
            paths,
            [
                "rules[0].seriesQuery",
                "externalRules[0].seriesFilters[0].isNot"
            ]
        );
    }

    #[test]
    fn rules_prometheus_adapter_loads_but_never_serves_are_warnings() {
        let cases = [
            (
                "rules:\n- seriesQuery: up\n  resources: {template: <<.Resource>>}\n",
                "rules[0].metricsQuery",
                "is missing or empty",
            ),
            (
                "rules:\n- seriesQuery: up\n  resources: {template: <<.Resource>>}\n  metricsQuery: 'sum(${.Series}$)'\n",
                "rules[0].metricsQuery",
                "the rule is skipped",
            ),
        ];
        for (text, path, message) in cases {
            let warnings = diagnostics(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert!(
                warnings
                    .iter()
                    .any(|(at, why)| at.ends_with(path) && why.contains(message)),
                "{text}: {warnings:?}"
            );
        }
    }
}
