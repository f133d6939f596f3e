//! The reads on a certificate's path (application, group and active CAs at submission, the
//! request at fetch), run inline on the calling thread through rusqlite when the store is a
//! SQLite file.
//!
//! Why: through sqlx every SQLite statement is a hand-off to the connection's worker thread and
//! back, plus one more when the connection returns to the pool (sqlx pings it). `iiot bench
//! vault` measured the three submission reads alone at ~0.17 ms of CPU per certificate, about
//! a sixth of the whole REST path, almost all of it thread hand-offs under load. Inline, a point
//! read by primary key on a WAL database is a few microseconds of the caller's thread: short
//! enough to run on an async worker without `spawn_blocking` (itself a hand-off). WAL readers
//! do not wait for the writer, so such a read does not block behind a commit.
//!
//! Nothing is cached: every call reads the committed state, as the sqlx path does. Writes stay
//! with the group-commit writer (`writer.rs`); these connections are `query_only`.
//!
//! These connections never wait for a lock (no busy timeout): in the rare case a read meets
//! one (WAL recovery, another process holding the file exclusively) it answers
//! [`is_busy`] at once and the store takes the sqlx path, which waits on its own thread, so
//! an async worker is never put to sleep by SQLite.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{named_params, Connection, OpenFlags, OptionalExtension};

use super::applications::{ApplicationRow, APPLICATION_BY_ID};
use super::cas::{newest_per_type, GroupRow, ACTIVE_CA_SERIALS, GROUP_BY_ID};
use super::issuing::IssueContext;
use super::requests::{RequestRow, REQUEST_BY_ID};
use crate::error::Result;

/// Whether an inline read failed only because the database was locked.
fn is_busy(e: &crate::error::VaultError) -> bool {
    matches!(
        e,
        crate::error::VaultError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Connections kept idle for reuse; more may be open while that many reads run at once.
const MAX_IDLE: usize = 8;

/// Read-only connections to the store's SQLite file, opened on demand and reused.
#[derive(Debug)]
pub(crate) struct SqliteReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Reads that met a locked database and went to sqlx (see [`SqliteReads::falls_back`]).
    fallbacks: AtomicU64,
}

impl SqliteReads {
    pub fn new(path: PathBuf) -> SqliteReads {
        SqliteReads {
            path,
            idle: Mutex::new(Vec::new()),
            fallbacks: AtomicU64::new(0),
        }
    }

    /// Whether the caller reads through sqlx instead, because `e` says only that the
    /// database was locked; counted, so that a test (or an operator) can tell the rare path
    /// was taken.
    pub fn falls_back(&self, e: &crate::error::VaultError) -> bool {
        let busy = is_busy(e);
        if busy {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, "SQLite busy for an inline read; reading through sqlx");
        }
        busy
    }

    /// How many reads [`SqliteReads::falls_back`] sent to sqlx.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Runs `read` on an idle connection (or a new one) and keeps the connection for reuse.
    fn with<R>(&self, read: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(c) => c,
            None => self.open()?,
        };
        let out = read(&conn);
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        out
    }

    fn open(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // No waiting here, on an async worker: a busy database sends the caller to sqlx.
        conn.busy_timeout(Duration::ZERO)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    /// What [`super::Store::issue_context`] reads, in one visit and one read transaction: the
    /// application, group and CAs come from the same committed state, and the connection
    /// checks the WAL for new commits once instead of once per statement (a commit in between
    /// would also empty its page cache each time).
    pub fn issue_context(
        &self,
        app_id: &str,
        group_id: &str,
        approving: bool,
    ) -> Result<IssueContext> {
        self.with(|conn| {
            let snapshot = conn.unchecked_transaction()?;
            let application = by_id(conn, APPLICATION_BY_ID, app_id, |r| {
                ApplicationRow::from_row(r)
            })?;
            let group = by_id(conn, GROUP_BY_ID, group_id, |r| GroupRow::from_row(r))?;
            let active_cas = match &group {
                Some(g) if approving || g.auto_approve => {
                    let mut stmt = conn.prepare_cached(ACTIVE_CA_SERIALS)?;
                    let rows = stmt.query_map(named_params! { "$1": group_id }, |r| {
                        Ok((r.get("cert_type")?, r.get("serial")?))
                    })?;
                    newest_per_type(rows.map(|r| r.map_err(Into::into)))?
                }
                _ => Vec::new(),
            };
            snapshot.finish()?;
            Ok(IssueContext {
                application,
                group,
                active_cas,
            })
        })
    }

    /// What [`super::Store::request`] reads.
    pub fn request(&self, id: &str) -> Result<Option<RequestRow>> {
        self.with(|conn| by_id(conn, REQUEST_BY_ID, id, |r| RequestRow::from_row(r)))
    }
}

/// The row `sql` finds for `$1` = `id`, if any, decoded by `decode`.
fn by_id<T>(
    conn: &Connection,
    sql: &str,
    id: &str,
    decode: impl FnOnce(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    conn.prepare_cached(sql)?
        .query_row(named_params! { "$1": id }, |r| Ok(decode(r)))
        .optional()?
        .transpose()
}
