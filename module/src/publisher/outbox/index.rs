//! The in-memory index of the log: which ids exist, their record sizes, which are done, where
//! the segments start, and the bytes appenders queued for the committer. One mutex (in
//! `Shared`) guards it; every method here runs under that lock, so each is short and does no
//! I/O.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use super::commit::Epoch;
use super::error::DiskFailure;
use super::record::EncodedBatch;

/// The index entry's "acknowledged or dropped" bit; the rest is the record size.
pub(super) const DONE: u32 = 1 << 31;

/// Bytes queued by appenders for one segment, not yet written.
pub(super) struct Chunk {
    pub segment: u64,
    pub bytes: Bytes,
    pub messages: u64,
}

pub(super) struct State {
    /// First id not yet acknowledged or dropped.
    pub head: u64,
    /// Next id the consumer will be given.
    pub cursor: u64,
    /// Next id to assign.
    pub tail: u64,
    /// Ids below this are resolved: durable, or refused by a disk failure (then done, and
    /// inside one of `holes`).
    pub committed: u64,
    /// One entry per id in `head..tail`: record size, `DONE` bit once acknowledged or dropped.
    pub entries: VecDeque<u32>,
    pub live_messages: u64,
    pub live_bytes: u64,
    /// First ids of the segment files, oldest first; the last one is being appended to.
    /// Invariant: `segments[0]` holds the record `head` (or is the active segment).
    pub segments: VecDeque<u64>,
    /// Byte offset of record `head` within `segments[0]`.
    pub head_offset: u64,
    /// Bytes assigned to the active segment, written or queued.
    pub active_bytes: u64,
    /// The next append starts a new segment: the active one ends in bytes a disk failure
    /// left untrusted, and nothing may be appended behind them.
    pub roll: bool,
    /// Id ranges `[start, end)` refused by a disk failure, not yet behind the head. Their
    /// records may be missing or half-written on disk, so the consumer never reads across
    /// one (`readable_end`).
    pub holes: VecDeque<(u64, u64)>,
    /// The ids assigned since the last disk failure; the next failure records its outcome.
    pub epoch: Arc<Epoch>,
    pub pending: Vec<Chunk>,
    pub to_delete: Vec<u64>,
    pub head_dirty: bool,
    pub closed: bool,
    pub has_consumer: bool,
}

impl State {
    pub fn entry(&self, id: u64) -> Option<u32> {
        id.checked_sub(self.head)
            .and_then(|i| self.entries.get(i as usize).copied())
    }

    /// Marks `id` acknowledged or dropped; answers its record size if it was live.
    pub fn mark_done(&mut self, id: u64) -> Option<u32> {
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

    pub fn advance_head(&mut self) {
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
            while self.holes.front().is_some_and(|&(_, end)| end <= self.head) {
                self.holes.pop_front();
            }
        }
    }

    /// Drops the oldest unsent message, else the oldest in flight; answers its size.
    pub fn drop_oldest(&mut self) -> Option<u32> {
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

    /// Gives the batch its ids, splits it at segment boundaries and queues it for the committer.
    pub fn assign(&mut self, batch: &mut EncodedBatch, segment_bytes: u64) {
        if self.segments.is_empty() || self.roll {
            if self.segments.is_empty() {
                self.head_offset = 0;
            }
            self.segments.push_back(self.tail);
            self.active_bytes = 0;
            self.roll = false;
        }
        let mut chunk_start = 0usize;
        let mut chunk_messages = 0u64;
        for i in 0..batch.records.len() {
            let size = batch.record_size(i);
            if self.active_bytes > 0 && self.active_bytes + size as u64 > segment_bytes {
                let start = batch.records[i].0;
                if start > chunk_start {
                    let segment = *self.segments.back().unwrap_or(&self.tail);
                    let bytes = batch.buf[chunk_start..start].to_vec();
                    self.pending.push(Chunk {
                        segment,
                        bytes: Bytes::from(bytes),
                        messages: chunk_messages,
                    });
                }
                chunk_start = start;
                chunk_messages = 0;
                self.segments.push_back(self.tail);
                self.active_bytes = 0;
            }
            let id = self.tail;
            batch.seal(i, id);
            self.tail += 1;
            self.entries.push_back(size);
            self.live_messages += 1;
            self.live_bytes += size as u64;
            self.active_bytes += size as u64;
            chunk_messages += 1;
        }
        let segment = *self.segments.back().unwrap_or(&self.tail);
        let rest = batch.buf.split_off(chunk_start).freeze();
        self.pending.push(Chunk {
            segment,
            bytes: rest,
            messages: chunk_messages,
        });
    }

    /// A disk operation failed: every id not durable yet (written but not synced, or still
    /// queued) is refused. Their ids become a hole, segments holding nothing else are queued
    /// for deletion, the next append starts a new segment, and the epoch records which ids
    /// were durable so each [`super::Commit`] learns its own outcome. Answers the refused
    /// ids and how many of them were still live (the rest had been dropped already).
    pub fn refuse_uncommitted(&mut self, failure: DiskFailure) -> ((u64, u64), u64) {
        let (from, to) = (self.committed, self.tail);
        self.pending.clear();
        let mut refused = 0;
        for id in from.max(self.head)..to {
            if self.mark_done(id).is_some() {
                refused += 1;
            }
        }
        while self.segments.back().is_some_and(|&first| first >= from) {
            if let Some(first) = self.segments.pop_back() {
                self.to_delete.push(first);
            }
        }
        self.roll = true;
        self.committed = to;
        match self.holes.back_mut() {
            Some(last) if last.1 == from => last.1 = to,
            _ if from < to => self.holes.push_back((from, to)),
            _ => {}
        }
        let _ = self.epoch.end.set((from, failure));
        self.epoch = Arc::new(Epoch::default());
        self.advance_head();
        if self.segments.is_empty() {
            self.head_offset = 0;
        }
        ((from, to), refused)
    }

    /// Where a read starting at `cursor` must stop: the committed end, or the start of the
    /// first hole after `cursor`, whose bytes on disk are not to be parsed.
    pub fn readable_end(&self, cursor: u64) -> u64 {
        self.holes
            .iter()
            .find(|&&(start, _)| start >= cursor)
            .map_or(self.committed, |&(start, _)| start.min(self.committed))
    }
}
