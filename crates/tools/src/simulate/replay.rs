//! Replays the controller over metric histories: one sync every period, each metric's value and proposal, the replicas, the HPA's condition, a summary, and plain-words explanations of a moment.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::controller::{
    Conditions, Controller, Proposal, SyncResult, Target, average_value_replicas,
    pods_average_replicas, single_value_replicas, utilization_replicas,
};
use super::hpa::{Hpa, HpaMetric, Source};
use prom_adapter_backend::prometheus::RangeSeries;

/// How a per-pod metric follows the simulated replica count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PodModel {
    /// The pods as they were: their own series. Simulated pods beyond the observed ones have no
    /// value (missing); with fewer simulated pods, the first ones by name count.
    Observed,
    /// The observed total spread over the simulated pods: the load stays, the replicas share it.
    Conserving,
}

/// A metric's history and how to read it.
#[derive(Debug, Clone)]
pub struct MetricHistory {
    /// The HPA metric.
    pub metric: HpaMetric,
    /// The PromQL its history came from.
    pub query: String,
    /// For per-pod metrics, the label that names the pod; `None` sums every series.
    pub pod_label: Option<String>,
    /// The range query's result.
    pub series: Vec<RangeSeries>,
}

/// Simulation settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// First sync (Unix seconds).
    pub start: i64,
    /// Last sync at or before this.
    pub end: i64,
    /// Seconds between syncs (15).
    pub sync_seconds: i64,
    /// Replicas before the first sync.
    pub initial_replicas: i32,
    /// For Pods and Resource metrics.
    pub pod_model: PodModel,
    /// Each pod's request for a Resource `Utilization` metric, in milli-units, by resource name.
    pub pod_requests: HashMap<String, i64>,
    /// Direction changes closer than this count as oscillations.
    pub oscillation_window_seconds: i64,
}

/// One metric at one sync.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricStep {
    /// The value compared with the target (the sum for Object and External metrics, the
    /// per-pod average for Pods and Resource metrics), in the metric's units.
    pub value: Option<f64>,
    /// The replicas this metric proposed.
    pub proposal: Option<i32>,
    /// Why it proposed nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A recommendation that stabilization holds on to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hold {
    /// The recommendation held.
    pub recommendation: i32,
    /// When it was made.
    pub since: i64,
    /// The stabilization window, seconds.
    pub window: i64,
    /// The first second at which it no longer counts.
    pub until: i64,
}

/// One sync.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Unix seconds.
    pub time: i64,
    /// Replicas when the sync began.
    pub current: i32,
    /// Each metric, in the HPA's order.
    pub metrics: Vec<MetricStep>,
    /// The maximum proposal.
    pub desired: Option<i32>,
    /// After stabilization.
    pub stabilized: Option<i32>,
    /// Replicas after the sync.
    pub replicas: i32,
    /// The condition that explains the result (`ScaleDownStabilized`, `ScaleUpLimit`, …).
    pub reason: &'static str,
    /// Every condition.
    pub conditions: Conditions,
    /// The metrics' failure, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The recommendation stabilization held on to, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<Hold>,
}

/// The run as a whole.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Syncs that raised the replicas.
    pub scale_ups: usize,
    /// Syncs that lowered them.
    pub scale_downs: usize,
    /// Direction changes within the oscillation window.
    pub oscillations: usize,
    /// Seconds spent at minReplicas.
    pub seconds_at_min: i64,
    /// Seconds spent at maxReplicas.
    pub seconds_at_max: i64,
    /// Fewest and most replicas.
    pub replicas_range: (i32, i32),
}

/// A replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Simulation {
    /// Which pod model per-pod metrics used.
    pub pod_model: PodModel,
    /// Every sync.
    pub steps: Vec<Step>,
    /// Totals.
    pub summary: Summary,
}

/// Each metric's observations on the sync grid, computed once from its history: what every
/// sync reads, so that many replays (the search of `--recommend`) share one pass over the series.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The sync times.
    pub times: Vec<i64>,
    /// Per HPA metric, in its order.
    pub metrics: Vec<Observations>,
    /// Per HPA metric: each pod's request for a Resource metric, in milli-units (looked up once,
    /// not at every sync).
    requests: Vec<Option<i64>>,
}

/// One metric's values at every sync, in milli-units as the API serves them.
#[derive(Debug, Clone)]
pub struct Observations {
    /// One value per pod (sorted by pod name) rather than one total.
    pub per_pod: bool,
    offsets: Vec<usize>,
    values: Vec<i64>,
}

impl Observations {
    /// The values at sync `index`: the total for Object and External metrics, each pod's value
    /// otherwise; empty when Prometheus had no data.
    pub fn at(&self, index: usize) -> &[i64] {
        &self.values[self.offsets[index]..self.offsets[index + 1]]
    }

    /// The metric's total at sync `index` (the sum over pods for per-pod metrics).
    pub fn total(&self, index: usize) -> Option<i64> {
        let values = self.at(index);
        (!values.is_empty()).then(|| values.iter().sum())
    }
}

impl Prepared {
    /// Reads the histories on the grid of `options`, with every value multiplied by `scale`
    /// (1 for the history as it was; the sensitivity of `--recommend` uses 0.8 and 1.2).
    pub fn new(hpa: &Hpa, histories: &[MetricHistory], options: &Options, scale: f64) -> Self {
        let mut times = Vec::new();
        let mut time = options.start;
        while time <= options.end {
            times.push(time);
            time += options.sync_seconds.max(1);
        }
        let metrics = histories
            .iter()
            .map(|history| {
                let per_pod = history.pod_label.is_some();
                let indexed: Vec<(String, BTreeMap<i64, f64>)> = history
                    .series
                    .iter()
                    .map(|s| {
                        let key = history
                            .pod_label
                            .as_ref()
                            .and_then(|l| s.labels.get(l).cloned())
                            .unwrap_or_default();
                        let points = s
                            .points
                            .iter()
                            .map(|(t, v)| (t.round() as i64, *v))
                            .collect();
                        (key, points)
                    })
                    .collect();
                let mut offsets = Vec::with_capacity(times.len() + 1);
                let mut values = Vec::new();
                offsets.push(0);
                for time in &times {
                    let mut at: Vec<(&str, i64)> = indexed
                        .iter()
                        .filter_map(|(key, points)| {
                            points.get(time).map(|v| (key.as_str(), milli(*v * scale)))
                        })
                        .collect();
                    if per_pod {
                        at.sort();
                        values.extend(at.iter().map(|(_, v)| *v));
                    } else if !at.is_empty() {
                        values.push(at.iter().map(|(_, v)| *v).sum());
                    }
                    offsets.push(values.len());
                }
                Observations {
                    per_pod,
                    offsets,
                    values,
                }
            })
            .collect();
        Prepared {
            times,
            metrics,
            requests: hpa
                .metrics
                .iter()
                .map(|m| match &m.source {
                    Source::Resource { name } => options.pod_requests.get(name).copied(),
                    _ => None,
                })
                .collect(),
        }
    }

    /// Each pod's request for HPA metric `index` when it is a Resource metric, in milli-units.
    pub fn request(&self, index: usize) -> Option<i64> {
        self.requests.get(index).copied().flatten()
    }
}

/// What a replay shows an observer at each sync.
pub struct SyncView<'a> {
    /// The sync's position on the grid.
    pub index: usize,
    /// Unix seconds.
    pub time: i64,
    /// Replicas when the sync began.
    pub current: i32,
    /// Each metric's value as compared with its target (`None` when it had none).
    pub values: &'a [Option<f64>],
    /// Each metric's proposal.
    pub proposals: &'a [Proposal],
    /// What the controller decided.
    pub result: SyncResult,
    /// The controller after the sync.
    pub controller: &'a Controller,
}

/// The replay itself: the controller over `prepared`, sync after sync, starting from
/// `options.initial_replicas`; `on_sync` sees each sync and may stop the run. `simulate` and
/// every candidate of `--recommend` go through here.
pub fn drive(
    hpa: &Hpa,
    prepared: &Prepared,
    options: &Options,
    mut on_sync: impl FnMut(SyncView<'_>) -> std::ops::ControlFlow<()>,
) {
    let tolerances = hpa.rules.tolerances();
    let mut controller = Controller::new();
    let mut replicas = options.initial_replicas;
    let mut values = Vec::with_capacity(hpa.metrics.len());
    let mut proposals = Vec::with_capacity(hpa.metrics.len());
    for (index, &time) in prepared.times.iter().enumerate() {
        let current = replicas;
        values.clear();
        proposals.clear();
        for (m, (metric, observations)) in hpa.metrics.iter().zip(&prepared.metrics).enumerate() {
            let (value, proposal) = observe(
                metric,
                observations.at(index),
                observations.per_pod,
                prepared.requests[m],
                current,
                options.pod_model,
                tolerances,
            );
            values.push(value);
            proposals.push(proposal);
        }
        let result = controller.sync(&hpa.rules, time, current, &proposals);
        replicas = result.replicas;
        let view = SyncView {
            index,
            time,
            current,
            values: &values,
            proposals: &proposals,
            result,
            controller: &controller,
        };
        if on_sync(view).is_break() {
            return;
        }
    }
}

/// Runs the controller from `options.start` to `options.end`.
pub fn replay(hpa: &Hpa, histories: &[MetricHistory], options: &Options) -> Simulation {
    let prepared = Prepared::new(hpa, histories, options, 1.0);
    replay_prepared(hpa, &prepared, options)
}

/// [`replay`] over observations already prepared, every sync recorded.
pub fn replay_prepared(hpa: &Hpa, prepared: &Prepared, options: &Options) -> Simulation {
    let mut steps = Vec::with_capacity(prepared.times.len());
    drive(hpa, prepared, options, |view| {
        let result = view.result;
        let held = hold(
            hpa,
            view.controller,
            result.stabilization,
            result.stabilized,
            view.time,
        );
        let replicas = result.replicas;
        // The one condition that says most about this sync: a metric failure or disabled
        // scaling, then a limit, then stabilization, then a plain rescale.
        let conditions = &result.conditions;
        let reason = if !matches!(conditions.scaling_active, "ValidMetricFound" | "") {
            conditions.scaling_active
        } else if !matches!(conditions.scaling_limited, "DesiredWithinRange" | "") {
            conditions.scaling_limited
        } else if let Some(stabilization) = result.stabilization {
            stabilization
        } else if replicas != view.current {
            "SucceededRescale"
        } else {
            "DesiredWithinRange"
        };
        let metrics = view
            .values
            .iter()
            .zip(view.proposals)
            .map(|(value, proposal)| match proposal {
                Proposal::Replicas(r) => MetricStep {
                    value: *value,
                    proposal: Some(*r),
                    error: None,
                },
                Proposal::Failed { message, .. } => MetricStep {
                    value: None,
                    proposal: None,
                    error: Some(message.clone()),
                },
            })
            .collect();
        steps.push(Step {
            time: view.time,
            current: view.current,
            metrics,
            desired: result.desired,
            stabilized: result.stabilized,
            replicas,
            reason,
            conditions: result.conditions,
            error: result.error,
            held,
        });
        std::ops::ControlFlow::Continue(())
    });
    let summary = summarize(hpa, &steps, options);
    Simulation {
        pod_model: options.pod_model,
        steps,
        summary,
    }
}

/// Milli-units as the API serves them: NaN is 0, and values are truncated to thousandths.
fn milli(value: f64) -> i64 {
    if value.is_nan() {
        0
    } else {
        (value * 1000.0)
            .trunc()
            .clamp(i64::MIN as f64, i64::MAX as f64) as i64
    }
}

/// One metric's value and proposal at a sync, from its observations there.
#[allow(clippy::too_many_arguments)]
fn observe(
    metric: &HpaMetric,
    at: &[i64],
    per_pod: bool,
    request: Option<i64>,
    current: i32,
    pod_model: PodModel,
    tolerances: super::controller::Tolerances,
) -> (Option<f64>, Proposal) {
    let condition = match metric.source {
        Source::Object { .. } => "FailedGetObjectMetric",
        Source::Pods { .. } => "FailedGetPodsMetric",
        Source::External { .. } => "FailedGetExternalMetric",
        Source::Resource { .. } => "FailedGetResourceMetric",
    };
    let failed = |message: String| (None, Proposal::Failed { condition, message });
    if at.is_empty() {
        return failed("no data from Prometheus at this time".into());
    }
    let (value, proposal) = if !per_pod {
        let usage = at[0];
        let proposal = match metric.target {
            Target::Value(target) => {
                single_value_replicas(current, current, usage, target, tolerances)
            }
            Target::AverageValue(target) => {
                average_value_replicas(current, usage, target, tolerances)
            }
            Target::Utilization(_) => {
                return failed("Utilization applies to Resource metrics only".into());
            }
        };
        (usage as f64 / 1000.0, Ok(proposal))
    } else {
        let pods = usize::try_from(current).unwrap_or(0);
        let conserved;
        let (values, missing): (&[i64], usize) = match pod_model {
            PodModel::Observed => (&at[..pods.min(at.len())], pods.saturating_sub(at.len())),
            PodModel::Conserving => {
                let total: i64 = at.iter().sum();
                conserved = vec![total / i64::from(current.max(1)); pods];
                (&conserved, 0)
            }
        };
        if values.is_empty() {
            return failed("no pods to measure".into());
        }
        let average = values.iter().sum::<i64>() as f64 / values.len() as f64 / 1000.0;
        let proposal = match metric.target {
            Target::AverageValue(target) => {
                pods_average_replicas(current, values, missing, target, tolerances)
            }
            Target::Utilization(percent) => match request {
                Some(request) => {
                    let pairs: Vec<(i64, i64)> = values.iter().map(|v| (*v, request)).collect();
                    utilization_replicas(
                        current,
                        &pairs,
                        &vec![request; missing],
                        percent,
                        tolerances,
                    )
                }
                None => {
                    let resource = match &metric.source {
                        Source::Resource { name } => name.as_str(),
                        _ => "",
                    };
                    Err(format!(
                        "Utilization needs each pod's {resource} request, which Prometheus does not have: give --pod-request {resource}=QUANTITY"
                    ))
                }
            },
            Target::Value(_) => Err("a per-pod metric has no Value target".into()),
        };
        (average, proposal)
    };
    match proposal {
        Ok(replicas) => (Some(value), Proposal::Replicas(replicas)),
        Err(message) => failed(message),
    }
}

/// When stabilization changed the recommendation: which recommendation it held, and until when.
fn hold(
    hpa: &Hpa,
    controller: &Controller,
    stabilization: Option<&str>,
    stabilized: Option<i32>,
    now: i64,
) -> Option<Hold> {
    let stabilized = stabilized?;
    let (window, down) = match (stabilization?, &hpa.rules.behavior) {
        ("ScaleDownStabilized", Some(b)) => (b.scale_down.stabilization_window_seconds, true),
        ("ScaleDownStabilized", None) => (hpa.rules.legacy_downscale_window_seconds, true),
        ("ScaleUpStabilized", Some(b)) => (b.scale_up.stabilization_window_seconds, false),
        _ => return None,
    };
    // The value stays until every recommendation at least as far from the new one leaves.
    let legacy = hpa.rules.behavior.is_none();
    let (since, recommendation) = controller
        .recommendations_within(now, window, legacy)
        .into_iter()
        .filter(|(_, r)| {
            if down {
                *r >= stabilized
            } else {
                *r <= stabilized
            }
        })
        .max_by_key(|(t, _)| *t)?;
    Some(Hold {
        recommendation,
        since,
        window,
        until: since + window + i64::from(legacy),
    })
}

fn summarize(hpa: &Hpa, steps: &[Step], options: &Options) -> Summary {
    let mut scale_ups = 0;
    let mut scale_downs = 0;
    let mut oscillations = 0;
    let mut last_event: Option<(i64, bool)> = None;
    let (mut at_min, mut at_max) = (0, 0);
    let (mut fewest, mut most) = (i32::MAX, i32::MIN);
    for step in steps {
        fewest = fewest.min(step.replicas);
        most = most.max(step.replicas);
        if step.replicas == hpa.rules.min_replicas {
            at_min += options.sync_seconds;
        }
        if step.replicas == hpa.rules.max_replicas {
            at_max += options.sync_seconds;
        }
        if step.replicas == step.current {
            continue;
        }
        let up = step.replicas > step.current;
        if up {
            scale_ups += 1;
        } else {
            scale_downs += 1;
        }
        if let Some((time, was_up)) = last_event
            && was_up != up
            && step.time - time <= options.oscillation_window_seconds
        {
            oscillations += 1;
        }
        last_event = Some((step.time, up));
    }
    Summary {
        scale_ups,
        scale_downs,
        oscillations,
        seconds_at_min: at_min,
        seconds_at_max: at_max,
        replicas_range: if steps.is_empty() {
            (0, 0)
        } else {
            (fewest, most)
        },
    }
}

/// Why the replica count is what it is at `time`, in plain words.
pub fn explain_at(
    hpa: &Hpa,
    simulation: &Simulation,
    time: i64,
    clock: impl Fn(i64) -> String,
) -> Option<String> {
    let step = simulation.steps.iter().rev().find(|s| s.time <= time)?;
    let change = match step.replicas.cmp(&step.current) {
        std::cmp::Ordering::Greater => "scaled up to",
        std::cmp::Ordering::Less => "scaled down to",
        std::cmp::Ordering::Equal => "kept",
    };
    let mut text = format!(
        "At {} (sync of {}) the HPA had {} replicas and {change} {}.\n",
        clock(time),
        clock(step.time),
        step.current,
        step.replicas
    );
    for (metric, observed) in hpa.metrics.iter().zip(&step.metrics) {
        let target = match metric.target {
            Target::Value(m) => format!("value {}", m as f64 / 1000.0),
            Target::AverageValue(m) => format!("average value {}", m as f64 / 1000.0),
            Target::Utilization(p) => format!("{p}% utilization"),
        };
        match (observed.value, observed.proposal) {
            (Some(value), Some(proposal)) => text.push_str(&format!(
                "- {} was {value:.3} against a target {target}: it proposes {proposal} replicas.\n",
                metric.label()
            )),
            _ => text.push_str(&format!(
                "- {} has no value ({}): it proposes nothing.\n",
                metric.label(),
                observed.error.as_deref().unwrap_or("unknown")
            )),
        }
    }
    match step.reason {
        "ScaleDownStabilized" | "ScaleUpStabilized" => {
            if let (Some(desired), Some(held)) = (step.desired, step.held) {
                let direction = if step.reason == "ScaleDownStabilized" {
                    "scale-down"
                } else {
                    "scale-up"
                };
                // The first sync at or after the moment the recommendation leaves the window
                // (it counts while `since > now - window`).
                let first = simulation.steps.first().map_or(held.until, |s| s.time);
                let period = simulation_sync(simulation).max(1);
                let sync = first + (held.until - first + period - 1).div_euclid(period) * period;
                text.push_str(&format!(
                    "The metrics ask for {desired}, but the recommendation of {} from {} is still inside the {} s {direction} stabilization window; replicas can {} at {}.\n",
                    held.recommendation,
                    clock(held.since),
                    held.window,
                    if direction == "scale-down" { "fall" } else { "rise" },
                    clock(sync),
                ));
            }
        }
        "ScaleUpLimit" | "ScaleDownLimit" => text.push_str(&format!(
            "The metrics ask for {}, but the {} policies allow only {} now (the window of the policies' periods counts the changes already made).\n",
            step.stabilized.unwrap_or_default(),
            if step.reason == "ScaleUpLimit" { "scale-up" } else { "scale-down" },
            step.replicas
        )),
        "TooManyReplicas" => text.push_str(&format!(
            "The metrics ask for {}, capped at maxReplicas {}.\n",
            step.stabilized.unwrap_or_default(),
            hpa.rules.max_replicas
        )),
        "TooFewReplicas" => text.push_str(&format!(
            "The metrics ask for {}, raised to minReplicas {}.\n",
            step.stabilized.unwrap_or_default(),
            hpa.rules.min_replicas
        )),
        failed if failed.starts_with("FailedGet") => text.push_str(&format!(
            "The HPA does not scale: {}. A missing metric blocks scale-downs (and everything when all are missing).\n",
            step.error.as_deref().unwrap_or("a metric failed")
        )),
        "ScalingDisabled" => text.push_str("Scaling is disabled: the target has 0 replicas.\n"),
        _ if step.desired == Some(step.current) => {
            let tolerances = hpa.rules.tolerances();
            text.push_str(&format!(
                "The metrics are within the tolerance band around their targets (−{}% to +{}%), so the replicas stay.\n",
                (tolerances.scale_down * 100.0).round(),
                (tolerances.scale_up * 100.0).round()
            ))
        }
        _ => {}
    }
    Some(text)
}

fn simulation_sync(simulation: &Simulation) -> i64 {
    match simulation.steps.as_slice() {
        [first, second, ..] => second.time - first.time,
        _ => 15,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::controller::HpaRules;

    fn hpa(source: Source, target: Target) -> Hpa {
        Hpa {
            name: "web".into(),
            namespace: "default".into(),
            target_name: "web".into(),
            rules: HpaRules {
                min_replicas: 1,
                max_replicas: 10,
                behavior: None,
                legacy_downscale_window_seconds: 300,
            },
            metrics: vec![HpaMetric { source, target }],
        }
    }

    fn series(pod: Option<&str>, points: &[(i64, f64)]) -> RangeSeries {
        RangeSeries {
            labels: pod
                .map(|p| [("pod".to_owned(), p.to_owned())].into())
                .unwrap_or_default(),
            points: points.iter().map(|(t, v)| (*t as f64, *v)).collect(),
        }
    }

    fn options(model: PodModel, initial: i32, end: i64) -> Options {
        Options {
            start: 0,
            end,
            sync_seconds: 15,
            initial_replicas: initial,
            pod_model: model,
            pod_requests: HashMap::new(),
            oscillation_window_seconds: 600,
        }
    }

    #[test]
    fn the_pod_models_differ_when_the_simulation_has_more_pods_than_prometheus() {
        // Two observed pods at 150 each (target 100); the simulation starts at 4 replicas.
        let hpa = hpa(
            Source::Pods {
                metric: "rps".into(),
                selector: Default::default(),
            },
            Target::AverageValue(100_000),
        );
        let history = MetricHistory {
            metric: hpa.metrics[0].clone(),
            query: "q".into(),
            pod_label: Some("pod".into()),
            series: vec![
                series(Some("web-a"), &[(0, 150.0)]),
                series(Some("web-b"), &[(0, 150.0)]),
            ],
        };
        // Observed: 2 values of 150 and 2 missing pods; ratio 1.5 > 1, so the missing count as
        // 0: avg(150, 150, 0, 0) = 75 → ratio 0.75, the direction flips → keep 4.
        let observed = replay(
            &hpa,
            std::slice::from_ref(&history),
            &options(PodModel::Observed, 4, 0),
        );
        assert_eq!(observed.steps[0].metrics[0].proposal, Some(4));
        // Conserving: the total 300 over 4 pods = 75 each → ratio 0.75 → ceil(0.75 × 4) = 3.
        let conserving = replay(&hpa, &[history], &options(PodModel::Conserving, 4, 0));
        assert_eq!(conserving.steps[0].metrics[0].proposal, Some(3));
        assert_eq!(conserving.pod_model, PodModel::Conserving);
    }

    #[test]
    fn missing_data_blocks_scale_down_and_is_explained() {
        // An Object Value metric (target 10) at 5, then 1 at t=15, then no data. A fresh
        // controller remembers the 4 current replicas (recordInitialRecommendation), so the
        // proposals of 2 (ratio 0.5 × 4) and 1 (ceil(0.1 × 4)) wait in the legacy 300 s window,
        // and the missing metric blocks scale-down from t=30.
        let hpa = hpa(
            Source::Object {
                resource: "services".into(),
                name: "web".into(),
                metric: "rps".into(),
                selector: Default::default(),
            },
            Target::Value(10_000),
        );
        let history = MetricHistory {
            metric: hpa.metrics[0].clone(),
            query: "q".into(),
            pod_label: None,
            series: vec![series(None, &[(0, 5.0), (15, 1.0)])],
        };
        let simulation = replay(&hpa, &[history], &options(PodModel::Observed, 4, 45));
        let replicas: Vec<i32> = simulation.steps.iter().map(|s| s.replicas).collect();
        assert_eq!(replicas, vec![4, 4, 4, 4]);
        assert_eq!(simulation.steps[1].metrics[0].proposal, Some(1));
        assert_eq!(simulation.steps[1].reason, "ScaleDownStabilized");
        assert_eq!(simulation.steps[2].reason, "FailedGetObjectMetric");
        let text = explain_at(&hpa, &simulation, 30, |t| t.to_string()).unwrap();
        assert!(
            text.contains("has no value (no data from Prometheus"),
            "{text}"
        );
        assert!(
            text.contains("A missing metric blocks scale-downs"),
            "{text}"
        );
        let text = explain_at(&hpa, &simulation, 15, |t| t.to_string()).unwrap();
        assert!(
            text.contains("the recommendation of 4 from 0 is still inside the 300 s scale-down stabilization window; replicas can fall at 315"),
            "{text}"
        );
        assert_eq!(simulation.summary.scale_downs, 0);
        assert_eq!(simulation.summary.replicas_range, (4, 4));
    }
}
