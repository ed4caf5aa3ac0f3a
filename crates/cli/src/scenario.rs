//! `tapesched scenario run` and `tapesched scenario compare`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tapesched_scenario::compare::first_divergence;
use tapesched_scenario::{collect_files, load_scenario, run_scenario, Backend, Scenario, ScenarioError};

use crate::{CompareArgs, RunArgs, EXIT_INVALID};

fn fail(e: impl std::fmt::Display) -> u8 {
    eprintln!("error: {e}");
    EXIT_INVALID
}

fn shown(path: &Path) -> String {
    path.display().to_string()
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

/// `scenario run`: exit 0 when every step passed, 1 when one failed, 2 on an invalid file or an
/// unavailable backend. The last stdout line is always `N passed, M failed`.
pub async fn run(args: RunArgs) -> u8 {
    let (mut passed, mut failed) = (0usize, 0usize);
    let code = run_files(&args, &mut passed, &mut failed).await;
    println!("{passed} passed, {failed} failed");
    code
}

async fn run_files(args: &RunArgs, passed: &mut usize, failed: &mut usize) -> u8 {
    let backend = match Backend::from_name(&args.backend).and_then(|b| b.check_available().map(|()| b)) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let files = match files_of(&args.paths) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let mut trace = match &args.trace {
        Some(p) => match File::create(p) {
            Ok(f) => Some(BufWriter::new(f)),
            Err(e) => return fail(format!("{}: cannot write the trace: {e}", shown(p))),
        },
        None => None,
    };
    let several = files.len() > 1;
    let mut invalid = false;
    for path in &files {
        let name = shown(path);
        let scenario = match load_scenario(path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                println!("INVALID {name}");
                invalid = true;
                continue;
            }
        };
        let report = match run_scenario(path, &scenario, backend).await {
            Ok(r) => r,
            Err(e @ ScenarioError::BackendUnavailable(_)) => {
                eprintln!("error: {e}");
                return EXIT_INVALID;
            }
            Err(e) => {
                eprintln!("error: {e}");
                println!("INVALID {name}");
                invalid = true;
                continue;
            }
        };
        if let Some(out) = trace.as_mut() {
            for r in &report.records {
                if let Err(e) = writeln!(out, "{}", r.line(several.then_some(name.as_str()))) {
                    return fail(format!("cannot write the trace: {e}"));
                }
            }
        }
        for line in report.failure_lines(&name) {
            eprintln!("{line}");
        }
        let (p, f) = (report.passed(), report.failed());
        *passed += p;
        *failed += f;
        if f == 0 {
            println!("PASS {name} ({p} checked steps)");
        } else {
            println!("FAIL {name} ({f} failed, {p} passed)");
        }
    }
    if let Some(mut out) = trace {
        if let Err(e) = out.flush() {
            return fail(format!("cannot write the trace: {e}"));
        }
    }
    if invalid {
        EXIT_INVALID
    } else if *failed > 0 {
        1
    } else {
        0
    }
}

/// `scenario compare`: exit 1 at the first divergent step (both sides printed), 2 on an invalid
/// file or an unavailable backend, 0 with a summary line otherwise.
pub async fn compare(args: CompareArgs) -> u8 {
    let backends = match Backend::parse_list(&args.backends) {
        Ok(b) if b.len() >= 2 => b,
        Ok(_) => return fail("--backends needs at least two backends, comma-separated"),
        Err(e) => return fail(e),
    };
    for b in &backends {
        if let Err(e) = b.check_available() {
            return fail(e);
        }
    }
    let files = match files_of(&args.paths) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let mut scenarios: Vec<(PathBuf, Scenario)> = Vec::new();
    let mut invalid = false;
    for path in &files {
        match load_scenario(path) {
            Ok(s) => scenarios.push((path.clone(), s)),
            Err(e) => {
                eprintln!("error: {e}");
                invalid = true;
            }
        }
    }
    if invalid {
        return EXIT_INVALID;
    }
    let names: Vec<&str> = backends.iter().map(|b| b.name()).collect();
    let mut steps = 0;
    for (path, scenario) in &scenarios {
        let name = shown(path);
        let mut first: Option<Vec<tapesched_scenario::StepRecord>> = None;
        for backend in &backends {
            let report = match run_scenario(path, scenario, *backend).await {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            match &first {
                None => first = Some(report.records),
                Some(reference) => {
                    if let Some(d) = first_divergence(reference, &report.records) {
                        let side = |v: &Option<serde_json::Value>| {
                            v.as_ref().map_or("(no such step)".to_string(), |v| v.to_string())
                        };
                        println!("{name}: step {} diverges", d.step);
                        println!("  {}: {}", backends[0], side(&d.left));
                        println!("  {backend}: {}", side(&d.right));
                        println!("{name}: {} and {backend} diverge at step {}", backends[0], d.step);
                        return 1;
                    }
                }
            }
        }
        steps += scenario.steps.len();
        println!("SAME {name} ({} steps)", scenario.steps.len());
    }
    println!("{} files, {steps} steps: identical traces on {}", scenarios.len(), names.join(", "));
    0
}
