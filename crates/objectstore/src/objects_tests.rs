//! Tests of the stored format: exact totals, escaping, refused kinds and versions, older layouts.

use super::*;
use crate::store::MemoryStore;

/// Queue totals never wrap: three sizes of 2^63-1 add up exactly, show as 2^63-1, and
/// removing them again gives the exact smaller totals. A summary written by a build that kept
/// bytes as `u64` reads unchanged.
#[test]
fn queue_bytes_are_exact_and_shown_clamped() {
    let max = tapesched_scheduler::bounds::MAX;
    let pointer = |size: u64| JobPointer {
        request: RequestId::Archive(1),
        address: "a".into(),
        copy_nb: 1,
        archive_file_id: 1,
        size,
        priority: 1,
        min_age: 0,
        policy: "p".into(),
        created_at: 0,
        fseq: 0,
        seq: 0,
        outcome: None,
    };
    let mut s = Summary::default();
    for _ in 0..3 {
        s.account(&pointer(max), true);
    }
    assert_eq!(s.bytes, 3 * u128::from(max));
    assert_eq!(s.bytes_queued(), max);
    s.account(&pointer(max), false);
    s.account(&pointer(max), false);
    s.account(&pointer(5), true);
    assert_eq!((s.count, s.bytes_queued()), (2, max));
    s.account(&pointer(max), false);
    assert_eq!((s.count, s.bytes_queued()), (1, 5));

    #[derive(Serialize)]
    struct OldSummary {
        count: u64,
        bytes: u64,
        priorities: BTreeMap<u64, u64>,
        min_ages: BTreeMap<u64, u64>,
        policies: BTreeMap<String, u64>,
    }
    let old = OldSummary {
        count: 2,
        bytes: u64::MAX - 1,
        priorities: BTreeMap::from([(3, 2)]),
        min_ages: BTreeMap::new(),
        policies: BTreeMap::from([("p".to_string(), 2)]),
    };
    let read: Summary = postcard::from_bytes(&postcard::to_allocvec(&old).unwrap()).unwrap();
    assert_eq!((read.count, read.bytes, read.priorities.len()), (2, u128::from(u64::MAX - 1), 1));
}

#[test]
fn escaping_keeps_names_inside_the_scheme() {
    assert_eq!(escape("pool_1.a-b"), "pool_1.a-b");
    assert_eq!(escape("a:b{c}\n/"), "a%3Ab%7Bc%7D%0A%2F");
    assert_ne!(QueueKey::new(QueueKind::RetrieveToTransfer, "a-b").object_name(), "Queue-RetrieveToTransfer-a");
}

#[tokio::test]
async fn wrong_kind_and_version_are_refused() {
    let objs = Objects::new(Arc::new(MemoryStore::new()), Duration::from_millis(50));
    objs.create("g", &GlobalLock { next_mount_id: 1 }).await.unwrap();
    let e = objs.read::<Root>("g").await.unwrap_err();
    assert!(e.message.contains("expected a Root"), "{e}");
    let mut bad = Objects::encode(&Root::default()).unwrap();
    bad[4..8].copy_from_slice(&99u32.to_le_bytes());
    objs.store().create("bad", bad).await.unwrap();
    let e = objs.read::<Root>("bad").await.unwrap_err();
    assert!(e.message.contains("version 99"), "{e}");
    objs.store().create("old", b"{\"kind\":\"Root\",\"version\":1,\"payload\":{}}".to_vec()).await.unwrap();
    let e = objs.read::<Root>("old").await.unwrap_err();
    assert!(e.message.contains("format version 1 (JSON"), "{e}");
    let mut long = Objects::encode(&Root::default()).unwrap();
    long.push(0);
    objs.store().create("long", long).await.unwrap();
    assert!(objs.read::<Root>("long").await.unwrap_err().message.contains("1 bytes after its value"));
    let mut cut = Objects::encode(&GlobalLock { next_mount_id: 1 << 40 }).unwrap();
    cut.pop();
    objs.store().create("cut", cut).await.unwrap();
    assert!(objs.read::<GlobalLock>("cut").await.unwrap_err().message.contains("corrupted"));
    for junk in [&b"\xff\x00"[..], b"", b"TSO", b"TSO\x63\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"] {
        objs.store().create("junk", junk.to_vec()).await.unwrap();
        let e = objs.read::<Root>("junk").await.unwrap_err();
        assert!(e.message.contains("corrupted"), "{junk:?}: {e}");
        let lock = objs.store().lock("junk", LockMode::Exclusive, Duration::from_secs(1)).await.unwrap();
        objs.store().remove("junk", &lock).await.unwrap();
    }
}

/// Request objects written in format version 2 (before repack links) are still read, as
/// requests without a repack; a version-2 object of another kind is not misread.
#[tokio::test]
async fn version_2_requests_are_read() {
    #[derive(Serialize)]
    struct ArchiveV2<'a> {
        archive_file_id: u64,
        disk_instance: &'a str,
        disk_file_id: &'a str,
        requester: Requester,
        storage_class: &'a str,
        size: u64,
        created_at: Timestamp,
        report_url: Option<&'a str>,
        error_report_url: Option<&'a str>,
        policy: QueuedPolicy,
        jobs: Vec<ArchiveJob>,
        report_decided: bool,
    }
    #[derive(Serialize)]
    struct StoredV2<'a> {
        request: ArchiveV2<'a>,
        owners: BTreeMap<u32, Owner>,
    }
    let old = StoredV2 {
        request: ArchiveV2 {
            archive_file_id: 7,
            disk_instance: "eos",
            disk_file_id: "d7",
            requester: Requester { name: "u".into(), group: "g".into() },
            storage_class: "sc",
            size: 70,
            created_at: 5,
            report_url: Some("eos://r"),
            error_report_url: None,
            policy: QueuedPolicy { name: "mp".into(), priority: 2, min_request_age: 0 },
            jobs: vec![ArchiveJob::new(1, "p")],
            report_decided: false,
        },
        owners: BTreeMap::from([(1, Owner::Queue(QueueKey::new(QueueKind::ArchiveToTransferForUser, "p")))]),
    };
    let mut bytes = Vec::from(&MAGIC[..]);
    bytes.push(Kind::ArchiveRequest.code());
    bytes.extend_from_slice(&2u32.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend(postcard::to_allocvec(&old).unwrap());
    let objs = Objects::new(Arc::new(MemoryStore::new()), Duration::from_millis(50));
    objs.store().create("a", bytes.clone()).await.unwrap();
    let read = objs.read::<StoredArchive>("a").await.unwrap().unwrap();
    assert_eq!((read.request.archive_file_id, read.request.size, read.request.repack.clone()), (7, 70, None));
    assert_eq!(read.request.jobs, vec![ArchiveJob::new(1, "p")]);
    assert_eq!(read.owners.len(), 1);
    // Written back, it is in the current version.
    assert_eq!(Objects::encode(&read).unwrap()[4..8], 3u32.to_le_bytes());
    bytes[3] = Kind::RetrieveRequest.code();
    objs.store().create("r", bytes).await.unwrap();
    assert!(objs.read::<StoredRetrieve>("r").await.unwrap_err().message.contains("corrupted"));
}

/// Many names are read in chunks, several at once: every answer stays with its name and in the
/// order asked (absent ones `None`), across chunk boundaries, with fewer names than a chunk too.
/// (A first version took one name too many at each chunk's end and lost the page's last values.)
#[tokio::test]
async fn read_many_keeps_each_value_with_its_name_across_chunks() {
    let objs = Objects::new(Arc::new(MemoryStore::new()), Duration::from_millis(50));
    let n = 3 * READ_CHUNK as u64 + 17;
    for id in (0..n).filter(|id| id % 7 != 3) {
        objs.create(&format!("g{id}"), &GlobalLock { next_mount_id: id }).await.unwrap();
    }
    for count in [n, 5, READ_CHUNK as u64, READ_CHUNK as u64 + 1] {
        let names: Vec<String> = (0..count).rev().map(|id| format!("g{id}")).collect();
        let got = objs.read_many::<GlobalLock>(&names).await.unwrap();
        assert_eq!(got.len(), names.len(), "{count} names");
        for (id, g) in (0..count).rev().zip(&got) {
            let want = (id % 7 != 3).then_some(id);
            assert_eq!(g.as_ref().map(|g| g.next_mount_id), want, "{count} names: g{id}");
        }
    }
}
