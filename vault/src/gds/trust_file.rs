//! The certificate groups' TrustList objects as read-only files (Part 12 §7.8.2, Part 5 FileType):
//! Open or OpenWithMasks takes a snapshot of the group's trust list encoded as a
//! `TrustListDataType`, and Read, GetPosition, SetPosition and Close work on that snapshot
//! through a handle that belongs to the session that opened it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use iiot_gds::trust_list::TrustLists;
use opcua::types::StatusCode;

use crate::model::TrustList;

/// Open files per session, and in all; beyond them Open answers Bad_TooManyOperations.
const MAX_OPEN_PER_SESSION: usize = 8;
const MAX_OPEN: usize = 1024;
/// A handle unused this long is dropped, so sessions that vanish without Close leak nothing.
const IDLE: Duration = Duration::from_secs(600);
/// The largest Read answered at once; a client asking more gets this much and reads on.
const MAX_READ: usize = 1 << 20;

struct OpenFile {
    session: u32,
    group: usize,
    data: Vec<u8>,
    position: usize,
    used: Instant,
}

/// Handles of the open trust list files.
#[derive(Default)]
pub struct OpenFiles {
    files: Mutex<(u32, HashMap<u32, OpenFile>)>,
}

/// The file content of `list` (base64 DER as the REST model holds it), keeping the lists
/// `masks` selects.
pub fn encode(list: &TrustList, masks: u32) -> Result<Vec<u8>, StatusCode> {
    use base64::Engine;
    let decode = |items: &[String]| -> Result<Vec<Vec<u8>>, StatusCode> {
        items
            .iter()
            .map(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|_| StatusCode::BadInternalError)
            })
            .collect()
    };
    Ok(TrustLists {
        trusted_certificates: decode(&list.trusted_certificates)?,
        trusted_crls: decode(&list.trusted_crls)?,
        issuer_certificates: decode(&list.issuer_certificates)?,
        issuer_crls: decode(&list.issuer_crls)?,
    }
    .encode(masks))
}

impl OpenFiles {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut u32, &mut HashMap<u32, OpenFile>) -> Result<T, StatusCode>,
    ) -> Result<T, StatusCode> {
        let mut guard = self
            .files
            .lock()
            .map_err(|_| StatusCode::BadInternalError)?;
        let (next, files) = &mut *guard;
        files.retain(|_, file| file.used.elapsed() < IDLE);
        f(next, files)
    }

    /// A new handle on `data` for `session`.
    pub fn open(&self, session: u32, group: usize, data: Vec<u8>) -> Result<u32, StatusCode> {
        self.with(|next, files| {
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
                    group,
                    data,
                    position: 0,
                    used: Instant::now(),
                },
            );
            Ok(*next)
        })
    }

    fn file(
        files: &mut HashMap<u32, OpenFile>,
        session: u32,
        group: usize,
        handle: u32,
    ) -> Result<&mut OpenFile, StatusCode> {
        match files.get_mut(&handle) {
            Some(f) if f.session == session && f.group == group => {
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
        group: usize,
        handle: u32,
        length: i32,
    ) -> Result<Vec<u8>, StatusCode> {
        let length = usize::try_from(length).map_err(|_| StatusCode::BadInvalidArgument)?;
        self.with(|_, files| {
            let f = Self::file(files, session, group, handle)?;
            let end = f.data.len().min(f.position + length.min(MAX_READ));
            let chunk = f.data[f.position..end].to_vec();
            f.position = end;
            Ok(chunk)
        })
    }

    pub fn position(&self, session: u32, group: usize, handle: u32) -> Result<u64, StatusCode> {
        self.with(|_, files| Ok(Self::file(files, session, group, handle)?.position as u64))
    }

    /// Moves the position; beyond the end it stops at the end, as FileType's SetPosition does.
    pub fn set_position(
        &self,
        session: u32,
        group: usize,
        handle: u32,
        position: u64,
    ) -> Result<(), StatusCode> {
        self.with(|_, files| {
            let f = Self::file(files, session, group, handle)?;
            f.position = usize::try_from(position)
                .unwrap_or(usize::MAX)
                .min(f.data.len());
            Ok(())
        })
    }

    pub fn close(&self, session: u32, group: usize, handle: u32) -> Result<(), StatusCode> {
        self.with(|_, files| {
            Self::file(files, session, group, handle)?;
            files.remove(&handle);
            Ok(())
        })
    }

    /// How many handles are open on a group's file (its OpenCount).
    pub fn open_count(&self, group: usize) -> u16 {
        self.with(|_, files| Ok(files.values().filter(|f| f.group == group).count() as u16))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
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
    fn masks_select_the_lists() {
        let list = TrustList {
            group_id: "g".into(),
            trusted_certificates: vec!["AQI=".into()],
            trusted_crls: vec!["Aw==".into()],
            issuer_certificates: vec![],
            issuer_crls: vec![],
        };
        let all = encode(&list, iiot_gds::trust_list::ALL).unwrap();
        let certs = encode(&list, 0x1).unwrap();
        assert!(all.len() > certs.len());
        assert_eq!(&certs[..4], &1u32.to_le_bytes());
    }
}
