//! Request builders shared by the objectstore integration tests.

use tapesched_scheduler::types::*;

/// A one-copy archive request of 100 bytes for `pool`, created at `created_at`.
pub fn archive_request(id: u64, pool: &str, created_at: i64) -> ArchiveRequest {
    ArchiveRequest {
        archive_file_id: id,
        disk_instance: "eos".into(),
        disk_file_id: format!("{id}"),
        requester: Requester { name: "u".into(), group: "g".into() },
        storage_class: "sc".into(),
        size: 100,
        created_at,
        report_url: Some("eos://r".into()),
        error_report_url: None,
        policy: QueuedPolicy { name: "mp".into(), priority: 1, min_request_age: 0 },
        jobs: vec![ArchiveJob::new(1, pool)],
        report_decided: false,
    }
}
