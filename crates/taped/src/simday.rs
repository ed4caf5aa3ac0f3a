//! A simulated day of a large tape server, as a measurement: a library of `drives` LTO-9 drives and
//! `tapes` cartridges generated in mhVTL's format with its catalogue ([`write_library`]), `files`
//! archive requests queued up front, then the daemon run hour by hour on the simulated clock with
//! the disk side pumping reports, then drained ([`run`]). It reports the wall time of each part,
//! the process's CPU time, where the daemon's time went ([`crate::timing`]) and whether every
//! file was archived exactly once.
//!
//! The ignored test `crates/taped/tests/bench.rs` and `cargo xtask bench --taped` both run it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tapesched_scheduler::db::SchedulerDb;
use tapesched_scheduler::scheduler::ArchiveSubmission;
use tapesched_scheduler::types::Requester;

use crate::timing::OpSplit;
use crate::workload::DiskSide;
use crate::{build, Config, SetupError};

/// The simulated clock's start, seconds.
pub const START: i64 = 1_700_000_000;
const HOUR_MS: i64 = 3_600_000;
/// Requests per `queue_archives` call.
const QUEUE_CHUNK: usize = 10_000;

/// The size of a simulated day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimDay {
    /// Drives (LTO-9), at most 999.
    pub drives: usize,
    /// Cartridges (LTO-9, 18 TB), at most 99 999.
    pub tapes: usize,
    /// Archive requests queued before the day starts.
    pub files: usize,
    /// Size of each file, bytes.
    pub file_size: u64,
    /// The idle drives' polling interval, ms.
    pub idle_ms: u64,
    /// Simulated hours run before the drain.
    pub hours: i64,
}

impl SimDay {
    /// 100 drives, 400 tapes, `files` files of 2 GB, polling every 60 s, 24 hours.
    pub fn hundred_drives(files: usize) -> Self {
        SimDay { drives: 100, tapes: 400, files, file_size: 2_000_000_000, idle_ms: 60_000, hours: 24 }
    }
}

/// What a simulated day measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimDayReport {
    /// The day's size.
    pub day: SimDay,
    /// The backend's name.
    pub backend: String,
    /// Wall time of queueing every request, seconds.
    pub queue_seconds: f64,
    /// CPU time of this process while queueing, seconds.
    pub queue_cpu_seconds: f64,
    /// Wall time of the day (drives and disk side) and the drain, seconds.
    pub run_seconds: f64,
    /// CPU time of this process during the day and the drain, seconds.
    pub run_cpu_seconds: f64,
    /// Wall time of the disk side's report pumping (inside `run_seconds`), seconds.
    pub pump_seconds: f64,
    /// This process's CPU per file during the day (`run_cpu_seconds / files`), microseconds; the
    /// database server's CPU is not included.
    pub cpu_per_file_us: f64,
    /// Files whose archive success was reported.
    pub archived: u64,
    /// Mounts.
    pub mounts: u64,
    /// Success reports received twice.
    pub duplicates: u64,
    /// Failure reports.
    pub failures: usize,
    /// True when every queued file was reported archived exactly once.
    pub every_file_once: bool,
    /// Where the drives' time went.
    pub split: Vec<OpSplit>,
}

/// CPU time of this process (user + system), seconds, from `/proc/self/stat` (0 where it cannot
/// be read).
pub fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    ticks / 100.0
}

/// Writes `device.conf`, `library_contents.50` and `catalogue.yml` of `day` into `dir`: one
/// library (id 50) with drives `D001`.. and cartridges `B00001L9`.. in slots 1.., as many empty
/// slots as drives; the catalogue has one VO, pool, storage class (`sc_pool_a`, one copy) and
/// mount policy, every tape in the pool. Returns the catalogue's path.
pub fn write_library(dir: &Path, day: &SimDay) -> Result<PathBuf, SetupError> {
    let bad =
        |m: String| SetupError::from(crate::config::ConfigError { path: dir.to_path_buf(), line: None, message: m });
    if day.drives == 0 || day.drives > 999 || day.tapes == 0 || day.tapes > 99_999 {
        return Err(bad(format!(
            "a simulated day needs 1 to 999 drives and 1 to 99 999 tapes, not {} and {}",
            day.drives, day.tapes
        )));
    }
    let mut conf = String::from(
        "VERSION: 5\n\nLibrary: 50 CHANNEL: 00 TARGET: 00 LUN: 00\n Vendor identification: IBM\n Product identification: 03584L32\n Unit serial number: LIB50\n",
    );
    let mut contents = String::from("VERSION: 2\n\n");
    let mut catalogue = format!(
        "disk_instances: [eos]\nvirtual_organizations:\n  - {{name: vo, read_max_drives: {d}, write_max_drives: {d}}}\n\
         logical_libraries: [{{name: lib}}]\ntape_pools: [{{name: pool_a, vo: vo}}]\n\
         storage_classes: [{{name: sc_pool_a, nb_copies: 1, vo: vo}}]\n\
         archive_routes: [{{storage_class: sc_pool_a, copy_nb: 1, tape_pool: pool_a}}]\n\
         mount_policies:\n  - {{name: mp, archive_priority: 1, archive_min_request_age: 300, retrieve_priority: 2, retrieve_min_request_age: 300}}\n\
         mount_rules: [{{kind: requester, disk_instance: eos, name: default, mount_policy: mp}}]\ntapes:\n",
        d = day.drives
    );
    let mut drives = String::from("drives:\n");
    for i in 1..=day.drives {
        let _ = write!(
            conf,
            "\nDrive: {} CHANNEL: 00 TARGET: {i:02} LUN: 00\n Library ID: 50 Slot: {i:02}\n Vendor identification: IBM\n Product identification: ULT3580-TD9\n Unit serial number: D{i:03}\n",
            1000 + i
        );
        let _ = writeln!(contents, "Drive {i}: D{i:03}");
        let _ = writeln!(drives, "  - {{name: D{i:03}, logical_library: lib}}");
    }
    contents.push_str("\nPicker 1:\n\n");
    for t in 1..=day.tapes {
        let _ = writeln!(contents, "Slot {t}: B{t:05}L9");
        let _ = writeln!(
            catalogue,
            "  - {{vid: B{t:05}, tape_pool: pool_a, logical_library: lib, capacity_bytes: 18000000000000}}"
        );
    }
    for t in day.tapes + 1..=day.tapes + day.drives {
        let _ = writeln!(contents, "Slot {t}:");
    }
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| bad(format!("cannot write {name}: {e}")))
    };
    write("device.conf", &conf)?;
    write("library_contents.50", &contents)?;
    let path = dir.join("catalogue.yml");
    write("catalogue.yml", &(catalogue + &drives))?;
    Ok(path)
}

/// The daemon's configuration of `day` over the library [`write_library`] wrote in `dir`, on
/// `backend` (its name; the database the run is given replaces it).
pub fn config_text(dir: &Path, day: &SimDay, backend: &str) -> String {
    let mut t = format!(
        "[backend]\nname = \"{backend}\"\n\n[catalogue]\nfile = \"{}\"\n\n[library]\nkind = \"sim\"\nconfig_dir = \"{}\"\nlibrary_id = 50\n\n[intervals]\nidle_ms = {}\n",
        dir.join("catalogue.yml").display(),
        dir.display(),
        day.idle_ms
    );
    for i in 1..=day.drives {
        let _ = write!(t, "\n[[drives]]\nname = \"D{i:03}\"\n");
    }
    t
}

/// Runs `day` on `db` (a fresh namespace of the backend `backend`) with the library written in
/// `dir`: queues every file, runs the day hour by hour (the disk side pumping reports after each
/// hour), drains, and reports. `progress` receives a line after each simulated hour.
pub async fn run(
    day: &SimDay,
    backend: &str,
    db: Arc<dyn SchedulerDb>,
    dir: &Path,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<SimDayReport, SetupError> {
    write_library(dir, day)?;
    let text = config_text(dir, day, backend);
    let config = Config::parse(&text, &dir.join("taped.toml"))?;
    let mut built = build(&config, Some(db), Some(START)).await?;
    let s = built.scheduler.clone();
    let (wall0, cpu0) = (Instant::now(), process_cpu_seconds());
    let mut queued = Vec::with_capacity(day.files);
    let requester = Requester { name: "alice".into(), group: "it".into() };
    for chunk in 0..day.files.div_ceil(QUEUE_CHUNK) {
        let n = (day.files - chunk * QUEUE_CHUNK).min(QUEUE_CHUNK);
        let subs = (0..n)
            .map(|_| ArchiveSubmission {
                archive_file_id: None,
                disk_instance: None,
                disk_file_id: None,
                requester: requester.clone(),
                storage_class: "sc_pool_a".into(),
                size: day.file_size,
                created_at: None,
                report_url: None,
                error_report_url: None,
            })
            .collect();
        for r in s.queue_archives(subs).await? {
            queued.push(r?);
        }
    }
    let (queue_seconds, queue_cpu_seconds) = (wall0.elapsed().as_secs_f64(), process_cpu_seconds() - cpu0);
    progress(&format!("queued {} files in {queue_seconds:.1} s", queued.len()));
    let (wall1, cpu1) = (Instant::now(), process_cpu_seconds());
    let mut disk = DiskSide::new(false);
    let mut pump_seconds = 0.0;
    for hour in 1..=day.hours {
        built.daemon.run_until(START * 1000 + hour * HOUR_MS, None).await?;
        let p0 = Instant::now();
        disk.pump(&s).await?;
        pump_seconds += p0.elapsed().as_secs_f64();
        progress(&format!("hour {hour}: {} archived, {:.1} s", disk.archived.len(), wall1.elapsed().as_secs_f64()));
    }
    built.daemon.drain().await?;
    let p0 = Instant::now();
    disk.pump(&s).await?;
    pump_seconds += p0.elapsed().as_secs_f64();
    let (run_seconds, run_cpu_seconds) = (wall1.elapsed().as_secs_f64(), process_cpu_seconds() - cpu1);
    let total = built.daemon.summary().total();
    queued.sort_unstable();
    let every_file_once = disk.duplicates == 0 && disk.archived.iter().copied().eq(queued.iter().copied());
    Ok(SimDayReport {
        day: day.clone(),
        backend: backend.to_string(),
        queue_seconds,
        queue_cpu_seconds,
        run_seconds,
        run_cpu_seconds,
        pump_seconds,
        cpu_per_file_us: if day.files > 0 { run_cpu_seconds * 1e6 / day.files as f64 } else { 0.0 },
        archived: total.archived,
        mounts: total.mounts,
        duplicates: disk.duplicates,
        failures: disk.failures.len(),
        every_file_once,
        split: built.daemon.shared().times.split(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_library_and_configuration_parse() {
        let dir = std::env::temp_dir().join(format!("taped-simday-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let day = SimDay { drives: 3, tapes: 5, ..SimDay::hundred_drives(10) };
        let cat = write_library(&dir, &day).unwrap();
        assert!(std::fs::read_to_string(&cat).unwrap().contains("vid: B00005"));
        let config = Config::parse(&config_text(&dir, &day, "postgres"), &dir.join("taped.toml")).unwrap();
        assert_eq!(config.drive_names(), vec!["D001", "D002", "D003"]);
        let lib = config.sim_library(Arc::new(tapesched_library::sim::SimClock::new(START))).unwrap();
        assert_eq!(lib.drive_names().len(), 3);
        let err = write_library(&dir, &SimDay { drives: 0, ..day }).unwrap_err();
        assert!(err.to_string().contains("1 to 999 drives"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
