//! The in-memory catalogue, used by the embedded default backend, scenarios and tests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{
    after_archive_file_id, archive_file_ids_exhausted, check_archive_file, Catalogue, CatalogueEdit, CatalogueSnapshot,
    NewTapeFile,
};
use crate::error::{Error, Result};
use crate::types::{ArchiveFile, TapeFile};

/// Bytes per tape block, used to derive block ids of written files.
pub const BLOCK_SIZE: u64 = 256 * 1024;

struct State {
    snapshot: Arc<CatalogueSnapshot>,
    files: BTreeMap<u64, ArchiveFile>,
    /// (vid, fSeq) -> archive file id: the tape-ordered index repack reads.
    by_tape: BTreeMap<(String, u64), u64>,
    /// The next id to assign; `None` once 2^63-1 was handed out.
    next_archive_file_id: Option<u64>,
    next_request_id: u64,
}

impl State {
    /// Adds (or replaces) copy `written` of `file` in the file list and the tape index.
    fn add_copy(&mut self, file: &NewTapeFile, written: &TapeFile) {
        let entry = self.files.entry(file.archive_file_id).or_insert_with(|| ArchiveFile {
            archive_file_id: file.archive_file_id,
            disk_instance: file.disk_instance.clone(),
            disk_file_id: file.disk_file_id.clone(),
            size: file.size,
            storage_class: file.storage_class.clone(),
            copies: vec![],
        });
        let replaced: Vec<(String, u64)> =
            entry.copies.iter().filter(|c| c.copy_nb == file.copy_nb).map(|c| (c.vid.clone(), c.fseq)).collect();
        entry.copies.retain(|c| c.copy_nb != file.copy_nb);
        entry.copies.push(written.clone());
        entry.copies.sort_by_key(|c| c.copy_nb);
        for key in replaced {
            self.by_tape.remove(&key);
        }
        self.by_tape.insert((written.vid.clone(), written.fseq), file.archive_file_id);
    }
}

/// A catalogue held in process memory; snapshots are shared copy-on-write (an edit copies the
/// snapshot only while a reader still holds it).
pub struct MemoryCatalogue {
    state: Mutex<State>,
}

impl MemoryCatalogue {
    /// A catalogue with the given content, validated.
    pub fn new(snapshot: CatalogueSnapshot, files: Vec<ArchiveFile>) -> Result<Self> {
        snapshot.validate()?;
        let mut by_id = BTreeMap::new();
        for f in files {
            check_archive_file(&f)?;
            if !snapshot.storage_classes.contains_key(&f.storage_class) {
                return Err(Error::not_found(format!(
                    "file {}: storage class {:?} does not exist",
                    f.archive_file_id, f.storage_class
                )));
            }
            for c in &f.copies {
                if !snapshot.tapes.contains_key(&c.vid) {
                    return Err(Error::not_found(format!(
                        "file {}: tape {:?} does not exist",
                        f.archive_file_id, c.vid
                    )));
                }
            }
            if by_id.insert(f.archive_file_id, f).is_some() {
                return Err(Error::conflict("two files share an archive_file_id"));
            }
        }
        let next = by_id.keys().next_back().map_or(Some(1), |k| after_archive_file_id(*k));
        let by_tape = by_id
            .values()
            .flat_map(|f: &ArchiveFile| f.copies.iter().map(|c| ((c.vid.clone(), c.fseq), f.archive_file_id)))
            .collect();
        Ok(MemoryCatalogue {
            state: Mutex::new(State {
                snapshot: Arc::new(snapshot),
                files: by_id,
                by_tape,
                next_archive_file_id: next,
                next_request_id: 1,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Catalogue for MemoryCatalogue {
    async fn snapshot(&self) -> Result<Arc<CatalogueSnapshot>> {
        Ok(self.lock().snapshot.clone())
    }

    async fn apply(&self, edit: CatalogueEdit) -> Result<()> {
        // In place when no reader holds the current snapshot, copied first otherwise (readers
        // keep what they read); a failing edit changes nothing (CatalogueSnapshot::apply checks
        // first), so it needs no copy to throw away.
        Arc::make_mut(&mut self.lock().snapshot).apply(edit)
    }

    async fn archive_file(&self, archive_file_id: u64) -> Result<Option<ArchiveFile>> {
        Ok(self.lock().files.get(&archive_file_id).cloned())
    }

    async fn reserve_archive_file_id(&self, requested: Option<u64>) -> Result<u64> {
        let mut st = self.lock();
        match requested {
            Some(id) => {
                if st.files.contains_key(&id) {
                    return Err(Error::conflict(format!("archive file {id} already exists")));
                }
                crate::bounds::check("archive_file_id", id)?;
                if st.next_archive_file_id.is_some_and(|next| next <= id) {
                    st.next_archive_file_id = after_archive_file_id(id);
                }
                Ok(id)
            }
            None => {
                let id = st.next_archive_file_id.ok_or_else(archive_file_ids_exhausted)?;
                st.next_archive_file_id = after_archive_file_id(id);
                Ok(id)
            }
        }
    }

    async fn next_request_id(&self) -> Result<u64> {
        let mut st = self.lock();
        let id = st.next_request_id;
        st.next_request_id += 1;
        Ok(id)
    }

    async fn record_tape_file(&self, file: NewTapeFile) -> Result<TapeFile> {
        let mut st = self.lock();
        // A failing write changes nothing (write_tape_file checks first).
        let written = Arc::make_mut(&mut st.snapshot).write_tape_file(&file, BLOCK_SIZE)?;
        st.add_copy(&file, &written);
        Ok(written)
    }

    async fn record_tape_files(&self, files: Vec<NewTapeFile>) -> Result<Vec<TapeFile>> {
        // The files before a failing one stay recorded, as with record_tape_file one by one.
        let mut st = self.lock();
        let mut out = Vec::with_capacity(files.len());
        for file in &files {
            let written = Arc::make_mut(&mut st.snapshot).write_tape_file(file, BLOCK_SIZE)?;
            st.add_copy(file, &written);
            out.push(written);
        }
        Ok(out)
    }

    async fn tape_files(&self, vid: &str, after_fseq: u64, limit: u64) -> Result<Vec<ArchiveFile>> {
        let st = self.lock();
        let Some(start) = after_fseq.checked_add(1) else { return Ok(vec![]) };
        Ok(st
            .by_tape
            .range((vid.to_string(), start)..=(vid.to_string(), u64::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .filter_map(|(_, id)| st.files.get(id).cloned())
            .collect())
    }

    async fn tape_copy_classes(&self, vid: &str) -> Result<Vec<(String, u32)>> {
        let st = self.lock();
        let mut out: BTreeSet<(String, u32)> = BTreeSet::new();
        for (_, id) in st.by_tape.range((vid.to_string(), 0)..=(vid.to_string(), u64::MAX)) {
            if let Some(f) = st.files.get(id) {
                for c in f.copies.iter().filter(|c| c.vid == vid) {
                    out.insert((f.storage_class.clone(), c.copy_nb));
                }
            }
        }
        Ok(out.into_iter().collect())
    }
}
