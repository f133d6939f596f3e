//! How an appender learns that its messages are durable, or that a disk failure refused them.
//!
//! The committer publishes one watermark for everybody: ids below it are resolved. A disk
//! failure resolves every id not durable yet by refusing it, so the watermark alone cannot
//! tell a durable id from a refused one. Each commit therefore also holds the [`Epoch`] its ids
//! were assigned in (the ids between two failures); the failure that ends an epoch records up
//! to which id it was durable. An epoch is shared by all its commits (one reference count per
//! append, no allocation), and an outcome never changes once set, so a commit may look at it
//! any time later, however many failures and successes came in between.

use std::sync::{Arc, OnceLock};

use tokio::sync::watch;

use super::error::{DiskFailure, OutboxError};

/// What appenders and the consumer wait on: ids below `committed` are resolved.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CommitState {
    pub committed: u64,
}

/// The ids assigned between two disk failures.
#[derive(Debug, Default)]
pub(super) struct Epoch {
    /// Set by the failure that ends the epoch: ids below the first value were durable, the
    /// rest of the epoch's ids were refused because of the second.
    pub end: OnceLock<(u64, DiskFailure)>,
}

/// Messages queued by [`super::Outbox::enqueue`], on their way to disk.
pub struct Commit {
    pub(super) rx: watch::Receiver<CommitState>,
    /// Committed message count at which these messages are resolved.
    pub(super) target: u64,
    /// `None` for an empty commit, durable at once.
    pub(super) epoch: Option<Arc<Epoch>>,
}

impl Commit {
    /// True once the messages are durable or refused: `durable` will not wait.
    pub fn is_done(&self) -> bool {
        self.rx.borrow().committed >= self.target
    }

    /// Resolves once the messages are on disk, or with the disk failure that refused them
    /// ([`OutboxError::Disk`]; they are counted in `/metrics` and never delivered).
    pub async fn durable(mut self) -> Result<(), OutboxError> {
        let target = self.target;
        self.rx
            .wait_for(|c| c.committed >= target)
            .await
            .map_err(|_| OutboxError::Closed)?;
        match self.epoch.as_deref().and_then(|e| e.end.get()) {
            Some((durable, failure)) if target > *durable => Err(failure.to_error()),
            _ => Ok(()),
        }
    }
}
