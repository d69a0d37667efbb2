//! `external.metrics.k8s.io` (v1beta1): the group, its resource list and metric values.

use super::*;

/// Like prometheus-adapter, the external metrics API exists only when the rules file has
/// `externalRules`.
pub(super) fn external_enabled(state: &AppState) -> Result<(), Error> {
    if state.external.snapshot().load().rules.external.is_empty() {
        Err(Error::no_such_path())
    } else {
        Ok(())
    }
}

pub(super) async fn external_group(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    external_enabled(&state)?;
    Ok(HttpResponse::Ok().json(api_group(EXTERNAL_GROUP, &EXTERNAL_VERSIONS)))
}

pub(super) async fn external_resources(
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
pub(super) fn external_api_resources(state: &AppState) -> Vec<ApiResource> {
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

pub(super) async fn external_metric(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, Error> {
    external_enabled(&state)?;
    checked_version(
        request.match_info().get("version").unwrap_or_default(),
        &EXTERNAL_VERSIONS,
    )?;
    let tail = request.match_info().get("tail").unwrap_or_default();
    let query = request_path::query_params(request.query_string());
    let external_request = request_path::parse_external(tail, &query)?;
    let metric = external_request.metric.clone();
    let values = state.external.get(&external_request, unix_now()).await?;
    Ok(List::respond(
        "ExternalMetricValueList",
        "external.metrics.k8s.io/v1beta1",
        values
            .into_iter()
            .map(|v| ExternalMetricValue {
                metric_name: metric.clone(),
                metric_labels: v.labels,
                timestamp: format_timestamp(v.timestamp as i64),
                value: v.value,
            })
            .collect(),
    ))
}
