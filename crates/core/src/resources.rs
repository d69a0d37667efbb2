//! The resource table: which Kubernetes resources exist, their kinds, singular names and scope (a RESTMapper over data).

use crate::model::GroupResource;

/// One served resource, as API discovery describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; empty for core.
    pub group: String,
    /// Preferred version.
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Lowercase plural, e.g. `deployments`.
    pub plural: String,
    /// Lowercase singular, e.g. `deployment`.
    pub singular: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
}

impl ResourceInfo {
    /// The normalised group-resource (plural, canonical group).
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(self.group.clone(), self.plural.clone())
    }

    /// `group/version`, or just `version` for the core group (as Kubernetes writes `apiVersion`).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// A set of resources to resolve names against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceTable {
    entries: Vec<ResourceInfo>,
}

impl ResourceTable {
    /// A table from discovered resources; order decides which group wins for a bare name
    /// (core resources always win, as in Kubernetes).
    pub fn new(entries: Vec<ResourceInfo>) -> Self {
        Self { entries }
    }

    /// Kubernetes' built-in resources (core, apps, batch, networking.k8s.io, policy, autoscaling),
    /// used with `--standalone` and by the offline commands.
    pub fn builtin() -> Self {
        /// `(kind, plural, namespaced)`; each singular is its kind in lowercase.
        type Kinds = &'static [(&'static str, &'static str, bool)];
        const BUILTIN: &[(&str, &str, Kinds)] = &[
            (
                "",
                "v1",
                &[
                    ("Pod", "pods", true),
                    ("Service", "services", true),
                    ("Endpoints", "endpoints", true),
                    ("Node", "nodes", false),
                    ("Namespace", "namespaces", false),
                    ("PersistentVolume", "persistentvolumes", false),
                    ("PersistentVolumeClaim", "persistentvolumeclaims", true),
                    ("ConfigMap", "configmaps", true),
                    ("Secret", "secrets", true),
                    ("ServiceAccount", "serviceaccounts", true),
                    ("ReplicationController", "replicationcontrollers", true),
                    ("Event", "events", true),
                    ("LimitRange", "limitranges", true),
                    ("ResourceQuota", "resourcequotas", true),
                    ("PodTemplate", "podtemplates", true),
                ],
            ),
            (
                "apps",
                "v1",
                &[
                    ("Deployment", "deployments", true),
                    ("StatefulSet", "statefulsets", true),
                    ("DaemonSet", "daemonsets", true),
                    ("ReplicaSet", "replicasets", true),
                    ("ControllerRevision", "controllerrevisions", true),
                ],
            ),
            (
                "batch",
                "v1",
                &[("Job", "jobs", true), ("CronJob", "cronjobs", true)],
            ),
            (
                "networking.k8s.io",
                "v1",
                &[
                    ("Ingress", "ingresses", true),
                    ("IngressClass", "ingressclasses", false),
                    ("NetworkPolicy", "networkpolicies", true),
                ],
            ),
            (
                "policy",
                "v1",
                &[("PodDisruptionBudget", "poddisruptionbudgets", true)],
            ),
            (
                "autoscaling",
                "v2",
                &[("HorizontalPodAutoscaler", "horizontalpodautoscalers", true)],
            ),
        ];
        Self::new(
            BUILTIN
                .iter()
                .flat_map(|&(group, version, kinds)| {
                    kinds
                        .iter()
                        .map(move |&(kind, plural, namespaced)| ResourceInfo {
                            group: group.into(),
                            version: version.into(),
                            kind: kind.into(),
                            plural: plural.into(),
                            singular: kind.to_ascii_lowercase(),
                            namespaced,
                        })
                })
                .collect(),
        )
    }

    /// Resolves a group-resource as written by a user or a URL, like `RESTMapper.ResourceFor`:
    /// the resource may be plural or singular in any case; an empty group searches every group,
    /// core first.
    pub fn resolve(&self, wanted: &GroupResource) -> Option<&ResourceInfo> {
        let name = wanted.resource.to_ascii_lowercase();
        let named = |info: &&ResourceInfo| info.plural == name || info.singular == name;
        if !wanted.group.is_empty() {
            return self
                .entries
                .iter()
                .filter(|i| i.group == wanted.group)
                .find(named);
        }
        self.entries
            .iter()
            .filter(|i| i.group.is_empty())
            .find(named)
            .or_else(|| self.entries.iter().find(named))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_plural_singular_and_any_case_with_core_first() {
        let table = ResourceTable::builtin();
        let pod = table.resolve(&GroupResource::new("", "Pod")).unwrap();
        assert_eq!(pod.group_resource(), GroupResource::new("", "pods"));
        assert_eq!(pod.api_version(), "v1");
        let ingress = table.resolve(&GroupResource::new("", "ingress")).unwrap();
        assert_eq!(
            ingress.group_resource().to_string(),
            "ingresses.networking.k8s.io"
        );
        let deploy = table
            .resolve(&GroupResource::parse("deployments.apps"))
            .unwrap();
        assert_eq!(
            (deploy.kind.as_str(), deploy.api_version().as_str()),
            ("Deployment", "apps/v1")
        );
        assert!(
            !table
                .resolve(&GroupResource::new("", "node"))
                .unwrap()
                .namespaced
        );
        assert!(
            table
                .resolve(&GroupResource::new("", "container"))
                .is_none()
        );
        assert!(
            table
                .resolve(&GroupResource::new("extensions", "ingresses"))
                .is_none()
        );
        assert!(
            table.resolve(&GroupResource::new("", "svc")).is_none(),
            "short names are not accepted"
        );
    }
}
