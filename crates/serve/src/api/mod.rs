//! The HTTP API: one route table, thin handlers, discovery documents, and request observation.

mod custom;
pub mod discovery;
pub mod error;
mod external;
mod health;
mod middleware;
pub mod openapi;
mod resource;
pub mod wire;

use custom::*;
use discovery::group_list;
use external::*;
use health::*;
pub use middleware::{guard, observe};
use openapi::{openapi_v2, openapi_v3, openapi_v3_root};
use resource::*;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};

pub use error::Error;
use wire::{
    ApiGroup, ApiGroupList, ApiResource, ApiResourceList, ContainerMetrics, ExternalMetricValue,
    GroupVersion, List, MetricIdentifier, MetricValueV1Beta1, MetricValueV1Beta2,
    MetricsObjectMeta, ObjectReference, ResourceUsage, UsageTable,
};

use crate::auth::{Attributes, Credentials, PeerIdentity, Verdict};
use prom_adapter_core::model::GroupResource;
use prom_adapter_core::model::{format_go_duration, format_timestamp};
use prom_adapter_core::promql::LabelSelector;
use prom_adapter_core::request as request_path;
use prom_adapter_provider::custom::{CustomMetrics, MetricValue};
use prom_adapter_provider::discovery::Health;
use prom_adapter_provider::external::ExternalMetrics;
use prom_adapter_provider::resource::{self as resource_provider, FieldSelector, ResourceMetrics};
use prom_adapter_telemetry::Metrics;
use prom_adapter_telemetry::clock::unix_now;

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
        .route(
            "/apis/custom.metrics.k8s.io/{version}/{tail:.+}",
            web::get().to(custom_metric),
        )
        .route(
            "/apis/external.metrics.k8s.io/{version}/{tail:.+}",
            web::get().to(external_metric),
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
    // Group and resource-list paths answer with and without a trailing slash, as
    // kube-apiserver's do.
    with_and_without_slash(cfg, "/apis", group_list);
    with_and_without_slash(cfg, "/apis/custom.metrics.k8s.io", custom_group);
    with_and_without_slash(
        cfg,
        "/apis/custom.metrics.k8s.io/{version}",
        custom_resources,
    );
    with_and_without_slash(cfg, "/apis/external.metrics.k8s.io", external_group);
    with_and_without_slash(
        cfg,
        "/apis/external.metrics.k8s.io/{version}",
        external_resources,
    );
    with_and_without_slash(cfg, "/apis/metrics.k8s.io", resource_group);
    with_and_without_slash(cfg, "/apis/metrics.k8s.io/v1beta1", resource_resources);
}

/// Routes GET `path` and `path/` to `handler`.
fn with_and_without_slash<F, Args>(cfg: &mut web::ServiceConfig, path: &str, handler: F)
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    cfg.route(path, web::get().to(handler.clone()))
        .route(&format!("{path}/"), web::get().to(handler));
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

/// The served version a path names, of a group serving `versions`; other versions are 404.
fn checked_version(version: &str, versions: &[&'static str]) -> Result<&'static str, Error> {
    versions
        .iter()
        .find(|v| **v == version)
        .copied()
        .ok_or_else(Error::no_such_path)
}

#[cfg(test)]
mod tests;
