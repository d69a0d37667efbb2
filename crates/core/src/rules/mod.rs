//! The compiled rules file: series filters, metric naming, resource association and query templates.

mod batching;
mod mapping;
mod query;

pub use batching::per_object;
pub use mapping::{LabelTemplate, ResourceMapping};
pub use query::{
    QueryRequest, QueryTemplate, build_custom_query, build_external_query, build_resource_query,
    resource_template,
};

use std::time::Duration;

use regex::Regex;

use crate::promql::SeriesSelector;

/// Parses a Go template the way prometheus-adapter does: `<<` `>>` delimiters, unknown fields are
/// errors, and `index` on `.LabelValuesByName` gives `""` for a missing key (Go's zero value for
/// its `map[string]string`) rather than `<no value>`.
fn parse_go_template(name: &str, source: &str) -> Result<gotmpl::Template, String> {
    refuse_old_delimiters(source)?;
    use gotmpl::Value;
    gotmpl::Template::new(name)
        .delims("<<", ">>")
        .missing_key(gotmpl::MissingKey::Error)
        // gotmpl allows 10 million iterations; a query template ranges over a few labels.
        .max_range_iters(MAX_RANGE_ITERATIONS)
        .func("index", |args: &[Value]| {
            let (collection, keys) = match args {
                [collection, keys @ ..] if !keys.is_empty() => (collection, keys),
                _ => {
                    return Err(gotmpl::TemplateError::Exec(
                        "wrong number of args for index: want at least 2".into(),
                    ));
                }
            };
            let mut value = collection.clone();
            for key in keys {
                value = match &value {
                    Value::Map(map) => {
                        let key = key.as_str().unwrap_or_default();
                        map.get(key).cloned().unwrap_or_else(|| Value::from(""))
                    }
                    _ => value.index(key)?,
                };
            }
            Ok(value)
        })
        .parse(source)
        .map_err(|e| e.to_string())
}

/// Refuses the `${.Field}$` delimiters of an early prometheus-adapter build (DirectXMan12's 2018
/// demo): with `<<` `>>` they render literally, so the template could never work.
pub(crate) fn refuse_old_delimiters(source: &str) -> Result<(), String> {
    static OLD: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(r"\$\{(\.[A-Za-z0-9_.]*)\}\$").expect("a valid regex")
    });
    if OLD.is_match(source) {
        let fixed = OLD.replace_all(source, "<<$1>>");
        return Err(format!(
            "uses the `${{…}}$` delimiters of an early prometheus-adapter build, which render literally; the delimiters are `<<` and `>>`: write {fixed:?}"
        ));
    }
    Ok(())
}

/// How many `range` iterations one rendering of a template may run.
const MAX_RANGE_ITERATIONS: u64 = 100_000;

/// Why a query could not be built from a rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Neither an override nor the label template maps this resource to a label.
    #[error(
        "unable to convert resource {0} into a label: the rule has no override for it and no resources.template"
    )]
    NoLabelForResource(String),
    /// The metricsQuery template failed while rendering.
    #[error("metricsQuery template failed: {0}")]
    Render(String),
    /// The metricsQuery template rendered nothing.
    #[error("empty query produced by metrics query template")]
    EmptyQuery,
    /// The metricsQuery template rendered more than the limit; rendering stopped there.
    #[error(
        "the metricsQuery template rendered a query longer than {0} bytes; a query that long is a template that loops too much"
    )]
    QueryTooLong(usize),
    /// A matcher could not be expressed in PromQL.
    #[error(transparent)]
    Matcher(#[from] crate::promql::Error),
}

/// Every rule of a rules file, compiled and validated.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// `rules`: custom metrics.
    pub custom: Vec<DiscoveryRule>,
    /// `externalRules`: external metrics.
    pub external: Vec<DiscoveryRule>,
    /// `resourceRules`: CPU and memory for `metrics.k8s.io`.
    pub resource: Option<ResourceRules>,
    /// What loading left out or filled in where prometheus-adapter would have failed requests (a
    /// rule without `metricsQuery`, `resourceRules` without a mapping or `containerLabel`):
    /// `check` and `serve` show them as warnings.
    pub load_warnings: Vec<LoadWarning>,
}

/// Something a rules file loads with but should not, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadWarning {
    /// Where: `file:line:column: field path`.
    pub at: String,
    /// Why, and what to write instead.
    pub why: String,
}

impl RuleSet {
    /// Every discovery rule, `rules` then `externalRules`, with its path in the file
    /// (`rules[2]`, `externalRules[0]`).
    pub fn discovery_rules(&self) -> impl Iterator<Item = (String, &DiscoveryRule)> {
        fn at<'r>(
            key: &'static str,
            list: &'r [DiscoveryRule],
        ) -> impl Iterator<Item = (String, &'r DiscoveryRule)> {
            list.iter()
                .map(move |rule| (format!("{key}[{}]", rule.position), rule))
        }
        at("rules", &self.custom).chain(at("externalRules", &self.external))
    }

    /// Rules whose `backend:` names none of `known`, each with where it is written.
    pub fn unknown_backends(&self, known: &[&str]) -> Vec<UnknownBackend> {
        let mut unknown = Vec::new();
        for (list, rules) in [("rules", &self.custom), ("externalRules", &self.external)] {
            for rule in rules {
                let Some(backend) = &rule.backend else {
                    continue;
                };
                if !known.contains(&backend.name.as_str()) {
                    let declared = if known.is_empty() {
                        "the settings declare no `backends:`".to_owned()
                    } else {
                        format!("the settings' `backends:` are {}", known.join(", "))
                    };
                    unknown.push(UnknownBackend {
                        at: backend.clone(),
                        path: format!("{list}[{}].backend", rule.position),
                        message: format!("no backend {:?}: {declared}", backend.name),
                    });
                }
            }
        }
        unknown
    }

    /// The distinct (backend, `seriesQuery`) pairs of custom and external rules, in first-use
    /// order: discovery lists each once, from its backend (`None`: the default).
    pub fn discovery_queries(&self) -> Vec<(Option<&str>, &str)> {
        let mut queries: Vec<(Option<&str>, &str)> = Vec::new();
        for rule in self.custom.iter().chain(&self.external) {
            let query = (rule.backend_name(), rule.series_query.as_str());
            if !queries.contains(&query) {
                queries.push(query);
            }
        }
        queries
    }

    /// The distinct `seriesQuery` strings of custom and external rules, in first-use order:
    /// discovery sends one request per entry.
    pub fn distinct_series_queries(&self) -> Vec<&str> {
        let mut queries: Vec<&str> = Vec::new();
        for rule in self.custom.iter().chain(&self.external) {
            if !queries.contains(&rule.series_query.as_str()) {
                queries.push(&rule.series_query);
            }
        }
        queries
    }
}

/// A series name filter (`seriesFilters` entry, or the implicit one from `name.matches`).
#[derive(Debug, Clone)]
pub enum SeriesFilter {
    /// Keep series whose name matches.
    Is(Regex),
    /// Keep series whose name does not match.
    IsNot(Regex),
}

impl SeriesFilter {
    /// The filter's regular expression.
    pub fn regex(&self) -> &Regex {
        match self {
            SeriesFilter::Is(re) | SeriesFilter::IsNot(re) => re,
        }
    }

    /// Whether a series with this name passes (unanchored search, as Go's `MatchString`).
    pub fn keeps(&self, series_name: &str) -> bool {
        match self {
            SeriesFilter::Is(re) => re.is_match(series_name),
            SeriesFilter::IsNot(re) => !re.is_match(series_name),
        }
    }
}

/// `name.matches` / `name.as`: turns a series name into the API's metric name.
#[derive(Debug, Clone)]
pub struct NameMatcher {
    matches: Regex,
    as_template: String,
}

impl NameMatcher {
    /// Builds a matcher; `as_template` is already defaulted (`$0` or `$1`).
    pub fn new(matches: Regex, as_template: String) -> Self {
        Self {
            matches,
            as_template,
        }
    }

    /// The metric name for a series, or `None` when `matches` does not match it.
    /// Only the expansion of `as` is returned, as Go's `Regexp.Expand` does.
    pub fn metric_name(&self, series_name: &str) -> Option<String> {
        let captures = self.matches.captures(series_name)?;
        Some(crate::promql::go_regex::expand(
            &self.as_template,
            &self.matches,
            &captures,
        ))
    }

    /// The `matches` regex.
    pub fn regex(&self) -> &Regex {
        &self.matches
    }

    /// The `as` template (defaulted).
    pub fn as_template(&self) -> &str {
        &self.as_template
    }
}

/// One `rules` or `externalRules` entry.
#[derive(Debug, Clone)]
pub struct DiscoveryRule {
    /// `seriesQuery`, sent to Prometheus as written.
    pub series_query: String,
    /// `seriesQuery`, parsed (used to match series offline).
    pub series_selector: SeriesSelector,
    /// `seriesFilters`, then the implicit filter from `name.matches`.
    pub filters: Vec<SeriesFilter>,
    /// How many of `filters` are `seriesFilters` entries (the rest is `name.matches`).
    pub series_filters: usize,
    /// `resources`.
    pub resources: ResourceMapping,
    /// `name`.
    pub name: NameMatcher,
    /// `metricsQuery`.
    pub metrics_query: QueryTemplate,
    /// Its index in the file's `rules` or `externalRules` list, for messages (a rule skipped at
    /// load leaves a gap, so this can differ from its index in `RuleSet`).
    pub position: usize,
    /// `backend`: the named backend its series and queries go to; `None` for the default
    /// (`--prometheus-url`).
    pub backend: Option<BackendRef>,
}

/// A rule's `backend:` reference, with where it is written (checked against the settings'
/// `backends:` by `RuleSet::backend_errors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendRef {
    /// The backend's name.
    pub name: String,
    /// 1-based line of the value.
    pub line: u64,
    /// 1-based column of the value.
    pub column: u64,
}

/// A rule's `backend:` that the settings do not declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownBackend {
    /// The reference, with its position.
    pub at: BackendRef,
    /// Its field path, `rules[3].backend`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Whether `name` can name a backend: a DNS label (lower-case letters, digits, `-`, starting with
/// a letter, at most 63 characters), so that it is also safe in logs and metric labels.
pub fn is_valid_backend_name(name: &str) -> bool {
    name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The key a `seriesQuery`'s listing is kept under: the query itself for the default backend,
/// prefixed by the backend's name for a named one (the same query may list other series there).
pub fn discovery_key(backend: Option<&str>, series_query: &str) -> String {
    match backend {
        None => series_query.to_owned(),
        Some(backend) => format!("{backend}\u{1f}{series_query}"),
    }
}

impl DiscoveryRule {
    /// `backend:`'s name, if the rule has one.
    pub fn backend_name(&self) -> Option<&str> {
        self.backend.as_ref().map(|b| b.name.as_str())
    }

    /// The key its series listing is kept under (see `discovery_key`).
    pub fn discovery_key(&self) -> String {
        discovery_key(self.backend_name(), &self.series_query)
    }

    /// Where filter `index` comes from, as the rules file says it: `seriesFilters[0].isNot` or
    /// `name.matches`.
    pub fn filter_origin(&self, index: usize) -> String {
        match self.filters.get(index) {
            Some(_) if index >= self.series_filters => "name.matches".to_owned(),
            Some(SeriesFilter::Is(_)) => format!("seriesFilters[{index}].is"),
            Some(SeriesFilter::IsNot(_)) => format!("seriesFilters[{index}].isNot"),
            None => format!("filter {index}"),
        }
    }

    /// The API metric name for a series, or `None` when the series is filtered out.
    pub fn metric_name_for(&self, series_name: &str) -> Option<String> {
        if self.filters.iter().all(|f| f.keeps(series_name)) {
            self.name.metric_name(series_name)
        } else {
            None
        }
    }
}

/// `resourceRules`: queries for CPU and memory.
#[derive(Debug, Clone)]
pub struct ResourceRules {
    /// `cpu`.
    pub cpu: ResourceRule,
    /// `memory`.
    pub memory: ResourceRule,
    /// `window`, reported with each usage sample.
    pub window: Duration,
}

/// `resourceRules.cpu` or `resourceRules.memory`.
#[derive(Debug, Clone)]
pub struct ResourceRule {
    /// `containerQuery`, rendered per namespace for pods.
    pub container_query: QueryTemplate,
    /// `nodeQuery`, rendered for nodes.
    pub node_query: QueryTemplate,
    /// `resources`: must map namespaces, pods and nodes.
    pub resources: ResourceMapping,
    /// `containerLabel`.
    pub container_label: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_use_unanchored_search() {
        // prometheus-adapter's pkg/naming/regex_matcher_test.go.
        let is = SeriesFilter::Is(Regex::new("my_.*").unwrap());
        assert!(is.keeps("my_label"));
        assert!(!is.keeps("your_label"));
        let is_not = SeriesFilter::IsNot(Regex::new("my_.*").unwrap());
        assert!(!is_not.keeps("my_label"));
        assert!(is_not.keeps("your_label"));
    }

    #[test]
    fn old_template_delimiters_are_refused_with_the_rewrite() {
        let error = refuse_old_delimiters(
            r#"sum(rate(${.Series}${${.LabelMatchers}$,container!="POD"}[2m])) by (${.GroupBy}$)"#,
        )
        .unwrap_err();
        assert!(
            error.contains(
                r#"sum(rate(<<.Series>>{<<.LabelMatchers>>,container!=\"POD\"}[2m])) by (<<.GroupBy>>)"#
            ),
            "{error}"
        );
        assert!(refuse_old_delimiters("sum(<<.Series>>) by (<<.GroupBy>>)").is_ok());
    }

    #[test]
    fn naming_expands_go_style() {
        let name = |m: &str, a: &str, s: &str| {
            NameMatcher::new(Regex::new(m).unwrap(), a.into()).metric_name(s)
        };
        assert_eq!(
            name("^(.*)_total$", "${1}_per_second", "http_requests_total").unwrap(),
            "http_requests_per_second"
        );
        assert_eq!(
            name("^(.*)_total$", "$1_per_second", "http_requests_total").unwrap(),
            ""
        );
        assert_eq!(
            name("^(.*)_total$", "$1", "http_requests_total").unwrap(),
            "http_requests"
        );
        assert_eq!(
            name("_total", "$0", "http_requests_total").unwrap(),
            "_total"
        );
        assert_eq!(name(".*", "foo", "anything").unwrap(), "foo");
        assert_eq!(
            name("^(?P<base>.*)_total$", "$base", "a_total").unwrap(),
            "a"
        );
        assert_eq!(name("^(.*)_total$", "$$1", "a_total").unwrap(), "$1");
        assert_eq!(name("^(.*)_total$", "$9", "a_total").unwrap(), "");
        assert!(name("^(.*)_total$", "$1", "a_count").is_none());
    }
}
