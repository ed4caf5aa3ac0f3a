//! Shared pieces of the taped tests: configurations over the committed samples, a daemon on a
//! fresh backend namespace, and workload helpers.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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
