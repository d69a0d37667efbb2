//! The discovery loop: lists series per distinct `seriesQuery`, keeps each query's last good answer, and swaps in a new registry.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{Backends, SharedSnapshot, Snapshot};
use prom_adapter_core::registry::{Registry, SeriesShape};
use prom_adapter_core::resources::ResourceTable;
use prom_adapter_core::rules::RuleSet;
use prom_adapter_telemetry::Metrics;
use prom_adapter_telemetry::clock::unix_now;

/// Discovery settings.
#[derive(Debug, Clone, Copy)]
pub struct DiscoveryConfig {
    /// Pause between relists.
    pub relist_interval: Duration,
    /// How far back series are listed (`start = now - max_age`).
    pub max_age: Duration,
}

/// How discovery is doing: drives `/readyz` (a complete registry exists) and `/livez` (the loop
/// still completes relists).
#[derive(Debug)]
pub struct Health {
    ready: AtomicBool,
    shutting_down: AtomicBool,
    last_tick: AtomicU64,
    started: u64,
    stale_after: Duration,
}

impl Health {
    /// Health for a loop that must complete a relist at least every `stale_after`.
    pub fn new(stale_after: Duration) -> Self {
        Self {
            ready: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            last_tick: AtomicU64::new(0),
            started: unix_now() as u64,
            stale_after,
        }
    }

    /// True once every `seriesQuery` has been answered at least once, until shutdown begins.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.shutting_down.load(Ordering::Acquire)
    }

    /// Marks the process as shutting down: readiness fails from now on, so that load balancers
    /// stop sending requests before the server stops taking them.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// False when no relist has completed for longer than `stale_after` (the loop is stuck).
    pub fn is_live(&self, now: f64) -> bool {
        let last = self.last_tick.load(Ordering::Acquire).max(self.started);
        now - last as f64 <= self.stale_after.as_secs_f64()
    }

    fn record_tick(&self, now: f64, complete: bool) {
        self.last_tick.store(now as u64, Ordering::Release);
        if complete {
            self.ready.store(true, Ordering::Release);
        }
    }
}

/// A validated rules file to serve instead of the current one.
#[derive(Debug)]
pub struct RulesUpdate {
    /// The new rules.
    pub rules: Arc<RuleSet>,
    /// Told what changed once the new rules serve.
    pub done: oneshot::Sender<RulesChange>,
}

/// The metrics a rules change added and removed (`resource/metric` for custom metrics,
/// `external/metric` for external ones), sorted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RulesChange {
    /// Served now, not before.
    pub appeared: Vec<String>,
    /// Served before, not now.
    pub disappeared: Vec<String>,
}

impl RulesChange {
    /// The difference between two registries.
    pub fn between(before: &Registry, after: &Registry) -> Self {
        let (before, after) = (before.served_names(), after.served_names());
        Self {
            appeared: after.difference(&before).cloned().collect(),
            disappeared: before.difference(&after).cloned().collect(),
        }
    }
}

/// Runs discovery, with the rule set in the snapshot or the one a reload brings.
pub struct Discovery {
    /// The default backend, and the named ones for rules with `backend:`.
    backends: Backends,
    snapshot: SharedSnapshot,
    config: DiscoveryConfig,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    last_good: HashMap<String, Arc<Vec<SeriesShape>>>,
    /// Where each query's listing window begins (see `relist`).
    listed_from: HashMap<String, Listed>,
}

/// Where a query's listing window begins: the last max age, or, from its first failed listing
/// until one max age after it lists again, its last good window's start.
#[derive(Debug, Clone, Copy)]
struct Listed {
    from: f64,
    /// Unix seconds; infinite while the query's listings fail.
    reach_back_until: f64,
}

impl Discovery {
    /// A discovery loop publishing into `snapshot` (whose rules and table it uses).
    pub fn new(
        backends: impl Into<Backends>,
        snapshot: SharedSnapshot,
        config: DiscoveryConfig,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Self {
        Self {
            backends: backends.into(),
            snapshot,
            config,
            metrics,
            health,
            last_good: HashMap::new(),
            listed_from: HashMap::new(),
        }
    }

    /// Relists forever: once now, then `relist_interval` after each run ends, or at once with
    /// new rules when `updates` delivers them.
    /// `tables` brings the cluster's resource table when it changes: the table is installed with
    /// the registry rebuilt from the last listings, so a resource installed later is served
    /// without waiting for the next relist. (Discovery is the snapshot's only writer.)
    pub async fn run(
        mut self,
        mut updates: mpsc::Receiver<RulesUpdate>,
        mut tables: tokio::sync::watch::Receiver<Arc<ResourceTable>>,
    ) {
        let mut pending: Option<RulesUpdate> = None;
        let (mut updates_open, mut tables_open) = (true, true);
        loop {
            match pending.take() {
                Some(update) => {
                    let change = self.apply(update.rules).await;
                    // The reloader may have stopped waiting; the change is logged either way.
                    let _ = update.done.send(change);
                }
                None => self.relist_once().await,
            }
            let next = tokio::time::Instant::now() + self.config.relist_interval;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => break,
                    update = updates.recv(), if updates_open => match update {
                        Some(update) => {
                            pending = Some(update);
                            break;
                        }
                        None => updates_open = false,
                    },
                    changed = tables.changed(), if tables_open => match changed {
                        Ok(()) => {
                            let table = tables.borrow_and_update().clone();
                            self.install_table(table);
                        }
                        // No cluster (`--standalone`), or its refresh ended: the table stays.
                        Err(_) => tables_open = false,
                    },
                }
            }
        }
    }

    /// Installs a new resource table with the registry rebuilt from the last good listings
    /// through the current rules, in one swap, without asking Prometheus.
    pub fn install_table(&self, table: Arc<ResourceTable>) {
        let last_good = &self.last_good;
        let mut counts = (0, 0);
        self.snapshot.rcu(|current| {
            let registry = Registry::build(&current.rules, last_good, &table);
            counts = (registry.custom_len(), registry.external_len());
            Snapshot {
                rules: current.rules.clone(),
                table: table.clone(),
                registry: Arc::new(registry),
                discovered: current.discovered,
            }
        });
        tracing::info!(
            custom_metrics = counts.0,
            external_metrics = counts.1,
            "registry rebuilt for the new resource table"
        );
    }

    /// One relist with the current rules: every distinct `seriesQuery` concurrently; a failing
    /// query keeps its last good answer, and the new registry replaces the old one in a single
    /// swap.
    pub async fn relist_once(&mut self) {
        self.relist_once_at(unix_now()).await;
    }

    /// `relist_once`, as if the time were `now` (Unix seconds).
    async fn relist_once_at(&mut self, now: f64) {
        let rules = self.snapshot.load().rules.clone();
        self.relist(rules, now).await;
    }

    /// Relists with `rules` and publishes them together with the registry they produce, so that
    /// no request sees new rules with an old registry; says which metrics appeared and
    /// disappeared. Series queries the old rules shared keep their last good answers.
    pub async fn apply(&mut self, rules: Arc<RuleSet>) -> RulesChange {
        let before = self.snapshot.load().registry.clone();
        self.relist(rules, unix_now()).await;
        let change = RulesChange::between(&before, &self.snapshot.load().registry);
        tracing::info!(
            appeared = ?change.appeared,
            disappeared = ?change.disappeared,
            "rules reloaded"
        );
        change
    }

    async fn relist(&mut self, rules: Arc<RuleSet>, now: f64) {
        let started = Instant::now();
        let start = now - self.config.max_age.as_secs_f64();
        // Each (backend, seriesQuery) once; a backend that is down fails only its own queries.
        let queries: Vec<(Option<String>, String)> = rules
            .discovery_queries()
            .into_iter()
            .map(|(backend, query)| (backend.map(str::to_owned), query.to_owned()))
            .collect();
        let keys: Vec<String> = queries
            .iter()
            .map(|(backend, query)| {
                prom_adapter_core::rules::discovery_key(backend.as_deref(), query)
            })
            .collect();
        // After failed listings (Prometheus down or restarting), a query's window reaches back to
        // its last good listing's start until one max age after it lists again: listings after
        // the outage, before Prometheus has scraped again, would otherwise find no sample in the
        // last max age and drop series. (A series gone during the outage stays that much longer.)
        let listed_from = &self.listed_from;
        let from = |key: &String| match listed_from.get(key) {
            Some(listed) if now < listed.reach_back_until => listed.from.min(start),
            _ => start,
        };
        let backends = &self.backends;
        let answers = futures_util::future::join_all(queries.iter().zip(&keys).map(
            |((backend, query), key)| async move {
                let began = Instant::now();
                let from = from(key);
                let result = match backends.for_rule(backend.as_deref(), None) {
                    Ok(backend) => backend.series_shapes(query, from, now).await,
                    Err(e) => Err(e),
                };
                (
                    key,
                    query,
                    backend.as_deref(),
                    from,
                    result,
                    began.elapsed(),
                )
            },
        ))
        .await;
        let mut failures = 0usize;
        let mut series_total = 0u64;
        for (key, query, backend, from, result, elapsed) in answers {
            let backend = backend.unwrap_or("default");
            match result {
                Ok((shapes, series)) => {
                    series_total += series;
                    tracing::debug!(series_query = %query, backend, series, shapes = shapes.len(), elapsed_ms = elapsed.as_millis() as u64, "listed series");
                    self.last_good.insert(key.clone(), Arc::new(shapes));
                    let max_age = self.config.max_age.as_secs_f64();
                    let listed = self.listed_from.entry(key.clone()).or_insert(Listed {
                        from,
                        reach_back_until: 0.0,
                    });
                    if listed.reach_back_until.is_infinite() {
                        listed.reach_back_until = now + max_age;
                    } else if now >= listed.reach_back_until {
                        listed.from = from;
                    }
                }
                Err(error) => {
                    failures += 1;
                    if let Some(listed) = self.listed_from.get_mut(key) {
                        listed.reach_back_until = f64::INFINITY;
                    }
                    let kept = self.last_good.contains_key(key);
                    tracing::warn!(series_query = %query, backend, %error, kept_last_good = kept, "series listing failed");
                }
            }
        }
        self.last_good.retain(|key, _| keys.contains(key));
        self.listed_from.retain(|key, _| keys.contains(key));
        // Complete once the default backend has answered each of its queries: a named backend
        // that is down leaves only its own rules' metrics out.
        let complete = queries
            .iter()
            .zip(&keys)
            .all(|((backend, _), key)| backend.is_some() || self.last_good.contains_key(key));
        // Swapped in with the table as it is at the swap: the cluster's may change meanwhile.
        let last_good = &self.last_good;
        let mut built = Arc::default();
        self.snapshot.rcu(|current| {
            built = Arc::new(Registry::build(&rules, last_good, &current.table));
            Snapshot {
                rules: rules.clone(),
                table: current.table.clone(),
                registry: built.clone(),
                discovered: complete,
            }
        });
        let registry: Arc<Registry> = built;
        let shapes: usize = self.last_good.values().map(|s| s.len()).sum();
        self.metrics.record_discovery(
            started.elapsed(),
            failures,
            series_total,
            shapes,
            (&rules, &registry),
            now,
        );
        tracing::info!(
            custom_metrics = registry.custom_len(),
            external_metrics = registry.external_len(),
            failed_queries = failures,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "discovery finished"
        );
        // Ready once complete.
        self.health.record_tick(unix_now(), complete);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BackendError;
    use crate::fake::FakeBackend;
    use prom_adapter_core::resources::ResourceTable;

    const RULES: &str = r#"
rules:
- seriesQuery: 'a_total'
  resources: {overrides: {pod: {resource: pod}, namespace: {resource: namespace}}}
  metricsQuery: x
- seriesQuery: 'a_total'
  resources: {overrides: {pod: {resource: pod}, namespace: {resource: namespace}}}
  name: {as: renamed}
  metricsQuery: x
- seriesQuery: 'b_total'
  resources: {overrides: {node: {resource: node}}}
  metricsQuery: x
"#;

    fn setup() -> (Arc<FakeBackend>, SharedSnapshot, Arc<Health>, Discovery) {
        let backend = Arc::new(FakeBackend::default());
        let snapshot: SharedSnapshot = Arc::new(arc_swap::ArcSwap::from_pointee(Snapshot {
            rules: Arc::new(prom_adapter_core::config::parse_rules(RULES, "test").unwrap()),
            table: Arc::new(ResourceTable::builtin()),
            registry: Arc::default(),
            discovered: false,
        }));
        let health = Arc::new(Health::new(Duration::from_secs(3600)));
        let config = DiscoveryConfig {
            relist_interval: Duration::from_secs(60),
            max_age: Duration::from_secs(60),
        };
        let discovery = Discovery::new(
            backend.clone(),
            snapshot.clone(),
            config,
            Arc::new(Metrics::new()),
            health.clone(),
        );
        (backend, snapshot, health, discovery)
    }

    fn answer_both(backend: &FakeBackend) {
        backend.answer_series(
            "a_total",
            Ok(vec![SeriesShape::new("a_total", ["pod", "namespace"])]),
        );
        backend.answer_series("b_total", Ok(vec![SeriesShape::new("b_total", ["node"])]));
    }

    fn metrics(snapshot: &SharedSnapshot) -> Vec<String> {
        snapshot
            .load()
            .registry
            .custom_metrics()
            .map(|(i, _)| format!("{}/{}", i.resource, i.metric))
            .collect()
    }

    #[tokio::test]
    async fn one_request_per_distinct_series_query() {
        let (backend, snapshot, readiness, mut discovery) = setup();
        answer_both(&backend);
        assert!(!readiness.is_ready());
        assert!(readiness.is_live(unix_now()), "alive while starting");
        discovery.relist_once().await;
        assert!(readiness.is_live(unix_now()));
        assert!(
            !readiness.is_live(unix_now() + 3601.0),
            "a loop that stops relisting is not live"
        );
        assert_eq!(
            *backend.seen_series.lock().unwrap(),
            vec!["a_total", "b_total"]
        );
        assert_eq!(
            metrics(&snapshot),
            vec![
                "namespaces/a_total",
                "namespaces/renamed",
                "nodes/b_total",
                "pods/a_total",
                "pods/renamed"
            ]
        );
        assert!(readiness.is_ready());
    }

    #[tokio::test]
    async fn a_failing_query_keeps_its_last_good_answer() {
        let (backend, snapshot, _, mut discovery) = setup();
        answer_both(&backend);
        discovery.relist_once().await;
        // b fails; a changes: a is updated, b's last good answer stays.
        backend.answer_series("a_total", Ok(vec![SeriesShape::new("a_total", ["node"])]));
        backend.answer_series("b_total", Err(BackendError::Unavailable("down".into())));
        discovery.relist_once().await;
        assert_eq!(metrics(&snapshot), vec!["nodes/b_total"]);
    }

    /// The `[start, end]` of the series listings so far, in order (a, then b, per relist).
    fn windows(backend: &FakeBackend) -> Vec<(f64, f64)> {
        backend.seen_series_windows.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn after_failed_listings_the_window_reaches_back_to_the_last_good_one() {
        let (backend, snapshot, _, mut discovery) = setup();
        // The relists' clock is given: 60 s of max age (setup's), relists a second apart.
        let t = 1_800_000_000.0;
        answer_both(&backend);
        discovery.relist_once_at(t).await;
        // Prometheus is down for b's listings...
        backend.answer_series("b_total", Err(BackendError::Unavailable("down".into())));
        discovery.relist_once_at(t + 70.0).await;
        discovery.relist_once_at(t + 140.0).await;
        // ...and back before it has scraped again: b's listings reach back to the start of its
        // last good window for one max age, so series that had samples then are not dropped; a,
        // never down, lists the last max age.
        answer_both(&backend);
        discovery.relist_once_at(t + 141.0).await;
        discovery.relist_once_at(t + 200.0).await;
        let w = windows(&backend);
        assert_eq!(w[1], (t - 60.0, t), "b's last good window");
        assert_eq!((w[6], w[7]), ((t + 81.0, t + 141.0), (t - 60.0, t + 141.0)));
        assert_eq!(
            w[9],
            (t - 60.0, t + 200.0),
            "within a max age of listing again"
        );
        assert_eq!(metrics(&snapshot).len(), 5);
        // A max age after b listed again, it lists the last max age.
        discovery.relist_once_at(t + 202.0).await;
        assert_eq!(windows(&backend)[11], (t + 142.0, t + 202.0));
    }

    #[tokio::test]
    async fn not_ready_until_every_query_has_answered() {
        let (backend, snapshot, readiness, mut discovery) = setup();
        backend.answer_series(
            "a_total",
            Ok(vec![SeriesShape::new("a_total", ["pod", "namespace"])]),
        );
        backend.answer_series("b_total", Err(BackendError::Failed("bad_data".into())));
        discovery.relist_once().await;
        assert!(!readiness.is_ready());
        assert!(!snapshot.load().discovered, "a missing metric may yet come");
        assert_eq!(
            metrics(&snapshot).len(),
            4,
            "what did answer is served meanwhile"
        );
        backend
            .series
            .lock()
            .unwrap()
            .insert("b_total".into(), Ok(vec![]));
        discovery.relist_once().await;
        assert!(readiness.is_ready());
        assert!(snapshot.load().discovered);
    }

    #[tokio::test]
    async fn new_rules_swap_in_with_their_registry_and_keep_shared_answers() {
        let (backend, snapshot, _, mut discovery) = setup();
        answer_both(&backend);
        discovery.relist_once().await;
        // Prometheus now fails every listing: a_total, which the new rules still use, keeps its
        // last good answer; c_total, new, has none yet.
        backend.answer_series("a_total", Err(BackendError::Unavailable("down".into())));
        backend.answer_series("c_total", Err(BackendError::Unavailable("down".into())));
        let rules = prom_adapter_core::config::parse_rules(
            r#"
rules:
- seriesQuery: 'a_total'
  resources: {overrides: {pod: {resource: pod}, namespace: {resource: namespace}}}
  name: {as: again}
  metricsQuery: x
- seriesQuery: 'c_total'
  resources: {overrides: {node: {resource: node}}}
  metricsQuery: x
"#,
            "test",
        )
        .unwrap();
        let change = discovery.apply(Arc::new(rules)).await;
        assert_eq!(
            change,
            RulesChange {
                appeared: vec!["namespaces/again".into(), "pods/again".into()],
                disappeared: vec![
                    "namespaces/a_total".into(),
                    "namespaces/renamed".into(),
                    "nodes/b_total".into(),
                    "pods/a_total".into(),
                    "pods/renamed".into(),
                ],
            }
        );
        let current = snapshot.load();
        assert_eq!(
            current.rules.distinct_series_queries(),
            vec!["a_total", "c_total"]
        );
        assert_eq!(metrics(&snapshot), vec!["namespaces/again", "pods/again"]);
    }

    #[tokio::test]
    async fn a_new_resource_table_is_applied_without_asking_prometheus() {
        let (backend, snapshot, _, mut discovery) = setup();
        backend.answer_series(
            "a_total",
            Ok(vec![SeriesShape::new(
                "a_total",
                ["pod", "namespace", "queue"],
            )]),
        );
        backend.answer_series("b_total", Ok(vec![]));
        discovery.relist_once().await;
        assert!(!metrics(&snapshot).iter().any(|m| m.starts_with("queues")));
        let calls = backend.seen_series.lock().unwrap().len();
        // The rules map `queue` to a resource the built-in table lacks; the cluster installs it.
        let rules = prom_adapter_core::config::parse_rules(
            "rules:\n- seriesQuery: 'a_total'\n  resources: {overrides: {queue: {group: example.com, resource: queue}}}\n  metricsQuery: x\n",
            "test",
        )
        .unwrap();
        discovery.apply(Arc::new(rules)).await;
        assert!(metrics(&snapshot).is_empty());
        let calls_after_apply = backend.seen_series.lock().unwrap().len();
        assert!(calls_after_apply > calls);
        let table = ResourceTable::new(vec![prom_adapter_core::resources::ResourceInfo {
            group: "example.com".into(),
            version: "v1".into(),
            kind: "Queue".into(),
            plural: "queues".into(),
            singular: "queue".into(),
            namespaced: false,
        }]);
        discovery.install_table(Arc::new(table.clone()));
        assert_eq!(metrics(&snapshot), vec!["queues.example.com/a_total"]);
        assert_eq!(
            backend.seen_series.lock().unwrap().len(),
            calls_after_apply,
            "no new listing"
        );
    }
}
