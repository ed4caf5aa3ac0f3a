//! Older layouts of stored objects that this build still reads: request objects of format
//! version 2, written before requests carried a repack link (and retrieves a pass token). Each
//! is decoded into its old shape and converted; the next write stores the current version.

use std::collections::BTreeMap;

use serde::Deserialize;
use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::types::*;

use super::{Owner, StoredArchive, StoredRetrieve};

#[derive(Deserialize)]
struct ArchiveRequestV2 {
    archive_file_id: u64,
    disk_instance: String,
    disk_file_id: String,
    requester: Requester,
    storage_class: String,
    size: u64,
    created_at: Timestamp,
    report_url: Option<String>,
    error_report_url: Option<String>,
    policy: QueuedPolicy,
    jobs: Vec<ArchiveJob>,
    report_decided: bool,
}

#[derive(Deserialize)]
struct StoredArchiveV2 {
    request: ArchiveRequestV2,
    owners: BTreeMap<u32, Owner>,
}

#[derive(Deserialize)]
struct RetrieveRequestV2 {
    request_id: u64,
    archive_file_id: u64,
    disk_instance: String,
    requester: Requester,
    size: u64,
    dst_url: String,
    report_url: Option<String>,
    error_report_url: Option<String>,
    created_at: Timestamp,
    activity: Option<String>,
    verify_only: bool,
    disk_system: Option<String>,
    policy: QueuedPolicy,
    copies: Vec<RetrieveCopy>,
    active_vid: String,
    status: RetrieveStatus,
    failure_reasons: Vec<String>,
}

#[derive(Deserialize)]
struct StoredRetrieveV2 {
    request: RetrieveRequestV2,
    owner: Owner,
}

/// A version-2 archive request object.
pub(super) fn archive_v2(payload: &[u8]) -> postcard::Result<(StoredArchive, &[u8])> {
    let (old, rest) = postcard::take_from_bytes::<StoredArchiveV2>(payload)?;
    let r = old.request;
    let request = ArchiveRequest {
        archive_file_id: r.archive_file_id,
        disk_instance: r.disk_instance,
        disk_file_id: r.disk_file_id,
        requester: r.requester,
        storage_class: r.storage_class,
        size: r.size,
        created_at: r.created_at,
        report_url: r.report_url,
        error_report_url: r.error_report_url,
        policy: r.policy,
        jobs: r.jobs,
        report_decided: r.report_decided,
        repack: None,
    };
    Ok((StoredArchive { request, owners: old.owners }, rest))
}

/// A version-2 retrieve request object.
pub(super) fn retrieve_v2(payload: &[u8]) -> postcard::Result<(StoredRetrieve, &[u8])> {
    let (old, rest) = postcard::take_from_bytes::<StoredRetrieveV2>(payload)?;
    let r = old.request;
    let request = RetrieveRequest {
        request_id: r.request_id,
        archive_file_id: r.archive_file_id,
        disk_instance: r.disk_instance,
        requester: r.requester,
        size: r.size,
        dst_url: r.dst_url,
        report_url: r.report_url,
        error_report_url: r.error_report_url,
        created_at: r.created_at,
        activity: r.activity,
        verify_only: r.verify_only,
        disk_system: r.disk_system,
        policy: r.policy,
        copies: r.copies,
        active_vid: r.active_vid,
        status: r.status,
        failure_reasons: r.failure_reasons,
        repack: None,
    };
    Ok((StoredRetrieve { request, owner: old.owner, pass: None }, rest))
}
