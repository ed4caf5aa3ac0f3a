//! The workload of an end-to-end run: a plain YAML file (`compat/workloads/*.yml`) read with
//! `deny_unknown_fields`, checked, and named errors (the file, the line and the field).
//!
//! A workload names its seed, how long requests arrive, the catalogue's VOs, pools, storage
//! classes, routes, mount policies and rules (the scenario files' `catalogue:` schema, without
//! tapes and drives: those come from the library's configuration), which of the library's
//! cartridges go to which pool (and which already hold files), the request flows (archive or
//! retrieve, an arrival process, a size distribution) and the incidents (a drive down, a tape
//! disabled, a tape full, a repack). [`crate::generate`] turns it into timed events.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tapesched_scenario::model::CatalogueSpec;

/// 2026-01-01T00:00:00Z, the default simulated start.
pub const DEFAULT_START: i64 = 1_767_225_600;

/// A bad workload: the file, the line when known, and what is wrong (naming the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct WorkloadError {
    /// The workload file.
    pub path: PathBuf,
    /// The line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// An end-to-end workload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Its name (the report's title).
    pub name: String,
    /// The seed of every random choice.
    pub seed: u64,
    /// Simulated start, Unix seconds (default 2026-01-01T00:00:00Z).
    #[serde(default = "default_start")]
    pub start: i64,
    /// Seconds during which requests arrive.
    pub duration: u64,
    /// Seconds after the arrivals that the run may go on to finish the work (default 1 day).
    #[serde(default = "default_tail")]
    pub tail: u64,
    /// Arrival times are rounded up to a multiple of this many seconds, and the requests of one
    /// instant queued in one call (default 1).
    #[serde(default = "one")]
    pub arrival_tick: u64,
    /// The library id of `device.conf` (default 10).
    #[serde(default = "default_library_id")]
    pub library_id: u32,
    /// The logical library of every drive and tape (default `lib`; created if the catalogue
    /// section has none).
    #[serde(default = "default_logical_library")]
    pub logical_library: String,
    /// Seconds between two samples of each backend (default 300).
    #[serde(default = "default_sample")]
    pub sample_every: u64,
    /// Batches of the tape daemon.
    #[serde(default)]
    pub batch: Batch,
    /// Intervals of the tape daemon and maintenance passes.
    #[serde(default)]
    pub intervals: Intervals,
    /// The catalogue (scenario `catalogue:` schema, no `tapes`, `drives` or `files`).
    pub catalogue: CatalogueSpec,
    /// Which of the library's cartridges go to which pool, in barcode order.
    pub tapes: Vec<TapeGroup>,
    /// The request flows.
    pub flows: Vec<Flow>,
    /// Incidents at given times.
    #[serde(default)]
    pub incidents: Vec<Incident>,
}

fn default_start() -> i64 {
    DEFAULT_START
}
fn default_tail() -> u64 {
    86_400
}
fn one() -> u64 {
    1
}
fn default_library_id() -> u32 {
    10
}
fn default_logical_library() -> String {
    "lib".into()
}
fn default_sample() -> u64 {
    300
}

/// The tape daemon's batches.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Batch {
    /// Files per batch (default 4000).
    pub max_files: u64,
    /// Bytes per batch (default 80 GB).
    pub max_bytes: u64,
}

impl Default for Batch {
    fn default() -> Self {
        Batch { max_files: 4000, max_bytes: 80_000_000_000 }
    }
}

/// Intervals, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Intervals {
    /// An idle drive asks for a mount again after this long (default 60 s).
    pub idle_ms: u64,
    /// The tape daemon's heartbeat, of itself and every mount it holds (default 60 s).
    pub heartbeat_ms: u64,
    /// Report delivery by the disk side (default 10 s).
    pub reports_ms: u64,
    /// Garbage collection pass (default 60 s).
    pub collect_ms: u64,
    /// Retrieve-queue cleanup pass (default 60 s).
    pub cleanup_ms: u64,
    /// Repack expansion and repack report pass (default 60 s).
    pub repack_ms: u64,
}

impl Default for Intervals {
    fn default() -> Self {
        Intervals {
            idle_ms: 60_000,
            heartbeat_ms: 60_000,
            reports_ms: 10_000,
            collect_ms: 60_000,
            cleanup_ms: 60_000,
            repack_ms: 60_000,
        }
    }
}

/// Some of the library's cartridges, given to one pool.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapeGroup {
    /// The pool.
    pub tape_pool: String,
    /// How many cartridges (the next ones in barcode order).
    pub count: u32,
    /// Files already on each of these tapes (retrieve flows recall them).
    #[serde(default)]
    pub prefill: Option<Prefill>,
}

/// Files already on each tape of a group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prefill {
    /// Files per tape.
    pub files: u64,
    /// Size of each file, bytes.
    pub size: u64,
    /// Their storage class.
    pub storage_class: String,
}

/// A stream of requests.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// Its name (reports, destination URLs).
    pub name: String,
    /// Archive or retrieve.
    pub kind: FlowKind,
    /// Archive: the storage class.
    #[serde(default)]
    pub storage_class: Option<String>,
    /// Retrieve: recall files prefilled on the tapes of this pool.
    #[serde(default)]
    pub tape_pool: Option<String>,
    /// The requester (default `e2e`/`e2e`): the mount rules see it.
    #[serde(default)]
    pub requester: Option<RequesterSpec>,
    /// When requests arrive (`{steady: {...}}`, `{bursts: {...}}` or `{campaign: {...}}`).
    #[serde(with = "serde_yaml::with::singleton_map_recursive")]
    pub arrival: Arrival,
    /// Archive: file sizes (`{fixed: N}`, `{uniform: {...}}` or `{lognormal: {...}}`).
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    pub size: Option<SizeDist>,
}

/// A requester.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequesterSpec {
    /// User.
    pub name: String,
    /// Group.
    pub group: String,
}

/// What a flow asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowKind {
    /// New files to archive.
    Archive,
    /// Recalls of files on tape.
    Retrieve,
}

/// An arrival process; times in seconds from the start.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Arrival {
    /// A Poisson process of `per_hour` requests an hour, between `from` and `until` (default:
    /// the whole duration).
    Steady {
        /// Mean requests per hour.
        per_hour: f64,
        /// Start, seconds (default 0).
        #[serde(default)]
        from: Option<u64>,
        /// End, seconds (default: the workload's duration).
        #[serde(default)]
        until: Option<u64>,
    },
    /// Every `every` seconds from `first`, `count` requests spread uniformly over `spread` seconds.
    Bursts {
        /// Seconds between bursts.
        every: u64,
        /// Requests per burst.
        count: u64,
        /// Seconds a burst lasts.
        #[serde(default)]
        spread: u64,
        /// The first burst, seconds (default 0).
        #[serde(default)]
        first: u64,
    },
    /// One campaign (a nightly recall): `count` requests spread uniformly over `over` seconds from `at`.
    Campaign {
        /// Start, seconds.
        at: u64,
        /// Requests.
        count: u64,
        /// Seconds it lasts.
        over: u64,
    },
}

/// A file-size distribution, bytes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SizeDist {
    /// Every file this size.
    Fixed(u64),
    /// Uniform between `min` and `max`.
    Uniform {
        /// Smallest.
        min: u64,
        /// Largest.
        max: u64,
    },
    /// Log-normal with this median and shape `sigma`, clipped to `[min, max]`.
    Lognormal {
        /// Median, bytes.
        median: u64,
        /// Shape (standard deviation of the logarithm).
        sigma: f64,
        /// Smallest (default 1).
        #[serde(default = "one")]
        min: u64,
        /// Largest (default 2^40).
        #[serde(default = "tib")]
        max: u64,
    },
}

fn tib() -> u64 {
    1 << 40
}

/// Something that happens to the library or the catalogue at a given time: `at` and exactly one
/// of the other fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    /// When, seconds from the start.
    pub at: u64,
    /// This drive's next library operation fails: it goes Down.
    #[serde(default)]
    pub drive_down: Option<String>,
    /// This tape is disabled in the catalogue (never mounted).
    #[serde(default)]
    pub tape_disabled: Option<String>,
    /// This tape is marked full in the catalogue.
    #[serde(default)]
    pub tape_full: Option<String>,
    /// This tape goes to REPACKING and a `move` repack of it is queued.
    #[serde(default)]
    pub repack: Option<RepackIncident>,
}

/// A repack incident.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepackIncident {
    /// The tape.
    pub vid: String,
    /// The mount policy of its recalls and re-archives.
    pub mount_policy: String,
}

impl Incident {
    /// What the incident does; `None` unless exactly one kind is given.
    pub fn what(&self) -> Option<IncidentKind> {
        let mut kinds = Vec::new();
        if let Some(d) = &self.drive_down {
            kinds.push(IncidentKind::DriveDown(d.clone()));
        }
        if let Some(v) = &self.tape_disabled {
            kinds.push(IncidentKind::TapeDisabled(v.clone()));
        }
        if let Some(v) = &self.tape_full {
            kinds.push(IncidentKind::TapeFull(v.clone()));
        }
        if let Some(r) = &self.repack {
            kinds.push(IncidentKind::Repack { vid: r.vid.clone(), mount_policy: r.mount_policy.clone() });
        }
        (kinds.len() == 1).then(|| kinds.remove(0))
    }
}

/// What an incident does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentKind {
    /// The drive's next library operation fails: it goes Down.
    DriveDown(String),
    /// The tape is disabled in the catalogue (never mounted).
    TapeDisabled(String),
    /// The tape is marked full in the catalogue.
    TapeFull(String),
    /// The tape goes to REPACKING and a `move` repack of it is queued with this mount policy.
    Repack {
        /// The tape.
        vid: String,
        /// The mount policy of its recalls and re-archives.
        mount_policy: String,
    },
}

impl Workload {
    /// Reads and checks a workload file.
    pub fn read(path: &Path) -> Result<Workload, WorkloadError> {
        let text = std::fs::read_to_string(path).map_err(|e| WorkloadError {
            path: path.to_path_buf(),
            line: None,
            message: format!("cannot read the workload file: {e}"),
        })?;
        Workload::parse(&text, path)
    }

    /// Parses and checks a workload (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Workload, WorkloadError> {
        let w: Workload = serde_yaml::from_str(text).map_err(|e| WorkloadError {
            path: path.to_path_buf(),
            line: e.location().map(|l| l.line()),
            message: e.to_string(),
        })?;
        w.check().map_err(|message| WorkloadError { path: path.to_path_buf(), line: None, message })?;
        Ok(w)
    }

    /// The checks serde cannot make, each naming the field.
    fn check(&self) -> Result<(), String> {
        if self.duration == 0 {
            return Err("duration: must be positive".into());
        }
        if self.arrival_tick == 0 || self.sample_every == 0 {
            return Err("arrival_tick and sample_every: must be positive".into());
        }
        if self.batch.max_files == 0 || self.batch.max_bytes == 0 {
            return Err("batch: max_files and max_bytes must be positive".into());
        }
        let iv = &self.intervals;
        for (name, v) in [
            ("idle_ms", iv.idle_ms),
            ("heartbeat_ms", iv.heartbeat_ms),
            ("reports_ms", iv.reports_ms),
            ("collect_ms", iv.collect_ms),
            ("cleanup_ms", iv.cleanup_ms),
            ("repack_ms", iv.repack_ms),
        ] {
            if v == 0 {
                return Err(format!("intervals.{name}: must be positive"));
            }
        }
        let c = &self.catalogue;
        if !c.tapes.is_empty() || !c.drives.is_empty() || !c.files.is_empty() {
            return Err("catalogue: tapes, drives and files come from the library's configuration and `tapes:`; \
                        leave them out"
                .into());
        }
        let pools: Vec<&str> = c.tape_pools.iter().map(|p| p.name.as_str()).collect();
        let classes: Vec<&str> = c.storage_classes.iter().map(|s| s.name.as_str()).collect();
        for (i, g) in self.tapes.iter().enumerate() {
            if !pools.contains(&g.tape_pool.as_str()) {
                return Err(format!("tapes[{i}].tape_pool: {:?} is not a pool of the catalogue", g.tape_pool));
            }
            if g.count == 0 {
                return Err(format!("tapes[{i}].count: must be positive"));
            }
            if let Some(p) = &g.prefill {
                if !classes.contains(&p.storage_class.as_str()) {
                    return Err(format!(
                        "tapes[{i}].prefill.storage_class: {:?} is not a storage class of the catalogue",
                        p.storage_class
                    ));
                }
                if p.size == 0 {
                    return Err(format!("tapes[{i}].prefill.size: must be positive"));
                }
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, f) in self.flows.iter().enumerate() {
            let at = |field: &str| format!("flows[{i}] ({}).{field}", f.name);
            if !names.insert(f.name.as_str()) {
                return Err(format!("{}: the name is used twice", at("name")));
            }
            match f.kind {
                FlowKind::Archive => {
                    let Some(sc) = &f.storage_class else {
                        return Err(format!("{}: an archive flow needs a storage class", at("storage_class")));
                    };
                    if !classes.contains(&sc.as_str()) {
                        return Err(format!("{}: {sc:?} is not a storage class of the catalogue", at("storage_class")));
                    }
                    if f.size.is_none() {
                        return Err(format!("{}: an archive flow needs a size distribution", at("size")));
                    }
                    if f.tape_pool.is_some() {
                        return Err(format!("{}: only retrieve flows name a pool", at("tape_pool")));
                    }
                }
                FlowKind::Retrieve => {
                    let Some(pool) = &f.tape_pool else {
                        return Err(format!(
                            "{}: a retrieve flow needs the pool whose files it recalls",
                            at("tape_pool")
                        ));
                    };
                    if !self
                        .tapes
                        .iter()
                        .any(|g| &g.tape_pool == pool && g.prefill.as_ref().is_some_and(|p| p.files > 0))
                    {
                        return Err(format!("{}: no tape of pool {pool:?} is prefilled with files", at("tape_pool")));
                    }
                    if f.size.is_some() || f.storage_class.is_some() {
                        return Err(format!("{}: a retrieve flow has no size or storage class", at("size")));
                    }
                }
            }
            match &f.arrival {
                Arrival::Steady { per_hour, from, until } => {
                    if !per_hour.is_finite() || *per_hour <= 0.0 {
                        return Err(format!("{}: must be a positive number", at("arrival.steady.per_hour")));
                    }
                    if from.unwrap_or(0) >= until.unwrap_or(self.duration) {
                        return Err(format!("{}: from must be before until", at("arrival.steady")));
                    }
                }
                Arrival::Bursts { every, count, .. } => {
                    if *every == 0 || *count == 0 {
                        return Err(format!("{}: every and count must be positive", at("arrival.bursts")));
                    }
                }
                Arrival::Campaign { count, .. } => {
                    if *count == 0 {
                        return Err(format!("{}: must be positive", at("arrival.campaign.count")));
                    }
                }
            }
            if let Some(s) = &f.size {
                match s {
                    SizeDist::Fixed(0) => return Err(format!("{}: must be positive", at("size.fixed"))),
                    SizeDist::Uniform { min, max } if *min == 0 || min > max => {
                        return Err(format!("{}: need 0 < min <= max", at("size.uniform")))
                    }
                    SizeDist::Lognormal { median, sigma, min, max }
                        if *median == 0 || !sigma.is_finite() || *sigma < 0.0 || *min == 0 || min > max =>
                    {
                        return Err(format!("{}: need median > 0, sigma >= 0, 0 < min <= max", at("size.lognormal")))
                    }
                    _ => {}
                }
            }
        }
        for (i, inc) in self.incidents.iter().enumerate() {
            if inc.at >= self.duration.saturating_add(self.tail) {
                return Err(format!("incidents[{i}].at: {} is after the end of the run", inc.at));
            }
            if inc.what().is_none() {
                return Err(format!(
                    "incidents[{i}]: give exactly one of drive_down, tape_disabled, tape_full, repack"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "
name: t
seed: 1
duration: 60
catalogue:
  disk_instances: [eos]
  virtual_organizations: [{name: vo, read_max_drives: 1, write_max_drives: 1}]
  tape_pools: [{name: p, vo: vo}]
  storage_classes: [{name: sc, nb_copies: 1, vo: vo}]
  archive_routes: [{storage_class: sc, copy_nb: 1, tape_pool: p}]
tapes: [{tape_pool: p, count: 1}]
flows:
  - {name: a, kind: archive, storage_class: sc, arrival: {steady: {per_hour: 60}}, size: {fixed: 10}}
";

    #[test]
    fn a_good_workload_parses() {
        let w = Workload::parse(OK, Path::new("w.yml")).unwrap();
        assert_eq!(w.flows[0].size, Some(SizeDist::Fixed(10)));
        assert_eq!(w.start, DEFAULT_START);
    }

    #[test]
    fn an_unknown_field_is_named_with_its_line() {
        let text = OK.replace("seed: 1", "seed: 1\nsed: 2");
        let e = Workload::parse(&text, Path::new("w.yml")).unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.to_string().contains("unknown field `sed`"), "{e}");
        assert!(e.to_string().starts_with("w.yml:4:"), "{e}");
    }

    #[test]
    fn a_bad_reference_names_the_field() {
        let text = OK.replace("storage_class: sc, arrival", "storage_class: nope, arrival");
        let e = Workload::parse(&text, Path::new("w.yml")).unwrap_err();
        assert!(e.message.contains("flows[0] (a).storage_class") && e.message.contains("nope"), "{e}");
        let text = OK
            .replace("count: 1}", "count: 1, prefill: {files: 1, size: 1, storage_class: sc}}")
            .replace("kind: archive, storage_class: sc", "kind: retrieve, tape_pool: q");
        let e = Workload::parse(&text, Path::new("w.yml")).unwrap_err();
        assert!(e.message.contains("flows[0] (a).tape_pool"), "{e}");
    }
}
