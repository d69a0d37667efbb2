//! prom-adapter: a Kubernetes custom, external and resource metrics adapter backed by Prometheus.
//!
//! # Layout
//!
//! The pure core (no IO; `scripts/check-layers.py` enforces it in `make lint`):
//! - `model`: group-resources, quantities, times; `object_names`: Kubernetes' naming rules.
//! - `promql`: typed, escaped PromQL fragments, selectors, label selectors, Go regexes.
//! - `config`: the rules file, parsed and compiled with every error at once; `rules`: the
//!   compiled rules (naming, resource mapping, query templates).
//! - `registry`: discovered metrics; `resources`: the resource table.
//!
//! The providers, IO only through ports (`provider::MetricsBackend`, `provider::ObjectLister`,
//! `provider::resource_objects::ResourceObjects`):
//! - `provider::request`: the one parser of metrics API request paths.
//! - `provider::plan`: the one planner (custom, external and resource requests become PromQL
//!   only here, and samples become per-object values).
//! - `provider::{custom, external, resource}`: the metric values; `provider::resource_objects`:
//!   the running pods and nodes (port and `--standalone` source); `provider::discovery`: the
//!   relist loop; one `provider::Error` for every request.
//!
//! The edges:
//! - `prometheus`: the client, the streaming series decoder, the instrumented backend
//!   (`prometheus::InstrumentedClient`), credentials from a kubeconfig.
//! - `cluster`: the Kubernetes client: `discovery` (resource table and its refresh loop),
//!   `watch` (pods and nodes), `review` (TokenReview, SubjectAccessReview, authentication
//!   ConfigMap).
//! - `auth`: the gate (authentication, authorization, caches, per-client limits), request
//!   attributes, `auth::credentials` (a request's token and front-proxy headers, pure), and
//!   `auth::sources` (the ConfigMap merge, pure).
//! - `server`: bind, signals, shutdown; `server::tls` (serving certificate, versions, suites);
//!   `server::client_ca` (client certificates, verified at the TLS layer, so beside TLS).
//! - `api`: the route table in `api/mod.rs`, `middleware`, one file per group (`custom`,
//!   `external`, `resource`), `discovery`, `openapi`, `health`, `wire` types, and `error`, the
//!   one place where errors become `Status` responses.
//! - `reload`: the rules file on disk (reading, watching, reloading); `telemetry`: logs and
//!   `/metrics`; `clock`: the wall clock, read only at the edges.
//!
//! The commands: `cli` (flags; `cli::prometheus`, the `--prometheus-*` flags declared once;
//! `cli::serve`, serve's argument groups and `resolve()` into typed config; `cli::settings`, the
//! layering; `cli::legacy`, prometheus-adapter's and klog's arguments),
//! `app::{serve, explain, simulate}` (one composition root each), and the `explain` and
//! `simulate` engines.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod explain;
pub mod model;
pub mod object_names;
pub mod prometheus;
pub mod promql;
pub mod provider;
pub mod registry;
pub mod reload;
pub mod resources;
pub mod rules;
pub mod server;
pub mod simulate;
pub mod telemetry;
