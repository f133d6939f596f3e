//! The outbox's I/O seam: every file operation of the committer and of recovery goes through
//! [`Disk`], so that tests can make a write or an fsync fail the way a full or failing disk
//! does, and see what the outbox tells its callers.
//!
//! The seam is crossed once per file operation (a `write` carries a whole chunk of appends),
//! never per message, so the dynamic dispatch costs nothing next to the system call behind it.
//! [`StdDisk`] is the production implementation: plain `std::fs`.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

/// The file-system operations the outbox needs.
pub(crate) trait Disk: Send + Sync + std::fmt::Debug {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the directory's entries.
    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Opens a segment for appending, creating it if missing; answers whether it was created
    /// (its directory entry then needs a [`Disk::sync_dir`]).
    fn open_append(&self, path: &Path) -> io::Result<(Box<dyn SegmentFile>, bool)>;
    /// Opens an existing segment to read, and possibly truncate, it.
    fn open_existing(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
    /// Makes the directory's entries (created, renamed files) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
}

/// An open segment file.
pub(crate) trait SegmentFile: Read + Send {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn sync_data(&self) -> io::Result<()>;
    fn sync_all(&self) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn size(&self) -> io::Result<u64>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StdDisk;

impl Disk for StdDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }

    fn open_append(&self, path: &Path) -> io::Result<(Box<dyn SegmentFile>, bool)> {
        let created = !path.exists();
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        Ok((Box::new(f), created))
    }

    fn open_existing(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(f))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        fs::write(path, bytes)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
}

impl SegmentFile for File {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        Write::write_all(self, bytes)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}
