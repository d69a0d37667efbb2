//! Kubernetes JSON wire types: discovery documents, metric value lists and `Status`.

use actix_web::HttpResponse;
use serde::Serialize;

use prom_adapter_core::promql::LabelSelectorJson;

/// `metav1.Status`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// Always `Status`.
    pub kind: &'static str,
    /// Always `v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    /// Always empty.
    pub metadata: Empty,
    /// Always `Failure` here.
    pub status: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Machine-readable reason, e.g. `NotFound`.
    pub reason: &'static str,
    /// HTTP status code.
    pub code: u16,
}

/// `{}`.
#[derive(Debug, Serialize, Default)]
pub struct Empty {}

/// `metav1.APIGroupList`.
#[derive(Debug, Serialize)]
pub struct ApiGroupList {
    /// `APIGroupList`.
    pub kind: &'static str,
    /// `v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    /// The groups.
    pub groups: Vec<ApiGroup>,
}

/// `metav1.APIGroup`.
#[derive(Debug, Serialize, Clone)]
pub struct ApiGroup {
    /// `APIGroup`.
    pub kind: &'static str,
    /// `v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    /// Group name.
    pub name: &'static str,
    /// Served versions.
    pub versions: Vec<GroupVersion>,
    /// The preferred version.
    #[serde(rename = "preferredVersion")]
    pub preferred_version: GroupVersion,
}

/// `metav1.GroupVersionForDiscovery`.
#[derive(Debug, Serialize, Clone)]
pub struct GroupVersion {
    /// `group/version`.
    #[serde(rename = "groupVersion")]
    pub group_version: String,
    /// `version`.
    pub version: &'static str,
}

/// `metav1.APIResourceList`.
#[derive(Debug, Serialize)]
pub struct ApiResourceList {
    /// `APIResourceList`.
    pub kind: &'static str,
    /// `v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    /// `group/version`.
    #[serde(rename = "groupVersion")]
    pub group_version: String,
    /// The resources.
    pub resources: Vec<ApiResource>,
}

/// `metav1.APIResource`.
#[derive(Debug, Serialize)]
pub struct ApiResource {
    /// `resource/metric`.
    pub name: String,
    /// Always empty for metrics.
    #[serde(rename = "singularName")]
    pub singular_name: &'static str,
    /// Scope.
    pub namespaced: bool,
    /// `MetricValueList`.
    pub kind: &'static str,
    /// `["get"]`.
    pub verbs: &'static [&'static str],
}

/// `custom_metrics.ObjectReference`.
#[derive(Debug, Serialize)]
pub struct ObjectReference {
    /// Kind.
    pub kind: String,
    /// Namespace (omitted for cluster-scoped objects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// `group/version`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
}

/// `custom_metrics/v1beta1.MetricValue`.
#[derive(Debug, Serialize)]
pub struct MetricValueV1Beta1 {
    /// The object.
    #[serde(rename = "describedObject")]
    pub described_object: ObjectReference,
    /// Metric name.
    #[serde(rename = "metricName")]
    pub metric_name: String,
    /// Response time.
    pub timestamp: String,
    /// Quantity.
    pub value: String,
    /// `metricLabelSelector` echo, `null` when empty.
    pub selector: Option<LabelSelectorJson>,
}

/// `custom_metrics/v1beta2.MetricValue`.
#[derive(Debug, Serialize)]
pub struct MetricValueV1Beta2 {
    /// The object.
    #[serde(rename = "describedObject")]
    pub described_object: ObjectReference,
    /// Metric identifier.
    pub metric: MetricIdentifier,
    /// Response time.
    pub timestamp: String,
    /// Quantity.
    pub value: String,
}

/// `custom_metrics/v1beta2.MetricIdentifier`.
#[derive(Debug, Serialize)]
pub struct MetricIdentifier {
    /// Metric name.
    pub name: String,
    /// `metricLabelSelector` echo, `null` when empty.
    pub selector: Option<LabelSelectorJson>,
}

/// `external_metrics/v1beta1.ExternalMetricValue`.
#[derive(Debug, Serialize)]
pub struct ExternalMetricValue {
    /// Metric name, as requested.
    #[serde(rename = "metricName")]
    pub metric_name: String,
    /// The sample's labels; `null` for a scalar.
    #[serde(rename = "metricLabels")]
    pub metric_labels: Option<std::collections::BTreeMap<String, String>>,
    /// The sample's timestamp.
    pub timestamp: String,
    /// Quantity.
    pub value: String,
}

/// `metrics/v1beta1` object metadata: name, namespace, labels and the response time.
#[derive(Debug, Serialize)]
pub struct MetricsObjectMeta {
    /// Name.
    pub name: String,
    /// Namespace (pods only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// When the answer was made, as metrics-server sets it.
    #[serde(rename = "creationTimestamp")]
    pub creation_timestamp: String,
    /// The object's labels.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// CPU and memory quantities.
#[derive(Debug, Serialize)]
pub struct ResourceUsage {
    /// CPU, in cores.
    pub cpu: String,
    /// Memory, in bytes.
    pub memory: String,
}

/// `metrics/v1beta1.NodeMetrics`; `kind` and `apiVersion` only when it is the whole answer.
#[derive(Debug, Serialize)]
pub struct NodeMetrics {
    /// `NodeMetrics`, for a single object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// `metrics.k8s.io/v1beta1`, for a single object.
    #[serde(rename = "apiVersion", skip_serializing_if = "Option::is_none")]
    pub api_version: Option<&'static str>,
    /// The node.
    pub metadata: MetricsObjectMeta,
    /// The earlier sample time.
    pub timestamp: String,
    /// The rate window, as a Go duration.
    pub window: String,
    /// Usage.
    pub usage: ResourceUsage,
}

/// `metrics/v1beta1.ContainerMetrics`.
#[derive(Debug, Serialize)]
pub struct ContainerMetrics {
    /// Container name.
    pub name: String,
    /// Usage.
    pub usage: ResourceUsage,
}

/// `metrics/v1beta1.PodMetrics`; `kind` and `apiVersion` only when it is the whole answer.
#[derive(Debug, Serialize)]
pub struct PodMetrics {
    /// `PodMetrics`, for a single object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// `metrics.k8s.io/v1beta1`, for a single object.
    #[serde(rename = "apiVersion", skip_serializing_if = "Option::is_none")]
    pub api_version: Option<&'static str>,
    /// The pod.
    pub metadata: MetricsObjectMeta,
    /// The earliest sample time.
    pub timestamp: String,
    /// The rate window, as a Go duration.
    pub window: String,
    /// Containers.
    pub containers: Vec<ContainerMetrics>,
}

/// A list of any of the metrics APIs: `MetricValueList`, `ExternalMetricValueList`,
/// `NodeMetricsList` or `PodMetricsList`.
#[derive(Debug, Serialize)]
pub struct List<T> {
    /// The list's kind.
    pub kind: &'static str,
    /// The group-version.
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    /// Always empty.
    pub metadata: Empty,
    /// The values or objects.
    pub items: Vec<T>,
}

impl<T: Serialize> List<T> {
    /// A `200 OK` with the list.
    pub fn respond(kind: &'static str, api_version: &'static str, items: Vec<T>) -> HttpResponse {
        HttpResponse::Ok().json(List {
            kind,
            api_version,
            metadata: Empty {},
            items,
        })
    }
}

/// `meta.k8s.io/v1.Table` of resource usage, with the columns metrics-server gives (what
/// `kubectl get podmetrics` shows).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageTable {
    kind: &'static str,
    api_version: &'static str,
    metadata: Empty,
    column_definitions: [TableColumn; 4],
    rows: Vec<TableRow>,
}

#[derive(Debug, Serialize)]
struct TableColumn {
    name: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    format: &'static str,
    description: &'static str,
    priority: u8,
}

#[derive(Debug, Serialize)]
struct TableRow {
    /// Name, cpu, memory and window.
    cells: [String; 4],
    object: PartialObjectMetadata,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PartialObjectMetadata {
    kind: &'static str,
    api_version: &'static str,
    metadata: RowObjectMeta,
}

#[derive(Debug, Serialize)]
struct RowObjectMeta {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

impl UsageTable {
    /// A Table of `(name, namespace, cpu, memory, window)` rows, as a `200 OK`.
    pub fn respond(rows: Vec<(String, Option<String>, String, String, String)>) -> HttpResponse {
        let column = |name, format, description| TableColumn {
            name,
            kind: "string",
            format,
            description,
            priority: 0,
        };
        let rows = rows
            .into_iter()
            .map(|(name, namespace, cpu, memory, window)| TableRow {
                object: PartialObjectMetadata {
                    kind: "PartialObjectMetadata",
                    api_version: "meta.k8s.io/v1",
                    metadata: RowObjectMeta {
                        name: name.clone(),
                        namespace,
                    },
                },
                cells: [name, cpu, memory, window],
            })
            .collect();
        HttpResponse::Ok()
            .content_type("application/json;as=Table;v=v1;g=meta.k8s.io")
            .json(UsageTable {
                kind: "Table",
                api_version: "meta.k8s.io/v1",
                metadata: Empty {},
                column_definitions: [
                    column("Name", "name", "Name of the resource"),
                    column("cpu", "", "CPU usage"),
                    column("memory", "", "Memory usage"),
                    column("Window", "", "Window over which the usage was computed"),
                ],
                rows,
            })
    }
}
