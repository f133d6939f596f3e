//! Certificate groups and their CAs (certificate, sealed key, current CRL).

use sqlx::Row;

use super::columns::Columns;
use super::{json_col, Store};
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct GroupRow {
    pub id: String,
    pub group_type: String,
    pub subject_name: String,
    pub cert_types: Vec<String>,
    pub ca_lifetime_days: i64,
    pub issued_lifetime_days: i64,
    pub rsa_key_size: i64,
    pub auto_approve: bool,
}

/// One CA version of a group and certificate type. `active` marks the one that signs; older
/// versions stay to keep their CRLs current until their certificates expire.
#[derive(Debug, Clone)]
pub struct CaRow {
    pub serial: String,
    pub group_id: String,
    pub cert_type: String,
    pub cert_der: Vec<u8>,
    pub key_sealed: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub active: bool,
    pub crl_number: i64,
    pub crl_der: Option<Vec<u8>>,
    pub crl_next_update: i64,
}

impl CaRow {
    pub(super) fn from_row(r: &impl Columns) -> Result<Self> {
        Ok(CaRow {
            serial: r.col("serial")?,
            group_id: r.col("group_id")?,
            cert_type: r.col("cert_type")?,
            cert_der: r.col("cert_der")?,
            key_sealed: r.col("key_sealed")?,
            not_before: r.col("not_before")?,
            not_after: r.col("not_after")?,
            active: r.col::<i64>("active")? != 0,
            crl_number: r.col("crl_number")?,
            crl_der: r.col("crl_der")?,
            crl_next_update: r.col("crl_next_update")?,
        })
    }
}

impl GroupRow {
    pub(super) fn from_row(r: &impl Columns) -> Result<Self> {
        Ok(GroupRow {
            id: r.col("id")?,
            group_type: r.col("group_type")?,
            subject_name: r.col("subject_name")?,
            cert_types: json_col(&r.col::<String>("cert_types")?)?,
            ca_lifetime_days: r.col("ca_lifetime_days")?,
            issued_lifetime_days: r.col("issued_lifetime_days")?,
            rsa_key_size: r.col("rsa_key_size")?,
            auto_approve: r.col::<i64>("auto_approve")? != 0,
        })
    }
}

/// One certificate group by id (also run by `sqlite_reads.rs`).
pub(super) const GROUP_BY_ID: &str = "SELECT * FROM cert_groups WHERE id = $1";

/// (cert_type, serial) of a group's active CAs, newest first (also run by `sqlite_reads.rs`).
pub(super) const ACTIVE_CA_SERIALS: &str = "SELECT cert_type, serial FROM cas \
    WHERE group_id = $1 AND active = 1 ORDER BY created_at DESC, not_before DESC";

/// The first (newest) serial of each certificate type among `rows` of [`ACTIVE_CA_SERIALS`]:
/// the one `active_ca_serial` picks.
pub(super) fn newest_per_type(
    rows: impl Iterator<Item = Result<(String, String)>>,
) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for row in rows {
        let (cert_type, serial) = row?;
        if !out.iter().any(|(t, _)| *t == cert_type) {
            out.push((cert_type, serial));
        }
    }
    Ok(out)
}

const CA_COLUMNS: &str = "serial, group_id, cert_type, cert_der, key_sealed, not_before, \
    not_after, active, crl_number, crl_der, crl_next_update";

impl Store {
    pub async fn insert_group(&self, g: &GroupRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO cert_groups (id, group_type, subject_name, cert_types, ca_lifetime_days, \
             issued_lifetime_days, rsa_key_size, auto_approve, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&g.id)
        .bind(&g.group_type)
        .bind(&g.subject_name)
        .bind(serde_json::to_string(&g.cert_types).unwrap_or_else(|_| "[]".into()))
        .bind(g.ca_lifetime_days)
        .bind(g.issued_lifetime_days)
        .bind(g.rsa_key_size)
        .bind(i64::from(g.auto_approve))
        .bind(crate::model::now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn set_group_auto_approve(&self, id: &str, on: bool) -> Result<()> {
        sqlx::query("UPDATE cert_groups SET auto_approve = $2 WHERE id = $1")
            .bind(id)
            .bind(i64::from(on))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn update_group_policy(
        &self,
        id: &str,
        issued_lifetime_days: i64,
        auto_approve: bool,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE cert_groups SET issued_lifetime_days = $2, auto_approve = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(issued_lifetime_days)
        .bind(i64::from(auto_approve))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn groups(&self) -> Result<Vec<GroupRow>> {
        let rows = sqlx::query("SELECT * FROM cert_groups ORDER BY created_at, id")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(GroupRow::from_row).collect()
    }

    pub async fn group(&self, id: &str) -> Result<Option<GroupRow>> {
        Self::group_on(self.pool(), id).await
    }

    /// The SELECT of [`Store::group`] on any executor.
    pub(super) async fn group_on<'e, E>(exec: E, id: &str) -> Result<Option<GroupRow>>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let row = sqlx::query(GROUP_BY_ID)
            .bind(id)
            .fetch_optional(exec)
            .await?;
        row.as_ref().map(GroupRow::from_row).transpose()
    }

    pub async fn insert_ca(&self, ca: &CaRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO cas (serial, group_id, cert_type, cert_der, key_sealed, not_before, \
             not_after, active, crl_number, crl_der, crl_next_update, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&ca.serial)
        .bind(&ca.group_id)
        .bind(&ca.cert_type)
        .bind(ca.cert_der.clone())
        .bind(ca.key_sealed.clone())
        .bind(ca.not_before)
        .bind(ca.not_after)
        .bind(i64::from(ca.active))
        .bind(ca.crl_number)
        .bind(ca.crl_der.clone())
        .bind(ca.crl_next_update)
        .bind(crate::model::now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Makes `serial` the only active CA of its group and type (CA renewal).
    pub async fn activate_ca(&self, group_id: &str, cert_type: &str, serial: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE cas SET active = 0 WHERE group_id = $1 AND cert_type = $2")
            .bind(group_id)
            .bind(cert_type)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE cas SET active = 1 WHERE serial = $1")
            .bind(serial)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a newly signed CRL, only if its number follows the stored one.
    pub async fn update_crl(
        &self,
        serial: &str,
        previous_number: i64,
        number: i64,
        der: &[u8],
        next_update: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE cas SET crl_number = $3, crl_der = $4, crl_next_update = $5 \
             WHERE serial = $1 AND crl_number = $2",
        )
        .bind(serial)
        .bind(previous_number)
        .bind(number)
        .bind(der.to_vec())
        .bind(next_update)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The CAs of a group (all types when `cert_type` is `None`), newest first.
    pub async fn cas_of_group(&self, group_id: &str) -> Result<Vec<CaRow>> {
        let sql =
            format!("SELECT {CA_COLUMNS} FROM cas WHERE group_id = $1 ORDER BY created_at DESC, not_before DESC");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(group_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(CaRow::from_row).collect()
    }

    /// The serial of the signing CA of a group and type. Read on every issuance, so it reads
    /// one short column instead of the CA rows with their certificates, keys and CRLs: the
    /// service keeps the unsealed CAs in memory, but which one is active is the database's
    /// word (another vault instance on the same PostgreSQL database may have renewed it).
    pub async fn active_ca_serial(
        &self,
        group_id: &str,
        cert_type: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT serial FROM cas WHERE group_id = $1 AND cert_type = $2 AND active = 1 \
             ORDER BY created_at DESC, not_before DESC LIMIT 1",
        )
        .bind(group_id)
        .bind(cert_type)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| r.try_get("serial").map_err(Into::into))
            .transpose()
    }

    /// The signing CA serial of every certificate type of a group, as (type, serial): what
    /// [`Store::active_ca_serial`] answers, for all types in one statement.
    pub(super) async fn active_ca_serials_on<'e, E>(
        exec: E,
        group_id: &str,
    ) -> Result<Vec<(String, String)>>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let rows = sqlx::query(ACTIVE_CA_SERIALS)
            .bind(group_id)
            .fetch_all(exec)
            .await?;
        newest_per_type(
            rows.iter()
                .map(|r| Ok((r.col("cert_type")?, r.col("serial")?))),
        )
    }

    pub async fn all_cas(&self) -> Result<Vec<CaRow>> {
        let sql = format!("SELECT {CA_COLUMNS} FROM cas ORDER BY created_at");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(CaRow::from_row).collect()
    }

    pub async fn ca(&self, serial: &str) -> Result<Option<CaRow>> {
        let sql = format!("SELECT {CA_COLUMNS} FROM cas WHERE serial = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(serial)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(CaRow::from_row).transpose()
    }
}
