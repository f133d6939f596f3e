//! The outbox's single reader: hands out committed messages oldest first, each with the id the
//! MQTT sink acknowledges, and starts over from the oldest unacknowledged one on `rewind`.
//!
//! Records are read from the segment files (in practice from the page cache, since they were
//! just written) in large chunks on the blocking pool; payloads are slices of the read buffer,
//! so a batch costs a few allocations, not one per message.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::watch;

use super::commit::CommitState;
use super::index::DONE;
use super::record::{self, Header, HEADER_LEN};
use super::{segment_path, Message, Outbox, OutboxError};

const READ_CHUNK: usize = 64 << 10;

/// A message handed to the MQTT sink, with the id to acknowledge it by.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: u64,
    pub message: Message,
}

pub struct Consumer {
    outbox: Arc<Outbox>,
    reader: Option<Reader>,
    rx: watch::Receiver<CommitState>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").finish_non_exhaustive()
    }
}

impl Consumer {
    pub(super) fn new(outbox: Arc<Outbox>) -> Result<Self, OutboxError> {
        let rx = outbox.shared.commit_tx.subscribe();
        {
            let mut s = outbox.shared.lock();
            if s.has_consumer {
                return Err(OutboxError::ConsumerBusy);
            }
            s.has_consumer = true;
        }
        let mut c = Self {
            outbox,
            reader: None,
            rx,
        };
        c.rewind();
        Ok(c)
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Forgets what was handed out: the next batch starts at the oldest unacknowledged message
    /// (acknowledged ones after it are skipped). Call after a connection loss.
    pub fn rewind(&mut self) {
        let shared = &self.outbox.shared;
        let mut s = shared.lock();
        s.cursor = s.head;
        let segment = s.segments.front().copied().unwrap_or(s.tail);
        self.reader = Some(Reader {
            dir: shared.dir.clone(),
            segment,
            offset: s.head_offset,
            file: None,
            buf: BytesMut::new(),
            next_id: s.head,
        });
    }

    /// Resolves once an unsent committed message is waiting. Cancel-safe, for `select!`.
    pub async fn ready(&mut self) -> Result<(), OutboxError> {
        loop {
            self.rx.borrow_and_update();
            if self.available(1).is_some() {
                return Ok(());
            }
            self.rx.changed().await.map_err(|_| OutboxError::Closed)?;
        }
    }

    /// The range of ids to read next, and the segments to find them in.
    fn available(&self, max_messages: usize) -> Option<(u64, u64, Vec<u64>)> {
        let mut s = self.outbox.shared.lock();
        while s.cursor < s.committed && s.entry(s.cursor).is_none_or(|e| e & DONE != 0) {
            s.cursor += 1;
        }
        let readable = s.readable_end(s.cursor);
        (s.cursor < readable).then(|| {
            let end = readable.min(s.cursor + max_messages as u64);
            (s.cursor, end, s.segments.iter().copied().collect())
        })
    }

    /// Waits for at least one unsent committed message, then answers up to `max_messages` of
    /// them (fewer once `max_bytes` of payload is reached), oldest first. Not cancel-safe: a
    /// cancelled read starts over from the oldest unacknowledged message.
    pub async fn next_batch(
        &mut self,
        max_messages: usize,
        max_bytes: usize,
    ) -> Result<Vec<Delivery>, OutboxError> {
        let max_messages = max_messages.max(1);
        let (from, end, segments) = loop {
            self.ready().await?;
            if let Some(range) = self.available(max_messages) {
                break range;
            }
        };
        let reader = match self.reader.take() {
            Some(r) => r,
            None => {
                self.rewind();
                self.reader.take().ok_or(OutboxError::Closed)?
            }
        };
        let (reader, result) = tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            let r = reader.read(from, end, &segments, max_bytes);
            (reader, r)
        })
        .await
        .map_err(|e| OutboxError::Failed(format!("outbox read task failed: {e}")))?;
        let read = match result {
            Ok(read) => {
                self.reader = Some(reader);
                read
            }
            Err(e) => return Err(e),
        };
        let mut s = self.outbox.shared.lock();
        let out: Vec<Delivery> = read
            .into_iter()
            .filter(|d| s.entry(d.id).is_some_and(|e| e & DONE == 0))
            .collect();
        if let Some(reader) = &self.reader {
            s.cursor = s.cursor.max(reader.next_id);
        }
        Ok(out)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.outbox.shared.lock().has_consumer = false;
    }
}

/// A position in the log: the record `next_id` starts at `offset` of segment `segment`
/// (minus what is already in `buf`).
struct Reader {
    dir: PathBuf,
    segment: u64,
    /// File offset the next read starts at.
    offset: u64,
    file: Option<File>,
    buf: BytesMut,
    next_id: u64,
}

impl Reader {
    fn path(&self) -> PathBuf {
        segment_path(&self.dir, self.segment)
    }

    fn io(&self) -> impl FnOnce(io::Error) -> OutboxError {
        let path = self.path();
        move |source| OutboxError::Io { path, source }
    }

    fn move_to(&mut self, segment: u64) {
        self.segment = segment;
        self.offset = 0;
        self.file = None;
        self.buf.clear();
        self.next_id = self.next_id.max(segment);
    }

    /// Makes `buf` hold at least `n` bytes; false at end of file.
    fn fill(&mut self, n: usize) -> Result<bool, OutboxError> {
        if self.file.is_none() {
            let mut f = File::open(self.path()).map_err(self.io())?;
            f.seek(SeekFrom::Start(self.offset)).map_err(self.io())?;
            self.file = Some(f);
        }
        while self.buf.len() < n {
            let start = self.buf.len();
            self.buf.resize(start + (n - start).max(READ_CHUNK), 0);
            let r = match self.file.as_mut() {
                Some(f) => f.read(&mut self.buf[start..]),
                None => Ok(0),
            };
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    self.buf.truncate(start);
                    return Err(self.io()(e));
                }
            };
            self.buf.truncate(start + r);
            self.offset += r as u64;
            if r == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads records up to id `end`, keeping those from `from` on.
    fn read(
        &mut self,
        from: u64,
        end: u64,
        segments: &[u64],
        max_bytes: usize,
    ) -> Result<Vec<super::Delivery>, OutboxError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while self.next_id < end && bytes < max_bytes {
            let next_segment = segments.iter().copied().find(|&f| f > self.segment);
            if let Some(n) = next_segment {
                // Ids between the reader and `from` are done; when the next segment starts at
                // or before `from`, they may be a disk failure's hole, whose bytes are not
                // parsed: jump over them.
                if self.next_id >= n || from >= n {
                    self.move_to(n);
                    continue;
                }
            }
            if !self.fill(HEADER_LEN)? {
                match next_segment {
                    // Ids missing at the end of a damaged segment were recorded as lost.
                    Some(n) => {
                        self.move_to(n);
                        continue;
                    }
                    None => {
                        return Err(OutboxError::Corrupt(format!(
                            "record {} is committed but missing from {}",
                            self.next_id,
                            self.path().display()
                        )))
                    }
                }
            }
            let h = Header::parse(&self.buf[..HEADER_LEN]);
            let total = HEADER_LEN + h.len as usize;
            if !h.plausible() || !self.fill(total)? {
                return Err(self.corrupt("implausible or partial record"));
            }
            let _ = self.buf.split_to(HEADER_LEN);
            let body = self.buf.split_to(h.len as usize).freeze();
            if !h.verify(&body) || h.id != self.next_id {
                return Err(self.corrupt("checksum or id mismatch"));
            }
            let id = self.next_id;
            self.next_id += 1;
            if id >= from {
                bytes += body.len();
                out.push(super::Delivery {
                    id,
                    message: record::decode_body(body),
                });
            }
        }
        Ok(out)
    }

    fn corrupt(&mut self, what: &str) -> OutboxError {
        // Start this segment over on the next attempt rather than parse from the middle.
        self.file = None;
        self.buf.clear();
        OutboxError::Corrupt(format!(
            "{what} for record {} in {}",
            self.next_id,
            self.path().display()
        ))
    }
}
