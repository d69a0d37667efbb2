//! The cluster's resource table: API discovery (aggregated where served), read at start and refreshed while serving (discovery installs each new table) so that CRDs installed later are served.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kube::core::discovery::v2::APIGroupDiscoveryList;

use super::{Cluster, Error};
use prom_adapter_core::resources::{ResourceInfo, ResourceTable};
use prom_adapter_provider::SharedSnapshot;

impl Cluster {
    /// Every resource the server offers (preferred version of each group), for resolving names
    /// and scopes. Subresources are left out. Aggregated discovery (two requests, Kubernetes
    /// 1.26+) is used where the server offers it; otherwise one request per group, as before.
    pub async fn resource_table(&self) -> Result<ResourceTable, Error> {
        match self.aggregated_resource_table().await {
            Ok(Some(table)) => return Ok(table),
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, "aggregated discovery failed; using the per-group documents")
            }
        }
        self.legacy_resource_table().await
    }

    /// `None` when the server answered with the legacy documents (it does not serve aggregated
    /// discovery, and the Accept header lets it fall back to plain JSON).
    async fn aggregated_resource_table(&self) -> Result<Option<ResourceTable>, Error> {
        self.throttle.acquire().await;
        let core = self.client.list_core_api_versions_aggregated().await?;
        self.throttle.acquire().await;
        let groups = self.client.list_api_groups_aggregated().await?;
        if core.items.is_empty() || groups.items.is_empty() {
            return Ok(None);
        }
        let mut entries = resources_of_aggregated(&core);
        entries.extend(resources_of_aggregated(&groups));
        Ok(Some(ResourceTable::new(entries)))
    }

    async fn legacy_resource_table(&self) -> Result<ResourceTable, Error> {
        let mut entries = Vec::new();
        self.throttle.acquire().await;
        let core = self.client.list_core_api_versions().await?;
        if core.versions.iter().any(|v| v == "v1") {
            self.throttle.acquire().await;
            let list = self.client.list_core_api_resources("v1").await?;
            entries.extend(resources_of("", "v1", &list));
        }
        self.throttle.acquire().await;
        for group in self.client.list_api_groups().await?.groups {
            let Some(preferred) = group
                .preferred_version
                .or_else(|| group.versions.first().cloned())
            else {
                continue;
            };
            self.throttle.acquire().await;
            match self
                .client
                .list_api_group_resources(&preferred.group_version)
                .await
            {
                Ok(list) => entries.extend(resources_of(&group.name, &preferred.version, &list)),
                // One broken aggregated API must not hide every other group.
                Err(error) => {
                    tracing::warn!(group_version = %preferred.group_version, %error, "skipping a group in discovery")
                }
            }
        }
        Ok(ResourceTable::new(entries))
    }
}

/// The preferred version of each group in an aggregated discovery document. Versions come in
/// preference order; a version marked `Stale` (its aggregated API server did not answer) is
/// skipped, as client-go does, so the next one is used if there is one.
fn resources_of_aggregated(list: &APIGroupDiscoveryList) -> Vec<ResourceInfo> {
    let mut entries = Vec::new();
    for group in &list.items {
        let group_name = group
            .metadata
            .as_ref()
            .and_then(|m| m.name.as_deref())
            .unwrap_or_default();
        let mut versions = group.versions.iter().filter(|v| {
            let stale = v.freshness.as_deref() == Some("Stale");
            if stale {
                tracing::warn!(group = group_name, version = ?v.version, "discovery marks this group version stale; skipping it");
            }
            !stale
        });
        let Some(preferred) = versions.next() else {
            continue;
        };
        let version = preferred.version.clone().unwrap_or_default();
        for resource in &preferred.resources {
            let Some(plural) = resource.resource.as_deref().filter(|p| !p.contains('/')) else {
                continue;
            };
            let kind = resource
                .response_kind
                .as_ref()
                .and_then(|k| k.kind.clone())
                .unwrap_or_default();
            let singular = match resource.singular_resource.as_deref() {
                Some(singular) if !singular.is_empty() => singular.to_owned(),
                _ => kind.to_ascii_lowercase(),
            };
            entries.push(ResourceInfo {
                group: group_name.to_owned(),
                version: version.clone(),
                kind,
                plural: plural.to_owned(),
                singular,
                namespaced: resource.scope.as_deref() == Some("Namespaced"),
            });
        }
    }
    entries
}

fn resources_of(
    group: &str,
    version: &str,
    list: &k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList,
) -> Vec<ResourceInfo> {
    list.resources
        .iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| ResourceInfo {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: r.kind.clone(),
            plural: r.name.clone(),
            singular: if r.singular_name.is_empty() {
                r.kind.to_ascii_lowercase()
            } else {
                r.singular_name.clone()
            },
            namespaced: r.namespaced,
        })
        .collect()
}

/// Connects to the cluster and reads its resource table (the built-in one, with a warning, if
/// discovery fails now; the refresh retries).
pub async fn connect_with_table(
    kubeconfig: Option<&Path>,
    qps: f32,
    burst: u32,
) -> Result<(Cluster, ResourceTable), Error> {
    let cluster = Cluster::connect(kubeconfig, qps, burst).await?;
    let table = match cluster.resource_table().await {
        Ok(table) => table,
        Err(error) => {
            tracing::warn!(%error, "API discovery failed; using the built-in resource table until it succeeds");
            ResourceTable::builtin()
        }
    };
    Ok((cluster, table))
}

/// Re-reads the cluster's resources every `interval`, and at most every 2 s when a request named
/// a resource the table lacks, and sends each new table to `tables` (discovery installs it, so
/// that CRDs installed later are served). `snapshot` is read for the rules' overrides.
pub async fn refresh_resource_table(
    cluster: Cluster,
    tables: tokio::sync::watch::Sender<Arc<ResourceTable>>,
    snapshot: SharedSnapshot,
    interval: Duration,
    unknown_resource: Arc<tokio::sync::Notify>,
) {
    // On-demand refreshes (a request named an unknown resource) are spaced out so that a client
    // asking for nonsense cannot keep the API server busy.
    const MIN_GAP: Duration = Duration::from_secs(2);
    let mut last = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = actix_web::rt::time::sleep(interval) => {}
            _ = unknown_resource.notified() => {
                if let Some(wait) = MIN_GAP.checked_sub(last.elapsed()) {
                    actix_web::rt::time::sleep(wait).await;
                }
            }
        }
        last = std::time::Instant::now();
        match cluster.resource_table().await {
            Ok(table) if **tables.borrow() != table => {
                warn_about_unknown_overrides(&snapshot.load().rules, &table);
                tracing::info!("resource table changed");
                if tables.send(Arc::new(table)).is_err() {
                    // Discovery has ended: so has the server.
                    return;
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "API discovery failed; keeping the previous resource table")
            }
        }
    }
}

/// Overrides naming resources the cluster does not serve are not fatal (the CRD may come later);
/// say which, each time the table changes.
fn warn_about_unknown_overrides(rules: &prom_adapter_core::rules::RuleSet, table: &ResourceTable) {
    for (at, rule) in rules.discovery_rules() {
        for (label, resource) in rule.resources.overrides() {
            if table.resolve(resource).is_none() {
                tracing::warn!(rule = at, %label, %resource, "override names a resource the cluster does not serve (yet)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_discovery_gives_the_first_fresh_version_of_each_group() {
        // Trimmed from what kube-apiserver 1.31 serves at /apis, plus a stale aggregated API.
        let document = serde_json::json!({
            "kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
            "items": [
                {"metadata": {"name": "autoscaling", "creationTimestamp": null}, "versions": [
                    {"version": "v2", "freshness": "Current", "resources": [
                        {"resource": "horizontalpodautoscalers", "singularResource": "horizontalpodautoscaler",
                         "responseKind": {"group": "", "version": "", "kind": "HorizontalPodAutoscaler"},
                         "scope": "Namespaced", "shortNames": ["hpa"], "verbs": ["get", "list"],
                         "subresources": [{"subresource": "status", "verbs": ["get"]}]}]},
                    {"version": "v1", "freshness": "Current", "resources": []}]},
                {"metadata": {"name": "metrics.example.com", "creationTimestamp": null}, "versions": [
                    {"version": "v2", "freshness": "Stale", "resources": [
                        {"resource": "gauges", "responseKind": {"kind": "Gauge"}, "scope": "Cluster"}]},
                    {"version": "v1", "resources": [
                        {"resource": "gauges", "responseKind": {"kind": "Gauge"}, "scope": "Cluster"}]}]},
                {"metadata": {"name": "broken.example.com"}, "versions": [
                    {"version": "v1", "freshness": "Stale", "resources": []}]}
            ]
        });
        let list: APIGroupDiscoveryList = serde_json::from_value(document).unwrap();
        let entries = resources_of_aggregated(&list);
        let hpa = ResourceInfo {
            group: "autoscaling".into(),
            version: "v2".into(),
            kind: "HorizontalPodAutoscaler".into(),
            plural: "horizontalpodautoscalers".into(),
            singular: "horizontalpodautoscaler".into(),
            namespaced: true,
        };
        let gauge = ResourceInfo {
            group: "metrics.example.com".into(),
            version: "v1".into(),
            kind: "Gauge".into(),
            plural: "gauges".into(),
            // No singularResource (aggregated APIs may omit it): the lowercase kind.
            singular: "gauge".into(),
            namespaced: false,
        };
        assert_eq!(entries, vec![hpa, gauge]);
    }
}
