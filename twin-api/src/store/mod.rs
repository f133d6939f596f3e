//! The registry store: one table of identity records over sqlx `Any`, so SQLite (default) and
//! PostgreSQL (`--database-url`) run the same SQL. Owns the identity-registry semantics that
//! live in the data: `generationId` (new on every create), `etag` (new on every change of the
//! body), conditional writes (`If-Match`) and keyset paging.
//!
//! Every write is optimistic: read, compute, then write guarded by the etag read (or by the
//! primary key for a create), retried on a lost race. Several replicas on one PostgreSQL
//! database therefore never overwrite each other's changes.

use base64::Engine;
use serde_json::Value;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Connection, Row};

use crate::error::ApiError;

/// Record kinds (the `kind` column).
pub const PUBLISHER: &str = "publisher";
pub const APPLICATION: &str = "application";
pub const ENDPOINT: &str = "endpoint";

/// Largest page a list returns.
pub const MAX_PAGE: usize = 1000;

/// Most records one filtered page reads before it answers (with whatever it found and a
/// continuation token): a filter that matches little must not read a whole large table in one
/// request.
pub const MAX_SCAN: usize = 10 * MAX_PAGE;

/// Key of the PostgreSQL advisory lock the twin API migrates under ("iiottwin" in ASCII), so
/// no other application's lock on the same database collides with it by accident.
const MIGRATION_LOCK: i64 = 0x6969_6f74_7477_696e;

/// Schema versions, applied in order once each; DDL that both backends accept.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE IF NOT EXISTS records (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        owner TEXT NOT NULL,
        parent TEXT NOT NULL,
        generation_id TEXT NOT NULL,
        etag TEXT NOT NULL,
        seen TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (kind, id)
    );
    CREATE INDEX IF NOT EXISTS records_owner ON records (kind, owner);
    CREATE INDEX IF NOT EXISTS records_parent ON records (kind, parent)",
    ),
    // The hub (issue 17): device and module identities with their twins, and its access
    // policies; keys sealed (see `hub::secrets`).
    (
        2,
        "CREATE TABLE IF NOT EXISTS hub_identities (
        device_id TEXT NOT NULL,
        module_id TEXT NOT NULL,
        generation_id TEXT NOT NULL,
        revision BIGINT NOT NULL,
        description TEXT NOT NULL,
        sealed_keys TEXT NOT NULL,
        twin TEXT NOT NULL,
        connected BIGINT NOT NULL,
        connection_updated TEXT NOT NULL,
        last_activity TEXT NOT NULL,
        PRIMARY KEY (device_id, module_id)
    );
    CREATE TABLE IF NOT EXISTS hub_policies (
        name TEXT NOT NULL PRIMARY KEY,
        rights TEXT NOT NULL,
        sealed_keys TEXT NOT NULL
    )",
    ),
    // Device-to-cloud messages of the hub, kept for the routes (body base64: one column type
    // both databases share).
    (
        3,
        "CREATE TABLE IF NOT EXISTS hub_messages (
        id TEXT NOT NULL PRIMARY KEY,
        device_id TEXT NOT NULL,
        module_id TEXT NOT NULL,
        enqueued_time TEXT NOT NULL,
        system_properties TEXT NOT NULL,
        properties TEXT NOT NULL,
        body TEXT NOT NULL
    )",
    ),
    // Hub sessions: the subscriptions a clean-session-0 client keeps across reconnects (and
    // replicas), and which connection marked an identity connected, so only that one marks
    // it disconnected.
    (
        4,
        "ALTER TABLE hub_identities ADD COLUMN subscriptions BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE hub_identities ADD COLUMN connection_id TEXT NOT NULL DEFAULT ''",
    ),
    // Hub replicas: their heartbeats (a connection recorded by a replica that stopped beating
    // is stale), the bus notes too large for one PostgreSQL NOTIFY, how far each route has
    // delivered the device messages, and the messages waiting for a device (cloud-to-device)
    // until it acknowledges them.
    (
        5,
        "CREATE TABLE IF NOT EXISTS hub_replicas (
        instance TEXT NOT NULL PRIMARY KEY,
        seen BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS hub_bus (
        id TEXT NOT NULL PRIMARY KEY,
        body TEXT NOT NULL,
        created BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS hub_routes (
        name TEXT NOT NULL PRIMARY KEY,
        position TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS hub_deliveries (
        id TEXT NOT NULL PRIMARY KEY,
        device_id TEXT NOT NULL,
        module_id TEXT NOT NULL,
        input TEXT NOT NULL,
        properties TEXT NOT NULL,
        body TEXT NOT NULL,
        expires BIGINT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS hub_deliveries_identity ON hub_deliveries (device_id, module_id, id)",
    ),
];

/// One stored identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: String,
    pub id: String,
    /// The module that owns (discovered / serves) the record; empty when none.
    pub owner: String,
    /// The application of an endpoint; empty otherwise.
    pub parent: String,
    pub generation_id: String,
    pub etag: String,
    /// Tag of the discovery run that last saw the record.
    pub seen: String,
    pub body: Value,
}

impl Record {
    /// The body with `generationId` and `etag`, as the API shows it.
    pub fn to_json(&self) -> Value {
        let mut v = self.body.clone();
        if let Value::Object(o) = &mut v {
            o.insert("generationId".into(), self.generation_id.clone().into());
            o.insert("etag".into(), self.etag.clone().into());
        }
        v
    }
}

/// What a write sets.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub owner: String,
    pub parent: String,
    pub seen: String,
    pub body: Value,
}

impl Change {
    /// A change that keeps owner, parent and seen of `r`.
    pub fn of(r: &Record, body: Value) -> Self {
        Self {
            owner: r.owner.clone(),
            parent: r.parent.clone(),
            seen: r.seen.clone(),
            body,
        }
    }
}

/// Which records a list returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    pub owner: Option<&'a str>,
    pub parent: Option<&'a str>,
}

/// One page and the token of the next.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Record>,
    pub continuation_token: Option<String>,
}

/// One page of a filtered scan: the records kept, and the id to resume after when the scan
/// stopped before the end of the table.
#[derive(Debug)]
pub struct Scan {
    pub items: Vec<Record>,
    pub resume_after: Option<String>,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
}

fn new_tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn record(row: &AnyRow) -> Result<Record, ApiError> {
    let body: String = row.try_get("body")?;
    Ok(Record {
        kind: row.try_get("kind")?,
        id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        parent: row.try_get("parent")?,
        generation_id: row.try_get("generation_id")?,
        etag: row.try_get("etag")?,
        seen: row.try_get("seen")?,
        body: serde_json::from_str(&body)
            .map_err(|e| ApiError::Internal(format!("stored record is not JSON: {e}")))?,
    })
}

/// `If-Match` value without quotes or weak marker; `None` for a missing header or `*`.
pub fn if_match_value(raw: Option<&str>) -> Option<String> {
    let v = raw?.trim();
    if v == "*" || v.is_empty() {
        return None;
    }
    let v = v.strip_prefix("W/").unwrap_or(v);
    Some(v.trim_matches('"').to_string())
}

pub(crate) fn encode_token(last_id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last_id.as_bytes())
}

pub(crate) fn decode_token(token: &str) -> Result<String, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::BadRequest("continuationToken is not valid".into()))
}

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the database at `url`.
    pub async fn open(url: &str) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 16 })
            .connect(url)
            .await?;
        if sqlite {
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
        }
        let store = Self { pool };
        if sqlite {
            store.migrate().await?;
        } else {
            store.migrate_alone(url).await?;
        }
        Ok(store)
    }

    /// Replicas started together on one empty PostgreSQL database would race in the DDL
    /// (`CREATE TABLE IF NOT EXISTS` is not safe against itself: the loser fails on
    /// `pg_type_typname_nsp_index`), so they take turns under a session-level advisory lock.
    /// The lock lives on a connection of its own, outside the pool: if anything fails, closing
    /// that connection releases the lock.
    async fn migrate_alone(&self, url: &str) -> Result<(), sqlx::Error> {
        let mut lock = sqlx::AnyConnection::connect(url).await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut lock)
            .await?;
        let migrated = self.migrate().await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut lock)
            .await;
        let _ = lock.close().await;
        migrated?;
        unlocked.map(drop)
    }

    async fn migrate(&self) -> Result<(), sqlx::Error> {
        sqlx::query("CREATE TABLE IF NOT EXISTS twin_api_migrations (version BIGINT PRIMARY KEY)")
            .execute(&self.pool)
            .await?;
        for (version, sql) in MIGRATIONS {
            let done = sqlx::query("SELECT version FROM twin_api_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&self.pool)
                .await?;
            if done.is_some() {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
                    .execute(&mut *tx)
                    .await?;
            }
            // Two processes on one SQLite file take turns at its write lock; the second finds
            // the version recorded already: its transaction rolls back, the schema is there.
            let recorded = sqlx::query("INSERT INTO twin_api_migrations (version) VALUES ($1)")
                .bind(*version)
                .execute(&mut *tx)
                .await;
            match recorded {
                Ok(_) => tx.commit().await?,
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => tx.rollback().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The pool, for the hub's own tables.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn get(&self, kind: &str, id: &str) -> Result<Option<Record>, ApiError> {
        let row = sqlx::query(
            "SELECT kind, id, owner, parent, generation_id, etag, seen, body FROM records \
             WHERE kind = $1 AND id = $2",
        )
        .bind(kind)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(record).transpose()
    }

    /// Inserts a new record; `false` when the id exists already.
    async fn insert(&self, kind: &str, id: &str, c: &Change) -> Result<Option<Record>, ApiError> {
        let r = Record {
            kind: kind.into(),
            id: id.into(),
            owner: c.owner.clone(),
            parent: c.parent.clone(),
            generation_id: new_tag(),
            etag: new_tag(),
            seen: c.seen.clone(),
            body: c.body.clone(),
        };
        let done = sqlx::query(
            "INSERT INTO records (kind, id, owner, parent, generation_id, etag, seen, body) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE NOT EXISTS \
             (SELECT 1 FROM records WHERE kind = $1 AND id = $2)",
        )
        .bind(&r.kind)
        .bind(&r.id)
        .bind(&r.owner)
        .bind(&r.parent)
        .bind(&r.generation_id)
        .bind(&r.etag)
        .bind(&r.seen)
        .bind(r.body.to_string())
        .execute(&self.pool)
        .await;
        match done {
            Ok(d) if d.rows_affected() == 1 => Ok(Some(r)),
            Ok(_) => Ok(None),
            // A concurrent insert of the same key between the check and the write.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces a record if its etag is still `etag`; the etag changes only with the body.
    async fn replace(&self, old: &Record, c: &Change) -> Result<Option<Record>, ApiError> {
        let etag = if c.body == old.body {
            old.etag.clone()
        } else {
            new_tag()
        };
        let done = sqlx::query(
            "UPDATE records SET owner = $1, parent = $2, etag = $3, seen = $4, body = $5 \
             WHERE kind = $6 AND id = $7 AND etag = $8",
        )
        .bind(&c.owner)
        .bind(&c.parent)
        .bind(&etag)
        .bind(&c.seen)
        .bind(c.body.to_string())
        .bind(&old.kind)
        .bind(&old.id)
        .bind(&old.etag)
        .execute(&self.pool)
        .await?;
        Ok((done.rows_affected() == 1).then(|| Record {
            owner: c.owner.clone(),
            parent: c.parent.clone(),
            etag,
            seen: c.seen.clone(),
            body: c.body.clone(),
            ..old.clone()
        }))
    }

    /// Reads a record, lets `f` decide its new content (`None`: leave it as it is) and writes
    /// it guarded by `if_match` (the caller's etag) and by what was read; lost races retry.
    pub async fn modify<F>(
        &self,
        kind: &str,
        id: &str,
        if_match: Option<&str>,
        mut f: F,
    ) -> Result<Option<Record>, ApiError>
    where
        F: FnMut(Option<&Record>) -> Result<Option<Change>, ApiError>,
    {
        for _ in 0..20 {
            let current = self.get(kind, id).await?;
            if let (Some(want), Some(r)) = (if_match, &current) {
                if r.etag != want {
                    return Err(ApiError::PreconditionFailed(want.to_string()));
                }
            }
            if let (Some(want), None) = (if_match, &current) {
                return Err(ApiError::PreconditionFailed(want.to_string()));
            }
            let Some(change) = f(current.as_ref())? else {
                return Ok(current);
            };
            let written = match &current {
                Some(r) => self.replace(r, &change).await?,
                None => self.insert(kind, id, &change).await?,
            };
            if let Some(r) = written {
                return Ok(Some(r));
            }
            if if_match.is_some() {
                // Someone else changed it since the caller read it.
                return Err(ApiError::PreconditionFailed(
                    if_match.unwrap_or_default().to_string(),
                ));
            }
        }
        Err(ApiError::Internal(format!(
            "{kind} '{id}' kept changing; try again"
        )))
    }

    /// Deletes a record (guarded by `if_match`); `NotFound` when there is none.
    pub async fn delete(
        &self,
        kind: &str,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<Record, ApiError> {
        let Some(current) = self.get(kind, id).await? else {
            return Err(ApiError::NotFound(format!("no {kind} '{id}'")));
        };
        if let Some(want) = if_match {
            if current.etag != want {
                return Err(ApiError::PreconditionFailed(want.to_string()));
            }
        }
        let done = sqlx::query("DELETE FROM records WHERE kind = $1 AND id = $2 AND etag = $3")
            .bind(kind)
            .bind(id)
            .bind(&current.etag)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(ApiError::PreconditionFailed(
                if_match.unwrap_or(&current.etag).to_string(),
            ));
        }
        Ok(current)
    }

    /// Deletes every record of `kind` under `parent`.
    pub async fn delete_children(&self, kind: &str, parent: &str) -> Result<u64, ApiError> {
        let done = sqlx::query("DELETE FROM records WHERE kind = $1 AND parent = $2")
            .bind(kind)
            .bind(parent)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Up to `limit` records of `kind` in id order after the id `after` (`""`: from the start).
    async fn fetch_after(
        &self,
        kind: &str,
        filter: Filter<'_>,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Record>, ApiError> {
        // Empty filter values match everything: `($3 = '' OR owner = $3)`.
        let rows = sqlx::query(
            "SELECT kind, id, owner, parent, generation_id, etag, seen, body FROM records \
             WHERE kind = $1 AND id > $2 AND ($3 = '' OR owner = $3) AND ($4 = '' OR parent = $4) \
             ORDER BY id LIMIT $5",
        )
        .bind(kind)
        .bind(after)
        .bind(filter.owner.unwrap_or_default())
        .bind(filter.parent.unwrap_or_default())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// One page of records in id order, after the record the token names.
    pub async fn list(
        &self,
        kind: &str,
        filter: Filter<'_>,
        continuation_token: Option<&str>,
        page_size: Option<usize>,
    ) -> Result<Page, ApiError> {
        let limit = page_size.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
        let after = continuation_token
            .filter(|t| !t.is_empty())
            .map(decode_token)
            .transpose()?
            .unwrap_or_default();
        let mut items = self.fetch_after(kind, filter, &after, limit + 1).await?;
        let continuation_token = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|r| encode_token(&r.id))
        } else {
            None
        };
        Ok(Page {
            items,
            continuation_token,
        })
    }

    /// One page of the records `keep` accepts, in id order after the id `after`. The filter
    /// runs here rather than in SQL because the bodies are JSON text that SQLite and
    /// PostgreSQL would query differently; [`MAX_SCAN`] bounds what one call reads, so a page
    /// may hold fewer than `page_size` records (even none) and still resume.
    pub async fn scan(
        &self,
        kind: &str,
        after: &str,
        page_size: Option<usize>,
        mut keep: impl FnMut(&Record) -> bool,
    ) -> Result<Scan, ApiError> {
        let limit = page_size.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
        let mut items = Vec::new();
        let mut cursor = after.to_string();
        let mut read = 0;
        loop {
            let batch = self
                .fetch_after(kind, Filter::default(), &cursor, MAX_PAGE)
                .await?;
            let more_in_table = batch.len() == MAX_PAGE;
            let mut batch = batch.into_iter();
            while let Some(r) = batch.next() {
                read += 1;
                cursor.clone_from(&r.id);
                if !keep(&r) {
                    continue;
                }
                items.push(r);
                if items.len() == limit {
                    // Resume only if something after this page could still match.
                    let more = more_in_table || batch.any(|r| keep(&r));
                    return Ok(Scan {
                        items,
                        resume_after: more.then_some(cursor),
                    });
                }
            }
            if !more_in_table {
                return Ok(Scan {
                    items,
                    resume_after: None,
                });
            }
            if read >= MAX_SCAN {
                return Ok(Scan {
                    items,
                    resume_after: Some(cursor),
                });
            }
        }
    }

    /// Every record of `kind` (for export and discovery bookkeeping), page by page.
    pub async fn all(&self, kind: &str, filter: Filter<'_>) -> Result<Vec<Record>, ApiError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self.list(kind, filter, token.as_deref(), None).await?;
            out.extend(page.items);
            match page.continuation_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// Writes a record as exported (same generationId and etag), replacing what is there.
    pub async fn restore(&self, r: &Record) -> Result<(), ApiError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM records WHERE kind = $1 AND id = $2")
            .bind(&r.kind)
            .bind(&r.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO records (kind, id, owner, parent, generation_id, etag, seen, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&r.kind)
        .bind(&r.id)
        .bind(&r.owner)
        .bind(&r.parent)
        .bind(&r.generation_id)
        .bind(&r.etag)
        .bind(&r.seen)
        .bind(r.body.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
