//! The maintenance daemon (`tapesched maintenance --config FILE`), which CTA runs beside the tape
//! servers: loops, each at its own interval, that deliver reports to the disk side, collect what
//! dead owners left, drain the retrieve queues of tapes leaving service, and expand repacks and
//! process their reports.
//!
//! Its configuration is the tape server's TOML file format ([`crate::config`]): `[backend]`,
//! `[catalogue]` and `[scheduler]` are used; the tape server's own sections (`[library]`,
//! `[[drives]]`, `[batch]`, `[intervals]`, `[data]`, `[workload]`) are accepted, so that one file
//! serves both daemons, and ignored; a `[maintenance]` section sets the loops:
//!
//! ```toml
//! [maintenance]
//! report_batch = 500             # reports delivered per pass at most
//! http_timeout_ms = 10_000       # a report POST gives up after this
//! # tls_ca_file = "ca.pem"       # https: trust these CAs instead of the built-in Mozilla roots
//! mount_timeout_s = 900          # a mount (agent) silent this long is dead to the collector
//!
//! [maintenance.reports]          # each loop: enabled (default true) and interval_ms
//! interval_ms = 10_000
//! [maintenance.collect]
//! interval_ms = 60_000
//! [maintenance.cleanup]
//! interval_ms = 60_000
//! [maintenance.repack]
//! enabled = false
//! ```
//!
//! Report delivery: a `file://PATH` target gets one JSON line appended (request, archive file
//! id, kind, outcome, time), an `http://` or `https://` target a POST of that JSON (a status
//! other than 2xx is a failure; `https://` over rustls, the server's certificate checked against
//! Mozilla's roots built in, or against the CAs of `tls_ca_file` when it is set, a PEM file
//! read when the configuration is); a report without a URL (a failure report with no error URL) has
//! nowhere to go and is recorded as delivered; any other scheme is a failed delivery with its
//! reason. Failures are report retries (`reports_failed`). Delivery is at least once: a report
//! written to its target whose `reports_delivered` then fails is written again at a later pass.
//!
//! Several instances on one backend: a pass of a loop runs only while its instance holds the
//! loop's lease (`SchedulerDb::try_lease`, named `maintenance.<loop>`), taken or renewed before
//! each pass for three intervals (at least 30 s) and released when the loops stop; an instance
//! that finds the lease held by another says so and skips the pass. A long report pass renews
//! its lease between deliveries (once a third of its term has passed) and stops if another
//! instance has taken it meanwhile, so two instances' passes do not overlap; only a single
//! delivery that outlasts the rest of the lease's term could (a report would then be delivered
//! twice: at least once either way).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tapesched_backends::buffer::FsBuffer;
use tapesched_scheduler::clock::{Clock, Timestamp};
use tapesched_scheduler::db::{Outcome, ReportFilter, ReportJob};
use tapesched_scheduler::decision::SchedulerConfig;
use tapesched_scheduler::scheduler::Scheduler;
use tapesched_scheduler::types::RequestId;
use tapesched_scheduler::Error;
use tokio::sync::watch;
use toml::Spanned;

use crate::config::{line_of, resolve, BackendConfig, CatalogueConfig, ConfigError, SchedulerSection};
use crate::setup::{open_backend, open_catalogue, SetupError};

/// Default number of reports delivered per pass.
pub const DEFAULT_REPORT_BATCH: u64 = 500;
/// Default heartbeat age after which the collector takes a mount (or an agent) for dead: 15
/// minutes, fifteen of a tape daemon's default heartbeats.
pub const DEFAULT_MOUNT_TIMEOUT_S: i64 = 900;
/// Default timeout of a report POST, in milliseconds.
pub const DEFAULT_HTTP_TIMEOUT_MS: u64 = 10_000;

/// The maintenance daemon's configuration: the sections of a tape server's file it uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// The scheduler backend.
    pub backend: BackendConfig,
    /// The catalogue.
    pub catalogue: CatalogueConfig,
    /// The scheduler's settings (the backend name the catalogue's drives use).
    #[serde(default)]
    pub scheduler: SchedulerSection,
    /// The loops.
    #[serde(default)]
    pub maintenance: MaintenanceSection,
    // The tape server's sections: accepted, so that one file serves both daemons, and ignored.
    #[serde(default, rename = "library")]
    _library: Option<toml::Value>,
    #[serde(default, rename = "drives")]
    _drives: Option<toml::Value>,
    #[serde(default, rename = "batch")]
    _batch: Option<toml::Value>,
    #[serde(default, rename = "intervals")]
    _intervals: Option<toml::Value>,
    #[serde(default, rename = "data")]
    _data: Option<toml::Value>,
    #[serde(default, rename = "workload")]
    _workload: Option<toml::Value>,
    /// The file the configuration was read from.
    #[serde(skip)]
    pub source: PathBuf,
    #[serde(skip)]
    text: String,
}

/// `[maintenance]`: the loops and their settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaintenanceSection {
    /// Report delivery (default every 10 s).
    pub reports: LoopConfig,
    /// Garbage collection of dead owners (default every 60 s).
    pub collect: LoopConfig,
    /// Retrieve-queue cleanup of tapes leaving service (default every 60 s).
    pub cleanup: LoopConfig,
    /// Repack expansion and repack report processing (default every 60 s).
    pub repack: LoopConfig,
    /// Reports delivered per pass at most (default [`DEFAULT_REPORT_BATCH`]).
    pub report_batch: Option<u64>,
    /// Timeout of a report POST in milliseconds (default [`DEFAULT_HTTP_TIMEOUT_MS`]).
    pub http_timeout_ms: Option<u64>,
    /// A PEM file of the certificate authorities trusted for `https://` report targets, instead
    /// of Mozilla's roots built in (relative to the configuration file's directory).
    pub tls_ca_file: Option<Spanned<PathBuf>>,
    /// The roots `tls_ca_file` holds, read when the configuration is parsed.
    #[serde(skip)]
    pub tls_roots: Option<ureq::tls::RootCerts>,
    /// A mount (PostgreSQL) or an agent (objectstore) whose heartbeat is older than this many
    /// seconds is dead to the collector (as `db collect --mount-timeout`; default
    /// [`DEFAULT_MOUNT_TIMEOUT_S`]). A tape daemon beats every `heartbeat_ms` (default a minute).
    pub mount_timeout_s: Option<i64>,
}

/// One loop's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoopConfig {
    /// Whether the loop runs (default true).
    pub enabled: Option<bool>,
    /// Its interval in milliseconds (at least 1).
    pub interval_ms: Option<Spanned<u64>>,
}

/// The loops of the maintenance daemon, in the order `--once` runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Loop {
    /// Garbage collection of dead owners.
    Collect,
    /// Retrieve-queue cleanup of tapes leaving service.
    Cleanup,
    /// Repack expansion and repack report processing.
    Repack,
    /// Report delivery (last, so that `--once` delivers what the other passes made due).
    Reports,
}

impl Loop {
    /// Every loop, in the order `--once` runs them.
    pub const ALL: [Loop; 4] = [Loop::Collect, Loop::Cleanup, Loop::Repack, Loop::Reports];

    /// Its name (the `[maintenance.NAME]` section, the start of its pass lines).
    pub fn name(self) -> &'static str {
        match self {
            Loop::Collect => "collect",
            Loop::Cleanup => "cleanup",
            Loop::Repack => "repack",
            Loop::Reports => "reports",
        }
    }

    fn default_interval_ms(self) -> u64 {
        match self {
            Loop::Reports => 10_000,
            _ => 60_000,
        }
    }
}

impl MaintenanceSection {
    fn of(&self, l: Loop) -> &LoopConfig {
        match l {
            Loop::Collect => &self.collect,
            Loop::Cleanup => &self.cleanup,
            Loop::Repack => &self.repack,
            Loop::Reports => &self.reports,
        }
    }

    /// Whether loop `l` runs.
    pub fn enabled(&self, l: Loop) -> bool {
        self.of(l).enabled.unwrap_or(true)
    }

    /// Loop `l`'s interval.
    pub fn interval(&self, l: Loop) -> Duration {
        let ms = self.of(l).interval_ms.as_ref().map(|s| *s.get_ref()).unwrap_or(l.default_interval_ms());
        Duration::from_millis(ms)
    }
}

impl MaintenanceConfig {
    /// Parses a configuration; syntax errors, unknown keys, values of the wrong type and zero
    /// intervals name their line.
    pub fn parse(text: &str, source: &Path) -> Result<MaintenanceConfig, ConfigError> {
        let bad = |line, message: String| ConfigError { path: source.to_path_buf(), line, message };
        let mut config: MaintenanceConfig =
            toml::from_str(text).map_err(|e| bad(e.span().map(|s| line_of(text, s.start)), e.message().to_string()))?;
        config.source = source.to_path_buf();
        config.text = text.to_string();
        for l in Loop::ALL {
            if let Some(ms) = &config.maintenance.of(l).interval_ms {
                if *ms.get_ref() == 0 {
                    let line = Some(line_of(text, ms.span().start));
                    return Err(bad(line, format!("maintenance.{}.interval_ms must be at least 1", l.name())));
                }
            }
        }
        if let Some(file) = &config.maintenance.tls_ca_file {
            let line = Some(line_of(text, file.span().start));
            let roots = read_roots(&resolve(source, file.get_ref())).map_err(|m| bad(line, m))?;
            config.maintenance.tls_roots = Some(roots);
        }
        if config.maintenance.mount_timeout_s.is_some_and(|t| t < 1) {
            return Err(bad(None, "maintenance.mount_timeout_s must be at least 1".into()));
        }
        if config.maintenance.report_batch == Some(0) {
            return Err(bad(None, "maintenance.report_batch must be at least 1".into()));
        }
        if !config.catalogue.postgres && config.catalogue.file.is_none() {
            return Err(bad(None, "[catalogue] needs file = \"...\" or postgres = true".into()));
        }
        Ok(config)
    }

    /// Reads and parses a configuration file.
    pub fn read(path: &Path) -> Result<MaintenanceConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        MaintenanceConfig::parse(&text, path)
    }
}

/// The maintenance daemon: a scheduler, the loops' settings and the name it holds leases as.
pub struct Maintenance {
    scheduler: Arc<Scheduler>,
    clock: Arc<dyn Clock>,
    settings: MaintenanceSection,
    agent: ureq::Agent,
    holder: String,
    time_factor: f64,
}

/// A holder name unique to this process and instance: host, pid and a random part.
fn holder_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    format!("{}:{}:{:08x}", host.trim(), std::process::id(), h.finish() as u32)
}

/// Opens the backend (`db` if given: a test's namespace) and catalogue of a configuration and
/// builds its maintenance daemon on `clock`.
pub async fn build(
    config: &MaintenanceConfig,
    db: Option<Arc<dyn tapesched_scheduler::db::SchedulerDb>>,
    clock: Arc<dyn Clock>,
) -> Result<Maintenance, SetupError> {
    let scheduler = open_scheduler(config, db, clock.clone(), "maintd").await?;
    Ok(Maintenance::new(Arc::new(scheduler), clock, config.maintenance.clone()))
}

/// The scheduler of a configuration's `[backend]`, `[catalogue]` and `[scheduler]` sections on
/// `clock` (`db` if given: a test's namespace), its backend connections labelled `label`, with
/// the file-system repack buffer: what the maintenance daemon and a producer
/// (`tapesched produce`) work through.
pub async fn open_scheduler(
    config: &MaintenanceConfig,
    db: Option<Arc<dyn tapesched_scheduler::db::SchedulerDb>>,
    clock: Arc<dyn Clock>,
    label: &str,
) -> Result<Scheduler, SetupError> {
    let catalogue = open_catalogue(
        &config.catalogue,
        &config.backend,
        &config.scheduler.backend_name,
        &config.source,
        &config.text,
    )
    .await?;
    let db = match db {
        Some(db) => db,
        None => {
            let timeout = config.maintenance.mount_timeout_s.unwrap_or(DEFAULT_MOUNT_TIMEOUT_S);
            open_backend(&config.backend, label, Some(timeout)).await?
        }
    };
    let sc = SchedulerConfig {
        min_files_to_warrant_mount: config.scheduler.min_files_to_warrant_mount,
        min_bytes_to_warrant_mount: config.scheduler.min_bytes_to_warrant_mount,
        backend_name: config.scheduler.backend_name.clone(),
        ..SchedulerConfig::default()
    };
    Ok(Scheduler::new(db, catalogue, clock, sc).with_buffer(Arc::new(FsBuffer)))
}

impl Maintenance {
    /// A maintenance daemon on `scheduler`, whose clock is `clock`.
    pub fn new(scheduler: Arc<Scheduler>, clock: Arc<dyn Clock>, settings: MaintenanceSection) -> Self {
        let timeout = Duration::from_millis(settings.http_timeout_ms.unwrap_or(DEFAULT_HTTP_TIMEOUT_MS));
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(roots) = &settings.tls_roots {
            tls = tls.root_certs(roots.clone());
        }
        let agent = ureq::Agent::config_builder().timeout_global(Some(timeout)).tls_config(tls.build()).build().into();
        Maintenance { scheduler, clock, settings, agent, holder: holder_name(), time_factor: 1.0 }
    }

    /// The same daemon holding its leases as `holder` (default: host, pid and a random part).
    pub fn with_holder(mut self, holder: impl Into<String>) -> Self {
        self.holder = holder.into();
        self
    }

    /// The same daemon on a clock running `factor` times faster than the wall clock (a
    /// [`tapesched_scheduler::clock::ScaledClock`]): the loops' intervals are simulated time, so
    /// each waits interval / factor of wall time (at least 1 ms). A factor that is not finite and
    /// above 0 is ignored.
    pub fn with_time_factor(mut self, factor: f64) -> Self {
        if factor.is_finite() && factor > 0.0 {
            self.time_factor = factor;
        }
        self
    }

    /// Loop `l`'s wait between passes on the wall clock: its interval divided by the time factor.
    pub fn wall_interval(&self, l: Loop) -> Duration {
        let ms = (self.settings.interval(l).as_secs_f64() * 1000.0 / self.time_factor).ceil();
        Duration::from_millis((ms.min(u64::MAX as f64) as u64).max(1))
    }

    /// The name it holds leases as.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    fn lease_name(l: Loop) -> String {
        format!("maintenance.{}", l.name())
    }

    /// The term of loop `l`'s lease: three intervals, at least 30 s.
    fn lease_secs(&self, l: Loop) -> i64 {
        ((self.settings.interval(l).as_millis() as u64 * 3).div_ceil(1000) as i64).max(30)
    }

    /// Takes or renews loop `l`'s lease for its term from now.
    async fn lease(&self, l: Loop) -> Result<bool, Error> {
        let now = self.clock.now();
        let secs = self.lease_secs(l);
        self.scheduler.db().try_lease(&Self::lease_name(l), &self.holder, now.saturating_add(secs), now).await
    }

    /// Gives up the leases of every loop it may hold.
    pub async fn release_leases(&self) -> Result<(), Error> {
        for l in Loop::ALL {
            self.scheduler.db().release_lease(&Self::lease_name(l), &self.holder).await?;
        }
        Ok(())
    }

    /// The scheduler it works with.
    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.scheduler
    }

    /// The loops that are enabled, in [`Loop::ALL`] order.
    pub fn enabled(&self) -> Vec<Loop> {
        Loop::ALL.into_iter().filter(|l| self.settings.enabled(*l)).collect()
    }

    /// One pass of loop `l` if this instance holds (or can take) the loop's lease; returns its
    /// line (what it did, or that another instance holds the lease).
    pub async fn pass(&self, l: Loop) -> Result<String, Error> {
        if !self.lease(l).await? {
            return Ok(format!("{}: skipped, another instance holds the lease", l.name()));
        }
        match l {
            Loop::Collect => {
                let n = self.scheduler.garbage_collect().await?;
                Ok(format!("collect: requeued {n} job(s) of dead owners"))
            }
            Loop::Cleanup => {
                let vids = self.scheduler.cleanup_queues().await?;
                Ok(format!("cleanup: {} tape(s) finalised{}", vids.len(), list(&vids)))
            }
            Loop::Repack => {
                let vids = self.scheduler.expand_repacks(None).await?;
                let reports = self.scheduler.process_repack_reports(None).await?;
                Ok(format!(
                    "repack: {} expansion pass(es){}, {} repack report(s) processed",
                    vids.len(),
                    list(&vids),
                    reports.len()
                ))
            }
            Loop::Reports => self.deliver_reports().await.map(|d| d.line()),
        }
    }

    /// One pass of every enabled loop, in [`Loop::ALL`] order (`--once`), then the leases
    /// released: the lines, or the first error.
    pub async fn once(&self) -> Result<Vec<String>, Error> {
        let mut lines = Vec::new();
        for l in self.enabled() {
            lines.push(self.pass(l).await?);
        }
        self.release_leases().await?;
        Ok(lines)
    }

    /// Runs every enabled loop at its interval ([`Maintenance::wall_interval`]; the first pass at
    /// once) until `stop` turns true;
    /// a pass in progress is finished, not cancelled, and the leases are released. Each pass's
    /// line (or error, prefixed `error:`; the loop goes on at its next interval) goes to `say`.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>, say: Arc<dyn Fn(String) + Send + Sync>) {
        let mut tasks = Vec::new();
        for l in self.enabled() {
            let me = self.clone();
            let mut stop = stop.clone();
            let say = say.clone();
            tasks.push(tokio::spawn(async move {
                let mut ticks = tokio::time::interval(me.wall_interval(l));
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    if *stop.borrow() {
                        return;
                    }
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        _ = ticks.tick() => {}
                    }
                    match me.pass(l).await {
                        Ok(line) => say(line),
                        Err(e) => say(format!("error: {}: {e}", l.name())),
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        if let Err(e) = self.release_leases().await {
            say(format!("error: releasing the leases: {e}"));
        }
    }

    /// One report-delivery pass: up to `report_batch` due reports, each delivered to its URL.
    pub async fn deliver_reports(&self) -> Result<Delivery, Error> {
        let now = self.clock.now();
        let max = self.settings.report_batch.unwrap_or(DEFAULT_REPORT_BATCH);
        let db = self.scheduler.db();
        let due = db.reports_due(ReportFilter::All, max, now).await?;
        let mut d = Delivery::default();
        let renew_after = (self.lease_secs(Loop::Reports) / 3).max(1);
        let mut renewed_at = now;
        for report in due {
            // A long pass keeps its lease, or stops once another instance has it.
            let t = self.clock.now();
            if t.saturating_sub(renewed_at) >= renew_after {
                if !self.lease(Loop::Reports).await? {
                    d.lease_lost = true;
                    break;
                }
                renewed_at = t;
            }
            let target = report.url.clone().unwrap_or_default();
            let result = if target.is_empty() {
                d.no_url += 1;
                Ok(())
            } else {
                let line = report_json(&report, now);
                let agent = self.agent.clone();
                tokio::task::spawn_blocking(move || deliver(&agent, &target, &line))
                    .await
                    .unwrap_or_else(|e| Err(format!("delivery task failed: {e}")))
            };
            match result {
                Ok(()) => {
                    db.reports_delivered(&[report.request], now).await?;
                    d.delivered += 1;
                }
                Err(reason) => {
                    db.reports_failed(&[report.request], &reason, now).await?;
                    d.failed.push((report.request, reason));
                }
            }
        }
        Ok(d)
    }
}

/// What a report-delivery pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Reports delivered (including those without a URL).
    pub delivered: u64,
    /// Of those, reports without a URL (nowhere to deliver).
    pub no_url: u64,
    /// Reports whose delivery failed, and why (each counted as a report retry).
    pub failed: Vec<(RequestId, String)>,
    /// The pass stopped early: another instance took the reports loop's lease meanwhile.
    pub lease_lost: bool,
}

impl Delivery {
    /// Its line.
    pub fn line(&self) -> String {
        let mut s = format!(
            "reports: {} delivered ({} without URL), {} failed",
            self.delivered,
            self.no_url,
            self.failed.len()
        );
        if let Some((r, reason)) = self.failed.first() {
            s.push_str(&format!(" (first: {} {reason})", request_text(*r)));
        }
        if self.lease_lost {
            s.push_str("; stopped: another instance took the lease");
        }
        s
    }
}

fn list(vids: &[String]) -> String {
    if vids.is_empty() {
        String::new()
    } else {
        format!(" ({})", vids.join(", "))
    }
}

fn request_text(r: RequestId) -> String {
    match r {
        RequestId::Archive(n) => format!("archive:{n}"),
        RequestId::Retrieve(n) => format!("retrieve:{n}"),
        RequestId::RepackArchive(n) => format!("repack-archive:{n}"),
    }
}

/// The JSON a report target receives: one line.
pub fn report_json(r: &ReportJob, now: Timestamp) -> String {
    let outcome = match r.outcome {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
    };
    serde_json::json!({
        "request": request_text(r.request),
        "archive_file_id": r.archive_file_id,
        "kind": format!("{:?}", r.kind()).to_lowercase(),
        "outcome": outcome,
        "time": now,
    })
    .to_string()
}

/// The certificates of the PEM file at `path`, as the roots https targets are checked against;
/// why not when it cannot be read or holds no certificate.
fn read_roots(path: &Path) -> Result<ureq::tls::RootCerts, String> {
    let what = format!("maintenance.tls_ca_file {}", path.display());
    let pem = std::fs::read(path).map_err(|e| format!("{what}: cannot read: {e}"))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item.map_err(|e| format!("{what}: not PEM: {e}"))? {
            ureq::tls::PemItem::Certificate(c) => certs.push(c),
            _ => return Err(format!("{what}: holds a private key; only certificates belong there")),
        }
    }
    if certs.is_empty() {
        return Err(format!("{what}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

/// Delivers one report line to `url`; the reason when it fails.
fn deliver(agent: &ureq::Agent, url: &str, line: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("bad report URL {url:?}: {e}"))?;
    match parsed.scheme() {
        "file" => {
            use std::io::Write;
            let path = parsed.to_file_path().map_err(|()| format!("report URL {url} names no local file"))?;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            // One write of the whole line, so that concurrent appenders do not interleave.
            f.write_all(format!("{line}\n").as_bytes()).map_err(|e| format!("cannot append to {}: {e}", path.display()))
        }
        "http" | "https" => match agent.post(url).header("Content-Type", "application/json").send(line.as_bytes()) {
            Ok(_) => Ok(()),
            Err(ureq::Error::StatusCode(code)) => Err(format!("{url} answered HTTP {code}")),
            Err(e) => Err(format!("POST {url}: {e}")),
        },
        other => Err(format!("report URL scheme {other}:// is not supported (file, http, https)")),
    }
}
