//! The configuration file on disk: crash-safe replacement and change detection.
//!
//! A write goes to a temporary file in the same directory, is fsynced, renamed over the
//! original and the directory is fsynced, so a power cut leaves either the old or the new
//! configuration, never half of one. Changes are detected by polling (size, mtime, inode) and
//! confirmed by a content hash: polling works on every file system a container may mount,
//! where inotify-style watchers often stay silent.

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use sha1::{Digest, Sha1};

/// What `stat` says about the file; a change in any member is worth reading the file for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub len: u64,
    pub modified: Option<SystemTime>,
    pub inode: u64,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        }
    }
}

pub type ContentHash = [u8; 20];

pub fn hash(bytes: &[u8]) -> ContentHash {
    Sha1::digest(bytes).into()
}

/// The file's stamp, or `None` when it does not exist.
pub fn stamp(path: &Path) -> std::io::Result<Option<FileStamp>> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(FileStamp::of(&m))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The file's bytes and stamp, or `None` when it does not exist.
pub fn read(path: &Path) -> std::io::Result<Option<(Vec<u8>, FileStamp)>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::io::Read::read_to_end(&mut f, &mut bytes)?;
    Ok(Some((bytes, FileStamp::of(&meta))))
}

/// Makes a rename durable. Best effort: some file systems refuse to open a directory.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Replaces `path` with `bytes` atomically; keeps the permissions of the file it replaces.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<FileStamp> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "publishednodes.json".into());
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(dir);
        std::fs::metadata(path).map(|m| FileStamp::of(&m))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_atomically_and_leaves_no_temporary_files() {
        let dir = std::env::temp_dir().join(format!("iiot-file-{}", uuid::Uuid::new_v4()));
        let path = dir.join("pn.json");
        assert_eq!(read(&path).unwrap(), None);
        let a = write_atomic(&path, b"[1]").unwrap();
        let b = write_atomic(&path, b"[1,2]").unwrap();
        assert_ne!(a, b);
        let (bytes, s) = read(&path).unwrap().unwrap();
        assert_eq!(bytes, b"[1,2]");
        assert_eq!(s, b);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        assert_ne!(hash(b"[1]"), hash(b"[1,2]"));
    }
}
