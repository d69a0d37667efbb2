//! Real users' rules files (`../shared/corpus/real-configs`, beside the project, when present; or
//! `PROM_ADAPTER_CORPUS`): every file prometheus-adapter starts with passes `check` and starts
//! `serve`. The files prometheus-adapter itself rejects are listed, with why, in `pa-rejects.txt`.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::{Adapter, Prometheus};

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("PROM_ADAPTER_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"))
        .join("real-configs");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("no corpus at {}: skipped", dir.display());
        None
    }
}

/// Every rules file of the corpus that prometheus-adapter starts with.
fn accepted(dir: &std::path::Path) -> Vec<PathBuf> {
    let rejects = std::fs::read_to_string(dir.join("pa-rejects.txt")).unwrap_or_default();
    let rejected: Vec<&str> = rejects
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim()))
        .collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !rejected.contains(&name.as_ref())
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 40,
        "the corpus has {} accepted files",
        files.len()
    );
    files
}

#[test]
fn check_accepts_every_file_prometheus_adapter_accepts() {
    let Some(dir) = corpus() else { return };
    let mut failed = Vec::new();
    for file in accepted(&dir) {
        let out = Command::new(env!("CARGO_BIN_EXE_prom-adapter"))
            .args(["check", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        if !out.status.success() {
            failed.push(format!(
                "{}:\n{}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn serve_starts_with_every_file_prometheus_adapter_accepts() {
    let Some(dir) = corpus() else { return };
    let work = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(work.path());
    for file in accepted(&dir) {
        // Panics with the adapter's log unless /readyz answers 200.
        let adapter = Adapter::start(work.path(), &file, &prometheus.url(), &[]);
        assert_eq!(adapter.curl("/livez").0, 200, "{}", file.display());
    }
}
