//! The message writer on SQLite: a thread of its own that commits each batch through
//! rusqlite, inline, as the vault's writer does.
//!
//! Why: the writer is the one serial step every device message passes, so its time per
//! message bounds the hub's ingest. Through sqlx each statement is a hand-off to the
//! connection's worker thread and its arguments are converted twice (into `Any`, then into
//! SQLite's); `iiot bench hub` showed the writer at ≈ 23 µs per message where SQLite itself
//! needs a few. Here one prepared statement runs on the writer's own thread; the only
//! hand-offs left are taking a batch from the queue and answering its senders.
//!
//! Same semantics as the sqlx writer: everything queued (up to `MAX_BATCH`) is one
//! transaction, committed with `synchronous = FULL` before any sender hears back; a failed
//! commit fails the whole batch.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use rusqlite::{params, Connection, TransactionBehavior};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use super::messages::{Ack, Ids, Message, MAX_BATCH};

/// The SQLite file of a `sqlite:` URL (`sqlite://path?mode=rwc`, `sqlite:path`).
pub fn file_of(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // As on the sqlx connections: no build default may weaken a commit.
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

fn greatest_id(conn: &Connection) -> rusqlite::Result<String> {
    conn.query_row("SELECT MAX(id) FROM hub_messages", [], |r| {
        r.get::<_, Option<String>>(0)
    })
    .map(Option::unwrap_or_default)
}

fn commit(
    conn: &mut Connection,
    batch: &mut [(Message, Ack)],
    ids: &mut Ids,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO hub_messages (id, device_id, module_id, enqueued_time, \
             system_properties, properties, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (m, _) in batch.iter_mut() {
            (m.id, m.enqueued_time) = ids.next();
            insert.execute(params![
                m.id,
                m.device_id,
                m.module_id,
                m.enqueued_time,
                Value::Object(m.system_properties.clone()).to_string(),
                Value::Object(m.properties.clone()).to_string(),
                base64::engine::general_purpose::STANDARD.encode(&m.body),
            ])?;
        }
    }
    tx.commit()
}

/// Serves `rx` until every sender is gone; committed messages go to `live`.
pub(super) fn run(
    path: &Path,
    mut rx: mpsc::Receiver<(Message, Ack)>,
    live: broadcast::Sender<Message>,
) {
    let mut conn: Option<Connection> = None;
    let mut ids = Ids::new();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let result = match conn.as_mut() {
            Some(c) => commit(c, &mut batch, &mut ids),
            None => open(path).and_then(|c| {
                let c = conn.insert(c);
                // Ids continue above what is stored (a clock that stepped back across a
                // restart cannot reorder them).
                ids.above(&greatest_id(c)?);
                commit(c, &mut batch, &mut ids)
            }),
        };
        if let Err(e) = &result {
            tracing::warn!(error = %e, messages = batch.len(), "storing device messages failed; not acknowledged");
            conn = None;
            // A pause, so a database in trouble is not hammered by retried sends.
            std::thread::sleep(Duration::from_millis(200));
        }
        let ok = result.is_ok();
        for (m, ack) in batch.drain(..) {
            let _ = ack.send(result.as_ref().map(drop).map_err(|e| e.to_string()));
            if ok {
                let _ = live.send(m);
            }
        }
    }
    tracing::debug!("hub message writer stopped");
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            file_of("sqlite:///data/twin-api.db?mode=rwc"),
            Some(PathBuf::from("/data/twin-api.db"))
        );
        assert_eq!(file_of("sqlite:x.db"), Some(PathBuf::from("x.db")));
        assert_eq!(file_of("sqlite::memory:"), None);
        assert_eq!(file_of("postgres://h/db"), None);
    }
}
