//! Whether a query template gives each object a value that depends only on that object's series, so that one query for every object (of a namespace) can answer a request for some of them.

/// Aggregations: each drops every label its grouping does not keep.
const AGGREGATIONS: [&str; 13] = [
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "group",
    "limitk",
    "limit_ratio",
];

/// Functions whose answer for one object depends on the others' series, or that may rewrite the
/// object label, with why (for a clearer message than "not known").
const MIXING_FUNCTIONS: [(&str, &str); 6] = [
    (
        "scalar",
        "turns the objects' series into one number, so it depends on which objects are asked",
    ),
    ("vector", "makes a series with no object label"),
    (
        "absent",
        "answers for the set of objects asked, not for each",
    ),
    (
        "absent_over_time",
        "answers for the set of objects asked, not for each",
    ),
    ("label_replace", "may rewrite the object label"),
    ("label_join", "may rewrite the object label"),
];

/// PromQL functions that compute each output series from one input series (or are constants),
/// keeping its labels but `__name__`: the only functions a batched query may call. Any other
/// (MetricsQL's `zscore`, `share`, `label_set`, …) is taken to mix objects.
const PER_SERIES_FUNCTIONS: &[&str] = &[
    "abs",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "deg",
    "delta",
    "deriv",
    "double_exponential_smoothing",
    "exp",
    "first_over_time",
    "floor",
    "histogram_avg",
    "histogram_count",
    "histogram_fraction",
    "histogram_quantile",
    "histogram_stddev",
    "histogram_stdvar",
    "histogram_sum",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "mad_over_time",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "pi",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_by_label",
    "sort_by_label_desc",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "year",
];

/// Words that may precede `(` without being a function: set operators, vector matching and
/// the `bool` modifier.
const OPERATOR_WORDS: [&str; 7] = [
    "and",
    "or",
    "unless",
    "group_left",
    "group_right",
    "bool",
    "offset",
];

/// The template fields one query for every object can be rendered with.
const PER_OBJECT_FIELDS: [&str; 3] = [".Series", ".LabelMatchers", ".GroupBy"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// A template action, trimmed: `.Series`, `.LabelMatchers` or `.GroupBy`.
    Field(&'a str),
    Word(&'a str),
    /// `(`, `{` or `[`.
    Open(u8),
    Close,
    Other,
}

/// `Ok` when the rendered query gives each object a value computed from that object's series
/// alone: it selects with `<<.LabelMatchers>>`, every aggregation keeps `<<.GroupBy>>` in its
/// `by`, every `on (…)` matches on it, and nothing else reads the request (`.LabelValuesByName`,
/// `if`, `range`). Then selecting every object and keeping the asked ones gives the same values as
/// selecting the asked ones. Otherwise, why not, in words for `check` and the docs.
pub fn per_object(source: &str) -> Result<(), String> {
    let tokens = tokenize(source)?;
    if !tokens.contains(&Token::Field(".LabelMatchers")) {
        return Err("it does not select with <<.LabelMatchers>>".into());
    }
    for (at, token) in tokens.iter().enumerate() {
        let Token::Word(word) = *token else { continue };
        // PromQL's keywords, and MetricsQL's functions, are case-insensitive.
        let word = word.to_ascii_lowercase();
        let word = word.as_str();
        let next = tokens.get(at + 1).copied();
        let opens = next == Some(Token::Open(b'('));
        let clause = next.is_some_and(|n| is_word(n, "by") || is_word(n, "without"));
        if word == "count_values" && (opens || clause) {
            // `count_values("pod", …) by (pod)` writes each value into the label it names.
            return Err(
                "`count_values(…)` writes a label its argument names, which may be the object label"
                    .into(),
            );
        }
        if AGGREGATIONS.contains(&word) && (opens || clause) {
            aggregation_keeps_objects(word, &tokens, at)?;
        } else if !opens {
            continue;
        } else if let Some((_, why)) = MIXING_FUNCTIONS.iter().find(|(name, _)| *name == word) {
            return Err(format!("`{word}(…)` {why}"));
        } else if word == "ignoring" {
            return Err("`ignoring (…)` may match one object's series with another's".into());
        } else if word == "on" {
            if !list_keeps_objects(&tokens, at + 1) {
                return Err(
                    "`on (…)` without <<.GroupBy>> matches one object's series with another's"
                        .into(),
                );
            }
        } else if !PER_SERIES_FUNCTIONS.contains(&word)
            && !OPERATOR_WORDS.contains(&word)
            && !matches!(word, "by" | "without")
        {
            return Err(format!(
                "`{word}(…)` is not known to compute each series on its own"
            ));
        }
    }
    Ok(())
}

/// The aggregation at `at` must group `by` a list holding `<<.GroupBy>>`, before or after its
/// argument.
fn aggregation_keeps_objects(word: &str, tokens: &[Token], at: usize) -> Result<(), String> {
    let clause = match tokens.get(at + 1) {
        Some(Token::Word(_)) => at + 1,
        _ => close_of(tokens, at + 1) + 1,
    };
    match tokens.get(clause).copied() {
        Some(t) if is_word(t, "by") && list_keeps_objects(tokens, clause + 1) => Ok(()),
        Some(t) if is_word(t, "by") => Err(format!(
            "`{word} by (…)` does not keep <<.GroupBy>>, so it adds objects together"
        )),
        Some(t) if is_word(t, "without") => Err(format!(
            "`{word} without (…)` may drop the object label; write `by (<<.GroupBy>>)`"
        )),
        _ => Err(format!(
            "`{word}(…)` without `by (<<.GroupBy>>)` adds objects together"
        )),
    }
}

/// Whether `token` is the keyword `keyword`, in any case.
fn is_word(token: Token, keyword: &str) -> bool {
    matches!(token, Token::Word(word) if word.eq_ignore_ascii_case(keyword))
}

/// Whether the parenthesised list opening at `open` holds `<<.GroupBy>>`.
fn list_keeps_objects(tokens: &[Token], open: usize) -> bool {
    tokens.get(open) == Some(&Token::Open(b'('))
        && tokens[open..=close_of(tokens, open).min(tokens.len() - 1)]
            .contains(&Token::Field(".GroupBy"))
}

/// The index of the token closing the bracket opening at `open` (the last index if unbalanced).
fn close_of(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (at, token) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::Open(_) => depth += 1,
            Token::Close => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return at;
                }
            }
            _ => {}
        }
    }
    tokens.len().saturating_sub(1)
}

/// PromQL words, brackets and the template's field actions; strings and comments are skipped.
fn tokenize(source: &str) -> Result<Vec<Token<'_>>, String> {
    let bytes = source.as_bytes();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &source[at..];
        let c = bytes[at];
        if rest.starts_with("<<") {
            let end = rest.find(">>").ok_or("an unclosed `<<`")?;
            let action = rest[2..end].trim_start_matches('-').trim_end_matches('-');
            let action = action.trim();
            if !PER_OBJECT_FIELDS.contains(&action) {
                return Err(format!(
                    "it reads `<<{action}>>`; only <<.Series>>, <<.LabelMatchers>> and <<.GroupBy>> can be rendered once for every object"
                ));
            }
            tokens.push(Token::Field(action));
            at += end + 2;
        } else if matches!(c, b'"' | b'\'' | b'`') {
            let mut end = at + 1;
            while end < bytes.len() && bytes[end] != c {
                end += if bytes[end] == b'\\' && c != b'`' {
                    2
                } else {
                    1
                };
            }
            if source[at..end.min(bytes.len())].contains("<<") {
                return Err("a template action inside a string".into());
            }
            tokens.push(Token::Other);
            at = end + 1;
        } else if c == b'#' {
            let comment = &rest[..rest.find('\n').unwrap_or(rest.len())];
            // The template still runs actions in a PromQL comment.
            if comment.contains("<<") {
                return Err("a template action inside a comment".into());
            }
            at += comment.len();
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let len = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == ':'))
                .unwrap_or(rest.len());
            tokens.push(Token::Word(&rest[..len]));
            at += len;
        } else if c.is_ascii_digit() || c == b'.' {
            let len = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '.'))
                .unwrap_or(rest.len());
            tokens.push(Token::Other);
            at += len;
        } else {
            tokens.push(match c {
                b'(' | b'{' | b'[' => Token::Open(c),
                b')' | b'}' | b']' => Token::Close,
                b if b.is_ascii_whitespace() => {
                    at += 1;
                    continue;
                }
                _ => Token::Other,
            });
            // Step over a whole UTF-8 character.
            at += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_that_keep_objects_apart_are_per_object() {
        for source in [
            "sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)",
            "sum by (<<.GroupBy>>) (rate(<<.Series>>{<<.LabelMatchers>>}[2m]))",
            "rate(<<.Series>>{<<.LabelMatchers>>}[2m])",
            "histogram_quantile(0.9, sum(rate(x_bucket{<<.LabelMatchers>>}[5m])) by (le, <<.GroupBy>>))",
            "sum(a{<<.LabelMatchers>>}) by (<<.GroupBy>>) / on (<<.GroupBy>>) group_left sum(b{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
            "sum(rate(<<.Series>>{<<.LabelMatchers>>,code=~\"5..\"}[1m])) by (<<- .GroupBy ->>) > bool 0",
            "max_over_time(sum(x{<<.LabelMatchers>>}) by (<<.GroupBy>>)[5m:1m]) # sum(x)",
            "clamp_max(sum(x{<<.LabelMatchers>>, on=\"y\"}) by (<<.GroupBy>>), 10)",
            "SUM BY (<<.GroupBy>>) (Rate(x{<<.LabelMatchers>>}[1m])) OR on (<<.GroupBy>>) (y{<<.LabelMatchers>>} * 0)",
            "sum(x{<<.LabelMatchers>>}) by (<<.GroupBy>>) > bool (0)",
        ] {
            assert_eq!(per_object(source), Ok(()), "{source}");
        }
    }

    #[test]
    fn queries_that_mix_objects_say_why() {
        for (source, why) in [
            ("sum(x{job=\"a\"}) by (<<.GroupBy>>)", "<<.LabelMatchers>>"),
            ("sum(rate(x{<<.LabelMatchers>>}[1m]))", "without `by"),
            ("sum(x{<<.LabelMatchers>>}) by (job)", "does not keep"),
            ("sum without (job) (x{<<.LabelMatchers>>})", "without (…)"),
            (
                "sum(x{<<.LabelMatchers>>}) by (<<.GroupBy>>) / scalar(sum(y))",
                "scalar",
            ),
            (
                "x{<<.LabelMatchers>>} / on (job) group_left y",
                "`on (…)` without",
            ),
            ("x{<<.LabelMatchers>>} / ignoring (job) y", "ignoring"),
            (
                "sum(x{pod=~\"<<index .LabelValuesByName \"pod\">>\",<<.LabelMatchers>>}) by (<<.GroupBy>>)",
                "inside a string",
            ),
            (
                "sum(x{<<.LabelMatchers>>}) by (<<range .GroupBySlice>><<.>><<end>>)",
                "<<range .GroupBySlice>>",
            ),
            (
                "label_replace(x{<<.LabelMatchers>>}, \"pod\", \"$1\", \"p\", \"(.*)\")",
                "rewrite",
            ),
            ("sum(x{<<.LabelMatchers>>) by (<<.GroupBy", "unclosed"),
            // Keywords in any case.
            (
                "topk BY (namespace) (1, sum(rate(x{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>))",
                "does not keep",
            ),
            ("SUM(x{<<.LabelMatchers>>})", "without `by"),
            // It overwrites the object label with each value: every object would get the
            // counts of every object's values.
            (
                "count_values(\"pod\", x{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
                "count_values",
            ),
            (
                "count_values by (<<.GroupBy>>) (\"v\", x{<<.LabelMatchers>>})",
                "count_values",
            ),
            ("x{<<.LabelMatchers>>} / IGNORING(pod) y", "ignoring"),
            ("Scalar(x{<<.LabelMatchers>>})", "scalar"),
            // Functions not known to work series by series (MetricsQL's among them).
            ("zscore(x{<<.LabelMatchers>>})", "`zscore(…)` is not known"),
            (
                "label_set(x{<<.LabelMatchers>>}, \"pod\", \"a\")",
                "not known",
            ),
            (
                "sum(x{<<.LabelMatchers>>}) by (<<.GroupBy>>) # <<if .LabelValuesByName>>",
                "inside a comment",
            ),
        ] {
            let error = per_object(source).expect_err(source);
            assert!(error.contains(why), "{source}: {error}");
        }
    }

    #[test]
    fn odd_text_does_not_panic() {
        for source in [
            "",
            "(((",
            ")))",
            "sum",
            "sum(",
            "on(",
            "'",
            "\"\\",
            "é€<<.Series>>",
        ] {
            let _ = per_object(source);
        }
    }
}
