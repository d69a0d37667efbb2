//! prom-adapter's pure core: the rules file, compiled rules, discovered metrics, the resource table, the metrics API request vocabulary and the planner that turns requests into PromQL. No IO: no runtime, HTTP, Kubernetes, logging, flags, files or clock (the crate has none of those dependencies).
//!
//! - `model`: group-resources, quantities, times; `object_names`: Kubernetes' naming rules.
//! - `promql`: typed, escaped PromQL fragments, selectors, label selectors, Go regexes.
//! - `config`: the rules file, parsed and compiled with every error at once; `rules`: the
//!   compiled rules (naming, resource mapping, query templates).
//! - `registry`: discovered metrics; `resources`: the resource table.
//! - `request`: the one parser of metrics API request paths; `failure`: why a request failed.
//! - `plan`: the one planner (custom, external and resource requests become PromQL only here,
//!   and samples become per-object values).

pub mod config;
pub mod failure;
pub mod model;
pub mod object_names;
pub mod plan;
pub mod promql;
pub mod registry;
pub mod request;
pub mod resources;
pub mod rules;
