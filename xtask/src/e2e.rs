//! `cargo xtask e2e`: the end-to-end run of a workload (issue 14), a thin command line over
//! `tapesched-e2e`. It finds or starts the services the backends need (as the tests do), runs the
//! workload in lockstep on every backend (or, with `--mode processes`, as separate processes per
//! backend on a scaled clock: [`crate::e2e_processes`]), writes the report into `--out` and exits
//! non-zero on a divergence, a tolerance exceeded or a broken invariant. A progress bar on stderr shows simulated and wall time,
//! requests done and mounts.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tapesched_backends::Backend;
use tapesched_e2e::{BackendSpec, RunOptions, Workload};
use tapesched_report::e2e::E2eRecord;

/// The usage line.
pub const USAGE: &str = "usage: cargo xtask e2e --config DIR --workload FILE --out DIR [--library sim|mhvtl] \
[--backends LIST] [--mode lockstep|processes] [--factor F]";

/// What `cargo xtask e2e --help` prints after the usage line: exactly the options that exist.
pub const HELP: &str =
    "  --library sim|mhvtl        the library: the simulator built from --config (default sim); mhvtl:
                             this host's mhVTL devices, in the processes mode at factor 1 (wall-
                             clock time), the backends one after the other, the library readied
                             before each (drives emptied, the workload's tapes erased, their
                             prefilled files written)
  --config DIR               an mhVTL configuration (device.conf, library_contents.N), e.g.
                             compat/mhvtl/lto9/; with mhvtl this host's (/etc/mhvtl): its drives
                             in device.conf order are the library's drives nst0, nst1, ...
  --workload FILE            a workload (compat/workloads/*.yml)
  --backends LIST            comma-separated: objectstore-memory, objectstore-redis, postgres,
                             bridge:LEGACY:TARGET:STAGE (default objectstore-redis,postgres)
  --mode lockstep|processes  lockstep: every backend in this process on simulated time, every
                             mount decision compared (default); processes: per backend, at the
                             same time, a producer, a tape daemon and a maintenance daemon as
                             real processes on one scaled clock (objectstore-redis, postgres)
  --factor F                 processes mode: simulated seconds per wall second (default 600;
                             1 with mhvtl)
                             The processes mode compares the backends' mounts per hour and files
                             per mount (within max(50 %, 1 resp. 2)), archive and retrieve latency
                             p50 (within max(50 %, 300 s)) and p99 (max(50 %, 600 s)), and checks
                             every request is reported exactly once, none failed, none unknown
  --out DIR                  where record.json and the report go
Exit status: 0 when the backends agreed and every invariant held, 1 otherwise.";

struct Args {
    library: String,
    config: PathBuf,
    workload: PathBuf,
    backends: Vec<Backend>,
    mode: String,
    factor: f64,
    out: PathBuf,
}

fn parse(args: &[String]) -> Result<Args> {
    let mut library = "sim".to_string();
    let (mut config, mut workload, mut out) = (None, None, None);
    let mut backends = "objectstore-redis,postgres".to_string();
    let mut mode = None;
    let mut factor = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().with_context(|| format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--library" => library = value()?,
            "--config" => config = Some(PathBuf::from(value()?)),
            "--workload" => workload = Some(PathBuf::from(value()?)),
            "--backends" => backends = value()?,
            "--mode" => mode = Some(value()?),
            "--factor" => {
                let v = value()?;
                factor = Some(v.parse().ok().filter(|f: &f64| f.is_finite() && *f > 0.0).with_context(|| {
                    format!("--factor {v:?}: must be a positive number of simulated seconds per wall second")
                })?);
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    if !matches!(library.as_str(), "sim" | "mhvtl") {
        bail!("--library {library:?}: must be sim or mhvtl");
    }
    // mhVTL's devices run in wall-clock time: the processes mode at factor 1 only.
    let mhvtl = library == "mhvtl";
    let mode = mode.unwrap_or_else(|| if mhvtl { "processes" } else { "lockstep" }.to_string());
    if !matches!(mode.as_str(), "lockstep" | "processes") {
        bail!("--mode {mode:?}: must be lockstep or processes");
    }
    if mhvtl && mode == "lockstep" {
        bail!("--library mhvtl --mode lockstep: lockstep runs on simulated time, which real devices do not follow; mhVTL runs in the processes mode (the default with --library mhvtl)");
    }
    let factor = match factor {
        Some(f) if mhvtl && f != 1.0 => {
            bail!("--factor {f}: mhVTL's devices run in wall-clock time (factor 1, the default with --library mhvtl)")
        }
        Some(f) => f,
        None if mhvtl => 1.0,
        None => 600.0,
    };
    let backends = Backend::parse_list(&backends).map_err(|e| anyhow::anyhow!("--backends: {}", e.message))?;
    if backends.is_empty() {
        bail!("--backends: no backend named");
    }
    Ok(Args {
        library,
        config: config.with_context(|| format!("--config is missing\n{USAGE}"))?,
        workload: workload.with_context(|| format!("--workload is missing\n{USAGE}"))?,
        backends,
        mode,
        factor,
        out: out.with_context(|| format!("--out is missing\n{USAGE}"))?,
    })
}

/// Runs `cargo xtask e2e ARGS`.
pub fn main(args: &[String]) -> Result<()> {
    let a = parse(args)?;
    let library = if a.library == "mhvtl" {
        // Stops here on a host without mhVTL, saying what was looked for.
        let lib =
            tapesched_library::mhvtl::MhvtlLibrary::discover().map_err(|e| anyhow::anyhow!("--library mhvtl: {e}"))?;
        crate::e2e_processes::E2eLibrary::Mhvtl(std::sync::Arc::new(lib))
    } else {
        crate::e2e_processes::E2eLibrary::Sim
    };
    if a.mode == "processes" {
        if let Some(b) = a.backends.iter().find(|b| !matches!(b, Backend::ObjectstoreRedis | Backend::Postgres)) {
            bail!("--backends {b}: the processes mode runs objectstore-redis and postgres only");
        }
    }
    let workload = Workload::read(&a.workload)?;
    for b in &a.backends {
        b.check_available().map_err(|e| anyhow::anyhow!("backend {b}: {}", e.message))?;
    }
    let context = vec![
        format!("cargo xtask e2e {}", std::env::args().skip(2).collect::<Vec<_>>().join(" ")),
        format!("host {}, {} cores", hostname(), std::thread::available_parallelism().map_or(1, |n| n.get())),
    ];
    if a.mode == "processes" {
        std::fs::create_dir_all(&a.out).with_context(|| format!("--out {}", a.out.display()))?;
        let wall = Instant::now();
        let record = crate::e2e_processes::run(crate::e2e_processes::ProcessesOptions {
            workload,
            workload_file: a.workload.display().to_string(),
            config_dir: a.config.clone(),
            library,
            backends: a.backends.clone(),
            factor: a.factor,
            out: a.out.clone(),
            context,
        })?;
        let summary =
            render(&a.out, &record).with_context(|| format!("writing the report into {}", a.out.display()))?;
        eprint!("{summary}");
        eprintln!("wall {:.1} s; record: {}", wall.elapsed().as_secs_f64(), a.out.join("record.json").display());
        if !record.passed() {
            bail!("the run failed: a tolerance or an invariant above did not hold");
        }
        return Ok(());
    }
    let opts = RunOptions {
        workload,
        workload_file: a.workload.display().to_string(),
        config_dir: a.config.clone(),
        backends: a.backends.iter().map(|b| BackendSpec::new(*b)).collect(),
        context,
    };
    let bar = ProgressBar::new(opts.workload.duration);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("e2e {}", opts.workload.name));
    let wall = Instant::now();
    // One thread: the lockstep loop runs one call at a time, so worker threads would only hand
    // each answer from the connection's task to the loop's across threads (a wake-up per call).
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // A signal drops the run: every backend's namespace is removed as its handle drops.
    let run = crate::until_signal(&runtime, async {
        Ok(tapesched_e2e::run(opts, |p| {
            bar.set_position(p.sim_s.clamp(0, p.duration_s) as u64);
            bar.set_message(format!(
                "sim {} wall {:.0}s, {}/{} requests done, {} mounts",
                hms(p.sim_s),
                wall.elapsed().as_secs_f64(),
                p.done,
                p.queued,
                p.mounts
            ));
        })
        .await?)
    });
    let record = match run {
        Ok(Some(record)) => record,
        Ok(None) => {
            bar.finish_and_clear();
            bail!("interrupted: nothing written, every backend's namespace removed");
        }
        Err(e) => return Err(e),
    };
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    bar.finish_and_clear();
    std::fs::create_dir_all(&a.out).with_context(|| format!("--out {}", a.out.display()))?;
    let summary = render(&a.out, &record).with_context(|| format!("writing the report into {}", a.out.display()))?;
    eprint!("{summary}");
    eprintln!("record: {}", a.out.join("record.json").display());
    if !record.passed() {
        bail!("the run failed: {} divergence(s), invariants above", record.divergences.len());
    }
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "?".into())
}

fn hms(s: i64) -> String {
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Writes the report (`report.md`, `report.html`, `record.json`) and `summary.txt` into `dir`;
/// returns the summary.
fn render(dir: &Path, record: &E2eRecord) -> std::io::Result<String> {
    let (_md, html) = tapesched_report::e2e::write_report(dir, record)?;
    let mut text = summary(record);
    text.push_str(&format!("report: {}\n", html.display()));
    std::fs::write(dir.join("summary.txt"), &text)?;
    Ok(text)
}

/// The record as plain text.
pub fn summary(r: &E2eRecord) -> String {
    let mut out = format!(
        "{} (seed {}), {} on {}: {} drives, {} tapes, simulated {} to {} ({})\n",
        r.workload,
        r.seed,
        r.mode,
        r.library,
        r.drives,
        r.tapes,
        r.start_s,
        r.end_s,
        hms(r.end_s - r.start_s)
    );
    out.push_str(&format!(
        "decisions compared {}, matched {}, mounts chosen {}; divergences {}\n",
        r.decisions.compared,
        r.decisions.matched,
        r.decisions.mounts_chosen,
        r.divergences.len()
    ));
    for b in &r.backends {
        let t = &b.totals;
        out.push_str(&format!(
            "\n{}: wall {:.1} s ({})\n  archives {}/{} queued, retrieves {}/{}, failed {}, duplicates {}, repacks {}/{}, mounts {}, {} bytes\n",
            b.backend,
            b.wall_s,
            b.time_split.iter().map(|(k, v)| format!("{k} {v:.1}")).collect::<Vec<_>>().join(", "),
            t.archived,
            t.archives_queued,
            t.retrieved,
            t.retrieves_queued,
            t.failed,
            t.duplicates,
            t.repacks_done,
            t.repacks_queued,
            t.mounts,
            t.bytes
        ));
        for (name, l) in [("archive", &b.archive_latency), ("retrieve", &b.retrieve_latency)] {
            out.push_str(&format!(
                "  {name} latency: {} requests, p50 {:.0} s, p90 {:.0} s, p99 {:.0} s, max {:.0} s\n",
                l.count, l.p50_s, l.p90_s, l.p99_s, l.max_s
            ));
        }
        for i in &b.invariants {
            out.push_str(&format!("  [{}] {}: {}\n", if i.ok { "ok" } else { "FAILED" }, i.name, i.detail));
        }
    }
    for d in &r.divergences {
        out.push_str(&format!("\nDIVERGENCE at t={} ({}): {}\n", d.t_s, d.concerns, d.what));
        for (b, a) in r.backends.iter().zip(&d.answers) {
            out.push_str(&format!("--- {}\n{a}\n", b.backend));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn wrong_options_are_named() {
        let e = parse(&args("--config c --workload w --out o --backends redis")).err().unwrap();
        assert!(e.to_string().contains("--backends"), "{e}");
        let e = parse(&args("--config c --workload w")).err().unwrap();
        assert!(e.to_string().contains("--out is missing"), "{e}");
        let e = parse(&args("--config c --workload w --out o --frobnicate")).err().unwrap();
        assert!(e.to_string().contains("unknown option \"--frobnicate\""), "{e}");
        let a = parse(&args("--config c --workload w --out o")).unwrap();
        assert_eq!(a.backends, vec![Backend::ObjectstoreRedis, Backend::Postgres]);
        assert_eq!((a.library.as_str(), a.mode.as_str()), ("sim", "lockstep"));
        // mhVTL: the processes mode in wall-clock time, by default and only.
        let a = parse(&args("--library mhvtl --config c --workload w --out o")).unwrap();
        assert_eq!((a.mode.as_str(), a.factor), ("processes", 1.0));
        let e = parse(&args("--library mhvtl --mode lockstep --config c --workload w --out o")).err().unwrap();
        assert!(e.to_string().contains("mhVTL runs in the processes mode"), "{e}");
        let e = parse(&args("--library mhvtl --factor 600 --config c --workload w --out o")).err().unwrap();
        assert!(e.to_string().contains("--factor 600: mhVTL's devices run in wall-clock time"), "{e}");
    }

    #[test]
    fn processes_mode_arguments_are_checked() {
        let a = parse(&args("--config c --workload w --out o --mode processes --factor 120")).unwrap();
        assert_eq!((a.mode.as_str(), a.factor), ("processes", 120.0));
        assert_eq!(parse(&args("--config c --workload w --out o --mode processes")).unwrap().factor, 600.0);
        for bad in ["0", "-3", "fast", "inf"] {
            let e = parse(&args(&format!("--config c --workload w --out o --mode processes --factor {bad}")))
                .err()
                .unwrap();
            assert!(e.to_string().contains(&format!("--factor \"{bad}\": must be a positive number")), "{e}");
        }
        let e = main(&args("--config c --workload w --out o --mode processes --backends objectstore-memory"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("processes mode runs objectstore-redis and postgres only"), "{e}");
    }
}
