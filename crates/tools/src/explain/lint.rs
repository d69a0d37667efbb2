//! Warnings about rules that load but will surprise: template fields that do not exist, external rules without a namespace mapping, rules that collide or produce thousands of metrics, and range windows too short for the scrape interval.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde::Serialize;

use super::rename::{Rename, describe, fix, renamed_overrides};
use super::report::{dropping_filter, matched};
use prom_adapter_core::model::{GroupResource, format_go_duration, parse_duration};
use prom_adapter_core::promql::Series;
use prom_adapter_core::resources::ResourceTable;
use prom_adapter_core::rules::{DiscoveryRule, QueryTemplate, RuleSet};

/// One warning, located by field path.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    /// The field: `rules[0].metricsQuery`, `externalRules[1].resources`.
    pub at: String,
    /// What will happen, and what to do.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "warning: {}: {}", self.at, self.message)
    }
}

/// A rule set producing more metrics than this from one rule is probably broader than meant.
pub const BROAD_RULE_METRICS: usize = 1000;

/// Warnings the rules file alone gives.
pub fn static_warnings(rules: &RuleSet) -> Vec<Warning> {
    let mut warnings: Vec<Warning> = rules
        .load_warnings
        .iter()
        .map(|warning| Warning {
            at: warning.at.clone(),
            message: warning.why.clone(),
        })
        .collect();
    let table = ResourceTable::builtin();
    let namespaces = GroupResource::new("", "namespaces");
    for rule in rules.external.iter() {
        let index = rule.position;
        if rule.resources.namespaced()
            && rule
                .resources
                .label_for_resource(&namespaces, &table)
                .is_err()
        {
            warnings.push(Warning {
                at: format!("externalRules[{index}].resources"),
                message: "no label maps to namespaces, so requests are filtered on the `namespace` label (prometheus-adapter failed every such request); say which label holds the namespace with overrides: {LABEL: {resource: namespace}}, or set namespaced: false for a cluster-wide metric".into(),
            });
        }
    }
    for (at, rule) in rules.discovery_rules() {
        warnings.extend(missing_groups(&format!("{at}.name.as"), &rule.name));
    }
    for rule in &rules.custom {
        let at = format!("rules[{}].metricsQuery", rule.position);
        warnings.extend(blind_query(&at, rule.metrics_query.source()));
    }
    warnings
}

/// Aggregations that drop every label not named in `by`.
const AGGREGATIONS: [&str; 11] = [
    "sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "group",
];

/// A custom metrics query that cannot tell objects apart: it reads neither `.LabelMatchers` nor
/// `.LabelValuesByName` (every object gets the same value, from every namespace), or it
/// aggregates without grouping (the result has no object label, so no object gets a value).
fn blind_query(at: &str, source: &str) -> Option<Warning> {
    let filters = source.contains(".LabelMatchers") || source.contains(".LabelValuesByName");
    if !filters {
        return Some(Warning {
            at: at.to_owned(),
            message: "uses neither <<.LabelMatchers>> nor <<.LabelValuesByName>>, so every object (in every namespace) gets the same value; select with `{<<.LabelMatchers>>}`".into(),
        });
    }
    let code: String = source.replace(char::is_whitespace, "");
    // `max(` counts, `clamp_max(` does not: the name must start a word.
    let at_word_start = |needle: &str| {
        code.match_indices(needle).any(|(at, _)| {
            !code[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let aggregates = AGGREGATIONS
        .iter()
        .any(|op| at_word_start(&format!("{op}(")) || at_word_start(&format!("{op}by(")));
    let groups = source.contains(".GroupBy") || code.contains("by(") || code.contains("without(");
    (aggregates && !groups).then(|| Warning {
        at: at.to_owned(),
        message: "aggregates without `by (<<.GroupBy>>)`, so the result carries no object label and no object gets a value (404); add `by (<<.GroupBy>>)`".into(),
    })
}

/// `$name` references in `name.as` to groups `matches` does not have. Go's `regexp.Expand` (and
/// so prometheus-adapter, and prom-adapter) reads the longest run of letters, digits and `_`
/// after `$` as the group's name and expands a missing group to nothing: `$1_$2` is `$2` alone.
/// That is rarely what the author meant, but HPAs may depend on the names it gives.
fn missing_groups(at: &str, name: &prom_adapter_core::rules::NameMatcher) -> Option<Warning> {
    let (template, regex) = (name.as_template(), name.regex());
    use prom_adapter_core::promql::go_regex::{ExpandPart, expand_parts};
    let mut missing = Vec::new();
    let mut read_as = String::new();
    for part in expand_parts(template) {
        match part {
            ExpandPart::Literal(text) => read_as.push_str(&text.replace('$', "$$")),
            ExpandPart::Index { index, written } if index < regex.captures_len() => {
                read_as.push_str(written);
            }
            ExpandPart::Index { index, .. } => missing.push((index.to_string(), String::new())),
            ExpandPart::Name { name, written, .. }
                if regex.capture_names().any(|n| n == Some(name)) =>
            {
                read_as.push_str(written);
            }
            ExpandPart::Name { name, braced, .. } => {
                let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
                let tail = &name[digits.len()..];
                // Go reads a leading zero as part of a name: group 1 is `1`, never `01`.
                let number = match digits.trim_start_matches('0') {
                    "" if !digits.is_empty() => "0",
                    n => n,
                };
                let meant = if !braced && !digits.is_empty() && !tail.is_empty() {
                    format!(
                        " If you meant group {number} then `{tail}`, write `${{{number}}}{tail}` (which renames the metric)."
                    )
                } else if !digits.is_empty() && tail.is_empty() && number != digits {
                    format!(
                        " Go reads `{digits}` as a name, not a number: write `${{{number}}}` for group {number} (which renames the metric)."
                    )
                } else {
                    String::new()
                };
                missing.push((name.to_owned(), meant));
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let groups = missing
        .iter()
        .map(|(g, _)| format!("`{g}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let hints: String = missing.iter().map(|(_, h)| h.as_str()).collect();
    let outcome = if read_as.is_empty() {
        "every metric of this rule is named \"\" and cannot be requested".to_owned()
    } else {
        format!("`{template}` is read as `{read_as}`")
    };
    Some(Warning {
        at: at.to_owned(),
        message: format!(
            "`matches` ({}) has no capture group {groups}, which expands to nothing as in prometheus-adapter (Go's regexp.Expand): {outcome}.{hints}",
            regex.as_str()
        ),
    })
}

/// The four query templates of `resourceRules`, with their field paths.
fn resource_queries(rules: &RuleSet) -> Vec<(String, &QueryTemplate)> {
    let Some(resource) = &rules.resource else {
        return Vec::new();
    };
    [("cpu", &resource.cpu), ("memory", &resource.memory)]
        .into_iter()
        .flat_map(|(name, rule)| {
            [
                ("containerQuery", &rule.container_query),
                ("nodeQuery", &rule.node_query),
            ]
            .map(|(field, template)| (format!("resourceRules.{name}.{field}"), template))
        })
        .collect()
}

/// Warnings that need the series: rules producing the same metric for the same resource, rules
/// producing thousands of metrics, and overrides of labels a scrape target replaced.
pub fn series_warnings(rules: &RuleSet, series: &[Series], table: &ResourceTable) -> Vec<Warning> {
    let mut warnings = Vec::new();
    for (at, rule) in rules.discovery_rules() {
        warnings.extend(renamed_by_scrape(&at, rule, series));
    }
    // (resource, metric) → every (rule, series name) producing it, in the registry's order.
    let mut producers: BTreeMap<(String, String), Vec<(usize, String)>> = BTreeMap::new();
    for rule in rules.custom.iter() {
        let index = rule.position;
        // One pass over the rule's series: the resources each series name maps to.
        let mut by_name: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for s in kept(rule, series) {
            let resources = by_name.entry(s.name.as_str()).or_default();
            for label in s.labels.keys() {
                if let Some(info) = rule.resources.resource_for_label(label, table) {
                    resources.insert(info.group_resource().to_string());
                }
            }
        }
        let mut produced = 0usize;
        for (name, resources) in by_name {
            let Some(metric) = rule.name.metric_name(name) else {
                continue;
            };
            produced += resources.len();
            for resource in resources {
                producers
                    .entry((resource, metric.clone()))
                    .or_default()
                    .push((index, name.to_owned()));
            }
        }
        if produced > BROAD_RULE_METRICS {
            warnings.push(broad(&format!("rules[{index}]"), rule, produced));
        }
    }
    for ((resource, metric), sources) in producers {
        if sources.len() < 2 {
            continue;
        }
        let described: Vec<String> = sources
            .iter()
            .map(|(rule, series)| format!("rules[{rule}] from {series}"))
            .collect();
        let (winner, winner_series) = sources.last().expect("at least two");
        warnings.push(Warning {
            at: format!("rules[{winner}]"),
            message: format!(
                "{resource}/{metric} is produced {} times ({}); only rules[{winner}] from {winner_series} is served. Rename one with name.as, or narrow a seriesQuery",
                sources.len(),
                described.join(", ")
            ),
        });
    }
    let mut external_producers: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for rule in rules.external.iter() {
        let index = rule.position;
        let metrics: BTreeSet<String> = kept(rule, series)
            .filter_map(|s| rule.name.metric_name(&s.name))
            .collect();
        if metrics.len() > BROAD_RULE_METRICS {
            warnings.push(broad(
                &format!("externalRules[{index}]"),
                rule,
                metrics.len(),
            ));
        }
        for metric in metrics {
            external_producers.entry(metric).or_default().push(index);
        }
    }
    for (metric, rules) in external_producers {
        if let [.., winner] = rules.as_slice()
            && rules.len() > 1
        {
            let all: Vec<String> = rules
                .iter()
                .map(|r| format!("externalRules[{r}]"))
                .collect();
            warnings.push(Warning {
                at: format!("externalRules[{winner}]"),
                message: format!(
                    "external metric {metric} is produced by {}; only externalRules[{winner}] is served. Rename one with name.as",
                    all.join(" and ")
                ),
            });
        }
    }
    warnings
}

/// Overrides whose label holds the scrape target's value on every series while the exporter's is
/// in `exported_<label>`: every request of the rule would look up the wrong object.
fn renamed_by_scrape(at: &str, rule: &DiscoveryRule, series: &[Series]) -> Vec<Warning> {
    let kept: Vec<&Series> = kept(rule, series).collect();
    let renames: Vec<Rename> = renamed_overrides(rule, &kept)
        .into_iter()
        .filter(Rename::is_evident)
        .collect();
    let Some(first) = renames.first() else {
        return Vec::new();
    };
    vec![Warning {
        at: format!("{at}.resources.overrides.{}", first.label),
        message: format!(
            "{}; requests look up the scraper's objects. {}",
            describe(at, &renames.iter().collect::<Vec<_>>()),
            fix(at, rule, &renames)
        ),
    }]
}

fn kept<'s>(rule: &DiscoveryRule, series: &'s [Series]) -> impl Iterator<Item = &'s Series> {
    matched(rule, series)
        .into_iter()
        .filter(|s| dropping_filter(rule, &s.name).is_none())
}

fn broad(at: &str, rule: &DiscoveryRule, count: usize) -> Warning {
    Warning {
        at: format!("{at}.seriesQuery"),
        message: format!(
            "{} produces {count} metrics; every relist and discovery document carries them all. Select the series HPAs use (a metric name, or seriesFilters)",
            rule.series_query
        ),
    }
}

/// Scrape intervals from Prometheus's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeIntervals {
    /// `global.scrape_interval` (Prometheus's default: 1m).
    pub global: Duration,
    /// Each scrape job's own interval.
    pub jobs: HashMap<String, Duration>,
}

impl ScrapeIntervals {
    /// Reads them from the YAML `/api/v1/status/config` returns.
    pub fn from_prometheus_config(yaml: &str) -> Result<Self, String> {
        #[derive(serde::Deserialize, Default)]
        struct Global {
            scrape_interval: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Job {
            job_name: String,
            scrape_interval: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Config {
            #[serde(default)]
            global: Global,
            #[serde(default)]
            scrape_configs: Vec<Job>,
        }
        let config: Config =
            serde_saphyr::from_str(yaml).map_err(|e| format!("Prometheus configuration: {e}"))?;
        let parse = |text: &str| parse_duration(text).map_err(|e| e.to_string());
        let global = match config.global.scrape_interval.as_deref() {
            Some(text) => parse(text)?,
            None => Duration::from_secs(60),
        };
        let mut jobs = HashMap::new();
        for job in config.scrape_configs {
            let interval = match job.scrape_interval.as_deref() {
                Some(text) => parse(text)?,
                None => global,
            };
            jobs.insert(job.job_name, interval);
        }
        Ok(Self { global, jobs })
    }
}

/// Range windows (`[2m]`) shorter than four scrape intervals of the series a rule reads: a rate
/// over them has too few samples and goes empty or jumps.
pub fn window_warnings(
    rules: &RuleSet,
    series: &[Series],
    intervals: &ScrapeIntervals,
) -> Vec<Warning> {
    let mut warnings = Vec::new();
    for (at, rule) in rules.discovery_rules() {
        let jobs: BTreeSet<&str> = matched(rule, series)
            .into_iter()
            .filter_map(|s| s.labels.get("job").map(String::as_str))
            .collect();
        let interval = jobs
            .iter()
            .filter_map(|job| intervals.jobs.get(*job))
            .max()
            .copied()
            .unwrap_or(intervals.global);
        let at = format!("{at}.metricsQuery");
        warnings.extend(short_windows(&at, rule.metrics_query.source(), interval));
    }
    for (at, template) in resource_queries(rules) {
        warnings.extend(short_windows(&at, template.source(), intervals.global));
    }
    warnings
}

fn short_windows(at: &str, query: &str, interval: Duration) -> Vec<Warning> {
    // Functions that need several samples in their range; a subquery (`[5m:30s]`) sets its own
    // resolution and is not checked.
    static WINDOW: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"\b(rate|irate|increase|delta|idelta|deriv|predict_linear)\s*\([^\[\]()]*\[\s*([0-9][0-9a-z.]*)\s*\]",
        )
        .expect("valid regex")
    });
    let minimum = interval * 4;
    WINDOW
        .captures_iter(query)
        .filter_map(|c| {
            let function = c[1].to_owned();
            let text = c[2].to_owned();
            let window = parse_duration(&text).ok()?;
            (window < minimum).then(|| Warning {
                at: at.to_owned(),
                message: format!(
                    "the range window [{text}] is shorter than four scrape intervals ({} × 4 = {}): {function}() over it sees too few samples and the metric goes missing or jumps. Use [{}] or more",
                    format_go_duration(interval),
                    format_go_duration(minimum),
                    format_go_duration(minimum)
                ),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> RuleSet {
        prom_adapter_core::config::parse_rules(text, "test").unwrap()
    }

    fn series(lines: &[&str]) -> Vec<Series> {
        lines.iter().map(|l| Series::parse(l).unwrap()).collect()
    }

    #[test]
    fn references_to_missing_groups_expand_to_nothing_with_a_warning() {
        let rules = rules(
            r#"
rules:
- seriesQuery: '{__name__=~"^dask_scheduler_.*"}'
  resources: {template: <<.Resource>>}
  name: {matches: "^(dask)_scheduler_(.*)$", as: "$1_$2"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'http_requests_total'
  resources: {template: <<.Resource>>}
  name: {matches: "^(.*)_total$", as: "$1_per_second"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'x_total'
  resources: {template: <<.Resource>>}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'y_total'
  resources: {template: <<.Resource>>}
  name: {matches: "^(.*)_total$", as: "$01_rate$$"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"#,
        );
        // The names are Go's, which HPAs written against prometheus-adapter depend on.
        assert_eq!(
            rules.custom[0]
                .name
                .metric_name("dask_scheduler_desired_workers"),
            Some("desired_workers".to_owned())
        );
        let warnings = static_warnings(&rules);
        let at: Vec<&str> = warnings.iter().map(|w| w.at.as_str()).collect();
        assert_eq!(
            at,
            ["rules[0].name.as", "rules[1].name.as", "rules[3].name.as"],
            "{warnings:#?}"
        );
        // `$01_rate` names a group `01_rate`; `$$` is a `$`.
        assert_eq!(
            rules.custom[3].name.metric_name("y_total"),
            Some("$".to_owned())
        );
        assert!(
            warnings[2].message.contains("no capture group `01_rate`")
                && warnings[2].message.contains("is read as `$$`")
                && warnings[2].message.contains("write `${1}_rate`"),
            "{}",
            warnings[2].message
        );
        assert!(
            warnings[0].message.contains("no capture group `1_`")
                && warnings[0].message.contains("`$1_$2` is read as `$2`")
                && warnings[0].message.contains("write `${1}_`"),
            "{}",
            warnings[0].message
        );
        assert!(
            warnings[1].message.contains("named \"\""),
            "{}",
            warnings[1].message
        );
    }

    #[test]
    fn queries_that_cannot_tell_objects_apart_are_flagged() {
        let at = "rules[0].metricsQuery";
        assert!(
            blind_query(at, "sum(rate(x[1m]))")
                .is_some_and(|w| w.message.contains("neither <<.LabelMatchers>>"))
        );
        assert!(
            blind_query(at, "sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m]))")
                .is_some_and(|w| w.message.contains("aggregates without"))
        );
        for fine in [
            "sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)",
            "sum by (pod) (rate(<<.Series>>{<<.LabelMatchers>>}[1m]))",
            "rate(<<.Series>>{<<.LabelMatchers>>}[1m])",
            "max(<<.Series>>{<<.LabelMatchers>>}) without (instance)",
            "clamp_max(rate(<<.Series>>{<<.LabelMatchers>>}[1m]), 100)",
            "histogram_quantile(0.9, rate(<<.Series>>{<<.LabelMatchers>>}[1m]))",
        ] {
            assert!(blind_query(at, fine).is_none(), "{fine}");
        }
    }

    #[test]
    fn external_rules_without_a_namespace_label_are_flagged() {
        let warnings = static_warnings(&rules(
            r#"
externalRules:
- seriesQuery: 'queue_depth'
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
- seriesQuery: 'queue_lag'
  resources: {namespaced: false}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<range $i, $l := .GroupBySlice>><<$l>><<end>>)'
"#,
        ));
        let at: Vec<&str> = warnings.iter().map(|w| w.at.as_str()).collect();
        assert_eq!(at, vec!["externalRules[0].resources"], "{warnings:#?}");
        assert!(warnings[0].message.contains("namespaced: false"));
    }

    #[test]
    fn colliding_rules_name_the_one_that_wins() {
        let set = rules(
            r#"
rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {as: "requests"}
  metricsQuery: x
- seriesQuery: 'grpc_requests_total{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {as: "requests"}
  metricsQuery: x
"#,
        );
        let listed = series(&[
            r#"http_requests_total{namespace="a",pod="p"}"#,
            r#"grpc_requests_total{namespace="a",pod="p"}"#,
        ]);
        let warnings = series_warnings(&set, &listed, &ResourceTable::builtin());
        assert_eq!(warnings.len(), 2, "namespaces and pods: {warnings:#?}");
        assert_eq!(warnings[1].at, "rules[1]");
        assert!(
            warnings[1].message.starts_with("pods/requests is produced 2 times (rules[0] from http_requests_total, rules[1] from grpc_requests_total); only rules[1]"),
            "{}",
            warnings[1].message
        );
        // The registry agrees on the winner.
        let registry = prom_adapter_core::registry::Registry::from_series(
            &set,
            &listed,
            &ResourceTable::builtin(),
        );
        let winner = registry
            .custom(&GroupResource::new("", "pods"), true, "requests")
            .unwrap();
        assert_eq!(winner.rule, 1);
    }

    #[test]
    fn a_rule_producing_thousands_of_metrics_is_flagged_with_its_count() {
        let set = rules(
            "rules:\n- seriesQuery: '{namespace!=\"\"}'\n  resources: {overrides: {namespace: {resource: namespace}}}\n  metricsQuery: x\n",
        );
        let lines: Vec<String> = (0..1001)
            .map(|i| format!("m{i}{{namespace=\"a\"}}"))
            .collect();
        let listed: Vec<Series> = lines.iter().map(|l| Series::parse(l).unwrap()).collect();
        let warnings = series_warnings(&set, &listed, &ResourceTable::builtin());
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].at, "rules[0].seriesQuery");
        assert!(warnings[0].message.contains("produces 1001 metrics"));
    }

    #[test]
    fn windows_shorter_than_four_scrape_intervals_of_the_rules_jobs_are_flagged() {
        let intervals = ScrapeIntervals::from_prometheus_config(
            "global:\n  scrape_interval: 15s\nscrape_configs:\n- job_name: slow\n  scrape_interval: 1m\n- job_name: fast\n",
        )
        .unwrap();
        assert_eq!(intervals.jobs["fast"], Duration::from_secs(15));
        let set = rules(
            r#"
rules:
- seriesQuery: 'a_total{pod!=""}'
  resources: {overrides: {pod: {resource: pod}}}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
- seriesQuery: 'b_total{pod!=""}'
  resources: {overrides: {pod: {resource: pod}}}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>) + max_over_time(x[30s]) + rate(y[30s:5s])'
"#,
        );
        let listed = series(&[
            r#"a_total{pod="p",job="slow"}"#,
            r#"b_total{pod="p",job="fast"}"#,
        ]);
        let warnings = window_warnings(&set, &listed, &intervals);
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert_eq!(warnings[0].at, "rules[0].metricsQuery");
        assert!(
            warnings[0].message.starts_with(
                "the range window [2m] is shorter than four scrape intervals (1m0s × 4 = 4m0s)"
            ),
            "{}",
            warnings[0].message
        );
    }
}
