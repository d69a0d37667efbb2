//! Resource association: which series label names which Kubernetes resource, and back.

use regex::Regex;

use super::Error;
use crate::model::GroupResource;
use crate::resources::{ResourceInfo, ResourceTable};

/// A compiled `resources.template` such as `kube_<<.Resource>>`: renders a label for a resource
/// and, inverted into a regex, recognises resource labels.
#[derive(Clone)]
pub struct LabelTemplate {
    source: String,
    template: std::sync::Arc<gotmpl::Template>,
    extract: Regex,
}

impl LabelTemplate {
    /// Compiles a label template; fails when it does not parse, does not render, or has no `<<.Resource>>`.
    pub fn compile(source: &str) -> Result<Self, String> {
        let template = super::parse_go_template("resource-template", source)?;
        let pattern = render_label(&template, "(?P<group>.+?)", "(?P<resource>.+?)")?;
        let extract = Regex::new(&format!("^{pattern}$"))
            .map_err(|e| format!("the template does not invert into a regex: {e}"))?;
        if !extract.capture_names().any(|n| n == Some("resource")) {
            return Err("must include at least <<.Resource>> in the label template".to_owned());
        }
        Ok(Self {
            source: source.to_owned(),
            template: std::sync::Arc::new(template),
            extract,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl std::fmt::Debug for LabelTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabelTemplate")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

fn render_label(
    template: &gotmpl::Template,
    group: &str,
    resource: &str,
) -> Result<String, String> {
    let data = gotmpl::Value::from_entries([
        ("Group".to_owned(), gotmpl::Value::from(group)),
        ("Resource".to_owned(), gotmpl::Value::from(resource)),
    ]);
    template.execute_to_string(&data).map_err(|e| e.to_string())
}

/// `resources`: overrides (in file order) plus an optional template, and the `namespaced` flag.
#[derive(Debug, Clone)]
pub struct ResourceMapping {
    overrides: Vec<(String, GroupResource)>,
    template: Option<LabelTemplate>,
    namespaced: bool,
}

impl ResourceMapping {
    /// Builds a mapping. When two labels override the same resource, the first one listed is
    /// used to query it (prometheus-adapter picked one at random on each start).
    pub fn new(
        overrides: Vec<(String, GroupResource)>,
        template: Option<LabelTemplate>,
        namespaced: bool,
    ) -> Self {
        Self {
            overrides,
            template,
            namespaced,
        }
    }

    /// `resources.namespaced` (only meaningful for external rules).
    pub fn namespaced(&self) -> bool {
        self.namespaced
    }

    /// The label template, if any.
    pub fn template(&self) -> Option<&LabelTemplate> {
        self.template.as_ref()
    }

    /// The overrides, in file order.
    pub fn overrides(&self) -> &[(String, GroupResource)] {
        &self.overrides
    }

    /// The resource a label names, if any: an override first, else the template's pattern,
    /// resolved against the resource table (labels that name no known resource are ignored).
    pub fn resource_for_label<'t>(
        &self,
        label: &str,
        table: &'t ResourceTable,
    ) -> Option<&'t ResourceInfo> {
        if let Some((_, resource)) = self.overrides.iter().find(|(l, _)| l == label) {
            return table.resolve(resource);
        }
        let template = self.template.as_ref()?;
        let captures = template.extract.captures(label)?;
        let group = captures.name("group").map_or("", |m| m.as_str());
        let resource = captures.name("resource")?.as_str();
        table.resolve(&GroupResource::new(group, resource))
    }

    /// The label that holds names of `resource` (normalised), for building queries.
    pub fn label_for_resource(
        &self,
        resource: &GroupResource,
        table: &ResourceTable,
    ) -> Result<String, Error> {
        let resolved = table.resolve(resource);
        let target = resolved
            .map(ResourceInfo::group_resource)
            .unwrap_or_else(|| resource.clone());
        for (label, over) in &self.overrides {
            let normalised = table
                .resolve(over)
                .map(ResourceInfo::group_resource)
                .unwrap_or_else(|| over.clone());
            if normalised == target {
                return Ok(label.clone());
            }
        }
        let template = self
            .template
            .as_ref()
            .ok_or_else(|| Error::NoLabelForResource(target.to_string()))?;
        let group = target.group.replace(['.', '-'], "_");
        let singular = resolved.map_or(target.resource.as_str(), |r| r.singular.as_str());
        render_label(&template.template, &group, singular).map_err(Error::Render)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ResourceTable {
        ResourceTable::builtin()
    }

    #[test]
    fn template_maps_labels_both_ways() {
        let mapping = ResourceMapping::new(
            vec![],
            Some(LabelTemplate::compile("kube_<<.Resource>>").unwrap()),
            true,
        );
        let t = table();
        assert_eq!(
            mapping.resource_for_label("kube_pod", &t).unwrap().plural,
            "pods"
        );
        assert_eq!(
            mapping
                .resource_for_label("kube_deployment", &t)
                .unwrap()
                .group,
            "apps"
        );
        assert!(mapping.resource_for_label("kube_container", &t).is_none());
        assert!(mapping.resource_for_label("pod", &t).is_none());
        assert_eq!(
            mapping
                .label_for_resource(&GroupResource::new("", "pods"), &t)
                .unwrap(),
            "kube_pod"
        );
        assert_eq!(
            mapping
                .label_for_resource(&GroupResource::new("", "namespaces"), &t)
                .unwrap(),
            "kube_namespace"
        );
    }

    #[test]
    fn plain_resource_template_tries_every_label() {
        let mapping = ResourceMapping::new(
            vec![],
            Some(LabelTemplate::compile("<<.Resource>>").unwrap()),
            true,
        );
        let t = table();
        assert_eq!(
            mapping
                .resource_for_label("job", &t)
                .unwrap()
                .group_resource()
                .to_string(),
            "jobs.batch"
        );
        assert_eq!(
            mapping.resource_for_label("service", &t).unwrap().plural,
            "services"
        );
        assert_eq!(
            mapping.resource_for_label("pods", &t).unwrap().plural,
            "pods"
        );
        assert!(mapping.resource_for_label("container", &t).is_none());
        assert_eq!(
            mapping
                .label_for_resource(&GroupResource::parse("ingresses.networking.k8s.io"), &t)
                .unwrap(),
            "ingress"
        );
    }

    #[test]
    fn group_template_renders_underscored_groups() {
        let mapping = ResourceMapping::new(
            vec![],
            Some(LabelTemplate::compile("kube_<<.Group>>_<<.Resource>>").unwrap()),
            true,
        );
        let t = table();
        assert_eq!(
            mapping
                .label_for_resource(&GroupResource::parse("deployments.apps"), &t)
                .unwrap(),
            "kube_apps_deployment"
        );
        assert_eq!(
            mapping
                .resource_for_label("kube_apps_deployment", &t)
                .unwrap()
                .kind,
            "Deployment"
        );
    }

    #[test]
    fn overrides_win_and_the_first_listed_label_is_used_for_queries() {
        let mapping = ResourceMapping::new(
            vec![
                ("node".into(), GroupResource::new("", "node")),
                ("instance".into(), GroupResource::new("", "nodes")),
                (
                    "exported_namespace".into(),
                    GroupResource::new("", "namespace"),
                ),
            ],
            None,
            true,
        );
        let t = table();
        assert_eq!(
            mapping.resource_for_label("instance", &t).unwrap().plural,
            "nodes"
        );
        for _ in 0..3 {
            assert_eq!(
                mapping
                    .label_for_resource(&GroupResource::new("", "nodes"), &t)
                    .unwrap(),
                "node"
            );
        }
        assert_eq!(
            mapping
                .label_for_resource(&GroupResource::new("", "namespaces"), &t)
                .unwrap(),
            "exported_namespace"
        );
        assert_eq!(
            mapping.label_for_resource(&GroupResource::new("", "pods"), &t),
            Err(Error::NoLabelForResource("pods".into()))
        );
    }

    #[test]
    fn templates_without_resource_are_rejected() {
        assert!(LabelTemplate::compile("kube_<<.Group>>").is_err());
        assert!(LabelTemplate::compile("kube_<<.Resource").is_err());
        assert!(LabelTemplate::compile("<<.Nope>>").is_err());
    }
}
