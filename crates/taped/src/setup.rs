//! From a [`Config`] to a running [`Daemon`]: the catalogue loaded, the backend opened, the library
//! built, the drives and cartridges checked ([`check`], what `tapesched config check` runs), and
//! the optional simulated [`WorkloadConfig`] queued.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tapesched_backends::{Backend, Target};
use tapesched_library::sim::{SimClock, SimLibrary};
use tapesched_library::Library;
use tapesched_postgres::PgCatalogue;
use tapesched_scheduler::catalogue::memory::MemoryCatalogue;
use tapesched_scheduler::catalogue::Catalogue;
use tapesched_scheduler::clock::{Clock, SystemClock, Timestamp};
use tapesched_scheduler::db::SchedulerDb;
use tapesched_scheduler::decision::SchedulerConfig;
use tapesched_scheduler::scheduler::{ArchiveSubmission, Scheduler};
use tapesched_scheduler::types::Requester;
use tapesched_scheduler::Error;

use crate::config::{
    line_of, resolve, vid_matches, BackendConfig, CatalogueConfig, Config, ConfigError, LibraryKind, WorkloadConfig,
};
use crate::daemon::Daemon;
use crate::data::DataPath;
use crate::session::{Shared, Timeline};

/// Why a daemon could not be set up: a bad configuration (naming the file and line), or a
/// backend or catalogue error.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The configuration (or a file it names) is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The backend or catalogue failed.
    #[error(transparent)]
    Scheduler(#[from] Error),
}

/// A configured daemon and what a driver needs besides.
pub struct Built {
    /// The daemon.
    pub daemon: Daemon,
    /// The scheduler its drives use.
    pub scheduler: Arc<Scheduler>,
    /// The simulated library, when the configuration names one.
    pub sim: Option<Arc<SimLibrary>>,
}

/// Loads the catalogue the configuration names.
pub async fn catalogue(config: &Config) -> Result<Arc<dyn Catalogue>, SetupError> {
    open_catalogue(&config.catalogue, &config.backend, &config.scheduler.backend_name, &config.source, &config.text)
        .await
}

/// Loads a catalogue from the `[catalogue]` section of the file `source` whose text is `text`
/// (for line numbers); a file catalogue's drives are configured with `backend_name`.
pub(crate) async fn open_catalogue(
    section: &CatalogueConfig,
    backend: &BackendConfig,
    backend_name: &str,
    source: &Path,
    text: &str,
) -> Result<Arc<dyn Catalogue>, SetupError> {
    if section.postgres {
        let url = tapesched_backends::database_url(backend.database_url.as_deref())?;
        return Ok(Arc::new(PgCatalogue::connect(&url, &backend.schema).await?));
    }
    let Some(file) = &section.file else {
        return Err(ConfigError { path: source.to_path_buf(), line: None, message: "no catalogue".into() }.into());
    };
    let path = resolve(source, file.get_ref());
    let line = Some(line_of(text, file.span().start));
    let bad = |message: String| ConfigError { path: source.to_path_buf(), line, message };
    let spec = tapesched_scenario::load_catalogue_file(&path).map_err(|e| bad(format!("catalogue: {e}")))?;
    let (snapshot, files) = tapesched_scenario::catalogue::build(spec.catalogue(), backend_name)
        .map_err(|e| bad(format!("catalogue {}: {e}", path.display())))?;
    Ok(Arc::new(MemoryCatalogue::new(snapshot, files)?))
}

/// Opens the backend the configuration names (objectstore-memory: a fresh one in this process).
pub async fn backend(config: &Config) -> Result<Arc<dyn SchedulerDb>, SetupError> {
    open_backend(&config.backend, "taped", None).await
}

/// Opens the backend of a `[backend]` section, its connections labelled `label`; on PostgreSQL
/// a mount whose heartbeat is older than `mount_timeout` seconds is dead to the collector.
pub(crate) async fn open_backend(
    section: &BackendConfig,
    label: &str,
    mount_timeout: Option<i64>,
) -> Result<Arc<dyn SchedulerDb>, SetupError> {
    let b = Backend::from_name(section.name.get_ref())?;
    if b == Backend::ObjectstoreMemory {
        return Ok(Backend::ObjectstoreMemory.open().await?.db.clone());
    }
    let target = Target {
        database_url: section.database_url.clone(),
        schema: section.schema.clone(),
        redis_url: section.redis_url.clone(),
        redis_prefix: section.redis_prefix.clone(),
        lock_lease: section.lock_lease_ms.map(Duration::from_millis),
        mount_timeout,
        process_label: label.into(),
        ..Target::new(b)
    };
    Ok(tapesched_backends::open(&target).await?)
}

fn scheduler_config(config: &Config) -> SchedulerConfig {
    SchedulerConfig {
        min_files_to_warrant_mount: config.scheduler.min_files_to_warrant_mount,
        min_bytes_to_warrant_mount: config.scheduler.min_bytes_to_warrant_mount,
        backend_name: config.scheduler.backend_name.clone(),
        ..SchedulerConfig::default()
    }
}

/// A library, its timeline, and the simulator behind it when it is one.
type OpenLibrary = (Arc<dyn Library>, Timeline, Option<Arc<SimLibrary>>);

/// The library the configuration names, and its timeline. The simulated library starts at
/// `start` seconds and is driven by the daemon's event loop (no auto-advance, no log).
fn library(config: &Config, start: Timestamp) -> Result<OpenLibrary, SetupError> {
    match config.library.kind {
        LibraryKind::Sim => {
            let clock = Arc::new(SimClock::new(start));
            let lib = Arc::new(config.sim_library(clock)?.with_auto_advance(false).with_log(false));
            Ok((lib.clone(), Timeline::Sim(lib.clone()), Some(lib)))
        }
        LibraryKind::Mhvtl => {
            let lib = tapesched_library::mhvtl::MhvtlLibrary::discover().map_err(|e| ConfigError {
                path: config.source.clone(),
                line: None,
                message: format!("library: {e}"),
            })?;
            Ok((Arc::new(lib), Timeline::Wall, None))
        }
    }
}

/// Checks the configuration against the library and the catalogue (see
/// [`Config::check_against`]) and returns the VID -> barcode map.
pub async fn check_library(
    config: &Config,
    library: &dyn Library,
    catalogue: &dyn Catalogue,
) -> Result<BTreeMap<String, String>, SetupError> {
    let inventory = library.inventory().await.map_err(|e| ConfigError {
        path: config.source.clone(),
        line: None,
        message: format!("library inventory: {e}"),
    })?;
    let names: Vec<String> = inventory.drives.iter().map(|d| d.name.clone()).collect();
    let barcodes = inventory.barcodes();
    let snapshot = catalogue.snapshot().await?;
    config.check_against(&names, &barcodes, &snapshot)?;
    let mut map = BTreeMap::new();
    for vid in snapshot.tapes.keys() {
        if let Some(b) = barcodes.iter().find(|b| vid_matches(vid, b)) {
            map.insert(vid.clone(), b.clone());
        }
    }
    Ok(map)
}

/// `tapesched config check FILE`: parses the file (the `[maintenance]` section as the
/// maintenance daemon reads it too), builds the library, loads the catalogue and checks drives
/// and cartridges; the backend is not opened. Returns a one-line description.
pub async fn check(path: &Path) -> Result<String, SetupError> {
    let config = Config::read(path)?;
    // The maintenance daemon's settings too (its loops, report batch, CA file), when present.
    crate::maintenance::MaintenanceConfig::parse(&config.text, path)?;
    let catalogue = catalogue(&config).await?;
    let (library, _, _) = library(&config, 0)?;
    let barcodes = check_library(&config, &*library, &*catalogue).await?;
    Ok(format!(
        "{}: {} drive(s) ({}), {} tape(s) in the library, backend {}, batches of {} files / {} bytes",
        path.display(),
        config.drives.len(),
        config.drive_names().join(", "),
        barcodes.len(),
        config.backend.name.get_ref(),
        config.batch.max_files,
        config.batch.max_bytes
    ))
}

/// Builds the daemon of a configuration: `db` if given (a test's namespace), else the backend the
/// file names; the simulated library's clock starts at `start` seconds (the wall clock's now
/// when `None`).
pub async fn build(
    config: &Config,
    db: Option<Arc<dyn SchedulerDb>>,
    start: Option<Timestamp>,
) -> Result<Built, SetupError> {
    let catalogue = catalogue(config).await?;
    let start = start.unwrap_or_else(|| SystemClock.now());
    let (library, timeline, sim) = library(config, start)?;
    let barcodes = check_library(config, &*library, &*catalogue).await?;
    let db = match db {
        Some(db) => db,
        None => backend(config).await?,
    };
    let clock: Arc<dyn Clock> = match &sim {
        Some(lib) => lib.clock().clone(),
        None => Arc::new(SystemClock),
    };
    if let (Some(lib), crate::config::DataMode::Sizes) = (&sim, config.data.mode) {
        preload_recorded_files(config, lib, &*catalogue, &barcodes).await?;
    }
    let scheduler = Arc::new(Scheduler::new(db, catalogue, clock, scheduler_config(config)));
    let data_dir = config.data.tape_dir.as_deref().map(|d| config.resolve(d));
    let shared = Shared {
        scheduler: scheduler.clone(),
        library,
        timeline,
        data: DataPath::new(config.data.mode, data_dir.as_deref()),
        batch_files: config.batch.max_files,
        batch_bytes: config.batch.max_bytes,
        idle_ms: config.intervals.idle_ms,
        heartbeat_ms: config.intervals.heartbeat_ms,
        barcodes,
        on_event: None,
        times: Default::default(),
        mounts: Default::default(),
    };
    let mut daemon = Daemon::new(shared, &config.drive_names());
    daemon.schedule_faults(config.faults());
    Ok(Built { daemon, scheduler, sim })
}

/// Puts on each empty cartridge of the simulated library the files the catalogue records on its
/// tape (sizes mode: each file's size and the adler32 of its archive file id, as the data path
/// writes them), so that a simulated library started beside an existing catalogue reads back
/// the files archived before it started. A cartridge already holding files is left as it is; a
/// tape whose files are not numbered 1, 2, 3... in the catalogue is left empty (the daemon then
/// treats it as inconsistent, as it would a real one).
async fn preload_recorded_files(
    config: &Config,
    lib: &SimLibrary,
    catalogue: &dyn Catalogue,
    barcodes: &BTreeMap<String, String>,
) -> Result<(), SetupError> {
    const PAGE: u64 = 10_000;
    let snapshot = catalogue.snapshot().await?;
    for (vid, barcode) in barcodes {
        let Some(tape) = snapshot.tapes.get(vid) else { continue };
        if tape.last_fseq == 0 || lib.cartridge(barcode).map_or(true, |c| c.3 > 0) {
            continue;
        }
        let mut files: Vec<(u64, u32)> = Vec::new();
        let mut after = 0;
        'pages: loop {
            let page = catalogue.tape_files(vid, after, PAGE).await?;
            for f in &page {
                let Some(copy) = f.copies.iter().find(|c| &c.vid == vid) else { continue };
                if copy.fseq != files.len() as u64 + 1 {
                    files.clear();
                    break 'pages;
                }
                files.push((f.size, crate::data::adler32(&f.archive_file_id.to_le_bytes())));
                after = copy.fseq;
            }
            if (page.len() as u64) < PAGE {
                break;
            }
        }
        if !files.is_empty() {
            lib.preload(barcode, &files).map_err(|e| ConfigError {
                path: config.source.clone(),
                line: None,
                message: format!("tape {vid} ({barcode}): its recorded files do not fit the cartridge: {e}"),
            })?;
        }
    }
    Ok(())
}

/// Queues a simulated workload's archive requests; returns their archive file ids.
pub async fn queue_workload(scheduler: &Scheduler, w: &WorkloadConfig) -> Result<Vec<u64>, Error> {
    let requester = Requester { name: "taped-sim".into(), group: "sim".into() };
    let subs = (0..w.archive_files)
        .map(|_| ArchiveSubmission {
            archive_file_id: None,
            disk_instance: None,
            disk_file_id: None,
            requester: requester.clone(),
            storage_class: w.storage_class.clone(),
            size: w.file_size,
            created_at: None,
            report_url: None,
            error_report_url: None,
        })
        .collect();
    scheduler.queue_archives(subs).await?.into_iter().collect()
}
