//! One composition root per subcommand: each wires the core and the edges together and prints what its command prints.

pub mod explain;
pub mod recommend;
pub mod serve;
pub mod simulate;
