//! prom-adapter's command line: flags and settings (`cli`) and one composition root per command (`app`). The work is in the crates: `prom-adapter-core` (the pure core), `prom-adapter-serve` (the APIService and every outbound call) and `prom-adapter-tools` (explain and simulate); `docs/design.md` draws the layers.

pub mod app;
pub mod cli;
