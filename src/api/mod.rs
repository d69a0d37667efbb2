//! The HTTP API: one route table, thin handlers, discovery documents, and request observation.

pub mod discovery;
pub mod error;
pub mod openapi;
pub mod wire;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use percent_encoding::percent_decode_str;

use discovery::{DiscoveryFormat, ServedGroup, aggregated_document, etag};
pub use error::Error;
use wire::{
    ApiGroup, ApiGroupList, ApiResource, ApiResourceList, ContainerMetrics, Empty,
    ExternalMetricValue, ExternalMetricValueList, GroupVersion, MetricIdentifier, MetricValueList,
    MetricValueV1Beta1, MetricValueV1Beta2, MetricsList, MetricsObjectMeta, ObjectReference,
    ResourceUsage,
};

use crate::auth::{Attributes, Credentials, PeerIdentity, Verdict};
use crate::model::GroupResource;
use crate::model::{format_go_duration, format_timestamp};
use crate::promql::LabelSelector;
use crate::provider::custom::{CustomMetrics, MetricValue};
use crate::provider::discovery::Health;
use crate::provider::external::ExternalMetrics;
use crate::provider::request as request_path;
use crate::provider::resource::{self, FieldSelector, ResourceMetrics};
use crate::provider::unix_now;
use crate::telemetry::Metrics;

const CUSTOM_GROUP: &str = "custom.metrics.k8s.io";
const CUSTOM_VERSIONS: [&str; 2] = ["v1beta1", "v1beta2"];
const EXTERNAL_GROUP: &str = "external.metrics.k8s.io";
const EXTERNAL_VERSIONS: [&str; 1] = ["v1beta1"];
const RESOURCE_GROUP: &str = "metrics.k8s.io";
const RESOURCE_VERSIONS: [&str; 1] = ["v1beta1"];
/// The placeholder metric listed while discovery has found nothing (never served).
const NO_METRIC_YET: &str = "prom_adapter_no_metric_discovered_yet";

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The custom metrics service.
    pub custom: CustomMetrics,
    /// The external metrics service.
    pub external: ExternalMetrics,
    /// The resource metrics service, when there is a source of pods and nodes.
    pub resource: Option<ResourceMetrics>,
    /// Self metrics.
    pub metrics: Arc<Metrics>,
    /// Discovery health.
    pub health: Arc<Health>,
    /// Authentication and authorization; `None` with `--standalone`.
    pub gate: Option<Arc<crate::auth::Gate>>,
}

/// The whole route table (used by the server and by tests).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(live))
        .route("/livez", web::get().to(live))
        .route("/readyz", web::get().to(ready))
        .route("/metrics", web::get().to(self_metrics))
        .route("/version", web::get().to(version))
        .route("/openapi/v2", web::get().to(openapi_v2))
        .route("/openapi/v3", web::get().to(openapi_v3_root))
        .route(
            "/openapi/v3/apis/{group}/{version}",
            web::get().to(openapi_v3),
        )
        .route("/apis", web::get().to(group_list))
        .route("/apis/", web::get().to(group_list))
        .route("/apis/custom.metrics.k8s.io", web::get().to(custom_group))
        .route("/apis/custom.metrics.k8s.io/", web::get().to(custom_group))
        .route(
            "/apis/custom.metrics.k8s.io/{version}",
            web::get().to(custom_resources),
        )
        .route(
            "/apis/custom.metrics.k8s.io/{version}/",
            web::get().to(custom_resources),
        )
        .route(
            "/apis/custom.metrics.k8s.io/{version}/{tail:.+}",
            web::get().to(custom_metric),
        )
        .route(
            "/apis/external.metrics.k8s.io",
            web::get().to(external_group),
        )
        .route(
            "/apis/external.metrics.k8s.io/",
            web::get().to(external_group),
        )
        .route(
            "/apis/external.metrics.k8s.io/{version}",
            web::get().to(external_resources),
        )
        .route(
            "/apis/external.metrics.k8s.io/{version}/",
            web::get().to(external_resources),
        )
        .route(
            "/apis/external.metrics.k8s.io/{version}/namespaces/{namespace}/{metric}",
            web::get().to(external_metric),
        )
        .route("/apis/metrics.k8s.io", web::get().to(resource_group))
        .route("/apis/metrics.k8s.io/", web::get().to(resource_group))
        .route(
            "/apis/metrics.k8s.io/v1beta1",
            web::get().to(resource_resources),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/",
            web::get().to(resource_resources),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/nodes",
            web::get().to(node_list),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/nodes/{name}",
            web::get().to(node_one),
        )
        .route("/apis/metrics.k8s.io/v1beta1/pods", web::get().to(pod_list))
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods",
            web::get().to(pod_list),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}",
            web::get().to(pod_one),
        )
        .default_service(web::to(not_found));
}

/// Middleware: authenticates every request through the gate (when there is one), checks the
/// names its path carries, and authorizes it with the resource in canonical form, answering
/// 400, 401, 403, 429 or 503 `Status` objects itself. Without a gate the names are still checked.
pub async fn guard(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = request.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(request).await;
    };
    let path = request.path();
    match &state.gate {
        Some(gate) if !gate.always_allowed(path) => {
            let credentials = credentials(&request, &gate.request_header());
            let user = gate
                .authenticate(&credentials)
                .await
                .map_err(verdict_error)?;
            let attributes = request_attributes(&request, &state)?;
            match gate.authorize(user, attributes).await {
                Verdict::Allow(_) => {}
                denied => return Err(verdict_error(denied).into()),
            }
        }
        // Always-allowed paths and --standalone skip authentication, not the name checks.
        Some(_) | None => {
            request_attributes(&request, &state)?;
        }
    }
    next.call(request).await
}

/// The `Status` for a verdict that stops a request.
fn verdict_error(verdict: Verdict) -> Error {
    match verdict {
        Verdict::Allow(_) => Error::Internal("an allowed request was stopped".into()),
        Verdict::Unauthenticated => Error::Unauthorized,
        Verdict::Forbidden(message) => Error::Forbidden(message),
        Verdict::Unavailable(message) => Error::ReviewUnavailable(message),
        Verdict::TooManyRequests(message) => Error::TooManyRequests(message),
    }
}

/// What a request does, with its names checked (a 400 otherwise) and a custom metrics resource
/// resolved to its canonical `plural.group` form through the resource table.
fn request_attributes(request: &ServiceRequest, state: &AppState) -> Result<Attributes, Error> {
    let attributes = Attributes::from_request(request.method().as_str(), request.path())
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    attributes
        .check_names()
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    let snapshot = state.custom.snapshot().load();
    Ok(attributes.canonical(|resource| {
        snapshot
            .table
            .resolve(&GroupResource::parse(resource))
            .map(|info| info.group_resource().to_string())
    }))
}

/// Gathers a request's credentials: bearer token, verified client certificate, and the
/// front-proxy headers (which the gate trusts only on a front-proxy connection).
fn credentials(request: &ServiceRequest, names: &crate::auth::RequestHeaderConfig) -> Credentials {
    let headers = request.headers();
    let values = |name: &str| {
        headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let mut remote_extra: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for (name, value) in headers.iter() {
        let name = name.as_str();
        for prefix in &names.extra_headers_prefixes {
            if name.len() > prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix) {
                let key = percent_decode_str(&name[prefix.len()..])
                    .decode_utf8_lossy()
                    .to_lowercase();
                if let Ok(value) = value.to_str() {
                    remote_extra.entry(key).or_default().push(value.to_owned());
                }
            }
        }
    }
    Credentials {
        bearer: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::auth::bearer_token),
        source: request.peer_addr().map(|addr| addr.ip()),
        peer: request.conn_data::<PeerIdentity>().cloned(),
        remote_user: names
            .username_headers
            .iter()
            .flat_map(|h| values(h))
            .find(|v| !v.is_empty()),
        remote_groups: names.group_headers.iter().flat_map(|h| values(h)).collect(),
        remote_extra,
    }
}

/// Middleware: counts and times every request by route pattern, and logs server-side failures
/// with their cause (which clients never see).
pub async fn observe(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = request
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let path = request.path().to_owned();
    let response = next.call(request).await?;
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status();
    if let Some(metrics) = metrics {
        metrics.record_request(&route, status.as_u16(), started.elapsed());
    }
    if status.is_server_error()
        && let Some(error) = response.response().error()
    {
        tracing::warn!(%path, code = status.as_u16(), cause = %error, "request failed");
    }
    Ok(response)
}

async fn live(state: web::Data<AppState>) -> HttpResponse {
    probe(
        state.health.is_live(unix_now()),
        "discovery has stopped relisting",
    )
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    probe(state.health.is_ready(), "discovery has not completed yet")
}

/// A plain-text health answer, as kube-apiserver's own probes give.
fn probe(healthy: bool, failure: &'static str) -> HttpResponse {
    if healthy {
        HttpResponse::Ok().content_type("text/plain").body("ok")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(failure)
    }
}

async fn self_metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

async fn version() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "major": "1",
        "minor": "0",
        "gitVersion": concat!("v", env!("CARGO_PKG_VERSION")),
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }))
}

async fn not_found(request: HttpRequest) -> Result<HttpResponse, Error> {
    if request.method() != actix_web::http::Method::GET && request.path().starts_with("/apis") {
        return Err(Error::MethodNotAllowed(request.method().to_string()));
    }
    Err(Error::no_such_path())
}

/// A group's `APIGroup` document; the first version is the preferred one.
fn api_group(name: &'static str, versions: &[&'static str]) -> ApiGroup {
    let version = |v: &'static str| GroupVersion {
        group_version: format!("{name}/{v}"),
        version: v,
    };
    ApiGroup {
        kind: "APIGroup",
        api_version: "v1",
        name,
        versions: versions.iter().map(|v| version(v)).collect(),
        preferred_version: version(versions[0]),
    }
}

/// A JSON body with an ETag, answering 304 to a matching `If-None-Match` (kube-aggregator
/// re-downloads specs every minute).
fn cacheable_json(request: &HttpRequest, document: &serde_json::Value) -> HttpResponse {
    let body = document.to_string();
    let tag = etag(body.as_bytes());
    if request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(tag.as_str())
    {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish();
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ETAG, tag))
        .body(body)
}

async fn openapi_v2(request: HttpRequest) -> HttpResponse {
    cacheable_json(&request, &openapi::v2())
}

async fn openapi_v3_root(request: HttpRequest) -> HttpResponse {
    cacheable_json(&request, &openapi::v3_root())
}

async fn openapi_v3(
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (group, version) = path.into_inner();
    let document = openapi::v3(&group, &version).ok_or_else(Error::no_such_path)?;
    Ok(cacheable_json(&request, &document))
}

/// Like prometheus-adapter, the custom metrics API exists only when the rules file has `rules`.
fn custom_enabled(state: &AppState) -> Result<(), Error> {
    if state.custom.snapshot().load().rules.custom.is_empty() {
        Err(Error::no_such_path())
    } else {
        Ok(())
    }
}

async fn group_list(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, Error> {
    let custom = custom_enabled(&state).is_ok();
    let external = external_enabled(&state).is_ok();
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let DiscoveryFormat::Aggregated(version) = DiscoveryFormat::negotiate(accept) else {
        let mut groups = Vec::new();
        if custom {
            groups.push(api_group(CUSTOM_GROUP, &CUSTOM_VERSIONS));
        }
        if external {
            groups.push(api_group(EXTERNAL_GROUP, &EXTERNAL_VERSIONS));
        }
        if resource_service(&state).is_ok() {
            groups.push(api_group(RESOURCE_GROUP, &RESOURCE_VERSIONS));
        }
        return Ok(HttpResponse::Ok().json(ApiGroupList {
            kind: "APIGroupList",
            api_version: "v1",
            groups,
        }));
    };
    let custom_resources = custom_api_resources(&state);
    let external_resources = external_api_resources(&state);
    let mut groups = Vec::new();
    if custom {
        groups.push(ServedGroup {
            name: CUSTOM_GROUP,
            versions: CUSTOM_VERSIONS
                .iter()
                .map(|v| (*v, custom_resources.as_slice()))
                .collect(),
        });
    }
    if external {
        groups.push(ServedGroup {
            name: EXTERNAL_GROUP,
            versions: vec![(EXTERNAL_VERSIONS[0], external_resources.as_slice())],
        });
    }
    let resource_resources = resource_api_resources();
    if resource_service(&state).is_ok() {
        groups.push(ServedGroup {
            name: RESOURCE_GROUP,
            versions: vec![(RESOURCE_VERSIONS[0], resource_resources.as_slice())],
        });
    }
    let body = aggregated_document(version, &groups).map_err(|e| Error::Internal(e.to_string()))?;
    let tag = etag(&body);
    let format = DiscoveryFormat::Aggregated(version);
    // kube-aggregator polls every minute with If-None-Match.
    if request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(tag.as_str())
    {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((header::ETAG, tag))
        .insert_header((header::VARY, "Accept"))
        .body(body))
}

async fn custom_group(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    custom_enabled(&state)?;
    Ok(HttpResponse::Ok().json(api_group(CUSTOM_GROUP, &CUSTOM_VERSIONS)))
}

/// The served version a path names, of a group serving `versions`; other versions are 404.
fn checked_version(version: &str, versions: &[&'static str]) -> Result<&'static str, Error> {
    versions
        .iter()
        .find(|v| **v == version)
        .copied()
        .ok_or_else(Error::no_such_path)
}

async fn custom_resources(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<HttpResponse, Error> {
    custom_enabled(&state)?;
    let version = checked_version(&version, &CUSTOM_VERSIONS)?;
    Ok(HttpResponse::Ok().json(ApiResourceList {
        kind: "APIResourceList",
        api_version: "v1",
        group_version: format!("{CUSTOM_GROUP}/{version}"),
        resources: custom_api_resources(&state),
    }))
}

/// Every discovered custom metric as an API resource, or a placeholder when there is none.
fn custom_api_resources(state: &AppState) -> Vec<ApiResource> {
    let snapshot = state.custom.snapshot().load();
    let mut resources: Vec<ApiResource> = snapshot
        .registry
        .custom_metrics()
        .map(|(info, _)| ApiResource {
            name: format!("{}/{}", info.resource, info.metric),
            singular_name: "",
            namespaced: info.namespaced,
            kind: "MetricValueList",
            verbs: &["get"],
        })
        .collect();
    if resources.is_empty() {
        // kubectl warns "Got empty response for: custom.metrics.k8s.io/..." on every command
        // when a served group-version lists nothing; this entry names no real metric.
        resources.push(ApiResource {
            name: format!("namespaces/{NO_METRIC_YET}"),
            singular_name: "",
            namespaced: false,
            kind: "MetricValueList",
            verbs: &["get"],
        });
    }
    resources
}

async fn custom_metric(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, Error> {
    custom_enabled(&state)?;
    let version = checked_version(
        request.match_info().get("version").unwrap_or_default(),
        &CUSTOM_VERSIONS,
    )?;
    let tail = request.match_info().get("tail").unwrap_or_default();
    let query = request_path::query_params(request.query_string());
    let custom_request = request_path::parse_custom(tail, &query)?;
    let now = unix_now();
    let values = state.custom.get(&custom_request, now).await?;
    let timestamp = format_timestamp(now as i64);
    Ok(match version {
        "v1beta1" => HttpResponse::Ok().json(MetricValueList {
            kind: "MetricValueList",
            api_version: "custom.metrics.k8s.io/v1beta1",
            metadata: Empty {},
            items: values
                .into_iter()
                .map(|v| MetricValueV1Beta1 {
                    described_object: object_reference(&v),
                    metric_name: v.metric,
                    timestamp: timestamp.clone(),
                    value: v.value,
                    selector: v.selector,
                })
                .collect(),
        }),
        _ => HttpResponse::Ok().json(MetricValueList {
            kind: "MetricValueList",
            api_version: "custom.metrics.k8s.io/v1beta2",
            metadata: Empty {},
            items: values
                .into_iter()
                .map(|v| MetricValueV1Beta2 {
                    described_object: object_reference(&v),
                    metric: MetricIdentifier {
                        name: v.metric,
                        selector: v.selector,
                    },
                    timestamp: timestamp.clone(),
                    value: v.value,
                })
                .collect(),
        }),
    })
}

/// Like prometheus-adapter, the external metrics API exists only when the rules file has
/// `externalRules`.
fn external_enabled(state: &AppState) -> Result<(), Error> {
    if state.external.snapshot().load().rules.external.is_empty() {
        Err(Error::no_such_path())
    } else {
        Ok(())
    }
}

async fn external_group(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    external_enabled(&state)?;
    Ok(HttpResponse::Ok().json(api_group(EXTERNAL_GROUP, &EXTERNAL_VERSIONS)))
}

async fn external_resources(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<HttpResponse, Error> {
    external_enabled(&state)?;
    let version = checked_version(&version, &EXTERNAL_VERSIONS)?;
    Ok(HttpResponse::Ok().json(ApiResourceList {
        kind: "APIResourceList",
        api_version: "v1",
        group_version: format!("{EXTERNAL_GROUP}/{version}"),
        resources: external_api_resources(&state),
    }))
}

/// Every discovered external metric, scoped as its rule says (prometheus-adapter listed every
/// one as namespaced), or a placeholder when there is none.
fn external_api_resources(state: &AppState) -> Vec<ApiResource> {
    let snapshot = state.external.snapshot().load();
    let mut resources: Vec<ApiResource> = snapshot
        .registry
        .external_metrics()
        .map(|(metric, source)| ApiResource {
            name: metric.clone(),
            singular_name: "",
            namespaced: snapshot
                .rules
                .external
                .get(source.rule)
                .is_none_or(|rule| rule.resources.namespaced()),
            kind: "ExternalMetricValueList",
            verbs: &["get"],
        })
        .collect();
    if resources.is_empty() {
        resources.push(ApiResource {
            name: NO_METRIC_YET.to_owned(),
            singular_name: "",
            namespaced: true,
            kind: "ExternalMetricValueList",
            verbs: &["get"],
        });
    }
    resources
}

async fn external_metric(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, Error> {
    external_enabled(&state)?;
    let (version, namespace, metric) = path.into_inner();
    checked_version(&version, &EXTERNAL_VERSIONS)?;
    let query = request_path::query_params(request.query_string());
    let external_request = request_path::external(namespace, metric.clone(), &query)?;
    let values = state.external.get(&external_request, unix_now()).await?;
    Ok(HttpResponse::Ok().json(ExternalMetricValueList {
        kind: "ExternalMetricValueList",
        api_version: "external.metrics.k8s.io/v1beta1",
        metadata: Empty {},
        items: values
            .into_iter()
            .map(|v| ExternalMetricValue {
                metric_name: metric.clone(),
                metric_labels: v.labels,
                timestamp: format_timestamp(v.timestamp as i64),
                value: v.value,
            })
            .collect(),
    }))
}

/// The resource metrics service, when the rules file has `resourceRules` and pods and nodes
/// have a source.
fn resource_service(state: &AppState) -> Result<&ResourceMetrics, Error> {
    state
        .resource
        .as_ref()
        .filter(|r| r.enabled())
        .ok_or_else(Error::no_such_path)
}

fn resource_api_resources() -> Vec<ApiResource> {
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

async fn resource_group(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    resource_service(&state)?;
    Ok(HttpResponse::Ok().json(api_group(RESOURCE_GROUP, &RESOURCE_VERSIONS)))
}

async fn resource_resources(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    resource_service(&state)?;
    Ok(HttpResponse::Ok().json(ApiResourceList {
        kind: "APIResourceList",
        api_version: "v1",
        group_version: format!("{RESOURCE_GROUP}/v1beta1"),
        resources: resource_api_resources(),
    }))
}

/// `labelSelector` and `fieldSelector` of a resource metrics list.
fn object_selectors(request: &HttpRequest) -> Result<(LabelSelector, FieldSelector), Error> {
    let query = request_path::query_params(request.query_string());
    let text = |key: &str| query.get(key).map(String::as_str).unwrap_or_default();
    let labels = LabelSelector::parse(text("labelSelector"))
        .map_err(|e| Error::BadRequest(format!("labelSelector: {e}")))?;
    Ok((labels, FieldSelector::parse(text("fieldSelector"))?))
}

/// Whether the client asked for a `meta.k8s.io/v1` Table (as `kubectl get` does).
fn wants_table(request: &HttpRequest) -> bool {
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

fn node_json(m: resource::NodeMetrics, whole: bool, now: &str) -> wire::NodeMetrics {
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

fn pod_json(m: resource::PodMetrics, whole: bool, now: &str) -> wire::PodMetrics {
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

/// A Table of `(name, namespace, cpu, memory, window)` rows, the columns metrics-server gives.
fn metrics_table(rows: Vec<(String, Option<String>, String, String, String)>) -> HttpResponse {
    let column = |name: &str, format: &str, description: &str| serde_json::json!({"name": name, "type": "string", "format": format, "description": description, "priority": 0});
    let rows: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|(name, namespace, cpu, memory, window)| {
            let mut metadata = serde_json::json!({"name": name});
            if let Some(namespace) = namespace {
                metadata["namespace"] = namespace.into();
            }
            serde_json::json!({"cells": [name, cpu, memory, window],
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}})
        })
        .collect();
    HttpResponse::Ok()
        .content_type("application/json;as=Table;v=v1;g=meta.k8s.io")
        .json(serde_json::json!({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
            "columnDefinitions": [
                column("Name", "name", "Name of the resource"),
                column("cpu", "", "CPU usage"),
                column("memory", "", "Memory usage"),
                column("Window", "", "Window over which the usage was computed"),
            ],
            "rows": rows,
        }))
}

async fn node_list(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, Error> {
    let service = resource_service(&state)?;
    let (labels, fields) = object_selectors(&request)?;
    let now = unix_now();
    let nodes = service.nodes(&labels, &fields, now).await?;
    if wants_table(&request) {
        return Ok(metrics_table(
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
    Ok(HttpResponse::Ok().json(MetricsList {
        kind: "NodeMetricsList",
        api_version: "metrics.k8s.io/v1beta1",
        metadata: Empty {},
        items: nodes
            .into_iter()
            .map(|n| node_json(n, false, &now))
            .collect(),
    }))
}

async fn node_one(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let service = resource_service(&state)?;
    let now = unix_now();
    let node = service.node(&name, now).await?;
    Ok(HttpResponse::Ok().json(node_json(node, true, &format_timestamp(now as i64))))
}

async fn pod_list(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, Error> {
    let service = resource_service(&state)?;
    let namespace = request.match_info().get("namespace").map(str::to_owned);
    let (labels, fields) = object_selectors(&request)?;
    let now = unix_now();
    let pods = service
        .pods(namespace.as_deref(), &labels, &fields, now)
        .await?;
    if wants_table(&request) {
        return Ok(metrics_table(
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
    Ok(HttpResponse::Ok().json(MetricsList {
        kind: "PodMetricsList",
        api_version: "metrics.k8s.io/v1beta1",
        metadata: Empty {},
        items: pods.into_iter().map(|p| pod_json(p, false, &now)).collect(),
    }))
}

async fn pod_one(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let service = resource_service(&state)?;
    let (namespace, name) = path.into_inner();
    let now = unix_now();
    let pod = service.pod(&namespace, &name, now).await?;
    Ok(HttpResponse::Ok().json(pod_json(pod, true, &format_timestamp(now as i64))))
}

fn object_reference(value: &MetricValue) -> ObjectReference {
    ObjectReference {
        kind: value.object.kind.clone(),
        namespace: value.object.namespace.clone(),
        name: value.object.name.clone(),
        api_version: value.object.api_version.clone(),
    }
}
