//! A catalogue that runs a test's hook before each edit reaches the catalogue it wraps (to
//! record edits, refuse one, or let "another process" apply one first); every other call goes
//! straight through.

use std::sync::Arc;

use async_trait::async_trait;
use tapesched_scheduler::catalogue::{Catalogue, CatalogueEdit, CatalogueSnapshot, NewTapeFile};
use tapesched_scheduler::types::{ArchiveFile, TapeFile};
use tapesched_scheduler::Result;

/// What a [`HookedCatalogue`] runs before each edit.
#[async_trait]
pub trait BeforeApply: Send + Sync {
    /// Runs before `edit` is applied to `inner`; an error is the edit's answer and the edit is
    /// not applied.
    async fn before_apply(&self, inner: &dyn Catalogue, edit: &CatalogueEdit) -> Result<()>;
}

/// `inner` with `hook` run before each of its edits.
pub struct HookedCatalogue<H> {
    /// The catalogue every call reaches.
    pub inner: Arc<dyn Catalogue>,
    /// The test's hook.
    pub hook: H,
}

#[async_trait]
impl<H: BeforeApply> Catalogue for HookedCatalogue<H> {
    async fn snapshot(&self) -> Result<Arc<CatalogueSnapshot>> {
        self.inner.snapshot().await
    }
    async fn apply(&self, edit: CatalogueEdit) -> Result<()> {
        self.hook.before_apply(self.inner.as_ref(), &edit).await?;
        self.inner.apply(edit).await
    }
    async fn archive_file(&self, archive_file_id: u64) -> Result<Option<ArchiveFile>> {
        self.inner.archive_file(archive_file_id).await
    }
    async fn reserve_archive_file_id(&self, requested: Option<u64>) -> Result<u64> {
        self.inner.reserve_archive_file_id(requested).await
    }
    async fn next_request_id(&self) -> Result<u64> {
        self.inner.next_request_id().await
    }
    async fn record_tape_file(&self, file: NewTapeFile) -> Result<TapeFile> {
        self.inner.record_tape_file(file).await
    }
    async fn record_tape_files(&self, files: Vec<NewTapeFile>) -> Result<Vec<TapeFile>> {
        self.inner.record_tape_files(files).await
    }
    async fn next_request_ids(&self, n: u64) -> Result<Vec<u64>> {
        self.inner.next_request_ids(n).await
    }
    async fn tape_files(&self, vid: &str, after_fseq: u64, limit: u64) -> Result<Vec<ArchiveFile>> {
        self.inner.tape_files(vid, after_fseq, limit).await
    }
    async fn tape_copy_classes(&self, vid: &str) -> Result<Vec<(String, u32)>> {
        self.inner.tape_copy_classes(vid).await
    }
}
