//! Application registrations (GDS ApplicationRecords).

use super::columns::Columns;
use super::{json_col, Store};
use crate::error::Result;
use crate::model::{ApplicationRecord, ApplicationType, LocalizedText, OperationContext};

/// A registration as stored.
#[derive(Debug, Clone)]
pub struct ApplicationRow {
    pub id: String,
    pub application_uri: String,
    pub application_type: ApplicationType,
    pub application_names: Vec<LocalizedText>,
    pub product_uri: String,
    pub discovery_urls: Vec<String>,
    pub server_capabilities: Vec<String>,
    pub state: String,
    pub created_by: String,
    pub created_at: i64,
    pub updated_by: Option<String>,
    pub updated_at: Option<i64>,
}

impl ApplicationRow {
    pub fn is_registered(&self) -> bool {
        self.state == "Registered"
    }

    pub fn to_record(&self) -> ApplicationRecord {
        ApplicationRecord {
            application_id: self.id.clone(),
            application_uri: self.application_uri.clone(),
            application_type: self.application_type,
            application_names: self.application_names.clone(),
            product_uri: self.product_uri.clone(),
            discovery_urls: self.discovery_urls.clone(),
            server_capabilities: self.server_capabilities.clone(),
            state: self.state.clone(),
            registered: OperationContext::from_parts(
                Some(self.created_by.clone()),
                Some(self.created_at),
            ),
            updated: OperationContext::from_parts(self.updated_by.clone(), self.updated_at),
        }
    }

    pub(super) fn from_row(r: &impl Columns) -> Result<Self> {
        let ty: String = r.col("application_type")?;
        Ok(ApplicationRow {
            id: r.col("id")?,
            application_uri: r.col("application_uri")?,
            application_type: ApplicationType::parse(&ty).unwrap_or(ApplicationType::Server),
            application_names: json_col(&r.col::<String>("application_names")?)?,
            product_uri: r.col("product_uri")?,
            discovery_urls: json_col(&r.col::<String>("discovery_urls")?)?,
            server_capabilities: json_col(&r.col::<String>("server_capabilities")?)?,
            state: r.col("state")?,
            created_by: r.col("created_by")?,
            created_at: r.col("created_at")?,
            updated_by: r.col("updated_by")?,
            updated_at: r.col("updated_at")?,
        })
    }
}

/// One application by id (also run by `sqlite_reads.rs`).
pub(super) const APPLICATION_BY_ID: &str = "SELECT * FROM applications WHERE id = $1";

const COLUMNS: &str = "id, application_uri, application_type, application_names, product_uri, \
    discovery_urls, server_capabilities, state, created_by, created_at, updated_by, updated_at";

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

impl Store {
    pub async fn insert_application(&self, a: &ApplicationRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO applications (id, application_uri, application_type, application_names, \
             product_uri, discovery_urls, server_capabilities, state, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&a.id)
        .bind(&a.application_uri)
        .bind(a.application_type.as_str())
        .bind(json(&a.application_names))
        .bind(&a.product_uri)
        .bind(json(&a.discovery_urls))
        .bind(json(&a.server_capabilities))
        .bind(&a.state)
        .bind(&a.created_by)
        .bind(a.created_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn update_application(&self, a: &ApplicationRow) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE applications SET application_uri = $2, application_type = $3, \
             application_names = $4, product_uri = $5, discovery_urls = $6, \
             server_capabilities = $7, updated_by = $8, updated_at = $9 \
             WHERE id = $1 AND state = 'Registered'",
        )
        .bind(&a.id)
        .bind(&a.application_uri)
        .bind(a.application_type.as_str())
        .bind(json(&a.application_names))
        .bind(&a.product_uri)
        .bind(json(&a.discovery_urls))
        .bind(json(&a.server_capabilities))
        .bind(a.updated_by.clone())
        .bind(a.updated_at)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn mark_application_unregistered(&self, id: &str, by: &str, at: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE applications SET state = 'Unregistered', updated_by = $2, updated_at = $3 \
             WHERE id = $1 AND state = 'Registered'",
        )
        .bind(id)
        .bind(by)
        .bind(at)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn application(&self, id: &str) -> Result<Option<ApplicationRow>> {
        Self::application_on(self.pool(), id).await
    }

    /// The SELECT of [`Store::application`] on any executor.
    pub(super) async fn application_on<'e, E>(exec: E, id: &str) -> Result<Option<ApplicationRow>>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let row = sqlx::query(APPLICATION_BY_ID)
            .bind(id)
            .fetch_optional(exec)
            .await?;
        row.as_ref().map(ApplicationRow::from_row).transpose()
    }

    /// Registered applications with this URI (the GDS keeps URIs unique).
    pub async fn applications_by_uri(&self, uri: &str) -> Result<Vec<ApplicationRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM applications WHERE application_uri = $1 AND state = 'Registered'"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uri)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(ApplicationRow::from_row).collect()
    }

    pub async fn all_applications(&self) -> Result<Vec<ApplicationRow>> {
        let sql = format!("SELECT {COLUMNS} FROM applications ORDER BY created_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(ApplicationRow::from_row).collect()
    }
}
