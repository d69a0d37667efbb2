//! Where client CAs and request-header settings come from: the flags, and for whatever they leave out, the authentication ConfigMap kube-apiserver publishes for extension servers.

use super::RequestHeaderConfig;

/// What `kube-system/extension-apiserver-authentication` says about client certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthenticationConfig {
    /// `client-ca-file`: CA of user client certificates (PEM).
    pub client_ca: Option<Vec<u8>>,
    /// `requestheader-client-ca-file`: the front-proxy CA (PEM).
    pub requestheader_ca: Option<Vec<u8>>,
    /// `requestheader-allowed-names`.
    pub allowed_names: Vec<String>,
    /// `requestheader-username-headers`.
    pub username_headers: Vec<String>,
    /// `requestheader-group-headers`.
    pub group_headers: Vec<String>,
    /// `requestheader-extra-headers-prefix`.
    pub extra_headers_prefixes: Vec<String>,
}

/// The client CAs (PEM) and request-header settings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// The front-proxy CA.
    pub requestheader_ca: Option<Vec<u8>>,
    /// The CA of user client certificates.
    pub client_ca: Option<Vec<u8>>,
    /// Front-proxy headers and allowed names.
    pub request_header: RequestHeaderConfig,
}

impl ClientAuth {
    /// Whether the flags left a CA out, so that the ConfigMap is worth reading.
    pub fn incomplete(&self) -> bool {
        self.requestheader_ca.is_none() || self.client_ca.is_none()
    }

    /// Fills in what the flags left out from the published ConfigMap, as kube-apiserver's
    /// extension servers do: a CA given by flag wins; the request-header settings come with the
    /// published front-proxy CA (each list the ConfigMap leaves empty keeps the flag's).
    pub fn completed_by(self, published: &AuthenticationConfig) -> ClientAuth {
        let mut merged = self;
        if merged.requestheader_ca.is_none() && published.requestheader_ca.is_some() {
            merged.requestheader_ca = published.requestheader_ca.clone();
            let or = |values: &Vec<String>, flag: &Vec<String>| {
                if values.is_empty() {
                    flag.clone()
                } else {
                    values.clone()
                }
            };
            let flags = &merged.request_header;
            merged.request_header = RequestHeaderConfig {
                allowed_names: published.allowed_names.clone(),
                username_headers: or(&published.username_headers, &flags.username_headers),
                group_headers: or(&published.group_headers, &flags.group_headers),
                extra_headers_prefixes: or(
                    &published.extra_headers_prefixes,
                    &flags.extra_headers_prefixes,
                ),
            };
        }
        if merged.client_ca.is_none() {
            merged.client_ca = published.client_ca.clone();
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published() -> AuthenticationConfig {
        AuthenticationConfig {
            client_ca: Some(b"client CA".to_vec()),
            requestheader_ca: Some(b"front-proxy CA".to_vec()),
            allowed_names: vec!["front-proxy-client".into()],
            username_headers: vec!["X-Remote-User".into()],
            group_headers: Vec::new(),
            extra_headers_prefixes: vec!["X-Remote-Extra-".into()],
        }
    }

    fn flags() -> ClientAuth {
        ClientAuth {
            request_header: RequestHeaderConfig {
                allowed_names: vec!["from-flags".into()],
                username_headers: vec!["X-Flag-User".into()],
                group_headers: vec!["X-Flag-Group".into()],
                extra_headers_prefixes: vec!["X-Flag-Extra-".into()],
            },
            requestheader_ca: None,
            client_ca: None,
        }
    }

    #[test]
    fn the_configmap_fills_in_what_the_flags_leave_out() {
        let merged = flags().completed_by(&published());
        assert_eq!(
            merged.requestheader_ca.as_deref(),
            Some(&b"front-proxy CA"[..])
        );
        assert_eq!(merged.client_ca.as_deref(), Some(&b"client CA"[..]));
        // The published front-proxy settings come with its CA; an empty list keeps the flag's.
        assert_eq!(merged.request_header.allowed_names, ["front-proxy-client"]);
        assert_eq!(merged.request_header.username_headers, ["X-Remote-User"]);
        assert_eq!(merged.request_header.group_headers, ["X-Flag-Group"]);
        assert_eq!(
            merged.request_header.extra_headers_prefixes,
            ["X-Remote-Extra-"]
        );
    }

    #[test]
    fn cas_given_by_flag_win_with_their_request_header_settings() {
        let given = ClientAuth {
            requestheader_ca: Some(b"flag front-proxy CA".to_vec()),
            client_ca: Some(b"flag client CA".to_vec()),
            ..flags()
        };
        assert!(!given.incomplete());
        assert_eq!(given.clone().completed_by(&published()), given);
        // Only the client CA missing: it comes from the ConfigMap, the front-proxy side stays.
        let partial = ClientAuth {
            client_ca: None,
            ..given.clone()
        };
        assert!(partial.incomplete());
        let merged = partial.completed_by(&published());
        assert_eq!(merged.client_ca.as_deref(), Some(&b"client CA"[..]));
        assert_eq!(merged.requestheader_ca, given.requestheader_ca);
        assert_eq!(merged.request_header, given.request_header);
    }

    #[test]
    fn a_configmap_without_a_front_proxy_ca_changes_no_request_header_setting() {
        let published = AuthenticationConfig {
            requestheader_ca: None,
            ..published()
        };
        let merged = flags().completed_by(&published);
        assert_eq!(merged.requestheader_ca, None);
        assert_eq!(merged.request_header, flags().request_header);
        assert_eq!(merged.client_ca.as_deref(), Some(&b"client CA"[..]));
    }
}
