//! `tapesched scenario run` and `tapesched scenario compare` (with `--report DIR`, the
//! comparison is also written as a report: `compare_report.rs`).
//!
//! SIGINT and SIGTERM stop a run: the backend instance in use is dropped, which removes its
//! namespace (Postgres schema, Redis keys), and the command exits 130. Before the first file,
//! the namespaces of earlier runs whose process died are removed from the servers the run uses
//! (`tapesched db gc-runs` does the same on demand).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use tapesched_backends::namespaces::collect_dead_runs;
use tapesched_scenario::compare::first_divergence;
use tapesched_scenario::{collect_files, load_scenario, run_scenario, Backend, RunReport, Scenario, ScenarioError};

use crate::compare_report::{self, explain_mismatches, FileRuns};

use crate::exit::interrupted;
use crate::{fail, CompareArgs, RunArgs, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID};

fn invalid(e: impl std::fmt::Display) -> u8 {
    fail(EXIT_INVALID, anyhow!("{e}"))
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// `n thing` or `n things`.
pub fn plural(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// The files named on the command line; a directory without any `*.yaml` is an error.
fn files_of(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let files = collect_files(paths).map_err(|e| e.to_string())?;
    if files.is_empty() {
        return Err(format!(
            "no scenario files (*.yaml) under {}",
            paths.iter().map(|p| shown(p)).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(files)
}

/// The backends of the command line, each checked to be reachable (exit 2 otherwise), after the
/// namespaces that dead runs left on their servers were removed.
async fn backends_of(names: &[&str]) -> Result<Vec<Backend>, u8> {
    let mut out = Vec::new();
    for name in names {
        let backend = Backend::from_name(name).map_err(|e| invalid(e.message))?;
        backend.check_available().map_err(|e| invalid(format!("backend {backend}: {}", e.message)))?;
        remove_dead_runs(backend).await;
        out.push(backend);
    }
    Ok(out)
}

async fn remove_dead_runs(backend: Backend) {
    for store in backend.stores() {
        remove_dead_runs_of(store).await;
    }
}

async fn remove_dead_runs_of(backend: Backend) {
    let collected = match backend {
        Backend::Postgres => collect_dead_runs(tapesched_backends::database_url(None).ok().as_deref(), None).await,
        Backend::ObjectstoreRedis => collect_dead_runs(None, tapesched_backends::redis_url(None).ok().as_deref()).await,
        Backend::ObjectstoreMemory | Backend::Bridge(_) => return,
    };
    match collected {
        Ok(c) => {
            for (name, owner) in c.removed {
                eprintln!("note: removed {name}, left by a run that died (pid {})", owner.pid);
            }
        }
        // An unreachable server is reported by the run itself.
        Err(e) if e.kind == tapesched_scheduler::ErrorKind::Unavailable => {}
        Err(e) => eprintln!("warning: could not look for namespaces of dead runs: {e}"),
    }
}

/// Prints the divergences of a bridge run (stderr), clipped; returns how many.
fn print_divergences(name: &str, report: &tapesched_scenario::RunReport) -> usize {
    for d in &report.divergences {
        eprintln!("{name}: {}", tapesched_backends::clip(&d.to_string(), 4000));
    }
    report.divergences.len()
}

/// `scenario run`: exit 0 when every step passed, 1 when one failed or the two sides of a bridge
/// diverged (the divergences are printed), 2 on an invalid file or an unavailable backend, 130
/// when interrupted. The last stdout line is always `N passed, M failed`.
pub async fn run(args: RunArgs) -> u8 {
    let (mut passed, mut failed) = (0usize, 0usize);
    let stop = match interrupted() {
        Ok(s) => s,
        Err(e) => return fail(EXIT_FAILED, e.context("cannot listen for signals")),
    };
    let code = tokio::select! {
        code = run_files(&args, &mut passed, &mut failed) => code,
        signal = stop => {
            // The run's future is dropped by now, and with it its backend instance's namespace.
            eprintln!("interrupted by {signal}: the run's namespace was removed");
            EXIT_INTERRUPTED
        }
    };
    println!("{passed} passed, {failed} failed");
    code
}

async fn run_files(args: &RunArgs, passed: &mut usize, failed: &mut usize) -> u8 {
    let backend = match backends_of(&[args.backend.as_str()]).await {
        Ok(b) => b[0],
        Err(code) => return code,
    };
    let files = match files_of(&args.paths) {
        Ok(f) => f,
        Err(e) => return invalid(e),
    };
    let mut trace = match &args.trace {
        Some(p) => match File::create(p) {
            Ok(f) => Some(BufWriter::new(f)),
            Err(e) => return invalid(format!("{}: cannot write the trace: {e}", shown(p))),
        },
        None => None,
    };
    let several = files.len() > 1;
    let mut invalid_file = false;
    let divergences = &mut 0usize;
    for path in &files {
        let name = shown(path);
        let scenario = match load_scenario(path) {
            Ok(s) => s,
            Err(e) => {
                invalid(e);
                println!("INVALID {name}");
                invalid_file = true;
                continue;
            }
        };
        let report = match run_scenario(path, &scenario, backend).await {
            Ok(r) => r,
            Err(e @ ScenarioError::BackendUnavailable(_)) => return invalid(e),
            Err(e) => {
                invalid(e);
                println!("INVALID {name}");
                invalid_file = true;
                continue;
            }
        };
        if let Some(out) = trace.as_mut() {
            for r in &report.records {
                if let Err(e) = writeln!(out, "{}", r.line(several.then_some(name.as_str()))) {
                    return invalid(format!("cannot write the trace: {e}"));
                }
            }
        }
        for line in report.failure_lines(&name) {
            eprintln!("{}", tapesched_backends::clip(&line, 1000));
        }
        let (p, f) = (report.passed(), report.failed());
        *passed += p;
        *failed += f;
        let diverged = print_divergences(&name, &report);
        *divergences += diverged;
        if f == 0 && diverged == 0 {
            println!("PASS {name} ({})", plural(p, "checked step"));
        } else if diverged > 0 {
            println!("FAIL {name} ({f} failed, {p} passed, {})", plural(diverged, "divergence"));
        } else {
            println!("FAIL {name} ({f} failed, {p} passed)");
        }
    }
    if let Some(mut out) = trace {
        if let Err(e) = out.flush() {
            return invalid(format!("cannot write the trace: {e}"));
        }
    }
    if *divergences > 0 {
        println!("{} between the two sides of {backend}", plural(*divergences, "divergence"));
    }
    if invalid_file {
        EXIT_INVALID
    } else if *failed > 0 || *divergences > 0 {
        EXIT_FAILED
    } else {
        0
    }
}

/// `scenario compare`: exit 1 at the first divergent step (both sides printed), 2 on an invalid
/// file or an unavailable backend, 130 when interrupted, 0 with a summary line otherwise.
pub async fn compare(args: CompareArgs) -> u8 {
    let stop = match interrupted() {
        Ok(s) => s,
        Err(e) => return fail(EXIT_FAILED, e.context("cannot listen for signals")),
    };
    tokio::select! {
        code = compare_files(&args) => code,
        signal = stop => {
            eprintln!("interrupted by {signal}: the runs' namespaces were removed");
            EXIT_INTERRUPTED
        }
    }
}

async fn compare_files(args: &CompareArgs) -> u8 {
    let names: Vec<&str> = args.backends.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
    if names.len() < 2 {
        return invalid("--backends needs at least two backends, comma-separated");
    }
    let backends = match backends_of(&names).await {
        Ok(b) => b,
        Err(code) => return code,
    };
    let files = match files_of(&args.paths) {
        Ok(f) => f,
        Err(e) => return invalid(e),
    };
    let mut scenarios: Vec<(PathBuf, Scenario)> = Vec::new();
    let mut bad = false;
    for path in &files {
        match load_scenario(path) {
            Ok(s) => scenarios.push((path.clone(), s)),
            Err(e) => {
                invalid(e);
                bad = true;
            }
        }
    }
    if bad {
        return EXIT_INVALID;
    }
    if let Some(dir) = &args.report {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return invalid(format!("{}: cannot create the report directory: {e}", shown(dir)));
        }
    }
    // Without --report the first divergence ends the command; with it every file is run on
    // every backend, for the report.
    let keep_going = args.report.is_some();
    let mut diverged = false;
    let mut notes = Vec::new();
    let mut compared: Vec<FileRuns> = Vec::new();
    let mut steps = 0;
    for (path, scenario) in scenarios {
        let name = shown(&path);
        let mut runs: Vec<RunReport> = Vec::new();
        let mut file_diverged = false;
        for backend in &backends {
            let report = match run_scenario(&path, &scenario, *backend).await {
                Ok(r) => r,
                Err(e) => return invalid(e),
            };
            let bridge_divergences = print_divergences(&name, &report);
            if bridge_divergences > 0 {
                println!("{name}: the two sides of {backend} diverged");
                if !keep_going {
                    return EXIT_FAILED;
                }
                notes.push(format!(
                    "{name}: {} between the two sides of {backend} (printed on stderr)",
                    plural(bridge_divergences, "divergence")
                ));
                file_diverged = true;
            }
            if let Some(reference) = runs.first() {
                if let Some(d) = first_divergence(&reference.records, &report.records) {
                    let side = |v: &Option<serde_json::Value>| {
                        v.as_ref().map_or("(no such step)".to_string(), |v| v.to_string())
                    };
                    println!("{name}: step {} diverges", d.step);
                    println!("  {}: {}", backends[0], side(&d.left));
                    println!("  {backend}: {}", side(&d.right));
                    println!("{name}: {} and {backend} diverge at step {}", backends[0], d.step);
                    if !keep_going {
                        return EXIT_FAILED;
                    }
                    file_diverged = true;
                }
            }
            runs.push(report);
        }
        diverged |= file_diverged;
        if !file_diverged {
            steps += scenario.steps.len();
            println!("SAME {name} ({})", plural(scenario.steps.len(), "step"));
        }
        if keep_going {
            compared.push(FileRuns { path, name, scenario, runs, explanations: Default::default() });
        }
    }
    if let Some(dir) = &args.report {
        for file in &mut compared {
            explain_mismatches(file, &backends).await;
        }
        let names: Vec<String> = backends.iter().map(|b| b.name()).collect();
        let report = compare_report::build(&names, &compared, &notes);
        match tapesched_report::write_report(dir, &report) {
            Ok((md, html)) => eprintln!("report: {} and {}", shown(&md), shown(&html)),
            Err(e) => return invalid(format!("{}: cannot write the report: {e}", shown(dir))),
        }
    }
    if diverged {
        return EXIT_FAILED;
    }
    println!(
        "{}, {}: identical traces on {}",
        plural(files.len(), "file"),
        plural(steps, "step"),
        backends.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
    );
    0
}

#[cfg(test)]
mod tests {
    use super::plural;

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "drive"), "1 drive");
        assert_eq!(plural(0, "drive"), "0 drives");
        assert_eq!(plural(2, "checked step"), "2 checked steps");
    }
}
