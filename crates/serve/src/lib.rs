//! prom-adapter's APIService: the HTTPS server kube-apiserver proxies to, and every call it makes to Prometheus and the cluster.
//!
//! Public for the commands and the tools:
//! - `serve` (in `run`): the composition root, from a validated `ServeConfig`.
//! - `prometheus`: the one owner of calls to Prometheus (client, streaming series decoder,
//!   instrumented and named backends, tenancy, credentials from a kubeconfig), for `serve`,
//!   `explain` and `simulate` alike.
//! - `provider`: the services behind the APIs, IO only through ports (`MetricsBackend`,
//!   `ObjectLister`, `resource_objects::ResourceObjects`): the metric values, the relist loop, the
//!   shared query cache.
//! - `auth`: the gate (authentication, authorization, caches, per-client limits) and its settings;
//!   `server`: bind, signals, shutdown, TLS and client certificates, and their settings.
//! - `reload`: the rules file on disk; `telemetry`: logs and `/metrics`; `clock`: the wall clock.
//!
//! Private: `api` (the route table, one file per group, discovery, OpenAPI, and `error`, the one
//! place where errors become `Status`) and `cluster` (the Kubernetes client: resource table,
//! pod and node watches, reviews).

mod api;
pub mod auth;
mod cluster;
pub mod reload;
mod run;
pub mod server;

pub use run::{ClusterSettings, ServeConfig, serve};
