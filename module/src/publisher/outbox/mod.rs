//! The outbox owns every telemetry message from the moment the encoder hands it over until the
//! broker has acknowledged it, so that a broker outage or a `kill -9` loses nothing.
//!
//! It is a segmented append-only log, like vector's disk buffer: records (`record.rs`) are
//! appended to numbered segment files, each message gets a sequential id, and one background
//! thread (`committer.rs`) writes what appenders queue as it comes and fsyncs everything
//! written since its last sync (group commit: one fsync per group, at most one per
//! `commit_interval`). An `append` resolves only once its records are durable. The single
//! [`Consumer`] reads committed records in order, the MQTT sink [`Outbox::ack`]s them in any
//! order, and the head advances over contiguous acknowledged ids (`index.rs`); segments wholly
//! behind the head are deleted. The head is persisted to a small file (`head.rs`) at most every
//! [`HEAD_PERSIST_INTERVAL`] without fsync: after a crash at most that much is sent again, which
//! at-least-once delivery allows. `recovery.rs` rebuilds the index at open. Every file operation
//! of the committer and of recovery goes through the `disk.rs` seam.
//!
//! A purpose-built log instead of a crate: the embedded stores at hand (redb, sqlite) would
//! cost a B-tree update per message and an allocation storm per commit, while this needs one
//! buffer per append and one `write` + `fdatasync` per group.
//!
//! Memory: an index of 4 bytes per held message (its record size and a done bit), so 1 GiB of
//! 5 KB messages costs ≈ 800 KB.
//!
//! Disk use is bounded by `max_bytes` counted over live (not yet acknowledged or dropped)
//! records; files may hold up to one more segment of already-acknowledged records until the
//! head leaves that segment.
//!
//! A failed open, write or fsync (a full disk, a failing one) refuses every message not
//! durable yet: each of their [`Commit`]s answers [`OutboxError::Disk`] naming the operation
//! and the error kind, they are counted in `/metrics` (`outbox_rejected_messages_total`,
//! reason `disk_error`) and logged at most every 10 s, and they are never delivered (their ids
//! are skipped). They are refused, not retried, because after a failed fsync Linux may have
//! dropped the dirty pages, so nothing written since the last good sync can be trusted, and
//! keeping the bytes to write them again would hold the whole pipeline's output in memory for
//! as long as the disk stays full; the caller has the messages and decides. Messages durable
//! before the failure stay and are delivered. The failed segment is cut back to its durable
//! records (if even that fails, again after the next successful write; only a crash before
//! then can bring refused records back, delivered at the next start) and never appended to
//! again; the outbox goes on, and the next appends (after `committer::RETRY_AFTER`) go to a
//! new segment, so a disk that frees up needs no restart. A batch that straddled a segment
//! boundary may be refused with its first part already durable: that part is delivered.

mod commit;
mod committer;
mod config;
mod consumer;
mod disk;
mod error;
mod head;
mod index;
mod record;
mod recovery;
mod refusals;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_disk_faults;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::metrics::PublisherDiagnostics;
use commit::CommitState;
use disk::{Disk, StdDisk};
use error::io_err;
use index::State;
use record::EncodedBatch;
use refusals::{Reason, Refusals};

pub use commit::Commit;
pub use config::{OutboxConfig, OverflowPolicy};
pub use consumer::{Consumer, Delivery};
pub use error::{DiskOp, OutboxError};

/// How often an advanced head is written to disk: the most a restart sends twice.
pub const HEAD_PERSIST_INTERVAL: Duration = Duration::from_millis(200);

const SEGMENT_SUFFIX: &str = ".seg";

/// One telemetry message as the MQTT sink will publish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
}

struct Shared {
    dir: PathBuf,
    config: OutboxConfig,
    disk: Arc<dyn Disk>,
    state: Mutex<State>,
    /// Wakes the committer thread.
    work: Condvar,
    commit_tx: watch::Sender<CommitState>,
    diag: Arc<PublisherDiagnostics>,
    refusals: Refusals,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn segment_path(&self, first_id: u64) -> PathBuf {
        segment_path(&self.dir, first_id)
    }

    fn publish_gauges(&self, s: &State) {
        let p = &self.diag.pipeline;
        p.outbox_messages.set(s.live_messages as i64);
        p.outbox_bytes.set(s.live_bytes as i64);
    }
}

fn segment_path(dir: &Path, first_id: u64) -> PathBuf {
    dir.join(format!("{first_id:020}{SEGMENT_SUFFIX}"))
}

/// The disk store-and-forward queue between encoder and MQTT sink.
pub struct Outbox {
    shared: Arc<Shared>,
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Opens (or creates) the outbox in `config.dir`, recovering what a previous run left:
    /// a torn or corrupt tail is truncated, fully acknowledged segments are deleted.
    pub async fn open(
        config: OutboxConfig,
        diag: Arc<PublisherDiagnostics>,
    ) -> Result<Arc<Outbox>, OutboxError> {
        Self::open_on(config, diag, Arc::new(StdDisk)).await
    }

    /// Opens the outbox on `disk`: the real file system, or one that fails on purpose.
    async fn open_on(
        config: OutboxConfig,
        diag: Arc<PublisherDiagnostics>,
        disk: Arc<dyn Disk>,
    ) -> Result<Arc<Outbox>, OutboxError> {
        tokio::task::spawn_blocking(move || Self::open_blocking(config, diag, disk))
            .await
            .map_err(|e| OutboxError::Failed(format!("outbox open task failed: {e}")))?
    }

    fn open_blocking(
        config: OutboxConfig,
        diag: Arc<PublisherDiagnostics>,
        disk: Arc<dyn Disk>,
    ) -> Result<Arc<Outbox>, OutboxError> {
        let dir = config.dir.clone();
        disk.create_dir_all(&dir).map_err(io_err(&dir))?;
        let state = recovery::recover(disk.as_ref(), &dir)?;
        info!(
            dir = %dir.display(),
            messages = state.live_messages,
            bytes = state.live_bytes,
            head = state.head,
            "outbox opened"
        );
        let (commit_tx, _) = watch::channel(CommitState {
            committed: state.committed,
        });
        let shared = Arc::new(Shared {
            dir,
            config,
            disk,
            state: Mutex::new(state),
            work: Condvar::new(),
            commit_tx,
            diag,
            refusals: Refusals::default(),
        });
        shared.publish_gauges(&shared.lock());
        let for_thread = shared.clone();
        let committer = std::thread::Builder::new()
            .name("outbox-commit".into())
            .spawn(move || committer::run(for_thread))
            .map_err(|e| OutboxError::Failed(format!("cannot start outbox thread: {e}")))?;
        Ok(Arc::new(Outbox {
            shared,
            committer: Mutex::new(Some(committer)),
        }))
    }

    /// Resolves once the messages are durable on disk; concurrent appenders share one fsync
    /// (group commit).
    pub async fn append(&self, messages: Vec<Message>) -> Result<(), OutboxError> {
        self.enqueue(messages)?.durable().await
    }

    /// Queues messages for the committer without waiting: answers the [`Commit`] that
    /// resolves once they are durable. Messages are durable, and sent, in the order they were
    /// queued, so a caller may go on with its next messages while this commit is under way.
    pub fn enqueue(&self, messages: Vec<Message>) -> Result<Commit, OutboxError> {
        let rx = self.shared.commit_tx.subscribe();
        if messages.is_empty() {
            return Ok(Commit {
                rx,
                target: 0,
                epoch: None,
            });
        }
        let config = &self.shared.config;
        let count = messages.len() as u64;
        let mut batch = match EncodedBatch::encode(&messages) {
            Ok(batch) => batch,
            Err(size) => {
                return Err(self.refuse(
                    Reason::TooLarge,
                    count,
                    OutboxError::TooLarge {
                        size: size as u64,
                        limit: record::MAX_BODY as u64,
                    },
                ))
            }
        };
        let needed = batch.buf.len() as u64;
        if needed > config.max_bytes {
            return Err(self.refuse(
                Reason::TooLarge,
                count,
                OutboxError::TooLarge {
                    size: needed,
                    limit: config.max_bytes,
                },
            ));
        }
        let (target, epoch) = {
            let mut s = self.shared.lock();
            if s.closed {
                return Err(OutboxError::Closed);
            }
            if s.live_bytes + needed > config.max_bytes {
                match config.overflow {
                    OverflowPolicy::RejectNew => {
                        drop(s);
                        return Err(self.refuse(
                            Reason::Full,
                            count,
                            OutboxError::Full {
                                needed,
                                max_bytes: config.max_bytes,
                            },
                        ));
                    }
                    OverflowPolicy::DropOldest => {
                        let (mut n, mut bytes) = (0u64, 0u64);
                        while s.live_bytes + needed > config.max_bytes {
                            match s.drop_oldest() {
                                Some(size) => {
                                    n += 1;
                                    bytes += size as u64;
                                }
                                None => break,
                            }
                        }
                        let p = &self.shared.diag.pipeline;
                        p.outbox_dropped_messages.add(n);
                        p.outbox_dropped_bytes.add(bytes);
                        warn!(
                            messages = n,
                            bytes, "outbox full: dropped the oldest messages"
                        );
                    }
                }
            }
            s.assign(&mut batch, config.segment_bytes);
            self.shared.publish_gauges(&s);
            (s.tail, s.epoch.clone())
        };
        self.shared.work.notify_one();
        Ok(Commit {
            rx,
            target,
            epoch: Some(epoch),
        })
    }

    /// Counts (and, rate-limited, logs) a refused batch; answers the error for the caller.
    fn refuse(&self, reason: Reason, messages: u64, error: OutboxError) -> OutboxError {
        self.shared
            .refusals
            .record(&self.shared.diag.pipeline, reason, messages, &error);
        error
    }

    /// The one reader of the outbox; it starts at the oldest unacknowledged message.
    pub fn consumer(self: &Arc<Self>) -> Result<Consumer, OutboxError> {
        Consumer::new(self.clone())
    }

    /// The broker has the message: it leaves the outbox once every older one has too.
    /// Unknown or already acknowledged ids are ignored.
    pub fn ack(&self, id: u64) {
        self.finish(id, false);
    }

    /// The message can never be delivered (e.g. larger than the broker accepts): it leaves the
    /// outbox like an acknowledged one but is counted as dropped.
    pub fn discard(&self, id: u64) {
        self.finish(id, true);
    }

    fn finish(&self, id: u64, dropped: bool) {
        let mut s = self.shared.lock();
        if id >= s.cursor {
            debug!(id, "ack for a message never handed out ignored");
            return;
        }
        if let Some(size) = s.mark_done(id) {
            if dropped {
                let p = &self.shared.diag.pipeline;
                p.outbox_dropped_messages.inc();
                p.outbox_dropped_bytes.add(size as u64);
            }
            let (had_deletes, was_dirty) = (s.to_delete.len(), s.head_dirty);
            s.advance_head();
            self.shared.publish_gauges(&s);
            if s.to_delete.len() > had_deletes || (s.head_dirty && !was_dirty) {
                self.shared.work.notify_one();
            }
        }
    }

    /// Messages held (not yet acknowledged or dropped) and their bytes on disk.
    pub fn len(&self) -> (u64, u64) {
        let s = self.shared.lock();
        (s.live_messages, s.live_bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.len().0 == 0
    }

    /// The directory this outbox lives in.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Writes what is queued, persists the head and stops the committer; later appends fail
    /// with [`OutboxError::Closed`]. Also done on drop.
    pub fn close(&self) {
        {
            let mut s = self.shared.lock();
            s.closed = true;
        }
        self.shared.work.notify_one();
        let handle = self
            .committer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.close();
    }
}
