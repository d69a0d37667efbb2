//! OpenAPI documents for the served groups: v2 for kube-aggregator's merged spec, v3 per group-version.

use serde_json::{Value, json};

use super::*;

const CUSTOM_GROUP: &str = "custom.metrics.k8s.io";
const EXTERNAL_GROUP: &str = "external.metrics.k8s.io";
const EXTERNAL_PREFIX: &str = "io.k8s.metrics.pkg.apis.external_metrics.v1beta1";
const RESOURCE_GROUP: &str = "metrics.k8s.io";
const RESOURCE_PREFIX: &str = "io.k8s.metrics.pkg.apis.metrics.v1beta1";
const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

/// The group-versions with OpenAPI documents.
pub const SERVED: [(&str, &str); 4] = [
    (CUSTOM_GROUP, "v1beta1"),
    (CUSTOM_GROUP, "v1beta2"),
    (EXTERNAL_GROUP, "v1beta1"),
    (RESOURCE_GROUP, "v1beta1"),
];

fn definition_prefix(version: &str) -> String {
    format!("io.k8s.metrics.pkg.apis.custom_metrics.{version}")
}

/// Schemas shared by every document, keyed by definition name.
fn shared_schemas() -> Vec<(String, Value)> {
    vec![
        (
            format!("{META}.ListMeta"),
            json!({"type": "object", "description": "Standard list metadata.", "properties": {
                "resourceVersion": {"type": "string"}, "continue": {"type": "string"},
                "remainingItemCount": {"type": "integer", "format": "int64"}, "selfLink": {"type": "string"}}}),
        ),
        (
            format!("{META}.LabelSelector"),
            json!({"type": "object", "description": "A label query over a set of resources.", "properties": {
                "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                "matchExpressions": {"type": "array", "items": {"type": "object", "required": ["key", "operator"], "properties": {
                    "key": {"type": "string"}, "operator": {"type": "string"},
                    "values": {"type": "array", "items": {"type": "string"}}}}}}}),
        ),
        (
            "io.k8s.api.core.v1.ObjectReference".to_owned(),
            json!({"type": "object", "description": "A reference to the object a metric describes.", "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "name": {"type": "string"},
                "namespace": {"type": "string"}, "uid": {"type": "string"}, "resourceVersion": {"type": "string"},
                "fieldPath": {"type": "string"}}}),
        ),
        (
            format!("{META}.APIResourceList"),
            json!({"type": "object", "required": ["groupVersion", "resources"], "properties": {
                "kind": {"type": "string"}, "apiVersion": {"type": "string"}, "groupVersion": {"type": "string"},
                "resources": {"type": "array", "items": {"type": "object", "required": ["name", "singularName", "namespaced", "kind", "verbs"], "properties": {
                    "name": {"type": "string"}, "singularName": {"type": "string"}, "namespaced": {"type": "boolean"},
                    "kind": {"type": "string"}, "verbs": {"type": "array", "items": {"type": "string"}}}}}}}),
        ),
    ]
}

/// The MetricValue and MetricValueList schemas of one version. `reference` turns a definition name
/// into the document's `$ref` form.
fn metric_schemas(version: &str, reference: &dyn Fn(&str) -> String) -> Vec<(String, Value)> {
    let prefix = definition_prefix(version);
    let selector = json!({"$ref": reference(&format!("{META}.LabelSelector"))});
    let mut value_properties = json!({
        "describedObject": {"$ref": reference("io.k8s.api.core.v1.ObjectReference")},
        "timestamp": {"type": "string", "format": "date-time", "description": "When the value was read."},
        "value": {"type": "string", "description": "The value, as a Kubernetes quantity."},
    });
    let fields = value_properties
        .as_object_mut()
        .expect("a JSON object literal");
    if version == "v1beta1" {
        fields.insert("metricName".into(), json!({"type": "string"}));
        fields.insert(
            "window".into(),
            json!({"type": "integer", "format": "int64"}),
        );
        fields.insert("selector".into(), selector);
    } else {
        fields.insert(
            "metric".into(),
            json!({"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "selector": selector}}),
        );
        fields.insert(
            "windowSeconds".into(),
            json!({"type": "integer", "format": "int64"}),
        );
    }
    let gvk = json!([{"group": CUSTOM_GROUP, "version": version, "kind": "MetricValueList"}]);
    vec![
        (
            format!("{prefix}.MetricValue"),
            json!({"type": "object", "required": ["describedObject", "timestamp", "value"], "properties": value_properties}),
        ),
        (
            format!("{prefix}.MetricValueList"),
            json!({"type": "object", "required": ["metadata", "items"], "x-kubernetes-group-version-kind": gvk, "properties": {
                "kind": {"type": "string"}, "apiVersion": {"type": "string"},
                "metadata": {"$ref": reference(&format!("{META}.ListMeta"))},
                "items": {"type": "array", "items": {"$ref": reference(&format!("{prefix}.MetricValue"))}}}}),
        ),
    ]
}

/// The ExternalMetricValue and ExternalMetricValueList schemas.
fn external_schemas(reference: &dyn Fn(&str) -> String) -> Vec<(String, Value)> {
    let gvk =
        json!([{"group": EXTERNAL_GROUP, "version": "v1beta1", "kind": "ExternalMetricValueList"}]);
    vec![
        (
            format!("{EXTERNAL_PREFIX}.ExternalMetricValue"),
            json!({"type": "object", "required": ["metricName", "metricLabels", "timestamp", "value"], "properties": {
                "metricName": {"type": "string"},
                "metricLabels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "The sample's labels."},
                "timestamp": {"type": "string", "format": "date-time", "description": "The sample's time."},
                "window": {"type": "integer", "format": "int64"},
                "value": {"type": "string", "description": "The value, as a Kubernetes quantity."}}}),
        ),
        (
            format!("{EXTERNAL_PREFIX}.ExternalMetricValueList"),
            json!({"type": "object", "required": ["metadata", "items"], "x-kubernetes-group-version-kind": gvk, "properties": {
                "kind": {"type": "string"}, "apiVersion": {"type": "string"},
                "metadata": {"$ref": reference(&format!("{META}.ListMeta"))},
                "items": {"type": "array", "items": {"$ref": reference(&format!("{EXTERNAL_PREFIX}.ExternalMetricValue"))}}}}),
        ),
    ]
}

/// The NodeMetrics and PodMetrics schemas and their lists.
fn resource_schemas(reference: &dyn Fn(&str) -> String) -> Vec<(String, Value)> {
    let usage = json!({"type": "object", "additionalProperties": {"type": "string"}, "description": "cpu (cores) and memory (bytes), as quantities."});
    let object_meta = json!({"$ref": reference(&format!("{META}.ObjectMeta"))});
    let gvk = |kind: &str| json!([{"group": RESOURCE_GROUP, "version": "v1beta1", "kind": kind}]);
    let list = |kind: &str, item: &str| {
        json!({"type": "object", "required": ["items"], "x-kubernetes-group-version-kind": gvk(kind), "properties": {
            "kind": {"type": "string"}, "apiVersion": {"type": "string"},
            "metadata": {"$ref": reference(&format!("{META}.ListMeta"))},
            "items": {"type": "array", "items": {"$ref": reference(&format!("{RESOURCE_PREFIX}.{item}"))}}}})
    };
    vec![
        (
            format!("{META}.ObjectMeta"),
            json!({"type": "object", "properties": {
                "name": {"type": "string"}, "namespace": {"type": "string"},
                "creationTimestamp": {"type": "string", "format": "date-time"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}),
        ),
        (
            format!("{RESOURCE_PREFIX}.ContainerMetrics"),
            json!({"type": "object", "required": ["name", "usage"], "properties": {"name": {"type": "string"}, "usage": usage}}),
        ),
        (
            format!("{RESOURCE_PREFIX}.NodeMetrics"),
            json!({"type": "object", "required": ["timestamp", "window", "usage"], "x-kubernetes-group-version-kind": gvk("NodeMetrics"), "properties": {
                "kind": {"type": "string"}, "apiVersion": {"type": "string"}, "metadata": object_meta,
                "timestamp": {"type": "string", "format": "date-time"}, "window": {"type": "string"}, "usage": usage}}),
        ),
        (
            format!("{RESOURCE_PREFIX}.PodMetrics"),
            json!({"type": "object", "required": ["timestamp", "window", "containers"], "x-kubernetes-group-version-kind": gvk("PodMetrics"), "properties": {
                "kind": {"type": "string"}, "apiVersion": {"type": "string"}, "metadata": object_meta,
                "timestamp": {"type": "string", "format": "date-time"}, "window": {"type": "string"},
                "containers": {"type": "array", "items": {"$ref": reference(&format!("{RESOURCE_PREFIX}.ContainerMetrics"))}}}}),
        ),
        (
            format!("{RESOURCE_PREFIX}.NodeMetricsList"),
            list("NodeMetricsList", "NodeMetrics"),
        ),
        (
            format!("{RESOURCE_PREFIX}.PodMetricsList"),
            list("PodMetricsList", "PodMetrics"),
        ),
    ]
}

/// The paths of the resource metrics API.
fn resource_paths(reference: &dyn Fn(&str) -> String, resources_schema: Value, v3: bool) -> Value {
    let base = format!("/apis/{RESOURCE_GROUP}/v1beta1");
    let schema = |name: &str| json!({"$ref": reference(&format!("{RESOURCE_PREFIX}.{name}"))});
    let selectors = vec![
        param("labelSelector", "query", "Selects objects by label.", v3),
        param(
            "fieldSelector",
            "query",
            "Selects objects by metadata.name or metadata.namespace.",
            v3,
        ),
    ];
    let get = |id: &str, kind: &str, action: &str, params: Vec<Value>| {
        json!({"get": {"operationId": id, "description": format!("Reads {kind}."), "parameters": params,
            "responses": response(&schema(kind), v3), "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": {"group": RESOURCE_GROUP, "version": "v1beta1", "kind": kind}}})
    };
    let name = param("name", "path", "Object name.", v3);
    let namespace = param("namespace", "path", "Namespace.", v3);
    json!({
        format!("{base}/"): {"get": {"operationId": "getMetricsV1beta1APIResources", "description": "Lists the resources.",
            "responses": response(&resources_schema, v3)}},
        format!("{base}/nodes"): get("listMetricsV1beta1NodeMetrics", "NodeMetricsList", "list", selectors.clone()),
        format!("{base}/nodes/{{name}}"): get("readMetricsV1beta1NodeMetrics", "NodeMetrics", "get", vec![name.clone()]),
        format!("{base}/pods"): get("listMetricsV1beta1PodMetricsForAllNamespaces", "PodMetricsList", "list", selectors.clone()),
        format!("{base}/namespaces/{{namespace}}/pods"):
            get("listMetricsV1beta1NamespacedPodMetrics", "PodMetricsList", "list", [vec![namespace.clone()], selectors].concat()),
        format!("{base}/namespaces/{{namespace}}/pods/{{name}}"):
            get("readMetricsV1beta1NamespacedPodMetrics", "PodMetrics", "get", vec![namespace, name]),
    })
}

/// A string parameter, in the form of OpenAPI v3 or v2.
fn param(name: &str, location: &str, description: &str, v3: bool) -> Value {
    if v3 {
        json!({"name": name, "in": location, "required": location == "path", "description": description, "schema": {"type": "string"}})
    } else {
        json!({"name": name, "in": location, "required": location == "path", "description": description, "type": "string"})
    }
}

/// A 200 response with a JSON body, in the form of OpenAPI v3 or v2.
fn response(schema: &Value, v3: bool) -> Value {
    if v3 {
        json!({"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}})
    } else {
        json!({"200": {"description": "OK", "schema": schema}})
    }
}

/// The paths of the external metrics API: its resource list and the one metric route.
fn external_paths(list_schema: Value, resources_schema: Value, v3: bool) -> Value {
    let base = format!("/apis/{EXTERNAL_GROUP}/v1beta1");
    json!({
        format!("{base}/"): {"get": {
            "operationId": "getExternalMetricsResourcesV1beta1",
            "description": "Lists the discovered external metrics.",
            "responses": response(&resources_schema, v3),
        }},
        format!("{base}/namespaces/{{namespace}}/{{metric}}"): {"get": {
            "operationId": "readNamespacedExternalMetricV1beta1",
            "description": "Reads an external metric, one value per series the label selector chooses.",
            "parameters": [
                param("namespace", "path", "Namespace.", v3),
                param("metric", "path", "Metric name.", v3),
                param("labelSelector", "query", "Selects the metric's series.", v3),
            ],
            "responses": response(&list_schema, v3),
            "x-kubernetes-action": "get",
            "x-kubernetes-group-version-kind": {"group": EXTERNAL_GROUP, "version": "v1beta1", "kind": "ExternalMetricValueList"},
        }},
    })
}

/// The paths of one custom metrics version: its resource list and the three metric routes.
fn paths(version: &str, list_schema: Value, resources_schema: Value, v3: bool) -> Value {
    let base = format!("/apis/{CUSTOM_GROUP}/{version}");
    let param =
        |name: &str, location: &str, description: &str| param(name, location, description, v3);
    let response = |schema: &Value| response(schema, v3);
    let selectors = [
        param(
            "labelSelector",
            "query",
            "Selects the described objects when the name is `*`.",
        ),
        param(
            "metricLabelSelector",
            "query",
            "Selects the metric's series.",
        ),
    ];
    let operation = |id: &str, mut params: Vec<Value>| {
        params.extend(selectors.iter().cloned());
        json!({"get": {
            "operationId": id,
            "description": "Reads one metric for one object, or for every object a label selector chooses.",
            "parameters": params,
            "responses": response(&list_schema),
            "x-kubernetes-action": "get",
            "x-kubernetes-group-version-kind": {"group": CUSTOM_GROUP, "version": version, "kind": "MetricValueList"},
        }})
    };
    let object = [
        param(
            "resource",
            "path",
            "Resource, e.g. pods or deployments.apps.",
        ),
        param("name", "path", "Object name, or * for a selector."),
        param("metric", "path", "Metric name."),
    ];
    let namespace = param("namespace", "path", "Namespace.");
    json!({
        format!("{base}/"): {"get": {
            "operationId": format!("getCustomMetricsResources{}", version.replace('v', "V")),
            "description": "Lists the discovered metrics.",
            "responses": response(&resources_schema),
        }},
        format!("{base}/namespaces/{{namespace}}/{{resource}}/{{name}}/{{metric}}"):
            operation(&format!("readNamespacedCustomMetric{}", version.replace('v', "V")), [vec![namespace.clone()], object.to_vec()].concat()),
        format!("{base}/{{resource}}/{{name}}/{{metric}}"):
            operation(&format!("readClusterCustomMetric{}", version.replace('v', "V")), object.to_vec()),
        format!("{base}/namespaces/{{namespace}}/metrics/{{metric}}"):
            operation(&format!("readNamespaceCustomMetric{}", version.replace('v', "V")), vec![namespace, object[2].clone()]),
    })
}

/// One group-version's own schemas and its paths, with `$ref`s made by `reference`.
fn group_version(
    group: &str,
    version: &str,
    reference: &dyn Fn(&str) -> String,
    v3: bool,
) -> (Vec<(String, Value)>, Value) {
    let resources = json!({"$ref": reference(&format!("{META}.APIResourceList"))});
    match group {
        EXTERNAL_GROUP => {
            let list =
                json!({"$ref": reference(&format!("{EXTERNAL_PREFIX}.ExternalMetricValueList"))});
            (
                external_schemas(reference),
                external_paths(list, resources, v3),
            )
        }
        RESOURCE_GROUP => (
            resource_schemas(reference),
            resource_paths(reference, resources, v3),
        ),
        _ => {
            let list = json!({"$ref": reference(&format!("{}.MetricValueList", definition_prefix(version)))});
            (
                metric_schemas(version, reference),
                paths(version, list, resources, v3),
            )
        }
    }
}

/// The OpenAPI v2 (Swagger 2.0) document for every served group-version.
pub fn v2() -> Value {
    let reference = |name: &str| format!("#/definitions/{name}");
    let mut definitions: serde_json::Map<String, Value> = shared_schemas().into_iter().collect();
    let mut all_paths = serde_json::Map::new();
    for (group, version) in SERVED {
        let (schemas, paths) = group_version(group, version, &reference, false);
        definitions.extend(schemas);
        if let Value::Object(paths) = paths {
            all_paths.extend(paths);
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "prom-adapter", "version": env!("CARGO_PKG_VERSION")},
        "paths": all_paths,
        "definitions": definitions,
    })
}

/// The OpenAPI v3 document of one group-version, or `None` when it is not served.
pub fn v3(group: &str, version: &str) -> Option<Value> {
    SERVED.iter().find(|(g, v)| *g == group && *v == version)?;
    let reference = |name: &str| format!("#/components/schemas/{name}");
    let (own_schemas, paths) = group_version(group, version, &reference, true);
    let schemas: serde_json::Map<String, Value> =
        shared_schemas().into_iter().chain(own_schemas).collect();
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "prom-adapter", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// The OpenAPI v3 root: where each group-version's document is, with a hash that changes with it.
pub fn v3_root() -> Value {
    let mut paths = serde_json::Map::new();
    for (group, version) in SERVED {
        let body = v3(group, version)
            .map(|d| d.to_string())
            .unwrap_or_default();
        let hash = super::discovery::etag(body.as_bytes())
            .trim_matches('"')
            .to_owned();
        paths.insert(
            format!("apis/{group}/{version}"),
            json!({"serverRelativeURL": format!("/openapi/v3/apis/{group}/{version}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

/// A JSON body with an ETag, answering 304 to a matching `If-None-Match` (kube-aggregator
/// re-downloads specs every minute).
fn cacheable_json(request: &HttpRequest, document: &serde_json::Value) -> HttpResponse {
    super::discovery::cacheable(
        request,
        "application/json",
        document.to_string().into_bytes(),
        false,
    )
}

pub(super) async fn openapi_v2(request: HttpRequest) -> HttpResponse {
    cacheable_json(&request, &openapi::v2())
}

pub(super) async fn openapi_v3_root(request: HttpRequest) -> HttpResponse {
    cacheable_json(&request, &openapi::v3_root())
}

pub(super) async fn openapi_v3(
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (group, version) = path.into_inner();
    let document = openapi::v3(&group, &version).ok_or_else(Error::no_such_path)?;
    Ok(cacheable_json(&request, &document))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` must name a schema the document defines.
    fn refs_resolve(document: &Value, prefix: &str, definitions: &serde_json::Map<String, Value>) {
        match document {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    let name = target
                        .strip_prefix(prefix)
                        .unwrap_or_else(|| panic!("{target} is not under {prefix}"));
                    assert!(definitions.contains_key(name), "{target} is not defined");
                }
                map.values()
                    .for_each(|v| refs_resolve(v, prefix, definitions));
            }
            Value::Array(items) => items
                .iter()
                .for_each(|v| refs_resolve(v, prefix, definitions)),
            _ => {}
        }
    }

    #[test]
    fn v2_document_is_self_contained() {
        let doc = v2();
        assert_eq!(doc["swagger"], "2.0");
        let definitions = doc["definitions"].as_object().unwrap();
        refs_resolve(&doc, "#/definitions/", definitions);
        let paths = doc["paths"].as_object().unwrap();
        assert_eq!(
            paths.len(),
            16,
            "four paths for each custom metrics version, two for external and six for resource metrics"
        );
        for (path, item) in paths {
            assert!(
                path.starts_with("/apis/custom.metrics.k8s.io/v1beta")
                    || path.starts_with("/apis/external.metrics.k8s.io/v1beta1/")
                    || path.starts_with("/apis/metrics.k8s.io/v1beta1/"),
                "{path}"
            );
            let params = item["get"]["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for segment in path.split('/').filter(|s| s.starts_with('{')) {
                let name = segment.trim_matches(|c| c == '{' || c == '}');
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                    "{path}: {name}"
                );
            }
        }
        let list = &definitions["io.k8s.metrics.pkg.apis.custom_metrics.v1beta2.MetricValueList"];
        assert_eq!(
            list["x-kubernetes-group-version-kind"][0]["kind"],
            "MetricValueList"
        );
    }

    #[test]
    fn v3_documents_exist_per_served_group_version() {
        for (group, version) in SERVED {
            let doc = v3(group, version).unwrap();
            assert_eq!(doc["openapi"], "3.0.0");
            let schemas = doc["components"]["schemas"].as_object().unwrap();
            refs_resolve(&doc, "#/components/schemas/", schemas);
            let expected = match group {
                EXTERNAL_GROUP => 2,
                RESOURCE_GROUP => 6,
                _ => 4,
            };
            assert_eq!(doc["paths"].as_object().unwrap().len(), expected);
        }
        assert!(v3("custom.metrics.k8s.io", "v1").is_none());
        let root = v3_root();
        let url = root["paths"]["apis/custom.metrics.k8s.io/v1beta1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(
            url.starts_with("/openapi/v3/apis/custom.metrics.k8s.io/v1beta1?hash="),
            "{url}"
        );
    }
}
