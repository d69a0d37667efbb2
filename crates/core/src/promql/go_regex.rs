//! Go (RE2) regular expressions, as rules files and PromQL selectors write them for
//! prometheus-adapter and Prometheus, rewritten into the syntax of Rust's `regex` crate where the
//! two read the same text differently; and `name.as` templates, expanded as Go's `Regexp.Expand`.

/// Rewrites a Go regular expression so that Rust's `regex` matches what Go's `regexp` matches:
/// - `\Q…\E` quotes its contents literally (Rust has no `\Q`);
/// - a `{` that does not start a repetition Go accepts (`{n}`, `{n,}`, `{n,m}`) is a literal
///   `{` in Go, but an error or a repetition (`{,3}`) in Rust;
/// - `\` before punctuation is that character in Go, which Rust refuses for some (`\_`).
///
/// Everything else passes through: both crates implement RE2's syntax.
pub fn to_rust(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() => {
                let next = chars[i + 1];
                if next == 'Q' && !in_class {
                    let rest: String = chars[i + 2..].iter().collect();
                    let (quoted, consumed) = match rest.find("\\E") {
                        Some(end) => (&rest[..end], end + 2),
                        None => (rest.as_str(), rest.len()),
                    };
                    out.push_str(&regex::escape(quoted));
                    i += 2 + quoted.chars().count() + (consumed - quoted.len());
                    continue;
                }
                if matches!(next, 'p' | 'P' | 'x') && chars.get(i + 2) == Some(&'{') {
                    // `\p{Greek}`, `\x{41}`: the braces belong to the escape.
                    let end = chars[i + 2..]
                        .iter()
                        .position(|c| *c == '}')
                        .map_or(chars.len(), |p| i + 2 + p + 1);
                    out.extend(&chars[i..end]);
                    i = end;
                    continue;
                }
                if next.is_ascii_alphanumeric() || !next.is_ascii() {
                    out.push('\\');
                    out.push(next);
                } else {
                    // Go: `\` + punctuation is that character.
                    out.push_str(&escaped(next));
                }
                i += 2;
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                i += 1;
                // A `]` or `^]` first in a class is a literal `]`.
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
                i += 1;
            }
            // Inside a class Go reads these literally; Rust reads `[` as a nested class (except
            // `[:name:]`) and `&&`, `--`, `~~` as set operations.
            '[' if in_class && chars.get(i + 1) != Some(&':') => {
                out.push_str("\\[");
                i += 1;
            }
            '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
                i += 1;
            }
            '-' if in_class && chars.get(i + 1) == Some(&'-') => {
                out.push_str("\\-");
                i += 1;
            }
            '{' if !in_class => {
                match repetition_len(&chars[i..]) {
                    Some(len) => out.extend(&chars[i..i + len]),
                    None => out.push_str("\\{"),
                }
                i += repetition_len(&chars[i..]).unwrap_or(1);
            }
            '}' if !in_class => {
                out.push_str("\\}");
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    out
}

/// A character as a Rust regex writes it literally.
fn escaped(c: char) -> String {
    regex::escape(&c.to_string())
}

/// The length of a repetition Go accepts at the start of `chars` (`{n}`, `{n,}`, `{n,m}`, with
/// counts up to 1000), or `None` when Go reads the `{` literally.
fn repetition_len(chars: &[char]) -> Option<usize> {
    let text: String = chars.iter().take(16).collect();
    let inner = text.strip_prefix('{')?;
    let end = inner.find('}')?;
    let body = &inner[..end];
    // Go takes no leading zeros (`{01}` is literal text).
    let count = |s: &str| -> Option<u32> {
        (!s.is_empty()
            && s.chars().all(|c| c.is_ascii_digit())
            && (s.len() == 1 || !s.starts_with('0')))
        .then(|| s.parse().ok())
        .flatten()
        .filter(|n| *n <= 1000)
    };
    let valid = match body.split_once(',') {
        None => count(body).is_some(),
        Some((min, "")) => count(min).is_some(),
        Some((min, max)) => matches!((count(min), count(max)), (Some(a), Some(b)) if a <= b),
    };
    valid.then_some(body.chars().count() + 2)
}

/// A piece of a Go `Regexp.Expand` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandPart<'a> {
    /// Text copied as is (`$$` is read as one `$`, a malformed `$` as itself).
    Literal(std::borrow::Cow<'a, str>),
    /// `$1`, `${1}`: a group by number.
    Index {
        /// The group's number.
        index: usize,
        /// How the template wrote it (`$1` or `${1}`).
        written: &'a str,
    },
    /// `$name`, `${name}`, and numbers Go does not read as one (`$01`, `$1_`): a group by name.
    Name {
        /// The name.
        name: &'a str,
        /// How the template wrote it.
        written: &'a str,
        /// Whether it was written in braces.
        braced: bool,
    },
}

/// Reads a template as Go's `Regexp.Expand` does: after `$`, the longest run of letters, digits
/// (any script) and `_`, or the same in braces, names a group; it is a group number only when it
/// is all ASCII digits without a leading zero, nine at most. `$$` is a `$`; a `$` that starts
/// no name (`$-`, `${}`, `${a-b}`) is a literal `$`.
pub fn expand_parts(template: &str) -> Vec<ExpandPart<'_>> {
    use std::borrow::Cow;
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        if dollar > 0 {
            parts.push(ExpandPart::Literal(Cow::Borrowed(&rest[..dollar])));
        }
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            parts.push(ExpandPart::Literal(Cow::Borrowed("$")));
            rest = tail;
            continue;
        }
        let (braced, body) = match after.strip_prefix('{') {
            Some(inner) => (true, inner),
            None => (false, after),
        };
        // Go's unicode.IsLetter and IsDigit: general categories L and Nd, which char's
        // is_alphabetic and is_numeric are not.
        static NAME: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r"^[\p{L}\p{Nd}_]*").expect("a valid regex")
        });
        let name_len = NAME.find(body).map_or(0, |m| m.end());
        let closed = !braced || body[name_len..].starts_with('}');
        if name_len == 0 || !closed {
            parts.push(ExpandPart::Literal(Cow::Borrowed("$")));
            rest = after;
            continue;
        }
        let name = &body[..name_len];
        let written_len = 1 + name_len + if braced { 2 } else { 0 };
        let written = &rest[dollar..dollar + written_len];
        rest = &rest[dollar + written_len..];
        let number = (name.bytes().all(|b| b.is_ascii_digit())
            && !(name.starts_with('0') && name.len() > 1)
            && name.len() <= 9)
            .then(|| name.parse::<usize>().ok())
            .flatten();
        parts.push(match number {
            Some(index) => ExpandPart::Index { index, written },
            None => ExpandPart::Name {
                name,
                written,
                braced,
            },
        });
    }
    if !rest.is_empty() {
        parts.push(ExpandPart::Literal(Cow::Borrowed(rest)));
    }
    parts
}

/// Expands `template` with a match of `regex`, as Go's `Regexp.Expand`: a group that does not
/// exist or did not take part in the match expands to nothing.
pub fn expand(template: &str, regex: &regex::Regex, captures: &regex::Captures<'_>) -> String {
    let mut out = String::new();
    for part in expand_parts(template) {
        match part {
            ExpandPart::Literal(text) => out.push_str(&text),
            ExpandPart::Index { index, .. } => {
                if let Some(group) = captures.get(index) {
                    out.push_str(group.as_str());
                }
            }
            ExpandPart::Name { name, .. } => {
                let group = regex
                    .capture_names()
                    .enumerate()
                    .filter(|(_, n)| *n == Some(name))
                    .find_map(|(i, _)| captures.get(i));
                if let Some(group) = group {
                    out.push_str(group.as_str());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(go: &str, text: &str) -> bool {
        regex::Regex::new(&to_rust(go))
            .unwrap_or_else(|e| panic!("{go} → {}: {e}", to_rust(go)))
            .is_match(text)
    }

    fn go_expand(matches: &str, template: &str, text: &str) -> String {
        let regex = regex::Regex::new(matches).unwrap();
        expand(template, &regex, &regex.captures(text).unwrap())
    }

    #[test]
    fn expansion_reads_templates_as_go_does() {
        let re = "^(?P<kind>[a-z]+)_(\\w+)_total$";
        // Each expected value is what Go 1.19's regexp.Expand gives.
        for (template, expected) in [
            ("$1", "http"),
            ("${1}_$2", "http_requests"),
            ("$1_$2", "requests"), // `$1_` names a group `1_`
            ("$kind/$2", "http/requests"),
            ("${kind}s", "https"),
            ("$kinds", ""), // a group `kinds`
            ("$01", ""),    // leading zero: a name, not group 1
            ("${01}", ""),
            ("$0", "http_requests_total"),
            ("$$1", "$1"),
            ("${}", "${}"), // no name: the `$` is text
            ("${1", "${1"), // no closing brace
            ("${a-b}", "${a-b}"),
            ("$-x", "$-x"),
            ("a$", "a$"),
            ("$1é", ""),                // é is a letter: the group `1é`
            ("$1\u{b2}", "http\u{b2}"), // ² is a number but not a decimal digit (Nd)
            ("$1\u{0661}", ""),         // ARABIC-INDIC DIGIT ONE is Nd: part of the name
            ("$3", ""),                 // no such group
            ("$1234567890", ""),        // ten digits are a name
            ("$000000001", ""),
        ] {
            assert_eq!(
                go_expand(re, template, "http_requests_total"),
                expected,
                "{template}"
            );
        }
        // A group that took no part in the match expands to nothing.
        assert_eq!(go_expand("^(a)?(b)$", "[$1][$2]", "b"), "[][b]");
    }

    #[test]
    fn rust_reads_what_go_reads() {
        // `{` that starts no repetition is a literal in Go.
        assert!(matches("^a{b}$", "a{b}"));
        assert!(matches("^{foo}$", "{foo}"));
        assert!(matches("^a{$", "a{"));
        // `{,3}` is no repetition in Go (Rust would read "at most 3").
        assert!(matches("^a{,3}$", "a{,3}"));
        assert!(!matches("^a{,3}$", "aa"));
        // Real repetitions stay repetitions.
        assert!(matches("^a{2}$", "aa") && matches("^a{2,}$", "aaa") && matches("^a{1,3}$", "aaa"));
        assert!(!matches("^a{2}$", "a"));
        // \Q…\E quotes.
        assert!(matches(r"^\Qa.b*c\E$", "a.b*c"));
        assert!(!matches(r"^\Qa.b\E$", "axb"));
        assert!(matches(r"^x\Q(y)", "x(y)"));
        // `\` before punctuation is the character.
        assert!(matches(r"^a\_b\/c$", "a_b/c"));
        // Escapes with braces keep them.
        assert!(matches(r"^\p{Greek}+$", "αβ") && matches(r"^\x{41}$", "A"));
        assert!(!matches(r"^a{01}$", "a") && matches(r"^a{01}$", "a{01}"));
        // Inside a class, `[`, `&&`, `--` and `~~` are plain characters in Go.
        assert!(
            matches(r"^[a[]+$", "a[") && matches(r"^[a&&b]+$", "&") && matches(r"^[a--]$", "-")
        );
        assert!(matches(r"^[[:alpha:]]+$", "abc"));
        // Classes and escapes pass through.
        assert!(matches(r"^[{}]+\d$", "{}1"));
        assert!(matches(r"^[]a]$", "]"));
        assert!(matches(r"^(?P<name>.*)_total$", "http_total"));
    }

    #[test]
    fn plain_patterns_are_unchanged() {
        for pattern in [
            "^(.*)_seconds_total$",
            "^container_(.*)$",
            r"^node_(\w+)$",
            "a|b",
        ] {
            assert_eq!(to_rust(pattern), pattern);
        }
    }
}
