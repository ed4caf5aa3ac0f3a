//! The repack buffer on a local or mounted file system: `file://` URLs.
//!
//! Repack only asks a buffer which files a tape's folder holds (and their sizes), creates the
//! folder and removes a file once its copies are written ([`RepackBuffer`]); this is that for
//! `file:///path` URLs. Other schemes (`root://`, `eos://`) are refused with `invalid_argument`
//! naming the URL: a disk system of those kinds is reached by the tape daemon, not by this build.

use std::path::PathBuf;

use async_trait::async_trait;
use tapesched_scheduler::repack::RepackBuffer;
use tapesched_scheduler::{Error, Result};

/// A [`RepackBuffer`] on the file system, for `file://` URLs.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsBuffer;

fn path_of(url: &str) -> Result<PathBuf> {
    let parsed = url::Url::parse(url).map_err(|e| Error::invalid(format!("buffer url {url:?}: {e}")))?;
    if parsed.scheme() != "file" {
        return Err(Error::invalid(format!("buffer url {url:?}: only file:// buffers can be reached by this process")));
    }
    parsed.to_file_path().map_err(|()| Error::invalid(format!("buffer url {url:?} is not a local path")))
}

fn io(what: &str, url: &str, e: std::io::Error) -> Error {
    Error::unavailable(format!("repack buffer: cannot {what} {url:?}")).caused_by(e)
}

#[async_trait]
impl RepackBuffer for FsBuffer {
    async fn dir_exists(&self, dir: &str) -> Result<bool> {
        let p = path_of(dir)?;
        Ok(tokio::fs::metadata(&p).await.is_ok_and(|m| m.is_dir()))
    }
    async fn create_dir(&self, dir: &str) -> Result<()> {
        let p = path_of(dir)?;
        tokio::fs::create_dir_all(&p).await.map_err(|e| io("create", dir, e))
    }
    async fn sizes(&self, dir: &str, names: &[String]) -> Result<Vec<Option<u64>>> {
        let p = path_of(dir)?;
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            out.push(tokio::fs::metadata(p.join(n)).await.ok().filter(|m| m.is_file()).map(|m| m.len()));
        }
        Ok(out)
    }
    async fn put(&self, url: &str, size: u64) -> Result<()> {
        let p = path_of(url)?;
        let f = tokio::fs::File::create(&p).await.map_err(|e| io("write", url, e))?;
        f.set_len(size).await.map_err(|e| io("write", url, e))
    }
    async fn remove(&self, url: &str) -> Result<()> {
        let p = path_of(url)?;
        match tokio::fs::remove_file(&p).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", url, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_folder_its_files_and_their_removal() {
        let root = std::env::temp_dir().join(format!("tapesched-buffer-{}", std::process::id()));
        let base = format!("file://{}", root.display());
        let dir = format!("{base}/V1/");
        let b = FsBuffer;
        assert!(!b.dir_exists(&dir).await.unwrap());
        b.create_dir(&dir).await.unwrap();
        assert!(b.dir_exists(&dir).await.unwrap());
        b.put(&format!("{dir}000000001"), 42).await.unwrap();
        let names = vec!["000000001".to_string(), "000000002".to_string()];
        assert_eq!(b.sizes(&dir, &names).await.unwrap(), vec![Some(42), None]);
        b.remove(&format!("{dir}000000001")).await.unwrap();
        b.remove(&format!("{dir}000000001")).await.unwrap();
        assert_eq!(b.sizes(&dir, &names).await.unwrap(), vec![None, None]);
        assert_eq!(
            b.dir_exists("root://eos//x/").await.unwrap_err().kind,
            tapesched_scheduler::ErrorKind::InvalidArgument
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
