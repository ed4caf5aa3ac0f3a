//! `tapesched config check` and `tapesched taped` as processes: exit statuses, messages naming
//! the line, a simulated run of the committed example with its summary, and SIGTERM draining a
//! simulated run.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tapesched"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn config_check_accepts_the_example_and_names_the_line_of_an_unknown_key() {
    let example = root().join("compat/taped/sim.toml");
    let out = bin().args(["config", "check"]).arg(&example).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok "));

    let dir = std::env::temp_dir().join(format!("taped-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(&example)
        .unwrap()
        .replace("../mhvtl/lto9", &root().join("compat/mhvtl/lto9").display().to_string())
        .replace("\"lto9.yml\"", &format!("\"{}\"", root().join("compat/taped/lto9.yml").display()));
    let bad = text.replace("idle_ms = 60_000", "idle_ms = 60_000\nidle_seconds = 60");
    let line = bad.lines().position(|l| l.starts_with("idle_seconds")).unwrap() + 1;
    let path = dir.join("bad.toml");
    std::fs::write(&path, bad).unwrap();
    let out = bin().args(["config", "check"]).arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("bad.toml:{line}: unknown field `idle_seconds`")), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn taped_simulates_the_example_and_prints_a_summary() {
    let example = root().join("compat/taped/sim.toml");
    let out = bin().args(["taped", "--config"]).arg(&example).args(["--simulate-for", "8h"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let total = stdout.lines().find(|l| l.starts_with("total")).expect("a total line");
    assert!(total.contains("archived     2000 retrieved     2000 failed      0"), "{total}");
    assert!(stdout.contains(
        "disk side: 2000 archives reported, 2000 retrieves queued, 2000 retrieves reported, 0 failure reports"
    ));
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ULT1") && l.contains("Shutdown")).count(), 6);

    let out = bin().args(["taped", "--config"]).arg(&example).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --simulate-for"));
}

/// SIGTERM during a long simulated run: the drives drain, the summary is printed, exit 130.
#[test]
fn sigterm_drains_a_simulated_run() {
    let example = root().join("compat/taped/sim.toml");
    let mut child = bin()
        .args(["taped", "--config"])
        .arg(&example)
        .args(["--simulate-for", "3650d"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("queued 2000"), "{first}");
    // SAFETY: signalling the child we started, by its pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(rest.iter().any(|l| l == "SIGTERM: draining"), "{rest:?}");
    assert_eq!(rest.iter().filter(|l| l.starts_with("ULT1") && l.contains("Shutdown")).count(), 6, "{rest:?}");
}
