//! The rules file as written: a strict serde mirror of prometheus-adapter's schema, with source positions.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_saphyr::Spanned;

/// The whole rules file.
#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRules {
    /// Custom metrics rules (`custom.metrics.k8s.io`).
    pub rules: Option<Vec<Spanned<RawDiscoveryRule>>>,
    /// External metrics rules (`external.metrics.k8s.io`).
    pub external_rules: Option<Vec<Spanned<RawDiscoveryRule>>>,
    /// Resource metrics rules (`metrics.k8s.io`).
    pub resource_rules: Option<Spanned<RawResourceRules>>,
}

/// One `rules` / `externalRules` entry.
#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RawDiscoveryRule {
    /// Series selector sent to `/api/v1/series`. Required.
    pub series_query: Option<Spanned<String>>,
    /// Name filters, each with exactly one of `is` / `isNot`.
    pub series_filters: Option<Vec<Spanned<RawRegexFilter>>>,
    /// Label ⇄ resource association.
    pub resources: Option<RawResourceMapping>,
    /// Series name → metric name.
    pub name: Option<RawNameMapping>,
    /// Go template (`<<` `>>`) rendering the PromQL for a request. Required.
    pub metrics_query: Option<Spanned<String>>,
    /// Ours: the named backend (settings `backends:`) this rule's series and queries go to.
    pub backend: Option<Spanned<String>>,
}

/// A `seriesFilters` entry.
#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRegexFilter {
    /// Keep series whose name matches this regex.
    pub is: Option<Spanned<String>>,
    /// Keep series whose name does not match this regex.
    pub is_not: Option<Spanned<String>>,
}

/// `resources`.
#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RawResourceMapping {
    /// Label template such as `kube_<<.Resource>>`.
    pub template: Option<Spanned<String>>,
    /// Label name → group-resource, in file order.
    pub overrides: Option<OrderedMap<RawGroupResource>>,
    /// External rules only: whether the request namespace is added to the query (default true).
    pub namespaced: Option<bool>,
}

/// An override's target.
#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGroupResource {
    /// API group; empty or absent for core.
    pub group: Option<String>,
    /// Resource, singular or plural (`pod`, `pods`).
    pub resource: Option<Spanned<String>>,
}

/// `name`.
#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RawNameMapping {
    /// Regex over the series name (default `.*`).
    pub matches: Option<Spanned<String>>,
    /// Expansion template (`$1`, `${1}`, `$name`); defaults to `$0` or `$1`.
    #[serde(rename = "as")]
    pub as_: Option<Spanned<String>>,
}

/// `resourceRules`.
#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RawResourceRules {
    /// CPU (cores).
    pub cpu: Option<Spanned<RawResourceRule>>,
    /// Memory (bytes).
    pub memory: Option<Spanned<RawResourceRule>>,
    /// Window reported with samples (`5m`, `1h30m`).
    pub window: Option<Spanned<String>>,
}

/// `resourceRules.cpu` / `resourceRules.memory`.
#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RawResourceRule {
    /// Template for pods, rendered per namespace.
    pub container_query: Option<Spanned<String>>,
    /// Template for nodes.
    pub node_query: Option<Spanned<String>>,
    /// Label ⇄ resource association; must cover namespaces, pods and nodes.
    pub resources: Option<RawResourceMapping>,
    /// Label holding the container name.
    pub container_label: Option<Spanned<String>>,
}

/// A YAML mapping kept in file order (serde maps lose it).
#[derive(Debug)]
pub struct OrderedMap<V>(pub Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for OrderedVisitor<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of label name to {group, resource}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(OrderedMap(entries))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(OrderedMap(Vec::new()))
            }
        }
        deserializer.deserialize_map(OrderedVisitor(PhantomData))
    }
}
