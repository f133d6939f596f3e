//! The committer thread: writes queued chunks as soon as they come (to the page cache, so the
//! appenders' buffers are freed at once), fsyncs at most once per `commit_interval` for all
//! written since the last sync, publishes the new committed id, deletes finished segments and
//! persists the head.
//!
//! Writing at once instead of at the sync keeps memory flat under load: a burst of appends used
//! to wait in `pending` for the next commit window (≈ 5 ms of the whole pipeline's output).
//!
//! A failed open, write or fsync refuses every message not durable yet (see
//! [`super::index::State::refuse_uncommitted`] and the module documentation); the thread goes
//! on, and tries the next appends in a new segment after [`RETRY_AFTER`].

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::disk::SegmentFile;
use super::error::{DiskFailure, DiskOp};
use super::head::write_head;
use super::index::Chunk;
use super::refusals::{Reason, LOG_INTERVAL};
use super::{Shared, HEAD_PERSIST_INTERVAL};

/// Least time between a disk failure and the next attempt: a full disk is not hammered with a
/// segment created and deleted per append, and appends queued meanwhile share one attempt.
pub(super) const RETRY_AFTER: Duration = Duration::from_millis(100);

/// The segment file being appended to.
struct Active {
    segment: u64,
    file: Box<dyn SegmentFile>,
    /// Bytes known durable: synced, or there when the file was opened. A failure cuts the
    /// file back to this length.
    durable_len: u64,
    written_len: u64,
    /// Messages written since the last sync.
    unsynced: u64,
}

pub(super) fn run(shared: Arc<Shared>) {
    let interval = shared.config.commit_interval;
    let mut active: Option<Active> = None;
    let mut last_sync: Option<Instant> = None;
    let mut last_head_write = Instant::now();
    let mut retry_at: Option<Instant> = None;
    let mut head_warned: Option<Instant> = None;
    // Failed segments whose untrusted tail could not be cut yet: tried again once a write
    // succeeds, so that a restart does not find refused records there.
    let mut uncut: Vec<Active> = Vec::new();
    loop {
        // Under load, syncs are spaced `interval` apart so that every appender arriving
        // meanwhile shares the next one; an idle outbox syncs at once.
        let sync_due = |last: Option<Instant>| last.is_none_or(|t| t.elapsed() >= interval);
        let unsynced = |a: &Option<Active>| a.as_ref().is_some_and(|a| a.unsynced > 0);
        let (chunks, deletes, head, closing) = {
            let mut s = shared.lock();
            loop {
                let may_write = retry_at.is_none_or(|t| Instant::now() >= t);
                if (!s.pending.is_empty() && may_write) || !s.to_delete.is_empty() || s.closed {
                    break;
                }
                if unsynced(&active) && sync_due(last_sync) {
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
                if let Some(t) = last_sync.filter(|_| unsynced(&active)) {
                    wait = wait.min((t + interval).saturating_duration_since(Instant::now()));
                }
                if let Some(t) = retry_at.filter(|_| !s.pending.is_empty()) {
                    wait = wait.min(t.saturating_duration_since(Instant::now()));
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
            let may_write = s.closed || retry_at.is_none_or(|t| Instant::now() >= t);
            let chunks = if may_write {
                std::mem::take(&mut s.pending)
            } else {
                Vec::new()
            };
            (chunks, std::mem::take(&mut s.to_delete), head, s.closed)
        };
        let mut result = Ok(());
        if !chunks.is_empty() {
            result = write_chunks(&shared, &mut active, &chunks);
            drop(chunks);
            if result.is_ok() && !uncut.is_empty() {
                uncut.retain(|a| cut(a).is_err());
            }
        }
        if result.is_ok() && unsynced(&active) && (closing || sync_due(last_sync)) {
            result = sync(&shared, &mut active);
            if result.is_ok() {
                last_sync = Some(Instant::now());
            }
        }
        if let Err(failure) = result {
            uncut.extend(refuse(&shared, active.take(), failure));
            retry_at = Some(Instant::now() + RETRY_AFTER);
        }
        let deletes = {
            // Deletions queued by the failure just handled go now, with the others.
            let mut more = std::mem::take(&mut shared.lock().to_delete);
            more.extend(deletes);
            more
        };
        for id in deletes {
            if active.as_ref().is_some_and(|a| a.segment == id) {
                active = None;
            }
            uncut.retain(|a| a.segment != id);
            let path = shared.segment_path(id);
            match shared.disk.remove_file(&path) {
                Ok(()) => debug!(path = %path.display(), "segment deleted"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => warn!(path = %path.display(), error = %e, "cannot delete segment"),
            }
        }
        if let Some(head) = head {
            if let Err(e) = write_head(shared.disk.as_ref(), &shared.dir, head) {
                // A full disk fails this every time the head moves: warn once per window.
                if head_warned.is_none_or(|t| t.elapsed() >= LOG_INTERVAL) {
                    head_warned = Some(Instant::now());
                    warn!(error = %e, "cannot persist outbox head (logged at most every 10 s)");
                }
            }
            last_head_write = Instant::now();
        }
        if closing {
            let (dirty, head) = {
                let s = shared.lock();
                (s.head_dirty, s.head)
            };
            if dirty {
                let _ = write_head(shared.disk.as_ref(), &shared.dir, head);
            }
            break;
        }
    }
}

/// Appends chunks to their segment files; a segment left behind is synced (and its messages
/// committed) first, so every message before the current file is durable once that file is.
fn write_chunks(
    shared: &Shared,
    active: &mut Option<Active>,
    chunks: &[Chunk],
) -> Result<(), DiskFailure> {
    for chunk in chunks {
        if active.as_ref().map(|a| a.segment) != Some(chunk.segment) {
            sync(shared, active)?;
            *active = None;
            let path = shared.segment_path(chunk.segment);
            let (file, created) = shared
                .disk
                .open_append(&path)
                .map_err(DiskFailure::of(DiskOp::Open, &path))?;
            let len = if created {
                // The new file's directory entry must be durable too, or a crash loses it.
                shared
                    .disk
                    .sync_dir(&shared.dir)
                    .map_err(DiskFailure::of(DiskOp::SyncDir, &shared.dir))?;
                0
            } else {
                file.size().map_err(DiskFailure::of(DiskOp::Open, &path))?
            };
            *active = Some(Active {
                segment: chunk.segment,
                file,
                durable_len: len,
                written_len: len,
                unsynced: 0,
            });
        }
        if let Some(a) = active.as_mut() {
            a.file.write_all(&chunk.bytes).map_err(DiskFailure::of(
                DiskOp::Write,
                &shared.segment_path(a.segment),
            ))?;
            a.written_len += chunk.bytes.len() as u64;
            a.unsynced += chunk.messages;
        }
    }
    Ok(())
}

/// Syncs what was written to the active file and commits its messages.
fn sync(shared: &Shared, active: &mut Option<Active>) -> Result<(), DiskFailure> {
    let Some(a) = active.as_mut().filter(|a| a.unsynced > 0) else {
        return Ok(());
    };
    a.file.sync_data().map_err(DiskFailure::of(
        DiskOp::Sync,
        &shared.segment_path(a.segment),
    ))?;
    a.durable_len = a.written_len;
    let n = std::mem::take(&mut a.unsynced);
    let committed = {
        let mut s = shared.lock();
        s.committed += n;
        s.committed
    };
    shared.diag.pipeline.outbox_appended.add(n);
    shared.commit_tx.send_modify(|c| c.committed = committed);
    Ok(())
}

/// Refuses every message not durable yet (index, counters, commits) and cuts the failed
/// segment back to its durable records; answers the segment if that failed too.
fn refuse(shared: &Shared, active: Option<Active>, failure: DiskFailure) -> Option<Active> {
    let ((from, to), refused) = {
        let mut s = shared.lock();
        let r = s.refuse_uncommitted(failure.clone());
        shared.publish_gauges(&s);
        r
    };
    // Counted before the commits learn it, so a caller told sees the count.
    shared
        .refusals
        .record(&shared.diag.pipeline, Reason::Disk, refused, &failure);
    shared.commit_tx.send_modify(|c| c.committed = to);
    // The bytes after the durable records cannot be trusted (a failed fsync may have dropped
    // them, a full disk may have taken half a record): cut them so that recovery finds a clean
    // end. A segment holding only refused records is deleted instead.
    let a = active.filter(|a| a.segment < from)?;
    match cut(&a) {
        Ok(()) => None,
        Err(e) => {
            debug!(error = %e, "cannot cut the failed outbox segment yet");
            Some(a)
        }
    }
}

/// Cuts a failed segment back to its durable records, durably.
fn cut(a: &Active) -> io::Result<()> {
    a.file.set_len(a.durable_len)?;
    a.file.sync_all()
}
