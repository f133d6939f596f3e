//! The outbox on a disk that fails: through the `disk.rs` seam, a real directory whose writes
//! run out of space (half of a write lands, then ENOSPC, as on a full file system), whose
//! fsyncs fail with EIO, or whose truncation fails too. What must hold: a refused append is
//! never reported durable, it is counted, what was durable before is still delivered and
//! survives a reopen, and appends succeed again once the disk does, without a restart.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::disk::{Disk, SegmentFile, StdDisk};
use super::tests::{append_range, config, drain, msg, open, segment_files, temp_dir};
use super::*;

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    /// Every fsync (of a segment or of the directory) fails with EIO.
    sync: bool,
    /// Every write stores half its bytes, then fails with ENOSPC.
    full: bool,
    /// Cutting a segment back fails with EIO.
    truncate: bool,
}

/// The real file system, failing on demand.
#[derive(Debug, Default)]
struct FaultyDisk {
    faults: Arc<Mutex<Faults>>,
}

impl FaultyDisk {
    fn set(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }
    fn now(&self) -> Faults {
        *self.faults.lock().unwrap()
    }
    fn file(&self, file: File) -> Box<dyn SegmentFile> {
        Box::new(FaultyFile {
            file,
            faults: self.faults.clone(),
        })
    }
}

fn os_error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl Disk for FaultyDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdDisk.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<std::ffi::OsString>> {
        StdDisk.list(dir)
    }
    fn open_append(&self, path: &Path) -> io::Result<(Box<dyn SegmentFile>, bool)> {
        let created = !path.exists();
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        Ok((self.file(f), created))
    }
    fn open_existing(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(self.file(f))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.now().sync {
            return Err(os_error(EIO));
        }
        StdDisk.sync_dir(dir)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdDisk.remove_file(path)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        StdDisk.read(path)
    }
    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        if self.now().full {
            return Err(os_error(ENOSPC));
        }
        StdDisk.write(path, bytes)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdDisk.rename(from, to)
    }
}

struct FaultyFile {
    file: File,
    faults: Arc<Mutex<Faults>>,
}

impl FaultyFile {
    fn now(&self) -> Faults {
        *self.faults.lock().unwrap()
    }
}

impl Read for FaultyFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl SegmentFile for FaultyFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.now().full {
            SegmentFile::write_all(&mut self.file, &bytes[..bytes.len() / 2])?;
            return Err(os_error(ENOSPC));
        }
        SegmentFile::write_all(&mut self.file, bytes)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.now().sync {
            return Err(os_error(EIO));
        }
        SegmentFile::sync_data(&self.file)
    }
    fn sync_all(&self) -> io::Result<()> {
        if self.now().sync {
            return Err(os_error(EIO));
        }
        SegmentFile::sync_all(&self.file)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        if self.now().truncate {
            return Err(os_error(EIO));
        }
        SegmentFile::set_len(&self.file, len)
    }
    fn size(&self) -> io::Result<u64> {
        SegmentFile::size(&self.file)
    }
}

async fn open_faulty(dir: &Path) -> (Arc<Outbox>, Arc<PublisherDiagnostics>, Arc<FaultyDisk>) {
    let diag = PublisherDiagnostics::new();
    let disk = Arc::new(FaultyDisk::default());
    let o = Outbox::open_on(config(dir), diag.clone(), disk.clone())
        .await
        .unwrap();
    (o, diag, disk)
}

fn messages(d: Vec<Delivery>) -> Vec<Message> {
    d.into_iter().map(|d| d.message).collect()
}

fn only(range: std::ops::Range<usize>) -> Vec<Message> {
    range.map(msg).collect()
}

fn expected(ranges: &[std::ops::Range<usize>]) -> Vec<Message> {
    ranges.iter().cloned().flatten().map(msg).collect()
}

fn assert_refused(err: &OutboxError, op: DiskOp, code: i32) {
    match err {
        OutboxError::Disk { op: o, kind, .. } => {
            assert_eq!(*o, op, "{err}");
            assert_eq!(*kind, os_error(code).kind(), "{err}");
        }
        other => panic!("expected a disk failure, got {other}"),
    }
}

/// Everything the outbox holds after a reopen on the real disk.
async fn reopened(dir: &Path) -> Vec<Message> {
    let (o, _) = open(config(dir)).await;
    let mut c = o.consumer().unwrap();
    messages(drain(&mut c).await)
}

#[tokio::test]
async fn a_failed_fsync_refuses_the_append_counts_it_and_the_next_append_succeeds() {
    let dir = temp_dir("fsync-fails");
    let (o, diag, disk) = open_faulty(&dir).await;
    append_range(&o, 0..5).await;
    disk.set(Faults {
        sync: true,
        ..Faults::default()
    });
    let err = o.append((5..8).map(msg).collect()).await.unwrap_err();
    assert_refused(&err, DiskOp::Sync, EIO);
    let p = &diag.pipeline;
    assert_eq!(p.outbox_rejected_disk_error.get(), 3);
    assert_eq!(p.outbox_appended.get(), 5, "only the durable ones count");
    assert_eq!(o.len().0, 5, "the refused messages are not held");
    let text = crate::publisher::config_store::render_prometheus(
        &diag,
        &crate::publisher::config_store::PackedEntries::default(),
    );
    assert!(
        text.contains("\niiot_publisher_outbox_rejected_messages_total{reason=\"disk_error\"} 3\n"),
        "{text}"
    );
    disk.set(Faults::default());
    append_range(&o, 8..10).await;
    assert_eq!(p.outbox_appended.get(), 7);
    let mut c = o.consumer().unwrap();
    assert_eq!(messages(drain(&mut c).await), expected(&[0..5, 8..10]));
    drop(c);
    drop(o);
    assert_eq!(reopened(&dir).await, expected(&[0..5, 8..10]));
    let _ = fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_full_disk_refuses_every_append_until_it_frees_up() {
    let dir = temp_dir("disk-full");
    let (o, diag, disk) = open_faulty(&dir).await;
    let mut c = o.consumer().unwrap();
    append_range(&o, 0..5).await;
    disk.set(Faults {
        full: true,
        ..Faults::default()
    });
    // Pipelined appends, as the writers queue them: each one is refused.
    let commits: Vec<Commit> = [5..7, 7..10]
        .into_iter()
        .map(|r| o.enqueue(r.map(msg).collect()).unwrap())
        .collect();
    for commit in commits {
        assert_refused(&commit.durable().await.unwrap_err(), DiskOp::Write, ENOSPC);
    }
    let err = o.append((10..12).map(msg).collect()).await.unwrap_err();
    assert_refused(&err, DiskOp::Write, ENOSPC);
    assert_eq!(diag.pipeline.outbox_rejected_disk_error.get(), 7);
    assert_eq!(
        messages(drain(&mut c).await),
        only(0..5),
        "what was durable before the disk filled up is delivered"
    );
    disk.set(Faults::default());
    append_range(&o, 12..15).await;
    assert_eq!(messages(drain(&mut c).await), only(12..15));
    drop(c);
    drop(o);
    assert_eq!(reopened(&dir).await, expected(&[0..5, 12..15]));
    let _ = fs::remove_dir_all(dir);
}

/// The committed watermark moves past refused ids, so a refused commit looked at after later
/// appends succeeded must still answer its own failure, and a durable one its success.
#[tokio::test]
async fn each_commit_keeps_its_own_outcome_across_later_failures_and_successes() {
    let dir = temp_dir("outcomes");
    let (o, _, disk) = open_faulty(&dir).await;
    let durable = o.enqueue((0..3).map(msg).collect()).unwrap();
    while !durable.is_done() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    disk.set(Faults {
        sync: true,
        ..Faults::default()
    });
    let refused = o.enqueue((3..6).map(msg).collect()).unwrap();
    while !refused.is_done() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    disk.set(Faults::default());
    append_range(&o, 6..9).await;
    disk.set(Faults {
        full: true,
        ..Faults::default()
    });
    assert!(o.append((9..10).map(msg).collect()).await.is_err());
    disk.set(Faults::default());
    append_range(&o, 10..12).await;
    durable.durable().await.unwrap();
    assert_refused(&refused.durable().await.unwrap_err(), DiskOp::Sync, EIO);
    let mut c = o.consumer().unwrap();
    assert_eq!(
        messages(drain(&mut c).await),
        expected(&[0..3, 6..9, 10..12])
    );
    drop(c);
    drop(o);
    let _ = fs::remove_dir_all(dir);
}

/// When the failed segment cannot even be cut back, half a batch stays behind the durable
/// records: the consumer must step over it to the next segment, never parse it, and the cut
/// is made once the disk works again, so a reopen does not bring refused records back.
#[tokio::test]
async fn half_written_records_that_cannot_be_cut_are_never_read() {
    let dir = temp_dir("uncut");
    let (o, diag, disk) = open_faulty(&dir).await;
    append_range(&o, 0..5).await;
    let seg = segment_files(&dir)[0].clone();
    let durable_len = fs::metadata(&seg).unwrap().len();
    disk.set(Faults {
        full: true,
        truncate: true,
        ..Faults::default()
    });
    let err = o.append((5..8).map(msg).collect()).await.unwrap_err();
    assert_refused(&err, DiskOp::Write, ENOSPC);
    // Space again, but the failed segment still cannot be cut.
    disk.set(Faults {
        truncate: true,
        ..Faults::default()
    });
    append_range(&o, 8..10).await;
    assert!(
        fs::metadata(&seg).unwrap().len() > durable_len,
        "half a batch is left in the segment"
    );
    // Nothing read yet: the first read would run from the durable records into the garbage.
    let mut c = o.consumer().unwrap();
    assert_eq!(messages(drain(&mut c).await), expected(&[0..5, 8..10]));
    c.rewind();
    assert_eq!(messages(drain(&mut c).await), expected(&[0..5, 8..10]));
    assert_eq!(diag.pipeline.outbox_rejected_disk_error.get(), 3);
    disk.set(Faults::default());
    append_range(&o, 10..11).await;
    assert_eq!(
        fs::metadata(&seg).unwrap().len(),
        durable_len,
        "cut at last"
    );
    assert_eq!(messages(drain(&mut c).await), only(10..11));
    drop(c);
    drop(o);
    assert_eq!(reopened(&dir).await, expected(&[0..5, 8..11]));
    let _ = fs::remove_dir_all(dir);
}

/// The fault tests above assume a full file system fails `write` with ENOSPC (after storing
/// part of the buffer or nothing), still lets a file be cut back, and works again once space
/// is freed. This checks that on a real one: a tiny tmpfs, mounted by the caller (root):
///
/// ```text
/// mkdir -p /tmp/outbox-tinyfs && mount -t tmpfs -o size=256k tmpfs /tmp/outbox-tinyfs
/// IIOT_OUTBOX_FULL_DISK_DIR=/tmp/outbox-tinyfs cargo test -p iiot-module --lib \
///     full_file_system -- --ignored
/// umount /tmp/outbox-tinyfs
/// ```
#[tokio::test]
#[ignore]
async fn full_file_system_refuses_appends_until_space_is_freed() {
    let root = PathBuf::from(
        std::env::var("IIOT_OUTBOX_FULL_DISK_DIR").expect("IIOT_OUTBOX_FULL_DISK_DIR: a tmpfs"),
    );
    let dir = root.join("outbox");
    let filler = root.join("filler");
    let _ = fs::remove_dir_all(&dir);
    fs::write(&filler, vec![0u8; 64 << 10]).unwrap();
    let big = |i: usize| Message {
        topic: "t".into(),
        payload: Bytes::from(vec![i as u8; 10_000]),
        retain: false,
    };
    let (o, diag) = open(config(&dir)).await;
    let mut stored = 0;
    let err = loop {
        match o.append(vec![big(stored)]).await {
            Ok(()) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 100, "the file system never filled up");
    };
    assert_refused(&err, DiskOp::Write, ENOSPC);
    assert!(stored > 5, "{stored} stored before the disk filled up");
    assert_eq!(diag.pipeline.outbox_rejected_disk_error.get(), 1);
    let mut c = o.consumer().unwrap();
    let got = messages(drain(&mut c).await);
    assert_eq!(got, (0..stored).map(big).collect::<Vec<_>>());
    fs::remove_file(&filler).unwrap();
    o.append(vec![big(1000)]).await.unwrap();
    assert_eq!(messages(drain(&mut c).await), vec![big(1000)]);
    drop(c);
    drop(o);
    let mut all: Vec<_> = (0..stored).map(big).collect();
    all.push(big(1000));
    assert_eq!(reopened(&dir).await, all);
    let _ = fs::remove_dir_all(dir);
}
