//! The PostgreSQL catalogue against the memory catalogue: the same edits (accepted or refused
//! with the same error kinds) give the same snapshots, files, ids and tape fills; two handles on
//! one schema share one view; a scenario's YAML catalogue loads. And the memory catalogue's own
//! promise, that it edits its snapshot in place: a refused edit changes nothing, and a reader
//! keeps the snapshot it read.

use std::path::Path;

use tapesched_postgres::{PgCatalogue, SchemaGuard};
use tapesched_scheduler::catalogue::memory::MemoryCatalogue;
use tapesched_scheduler::catalogue::{Catalogue, CatalogueEdit, NewTapeFile};
use tapesched_scheduler::types::*;

async fn fresh() -> (PgCatalogue, SchemaGuard, String, String) {
    let url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
    let schema = tapesched_testkit::unique_name("cat");
    let guard = SchemaGuard::new(url.clone(), schema.clone());
    (PgCatalogue::connect(&url, &schema).await.expect("catalogue"), guard, url, schema)
}

fn edits() -> Vec<CatalogueEdit> {
    vec![
        CatalogueEdit::SetVo { name: "vo".into(), read_max_drives: Some(9), write_max_drives: None },
        CatalogueEdit::SetVo { name: "nope".into(), read_max_drives: Some(1), write_max_drives: None },
        CatalogueEdit::SetMountPolicy {
            name: "new".into(),
            archive_priority: Some(3),
            archive_min_request_age: Some(1),
            retrieve_priority: Some(4),
            retrieve_min_request_age: Some(2),
        },
        CatalogueEdit::SetMountPolicy {
            name: "half".into(),
            archive_priority: Some(3),
            archive_min_request_age: None,
            retrieve_priority: None,
            retrieve_min_request_age: None,
        },
        CatalogueEdit::DeleteMountPolicy { name: "mp".into() },
        CatalogueEdit::DeleteMountPolicy { name: "new".into() },
        CatalogueEdit::SetLogicalLibrary { name: "lib".into(), disabled: true },
        CatalogueEdit::SetTapeState { vid: "T2".into(), state: TapeState::Disabled, reason: None, expected: None },
        CatalogueEdit::SetTapeState {
            vid: "T2".into(),
            state: TapeState::Disabled,
            reason: Some("it's \"broken\" \\ ✓".into()),
            expected: Some(TapeState::Active),
        },
        CatalogueEdit::EditTape {
            vid: "T3".into(),
            state: None,
            state_reason: None,
            full: Some(true),
            data_on_tape_bytes: Some(77),
            last_fseq: None,
            logical_library: None,
            tape_pool: Some("p1".into()),
        },
        CatalogueEdit::SetDiskSystem {
            name: "missing".into(),
            free_space_bytes: Some(1),
            target_free_space_bytes: None,
            sleep_time: None,
        },
        CatalogueEdit::Reserve { drive: "d0".into(), disk_system: "ds".into(), delta: 500 },
        CatalogueEdit::Reserve { drive: "d0".into(), disk_system: "ds".into(), delta: -200 },
        CatalogueEdit::Reserve { drive: "d1".into(), disk_system: "ds".into(), delta: 5 },
        CatalogueEdit::Reserve { drive: "d1".into(), disk_system: "ds".into(), delta: -5 },
    ]
}

#[tokio::test]
async fn refused_edits_change_nothing_and_readers_keep_what_they_read() {
    let (snapshot, files) = tapesched_tests::catalogue();
    let mem = MemoryCatalogue::new(snapshot, files).unwrap();
    let before = mem.snapshot().await.unwrap();
    let tape = before.tapes["T1"].clone();
    let mut unknown_drive = before.drives["d2"].clone();
    unknown_drive.name = "nowhere".into();
    let mut bad_vid = before.drives["d2"].clone();
    bad_vid.vid = Some("bad vid\n".into());
    let refused = [
        CatalogueEdit::SetVo { name: "nope".into(), read_max_drives: Some(1), write_max_drives: None },
        CatalogueEdit::SetMountPolicy {
            name: "new".into(),
            archive_priority: Some(1),
            archive_min_request_age: None,
            retrieve_priority: None,
            retrieve_min_request_age: None,
        },
        CatalogueEdit::AddTape(tape.clone()),
        CatalogueEdit::EditTape {
            vid: "T1".into(),
            state: Some(TapeState::Disabled),
            state_reason: Some("checked last".into()),
            full: Some(true),
            data_on_tape_bytes: None,
            last_fseq: Some(7),
            logical_library: Some("bad name\n".into()),
            tape_pool: None,
        },
        CatalogueEdit::SetTapeState {
            vid: "T1".into(),
            state: TapeState::Disabled,
            reason: None,
            expected: Some(TapeState::Broken),
        },
        CatalogueEdit::SetTapeState { vid: "T1".into(), state: TapeState::Disabled, reason: None, expected: None },
        CatalogueEdit::SetDrive(unknown_drive),
        CatalogueEdit::SetDrive(bad_vid),
    ];
    for edit in refused {
        assert!(mem.apply(edit.clone()).await.is_err(), "{edit:?} was accepted");
        assert_eq!(*mem.snapshot().await.unwrap(), *before, "{edit:?} changed the snapshot");
    }
    let file = NewTapeFile {
        archive_file_id: 9_999,
        disk_instance: "eos".into(),
        disk_file_id: "9999".into(),
        size: 1,
        storage_class: "sc2".into(),
        copy_nb: 1,
        vid: "NOPE".into(),
    };
    assert!(mem.record_tape_file(file).await.is_err());
    assert_eq!(*mem.snapshot().await.unwrap(), *before);
    // An accepted edit while `before` is held: the holder still sees the old state.
    mem.apply(CatalogueEdit::SetTapeState {
        vid: "T1".into(),
        state: TapeState::Disabled,
        reason: Some("held".into()),
        expected: None,
    })
    .await
    .unwrap();
    assert_eq!(before.tapes["T1"], tape);
    assert_eq!(mem.snapshot().await.unwrap().tapes["T1"].state, TapeState::Disabled);
}

#[tokio::test]
async fn same_edits_same_answers_as_the_memory_catalogue() {
    let (pg, _guard, url, schema) = fresh().await;
    let (snapshot, files) = tapesched_tests::catalogue();
    let mem = MemoryCatalogue::new(snapshot.clone(), files.clone()).unwrap();
    pg.load(snapshot, files).await.unwrap();
    assert_eq!(*pg.snapshot().await.unwrap(), *mem.snapshot().await.unwrap());
    let mut drive = mem.snapshot().await.unwrap().drives["d2"].clone();
    drive.status = DriveStatus::Transferring;
    drive.mount_type = Some(MountType::Retrieve);
    drive.vid = Some("T1".into());
    let mut all = edits();
    all.push(CatalogueEdit::SetDrive(drive.clone()));
    // Down with its reason (stored in cat_drive.reason), then Up again without one.
    let down =
        DriveState { status: DriveStatus::Down, reason: Some("write error: medium error 3/0C00".into()), ..drive };
    all.push(CatalogueEdit::SetDrive(down.clone()));
    all.push(CatalogueEdit::SetDrive(DriveState { status: DriveStatus::Up, reason: None, ..down }));
    for edit in all {
        let a = mem.apply(edit.clone()).await.map_err(|e| e.kind);
        let b = pg.apply(edit.clone()).await.map_err(|e| e.kind);
        assert_eq!(a, b, "{edit:?}");
        assert_eq!(*pg.snapshot().await.unwrap(), *mem.snapshot().await.unwrap(), "after {edit:?}");
    }
    for requested in [None, Some(100), Some(500), None, Some(3)] {
        let a = mem.reserve_archive_file_id(requested).await.map_err(|e| e.kind);
        let b = pg.reserve_archive_file_id(requested).await.map_err(|e| e.kind);
        assert_eq!(a, b, "{requested:?}");
    }
    assert_eq!(mem.next_request_id().await.unwrap(), pg.next_request_id().await.unwrap());
    for (afid, vid, copy) in [(501, "T1", 1), (501, "T3", 2), (100, "T2", 1), (7, "NOPE", 1)] {
        let file = NewTapeFile {
            archive_file_id: afid,
            disk_instance: "eos".into(),
            disk_file_id: format!("{afid}"),
            size: 300_000,
            storage_class: "sc2".into(),
            copy_nb: copy,
            vid: vid.into(),
        };
        let a = mem.record_tape_file(file.clone()).await.map_err(|e| e.kind);
        let b = pg.record_tape_file(file).await.map_err(|e| e.kind);
        assert_eq!(a, b);
    }
    // Several files at once (one transaction in PostgreSQL), then a list naming one copy twice
    // (recorded one by one): the same copies, in order, as the memory catalogue.
    let file = |afid: u64, vid: &str, copy: u32| NewTapeFile {
        archive_file_id: afid,
        disk_instance: "eos".into(),
        disk_file_id: format!("{afid}"),
        size: 1_000_000,
        storage_class: "sc2".into(),
        copy_nb: copy,
        vid: vid.into(),
    };
    for list in [
        vec![file(600, "T1", 1), file(601, "T1", 1), file(100, "T3", 2), file(602, "T1", 1)],
        vec![file(603, "T1", 1), file(603, "T1", 1)],
    ] {
        let a = mem.record_tape_files(list.clone()).await.unwrap();
        let b = pg.record_tape_files(list).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(*pg.snapshot().await.unwrap(), *mem.snapshot().await.unwrap());
    }
    for afid in [100, 101, 501, 600, 601, 602, 603, 999] {
        assert_eq!(mem.archive_file(afid).await.unwrap(), pg.archive_file(afid).await.unwrap(), "file {afid}");
    }
    assert_eq!(*pg.snapshot().await.unwrap(), *mem.snapshot().await.unwrap());
    // Another process's handle sees the same catalogue, and its edits are seen here.
    let other = PgCatalogue::connect(&url, &schema).await.unwrap();
    assert_eq!(*other.snapshot().await.unwrap(), *mem.snapshot().await.unwrap());
    other.apply(CatalogueEdit::SetLogicalLibrary { name: "lib".into(), disabled: false }).await.unwrap();
    assert!(!pg.snapshot().await.unwrap().logical_libraries["lib"].disabled);
}

#[tokio::test]
async fn a_scenario_catalogue_loads() {
    let (pg, _guard, _, _) = fresh().await;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat/examples/retrieve-vo-quota.yaml");
    let scenario = tapesched_scenario::load_scenario(&path).expect("scenario");
    let (snapshot, files) = tapesched_scenario::catalogue::build(&scenario.catalogue, "default").unwrap();
    pg.load(snapshot.clone(), files.clone()).await.unwrap();
    assert_eq!(*pg.snapshot().await.unwrap(), snapshot);
    for f in &files {
        assert_eq!(pg.archive_file(f.archive_file_id).await.unwrap().as_ref(), Some(f));
    }
}
