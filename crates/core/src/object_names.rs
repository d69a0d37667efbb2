//! Kubernetes' naming rules for what a request path names (namespaces, object names), and strict
//! decoding of path segments, so that nothing else reaches a query.

/// Why a path segment is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Percent-decoding gave bytes that are not UTF-8.
    #[error("the path segment {segment:?} is not valid UTF-8 once percent-decoded")]
    NotUtf8 {
        /// The segment as sent.
        segment: String,
    },
    /// A namespace that is not a DNS-1123 label.
    #[error(
        "invalid namespace {value:?}: a namespace must be a DNS-1123 label (at most 63 lower-case letters, digits or '-', starting and ending with a letter or digit)"
    )]
    Namespace {
        /// The namespace as decoded.
        value: String,
    },
    /// An object name that is not a DNS-1123 subdomain.
    #[error(
        "invalid {what} name {value:?}: a name must be a DNS-1123 subdomain (at most 253 lower-case letters, digits, '-' or '.', each dot-separated part starting and ending with a letter or digit)"
    )]
    Name {
        /// What the name is of (`pods`, `nodes`, …).
        what: String,
        /// The name as decoded.
        value: String,
    },
    /// A metric or resource name with characters no metric or resource has.
    #[error(
        "invalid {what} {value:?}: only letters, digits, ':', '_', '-' and '.' are allowed (at most 253)"
    )]
    Token {
        /// `metric` or `resource`.
        what: &'static str,
        /// The value as decoded.
        value: String,
    },
}

/// A value as an error message shows it: at most 64 characters, so that a 10,000-character name
/// does not come back ten thousand characters long.
fn shown(value: &str) -> String {
    match value.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

/// Percent-decodes one path segment; bytes that are not UTF-8 are an error, never U+FFFD.
pub fn decode_segment(segment: &str) -> Result<String, Error> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Error::NotUtf8 {
            segment: shown(segment),
        })
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` of at most `max` bytes.
fn is_label_of(text: &str, max: usize) -> bool {
    let bytes = text.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= max
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
}

/// Whether `text` is a DNS-1123 label (namespaces, and names of services and the like).
pub fn is_dns1123_label(text: &str) -> bool {
    is_label_of(text, 63)
}

/// Whether `text` is a DNS-1123 subdomain (names of pods, nodes, deployments, custom resources).
/// As in Kubernetes' `IsDNS1123Subdomain`, only the whole is limited (253), not each part.
pub fn is_dns1123_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(|part| is_label_of(part, 253))
}

/// Checks a namespace from a request path.
pub fn check_namespace(value: &str) -> Result<(), Error> {
    if is_dns1123_label(value) {
        Ok(())
    } else {
        Err(Error::Namespace {
            value: shown(value),
        })
    }
}

/// Checks an object name from a request path; `*` (every object) is allowed when `wildcard`.
pub fn check_object_name(what: &str, value: &str, wildcard: bool) -> Result<(), Error> {
    if (wildcard && value == "*") || is_dns1123_subdomain(value) {
        Ok(())
    } else {
        Err(Error::Name {
            what: shown(what),
            value: shown(value),
        })
    }
}

/// Checks a metric or resource name: the characters Prometheus metric names, Kubernetes
/// resources and `group` qualifiers use. Anything else cannot name something we serve.
pub fn check_token(what: &'static str, value: &str) -> Result<(), Error> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Token {
            what,
            value: shown(value),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains_follow_kubernetes() {
        for good in ["a", "default", "kube-system", "a1", "0abc", &"a".repeat(63)] {
            assert!(is_dns1123_label(good), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a.b",
            "a_b",
            &"a".repeat(64),
            "default\"}",
            "ns\u{e9}",
            "a b",
        ] {
            assert!(!is_dns1123_label(bad), "{bad:?}");
        }
        let long_part = format!("{}.example", "a".repeat(100));
        for good in [
            "weird.pod",
            "web-6d4cf56db6-abcde",
            "node-a.example.com",
            &long_part,
        ] {
            assert!(is_dns1123_subdomain(good), "{good}");
        }
        for bad in ["", ".a", "a.", "a..b", "a|b", "a\\.b", &"a.".repeat(127)] {
            assert!(!is_dns1123_subdomain(bad), "{bad:?}");
        }
        assert!(check_object_name("pods", "*", true).is_ok());
        assert!(check_object_name("pods", "*", false).is_err());
    }

    #[test]
    fn segments_decode_strictly() {
        assert_eq!(decode_segment("%2A").unwrap(), "*");
        assert_eq!(decode_segment("caf%C3%A9").unwrap(), "café");
        assert!(matches!(
            decode_segment("bad%FF"),
            Err(Error::NotUtf8 { .. })
        ));
    }

    #[test]
    fn errors_say_what_is_allowed() {
        let error = check_namespace("Default").unwrap_err().to_string();
        assert!(error.contains("\"Default\"") && error.contains("DNS-1123 label"));
        assert!(check_token("metric", "http_requests:rate5m").is_ok());
        assert!(check_token("metric", "a\"b").is_err());
        let long = check_object_name("pods", &"x".repeat(10_000), false)
            .unwrap_err()
            .to_string();
        assert!(long.len() < 400 && long.contains("xxx…"), "{long}");
    }
}
