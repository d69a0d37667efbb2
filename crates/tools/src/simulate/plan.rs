//! Turns each HPA metric into the PromQL `serve` would run for it, through the same rules code (custom, external and resource queries), for a range query over history.

use super::Error;
use super::hpa::{Hpa, HpaMetric, Source};
use prom_adapter_core::model::GroupResource;
use prom_adapter_core::plan::{self, ExternalPlanError, QueryPlan, usage_query};
use prom_adapter_core::promql::LabelSelector;
use prom_adapter_core::registry::Registry;
use prom_adapter_core::request::{CustomRequest, ObjectName};
use prom_adapter_core::resources::ResourceTable;
use prom_adapter_core::rules::RuleSet;

/// A metric's query, and how to read its series.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    /// The HPA metric.
    pub metric: HpaMetric,
    /// The PromQL.
    pub query: String,
    /// For Pods and Resource metrics: the label naming the pod in each series.
    pub pod_label: Option<String>,
    /// The rule's named backend (`None`: the default), as `serve` would ask it.
    pub backend: Option<String>,
}

/// The label that holds pod names and the one that holds namespaces, for a Pods or Resource
/// metric, and the backend of its rule: where to look for the target's pods.
pub fn pod_labels(
    rules: &RuleSet,
    registry: &Registry,
    table: &ResourceTable,
    hpa: &Hpa,
) -> Option<(String, String, Option<String>)> {
    let pods = GroupResource::new("", "pods");
    let namespaces = GroupResource::new("", "namespaces");
    for metric in &hpa.metrics {
        let mapping = match &metric.source {
            Source::Pods { metric, .. } => registry.custom(&pods, true, metric).map(|source| {
                let rule = &rules.custom[source.rule];
                (&rule.resources, rule.backend_name())
            }),
            Source::Resource { name } => rules.resource.as_ref().map(|r| {
                if name == "cpu" {
                    (&r.cpu.resources, None)
                } else {
                    (&r.memory.resources, None)
                }
            }),
            _ => None,
        };
        if let Some((mapping, backend)) = mapping
            && let (Ok(pod), Ok(namespace)) = (
                mapping.label_for_resource(&pods, table),
                mapping.label_for_resource(&namespaces, table),
            )
        {
            return Some((pod, namespace, backend.map(str::to_owned)));
        }
    }
    None
}

/// Plans every metric of `hpa`; `pods` are the names of the target's pods over the range.
pub fn plan(
    rules: &RuleSet,
    registry: &Registry,
    table: &ResourceTable,
    hpa: &Hpa,
    pods: &[String],
) -> Result<Vec<MetricQuery>, Error> {
    hpa.metrics
        .iter()
        .map(|metric| plan_one(rules, registry, table, hpa, metric, pods))
        .collect()
}

fn plan_one(
    rules: &RuleSet,
    registry: &Registry,
    table: &ResourceTable,
    hpa: &Hpa,
    metric: &HpaMetric,
    pods: &[String],
) -> Result<MetricQuery, Error> {
    let fail = |reason: String| Error::Metric {
        metric: metric.label(),
        reason,
    };
    let no_pods = || {
        fail(format!(
            "Prometheus has no pods of {} in namespace {} in this range (see --pods)",
            hpa.target_name, hpa.namespace
        ))
    };
    match &metric.source {
        Source::Object {
            resource,
            name,
            metric: metric_name,
            selector,
        } => {
            let info = table
                .resolve(&GroupResource::parse(resource))
                .ok_or_else(|| fail(format!("{resource} is not a resource the adapter knows")))?;
            let request = CustomRequest {
                resource: info.group_resource().to_string(),
                namespace: info.namespaced.then(|| hpa.namespace.clone()),
                name: ObjectName::Named(name.clone()),
                metric: metric_name.clone(),
                label_selector: LabelSelector::default(),
                metric_selector: selector.clone(),
            };
            let path = custom_path(&request, name);
            let plan = QueryPlan::new(rules, registry, table, &request).map_err(|e| {
                fail(format!(
                    "{e} in this range; `prom-adapter explain --why '{path}'` says why"
                ))
            })?;
            let query = plan
                .query(table, &request, std::slice::from_ref(name))
                .map_err(|e| fail(e.to_string()))?;
            Ok(MetricQuery {
                metric: metric.clone(),
                query,
                pod_label: None,
                backend: plan.rule.backend_name().map(str::to_owned),
            })
        }
        Source::Pods {
            metric: metric_name,
            selector,
        } => {
            let request = CustomRequest {
                resource: "pods".into(),
                namespace: Some(hpa.namespace.clone()),
                name: ObjectName::All,
                metric: metric_name.clone(),
                label_selector: LabelSelector::default(),
                metric_selector: selector.clone(),
            };
            let path = custom_path(&request, "*");
            let plan = QueryPlan::new(rules, registry, table, &request).map_err(|e| {
                fail(format!(
                    "{e} in this range; `prom-adapter explain --why '{path}'` says why"
                ))
            })?;
            if pods.is_empty() {
                return Err(no_pods());
            }
            let query = plan
                .query(table, &request, pods)
                .map_err(|e| fail(e.to_string()))?;
            Ok(MetricQuery {
                metric: metric.clone(),
                query,
                pod_label: Some(plan.label.clone()),
                backend: plan.rule.backend_name().map(str::to_owned),
            })
        }
        Source::External {
            metric: metric_name,
            selector,
        } => {
            let planned = plan::external_query(
                rules,
                registry,
                table,
                &hpa.namespace,
                metric_name,
                selector,
            )
            .map_err(|e| match e {
                ExternalPlanError::NoSuchMetric => fail(format!(
                    "no externalRules entry serves it in this range; `prom-adapter explain --why '/apis/external.metrics.k8s.io/v1beta1/namespaces/{}/{metric_name}'` says why",
                    hpa.namespace
                )),
                ExternalPlanError::Query { error, .. } => fail(error.to_string()),
            })?;
            Ok(MetricQuery {
                metric: metric.clone(),
                query: planned.query,
                pod_label: None,
                backend: rules.external[planned.rule]
                    .backend_name()
                    .map(str::to_owned),
            })
        }
        Source::Resource { name } => {
            let resource_rules = rules
                .resource
                .as_ref()
                .ok_or_else(|| fail("the rules file has no resourceRules".into()))?;
            let rule = if name == "cpu" {
                &resource_rules.cpu
            } else {
                &resource_rules.memory
            };
            if pods.is_empty() {
                return Err(no_pods());
            }
            let usage = usage_query(
                rule,
                table,
                &GroupResource::new("", "pods"),
                Some(&hpa.namespace),
                pods,
            )
            .map_err(|e| fail(e.to_string()))?;
            // The API sums a pod's containers; `label` is a validated label name.
            Ok(MetricQuery {
                metric: metric.clone(),
                query: format!("sum by ({}) ({})", usage.label, usage.query),
                pod_label: Some(usage.label),
                backend: None,
            })
        }
    }
}

fn custom_path(request: &CustomRequest, name: &str) -> String {
    match &request.namespace {
        Some(ns) => format!(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/{}/{name}/{}",
            request.resource, request.metric
        ),
        None => format!(
            "/apis/custom.metrics.k8s.io/v1beta2/{}/{name}/{}",
            request.resource, request.metric
        ),
    }
}
