//! The outbox owns every telemetry message from the moment the encoder hands it over until the
//! broker has acknowledged it, so that a broker outage or a `kill -9` loses nothing.
//!
//! It is a segmented append-only log, like vector's disk buffer: records (`record.rs`) are
//! appended to numbered segment files, each message gets a sequential id, and one background
//! thread writes what appenders queue as it comes and fsyncs everything written since its last
//! sync (group commit: one fsync per group, at most one per `commit_interval`). An `append` resolves only
//! once its records are durable. The single [`Consumer`] reads committed records in order,
//! the transport [`Outbox::ack`]s them in any order, and the head advances over contiguous
//! acknowledged ids; segments wholly behind the head are deleted. The head is persisted to a
//! small file at most every [`HEAD_PERSIST_INTERVAL`] without fsync: after a crash at most that
//! much is sent again, which at-least-once delivery allows.
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
//! A failed write or fsync stops the outbox from accepting more (every later `append` fails with
//! [`OutboxError::Failed`]): after a failed fsync Linux may have dropped the dirty pages, so
//! nothing written since the last good sync can be trusted. Reopening recovers.

mod consumer;
mod record;
mod refusals;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use super::metrics::PublisherDiagnostics;
use record::EncodedBatch;
use refusals::{Reason, Refusals};

pub use consumer::{Consumer, Delivery};

/// How often an advanced head is written to disk: the most a restart sends twice.
pub const HEAD_PERSIST_INTERVAL: Duration = Duration::from_millis(200);

const SEGMENT_SUFFIX: &str = ".seg";
const HEAD_FILE: &str = "head";
const DONE: u32 = 1 << 31;

/// Configuration of the outbox; `Default` holds the shipped defaults.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    pub dir: PathBuf,
    /// Upper bound of the live (unacknowledged) records' bytes.
    pub max_bytes: u64,
    pub overflow: OverflowPolicy,
    /// Minimum time between two fsyncs: the group-commit window under load.
    pub commit_interval: Duration,
    /// A segment file is closed and a new one started once it reaches this size.
    pub segment_bytes: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/module/outbox"),
            max_bytes: 1 << 30,
            overflow: OverflowPolicy::DropOldest,
            commit_interval: Duration::from_millis(5),
            segment_bytes: 64 << 20,
        }
    }
}

/// What `append` does when the outbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// Remove the oldest messages not yet sent (then the oldest in flight), counted in
    /// `outbox_dropped_messages` / `outbox_dropped_bytes`.
    DropOldest,
    /// Refuse the new messages with [`OutboxError::Full`]; the caller counts and retries.
    RejectNew,
}

impl FromStr for OverflowPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "drop-oldest" => Ok(Self::DropOldest),
            "reject-new" => Ok(Self::RejectNew),
            _ => Err(format!(
                "unknown overflow policy '{s}' (use drop-oldest or reject-new)"
            )),
        }
    }
}

/// One telemetry message as the transport will publish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(
        "outbox full: {needed} more bytes do not fit in {max_bytes} (overflow policy reject-new)"
    )]
    Full { needed: u64, max_bytes: u64 },
    #[error("message of {size} bytes cannot be stored (limit {limit} bytes)")]
    TooLarge { size: u64, limit: u64 },
    #[error("outbox I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("outbox stopped accepting messages after a failed disk write: {0}")]
    Failed(String),
    #[error("outbox data is corrupt: {0}")]
    Corrupt(String),
    #[error("the outbox already has a consumer")]
    ConsumerBusy,
    #[error("outbox closed")]
    Closed,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What appenders and the consumer wait on: ids below `committed` are durable.
#[derive(Debug, Clone, Copy, Default)]
struct CommitState {
    committed: u64,
    failed: bool,
}

/// Bytes queued by appenders for one segment, not yet written.
struct Chunk {
    segment: u64,
    bytes: Bytes,
    messages: u64,
}

struct State {
    /// First id not yet acknowledged or dropped.
    head: u64,
    /// Next id the consumer will be given.
    cursor: u64,
    /// Next id to assign.
    tail: u64,
    /// Ids below this are durable.
    committed: u64,
    /// One entry per id in `head..tail`: record size, `DONE` bit once acknowledged or dropped.
    entries: VecDeque<u32>,
    live_messages: u64,
    live_bytes: u64,
    /// First ids of the segment files, oldest first; the last one is being appended to.
    /// Invariant: `segments[0]` holds the record `head` (or is the active segment).
    segments: VecDeque<u64>,
    /// Byte offset of record `head` within `segments[0]`.
    head_offset: u64,
    /// Bytes assigned to the active segment, written or queued.
    active_bytes: u64,
    pending: Vec<Chunk>,
    to_delete: Vec<u64>,
    head_dirty: bool,
    failure: Option<String>,
    closed: bool,
    has_consumer: bool,
}

impl State {
    fn entry(&self, id: u64) -> Option<u32> {
        id.checked_sub(self.head)
            .and_then(|i| self.entries.get(i as usize).copied())
    }

    /// Marks `id` acknowledged or dropped; answers its record size if it was live.
    fn mark_done(&mut self, id: u64) -> Option<u32> {
        let i = id.checked_sub(self.head)? as usize;
        let e = self.entries.get_mut(i)?;
        if *e & DONE != 0 {
            return None;
        }
        let size = *e;
        *e |= DONE;
        self.live_messages -= 1;
        self.live_bytes -= size as u64;
        Some(size)
    }

    fn advance_head(&mut self) {
        let before = self.head;
        while let Some(&e) = self.entries.front() {
            if e & DONE == 0 {
                break;
            }
            self.entries.pop_front();
            self.head += 1;
            self.head_offset += (e & !DONE) as u64;
            while self.segments.len() > 1 && self.segments[1] <= self.head {
                if let Some(old) = self.segments.pop_front() {
                    self.to_delete.push(old);
                }
                self.head_offset = 0;
            }
        }
        if self.cursor < self.head {
            self.cursor = self.head;
        }
        if self.head != before {
            self.head_dirty = true;
        }
    }

    /// Drops the oldest unsent message, else the oldest in flight; answers its size.
    fn drop_oldest(&mut self) -> Option<u32> {
        while self.cursor < self.tail {
            let id = self.cursor;
            self.cursor += 1;
            if let Some(size) = self.mark_done(id) {
                self.advance_head();
                return Some(size);
            }
        }
        for id in self.head..self.cursor {
            if let Some(size) = self.mark_done(id) {
                self.advance_head();
                return Some(size);
            }
        }
        None
    }
}

struct Shared {
    dir: PathBuf,
    config: OutboxConfig,
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

/// The disk store-and-forward queue between encoder and transport.
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
        tokio::task::spawn_blocking(move || Self::open_blocking(config, diag))
            .await
            .map_err(|e| OutboxError::Failed(format!("outbox open task failed: {e}")))?
    }

    fn open_blocking(
        config: OutboxConfig,
        diag: Arc<PublisherDiagnostics>,
    ) -> Result<Arc<Outbox>, OutboxError> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let state = recover(&dir)?;
        info!(
            dir = %dir.display(),
            messages = state.live_messages,
            bytes = state.live_bytes,
            head = state.head,
            "outbox opened"
        );
        let (commit_tx, _) = watch::channel(CommitState {
            committed: state.committed,
            failed: false,
        });
        let shared = Arc::new(Shared {
            dir,
            config,
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
            .spawn(move || committer(for_thread))
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
                shared: self.shared.clone(),
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
        let target = {
            let mut s = self.shared.lock();
            if let Some(f) = &s.failure {
                return Err(OutboxError::Failed(f.clone()));
            }
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
            self.assign(&mut s, &mut batch);
            self.shared.publish_gauges(&s);
            s.tail
        };
        self.shared.work.notify_one();
        Ok(Commit {
            rx,
            target,
            shared: self.shared.clone(),
        })
    }

    /// Counts (and, rate-limited, logs) a refused batch; answers the error for the caller.
    fn refuse(&self, reason: Reason, messages: u64, error: OutboxError) -> OutboxError {
        self.shared
            .refusals
            .record(&self.shared.diag.pipeline, reason, messages, &error);
        error
    }

    /// Gives the batch its ids, splits it at segment boundaries and queues it for the committer.
    fn assign(&self, s: &mut State, batch: &mut EncodedBatch) {
        let segment_bytes = self.shared.config.segment_bytes;
        if s.segments.is_empty() {
            s.segments.push_back(s.tail);
            s.active_bytes = 0;
        }
        let mut chunk_start = 0usize;
        let mut chunk_messages = 0u64;
        for i in 0..batch.records.len() {
            let size = batch.record_size(i);
            if s.active_bytes > 0 && s.active_bytes + size as u64 > segment_bytes {
                let start = batch.records[i].0;
                if start > chunk_start {
                    let segment = *s.segments.back().unwrap_or(&s.tail);
                    let bytes = batch.buf[chunk_start..start].to_vec();
                    s.pending.push(Chunk {
                        segment,
                        bytes: Bytes::from(bytes),
                        messages: chunk_messages,
                    });
                }
                chunk_start = start;
                chunk_messages = 0;
                s.segments.push_back(s.tail);
                s.active_bytes = 0;
            }
            let id = s.tail;
            batch.seal(i, id);
            s.tail += 1;
            s.entries.push_back(size);
            s.live_messages += 1;
            s.live_bytes += size as u64;
            s.active_bytes += size as u64;
            chunk_messages += 1;
        }
        let segment = *s.segments.back().unwrap_or(&s.tail);
        let rest = batch.buf.split_off(chunk_start).freeze();
        s.pending.push(Chunk {
            segment,
            bytes: rest,
            messages: chunk_messages,
        });
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

/// Messages queued by [`Outbox::enqueue`], on their way to disk.
pub struct Commit {
    rx: watch::Receiver<CommitState>,
    /// Committed message count at which these messages are durable.
    target: u64,
    shared: Arc<Shared>,
}

impl Commit {
    /// True once the messages are durable (or the outbox failed): `durable` will not wait.
    pub fn is_done(&self) -> bool {
        let c = self.rx.borrow();
        c.committed >= self.target || c.failed
    }

    /// Resolves once the messages are on disk, or with the outbox's failure.
    pub async fn durable(mut self) -> Result<(), OutboxError> {
        let target = self.target;
        let state = self
            .rx
            .wait_for(|c| c.committed >= target || c.failed)
            .await
            .map_err(|_| OutboxError::Closed)?;
        if state.committed >= target {
            Ok(())
        } else {
            drop(state);
            Err(OutboxError::Failed(
                self.shared.lock().failure.clone().unwrap_or_default(),
            ))
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.close();
    }
}

/// The committer thread: writes queued chunks as soon as they come (to the page cache, so the
/// appenders' buffers are freed at once), fsyncs at most once per `commit_interval` for all
/// written since the last sync, publishes the new committed id, deletes finished segments and
/// persists the head.
///
/// Writing at once instead of at the sync keeps memory flat under load: a burst of appends used
/// to wait in `pending` for the next commit window (≈ 5 ms of the whole pipeline's output).
fn committer(shared: Arc<Shared>) {
    let interval = shared.config.commit_interval;
    let mut file: Option<(u64, File)> = None;
    let mut last_sync: Option<Instant> = None;
    let mut last_head_write = Instant::now();
    // Messages written but not yet synced.
    let mut unsynced: u64 = 0;
    loop {
        // Under load, syncs are spaced `interval` apart so that every appender arriving
        // meanwhile shares the next one; an idle outbox syncs at once.
        let sync_due = |last: Option<Instant>| last.is_none_or(|t| t.elapsed() >= interval);
        let (chunks, deletes, head, closing) = {
            let mut s = shared.lock();
            loop {
                if !s.pending.is_empty() || !s.to_delete.is_empty() || s.closed {
                    break;
                }
                if unsynced > 0 && sync_due(last_sync) {
                    break;
                }
                let head_due = s.head_dirty && last_head_write.elapsed() >= HEAD_PERSIST_INTERVAL;
                if head_due {
                    break;
                }
                let mut wait = if s.head_dirty {
                    HEAD_PERSIST_INTERVAL.saturating_sub(last_head_write.elapsed())
                } else {
                    Duration::from_secs(3600)
                };
                if let Some(t) = last_sync.filter(|_| unsynced > 0) {
                    wait = wait.min((t + interval).saturating_duration_since(Instant::now()));
                }
                s = shared
                    .work
                    .wait_timeout(s, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            let head = if s.head_dirty
                && (s.closed
                    || !s.to_delete.is_empty()
                    || last_head_write.elapsed() >= HEAD_PERSIST_INTERVAL)
            {
                s.head_dirty = false;
                Some(s.head)
            } else {
                None
            };
            let failed = s.failure.is_some();
            let chunks = if failed {
                Vec::new()
            } else {
                std::mem::take(&mut s.pending)
            };
            (chunks, std::mem::take(&mut s.to_delete), head, s.closed)
        };
        let mut result = Ok(());
        if !chunks.is_empty() {
            let messages: u64 = chunks.iter().map(|c| c.messages).sum();
            result = write_chunks(&shared, &mut file, &chunks);
            drop(chunks);
            if result.is_ok() {
                unsynced += messages;
            }
        }
        if result.is_ok() && unsynced > 0 && (closing || sync_due(last_sync)) {
            result = sync_file(&shared, &file);
            if result.is_ok() {
                last_sync = Some(Instant::now());
                let committed = {
                    let mut s = shared.lock();
                    s.committed += unsynced;
                    s.committed
                };
                shared.diag.pipeline.outbox_appended.add(unsynced);
                shared.commit_tx.send_modify(|c| c.committed = committed);
                unsynced = 0;
            }
        }
        if let Err(e) = result {
            error!(error = %e, "outbox write failed; refusing further appends until restart");
            file = None;
            unsynced = 0;
            shared.lock().failure = Some(e.to_string());
            shared.commit_tx.send_modify(|c| c.failed = true);
        }
        for id in deletes {
            if file.as_ref().is_some_and(|(f, _)| *f == id) {
                file = None;
            }
            let path = shared.segment_path(id);
            match fs::remove_file(&path) {
                Ok(()) => debug!(path = %path.display(), "acknowledged segment deleted"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => warn!(path = %path.display(), error = %e, "cannot delete segment"),
            }
        }
        if let Some(head) = head {
            if let Err(e) = write_head(&shared.dir, head) {
                warn!(error = %e, "cannot persist outbox head");
            }
            last_head_write = Instant::now();
        }
        if closing {
            let (dirty, head) = {
                let s = shared.lock();
                (s.head_dirty, s.head)
            };
            if dirty {
                let _ = write_head(&shared.dir, head);
            }
            break;
        }
    }
}

/// Appends chunks to their segment files; a segment left behind is synced first, so every
/// message before the current file is durable once that file is.
fn write_chunks(
    shared: &Shared,
    file: &mut Option<(u64, File)>,
    chunks: &[Chunk],
) -> Result<(), OutboxError> {
    for chunk in chunks {
        if file.as_ref().map(|(id, _)| *id) != Some(chunk.segment) {
            if let Some((id, f)) = file.take() {
                f.sync_data().map_err(io_err(&shared.segment_path(id)))?;
            }
            let path = shared.segment_path(chunk.segment);
            let created = !path.exists();
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            if created {
                // The new file's directory entry must be durable too, or a crash loses it.
                File::open(&shared.dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io_err(&shared.dir))?;
            }
            *file = Some((chunk.segment, f));
        }
        if let Some((id, f)) = file.as_mut() {
            f.write_all(&chunk.bytes)
                .map_err(io_err(&segment_path(&shared.dir, *id)))?;
        }
    }
    Ok(())
}

fn sync_file(shared: &Shared, file: &Option<(u64, File)>) -> Result<(), OutboxError> {
    if let Some((id, f)) = file.as_ref() {
        f.sync_data().map_err(io_err(&shared.segment_path(*id)))?;
    }
    Ok(())
}

/// The head file: `head: u64 LE ‖ CRC-32(head): u32 LE`, replaced by rename so a reader sees
/// the old or the new value, never a mix.
fn write_head(dir: &Path, head: u64) -> io::Result<()> {
    let mut buf = [0u8; 12];
    buf[..8].copy_from_slice(&head.to_le_bytes());
    let crc = crc32fast::hash(&buf[..8]);
    buf[8..].copy_from_slice(&crc.to_le_bytes());
    let tmp = dir.join("head.tmp");
    fs::write(&tmp, buf)?;
    fs::rename(&tmp, dir.join(HEAD_FILE))
}

fn read_head(dir: &Path) -> Option<u64> {
    let buf = fs::read(dir.join(HEAD_FILE)).ok()?;
    if buf.len() != 12 {
        warn!("outbox head file damaged; resending from the oldest segment");
        return None;
    }
    let head = u64::from_le_bytes(buf[..8].try_into().ok()?);
    let crc = u32::from_le_bytes(buf[8..].try_into().ok()?);
    if crc32fast::hash(&buf[..8]) != crc {
        warn!("outbox head file damaged; resending from the oldest segment");
        return None;
    }
    Some(head)
}

/// Rebuilds the state from the segment files: validates every record, truncates a damaged
/// tail, deletes segments behind the head.
fn recover(dir: &Path) -> Result<State, OutboxError> {
    let mut firsts = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SEGMENT_SUFFIX)) else {
            continue;
        };
        match stem.parse::<u64>() {
            Ok(id) => firsts.push(id),
            Err(_) => warn!(file = ?name, "unexpected file in outbox directory ignored"),
        }
    }
    firsts.sort_unstable();
    let mut head = read_head(dir).unwrap_or(0);
    if let Some(&first) = firsts.first() {
        head = head.max(first);
    }
    let mut entries: VecDeque<u32> = VecDeque::new();
    let mut segments = VecDeque::new();
    let mut head_offset = 0u64;
    let mut active_bytes = 0u64;
    let mut tail = head;
    let (mut live_messages, mut live_bytes) = (0u64, 0u64);
    for (i, &first) in firsts.iter().enumerate() {
        let path = segment_path(dir, first);
        let next = firsts.get(i + 1).copied();
        let last = next.is_none();
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let file_len = f.metadata().map_err(io_err(&path))?.len();
        let scan = record::scan(&mut f, file_len, first).map_err(io_err(&path))?;
        let mut end = first + scan.sizes.len() as u64;
        let mut sizes = scan.sizes;
        if let Some(next) = next {
            if end > next {
                // Overlapping segments can only come from outside interference: keep the ids
                // the next segment does not claim.
                error!(path = %path.display(), "outbox segment overlaps the next one");
                sizes.truncate((next - first) as usize);
                end = next;
            }
        }
        let valid_len: u64 = sizes.iter().map(|&s| s as u64).sum();
        if let Some(damage) = &scan.damage {
            if last {
                warn!(path = %path.display(), %damage, dropped_bytes = scan.file_len - valid_len,
                    "outbox: torn tail after a crash truncated");
            } else {
                error!(path = %path.display(), %damage, lost_bytes = scan.file_len - valid_len,
                    "outbox: corrupt segment truncated; records after the damage are lost");
            }
        }
        if valid_len < scan.file_len {
            f.set_len(valid_len).map_err(io_err(&path))?;
            f.sync_all().map_err(io_err(&path))?;
        }
        if end <= head && !last {
            fs::remove_file(&path).map_err(io_err(&path))?;
            continue;
        }
        if segments.is_empty() {
            // The first kept segment holds the head.
            let skip = head.saturating_sub(first).min(sizes.len() as u64) as usize;
            head_offset = sizes[..skip].iter().map(|&s| s as u64).sum();
            head = head.max(first).min(end);
            tail = head;
        }
        if tail < first {
            // Ids lost between segments (a damaged segment before): fill the index with done
            // entries so that ids stay contiguous.
            error!(
                lost = first - tail,
                "outbox: messages lost to a damaged segment"
            );
            entries.extend(std::iter::repeat_n(DONE, (first - tail) as usize));
            tail = first;
        }
        for &size in &sizes[(tail - first) as usize..] {
            entries.push_back(size);
            live_messages += 1;
            live_bytes += size as u64;
        }
        tail = end;
        segments.push_back(first);
        active_bytes = valid_len;
    }
    let mut state = State {
        head,
        cursor: head,
        tail,
        committed: tail,
        entries,
        live_messages,
        live_bytes,
        segments,
        head_offset,
        active_bytes,
        pending: Vec::new(),
        to_delete: Vec::new(),
        head_dirty: false,
        failure: None,
        closed: false,
        has_consumer: false,
    };
    // Ids lost to damage sit at the front as done entries: step over them now.
    state.advance_head();
    Ok(state)
}
