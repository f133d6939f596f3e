//! Device-to-cloud messages: stored durably before the device's PUBACK, then delivered to the
//! routes (the SSE stream; a broker topic later) at least once.
//!
//! Every session hands its messages to one writer task that commits whatever has queued up
//! in a single transaction (group commit), so the cost of a durable write is shared by every
//! message waiting for it instead of paid per message. A message is acknowledged only after
//! its transaction committed; a failed commit fails the whole batch, whose senders then close
//! their sessions without acknowledging (the device sends again).
//!
//! Replicas on one PostgreSQL database commit under one advisory lock and give ids above
//! the greatest stored, so ids follow commit order across replicas too: a reader that has
//! seen id `x` has seen every message below it. Each replica then follows the store (woken by
//! its own commits and the others' notes) and feeds its live subscribers in id order.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{AnyPool, Row};
use tokio::sync::{broadcast, mpsc, oneshot, Notify};

use super::bus::{Bus, Note};
use super::error::HubError;

/// Most messages one transaction commits.
pub(super) const MAX_BATCH: usize = 2048;
/// Messages waiting for the writer before senders wait for room.
const QUEUE: usize = 16 * 1024;
/// Live subscribers may fall this far behind before they lose messages (they then resume
/// from the store by id).
const FANOUT: usize = 4096;
/// Messages a replica's follower reads from the store per query.
const FOLLOW_PAGE: usize = 500;
/// A follower also reads the store this often, in case a note was lost.
const FOLLOW_POLL: Duration = Duration::from_secs(1);
/// The advisory lock replicas' message commits take (ASCII "hub_msgs").
const COMMIT_LOCK: i64 = 0x6875_625f_6d73_6773;

/// One message as the hub keeps and shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Orders messages: enqueued time in microseconds, zero-padded, then a random suffix.
    pub id: String,
    pub device_id: String,
    pub module_id: String,
    pub enqueued_time: String,
    /// IoT Hub's system properties (`message-id`, `content-type`, …).
    pub system_properties: Map<String, Value>,
    /// The application properties of the property bag.
    pub properties: Map<String, Value>,
    #[serde(skip)]
    pub body: Bytes,
}

impl Message {
    /// The event shown to consumers: the body as JSON when it is JSON, text when it is
    /// UTF-8, base64 otherwise (with `bodyEncoding`).
    pub fn to_event(&self) -> Value {
        let mut system = self.system_properties.clone();
        system.insert(
            "iothub-connection-device-id".into(),
            self.device_id.clone().into(),
        );
        if !self.module_id.is_empty() {
            system.insert(
                "iothub-connection-module-id".into(),
                self.module_id.clone().into(),
            );
        }
        system.insert(
            "iothub-enqueuedtime".into(),
            self.enqueued_time.clone().into(),
        );
        let (body, encoding) = match serde_json::from_slice::<Value>(&self.body) {
            Ok(v) => (v, "json"),
            Err(_) => match std::str::from_utf8(&self.body) {
                Ok(s) => (Value::String(s.to_string()), "text"),
                Err(_) => (
                    Value::String(base64::engine::general_purpose::STANDARD.encode(&self.body)),
                    "base64",
                ),
            },
        };
        serde_json::json!({
            "id": self.id,
            "enqueuedTime": self.enqueued_time,
            "systemProperties": system,
            "properties": self.properties,
            "body": body,
            "bodyEncoding": encoding,
        })
    }
}

pub(super) type Ack = oneshot::Sender<Result<(), String>>;

/// The handle sessions and the SSE route use.
#[derive(Clone)]
pub struct Messages {
    pool: AnyPool,
    queue: mpsc::Sender<(Message, Ack)>,
    live: broadcast::Sender<Message>,
    stop: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    /// Wakes the follower (replicas only).
    wake: std::sync::Arc<Notify>,
}

/// The position of `now` among message ids: every message enqueued later has a greater id.
pub fn new_id(now: time::OffsetDateTime) -> String {
    let micros = now.unix_timestamp_nanos() / 1000;
    format!("{micros:020}")
}

/// Gives messages their ids in commit order: microseconds since 1970, never less than the
/// previous id plus one (a clock stepping back cannot reorder them), and a random suffix so
/// replicas' ids do not collide.
pub(super) struct Ids {
    last: i128,
    suffix: String,
}

impl Ids {
    pub(super) fn new() -> Self {
        Self {
            last: 0,
            suffix: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
        }
    }

    /// Ids continue above `id` (the greatest stored, perhaps another replica's).
    pub(super) fn above(&mut self, id: &str) {
        if let Some(micros) = id.get(..20).and_then(|m| m.parse::<i128>().ok()) {
            self.last = self.last.max(micros);
        }
    }

    pub(super) fn next(&mut self) -> (String, String) {
        let now = time::OffsetDateTime::now_utc();
        let micros = (now.unix_timestamp_nanos() / 1000).max(self.last + 1);
        self.last = micros;
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).unwrap_or(now);
        (
            format!("{micros:020}-{}", self.suffix),
            at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        )
    }
}

impl Messages {
    /// Starts the writer task on `pool` (on SQLite, `sqlite_file`: a thread of its own, see
    /// `sqlite_writer`); with a `bus` (replicas), also the follower that `wake` wakes and the
    /// task telling other replicas of commits.
    pub fn start(
        pool: AnyPool,
        sqlite_file: Option<std::path::PathBuf>,
        bus: Option<Bus>,
        wake: std::sync::Arc<Notify>,
    ) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let (live, _) = broadcast::channel(FANOUT);
        let (stop, _) = tokio::sync::watch::channel(false);
        let publish = match bus {
            None => Publish::Direct(live.clone()),
            Some(bus) => {
                let committed = std::sync::Arc::new(Notify::new());
                tokio::spawn(announce(bus, committed.clone(), stop.subscribe()));
                tokio::spawn(follow(
                    pool.clone(),
                    live.clone(),
                    wake.clone(),
                    stop.subscribe(),
                ));
                Publish::Shared {
                    follower: wake.clone(),
                    committed,
                }
            }
        };
        match (sqlite_file, publish) {
            (Some(file), Publish::Direct(live)) => {
                let spawned = std::thread::Builder::new()
                    .name("hub-writer".into())
                    .spawn(move || super::sqlite_writer::run(&file, rx, live));
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "hub: starting the message writer failed");
                }
            }
            (_, publish) => {
                tokio::spawn(writer(pool.clone(), rx, publish));
            }
        }
        Self {
            pool,
            queue,
            live,
            stop: std::sync::Arc::new(stop),
            wake,
        }
    }

    /// Another replica committed messages: the follower reads them.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Ends the streams of consumers (the hub is stopping).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Hands `m` to the writer (its id and enqueued time are given there, in commit order);
    /// the receiver answers once it is committed, so a session can go on reading meanwhile.
    pub async fn submit(
        &self,
        m: Message,
    ) -> Result<oneshot::Receiver<Result<(), String>>, HubError> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send((m, tx))
            .await
            .map_err(|_| HubError::Internal("the message writer stopped".into()))?;
        Ok(rx)
    }

    /// Stores `m`; returns once it is committed.
    pub async fn append(&self, m: Message) -> Result<(), HubError> {
        let rx = self.submit(m).await?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(HubError::Internal(format!("storing a message: {e}"))),
            Err(_) => Err(HubError::Internal("the message writer stopped".into())),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Message> {
        self.live.subscribe()
    }

    /// Up to `limit` stored messages after `after` (an id; `""` from the oldest kept).
    pub async fn after(&self, after: &str, limit: usize) -> Result<Vec<Message>, HubError> {
        read_after(&self.pool, after, limit).await
    }

    /// The id of the newest stored message (`""` when none).
    pub async fn newest(&self) -> Result<String, HubError> {
        Ok(greatest_id(&self.pool).await?)
    }

    /// Deletes messages enqueued before `cutoff` (an id prefix made by [`new_id`]).
    pub async fn prune_before(&self, cutoff: &str) -> Result<u64, HubError> {
        let done = sqlx::query("DELETE FROM hub_messages WHERE id < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

async fn read_after(pool: &AnyPool, after: &str, limit: usize) -> Result<Vec<Message>, HubError> {
    let rows = sqlx::query(
        "SELECT id, device_id, module_id, enqueued_time, system_properties, properties, body \
             FROM hub_messages WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let system: String = r.try_get("system_properties")?;
            let props: String = r.try_get("properties")?;
            let body: String = r.try_get("body")?;
            let body = base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|e| HubError::Internal(format!("stored message body: {e}")))?;
            let map = |s: &str| {
                serde_json::from_str::<Map<String, Value>>(s)
                    .map_err(|e| HubError::Internal(format!("stored message: {e}")))
            };
            Ok(Message {
                id: r.try_get("id")?,
                device_id: r.try_get("device_id")?,
                module_id: r.try_get("module_id")?,
                enqueued_time: r.try_get("enqueued_time")?,
                system_properties: map(&system)?,
                properties: map(&props)?,
                body: Bytes::from(body),
            })
        })
        .collect()
}

/// The greatest stored message id (`""` when none).
async fn greatest_id<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    e: E,
) -> Result<String, sqlx::Error> {
    let row = sqlx::query("SELECT MAX(id) AS id FROM hub_messages")
        .fetch_one(e)
        .await?;
    Ok(row.try_get::<Option<String>, _>("id")?.unwrap_or_default())
}

/// How committed messages reach live subscribers.
enum Publish {
    /// One replica: straight from the writer, in commit order.
    Direct(broadcast::Sender<Message>),
    /// Replicas: the follower reads the store (every replica's messages, in id order).
    Shared {
        follower: std::sync::Arc<Notify>,
        committed: std::sync::Arc<Notify>,
    },
}

/// Tells the other replicas that messages were committed; commits meanwhile share a note.
async fn announce(
    bus: Bus,
    committed: std::sync::Arc<Notify>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = committed.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = bus.send(None, Note::Messages).await {
            tracing::debug!(error = %e, "hub: announcing messages failed");
        }
    }
}

/// Feeds live subscribers every replica's messages in id order from the store.
async fn follow(
    pool: AnyPool,
    live: broadcast::Sender<Message>,
    wake: std::sync::Arc<Notify>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut last = loop {
        match greatest_id(&pool).await {
            Ok(id) => break id,
            Err(e) => {
                tracing::warn!(error = %e, "hub: reading the last message id failed");
                tokio::select! {
                    () = tokio::time::sleep(FOLLOW_POLL) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    };
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        loop {
            match read_after(&pool, &last, FOLLOW_PAGE).await {
                Ok(page) => {
                    let full = page.len() == FOLLOW_PAGE;
                    for m in page {
                        last.clone_from(&m.id);
                        let _ = live.send(m);
                    }
                    if !full {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "hub: following stored messages failed");
                    break;
                }
            }
        }
    }
}

/// Rows per INSERT: one statement (one trip to the database driver) carries many messages;
/// 7 parameters each stays far below SQLite's and PostgreSQL's parameter limits.
const ROWS_PER_INSERT: usize = 256;

/// Commits `batch`, giving its messages their ids; `shared`: under the replicas' lock, above
/// the greatest id stored.
async fn commit(
    pool: &AnyPool,
    batch: &mut [(Message, Ack)],
    ids: &mut Ids,
    shared: bool,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    if shared {
        sqlx::query("SELECT CAST(pg_advisory_xact_lock($1) AS TEXT)")
            .bind(COMMIT_LOCK)
            .execute(&mut *tx)
            .await?;
        ids.above(&greatest_id(&mut *tx).await?);
    }
    for (m, _) in batch.iter_mut() {
        (m.id, m.enqueued_time) = ids.next();
    }
    for chunk in batch.chunks(ROWS_PER_INSERT) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|r| {
                let p = r * 7;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6,
                    p + 7
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO hub_messages (id, device_id, module_id, enqueued_time, \
             system_properties, properties, body) VALUES {}",
            rows.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (m, _) in chunk {
            q = q
                .bind(m.id.clone())
                .bind(m.device_id.clone())
                .bind(m.module_id.clone())
                .bind(m.enqueued_time.clone())
                .bind(Value::Object(m.system_properties.clone()).to_string())
                .bind(Value::Object(m.properties.clone()).to_string())
                .bind(base64::engine::general_purpose::STANDARD.encode(&m.body));
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await
}

async fn writer(pool: AnyPool, mut rx: mpsc::Receiver<(Message, Ack)>, publish: Publish) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut ids = Ids::new();
    // Ids continue above what is stored, also after a restart with a clock that stepped
    // back: readers resume by id (the SSE stream's Last-Event-ID, the broker route).
    match greatest_id(&pool).await {
        Ok(id) => ids.above(&id),
        Err(e) => tracing::warn!(error = %e, "hub: reading the last message id failed"),
    }
    let shared = matches!(publish, Publish::Shared { .. });
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let result = commit(&pool, &mut batch, &mut ids, shared).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, messages = batch.len(), "storing device messages failed; not acknowledged");
            // A pause, so a database that is down is not hammered by retried sends.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if let (
            Ok(()),
            Publish::Shared {
                follower,
                committed,
            },
        ) = (&result, &publish)
        {
            follower.notify_one();
            committed.notify_one();
        }
        for (m, ack) in batch.drain(..) {
            let ok = result.is_ok();
            let _ = ack.send(result.as_ref().map(drop).map_err(|e| e.to_string()));
            if let (true, Publish::Direct(live)) = (ok, &publish) {
                let _ = live.send(m);
            }
        }
    }
}
