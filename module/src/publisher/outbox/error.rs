//! The outbox's errors, and the disk failure a refused append is told about.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(
        "outbox full: {needed} more bytes do not fit in {max_bytes} (overflow policy reject-new)"
    )]
    Full { needed: u64, max_bytes: u64 },
    #[error("message of {size} bytes cannot be stored (limit {limit} bytes)")]
    TooLarge { size: u64, limit: u64 },
    /// The messages were accepted but a disk operation failed before they were durable: they
    /// are not stored and will not be delivered. Later appends are tried again.
    #[error("outbox {op} failed on {path} ({kind}): messages not stored")]
    Disk {
        op: DiskOp,
        kind: io::ErrorKind,
        path: PathBuf,
    },
    #[error("outbox I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("outbox failed: {0}")]
    Failed(String),
    #[error("outbox data is corrupt: {0}")]
    Corrupt(String),
    #[error("the outbox already has a consumer")]
    ConsumerBusy,
    #[error("outbox closed")]
    Closed,
}

/// The committer's disk operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskOp {
    /// Opening (or creating) a segment file.
    Open,
    /// Making a new segment's directory entry durable.
    SyncDir,
    Write,
    Sync,
}

impl fmt::Display for DiskOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DiskOp::Open => "open",
            DiskOp::SyncDir => "directory fsync",
            DiskOp::Write => "write",
            DiskOp::Sync => "fsync",
        })
    }
}

/// A failed committer operation, kept to answer every commit it refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DiskFailure {
    pub op: DiskOp,
    pub kind: io::ErrorKind,
    pub path: PathBuf,
    /// The system's message, for the log.
    pub message: String,
}

impl DiskFailure {
    /// Maps an `io::Error` of `op` on `path`.
    pub fn of(op: DiskOp, path: &Path) -> impl FnOnce(io::Error) -> DiskFailure + '_ {
        move |e| DiskFailure {
            op,
            kind: e.kind(),
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }

    pub fn to_error(&self) -> OutboxError {
        OutboxError::Disk {
            op: self.op,
            kind: self.kind,
            path: self.path.clone(),
        }
    }
}

impl fmt::Display for DiskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "outbox {} failed on {}: {}",
            self.op,
            self.path.display(),
            self.message
        )
    }
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}
