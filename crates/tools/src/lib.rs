//! prom-adapter's rules-authoring tools: `explain` (what a rule discovers, the query a request runs, why a metric is missing, lint) and `simulate` (an HPA replayed over Prometheus history, and `--recommend`). They reach Prometheus through the server crate's backend and never its API.

pub mod explain;
pub mod simulate;
