//! The hub's rows: one per identity (a device, or a module under it) holding its description,
//! sealed keys and twin, and one per access policy. SQL both SQLite and PostgreSQL run.
//!
//! Every write is guarded by the `revision` read (or by the primary key for a create) and
//! retried on a lost race, so replicas on one PostgreSQL database never overwrite each
//! other's changes — the same discipline as the registry store.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::error::HubError;
use super::identity::{Description, Identity, Keys};
use super::secrets::HubKek;
use super::twin::TwinState;

/// Length of a replica's instance id, the prefix of its connection ids
/// (`{instance}-{n}`).
pub const INSTANCE_LEN: i64 = 32;

const COLUMNS: &str = "device_id, module_id, generation_id, revision, description, sealed_keys, \
                       twin, connected, connection_updated, last_activity, subscriptions, \
                       connection_id";

/// A shared access policy: a named key pair with rights, as IoT Hub's are.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    pub rights: Vec<Right>,
    pub keys: Keys,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .field("rights", &self.rights)
            .finish_non_exhaustive()
    }
}

/// IoT Hub's permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Right {
    RegistryRead,
    RegistryWrite,
    ServiceConnect,
    DeviceConnect,
}

#[derive(Clone)]
pub struct HubStore {
    pool: AnyPool,
    kek: HubKek,
}

fn keys_context(device_id: &str, module_id: &str, generation_id: &str) -> String {
    format!("identity:{device_id}/{module_id}:{generation_id}")
}

fn json_of<T: Serialize>(v: &T) -> Result<String, HubError> {
    serde_json::to_string(v).map_err(|e| HubError::Internal(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, HubError> {
    serde_json::from_str(s).map_err(|e| HubError::Internal(format!("stored {what}: {e}")))
}

impl HubStore {
    pub fn new(pool: AnyPool, kek: HubKek) -> Self {
        Self { pool, kek }
    }

    pub fn kek(&self) -> &HubKek {
        &self.kek
    }

    fn identity(&self, row: &AnyRow) -> Result<Identity, HubError> {
        let device_id: String = row.try_get("device_id")?;
        let module_id: String = row.try_get("module_id")?;
        let generation_id: String = row.try_get("generation_id")?;
        let sealed: String = row.try_get("sealed_keys")?;
        let keys = if sealed.is_empty() {
            None
        } else {
            let plain = self.kek.open(
                &keys_context(&device_id, &module_id, &generation_id),
                &sealed,
            )?;
            Some(from_json("keys", &plain)?)
        };
        let description: String = row.try_get("description")?;
        let twin: String = row.try_get("twin")?;
        let connected: i64 = row.try_get("connected")?;
        let subscriptions: i64 = row.try_get("subscriptions")?;
        Ok(Identity {
            subscriptions: u8::try_from(subscriptions & 0xff).unwrap_or_default(),
            connection_id: row.try_get("connection_id")?,
            sealed: Some((keys.clone(), sealed)),
            desc: from_json::<Description>("identity", &description)?,
            twin: from_json::<TwinState>("twin", &twin)?,
            revision: row.try_get("revision")?,
            keys,
            connected: connected != 0,
            connection_updated: row.try_get("connection_updated")?,
            last_activity: row.try_get("last_activity")?,
            device_id,
            module_id,
            generation_id,
        })
    }

    fn sealed_keys(&self, i: &Identity) -> Result<String, HubError> {
        if let Some((keys, sealed)) = &i.sealed {
            if *keys == i.keys {
                return Ok(sealed.clone());
            }
        }
        match &i.keys {
            None => Ok(String::new()),
            Some(k) => self.kek.seal(
                &keys_context(&i.device_id, &i.module_id, &i.generation_id),
                &json_of(k)?,
            ),
        }
    }

    pub async fn get(
        &self,
        device_id: &str,
        module_id: &str,
    ) -> Result<Option<Identity>, HubError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM hub_identities WHERE device_id = $1 AND module_id = $2"
        )))
        .bind(device_id)
        .bind(module_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(|r| self.identity(r)).transpose()
    }

    /// Binds what a write stores of `i`, from `revision` on, in [`COLUMNS`]' order (both
    /// writes list them so).
    fn bind_state<'q>(
        &self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
        i: &'q Identity,
    ) -> Result<sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>, HubError> {
        Ok(q.bind(i.revision)
            .bind(json_of(&i.desc)?)
            .bind(self.sealed_keys(i)?)
            .bind(json_of(&i.twin)?)
            .bind(i64::from(i.connected))
            .bind(&i.connection_updated)
            .bind(&i.last_activity)
            .bind(i64::from(i.subscriptions))
            .bind(&i.connection_id))
    }

    /// Inserts `i`; `false` when the identity exists already.
    pub async fn insert(&self, i: &Identity) -> Result<bool, HubError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO hub_identities ({COLUMNS}) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 WHERE NOT EXISTS \
             (SELECT 1 FROM hub_identities WHERE device_id = $1 AND module_id = $2)"
        )))
        .bind(&i.device_id)
        .bind(&i.module_id)
        .bind(&i.generation_id);
        let done = self.bind_state(query, i)?.execute(&self.pool).await;
        match done {
            Ok(d) => Ok(d.rows_affected() == 1),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `i` over the row whose revision is still `i.revision - 1`; `false` when someone
    /// else wrote it since it was read.
    async fn replace(&self, i: &Identity) -> Result<bool, HubError> {
        let query = sqlx::query(
            "UPDATE hub_identities SET revision = $1, description = $2, sealed_keys = $3, \
             twin = $4, connected = $5, connection_updated = $6, last_activity = $7, \
             subscriptions = $8, connection_id = $9 \
             WHERE device_id = $10 AND module_id = $11 AND revision = $12",
        );
        let done = self
            .bind_state(query, i)?
            .bind(&i.device_id)
            .bind(&i.module_id)
            .bind(i.revision - 1)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Reads an identity, lets `f` change it (`Ok(false)`: leave it) and writes it back
    /// guarded by what was read; a lost race reads again. `None` when there is no identity.
    pub async fn update<F>(
        &self,
        device_id: &str,
        module_id: &str,
        mut f: F,
    ) -> Result<Option<Identity>, HubError>
    where
        F: FnMut(&mut Identity) -> Result<bool, HubError>,
    {
        for _ in 0..20 {
            let Some(mut i) = self.get(device_id, module_id).await? else {
                return Ok(None);
            };
            if !f(&mut i)? {
                return Ok(Some(i));
            }
            i.revision += 1;
            if self.replace(&i).await? {
                return Ok(Some(i));
            }
        }
        Err(HubError::Internal(format!(
            "identity '{device_id}/{module_id}' kept changing; try again"
        )))
    }

    /// Deletes an identity, and a device's modules with it, if its revision is still
    /// `revision`; `false` when it changed or is gone.
    pub async fn delete(&self, i: &Identity) -> Result<bool, HubError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "DELETE FROM hub_identities WHERE device_id = $1 AND module_id = $2 AND revision = $3",
        )
        .bind(&i.device_id)
        .bind(&i.module_id)
        .bind(i.revision)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        if !i.is_module() {
            sqlx::query("DELETE FROM hub_identities WHERE device_id = $1")
                .bind(&i.device_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Up to `limit` identities after `(device, module)` in key order: devices only, or
    /// modules only (of one device when `of_device` is given).
    pub async fn after(
        &self,
        modules: bool,
        of_device: Option<&str>,
        after: (&str, &str),
        limit: usize,
    ) -> Result<Vec<Identity>, HubError> {
        let kind = if modules {
            "module_id <> ''"
        } else {
            "module_id = ''"
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM hub_identities WHERE {kind} \
             AND ($1 = '' OR device_id = $1) \
             AND (device_id > $2 OR (device_id = $2 AND module_id > $3)) \
             ORDER BY device_id, module_id LIMIT $4"
        )))
        .bind(of_device.unwrap_or_default())
        .bind(after.0)
        .bind(after.1)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.identity(r)).collect()
    }

    /// The module identities connected now (per the store).
    pub async fn connected_modules(&self) -> Result<Vec<Identity>, HubError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM hub_identities WHERE connected = 1 AND module_id <> ''"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.identity(r)).collect()
    }

    /// The replicas (instance ids) holding connections per the store.
    pub async fn connection_instances(&self) -> Result<Vec<String>, HubError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT substr(connection_id, 1, {INSTANCE_LEN}) AS instance \
             FROM hub_identities WHERE connected = 1 AND connection_id <> ''"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get("instance").map_err(HubError::from))
            .collect()
    }

    /// `(device, module, connection)` of the identities replica `instance` connected.
    pub async fn connected_to(
        &self,
        instance: &str,
    ) -> Result<Vec<(String, String, String)>, HubError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT device_id, module_id, connection_id FROM hub_identities \
             WHERE connected = 1 AND substr(connection_id, 1, {INSTANCE_LEN}) = $1"
        )))
        .bind(instance)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("device_id")?,
                    r.try_get("module_id")?,
                    r.try_get("connection_id")?,
                ))
            })
            .collect()
    }

    /// Records that replica `instance` is alive now; returns every replica's last beat
    /// (unix seconds).
    pub async fn heartbeat(
        &self,
        instance: &str,
        now: i64,
    ) -> Result<Vec<(String, i64)>, HubError> {
        sqlx::query(
            "INSERT INTO hub_replicas (instance, seen) VALUES ($1, $2) \
             ON CONFLICT (instance) DO UPDATE SET seen = excluded.seen",
        )
        .bind(instance)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let rows = sqlx::query("SELECT instance, seen FROM hub_replicas")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("instance")?, r.try_get("seen")?)))
            .collect()
    }

    /// How far route `name` has delivered (a message id), when it ever ran.
    pub async fn route_position(&self, name: &str) -> Result<Option<String>, HubError> {
        let row = sqlx::query("SELECT position FROM hub_routes WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("position")).transpose()?)
    }

    pub async fn set_route_position(&self, name: &str, position: &str) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO hub_routes (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        )
        .bind(name)
        .bind(position)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a replica's heartbeat (it stopped, or stopped long ago).
    pub async fn forget_replica(&self, instance: &str) -> Result<(), HubError> {
        sqlx::query("DELETE FROM hub_replicas WHERE instance = $1")
            .bind(instance)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether each device is enabled, for module twins (whose status is their device's).
    pub async fn device_enabled(&self, device_id: &str) -> Result<bool, HubError> {
        Ok(self
            .get(device_id, "")
            .await?
            .is_some_and(|d| d.desc.enabled))
    }

    pub async fn policies(&self) -> Result<Vec<Policy>, HubError> {
        let rows = sqlx::query("SELECT name, rights, sealed_keys FROM hub_policies ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let name: String = r.try_get("name")?;
                let rights: String = r.try_get("rights")?;
                let sealed: String = r.try_get("sealed_keys")?;
                let keys = self.kek.open(&format!("policy:{name}"), &sealed)?;
                Ok(Policy {
                    rights: from_json("policy rights", &rights)?,
                    keys: from_json("policy keys", &keys)?,
                    name,
                })
            })
            .collect()
    }

    /// Adds a policy unless one of that name exists (replicas starting together race here).
    pub async fn add_policy(&self, p: &Policy) -> Result<(), HubError> {
        let sealed = self
            .kek
            .seal(&format!("policy:{}", p.name), &json_of(&p.keys)?)?;
        let done = sqlx::query(
            "INSERT INTO hub_policies (name, rights, sealed_keys) \
             SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM hub_policies WHERE name = $1)",
        )
        .bind(&p.name)
        .bind(json_of(&p.rights)?)
        .bind(sealed)
        .execute(&self.pool)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
