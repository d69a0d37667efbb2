//! Structural check of a rules file before deserialising: every unknown key and every wrong kind
//! of node, each with its line, column and field path, all at once (serde stops at the first).

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

use super::compile::Diagnostic;

/// What a node must look like.
enum Shape {
    /// A mapping with these keys (all optional).
    Map(&'static [(&'static str, Shape)]),
    /// A mapping from free-form keys (label names) to values of one shape.
    MapOf(&'static Shape),
    /// A list.
    Seq(&'static Shape),
    /// A string scalar.
    Str,
    /// A boolean scalar.
    Bool,
}

const GROUP_RESOURCE: Shape = Shape::Map(&[("group", Shape::Str), ("resource", Shape::Str)]);
const RESOURCE_MAPPING: Shape = Shape::Map(&[
    ("template", Shape::Str),
    ("overrides", Shape::MapOf(&GROUP_RESOURCE)),
    ("namespaced", Shape::Bool),
]);
const FILTER: Shape = Shape::Map(&[("is", Shape::Str), ("isNot", Shape::Str)]);
const DISCOVERY_RULE: Shape = Shape::Map(&[
    ("seriesQuery", Shape::Str),
    ("seriesFilters", Shape::Seq(&FILTER)),
    ("resources", RESOURCE_MAPPING),
    (
        "name",
        Shape::Map(&[("matches", Shape::Str), ("as", Shape::Str)]),
    ),
    ("metricsQuery", Shape::Str),
    ("backend", Shape::Str),
]);
const RESOURCE_RULE: Shape = Shape::Map(&[
    ("containerQuery", Shape::Str),
    ("nodeQuery", Shape::Str),
    ("resources", RESOURCE_MAPPING),
    ("containerLabel", Shape::Str),
]);
const RULES_FILE: Shape = Shape::Map(&[
    ("rules", Shape::Seq(&DISCOVERY_RULE)),
    ("externalRules", Shape::Seq(&DISCOVERY_RULE)),
    (
        "resourceRules",
        Shape::Map(&[
            ("cpu", RESOURCE_RULE),
            ("memory", RESOURCE_RULE),
            ("window", Shape::Str),
        ]),
    ),
]);

type Events<'a> = std::iter::Peekable<Parser<'a, serde_saphyr::granit_parser::StrInput<'a>>>;

/// Checks the structure of a rules file. A YAML syntax error stops the check (the deserialiser
/// reports it with its position); everything else is collected.
pub fn check(text: &str) -> Vec<Diagnostic> {
    // Comments are not nodes; without this the parser reports them as events.
    let mut options = serde_saphyr::granit_parser::Options::default();
    options.set_emit_comments(false);
    let mut events: Events<'_> = Parser::new_from_str_with_options(text, options).peekable();
    let mut out = Vec::new();
    loop {
        match events.next() {
            Some(Ok((Event::DocumentStart(..), _))) => {
                if !matches!(events.peek(), Some(Ok((Event::DocumentEnd, _)))) {
                    let _ = walk(&mut events, &RULES_FILE, "", &mut out);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return out,
        }
    }
}

/// Top-level keys of the prometheus-adapter Helm chart's values, which users paste where a rules
/// file belongs.
const CHART_VALUES_KEYS: &[&str] = &[
    "prometheus",
    "image",
    "replicas",
    "metricsRelistInterval",
    "listenPort",
    "logLevel",
    "resources",
    "service",
    "tls",
];

const CHART_VALUES_HINT: &str = ": this looks like the Helm chart's values (`rules.custom`, `rules.external`, `rules.resource`) pasted as a rules file. A rules file has the lists `rules`, `externalRules` and `resourceRules` at the top: move the list under `rules.custom` to `rules`, `rules.external` to `externalRules`, and `rules.resource` to `resourceRules`";

fn diagnostic(span: &Span, path: &str, message: String) -> Diagnostic {
    Diagnostic {
        line: span.start.line() as u64,
        column: span.start.col() as u64 + 1,
        path: if path.is_empty() {
            "(top level)".to_owned()
        } else {
            path.to_owned()
        },
        message,
    }
}

fn is_null(value: &str, style: ScalarStyle) -> bool {
    style == ScalarStyle::Plain && matches!(value, "" | "~" | "null" | "Null" | "NULL")
}

fn describe(shape: &Shape) -> &'static str {
    match shape {
        Shape::Map(_) | Shape::MapOf(_) => "a mapping",
        Shape::Seq(_) => "a list",
        Shape::Str => "a string",
        Shape::Bool => "true or false",
    }
}

/// Walks one node; `Err` means the YAML itself is broken and the check stops.
fn walk(
    events: &mut Events<'_>,
    shape: &Shape,
    path: &str,
    out: &mut Vec<Diagnostic>,
) -> Result<(), ()> {
    let (event, span) = events.next().ok_or(())?.map_err(|_| ())?;
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (event, shape) {
        (Event::Alias(_), _) => Ok(()),
        (Event::Scalar(value, style, ..), shape)
            if is_null(&value, style) && !matches!(shape, Shape::Str) =>
        {
            Ok(())
        }
        (Event::Scalar(..), Shape::Str) => Ok(()),
        (Event::Scalar(value, ..), Shape::Bool) => {
            let boolean = ["true", "false", "yes", "no", "on", "off"]
                .contains(&value.to_ascii_lowercase().as_str());
            if !boolean {
                out.push(diagnostic(
                    &span,
                    path,
                    format!("expected true or false, found {value:?}"),
                ));
            }
            Ok(())
        }
        (Event::MappingStart(..), Shape::Map(fields)) => loop {
            let (key_event, key_span) = events.next().ok_or(())?.map_err(|_| ())?;
            let key = match key_event {
                Event::MappingEnd => return Ok(()),
                Event::Scalar(key, ..) => key.into_owned(),
                _ => {
                    out.push(diagnostic(
                        &key_span,
                        path,
                        "mapping keys must be plain strings".into(),
                    ));
                    skip_node(events)?;
                    skip_node(events)?;
                    continue;
                }
            };
            match fields.iter().find(|(name, _)| *name == key) {
                Some((_, child)) => walk(events, child, &join(&key), out)?,
                None if key == "<<" => skip_node(events)?,
                None => {
                    let expected: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
                    let hint = if path.is_empty() && CHART_VALUES_KEYS.contains(&key.as_ref()) {
                        CHART_VALUES_HINT
                    } else {
                        ""
                    };
                    out.push(diagnostic(
                        &key_span,
                        &join(&key),
                        format!(
                            "unknown field `{key}` (expected one of: {}){hint}",
                            expected.join(", ")
                        ),
                    ));
                    skip_node(events)?;
                }
            }
        },
        (Event::MappingStart(..), Shape::MapOf(child)) => loop {
            let (key_event, _) = events.next().ok_or(())?.map_err(|_| ())?;
            match key_event {
                Event::MappingEnd => return Ok(()),
                Event::Scalar(key, ..) => walk(events, child, &join(&key), out)?,
                _ => {
                    skip_inside(events)?;
                    skip_node(events)?;
                }
            }
        },
        (Event::SequenceStart(..), Shape::Seq(child)) => {
            let mut index = 0;
            loop {
                if matches!(events.peek(), Some(Ok((Event::SequenceEnd, _)))) {
                    events.next();
                    return Ok(());
                }
                walk(events, child, &format!("{path}[{index}]"), out)?;
                index += 1;
            }
        }
        (event, shape) => {
            let found = match &event {
                Event::MappingStart(..) => "a mapping",
                Event::SequenceStart(..) => "a list",
                _ => "a scalar",
            };
            // Helm chart values pasted where a rules file belongs: `rules: {custom: [...]}`.
            let hint = if path == "rules" && found == "a mapping" {
                CHART_VALUES_HINT
            } else {
                ""
            };
            out.push(diagnostic(
                &span,
                path,
                format!("expected {}, found {found}{hint}", describe(shape)),
            ));
            if matches!(event, Event::MappingStart(..) | Event::SequenceStart(..)) {
                skip_inside(events)?;
            }
            Ok(())
        }
    }
}

/// Skips one whole node.
fn skip_node(events: &mut Events<'_>) -> Result<(), ()> {
    let (event, _) = events.next().ok_or(())?.map_err(|_| ())?;
    if matches!(event, Event::MappingStart(..) | Event::SequenceStart(..)) {
        skip_inside(events)?;
    }
    Ok(())
}

/// Skips the rest of a collection whose start event was consumed.
fn skip_inside(events: &mut Events<'_>) -> Result<(), ()> {
    let mut depth = 1usize;
    while depth > 0 {
        let (event, _) = events.next().ok_or(())?.map_err(|_| ())?;
        match event {
            Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
            Event::MappingEnd | Event::SequenceEnd => depth -= 1,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<String> {
        check(text).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn reports_every_unknown_key_and_wrong_kind_with_its_path() {
        let text = "rules:\n- seriesQuery: x\n  bogus: 1\n  name: {matches: a, ass: b}\n- resources:\n    namespaced: maybe\n    overrides:\n      pod: {resource: pod, kind: Pod}\nexternalRules: {}\nresourceRules:\n  cpu: [1]\nextra: true\n";
        assert_eq!(
            messages(text),
            vec![
                "3:3: rules[0].bogus: unknown field `bogus` (expected one of: seriesQuery, seriesFilters, resources, name, metricsQuery, backend)",
                "4:22: rules[0].name.ass: unknown field `ass` (expected one of: matches, as)",
                "6:17: rules[1].resources.namespaced: expected true or false, found \"maybe\"",
                "8:28: rules[1].resources.overrides.pod.kind: unknown field `kind` (expected one of: group, resource)",
                "9:16: externalRules: expected a list, found a mapping",
                "11:8: resourceRules.cpu: expected a mapping, found a list",
                "12:1: extra: unknown field `extra` (expected one of: rules, externalRules, resourceRules)",
            ]
        );
    }

    #[test]
    fn accepts_valid_files_nulls_anchors_and_syntax_errors_are_left_to_the_parser() {
        assert!(check("rules:\n- seriesQuery: x\n  resources: &r {template: <<.Resource>>}\n- resources: *r\n  name:\nexternalRules: ~\n").is_empty());
        assert!(check("").is_empty());
        assert!(check("# header\nrules:\n# a comment between entries\n- seriesQuery: x # trailing\n  # indented\n  metricsQuery: y\n").is_empty());
        assert!(check("rules: [\n").is_empty());
    }
}
