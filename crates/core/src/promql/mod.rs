//! Typed PromQL fragments: label names, matchers and string quoting; every quote and regex escape is made here.

pub mod go_regex;
mod labels;
mod selector;

pub use labels::{LabelSelector, LabelSelectorJson, Operator, Requirement};
pub use selector::{Series, SeriesSelector};

use std::fmt;

/// Why a PromQL fragment could not be built or parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A label name that PromQL cannot express without quoting.
    #[error(
        "{0:?} is not a valid Prometheus label name (use letters, digits and '_', not starting with a digit)"
    )]
    InvalidLabelName(String),
    /// A Kubernetes label selector with a syntax error.
    #[error("invalid label selector {selector:?}: {reason}")]
    InvalidLabelSelector {
        /// The selector as given.
        selector: String,
        /// What is wrong, and where.
        reason: String,
    },
    /// A selector operator that has no PromQL equivalent.
    #[error(
        "label selector operator {0:?} is not supported by Prometheus (use =, !=, in, notin, exists or !)"
    )]
    UnsupportedOperator(String),
    /// A Prometheus series selector with a syntax error.
    #[error("invalid series selector {selector:?}: {reason}")]
    InvalidSeriesSelector {
        /// The selector as given.
        selector: String,
        /// What is wrong, and where.
        reason: String,
    },
}

/// Returns whether `name` is a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Returns whether `name` is a valid Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Quotes a string as a PromQL double-quoted literal the way Go's `strconv.Quote` does (which
/// prometheus-adapter uses): the same escapes for quotes, backslashes, ASCII and Unicode control,
/// space and format characters. Go also escapes unassigned code points, which Rust's standard
/// library cannot tell apart; those are kept as they are (still valid PromQL).
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            ' '..='~' => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || (c.is_whitespace() && c != ' ') || is_format_character(c) => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Unicode format characters (category Cf), which Go does not print: soft hyphen, zero-width and
/// bidirectional marks, the byte-order mark, and the rest of the category.
fn is_format_character(c: char) -> bool {
    matches!(c as u32,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

/// Joins literal values into an anchored-by-Prometheus regex alternation, escaping regex
/// metacharacters so that a name like `web.v2` matches only itself.
pub fn literal_alternation<S: AsRef<str>>(values: &[S]) -> String {
    values
        .iter()
        .map(|v| regex::escape(v.as_ref()))
        .collect::<Vec<_>>()
        .join("|")
}

/// Go's `regexp.QuoteMeta`: escapes the characters RE2 gives a meaning (`\.+*?()|[]{}^$`) and
/// nothing else, so that a name with a hyphen reads the same in a regex as in an equality.
pub fn quote_meta(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What a template's `.LabelValuesByName` holds for `values`: the values as a regex alternation
/// that matches exactly them, escaped to sit inside a PromQL double-quoted string (templates
/// write `label=~"<<index .LabelValuesByName "label">>"`). A value without regex metacharacters
/// (every namespace, most object names) reads unchanged, so `label="…"` with one plain name
/// still works. prometheus-adapter inserts the values raw: a `.` matched any character and a
/// `"` could end the string.
pub fn template_alternation<S: AsRef<str>>(values: &[S]) -> String {
    let alternation = values
        .iter()
        .map(|v| quote_meta(v.as_ref()))
        .collect::<Vec<_>>()
        .join("|");
    let quoted = quote(&alternation);
    quoted[1..quoted.len() - 1].to_owned()
}

/// A PromQL label match operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchOp {
    /// The operator as written in PromQL.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One `label op "value"` term; its `Display` is valid, escaped PromQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelMatcher {
    name: String,
    op: MatchOp,
    value: String,
}

impl LabelMatcher {
    /// Builds a matcher after checking that the label name is valid PromQL.
    pub fn new(name: &str, op: MatchOp, value: impl Into<String>) -> Result<Self, Error> {
        if !is_valid_label_name(name) {
            return Err(Error::InvalidLabelName(name.to_owned()));
        }
        Ok(Self {
            name: name.to_owned(),
            op,
            value: value.into(),
        })
    }

    /// The label name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operator.
    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// The unquoted value (a regex for `=~` and `!~`).
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for LabelMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.name, self.op.as_str(), quote(&self.value))
    }
}

/// A series selector from matchers: `{a="b",c=~"d"}`.
pub fn selector(matchers: &[LabelMatcher]) -> String {
    format!("{{{}}}", join_matchers(matchers))
}

/// Joins matchers with `,` as `<<.LabelMatchers>>` expects.
pub fn join_matchers(matchers: &[LabelMatcher]) -> String {
    matchers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_values_are_regex_escaped_alternations_inside_a_string() {
        assert_eq!(quote_meta("a-b.c"), r"a-b\.c");
        assert_eq!(template_alternation(&["kube-system"]), "kube-system");
        assert_eq!(
            template_alternation(&["weird.pod", "web-1"]),
            r"weird\\.pod|web-1"
        );
        assert_eq!(
            template_alternation(&[r#"x"} or up{a=""#]),
            r#"x\"\\} or up\\{a=\""#
        );
        assert_eq!(template_alternation::<&str>(&[]), "");
        // Written into a double-quoted regex matcher, the value matches exactly the names.
        let matcher = format!("\"{}\"", template_alternation(&["weird.pod", "a|b"]));
        let unquoted: String = serde_json::from_str(&matcher).unwrap();
        let regex = regex::Regex::new(&format!("^(?:{unquoted})$")).unwrap();
        assert!(regex.is_match("weird.pod") && regex.is_match("a|b"));
        assert!(!regex.is_match("weirdXpod") && !regex.is_match("a"));
    }

    #[test]
    fn quote_matches_go_strconv_quote() {
        assert_eq!(quote("plain"), r#""plain""#);
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("line\nbreak\ttab"), r#""line\nbreak\ttab""#);
        assert_eq!(quote("\u{0}\u{7f}"), r#""\x00\x7f""#);
        assert_eq!(quote("\u{2028}"), r#""\u2028""#);
        assert_eq!(quote("a\u{200B}b\u{AD}"), r#""a\u200bb\u00ad""#);
        assert_eq!(quote("naïve ☃"), "\"naïve ☃\"");
        assert_eq!(quote(""), r#""""#);
    }

    #[test]
    fn label_names_are_validated() {
        assert!(is_valid_label_name("pod"));
        assert!(is_valid_label_name("_x1"));
        assert!(!is_valid_label_name("1x"));
        assert!(!is_valid_label_name("app.kubernetes.io/name"));
        assert!(!is_valid_label_name(""));
        assert!(LabelMatcher::new("a-b", MatchOp::Equal, "x").is_err());
    }

    #[test]
    fn matchers_render_escaped_promql() {
        let m =
            LabelMatcher::new("pod", MatchOp::Regex, literal_alternation(&["a.b", "c"])).unwrap();
        assert_eq!(m.to_string(), r#"pod=~"a\\.b|c""#);
        let m = LabelMatcher::new("x", MatchOp::NotEqual, "say \"hi\"").unwrap();
        assert_eq!(m.to_string(), r#"x!="say \"hi\"""#);
        assert_eq!(
            join_matchers(&[
                LabelMatcher::new("a", MatchOp::Equal, "1").unwrap(),
                LabelMatcher::new("b", MatchOp::NotRegex, "2|3").unwrap()
            ]),
            r#"a="1",b!~"2|3""#
        );
    }

    #[test]
    fn quoting_round_trips_through_the_series_selector_parser() {
        // Property-style check over awkward values: render, parse back, compare.
        let awkward = [
            "",
            "simple",
            "quote\"d",
            "back\\slash",
            "new\nline",
            "tab\t",
            "\u{0}",
            "\u{1f}",
            "\u{7f}",
            "é",
            "☃",
            "\u{2028}",
            "\u{1F600}",
            "'single'",
            "`tick`",
            "a\\\"b",
        ];
        for value in awkward {
            let m = LabelMatcher::new("l", MatchOp::Equal, value).unwrap();
            let parsed = SeriesSelector::parse(&format!("x{{{m}}}")).unwrap();
            assert_eq!(
                parsed.matchers()[1].value(),
                value,
                "round trip of {value:?}"
            );
        }
    }
}
