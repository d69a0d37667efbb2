//! Per-rule reports over listed series: how many series each rule matches, what its filters drop, the metric names it produces, and which labels map to which resources.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use prom_adapter_core::promql::Series;
use prom_adapter_core::resources::ResourceTable;
use prom_adapter_core::rules::{DiscoveryRule, RuleSet};

/// Series a filter removed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FilterDrop {
    /// Where the filter is written: `seriesFilters[0].isNot`, `name.matches`.
    pub filter: String,
    /// Its regular expression.
    pub regex: String,
    /// Series it removed (those earlier filters kept).
    pub dropped: usize,
}

/// What one rule does with the series Prometheus has.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RuleReport {
    /// `rules[0]` or `externalRules[1]`.
    pub rule: String,
    /// The rule's `seriesQuery`.
    pub series_query: String,
    /// Series the `seriesQuery` matches.
    pub series: usize,
    /// Each filter, in order, with what it removed.
    pub filters: Vec<FilterDrop>,
    /// Metric names produced, sorted.
    pub metrics: Vec<String>,
    /// Labels of the kept series that name a resource, with the resource (`pods`,
    /// `ingresses.networking.k8s.io`).
    pub resources: BTreeMap<String, String>,
    /// Labels of the kept series that name no resource.
    pub unmapped_labels: Vec<String>,
    /// `namespaced`, `cluster` or both (custom: from the resources; external: `namespaced` or
    /// `cluster-wide` from `resources.namespaced`).
    pub scope: String,
}

/// The series of `all` that `rule`'s `seriesQuery` matches.
pub fn matched<'s>(rule: &DiscoveryRule, all: &'s [Series]) -> Vec<&'s Series> {
    all.iter()
        .filter(|s| rule.series_selector.matches(s))
        .collect()
}

/// The index of the first filter that removes a series name, if any.
pub fn dropping_filter(rule: &DiscoveryRule, name: &str) -> Option<usize> {
    rule.filters.iter().position(|f| !f.keeps(name))
}

/// Reports every rule of `rules` over `series`.
pub fn rule_reports(rules: &RuleSet, series: &[Series], table: &ResourceTable) -> Vec<RuleReport> {
    let custom = rules.custom.iter().map(|rule| {
        report(
            format!("rules[{}]", rule.position),
            rule,
            series,
            table,
            None,
        )
    });
    let external = rules.external.iter().map(|rule| {
        let i = rule.position;
        let scope = if rule.resources.namespaced() {
            "namespaced"
        } else {
            "cluster-wide"
        };
        report(
            format!("externalRules[{i}]"),
            rule,
            series,
            table,
            Some(scope),
        )
    });
    custom.chain(external).collect()
}

fn report(
    name: String,
    rule: &DiscoveryRule,
    all: &[Series],
    table: &ResourceTable,
    external_scope: Option<&str>,
) -> RuleReport {
    let matched = matched(rule, all);
    let mut drops = vec![0usize; rule.filters.len()];
    let mut kept = Vec::new();
    for series in &matched {
        match dropping_filter(rule, &series.name) {
            Some(index) => drops[index] += 1,
            None => kept.push(series),
        }
    }
    let mut metrics = BTreeSet::new();
    let mut resources = BTreeMap::new();
    let mut unmapped = BTreeSet::new();
    let mut scopes = BTreeSet::new();
    for series in kept {
        if let Some(metric) = rule.name.metric_name(&series.name) {
            metrics.insert(metric);
        }
        for label in series.labels.keys() {
            match rule.resources.resource_for_label(label, table) {
                Some(info) => {
                    resources.insert(label.clone(), info.group_resource().to_string());
                    scopes.insert(if info.namespaced {
                        "namespaced"
                    } else {
                        "cluster"
                    });
                }
                None => {
                    unmapped.insert(label.clone());
                }
            }
        }
    }
    let scope = match external_scope {
        Some(scope) => scope.to_owned(),
        None => scopes.into_iter().collect::<Vec<_>>().join(" and "),
    };
    RuleReport {
        rule: name,
        series_query: rule.series_query.clone(),
        series: matched.len(),
        filters: rule
            .filters
            .iter()
            .enumerate()
            .map(|(i, filter)| FilterDrop {
                filter: rule.filter_origin(i),
                regex: filter.regex().as_str().to_owned(),
                dropped: drops[i],
            })
            .collect(),
        metrics: metrics.into_iter().collect(),
        resources,
        unmapped_labels: unmapped.into_iter().collect(),
        scope,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_each_filter_drops_and_maps_labels() {
        let rules = prom_adapter_core::config::parse_rules(
            r#"
rules:
- seriesQuery: '{__name__=~"^http_.*",namespace!=""}'
  seriesFilters: [{isNot: "^http_debug_"}]
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'queue_depth'
  resources: {namespaced: false}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
"#,
            "test",
        )
        .unwrap();
        let series: Vec<Series> = [
            r#"http_requests_total{namespace="a",pod="p1",code="200"}"#,
            r#"http_requests_total{namespace="a",pod="p2",code="500"}"#,
            r#"http_debug_calls_total{namespace="a",pod="p1"}"#,
            r#"http_inflight{namespace="a",pod="p1"}"#,
            r#"http_requests_total{pod="p3"}"#,
            r#"queue_depth{queue="q"}"#,
        ]
        .iter()
        .map(|s| Series::parse(s).unwrap())
        .collect();
        let reports = rule_reports(&rules, &series, &ResourceTable::builtin());
        let custom = &reports[0];
        assert_eq!(custom.rule, "rules[0]");
        assert_eq!(
            custom.series, 4,
            "the series without namespace does not match"
        );
        assert_eq!(
            custom.filters,
            vec![
                FilterDrop {
                    filter: "seriesFilters[0].isNot".into(),
                    regex: "^http_debug_".into(),
                    dropped: 1
                },
                FilterDrop {
                    filter: "name.matches".into(),
                    regex: "^(.*)_total$".into(),
                    dropped: 1
                },
            ]
        );
        assert_eq!(custom.metrics, vec!["http_requests_per_second"]);
        assert_eq!(
            custom.resources,
            BTreeMap::from([
                ("namespace".to_owned(), "namespaces".to_owned()),
                ("pod".to_owned(), "pods".to_owned())
            ])
        );
        assert_eq!(custom.unmapped_labels, vec!["code"]);
        assert_eq!(custom.scope, "cluster and namespaced");
        let external = &reports[1];
        assert_eq!(
            (external.series, external.scope.as_str()),
            (1, "cluster-wide")
        );
        assert_eq!(external.metrics, vec!["queue_depth"]);
    }
}
