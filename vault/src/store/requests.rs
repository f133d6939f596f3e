//! Certificate requests and the certificates issued for them. State changes are conditional
//! on the expected current state, which makes replays and races fail cleanly.

use sqlx::Row;

use super::columns::Columns;
use super::statement::{Arg, Stmt};
use super::{json_col, Store};
use crate::error::Result;
use crate::model::{
    CertificateRequestRecord, CertificateRequestState, CertificateRequestType, OperationContext,
};

/// What a submission stores.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub id: String,
    pub request_type: CertificateRequestType,
    pub entity_id: String,
    pub group_id: String,
    pub cert_type: String,
    pub csr_der: Option<Vec<u8>>,
    pub public_key_der: Option<Vec<u8>>,
    pub subject_name: String,
    pub domain_names: Vec<String>,
    pub key_format: Option<String>,
    pub key_encrypted: bool,
    pub key_sealed: Option<Vec<u8>>,
    pub submitted_by: String,
    pub submitted_at: i64,
}

#[derive(Debug, Clone)]
pub struct RequestRow {
    pub id: String,
    pub request_type: CertificateRequestType,
    pub entity_id: String,
    pub group_id: String,
    pub cert_type: String,
    pub state: CertificateRequestState,
    pub csr_der: Option<Vec<u8>>,
    pub public_key_der: Option<Vec<u8>>,
    pub subject_name: String,
    pub domain_names: Vec<String>,
    pub key_format: Option<String>,
    pub key_encrypted: bool,
    pub key_sealed: Option<Vec<u8>>,
    pub cert_der: Option<Vec<u8>>,
    pub cert_serial: Option<String>,
    pub ca_serial: Option<String>,
    pub not_after: Option<i64>,
    pub error_info: Option<String>,
    pub submitted_by: String,
    pub submitted_at: i64,
    pub approved_by: Option<String>,
    pub approved_at: Option<i64>,
    pub accepted_by: Option<String>,
    pub accepted_at: Option<i64>,
    pub revoked_by: Option<String>,
    pub revoked_at: Option<i64>,
}

impl RequestRow {
    pub(super) fn from_row(r: &impl Columns) -> Result<Self> {
        let state: String = r.col("state")?;
        let ty: String = r.col("request_type")?;
        Ok(RequestRow {
            id: r.col("id")?,
            request_type: if ty == "KeyPairRequest" {
                CertificateRequestType::KeyPairRequest
            } else {
                CertificateRequestType::SigningRequest
            },
            entity_id: r.col("entity_id")?,
            group_id: r.col("group_id")?,
            cert_type: r.col("cert_type")?,
            state: CertificateRequestState::parse(&state).unwrap_or(CertificateRequestState::New),
            csr_der: r.col("csr_der")?,
            public_key_der: r.col("public_key_der")?,
            subject_name: r.col("subject_name")?,
            domain_names: json_col(&r.col::<String>("domain_names")?)?,
            key_format: r.col("key_format")?,
            key_encrypted: r.col::<i64>("key_encrypted")? != 0,
            key_sealed: r.col("key_sealed")?,
            cert_der: r.col("cert_der")?,
            cert_serial: r.col("cert_serial")?,
            ca_serial: r.col("ca_serial")?,
            not_after: r.col("not_after")?,
            error_info: r.col("error_info")?,
            submitted_by: r.col("submitted_by")?,
            submitted_at: r.col("submitted_at")?,
            approved_by: r.col("approved_by")?,
            approved_at: r.col("approved_at")?,
            accepted_by: r.col("accepted_by")?,
            accepted_at: r.col("accepted_at")?,
            revoked_by: r.col("revoked_by")?,
            revoked_at: r.col("revoked_at")?,
        })
    }

    pub fn to_record(&self) -> CertificateRequestRecord {
        CertificateRequestRecord {
            request_id: self.id.clone(),
            entity_id: self.entity_id.clone(),
            group_id: self.group_id.clone(),
            certificate_type_id: self.cert_type.clone(),
            state: self.state,
            request_type: self.request_type,
            error_info: self.error_info.clone(),
            submitted: OperationContext::from_parts(
                Some(self.submitted_by.clone()),
                Some(self.submitted_at),
            ),
            approved: OperationContext::from_parts(self.approved_by.clone(), self.approved_at),
            accepted: OperationContext::from_parts(self.accepted_by.clone(), self.accepted_at),
            revoked: OperationContext::from_parts(self.revoked_by.clone(), self.revoked_at),
        }
    }
}

/// The certificate an approval issues.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_der: Vec<u8>,
    pub cert_serial: String,
    pub ca_serial: String,
    pub not_after: i64,
}

/// What an approval writes, in the order both its statements bind it: approver, time, and the
/// issued certificate.
fn approval_args(by: &str, at: i64, issued: &Issued) -> [Arg; 6] {
    [
        by.into(),
        at.into(),
        issued.cert_der.clone().into(),
        issued.cert_serial.as_str().into(),
        issued.ca_serial.as_str().into(),
        issued.not_after.into(),
    ]
}

/// One request by id (also run by `sqlite_reads.rs`).
pub(super) const REQUEST_BY_ID: &str = "SELECT * FROM requests WHERE id = $1";

impl Store {
    pub async fn insert_request(&self, r: &NewRequest) -> Result<()> {
        Self::insert_request_on(self.pool(), r, None).await
    }

    /// The INSERT of [`Store::insert_request`] on any executor (a pool or a transaction). With
    /// `approved` (by, at, issued) the row is written as [`Store::approve_request_on`] leaves
    /// a New row (state, approver, certificate, CSR dropped): the auto-approve policy's record
    /// then reads exactly like an approver's, for one statement instead of two.
    pub(super) async fn insert_request_on<'e, E>(
        exec: E,
        r: &NewRequest,
        approved: Option<(&str, i64, &Issued)>,
    ) -> Result<()>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        Self::insert_request_stmt(r, approved)
            .execute_on(exec)
            .await?;
        Ok(())
    }

    /// The statement of [`Store::insert_request_on`].
    pub(super) fn insert_request_stmt(
        r: &NewRequest,
        approved: Option<(&str, i64, &Issued)>,
    ) -> Stmt {
        let domain_names = serde_json::to_string(&r.domain_names).unwrap_or_else(|_| "[]".into());
        let mut args: Vec<Arg> = vec![
            r.id.as_str().into(),
            r.request_type.as_str().into(),
            r.entity_id.as_str().into(),
            r.group_id.as_str().into(),
            r.cert_type.as_str().into(),
        ];
        args.extend([
            r.public_key_der.clone().into(),
            r.subject_name.as_str().into(),
            domain_names.into(),
            r.key_format.clone().into(),
            i64::from(r.key_encrypted).into(),
            r.key_sealed.clone().into(),
            r.submitted_by.as_str().into(),
            r.submitted_at.into(),
        ]);
        let Some((by, at, issued)) = approved else {
            args.push(r.csr_der.clone().into());
            return Stmt::new(
                "INSERT INTO requests (id, request_type, entity_id, group_id, cert_type, state, \
                 csr_der, public_key_der, subject_name, domain_names, key_format, key_encrypted, \
                 key_sealed, submitted_by, submitted_at) \
                 VALUES ($1, $2, $3, $4, $5, 'New', $14, $6, $7, $8, $9, $10, $11, $12, $13)",
                args,
            );
        };
        args.extend(approval_args(by, at, issued));
        Stmt::new(
            "INSERT INTO requests (id, request_type, entity_id, group_id, cert_type, state, \
             csr_der, public_key_der, subject_name, domain_names, key_format, key_encrypted, \
             key_sealed, submitted_by, submitted_at, approved_by, approved_at, cert_der, \
             cert_serial, ca_serial, not_after) \
             VALUES ($1, $2, $3, $4, $5, 'Approved', NULL, $6, $7, $8, $9, $10, $11, $12, $13, \
             $14, $15, $16, $17, $18, $19)",
            args,
        )
    }

    pub async fn request(&self, id: &str) -> Result<Option<RequestRow>> {
        if let Some(reads) = &self.reads {
            match reads.request(id) {
                Err(e) if reads.falls_back(&e) => {}
                done => return done,
            }
        }
        let row = sqlx::query(REQUEST_BY_ID)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(RequestRow::from_row).transpose()
    }

    /// Requests filtered by entity and state (empty string = any), oldest first.
    pub async fn query_requests(
        &self,
        entity_id: &str,
        state: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<RequestRow>> {
        let rows = sqlx::query(
            "SELECT * FROM requests WHERE ($1 = '' OR entity_id = $1) AND ($2 = '' OR state = $2) \
             ORDER BY submitted_at, id LIMIT $3 OFFSET $4",
        )
        .bind(entity_id)
        .bind(state)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(RequestRow::from_row).collect()
    }

    /// New → Approved with the issued certificate; the CSR is no longer needed and is dropped.
    pub async fn approve_request(
        &self,
        id: &str,
        by: &str,
        at: i64,
        issued: &Issued,
    ) -> Result<bool> {
        Self::approve_request_on(self.pool(), id, by, at, issued).await
    }

    /// The UPDATE of [`Store::approve_request`] on any executor (a pool or a transaction).
    /// [`Store::insert_request_on`] writes the same columns for an approval at submission.
    pub(super) async fn approve_request_on<'e, E>(
        exec: E,
        id: &str,
        by: &str,
        at: i64,
        issued: &Issued,
    ) -> Result<bool>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let done = Self::approve_request_stmt(id, by, at, issued)
            .execute_on(exec)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The statement of [`Store::approve_request_on`].
    pub(super) fn approve_request_stmt(id: &str, by: &str, at: i64, issued: &Issued) -> Stmt {
        Stmt::new(
            "UPDATE requests SET state = 'Approved', approved_by = $2, approved_at = $3, \
             cert_der = $4, cert_serial = $5, ca_serial = $6, not_after = $7, csr_der = NULL \
             WHERE id = $1 AND state = 'New'",
            std::iter::once(id.into())
                .chain(approval_args(by, at, issued))
                .collect(),
        )
    }

    /// New → Rejected; a generated key pair waiting for approval is destroyed.
    pub async fn reject_request(&self, id: &str, by: &str, at: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE requests SET state = 'Rejected', approved_by = $2, approved_at = $3, \
             key_sealed = NULL, csr_der = NULL WHERE id = $1 AND state = 'New'",
        )
        .bind(id)
        .bind(by)
        .bind(at)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Approved → Accepted; any private key still held is destroyed.
    pub async fn accept_request(&self, id: &str, by: &str, at: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE requests SET state = 'Accepted', accepted_by = $2, accepted_at = $3, \
             key_sealed = NULL WHERE id = $1 AND state = 'Approved'",
        )
        .bind(id)
        .bind(by)
        .bind(at)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes the sealed private key out of the row, so it can be handed out only once.
    pub async fn take_private_key(&self, id: &str, sealed: &[u8]) -> Result<bool> {
        let done =
            sqlx::query("UPDATE requests SET key_sealed = NULL WHERE id = $1 AND key_sealed = $2")
                .bind(id)
                .bind(sealed.to_vec())
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Approved | Accepted → Revoked.
    pub async fn revoke_request(&self, id: &str, by: &str, at: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE requests SET state = 'Revoked', revoked_by = $2, revoked_at = $3, \
             key_sealed = NULL WHERE id = $1 AND state IN ('Approved', 'Accepted')",
        )
        .bind(id)
        .bind(by)
        .bind(at)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The request whose certificate has serial `serial` (hex, as stored), if any. Serials are
    /// 16 random bytes, so at most one request holds one.
    pub async fn request_by_cert_serial(&self, serial: &str) -> Result<Option<RequestRow>> {
        let row = sqlx::query("SELECT * FROM requests WHERE cert_serial = $1")
            .bind(serial)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(RequestRow::from_row).transpose()
    }

    /// Revoked certificates issued by a CA: (serial hex, revocation time).
    pub async fn revoked_by_ca(&self, ca_serial: &str) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT cert_serial, revoked_at FROM requests WHERE ca_serial = $1 AND state = 'Revoked' \
             ORDER BY revoked_at",
        )
        .bind(ca_serial)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<Option<String>, _>("cert_serial")?
                        .unwrap_or_default(),
                    r.try_get::<Option<i64>, _>("revoked_at")?.unwrap_or(0),
                ))
            })
            .collect()
    }
}
