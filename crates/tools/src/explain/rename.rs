//! Labels that Prometheus renamed to `exported_<label>` because the scrape target carried a label of the same name: which of a rule's overrides read the scraper's value, and the overrides to use instead.

use std::collections::BTreeSet;

use prom_adapter_core::model::GroupResource;
use prom_adapter_core::promql::{LabelMatcher, Series, selector};
use prom_adapter_core::rules::DiscoveryRule;

/// An override label whose exporter values Prometheus stored under `exported_<label>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// The label the rule maps (`namespace`).
    pub label: String,
    /// Where the exporter's own values are (`exported_namespace`).
    pub exported: String,
    /// The values of `label` on the series: the scrape target's.
    pub target_values: BTreeSet<String>,
    /// The values of `exported`: the exporter's.
    pub exporter_values: BTreeSet<String>,
}

impl Rename {
    /// Whether the evidence is unambiguous without a request: `label` holds one value on every
    /// series (the scrape target's) while `exported` holds others.
    pub fn is_evident(&self) -> bool {
        self.target_values.len() == 1
            && self
                .exporter_values
                .iter()
                .any(|v| !self.target_values.contains(v))
    }
}

/// What happened to `renames` on the series `rule` matches, in one sentence, for `--why` and the
/// lints.
pub fn describe(rule: &str, renames: &[&Rename]) -> String {
    let pairs: Vec<String> = renames
        .iter()
        .map(|r| {
            format!(
                "`{}` holds {} while `{}` holds {}",
                r.label,
                values(&r.target_values),
                r.exported,
                values(&r.exporter_values)
            )
        })
        .collect();
    let (labels, names) = if renames.len() == 1 {
        ("label", "a label of that name")
    } else {
        ("labels", "labels of those names")
    };
    format!(
        "on the series {rule} matches, {}: Prometheus stored the exporter's own {labels} as exported_* because the scrape target has {names} (honor_labels: false, the default of ServiceMonitors and PodMonitors), and kept the target's values",
        pairs.join(", and ")
    )
}

fn values(set: &BTreeSet<String>) -> String {
    let shown: Vec<&str> = set.iter().take(5).map(String::as_str).collect();
    let more = set.len().saturating_sub(shown.len());
    let list = shown.join(", ");
    match (set.len(), more) {
        (1, _) => list,
        (_, 0) => format!("{} values ({list})", set.len()),
        _ => format!("{} values ({list}, …)", set.len()),
    }
}

/// The overrides of `rule` whose label has an `exported_` twin on `series` (the series the rule
/// matches), in the rule's order.
pub fn renamed_overrides(rule: &DiscoveryRule, series: &[&Series]) -> Vec<Rename> {
    rule.resources
        .overrides()
        .iter()
        .filter_map(|(label, _)| {
            let exported = format!("exported_{label}");
            let twins: Vec<&&Series> = series
                .iter()
                .filter(|s| s.labels.contains_key(&exported))
                .collect();
            if twins.is_empty() {
                return None;
            }
            let collect = |name: &str| -> BTreeSet<String> {
                twins
                    .iter()
                    .filter_map(|s| s.labels.get(name).cloned())
                    .collect()
            };
            Some(Rename {
                label: label.clone(),
                target_values: collect(label),
                exporter_values: collect(&exported),
                exported,
            })
        })
        .collect()
}

/// The change that reads the exporter's labels: the overrides with each renamed label replaced
/// by its `exported_` twin, and the `seriesQuery` with its matchers on them renamed likewise.
pub fn fix(rule_name: &str, rule: &DiscoveryRule, renames: &[Rename]) -> String {
    let renamed = |label: &str| {
        renames
            .iter()
            .find(|r| r.label == label)
            .map_or(label.to_owned(), |r| r.exported.clone())
    };
    let overrides: Vec<String> = rule
        .resources
        .overrides()
        .iter()
        .map(|(label, resource)| format!("{}: {}", renamed(label), flow(resource)))
        .collect();
    let mut change = format!(
        "In {rule_name}, map the exporter's labels: resources: {{overrides: {{{}}}}}",
        overrides.join(", ")
    );
    let matchers = rule.series_selector.matchers();
    if matchers
        .iter()
        .any(|m| renames.iter().any(|r| r.label == m.name()))
    {
        let rewritten: Option<Vec<LabelMatcher>> = matchers
            .iter()
            .map(|m| LabelMatcher::new(&renamed(m.name()), m.op(), m.value()).ok())
            .collect();
        if let Some(rewritten) = rewritten {
            change.push_str(&format!(
                ", and seriesQuery: '{}'",
                series_query(&rewritten)
            ));
        }
    }
    let labels: Vec<&str> = renames.iter().map(|r| r.label.as_str()).collect();
    change.push_str(&format!(
        ". Or set honorLabels: true on the ServiceMonitor or PodMonitor that scrapes these series, so that {} keep{} the exporter's values.",
        labels.join(" and "),
        if labels.len() == 1 { "s" } else { "" }
    ));
    change
}

/// `{resource: namespace}` or `{group: networking.k8s.io, resource: ingress}`.
fn flow(resource: &GroupResource) -> String {
    if resource.group.is_empty() {
        format!("{{resource: {}}}", resource.resource)
    } else {
        format!(
            "{{group: {}, resource: {}}}",
            resource.group, resource.resource
        )
    }
}

/// A selector written as users write seriesQuery: the metric name outside the braces.
fn series_query(matchers: &[LabelMatcher]) -> String {
    match matchers.split_first() {
        Some((first, rest))
            if first.name() == "__name__"
                && first.op() == prom_adapter_core::promql::MatchOp::Equal =>
        {
            if rest.is_empty() {
                first.value().to_owned()
            } else {
                format!("{}{}", first.value(), selector(rest))
            }
        }
        _ => selector(matchers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prom_adapter_core::config::parse_rules;

    /// ingress-nginx's requests as a ServiceMonitor without honorLabels stores them.
    fn scraped() -> Vec<Series> {
        [
            ("default", "web", "web"),
            ("default", "web", "web"),
            ("other", "api", "api"),
        ]
        .iter()
        .map(|(ns, ingress, service)| {
            Series::parse(&format!(
                r#"nginx_ingress_controller_requests{{namespace="ingress-nginx",service="ingress-nginx-controller-metrics",pod="ingress-nginx-controller-0",exported_namespace="{ns}",exported_service="{service}",ingress="{ingress}"}}"#
            ))
            .unwrap()
        })
        .collect()
    }

    const OLD_RULE: &str = r#"rules:
- seriesQuery: 'nginx_ingress_controller_requests{namespace!="",service!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      service: {resource: service}
      ingress: {group: networking.k8s.io, resource: ingress}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
"#;

    #[test]
    fn overrides_read_by_the_scraper_are_found_with_both_sides_values() {
        let rules = parse_rules(OLD_RULE, "rules.yaml").unwrap();
        let series = scraped();
        let refs: Vec<&Series> = series.iter().collect();
        let renames = renamed_overrides(&rules.custom[0], &refs);
        let labels: Vec<&str> = renames.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["namespace", "service"], "ingress has no twin");
        assert!(renames.iter().all(Rename::is_evident));
        assert_eq!(
            renames[0].exporter_values,
            BTreeSet::from(["default".to_owned(), "other".to_owned()])
        );
        let said = describe("rules[0]", &renames.iter().collect::<Vec<_>>());
        assert_eq!(
            said,
            "on the series rules[0] matches, `namespace` holds ingress-nginx while `exported_namespace` holds 2 values (default, other), and `service` holds ingress-nginx-controller-metrics while `exported_service` holds 2 values (api, web): Prometheus stored the exporter's own labels as exported_* because the scrape target has labels of those names (honor_labels: false, the default of ServiceMonitors and PodMonitors), and kept the target's values"
        );
    }

    #[test]
    fn the_fix_maps_the_exported_labels_and_rewrites_the_series_query() {
        let rules = parse_rules(OLD_RULE, "rules.yaml").unwrap();
        let series = scraped();
        let refs: Vec<&Series> = series.iter().collect();
        let renames = renamed_overrides(&rules.custom[0], &refs);
        assert_eq!(
            fix("rules[0]", &rules.custom[0], &renames),
            "In rules[0], map the exporter's labels: resources: {overrides: {exported_namespace: {resource: namespace}, exported_service: {resource: service}, ingress: {group: networking.k8s.io, resource: ingress}}}, and seriesQuery: 'nginx_ingress_controller_requests{exported_namespace!=\"\",exported_service!=\"\"}'. Or set honorLabels: true on the ServiceMonitor or PodMonitor that scrapes these series, so that namespace and service keep the exporter's values."
        );
    }

    #[test]
    fn a_label_that_varies_or_has_no_twin_is_not_a_rename() {
        let rules = parse_rules(OLD_RULE, "rules.yaml").unwrap();
        // Honored labels: no exported_ twin at all.
        let honored = [Series::parse(
            r#"nginx_ingress_controller_requests{namespace="default",service="web",ingress="web"}"#,
        )
        .unwrap()];
        let refs: Vec<&Series> = honored.iter().collect();
        assert!(renamed_overrides(&rules.custom[0], &refs).is_empty());
        // A twin, but the label itself varies: not evident without a request.
        let mixed = [
            Series::parse(r#"x{namespace="a",exported_namespace="b",service="s"}"#).unwrap(),
            Series::parse(r#"x{namespace="c",exported_namespace="d",service="s"}"#).unwrap(),
        ];
        let refs: Vec<&Series> = mixed.iter().collect();
        let renames = renamed_overrides(&rules.custom[0], &refs);
        assert_eq!(renames.len(), 1);
        assert!(!renames[0].is_evident());
    }
}
