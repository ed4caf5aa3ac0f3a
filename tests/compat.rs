//! Compat snapshots: every scenario under `compat/` runs on a backend, must pass (no invalid file,
//! no failed step), and its backend-neutral trace (`step`, `at`, `op`, `result`, `ok`) must equal
//! the snapshot `snapshots/<relative path with / as __>.snap`.
//!
//! Snapshots are shared by all backends: each backend gets a test calling [`run_compat`] with its
//! name, and every one of them is checked against the same files. The migration bridge runs the
//! corpus in every stage (`bridge:objectstore-memory:postgres:STAGE`, and shadow and live with
//! Redis as legacy): its traces must equal the same snapshots and its two sides must never
//! diverge. Regenerate them with
//! `INSTA_UPDATE=always cargo test -p tapesched-tests --test compat` (or `cargo insta review`);
//! under `CI=true` a missing or different snapshot fails.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tapesched_scenario::{collect_files, load_scenario, run_scenario, Backend};

fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat")
}

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots")
}

/// `scenarios/decision/x.yaml` -> `scenarios__decision__x`.
fn snapshot_name(relative: &Path) -> String {
    relative.with_extension("").to_string_lossy().replace(['/', '\\'], "__")
}

/// Runs every compat scenario on the named backend: each must pass and its trace must equal its
/// snapshot. Every file is tried before the test fails, listing all failures.
async fn run_compat(backend_name: &str) {
    let backend = Backend::from_name(backend_name).unwrap_or_else(|e| panic!("{e}"));
    let dir = compat_dir();
    let files = collect_files(std::slice::from_ref(&dir)).unwrap_or_else(|e| panic!("{e}"));
    assert!(!files.is_empty(), "no scenario under {}", dir.display());

    let mut failures = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(&dir).unwrap_or(path);
        let shown = relative.display().to_string();
        let scenario = match load_scenario(path) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("invalid file: {e}"));
                continue;
            }
        };
        let report = match run_scenario(path, &scenario, backend).await {
            Ok(r) => r,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        for d in &report.divergences {
            failures.push(format!("{shown}: {d}"));
        }
        if report.failed() > 0 {
            failures.extend(report.failure_lines(&shown));
            continue;
        }
        let trace: Vec<Value> = report.records.iter().map(|r| r.neutral()).collect();
        let name = snapshot_name(relative);
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(snapshot_dir());
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.set_description(format!("trace of compat/{shown}"));
        // Keep going after a mismatch so one run reports (and, outside CI, writes) every change.
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            settings.bind(|| insta::assert_json_snapshot!(name.as_str(), trace))
        }));
        if checked.is_err() {
            failures.push(format!("{shown}: the trace differs from snapshots/{name}.snap (or it is missing)"));
        }
    }
    assert!(failures.is_empty(), "compat scenarios failed on {backend_name}:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn compat_objectstore_memory() {
    run_compat("objectstore-memory").await;
}

#[tokio::test]
async fn compat_objectstore_redis() {
    run_compat("objectstore-redis").await;
}

#[tokio::test]
async fn compat_postgres() {
    run_compat("postgres").await;
}

#[tokio::test]
async fn compat_bridge_off() {
    run_compat("bridge:objectstore-memory:postgres:off").await;
}

#[tokio::test]
async fn compat_bridge_dual_write() {
    run_compat("bridge:objectstore-memory:postgres:dual-write").await;
}

#[tokio::test]
async fn compat_bridge_shadow() {
    run_compat("bridge:objectstore-memory:postgres:shadow").await;
}

#[tokio::test]
async fn compat_bridge_live() {
    run_compat("bridge:objectstore-memory:postgres:live").await;
}

#[tokio::test]
async fn compat_bridge_rampdown() {
    run_compat("bridge:objectstore-memory:postgres:rampdown").await;
}

#[tokio::test]
async fn compat_bridge_complete() {
    run_compat("bridge:objectstore-memory:postgres:complete").await;
}

#[tokio::test]
async fn compat_bridge_redis_shadow() {
    run_compat("bridge:objectstore-redis:postgres:shadow").await;
}

#[tokio::test]
async fn compat_bridge_redis_live() {
    run_compat("bridge:objectstore-redis:postgres:live").await;
}

#[test]
fn snapshot_names_flatten_paths() {
    assert_eq!(snapshot_name(Path::new("scenarios/decision/x.yaml")), "scenarios__decision__x");
    assert_eq!(snapshot_name(Path::new("examples/a.b.yaml")), "examples__a.b");
}
