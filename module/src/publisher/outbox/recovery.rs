//! Opening an outbox: rebuilds the index from the segment files a previous run left, so that
//! every durable, unacknowledged message is delivered after a restart or a crash.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use tracing::{error, warn};

use super::commit::Epoch;
use super::disk::Disk;
use super::error::{io_err, OutboxError};
use super::head::read_head;
use super::index::{State, DONE};
use super::{record, segment_path, SEGMENT_SUFFIX};

/// Rebuilds the state from the segment files: validates every record, truncates a damaged
/// tail, deletes segments behind the head.
pub(super) fn recover(disk: &dyn Disk, dir: &Path) -> Result<State, OutboxError> {
    let mut firsts = Vec::new();
    for name in disk.list(dir).map_err(io_err(dir))? {
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SEGMENT_SUFFIX)) else {
            continue;
        };
        match stem.parse::<u64>() {
            Ok(id) => firsts.push(id),
            Err(_) => warn!(file = ?name, "unexpected file in outbox directory ignored"),
        }
    }
    firsts.sort_unstable();
    let mut head = read_head(disk, dir).unwrap_or(0);
    if let Some(&first) = firsts.first() {
        head = head.max(first);
    }
    let mut entries: VecDeque<u32> = VecDeque::new();
    let mut segments = VecDeque::new();
    let mut head_offset = 0u64;
    let mut active_bytes = 0u64;
    let mut tail = head;
    let (mut live_messages, mut live_bytes) = (0u64, 0u64);
    // Whether the segment before ended in damage: ids missing after a clean one were refused
    // after a disk failure (its tail cut, the next append in a new segment), not lost.
    let mut prev_damaged = false;
    for (i, &first) in firsts.iter().enumerate() {
        let path = segment_path(dir, first);
        let next = firsts.get(i + 1).copied();
        let last = next.is_none();
        let mut f = disk.open_existing(&path).map_err(io_err(&path))?;
        let file_len = f.size().map_err(io_err(&path))?;
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
        let damaged_before = std::mem::replace(&mut prev_damaged, scan.damage.is_some());
        if end <= head && !last {
            disk.remove_file(&path).map_err(io_err(&path))?;
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
            // Ids missing between segments (a damaged segment before, or ids refused after a
            // disk failure): fill the index with done entries so that ids stay contiguous.
            if damaged_before {
                error!(
                    lost = first - tail,
                    "outbox: messages lost to a damaged segment"
                );
            } else {
                warn!(
                    ids = first - tail,
                    "outbox: ids refused after a disk failure skipped"
                );
            }
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
        roll: false,
        holes: VecDeque::new(),
        epoch: Arc::new(Epoch::default()),
        pending: Vec::new(),
        to_delete: Vec::new(),
        head_dirty: false,
        closed: false,
        has_consumer: false,
    };
    // Ids lost to damage sit at the front as done entries: step over them now.
    state.advance_head();
    Ok(state)
}
