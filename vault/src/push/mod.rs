//! The push engine (OPC UA Part 12 §7.7-§7.8, push model): for every enabled push target it
//! decides whether the server needs something — a first certificate, a renewal (the group's
//! renewal window, a revocation, a renewed CA), or fresh CRLs — and runs a job for it
//! (`sequence`). It wakes every [`ROUND`], when a job is asked for, and when the vault signs a
//! CRL, so a revocation reaches the servers at once.
//!
//! The vault pushes as the OPC UA application its GDS face is: the same certificate (issued by
//! its own CA) and PKI folder (`<data-dir>/gds-pki`), so the engine runs with the OPC UA face.

mod sequence;
mod server_trust;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::error::Result;
use crate::model::{now, PushJobState, PushReason};
use crate::service::Vault;
use crate::store::{PushJobRow, PushTargetRow};

/// How often targets are looked at without a reason to wake.
const ROUND: Duration = Duration::from_secs(30);
/// Back-off after a failed job: doubling from this, up to [`MAX_BACKOFF_SECS`].
const FIRST_BACKOFF_SECS: i64 = 30;
const MAX_BACKOFF_SECS: i64 = 3600;

/// Who the engine is as an OPC UA client.
#[derive(Clone)]
pub struct PushIdentity {
    pub pki_dir: PathBuf,
    pub application_uri: String,
    pub application_name: String,
}

/// The running engine; dropping it stops it.
pub struct PushEngine {
    task: JoinHandle<()>,
}

impl PushEngine {
    pub fn start(vault: Arc<Vault>, identity: PushIdentity) -> PushEngine {
        PushEngine {
            task: tokio::spawn(run(vault, identity)),
        }
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for PushEngine {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(vault: Arc<Vault>, identity: PushIdentity) {
    let mut crls = vault.crl_signed();
    loop {
        if let Err(e) = round(&vault, &identity).await {
            error!(error = %e, "push round failed; will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(ROUND) => {}
            _ = vault.push_requested() => {}
            changed = crls.changed() => {
                if changed.is_err() {
                    tokio::time::sleep(ROUND).await;
                }
            }
        }
    }
}

/// One look at every target; jobs run one after the other.
async fn round(vault: &Arc<Vault>, identity: &PushIdentity) -> Result<()> {
    for target in vault.store.push_targets().await? {
        if !target.enabled || target.next_attempt > now() {
            continue;
        }
        let open = vault
            .store
            .push_jobs(&target.application_id, 1)
            .await?
            .into_iter()
            .find(PushJobRow::is_open);
        let job = match open {
            Some(job) => job,
            None => match due(vault, &target).await? {
                Some(reason) => vault.new_push_job(&target.application_id, reason).await?,
                None => continue,
            },
        };
        run_job(vault, identity, &target, job).await?;
    }
    Ok(())
}

/// What the server needs, if anything.
async fn due(vault: &Vault, target: &PushTargetRow) -> Result<Option<PushReason>> {
    if target.pushed_serial.is_none() {
        return Ok(Some(PushReason::Initial));
    }
    let status = vault
        .certificate_status(&target.application_id, &target.group_id, None)
        .await?;
    if status.update_required {
        return Ok(Some(PushReason::Renewal));
    }
    let mark = sequence::crl_mark(vault, &target.group_id).await?;
    if target.pushed_crl_mark.as_deref() != Some(mark.as_str()) {
        return Ok(Some(PushReason::TrustList));
    }
    Ok(None)
}

async fn run_job(
    vault: &Arc<Vault>,
    identity: &PushIdentity,
    target: &PushTargetRow,
    mut job: PushJobRow,
) -> Result<()> {
    let outcome = sequence::run(vault, identity, target, &mut job).await;
    job.updated_at = now();
    match outcome {
        Ok(sequence::Outcome::Waiting) => {
            job.state = PushJobState::WaitingForApproval;
            job.step = "approval".into();
            vault.store.update_push_job(&job).await?;
        }
        Ok(sequence::Outcome::Done {
            certificate,
            crl_mark,
        }) => {
            job.state = PushJobState::Succeeded;
            job.step = "done".into();
            job.error = None;
            vault.store.update_push_job(&job).await?;
            vault
                .store
                .record_push(
                    &target.application_id,
                    target.revision,
                    certificate.as_ref().map(|(s, n)| (s.as_str(), *n)),
                    &crl_mark,
                )
                .await?;
            vault
                .store
                .audit(
                    "system:push",
                    "push.succeeded",
                    &target.application_id,
                    &format!(
                        "job {} ({:?}) to {}: certificate {}, trust list {}",
                        job.id,
                        job.reason,
                        target.endpoint_url,
                        job.cert_serial.as_deref().unwrap_or("unchanged"),
                        job.trust_list_mode.as_deref().unwrap_or("-")
                    ),
                )
                .await?;
            info!(application = %target.application_id, job = %job.id, "push succeeded");
        }
        Err(failure) => {
            job.state = PushJobState::Failed;
            job.error = Some(format!(
                "{failure} [as {} on {}]",
                target.user_name, target.endpoint_url
            ));
            vault.store.update_push_job(&job).await?;
            let delay = FIRST_BACKOFF_SECS
                .saturating_mul(1i64 << target.failures.clamp(0, 10))
                .min(MAX_BACKOFF_SECS);
            vault
                .store
                .push_failed(&target.application_id, target.revision, now() + delay)
                .await?;
            vault
                .store
                .audit(
                    "system:push",
                    "push.failed",
                    &target.application_id,
                    &format!("job {} at {}: {failure}", job.id, job.step),
                )
                .await?;
            warn!(
                application = %target.application_id,
                job = %job.id,
                step = %job.step,
                error = %failure,
                retry_in_secs = delay,
                "push failed"
            );
        }
    }
    Ok(())
}
