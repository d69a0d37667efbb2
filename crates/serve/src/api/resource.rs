//! `metrics.k8s.io` (v1beta1): node and pod usage, as JSON or the Table `kubectl top` and `kubectl get` ask for.

use super::*;

/// The resource metrics service, when the rules file has `resourceRules` and pods and nodes
/// have a source.
pub(super) fn resource_service(state: &AppState) -> Result<&ResourceMetrics, Error> {
    state
        .resource
        .as_ref()
        .filter(|r| r.enabled())
        .ok_or_else(Error::no_such_path)
}

pub(super) fn resource_api_resources() -> Vec<ApiResource> {
    let resource = |name: &str, namespaced: bool, kind: &'static str| ApiResource {
        name: name.to_owned(),
        singular_name: "",
        namespaced,
        kind,
        verbs: &["get", "list"],
    };
    vec![
        resource("nodes", false, "NodeMetrics"),
        resource("pods", true, "PodMetrics"),
    ]
}

pub(super) async fn resource_group(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    resource_service(&state)?;
    Ok(HttpResponse::Ok().json(api_group(RESOURCE_GROUP, &RESOURCE_VERSIONS)))
}

pub(super) async fn resource_resources(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    resource_service(&state)?;
    Ok(HttpResponse::Ok().json(ApiResourceList {
        kind: "APIResourceList",
        api_version: "v1",
        group_version: format!("{RESOURCE_GROUP}/v1beta1"),
        resources: resource_api_resources(),
    }))
}

/// `labelSelector` and `fieldSelector` of a resource metrics list.
pub(super) fn object_selectors(
    request: &HttpRequest,
) -> Result<(LabelSelector, FieldSelector), Error> {
    let query = request_path::query_params(request.query_string());
    let text = |key: &str| query.get(key).map(String::as_str).unwrap_or_default();
    let labels = LabelSelector::parse(text("labelSelector"))
        .map_err(|e| Error::BadRequest(format!("labelSelector: {e}")))?;
    Ok((labels, FieldSelector::parse(text("fieldSelector"))?))
}

/// Whether the client asked for a `meta.k8s.io/v1` Table (as `kubectl get` does).
pub(super) fn wants_table(request: &HttpRequest) -> bool {
    request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept.split(',').any(|media| {
                let params: Vec<&str> = media.split(';').map(str::trim).collect();
                params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
            })
        })
}

pub(super) fn node_json(
    m: resource_provider::NodeMetrics,
    whole: bool,
    now: &str,
) -> wire::NodeMetrics {
    wire::NodeMetrics {
        kind: whole.then_some("NodeMetrics"),
        api_version: whole.then_some("metrics.k8s.io/v1beta1"),
        metadata: MetricsObjectMeta {
            name: m.node.name,
            namespace: None,
            creation_timestamp: now.to_owned(),
            labels: m.node.labels,
        },
        timestamp: format_timestamp(m.timestamp as i64),
        window: format_go_duration(m.window),
        usage: ResourceUsage {
            cpu: m.cpu,
            memory: m.memory,
        },
    }
}

pub(super) fn pod_json(
    m: resource_provider::PodMetrics,
    whole: bool,
    now: &str,
) -> wire::PodMetrics {
    wire::PodMetrics {
        kind: whole.then_some("PodMetrics"),
        api_version: whole.then_some("metrics.k8s.io/v1beta1"),
        metadata: MetricsObjectMeta {
            name: m.pod.name,
            namespace: Some(m.pod.namespace),
            creation_timestamp: now.to_owned(),
            labels: m.pod.labels,
        },
        timestamp: format_timestamp(m.timestamp as i64),
        window: format_go_duration(m.window),
        containers: m
            .containers
            .into_iter()
            .map(|c| ContainerMetrics {
                name: c.name,
                usage: ResourceUsage {
                    cpu: c.cpu,
                    memory: c.memory,
                },
            })
            .collect(),
    }
}

pub(super) async fn node_list(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, Error> {
    let service = resource_service(&state)?;
    let (labels, fields) = object_selectors(&request)?;
    let now = unix_now();
    let nodes = service.nodes(&labels, &fields, now).await?;
    if wants_table(&request) {
        return Ok(UsageTable::respond(
            nodes
                .into_iter()
                .map(|n| {
                    (
                        n.node.name,
                        None,
                        n.cpu,
                        n.memory,
                        format_go_duration(n.window),
                    )
                })
                .collect(),
        ));
    }
    let now = format_timestamp(now as i64);
    Ok(List::respond(
        "NodeMetricsList",
        "metrics.k8s.io/v1beta1",
        nodes
            .into_iter()
            .map(|n| node_json(n, false, &now))
            .collect(),
    ))
}

pub(super) async fn node_one(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let service = resource_service(&state)?;
    let now = unix_now();
    let node = service.node(&name, now).await?;
    Ok(HttpResponse::Ok().json(node_json(node, true, &format_timestamp(now as i64))))
}

pub(super) async fn pod_list(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, Error> {
    let service = resource_service(&state)?;
    let namespace = request.match_info().get("namespace").map(str::to_owned);
    let (labels, fields) = object_selectors(&request)?;
    let now = unix_now();
    let pods = service
        .pods(namespace.as_deref(), &labels, &fields, now)
        .await?;
    if wants_table(&request) {
        return Ok(UsageTable::respond(
            pods.into_iter()
                .map(|p| {
                    let (cpu, memory) = p.total_usage();
                    (
                        p.pod.name,
                        Some(p.pod.namespace),
                        cpu,
                        memory,
                        format_go_duration(p.window),
                    )
                })
                .collect(),
        ));
    }
    let now = format_timestamp(now as i64);
    Ok(List::respond(
        "PodMetricsList",
        "metrics.k8s.io/v1beta1",
        pods.into_iter().map(|p| pod_json(p, false, &now)).collect(),
    ))
}

pub(super) async fn pod_one(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let service = resource_service(&state)?;
    let (namespace, name) = path.into_inner();
    let now = unix_now();
    let pod = service.pod(&namespace, &name, now).await?;
    Ok(HttpResponse::Ok().json(pod_json(pod, true, &format_timestamp(now as i64))))
}
