//! State changes of requests written together with their audit lines, in one transaction,
//! through the store's group-commit writer ([`super::writer`]).
//!
//! Why together: the audit log must hold a line for every state change, so a change and its
//! line are committed together or not at all (a crash between two separate statements left an
//! issued certificate without its audit line). Why through the writer: every commit is a
//! synced write (≈ 4,400/s on this disk); concurrent requests now share one commit instead of
//! queueing for SQLite's write lock and paying one fsync each. A certificate through the REST
//! API costs two commits with the auto-approve policy (submit + approve, then accept on fetch),
//! and those are shared with whatever else is being written at the time.

use super::requests::{Issued, NewRequest};
use super::writer::{ApprovalRecord, WriteOp};
use super::Store;
use crate::error::{Result, VaultError};

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

impl Store {
    /// Stores a new request and its submission audit line; with `approval`, also moves it to
    /// Approved with the issued certificate and writes the approval's audit line, all in one
    /// transaction. The row is written as an approval leaves a New request (the same columns
    /// as a later approval sets), so the record reads exactly as if an approver had approved it.
    pub async fn insert_request_audited(
        &self,
        r: &NewRequest,
        submitted: &AuditLine<'_>,
        approval: Option<&Approval<'_>>,
    ) -> Result<()> {
        let op = WriteOp::Submit {
            row: Box::new(r.clone()),
            submitted: submitted.into(),
            approval: approval.map(|a| {
                Box::new(ApprovalRecord {
                    by: a.by.to_string(),
                    at: a.at,
                    issued: a.issued.clone(),
                    audit: (&a.audit).into(),
                })
            }),
        };
        if !self.writer.submit(op).await? {
            // Submit answers true or an error; anything else is a bug in the writer.
            return Err(VaultError::InvalidState(format!(
                "request {} was not stored",
                r.id
            )));
        }
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
        self.writer
            .submit(WriteOp::Approve {
                id: id.to_string(),
                by: by.to_string(),
                at,
                issued: issued.clone(),
                audit: line.into(),
            })
            .await
    }

    /// New → Rejected (a generated key pair waiting for approval destroyed) with its audit
    /// line. `false` (and nothing written) when the request was no longer New.
    pub async fn reject_request_audited(
        &self,
        id: &str,
        by: &str,
        at: i64,
        line: &AuditLine<'_>,
    ) -> Result<bool> {
        self.writer
            .submit(WriteOp::Reject {
                id: id.to_string(),
                by: by.to_string(),
                at,
                audit: line.into(),
            })
            .await
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
        self.writer
            .submit(WriteOp::Accept {
                id: id.to_string(),
                by: by.to_string(),
                at,
                audit: line.into(),
            })
            .await
    }

    /// Approved | Accepted → Revoked with its audit line. `false` (and nothing written) when
    /// the request was in neither state.
    pub async fn revoke_request_audited(
        &self,
        id: &str,
        by: &str,
        at: i64,
        line: &AuditLine<'_>,
    ) -> Result<bool> {
        self.writer
            .submit(WriteOp::Revoke {
                id: id.to_string(),
                by: by.to_string(),
                at,
                audit: line.into(),
            })
            .await
    }

    /// Takes the sealed private key out of the row with its audit line, so it is handed out
    /// only once. `false` (and nothing written) when another fetch took it first.
    pub async fn take_private_key_audited(
        &self,
        id: &str,
        sealed: &[u8],
        line: &AuditLine<'_>,
    ) -> Result<bool> {
        self.writer
            .submit(WriteOp::TakeKey {
                id: id.to_string(),
                sealed: sealed.to_vec(),
                audit: line.into(),
            })
            .await
    }
}
