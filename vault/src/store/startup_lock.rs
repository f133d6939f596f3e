//! The start-up lock: replicas of the vault started together on one PostgreSQL database take
//! turns through the schema migration and the first-start creation of groups and CAs.
//!
//! Without it, concurrent `CREATE TABLE`s collide in PostgreSQL's catalog (`duplicate key value
//! violates unique constraint "pg_type_typname_nsp_index"`) and every replica that found no CAs
//! would create its own. The lock is a session-level advisory lock held on one dedicated
//! connection (not a pooled one, which could go back to the pool and take the lock with it),
//! so a replica that dies while holding it releases it with its session. SQLite needs nothing:
//! it admits one writer at a time, and a vault owns its database file.

use sqlx::{Connection, PgConnection};

use crate::error::Result;

/// The advisory lock key of vault start-up: "iiotvaul" in ASCII, so that it is recognisable in
/// `pg_locks` and does not collide with another application's keys on a shared server.
pub const STARTUP_LOCK_KEY: i64 = 0x6969_6f74_7661_756c;

/// Held from before the migration until the CAs exist; see [`crate::store::Store::open_locked`].
#[must_use = "the lock is held until released or dropped"]
pub struct StartupLock {
    /// The session holding the lock; `None` on SQLite.
    conn: Option<PgConnection>,
}

impl std::fmt::Debug for StartupLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartupLock")
            .field("held", &self.conn.is_some())
            .finish()
    }
}

impl StartupLock {
    /// No lock: SQLite.
    pub(super) fn none() -> StartupLock {
        StartupLock { conn: None }
    }

    /// Waits for the lock on a connection of its own to the PostgreSQL database at `url`.
    pub(super) async fn acquire(url: &str) -> Result<StartupLock> {
        let mut conn = PgConnection::connect(url).await?;
        let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(STARTUP_LOCK_KEY)
            .fetch_one(&mut conn)
            .await?;
        if !free {
            tracing::info!("another vault is starting on this database; waiting for it");
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(STARTUP_LOCK_KEY)
                .execute(&mut conn)
                .await?;
        }
        Ok(StartupLock { conn: Some(conn) })
    }

    /// Lets the next replica start. Dropping the lock instead (on an error path) also releases
    /// it, when the dedicated session ends.
    pub async fn release(mut self) -> Result<()> {
        if let Some(mut conn) = self.conn.take() {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(STARTUP_LOCK_KEY)
                .execute(&mut conn)
                .await?;
            conn.close().await?;
        }
        Ok(())
    }
}
