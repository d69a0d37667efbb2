//! The metrics API requests: what a custom or external metrics request asks for, and the one parser of their paths and query strings (each segment percent-decoded once), for the API and `explain`.

use std::collections::HashMap;

use crate::promql::LabelSelector;

/// Which objects a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectName {
    /// One object (`…/pods/web-1/metric`).
    Named(String),
    /// Every object matching the label selector (`…/pods/*/metric`).
    All,
}

/// A custom metrics request, parsed from the URL.
#[derive(Debug, Clone)]
pub struct CustomRequest {
    /// The resource as written in the URL (`pods`, `deployments.apps`).
    pub resource: String,
    /// The namespace for namespaced resources.
    pub namespace: Option<String>,
    /// The object(s).
    pub name: ObjectName,
    /// The metric.
    pub metric: String,
    /// `labelSelector`: selects objects when the name is `*`.
    pub label_selector: LabelSelector,
    /// `metricLabelSelector`: narrows the series.
    pub metric_selector: LabelSelector,
}

/// An external metrics request, parsed from the URL.
#[derive(Debug, Clone)]
pub struct ExternalRequest {
    /// The namespace in the path (the API always has one).
    pub namespace: String,
    /// The metric.
    pub metric: String,
    /// `labelSelector`: matchers on the metric's series.
    pub selector: LabelSelector,
}

/// Why a request path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Malformed: a 400 with this message.
    #[error("{0}")]
    BadRequest(String),
    /// A shape the API does not serve: a 404.
    #[error("the server could not find the requested resource")]
    NoSuchPath,
}

/// A query string's parameters (the last of a repeated key wins), decoded as a form.
pub fn query_params(query_string: &str) -> HashMap<String, String> {
    form_urlencoded::parse(query_string.as_bytes())
        .into_owned()
        .collect()
}

/// Parses the part of a custom metrics path after the version, e.g.
/// `namespaces/default/pods/%2A/http_requests`, plus its query parameters.
pub fn parse_custom(tail: &str, query: &HashMap<String, String>) -> Result<CustomRequest, Error> {
    let segments = decoded_segments(tail)?;
    if segments.iter().any(String::is_empty) {
        return Err(Error::BadRequest("invalid request path".into()));
    }
    let (resource, namespace, name, metric) = match segments.as_slice() {
        [ns_kw, namespace, metrics_kw, metric]
            if ns_kw == "namespaces" && metrics_kw == "metrics" =>
        {
            (
                "namespaces".to_owned(),
                None,
                namespace.clone(),
                metric.clone(),
            )
        }
        [ns_kw, namespace, resource, name, metric] if ns_kw == "namespaces" => (
            resource.clone(),
            Some(namespace.clone()),
            name.clone(),
            metric.clone(),
        ),
        [resource, name, metric] => (resource.clone(), None, name.clone(), metric.clone()),
        short if short.len() < 3 => return Err(Error::BadRequest("invalid request path".into())),
        _ => return Err(Error::NoSuchPath),
    };
    if let Some(field_selector) = query.get("fieldSelector").filter(|f| !f.is_empty()) {
        let expected = format!("metadata.name={name}");
        if field_selector != &expected && field_selector != &format!("metadata.name=={name}") {
            return Err(Error::BadRequest(
                "fieldSelector metadata.name doesn't match requested name".into(),
            ));
        }
    }
    let selector = |key: &str| selector_param(query, key);
    Ok(CustomRequest {
        resource,
        namespace,
        name: if name == "*" {
            ObjectName::All
        } else {
            ObjectName::Named(name)
        },
        metric,
        label_selector: selector("labelSelector")?,
        metric_selector: selector("metricLabelSelector")?,
    })
}

/// The longest `labelSelector` or `metricLabelSelector` a request may carry (bytes): room for a
/// `notin` list of several hundred values (the HPA's selectors are a few dozen bytes), while a
/// selector, rendered into every query a request makes, stays under half of the default
/// `--max-query-length`, so that parts still carry names.
pub const MAX_SELECTOR_BYTES: usize = 8192;

/// The selector in query parameter `key` (none selects everything): a 400 when it does not
/// parse or is longer than `MAX_SELECTOR_BYTES`.
fn selector_param(query: &HashMap<String, String>, key: &str) -> Result<LabelSelector, Error> {
    let text = query.get(key).map(String::as_str).unwrap_or_default();
    if text.len() > MAX_SELECTOR_BYTES {
        return Err(Error::BadRequest(format!(
            "{key} is {} bytes; this adapter accepts at most {MAX_SELECTOR_BYTES}",
            text.len()
        )));
    }
    LabelSelector::parse(text).map_err(|e| Error::BadRequest(format!("{key}: {e}")))
}

/// A path's segments after the version, each percent-decoded once (`queue%3Adepth`).
fn decoded_segments(tail: &str) -> Result<Vec<String>, Error> {
    tail.trim_end_matches('/')
        .split('/')
        .map(crate::object_names::decode_segment)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::BadRequest(e.to_string()))
}

/// Parses the part of an external metrics path after the version, `namespaces/NS/METRIC`, plus
/// its query parameters; another shape is `NoSuchPath`.
pub fn parse_external(
    tail: &str,
    query: &HashMap<String, String>,
) -> Result<ExternalRequest, Error> {
    match decoded_segments(tail)?.as_slice() {
        [keyword, namespace, metric]
            if keyword == "namespaces" && !namespace.is_empty() && !metric.is_empty() =>
        {
            external(namespace.clone(), metric.clone(), query)
        }
        _ => Err(Error::NoSuchPath),
    }
}

/// An external metrics request from its path's namespace and metric (decoded) and its query
/// parameters.
fn external(
    namespace: String,
    metric: String,
    query: &HashMap<String, String>,
) -> Result<ExternalRequest, Error> {
    let selector = selector_param(query, "labelSelector")?;
    Ok(ExternalRequest {
        namespace,
        metric,
        selector,
    })
}

/// A custom or external metrics request, parsed from a whole API path (for the tools, which
/// take paths as the HPA controller sends them; the API's route table strips the group and
/// version and calls `parse_custom` and `parse_external` itself).
#[derive(Debug, Clone)]
pub enum RequestPath {
    /// A `custom.metrics.k8s.io` request.
    Custom(CustomRequest),
    /// An `external.metrics.k8s.io` request.
    External(ExternalRequest),
}

impl RequestPath {
    /// The namespace the request is about, if any (a named backend's tenant follows it).
    pub fn namespace(&self) -> Option<&str> {
        match self {
            RequestPath::Custom(request) => request.namespace.as_deref(),
            RequestPath::External(request) => Some(&request.namespace),
        }
    }
}

const EXTERNAL_PATH: &str =
    "external metrics paths look like /apis/external.metrics.k8s.io/v1beta1/namespaces/NS/METRIC";

/// Parses a whole custom or external metrics API path, with its query string.
pub fn parse_request_path(path: &str) -> Result<RequestPath, Error> {
    let (path, query_string) = path.split_once('?').unwrap_or((path, ""));
    let query = query_params(query_string);
    if let Some(tail) = strip_version(path, "/apis/custom.metrics.k8s.io/") {
        return parse_custom(tail, &query).map(RequestPath::Custom);
    }
    if let Some(tail) = strip_version(path, "/apis/external.metrics.k8s.io/") {
        return match parse_external(tail, &query) {
            Err(Error::NoSuchPath) => Err(Error::BadRequest(EXTERNAL_PATH.into())),
            parsed => parsed.map(RequestPath::External),
        };
    }
    Err(Error::BadRequest(format!(
        "{path:?} is not a custom or external metrics path"
    )))
}

/// A `metrics.k8s.io` request path: `nodes[/NAME]` or `namespaces/NS/pods[/NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// `nodes` or `pods`.
    pub resource: &'static str,
    /// The pods' namespace.
    pub namespace: Option<String>,
    /// One object, or all (`None`).
    pub name: Option<String>,
}

/// Reads a whole `metrics.k8s.io` path, for the tools; `None` when `path` is not one. (The API
/// serves these four shapes straight from its route table.)
pub fn parse_resource_path(path: &str) -> Option<Result<ResourcePath, Error>> {
    let tail = strip_version(
        path.split('?').next().unwrap_or(path),
        "/apis/metrics.k8s.io/",
    )?;
    let usage = "metrics.k8s.io paths look like /apis/metrics.k8s.io/v1beta1/nodes[/NAME] or /apis/metrics.k8s.io/v1beta1/namespaces/NS/pods[/NAME]";
    let segments = match decoded_segments(tail) {
        Ok(segments) => segments,
        Err(e) => return Some(Err(e)),
    };
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let path = |resource, namespace: Option<&str>, name: Option<&str>| {
        Ok(ResourcePath {
            resource,
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
        })
    };
    Some(match segments.as_slice() {
        ["nodes"] => path("nodes", None, None),
        ["nodes", name] => path("nodes", None, Some(name)),
        ["namespaces", namespace, "pods"] => path("pods", Some(namespace), None),
        ["namespaces", namespace, "pods", name] => path("pods", Some(namespace), Some(name)),
        ["pods"] => Err(Error::BadRequest(
            "an all-namespaces pod list runs the pods queries once per namespace: name one, /apis/metrics.k8s.io/v1beta1/namespaces/NS/pods".into(),
        )),
        _ => Err(Error::BadRequest(usage.into())),
    })
}

/// The part of `path` after `prefix` and a version segment.
fn strip_version<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    let (_version, tail) = rest.split_once('/')?;
    Some(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(tail: &str, query: &[(&str, &str)]) -> Result<CustomRequest, Error> {
        let query = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_custom(tail, &query)
    }

    #[test]
    fn parses_every_path_shape() {
        let r = parse("namespaces/default/pods/%2A/http_requests", &[]).unwrap();
        assert_eq!(
            (r.resource.as_str(), r.namespace.as_deref(), &r.name),
            ("pods", Some("default"), &ObjectName::All)
        );
        let r = parse("nodes/n1/load", &[]).unwrap();
        assert_eq!(
            (r.resource.as_str(), r.namespace, r.name),
            ("nodes", None, ObjectName::Named("n1".into()))
        );
        let r = parse("namespaces/prod/metrics/queue", &[]).unwrap();
        assert_eq!(
            (r.resource.as_str(), r.namespace, r.name, r.metric.as_str()),
            (
                "namespaces",
                None,
                ObjectName::Named("prod".into()),
                "queue"
            )
        );
        let r = parse("namespaces/*/metrics/queue", &[]).unwrap();
        assert_eq!(r.name, ObjectName::All);
        assert!(matches!(parse("pods/x", &[]), Err(Error::BadRequest(_))));
        assert!(matches!(parse("a/b/c/d", &[]), Err(Error::NoSuchPath)));
        assert!(matches!(
            parse("namespaces/a/b/c/d/e", &[]),
            Err(Error::NoSuchPath)
        ));
        assert!(matches!(parse("a//b", &[]), Err(Error::BadRequest(_))));
    }

    #[test]
    fn checks_field_and_label_selectors() {
        assert!(parse("nodes/n1/m", &[("fieldSelector", "metadata.name=n1")]).is_ok());
        assert!(matches!(
            parse("nodes/n1/m", &[("fieldSelector", "metadata.name=n2")]),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            parse("nodes/n1/m", &[("metricLabelSelector", "a in (")]),
            Err(Error::BadRequest(_))
        ));
        let r = parse("nodes/n1/m", &[("metricLabelSelector", "status=500")]).unwrap();
        assert!(!r.metric_selector.is_empty());
    }

    #[test]
    fn selectors_past_the_limit_are_refused_naming_it() {
        let values: Vec<String> = (0..2000).map(|i| format!("v{i}")).collect();
        let long = format!("status notin ({})", values.join(","));
        assert!(long.len() > MAX_SELECTOR_BYTES);
        for key in ["labelSelector", "metricLabelSelector"] {
            let Err(Error::BadRequest(message)) = parse("namespaces/ns/pods/*/m", &[(key, &long)])
            else {
                panic!("{key} of {} bytes was accepted", long.len());
            };
            assert!(
                message.contains(key) && message.contains("8192"),
                "{message}"
            );
        }
        let query = [("labelSelector".to_string(), long)].into();
        assert!(parse_external("namespaces/ns/m", &query).is_err());
        let mut at_limit = format!("status notin ({})", values.join(","));
        at_limit.truncate(at_limit[..MAX_SELECTOR_BYTES - 1].rfind(',').unwrap());
        at_limit.push(')');
        assert!(at_limit.len() <= MAX_SELECTOR_BYTES);
        let parsed = parse("nodes/n1/m", &[("metricLabelSelector", &at_limit)]);
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn external_paths_have_one_shape_and_decode_each_segment_once() {
        let query = [("labelSelector".to_string(), "queue=q1".to_string())].into();
        let r = parse_external("namespaces/prod/queue%3Adepth", &query).unwrap();
        assert_eq!(
            (r.namespace.as_str(), r.metric.as_str()),
            ("prod", "queue:depth")
        );
        assert!(!r.selector.is_empty());
        for other in [
            "namespaces/prod",
            "namespaces//m",
            "nodes/a/m",
            "namespaces/a/b/c",
        ] {
            assert!(
                matches!(
                    parse_external(other, &HashMap::new()),
                    Err(Error::NoSuchPath)
                ),
                "{other}"
            );
        }
        let bad = [("labelSelector".to_string(), "a in (".to_string())].into();
        assert!(matches!(
            parse_external("namespaces/prod/m", &bad),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn whole_paths_name_their_group_and_say_what_shape_is_expected() {
        let custom = parse_request_path(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/web/rps?metricLabelSelector=a%3Db",
        )
        .unwrap();
        assert!(matches!(custom, RequestPath::Custom(_)));
        assert_eq!(custom.namespace(), Some("shop"));
        let external =
            parse_request_path("/apis/external.metrics.k8s.io/v1beta1/namespaces/q/depth").unwrap();
        assert_eq!(external.namespace(), Some("q"));
        let error = parse_request_path("/apis/external.metrics.k8s.io/v1beta1/depth").unwrap_err();
        assert!(
            error.to_string().contains("namespaces/NS/METRIC"),
            "{error}"
        );
        assert!(parse_request_path("/api/v1/pods").is_err());
        assert_eq!(
            parse_resource_path("/apis/metrics.k8s.io/v1beta1/namespaces/a/pods/b"),
            Some(Ok(ResourcePath {
                resource: "pods",
                namespace: Some("a".into()),
                name: Some("b".into()),
            }))
        );
        assert!(matches!(
            parse_resource_path("/apis/metrics.k8s.io/v1beta1/pods"),
            Some(Err(Error::BadRequest(_)))
        ));
        assert_eq!(
            parse_resource_path("/apis/custom.metrics.k8s.io/v1beta1/x"),
            None
        );
    }
}
