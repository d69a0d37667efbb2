//! Reads an `autoscaling/v2` HorizontalPodAutoscaler manifest into the controller's rules (defaults filled in as kube-apiserver fills them) and its metrics.

use k8s_openapi::api::autoscaling::v2 as api;

use super::Error;
use super::controller::{
    Behavior, HpaRules, Policy, PolicyKind, ScalingRules, SelectPolicy, Target,
};
use prom_adapter_core::model::parse_quantity_milli;
use prom_adapter_core::promql::LabelSelector;

/// Where a metric comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// `type: Object`: one object's custom metric.
    Object {
        /// The described object's resource as `kind.group` (`ingress.networking.k8s.io`).
        resource: String,
        /// Its name.
        name: String,
        /// The metric.
        metric: String,
        /// `metric.selector`.
        selector: LabelSelector,
    },
    /// `type: Pods`: a custom metric of each pod.
    Pods {
        /// The metric.
        metric: String,
        /// `metric.selector`.
        selector: LabelSelector,
    },
    /// `type: External`.
    External {
        /// The metric.
        metric: String,
        /// `metric.selector`.
        selector: LabelSelector,
    },
    /// `type: Resource`: `cpu` or `memory` from `resourceRules`.
    Resource {
        /// `cpu` or `memory`.
        name: String,
    },
}

/// One entry of `spec.metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaMetric {
    /// Where its values come from.
    pub source: Source,
    /// What it is compared with.
    pub target: Target,
}

impl HpaMetric {
    /// A short name for tables: `Object ingresses/web nginx_requests`.
    pub fn label(&self) -> String {
        match &self.source {
            Source::Object {
                resource,
                name,
                metric,
                ..
            } => format!("{metric} ({resource} {name})"),
            Source::Pods { metric, .. } => format!("{metric} (pods)"),
            Source::External { metric, .. } => format!("{metric} (external)"),
            Source::Resource { name } => format!("{name} (resource)"),
        }
    }
}

/// An HPA, ready to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Hpa {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (`default` when unset).
    pub namespace: String,
    /// `spec.scaleTargetRef.name`.
    pub target_name: String,
    /// Replica bounds and behavior.
    pub rules: HpaRules,
    /// `spec.metrics`, in order.
    pub metrics: Vec<HpaMetric>,
}

/// The most replicas a simulation replays: far above any real Deployment, and a bound on the
/// per-pod values a sync holds.
pub const MAX_REPLICAS: i32 = 100_000;

/// Parses a manifest's YAML.
pub fn parse(yaml: &str) -> Result<Hpa, Error> {
    let hpa: api::HorizontalPodAutoscaler =
        serde_saphyr::from_str(yaml).map_err(|e| Error::Manifest(e.to_string()))?;
    let spec = hpa
        .spec
        .ok_or_else(|| Error::Manifest("the HorizontalPodAutoscaler has no spec".into()))?;
    let metrics = spec
        .metrics
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, m)| metric(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    if metrics.is_empty() {
        return Err(Error::Manifest(
            "spec.metrics is empty: kube-apiserver would default it to 80% CPU utilization; write that metric out".into(),
        ));
    }
    let min_replicas = spec.min_replicas.unwrap_or(1);
    if spec.max_replicas > MAX_REPLICAS {
        return Err(Error::Manifest(format!(
            "spec.maxReplicas {} is more than the {MAX_REPLICAS} replicas a simulation replays (the conserving pod model keeps a value per simulated pod)",
            spec.max_replicas
        )));
    }
    if spec.max_replicas < 1 || min_replicas < 0 || min_replicas > spec.max_replicas {
        return Err(Error::Manifest(format!(
            "spec.minReplicas {min_replicas} and spec.maxReplicas {} are not a range: kube-apiserver needs 1 ≤ maxReplicas and minReplicas ≤ maxReplicas",
            spec.max_replicas
        )));
    }
    Ok(Hpa {
        name: hpa.metadata.name.unwrap_or_default(),
        namespace: hpa.metadata.namespace.unwrap_or_else(|| "default".into()),
        target_name: spec.scale_target_ref.name,
        rules: HpaRules {
            min_replicas,
            max_replicas: spec.max_replicas,
            behavior: spec.behavior.map(behavior).transpose()?,
            legacy_downscale_window_seconds: 300,
        },
        metrics,
    })
}

fn metric(index: usize, spec: api::MetricSpec) -> Result<HpaMetric, Error> {
    let at = |field: &str| format!("spec.metrics[{index}].{field}");
    let missing = |field: &str| Error::Manifest(format!("{} is missing", at(field)));
    let selector = |id: &api::MetricIdentifier| -> Result<LabelSelector, Error> {
        let Some(selector) = &id.selector else {
            return Ok(LabelSelector::default());
        };
        let mut terms: Vec<String> = selector
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for expression in selector.match_expressions.iter().flatten() {
            let values = expression.values.clone().unwrap_or_default().join(",");
            terms.push(match expression.operator.as_str() {
                "In" => format!("{} in ({values})", expression.key),
                "NotIn" => format!("{} notin ({values})", expression.key),
                "Exists" => expression.key.clone(),
                "DoesNotExist" => format!("!{}", expression.key),
                other => {
                    return Err(Error::Manifest(format!(
                        "{}: unknown operator {other:?}",
                        at("metric.selector")
                    )));
                }
            });
        }
        LabelSelector::parse(&terms.join(","))
            .map_err(|e| Error::Manifest(format!("{}: {e}", at("metric.selector"))))
    };
    let (source, target) = match spec.type_.as_str() {
        "Object" => {
            let object = spec.object.ok_or_else(|| missing("object"))?;
            let described = &object.described_object;
            let group = described
                .api_version
                .as_deref()
                .and_then(|v| v.split_once('/'))
                .map(|(group, _)| group.to_owned());
            let kind = described.kind.to_ascii_lowercase();
            let resource = match group {
                Some(group) => format!("{kind}.{group}"),
                None => kind,
            };
            (
                Source::Object {
                    resource,
                    name: described.name.clone(),
                    metric: object.metric.name.clone(),
                    selector: selector(&object.metric)?,
                },
                object.target,
            )
        }
        "Pods" => {
            let pods = spec.pods.ok_or_else(|| missing("pods"))?;
            (
                Source::Pods {
                    metric: pods.metric.name.clone(),
                    selector: selector(&pods.metric)?,
                },
                pods.target,
            )
        }
        "External" => {
            let external = spec.external.ok_or_else(|| missing("external"))?;
            (
                Source::External {
                    metric: external.metric.name.clone(),
                    selector: selector(&external.metric)?,
                },
                external.target,
            )
        }
        "Resource" => {
            let resource = spec.resource.ok_or_else(|| missing("resource"))?;
            if !matches!(resource.name.as_str(), "cpu" | "memory") {
                return Err(Error::Manifest(format!(
                    "{}: only cpu and memory come from resourceRules, not {:?}",
                    at("resource.name"),
                    resource.name
                )));
            }
            (
                Source::Resource {
                    name: resource.name,
                },
                resource.target,
            )
        }
        other => {
            return Err(Error::Manifest(format!(
                "{}: {other:?} is not simulated (Object, Pods, External and Resource are)",
                at("type")
            )));
        }
    };
    let quantity = |q: Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
                    field: &str| {
        let q = q.ok_or_else(|| missing(field))?;
        parse_quantity_milli(&q.0).map_err(|e| Error::Manifest(format!("{}: {e}", at(field))))
    };
    let target = match target.type_.as_str() {
        "Value" => Target::Value(quantity(target.value, "target.value")?),
        "AverageValue" => {
            Target::AverageValue(quantity(target.average_value, "target.averageValue")?)
        }
        "Utilization" => Target::Utilization(
            target
                .average_utilization
                .ok_or_else(|| missing("target.averageUtilization"))?,
        ),
        other => {
            return Err(Error::Manifest(format!(
                "{}: unknown target type {other:?}",
                at("target.type")
            )));
        }
    };
    let valid = matches!(
        (&source, target),
        (
            Source::Object { .. } | Source::External { .. },
            Target::Value(_) | Target::AverageValue(_),
        ) | (Source::Pods { .. }, Target::AverageValue(_))
            | (
                Source::Resource { .. },
                Target::AverageValue(_) | Target::Utilization(_)
            )
    );
    if !valid {
        return Err(Error::Manifest(format!(
            "{}: a {} metric cannot have a {:?} target (kube-apiserver rejects it)",
            at("target.type"),
            spec.type_,
            target
        )));
    }
    Ok(HpaMetric { source, target })
}

fn behavior(spec: api::HorizontalPodAutoscalerBehavior) -> Result<Behavior, Error> {
    Ok(Behavior {
        scale_up: rules(spec.scale_up, ScalingRules::default_scale_up(), "scaleUp")?,
        scale_down: rules(
            spec.scale_down,
            ScalingRules::default_scale_down(),
            "scaleDown",
        )?,
    })
}

fn rules(
    spec: Option<api::HPAScalingRules>,
    defaults: ScalingRules,
    direction: &str,
) -> Result<ScalingRules, Error> {
    let Some(spec) = spec else {
        return Ok(defaults);
    };
    let at = |field: &str| format!("spec.behavior.{direction}.{field}");
    let select_policy = match spec.select_policy.as_deref() {
        None | Some("Max") => SelectPolicy::Max,
        Some("Min") => SelectPolicy::Min,
        Some("Disabled") => SelectPolicy::Disabled,
        Some(other) => {
            return Err(Error::Manifest(format!(
                "{}: {other:?} is not Max, Min or Disabled",
                at("selectPolicy")
            )));
        }
    };
    let policies = match spec.policies {
        None => defaults.policies,
        Some(policies) => policies
            .into_iter()
            .map(|p| {
                let kind = match p.type_.as_str() {
                    "Pods" => PolicyKind::Pods,
                    "Percent" => PolicyKind::Percent,
                    other => {
                        return Err(Error::Manifest(format!(
                            "{}: {other:?} is not Pods or Percent",
                            at("policies[].type")
                        )));
                    }
                };
                Ok(Policy {
                    kind,
                    value: p.value,
                    period_seconds: i64::from(p.period_seconds),
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let tolerance = spec
        .tolerance
        .map(|q| {
            parse_quantity_milli(&q.0)
                .map(|milli| milli as f64 / 1000.0)
                .map_err(|e| Error::Manifest(format!("{}: {e}", at("tolerance"))))
        })
        .transpose()?;
    Ok(ScalingRules {
        stabilization_window_seconds: spec
            .stabilization_window_seconds
            .map_or(defaults.stabilization_window_seconds, i64::from),
        select_policy,
        policies,
        tolerance,
    })
}

/// A quantity as kube-apiserver prints it: whole units when they are whole, else milli-units.
fn quantity(milli: i64) -> k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    k8s_openapi::apimachinery::pkg::api::resource::Quantity(if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    })
}

fn api_rules(rules: &ScalingRules) -> api::HPAScalingRules {
    api::HPAScalingRules {
        stabilization_window_seconds: i32::try_from(rules.stabilization_window_seconds).ok(),
        select_policy: Some(
            match rules.select_policy {
                SelectPolicy::Max => "Max",
                SelectPolicy::Min => "Min",
                SelectPolicy::Disabled => "Disabled",
            }
            .into(),
        ),
        policies: Some(
            rules
                .policies
                .iter()
                .map(|p| api::HPAScalingPolicy {
                    type_: match p.kind {
                        PolicyKind::Pods => "Pods",
                        PolicyKind::Percent => "Percent",
                    }
                    .into(),
                    value: p.value,
                    period_seconds: i32::try_from(p.period_seconds).unwrap_or(i32::MAX),
                })
                .collect(),
        ),
        tolerance: rules
            .tolerance
            .map(|t| quantity((t * 1000.0).round() as i64)),
    }
}

/// `manifest` (the YAML the HPA was read from) with `rules` and each metric's `targets` in place
/// of its own, and what only the cluster sets (status, uid, resourceVersion, managedFields)
/// removed: ready for `kubectl apply`.
pub fn with_settings(
    manifest: &str,
    rules: &HpaRules,
    targets: &[Target],
) -> Result<String, Error> {
    let mut hpa: api::HorizontalPodAutoscaler =
        serde_saphyr::from_str(manifest).map_err(|e| Error::Manifest(e.to_string()))?;
    hpa.status = None;
    let metadata = &mut hpa.metadata;
    metadata.uid = None;
    metadata.resource_version = None;
    metadata.managed_fields = None;
    metadata.creation_timestamp = None;
    metadata.generation = None;
    let spec = hpa
        .spec
        .as_mut()
        .ok_or_else(|| Error::Manifest("the HorizontalPodAutoscaler has no spec".into()))?;
    spec.min_replicas = Some(rules.min_replicas);
    spec.max_replicas = rules.max_replicas;
    spec.behavior = rules
        .behavior
        .as_ref()
        .map(|b| api::HorizontalPodAutoscalerBehavior {
            scale_up: Some(api_rules(&b.scale_up)),
            scale_down: Some(api_rules(&b.scale_down)),
        });
    for (metric, target) in spec.metrics.iter_mut().flatten().zip(targets) {
        let spec_target = match metric.type_.as_str() {
            "Object" => metric.object.as_mut().map(|o| &mut o.target),
            "Pods" => metric.pods.as_mut().map(|p| &mut p.target),
            "External" => metric.external.as_mut().map(|e| &mut e.target),
            "Resource" => metric.resource.as_mut().map(|r| &mut r.target),
            _ => None,
        };
        let Some(spec_target) = spec_target else {
            continue;
        };
        *spec_target = match *target {
            Target::Value(m) => api::MetricTarget {
                type_: "Value".into(),
                value: Some(quantity(m)),
                ..Default::default()
            },
            Target::AverageValue(m) => api::MetricTarget {
                type_: "AverageValue".into(),
                average_value: Some(quantity(m)),
                ..Default::default()
            },
            Target::Utilization(p) => api::MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(p),
                ..Default::default()
            },
        };
    }
    serde_saphyr::to_string(&hpa).map_err(|e| Error::Manifest(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_ingress_example_and_fills_behavior_defaults() {
        let hpa = parse(include_str!(
            "../../../../charts/prom-adapter/examples/ingress-nginx-hpa.yaml"
        ))
        .unwrap();
        assert_eq!(
            (hpa.namespace.as_str(), hpa.target_name.as_str()),
            ("default", "web")
        );
        assert_eq!((hpa.rules.min_replicas, hpa.rules.max_replicas), (2, 20));
        assert_eq!(hpa.rules.behavior, None, "no behavior: the legacy path");
        assert_eq!(
            hpa.metrics[0].source,
            Source::Object {
                resource: "ingress.networking.k8s.io".into(),
                name: "web".into(),
                metric: "nginx_ingress_requests_per_second".into(),
                selector: LabelSelector::default(),
            }
        );
        assert_eq!(hpa.metrics[0].target, Target::AverageValue(50_000));

        let with_behavior = parse(
            r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: q, namespace: jobs}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: worker}
  maxReplicas: 10
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 60
      tolerance: 50m
      policies: [{type: Pods, value: 1, periodSeconds: 30}]
  metrics:
  - type: External
    external:
      metric: {name: queue_messages_ready, selector: {matchLabels: {queue: orders}}}
      target: {type: AverageValue, averageValue: 500m}
"#,
        )
        .unwrap();
        let behavior = with_behavior.rules.behavior.unwrap();
        assert_eq!(behavior.scale_up, ScalingRules::default_scale_up());
        assert_eq!(behavior.scale_down.stabilization_window_seconds, 60);
        assert_eq!(behavior.scale_down.tolerance, Some(0.05));
        assert_eq!(behavior.scale_down.policies.len(), 1);
        assert_eq!(with_behavior.rules.min_replicas, 1);
        assert_eq!(with_behavior.metrics[0].target, Target::AverageValue(500));
        let Source::External { selector, .. } = &with_behavior.metrics[0].source else {
            panic!("an external metric");
        };
        assert_eq!(selector.to_string(), "queue=orders");
    }

    #[test]
    fn invalid_manifests_name_the_field() {
        let error = parse("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {kind: Deployment, name: x}\n  maxReplicas: 3\n  metrics:\n  - type: Pods\n    pods:\n      metric: {name: m}\n      target: {type: Value, value: '1'}\n")
            .unwrap_err();
        assert!(
            error.to_string().contains("spec.metrics[0].target.type"),
            "{error}"
        );
        // Replica bounds kube-apiserver refuses would make the replay clamp an empty range, and
        // more replicas than a simulation holds are refused too.
        for (min, max) in [(1, 0), (5, 3), (1, MAX_REPLICAS + 1)] {
            let error = parse(&format!("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: x}}\nspec:\n  scaleTargetRef: {{kind: Deployment, name: x}}\n  minReplicas: {min}\n  maxReplicas: {max}\n  metrics:\n  - type: Pods\n    pods:\n      metric: {{name: m}}\n      target: {{type: AverageValue, averageValue: '1'}}\n"))
                .unwrap_err();
            assert!(error.to_string().contains("spec.maxReplicas"), "{error}");
        }
    }
}
