//! Kubernetes JSON wire types: discovery documents, metric value lists and `Status`.

use serde::Serialize;

use crate::promql::LabelSelectorJson;

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

/// `MetricValueList` of either version.
#[derive(Debug, Serialize)]
pub struct MetricValueList<T> {
    /// `MetricValueList`.
    pub kind: &'static str,
    /// `custom.metrics.k8s.io/v1beta1` or `/v1beta2`.
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    /// Always empty.
    pub metadata: Empty,
    /// The values.
    pub items: Vec<T>,
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

/// `external_metrics/v1beta1.ExternalMetricValueList`.
#[derive(Debug, Serialize)]
pub struct ExternalMetricValueList {
    /// `ExternalMetricValueList`.
    pub kind: &'static str,
    /// `external.metrics.k8s.io/v1beta1`.
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    /// Always empty.
    pub metadata: Empty,
    /// One per sample.
    pub items: Vec<ExternalMetricValue>,
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

/// `NodeMetricsList` or `PodMetricsList`.
#[derive(Debug, Serialize)]
pub struct MetricsList<T> {
    /// `NodeMetricsList` or `PodMetricsList`.
    pub kind: &'static str,
    /// `metrics.k8s.io/v1beta1`.
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    /// Always empty.
    pub metadata: Empty,
    /// The objects.
    pub items: Vec<T>,
}
