//! Persistence: one sqlx `Any` pool over SQLite (default, a file in the data directory) or
//! PostgreSQL (`--database-url postgres://...`), with the same SQL for both.
//!
//! Portability rules (see deps.md): `$n` placeholders, BIGINT 0/1 instead of BOOLEAN, and the
//! only per-backend DDL is the binary column type and the audit id column. Every state change
//! of a request is a conditional UPDATE (`... WHERE state = $old`), so two concurrent approvals
//! cannot both win on either backend.

mod applications;
mod audit;
mod audited;
mod cas;
mod columns;
mod issuing;
mod migrations;
mod push;
mod requests;
mod sqlite_reads;
mod sqlite_writer;
mod startup_lock;
mod statement;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;

pub use applications::ApplicationRow;
pub use audited::{Approval, AuditLine};
pub use cas::{CaRow, GroupRow};
pub use issuing::IssueContext;
pub use push::{PushJobRow, PushTargetRow};
pub use requests::{Issued, NewRequest, RequestRow};
pub use startup_lock::{StartupLock, STARTUP_LOCK_KEY};
pub use writer::{WriteStats, MAX_BATCH};

use crate::error::{Result, VaultError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The vault's database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Request state changes go through here, to share commits (see `writer.rs`).
    writer: writer::Writer,
    /// Inline reads of the certificate path when the database is a SQLite file.
    reads: Option<Arc<sqlite_reads::SqliteReads>>,
}

impl Store {
    /// Opens `database_url`, or the SQLite file `vault.db` in `data_dir` when it is `None`, and
    /// applies the embedded migrations (under the [`StartupLock`], released on return).
    pub async fn open(database_url: Option<&str>, data_dir: &Path) -> Result<Store> {
        let (store, lock) = Store::open_locked(database_url, data_dir).await?;
        lock.release().await?;
        Ok(store)
    }

    /// [`Store::open`], still holding the [`StartupLock`] when it returns: the caller creates
    /// what a first start needs (groups, CAs) before it releases the lock, and so finds what
    /// another replica created meanwhile instead of making its own.
    pub async fn open_locked(
        database_url: Option<&str>,
        data_dir: &Path,
    ) -> Result<(Store, StartupLock)> {
        sqlx::any::install_default_drivers();
        let url = match database_url {
            Some(u) => u.to_string(),
            None => {
                std::fs::create_dir_all(data_dir)?;
                format!("sqlite://{}?mode=rwc", data_dir.join("vault.db").display())
            }
        };
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(VaultError::Config(
                "database URL must start with sqlite: or postgres://".into(),
            ));
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| VaultError::Config(format!("database URL: {e}")))?;
        let sqlite = backend == Backend::Sqlite;
        // The group-commit writer keeps one more connection of its own, outside this count.
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 8 })
            // An in-process SQLite connection does not go stale; pinging it before every
            // query cost a round trip to its worker thread per statement.
            .test_before_acquire(!sqlite)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // FULL is SQLite's compiled default, written out so that no build
                        // flag (SQLITE_DEFAULT_WAL_SYNCHRONOUS) can weaken it: in WAL mode
                        // NORMAL loses the last commits on power loss, and a CA must keep the
                        // record of every certificate it acknowledged.
                        sqlx::query("PRAGMA synchronous = FULL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        if sqlite {
            // Readers do not block the writer; sqlx already waits 5 s on a busy database.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
        }
        // A file on disk, not an in-memory database (those live in sqlx's connections only):
        // then the writer and the certificate-path reads go through rusqlite on that file.
        let sqlite_file = if sqlite {
            sqlx::sqlite::SqliteConnectOptions::from_str(&url)
                .ok()
                .map(|o| o.get_filename().to_path_buf())
                .filter(|p| p.is_file())
        } else {
            None
        };
        let reads = sqlite_file
            .clone()
            .map(|p| Arc::new(sqlite_reads::SqliteReads::new(p)));
        let writer = writer::Writer::spawn(pool.clone(), sqlite_file)?;
        let store = Store {
            pool,
            backend,
            writer,
            reads,
        };
        let lock = match backend {
            Backend::Postgres => StartupLock::acquire(&url).await?,
            Backend::Sqlite => StartupLock::none(),
        };
        migrations::apply(&store).await?;
        Ok((store, lock))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// How many commits the request state changes took so far (group commit at work).
    pub fn write_stats(&self) -> WriteStats {
        self.writer.stats()
    }

    /// How many certificate-path reads met a locked SQLite file and were answered through
    /// sqlx instead of inline (always 0 on PostgreSQL); see `sqlite_reads.rs`.
    pub fn inline_read_fallbacks(&self) -> u64 {
        self.reads.as_ref().map_or(0, |r| r.fallbacks())
    }

    /// Lets the writer commit what is queued and release its own connection, then closes the
    /// pool (which waits for connections still in use).
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// Decodes a JSON text column, treating damage as an internal error rather than a panic.
pub(crate) fn json_col<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| VaultError::Migration(format!("bad JSON column: {e}")))
}
