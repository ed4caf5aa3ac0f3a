//! `cargo xtask`: project automation.
//!
//! - `cargo xtask bench --backend objectstore-redis [--quick]`: the objectstore-on-Redis
//!   benchmark ([`bench_objectstore`]), printed as JSON;
//! - `cargo xtask bench --backend postgres [--quick]`: the PostgreSQL backend benchmark
//!   ([`bench_postgres`]), printed as JSON. It always runs an optimized build: a debug build
//!   re-runs itself with `cargo run --release`.

mod bench_objectstore;
mod bench_postgres;
mod measure;

use anyhow::{bail, Context, Result};

fn usage() -> &'static str {
    "usage: cargo xtask bench --backend objectstore-redis|postgres [--quick]"
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => bench(&args[1..]),
        _ => bail!("{}", usage()),
    }
}

fn bench(args: &[String]) -> Result<()> {
    let mut backend = None;
    let mut quick = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--backend" => backend = it.next().cloned(),
            "--quick" => quick = true,
            other => bail!("unknown argument {other:?}; {}", usage()),
        }
    }
    match backend.as_deref() {
        Some("postgres") | Some("objectstore-redis") => {}
        Some(other) => bail!("no benchmark for backend {other:?} (available: objectstore-redis, postgres)"),
        None => bail!("{}", usage()),
    }
    if cfg!(debug_assertions) && std::env::var_os("XTASK_BENCH_OPTIMIZED").is_none() {
        // Timings of a debug build say little: run the same command optimized.
        let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["run", "--quiet", "--release", "--package", "xtask", "--", "bench"])
            .args(args)
            .env("XTASK_BENCH_OPTIMIZED", "1")
            .status()
            .context("cannot run cargo")?;
        std::process::exit(status.code().unwrap_or(1));
    }
    if backend.as_deref() == Some("objectstore-redis") {
        let mut opts = bench_objectstore::Options::default();
        if quick {
            opts = bench_objectstore::Options {
                requests: 20_000,
                decision_pools: 100,
                decision_vids: 1000,
                decision_jobs: 100_000,
                decision_samples: 50,
                substrate_ops: 100_000,
                ..opts
            };
        }
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let report = runtime.block_on(bench_objectstore::run(opts))?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let mut opts = bench_postgres::Options::default();
    if quick {
        opts = bench_postgres::Options {
            requests: 20_000,
            decision_pools: 100,
            decision_vids: 1000,
            decision_jobs: 100_000,
            decision_samples: 50,
            ..opts
        };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(bench_postgres::run(opts))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
