//! `prom-adapter simulate`: replays an HPA over Prometheus history with the controller's own algorithm, to show and explain what it would have done.

pub mod controller;
