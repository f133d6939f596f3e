//! State changes of requests written together with their audit lines, in one transaction.
//!
//! Why: the audit log must hold a line for every state change, so a change and its line are
//! committed together or not at all (a crash between two separate statements left an issued
//! certificate without its audit line). It is also what makes signing fast on SQLite: every
//! commit is a synced write (≈ 4,400/s on this disk), and a certificate through the REST API
//! used to cost six of them (submit, its audit, approve, its audit, accept, its audit); with
//! the auto-approve policy it now costs two (submit + approve, then accept).

use super::requests::{Issued, NewRequest};
use super::Store;
use crate::error::Result;

/// One line of the append-only audit log. `detail` must never carry keys or passwords.
#[derive(Debug, Clone)]
pub struct AuditLine<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub detail: String,
}

/// An approval decided at submission (the group's auto-approve policy): who, when, what was
/// issued and its audit line.
#[derive(Debug, Clone)]
pub struct Approval<'a> {
    pub by: &'a str,
    pub at: i64,
    pub issued: &'a Issued,
    pub audit: AuditLine<'a>,
}

async fn write_audit(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    line: &AuditLine<'_>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(crate::model::now())
    .bind(line.actor)
    .bind(line.action)
    .bind(line.target)
    .bind(&line.detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Stores a new request and its submission audit line; with `approval`, also moves it to
    /// Approved with the issued certificate and writes the approval's audit line, all in one
    /// transaction. The request still passes through New (the same statements as a later
    /// approval), so the record reads exactly as if an approver had approved it.
    pub async fn insert_request_audited(
        &self,
        r: &NewRequest,
        submitted: &AuditLine<'_>,
        approval: Option<&Approval<'_>>,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        Self::insert_request_on(&mut *tx, r).await?;
        write_audit(&mut tx, submitted).await?;
        if let Some(a) = approval {
            if !Self::approve_request_on(&mut *tx, &r.id, a.by, a.at, a.issued).await? {
                return Err(crate::error::VaultError::InvalidState(format!(
                    "request {} changed state meanwhile",
                    r.id
                )));
            }
            write_audit(&mut tx, &a.audit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// New → Approved with the issued certificate and the approval's audit line, together.
    /// `false` (and nothing written) when the request was no longer New.
    pub async fn approve_request_audited(
        &self,
        id: &str,
        by: &str,
        at: i64,
        issued: &Issued,
        line: &AuditLine<'_>,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        if !Self::approve_request_on(&mut *tx, id, by, at, issued).await? {
            return Ok(false);
        }
        write_audit(&mut tx, line).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Approved → Accepted (any private key still held destroyed) with its audit line,
    /// together. `false` (and nothing written) when the request was no longer Approved.
    pub async fn accept_request_audited(
        &self,
        id: &str,
        by: &str,
        at: i64,
        line: &AuditLine<'_>,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE requests SET state = 'Accepted', accepted_by = $2, accepted_at = $3, \
             key_sealed = NULL WHERE id = $1 AND state = 'Approved'",
        )
        .bind(id)
        .bind(by)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        write_audit(&mut tx, line).await?;
        tx.commit().await?;
        Ok(true)
    }
}
