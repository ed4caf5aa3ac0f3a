//! The configuration of one tape server: a TOML file naming the scheduler backend and its
//! servers, the catalogue, the library, the drives, the batch limits, the intervals and the data
//! path, read by `tapesched taped --config FILE` and checked by `tapesched config check FILE`.
//!
//! ```toml
//! [backend]
//! name = "postgres"              # objectstore-memory | objectstore-redis | postgres
//! # database_url = "postgresql://postgres@127.0.0.1:5432/postgres"   (default: as every command)
//! schema = "tapesched"           # postgres
//! # redis_url = "redis://127.0.0.1:6379"; redis_prefix = "tapesched:" (objectstore-redis)
//!
//! [catalogue]
//! file = "catalogue.yaml"        # a YAML catalogue (as `catalogue load`), or: postgres = true
//!
//! [library]
//! kind = "sim"                   # sim | mhvtl
//! config_dir = "../mhvtl/lto9"   # sim: device.conf + library_contents.<library_id>
//! library_id = 10
//! # [[library.faults]]           # sim: a fault at a simulated time (seconds since the epoch)
//! # at = 1767229200; drive = "ULT11"; kind = "drive_error"  # or stuck_on_unload; message = "..."
//!
//! [[drives]]
//! name = "ULT11"
//!
//! [batch]                        # defaults: 4000 files, 80 GB
//! max_files = 4000
//! max_bytes = 80_000_000_000
//!
//! [intervals]
//! idle_ms = 60_000               # a drive with nothing to mount asks again after this
//! heartbeat_ms = 60_000          # the daemon's heartbeat (itself and all its mounts)
//!
//! [data]
//! mode = "sizes"                 # sizes (the simulator: no byte moves) | files
//! ```
//!
//! Relative paths are relative to the directory of the configuration file. Unknown keys are
//! refused with their line ([`Config::parse`]); [`check`] goes further and opens the library
//! files and the catalogue to check that every drive is in the library and in a logical library of
//! the catalogue, and that the catalogue and the library agree on the cartridges.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tapesched_library::media::Media;
use tapesched_library::sim::{Fault, SimClock, SimLibrary};
use tapesched_scheduler::catalogue::CatalogueSnapshot;
use toml::Spanned;

/// Default batch size in files (CTA's `BulkRequestMigrationMaxFiles`).
pub const DEFAULT_BATCH_FILES: u64 = 4000;
/// Default batch size in bytes: 80 GB (CTA's `BulkRequestMigrationMaxBytes`).
pub const DEFAULT_BATCH_BYTES: u64 = 80_000_000_000;
/// Default pause of a drive that found nothing to mount, in milliseconds.
pub const DEFAULT_IDLE_MS: u64 = 60_000;

/// A configuration error: the file, the line when known (1-based), and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file the error is about.
    pub path: PathBuf,
    /// The line, when the error is about one.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn new(path: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        ConfigError { path: path.to_path_buf(), line, message: message.into() }
    }
}

/// One tape server's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The scheduler backend.
    pub backend: BackendConfig,
    /// The catalogue.
    pub catalogue: CatalogueConfig,
    /// The scheduler's decision settings.
    #[serde(default)]
    pub scheduler: SchedulerSection,
    /// The library.
    pub library: LibraryConfig,
    /// The drives this server runs.
    pub drives: Vec<DriveConfig>,
    /// Batch limits.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Intervals.
    #[serde(default)]
    pub intervals: Intervals,
    /// The data path.
    #[serde(default)]
    pub data: DataConfig,
    /// Work queued at the start of a simulated run (`taped --simulate-for`), sim library only.
    #[serde(default)]
    pub workload: Option<WorkloadConfig>,
    /// The maintenance daemon's section: accepted, so that one file serves both daemons, and
    /// checked by `config check` ([`crate::maintenance::MaintenanceConfig`]); taped ignores it.
    #[serde(default, rename = "maintenance")]
    _maintenance: Option<toml::Value>,
    /// The file the configuration was read from (relative paths are resolved against its
    /// directory); set by [`Config::parse`].
    #[serde(skip)]
    pub source: PathBuf,
    /// The text it was read from (for line numbers).
    #[serde(skip)]
    pub(crate) text: String,
}

/// `[backend]`: which scheduler backend, and where its servers are (as the `--backend`,
/// `--database-url`, `--schema`, `--redis-url`, `--redis-prefix` options of other commands).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// `objectstore-memory` (one process only), `objectstore-redis` or `postgres`.
    pub name: Spanned<String>,
    /// PostgreSQL server (default: `TAPESCHED_DATABASE_URL`, then 127.0.0.1:5432, ...).
    #[serde(default)]
    pub database_url: Option<String>,
    /// Schema of the scheduler instance (postgres; the Postgres catalogue's too).
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Redis server (default: `TAPESCHED_REDIS_URL`, then 127.0.0.1:6379, ...).
    #[serde(default)]
    pub redis_url: Option<String>,
    /// Key prefix of the objectstore deployment.
    #[serde(default = "default_prefix")]
    pub redis_prefix: String,
    /// Lock lease of the objectstore on Redis, in milliseconds.
    #[serde(default)]
    pub lock_lease_ms: Option<u64>,
}

fn default_schema() -> String {
    "tapesched".into()
}
fn default_prefix() -> String {
    "tapesched:".into()
}

/// `[catalogue]`: a YAML catalogue file, or the shared Postgres catalogue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueConfig {
    /// A catalogue file (or a scenario whose `catalogue:` section is used), held in memory by
    /// this process.
    #[serde(default)]
    pub file: Option<Spanned<PathBuf>>,
    /// The catalogue shared by every process in the backend's PostgreSQL schema (loaded with
    /// `tapesched catalogue load`).
    #[serde(default)]
    pub postgres: bool,
}

/// `[scheduler]`: the decision settings this server's scheduler decides with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSection {
    /// Files that warrant a mount on their own.
    pub min_files_to_warrant_mount: u64,
    /// Bytes that warrant a mount on their own.
    pub min_bytes_to_warrant_mount: u64,
    /// The scheduler backend name the drives are configured with in the catalogue.
    pub backend_name: String,
}

impl Default for SchedulerSection {
    fn default() -> Self {
        let d = tapesched_scheduler::decision::SchedulerConfig::default();
        SchedulerSection {
            min_files_to_warrant_mount: d.min_files_to_warrant_mount,
            min_bytes_to_warrant_mount: d.min_bytes_to_warrant_mount,
            backend_name: d.backend_name,
        }
    }
}

/// Which library implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LibraryKind {
    /// The simulated library on virtual time.
    Sim,
    /// The real devices of an mhVTL host.
    Mhvtl,
}

/// `[library]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibraryConfig {
    /// `sim` or `mhvtl`.
    pub kind: LibraryKind,
    /// sim: the directory holding `device.conf` and `library_contents.<library_id>`.
    #[serde(default)]
    pub config_dir: Option<Spanned<PathBuf>>,
    /// sim: the library's id in `device.conf` (default 10).
    #[serde(default = "default_library_id")]
    pub library_id: u32,
    /// sim: the duration of one robot move in milliseconds.
    #[serde(default)]
    pub robot_move_ms: Option<i64>,
    /// sim: faults injected when the library's clock reaches their time (`[[library.faults]]`).
    #[serde(default)]
    pub faults: Vec<FaultConfig>,
}

/// `[[library.faults]]`: a fault the simulated library suffers at a given time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// When, simulated seconds since the Unix epoch.
    pub at: i64,
    /// The drive (one of `[[drives]]`).
    pub drive: Spanned<String>,
    /// What happens (default `drive_error`).
    #[serde(default)]
    pub kind: FaultKind,
    /// `drive_error`: what the drive reports (default "injected drive error").
    #[serde(default)]
    pub message: Option<String>,
}

/// The kinds of `[[library.faults]]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The drive's next operation fails: the tape daemon puts it Down with the message.
    #[default]
    DriveError,
    /// The drive's next unload fails, the cartridge stuck in it: the drive goes Down.
    StuckOnUnload,
}

fn default_library_id() -> u32 {
    10
}

/// `[[drives]]`: one drive this server runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveConfig {
    /// The drive's name: its unit serial number in the simulator, its `nstN` device on mhVTL; the
    /// same name in the catalogue's drives.
    pub name: Spanned<String>,
}

/// `[batch]`: how many jobs a session pops at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Files per batch.
    pub max_files: u64,
    /// Bytes per batch.
    pub max_bytes: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig { max_files: DEFAULT_BATCH_FILES, max_bytes: DEFAULT_BATCH_BYTES }
    }
}

/// `[intervals]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Intervals {
    /// A drive that found nothing to mount asks again after this many milliseconds.
    pub idle_ms: u64,
    /// The daemon records that it and every mount its drives hold are alive this often
    /// (milliseconds, one call for all of them); pops and reports refresh a mount too. The
    /// collector's `--mount-timeout` must be well above it.
    pub heartbeat_ms: u64,
}

/// Default interval of the daemon's heartbeats, in milliseconds.
pub const DEFAULT_HEARTBEAT_MS: u64 = 60_000;

impl Default for Intervals {
    fn default() -> Self {
        Intervals { idle_ms: DEFAULT_IDLE_MS, heartbeat_ms: DEFAULT_HEARTBEAT_MS }
    }
}

/// How the data moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataMode {
    /// No byte moves: sizes and a checksum derived from the file's id (the simulator).
    #[default]
    Sizes,
    /// Archive reads the `file://` source, retrieve writes the `file://` destination; the tape's
    /// bytes are kept under `tape_dir` (the simulated library keeps none).
    Files,
}

/// `[data]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `sizes` or `files`.
    #[serde(default)]
    pub mode: DataMode,
    /// files: where the bytes of the tapes' files are kept (`<tape_dir>/<VID>/<fSeq>`).
    #[serde(default)]
    pub tape_dir: Option<PathBuf>,
}

/// `[workload]`: archive requests queued when a simulated run starts, and the retrieve of each
/// archived file queued once its archive is reported.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadConfig {
    /// Archive requests queued at the start.
    pub archive_files: u64,
    /// Size of each file, bytes.
    pub file_size: u64,
    /// Their storage class.
    pub storage_class: String,
    /// Queue one retrieve per file once its archive is reported.
    #[serde(default)]
    pub retrieve: bool,
}

impl Config {
    /// Parses a configuration (`source` names the file in messages and anchors relative paths).
    /// Syntax errors, unknown keys and values of the wrong type name their line.
    pub fn parse(text: &str, source: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            ConfigError::new(source, line, e.message().to_string())
        })?;
        config.source = source.to_path_buf();
        config.text = text.to_string();
        config.check_shape()?;
        Ok(config)
    }

    /// Reads and parses a configuration file.
    pub fn read(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::new(path, None, format!("cannot read: {e}")))?;
        Config::parse(&text, path)
    }

    /// The line of a spanned value.
    pub fn line<T>(&self, v: &Spanned<T>) -> Option<usize> {
        Some(line_of(&self.text, v.span().start))
    }

    fn err_at<T>(&self, v: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        ConfigError::new(&self.source, self.line(v), message)
    }

    /// A path of the configuration, relative ones resolved against the file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        resolve(&self.source, p)
    }

    /// The drive names, in the file's order.
    pub fn drive_names(&self) -> Vec<String> {
        self.drives.iter().map(|d| d.name.get_ref().clone()).collect()
    }

    /// The checks that need nothing but the file.
    fn check_shape(&self) -> Result<(), ConfigError> {
        let name = self.backend.name.get_ref();
        match tapesched_backends::Backend::from_name(name) {
            Ok(tapesched_backends::Backend::Bridge(_)) => {
                return Err(self.err_at(&self.backend.name, "a bridge backend is not supported by taped"))
            }
            Ok(_) => {}
            Err(e) => return Err(self.err_at(&self.backend.name, e.message)),
        }
        match (&self.catalogue.file, self.catalogue.postgres) {
            (Some(f), true) => return Err(self.err_at(f, "[catalogue]: give `file` or `postgres = true`, not both")),
            (None, false) => {
                return Err(ConfigError::new(
                    &self.source,
                    None,
                    "[catalogue]: give `file = \"...\"` or `postgres = true`",
                ))
            }
            _ => {}
        }
        // The shared catalogue lives in the PostgreSQL database of `[backend]` (its `database_url`
        // and `schema`), beside either backend that processes share.
        if self.catalogue.postgres && !matches!(name.as_str(), "postgres" | "objectstore-redis") {
            return Err(self
                .err_at(&self.backend.name, "the Postgres catalogue needs backend `postgres` or `objectstore-redis`"));
        }
        if self.library.kind == LibraryKind::Sim && self.library.config_dir.is_none() {
            return Err(ConfigError::new(&self.source, None, "[library]: a `sim` library needs `config_dir`"));
        }
        if self.drives.is_empty() {
            return Err(ConfigError::new(&self.source, None, "no [[drives]]: a tape server runs at least one drive"));
        }
        let mut seen = BTreeSet::new();
        for d in &self.drives {
            if !seen.insert(d.name.get_ref().clone()) {
                return Err(self.err_at(&d.name, format!("drive {} is listed twice", d.name.get_ref())));
            }
        }
        if self.intervals.idle_ms == 0 {
            return Err(ConfigError::new(&self.source, None, "[intervals]: idle_ms must be positive"));
        }
        if self.intervals.heartbeat_ms == 0 {
            // A beat every millisecond of simulated time would never let a simulated run end.
            return Err(ConfigError::new(&self.source, None, "[intervals]: heartbeat_ms must be positive"));
        }
        if self.batch.max_files == 0 || self.batch.max_bytes == 0 {
            return Err(ConfigError::new(&self.source, None, "[batch]: max_files and max_bytes must be positive"));
        }
        if self.data.mode == DataMode::Files && self.data.tape_dir.is_none() {
            return Err(ConfigError::new(&self.source, None, "[data]: mode `files` needs `tape_dir`"));
        }
        if !self.library.faults.is_empty() && self.library.kind != LibraryKind::Sim {
            return Err(ConfigError::new(&self.source, None, "[[library.faults]] are for the simulated library only"));
        }
        for f in &self.library.faults {
            if !seen.contains(f.drive.get_ref()) {
                let message = format!("[[library.faults]]: drive {} is not one of [[drives]]", f.drive.get_ref());
                return Err(self.err_at(&f.drive, message));
            }
            if f.kind != FaultKind::DriveError && f.message.is_some() {
                return Err(self.err_at(&f.drive, "[[library.faults]]: `message` is for kind = \"drive_error\" only"));
            }
        }
        if self.workload.is_some() && self.library.kind != LibraryKind::Sim {
            return Err(ConfigError::new(&self.source, None, "[workload] is for the simulated library only"));
        }
        if self.workload.is_some() && self.data.mode == DataMode::Files {
            // Its archives name no source file: every one would fail to read its disk URL.
            return Err(ConfigError::new(
                &self.source,
                None,
                "[workload] queues archives without source files: it needs [data] mode = \"sizes\"",
            ));
        }
        Ok(())
    }

    /// The `[[library.faults]]` as the simulated library's faults, each with its time in
    /// milliseconds since the epoch.
    pub fn faults(&self) -> Vec<(i64, Fault)> {
        self.library
            .faults
            .iter()
            .map(|f| {
                let drive = f.drive.get_ref().clone();
                let fault = match f.kind {
                    FaultKind::DriveError => Fault::DriveError {
                        drive,
                        message: f.message.clone().unwrap_or_else(|| "injected drive error".into()),
                    },
                    FaultKind::StuckOnUnload => Fault::StuckOnUnload { drive },
                };
                (f.at.saturating_mul(1000), fault)
            })
            .collect()
    }

    /// Builds the simulated library the file names, on `clock` (a library file in another
    /// format is an error naming its file and line).
    pub fn sim_library(&self, clock: std::sync::Arc<SimClock>) -> Result<SimLibrary, ConfigError> {
        let dir = self
            .library
            .config_dir
            .as_ref()
            .ok_or_else(|| ConfigError::new(&self.source, None, "[library]: a `sim` library needs `config_dir`"))?;
        let path = self.resolve(dir.get_ref());
        if !path.is_dir() {
            return Err(self.err_at(dir, format!("library directory {} does not exist", path.display())));
        }
        let lib = SimLibrary::from_dir(&path, self.library.library_id, clock)
            .map_err(|e| ConfigError::new(Path::new(&e.source_name), (e.line > 0).then_some(e.line), e.message))?;
        Ok(match self.library.robot_move_ms {
            Some(ms) => lib.with_robot_move_ms(ms),
            None => lib,
        })
    }

    /// Checks the drives and cartridges against the library (its drive names and barcodes) and
    /// the catalogue: every drive in the library and in the catalogue; every tape of the drives'
    /// logical libraries in the library, every data cartridge of the library known to the
    /// catalogue.
    pub fn check_against(
        &self,
        library_drives: &[String],
        barcodes: &[String],
        catalogue: &CatalogueSnapshot,
    ) -> Result<(), ConfigError> {
        let mut libraries = BTreeSet::new();
        for d in &self.drives {
            let name = d.name.get_ref();
            if !library_drives.contains(name) {
                return Err(self.err_at(
                    &d.name,
                    format!("drive {name} is not in the library (its drives: {})", library_drives.join(", ")),
                ));
            }
            let Some(known) = catalogue.drives.get(name) else {
                return Err(self.err_at(&d.name, format!("drive {name} is not in the catalogue's drives")));
            };
            if !catalogue.logical_libraries.contains_key(&known.logical_library) {
                return Err(self.err_at(
                    &d.name,
                    format!("drive {name}: logical library {} is not in the catalogue", known.logical_library),
                ));
            }
            libraries.insert(known.logical_library.clone());
        }
        for b in barcodes {
            if Media::from_barcode(b) == Media::Cleaning {
                continue;
            }
            if !catalogue.tapes.keys().any(|v| vid_matches(v, b)) {
                return Err(ConfigError::new(
                    &self.source,
                    None,
                    format!("cartridge {b} of the library is not a tape the catalogue knows (no VID {})", vid_of(b)),
                ));
            }
        }
        for (vid, tape) in &catalogue.tapes {
            if libraries.contains(&tape.logical_library) && !barcodes.iter().any(|b| vid_matches(vid, b)) {
                return Err(ConfigError::new(
                    &self.source,
                    None,
                    format!(
                        "tape {vid} of logical library {} is not in the library (no barcode {vid} or {vid}Ln)",
                        tape.logical_library
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The VID a barcode stands for: the barcode without its LTO media suffix (`V00101L9` ->
/// `V00101`), as CTA names tapes.
pub fn vid_of(barcode: &str) -> &str {
    match Media::from_barcode(barcode) {
        Media::Lto(_) => &barcode[..barcode.len() - 2],
        _ => barcode,
    }
}

/// Whether a barcode is the cartridge of a VID (the same, or the VID plus its media suffix).
pub fn vid_matches(vid: &str, barcode: &str) -> bool {
    barcode == vid || vid_of(barcode) == vid
}

/// `p`, relative to the directory of the file `source` unless absolute.
pub(crate) fn resolve(source: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    source.parent().map(|d| d.join(p)).unwrap_or_else(|| p.to_path_buf())
}

/// The 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}
