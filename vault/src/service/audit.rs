//! The audit log as the API reads it; every entry is written by the operation it records, in
//! the same transaction as its change.

use super::Vault;
use crate::error::Result;
use crate::model::AuditList;

impl Vault {
    pub async fn audit(&self, after: i64, limit: i64) -> Result<AuditList> {
        Ok(AuditList {
            entries: self
                .store
                .audit_entries(after, limit.clamp(1, 1000))
                .await?,
        })
    }
}
