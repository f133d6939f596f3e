//! The bus between hub replicas on one PostgreSQL database: LISTEN/NOTIFY on the database
//! they already share, so running several replicas needs nothing more than the database.
//!
//! Each replica listens on `hub_all` (what every replica must hear: messages committed,
//! sessions to close, publishers seen) and on `hub_<instance>` (what only it can do: a call
//! or a desired patch for a device connected to it). A note larger than one NOTIFY may carry
//! (8,000 bytes) waits in `hub_bus` and the notification carries its row id instead.
//!
//! Delivery is at most once: a replica whose listening connection drops misses what was
//! sent meanwhile. What depends on it is bounded by time (a forwarded call times out) or
//! made good by the store (message streams read it; a device GETs its twin on reconnect).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, watch};

use super::error::HubError;

/// The channel every replica listens on.
const ALL: &str = "hub_all";
/// Largest note sent inline: NOTIFY's payload limit is 8,000 bytes.
const INLINE: usize = 7_900;
/// Notes waiting for the replica's handler before the listener drops new ones.
const QUEUE: usize = 4096;
/// Spilled notes nobody fetched (the replica stopped) are deleted after this long.
const SPILL_KEPT: Duration = Duration::from_secs(600);

/// What replicas tell each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Note {
    /// Invoke a direct method on a device connected to the receiver and answer `from`.
    #[serde(rename_all = "camelCase")]
    Call {
        rid: String,
        device: String,
        module: String,
        method: String,
        /// The request body (JSON text).
        payload: String,
        timeout_ms: u64,
    },
    /// The answer to a `Call`: a status and payload, or why there is none.
    #[serde(rename_all = "camelCase")]
    Answer {
        rid: String,
        status: i32,
        payload: String,
        /// `notOnline` or `timeout` when the device did not answer.
        error: Option<String>,
    },
    /// Send `payload` on `topic` to a device connected to the receiver that subscribed to
    /// desired-property patches.
    Desired {
        device: String,
        module: String,
        topic: String,
        payload: String,
    },
    /// End a session: of one identity (only connection `connection` when given: a take-over
    /// must not end the session that took over), or of a device and all its modules.
    Close {
        device: String,
        module: Option<String>,
        connection: Option<String>,
        taken_over: bool,
    },
    /// A publisher identity connected or went (for every replica's publishers view).
    Seen {
        device: String,
        module: String,
        online: bool,
    },
    /// A delivery waits for an identity connected to the receiver.
    Deliver { device: String, module: String },
    /// Device messages were committed: streams read the store.
    Messages,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    from: String,
    #[serde(flatten)]
    note: Note,
}

/// A note received, with the replica that sent it.
#[derive(Debug)]
pub struct Received {
    pub from: String,
    pub note: Note,
}

/// A replica's end of the bus.
#[derive(Clone)]
pub struct Bus {
    pool: AnyPool,
    instance: Arc<str>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

fn channel(instance: &str) -> String {
    format!("hub_{instance}")
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Bus {
    /// Listens on the database at `url` (PostgreSQL) as `instance`; notes from other
    /// replicas arrive on the receiver until `shutdown`. `lost` is told whenever the
    /// listening connection dropped (notes may have been missed).
    pub async fn connect(
        url: &str,
        pool: AnyPool,
        instance: &str,
        lost: impl Fn() + Send + 'static,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Self, mpsc::Receiver<Received>), HubError> {
        let mut listener = PgListener::connect(url)
            .await
            .map_err(|e| HubError::Setup(format!("listening for hub replicas: {e}")))?;
        let own = channel(instance);
        listener
            .listen_all([ALL, own.as_str()])
            .await
            .map_err(|e| HubError::Setup(format!("listening for hub replicas: {e}")))?;
        let bus = Self {
            pool,
            instance: instance.into(),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(bus.clone().listen(listener, tx, lost, shutdown));
        Ok((bus, rx))
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    async fn listen(
        self,
        mut listener: PgListener,
        tx: mpsc::Sender<Received>,
        lost: impl Fn() + Send + 'static,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let next = tokio::select! {
                n = listener.try_recv() => n,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            let text = match next {
                Ok(Some(n)) => n.payload().to_string(),
                Ok(None) => {
                    tracing::warn!("hub bus: the listening connection dropped; reconnecting");
                    lost();
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "hub bus: listening failed; retrying");
                    lost();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let text = match text.strip_prefix('@') {
                Some(id) => match self.take_spilled(id).await {
                    Ok(Some(body)) => body,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "hub bus: reading a large note failed");
                        continue;
                    }
                },
                None => text,
            };
            let envelope: Envelope = match serde_json::from_str(&text) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "hub bus: a note this replica cannot read");
                    continue;
                }
            };
            if envelope.from == *self.instance {
                continue;
            }
            let received = Received {
                from: envelope.from,
                note: envelope.note,
            };
            if tx.try_send(received).is_err() {
                tracing::warn!(
                    "hub bus: notes arrive faster than this replica handles them; one dropped"
                );
            }
        }
    }

    async fn take_spilled(&self, id: &str) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query("DELETE FROM hub_bus WHERE id = $1 RETURNING body")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("body")).transpose()
    }

    /// Sends `note` to replica `to`, or to every other replica when `None`.
    pub async fn send(&self, to: Option<&str>, note: Note) -> Result<(), HubError> {
        let text = serde_json::to_string(&Envelope {
            from: self.instance.to_string(),
            note,
        })
        .map_err(|e| HubError::Internal(format!("encoding a bus note: {e}")))?;
        // A spilled note is taken by the first replica that reads it: only for one receiver.
        if text.len() > INLINE && to.is_none() {
            return Err(HubError::Internal(format!(
                "a note for every replica is {} bytes; at most {INLINE}",
                text.len()
            )));
        }
        let payload = if text.len() > INLINE {
            let id = uuid::Uuid::new_v4().simple().to_string();
            sqlx::query("INSERT INTO hub_bus (id, body, created) VALUES ($1, $2, $3)")
                .bind(&id)
                .bind(&text)
                .bind(unix_now())
                .execute(&self.pool)
                .await?;
            format!("@{id}")
        } else {
            text
        };
        let target = to.map_or_else(|| ALL.to_string(), channel);
        sqlx::query("SELECT CAST(pg_notify($1, $2) AS TEXT)")
            .bind(target)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes spilled notes nobody fetched.
    pub async fn prune(&self) -> Result<(), HubError> {
        let cutoff = unix_now() - i64::try_from(SPILL_KEPT.as_secs()).unwrap_or(600);
        sqlx::query("DELETE FROM hub_bus WHERE created < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn notes_keep_their_shape_on_the_wire() {
        let e = Envelope {
            from: "a".into(),
            note: Note::Close {
                device: "d".into(),
                module: None,
                connection: Some("a-1".into()),
                taken_over: true,
            },
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains(r#""kind":"close""#), "{text}");
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.from, "a");
        assert_eq!(back.note, e.note);
        let call: Envelope = serde_json::from_str(
            r#"{"from":"b","kind":"call","rid":"1","device":"d","module":"","method":"m","payload":"{}","timeoutMs":5}"#,
        )
        .unwrap();
        assert!(matches!(call.note, Note::Call { timeout_ms: 5, .. }));
    }
}
