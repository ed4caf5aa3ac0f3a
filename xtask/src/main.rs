//! `cargo xtask`: project automation.
//!
//! `cargo xtask e2e ...`: the end-to-end run of a workload on the simulated library in lockstep
//! on several backends ([`e2e`]; `cargo xtask e2e --help`).
//!
//! `cargo xtask bench --backend objectstore-redis|postgres|bridge [--quick | --scale]`: the
//! backend's benchmark ([`bench_objectstore`], [`bench_postgres`], [`bench_bridge`]: the bridge
//! beside the two backends it joins), printed as JSON on stdout, followed by the rows of the
//! README's tables (Markdown). Progress goes to stderr.
//!
//! - default: queueing, claiming and requeueing with their substrates, the mount decision on
//!   1000 pools x 10 000 VIDs x 1 M queued jobs ([`decision_set`]), then again with 1 M repack
//!   jobs queued beside them ([`repack_decision`]), and the repack expansion of a 1 M-file tape
//!   with its substrate ([`repack_expansion`]); several minutes;
//! - `--backend bridge`: queueing and claims on Redis alone, PostgreSQL alone and the bridge in
//!   dual-write and live, backfill and verify, and shadow decisions on 1 M queued jobs (no
//!   `--scale`);
//! - `--scale`: the mount decision alone on 10 000 pools x 100 000 VIDs x 10 M queued jobs, with
//!   the process's peak memory;
//! - `--quick`: every measured path on a small data set, in the build that runs it (a smoke test
//!   for CI: its timings mean nothing; well under a minute);
//! - `--taped` (postgres or objectstore-redis): instead, a simulated day of the tape daemon, 100
//!   drives serving 1 000 000 files ([`bench_taped`]); with `--quick`, 10 drives and 2000 files.
//!
//! The default and `--scale` runs always run an optimized build: a debug build re-runs itself
//! with `cargo run --release`. Each run works in namespaces of its own (schemas, a key prefix)
//! and removes them at the end, also when it fails or is interrupted (SIGINT, SIGTERM).

mod bench_bridge;
mod bench_objectstore;
mod bench_postgres;
mod bench_taped;
mod cpu_budget;
mod decision_objectstore;
mod decision_postgres;
mod decision_set;
mod e2e;
mod e2e_mhvtl;
mod e2e_processes;
mod measure;
mod repack_decision;
mod repack_expansion;
mod table;

use std::time::Instant;

use anyhow::{bail, Context, Result};
use tapesched_objectstore::redis_store::{ClearOnDrop, RedisSettings};
use tapesched_postgres::SchemaGuard;

/// What `--help` prints after the usage line.
const HELP: &str =
    "  --backend objectstore-redis  the objectstore on Redis: queueing, claims, requeue, mount decision, repack
  --backend postgres           the PostgreSQL backend: the same
  --backend bridge             the migration bridge beside both backends: queueing and claims in
                               dual-write and live, backfill, verify, shadow decisions
  --quick                      every measured path on a small data set (a smoke test)
  --scale                      the mount decision alone on 10 M queued jobs (not for the bridge)
  --apart CORES                with --backend bridge: queueing and claims once more on a Redis
                               server and a PostgreSQL cluster started for the run, each in a
                               control group allowed CORES CPUs (as servers on machines of their
                               own; needs root and the cgroup cpu controller)
  --taped                      instead: a simulated day of the tape daemon (100 drives, 1 M files
                               of 2 GB; with --quick 10 drives, 2000 files) on postgres or
                               objectstore-redis: wall time, time split, CPU per file, substrate
A JSON report goes to stdout, then the README's table rows; progress to stderr.";

fn usage() -> &'static str {
    "usage: cargo xtask bench --backend objectstore-redis|postgres|bridge [--quick | --scale] [--taped] [--apart CORES]
       cargo xtask e2e --help"
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let help = |a: &String| a == "--help" || a == "-h";
    if args.first().map(String::as_str) == Some("e2e") {
        if args.iter().any(help) {
            println!("{}\n\n{}", e2e::USAGE, e2e::HELP);
            return Ok(());
        }
        return e2e::main(&args[1..]);
    }
    if args.iter().any(help) {
        println!("{}\n\n{}", usage(), HELP);
        return Ok(());
    }
    match args.first().map(String::as_str) {
        Some("bench") => bench(&args[1..]),
        _ => bail!("{}", usage()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Redis,
    Bridge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Size {
    Default,
    Quick,
    Scale,
}

/// The server URL of a backend, from the project's service discovery (the one place the
/// benchmarks use it).
fn service_url(backend: Backend) -> Result<String> {
    match backend {
        Backend::Postgres => tapesched_testkit::postgres_url(),
        Backend::Redis | Backend::Bridge => tapesched_testkit::redis_url(),
    }
}

/// A namespace name unique to this run.
fn namespace(prefix: &str) -> String {
    tapesched_testkit::unique_name(prefix)
}

fn bench(args: &[String]) -> Result<()> {
    let (mut backend, mut size, mut taped, mut apart) = (None, Size::Default, false, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--backend" => backend = it.next().cloned(),
            "--taped" => taped = true,
            "--apart" => {
                let cores = it.next().context("--apart takes a number of CPUs per server (0.5: half a CPU)")?;
                let cores: f64 = cores.parse().ok().filter(|c: &f64| *c > 0.0 && c.is_finite()).with_context(|| {
                    format!("--apart {cores:?}: a positive number of CPUs per server is expected (0.5: half a CPU)")
                })?;
                apart = Some(cores);
            }
            "--quick" if size == Size::Default => size = Size::Quick,
            "--scale" if size == Size::Default => size = Size::Scale,
            "--quick" | "--scale" => bail!("--quick and --scale exclude each other; {}", usage()),
            other => bail!("unknown argument {other:?}; {}", usage()),
        }
    }
    let backend = match backend.as_deref() {
        Some("postgres") => Backend::Postgres,
        Some("objectstore-redis") => Backend::Redis,
        Some("bridge") => Backend::Bridge,
        Some(other) => bail!("no benchmark for backend {other:?} (available: objectstore-redis, postgres, bridge)"),
        None => bail!("{}", usage()),
    };
    if taped && (backend == Backend::Bridge || size == Size::Scale) {
        bail!("--taped runs on postgres or objectstore-redis, with --quick or without; {}", usage());
    }
    if apart.is_some() && (backend != Backend::Bridge || taped) {
        bail!("--apart measures the bridge's queueing and claims: it goes with --backend bridge only");
    }
    if backend == Backend::Bridge && size == Size::Scale {
        bail!("--scale measures the mount decision of one backend; the bridge has --quick or the default run");
    }
    if cfg!(debug_assertions) && size != Size::Quick && std::env::var_os("XTASK_BENCH_OPTIMIZED").is_none() {
        // Timings of a debug build say little: become the same command, optimized.
        let mut cargo = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo.args(["run", "--quiet", "--release", "--package", "xtask", "--", "bench"]).args(args);
        cargo.env("XTASK_BENCH_OPTIMIZED", "1");
        use std::os::unix::process::CommandExt;
        return Err(cargo.exec()).context("cannot run cargo");
    }
    if apart.is_some() {
        cpu_budget::CpuBudget::check().context("--apart cannot hold servers to a CPU budget here")?;
    }
    let build = if cfg!(debug_assertions) { "debug" } else { "release" };
    let start = Instant::now();
    let url = service_url(backend)?;
    // The tape daemon's day is one loop making one call at a time: one thread (worker threads
    // would only hand each answer across threads). The other benchmarks run concurrent clients.
    let runtime = if taped {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?
    };
    // The namespaces' guards outlive the runtime: on an error, a panic or a signal, the
    // benchmark's tasks stop first, then the guards remove what they wrote.
    let outcome = match backend {
        _ if taped => {
            let (which, ns) = match backend {
                Backend::Postgres => (tapesched_backends::Backend::Postgres, namespace("bench_taped")),
                _ => (tapesched_backends::Backend::ObjectstoreRedis, format!("{}:", namespace("bench_taped"))),
            };
            let _guards = match backend {
                Backend::Postgres => (Some(SchemaGuard::new(&url, &ns)), None),
                _ => (None, Some(ClearOnDrop(RedisSettings::new(&url, &ns)))),
            };
            let opts = if size == Size::Quick { bench_taped::Options::quick() } else { bench_taped::Options::full() };
            let place = bench_taped::Place { backend: which, url: &url, namespace: &ns };
            let outcome = until_signal(&runtime, bench_taped::run(place, opts));
            runtime.shutdown_timeout(std::time::Duration::from_secs(10));
            outcome
        }
        Backend::Postgres => {
            let names = [
                namespace("bench"),
                namespace("bench_decision"),
                namespace("bench_repack_cat"),
                namespace("bench_repack"),
                namespace("bench_decision_b"),
            ];
            let _guards: Vec<SchemaGuard> = names.iter().map(|n| SchemaGuard::new(&url, n)).collect();
            let schemas = bench_postgres::Schemas {
                throughput: &names[0],
                decision: &names[1],
                repack_catalogue: &names[2],
                repack: &names[3],
                decision_with_repack: &names[4],
            };
            let opts = match size {
                Size::Default => bench_postgres::Options::default(),
                Size::Quick => bench_postgres::Options::quick(),
                Size::Scale => bench_postgres::Options::scale(),
            };
            let outcome = until_signal(&runtime, bench_postgres::run(&url, schemas, opts));
            runtime.shutdown_timeout(std::time::Duration::from_secs(10));
            outcome
        }
        Backend::Redis => {
            let prefix = format!("{}:", namespace("bench"));
            // The repack expansion's catalogue is PostgreSQL's, in a schema of its own.
            let (pg_url, cat_schema) = (service_url(Backend::Postgres)?, namespace("bench_repack_cat"));
            let _guards = (ClearOnDrop(RedisSettings::new(&url, &prefix)), SchemaGuard::new(&pg_url, &cat_schema));
            let opts = match size {
                Size::Default => bench_objectstore::Options::default(),
                Size::Quick => bench_objectstore::Options::quick(),
                Size::Scale => bench_objectstore::Options::scale(),
            };
            let outcome = until_signal(&runtime, bench_objectstore::run(&url, &prefix, &pg_url, &cat_schema, opts));
            runtime.shutdown_timeout(std::time::Duration::from_secs(10));
            outcome
        }
        Backend::Bridge => {
            let prefix = format!("{}:", namespace("bench_bridge"));
            let pg_url = service_url(Backend::Postgres)?;
            let names = [
                namespace("bench_bridge_pg"),
                namespace("bench_bridge_dual"),
                namespace("bench_bridge_live"),
                namespace("bench_bridge_backfill"),
                namespace("bench_bridge_decision"),
            ];
            let _guards = (
                ClearOnDrop(RedisSettings::new(&url, &prefix)),
                names.iter().map(|n| SchemaGuard::new(&pg_url, n)).collect::<Vec<_>>(),
            );
            let ns = bench_bridge::Namespaces {
                prefix: &prefix,
                postgres_alone: &names[0],
                dual_write: &names[1],
                live: &names[2],
                backfill: &names[3],
                decision: &names[4],
            };
            let opts = match size {
                Size::Quick => bench_bridge::Options::quick(),
                _ => bench_bridge::Options::default(),
            };
            let outcome = until_signal(&runtime, async {
                let mut report = bench_bridge::run(&url, &pg_url, ns, opts.clone()).await?;
                if let Some(cores) = apart {
                    report["servers_apart"] = bench_bridge::apart(&opts, cores).await?;
                }
                Ok(report)
            });
            runtime.shutdown_timeout(std::time::Duration::from_secs(10));
            outcome
        }
    };
    let Some(mut report) = outcome? else {
        eprintln!("interrupted: the benchmark's namespaces were removed");
        std::process::exit(130);
    };
    report["run"] = serde_json::json!({
        "options": args, "build": build, "seconds": start.elapsed().as_secs_f64().round(),
        "note": if size == Size::Quick { "--quick is a smoke test: its timings are not measurements" } else { "" },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!();
    print!("{}", table::markdown(&report));
    Ok(())
}

/// Runs `bench` on `runtime` until it ends or SIGINT/SIGTERM arrives (`None`).
pub(crate) fn until_signal<T>(
    runtime: &tokio::runtime::Runtime,
    bench: impl std::future::Future<Output = Result<T>>,
) -> Result<Option<T>> {
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = bench => r.map(Some),
            _ = tokio::signal::ctrl_c() => Ok(None),
            _ = term.recv() => Ok(None),
        }
    })
}
