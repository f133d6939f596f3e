//! The on-disk record: one framed message, self-checking so that recovery can tell a complete
//! record from a torn or corrupt one without any other metadata.
//!
//! ```text
//! len: u32 LE | crc: u32 LE | id: u64 LE | flags: u8 | topic_len: u16 LE | topic | payload
//! └──────────── header (16) ──────────────┘└──────────────── body (len bytes) ───────────┘
//! crc = CRC-32(len ‖ id ‖ body)
//! ```
//!
//! The id is inside the record (and the CRC) so that a record copied or left over from another
//! position is never taken for the one expected there. The body's CRC is computed outside the
//! outbox lock; the id is folded in under the lock with `crc32fast::Hasher::combine`, which is
//! O(log n) and does not re-read the payload.

use std::io::{self, Read};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::Message;

pub(super) const HEADER_LEN: usize = 16;
/// Largest body accepted; keeps a record's size below the index's "done" bit and rejects a
/// garbage length during recovery before it allocates.
pub(super) const MAX_BODY: usize = 1 << 28;
const FLAG_RETAIN: u8 = 1;

/// Encodes `messages` into one buffer with room for each header, so that one append is one
/// allocation however many messages it carries.
pub(super) struct EncodedBatch {
    pub buf: BytesMut,
    /// Per record: start offset in `buf`, body length, CRC state of the body.
    pub records: Vec<(usize, u32, crc32fast::Hasher)>,
}

impl EncodedBatch {
    pub fn encode(messages: &[Message]) -> Result<Self, usize> {
        let total: usize = messages
            .iter()
            .map(|m| HEADER_LEN + 3 + m.topic.len() + m.payload.len())
            .sum();
        let mut buf = BytesMut::with_capacity(total);
        let mut records = Vec::with_capacity(messages.len());
        for m in messages {
            let body_len = 3 + m.topic.len() + m.payload.len();
            if m.topic.len() > u16::MAX as usize || body_len > MAX_BODY {
                return Err(body_len);
            }
            let start = buf.len();
            buf.put_bytes(0, HEADER_LEN);
            buf.put_u8(if m.retain { FLAG_RETAIN } else { 0 });
            buf.put_u16_le(m.topic.len() as u16);
            buf.put_slice(m.topic.as_bytes());
            buf.put_slice(&m.payload);
            let mut h = crc32fast::Hasher::new();
            h.update(&buf[start + HEADER_LEN..]);
            records.push((start, body_len as u32, h));
        }
        Ok(Self { buf, records })
    }

    /// Writes the header of record `index` now that its id is known.
    pub fn seal(&mut self, index: usize, id: u64) {
        let (start, len, ref body_crc) = self.records[index];
        let mut h = crc32fast::Hasher::new();
        h.update(&len.to_le_bytes());
        h.update(&id.to_le_bytes());
        h.combine(body_crc);
        let header = &mut self.buf[start..start + HEADER_LEN];
        header[0..4].copy_from_slice(&len.to_le_bytes());
        header[4..8].copy_from_slice(&h.finalize().to_le_bytes());
        header[8..16].copy_from_slice(&id.to_le_bytes());
    }

    pub fn record_size(&self, index: usize) -> u32 {
        HEADER_LEN as u32 + self.records[index].1
    }
}

/// A record header as read back.
#[derive(Debug, Clone, Copy)]
pub(super) struct Header {
    pub len: u32,
    pub crc: u32,
    pub id: u64,
}

impl Header {
    pub fn parse(b: &[u8]) -> Self {
        let mut b = &b[..HEADER_LEN];
        Self {
            len: b.get_u32_le(),
            crc: b.get_u32_le(),
            id: b.get_u64_le(),
        }
    }

    pub fn plausible(&self) -> bool {
        (self.len as usize) >= 3 && (self.len as usize) <= MAX_BODY
    }

    pub fn verify(&self, body: &[u8]) -> bool {
        let mut h = crc32fast::Hasher::new();
        h.update(&self.len.to_le_bytes());
        h.update(&self.id.to_le_bytes());
        h.update(body);
        h.finalize() == self.crc && body_is_well_formed(body)
    }
}

fn body_is_well_formed(body: &[u8]) -> bool {
    body.len() >= 3 && 3 + u16::from_le_bytes([body[1], body[2]]) as usize <= body.len()
}

/// Splits a verified body into a message; the payload shares `body`'s allocation.
pub(super) fn decode_body(mut body: Bytes) -> Message {
    let flags = body.get_u8();
    let topic_len = body.get_u16_le() as usize;
    let topic = body.split_to(topic_len);
    Message {
        topic: String::from_utf8_lossy(&topic).into_owned(),
        payload: body,
        retain: flags & FLAG_RETAIN != 0,
    }
}

/// What a recovery scan found in one segment file.
pub(super) struct Scan {
    /// Sizes of the valid records, in id order starting at the segment's first id.
    pub sizes: Vec<u32>,
    /// File length before truncation.
    pub file_len: u64,
    /// Why the scan stopped early, if it did.
    pub damage: Option<String>,
}

/// Reads a segment front to back and stops at the first record that is incomplete, fails its
/// CRC or carries an unexpected id: everything before it is good, nothing after it is trusted.
pub(super) fn scan(reader: &mut impl Read, file_len: u64, first_id: u64) -> io::Result<Scan> {
    let mut reader = io::BufReader::with_capacity(1 << 20, reader);
    let mut sizes = Vec::new();
    let mut offset = 0u64;
    let mut header = [0u8; HEADER_LEN];
    let mut body = Vec::new();
    let damage = loop {
        if offset == file_len {
            break None;
        }
        if file_len - offset < HEADER_LEN as u64 {
            break Some(format!("partial header at offset {offset}"));
        }
        reader.read_exact(&mut header)?;
        let h = Header::parse(&header);
        let expected = first_id + sizes.len() as u64;
        if !h.plausible() {
            break Some(format!("implausible length {} at offset {offset}", h.len));
        }
        if file_len - offset - (HEADER_LEN as u64) < h.len as u64 {
            break Some(format!("partial record at offset {offset}"));
        }
        body.resize(h.len as usize, 0);
        reader.read_exact(&mut body)?;
        if !h.verify(&body) {
            break Some(format!("checksum mismatch at offset {offset}"));
        }
        if h.id != expected {
            break Some(format!(
                "record id {} where {expected} was expected at offset {offset}",
                h.id
            ));
        }
        let size = HEADER_LEN as u32 + h.len;
        sizes.push(size);
        offset += size as u64;
    };
    Ok(Scan {
        sizes,
        file_len,
        damage,
    })
}
