//! Kubernetes label selectors (`app=web,tier in (a,b),!canary`): parsing, and turning them into PromQL matchers.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Error, LabelMatcher, MatchOp, literal_alternation};

/// A selector operator, as Kubernetes' `selection.Operator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `key=value` or `key==value`
    Equals,
    /// `key!=value`
    NotEquals,
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)`
    NotIn,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>N`
    GreaterThan,
    /// `key<N`
    LessThan,
}

/// One term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator.
    pub operator: Operator,
    /// The values, sorted and de-duplicated (a set, as in Kubernetes).
    pub values: Vec<String>,
}

/// A parsed Kubernetes label selector; requirements are sorted by key, as Kubernetes sorts them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// The `metav1.LabelSelector` JSON form that the custom metrics API echoes back.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorJson {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    match_labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    match_expressions: Vec<LabelSelectorRequirementJson>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct LabelSelectorRequirementJson {
    key: String,
    operator: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    values: Vec<String>,
}

impl LabelSelector {
    /// Parses the selector syntax of `?labelSelector=`; an empty string selects everything.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let fail = |reason: String| Error::InvalidLabelSelector {
            selector: text.to_owned(),
            reason,
        };
        let tokens = tokenize(text);
        let mut pos = 0;
        let mut requirements = Vec::new();
        let at = |pos: usize| {
            tokens
                .get(pos)
                .map(|t| t.as_str())
                .unwrap_or("end of selector")
        };
        while pos < tokens.len() {
            let negated = tokens[pos] == "!";
            if negated {
                pos += 1;
            }
            let key = tokens
                .get(pos)
                .ok_or_else(|| fail("expected a label key after '!'".into()))?;
            validate_key(key).map_err(fail)?;
            pos += 1;
            let next = tokens.get(pos).map(String::as_str);
            let (operator, values) = if negated {
                (Operator::DoesNotExist, Vec::new())
            } else {
                match next {
                    None | Some(",") => (Operator::Exists, Vec::new()),
                    Some(op @ ("=" | "==" | "!=" | ">" | "<")) => {
                        pos += 1;
                        let value = match tokens.get(pos).map(String::as_str) {
                            None | Some(",") => String::new(),
                            Some(v) => {
                                pos += 1;
                                v.to_owned()
                            }
                        };
                        let operator = match op {
                            "=" | "==" => Operator::Equals,
                            "!=" => Operator::NotEquals,
                            ">" => Operator::GreaterThan,
                            _ => Operator::LessThan,
                        };
                        if matches!(operator, Operator::GreaterThan | Operator::LessThan) {
                            if value.parse::<i64>().is_err() {
                                return Err(fail(format!(
                                    "{op} needs an integer value, found {value:?}"
                                )));
                            }
                        } else {
                            validate_value(&value).map_err(fail)?;
                        }
                        (operator, vec![value])
                    }
                    Some(op @ ("in" | "notin")) => {
                        pos += 1;
                        if tokens.get(pos).map(String::as_str) != Some("(") {
                            return Err(fail(format!(
                                "expected '(' after {op}, found {:?}",
                                at(pos)
                            )));
                        }
                        pos += 1;
                        let mut values = Vec::new();
                        loop {
                            match tokens.get(pos).map(String::as_str) {
                                Some(")") => {
                                    pos += 1;
                                    break;
                                }
                                Some(",") => pos += 1,
                                Some(v) => {
                                    validate_value(v).map_err(fail)?;
                                    values.push(v.to_owned());
                                    pos += 1;
                                }
                                None => return Err(fail(format!("missing ')' after {op} values"))),
                            }
                        }
                        if values.is_empty() {
                            return Err(fail(format!("{op} needs at least one value")));
                        }
                        let operator = if op == "in" {
                            Operator::In
                        } else {
                            Operator::NotIn
                        };
                        (operator, values)
                    }
                    Some(other) => {
                        return Err(fail(format!(
                            "expected one of =, ==, !=, in, notin, >, < or ',' after {key:?}, found {other:?}"
                        )));
                    }
                }
            };
            let values: BTreeSet<String> = values.into_iter().collect();
            requirements.push(Requirement {
                key: key.clone(),
                operator,
                values: values.into_iter().collect(),
            });
            match tokens.get(pos).map(String::as_str) {
                None => {}
                Some(",") => {
                    pos += 1;
                    if pos == tokens.len() {
                        return Err(fail("trailing ','".into()));
                    }
                }
                Some(other) => {
                    return Err(fail(format!(
                        "expected ',' between requirements, found {other:?}"
                    )));
                }
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Converts to PromQL matchers and the matching `.LabelValuesByName` entries
    /// (prometheus-adapter's table, with alternations regex-escaped).
    pub fn to_matchers(&self) -> Result<(Vec<LabelMatcher>, BTreeMap<String, String>), Error> {
        let mut matchers = Vec::with_capacity(self.requirements.len());
        let mut values_by_name = BTreeMap::new();
        for req in &self.requirements {
            let joined = req.values.join("|");
            let (op, value) = match (req.operator, req.values.len()) {
                (Operator::Equals, _) => (MatchOp::Equal, joined),
                (Operator::NotEquals, _) => (MatchOp::NotEqual, joined),
                (Operator::In, _) => (MatchOp::Regex, literal_alternation(&req.values)),
                (Operator::NotIn, _) => (MatchOp::NotRegex, literal_alternation(&req.values)),
                (Operator::Exists, _) => (MatchOp::NotEqual, String::new()),
                (Operator::DoesNotExist, _) => (MatchOp::Equal, String::new()),
                (Operator::GreaterThan, _) => return Err(Error::UnsupportedOperator(">".into())),
                (Operator::LessThan, _) => return Err(Error::UnsupportedOperator("<".into())),
            };
            matchers.push(LabelMatcher::new(&req.key, op, value)?);
            values_by_name.insert(req.key.clone(), super::template_alternation(&req.values));
        }
        Ok((matchers, values_by_name))
    }

    /// The `metav1.LabelSelector` echo of this selector, or `None` when it is empty.
    pub fn to_json(&self) -> Option<LabelSelectorJson> {
        if self.is_empty() {
            return None;
        }
        let mut json = LabelSelectorJson {
            match_labels: BTreeMap::new(),
            match_expressions: Vec::new(),
        };
        for req in &self.requirements {
            let operator = match req.operator {
                Operator::Equals => {
                    json.match_labels
                        .insert(req.key.clone(), req.values.join(""));
                    continue;
                }
                Operator::In => "In",
                Operator::NotIn | Operator::NotEquals => "NotIn",
                Operator::Exists => "Exists",
                Operator::DoesNotExist => "DoesNotExist",
                Operator::GreaterThan => "Gt",
                Operator::LessThan => "Lt",
            };
            json.match_expressions.push(LabelSelectorRequirementJson {
                key: req.key.clone(),
                operator,
                values: req.values.clone(),
            });
        }
        Some(json)
    }
}

impl LabelSelector {
    /// A label every selected object has with one of a few values (an `=` or `in` term's key and
    /// values, the fewest values if there are several such terms): what an index by label narrows
    /// the candidates with before `matches`.
    pub fn required_values(&self) -> Option<(&str, &[String])> {
        (self.requirements.iter())
            .filter(|r| matches!(r.operator, Operator::Equals | Operator::In))
            .min_by_key(|r| r.values.len())
            .map(|r| (r.key.as_str(), r.values.as_slice()))
    }

    /// Whether an object with these labels is selected, as Kubernetes matches selectors.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|req| {
            let value = labels.get(&req.key);
            let number = |v: Option<&String>| v.and_then(|v| v.parse::<i64>().ok());
            let bound = || req.values.first().and_then(|v| v.parse::<i64>().ok());
            match req.operator {
                Operator::Equals | Operator::In => value.is_some_and(|v| req.values.contains(v)),
                Operator::NotEquals | Operator::NotIn => {
                    value.is_none_or(|v| !req.values.contains(v))
                }
                Operator::Exists => value.is_some(),
                Operator::DoesNotExist => value.is_none(),
                Operator::GreaterThan => {
                    matches!((number(value), bound()), (Some(v), Some(b)) if v > b)
                }
                Operator::LessThan => {
                    matches!((number(value), bound()), (Some(v), Some(b)) if v < b)
                }
            }
        })
    }
}

/// The canonical text form Kubernetes prints (and accepts): `a=b,c in (d,e),!f`.
impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for req in &self.requirements {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            let values = req.values.join(",");
            match req.operator {
                Operator::Equals => write!(f, "{}={values}", req.key)?,
                Operator::NotEquals => write!(f, "{}!={values}", req.key)?,
                Operator::In => write!(f, "{} in ({values})", req.key)?,
                Operator::NotIn => write!(f, "{} notin ({values})", req.key)?,
                Operator::Exists => write!(f, "{}", req.key)?,
                Operator::DoesNotExist => write!(f, "!{}", req.key)?,
                Operator::GreaterThan => write!(f, "{}>{values}", req.key)?,
                Operator::LessThan => write!(f, "{}<{values}", req.key)?,
            }
        }
        Ok(())
    }
}

fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' | '>' | '<' => {
                tokens.push(c.to_string());
                chars.next();
            }
            '=' | '!' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                    tokens.push(format!("{c}="));
                } else {
                    tokens.push(c.to_string());
                }
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "(),><=!".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(word);
            }
        }
    }
    tokens
}

fn is_name_part(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn validate_key(key: &str) -> Result<(), String> {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            if !crate::object_names::is_dns1123_subdomain(prefix) {
                return Err(format!(
                    "key {key:?} has an invalid prefix (it must be a DNS subdomain)"
                ));
            }
            name
        }
        None => key,
    };
    if is_name_part(name) {
        Ok(())
    } else {
        Err(format!(
            "key {key:?} is invalid (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
        ))
    }
}

fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_name_part(value) {
        Ok(())
    } else {
        Err(format!(
            "value {value:?} is invalid (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matchers(selector: &str) -> String {
        let (m, _) = LabelSelector::parse(selector)
            .unwrap()
            .to_matchers()
            .unwrap();
        super::super::join_matchers(&m)
    }

    #[test]
    fn converts_every_operator_like_prometheus_adapter() {
        assert_eq!(matchers("a=b"), r#"a="b""#);
        assert_eq!(matchers("a==b"), r#"a="b""#);
        assert_eq!(matchers("a!=b"), r#"a!="b""#);
        assert_eq!(matchers("a in (x)"), r#"a=~"x""#);
        assert_eq!(matchers("a in (y, x)"), r#"a=~"x|y""#);
        assert_eq!(matchers("a notin (x)"), r#"a!~"x""#);
        assert_eq!(matchers("a notin (x,y)"), r#"a!~"x|y""#);
        assert_eq!(matchers("a"), r#"a!="""#);
        assert_eq!(matchers("!a"), r#"a="""#);
        assert_eq!(matchers("z=1,a=2"), r#"a="2",z="1""#);
        assert_eq!(matchers(""), "");
        assert_eq!(matchers("v in (1.2,3)"), r#"v=~"1\\.2|3""#);
    }

    #[test]
    fn the_required_values_are_the_narrowest_equality_term() {
        let required = |text: &str| {
            let selector = LabelSelector::parse(text).unwrap();
            (selector.required_values()).map(|(key, values)| (key.to_owned(), values.to_vec()))
        };
        assert_eq!(
            required("app=web"),
            Some(("app".into(), vec!["web".into()]))
        );
        assert_eq!(
            required("tier in (a,b),app=web,env!=prod"),
            Some(("app".into(), vec!["web".into()]))
        );
        assert_eq!(
            required("tier in (b,a)"),
            Some(("tier".into(), vec!["a".into(), "b".into()]))
        );
        assert_eq!(required("app,env!=prod,!canary,tier notin (a)"), None);
        assert_eq!(required(""), None);
    }

    #[test]
    fn values_by_name_keep_the_unescaped_join() {
        let (_, values) = LabelSelector::parse("foo in (bar,baz),q=1")
            .unwrap()
            .to_matchers()
            .unwrap();
        assert_eq!(values.get("foo").unwrap(), "bar|baz");
        assert_eq!(values.get("q").unwrap(), "1");
    }

    #[test]
    fn comparison_operators_are_rejected_for_prometheus() {
        let selector = LabelSelector::parse("a>1").unwrap();
        assert_eq!(
            selector.to_matchers().unwrap_err(),
            Error::UnsupportedOperator(">".into())
        );
    }

    #[test]
    fn keys_that_promql_cannot_express_are_rejected() {
        let selector = LabelSelector::parse("app.kubernetes.io/name=web").unwrap();
        assert!(matches!(
            selector.to_matchers(),
            Err(Error::InvalidLabelName(_))
        ));
    }

    #[test]
    fn syntax_errors_are_reported() {
        for bad in [
            "a in b", "a in (", "=b", "a=b,", "a b", "a=(b)", "a in ()", "-a=b", "a=b c", "a>x",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn matches_and_prints_like_kubernetes() {
        let labels: BTreeMap<String, String> = [("app", "web"), ("tier", "front"), ("n", "5")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let selects = |s: &str| LabelSelector::parse(s).unwrap().matches(&labels);
        assert!(selects(""));
        assert!(selects("app=web,tier in (front,back)"));
        assert!(!selects("app=api"));
        assert!(selects("app!=api,missing!=x,canary notin (x)"));
        assert!(selects("app") && !selects("!app") && selects("!canary"));
        assert!(selects("n>4") && !selects("n>5") && selects("n<6") && !selects("app>1"));
        let text = "tier in (back,front),app=web,!canary,n>4";
        let printed = LabelSelector::parse(text).unwrap().to_string();
        assert_eq!(printed, "app=web,!canary,n>4,tier in (back,front)");
        assert_eq!(
            LabelSelector::parse(&printed).unwrap(),
            LabelSelector::parse(text).unwrap()
        );
    }

    #[test]
    fn echo_matches_metav1_label_selector() {
        let json =
            serde_json::to_string(&LabelSelector::parse("b=2,a in (x,y),!c").unwrap().to_json())
                .unwrap();
        assert_eq!(
            json,
            r#"{"matchLabels":{"b":"2"},"matchExpressions":[{"key":"a","operator":"In","values":["x","y"]},{"key":"c","operator":"DoesNotExist"}]}"#
        );
        assert_eq!(LabelSelector::parse("").unwrap().to_json(), None);
    }
}
