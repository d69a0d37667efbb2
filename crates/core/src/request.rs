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
    let segments: Vec<String> = tail
        .trim_end_matches('/')
        .split('/')
        .map(crate::object_names::decode_segment)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::BadRequest(e.to_string()))?;
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
    let selector = |key: &str| {
        LabelSelector::parse(query.get(key).map(String::as_str).unwrap_or_default())
            .map_err(|e| Error::BadRequest(format!("{key}: {e}")))
    };
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

/// An external metrics request from its path's namespace and metric (decoded) and its query
/// parameters.
pub fn external(
    namespace: String,
    metric: String,
    query: &HashMap<String, String>,
) -> Result<ExternalRequest, Error> {
    let selector = LabelSelector::parse(
        query
            .get("labelSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )
    .map_err(|e| Error::BadRequest(format!("labelSelector: {e}")))?;
    Ok(ExternalRequest {
        namespace,
        metric,
        selector,
    })
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
}
