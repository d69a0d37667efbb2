//! The crates' walls, as Cargo resolves them: what each crate can reach is what it can import, so
//! a dependency that crosses a layer of `docs/design.md` fails here (the core's ban on the
//! standard library's IO is `crates/core/clippy.toml`, checked by clippy in `make lint`).

use std::collections::BTreeSet;
use std::process::Command;

/// The packages a workspace crate compiles against (normal dependencies, transitively, for this
/// machine's platform), by name.
fn reachable(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["tree", "--locked", "--edges", "normal", "--prefix", "none"])
        .args(["--format", "{p}", "--package", package])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).unwrap();
    let names: BTreeSet<String> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(
        names.contains(package),
        "{package} is not in its own tree: {tree}"
    );
    names
}

/// Fails naming every package of `package`'s tree that starts with one of `refused`.
fn refuses(package: &str, refused: &[&str], why: &str) {
    let crossing: Vec<String> = reachable(package)
        .into_iter()
        .filter(|name| refused.iter().any(|prefix| name.starts_with(prefix)))
        .collect();
    assert!(crossing.is_empty(), "{package} reaches {crossing:?}: {why}");
}

const RUNTIME_AND_IO: &[&str] = &[
    "tokio",
    "actix",
    "hyper",
    "reqwest",
    "kube",
    "notify",
    "prometheus-http-query",
];

#[test]
fn the_core_compiles_no_runtime_http_kubernetes_logging_or_flags() {
    let mut refused = RUNTIME_AND_IO.to_vec();
    refused.extend(["tracing", "clap", "config", "prom-adapter-"]);
    // Its own name starts with "prom-adapter-" too.
    let crossing: Vec<String> = reachable("prom-adapter-core")
        .into_iter()
        .filter(|name| name != "prom-adapter-core")
        .filter(|name| refused.iter().any(|prefix| name.starts_with(prefix)))
        .collect();
    assert!(
        crossing.is_empty(),
        "the core reaches {crossing:?}: it does no IO and depends on no other crate of ours"
    );
}

#[test]
fn telemetry_is_a_leaf_over_the_core() {
    let mut refused = RUNTIME_AND_IO.to_vec();
    refused.extend([
        "prom-adapter-provider",
        "prom-adapter-backend",
        "prom-adapter-serve",
        "prom-adapter-tools",
    ]);
    refuses(
        "prom-adapter-telemetry",
        &refused,
        "logs, self metrics and the clock depend on the core only",
    );
}

#[test]
fn providers_reach_prometheus_and_the_cluster_only_through_their_ports() {
    refuses(
        "prom-adapter-provider",
        &[
            "hyper",
            "reqwest",
            "kube",
            "actix",
            "prom-adapter-backend",
            "prom-adapter-serve",
        ],
        "the providers call backends and the cluster through MetricsBackend and ObjectLister",
    );
}

#[test]
fn the_backend_serves_nothing_and_watches_nothing() {
    refuses(
        "prom-adapter-backend",
        &[
            "actix",
            "kube-runtime",
            "prom-adapter-serve",
            "prom-adapter-tools",
        ],
        "the backend is every call to Prometheus, used by the server and the tools alike",
    );
}

#[test]
fn the_tools_cannot_reach_the_api_server() {
    refuses(
        "prom-adapter-tools",
        &["actix", "kube-runtime", "prom-adapter-serve", "clap"],
        "explain and simulate use the core, the providers and the backend, never the API",
    );
}

#[test]
fn the_server_does_not_know_the_command_line_or_the_tools() {
    refuses(
        "prom-adapter-serve",
        &["clap", "prom-adapter-tools"],
        "settings arrive typed (ServeConfig); flags are the command line's",
    );
}
