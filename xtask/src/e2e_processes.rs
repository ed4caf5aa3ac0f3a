//! `cargo xtask e2e --mode processes`: the workload played by real processes, one set per
//! backend (a producer `tapesched produce`, a tape daemon `taped` and a maintenance daemon
//! `maintenance --clock`), each with its own PostgreSQL catalogue schema (and Redis key prefix),
//! all removed at the end. On the simulated library every backend runs at the same time on one
//! scaled clock (`taped --clock`); on mhVTL's devices ([`crate::e2e_mhvtl`]) the backends take
//! turns on the one library, in wall-clock time. The run's measures
//! (`tapesched_taped::outcome::measure`) per backend fill an [`E2eRecord`] of mode "processes";
//! the backends are compared within stated tolerances.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tapesched_backends::Backend;
use tapesched_e2e::catalogue::Plan;
use tapesched_e2e::generate::{events, Event as GenEvent, EventKind};
use tapesched_e2e::record::{add_drive, add_queued};
use tapesched_e2e::workload::IncidentKind;
use tapesched_e2e::Workload;
use tapesched_objectstore::redis_store::{ClearOnDrop, RedisSettings};
use tapesched_postgres::{PgCatalogue, SchemaGuard};
use tapesched_report::e2e::{BackendRun, E2eRecord, InvariantCheck, LatencySummary, Sample, ToleranceCheck, Totals};
use tapesched_scheduler::catalogue::Catalogue;
use tapesched_scheduler::clock::{ClockSpec, ScaledClock};
use tapesched_scheduler::db::SchedulerDb;
use tapesched_scheduler::repack::RepackStatus;
use tapesched_scheduler::types::{DriveStatus, Requester, TapeState};
use tapesched_taped::outcome::{measure, parse_lines, parse_summary_total, Latency, ReportLine, RunOutcome};
use tapesched_taped::replay::{Action, Applied, Event};

/// The tolerances between backends: a measure holds when its largest and smallest values differ
/// by at most `relative` of the largest, or by at most `absolute` (whichever allows more).
pub const TOLERANCES: [(&str, f64, f64); 6] = [
    ("mounts per hour", 0.5, 1.0),
    ("files per mount", 0.5, 2.0),
    ("archive latency p50 (s)", 0.5, 300.0),
    ("archive latency p99 (s)", 0.5, 600.0),
    ("retrieve latency p50 (s)", 0.5, 300.0),
    ("retrieve latency p99 (s)", 0.5, 600.0),
];

/// The workload's generated events as the producer's event lines (simulated seconds since the
/// epoch), their reports to `report_url`, and the `[[library.faults]]` of the tape daemon's
/// configuration: a drive going down is the simulated library's fault, injected by the daemon
/// that runs the library; every other incident is an operator's action the producer takes.
pub fn producer_events(w: &Workload, generated: &[GenEvent], report_url: &str) -> Result<(Vec<Event>, String)> {
    let mut out = Vec::new();
    let mut faults = String::new();
    for e in generated {
        // Arrivals are queued at the second they fall in (the producer's times are seconds).
        let at = w.start + e.t_ms.div_euclid(1000);
        let requester = |flow: usize| {
            w.flows[flow].requester.as_ref().map(|r| Requester { name: r.name.clone(), group: r.group.clone() })
        };
        let action = match &e.kind {
            EventKind::Archive { flow, size } => Action::QueueArchive {
                storage_class: w.flows[*flow].storage_class.clone().with_context(|| {
                    format!("flow {:?}: an archive flow without storage_class", w.flows[*flow].name)
                })?,
                size: *size,
                count: 1,
                first_archive_file_id: None,
                requester: requester(*flow),
                report_url: Some(report_url.to_string()),
                error_report_url: Some(report_url.to_string()),
            },
            EventKind::Retrieve { flow, archive_file_id } => Action::QueueRetrieve {
                archive_file_id: *archive_file_id,
                requester: requester(*flow),
                dst_url: None,
                report_url: Some(report_url.to_string()),
                error_report_url: Some(report_url.to_string()),
            },
            EventKind::Incident(IncidentKind::TapeDisabled(vid)) => Action::ChangeTapeState {
                vid: vid.clone(),
                state: TapeState::Disabled,
                reason: Some("e2e incident".into()),
            },
            EventKind::Incident(IncidentKind::TapeFull(vid)) => Action::MarkTapeFull { vid: vid.clone() },
            EventKind::Incident(IncidentKind::Repack { vid, mount_policy }) => {
                Action::QueueRepack { vid: vid.clone(), mount_policy: mount_policy.clone() }
            }
            EventKind::Incident(IncidentKind::DriveDown(drive)) => {
                // As lockstep injects it: the drive's next operation fails. (Drive names are the
                // library's, checked plain names: quoted as TOML reads them.)
                faults.push_str(&format!(
                    "\n[[library.faults]]\nat = {at}\ndrive = {drive:?}\nmessage = \"e2e incident: drive down\"\n"
                ));
                continue;
            }
        };
        out.push(Event { at, action });
    }
    Ok((out, faults))
}

/// Whether an event queues a request (a request the disk side then gets a report of).
fn queues_a_request(e: &Event) -> bool {
    matches!(e.action, Action::QueueArchive { .. } | Action::QueueRetrieve { .. })
}

/// One tolerance check over the backends' `values` of `measure`.
pub fn tolerance(measure: &str, values: Vec<f64>, relative: f64, absolute: f64) -> ToleranceCheck {
    let max = values.iter().cloned().fold(f64::MIN, f64::max);
    let min = values.iter().cloned().fold(f64::MAX, f64::min);
    let ok = values.len() < 2 || max - min <= (relative * max.abs()).max(absolute);
    ToleranceCheck {
        measure: measure.to_string(),
        values,
        tolerance: format!("max - min <= max({:.0} % of max, {absolute})", relative * 100.0),
        ok,
    }
}

/// The tolerance checks of [`TOLERANCES`] over the backends' outcomes.
pub fn tolerances(outcomes: &[RunOutcome]) -> Vec<ToleranceCheck> {
    TOLERANCES
        .iter()
        .map(|(name, rel, abs)| {
            let values = outcomes
                .iter()
                .map(|o| match *name {
                    "mounts per hour" => o.mounts_per_hour,
                    "files per mount" => o.files_per_mount,
                    "archive latency p50 (s)" => o.archive_latency.p50_s,
                    "archive latency p99 (s)" => o.archive_latency.p99_s,
                    "retrieve latency p50 (s)" => o.retrieve_latency.p50_s,
                    _ => o.retrieve_latency.p99_s,
                })
                .collect();
            tolerance(name, values, *rel, *abs)
        })
        .collect()
}

/// The invariants of one backend's outcome.
pub fn invariants(o: &RunOutcome, queued: u64) -> Vec<InvariantCheck> {
    let check = |name: &str, ok: bool, detail: String| InvariantCheck { name: name.into(), ok, detail };
    vec![
        check("every request queued", o.queued == queued, format!("{} of {queued} queued", o.queued)),
        check("every request reported", o.missing_count == 0, format!("{} missing {:?}", o.missing_count, o.missing)),
        check(
            "no request reported twice",
            o.duplicate_count == 0,
            format!("{} duplicated {:?}", o.duplicate_count, o.duplicates),
        ),
        check("no unknown report", o.unknown_reports == 0, format!("{} unknown report lines", o.unknown_reports)),
        check("no request failed", o.failed == 0, format!("{} failed", o.failed)),
    ]
}

fn summary_of(l: &Latency) -> LatencySummary {
    let mut values: Vec<f64> = l.sorted.iter().map(|&v| v as f64).collect();
    tapesched_e2e::record::latency_summary(&mut values)
}

/// The library a processes run drives.
pub enum E2eLibrary {
    /// The simulator built from the mhVTL configuration, on the scaled clock (every backend at
    /// the same time: each tape daemon runs a library of its own).
    Sim,
    /// The real devices of this mhVTL host, in wall-clock time (factor 1). The backends take
    /// turns, since they share the one library; before each turn the library is readied
    /// ([`crate::e2e_mhvtl::prepare`]).
    Mhvtl(std::sync::Arc<tapesched_library::mhvtl::MhvtlLibrary>),
}

/// The options of a processes run.
pub struct ProcessesOptions {
    /// The workload.
    pub workload: Workload,
    /// Its file.
    pub workload_file: String,
    /// The library's mhVTL configuration.
    pub config_dir: PathBuf,
    /// The library.
    pub library: E2eLibrary,
    /// The backends.
    pub backends: Vec<Backend>,
    /// Simulated seconds per wall second.
    pub factor: f64,
    /// Where the run's files go.
    pub out: PathBuf,
    /// The record's first context lines.
    pub context: Vec<String>,
}

struct Running {
    backend: Backend,
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            if c.try_wait().ok().flatten().is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn sigterm(child: &Child) {
    // SAFETY: signalling a child this process started, by its pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

/// What the harness reads of one backend while its processes run: the queues (the backend,
/// opened read-only from this process) and the drives' statuses (the catalogue the daemons
/// report to).
struct Sampler {
    db: Arc<dyn SchedulerDb>,
    catalogue: PgCatalogue,
    drives: Vec<String>,
}

impl Sampler {
    /// A sample at simulated second `t_s`: queued jobs, drives up and busy, mounts started (the
    /// daemon's event lines), requests reported (`done`).
    async fn sample(&self, t_s: i64, taped_out: &str, done: u64) -> Result<Sample> {
        let info = self.db.mount_info(t_s).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut s = Sample { t_s, done, ..Sample::default() };
        add_queued(&mut s, &info);
        let snap = self.catalogue.snapshot().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        for d in &self.drives {
            let Some(st) = snap.drives.get(d).map(|x| x.status) else { continue };
            add_drive(&mut s, st, st == DriveStatus::Shutdown);
        }
        s.mounts = mount_lines(taped_out);
        Ok(s)
    }
}

/// The mounts a daemon's event lines say it started (`t=.. DRIVE mount VID ...`).
fn mount_lines(taped_out: &str) -> u64 {
    taped_out.lines().filter(|l| l.starts_with("t=") && l.split_whitespace().nth(2) == Some("mount")).count() as u64
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// How long a silent mount (and its daemon) lives for the collector, in wall seconds, whatever the
/// factor: a tape daemon that a loaded machine holds back this long is not taken for dead. (Mounts
/// a daemon gives up on are marked abandoned and collected at once; nobody is killed in this
/// mode.)
const SILENCE_TOLERATED_WALL_S: f64 = 60.0;

/// The maintenance daemon's `mount_timeout_s` (simulated seconds) at `factor`: the default 900 s
/// (15 minutes), or [`SILENCE_TOLERATED_WALL_S`] of wall time when that is longer. At factor 600
/// the default is 1.5 s of wall time, which a stall of a busy machine can exceed: the collector
/// would then take a live daemon's mounts away.
fn mount_timeout_s(factor: f64) -> i64 {
    ((SILENCE_TOLERATED_WALL_S * factor).ceil() as i64).max(900)
}

/// The last `n` lines of a file, indented, for an error message.
fn tail(path: &Path, n: usize) -> String {
    let t = text(path);
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|l| format!("\n    {l}")).collect()
}

/// Lines of `out` that say something failed on the way (`step failed`, `heartbeat failed` of the
/// tape daemon, `error:` of the maintenance daemon): their count and the first one.
fn failures_said(out: &str) -> (usize, Option<&str>) {
    let mut said =
        out.lines().filter(|l| l.contains(" step failed") || l.contains("heartbeat failed") || l.starts_with("error:"));
    let first = said.next();
    (first.map_or(0, |_| 1 + said.count()), first)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the `tapesched` binary (a no-op when it is up to date) and returns its path.
fn binary() -> Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "-p", "tapesched-cli", "--bin", "tapesched"])
        .current_dir(root())
        .status()
        .context("running cargo build -p tapesched-cli")?;
    if !status.success() {
        bail!("cargo build -p tapesched-cli failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    let bin = target.join("debug/tapesched");
    if !bin.exists() {
        bail!("{} is missing after cargo build", bin.display());
    }
    Ok(bin)
}

/// One backend of the run, set up: its namespaces hold the catalogue, its directory will hold
/// the processes' files.
struct Setup {
    backend: Backend,
    dir: PathBuf,
    /// The `[backend]` section of its configuration.
    section: String,
    sampler: Sampler,
}

/// What one backend's turn gave.
struct Played {
    run: BackendRun,
    outcome: RunOutcome,
}

/// The unix second of the wall clock, a few seconds ahead (the processes' start-up).
fn wall_start_s() -> Result<i64> {
    Ok(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64 + 3)
}

/// Runs the workload as processes on every backend (at once on the simulator, in turn on
/// mhVTL) and returns the record.
pub fn run(o: ProcessesOptions) -> Result<E2eRecord> {
    if !(o.factor.is_finite() && o.factor > 0.0) {
        bail!("--factor {}: must be a positive number", o.factor);
    }
    let mhvtl = match &o.library {
        E2eLibrary::Sim => None,
        E2eLibrary::Mhvtl(lib) => Some(lib.clone()),
    };
    if mhvtl.is_some() && o.factor != 1.0 {
        bail!("--factor {}: mhVTL's devices run in wall-clock time (factor 1)", o.factor);
    }
    let w = &o.workload;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut context = o.context.clone();
    let mut plan = Plan::new(&o.config_dir, w)?;
    // The library's cartridges: from library_contents for the simulator, from the robot on mhVTL.
    let barcodes: Vec<String> = match &mhvtl {
        None => tapesched_library::config::LibraryContents::read(
            &o.config_dir.join(format!("library_contents.{}", w.library_id)),
        )
        .map_err(|e| anyhow::anyhow!("library configuration: {e}"))?
        .barcodes()
        .map(str::to_string)
        .collect(),
        Some(lib) => {
            let inventory = runtime
                .block_on(tapesched_library::Library::inventory(&**lib))
                .context("--library mhvtl: reading the library's inventory")?;
            let names = crate::e2e_mhvtl::map_drives(&plan, &inventory)?;
            crate::e2e_mhvtl::check_cartridges(&plan, &inventory)?;
            context.push(format!(
                "mhVTL drives: {}",
                plan.drives.iter().zip(&names).map(|(c, n)| format!("{c} = {n}")).collect::<Vec<_>>().join(", ")
            ));
            plan.drives = names;
            inventory.barcodes()
        }
    };
    let generated = events(w, &plan);
    let mut spec = plan.catalogue_spec(w);
    // The tape daemon refuses a cartridge its catalogue does not know: the cartridges the
    // workload leaves unused join the catalogue DISABLED (never mounted).
    let used: Vec<&str> = plan.tapes.iter().map(|t| t.barcode.as_str()).collect();
    if let Some(first) = plan.tapes.first() {
        for b in barcodes.iter().filter(|b| !b.starts_with("CLN") && !used.contains(&b.as_str())) {
            spec.tapes.push(tapesched_scenario::model::TapeSpec {
                vid: tapesched_taped::config::vid_of(b).to_string(),
                tape_pool: first.tape_pool.clone(),
                logical_library: w.logical_library.clone(),
                capacity_bytes: first.capacity,
                data_on_tape_bytes: 0,
                last_fseq: 0,
                full: false,
                state: Some(TapeState::Disabled),
                state_reason: Some("not used by the workload".into()),
                media_type: None,
                vendor: None,
            });
        }
    }
    let bin = binary()?;
    let pg = tapesched_testkit::postgres_url().context("the processes mode needs PostgreSQL for its catalogue")?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::SeqCst);
            }
        });
    }
    context.push(match &mhvtl {
        None => format!("processes: every backend at the same time, factor {} (simulated s per wall s)", o.factor),
        Some(_) => "processes on mhVTL: the backends one after the other, in wall-clock time".to_string(),
    });
    if mhvtl.is_none() {
        context.push(format!(
            "the collector takes a mount silent for {} simulated s ({:.0} s of wall time at this factor) for dead",
            mount_timeout_s(o.factor),
            mount_timeout_s(o.factor) as f64 / o.factor
        ));
    }
    context.push(format!(
        "tolerances: {}",
        TOLERANCES
            .iter()
            .map(|(n, r, a)| format!("{n} within max({:.0} %, {a})", r * 100.0))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    let mut guards: Vec<Box<dyn std::any::Any>> = Vec::new();
    let mut setups = Vec::new();
    for b in &o.backends {
        let name = tapesched_testkit::unique_name("e2eproc");
        guards.push(Box::new(SchemaGuard::new(pg.clone(), name.clone())));
        let section = match b {
            Backend::Postgres => {
                format!("[backend]\nname = \"postgres\"\ndatabase_url = \"{pg}\"\nschema = \"{name}\"\n")
            }
            Backend::ObjectstoreRedis => {
                let redis = tapesched_testkit::redis_url().context("objectstore-redis needs Redis")?;
                let prefix = format!("{name}:");
                guards.push(Box::new(ClearOnDrop(RedisSettings::new(redis.clone(), prefix.clone()))));
                format!(
                    "[backend]\nname = \"objectstore-redis\"\nredis_url = \"{redis}\"\nredis_prefix = \"{prefix}\"\ndatabase_url = \"{pg}\"\nschema = \"{name}\"\n"
                )
            }
            other => bail!("--backends {other}: the processes mode runs objectstore-redis and postgres only"),
        };
        let (snapshot, files) =
            tapesched_scenario::catalogue::build(&spec, "default").map_err(|e| anyhow::anyhow!("catalogue: {e}"))?;
        let mut target = tapesched_backends::Target::new(*b);
        target.database_url = Some(pg.clone());
        target.schema = name.clone();
        target.redis_url = tapesched_testkit::redis_url().ok();
        target.redis_prefix = format!("{name}:");
        target.process_label = "e2e-sampler".into();
        let sampler = runtime
            .block_on(async {
                let c = PgCatalogue::connect(&pg, &name).await?;
                c.load(snapshot, files).await?;
                let db = tapesched_backends::open(&target).await?;
                Ok::<_, tapesched_scheduler::Error>(Sampler { db, catalogue: c, drives: plan.drives.clone() })
            })
            .map_err(|e| anyhow::anyhow!("backend {b}: loading the catalogue: {e}"))?;
        let dir = o.out.join(b.name());
        std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
        // Absolute: the report URLs are file:// URLs.
        let dir = std::fs::canonicalize(&dir).with_context(|| format!("{}", dir.display()))?;
        setups.push(Setup { backend: *b, dir, section, sampler });
    }
    let repacks_queued =
        generated.iter().filter(|e| matches!(e.kind, EventKind::Incident(IncidentKind::Repack { .. }))).count() as u64;
    // Turns: every backend at once on the simulator; one after the other on the one real library.
    let turns: Vec<Vec<&Setup>> = match &mhvtl {
        None => vec![setups.iter().collect()],
        Some(_) => setups.iter().map(|s| vec![s]).collect(),
    };
    let mut played = Vec::new();
    for turn in turns {
        // The turn's clock: the workload's own start on the simulator; on mhVTL the wall clock
        // itself (start = origin), which the tape daemon reads.
        let turn_start = match &mhvtl {
            None => w.start,
            Some(lib) => {
                let drive = plan.drives[0].clone();
                eprintln!("readying the library for {} on {drive}: {} tape(s)", turn[0].backend, plan.tapes.len());
                // Ctrl-C stops the preparation too (its current library command ends first).
                runtime
                    .block_on(async {
                        tokio::select! {
                            r = crate::e2e_mhvtl::prepare(&**lib, &drive, &plan, |b| eprintln!("  {b} ready")) => r,
                            _ = tokio::signal::ctrl_c() => {
                                bail!("interrupted (Ctrl-C) while readying the library: no process of this turn started, nothing written, the namespaces removed")
                            }
                        }
                    })
                    .with_context(|| format!("backend {}: readying the library", turn[0].backend))?;
                wall_start_s()?
            }
        };
        let wt = Workload { start: turn_start, ..w.clone() };
        let origin = match &mhvtl {
            None => wall_start_s()? * 1000,
            Some(_) => turn_start * 1000,
        };
        let clock = ClockSpec::new(wt.start, origin, o.factor).map_err(|e| anyhow::anyhow!("clock: {e}"))?;
        let turn_context = Turn {
            w: &wt,
            file_start: w.start,
            generated: &generated,
            plan: &plan,
            config_dir: &o.config_dir,
            mhvtl: mhvtl.is_some(),
            bin: &bin,
            clock,
            repacks_queued,
            stop: &stop,
        };
        for p in play(&runtime, &turn_context, &turn, &mut context)? {
            played.push(p);
        }
    }
    let (backends, outcomes): (Vec<BackendRun>, Vec<RunOutcome>) =
        played.into_iter().map(|p| (p.run, p.outcome)).unzip();
    drop(setups);
    drop(guards);
    runtime.shutdown_timeout(Duration::from_secs(5));
    Ok(E2eRecord {
        workload: w.name.clone(),
        workload_file: o.workload_file.clone(),
        seed: w.seed,
        mode: "processes".into(),
        library: if mhvtl.is_some() { "mhvtl" } else { "sim" }.into(),
        drives: plan.drives.len() as u32,
        tapes: plan.tapes.len() as u32,
        start_s: w.start,
        end_s: w.start + w.duration as i64,
        context,
        backends,
        tolerances: tolerances(&outcomes),
        ..E2eRecord::default()
    })
}

/// What every backend of one turn shares.
struct Turn<'a> {
    /// The workload, its start moved to the turn's.
    w: &'a Workload,
    /// The workload's start as its file gives it.
    file_start: i64,
    generated: &'a [GenEvent],
    plan: &'a Plan,
    config_dir: &'a Path,
    /// On mhVTL's devices (the tape daemon on the wall clock, no injected faults).
    mhvtl: bool,
    bin: &'a Path,
    clock: ClockSpec,
    repacks_queued: u64,
    stop: &'a AtomicBool,
}

/// One turn: writes each backend's events and configuration, starts its processes, samples them
/// until every request is reported (or the wall deadline), stops them and measures the outcome.
/// Sample times are given on the workload's own timeline (its `start` in the file), so that
/// turns taken one after the other line up in the report.
fn play(
    runtime: &tokio::runtime::Runtime,
    t: &Turn<'_>,
    setups: &[&Setup],
    context: &mut Vec<String>,
) -> Result<Vec<Played>> {
    let w = t.w;
    let mut runs = Vec::new();
    let mut queued_counts = Vec::new();
    for s in setups {
        let reports = s.dir.join("reports.jsonl");
        let _ = std::fs::remove_file(&reports);
        let (evs, faults) = producer_events(w, t.generated, &format!("file://{}", reports.display()))?;
        let mut lines = String::new();
        for e in &evs {
            lines.push_str(&serde_json::to_string(e)?);
            lines.push('\n');
        }
        std::fs::write(s.dir.join("events.jsonl"), lines)?;
        let mut config = format!("{}\n[catalogue]\npostgres = true\n\n", s.section);
        if t.mhvtl {
            config.push_str("[library]\nkind = \"mhvtl\"\n\n");
        } else {
            config.push_str(&format!(
                "[library]\nkind = \"sim\"\nconfig_dir = \"{}\"\nlibrary_id = {}\n\n",
                std::fs::canonicalize(t.config_dir)?.display(),
                w.library_id
            ));
        }
        for d in &t.plan.drives {
            config.push_str(&format!("[[drives]]\nname = \"{d}\"\n"));
        }
        let iv = &w.intervals;
        config.push_str(&format!(
            "\n[intervals]\nidle_ms = {}\nheartbeat_ms = {}\n\n[maintenance]\nmount_timeout_s = {}\n",
            iv.idle_ms,
            iv.heartbeat_ms,
            mount_timeout_s(t.clock.factor)
        ));
        for (name, ms) in [
            ("reports", iv.reports_ms),
            ("collect", iv.collect_ms),
            ("cleanup", iv.cleanup_ms),
            ("repack", iv.repack_ms),
        ] {
            config.push_str(&format!("[maintenance.{name}]\ninterval_ms = {ms}\n"));
        }
        if t.mhvtl {
            let skipped = faults.matches("[[library.faults]]").count();
            let line =
                format!("{skipped} drive-down incident(s) not injected: on mhVTL a drive goes down only when it fails");
            if skipped > 0 && !context.contains(&line) {
                context.push(line);
            }
        } else {
            config.push_str(&faults);
        }
        std::fs::write(s.dir.join("config.toml"), config)?;
        queued_counts.push(evs.iter().filter(|e| queues_a_request(e)).count() as u64);
    }
    let wall = Instant::now();
    for s in setups {
        let mut children = Vec::new();
        for (name, args) in [
            ("maintenance", vec!["maintenance".to_string()]),
            ("taped", vec!["taped".to_string()]),
            ("producer", vec!["produce".into(), "--events".into(), s.dir.join("events.jsonl").display().to_string()]),
        ] {
            let mut cmd = Command::new(t.bin);
            cmd.args(&args).arg("--config").arg(s.dir.join("config.toml"));
            // On mhVTL the tape daemon runs on the wall clock, which the others' clock equals.
            if !(t.mhvtl && name == "taped") {
                cmd.args(["--clock", &t.clock.to_string()]);
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(s.dir.join(format!("{name}.out")))?)
                .stderr(std::fs::File::create(s.dir.join(format!("{name}.err")))?)
                .spawn()
                .with_context(|| format!("starting {}", t.bin.display()))?;
            children.push((name.to_string(), child));
        }
        runs.push(Running { backend: s.backend, dir: s.dir.clone(), children });
    }
    let factor = t.clock.factor;
    // The wall deadline: the workload's span and tail at the factor, plus a margin (real drives
    // move real bytes, and a drain waits for the file in flight).
    let margin = if t.mhvtl { 600.0 } else { 60.0 };
    let span = (w.duration + w.tail) as f64 / factor;
    let deadline = Duration::from_secs_f64(span + margin);
    let mut timed_out = false;
    // Samples every `sample_every` simulated seconds on the shared scaled clock.
    let scaled = ScaledClock::new(t.clock);
    let every_ms = (w.sample_every * 1000) as i64;
    let mut next_sample_ms = w.start * 1000;
    let shift = w.start - t.file_start;
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); runs.len()];
    loop {
        if t.stop.load(Ordering::SeqCst) {
            bail!("interrupted (Ctrl-C): the processes were stopped and the namespaces removed");
        }
        // The requests each backend has reported so far (its disk side's report lines).
        let reported: Vec<u64> =
            runs.iter().map(|r| text(&r.dir.join("reports.jsonl")).lines().count() as u64).collect();
        if scaled.now_ms() >= next_sample_ms {
            for (((r, s), out), &done) in runs.iter().zip(setups).zip(samples.iter_mut()).zip(&reported) {
                let taped_out = text(&r.dir.join("taped.out"));
                let mut sample = runtime
                    .block_on(s.sampler.sample(next_sample_ms / 1000, &taped_out, done))
                    .with_context(|| format!("backend {}: sampling", r.backend))?;
                sample.t_s -= shift;
                out.push(sample);
            }
            next_sample_ms += every_ms;
        }
        let mut all = true;
        for ((r, &n), &lines) in runs.iter_mut().zip(&queued_counts).zip(&reported) {
            for (name, c) in r.children.iter_mut().take(2) {
                if let Some(status) = c.try_wait().ok().flatten() {
                    bail!(
                        "backend {}: {name} exited early ({status}); the end of {name}.err:{}\nthe end of {name}.out:{}\n(all in {})",
                        r.backend,
                        tail(&r.dir.join(format!("{name}.err")), 15),
                        tail(&r.dir.join(format!("{name}.out")), 5),
                        r.dir.display()
                    );
                }
            }
            all &= lines >= n;
        }
        // Every request reported: the run is over once the repacks queued have ended too.
        if all && t.repacks_queued > 0 {
            for (r, s) in runs.iter().zip(setups) {
                let repacks =
                    runtime.block_on(s.sampler.db.repacks()).with_context(|| format!("backend {}", r.backend))?;
                all &= repacks.len() as u64 >= t.repacks_queued && repacks.iter().all(|x| x.status.is_final());
            }
        }
        if all {
            break;
        }
        if wall.elapsed() > deadline {
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut played = Vec::new();
    for (((r, &n), samples), s) in runs.iter_mut().zip(&queued_counts).zip(samples).zip(setups) {
        for (_, c) in &r.children {
            sigterm(c);
        }
        let limit = Instant::now() + Duration::from_secs_f64(margin);
        for (name, c) in &mut r.children {
            loop {
                if c.try_wait()?.is_some() {
                    break;
                }
                if Instant::now() > limit {
                    let _ = c.kill();
                    bail!("backend {}: {name} did not exit within {margin:.0} s of SIGTERM", r.backend);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let applied: Vec<Applied> = parse_lines(&text(&r.dir.join("producer.out")), "producer.out")
            .map_err(|e| anyhow::anyhow!("backend {}: {e}", r.backend))?;
        let reports: Vec<ReportLine> = parse_lines(&text(&r.dir.join("reports.jsonl")), "reports.jsonl")
            .map_err(|e| anyhow::anyhow!("backend {}: {e}", r.backend))?;
        let taped_out = text(&r.dir.join("taped.out"));
        let totals = parse_summary_total(&taped_out)
            .with_context(|| format!("backend {}: no summary total line in taped.out", r.backend))?;
        let end = reports.iter().map(|l| l.time).max().unwrap_or(w.start + w.duration as i64);
        let oc = measure(&applied, &reports, &totals, w.start, end);
        let repacks_done = runtime
            .block_on(s.sampler.db.repacks())
            .with_context(|| format!("backend {}: its repacks", r.backend))?
            .iter()
            .filter(|x| x.status == RepackStatus::Complete)
            .count() as u64;
        let mut inv = invariants(&oc, n);
        if t.repacks_queued > 0 {
            inv.push(InvariantCheck {
                name: "every repack queued completed".into(),
                ok: repacks_done == t.repacks_queued,
                detail: format!("{repacks_done} of {} complete", t.repacks_queued),
            });
        }
        inv.push(InvariantCheck {
            name: "finished before the wall deadline".into(),
            ok: !timed_out,
            detail: format!("deadline {:.0} s", deadline.as_secs_f64()),
        });
        let count = |kind: &str, outcome: &str| {
            reports.iter().filter(|l| l.kind == kind && l.outcome == outcome).count() as u64
        };
        let run = BackendRun {
            backend: r.backend.name(),
            wall_s: wall.elapsed().as_secs_f64(),
            time_split: vec![],
            totals: Totals {
                archives_queued: applied.iter().flat_map(|a| &a.requests).filter(|q| q.starts_with("archive:")).count()
                    as u64,
                archived: count("archive", "success"),
                retrieves_queued: applied
                    .iter()
                    .flat_map(|a| &a.requests)
                    .filter(|q| q.starts_with("retrieve:"))
                    .count() as u64,
                retrieved: count("retrieve", "success"),
                failed: oc.failed,
                duplicates: oc.duplicate_count,
                repacks_queued: applied.iter().filter(|a| a.op == "queue_repack" && a.errors.is_empty()).count() as u64,
                repacks_done,
                mounts: oc.mounts,
                bytes: totals.bytes,
            },
            samples,
            archive_latency: summary_of(&oc.archive_latency),
            retrieve_latency: summary_of(&oc.retrieve_latency),
            invariants: inv,
        };
        context.push(format!(
            "{}: mounts/h {:.2}, files/mount {:.2}, span {} s",
            r.backend, oc.mounts_per_hour, oc.files_per_mount, oc.span_s
        ));
        for name in ["taped", "maintenance"] {
            let out = text(&r.dir.join(format!("{name}.out")));
            if let (n @ 1.., Some(first)) = failures_said(&out) {
                context.push(format!(
                    "{}: {name} wrote {n} line(s) of failure and went on; the first: {first}",
                    r.backend
                ));
            }
        }
        played.push(Played { run, outcome: oc });
    }
    Ok(played)
}

#[cfg(test)]
#[path = "e2e_processes_tests.rs"]
mod tests;
