//! The head file: the first id not yet acknowledged, so that a restart does not send again
//! what the broker already has. `head: u64 LE ‖ CRC-32(head): u32 LE`, replaced by rename so
//! a reader sees the old or the new value, never a mix. Not fsynced: after a crash at most
//! [`super::HEAD_PERSIST_INTERVAL`] of messages is sent again, which at-least-once allows.

use std::io;
use std::path::Path;

use tracing::warn;

use super::disk::Disk;

const HEAD_FILE: &str = "head";
const HEAD_TMP: &str = "head.tmp";

pub(super) fn write_head(disk: &dyn Disk, dir: &Path, head: u64) -> io::Result<()> {
    let mut buf = [0u8; 12];
    buf[..8].copy_from_slice(&head.to_le_bytes());
    let crc = crc32fast::hash(&buf[..8]);
    buf[8..].copy_from_slice(&crc.to_le_bytes());
    let tmp = dir.join(HEAD_TMP);
    disk.write(&tmp, &buf)?;
    disk.rename(&tmp, &dir.join(HEAD_FILE))
}

pub(super) fn read_head(disk: &dyn Disk, dir: &Path) -> Option<u64> {
    let buf = disk.read(&dir.join(HEAD_FILE)).ok()?;
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
