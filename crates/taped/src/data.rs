//! The data path of a transfer: what moves between disk and tape for one job, switchable between
//! the simulator's sizes and real files ([`DataPath`]).
//!
//! * Archive: the source is read from its `file://` disk URL (the request's disk file id when it
//!   is a `file://` URL), its adler32 computed (as CTA), and the file is written to tape with its
//!   size and checksum ([`Library::write_file`]); in `files` mode its bytes are kept under
//!   `<tape_dir>/<VID>/<fSeq>`, since no library here stores bytes.
//! * Retrieve: the file is read from tape ([`Library::read_file`], which gives the checksum it was
//!   written with); in `files` mode its bytes are read back, their adler32 compared with the
//!   tape's, and written to the destination `file://` URL.
//! * In `sizes` mode no byte moves: an archived file's checksum is the adler32 of its archive file
//!   id, so a retrieve still checks that the tape gave back the file it asked for.
//!
//! A failure is a [`Transfer`] outcome: a file-level failure (source missing, checksum mismatch,
//! bad file on tape) fails that job with its reason; a drive failure or a full tape ends the mount
//! and hands the job back.

use std::path::{Path, PathBuf};

use tapesched_library::{Library, LibraryError};
use tapesched_scheduler::db::MountJob;

use crate::config::DataMode;

/// How data moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataPath {
    /// No byte moves (the simulator).
    Sizes,
    /// Files on `file://` URLs; tape files' bytes under the directory.
    Files(PathBuf),
}

impl DataPath {
    /// The data path of a configuration's `[data]`.
    pub fn new(mode: DataMode, tape_dir: Option<&Path>) -> DataPath {
        match (mode, tape_dir) {
            (DataMode::Files, Some(d)) => DataPath::Files(d.to_path_buf()),
            _ => DataPath::Sizes,
        }
    }
}

/// The outcome of one job's transfer.
#[derive(Debug)]
pub enum Transfer {
    /// Done.
    Done,
    /// The job failed; the reason names the URL, file or checksum.
    Failed(String),
    /// The tape is full: the file was not written; the mount ends.
    TapeFull(String),
    /// The drive failed: the mount ends and the drive goes Down with the reason.
    DriveFailed(String),
}

/// The adler32 of a byte string.
pub fn adler32(bytes: &[u8]) -> u32 {
    let mut a = adler2::Adler32::new();
    a.write_slice(bytes);
    a.checksum()
}

/// The path of a `file://` URL.
fn file_path(url: &str) -> Result<PathBuf, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("bad URL {url:?}: {e}"))?;
    if parsed.scheme() != "file" {
        return Err(format!("URL {url} is not a file:// URL"));
    }
    parsed.to_file_path().map_err(|()| format!("URL {url} names no local file"))
}

fn classify(e: LibraryError) -> Transfer {
    match e {
        LibraryError::TapeFull { .. } => Transfer::TapeFull(e.to_string()),
        LibraryError::BadFile { .. } | LibraryError::NoSuchFile { .. } => Transfer::Failed(e.to_string()),
        other => Transfer::DriveFailed(other.to_string()),
    }
}

/// Moves one job's data on `drive` holding tape `vid`.
pub async fn transfer(path: &DataPath, library: &dyn Library, drive: &str, vid: &str, job: &MountJob) -> Transfer {
    match job {
        MountJob::Archive { request, .. } => {
            let (size, checksum, bytes) = match path {
                DataPath::Sizes => (request.size, adler32(&request.archive_file_id.to_le_bytes()), None),
                DataPath::Files(_) => {
                    let url = &request.disk_file_id;
                    let file = match file_path(url) {
                        Ok(p) => p,
                        Err(e) => {
                            return Transfer::Failed(format!("source of archive file {}: {e}", request.archive_file_id))
                        }
                    };
                    let bytes = match std::fs::read(&file) {
                        Ok(b) => b,
                        Err(e) => return Transfer::Failed(format!("cannot read source {url}: {e}")),
                    };
                    if bytes.len() as u64 != request.size {
                        return Transfer::Failed(format!(
                            "source {url} holds {} bytes, the request says {}",
                            bytes.len(),
                            request.size
                        ));
                    }
                    (request.size, adler32(&bytes), Some(bytes))
                }
            };
            let pos = match library.write_file(drive, size, checksum).await {
                Ok(p) => p,
                Err(e) => return classify(e),
            };
            if let (DataPath::Files(dir), Some(bytes)) = (path, bytes) {
                let dest = dir.join(vid).join(pos.fseq.to_string());
                let written =
                    std::fs::create_dir_all(dest.parent().unwrap_or(dir)).and_then(|()| std::fs::write(&dest, bytes));
                if let Err(e) = written {
                    return Transfer::DriveFailed(format!("cannot keep the tape file {}: {e}", dest.display()));
                }
            }
            Transfer::Done
        }
        MountJob::Retrieve { request } => {
            let Some(copy) = request.active_copy() else {
                return Transfer::Failed(format!("retrieve {} has no copy on {vid}", request.request_id));
            };
            let meta = match library.read_file(drive, copy.fseq).await {
                Ok(m) => m,
                Err(e) => return classify(e),
            };
            match path {
                DataPath::Sizes => {
                    let expected = adler32(&request.archive_file_id.to_le_bytes());
                    if meta.checksum != expected || meta.size != request.size {
                        return Transfer::Failed(format!(
                            "checksum mismatch: fseq {} on {vid} holds {} bytes adler32 {:08x}, archive file {} is {} bytes adler32 {expected:08x}",
                            copy.fseq, meta.size, meta.checksum, request.archive_file_id, request.size
                        ));
                    }
                    Transfer::Done
                }
                DataPath::Files(dir) => {
                    let src = dir.join(vid).join(copy.fseq.to_string());
                    let bytes = match std::fs::read(&src) {
                        Ok(b) => b,
                        Err(e) => return Transfer::Failed(format!("cannot read tape file {}: {e}", src.display())),
                    };
                    let got = adler32(&bytes);
                    if got != meta.checksum {
                        return Transfer::Failed(format!(
                            "checksum mismatch: fseq {} on {vid} was written with adler32 {:08x}, read back {got:08x}",
                            copy.fseq, meta.checksum
                        ));
                    }
                    let dst = match file_path(&request.dst_url) {
                        Ok(p) => p,
                        Err(e) => return Transfer::Failed(format!("destination: {e}")),
                    };
                    if let Err(e) = std::fs::write(&dst, &bytes) {
                        return Transfer::Failed(format!("cannot write destination {}: {e}", request.dst_url));
                    }
                    Transfer::Done
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_of_known_strings() {
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(b""), 1);
    }

    #[test]
    fn file_urls() {
        assert_eq!(file_path("file:///tmp/x").unwrap(), PathBuf::from("/tmp/x"));
        assert!(file_path("root://eos/x").unwrap_err().contains("not a file:// URL"));
    }
}
