//! prom-adapter's integration tests in one binary, so that the crate is linked once. They assert
//! behaviour, never speed, and wait with `common::PATIENCE`: they run many at a time (`make test`),
//! and pass on a slow or busy machine.

#[path = "../common/mod.rs"]
mod common;

mod backends;
mod chart;
mod cli;
mod cluster;
mod corpus;
mod examples;
mod explain;
mod hardening;
mod integration;
mod no_panic;
mod observability;
mod prometheus_client;
mod query_sharing;
mod recommend;
mod reload;
mod simulate;
mod walls;
