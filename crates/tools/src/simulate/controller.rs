//! The HorizontalPodAutoscaler controller's replica algorithm, as kube-controller-manager runs it each sync: per-metric proposals in milli-units, tolerance, the maximum over metrics with its failure rules, and the legacy or `behavior` stabilization and rate limits.

use serde::Serialize;

/// The tolerance band around a ratio of 1 inside which the HPA does not scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    /// Allowed ratio above 1.
    pub scale_up: f64,
    /// Allowed ratio below 1.
    pub scale_down: f64,
}

impl Default for Tolerances {
    /// `--horizontal-pod-autoscaler-tolerance`: 0.1 both ways.
    fn default() -> Self {
        Self {
            scale_up: 0.1,
            scale_down: 0.1,
        }
    }
}

impl Tolerances {
    /// `(1 - down) ≤ ratio ≤ (1 + up)`.
    pub fn within(&self, ratio: f64) -> bool {
        (1.0 - self.scale_down) <= ratio && ratio <= (1.0 + self.scale_up)
    }
}

/// `selectPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SelectPolicy {
    /// The policy allowing the largest change (default).
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// A scaling policy's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PolicyKind {
    /// A number of pods per period.
    Pods,
    /// A percentage of the replicas at the period's start.
    Percent,
}

/// One `policies` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Pods or Percent.
    pub kind: PolicyKind,
    /// How many pods, or which percentage.
    pub value: i32,
    /// `periodSeconds`.
    pub period_seconds: i64,
}

/// `behavior.scaleUp` or `behavior.scaleDown`, with defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScalingRules {
    /// `stabilizationWindowSeconds`.
    pub stabilization_window_seconds: i64,
    /// `selectPolicy`.
    pub select_policy: SelectPolicy,
    /// `policies`.
    pub policies: Vec<Policy>,
    /// `tolerance` (1.33+); the global 0.1 when unset.
    pub tolerance: Option<f64>,
}

impl ScalingRules {
    /// Kubernetes' default scale-up rules: no window, +100% or +4 pods per 15 s, the larger.
    pub fn default_scale_up() -> Self {
        Self {
            stabilization_window_seconds: 0,
            select_policy: SelectPolicy::Max,
            policies: vec![
                Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_seconds: 15,
                },
                Policy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period_seconds: 15,
                },
            ],
            tolerance: None,
        }
    }

    /// Kubernetes' default scale-down rules: a 300 s window, −100% per 15 s.
    pub fn default_scale_down() -> Self {
        Self {
            stabilization_window_seconds: 300,
            select_policy: SelectPolicy::Max,
            policies: vec![Policy {
                kind: PolicyKind::Percent,
                value: 100,
                period_seconds: 15,
            }],
            tolerance: None,
        }
    }
}

/// `spec.behavior`, defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Behavior {
    /// `scaleUp`.
    pub scale_up: ScalingRules,
    /// `scaleDown`.
    pub scale_down: ScalingRules,
}

/// What the algorithm needs of an HPA.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaRules {
    /// `minReplicas` (default 1).
    pub min_replicas: i32,
    /// `maxReplicas`.
    pub max_replicas: i32,
    /// `behavior`; `None` takes the legacy path.
    pub behavior: Option<Behavior>,
    /// `--horizontal-pod-autoscaler-downscale-stabilization` for the legacy path (300 s).
    pub legacy_downscale_window_seconds: i64,
}

impl HpaRules {
    /// The tolerance band: per direction from `behavior`, else the global 0.1.
    pub fn tolerances(&self) -> Tolerances {
        let global = Tolerances::default();
        match &self.behavior {
            Some(b) => Tolerances {
                scale_up: b.scale_up.tolerance.unwrap_or(global.scale_up),
                scale_down: b.scale_down.tolerance.unwrap_or(global.scale_down),
            },
            None => global,
        }
    }
}

/// A metric target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Target {
    /// `value`, in milli-units.
    Value(i64),
    /// `averageValue`, in milli-units.
    AverageValue(i64),
    /// `averageUtilization`, percent of requests.
    Utilization(i32),
}

/// Object or External `Value`: the ratio to the target times the ready pods.
/// `cur == 0` (scale to zero) gives `ceil(ratio)`.
pub fn single_value_replicas(
    cur: i32,
    ready: i32,
    usage: i64,
    target: i64,
    tolerances: Tolerances,
) -> i32 {
    let ratio = usage as f64 / target as f64;
    if cur == 0 {
        return ceil_i32(ratio);
    }
    if tolerances.within(ratio) {
        return cur;
    }
    ceil_i32(ratio * ready as f64)
}

/// Object or External `AverageValue`: `usage / (target × status replicas)`; outside tolerance
/// `ceil(usage / target)`, independent of the current size.
pub fn average_value_replicas(stat: i32, usage: i64, target: i64, tolerances: Tolerances) -> i32 {
    let ratio = usage as f64 / (target as f64 * stat as f64);
    if tolerances.within(ratio) {
        return stat;
    }
    ceil_i32(usage as f64 / target as f64)
}

/// Pods `AverageValue` (and Resource `AverageValue`): the integer average over the pods that have
/// a value; `missing` pods have none and count as the target on a scale-down and 0 on a
/// scale-up, unless that flips the direction.
pub fn pods_average_replicas(
    cur: i32,
    values: &[i64],
    missing: usize,
    target: i64,
    tolerances: Tolerances,
) -> Result<i32, String> {
    if values.is_empty() {
        return Err("did not receive metrics for targeted pods".into());
    }
    let ratio = average(values) as f64 / target as f64;
    if missing == 0 {
        if tolerances.within(ratio) {
            return Ok(cur);
        }
        return Ok(ceil_i32(ratio * values.len() as f64));
    }
    // calcPlainMetricReplicas fills missing pods only when the ratio is strictly below or above
    // 1; at exactly 1 they stay out and the ratio stays 1.
    let mut all = values.to_vec();
    if ratio < 1.0 {
        all.extend(std::iter::repeat_n(target, missing));
    } else if ratio > 1.0 {
        all.extend(std::iter::repeat_n(0, missing));
    }
    let new_ratio = average(&all) as f64 / target as f64;
    Ok(settle(cur, ratio, new_ratio, all.len(), tolerances))
}

/// Resource `Utilization`: `int(Σ usage × 100 / Σ requests)` against the target percentage;
/// missing pods count as `max(100, target)`% of their request on a scale-down and 0 on a scale-up.
pub fn utilization_replicas(
    cur: i32,
    usages_and_requests: &[(i64, i64)],
    missing_requests: &[i64],
    target_percent: i32,
    tolerances: Tolerances,
) -> Result<i32, String> {
    let utilization = |pairs: &[(i64, i64)]| -> Result<f64, String> {
        let usage: i64 = pairs.iter().map(|(u, _)| u).sum();
        let requests: i64 = pairs.iter().map(|(_, r)| r).sum();
        if requests == 0 {
            return Err("no metrics returned matched known pods".into());
        }
        Ok(((usage * 100) / requests) as i32 as f64 / target_percent as f64)
    };
    if usages_and_requests.is_empty() {
        return Err("did not receive metrics for targeted pods".into());
    }
    let ratio = utilization(usages_and_requests)?;
    if missing_requests.is_empty() {
        if tolerances.within(ratio) {
            return Ok(cur);
        }
        return Ok(ceil_i32(ratio * usages_and_requests.len() as f64));
    }
    let mut all = usages_and_requests.to_vec();
    for &request in missing_requests {
        if ratio < 1.0 {
            all.push((request * i64::from(target_percent.max(100)) / 100, request));
        } else if ratio > 1.0 {
            all.push((0, request));
        }
    }
    let new_ratio = utilization(&all)?;
    Ok(settle(cur, ratio, new_ratio, all.len(), tolerances))
}

/// The end of `calcPlainMetricReplicas` with missing pods filled in: keep `cur` when within
/// tolerance or when filling flipped the direction.
fn settle(cur: i32, ratio: f64, new_ratio: f64, pods: usize, tolerances: Tolerances) -> i32 {
    if tolerances.within(new_ratio)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return cur;
    }
    let replicas = ceil_i32(new_ratio * pods as f64);
    if (new_ratio < 1.0 && replicas > cur) || (new_ratio > 1.0 && replicas < cur) {
        return cur;
    }
    replicas
}

fn average(values: &[i64]) -> i64 {
    values.iter().sum::<i64>() / values.len() as i64
}

fn ceil_i32(value: f64) -> i32 {
    // Go converts with int32(math.Ceil(x)); the HPA caps External AverageValue at MaxInt32.
    value.ceil().clamp(i32::MIN as f64, i32::MAX as f64) as i32
}

/// One metric's result at a sync.
#[derive(Debug, Clone, PartialEq)]
pub enum Proposal {
    /// The replicas this metric asks for.
    Replicas(i32),
    /// The metric could not be computed (no data, no pods).
    Failed {
        /// The `ScalingActive` reason the HPA reports: `FailedGetObjectMetric`,
        /// `FailedGetPodsMetric`, `FailedGetResourceMetric` or `FailedGetExternalMetric`.
        condition: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// Why the replica count is what it is after a sync, in the HPA's condition reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conditions {
    /// `AbleToScale`: `ReadyForNewScale`, `ScaleUpStabilized`, `ScaleDownStabilized`,
    /// `SucceededRescale` (after a change), `SucceededGetScale`.
    pub able_to_scale: &'static str,
    /// `ScalingActive`: `ValidMetricFound`, `FailedGet…Metric`, `ScalingDisabled`; empty when
    /// the sync left it as it was.
    pub scaling_active: &'static str,
    /// `ScalingLimited`: `DesiredWithinRange`, `TooFewReplicas`, `TooManyReplicas`,
    /// `ScaleUpLimit`, `ScaleDownLimit`; empty when the sync left it as it was.
    pub scaling_limited: &'static str,
}

/// What one sync decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncResult {
    /// The maximum of the metrics' proposals (`None` when the metrics block scaling).
    pub desired: Option<i32>,
    /// After stabilization.
    pub stabilized: Option<i32>,
    /// The replica count after the sync.
    pub replicas: i32,
    /// The conditions the HPA would report.
    pub conditions: Conditions,
    /// Why the metrics did not count, when they did not.
    pub error: Option<String>,
    /// `ScaleUpStabilized` or `ScaleDownStabilized` when stabilization changed the
    /// recommendation (AbleToScale shows it unless the sync rescaled).
    pub stabilization: Option<&'static str>,
}

impl SyncResult {
    /// A sync that ends before stabilization: the desired count is also the stabilized one,
    /// and `ScalingLimited` is left as it was.
    fn early(
        desired: Option<i32>,
        replicas: i32,
        able_to_scale: &'static str,
        scaling_active: &'static str,
        error: Option<String>,
    ) -> Self {
        SyncResult {
            desired,
            stabilized: desired,
            replicas,
            conditions: Conditions {
                able_to_scale,
                scaling_active,
                scaling_limited: "",
            },
            error,
            stabilization: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Timestamped {
    value: i32,
    time: i64,
}

/// The controller's memory for one HPA: raw recommendations and scale events, as
/// kube-controller-manager keeps them.
#[derive(Debug, Clone, Default)]
pub struct Controller {
    recommendations: Vec<Timestamped>,
    scale_up_events: Vec<Timestamped>,
    scale_down_events: Vec<Timestamped>,
}

impl Controller {
    /// A controller with no history (a fresh leader).
    pub fn new() -> Self {
        Self::default()
    }

    /// The raw recommendations still inside a window at `now`, newest last. The legacy path
    /// keeps one made exactly `window_seconds` ago (it drops those *before* the cutoff); the
    /// behavior path drops it (it keeps those *after*).
    pub fn recommendations_within(
        &self,
        now: i64,
        window_seconds: i64,
        legacy: bool,
    ) -> Vec<(i64, i32)> {
        let cutoff = now - window_seconds;
        self.recommendations
            .iter()
            .filter(|r| r.time > cutoff || (legacy && r.time == cutoff))
            .map(|r| (r.time, r.value))
            .collect()
    }

    /// One sync at `now` (Unix seconds) with `cur` replicas and each metric's proposal.
    pub fn sync(
        &mut self,
        rules: &HpaRules,
        now: i64,
        cur: i32,
        proposals: &[Proposal],
    ) -> SyncResult {
        let min = rules.min_replicas;
        // recordInitialRecommendation: a fresh controller remembers the current size, so the
        // first scale-down waits out the window like any other.
        if self.recommendations.is_empty() {
            self.recommendations.push(Timestamped {
                value: cur,
                time: now,
            });
        }
        if cur == 0 && min != 0 {
            return SyncResult::early(None, 0, "SucceededGetScale", "ScalingDisabled", None);
        }
        if cur > rules.max_replicas || cur < min {
            // Outside the bounds the controller goes straight to them, without metrics, and sets
            // neither ScalingActive nor ScalingLimited.
            let replicas = cur.clamp(min, rules.max_replicas);
            self.store_event(rules, now, cur, replicas);
            return SyncResult::early(Some(replicas), replicas, "SucceededRescale", "", None);
        }
        // computeReplicasForMetrics: the maximum wins; failures block scale-downs and total failure.
        let mut desired = 0;
        let mut failures = Vec::new();
        for proposal in proposals {
            match proposal {
                Proposal::Replicas(r) if desired == 0 || *r > desired => desired = *r,
                Proposal::Replicas(_) => {}
                Proposal::Failed { condition, message } => failures.push((condition, message)),
            }
        }
        let error = failures.first().map(|(_, message)| {
            format!(
                "invalid metrics ({} invalid out of {}), first error is: {message}",
                failures.len(),
                proposals.len(),
            )
        });
        if let Some((condition, _)) = failures.first()
            && (failures.len() >= proposals.len() || desired < cur)
        {
            // ScalingActive takes the first failure's reason; the others are left as they were.
            return SyncResult::early(None, cur, "SucceededGetScale", condition, error);
        }
        let (stabilized, able, replicas, limited) = match &rules.behavior {
            None => self.legacy(rules, now, cur, desired),
            Some(behavior) => self.with_behavior(rules, behavior, now, cur, desired),
        };
        if replicas != cur {
            self.store_event(rules, now, cur, replicas);
        }
        let stabilization = (able != "ReadyForNewScale").then_some(able);
        SyncResult {
            desired: Some(desired),
            stabilized: Some(stabilized),
            replicas,
            stabilization,
            conditions: Conditions {
                // A successful update overwrites AbleToScale.
                able_to_scale: if replicas != cur {
                    "SucceededRescale"
                } else {
                    able
                },
                scaling_active: "ValidMetricFound",
                scaling_limited: limited,
            },
            error,
        }
    }

    /// `normalizeDesiredReplicas`: the highest recommendation of the downscale window, then
    /// `[min, min(max, max(2×cur, 4))]`.
    fn legacy(
        &mut self,
        rules: &HpaRules,
        now: i64,
        cur: i32,
        desired: i32,
    ) -> (i32, &'static str, i32, &'static str) {
        let cutoff = now - rules.legacy_downscale_window_seconds;
        let mut stabilized = desired;
        let mut old = None;
        for (i, rec) in self.recommendations.iter().enumerate() {
            if rec.time < cutoff {
                old = Some(i);
            } else if rec.value > stabilized {
                stabilized = rec.value;
            }
        }
        self.remember(old, desired, now);
        let able = if stabilized != desired {
            "ScaleDownStabilized"
        } else {
            "ReadyForNewScale"
        };
        let scale_up_limit = (2 * cur).max(4);
        let (maximum, limiting) = if rules.max_replicas > scale_up_limit {
            (scale_up_limit, "ScaleUpLimit")
        } else {
            (rules.max_replicas, "TooManyReplicas")
        };
        let (replicas, limited) = if stabilized < rules.min_replicas {
            (rules.min_replicas, "TooFewReplicas")
        } else if stabilized > maximum {
            (maximum, limiting)
        } else {
            (stabilized, "DesiredWithinRange")
        };
        (stabilized, able, replicas, limited)
    }

    /// `normalizeDesiredReplicasWithBehaviors`: stabilize between the lowest recommendation of
    /// the scale-up window and the highest of the scale-down window, then apply the policies.
    fn with_behavior(
        &mut self,
        rules: &HpaRules,
        behavior: &Behavior,
        now: i64,
        cur: i32,
        desired: i32,
    ) -> (i32, &'static str, i32, &'static str) {
        let up_cutoff = now - behavior.scale_up.stabilization_window_seconds;
        let down_cutoff = now - behavior.scale_down.stabilization_window_seconds;
        let (mut up, mut down) = (desired, desired);
        let mut old = None;
        for (i, rec) in self.recommendations.iter().enumerate() {
            if rec.time > up_cutoff {
                up = up.min(rec.value);
            }
            if rec.time > down_cutoff {
                down = down.max(rec.value);
            }
            if rec.time < up_cutoff && rec.time < down_cutoff {
                old = Some(i);
            }
        }
        let mut stabilized = cur;
        if stabilized < up {
            stabilized = up;
        }
        if stabilized > down {
            stabilized = down;
        }
        self.remember(old, desired, now);
        let able = if stabilized == desired {
            "ReadyForNewScale"
        } else if desired >= cur {
            "ScaleUpStabilized"
        } else {
            "ScaleDownStabilized"
        };
        let (replicas, limited) = if stabilized > cur {
            let limit = self
                .policy_limit(now, cur, &behavior.scale_up, true)
                .max(cur);
            let (maximum, reason) = if rules.max_replicas > limit {
                (limit, "ScaleUpLimit")
            } else {
                (rules.max_replicas, "TooManyReplicas")
            };
            if stabilized > maximum {
                (maximum, reason)
            } else {
                (stabilized, "DesiredWithinRange")
            }
        } else if stabilized < cur {
            let limit = self
                .policy_limit(now, cur, &behavior.scale_down, false)
                .min(cur);
            let (minimum, reason) = if rules.min_replicas < limit {
                (limit, "ScaleDownLimit")
            } else {
                (rules.min_replicas, "TooFewReplicas")
            };
            if stabilized < minimum {
                (minimum, reason)
            } else {
                (stabilized, "DesiredWithinRange")
            }
        } else {
            (stabilized, "DesiredWithinRange")
        };
        (stabilized, able, replicas, limited)
    }

    /// Replaces an outdated recommendation or appends one: the controller stores the raw
    /// recommendation, not the stabilized one.
    fn remember(&mut self, old: Option<usize>, desired: i32, now: i64) {
        let rec = Timestamped {
            value: desired,
            time: now,
        };
        match old {
            Some(i) => self.recommendations[i] = rec,
            None => self.recommendations.push(rec),
        }
    }

    fn change_within(events: &[Timestamped], now: i64, period: i64) -> i32 {
        events
            .iter()
            .filter(|e| e.time > now - period)
            .map(|e| e.value)
            .sum()
    }

    fn period_start(&self, now: i64, cur: i32, period: i64) -> i32 {
        cur - Self::change_within(&self.scale_up_events, now, period)
            + Self::change_within(&self.scale_down_events, now, period)
    }

    /// The bound the policies put on a scale-up (`up`) or a scale-down, as the controller's
    /// `calculateScaleUpLimitWithScalingRules` and `calculateScaleDownLimitWithBehaviors`.
    fn policy_limit(&self, now: i64, cur: i32, rules: &ScalingRules, up: bool) -> i32 {
        // `Max` picks the most permissive policy: the largest bound up, the smallest down.
        let largest = match rules.select_policy {
            SelectPolicy::Disabled => return cur,
            SelectPolicy::Max => up,
            SelectPolicy::Min => !up,
        };
        let bounds = rules.policies.iter().map(|policy| {
            let start = self.period_start(now, cur, policy.period_seconds);
            let fraction = policy.value as f64 / 100.0;
            match (policy.kind, up) {
                (PolicyKind::Pods, true) => start + policy.value,
                (PolicyKind::Pods, false) => start - policy.value,
                (PolicyKind::Percent, true) => ceil_i32(start as f64 * (1.0 + fraction)),
                // int32(float64(start) * (1 - value/100)): truncation.
                (PolicyKind::Percent, false) => (start as f64 * (1.0 - fraction)) as i32,
            }
        });
        if largest {
            bounds.max().unwrap_or(i32::MIN)
        } else {
            bounds.min().unwrap_or(i32::MAX)
        }
    }

    /// `storeScaleEvent`: only HPAs with `behavior` keep scale events, and a new event takes the
    /// place of one older than the direction's longest policy period (so the list stays as short
    /// as the controller's, however long the replay).
    fn store_event(&mut self, rules: &HpaRules, now: i64, from: i32, to: i32) {
        let Some(behavior) = &rules.behavior else {
            return;
        };
        if from == to {
            return;
        }
        let (events, change, direction) = if to > from {
            (&mut self.scale_up_events, to - from, &behavior.scale_up)
        } else {
            (&mut self.scale_down_events, from - to, &behavior.scale_down)
        };
        let longest = direction
            .policies
            .iter()
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0);
        let event = Timestamped {
            value: change,
            time: now,
        };
        // markScaleEventsOutdated, then the last outdated index is replaced.
        match events.iter().rposition(|e| e.time < now - longest) {
            Some(i) => events[i] = event,
            None => events.push(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Tolerances = Tolerances {
        scale_up: 0.1,
        scale_down: 0.1,
    };

    fn rules(behavior: Option<Behavior>) -> HpaRules {
        HpaRules {
            min_replicas: 1,
            max_replicas: 100,
            behavior,
            legacy_downscale_window_seconds: 300,
        }
    }

    fn no_windows(up: ScalingRules, down: ScalingRules) -> Behavior {
        Behavior {
            scale_up: ScalingRules {
                stabilization_window_seconds: 0,
                ..up
            },
            scale_down: ScalingRules {
                stabilization_window_seconds: 0,
                ..down
            },
        }
    }

    #[test]
    fn tolerance_edges() {
        // Object Value, 4 ready pods, target 1 (1000m). ratio = 1100/1000 = 1.1 = 1 + 0.1: inside
        // the band (≤), so 4 stays; 1101/1000 = 1.101 is outside: ceil(1.101 × 4) = ceil(4.404) = 5.
        assert_eq!(single_value_replicas(4, 4, 1100, 1000, TOL), 4);
        assert_eq!(single_value_replicas(4, 4, 1101, 1000, TOL), 5);
        // 900/1000 = 0.9 = 1 − 0.1: inside; 899/1000: ceil(0.899 × 4) = ceil(3.596) = 4 as well,
        // so take 10 pods: ceil(0.899 × 10) = ceil(8.99) = 9.
        assert_eq!(single_value_replicas(10, 10, 900, 1000, TOL), 10);
        assert_eq!(single_value_replicas(10, 10, 899, 1000, TOL), 9);
        // Per-direction tolerances (behavior.scaleUp.tolerance = 0.5): 1.4 stays inside.
        let wide_up = Tolerances {
            scale_up: 0.5,
            scale_down: 0.1,
        };
        assert_eq!(single_value_replicas(4, 4, 1400, 1000, wide_up), 4);
    }

    #[test]
    fn object_value_against_average_value() {
        // Value 300 (300000m), target 100, 2 replicas, 2 ready.
        // Value: ratio = 300/100 = 3 → ceil(3 × 2 ready) = 6.
        assert_eq!(single_value_replicas(2, 2, 300_000, 100_000, TOL), 6);
        // AverageValue: ratio = 300 / (100 × 2) = 1.5 → ceil(300 / 100) = 3, whatever the size.
        assert_eq!(average_value_replicas(2, 300_000, 100_000, TOL), 3);
        assert_eq!(average_value_replicas(7, 300_000, 100_000, TOL), 3);
        // Scale from zero: ceil(ratio) = 3.
        assert_eq!(single_value_replicas(0, 0, 300_000, 100_000, TOL), 3);
    }

    #[test]
    fn external_average_value_sums_every_series() {
        // Three series 30 + 50 + 20 = 100 (100000m); averageValue 10; 4 replicas:
        // ratio = 100 / (10 × 4) = 2.5 → ceil(100 / 10) = 10.
        let usage: i64 = [30_000, 50_000, 20_000].iter().sum();
        assert_eq!(average_value_replicas(4, usage, 10_000, TOL), 10);
    }

    #[test]
    fn pods_with_missing_pods_in_both_directions() {
        // Scale-up, 4 pods, 2 with 200 (target 100): ratio = 200/100 = 2 > 1, so the 2 missing
        // count as 0: avg(200, 200, 0, 0) = 100 → ratio 1.0 → inside the band → keep 4.
        assert_eq!(
            pods_average_replicas(4, &[200_000, 200_000], 2, 100_000, TOL),
            Ok(4)
        );
        // 3 pods, 2 with 300: ratio 3; missing as 0: avg(300, 300, 0) = 200 → ratio 2 →
        // ceil(2 × 3) = 6.
        assert_eq!(
            pods_average_replicas(3, &[300_000, 300_000], 1, 100_000, TOL),
            Ok(6)
        );
        // Scale-down, 4 pods, 2 with 50: ratio 0.5 < 1, so the missing count as the target:
        // avg(50, 50, 100, 100) = 75 → ratio 0.75 → ceil(0.75 × 4) = 3.
        assert_eq!(
            pods_average_replicas(4, &[50_000, 50_000], 2, 100_000, TOL),
            Ok(3)
        );
        // No missing pods: avg(150, 250) = 200 → ratio 2 → ceil(2 × 2 pods with values) = 4.
        assert_eq!(
            pods_average_replicas(2, &[150_000, 250_000], 0, 100_000, TOL),
            Ok(4)
        );
        // The average is an integer division of milli-values: (1 + 2) / 2 = 1 milli.
        assert_eq!(pods_average_replicas(2, &[1, 2], 0, 1, TOL), Ok(2));
        assert!(pods_average_replicas(2, &[], 2, 100_000, TOL).is_err());
    }

    #[test]
    fn utilization_truncates_and_fills_missing_pods_with_the_target() {
        // usage 300m + 200m of requests 250m + 250m: int(500 × 100 / 500) = 100% against 50% →
        // ratio 2 → ceil(2 × 2) = 4.
        assert_eq!(
            utilization_replicas(2, &[(300, 250), (200, 250)], &[], 50, TOL),
            Ok(4)
        );
        // Scale-down with one missing pod: usage 50m of 250m = 20% against 80% → ratio 0.25;
        // the missing pod counts max(100, 80)% = 250m: int(300 × 100 / 500) = 60% → ratio 0.75
        // → ceil(0.75 × 2) = 2, which is the current size.
        assert_eq!(
            utilization_replicas(2, &[(50, 250)], &[250], 80, TOL),
            Ok(2)
        );
    }

    #[test]
    fn legacy_scale_up_is_limited_to_twice_or_four() {
        // No behavior: at most max(2 × cur, 4).
        let mut controller = Controller::new();
        // cur 3, desired 20: max(6, 4) = 6.
        let result = controller.sync(&rules(None), 0, 3, &[Proposal::Replicas(20)]);
        assert_eq!(result.replicas, 6);
        assert_eq!(result.conditions.scaling_limited, "ScaleUpLimit");
        // cur 1, desired 10: max(2, 4) = 4.
        let result = Controller::new().sync(&rules(None), 0, 1, &[Proposal::Replicas(10)]);
        assert_eq!(result.replicas, 4);
        // maxReplicas below the rate limit names TooManyReplicas.
        let capped = HpaRules {
            max_replicas: 5,
            ..rules(None)
        };
        let result = Controller::new().sync(&capped, 0, 3, &[Proposal::Replicas(20)]);
        assert_eq!(
            (result.replicas, result.conditions.scaling_limited),
            (5, "TooManyReplicas")
        );
    }

    #[test]
    fn scale_up_policies_by_select_policy() {
        // Percent 100 and Pods 4 per 60 s, cur 10, desired 30:
        // Percent: ceil(10 × (1 + 100/100)) = 20; Pods: 10 + 4 = 14.
        let up = |select| ScalingRules {
            select_policy: select,
            policies: vec![
                Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_seconds: 60,
                },
                Policy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period_seconds: 60,
                },
            ],
            ..ScalingRules::default_scale_up()
        };
        for (select, expected) in [
            (SelectPolicy::Max, 20),
            (SelectPolicy::Min, 14),
            (SelectPolicy::Disabled, 10),
        ] {
            let behavior = no_windows(up(select), ScalingRules::default_scale_down());
            let result =
                Controller::new().sync(&rules(Some(behavior)), 0, 10, &[Proposal::Replicas(30)]);
            assert_eq!(result.replicas, expected, "{select:?}");
            assert_eq!(result.conditions.scaling_limited, "ScaleUpLimit");
        }
        // Within one period the start is the size before the period's scale-ups: after 10 → 20 at
        // t=0, at t=30 the Percent policy still allows ceil(10 × 2) = 20, so no more growth.
        let behavior = no_windows(up(SelectPolicy::Max), ScalingRules::default_scale_down());
        let hpa = rules(Some(behavior));
        let mut controller = Controller::new();
        assert_eq!(
            controller
                .sync(&hpa, 0, 10, &[Proposal::Replicas(30)])
                .replicas,
            20
        );
        assert_eq!(
            controller
                .sync(&hpa, 30, 20, &[Proposal::Replicas(30)])
                .replicas,
            20
        );
        // Once the period has passed (t=61 > 0 + 60), 20 → ceil(20 × 2) = 40, capped at 30.
        assert_eq!(
            controller
                .sync(&hpa, 61, 20, &[Proposal::Replicas(30)])
                .replicas,
            30
        );
    }

    #[test]
    fn scale_down_policies_by_select_policy() {
        // Percent 50 and Pods 3 per 60 s, cur 10, desired 1:
        // Percent: int(10 × (1 − 0.5)) = 5; Pods: 10 − 3 = 7. Max (the largest change) takes the
        // smaller count, 5; Min takes 7; Disabled keeps 10.
        let down = |select| ScalingRules {
            select_policy: select,
            policies: vec![
                Policy {
                    kind: PolicyKind::Percent,
                    value: 50,
                    period_seconds: 60,
                },
                Policy {
                    kind: PolicyKind::Pods,
                    value: 3,
                    period_seconds: 60,
                },
            ],
            ..ScalingRules::default_scale_down()
        };
        for (select, expected) in [
            (SelectPolicy::Max, 5),
            (SelectPolicy::Min, 7),
            (SelectPolicy::Disabled, 10),
        ] {
            let behavior = no_windows(ScalingRules::default_scale_up(), down(select));
            let result =
                Controller::new().sync(&rules(Some(behavior)), 0, 10, &[Proposal::Replicas(1)]);
            assert_eq!(result.replicas, expected, "{select:?}");
            assert_eq!(result.conditions.scaling_limited, "ScaleDownLimit");
        }
        // Percent alone truncates: int(5 × 0.5) = int(2.5) = 2 (rounding up would give 3).
        let percent_only = ScalingRules {
            policies: vec![Policy {
                kind: PolicyKind::Percent,
                value: 50,
                period_seconds: 60,
            }],
            ..down(SelectPolicy::Max)
        };
        let behavior = no_windows(ScalingRules::default_scale_up(), percent_only);
        let result = Controller::new().sync(&rules(Some(behavior)), 0, 5, &[Proposal::Replicas(1)]);
        assert_eq!(result.replicas, 2);
    }

    #[test]
    fn halving_the_load_scales_down_seven_minutes_later() {
        // The scale-down delay users report ("I lowered the metric and it did not scale down"): 10 replicas, Pods averageValue 100, load halved at t=0; a
        // rate over [2m] brings the per-pod average from 100 down to 50 linearly over 120 s:
        // avg(t) = 100 − 50 × min(t, 120) / 120. Syncs every 15 s with the default behavior.
        //   t ≤ 15: avg ≥ 93.75, ratio ≥ 0.9375 inside the band → recommendation 10.
        //   t = 30: avg 87.5 → ceil(0.875 × 10) = 9 … t ≥ 120: avg 50 → 5.
        //   t = 105: avg 56.25 → ceil(5.625) = 6; t = 120: exactly 50 → 5.
        // The scale-down window holds the highest recommendation of the last 300 s (strictly
        // after now − 300), so the replicas follow the recommendations 300 s late: 9 at t = 315
        // (the last 10, from t = 15, is out once t − 300 ≥ 15), 6 until t = 390, and 5 at t = 405
        // when the 6 of t = 105 leaves: 6 min 45 s; with a slower-reacting rate (2–2.5 min) and the
        // sync offset, the 7 to 8 minutes users report.
        let hpa = rules(Some(Behavior {
            scale_up: ScalingRules::default_scale_up(),
            scale_down: ScalingRules::default_scale_down(),
        }));
        let mut controller = Controller::new();
        let mut replicas = 10;
        let mut history = Vec::new();
        for t in (0..=600).step_by(15) {
            let avg = 100_000 - 50_000 * t.min(120) / 120;
            let proposal =
                pods_average_replicas(replicas, &vec![avg; replicas as usize], 0, 100_000, TOL)
                    .unwrap();
            let result = controller.sync(&hpa, t, replicas, &[Proposal::Replicas(proposal)]);
            replicas = result.replicas;
            history.push((t, replicas, result.conditions.able_to_scale));
        }
        let at = |t: i64| {
            history
                .iter()
                .find(|(time, _, _)| *time == t)
                .copied()
                .unwrap()
        };
        assert_eq!(
            at(300).1,
            10,
            "still inside the window of the t=15 recommendation"
        );
        assert_eq!(at(195).2, "ScaleDownStabilized");
        assert_eq!(at(315).1, 9);
        assert_eq!(at(390).1, 6);
        assert_eq!(at(405).1, 5, "6 min 45 s after the load halved");
        assert_eq!(at(600).1, 5);
    }

    #[test]
    fn a_failing_metric_blocks_scale_down_but_not_scale_up() {
        let hpa = rules(None);
        let failed = Proposal::Failed {
            condition: "FailedGetPodsMetric",
            message: "no data".into(),
        };
        // Scale-up from the valid metric still happens.
        let up = Controller::new().sync(&hpa, 0, 4, &[Proposal::Replicas(6), failed.clone()]);
        assert_eq!(up.replicas, 6);
        assert!(up.error.is_some());
        // A scale-down with one failing metric does not.
        let down = Controller::new().sync(&hpa, 0, 4, &[Proposal::Replicas(2), failed.clone()]);
        assert_eq!((down.replicas, down.desired), (4, None));
        assert_eq!(down.conditions.scaling_active, "FailedGetPodsMetric");
        assert_eq!(
            down.error.as_deref(),
            Some("invalid metrics (1 invalid out of 2), first error is: no data")
        );
        // Neither does total failure.
        let none = Controller::new().sync(&hpa, 0, 4, &[failed]);
        assert_eq!(none.replicas, 4);
        // Below minReplicas the HPA goes to the minimum before looking at metrics.
        let below = HpaRules {
            min_replicas: 3,
            ..rules(None)
        };
        let result = Controller::new().sync(&below, 0, 1, &[Proposal::Replicas(1)]);
        assert_eq!(result.replicas, 3);
        // That branch sets neither ScalingActive nor ScalingLimited; the rescale sets AbleToScale.
        assert_eq!(
            result.conditions,
            Conditions {
                able_to_scale: "SucceededRescale",
                scaling_active: "",
                scaling_limited: "",
            }
        );
    }

    #[test]
    fn a_fresh_controller_remembers_the_current_size() {
        // recordInitialRecommendation: the first sync stores (cur, now), so a first scale-down
        // from 4 to 2 waits out the 300 s window (legacy), and happens once it has passed.
        let hpa = rules(None);
        let mut controller = Controller::new();
        let first = controller.sync(&hpa, 0, 4, &[Proposal::Replicas(2)]);
        assert_eq!(first.replicas, 4);
        assert_eq!(first.stabilization, Some("ScaleDownStabilized"));
        assert_eq!(first.conditions.able_to_scale, "ScaleDownStabilized");
        // The legacy window keeps a recommendation made exactly 300 s ago.
        assert_eq!(
            controller
                .sync(&hpa, 300, 4, &[Proposal::Replicas(2)])
                .replicas,
            4
        );
        let later = controller.sync(&hpa, 315, 4, &[Proposal::Replicas(2)]);
        assert_eq!(later.replicas, 2);
        assert_eq!(later.conditions.able_to_scale, "SucceededRescale");
    }

    #[test]
    fn missing_pods_are_not_filled_at_a_ratio_of_exactly_one() {
        // avg(100, 100) = 100 = target: ratio 1.0, neither branch fills the 2 missing pods, the
        // ratio stays 1.0 (inside the band) → keep 4.
        assert_eq!(
            pods_average_replicas(4, &[100_000, 100_000], 2, 100_000, TOL),
            Ok(4)
        );
        // 50m of 100m = 50% against 50%: ratio 1.0 → keep 4.
        assert_eq!(
            utilization_replicas(4, &[(50, 100), (50, 100)], &[100, 100], 50, TOL),
            Ok(4)
        );
    }
}
