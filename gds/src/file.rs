//! Open handles on a file object (OPC UA Part 5 FileType), as Part 12's TrustList objects use
//! them: Open takes a snapshot to read (or an empty buffer to write), and Read, Write,
//! GetPosition, SetPosition and Close work through a handle that belongs to the session that
//! opened it. Both the vault (read-only trust lists) and plc-sim (writable trust list) serve
//! TrustLists through this table.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use opcua::types::StatusCode;

/// FileType Open modes (Part 5 §C.2.1).
pub const MODE_READ: u8 = 0x1;
pub const MODE_WRITE: u8 = 0x2;
pub const MODE_ERASE_EXISTING: u8 = 0x4;
pub const MODE_APPEND: u8 = 0x8;

/// Open files per session, and in all; beyond them Open answers Bad_TooManyOperations.
const MAX_OPEN_PER_SESSION: usize = 8;
const MAX_OPEN: usize = 1024;
/// A handle unused this long is dropped, so sessions that vanish without Close leak nothing.
/// Readers may pause long between Reads and block nobody.
const READER_IDLE: Duration = Duration::from_secs(600);
/// A writer excludes everyone else from its file (Open, AddCertificate, RemoveCertificate), so
/// the handle of a session that died must not hold the file for long; a live writer sends its
/// Writes back to back.
const WRITER_IDLE: Duration = Duration::from_secs(60);
/// The largest Read answered at once; a client asking more gets this much and reads on.
const MAX_READ: usize = 1 << 20;

struct OpenFile {
    session: u32,
    file: usize,
    data: Vec<u8>,
    position: usize,
    writing: bool,
    used: Instant,
}

/// Handles of the open files; `file` tells apart the files one server serves (e.g. the
/// certificate groups' trust lists).
pub struct OpenFiles {
    files: Mutex<(u32, HashMap<u32, OpenFile>)>,
    max_size: usize,
    reader_idle: Duration,
    writer_idle: Duration,
}

impl Default for OpenFiles {
    fn default() -> Self {
        OpenFiles::new(usize::MAX)
    }
}

impl OpenFiles {
    /// A table whose files written through it grow to `max_size` bytes at most
    /// (Bad_EncodingLimitsExceeded beyond).
    pub fn new(max_size: usize) -> Self {
        OpenFiles::with_idle_limits(max_size, READER_IDLE, WRITER_IDLE)
    }

    /// A table whose handles opened to read expire after `reader_idle` unused, and those
    /// opened to write after `writer_idle`.
    pub fn with_idle_limits(max_size: usize, reader_idle: Duration, writer_idle: Duration) -> Self {
        OpenFiles {
            files: Mutex::new((0, HashMap::new())),
            max_size,
            reader_idle,
            writer_idle,
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut u32, &mut HashMap<u32, OpenFile>) -> Result<T, StatusCode>,
    ) -> Result<T, StatusCode> {
        let mut guard = self
            .files
            .lock()
            .map_err(|_| StatusCode::BadInternalError)?;
        let (next, files) = &mut *guard;
        let (reader_idle, writer_idle) = (self.reader_idle, self.writer_idle);
        files.retain(|_, file| {
            let idle = if file.writing {
                writer_idle
            } else {
                reader_idle
            };
            file.used.elapsed() < idle
        });
        f(next, files)
    }

    /// A new handle to read `data` for `session`.
    pub fn open(&self, session: u32, file: usize, data: Vec<u8>) -> Result<u32, StatusCode> {
        self.insert(session, file, data, false)
    }

    /// A new handle to write `file` from empty (Write + EraseExisting). A file has one writer
    /// and no readers while it is written, so what a reader sees is never half replaced:
    /// Bad_InvalidState when it is open already.
    pub fn open_to_write(&self, session: u32, file: usize) -> Result<u32, StatusCode> {
        self.insert(session, file, Vec::new(), true)
    }

    fn insert(
        &self,
        session: u32,
        file: usize,
        data: Vec<u8>,
        writing: bool,
    ) -> Result<u32, StatusCode> {
        self.with(|next, files| {
            let mut same_file = files.values().filter(|f| f.file == file);
            let busy = if writing {
                same_file.next().is_some()
            } else {
                same_file.any(|f| f.writing)
            };
            if busy {
                return Err(StatusCode::BadInvalidState);
            }
            let mine = files.values().filter(|f| f.session == session).count();
            if mine >= MAX_OPEN_PER_SESSION || files.len() >= MAX_OPEN {
                return Err(StatusCode::BadTooManyOperations);
            }
            *next = next.wrapping_add(1).max(1);
            while files.contains_key(next) {
                *next = next.wrapping_add(1).max(1);
            }
            files.insert(
                *next,
                OpenFile {
                    session,
                    file,
                    data,
                    position: 0,
                    writing,
                    used: Instant::now(),
                },
            );
            Ok(*next)
        })
    }

    fn file(
        files: &mut HashMap<u32, OpenFile>,
        session: u32,
        file: usize,
        handle: u32,
    ) -> Result<&mut OpenFile, StatusCode> {
        match files.get_mut(&handle) {
            Some(f) if f.session == session && f.file == file => {
                f.used = Instant::now();
                Ok(f)
            }
            _ => Err(StatusCode::BadInvalidArgument),
        }
    }

    /// Up to `length` bytes from the position; empty at the end of the file.
    pub fn read(
        &self,
        session: u32,
        file: usize,
        handle: u32,
        length: i32,
    ) -> Result<Vec<u8>, StatusCode> {
        let length = usize::try_from(length).map_err(|_| StatusCode::BadInvalidArgument)?;
        self.with(|_, files| {
            let f = Self::file(files, session, file, handle)?;
            if f.writing {
                return Err(StatusCode::BadInvalidState);
            }
            let end = f.data.len().min(f.position + length.min(MAX_READ));
            let chunk = f.data[f.position..end].to_vec();
            f.position = end;
            Ok(chunk)
        })
    }

    /// Writes `data` at the position (overwriting, then extending the file).
    pub fn write(
        &self,
        session: u32,
        file: usize,
        handle: u32,
        data: &[u8],
    ) -> Result<(), StatusCode> {
        let max_size = self.max_size;
        self.with(|_, files| {
            let f = Self::file(files, session, file, handle)?;
            if !f.writing {
                return Err(StatusCode::BadInvalidState);
            }
            let end = f
                .position
                .checked_add(data.len())
                .filter(|end| *end <= max_size)
                .ok_or(StatusCode::BadEncodingLimitsExceeded)?;
            if end > f.data.len() {
                f.data.resize(end, 0);
            }
            f.data[f.position..end].copy_from_slice(data);
            f.position = end;
            Ok(())
        })
    }

    pub fn position(&self, session: u32, file: usize, handle: u32) -> Result<u64, StatusCode> {
        self.with(|_, files| Ok(Self::file(files, session, file, handle)?.position as u64))
    }

    /// Moves the position; beyond the end it stops at the end, as FileType's SetPosition does.
    pub fn set_position(
        &self,
        session: u32,
        file: usize,
        handle: u32,
        position: u64,
    ) -> Result<(), StatusCode> {
        self.with(|_, files| {
            let f = Self::file(files, session, file, handle)?;
            f.position = usize::try_from(position)
                .unwrap_or(usize::MAX)
                .min(f.data.len());
            Ok(())
        })
    }

    pub fn close(&self, session: u32, file: usize, handle: u32) -> Result<(), StatusCode> {
        self.with(|_, files| {
            Self::file(files, session, file, handle)?;
            files.remove(&handle);
            Ok(())
        })
    }

    /// Closes a handle opened to write and returns what was written (TrustList's
    /// CloseAndUpdate); Bad_InvalidState for a handle opened to read.
    pub fn close_written(
        &self,
        session: u32,
        file: usize,
        handle: u32,
    ) -> Result<Vec<u8>, StatusCode> {
        self.with(|_, files| {
            if !Self::file(files, session, file, handle)?.writing {
                return Err(StatusCode::BadInvalidState);
            }
            Ok(files.remove(&handle).map(|f| f.data).unwrap_or_default())
        })
    }

    /// Whether a live handle writes `file`.
    pub fn is_open_to_write(&self, file: usize) -> bool {
        self.with(|_, files| Ok(files.values().any(|f| f.file == file && f.writing)))
            .unwrap_or(false)
    }

    /// How many handles are open on a file (its OpenCount), expired ones not counted.
    pub fn open_count(&self, file: usize) -> u16 {
        self.with(|_, files| Ok(files.values().filter(|f| f.file == file).count() as u16))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn handles_belong_to_their_session_and_read_in_chunks() {
        let files = OpenFiles::default();
        let h = files.open(7, 0, (0u8..10).collect()).unwrap();
        assert_eq!(files.read(8, 0, h, 4), Err(StatusCode::BadInvalidArgument));
        assert_eq!(files.read(7, 1, h, 4), Err(StatusCode::BadInvalidArgument));
        assert_eq!(files.read(7, 0, h, 4).unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(files.position(7, 0, h).unwrap(), 4);
        files.set_position(7, 0, h, 8).unwrap();
        assert_eq!(files.read(7, 0, h, 100).unwrap(), vec![8, 9]);
        assert!(files.read(7, 0, h, 100).unwrap().is_empty());
        assert_eq!(files.read(7, 0, h, -1), Err(StatusCode::BadInvalidArgument));
        assert_eq!(files.write(7, 0, h, &[1]), Err(StatusCode::BadInvalidState));
        assert_eq!(
            files.close_written(7, 0, h),
            Err(StatusCode::BadInvalidState)
        );
        assert_eq!(files.open_count(0), 1);
        files.close(7, 0, h).unwrap();
        assert_eq!(files.close(7, 0, h), Err(StatusCode::BadInvalidArgument));
        for _ in 0..MAX_OPEN_PER_SESSION {
            files.open(9, 0, vec![]).unwrap();
        }
        assert_eq!(
            files.open(9, 0, vec![]),
            Err(StatusCode::BadTooManyOperations)
        );
        assert!(files.open(10, 0, vec![]).is_ok());
    }

    #[test]
    fn a_writer_is_alone_on_its_file_and_bounded() {
        let files = OpenFiles::new(6);
        let r = files.open(1, 0, vec![1]).unwrap();
        assert_eq!(files.open_to_write(2, 0), Err(StatusCode::BadInvalidState));
        files.close(1, 0, r).unwrap();
        let w = files.open_to_write(2, 0).unwrap();
        assert_eq!(files.open(1, 0, vec![]), Err(StatusCode::BadInvalidState));
        assert!(files.open(1, 1, vec![]).is_ok(), "another file is not busy");
        assert_eq!(files.read(2, 0, w, 1), Err(StatusCode::BadInvalidState));
        files.write(2, 0, w, &[1, 2, 3]).unwrap();
        files.write(2, 0, w, &[4]).unwrap();
        files.set_position(2, 0, w, 1).unwrap();
        files.write(2, 0, w, &[9]).unwrap();
        assert_eq!(
            files.write(2, 0, w, &[0; 6]),
            Err(StatusCode::BadEncodingLimitsExceeded)
        );
        assert_eq!(
            files.close_written(3, 0, w),
            Err(StatusCode::BadInvalidArgument)
        );
        assert_eq!(files.close_written(2, 0, w).unwrap(), vec![1, 9, 3, 4]);
        assert_eq!(files.open_count(0), 0);
    }

    #[test]
    fn a_dead_writer_lets_go_of_its_file_sooner_than_a_reader() {
        let files = OpenFiles::with_idle_limits(
            usize::MAX,
            Duration::from_secs(600),
            Duration::from_millis(50),
        );
        let w = files.open_to_write(1, 0).unwrap();
        let r = files.open(2, 1, vec![1, 2]).unwrap();
        assert_eq!(files.open(3, 0, vec![]), Err(StatusCode::BadInvalidState));
        assert_eq!(files.open_count(0), 1);
        assert!(files.is_open_to_write(0) && !files.is_open_to_write(1));
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(files.open_count(0), 0, "the idle writer still counts");
        assert!(!files.is_open_to_write(0));
        assert_eq!(
            files.write(1, 0, w, &[1]),
            Err(StatusCode::BadInvalidArgument)
        );
        assert!(files.open_to_write(3, 0).is_ok(), "the file is free again");
        assert_eq!(files.open_count(1), 1, "the reader outlives the writer");
        assert_eq!(files.read(2, 1, r, 1).unwrap(), vec![1]);
        // Use keeps a writer alive.
        let files = OpenFiles::with_idle_limits(
            usize::MAX,
            Duration::from_secs(600),
            Duration::from_millis(200),
        );
        let w = files.open_to_write(1, 0).unwrap();
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(80));
            files.write(1, 0, w, &[1]).unwrap();
        }
        assert_eq!(files.close_written(1, 0, w).unwrap(), vec![1; 4]);
    }
}
