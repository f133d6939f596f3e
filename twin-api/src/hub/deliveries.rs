//! Messages the hub delivers to an identity — cloud-to-device messages to a device, and
//! messages an `$edgeHub` route sends to a module's input — kept in the store until the identity's
//! PUBACK completes them, so a device that is offline, or drops before acknowledging, gets
//! them when it connects (at least once), until they expire. IoT Hub's rules: at most 50
//! waiting per device, 64 KB each, an hour to live unless the sender says otherwise (48 hours
//! at most).

use base64::Engine;
use bytes::Bytes;
use iiot_api::iothub::topics::PropertyBag;
use sqlx::{AnyPool, Row};

use super::error::HubError;

/// Most messages waiting for one device (IoT Hub's cloud-to-device queue depth).
pub const MAX_QUEUED: i64 = 50;
/// Most messages waiting for one module input queue (edgeHub's store and forward, bounded
/// so a module that never connects cannot fill the database).
pub const MAX_INPUTS_QUEUED: i64 = 100_000;
/// Largest cloud-to-device message body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Time to live when the sender gives none.
pub const DEFAULT_TTL_SECS: i64 = 3600;
/// Longest time to live a sender may give.
pub const MAX_TTL_SECS: i64 = 48 * 3600;

/// One message waiting for its identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Orders an identity's deliveries: microseconds since 1970, then a random suffix.
    pub id: String,
    pub device_id: String,
    pub module_id: String,
    /// The module input it is for; empty for a cloud-to-device message.
    pub input: String,
    /// System (`$.mid`, `$.ct`, …) and application properties, as the topic carries them.
    pub properties: PropertyBag,
    pub body: Bytes,
    /// Unix seconds after which it is no longer delivered.
    pub expires: i64,
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A new delivery id: later deliveries sort after earlier ones.
pub fn new_id() -> String {
    let micros = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{micros:020}-{}", &suffix[..8])
}

/// The deliveries table.
#[derive(Clone)]
pub struct Deliveries {
    pool: AnyPool,
}

impl Deliveries {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// Queues `d`; `Ok(false)` when its identity already has `limit` waiting.
    pub async fn enqueue(&self, d: &Delivery, limit: i64) -> Result<bool, HubError> {
        let pairs: Vec<(&str, Option<&str>)> = d
            .properties
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        let properties = serde_json::to_string(&pairs)
            .map_err(|e| HubError::Internal(format!("encoding properties: {e}")))?;
        // The depth check and the insert in one statement, so concurrent senders (on any
        // replica) cannot both pass it.
        let done = sqlx::query(
            "INSERT INTO hub_deliveries (id, device_id, module_id, input, properties, body, expires) \
             SELECT $1, $2, $3, $4, $5, $6, $7 WHERE (SELECT COUNT(*) FROM hub_deliveries \
             WHERE device_id = $2 AND module_id = $3 AND expires > $8) < $9",
        )
        .bind(&d.id)
        .bind(&d.device_id)
        .bind(&d.module_id)
        .bind(&d.input)
        .bind(properties)
        .bind(base64::engine::general_purpose::STANDARD.encode(&d.body))
        .bind(d.expires)
        .bind(unix_now())
        .bind(limit)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Up to `limit` unexpired deliveries for an identity after `after` (an id), oldest first.
    pub async fn pending(
        &self,
        device_id: &str,
        module_id: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Delivery>, HubError> {
        let rows = sqlx::query(
            "SELECT id, device_id, module_id, input, properties, body, expires FROM hub_deliveries \
             WHERE device_id = $1 AND module_id = $2 AND id > $3 AND expires > $4 \
             ORDER BY id LIMIT $5",
        )
        .bind(device_id)
        .bind(module_id)
        .bind(after)
        .bind(unix_now())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let properties: String = r.try_get("properties")?;
                let pairs: Vec<(String, Option<String>)> = serde_json::from_str(&properties)
                    .map_err(|e| HubError::Internal(format!("stored delivery: {e}")))?;
                let body: String = r.try_get("body")?;
                let body = base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .map_err(|e| HubError::Internal(format!("stored delivery body: {e}")))?;
                Ok(Delivery {
                    id: r.try_get("id")?,
                    device_id: r.try_get("device_id")?,
                    module_id: r.try_get("module_id")?,
                    input: r.try_get("input")?,
                    properties: PropertyBag(pairs),
                    body: Bytes::from(body),
                    expires: r.try_get("expires")?,
                })
            })
            .collect()
    }

    /// The identity acknowledged delivery `id`: it is done.
    pub async fn complete(
        &self,
        device_id: &str,
        module_id: &str,
        id: &str,
    ) -> Result<(), HubError> {
        sqlx::query(
            "DELETE FROM hub_deliveries WHERE id = $1 AND device_id = $2 AND module_id = $3",
        )
        .bind(id)
        .bind(device_id)
        .bind(module_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes what waits for an identity (IoT Hub's purge); returns how many.
    pub async fn purge(&self, device_id: &str, module_id: &str) -> Result<u64, HubError> {
        let done =
            sqlx::query("DELETE FROM hub_deliveries WHERE device_id = $1 AND module_id = $2")
                .bind(device_id)
                .bind(module_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    /// Deletes expired deliveries, and those of identities that no longer exist.
    pub async fn prune(&self) -> Result<u64, HubError> {
        let done = sqlx::query(
            "DELETE FROM hub_deliveries WHERE expires <= $1 OR NOT EXISTS (SELECT 1 FROM \
             hub_identities i WHERE i.device_id = hub_deliveries.device_id \
             AND i.module_id = hub_deliveries.module_id)",
        )
        .bind(unix_now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
