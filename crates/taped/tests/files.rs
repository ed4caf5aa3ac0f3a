//! The `files` data path on the simulated library against PostgreSQL: archive reads `file://`
//! sources and keeps their bytes with their adler32, retrieve writes the destinations after
//! checking the checksum; a missing source and a corrupted tape file are failed transfers with
//! their reason, every other file arrives intact.

mod common;

use std::collections::BTreeSet;

use common::*;
use tapesched_backends::Backend;
use tapesched_scheduler::scheduler::RetrieveSubmission;
use tapesched_taped::workload::{retrieve_of, DiskSide};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_move_with_their_checksums() {
    let dir = std::env::temp_dir().join(format!("taped-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (src, dst, tapes) = (dir.join("src"), dir.join("dst"), dir.join("tapes"));
    for d in [&src, &dst, &tapes] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut rng = Rng(7);
    let contents: Vec<Vec<u8>> = (0..6).map(|i| (0..1000 + 100 * i).map(|_| rng.below(256) as u8).collect()).collect();
    for (i, c) in contents.iter().enumerate().take(5) {
        std::fs::write(src.join(format!("f{i}")), c).unwrap();
    }
    // f5 is never written: its archive cannot read its source.
    let extra = format!("\n[data]\nmode = \"files\"\ntape_dir = \"{}\"\n", tapes.display());
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", &["ULT11"], &extra);
    let (mut built, open, events) = daemon(Backend::Postgres, &text).await;
    let s = built.scheduler.clone();
    let sizes: Vec<u64> = contents.iter().map(|c| c.len() as u64).collect();
    let url = |i: usize| format!("file://{}/f{i}", src.display());
    let ids = queue_archives(&s, "sc_pool_a", &sizes, |i| Some(url(i))).await;
    let mut disk = DiskSide::new(false);
    built.daemon.run_until(START * 1000 + 4 * HOUR_MS, None).await.unwrap();
    disk.pump(&s).await.unwrap();
    assert_eq!(disk.archived, ids[..5].iter().copied().collect::<BTreeSet<_>>());
    assert_eq!(disk.failures.iter().map(|r| r.archive_file_id).collect::<Vec<_>>(), vec![ids[5]]);
    let missing = url(5);
    assert!(events.lock().unwrap().iter().any(|l| l.contains(&format!("cannot read source {missing}"))));

    // Corrupt the tape copy of the first file, then retrieve the five.
    let copy = s.catalogue().archive_file(ids[0]).await.unwrap().unwrap().copies[0].clone();
    let kept = tapes.join(&copy.vid).join(copy.fseq.to_string());
    let mut bytes = std::fs::read(&kept).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&kept, bytes).unwrap();
    for (i, id) in ids[..5].iter().enumerate() {
        let sub = RetrieveSubmission { dst_url: Some(format!("file://{}/f{i}", dst.display())), ..retrieve_of(*id) };
        s.queue_retrieve(sub).await.unwrap();
    }
    built.daemon.run_until(START * 1000 + 8 * HOUR_MS, None).await.unwrap();
    disk.pump(&s).await.unwrap();
    assert_eq!(disk.retrieved, ids[1..5].iter().copied().collect::<BTreeSet<_>>());
    assert!(disk.failures.iter().any(|r| r.archive_file_id == ids[0]));
    assert!(events.lock().unwrap().iter().any(|l| l.contains("checksum mismatch")));
    for (i, c) in contents.iter().enumerate().take(5).skip(1) {
        assert_eq!(&std::fs::read(dst.join(format!("f{i}"))).unwrap(), c, "f{i} intact");
    }
    assert!(!dst.join("f0").exists(), "a corrupted file is never delivered");

    // Two retrieves of the same file in one batch, one to a directory that does not exist: each
    // job gets its own outcome.
    let failures_before = disk.failures.len();
    let good = format!("file://{}/again", dst.display());
    let bad = format!("file://{}/no/such/dir/again", dst.display());
    for url in [good, bad.clone()] {
        s.queue_retrieve(RetrieveSubmission { dst_url: Some(url), ..retrieve_of(ids[1]) }).await.unwrap();
    }
    built.daemon.run_until(START * 1000 + 12 * HOUR_MS, None).await.unwrap();
    disk.pump(&s).await.unwrap();
    assert_eq!(&std::fs::read(dst.join("again")).unwrap(), &contents[1]);
    assert_eq!(disk.duplicates, 1, "the second retrieve of f1 succeeded once");
    assert_eq!(disk.failures.len(), failures_before + 1, "the other one failed");
    assert!(events.lock().unwrap().iter().any(|l| l.contains(&format!("cannot write destination {bad}"))));
    built.daemon.drain().await.unwrap();
    open.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
