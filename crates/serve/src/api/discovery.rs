//! Aggregated discovery (`apidiscovery.k8s.io` v2 and v2beta1): content negotiation, the
//! document built from our API resource lists, and its ETag.

use serde::Serialize;

use super::*;

/// Which discovery document a client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryFormat {
    /// The legacy `APIGroupList`.
    Legacy,
    /// `APIGroupDiscoveryList` of the given `apidiscovery.k8s.io` version.
    Aggregated(&'static str),
}

impl DiscoveryFormat {
    /// Picks the first media range of `Accept` that we can serve, in the client's order, as
    /// kube-apiserver does; anything else gets the legacy document.
    pub fn negotiate(accept: Option<&str>) -> Self {
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
            let param = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
            if media == "application/json" && param("g") == Some("apidiscovery.k8s.io") {
                match (param("v"), param("as")) {
                    (Some("v2"), Some("APIGroupDiscoveryList")) => {
                        return DiscoveryFormat::Aggregated("v2");
                    }
                    (Some("v2beta1"), Some("APIGroupDiscoveryList")) => {
                        return DiscoveryFormat::Aggregated("v2beta1");
                    }
                    _ => continue,
                }
            }
            if matches!(media, "application/json" | "*/*" | "application/*") {
                return DiscoveryFormat::Legacy;
            }
        }
        DiscoveryFormat::Legacy
    }

    /// The `Content-Type` of the answer.
    pub fn content_type(self) -> String {
        match self {
            DiscoveryFormat::Legacy => "application/json".to_owned(),
            DiscoveryFormat::Aggregated(v) => {
                format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList")
            }
        }
    }
}

/// One served group: its name and, per version in preference order, the resource list.
pub struct ServedGroup<'a> {
    /// Group name.
    pub name: &'a str,
    /// `(version, resources)`, preferred first.
    pub versions: Vec<(&'a str, &'a [ApiResource])>,
}

#[derive(Serialize)]
struct GroupDiscoveryList<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Empty,
    items: Vec<GroupDiscovery<'a>>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct GroupDiscovery<'a> {
    metadata: GroupMeta<'a>,
    versions: Vec<VersionDiscovery<'a>>,
}

#[derive(Serialize)]
struct GroupMeta<'a> {
    name: &'a str,
    #[serde(rename = "creationTimestamp")]
    creation_timestamp: Option<()>,
}

#[derive(Serialize)]
struct VersionDiscovery<'a> {
    version: &'a str,
    resources: Vec<ResourceDiscovery<'a>>,
    freshness: &'static str,
}

#[derive(Serialize, Default, Clone)]
struct Gvk<'a> {
    group: &'a str,
    version: &'a str,
    kind: &'a str,
}

#[derive(Serialize)]
struct ResourceDiscovery<'a> {
    resource: &'a str,
    #[serde(rename = "responseKind")]
    response_kind: Gvk<'a>,
    scope: &'static str,
    #[serde(rename = "singularResource")]
    singular_resource: &'a str,
    verbs: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subresources: Vec<SubresourceDiscovery<'a>>,
}

#[derive(Serialize)]
struct SubresourceDiscovery<'a> {
    subresource: &'a str,
    #[serde(rename = "responseKind")]
    response_kind: Gvk<'a>,
    verbs: Vec<&'a str>,
}

fn scope(namespaced: bool) -> &'static str {
    if namespaced { "Namespaced" } else { "Cluster" }
}

/// Converts a legacy resource list the way kube-apiserver does: `pods/http_requests` becomes
/// subresource `http_requests` of a parent `pods` (created, with an empty response kind, when the
/// list has no such resource). Response kinds are never null: client-go 0.26.0–0.26.3 panic on it.
fn convert(resources: &[ApiResource]) -> Vec<ResourceDiscovery<'_>> {
    let mut out: Vec<ResourceDiscovery<'_>> = resources
        .iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| ResourceDiscovery {
            resource: &r.name,
            response_kind: Gvk {
                kind: r.kind,
                ..Gvk::default()
            },
            scope: scope(r.namespaced),
            singular_resource: r.singular_name,
            verbs: r.verbs.to_vec(),
            subresources: Vec::new(),
        })
        .collect();
    for r in resources {
        let Some((parent, sub)) = r.name.split_once('/') else {
            continue;
        };
        let index = match out.iter().position(|p| p.resource == parent) {
            Some(index) => index,
            None => {
                // kube-apiserver would give the made-up parent no kind and no verbs, which makes
                // `kubectl api-resources` hide the group; naming the list kind and `get` lets it
                // show which resources have metrics.
                out.push(ResourceDiscovery {
                    resource: parent,
                    response_kind: Gvk {
                        kind: r.kind,
                        ..Gvk::default()
                    },
                    scope: scope(r.namespaced),
                    singular_resource: "",
                    verbs: vec!["get"],
                    subresources: Vec::new(),
                });
                out.len() - 1
            }
        };
        out[index].subresources.push(SubresourceDiscovery {
            subresource: sub,
            response_kind: Gvk {
                kind: r.kind,
                ..Gvk::default()
            },
            verbs: r.verbs.to_vec(),
        });
    }
    out
}

/// The aggregated discovery document for the served groups.
pub fn aggregated_document(
    version: &str,
    groups: &[ServedGroup<'_>],
) -> serde_json::Result<Vec<u8>> {
    let list = GroupDiscoveryList {
        kind: "APIGroupDiscoveryList",
        api_version: format!("apidiscovery.k8s.io/{version}"),
        metadata: Empty {},
        items: groups
            .iter()
            .map(|g| GroupDiscovery {
                metadata: GroupMeta {
                    name: g.name,
                    creation_timestamp: None,
                },
                versions: g
                    .versions
                    .iter()
                    .map(|(v, resources)| VersionDiscovery {
                        version: v,
                        resources: convert(resources),
                        freshness: "Current",
                    })
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_vec(&list)
}

/// A strong ETag for a body (quoted, as HTTP wants).
pub fn etag(body: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    format!("\"{:016x}{:08x}\"", hasher.finish(), body.len())
}

pub(super) async fn group_list(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, Error> {
    let custom = custom_enabled(&state).is_ok();
    let external = external_enabled(&state).is_ok();
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let DiscoveryFormat::Aggregated(version) = DiscoveryFormat::negotiate(accept) else {
        let mut groups = Vec::new();
        if custom {
            groups.push(api_group(CUSTOM_GROUP, &CUSTOM_VERSIONS));
        }
        if external {
            groups.push(api_group(EXTERNAL_GROUP, &EXTERNAL_VERSIONS));
        }
        if resource_service(&state).is_ok() {
            groups.push(api_group(RESOURCE_GROUP, &RESOURCE_VERSIONS));
        }
        return Ok(HttpResponse::Ok().json(ApiGroupList {
            kind: "APIGroupList",
            api_version: "v1",
            groups,
        }));
    };
    let custom_resources = custom_api_resources(&state);
    let external_resources = external_api_resources(&state);
    let mut groups = Vec::new();
    if custom {
        groups.push(ServedGroup {
            name: CUSTOM_GROUP,
            versions: CUSTOM_VERSIONS
                .iter()
                .map(|v| (*v, custom_resources.as_slice()))
                .collect(),
        });
    }
    if external {
        groups.push(ServedGroup {
            name: EXTERNAL_GROUP,
            versions: vec![(EXTERNAL_VERSIONS[0], external_resources.as_slice())],
        });
    }
    let resource_resources = resource_api_resources();
    if resource_service(&state).is_ok() {
        groups.push(ServedGroup {
            name: RESOURCE_GROUP,
            versions: vec![(RESOURCE_VERSIONS[0], resource_resources.as_slice())],
        });
    }
    let body = aggregated_document(version, &groups).map_err(|e| Error::Internal(e.to_string()))?;
    let format = DiscoveryFormat::Aggregated(version);
    Ok(cacheable(&request, &format.content_type(), body, true))
}

/// A body with its ETag, or 304 to a matching `If-None-Match`: kube-aggregator polls
/// discovery and the OpenAPI specs every minute with one. `vary` says the body depends on
/// `Accept`.
pub(super) fn cacheable(
    request: &HttpRequest,
    content_type: &str,
    body: Vec<u8>,
    vary: bool,
) -> HttpResponse {
    let tag = etag(&body);
    if request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(tag.as_str())
    {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish();
    }
    let mut response = HttpResponse::Ok();
    response
        .content_type(content_type)
        .insert_header((header::ETAG, tag));
    if vary {
        response.insert_header((header::VARY, "Accept"));
    }
    response.body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_like_kube_apiserver() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(
            DiscoveryFormat::negotiate(Some(kubectl)),
            DiscoveryFormat::Aggregated("v2")
        );
        let old = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(
            DiscoveryFormat::negotiate(Some(old)),
            DiscoveryFormat::Aggregated("v2beta1")
        );
        assert_eq!(
            DiscoveryFormat::negotiate(Some("application/json, */*")),
            DiscoveryFormat::Legacy
        );
        assert_eq!(DiscoveryFormat::negotiate(None), DiscoveryFormat::Legacy);
        let unknown =
            "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json";
        assert_eq!(
            DiscoveryFormat::negotiate(Some(unknown)),
            DiscoveryFormat::Legacy
        );
    }

    #[test]
    fn metrics_become_subresources_of_listable_parents() {
        let resource = |name: &str, namespaced: bool| ApiResource {
            name: name.to_owned(),
            singular_name: "",
            namespaced,
            kind: "MetricValueList",
            verbs: &["get"],
        };
        let list = [
            resource("pods/http_requests", true),
            resource("namespaces/http_requests", false),
            resource("pods/cpu", true),
        ];
        let body = aggregated_document(
            "v2",
            &[ServedGroup {
                name: "custom.metrics.k8s.io",
                versions: vec![("v1beta2", &list)],
            }],
        )
        .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["apiVersion"], "apidiscovery.k8s.io/v2");
        let version = &json["items"][0]["versions"][0];
        assert_eq!(version["version"], "v1beta2");
        assert_eq!(version["freshness"], "Current");
        let pods = &version["resources"][0];
        assert_eq!(pods["resource"], "pods");
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(
            pods["responseKind"],
            serde_json::json!({"group": "", "version": "", "kind": "MetricValueList"})
        );
        assert_eq!(pods["verbs"], serde_json::json!(["get"]));
        let subresources: Vec<&str> = pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["subresource"].as_str().unwrap())
            .collect();
        assert_eq!(subresources, ["http_requests", "cpu"]);
        assert_eq!(
            pods["subresources"][0]["responseKind"]["kind"],
            "MetricValueList"
        );
        assert_eq!(version["resources"][1]["scope"], "Cluster");
        assert_eq!(
            json["items"][0]["metadata"]["name"],
            "custom.metrics.k8s.io"
        );
        assert_ne!(etag(&body), etag(b"other"));
    }
}
