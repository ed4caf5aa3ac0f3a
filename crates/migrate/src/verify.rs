//! Verify and repair.
//!
//! `verify` reads both backends' exports page by page and merges them in key order: each side is
//! read by a feed of its own, a task that keeps one page ahead of the merge (the two sides'
//! reading and decoding and the comparison thus run at once, on as many threads as the runtime
//! has); a key on one side only is missing or extra, a key on both with items not
//! [`StateItem::same`] is different. Writes go on while it reads (the sides are read at different
//! moments), so every candidate is read again on both sides (`read_state`, both at once) before
//! it is reported, up to `rechecks` times: only a difference seen every time is reported.
//! `repair` makes the other side equal to the authoritative one for named keys: what the
//! authoritative side has is imported (replacing what differs), what it lacks is deleted.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::db::SchedulerDb;
use tapesched_scheduler::state::{StateItem, StateKey};
use tapesched_scheduler::{Error, Result};
use tokio::sync::mpsc;

/// What differs for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiffKind {
    /// On the first side only (missing from the second).
    Missing,
    /// On the second side only.
    Extra,
    /// On both, not the same.
    Different,
}

impl DiffKind {
    /// `missing`, `extra` or `different`.
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Missing => "missing",
            DiffKind::Extra => "extra",
            DiffKind::Different => "different",
        }
    }
}

/// One difference, as seen by the last re-check.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// The item's key.
    pub key: StateKey,
    /// Missing, extra or different.
    pub kind: DiffKind,
    /// The queue it belongs to ([`StateItem::queue`]).
    pub queue: String,
    /// The first side's item.
    pub a: Option<StateItem>,
    /// The second side's item.
    pub b: Option<StateItem>,
}

/// How a verify runs.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Items per page.
    pub page: usize,
    /// Times each candidate difference is read again before it is reported (at least 1).
    pub rechecks: u32,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions { page: 10_000, rechecks: 3 }
    }
}

/// What a verify found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Items read on the first side.
    pub items_a: u64,
    /// Items read on the second side.
    pub items_b: u64,
    /// Jobs read on the first side.
    pub jobs_a: u64,
    /// Candidates that were the same when read again (writes in flight).
    pub settled: u64,
    /// The differences that remained, in key order.
    pub differences: Vec<Difference>,
    /// Time taken.
    pub elapsed: Duration,
}

impl VerifyReport {
    /// Whether nothing differs.
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }

    /// Counts per (queue, kind), sorted.
    pub fn per_queue(&self) -> BTreeMap<(String, DiffKind), u64> {
        let mut m = BTreeMap::new();
        for d in &self.differences {
            *m.entry((d.queue.clone(), d.kind)).or_insert(0) += 1;
        }
        m
    }

    /// One line per (queue, kind): `archive pool1: 2 missing`.
    pub fn summary(&self) -> String {
        self.per_queue().iter().map(|((q, k), n)| format!("{q}: {n} {}\n", k.as_str())).collect()
    }

    /// Jobs per second read on the first side.
    pub fn jobs_per_sec(&self) -> f64 {
        self.jobs_a as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Pages a feed may read ahead of the merge (besides the one it is reading and the one the merge
/// holds).
const PAGES_AHEAD: usize = 1;

/// A page of a side's export, or the error that ended its reading.
type Page = Result<Vec<StateItem>>;

/// Reads `db`'s export page by page into `pages` until a short page or an error (sent on, as the
/// last page) ends it, or the merge has stopped listening.
async fn feed(db: Arc<dyn SchedulerDb>, page: usize, pages: mpsc::Sender<Page>) {
    let mut last: Option<StateKey> = None;
    loop {
        let items = db.export_state(last.as_ref(), page).await;
        let end = items.as_ref().map_or(true, |i| i.len() < page);
        if let Ok(i) = &items {
            if let Some(l) = i.last() {
                last = Some(l.key());
            }
        }
        if pages.send(items).await.is_err() || end {
            return;
        }
    }
}

/// One side of the merge: the pages its feed sends, as a stream of items.
struct Side {
    pages: mpsc::Receiver<Page>,
    buf: VecDeque<StateItem>,
    done: bool,
}

impl Side {
    fn new(pages: mpsc::Receiver<Page>) -> Self {
        Side { pages, buf: VecDeque::new(), done: false }
    }

    /// Waits for the next page when every item read so far is merged; the feed's end ends the
    /// side, its error is returned.
    async fn fill(&mut self) -> Result<()> {
        if self.buf.is_empty() && !self.done {
            match self.pages.recv().await {
                Some(items) => self.buf.extend(items?),
                None => self.done = true,
            }
        }
        Ok(())
    }
}

fn classify(key: StateKey, a: Option<StateItem>, b: Option<StateItem>) -> Option<Difference> {
    let (kind, queue) = match (&a, &b) {
        (Some(x), Some(y)) if x.same(y) => return None,
        (Some(x), Some(_)) => (DiffKind::Different, x.queue()),
        (Some(x), None) => (DiffKind::Missing, x.queue()),
        (None, Some(y)) => (DiffKind::Extra, y.queue()),
        (None, None) => return None,
    };
    Some(Difference { key, kind, queue, a, b })
}

/// Reads `keys` again on both sides (at once) and keeps what still differs.
pub(crate) async fn recheck(a: &dyn SchedulerDb, b: &dyn SchedulerDb, keys: Vec<StateKey>) -> Result<Vec<Difference>> {
    if keys.is_empty() {
        return Ok(vec![]);
    }
    let (ra, rb) = tokio::join!(a.read_state(&keys), b.read_state(&keys));
    let mut ma: BTreeMap<StateKey, StateItem> = ra?.into_iter().map(|i| (i.key(), i)).collect();
    let mut mb: BTreeMap<StateKey, StateItem> = rb?.into_iter().map(|i| (i.key(), i)).collect();
    Ok(keys.into_iter().filter_map(|k| classify(k.clone(), ma.remove(&k), mb.remove(&k))).collect())
}

/// What the streaming pass of a verify saw, before re-checking.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Items read on the first side.
    pub items_a: u64,
    /// Items read on the second side.
    pub items_b: u64,
    /// Jobs read on the first side.
    pub jobs_a: u64,
    /// Keys that differed when read.
    pub candidates: Vec<StateKey>,
    /// When the scan started.
    pub started: Option<Instant>,
}

/// The streaming pass: both exports merged in key order; the keys that differ are candidates.
/// Each side's feed (a task of its own) reads ahead of the merge ([`PAGES_AHEAD`]); the first
/// error met (either side's) ends the scan and is returned.
pub async fn scan(a: Arc<dyn SchedulerDb>, b: Arc<dyn SchedulerDb>, page: usize) -> Result<Scan> {
    let page = page.max(1);
    let (tx_a, rx_a) = mpsc::channel(PAGES_AHEAD);
    let (tx_b, rx_b) = mpsc::channel(PAGES_AHEAD);
    let mut scan = Scan { started: Some(Instant::now()), ..Scan::default() };
    // The set aborts the feeds when dropped: an error, or this scan dropped, ends the reading at
    // once. The merge owns the receivers: once it returns, a feed's next send fails and it stops.
    let mut feeds = tokio::task::JoinSet::new();
    feeds.spawn(feed(a, page, tx_a));
    feeds.spawn(feed(b, page, tx_b));
    merge(rx_a, rx_b, &mut scan).await?;
    // Both sides ended: a feed that panicked ended its side early, which is no end of its export.
    while let Some(done) = feeds.join_next().await {
        done.map_err(|e| Error::internal(format!("verify: a side's reading failed: {e}")))?;
    }
    Ok(scan)
}

/// Merges the two feeds' items in key order into `scan` until both have ended.
async fn merge(a: mpsc::Receiver<Page>, b: mpsc::Receiver<Page>, scan: &mut Scan) -> Result<()> {
    let (mut sa, mut sb) = (Side::new(a), Side::new(b));
    loop {
        let (fa, fb) = tokio::join!(sa.fill(), sb.fill());
        fa?;
        fb?;
        let (ka, kb) = (sa.buf.front().map(StateItem::key), sb.buf.front().map(StateItem::key));
        let (x, y) = match (&ka, &kb) {
            (None, None) => break,
            (Some(x), Some(y)) if x == y => (sa.buf.pop_front(), sb.buf.pop_front()),
            (Some(x), Some(y)) if x < y => (sa.buf.pop_front(), None),
            (Some(_), None) => (sa.buf.pop_front(), None),
            _ => (None, sb.buf.pop_front()),
        };
        if let Some(i) = &x {
            scan.items_a += 1;
            scan.jobs_a += i.jobs();
        }
        if y.is_some() {
            scan.items_b += 1;
        }
        let key = ka.filter(|_| x.is_some()).or(kb).expect("one side had an item");
        if classify(key.clone(), x, y).is_some() {
            scan.candidates.push(key);
        }
    }
    Ok(())
}

/// Re-checks a scan's candidates (up to `rechecks` times; a difference must be seen every time)
/// and reports what remains.
pub async fn confirm(a: &dyn SchedulerDb, b: &dyn SchedulerDb, scan: Scan, rechecks: u32) -> Result<VerifyReport> {
    let found = scan.candidates.len() as u64;
    let mut left = scan.candidates;
    let mut diffs = Vec::new();
    for _ in 0..rechecks.max(1) {
        diffs = recheck(a, b, left).await?;
        left = diffs.iter().map(|d| d.key.clone()).collect();
        if left.is_empty() {
            break;
        }
    }
    Ok(VerifyReport {
        items_a: scan.items_a,
        items_b: scan.items_b,
        jobs_a: scan.jobs_a,
        settled: found - diffs.len() as u64,
        differences: diffs,
        elapsed: scan.started.map_or(Duration::ZERO, |s| s.elapsed()),
    })
}

/// Compares `a` with `b` in full (see the module documentation): [`scan`] then [`confirm`].
pub async fn verify(a: Arc<dyn SchedulerDb>, b: Arc<dyn SchedulerDb>, options: &VerifyOptions) -> Result<VerifyReport> {
    let s = scan(a.clone(), b.clone(), options.page).await?;
    confirm(&*a, &*b, s, options.rechecks).await
}

/// What a repair did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Items written (created or replaced) on the other side.
    pub written: u64,
    /// Items deleted from the other side.
    pub deleted: u64,
}

/// Makes `other` equal to `authoritative` for the keys of `differences`.
pub async fn repair(
    authoritative: &dyn SchedulerDb,
    other: &dyn SchedulerDb,
    keys: &[StateKey],
    now: Timestamp,
) -> Result<RepairReport> {
    let mut report = RepairReport::default();
    for chunk in keys.chunks(5000) {
        let items = authoritative.read_state(chunk).await?;
        let present: std::collections::BTreeSet<StateKey> = items.iter().map(StateItem::key).collect();
        let gone: Vec<StateKey> = chunk.iter().filter(|k| !present.contains(k)).cloned().collect();
        report.written += items.len() as u64;
        report.deleted += gone.len() as u64;
        // Requests before mounts when deleting (a mount goes only once it holds nothing), mounts
        // before requests when writing (held jobs name their mount): imports run in key order.
        other.delete_state(&gone, now).await?;
        other.import_state(items, now).await?;
    }
    Ok(report)
}
