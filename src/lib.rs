//! prom-adapter: a Kubernetes custom, external and resource metrics adapter backed by Prometheus.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
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
