//! `custom.metrics.k8s.io` (v1beta1 and v1beta2): the group, its resource list and metric values.

use super::*;

/// Like prometheus-adapter, the custom metrics API exists only when the rules file has `rules`.
pub(super) fn custom_enabled(state: &AppState) -> Result<(), Error> {
    if state.custom.snapshot().load().rules.custom.is_empty() {
        Err(Error::no_such_path())
    } else {
        Ok(())
    }
}

pub(super) async fn custom_group(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    custom_enabled(&state)?;
    Ok(HttpResponse::Ok().json(api_group(CUSTOM_GROUP, &CUSTOM_VERSIONS)))
}

pub(super) async fn custom_resources(
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
pub(super) fn custom_api_resources(state: &AppState) -> Vec<ApiResource> {
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
        // kubectl 1.26 and later fail discovery of a served group-version that lists nothing
        // ("received empty response for": `api-resources` exits 1). This entry names no real
        // metric (docs/migrating.md, differences).
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

pub(super) async fn custom_metric(
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
        "v1beta1" => List::respond(
            "MetricValueList",
            "custom.metrics.k8s.io/v1beta1",
            values
                .into_iter()
                .map(|v| MetricValueV1Beta1 {
                    described_object: object_reference(&v),
                    metric_name: v.metric,
                    timestamp: timestamp.clone(),
                    value: v.value,
                    selector: v.selector,
                })
                .collect(),
        ),
        _ => List::respond(
            "MetricValueList",
            "custom.metrics.k8s.io/v1beta2",
            values
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
        ),
    })
}

pub(super) fn object_reference(value: &MetricValue) -> ObjectReference {
    ObjectReference {
        kind: value.object.kind.clone(),
        namespace: value.object.namespace.clone(),
        name: value.object.name.clone(),
        api_version: value.object.api_version.clone(),
    }
}
