//! What a request does, in SubjectAccessReview terms: parsed from the path as kube-apiserver's
//! `RequestInfoFactory` does, with names checked against Kubernetes' rules and the resource in
//! its canonical form.

use prom_adapter_core::object_names::{self, check_namespace, check_object_name, check_token};

/// What a request does, in SubjectAccessReview terms (kube-apiserver's `RequestInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attributes {
    /// A request for an API resource.
    Resource {
        /// `get`, `list`, …
        verb: String,
        /// API group.
        group: String,
        /// API version.
        version: String,
        /// Resource, e.g. `pods`.
        resource: String,
        /// Subresource, e.g. the metric name.
        subresource: String,
        /// Namespace, empty when cluster-scoped.
        namespace: String,
        /// Object name; `*` for a selector.
        name: String,
    },
    /// Anything else (discovery documents, `/metrics`, `/openapi/v2`).
    NonResource {
        /// `get`, …
        verb: String,
        /// The URL path.
        path: String,
    },
}

/// The custom metrics group, whose paths name any resource of the cluster.
const CUSTOM_GROUP: &str = "custom.metrics.k8s.io";

impl Attributes {
    /// Parses a request the way kube-apiserver's `RequestInfoFactory` does for GETs. Segments
    /// are percent-decoded strictly: bytes that are not UTF-8 are an error.
    pub fn from_request(method: &str, path: &str) -> Result<Self, object_names::Error> {
        let verb = method.to_ascii_lowercase();
        let trimmed = path.trim_matches('/');
        let parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        let (group, version, mut rest) = match parts.as_slice() {
            ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
            ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
            _ => {
                return Ok(Attributes::NonResource {
                    verb,
                    path: path.to_owned(),
                });
            }
        };
        let mut namespace = "";
        if rest.first() == Some(&"namespaces") && rest.len() > 1 {
            namespace = rest[1];
            // "status" and "finalize" are subresources of the namespace itself.
            if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                rest = &rest[2..];
            }
        }
        let resource = rest.first().copied().unwrap_or_default();
        let name = rest.get(1).copied().unwrap_or_default();
        let subresource = rest.get(2).copied().unwrap_or_default();
        let verb = match (verb.as_str(), name.is_empty()) {
            ("get" | "head", true) => "list".to_owned(),
            ("get" | "head", false) => "get".to_owned(),
            _ => verb,
        };
        Ok(Attributes::Resource {
            verb,
            group: object_names::decode_segment(group)?,
            version: object_names::decode_segment(version)?,
            resource: object_names::decode_segment(resource)?,
            subresource: object_names::decode_segment(subresource)?,
            namespace: object_names::decode_segment(namespace)?,
            name: object_names::decode_segment(name)?,
        })
    }

    /// Checks every name against Kubernetes' rules, so that nothing else can reach an
    /// authorization decision or a query: namespaces are DNS-1123 labels, object names DNS-1123
    /// subdomains, metric and resource names plain tokens.
    pub fn check_names(&self) -> Result<(), object_names::Error> {
        let Attributes::Resource {
            group,
            resource,
            subresource,
            namespace,
            name,
            ..
        } = self
        else {
            return Ok(());
        };
        // `namespaces/{ns}/metrics/{metric}`: the metric of a namespace, where `*` means every
        // namespace; only a custom metrics path has this shape (an external metric called
        // `metrics` is `namespaces/{ns}/metrics`, whose namespace is a namespace).
        let namespace_metric = group == CUSTOM_GROUP && resource == "metrics" && !name.is_empty();
        let every_namespace = namespace_metric && namespace == "*";
        if !namespace.is_empty() && !every_namespace {
            check_namespace(namespace)?;
        }
        if !resource.is_empty() {
            check_token("resource", resource)?;
        }
        if !subresource.is_empty() {
            check_token("metric", subresource)?;
        }
        if !name.is_empty() {
            if namespace_metric {
                check_token("metric", name)?;
            } else if resource == "namespaces" {
                if name != "*" {
                    check_namespace(name)?;
                }
            } else {
                check_object_name(resource, name, true)?;
            }
        }
        Ok(())
    }

    /// The same request with a custom metrics resource in its canonical form (`PODS`, `pod` and
    /// `pods.` are all `pods`), as `canonical` resolves it; unknown resources stay as written.
    #[must_use]
    pub fn canonical(self, canonical: impl Fn(&str) -> Option<String>) -> Self {
        match self {
            Attributes::Resource {
                verb,
                group,
                version,
                resource,
                subresource,
                namespace,
                name,
            } if group == CUSTOM_GROUP && resource != "metrics" => {
                let resource = canonical(&resource).unwrap_or(resource);
                Attributes::Resource {
                    verb,
                    group,
                    version,
                    resource,
                    subresource,
                    namespace,
                    name,
                }
            }
            other => other,
        }
    }

    /// Kubernetes' wording of a denial, e.g. `User "bob" cannot get resource "pods/m" in API
    /// group "custom.metrics.k8s.io" in the namespace "ns"`.
    pub fn forbidden_message(&self, user: &str) -> String {
        match self {
            Attributes::Resource {
                verb,
                group,
                resource,
                subresource,
                namespace,
                name,
                ..
            } => {
                let full = if subresource.is_empty() {
                    resource.clone()
                } else {
                    format!("{resource}/{subresource}")
                };
                let subject = if name.is_empty() {
                    full.clone()
                } else {
                    format!("{full} {name:?}")
                };
                let scope = if namespace.is_empty() {
                    "at the cluster scope".to_owned()
                } else {
                    format!("in the namespace {namespace:?}")
                };
                format!(
                    "{subject} is forbidden: User {user:?} cannot {verb} resource {full:?} in API group {group:?} {scope}"
                )
            }
            Attributes::NonResource { verb, path } => {
                format!("forbidden: User {user:?} cannot {verb} path {path:?}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(
        verb: &str,
        group: &str,
        version: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> Attributes {
        Attributes::Resource {
            verb: verb.into(),
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    fn parse(path: &str) -> Attributes {
        Attributes::from_request("GET", path).unwrap()
    }

    #[test]
    fn attributes_are_parsed_as_kube_apiserver_parses_them() {
        let cm = "custom.metrics.k8s.io";
        assert_eq!(
            parse("/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/%2A/http_requests"),
            resource("get", cm, "v1beta2", "pods", "http_requests", "ns", "*")
        );
        assert_eq!(
            parse("/apis/custom.metrics.k8s.io/v1beta1/nodes/n1/load"),
            resource("get", cm, "v1beta1", "nodes", "load", "", "n1")
        );
        assert_eq!(
            parse("/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/metrics/queue"),
            resource("get", cm, "v1beta1", "metrics", "", "ns", "queue")
        );
        assert_eq!(
            parse("/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns"),
            resource("get", cm, "v1beta1", "namespaces", "", "ns", "ns")
        );
        assert_eq!(
            parse("/api/v1/namespaces/ns/pods"),
            resource("list", "", "v1", "pods", "", "ns", "")
        );
        for path in [
            "/apis",
            "/apis/custom.metrics.k8s.io",
            "/apis/custom.metrics.k8s.io/v1beta1",
            "/metrics",
            "/openapi/v2",
            "/",
        ] {
            assert_eq!(
                parse(path),
                Attributes::NonResource {
                    verb: "get".into(),
                    path: path.into()
                },
                "{path}"
            );
        }
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_replacement_character() {
        let error = Attributes::from_request(
            "GET",
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns%FF/pods/*/m",
        )
        .unwrap_err();
        assert!(matches!(error, object_names::Error::NotUtf8 { .. }));
    }

    #[test]
    fn names_are_checked_against_kubernetes_rules() {
        let ok = |path: &str| parse(path).check_names().is_ok();
        assert!(ok(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/weird.pod/m"
        ));
        assert!(ok(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/*/metrics/queue"
        ));
        assert!(ok("/apis/metrics.k8s.io/v1beta1/nodes/node-a.example"));
        // The crafted namespace of the attack: it would end the matcher and open another.
        assert!(!ok(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/x%22%7D%20or%20up%7Bnamespace%3D%22kube-system/pods/*/m"
        ));
        assert!(!ok(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/weird%7Cpod/m"
        ));
        assert!(!ok(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/Default/pods/*/m"
        ));
        assert!(!ok(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/*/pods/*/m"
        ));
        assert!(!ok(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/*/m%22"
        ));
        assert!(!ok(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns.x/queue"
        ));
        // An external metric called `metrics` is not a namespace's metric: `*` is not a
        // namespace there (it would reach a backend's tenant template).
        assert!(ok(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/metrics"
        ));
        assert!(!ok(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/*/metrics"
        ));
        assert!(!ok(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/*/metrics"
        ));
    }

    #[test]
    fn custom_resources_are_made_canonical() {
        let canonical = |resource: &str| match resource.to_ascii_lowercase().trim_end_matches('.') {
            "pod" | "pods" => Some("pods".to_owned()),
            _ => None,
        };
        for alias in ["PODS", "pod", "pods."] {
            let path = format!("/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/{alias}/*/m");
            assert_eq!(
                parse(&path).canonical(canonical),
                resource("get", CUSTOM_GROUP, "v1beta2", "pods", "m", "ns", "*"),
                "{alias}"
            );
        }
        // Other groups' resources are routes, not aliases.
        let node = parse("/apis/metrics.k8s.io/v1beta1/nodes/n1");
        assert_eq!(node.clone().canonical(|_| Some("x".into())), node);
    }

    #[test]
    fn denials_use_kubernetes_wording() {
        let attributes = parse("/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/*/m");
        assert_eq!(
            attributes.forbidden_message("bob"),
            r#"pods/m "*" is forbidden: User "bob" cannot get resource "pods/m" in API group "custom.metrics.k8s.io" in the namespace "ns""#
        );
    }
}
