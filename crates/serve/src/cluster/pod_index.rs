//! Pods' names and labels by namespace, and by label within it, kept from a watch's events: what label-selector and `metrics.k8s.io` requests read, instead of scanning every pod.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;
use tokio::sync::watch;

use prom_adapter_core::promql::LabelSelector;

/// A pod's labels.
pub type Labels = BTreeMap<String, String>;

/// One namespace's pods: labels by name, and names by label key and value.
#[derive(Default)]
struct Namespace {
    pods: BTreeMap<String, Labels>,
    by_label: HashMap<String, HashMap<String, BTreeSet<String>>>,
}

impl Namespace {
    fn insert(&mut self, name: &str, labels: Labels) {
        self.remove(name);
        for (key, value) in &labels {
            (self.by_label.entry(key.clone()).or_default())
                .entry(value.clone())
                .or_default()
                .insert(name.to_owned());
        }
        self.pods.insert(name.to_owned(), labels);
    }

    fn remove(&mut self, name: &str) {
        let Some(labels) = self.pods.remove(name) else {
            return;
        };
        for (key, value) in &labels {
            let Some(values) = self.by_label.get_mut(key) else {
                continue;
            };
            if let Some(names) = values.get_mut(value) {
                names.remove(name);
                if names.is_empty() {
                    values.remove(value);
                }
            }
            if values.is_empty() {
                self.by_label.remove(key);
            }
        }
    }

    /// The names `selector` selects, in name order: those of the index entries for the label it
    /// requires, checked against the whole selector; every pod when it requires none.
    fn selected(&self, selector: &LabelSelector, names: &mut Vec<String>) {
        let matching = |name: &String| self.pods.get(name).is_some_and(|l| selector.matches(l));
        match selector.required_values() {
            Some((key, values)) => {
                let Some(by_value) = self.by_label.get(key) else {
                    return;
                };
                let candidates: BTreeSet<&String> = (values.iter())
                    .filter_map(|value| by_value.get(value))
                    .flatten()
                    .collect();
                names.extend(candidates.into_iter().filter(|n| matching(n)).cloned());
            }
            None => names.extend(self.pods.keys().filter(|n| matching(n)).cloned()),
        }
    }
}

/// Pods by namespace.
type ByNamespace = HashMap<String, Namespace>;

#[derive(Default)]
struct Pods {
    live: ByNamespace,
    /// The pods a relist has given so far; they replace `live` when it is done, so that pods
    /// deleted while the watch was down go too.
    relisting: Option<ByNamespace>,
}

/// Pods' names and labels by namespace, filled by `apply` from a watch's events, and ready once
/// its first list is complete.
pub struct PodIndex {
    pods: RwLock<Pods>,
    ready: watch::Sender<bool>,
}

impl Default for PodIndex {
    fn default() -> Self {
        Self {
            pods: RwLock::default(),
            ready: watch::Sender::new(false),
        }
    }
}

/// A pod's namespace and name; `None` for an object without either.
fn identity(pod: &PartialObjectMeta<Pod>) -> Option<(&str, &str)> {
    Some((
        pod.metadata.namespace.as_deref()?,
        pod.metadata.name.as_deref()?,
    ))
}

fn insert(pods: &mut ByNamespace, pod: &PartialObjectMeta<Pod>) {
    if let Some((namespace, name)) = identity(pod) {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        (pods.entry(namespace.to_owned()).or_default()).insert(name, labels);
    }
}

impl PodIndex {
    /// Follows one event of a watch of pods' metadata.
    pub fn apply(&self, event: &Event<PartialObjectMeta<Pod>>) {
        let mut pods = self.pods.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::Apply(pod) => insert(&mut pods.live, pod),
            Event::Delete(pod) => {
                if let Some((namespace, name)) = identity(pod)
                    && let Some(pods_of_namespace) = pods.live.get_mut(namespace)
                {
                    pods_of_namespace.remove(name);
                    if pods_of_namespace.pods.is_empty() {
                        pods.live.remove(namespace);
                    }
                }
            }
            Event::Init => pods.relisting = Some(ByNamespace::new()),
            Event::InitApply(pod) => insert(pods.relisting.get_or_insert_default(), pod),
            Event::InitDone => {
                pods.live = pods.relisting.take().unwrap_or_default();
                drop(pods);
                self.ready.send_replace(true);
            }
        }
    }

    /// Whether the watch's first list is complete.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits up to `wait` for the first list; false if it has not completed by then.
    pub async fn wait_ready(&self, wait: Duration) -> bool {
        let mut ready = self.ready.subscribe();
        matches!(
            tokio::time::timeout(wait, ready.wait_for(|ready| *ready)).await,
            Ok(Ok(_))
        )
    }

    fn read(&self) -> RwLockReadGuard<'_, Pods> {
        self.pods.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The names of the pods in `namespace` (every namespace for `None`) that `selector`
    /// selects, in name order within a namespace.
    pub fn selected(&self, namespace: Option<&str>, selector: &LabelSelector) -> Vec<String> {
        let pods = self.read();
        let mut names = Vec::new();
        match namespace {
            Some(namespace) => {
                if let Some(pods) = pods.live.get(namespace) {
                    pods.selected(selector, &mut names);
                }
            }
            None => {
                for pods in pods.live.values() {
                    pods.selected(selector, &mut names);
                }
            }
        }
        names
    }

    /// Calls `visit` with each pod's namespace, name and labels in `namespace` (every namespace
    /// for `None`).
    pub fn each(&self, namespace: Option<&str>, mut visit: impl FnMut(&str, &str, &Labels)) {
        let pods = self.read();
        let mut visit_namespace = |namespace: &str, pods: &Namespace| {
            for (name, labels) in &pods.pods {
                visit(namespace, name, labels);
            }
        };
        match namespace {
            Some(namespace) => {
                if let Some(names) = pods.live.get(namespace) {
                    visit_namespace(namespace, names);
                }
            }
            None => {
                for (namespace, names) in &pods.live {
                    visit_namespace(namespace, names);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(namespace: &str, name: &str, app: &str) -> PartialObjectMeta<Pod> {
        let mut pod = PartialObjectMeta::<Pod>::default();
        pod.metadata.namespace = Some(namespace.into());
        pod.metadata.name = Some(name.into());
        pod.metadata.labels = Some([("app".to_owned(), app.to_owned())].into());
        pod
    }

    fn app(value: &str) -> LabelSelector {
        LabelSelector::parse(&format!("app={value}")).unwrap()
    }

    fn listed(index: &PodIndex, pods: &[PartialObjectMeta<Pod>]) {
        index.apply(&Event::Init);
        for pod in pods {
            index.apply(&Event::InitApply(pod.clone()));
        }
        index.apply(&Event::InitDone);
    }

    #[test]
    fn selects_within_the_namespace_and_follows_changes() {
        let index = PodIndex::default();
        assert!(!index.is_ready());
        listed(
            &index,
            &[
                pod("a", "web-1", "web"),
                pod("a", "db-1", "db"),
                pod("b", "web-2", "web"),
            ],
        );
        assert!(index.is_ready());
        assert_eq!(index.selected(Some("a"), &app("web")), ["web-1"]);
        assert_eq!(index.selected(Some("c"), &app("web")), Vec::<String>::new());
        let mut everywhere = index.selected(None, &app("web"));
        everywhere.sort();
        assert_eq!(everywhere, ["web-1", "web-2"]);
        // Relabelled, added and deleted pods are followed.
        index.apply(&Event::Apply(pod("a", "db-1", "web")));
        index.apply(&Event::Apply(pod("a", "web-3", "web")));
        index.apply(&Event::Delete(pod("a", "web-1", "web")));
        assert_eq!(index.selected(Some("a"), &app("web")), ["db-1", "web-3"]);
        assert_eq!(index.selected(Some("a"), &app("db")), Vec::<String>::new());
        // Selectors without an `=` or `in` term are checked against every pod of the namespace,
        // and every term of one with such a term is checked.
        let parse = |text: &str| LabelSelector::parse(text).unwrap();
        assert_eq!(
            index.selected(Some("a"), &parse("app!=db")),
            ["db-1", "web-3"]
        );
        assert_eq!(
            index.selected(Some("a"), &parse("app in (db,web),!app")),
            Vec::<String>::new()
        );
        assert_eq!(
            index.selected(Some("a"), &parse("app in (db,web),app")),
            ["db-1", "web-3"]
        );
        // Deleting the last pod of a namespace leaves nothing behind.
        index.apply(&Event::Delete(pod("b", "web-2", "web")));
        assert_eq!(index.selected(None, &app("web")), ["db-1", "web-3"]);
        assert!(!index.pods.read().unwrap().live.contains_key("b"));
    }

    #[test]
    fn a_relist_replaces_the_pods_once_complete() {
        let index = PodIndex::default();
        listed(
            &index,
            &[pod("a", "web-1", "web"), pod("a", "web-2", "web")],
        );
        // While relisting, the previous pods are still served.
        index.apply(&Event::Init);
        index.apply(&Event::InitApply(pod("a", "web-2", "web")));
        assert_eq!(index.selected(Some("a"), &app("web")), ["web-1", "web-2"]);
        // web-1 was deleted while the watch was down: the completed relist drops it.
        index.apply(&Event::InitDone);
        assert_eq!(index.selected(Some("a"), &app("web")), ["web-2"]);
    }

    #[tokio::test]
    async fn waiting_for_the_first_list_ends_when_it_completes_or_the_wait_runs_out() {
        let index = std::sync::Arc::new(PodIndex::default());
        assert!(!index.wait_ready(Duration::from_millis(10)).await);
        let waiter = tokio::spawn({
            let index = index.clone();
            async move { index.wait_ready(Duration::from_secs(60)).await }
        });
        listed(&index, &[]);
        assert!(waiter.await.unwrap());
    }
}
