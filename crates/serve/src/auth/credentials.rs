//! A request's credentials as kube-apiserver reads them: the bearer token, and the front proxy's user, group and extra headers (the gate trusts those only on a front-proxy connection).

use std::collections::BTreeMap;
use std::net::IpAddr;

use percent_encoding::percent_decode_str;

use super::{PeerIdentity, RequestHeaderConfig};

/// The credentials of one request.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// `Authorization: Bearer` token.
    pub bearer: Option<String>,
    /// The connection's verified client certificate.
    pub peer: Option<PeerIdentity>,
    /// Values of the username headers (`X-Remote-User`), in configured order.
    pub remote_user: Option<String>,
    /// Values of the group headers (`X-Remote-Group`), every occurrence.
    pub remote_groups: Vec<String>,
    /// Extra headers (`X-Remote-Extra-Key`), key lowercased and unescaped.
    pub remote_extra: BTreeMap<String, Vec<String>>,
    /// The client's address, for the bound on reviews per client.
    pub source: Option<IpAddr>,
}

impl Credentials {
    /// The credentials a request's headers (name, value) carry, under the header names `names`
    /// configures; the connection's peer and address are for the caller to add.
    pub fn from_headers(headers: &[(&str, &str)], names: &RequestHeaderConfig) -> Self {
        fn values<'h>(
            headers: &'h [(&str, &str)],
            wanted: &'h str,
        ) -> impl Iterator<Item = String> + 'h {
            headers
                .iter()
                .filter(move |(name, _)| name.eq_ignore_ascii_case(wanted))
                .map(|(_, value)| value.to_string())
        }
        let mut remote_extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in headers {
            for prefix in &names.extra_headers_prefixes {
                // `get`: a prefix boundary inside a multi-byte character is no match, not a panic.
                if name.len() > prefix.len()
                    && name
                        .get(..prefix.len())
                        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
                {
                    let key = percent_decode_str(&name[prefix.len()..])
                        .decode_utf8_lossy()
                        .to_lowercase();
                    remote_extra.entry(key).or_default().push(value.to_string());
                }
            }
        }
        Credentials {
            bearer: values(headers, "authorization")
                .next()
                .and_then(|header| bearer_token(&header)),
            remote_user: (names.username_headers.iter())
                .flat_map(|h| values(headers, h))
                .find(|v| !v.is_empty()),
            remote_groups: names
                .group_headers
                .iter()
                .flat_map(|h| values(headers, h))
                .collect(),
            remote_extra,
            peer: None,
            source: None,
        }
    }
}

/// The token of an `Authorization` header, parsed as kube-apiserver's bearer-token authenticator
/// does: the scheme is case-insensitive, and the token is the second space-separated field (so
/// two spaces after `Bearer` give an empty token, which authenticates nobody).
pub fn bearer_token(header: &str) -> Option<String> {
    let mut parts = header.trim().splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_parsed_as_kube_apiserver_parses_them() {
        assert_eq!(bearer_token("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(bearer_token("bearer abc").as_deref(), Some("abc"));
        assert_eq!(bearer_token("  BEARER abc  ").as_deref(), Some("abc"));
        assert_eq!(bearer_token("Bearer abc trailing").as_deref(), Some("abc"));
        assert_eq!(bearer_token("Bearer  abc"), None, "two spaces: empty token");
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Basic abc"), None);
    }

    #[test]
    fn front_proxy_headers_are_read_as_kube_apiserver_reads_them() {
        let names = RequestHeaderConfig {
            allowed_names: Vec::new(),
            username_headers: vec!["X-Remote-User".into(), "X-Other-User".into()],
            group_headers: vec!["X-Remote-Group".into()],
            extra_headers_prefixes: vec!["X-Remote-Extra-".into()],
        };
        let credentials = Credentials::from_headers(
            &[
                ("authorization", "Bearer t0ken"),
                ("x-remote-user", ""),
                ("x-other-user", "alice"),
                ("x-remote-group", "a"),
                ("x-remote-group", "b"),
                ("x-remote-extra-scopes%2Fread", "yes"),
                ("x-remote-extra-", "no key: not an extra"),
                ("x-remote-extraéx", "a prefix boundary inside é is no match"),
            ],
            &names,
        );
        assert_eq!(credentials.bearer.as_deref(), Some("t0ken"));
        // The first non-empty value of the configured headers, in their order.
        assert_eq!(credentials.remote_user.as_deref(), Some("alice"));
        assert_eq!(credentials.remote_groups, ["a", "b"]);
        assert_eq!(
            credentials.remote_extra,
            BTreeMap::from([("scopes/read".to_owned(), vec!["yes".to_owned()])])
        );
        assert!(credentials.peer.is_none() && credentials.source.is_none());
    }
}
