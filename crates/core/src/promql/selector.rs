//! Prometheus series selectors (`name{label="v",other=~"re"}`): parsing, and matching series the way Prometheus does.

use std::collections::BTreeMap;

use regex::Regex;

use super::{Error, LabelMatcher, MatchOp, is_valid_label_name, is_valid_metric_name};

/// A parsed series selector, as used in `seriesQuery` and `match[]`.
#[derive(Debug, Clone)]
pub struct SeriesSelector {
    matchers: Vec<LabelMatcher>,
    /// Fully anchored regexes for the `=~`/`!~` matchers, by matcher index.
    regexes: Vec<Option<Regex>>,
}

/// One series: its metric name and its other labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    /// The `__name__` label.
    pub name: String,
    /// Every other label, by name.
    pub labels: BTreeMap<String, String>,
}

impl Series {
    /// A series from its labels as `/api/v1/series` gives them (`__name__` included; empty
    /// values are absent labels); `None` without a name.
    pub fn from_api_labels(mut labels: BTreeMap<String, String>) -> Option<Self> {
        let name = labels.remove("__name__")?;
        labels.retain(|_, v| !v.is_empty());
        Some(Self { name, labels })
    }

    /// Parses one series written in selector notation, `name{label="value",...}`, where every
    /// matcher must be an equality.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let selector = SeriesSelector::parse(text)?;
        let invalid = |reason: &str| Error::InvalidSeriesSelector {
            selector: text.to_owned(),
            reason: reason.to_owned(),
        };
        let mut name = None;
        let mut labels = BTreeMap::new();
        for matcher in selector.matchers {
            if matcher.op() != MatchOp::Equal {
                return Err(invalid(
                    "a series may only use `=` (it lists label values, not patterns)",
                ));
            }
            if matcher.name() == "__name__" {
                name = Some(matcher.value);
            } else if !matcher.value.is_empty() {
                labels.insert(matcher.name, matcher.value);
            }
        }
        let name = name.ok_or_else(|| invalid("a series needs a metric name"))?;
        Ok(Series { name, labels })
    }

    /// The value of a label, with `__name__` giving the metric name; absent labels are empty,
    /// as in Prometheus.
    pub fn label(&self, name: &str) -> &str {
        if name == "__name__" {
            &self.name
        } else {
            self.labels.get(name).map(String::as_str).unwrap_or("")
        }
    }
}

impl SeriesSelector {
    /// Parses a selector such as `{__name__=~"^container_.*",container!="POD"}` or
    /// `http_requests_total{job="api"}`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let fail = |reason: String| Error::InvalidSeriesSelector {
            selector: text.to_owned(),
            reason,
        };
        let mut parser = Parser { text, pos: 0 };
        let mut matchers = Vec::new();
        parser.skip_space();
        let name = parser.take_while(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !name.is_empty() {
            if !is_valid_metric_name(name) {
                return Err(fail(format!("{name:?} is not a valid metric name")));
            }
            matchers.push(
                LabelMatcher::new("__name__", MatchOp::Equal, name)
                    .map_err(|e| fail(e.to_string()))?,
            );
        }
        parser.skip_space();
        if parser.eat('{') {
            loop {
                parser.skip_space();
                if parser.eat('}') {
                    break;
                }
                let label = parser.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
                if !is_valid_label_name(label) {
                    return Err(fail(format!(
                        "expected a label name at offset {}",
                        parser.pos
                    )));
                }
                parser.skip_space();
                let op = if parser.eat_str("=~") {
                    MatchOp::Regex
                } else if parser.eat_str("!~") {
                    MatchOp::NotRegex
                } else if parser.eat_str("!=") {
                    MatchOp::NotEqual
                } else if parser.eat('=') {
                    MatchOp::Equal
                } else {
                    return Err(fail(format!(
                        "expected =, !=, =~ or !~ after {label:?} at offset {}",
                        parser.pos
                    )));
                };
                parser.skip_space();
                let value = parser.string_literal().map_err(fail)?;
                matchers
                    .push(LabelMatcher::new(label, op, value).map_err(|e| fail(e.to_string()))?);
                parser.skip_space();
                if parser.eat(',') {
                    continue;
                }
                if parser.eat('}') {
                    break;
                }
                return Err(fail(format!(
                    "expected ',' or '}}' at offset {}",
                    parser.pos
                )));
            }
        }
        parser.skip_space();
        if parser.pos != text.len() {
            return Err(fail(format!(
                "unexpected text at offset {}: {:?}",
                parser.pos,
                &text[parser.pos..]
            )));
        }
        if matchers.is_empty() {
            return Err(fail(
                "a selector needs a metric name or at least one label matcher".to_owned(),
            ));
        }
        let mut regexes = Vec::with_capacity(matchers.len());
        for m in &matchers {
            regexes.push(match m.op() {
                MatchOp::Regex | MatchOp::NotRegex => Some(
                    // Prometheus reads the regex as Go does.
                    Regex::new(&format!("^(?:{})$", super::go_regex::to_rust(m.value())))
                        .map_err(|e| fail(format!("label {:?}: invalid regex: {e}", m.name())))?,
                ),
                _ => None,
            });
        }
        let selector = SeriesSelector { matchers, regexes };
        if !selector.has_non_empty_matcher() {
            return Err(fail(
                "at least one matcher must not match the empty string (Prometheus rejects it)"
                    .to_owned(),
            ));
        }
        Ok(selector)
    }

    /// The matchers, in the order written (a metric name comes first as `__name__="…"`).
    pub fn matchers(&self) -> &[LabelMatcher] {
        &self.matchers
    }

    fn matcher_matches(&self, index: usize, value: &str) -> bool {
        let m = &self.matchers[index];
        match (m.op(), &self.regexes[index]) {
            (MatchOp::Equal, _) => value == m.value(),
            (MatchOp::NotEqual, _) => value != m.value(),
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            _ => false,
        }
    }

    fn has_non_empty_matcher(&self) -> bool {
        (0..self.matchers.len()).any(|i| !self.matcher_matches(i, ""))
    }

    /// Whether Prometheus would return `series` for this selector.
    pub fn matches(&self, series: &Series) -> bool {
        (0..self.matchers.len())
            .all(|i| self.matcher_matches(i, series.label(self.matchers[i].name())))
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn eat_str(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let len = rest.find(|c| !keep(c)).unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    /// Reads a PromQL string literal in `"`, `'` or backticks, resolving escapes.
    fn string_literal(&mut self) -> Result<String, String> {
        let start = self.pos;
        let quote = match self.rest().chars().next() {
            Some(q @ ('"' | '\'' | '`')) => q,
            _ => return Err(format!("expected a quoted value at offset {start}")),
        };
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                self.pos += i + 1;
                return Ok(out);
            }
            if c != '\\' || quote == '`' {
                out.push(c);
                continue;
            }
            let (_, escape) = chars.next().ok_or("unterminated escape")?;
            let mut hex = |digits: usize| -> Result<char, String> {
                let code: String = (0..digits)
                    .filter_map(|_| chars.next().map(|(_, c)| c))
                    .collect();
                u32::from_str_radix(&code, 16)
                    .ok()
                    .filter(|_| code.len() == digits)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("invalid \\{escape} escape at offset {}", start + i))
            };
            match escape {
                'a' => out.push('\u{7}'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'v' => out.push('\u{b}'),
                '\\' | '"' | '\'' => out.push(escape),
                'x' => out.push(hex(2)?),
                'u' => out.push(hex(4)?),
                'U' => out.push(hex(8)?),
                '0'..='7' => {
                    let mut code = escape.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        let digit = chars.next().and_then(|(_, c)| c.to_digit(8));
                        code = code * 8
                            + digit.ok_or_else(|| {
                                format!("invalid octal escape at offset {}", start + i)
                            })?;
                    }
                    out.push(char::from_u32(code).ok_or("invalid octal escape")?);
                }
                other => {
                    return Err(format!(
                        "unknown escape sequence \\{other} at offset {}",
                        start + i
                    ));
                }
            }
        }
        Err(format!("unterminated string starting at offset {start}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(text: &str) -> Series {
        Series::parse(text).unwrap()
    }

    #[test]
    fn parses_the_selectors_real_configs_use() {
        let s = SeriesSelector::parse(
            r#"{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}"#,
        )
        .unwrap();
        assert_eq!(s.matchers().len(), 4);
        let s = SeriesSelector::parse(r#"nginx_ingress_controller_requests"#).unwrap();
        assert_eq!(
            s.matchers()[0].to_string(),
            r#"__name__="nginx_ingress_controller_requests""#
        );
        let s = SeriesSelector::parse(r#"cheddar{sharp="true"}"#).unwrap();
        assert_eq!(s.matchers().len(), 2);
        assert!(SeriesSelector::parse(r#"{ a = 'x' , }"#).is_ok());
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        assert!(SeriesSelector::parse("").is_err());
        assert!(SeriesSelector::parse("{}").is_err());
        assert!(SeriesSelector::parse(r#"{a=""}"#).is_err());
        assert!(SeriesSelector::parse(r#"{a=~".*"}"#).is_err());
        assert!(SeriesSelector::parse(r#"{a="x""#).is_err());
        assert!(SeriesSelector::parse(r#"{a=~"("}"#).is_err());
        assert!(SeriesSelector::parse(r#"x{1a="b"}"#).is_err());
        assert!(SeriesSelector::parse(r#"x{a="\q"}"#).is_err());
        assert!(SeriesSelector::parse(r#"x y"#).is_err());
    }

    #[test]
    fn matches_like_prometheus_with_anchored_regexes_and_empty_absent_labels() {
        let sel = SeriesSelector::parse(
            r#"{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}"#,
        )
        .unwrap();
        assert!(sel.matches(&series(
            r#"container_cpu_usage_seconds_total{container="app",namespace="a",pod="p"}"#
        )));
        assert!(!sel.matches(&series(
            r#"container_cpu_usage_seconds_total{container="POD",namespace="a",pod="p"}"#
        )));
        assert!(!sel.matches(&series(
            r#"container_cpu_usage_seconds_total{container="app",pod="p"}"#
        )));
        assert!(!sel.matches(&series(r#"xcontainer_cpu{namespace="a",pod="p"}"#)));

        let anchored = SeriesSelector::parse(r#"{__name__=~"container_.*_total"}"#).unwrap();
        assert!(anchored.matches(&series("container_x_total")));
        assert!(!anchored.matches(&series("container_x_total_bytes")));

        // The sample config's `__name__!="^container_.*"` is a literal comparison, not a regex.
        let literal =
            SeriesSelector::parse(r#"{namespace!="",__name__!="^container_.*"}"#).unwrap();
        assert!(literal.matches(&series(r#"container_x{namespace="a"}"#)));
    }

    #[test]
    fn series_notation_requires_a_name_and_equalities() {
        let s = series(r#"http_requests_total{pod="a",namespace="b",empty=""}"#);
        assert_eq!(s.name, "http_requests_total");
        assert_eq!(s.labels.len(), 2);
        assert!(Series::parse(r#"{pod="a"}"#).is_err());
        assert!(Series::parse(r#"x{pod=~"a"}"#).is_err());
    }
}
