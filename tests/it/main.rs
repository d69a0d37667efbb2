//! prom-adapter's integration tests in one binary, so that the crate is linked once. The hardening tests are a binary of their own (`tests/hardening.rs`): they measure latency under attack and must not share the machine with other tests.

#[path = "../common/mod.rs"]
mod common;

mod backends;
mod chart;
mod cli;
mod cluster;
mod corpus;
mod examples;
mod explain;
mod integration;
mod no_panic;
mod observability;
mod prometheus_client;
mod query_sharing;
mod recommend;
mod reload;
mod simulate;
