//! Shared pieces of the taped tests: configurations over the committed samples, a daemon on a
//! fresh backend namespace, workload helpers, and a pacer that jumps instead of sleeping.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tapesched_scheduler::clock::ManualClock;
use tapesched_taped::pace::Pacer;
use tokio::sync::watch;

use tapesched_backends::{Backend, OpenBackend};
use tapesched_scheduler::scheduler::{ArchiveSubmission, Scheduler};
use tapesched_scheduler::types::Requester;
use tapesched_taped::{build, Built, Config};

/// The simulated clock's start, seconds.
pub const START: i64 = 1_700_000_000;
/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A configuration text over a sample: library directory and id, catalogue, drives, and extra
/// sections appended.
pub fn config_text(dir: &str, id: u32, catalogue: &str, drives: &[&str], extra: &str) -> String {
    let root = root();
    let mut t = format!(
        "[backend]\nname = \"postgres\"\n\n[catalogue]\nfile = \"{}\"\n\n[library]\nkind = \"sim\"\nconfig_dir = \"{}\"\nlibrary_id = {id}\n\n[intervals]\nidle_ms = 60000\n",
        root.join(catalogue).display(),
        root.join(dir).display()
    );
    for d in drives {
        t.push_str(&format!("\n[[drives]]\nname = \"{d}\"\n"));
    }
    t.push_str(extra);
    t
}

/// A parsed configuration of `text` (as if read from `taped.toml` in the repository root).
pub fn config(text: &str) -> Config {
    Config::parse(text, &root().join("taped.toml")).expect("valid configuration")
}

/// A daemon of `text` on a fresh namespace of `backend`, its events collected.
pub async fn daemon(backend: Backend, text: &str) -> (Built, OpenBackend, Arc<Mutex<Vec<String>>>) {
    let open = backend.open().await.expect("backend");
    let cfg = config(text);
    let mut built = build(&cfg, Some(open.db.clone()), Some(START)).await.expect("daemon");
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    built.daemon.set_on_event(Arc::new(move |l: &str| sink.lock().unwrap().push(l.to_string())));
    (built, open, events)
}

/// A deterministic generator (splitmix64).
pub struct Rng(pub u64);
impl Rng {
    /// The next value below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// Queues `n` archives of `size` bytes (a `disk_file_id` each when `src` gives one).
pub async fn queue_archives(
    s: &Scheduler,
    class: &str,
    sizes: &[u64],
    src: impl Fn(usize) -> Option<String>,
) -> Vec<u64> {
    let subs = sizes
        .iter()
        .enumerate()
        .map(|(i, size)| ArchiveSubmission {
            archive_file_id: None,
            disk_instance: None,
            disk_file_id: src(i),
            requester: Requester { name: "alice".into(), group: "it".into() },
            storage_class: class.into(),
            size: *size,
            created_at: None,
            report_url: None,
            error_report_url: None,
        })
        .collect();
    s.queue_archives(subs).await.expect("queued").into_iter().map(|r| r.expect("queued")).collect()
}

/// A scheduler over PostgreSQL namespace `open` whose collector treats mounts silent for
/// `mount_timeout` seconds as dead, on `clock`, with `like`'s catalogue and configuration (a
/// second process running `db collect --mount-timeout`).
pub async fn pg_collector(
    open: &OpenBackend,
    mount_timeout: i64,
    like: &Scheduler,
    catalogue: Arc<dyn tapesched_scheduler::catalogue::Catalogue>,
    clock: Arc<dyn tapesched_scheduler::clock::Clock>,
) -> Scheduler {
    let url = tapesched_backends::database_url(None).unwrap();
    let config = tapesched_postgres::PgConfig {
        mount_timeout: Some(mount_timeout),
        ..tapesched_postgres::PgConfig::new(url, open.namespace().unwrap())
    };
    let db: Arc<dyn tapesched_scheduler::db::SchedulerDb> =
        Arc::new(tapesched_postgres::PgSchedulerDb::connect(config).await.unwrap());
    Scheduler::new(db, catalogue, clock, like.config().clone())
}

/// The shared state of a daemon built by hand on the simulated library `sim` (its clock
/// stepping the drives) with `scheduler`: sizes only, 80 GB batches, a minute's idle pause and
/// heartbeat, the library's `barcodes`.
pub fn sim_shared(
    scheduler: Arc<Scheduler>,
    sim: &Arc<tapesched_library::sim::SimLibrary>,
    barcodes: std::collections::BTreeMap<String, String>,
) -> tapesched_taped::session::Shared {
    use tapesched_taped::data::DataPath;
    use tapesched_taped::session::{Shared, Timeline};
    Shared {
        scheduler,
        library: sim.clone(),
        timeline: Timeline::Sim(sim.clone()),
        data: DataPath::Sizes,
        batch_files: 4000,
        batch_bytes: 80_000_000_000,
        idle_ms: 60_000,
        heartbeat_ms: 60_000,
        barcodes,
        on_event: None,
        times: Default::default(),
        mounts: Default::default(),
    }
}

/// Jumps to the time waited for (plus `lag_ms`), moving `also` with it; a wait past `stop_ms`
/// fires the cancellation instead and never returns.
pub struct JumpPacer {
    now: AtomicI64,
    lag_ms: i64,
    stop_ms: i64,
    cancel: watch::Sender<bool>,
    /// A clock moved with the pacer (seconds).
    pub also: Option<Arc<ManualClock>>,
    /// Every time waited for, in order.
    pub waits: Mutex<Vec<i64>>,
}

impl JumpPacer {
    /// A pacer at `start_ms` and the cancellation it fires past `stop_ms`.
    pub fn new(start_ms: i64, lag_ms: i64, stop_ms: i64) -> (Arc<JumpPacer>, watch::Receiver<bool>) {
        let (cancel, rx) = watch::channel(false);
        let p =
            JumpPacer { now: AtomicI64::new(start_ms), lag_ms, stop_ms, cancel, also: None, waits: Mutex::default() };
        (Arc::new(p), rx)
    }
}

#[async_trait]
impl Pacer for JumpPacer {
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
    async fn wait_until_ms(&self, t_ms: i64) {
        self.waits.lock().unwrap().push(t_ms);
        if t_ms > self.stop_ms {
            let _ = self.cancel.send(true);
            return std::future::pending().await;
        }
        let now = self.now.fetch_max(t_ms + self.lag_ms, Ordering::SeqCst).max(t_ms + self.lag_ms);
        if let Some(c) = &self.also {
            c.set(now.div_euclid(1000));
        }
    }
}
