//! Push targets and jobs (OPC UA Part 12 push model) as the API manages them: an operator
//! names the server an application runs as and a SecurityAdmin credential on it; the push
//! engine (`crate::push`) then keeps that server's certificate and trust list current. The
//! credential is sealed with the key-encryption key and never leaves the vault again.

use iiot_auth::Principal;

use super::{not_found, Vault};
use crate::error::{Result, VaultError};
use crate::model::*;
use crate::store::{PushJobRow, PushTargetRow};

/// The group a target gets when the request names none.
const DEFAULT_GROUP: &str = "DefaultApplicationGroup";
const MAX_URL: usize = 1024;
const MAX_USER: usize = 256;
const MAX_PASSWORD: usize = 1024;

/// Who the engine acts as where no person does (rejecting a withdrawn request).
pub(crate) fn push_system() -> Principal {
    Principal::new("system:push", [iiot_auth::Role::Approver])
}

fn sealing_context(application_id: &str) -> String {
    format!("push-target:{application_id}")
}

fn invalid(why: impl Into<String>) -> VaultError {
    VaultError::InvalidArgument(why.into())
}

fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// `opc.tcp://host[:port][/path]` (an IPv6 host in brackets), the only transport a push
/// speaks; the same rule as the OpenAPI document's pattern.
fn check_endpoint_url(url: &str) -> Result<()> {
    let bad = || invalid("endpointUrl must be opc.tcp://host[:port][/path] without spaces");
    let rest = url.strip_prefix("opc.tcp://").ok_or_else(bad)?;
    if url.chars().count() > MAX_URL || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(bad());
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(['@', '[', ']']) {
        return Err(bad());
    }
    if let Some(port) = port {
        let valid = !port.starts_with('0')
            && port.len() <= 5
            && port.chars().all(|c| c.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p > 0);
        if !valid {
            return Err(invalid("endpointUrl has an invalid port"));
        }
    }
    Ok(())
}

impl Vault {
    /// Creates or replaces the push target of a registered server application.
    pub async fn set_push_target(
        &self,
        who: &Principal,
        application_id: &str,
        req: &PushTargetRequest,
    ) -> Result<PushTarget> {
        let app = self.application(application_id).await?;
        if !app.is_registered() {
            return Err(not_found("application", application_id));
        }
        if app.application_type == ApplicationType::Client {
            return Err(VaultError::InvalidState(
                "a push target is a server; this application is registered as a Client".into(),
            ));
        }
        check_endpoint_url(&req.endpoint_url)?;
        let user_chars = req.user_name.chars().count();
        if user_chars == 0 || user_chars > MAX_USER || !printable(&req.user_name) {
            return Err(invalid("userName must be 1 to 256 printable characters"));
        }
        let password_chars = req.password.chars().count();
        if password_chars == 0 || password_chars > MAX_PASSWORD {
            return Err(invalid("password must be 1 to 1024 characters"));
        }
        let thumbprint = match req.server_thumbprint.as_deref() {
            None => None,
            Some(t) if t.len() == 40 && t.chars().all(|c| c.is_ascii_hexdigit()) => {
                Some(t.to_ascii_lowercase())
            }
            Some(_) => {
                return Err(invalid(
                    "serverThumbprint must be a SHA-1 thumbprint: 40 hex digits",
                ))
            }
        };
        let group = self
            .group(req.group_id.as_deref().unwrap_or(DEFAULT_GROUP))
            .await?;
        if group.group_type != "ApplicationInstanceCertificate" {
            return Err(invalid(format!(
                "group {} issues {} certificates, not application instance certificates",
                group.id, group.group_type
            )));
        }
        let existing = self.store.push_target(application_id).await?;
        let row = PushTargetRow {
            application_id: app.id.clone(),
            endpoint_url: req.endpoint_url.clone(),
            user_name: req.user_name.clone(),
            password_sealed: self
                .kek
                .seal(&sealing_context(&app.id), req.password.as_bytes())?,
            server_thumbprint: thumbprint,
            regenerate_key: req.regenerate_private_key,
            new_key_pair: req.new_key_pair,
            group_id: group.id.clone(),
            enabled: req.enabled.unwrap_or(true),
            created_by: who.name.clone(),
            created_at: now(),
            updated_by: None,
            updated_at: None,
            pushed_serial: None,
            pushed_not_after: None,
            pushed_crl_mark: None,
            next_attempt: 0,
            failures: 0,
            revision: 0,
        };
        self.store.upsert_push_target(&row).await?;
        self.store
            .audit(
                &who.name,
                if existing.is_some() {
                    "push.target.update"
                } else {
                    "push.target.register"
                },
                &app.id,
                &format!(
                    "{} as {} in {}{}",
                    row.endpoint_url,
                    row.user_name,
                    row.group_id,
                    if row.enabled { "" } else { " (disabled)" }
                ),
            )
            .await?;
        self.push_wake.notify_one();
        self.push_target(application_id).await
    }

    /// Every target with its newest job.
    pub async fn push_targets(&self) -> Result<PushTargetList> {
        let mut targets = Vec::new();
        for row in self.store.push_targets().await? {
            let last = self
                .store
                .push_jobs(&row.application_id, 1)
                .await?
                .into_iter()
                .next()
                .map(|j| j.to_model());
            targets.push(row.to_model(last));
        }
        Ok(PushTargetList { targets })
    }

    /// A target with its newest job.
    pub async fn push_target(&self, application_id: &str) -> Result<PushTarget> {
        let row = self
            .store
            .push_target(application_id)
            .await?
            .ok_or_else(|| not_found("push target of application", application_id))?;
        let last = self
            .store
            .push_jobs(application_id, 1)
            .await?
            .into_iter()
            .next()
            .map(|j| j.to_model());
        Ok(row.to_model(last))
    }

    /// Stops pushing to an application's server. Idempotent: with no target there is nothing
    /// to stop, which is what the caller wants.
    pub async fn delete_push_target(&self, who: &Principal, application_id: &str) -> Result<()> {
        for job in self.store.open_push_jobs_of(application_id).await? {
            self.withdraw_push_request(&job).await?;
        }
        if !self.store.delete_push_target(application_id).await? {
            return Ok(());
        }
        self.store
            .audit(&who.name, "push.target.delete", application_id, "")
            .await
    }

    /// Asks for a push now; refused while another job of the target is open.
    pub async fn start_push(&self, who: &Principal, application_id: &str) -> Result<PushJob> {
        let target = self
            .store
            .push_target(application_id)
            .await?
            .ok_or_else(|| not_found("push target of application", application_id))?;
        if !target.enabled {
            return Err(VaultError::InvalidState(format!(
                "the push target of {application_id} is disabled"
            )));
        }
        if let Some(open) = self.store.open_push_job(application_id).await? {
            return Err(VaultError::InvalidState(format!(
                "push job {} of {application_id} is still {}",
                open.id,
                serde_json::to_string(&open.state).unwrap_or_default()
            )));
        }
        let job = self
            .new_push_job(&target, PushReason::Manual, &who.name)
            .await?;
        self.store
            .audit(&who.name, "push.start", application_id, &job.id)
            .await?;
        self.push_wake.notify_one();
        Ok(job.to_model())
    }

    /// A job in state pending for `target`'s current configuration, for the engine to run.
    pub(crate) async fn new_push_job(
        &self,
        target: &PushTargetRow,
        reason: PushReason,
        requested_by: &str,
    ) -> Result<PushJobRow> {
        self.new_push_job_with(target, reason, requested_by, None)
            .await
    }

    /// [`Vault::new_push_job`] going on with an approved request a failed job left.
    pub(crate) async fn new_push_job_with(
        &self,
        target: &PushTargetRow,
        reason: PushReason,
        requested_by: &str,
        request_id: Option<String>,
    ) -> Result<PushJobRow> {
        let at = now();
        let job = PushJobRow {
            // Time-ordered, so jobs made in one second still list in order.
            id: uuid::Uuid::now_v7().to_string(),
            application_id: target.application_id.clone(),
            reason,
            state: PushJobState::Pending,
            step: "pending".into(),
            requested_by: requested_by.to_owned(),
            target_revision: target.revision,
            request_id,
            cert_serial: None,
            thumbprint: None,
            trust_list_mode: None,
            crls_pushed: false,
            error: None,
            created_at: at,
            updated_at: at,
        };
        self.store.insert_push_job(&job).await?;
        Ok(job)
    }

    pub async fn push_jobs(&self, application_id: &str, limit: i64) -> Result<PushJobList> {
        self.store
            .push_target(application_id)
            .await?
            .ok_or_else(|| not_found("push target of application", application_id))?;
        Ok(PushJobList {
            jobs: self
                .store
                .push_jobs(application_id, limit.clamp(1, 1000))
                .await?
                .iter()
                .map(PushJobRow::to_model)
                .collect(),
        })
    }

    pub async fn push_job(&self, id: &str) -> Result<PushJob> {
        Ok(self
            .store
            .push_job(id)
            .await?
            .ok_or_else(|| not_found("push job", id))?
            .to_model())
    }

    /// Rejects the request a job left waiting for approval, when the job will not go on (its
    /// target changed or was deleted): no approver should issue a certificate nobody pushes.
    pub(crate) async fn withdraw_push_request(&self, job: &PushJobRow) -> Result<()> {
        let Some(id) = &job.request_id else {
            return Ok(());
        };
        if self.request(id).await?.state == CertificateRequestState::New {
            self.reject(&push_system(), id).await?;
        }
        Ok(())
    }

    /// The target's password, for the engine's session only.
    pub(crate) fn push_password(&self, target: &PushTargetRow) -> Result<String> {
        let plain = self.kek.open(
            &sealing_context(&target.application_id),
            &target.password_sealed,
        )?;
        String::from_utf8(plain)
            .map_err(|_| VaultError::Crypto("sealed password is not UTF-8".into()))
    }

    /// Asks the push engine for a round now.
    pub(crate) fn wake_push(&self) {
        self.push_wake.notify_one();
    }

    /// Waits until a push is asked for (or a target changes).
    pub(crate) async fn push_requested(&self) {
        self.push_wake.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        assert!(check_endpoint_url("opc.tcp://plc:4840/").is_ok());
        assert!(check_endpoint_url("opc.tcp://10.0.0.1:48400/UA/Server").is_ok());
        assert!(check_endpoint_url("opc.tcp://plc").is_ok());
        assert!(check_endpoint_url("opc.tcp://[fe80::1]:4840/").is_ok());
        for bad in [
            "http://plc:4840",
            "opc.tcp://",
            "opc.tcp://:4840",
            "opc.tcp://plc:0/",
            "opc.tcp://plc:99999/",
            "opc.tcp://plc:x/",
            "opc.tcp://pl c:4840/",
            "opc.tcp://plc:04840/",
            "opc.tcp://[::1/",
            "opc.tcp://[zz]:4840",
            "opc.tcp://user@plc:4840",
        ] {
            assert!(check_endpoint_url(bad).is_err(), "{bad}");
        }
    }
}
