//! Resource metrics (`metrics.k8s.io`): CPU and memory of running pods and nodes from `resourceRules`, assembled as metrics-server does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};

use super::resource_objects::{NodeRef, PodRef, ResourceObjects};
use super::{BackendError, Error, MetricsBackend, QueryOptions, SharedSnapshot};
use prom_adapter_core::model::{GroupResource, QuantityFormat, Sample, quantity_from_f64};
use prom_adapter_core::plan::{QueryShaping, usage_queries};
use prom_adapter_core::promql::LabelSelector;
use prom_adapter_core::resources::ResourceTable;
use prom_adapter_core::rules::{ResourceRule, ResourceRules};

/// How many namespaces' queries run at once for an all-namespaces pod list.
const NAMESPACE_CONCURRENCY: usize = 8;

/// One container's usage.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerUsage {
    /// Container name (`""` when the series has no container label).
    pub name: String,
    /// CPU, in cores, as a quantity.
    pub cpu: String,
    /// Memory, in bytes, as a quantity.
    pub memory: String,
    /// CPU cores and memory bytes as numbers (after NaN and negatives became 0), for sums.
    pub raw: (f64, f64),
}

/// A pod's usage, per container.
#[derive(Debug, Clone, PartialEq)]
pub struct PodMetrics {
    /// The pod.
    pub pod: PodRef,
    /// The earliest sample time (Unix seconds).
    pub timestamp: f64,
    /// The rules' `window`.
    pub window: Duration,
    /// Containers, by name.
    pub containers: Vec<ContainerUsage>,
}

impl PodMetrics {
    /// CPU and memory summed over the containers, as quantities (the Table form's cells).
    pub fn total_usage(&self) -> (String, String) {
        let (cpu, memory) = self
            .containers
            .iter()
            .fold((0.0, 0.0), |(c, m), u| (c + u.raw.0, m + u.raw.1));
        (
            usage_quantity(cpu, QuantityFormat::DecimalSi).unwrap_or_default(),
            usage_quantity(memory, QuantityFormat::BinarySi).unwrap_or_default(),
        )
    }
}

/// A node's usage.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeMetrics {
    /// The node.
    pub node: NodeRef,
    /// The earlier of the CPU and memory sample times (Unix seconds).
    pub timestamp: f64,
    /// The rules' `window`.
    pub window: Duration,
    /// CPU, in cores, as a quantity.
    pub cpu: String,
    /// Memory, in bytes, as a quantity.
    pub memory: String,
}

/// `fieldSelector` of the resource metrics API: `metadata.name` and `metadata.namespace`, with
/// `=`, `==` or `!=`, as metrics-server accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses `metadata.name=x,metadata.namespace!=y`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(Error::BadRequest(format!(
                    "invalid fieldSelector term {term:?}: expected FIELD=VALUE or FIELD!=VALUE"
                )));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(Error::BadRequest(format!(
                    "field label not supported: {field} (use metadata.name or metadata.namespace)"
                )));
            }
            terms.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self { terms })
    }

    /// Whether an object with this name and namespace is selected.
    pub fn matches(&self, name: &str, namespace: &str) -> bool {
        self.terms.iter().all(|(field, equal, value)| {
            let actual = if field == "metadata.name" {
                name
            } else {
                namespace
            };
            (actual == value) == *equal
        })
    }
}

/// The resource metrics service.
#[derive(Clone)]
pub struct ResourceMetrics {
    snapshot: SharedSnapshot,
    backend: Arc<dyn MetricsBackend>,
    objects: Arc<dyn ResourceObjects>,
    options: QueryOptions,
}

impl ResourceMetrics {
    /// A service reading the shared snapshot's `resourceRules`.
    pub fn new(
        snapshot: SharedSnapshot,
        backend: Arc<dyn MetricsBackend>,
        objects: Arc<dyn ResourceObjects>,
    ) -> Self {
        Self {
            snapshot,
            backend,
            objects,
            options: QueryOptions::default(),
        }
    }

    /// How requests for objects become queries, and where each rule's queries are counted.
    #[must_use]
    pub fn with_query_options(mut self, options: QueryOptions) -> Self {
        self.options = options;
        self
    }

    /// Whether the rules file has `resourceRules` (the API exists only then).
    pub fn enabled(&self) -> bool {
        self.snapshot.load().rules.resource.is_some()
    }

    /// Pods in `namespace` (all when `None`) chosen by the selectors, sorted by namespace and
    /// name. A pod without both CPU and memory samples is left out, as metrics-server does.
    pub async fn pods(
        &self,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        now: f64,
    ) -> Result<Vec<PodMetrics>, Error> {
        let pods: Vec<PodRef> = self
            .objects
            .running_pods(namespace)
            .await?
            .into_iter()
            .filter(|p| labels.matches(&p.labels) && fields.matches(&p.name, &p.namespace))
            .collect();
        let mut by_namespace: BTreeMap<String, Vec<PodRef>> = BTreeMap::new();
        for pod in pods {
            by_namespace
                .entry(pod.namespace.clone())
                .or_default()
                .push(pod);
        }
        let snapshot = self.snapshot.load_full();
        let Some(rules) = snapshot.rules.resource.as_ref() else {
            return Ok(Vec::new());
        };
        let table = &snapshot.table;
        let mut metrics: Vec<PodMetrics> = futures_util::stream::iter(by_namespace)
            .map(|(namespace, pods)| self.namespace_pods(rules, table, namespace, pods, now))
            .buffer_unordered(NAMESPACE_CONCURRENCY)
            .try_concat()
            .await?;
        metrics
            .sort_by(|a, b| (&a.pod.namespace, &a.pod.name).cmp(&(&b.pod.namespace, &b.pod.name)));
        Ok(metrics)
    }

    /// One pod.
    pub async fn pod(&self, namespace: &str, name: &str, now: f64) -> Result<PodMetrics, Error> {
        let fields = FieldSelector {
            terms: vec![("metadata.name".into(), true, name.into())],
        };
        self.pods(Some(namespace), &LabelSelector::default(), &fields, now)
            .await?
            .pop()
            .ok_or_else(|| Error::NoResourceMetrics {
                resource: "pods",
                name: name.to_owned(),
            })
    }

    async fn namespace_pods(
        &self,
        rules: &ResourceRules,
        table: &ResourceTable,
        namespace: String,
        pods: Vec<PodRef>,
        now: f64,
    ) -> Result<Vec<PodMetrics>, Error> {
        let names: Vec<String> = pods.iter().map(|p| p.name.clone()).collect();
        let [(cpu_label, cpu), (memory_label, memory)] = self
            .usage(rules, table, "pods", Some(&namespace), &names, now)
            .await?;
        Ok(assemble_pods(
            pods,
            (&cpu_label, &rules.cpu.container_label, &cpu.as_slice()),
            (
                &memory_label,
                &rules.memory.container_label,
                &memory.as_slice(),
            ),
            rules.window,
        ))
    }

    /// Nodes chosen by the selectors, sorted by name.
    pub async fn nodes(
        &self,
        labels: &LabelSelector,
        fields: &FieldSelector,
        now: f64,
    ) -> Result<Vec<NodeMetrics>, Error> {
        let nodes: Vec<NodeRef> = self
            .objects
            .nodes()
            .await?
            .into_iter()
            .filter(|n| labels.matches(&n.labels) && fields.matches(&n.name, ""))
            .collect();
        let snapshot = self.snapshot.load_full();
        let Some(rules) = snapshot.rules.resource.as_ref() else {
            return Ok(Vec::new());
        };
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let table = &snapshot.table;
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let [(cpu_label, cpu), (memory_label, memory)] =
            self.usage(rules, table, "nodes", None, &names, now).await?;
        let mut metrics = assemble_nodes(
            nodes,
            (&cpu_label, &cpu.as_slice()),
            (&memory_label, &memory.as_slice()),
            rules.window,
        );
        metrics.sort_by(|a, b| a.node.name.cmp(&b.node.name));
        Ok(metrics)
    }

    /// One node.
    pub async fn node(&self, name: &str, now: f64) -> Result<NodeMetrics, Error> {
        let fields = FieldSelector {
            terms: vec![("metadata.name".into(), true, name.into())],
        };
        self.nodes(&LabelSelector::default(), &fields, now)
            .await?
            .pop()
            .ok_or_else(|| Error::NoResourceMetrics {
                resource: "nodes",
                name: name.to_owned(),
            })
    }

    /// CPU and memory samples of `resource` objects `names`, each with its object label.
    async fn usage<'a>(
        &'a self,
        rules: &'a ResourceRules,
        table: &'a ResourceTable,
        resource: &str,
        namespace: Option<&'a str>,
        names: &'a [String],
        now: f64,
    ) -> Result<[(String, crate::Samples); 2], Error> {
        let resource = &GroupResource::new("", resource);
        // One query for every object, or a long object list in parts, at once; callers pick the
        // asked objects' samples.
        let usage = |rule: &'a ResourceRule, name: &'static str| async move {
            let label =
                (rule.resources.label_for_resource(resource, table)).map_err(Error::Query)?;
            let ask = |shaping: QueryShaping| async move {
                let planned = usage_queries(rule, table, resource, namespace, names, shaping)
                    .map_err(|e| ("", e))?;
                self.options.record(name, &planned);
                crate::ask_parts(self.backend.as_ref(), &planned.queries, now)
                    .await
                    .map_err(|error| (planned.shape, error))
            };
            let samples = match ask(self.options.shaping).await {
                Ok(samples) => samples,
                // As for custom metrics: another pod's trouble must not fail these pods.
                Err((
                    "batched",
                    Error::Backend(BackendError::Failed(reason) | BackendError::TooLarge(reason)),
                )) => {
                    tracing::warn!(rule = name, %reason, "the query for every pod failed; asking by name");
                    let by_name = QueryShaping {
                        batch: false,
                        ..self.options.shaping
                    };
                    ask(by_name).await.map_err(|(_, error)| error)?
                }
                Err((_, error)) => return Err(error),
            };
            Ok::<_, Error>((label, samples))
        };
        let (cpu, memory) = futures_util::future::try_join(
            usage(&rules.cpu, "resourceRules.cpu"),
            usage(&rules.memory, "resourceRules.memory"),
        )
        .await?;
        Ok([cpu, memory])
    }
}

/// NaN and negative usage is 0, as metrics-server reports it.
fn sanitize(value: f64) -> f64 {
    if value.is_nan() || value < 0.0 {
        0.0
    } else {
        value
    }
}

/// A usage value as a quantity; `None` for values no quantity holds (+Inf, too large).
fn usage_quantity(value: f64, format: QuantityFormat) -> Option<String> {
    quantity_from_f64(sanitize(value), format).ok()
}

/// Pairs each pod with its CPU and memory samples (each given as pod label, container label,
/// samples). Containers are the union of both, sorted by name; one seen in only one of them gets
/// 0 for the other.
pub fn assemble_pods(
    pods: Vec<PodRef>,
    cpu: (&str, &str, &[Sample]),
    memory: (&str, &str, &[Sample]),
    window: Duration,
) -> Vec<PodMetrics> {
    fn by_pod<'a>(pod_label: &str, samples: &'a [Sample]) -> HashMap<&'a str, Vec<&'a Sample>> {
        let mut index: HashMap<&str, Vec<&Sample>> = HashMap::new();
        for sample in samples {
            if let Some(pod) = sample.labels.get(pod_label) {
                index.entry(pod).or_default().push(sample);
            }
        }
        index
    }
    let (cpu_by_pod, memory_by_pod) = (by_pod(cpu.0, cpu.2), by_pod(memory.0, memory.2));
    let mut out = Vec::with_capacity(pods.len());
    for pod in pods {
        let (Some(cpu_samples), Some(memory_samples)) = (
            cpu_by_pod.get(pod.name.as_str()),
            memory_by_pod.get(pod.name.as_str()),
        ) else {
            tracing::debug!(namespace = %pod.namespace, pod = %pod.name, "no CPU or no memory samples for pod");
            continue;
        };
        // container → (cpu, memory)
        let mut containers: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        let mut timestamp = f64::INFINITY;
        for (samples, container_label, is_cpu) in [
            (cpu_samples, cpu.1, true),
            (memory_samples, memory.1, false),
        ] {
            for sample in samples {
                let name = sample
                    .labels
                    .get(container_label)
                    .cloned()
                    .unwrap_or_default();
                let entry = containers.entry(name).or_insert((0.0, 0.0));
                if is_cpu {
                    entry.0 = sample.value;
                } else {
                    entry.1 = sample.value;
                }
                timestamp = timestamp.min(sample.timestamp);
            }
        }
        let usages: Option<Vec<ContainerUsage>> = containers
            .into_iter()
            .map(|(name, (cpu, memory))| {
                Some(ContainerUsage {
                    name,
                    cpu: usage_quantity(cpu, QuantityFormat::DecimalSi)?,
                    memory: usage_quantity(memory, QuantityFormat::BinarySi)?,
                    raw: (sanitize(cpu), sanitize(memory)),
                })
            })
            .collect();
        let Some(containers) = usages else {
            tracing::warn!(namespace = %pod.namespace, pod = %pod.name, "skipping a pod whose usage is infinite or too large");
            continue;
        };
        out.push(PodMetrics {
            pod,
            timestamp,
            window,
            containers,
        });
    }
    out
}

/// Pairs each node with the first CPU and memory sample for it (each given as node label,
/// samples); a node without both is left out.
pub fn assemble_nodes(
    nodes: Vec<NodeRef>,
    cpu: (&str, &[Sample]),
    memory: (&str, &[Sample]),
    window: Duration,
) -> Vec<NodeMetrics> {
    let first = |(label, samples): (&str, &[Sample]), node: &str| -> Option<(f64, f64)> {
        samples
            .iter()
            .find(|s| s.labels.get(label).map(String::as_str) == Some(node))
            .map(|s| (s.value, s.timestamp))
    };
    nodes
        .into_iter()
        .filter_map(|node| {
            let (cpu_value, cpu_time) = first(cpu, &node.name)?;
            let (memory_value, memory_time) = first(memory, &node.name)?;
            let metrics = NodeMetrics {
                timestamp: cpu_time.min(memory_time),
                window,
                cpu: usage_quantity(cpu_value, QuantityFormat::DecimalSi)?,
                memory: usage_quantity(memory_value, QuantityFormat::BinarySi)?,
                node,
            };
            Some(metrics)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use futures_util::future::BoxFuture;

    use super::*;
    use crate::BackendError;
    use crate::Snapshot;
    use crate::fake::FakeBackend;
    use prom_adapter_core::model::QueryResult;

    fn sample(labels: &[(&str, &str)], value: f64, millis: u64) -> Sample {
        crate::fake::sample(labels, value, millis as f64 / 1000.0)
    }

    fn pod(namespace: &str, name: &str) -> PodRef {
        PodRef {
            namespace: namespace.into(),
            name: name.into(),
            labels: BTreeMap::new(),
        }
    }

    fn node(name: &str) -> NodeRef {
        NodeRef {
            name: name.into(),
            labels: BTreeMap::new(),
        }
    }

    fn usage(pod: &PodMetrics) -> Vec<(&str, &str, &str)> {
        pod.containers
            .iter()
            .map(|c| (c.name.as_str(), c.cpu.as_str(), c.memory.as_str()))
            .collect()
    }

    fn c(pod: &str, container: &str, value: f64, millis: u64) -> Sample {
        sample(&[("pod", pod), ("container", container)], value, millis)
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn pods_pair_cpu_and_memory_per_container() {
        // prometheus-adapter's pkg/resourceprovider/provider_test.go, cases 1 and 2
        // (pod-nonexistant has no samples).
        let cpu = [
            c("pod1", "cont1", 1100.0, 10),
            c("pod1", "cont2", 1110.0, 20),
            c("pod3", "cont1", 1300.0, 10),
            c("pod3", "cont2", 1310.0, 20),
        ];
        let memory = [
            c("pod1", "cont1", 3100.0, 11),
            c("pod1", "cont2", 3110.0, 21),
            c("pod3", "cont1", 3300.0, 11),
            c("pod3", "cont2", 3310.0, 21),
        ];
        let pods = vec![
            pod("some-ns", "pod1"),
            pod("some-ns", "pod-nonexistant"),
            pod("some-ns", "pod3"),
        ];
        let got = assemble_pods(
            pods,
            ("pod", "container", &cpu),
            ("pod", "container", &memory),
            MINUTE,
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].pod.name, "pod1");
        assert_eq!(got[0].timestamp, 0.010);
        assert_eq!(got[0].window, MINUTE);
        assert_eq!(
            usage(&got[0]),
            vec![("cont1", "1100", "3100"), ("cont2", "1110", "3110")]
        );
        assert_eq!(
            usage(&got[1]),
            vec![("cont1", "1300", "3300"), ("cont2", "1310", "3310")]
        );
    }

    #[test]
    fn nan_and_negative_usage_is_zero_and_one_sided_containers_get_zero() {
        // prometheus-adapter's pkg/resourceprovider/provider_test.go, case 3, plus a container
        // with CPU only and a pod with no memory.
        let cpu = [
            c("pod1", "cont1", -1100.0, 10),
            c("pod1", "cont2", f64::NAN, 20),
            c("pod3", "cont1", -1300.0, 10),
            c("pod3", "cont2", 1310.0, 20),
            c("pod3", "sidecar", 0.5, 20),
            c("pod4", "cont1", 1.0, 20),
        ];
        let memory = [
            c("pod1", "cont1", 3100.0, 11),
            c("pod1", "cont2", -3110.0, 21),
            c("pod3", "cont1", f64::NAN, 11),
            c("pod3", "cont2", -3310.0, 21),
        ];
        let pods = vec![pod("ns", "pod1"), pod("ns", "pod3"), pod("ns", "pod4")];
        let got = assemble_pods(
            pods,
            ("pod", "container", &cpu),
            ("pod", "container", &memory),
            MINUTE,
        );
        assert_eq!(got.len(), 2, "pod4 has no memory samples");
        assert_eq!(
            usage(&got[0]),
            vec![("cont1", "0", "3100"), ("cont2", "0", "0")]
        );
        assert_eq!(
            usage(&got[1]),
            vec![
                ("cont1", "0", "0"),
                ("cont2", "1310", "0"),
                ("sidecar", "500m", "0")
            ]
        );
        assert_eq!(got[1].timestamp, 0.010);
    }

    #[test]
    fn nodes_take_the_first_sample_and_skip_missing_ones() {
        // prometheus-adapter's pkg/resourceprovider/provider_test.go, cases 4 to 6.
        let n = |name: &str, value: f64, millis: u64| {
            sample(&[("instance", name), ("id", "/")], value, millis)
        };
        let cpu = [n("node1", 1100.0, 10), n("node2", 1200.0, 14)];
        let memory = [n("node1", 2100.0, 11), n("node2", 2200.0, 12)];
        let got = assemble_nodes(
            vec![node("node1"), node("node2"), node("node3")],
            ("instance", &cpu),
            ("instance", &memory),
            MINUTE,
        );
        let summary: Vec<(&str, &str, &str, f64)> = got
            .iter()
            .map(|m| {
                (
                    m.node.name.as_str(),
                    m.cpu.as_str(),
                    m.memory.as_str(),
                    m.timestamp,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("node1", "1100", "2100", 0.010),
                ("node2", "1200", "2200", 0.012)
            ]
        );
        let cpu = [n("node1", -1100.0, 10), n("node2", 1200.0, 14)];
        let memory = [n("node1", 2100.0, 11), n("node2", f64::NAN, 12)];
        let got = assemble_nodes(
            vec![node("node1"), node("node2")],
            ("instance", &cpu),
            ("instance", &memory),
            MINUTE,
        );
        assert_eq!((got[0].cpu.as_str(), got[0].memory.as_str()), ("0", "2100"));
        assert_eq!((got[1].cpu.as_str(), got[1].memory.as_str()), ("1200", "0"));
    }

    #[test]
    fn field_selectors_name_and_namespace_only() {
        let f = FieldSelector::parse("metadata.name=a,metadata.namespace!=kube-system").unwrap();
        assert!(f.matches("a", "default"));
        assert!(!f.matches("a", "kube-system"));
        assert!(!f.matches("b", "default"));
        assert!(
            FieldSelector::parse("metadata.name==a")
                .unwrap()
                .matches("a", "")
        );
        assert!(FieldSelector::parse("").unwrap().matches("x", "y"));
        assert!(matches!(
            FieldSelector::parse("status.phase=Running"),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            FieldSelector::parse("nonsense"),
            Err(Error::BadRequest(_))
        ));
    }

    struct FixedObjects;

    impl ResourceObjects for FixedObjects {
        fn running_pods<'a>(
            &'a self,
            namespace: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Vec<PodRef>, BackendError>> {
            let mut web = pod("some-ns", "pod3");
            web.labels.insert("app".into(), "web".into());
            let all = vec![pod("some-ns", "pod1"), web, pod("other-ns", "pod27")];
            Box::pin(async move {
                Ok(all
                    .into_iter()
                    .filter(|p| namespace.is_none_or(|ns| p.namespace == ns))
                    .collect())
            })
        }
        fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeRef>, BackendError>> {
            Box::pin(async { Ok(vec![node("node2"), node("node1")]) })
        }
    }

    /// Asks by name, as prometheus-adapter does (its tests' exact queries).
    fn service() -> (ResourceMetrics, Arc<FakeBackend>) {
        let (service, backend) = batching_service();
        let by_name = QueryShaping {
            batch: false,
            ..QueryShaping::default()
        };
        (
            service.with_query_options(QueryOptions {
                shaping: by_name,
                metrics: None,
            }),
            backend,
        )
    }

    const UPSTREAM_RESOURCE_RULES: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/upstream-resource-rules.yaml"
    ));

    fn batching_service() -> (ResourceMetrics, Arc<FakeBackend>) {
        let rules =
            prom_adapter_core::config::parse_rules(UPSTREAM_RESOURCE_RULES, "test").unwrap();
        let snapshot = Arc::new(arc_swap::ArcSwap::from_pointee(Snapshot {
            rules: Arc::new(rules),
            table: Arc::new(ResourceTable::builtin()),
            registry: Arc::default(),
            discovered: true,
        }));
        let backend = Arc::new(FakeBackend::default());
        (
            ResourceMetrics::new(snapshot, backend.clone(), Arc::new(FixedObjects)),
            backend,
        )
    }

    #[tokio::test]
    async fn queries_per_namespace_and_sorts_like_metrics_server() {
        let (service, backend) = service();
        let answer = |query: &str, samples: Vec<Sample>| {
            backend
                .queries
                .lock()
                .unwrap()
                .insert(query.into(), Ok(QueryResult::Vector(samples.into())));
        };
        // The exact queries of prometheus-adapter's pkg/resourceprovider/provider_test.go.
        answer(
            r#"sum(rate(container_cpu_usage_seconds_total{namespace="some-ns",pod=~"pod1|pod3"}[1m])) by (pod,container)"#,
            vec![
                c("pod1", "cont1", 1100.0, 10),
                c("pod3", "cont1", 1300.0, 10),
            ],
        );
        answer(
            r#"sum(container_memory_working_set_bytes{namespace="some-ns",pod=~"pod1|pod3"}) by (pod,container)"#,
            vec![
                c("pod1", "cont1", 3100.0, 11),
                c("pod3", "cont1", 3300.0, 11),
            ],
        );
        answer(
            r#"sum(rate(container_cpu_usage_seconds_total{namespace="other-ns",pod="pod27"}[1m])) by (pod,container)"#,
            vec![c("pod27", "cont1", 2200.0, 270)],
        );
        answer(
            r#"sum(container_memory_working_set_bytes{namespace="other-ns",pod="pod27"}) by (pod,container)"#,
            vec![c("pod27", "cont1", 4200.0, 271)],
        );
        let all = service
            .pods(
                None,
                &LabelSelector::default(),
                &FieldSelector::default(),
                0.0,
            )
            .await
            .unwrap();
        let names: Vec<(&str, &str)> = all
            .iter()
            .map(|p| (p.pod.namespace.as_str(), p.pod.name.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("other-ns", "pod27"),
                ("some-ns", "pod1"),
                ("some-ns", "pod3")
            ]
        );
        let web = service
            .pods(
                Some("some-ns"),
                &LabelSelector::parse("app=web").unwrap(),
                &FieldSelector::default(),
                0.0,
            )
            .await
            .unwrap();
        assert_eq!(
            web.len(),
            0,
            "pod3 alone is queried, and that query has no answer"
        );
        assert!(
            backend
                .seen_queries
                .lock()
                .unwrap()
                .iter()
                .any(|q| q.contains(r#"pod="pod3""#))
        );
        let missing = service.pod("some-ns", "nope", 0.0).await.unwrap_err();
        assert_eq!(missing.to_string(), r#"pods "nope" not found"#);

        answer(
            r#"sum(rate(container_cpu_usage_seconds_total{instance=~"node2|node1", id='/'}[1m])) by (instance)"#,
            vec![
                sample(&[("instance", "node2")], 1.0, 1),
                sample(&[("instance", "node1")], 2.0, 1),
            ],
        );
        answer(
            r#"sum(container_memory_working_set_bytes{instance=~"node2|node1",id='/'}) by (instance)"#,
            vec![
                sample(&[("instance", "node2")], 1024.0, 1),
                sample(&[("instance", "node1")], 2048.0, 1),
            ],
        );
        let nodes = service
            .nodes(&LabelSelector::default(), &FieldSelector::default(), 0.0)
            .await
            .unwrap();
        let summary: Vec<(&str, &str, &str)> = nodes
            .iter()
            .map(|n| (n.node.name.as_str(), n.cpu.as_str(), n.memory.as_str()))
            .collect();
        assert_eq!(summary, vec![("node1", "2", "2Ki"), ("node2", "1", "1Ki")]);
    }

    #[tokio::test]
    async fn an_unavailable_prometheus_fails_the_whole_list() {
        let (service, backend) = service();
        backend.queries.lock().unwrap().insert(
            r#"sum(rate(container_cpu_usage_seconds_total{namespace="other-ns",pod="pod27"}[1m])) by (pod,container)"#.into(),
            Err(BackendError::Unavailable("connection refused".into())),
        );
        let result = service
            .pods(
                None,
                &LabelSelector::default(),
                &FieldSelector::default(),
                0.0,
            )
            .await;
        assert!(
            matches!(result, Err(Error::Backend(BackendError::Unavailable(_)))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn one_query_per_namespace_serves_its_listed_pods() {
        let (service, backend) = batching_service();
        for (query, value) in [
            (
                r#"sum(rate(container_cpu_usage_seconds_total{namespace="some-ns"}[1m])) by (pod,container)"#,
                1000.0,
            ),
            (
                r#"sum(container_memory_working_set_bytes{namespace="some-ns"}) by (pod,container)"#,
                2000.0,
            ),
        ] {
            // `pod9` has samples but is not a listed pod.
            let samples = ["pod1", "pod3", "pod9"]
                .iter()
                .map(|pod| c(pod, "cont1", value, 10))
                .collect::<Vec<_>>();
            backend
                .queries
                .lock()
                .unwrap()
                .insert(query.into(), Ok(QueryResult::Vector(samples.into())));
        }
        let pods = service
            .pods(
                Some("some-ns"),
                &LabelSelector::default(),
                &FieldSelector::default(),
                0.0,
            )
            .await
            .unwrap();
        let names: Vec<&str> = pods.iter().map(|p| p.pod.name.as_str()).collect();
        assert_eq!(names, ["pod1", "pod3"]);
        assert_eq!(backend.seen_queries.lock().unwrap().len(), 2);
    }
}
