//! The rules file: its raw serde mirror, compiled into rules with every error reported at once.

pub mod compile;
pub mod raw;

mod structure;

pub use compile::Diagnostic;

use crate::rules::RuleSet;

/// Why a rules file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read rules file {path}")]
    Read {
        /// The file.
        path: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML, or does not fit the schema (unknown key, wrong type).
    #[error("{path}:{line}:{column}: {message}")]
    Yaml {
        /// The file.
        path: String,
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// The parser's message.
        message: String,
    },
    /// The file parsed but some values are invalid; every problem is listed.
    #[error("{path}: {} invalid value(s):\n{}", .diagnostics.len(), render_diagnostics(.path, .diagnostics))]
    Invalid {
        /// The file.
        path: String,
        /// Every problem found.
        diagnostics: Vec<Diagnostic>,
    },
}

impl Error {
    /// One line per problem (`file:line:col: field: message`), for logs that must not span lines.
    pub fn problems(&self) -> Vec<String> {
        match self {
            Error::Invalid { path, diagnostics } => {
                diagnostics.iter().map(|d| format!("{path}:{d}")).collect()
            }
            other => vec![chain(other)],
        }
    }
}

/// An error and its causes on one line ("cannot read rules file x: No such file or directory").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn render_diagnostics(path: &str, diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| format!("  {path}:{d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Refuses rules whose `backend:` names none of `known` (the settings' `backends:`), every one
/// at once, as the rules file's other errors.
pub fn check_backends(rules: &RuleSet, origin: &str, known: &[&str]) -> Result<(), Error> {
    let diagnostics: Vec<Diagnostic> = rules
        .unknown_backends(known)
        .into_iter()
        .map(|unknown| Diagnostic {
            line: unknown.at.line,
            column: unknown.at.column,
            path: unknown.path,
            message: unknown.message,
        })
        .collect();
    if diagnostics.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid {
            path: origin.to_owned(),
            diagnostics,
        })
    }
}

/// Parses and compiles rules-file text; `origin` names the file in errors.
pub fn parse_rules(text: &str, origin: &str) -> Result<RuleSet, Error> {
    // Unknown keys and wrong kinds of node, all at once and with their paths; serde would stop at
    // the first one.
    let structural = structure::check(text);
    if !structural.is_empty() {
        return Err(Error::Invalid {
            path: origin.to_owned(),
            diagnostics: structural,
        });
    }
    let raw: raw::RawRules = if text.trim().is_empty() {
        raw::RawRules::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            let location = e.location();
            Error::Yaml {
                path: origin.to_owned(),
                line: location.map_or(0, |l| l.line()),
                column: location.map_or(0, |l| l.column()),
                message: yaml_message(&e),
            }
        })?
    };
    let mut rules = compile::compile(&raw).map_err(|diagnostics| Error::Invalid {
        path: origin.to_owned(),
        diagnostics,
    })?;
    for warning in &mut rules.load_warnings {
        warning.at = format!("{origin}:{}", warning.at);
    }
    Ok(rules)
}

/// The parser's message without the source snippet it appends (we print the position ourselves).
fn yaml_message(error: &serde_saphyr::Error) -> String {
    if let serde_saphyr::Error::Budget { breach, .. } = error.without_snippet() {
        return budget_message(breach);
    }
    let text = error.to_string();
    let first = text.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // Drop a leading "line N column M: " that repeats the position.
    match first.split_once(": ") {
        Some((position, rest))
            if position.starts_with("line ") && position.contains(" column ") =>
        {
            rest.to_owned()
        }
        _ => first.to_owned(),
    }
}

/// Which of the parser's limits against YAML bombs a file hit, in words.
fn budget_message(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    let limit = match breach {
        B::Events { events } => format!("{events} parser events (at most 1,000,000)"),
        B::Aliases { aliases } => format!("{aliases} aliases (at most 50,000)"),
        B::Anchors { anchors } => format!("{anchors} anchors (at most 50,000)"),
        B::Depth { depth } => format!("nesting {depth} levels deep (at most 64)"),
        B::Documents { documents } => format!("{documents} YAML documents (at most 1,024)"),
        B::Nodes { nodes } => format!("{nodes} nodes: lists, maps and values (at most 250,000)"),
        B::ScalarBytes { total_scalar_bytes } => {
            format!("{total_scalar_bytes} bytes of values (at most 64 MiB)")
        }
        B::MergeKeys { merge_keys } => format!("{merge_keys} merge keys (at most 10,000)"),
        B::AliasAnchorRatio { aliases, anchors } => {
            format!("{aliases} aliases for {anchors} anchors, which expands like a YAML bomb")
        }
        B::InputBytes { input_bytes } => format!("{input_bytes} bytes (at most 256 MiB)"),
        B::RecordedAnchorEvents {
            recorded_anchor_events,
        } => format!("{recorded_anchor_events} events copied through anchors (at most 1,000,000)"),
        B::RecordedAnchorBytes {
            recorded_anchor_bytes,
        } => format!("{recorded_anchor_bytes} bytes copied through anchors (at most 64 MiB)"),
        other => format!("{other:?}"),
    };
    format!(
        "the file is too large or too deeply nested to be a rules file: it has {limit}; a rules file this size is almost certainly generated wrong or an attack"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_values_pasted_as_a_rules_file_say_so() {
        let text = "prometheus:\n  url: http://prometheus\nrules:\n  custom:\n  - seriesQuery: x\n";
        let error = parse_rules(text, "values.yaml").unwrap_err().to_string();
        assert!(
            error.contains("1:1: prometheus: unknown field `prometheus`")
                && error.contains("4:3: rules: expected a list, found a mapping: this looks like the Helm chart's values")
                && error.contains("move the list under `rules.custom` to `rules`"),
            "{error}"
        );
    }

    #[test]
    fn regular_expressions_are_read_as_go_reads_them() {
        let text = r#"
rules:
- seriesQuery: '{__name__=~"^app_.*"}'
  seriesFilters: [{isNot: "^app_{internal}_.*$"}, {is: "^app_\\Q(v2)\\E"}]
  resources: {template: <<.Resource>>}
  name: {matches: "^app_(.{1,40})$", as: "${1}"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"#;
        let rules = parse_rules(text, "go.yaml").unwrap();
        let rule = &rules.custom[0];
        assert_eq!(
            rule.metric_name_for("app_(v2)_requests").as_deref(),
            Some("(v2)_requests")
        );
        assert_eq!(rule.metric_name_for("app_{internal}_(v2)"), None);
        assert_eq!(rule.metric_name_for("app_v2_requests"), None);
    }

    #[test]
    fn budget_errors_say_which_limit_in_words() {
        let filters = vec!["{is: a}"; 90_000].join(",");
        let many =
            format!("rules:\n- seriesQuery: x\n  metricsQuery: y\n  seriesFilters: [{filters}]\n");
        let error = parse_rules(&many, "many.yaml").unwrap_err().to_string();
        assert!(
            error.contains("nodes: lists, maps and values (at most 250,000)"),
            "{error}"
        );
        assert!(!error.contains("Nodes {"), "{error}");
    }

    /// Every key of the schema, once: the structural check (`structure.rs`) and the serde mirror
    /// (`raw.rs`) each describe the schema, and both must accept all of it.
    const EVERY_FIELD: &str = r#"
rules:
- seriesQuery: 'x{a="b"}'
  seriesFilters: [{is: "x"}, {isNot: "y"}]
  resources:
    template: <<.Resource>>
    overrides: {pod: {group: "", resource: pod}}
    namespaced: true
  name: {matches: "^(.*)$", as: "${1}"}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
externalRules:
- seriesQuery: 'y'
  resources: {namespaced: false}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>})
resourceRules:
  cpu:
    containerQuery: x{<<.LabelMatchers>>}
    nodeQuery: x{<<.LabelMatchers>>}
    resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}, node: {resource: node}}}
    containerLabel: container
  memory:
    containerQuery: x{<<.LabelMatchers>>}
    nodeQuery: x{<<.LabelMatchers>>}
    resources: {template: <<.Resource>>}
    containerLabel: container
  window: 5m
"#;

    #[test]
    fn the_structural_check_and_the_serde_mirror_agree_on_the_schema() {
        assert!(
            structure::check(EVERY_FIELD).is_empty(),
            "{:?}",
            structure::check(EVERY_FIELD)
        );
        let raw: raw::RawRules =
            serde_saphyr::from_str(EVERY_FIELD).expect("the serde mirror accepts every field");
        assert!(raw.resource_rules.is_some());
        let rules = parse_rules(EVERY_FIELD, "every-field.yaml").unwrap();
        assert_eq!((rules.custom.len(), rules.external.len()), (1, 1));
        assert!(rules.resource.is_some());
    }
}
