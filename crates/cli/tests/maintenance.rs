//! `tapesched maintenance` as a process: `--once` on the committed tape server example exits 0
//! with a line per loop, and an unknown key exits 2 naming its line.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tapesched"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The committed example (on the in-memory backend: no server needed), its paths absolute,
/// with `extra` appended, written to `dir/name`.
fn config(dir: &std::path::Path, name: &str, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("compat/taped/sim.toml"))
        .unwrap()
        .replace("../mhvtl/lto9", &root().join("compat/mhvtl/lto9").display().to_string())
        .replace("\"lto9.yml\"", &format!("\"{}\"", root().join("compat/taped/lto9.yml").display()));
    let path = dir.join(name);
    std::fs::write(&path, format!("{text}{extra}")).unwrap();
    path
}

#[test]
fn once_exits_0_and_an_unknown_key_exits_2_with_its_line() {
    let dir = std::env::temp_dir().join(format!("maint-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = config(&dir, "good.toml", "\n[maintenance]\nreport_batch = 10\n[maintenance.repack]\nenabled = false\n");
    let out = bin().args(["maintenance", "--once", "--config"]).arg(&good).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("collect: requeued 0 job(s)"), "{stdout}");
    assert!(stdout.contains("cleanup: 0 tape(s) finalised"), "{stdout}");
    assert!(stdout.contains("reports: 0 delivered"), "{stdout}");
    assert!(!stdout.contains("repack:"), "{stdout}");

    let bad = config(&dir, "bad.toml", "\n[maintenance]\nreports_ms = 10\n");
    let line = std::fs::read_to_string(&bad).unwrap().lines().position(|l| l.starts_with("reports_ms")).unwrap() + 1;
    let out = bin().args(["maintenance", "--once", "--config"]).arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("bad.toml:{line}: unknown field `reports_ms`")), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
