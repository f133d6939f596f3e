//! Push targets (where the vault pushes an application's certificate) and push jobs (each
//! run of the push sequence, with the step it reached).

use sqlx::any::AnyRow;

use super::columns::Columns;
use super::Store;
use crate::error::Result;
use crate::model::{OperationContext, PushJob, PushJobState, PushReason, PushTarget};

/// A push target as stored; the password only sealed.
#[derive(Clone)]
pub struct PushTargetRow {
    pub application_id: String,
    pub endpoint_url: String,
    pub user_name: String,
    pub password_sealed: Vec<u8>,
    pub server_thumbprint: Option<String>,
    pub regenerate_key: bool,
    /// The vault makes the key pair and sends the private key with the certificate.
    pub new_key_pair: bool,
    pub group_id: String,
    pub enabled: bool,
    pub created_by: String,
    pub created_at: i64,
    pub updated_by: Option<String>,
    pub updated_at: Option<i64>,
    /// The certificate last pushed and verified, and what the CRLs were then.
    pub pushed_serial: Option<String>,
    pub pushed_not_after: Option<i64>,
    pub pushed_crl_mark: Option<String>,
    /// A failed job's back-off: nothing is tried before this time.
    pub next_attempt: i64,
    pub failures: i64,
    /// Counts the target's registrations: what a job records (success, back-off) applies only
    /// to the configuration it ran with, not to one an operator saved meanwhile.
    pub revision: i64,
}

impl std::fmt::Debug for PushTargetRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushTargetRow")
            .field("application_id", &self.application_id)
            .field("endpoint_url", &self.endpoint_url)
            .field("user_name", &self.user_name)
            .finish_non_exhaustive()
    }
}

impl PushTargetRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(PushTargetRow {
            application_id: r.col("application_id")?,
            endpoint_url: r.col("endpoint_url")?,
            user_name: r.col("user_name")?,
            password_sealed: r.col("password_sealed")?,
            server_thumbprint: r.col("server_thumbprint")?,
            regenerate_key: r.col::<i64>("regenerate_key")? != 0,
            new_key_pair: r.col::<i64>("new_key_pair")? != 0,
            group_id: r.col("group_id")?,
            enabled: r.col::<i64>("enabled")? != 0,
            created_by: r.col("created_by")?,
            created_at: r.col("created_at")?,
            updated_by: r.col("updated_by")?,
            updated_at: r.col("updated_at")?,
            pushed_serial: r.col("pushed_serial")?,
            pushed_not_after: r.col("pushed_not_after")?,
            pushed_crl_mark: r.col("pushed_crl_mark")?,
            next_attempt: r.col("next_attempt")?,
            failures: r.col("failures")?,
            revision: r.col("revision")?,
        })
    }

    pub fn to_model(&self, last_job: Option<PushJob>) -> PushTarget {
        PushTarget {
            application_id: self.application_id.clone(),
            endpoint_url: self.endpoint_url.clone(),
            user_name: self.user_name.clone(),
            server_thumbprint: self.server_thumbprint.clone(),
            regenerate_private_key: self.regenerate_key,
            new_key_pair: self.new_key_pair,
            group_id: self.group_id.clone(),
            enabled: self.enabled,
            registered: OperationContext::from_parts(
                Some(self.created_by.clone()),
                Some(self.created_at),
            ),
            updated: OperationContext::from_parts(self.updated_by.clone(), self.updated_at),
            pushed_certificate_serial: self.pushed_serial.clone(),
            pushed_certificate_not_after: self.pushed_not_after.map(crate::model::rfc3339),
            last_job,
        }
    }
}

/// A push job as stored.
#[derive(Debug, Clone)]
pub struct PushJobRow {
    pub id: String,
    pub application_id: String,
    pub reason: PushReason,
    pub state: PushJobState,
    pub step: String,
    /// Who asked for it: the caller of a manual push, else the target's registrant. Its
    /// certificate request is submitted in that name, so that principal cannot approve it.
    pub requested_by: String,
    /// The target configuration it runs for; a job of an older one is cancelled.
    pub target_revision: i64,
    pub request_id: Option<String>,
    pub cert_serial: Option<String>,
    pub thumbprint: Option<String>,
    pub trust_list_mode: Option<String>,
    pub crls_pushed: bool,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

fn reason_str(r: PushReason) -> &'static str {
    match r {
        PushReason::Initial => "initial",
        PushReason::Manual => "manual",
        PushReason::Renewal => "renewal",
        PushReason::TrustList => "trustList",
    }
}

fn state_str(s: PushJobState) -> &'static str {
    match s {
        PushJobState::Pending => "pending",
        PushJobState::WaitingForApproval => "waitingForApproval",
        PushJobState::Succeeded => "succeeded",
        PushJobState::Failed => "failed",
    }
}

impl PushJobRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        let reason = match r.col::<String>("reason")?.as_str() {
            "initial" => PushReason::Initial,
            "renewal" => PushReason::Renewal,
            "trustList" => PushReason::TrustList,
            _ => PushReason::Manual,
        };
        let state = match r.col::<String>("state")?.as_str() {
            "pending" => PushJobState::Pending,
            "waitingForApproval" => PushJobState::WaitingForApproval,
            "succeeded" => PushJobState::Succeeded,
            _ => PushJobState::Failed,
        };
        Ok(PushJobRow {
            id: r.col("id")?,
            application_id: r.col("application_id")?,
            reason,
            state,
            step: r.col("step")?,
            requested_by: r.col("requested_by")?,
            target_revision: r.col("target_revision")?,
            request_id: r.col("request_id")?,
            cert_serial: r.col("cert_serial")?,
            thumbprint: r.col("thumbprint")?,
            trust_list_mode: r.col("trust_list_mode")?,
            crls_pushed: r.col::<i64>("crls_pushed")? != 0,
            error: r.col("error")?,
            created_at: r.col("created_at")?,
            updated_at: r.col("updated_at")?,
        })
    }

    /// Whether the engine still has work to do on it.
    pub fn is_open(&self) -> bool {
        matches!(
            self.state,
            PushJobState::Pending | PushJobState::WaitingForApproval
        )
    }

    pub fn to_model(&self) -> PushJob {
        PushJob {
            id: self.id.clone(),
            application_id: self.application_id.clone(),
            reason: self.reason,
            state: self.state,
            step: self.step.clone(),
            request_id: self.request_id.clone(),
            certificate_serial: self.cert_serial.clone(),
            certificate_thumbprint: self.thumbprint.clone(),
            trust_list_mode: self.trust_list_mode.clone(),
            crls_pushed: self.crls_pushed,
            error: self.error.clone(),
            created: crate::model::rfc3339(self.created_at),
            updated: crate::model::rfc3339(self.updated_at),
        }
    }
}

impl Store {
    /// Creates or replaces the target of an application; what was pushed stays recorded.
    pub async fn upsert_push_target(&self, t: &PushTargetRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO push_targets (application_id, endpoint_url, user_name, password_sealed, \
             server_thumbprint, regenerate_key, group_id, enabled, created_by, created_at, \
             new_key_pair, next_attempt, failures, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, 0, 1) \
             ON CONFLICT (application_id) DO UPDATE SET endpoint_url = $2, user_name = $3, \
             password_sealed = $4, server_thumbprint = $5, regenerate_key = $6, group_id = $7, \
             enabled = $8, updated_by = $9, updated_at = $10, new_key_pair = $11, \
             next_attempt = 0, failures = 0, \
             revision = push_targets.revision + 1, \
             pushed_serial = CASE WHEN push_targets.endpoint_url = $2 \
                 THEN push_targets.pushed_serial END, \
             pushed_not_after = CASE WHEN push_targets.endpoint_url = $2 \
                 THEN push_targets.pushed_not_after END, \
             pushed_crl_mark = CASE WHEN push_targets.endpoint_url = $2 \
                 THEN push_targets.pushed_crl_mark END",
        )
        .bind(&t.application_id)
        .bind(&t.endpoint_url)
        .bind(&t.user_name)
        .bind(t.password_sealed.clone())
        .bind(t.server_thumbprint.clone())
        .bind(i64::from(t.regenerate_key))
        .bind(&t.group_id)
        .bind(i64::from(t.enabled))
        .bind(&t.created_by)
        .bind(t.created_at)
        .bind(i64::from(t.new_key_pair))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn push_target(&self, application_id: &str) -> Result<Option<PushTargetRow>> {
        sqlx::query("SELECT * FROM push_targets WHERE application_id = $1")
            .bind(application_id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(PushTargetRow::from_row)
            .transpose()
    }

    pub async fn push_targets(&self) -> Result<Vec<PushTargetRow>> {
        sqlx::query("SELECT * FROM push_targets ORDER BY application_id")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(PushTargetRow::from_row)
            .collect()
    }

    /// Deletes a target and its jobs; false when there was none.
    pub async fn delete_push_target(&self, application_id: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM push_jobs WHERE application_id = $1")
            .bind(application_id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM push_targets WHERE application_id = $1")
            .bind(application_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a verified push: the certificate the server now presents (when one was
    /// pushed) and the CRLs it holds; clears the back-off.
    pub async fn record_push(
        &self,
        application_id: &str,
        revision: i64,
        certificate: Option<(&str, i64)>,
        crl_mark: &str,
    ) -> Result<()> {
        let (serial, not_after) = match certificate {
            Some((s, n)) => (Some(s.to_owned()), Some(n)),
            None => (None, None),
        };
        sqlx::query(
            "UPDATE push_targets SET pushed_serial = COALESCE($2, pushed_serial), \
             pushed_not_after = COALESCE($3, pushed_not_after), pushed_crl_mark = $4, \
             next_attempt = 0, failures = 0 WHERE application_id = $1 AND revision = $5",
        )
        .bind(application_id)
        .bind(serial)
        .bind(not_after)
        .bind(crl_mark)
        .bind(revision)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Backs off after a failed job: nothing is tried before `next_attempt`.
    pub async fn push_failed(
        &self,
        application_id: &str,
        revision: i64,
        next_attempt: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE push_targets SET next_attempt = $2, failures = failures + 1 \
             WHERE application_id = $1 AND revision = $3",
        )
        .bind(application_id)
        .bind(next_attempt)
        .bind(revision)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn insert_push_job(&self, j: &PushJobRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO push_jobs (id, application_id, reason, state, step, requested_by, \
             target_revision, request_id, crls_pushed, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9)",
        )
        .bind(&j.id)
        .bind(&j.application_id)
        .bind(reason_str(j.reason))
        .bind(state_str(j.state))
        .bind(&j.step)
        .bind(&j.requested_by)
        .bind(j.target_revision)
        .bind(j.request_id.clone())
        .bind(j.created_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Writes a job's progress.
    pub async fn update_push_job(&self, j: &PushJobRow) -> Result<()> {
        sqlx::query(
            "UPDATE push_jobs SET state = $2, step = $3, request_id = $4, cert_serial = $5, \
             thumbprint = $6, trust_list_mode = $7, crls_pushed = $8, error = $9, \
             updated_at = $10 WHERE id = $1",
        )
        .bind(&j.id)
        .bind(state_str(j.state))
        .bind(&j.step)
        .bind(j.request_id.clone())
        .bind(j.cert_serial.clone())
        .bind(j.thumbprint.clone())
        .bind(j.trust_list_mode.clone())
        .bind(i64::from(j.crls_pushed))
        .bind(j.error.clone())
        .bind(j.updated_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The newest job still to finish (pending or waiting for approval).
    pub async fn open_push_job(&self, application_id: &str) -> Result<Option<PushJobRow>> {
        sqlx::query(
            "SELECT * FROM push_jobs WHERE application_id = $1 \
             AND state IN ('pending', 'waitingForApproval') ORDER BY id DESC LIMIT 1",
        )
        .bind(application_id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(PushJobRow::from_row)
        .transpose()
    }

    /// Every job still to finish, of every target.
    pub async fn open_push_jobs_of(&self, application_id: &str) -> Result<Vec<PushJobRow>> {
        sqlx::query(
            "SELECT * FROM push_jobs WHERE application_id = $1 \
             AND state IN ('pending', 'waitingForApproval') ORDER BY id DESC",
        )
        .bind(application_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(PushJobRow::from_row)
        .collect()
    }

    /// Disables a target (a rejected request must not be asked for again and again).
    pub async fn disable_push_target(&self, application_id: &str) -> Result<()> {
        sqlx::query("UPDATE push_targets SET enabled = 0 WHERE application_id = $1")
            .bind(application_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn push_job(&self, id: &str) -> Result<Option<PushJobRow>> {
        sqlx::query("SELECT * FROM push_jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(PushJobRow::from_row)
            .transpose()
    }

    /// An application's jobs, newest first.
    pub async fn push_jobs(&self, application_id: &str, limit: i64) -> Result<Vec<PushJobRow>> {
        sqlx::query("SELECT * FROM push_jobs WHERE application_id = $1 ORDER BY id DESC LIMIT $2")
            .bind(application_id)
            .bind(limit)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(PushJobRow::from_row)
            .collect()
    }
}
