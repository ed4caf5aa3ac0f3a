//! The stored objects of the legacy design and typed access to them.
//!
//! Every value starts with a header (the object kind, the format version, a stamp unique to the
//! write) followed by the payload in postcard's binary encoding. Reading checks kind and version,
//! so a corrupted, foreign, older (JSON) or newer object is a clear `internal` error instead of a
//! wrong answer. Object names are built here and only here: names taken from requests (pools,
//! VIDs) are escaped so they can never break out of the naming scheme.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::join_all;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::db::{MountSpec, Outcome, QueueSleep};
use tapesched_scheduler::types::*;
use tapesched_scheduler::{Error, ErrorKind, Result};

use crate::store::{Lock, LockMode, ObjectStore, StoreError, StoreResult, Swap};

/// Names per store read of [`Objects::read_many`].
const READ_CHUNK: usize = 1000;

/// Store reads of one [`Objects::read_many`] in flight at once.
const READS_IN_FLIGHT: usize = 4;

/// One store read of `names` (owned, so that several can be in flight).
async fn read_chunk(store: Arc<dyn ObjectStore>, names: Vec<String>) -> StoreResult<Vec<Option<Vec<u8>>>> {
    store.read_many(&names).await
}

/// The base version of the stored format this build reads and writes. Version 1 was JSON; version
/// 2 is the binary layout described at `Objects::encode`. A kind whose layout changed since has
/// its own, higher, [`Stored::VERSION`] (request objects: 3, since requests carry a repack link)
/// and may still read its older layouts ([`Stored::decode_older`]).
pub const FORMAT_VERSION: u32 = 2;

/// First bytes of every stored object.
const MAGIC: &[u8; 3] = b"TSO";
/// Length of the header: magic, kind, format version, write stamp.
const HEADER: usize = MAGIC.len() + 1 + 4 + 8;

/// A number unique to one write of an object (random per process, then counted), so that the
/// header of a value identifies the write: compare-and-swap compares headers, not whole values.
fn write_stamp() -> u64 {
    static SEED: OnceLock<RandomState> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    SEED.get_or_init(RandomState::new).hash_one(COUNT.fetch_add(1, Ordering::Relaxed))
}

/// The kinds of stored objects (a byte of the header, see `Objects::encode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The root entry: the index of queues.
    Root,
    /// The list of live agents.
    AgentRegister,
    /// A process (or drive session) and the objects it owns.
    Agent,
    /// The global scheduling lock and mount-id counter.
    SchedulerGlobalLock,
    /// An archive request with its per-copy jobs.
    ArchiveRequest,
    /// A retrieve request.
    RetrieveRequest,
    /// A queue: summary and shard pointers.
    Queue,
    /// A queue shard: job pointers.
    Shard,
    /// The index of repack requests (their VIDs).
    RepackIndex,
    /// A repack request.
    RepackRequest,
    /// The subrequest ids of one committed (or in-flight) expansion pass of a repack.
    RepackPass,
    /// The journal of a batch of processed repack reports, until it is fully applied.
    RepackBatch,
    /// A named lease (maintenance loops).
    Lease,
}

impl Kind {
    const ALL: [Kind; 13] = [
        Kind::Root,
        Kind::AgentRegister,
        Kind::Agent,
        Kind::SchedulerGlobalLock,
        Kind::ArchiveRequest,
        Kind::RetrieveRequest,
        Kind::Queue,
        Kind::Shard,
        Kind::RepackIndex,
        Kind::RepackRequest,
        Kind::RepackPass,
        Kind::RepackBatch,
        Kind::Lease,
    ];

    /// The kind's byte in an object's header.
    fn code(self) -> u8 {
        Kind::ALL.iter().position(|k| *k == self).expect("every kind is listed") as u8
    }

    fn of_code(code: u8) -> Option<Kind> {
        Kind::ALL.get(code as usize).copied()
    }
}

/// A typed stored object.
pub trait Stored: Serialize + DeserializeOwned + Send + Sync {
    /// Its kind.
    const KIND: Kind;
    /// The format version this build writes for the kind.
    const VERSION: u32 = FORMAT_VERSION;
    /// Decodes the payload of an older `version` of the kind, for a kind that can still read it
    /// (`None`: that version is refused). Answers the value and the bytes left after it.
    fn decode_older(version: u32, payload: &[u8]) -> Option<postcard::Result<(Self, &[u8])>> {
        let _ = (version, payload);
        None
    }
}

/// Escapes a name taken from a request for use inside an object name: every byte outside
/// `[A-Za-z0-9._-]` becomes `%XX`.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Name of the root entry.
pub const ROOT: &str = "root";
/// Name of the agent register.
pub const AGENT_REGISTER: &str = "AgentRegister";
/// Name of the global scheduling lock.
pub const GLOBAL_LOCK: &str = "SchedulerGlobalLock";

/// Name of an archive request.
pub fn archive_request_name(archive_file_id: u64) -> String {
    format!("ArchiveRequest-{archive_file_id}")
}
/// Name of a retrieve request.
pub fn retrieve_request_name(request_id: u64) -> String {
    format!("RetrieveRequest-{request_id}")
}

/// Object name of the request `id` names.
pub fn request_name(id: RequestId) -> String {
    match id {
        RequestId::Archive(afid) => archive_request_name(afid),
        RequestId::Retrieve(rid) => retrieve_request_name(rid),
        RequestId::RepackArchive(sid) => repack::repack_archive_request_name(sid),
    }
}

/// Name of the agent of a mount (a drive session).
pub fn mount_agent_name(mount: MountId) -> String {
    format!("Agent-mount-{mount}")
}

/// The kinds of queues, each keyed by a container (pool or VID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QueueKind {
    /// User archive jobs to write, per pool.
    ArchiveToTransferForUser,
    /// Repack archive jobs to write, per pool.
    ArchiveToTransferForRepack,
    /// Archive reports due: successes per VID, failures per pool.
    ArchiveToReport,
    /// Failed archive jobs kept for operators, per pool.
    ArchiveFailed,
    /// Retrieve jobs to read, per VID.
    RetrieveToTransfer,
    /// Retrieve reports due, per VID.
    RetrieveToReport,
    /// Failed retrieve jobs kept for operators, per VID.
    RetrieveFailed,
    /// Repack subrequests (retrieves and archives) whose outcome is due to their repack, per
    /// repacked VID.
    RepackToReport,
}

impl QueueKind {
    /// True for retrieve queues.
    pub fn is_retrieve(self) -> bool {
        matches!(self, QueueKind::RetrieveToTransfer | QueueKind::RetrieveToReport | QueueKind::RetrieveFailed)
    }
    /// True for the queues mounts are made from.
    pub fn is_transfer(self) -> bool {
        matches!(
            self,
            QueueKind::ArchiveToTransferForUser | QueueKind::ArchiveToTransferForRepack | QueueKind::RetrieveToTransfer
        )
    }
    fn tag(self) -> &'static str {
        match self {
            QueueKind::ArchiveToTransferForUser => "ArchiveToTransferForUser",
            QueueKind::ArchiveToTransferForRepack => "ArchiveToTransferForRepack",
            QueueKind::ArchiveToReport => "ArchiveToReport",
            QueueKind::ArchiveFailed => "ArchiveFailed",
            QueueKind::RetrieveToTransfer => "RetrieveToTransfer",
            QueueKind::RetrieveToReport => "RetrieveToReport",
            QueueKind::RetrieveFailed => "RetrieveFailed",
            QueueKind::RepackToReport => "RepackToReport",
        }
    }
}

/// A queue's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueKey {
    /// Kind.
    pub kind: QueueKind,
    /// Pool or VID.
    pub container: String,
}

impl QueueKey {
    /// A key.
    pub fn new(kind: QueueKind, container: impl Into<String>) -> Self {
        QueueKey { kind, container: container.into() }
    }
    /// The queue object's name.
    pub fn object_name(&self) -> String {
        format!("Queue-{}-{}", self.kind.tag(), escape(&self.container))
    }
}

/// The root entry: which queues exist, and where.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Root {
    /// Queue key to queue object name.
    pub queues: Vec<(QueueKey, String)>,
}
impl Stored for Root {
    const KIND: Kind = Kind::Root;
}

impl Root {
    /// The object name of a queue, if it exists.
    pub fn queue(&self, key: &QueueKey) -> Option<&str> {
        self.queues.iter().find(|(k, _)| k == key).map(|(_, a)| a.as_str())
    }
}

/// The live agents.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AgentRegister {
    /// Agent object names.
    pub agents: Vec<String>,
}
impl Stored for AgentRegister {
    const KIND: Kind = Kind::AgentRegister;
}

/// A mount as its drive session's agent records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    /// Mount id.
    pub id: MountId,
    /// What is mounted.
    pub spec: MountSpec,
}

/// A process or drive session: the objects it owns (its intent log) and its liveness.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Agent {
    /// What the agent is.
    pub description: String,
    /// Objects owned or about to be owned, by name, in the order they were taken (a dead or
    /// ending session's jobs go back to their queues in this order).
    pub owned: Vec<String>,
    /// Last heartbeat, on the caller's clock.
    pub heartbeat: Timestamp,
    /// The process exited (or is known dead): collect at once.
    pub gc_needed: bool,
    /// The mount this agent runs, for drive sessions.
    pub mount: Option<MountRecord>,
}
impl Stored for Agent {
    const KIND: Kind = Kind::Agent;
}

/// The global scheduling lock object and the mount-id counter it protects.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GlobalLock {
    /// The next mount id.
    pub next_mount_id: MountId,
}
impl Stored for GlobalLock {
    const KIND: Kind = Kind::SchedulerGlobalLock;
}

/// A named lease (`SchedulerDb::try_lease`): who holds it, until when. Free: no holder.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lease {
    /// The holder, empty when free.
    pub holder: String,
    /// The end of the lease (the caller's clock, seconds).
    pub until: Timestamp,
}
impl Stored for Lease {
    const KIND: Kind = Kind::Lease;
}

/// Name of a lease object.
pub fn lease_name(name: &str) -> String {
    format!("Lease-{}", escape(name))
}

/// Who holds a job: the authoritative ownership record (queue pointers are only hints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Owner {
    /// Nobody: the job is done (a completed copy whose sibling carries the report).
    Nobody,
    /// An agent (a process or a drive session), by agent object name.
    Agent(String),
    /// A queue.
    Queue(QueueKey),
}

/// An archive request as stored: the request and the owner of each job (by copy number).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredArchive {
    /// The request.
    pub request: ArchiveRequest,
    /// Owner of each job.
    pub owners: BTreeMap<u32, Owner>,
}
impl Stored for StoredArchive {
    const KIND: Kind = Kind::ArchiveRequest;
    const VERSION: u32 = 3;
    fn decode_older(version: u32, payload: &[u8]) -> Option<postcard::Result<(Self, &[u8])>> {
        (version == 2).then(|| legacy::archive_v2(payload))
    }
}

/// A retrieve request as stored, with its owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredRetrieve {
    /// The request.
    pub request: RetrieveRequest,
    /// Owner.
    pub owner: Owner,
    /// For a repack subrequest, the token of the expansion pass that created it: the subrequest
    /// exists for its repack only once the repack records the pass as committed.
    pub pass: Option<u64>,
}
impl Stored for StoredRetrieve {
    const KIND: Kind = Kind::RetrieveRequest;
    const VERSION: u32 = 3;
    fn decode_older(version: u32, payload: &[u8]) -> Option<postcard::Result<(Self, &[u8])>> {
        (version == 2).then(|| legacy::retrieve_v2(payload))
    }
}

/// A pointer from a queue to a job, with what the queue summary needs. Shards hold many of
/// them and are rewritten whole, so the stored field names are one letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPointer {
    /// The request.
    #[serde(rename = "r")]
    pub request: RequestId,
    /// Request object name.
    #[serde(rename = "a")]
    pub address: String,
    /// Copy number (archive) or the active copy (retrieve).
    #[serde(rename = "c")]
    pub copy_nb: u32,
    /// Archive file id.
    #[serde(rename = "f")]
    pub archive_file_id: u64,
    /// Size.
    #[serde(rename = "s")]
    pub size: u64,
    /// Priority at queueing time.
    #[serde(rename = "p")]
    pub priority: u64,
    /// Minimum request age at queueing time.
    #[serde(rename = "m")]
    pub min_age: u64,
    /// Policy name.
    #[serde(rename = "o")]
    pub policy: String,
    /// Request creation time.
    #[serde(rename = "t")]
    pub created_at: Timestamp,
    /// fSeq on the queue's tape (retrieve queues order by it).
    #[serde(rename = "q")]
    pub fseq: u64,
    /// Arrival order within the queue.
    #[serde(rename = "n")]
    pub seq: u64,
    /// Report outcome (report queues).
    #[serde(rename = "x")]
    pub outcome: Option<Outcome>,
}

impl JobPointer {
    /// Position key in a retrieve queue.
    pub fn retrieve_key(&self) -> (u64, u64) {
        (self.fseq, self.seq)
    }
}

/// An exact sum of sizes: each size is at most 2^63-1, so a sum of them may pass what a `u64`
/// holds; kept in a `u128`, which postcard encodes as the same varint as the `u64` it replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExactBytes(pub u128);

impl std::iter::Sum<u64> for ExactBytes {
    fn sum<I: Iterator<Item = u64>>(iter: I) -> Self {
        ExactBytes(iter.map(u128::from).sum())
    }
}

/// Where a shard is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPointer {
    /// Shard object name.
    pub address: String,
    /// Jobs.
    pub count: u64,
    /// Bytes, exact (a sum of sizes may pass 2^64; see [`Summary::bytes`]).
    pub bytes: ExactBytes,
    /// Oldest creation time in the shard.
    pub oldest: Timestamp,
    /// Youngest creation time in the shard.
    pub youngest: Timestamp,
    /// Smallest (fSeq, seq) in the shard.
    pub min_key: (u64, u64),
    /// Largest (fSeq, seq) in the shard.
    pub max_key: (u64, u64),
}

/// Value-to-count maps of a queue, kept incrementally.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Jobs.
    pub count: u64,
    /// Bytes, the exact sum of the queued sizes: kept wide so that it never wraps and a removal
    /// after a large addition stays exact; shown clamped by [`Summary::bytes_queued`]. (postcard
    /// encodes `u64` and `u128` as the same varint, so summaries written as `u64` read as they
    /// were.)
    pub bytes: u128,
    /// Priority value to count.
    pub priorities: BTreeMap<u64, u64>,
    /// Minimum-age value to count.
    pub min_ages: BTreeMap<u64, u64>,
    /// Policy name to count.
    pub policies: BTreeMap<String, u64>,
}

fn bump<K: Ord>(map: &mut BTreeMap<K, u64>, key: K, add: bool) {
    if add {
        *map.entry(key).or_default() += 1;
    } else if let Some(v) = map.get_mut(&key) {
        *v = v.saturating_sub(1);
        if *v == 0 {
            map.remove(&key);
        }
    }
}

impl Summary {
    /// Accounts for a job added (`add`) or removed.
    pub fn account(&mut self, p: &JobPointer, add: bool) {
        if add {
            self.count += 1;
            self.bytes += u128::from(p.size);
        } else {
            self.count = self.count.saturating_sub(1);
            self.bytes = self.bytes.saturating_sub(u128::from(p.size));
        }
        bump(&mut self.priorities, p.priority, add);
        bump(&mut self.min_ages, p.min_age, add);
        bump(&mut self.policies, p.policy.clone(), add);
    }
}

impl Summary {
    /// Bytes queued as shown: the exact total, or 2^63-1 when it passes it.
    pub fn bytes_queued(&self) -> u64 {
        tapesched_scheduler::bounds::clamp(self.bytes)
    }
}

/// A queue: its summary, its shards in order, and (retrieve) sleep and cleanup markers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Queue {
    /// Its identity.
    pub key: QueueKey,
    /// Summary maps and totals.
    pub summary: Summary,
    /// Shards in queue order.
    pub shards: Vec<ShardPointer>,
    /// Counter for shard names.
    pub next_shard: u64,
    /// Counter for arrival order.
    pub next_seq: u64,
    /// Sleep marker (retrieve queues of a full disk system).
    pub sleep: Option<QueueSleep>,
    /// Flagged for cleanup (tape leaving service).
    pub cleanup: bool,
}
impl Stored for Queue {
    const KIND: Kind = Kind::Queue;
}

impl Queue {
    /// An empty queue.
    pub fn new(key: QueueKey) -> Self {
        Queue {
            key,
            summary: Summary::default(),
            shards: vec![],
            next_shard: 0,
            next_seq: 0,
            sleep: None,
            cleanup: false,
        }
    }
    /// Oldest job creation time.
    pub fn oldest(&self) -> Option<Timestamp> {
        self.shards.iter().filter(|s| s.count > 0).map(|s| s.oldest).min()
    }
    /// Youngest job creation time.
    pub fn youngest(&self) -> Option<Timestamp> {
        self.shards.iter().filter(|s| s.count > 0).map(|s| s.youngest).max()
    }
}

/// A shard: job pointers in queue order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Shard {
    /// Job pointers.
    pub jobs: Vec<JobPointer>,
}
impl Stored for Shard {
    const KIND: Kind = Kind::Shard;
}

/// Maps a store error to the scheduler's error kinds.
pub fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::NoSuchObject(n) => Error::not_found(format!("object {n:?} does not exist")),
        StoreError::AlreadyExists(n) => Error::conflict(format!("object {n:?} already exists")),
        StoreError::LockTimeout(n) => Error::unavailable(format!("timed out waiting for the lock of {n:?}")),
        StoreError::LockLost(n) => Error::conflict(format!("lost the lock of {n:?} during an update")),
        StoreError::Unavailable(m, None) => Error::unavailable(m),
        StoreError::Unavailable(m, Some(cause)) => Error::with_source(ErrorKind::Unavailable, m, cause),
    }
}

/// Typed, checked access to an [`ObjectStore`].
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    lock_timeout: Duration,
}

impl Objects {
    /// Access through `store`, waiting up to `lock_timeout` for locks.
    pub fn new(store: Arc<dyn ObjectStore>, lock_timeout: Duration) -> Self {
        Objects { store, lock_timeout }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The stored form of an object: a header (`TSO`, one byte of [`Kind`], the format version
    /// as four little-endian bytes, a stamp unique to this write as eight) and the value in
    /// postcard's compact binary encoding. Like CTA's protobuf objects, and unlike JSON, it is
    /// cheap to decode and re-encode: a claim does both for every job it takes.
    fn encode<T: Stored>(value: &T) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(MAGIC);
        out.push(T::KIND.code());
        out.extend_from_slice(&T::VERSION.to_le_bytes());
        out.extend_from_slice(&write_stamp().to_le_bytes());
        postcard::to_io(value, out)
            .map_err(|e| Error::internal(format!("cannot encode a {:?}: {e}", T::KIND)).caused_by(e))
    }

    fn decode<T: Stored>(name: &str, bytes: &[u8]) -> Result<T> {
        if bytes.first() == Some(&b'{') {
            return Err(Error::internal(format!(
                "object {name:?} is in format version 1 (JSON, an older build); this build reads version \
                 {FORMAT_VERSION}: drain the queues with the older build, or start from an empty prefix"
            )));
        }
        if bytes.len() < HEADER || &bytes[..MAGIC.len()] != MAGIC {
            return Err(Error::internal(format!("object {name:?} is corrupted (not a tapesched object)")));
        }
        let version = u32::from_le_bytes(bytes[MAGIC.len() + 1..MAGIC.len() + 5].try_into().expect("four bytes"));
        let older = if version == T::VERSION { None } else { T::decode_older(version, &bytes[HEADER..]) };
        if version != T::VERSION && older.is_none() {
            return Err(Error::internal(format!(
                "object {name:?} has format version {version}, this build reads version {} of a {:?}",
                T::VERSION,
                T::KIND
            )));
        }
        match Kind::of_code(bytes[MAGIC.len()]) {
            Some(kind) if kind == T::KIND => {}
            Some(kind) => {
                return Err(Error::internal(format!("object {name:?} is a {kind:?}, expected a {:?}", T::KIND)))
            }
            None => return Err(Error::internal(format!("object {name:?} is corrupted (unknown kind)"))),
        }
        match older.unwrap_or_else(|| postcard::take_from_bytes::<T>(&bytes[HEADER..])) {
            Ok((value, [])) => Ok(value),
            Ok((_, rest)) => {
                Err(Error::internal(format!("object {name:?} is corrupted ({} bytes after its value)", rest.len())))
            }
            Err(e) => Err(Error::internal(format!("object {name:?} is corrupted: {e}")).caused_by(e)),
        }
    }

    /// Decodes the stored bytes of object `name` (read elsewhere, e.g. by `read_many`).
    pub fn decode_named<T: Stored>(&self, name: &str, bytes: &[u8]) -> Result<T> {
        Self::decode(name, bytes)
    }

    /// Reads an object without locking.
    pub async fn read<T: Stored>(&self, name: &str) -> Result<Option<T>> {
        match self.store.read(name).await.map_err(store_error)? {
            None => Ok(None),
            Some(bytes) => Self::decode(name, &bytes).map(Some),
        }
    }

    /// Reads several objects without locking; absent ones are `None`. Many names are read
    /// [`READ_CHUNK`] at a time, up to [`READS_IN_FLIGHT`] reads at once, each chunk decoded as
    /// it arrives: the store serves the next chunks while this side decodes (a page of an export
    /// is ten thousand objects).
    pub async fn read_many<T: Stored>(&self, names: &[String]) -> Result<Vec<Option<T>>> {
        if names.len() <= READ_CHUNK {
            let raw = self.store.read_many(names).await.map_err(store_error)?;
            return names.iter().zip(raw).map(|(n, b)| b.map(|b| Self::decode(n, &b)).transpose()).collect();
        }
        let reads: Vec<_> = names.chunks(READ_CHUNK).map(|c| read_chunk(self.store.clone(), c.to_vec())).collect();
        let mut answers = futures::stream::iter(reads).buffered(READS_IN_FLIGHT);
        let mut out = Vec::with_capacity(names.len());
        let mut left = names.iter();
        while let Some(raw) = answers.next().await {
            // The chunk's values first: zip then takes no name past the chunk's last.
            for (b, n) in raw.map_err(store_error)?.into_iter().zip(left.by_ref()) {
                out.push(b.map(|b| Self::decode(n, &b)).transpose()?);
            }
        }
        Ok(out)
    }

    /// Creates an object (exclusive).
    pub async fn create<T: Stored>(&self, name: &str, value: &T) -> Result<()> {
        self.store.create(name, Self::encode(value)?).await.map_err(store_error)
    }

    /// Creates an object unless it exists.
    pub async fn ensure<T: Stored>(&self, name: &str, value: &T) -> Result<()> {
        match self.store.create(name, Self::encode(value)?).await {
            Ok(()) | Err(StoreError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Locks an object exclusively; `None` when it does not exist.
    pub async fn lock(&self, name: &str) -> Result<Option<Lock>> {
        match self.store.lock(name, LockMode::Exclusive, self.lock_timeout).await {
            Ok(l) => Ok(Some(l)),
            Err(StoreError::NoSuchObject(_)) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Releases a lock (errors are ignored: a lock that cannot be released expires).
    pub async fn unlock(&self, lock: Lock) {
        if let Err(e) = self.store.unlock(&lock).await {
            tracing::warn!(object = %lock.object, error = %e, "could not release a lock");
        }
    }

    /// Locks and reads an object; `None` when it does not exist.
    pub async fn lock_read<T: Stored>(&self, name: &str) -> Result<Option<(Lock, T)>> {
        let (lock, bytes) = match self.store.lock_and_read(name, LockMode::Exclusive, self.lock_timeout).await {
            Ok(r) => r,
            Err(StoreError::NoSuchObject(_)) => return Ok(None),
            Err(e) => return Err(store_error(e)),
        };
        match Self::decode(name, &bytes) {
            Ok(v) => Ok(Some((lock, v))),
            Err(e) => {
                self.unlock(lock).await;
                Err(e)
            }
        }
    }

    /// Writes an object under `fence` (its own lock or its parent's).
    pub async fn write<T: Stored>(&self, name: &str, value: &T, fence: &Lock) -> Result<()> {
        self.store.overwrite(name, Self::encode(value)?, fence, false).await.map_err(store_error)
    }

    /// Writes (creating if absent) a sub-object under its parent's lock.
    pub async fn put<T: Stored>(&self, name: &str, value: &T, fence: &Lock) -> Result<()> {
        self.store.overwrite(name, Self::encode(value)?, fence, true).await.map_err(store_error)
    }

    /// Deletes an object under `fence`.
    pub async fn remove(&self, name: &str, fence: &Lock) -> Result<()> {
        self.store.remove(name, fence).await.map_err(store_error)
    }

    /// Locks, reads, changes and writes (or deletes) one object. `f` returns the answer and what
    /// to do with the object. `None` when the object does not exist.
    pub async fn update<T: Stored, R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut T) -> Result<(R, Write)>,
    ) -> Result<Option<R>> {
        let Some((lock, mut value)) = self.lock_read::<T>(name).await? else { return Ok(None) };
        let result = match f(&mut value) {
            Ok((r, Write::Commit)) => {
                let bytes = match Self::encode(&value) {
                    Ok(b) => b,
                    Err(e) => {
                        self.unlock(lock).await;
                        return Err(e);
                    }
                };
                return self.store.write_and_unlock(name, bytes, &lock).await.map_err(store_error).map(|_| Some(r));
            }
            Ok((r, Write::Keep)) => Ok(r),
            // Deleting an object under its own lock removes the lock with it.
            Ok((r, Write::Delete)) => self.remove(name, &lock).await.map(|_| r),
            Err(e) => Err(e),
        };
        self.unlock(lock).await;
        result.map(Some)
    }

    /// Applies `f` to several objects as [`Objects::update`] would, concurrently and mostly
    /// without locks: one batched read, then one batched compare-and-swap of the changed objects;
    /// an object that changed meanwhile, is locked, or is to be deleted goes through `update`
    /// (so `f` may run twice on one object and must not have side effects). `f` receives the
    /// object's index in `names`. Answers are in the order of `names`; `None`: no such object.
    pub async fn update_many<T: Stored, R>(
        &self,
        names: &[String],
        f: impl Fn(usize, &mut T) -> Result<(R, Write)>,
    ) -> Result<Vec<Option<R>>> {
        let raw = self.store.read_many(names).await.map_err(store_error)?;
        let mut answers: Vec<Option<Option<R>>> = Vec::with_capacity(names.len());
        let (mut swaps, mut swapped) = (Vec::new(), Vec::new());
        for (i, (name, bytes)) in names.iter().zip(raw).enumerate() {
            let Some(bytes) = bytes else {
                answers.push(Some(None));
                continue;
            };
            let mut value: T = Self::decode(name, &bytes)?;
            match f(i, &mut value)? {
                (r, Write::Keep) => answers.push(Some(Some(r))),
                (r, Write::Commit) => {
                    // The header holds the write stamp: still the same header, still the same value.
                    let mut expected = bytes;
                    expected.truncate(HEADER);
                    swaps.push(Swap { name: name.clone(), expected, value: Self::encode(&value)? });
                    swapped.push((i, r));
                    answers.push(None);
                }
                (_, Write::Delete) => answers.push(None),
            }
        }
        let done = self.store.swap_many(&swaps).await.map_err(store_error)?;
        for ((i, r), ok) in swapped.into_iter().zip(done) {
            if ok {
                answers[i] = Some(Some(r));
            }
        }
        // What changed meanwhile, is locked or is to be deleted: under the object's lock.
        let f = &f;
        let locked = join_all(
            answers
                .iter()
                .enumerate()
                .filter(|(_, a)| a.is_none())
                .map(|(i, _)| async move { (i, self.update(&names[i], |v: &mut T| f(i, v)).await) }),
        )
        .await;
        for (i, answer) in locked {
            answers[i] = Some(answer?);
        }
        Ok(answers.into_iter().map(|a| a.expect("every object answered")).collect())
    }
}

/// What [`Objects::update`] does with the object after the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Nothing changed.
    Keep,
    /// Write it back.
    Commit,
    /// Delete it.
    Delete,
}

#[path = "objects_legacy.rs"]
mod legacy;
#[path = "objects_repack.rs"]
mod repack;
pub use repack::*;

#[cfg(test)]
#[path = "objects_tests.rs"]
mod tests;
