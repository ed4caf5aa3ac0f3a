//! Builds the scheduler's catalogue from a scenario's `catalogue:` section, mapping every field
//! and filling the defaults of the contract (tapes: no data, fSeq 0, not full, ACTIVE, LTO8;
//! drives: the scheduler's backend name, status Up).

use std::collections::BTreeMap;

use tapesched_scheduler::catalogue::CatalogueSnapshot;
use tapesched_scheduler::types::*;

use crate::model::{CatalogueSpec, TapeSpec, DEFAULT_MEDIA_TYPE};

/// A tape from its spec, with the contract's defaults.
pub fn tape(spec: &TapeSpec) -> Tape {
    Tape {
        vid: spec.vid.clone(),
        tape_pool: spec.tape_pool.clone(),
        logical_library: spec.logical_library.clone(),
        capacity_bytes: spec.capacity_bytes,
        data_on_tape_bytes: spec.data_on_tape_bytes,
        last_fseq: spec.last_fseq,
        full: spec.full,
        state: spec.state.unwrap_or(TapeState::Active),
        state_reason: spec.state_reason.clone(),
        media_type: spec.media_type.clone().unwrap_or_else(|| DEFAULT_MEDIA_TYPE.to_string()),
        vendor: spec.vendor.clone(),
    }
}

fn insert<T>(map: &mut BTreeMap<String, T>, section: &str, index: usize, key: &str, value: T) -> Result<(), String> {
    if map.insert(key.to_string(), value).is_some() {
        return Err(format!("catalogue/{section}/{index}: duplicate name {key:?}"));
    }
    Ok(())
}

/// The snapshot and archive files of a catalogue section; `backend_name` is the scheduler's, given
/// to drives that name none. Duplicate names are refused; references are checked later by
/// [`CatalogueSnapshot::validate`].
pub fn build(spec: &CatalogueSpec, backend_name: &str) -> Result<(CatalogueSnapshot, Vec<ArchiveFile>), String> {
    let mut snap = CatalogueSnapshot::default();
    for (i, d) in spec.disk_instances.iter().enumerate() {
        if !snap.disk_instances.insert(d.clone()) {
            return Err(format!("catalogue/disk_instances/{i}: duplicate name {d:?}"));
        }
    }
    for (i, v) in spec.virtual_organizations.iter().enumerate() {
        let vo = VirtualOrganization {
            name: v.name.clone(),
            read_max_drives: v.read_max_drives,
            write_max_drives: v.write_max_drives,
            is_repack_vo: v.is_repack_vo,
            disk_instance: v.disk_instance.clone(),
        };
        insert(&mut snap.vos, "virtual_organizations", i, &v.name, vo)?;
    }
    for (i, l) in spec.physical_libraries.iter().enumerate() {
        let lib = PhysicalLibrary { name: l.name.clone(), disabled: l.disabled };
        insert(&mut snap.physical_libraries, "physical_libraries", i, &l.name, lib)?;
    }
    for (i, l) in spec.logical_libraries.iter().enumerate() {
        let lib =
            LogicalLibrary { name: l.name.clone(), disabled: l.disabled, physical_library: l.physical_library.clone() };
        insert(&mut snap.logical_libraries, "logical_libraries", i, &l.name, lib)?;
    }
    for (i, p) in spec.tape_pools.iter().enumerate() {
        insert(&mut snap.tape_pools, "tape_pools", i, &p.name, TapePool { name: p.name.clone(), vo: p.vo.clone() })?;
    }
    for (i, s) in spec.storage_classes.iter().enumerate() {
        let sc = StorageClass { name: s.name.clone(), nb_copies: s.nb_copies, vo: s.vo.clone() };
        insert(&mut snap.storage_classes, "storage_classes", i, &s.name, sc)?;
    }
    snap.archive_routes = spec
        .archive_routes
        .iter()
        .map(|r| ArchiveRoute {
            storage_class: r.storage_class.clone(),
            copy_nb: r.copy_nb,
            tape_pool: r.tape_pool.clone(),
            route_type: r.route_type,
        })
        .collect();
    for (i, p) in spec.mount_policies.iter().enumerate() {
        let mp = MountPolicy {
            name: p.name.clone(),
            archive_priority: p.archive_priority,
            archive_min_request_age: p.archive_min_request_age,
            retrieve_priority: p.retrieve_priority,
            retrieve_min_request_age: p.retrieve_min_request_age,
        };
        insert(&mut snap.mount_policies, "mount_policies", i, &p.name, mp)?;
    }
    snap.mount_rules = spec
        .mount_rules
        .iter()
        .map(|r| MountRule {
            kind: r.kind,
            disk_instance: r.disk_instance.clone(),
            name: r.name.clone(),
            mount_policy: r.mount_policy.clone(),
        })
        .collect();
    for (i, d) in spec.disk_systems.iter().enumerate() {
        let ds = DiskSystem {
            name: d.name.clone(),
            file_regexp: d.file_regexp.clone(),
            // No free_space_bytes: as much as any value can say (2^63-1, the bound of integers).
            free_space_bytes: d.free_space_bytes.unwrap_or(tapesched_scheduler::bounds::MAX),
            target_free_space_bytes: d.target_free_space_bytes.unwrap_or(0),
            sleep_time: d.sleep_time.unwrap_or(0),
        };
        insert(&mut snap.disk_systems, "disk_systems", i, &d.name, ds)?;
    }
    for (i, t) in spec.tapes.iter().enumerate() {
        insert(&mut snap.tapes, "tapes", i, &t.vid, tape(t))?;
    }
    for (i, d) in spec.drives.iter().enumerate() {
        let drive = DriveState {
            name: d.name.clone(),
            logical_library: d.logical_library.clone(),
            scheduler_backend: Some(d.scheduler_backend.clone().unwrap_or_else(|| backend_name.to_string())),
            status: DriveStatus::Up,
            mount_type: None,
            vid: None,
            tape_pool: None,
            next_mount_type: None,
            next_vid: None,
            next_tape_pool: None,
            reason: None,
        };
        insert(&mut snap.drives, "drives", i, &d.name, drive)?;
    }
    let mut files = Vec::with_capacity(spec.files.len());
    for (i, f) in spec.files.iter().enumerate() {
        let disk_instance = match &f.disk_instance {
            Some(d) => d.clone(),
            None => snap.disk_instances.iter().next().cloned().ok_or_else(|| {
                format!("catalogue/files/{i}: no disk_instance given and the catalogue has no disk instance")
            })?,
        };
        if !snap.disk_instances.contains(&disk_instance) {
            return Err(format!("catalogue/files/{i}/disk_instance: disk instance {disk_instance:?} does not exist"));
        }
        let mut copies: Vec<TapeFile> = f
            .copies
            .iter()
            .map(|c| TapeFile { copy_nb: c.copy_nb, vid: c.vid.clone(), fseq: c.fseq, block_id: c.block_id })
            .collect();
        copies.sort_by_key(|c| c.copy_nb);
        if copies.windows(2).any(|w| w[0].copy_nb == w[1].copy_nb) {
            return Err(format!("catalogue/files/{i}/copies: two copies share a copy_nb"));
        }
        files.push(ArchiveFile {
            archive_file_id: f.archive_file_id,
            disk_instance,
            disk_file_id: f.disk_file_id.clone().unwrap_or_else(|| f.archive_file_id.to_string()),
            size: f.size,
            storage_class: f.storage_class.clone(),
            copies,
        });
    }
    Ok((snap, files))
}
