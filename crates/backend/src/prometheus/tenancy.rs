//! A named backend's request templates: `<<.Namespace>>` and `<<.Tenant>>` in its URL and headers, and the namespace → tenant map (Mimir and Cortex `X-Scope-OrgID`, VictoriaMetrics cluster `/select/<tenant>/prometheus`).

use std::collections::BTreeMap;
use std::ops::Not;

/// The placeholders a backend's URL and header values may hold.
const PLACEHOLDERS: [&str; 2] = ["<<.Namespace>>", "<<.Tenant>>"];

/// The `default_tenant` that makes each namespace `tenants` does not list its own tenant. It
/// must be written out: without a `default_tenant`, such a namespace is refused, so that a
/// namespace named like a tenant cannot read that tenant's data by accident.
pub const OWN_TENANT: &str = "<<.Namespace>>";

/// How a backend's URL and headers follow the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tenancy {
    /// Base URL, possibly templated.
    pub url: String,
    /// Headers, values possibly templated.
    pub headers: Vec<(String, String)>,
    /// Namespace → tenant.
    pub tenants: BTreeMap<String, String>,
    /// The tenant of namespaces `tenants` does not list (`OWN_TENANT`: each is its own); without
    /// one, requests about such a namespace are refused where `<<.Tenant>>` is used.
    pub default_tenant: Option<String>,
    /// The tenant discovery lists series in (it serves no one namespace): both placeholders
    /// render as it. Required when the URL or a header is templated.
    pub discovery_tenant: Option<String>,
}

/// Where one request goes: the rendered URL and headers, and a key naming this combination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Distinguishes targets of one backend (empty when nothing is templated).
    pub key: String,
    /// The base URL.
    pub url: String,
    /// The headers.
    pub headers: Vec<(String, String)>,
}

impl Tenancy {
    /// Whether the URL or a header value holds a placeholder.
    pub fn is_templated(&self) -> bool {
        std::iter::once(&self.url)
            .chain(self.headers.iter().map(|(_, v)| v))
            .any(|text| text.contains("<<"))
    }

    /// Every problem at once: placeholders other than `<<.Namespace>>` and `<<.Tenant>>`, tenants
    /// that could not go in a header or a URL path, templates without a discovery tenant.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let fields = std::iter::once(("url".to_owned(), &self.url)).chain(
            self.headers
                .iter()
                .map(|(name, value)| (format!("headers.{name}"), value)),
        );
        for (field, text) in fields {
            let mut rest = text.as_str();
            while let Some(at) = rest.find("<<") {
                let end = rest[at..].find(">>").map_or(rest.len(), |e| at + e + 2);
                let placeholder = &rest[at..end];
                if !PLACEHOLDERS.contains(&placeholder) {
                    problems.push(format!(
                        "{field}: {placeholder:?} is not a placeholder; use {}",
                        PLACEHOLDERS.join(" or ")
                    ));
                }
                rest = &rest[end..];
            }
        }
        if let Some(problem) = placeholder_outside_path(&self.url) {
            problems.push(problem);
        }
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in &self.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push(format!(
                    "headers: {name:?} is not a header name (letters, digits and !#$%&'*+-.^_`|~)"
                ));
            }
            if http::HeaderValue::from_str(value).is_err() {
                problems.push(format!(
                    "headers.{name}: {value:?} cannot be sent (no control characters such as CR or LF)"
                ));
            }
            // Header names are case-insensitive: two spellings would send one of them silently.
            if seen.contains(&name.to_ascii_lowercase()) {
                problems.push(format!(
                    "headers: {name:?} is given twice (header names are case-insensitive)"
                ));
            }
            seen.push(name.to_ascii_lowercase());
        }
        let tenants = self
            .tenants
            .iter()
            .map(|(namespace, tenant)| (format!("tenants.{namespace}"), tenant))
            .chain(
                self.default_tenant
                    .iter()
                    .map(|t| ("default_tenant".into(), t)),
            )
            .chain(
                self.discovery_tenant
                    .iter()
                    .map(|t| ("discovery_tenant".into(), t)),
            );
        for (field, tenant) in tenants {
            if field == "default_tenant" && tenant == OWN_TENANT {
                continue;
            }
            if tenant == "." || tenant == ".." {
                problems.push(format!(
                    "{field}: {tenant:?} is not a tenant: it would name another path of the URL"
                ));
            } else if !is_valid_tenant(tenant) {
                problems.push(format!(
                    "{field}: {tenant:?} is not a tenant: 1 to 150 letters, digits and `_.:|-` (`:` for VictoriaMetrics' accountID:projectID, `|` for Mimir's several tenants)"
                ));
            }
        }
        if !self.is_templated() && (!self.tenants.is_empty() || self.default_tenant.is_some()) {
            problems.push("tenants: have no effect: neither the url nor a header holds <<.Tenant>> or <<.Namespace>>".into());
        }
        if self.uses_tenant() && self.tenants.is_empty() && self.default_tenant.is_none() {
            problems.push(format!("default_tenant: is required when <<.Tenant>> is used without tenants: no namespace would have a tenant (write default_tenant: {OWN_TENANT:?} for each namespace to be its own tenant)"));
        }
        if self.is_templated() && self.discovery_tenant.is_none() {
            problems.push("discovery_tenant: is required when the url or a header is templated: discovery lists series for no one namespace, so name the tenant (or Mimir's `a|b|c`) it reads".into());
        }
        problems
    }

    /// Whether a template holds `<<.Tenant>>` (the tenant map is read).
    fn uses_tenant(&self) -> bool {
        std::iter::once(&self.url)
            .chain(self.headers.iter().map(|(_, v)| v))
            .any(|text| text.contains("<<.Tenant>>"))
    }

    /// Warnings `check` prints: with each unlisted namespace its own tenant, a tenant value that
    /// is also a valid namespace name is read by any namespace created with that name.
    pub fn warnings(&self) -> Vec<String> {
        if self.default_tenant.as_deref() != Some(OWN_TENANT) || !self.uses_tenant() {
            return Vec::new();
        }
        (self.tenants.iter())
            .filter(|(_, tenant)| {
                is_namespace_name(tenant) && !self.tenants.contains_key(tenant.as_str())
            })
            .map(|(namespace, tenant)| {
                format!(
                    "tenants.{namespace}: tenant {tenant:?} is also a valid namespace name: with default_tenant {OWN_TENANT:?}, a namespace called {tenant:?} would read this tenant's data; list that namespace in tenants, or give default_tenant a tenant of its own"
                )
            })
            .collect()
    }

    /// The tenant of `namespace`; for discovery (`None`), the discovery tenant. A namespace
    /// `tenants` does not list takes `default_tenant`, and without one it has no tenant: the
    /// error says so, for a template that uses the tenant.
    pub fn tenant<'a>(&'a self, namespace: Option<&'a str>) -> Result<&'a str, String> {
        let Some(namespace) = namespace else {
            return Ok(self.discovery_tenant.as_deref().unwrap_or_default());
        };
        match (self.tenants.get(namespace), self.default_tenant.as_deref()) {
            (Some(tenant), _) => Ok(tenant),
            (None, Some(OWN_TENANT)) => Ok(namespace),
            (None, Some(default)) => Ok(default),
            (None, None) if !self.uses_tenant() => Ok(namespace),
            (None, None) => Err(format!(
                "namespace {namespace:?} has no tenant: tenants does not list it and there is no default_tenant (write default_tenant: {OWN_TENANT:?} for each namespace to be its own tenant)"
            )),
        }
    }

    /// The URL and headers of a request about `namespace` (`None`: discovery, where both
    /// placeholders render as the discovery tenant), or why the namespace has no tenant.
    /// Namespaces reach here checked as Kubernetes names (DNS labels), and tenants as `problems`
    /// allows, so both are safe in a header and a URL path.
    pub fn target(&self, namespace: Option<&str>) -> Result<Target, String> {
        if !self.is_templated() {
            return Ok(Target {
                key: String::new(),
                url: self.url.clone(),
                headers: self.headers.clone(),
            });
        }
        let tenant = self.tenant(namespace)?;
        let namespace = namespace.unwrap_or(tenant);
        let render = |text: &str| {
            text.replace("<<.Namespace>>", namespace)
                .replace("<<.Tenant>>", tenant)
        };
        Ok(Target {
            key: format!("{namespace}\u{1f}{tenant}"),
            url: render(&self.url),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), render(value)))
                .collect(),
        })
    }
}

/// A problem when a placeholder stands in the URL outside its path: in the scheme, user, host or
/// port a namespace would choose where the adapter's credentials go; in the query or fragment,
/// what the request means.
fn placeholder_outside_path(url: &str) -> Option<String> {
    let authority = url.find("://").map_or(0, |at| at + 3);
    let path = url[authority..]
        .find('/')
        .map_or(url.len(), |at| authority + at);
    let path_end = url[path..]
        .find(['?', '#'])
        .map_or(url.len(), |at| path + at);
    let inside = |at: usize| (path..path_end).contains(&at);
    url.match_indices("<<").all(|(at, _)| inside(at)).not().then(|| {
        format!("url: {url:?}: placeholders may stand only in the path (not in the scheme, user, host, port, query or fragment: a namespace would choose where the adapter's credentials go)")
    })
}

/// A DNS-1123 label, as namespace names are.
fn is_namespace_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn is_valid_tenant(tenant: &str) -> bool {
    (1..=150).contains(&tenant.len())
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:|-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mimir() -> Tenancy {
        Tenancy {
            url: "http://mimir/prometheus".into(),
            headers: vec![("X-Scope-OrgID".into(), "<<.Tenant>>".into())],
            tenants: BTreeMap::from([("shop".into(), "team-a".into())]),
            default_tenant: None,
            discovery_tenant: Some("team-a|team-b".into()),
        }
    }

    #[test]
    fn namespaces_map_to_tenants_and_discovery_has_its_own() {
        let mimir = mimir();
        assert!(mimir.problems().is_empty(), "{:?}", mimir.problems());
        let header = |t: &Tenancy, ns| t.target(ns).unwrap().headers[0].1.clone();
        assert_eq!(header(&mimir, Some("shop")), "team-a");
        assert_eq!(header(&mimir, None), "team-a|team-b");
        let with_default = Tenancy {
            default_tenant: Some("rest".into()),
            ..mimir.clone()
        };
        assert_eq!(header(&with_default, Some("payments")), "rest");
        let own = Tenancy {
            default_tenant: Some(OWN_TENANT.into()),
            ..mimir.clone()
        };
        assert!(own.problems().is_empty(), "{:?}", own.problems());
        assert_eq!(header(&own, Some("payments")), "payments", "its own tenant");
        assert_ne!(
            own.target(Some("shop")).unwrap().key,
            own.target(Some("payments")).unwrap().key
        );
    }

    #[test]
    fn an_unlisted_namespace_has_no_tenant_unless_the_settings_say_which() {
        // The attack: `team-a` is a tenant, and a namespace created with that name would have
        // been its own tenant, reading team-a's data.
        let mimir = mimir();
        let error = mimir.target(Some("team-a")).unwrap_err();
        assert!(
            error.contains("\"team-a\" has no tenant") && error.contains(OWN_TENANT),
            "{error}"
        );
        // Only `<<.Namespace>>` used: the namespace is named, no tenant is looked up.
        let by_namespace = Tenancy {
            url: "http://vm/select/<<.Namespace>>/prometheus".into(),
            headers: Vec::new(),
            tenants: BTreeMap::new(),
            discovery_tenant: Some("0".into()),
            ..mimir.clone()
        };
        assert_eq!(
            by_namespace.target(Some("team-a")).unwrap().url,
            "http://vm/select/team-a/prometheus"
        );
        // `check` warns where each namespace is its own tenant and a tenant is named like one.
        assert!(mimir.warnings().is_empty());
        let own = Tenancy {
            default_tenant: Some(OWN_TENANT.into()),
            ..mimir.clone()
        };
        let warnings = own.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("tenants.shop: tenant \"team-a\""),
            "{warnings:?}"
        );
        let numeric = Tenancy {
            tenants: BTreeMap::from([("shop".into(), "Team_A".into())]),
            ..own
        };
        assert!(numeric.warnings().is_empty());
    }

    #[test]
    fn the_url_path_can_name_the_tenant() {
        let vm = Tenancy {
            url: "http://vmselect:8481/select/<<.Tenant>>/prometheus".into(),
            tenants: BTreeMap::from([("shop".into(), "42".into())]),
            discovery_tenant: Some("0".into()),
            ..Tenancy::default()
        };
        assert_eq!(
            vm.target(Some("shop")).unwrap().url,
            "http://vmselect:8481/select/42/prometheus"
        );
        assert_eq!(
            vm.target(None).unwrap().url,
            "http://vmselect:8481/select/0/prometheus"
        );
        let plain = Tenancy {
            url: "http://thanos:9090".into(),
            ..Tenancy::default()
        };
        assert!(!plain.is_templated() && plain.problems().is_empty());
        assert_eq!(plain.target(Some("shop")).unwrap().key, "");
    }

    #[test]
    fn every_problem_is_reported() {
        let bad = Tenancy {
            url: "http://x/<<.Namespace>>/<<.Cluster>>".into(),
            headers: vec![
                ("X-Scope-OrgID".into(), "<< .Tenant >>".into()),
                ("A=B".into(), "x".into()),
            ],
            tenants: BTreeMap::from([("shop".into(), "a b".into())]),
            default_tenant: Some(String::new()),
            discovery_tenant: None,
        };
        let problems = bad.problems();
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems[0].starts_with("url: \"<<.Cluster>>\""));
        assert!(problems[1].starts_with("headers.X-Scope-OrgID: \"<< .Tenant >>\""));
        assert!(problems[2].starts_with("headers: \"A=B\" is not a header name"));
        assert!(problems[3].starts_with("tenants.shop: \"a b\""));
        assert!(problems[4].starts_with("default_tenant: \"\""));
        assert!(problems[5].starts_with("discovery_tenant: is required"));
    }

    #[test]
    fn settings_that_would_break_tenancy_are_refused() {
        let mimir = mimir();
        let problems = |t: Tenancy| t.problems();
        for url in [
            "http://reader:x@127.0.0.1:<<.Tenant>>/",
            "http://prometheus.<<.Namespace>>.svc/",
            "<<.Tenant>>://mimir/",
            "http://mimir/prometheus?orgId=<<.Tenant>>",
            "http://mimir/prometheus#<<.Tenant>>",
        ] {
            let found = problems(Tenancy {
                url: url.into(),
                headers: vec![],
                ..mimir.clone()
            });
            assert!(
                found
                    .iter()
                    .any(|p| p.contains("may stand only in the path")),
                "{url}: {found:?}"
            );
        }
        let found = problems(Tenancy {
            headers: vec![
                ("X-Scope-OrgID".into(), "<<.Tenant>>".into()),
                ("x-scope-orgid".into(), "fixed".into()),
                ("X-Note".into(), "a\r\nInjected: 1".into()),
            ],
            tenants: BTreeMap::from([("shop".into(), "..".into())]),
            ..mimir.clone()
        });
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].contains("given twice"), "{found:?}");
        assert!(found[1].contains("cannot be sent"), "{found:?}");
        assert!(found[2].starts_with("tenants.shop: \"..\""), "{found:?}");
        let untemplated = problems(Tenancy {
            url: "http://mimir/prometheus".into(),
            headers: vec![("X-Scope-OrgID".into(), "fixed".into())],
            discovery_tenant: None,
            ..mimir.clone()
        });
        assert_eq!(untemplated.len(), 1, "{untemplated:?}");
        assert!(untemplated[0].contains("have no effect"), "{untemplated:?}");
    }
}
