//! The push engine (OPC UA Part 12 §7.7-§7.10, push model): for every enabled push target it
//! decides whether the server needs something — a first certificate, a renewal of the
//! certificate it was pushed (renewal window, revocation, renewed CA), or fresh CRLs — and runs
//! a job for it (`sequence`). It wakes every [`ROUND`], when a job is asked for or a request
//! decided, and when the vault signs a CRL, so a revocation reaches the servers at once, even
//! while a certificate request of theirs waits for an approver.
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

/// Servers pushed to at the same time; a server that does not answer holds one of them for
/// its connect timeout, not the whole fleet.
const PARALLEL: usize = 8;

/// The targets a task is working on, each with whether a round passed it by meanwhile (and so
/// must look again once the task ends).
type BusyMap = Arc<std::sync::Mutex<std::collections::HashMap<String, bool>>>;

/// What the rounds share: the targets a task is working on (one task per target at a time),
/// the bound on concurrent jobs, and the tasks (dropped, and so stopped, with the engine).
struct Workers {
    busy: BusyMap,
    permits: Arc<tokio::sync::Semaphore>,
    tasks: tokio::task::JoinSet<()>,
}

/// Takes a target off the busy map when its task ends, however it ends, and asks for another
/// round when one passed the target by or the task did work.
struct Busy {
    map: BusyMap,
    id: String,
    vault: Arc<Vault>,
    worked: bool,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let passed_by = self
            .map
            .lock()
            .ok()
            .and_then(|mut map| map.remove(&self.id))
            .unwrap_or(false);
        if passed_by || self.worked {
            self.vault.wake_push();
        }
    }
}

async fn run(vault: Arc<Vault>, identity: PushIdentity) {
    let mut crls = vault.crl_signed();
    let mut workers = Workers {
        busy: Arc::default(),
        permits: Arc::new(tokio::sync::Semaphore::new(PARALLEL)),
        tasks: tokio::task::JoinSet::new(),
    };
    loop {
        while let Some(ended) = workers.tasks.try_join_next() {
            if let Err(e) = ended {
                error!(error = %e, "a push task ended abnormally");
            }
        }
        if let Err(e) = round(&vault, &identity, &mut workers).await {
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

/// Automatic jobs are asked for by the target's registrant (or its last editor).
fn registrant(target: &PushTargetRow) -> &str {
    target.updated_by.as_deref().unwrap_or(&target.created_by)
}

/// One look at every target: each one that may need something gets a task of its own (unless
/// one is still at work on it), at most [`PARALLEL`] of them running at once.
async fn round(vault: &Arc<Vault>, identity: &PushIdentity, workers: &mut Workers) -> Result<()> {
    for target in vault.store.push_targets().await? {
        if !target.enabled || target.next_attempt > now() {
            continue;
        }
        let id = target.application_id.clone();
        {
            let Ok(mut busy) = workers.busy.lock() else {
                continue;
            };
            if let Some(passed_by) = busy.get_mut(&id) {
                *passed_by = true;
                continue;
            }
            busy.insert(id.clone(), false);
        }
        let busy = Busy {
            map: workers.busy.clone(),
            id,
            vault: vault.clone(),
            worked: false,
        };
        let (vault, identity, permits) = (vault.clone(), identity.clone(), workers.permits.clone());
        workers.tasks.spawn(async move {
            // The whole guard moves in (not just the field written below), so the target stays
            // busy until the task ends.
            let mut busy = busy;
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            // Read again: the target may have changed, or gone, while the task waited.
            let app = target.application_id.clone();
            let target = match vault.store.push_target(&app).await {
                Ok(Some(t)) if t.enabled && t.next_attempt <= now() => t,
                Ok(_) => return,
                Err(e) => {
                    error!(application = %app, error = %e, "push target unreadable; will retry");
                    return;
                }
            };
            match visit(&vault, &identity, target).await {
                // What changed while a job ran (a CRL, a decision) is looked at at once:
                // `Busy` asks for a round when the target is free again.
                Ok(worked) => busy.worked = worked,
                Err(e) => error!(application = %app, error = %e, "push failed to run; will retry"),
            }
        });
    }
    Ok(())
}

/// What one target needs now, done; answers whether a job ran to an end (not just looked at
/// a request still waiting).
async fn visit(vault: &Arc<Vault>, identity: &PushIdentity, target: PushTargetRow) -> Result<bool> {
    if !vault
        .application(&target.application_id)
        .await?
        .is_registered()
    {
        return Ok(false);
    }
    if let Some(job) = vault.store.open_push_job(&target.application_id).await? {
        if job.target_revision != target.revision {
            cancel(vault, job, "superseded: the push target was saved again").await?;
            return Ok(true);
        }
        let waiting = job.state == PushJobState::WaitingForApproval;
        if job.state == PushJobState::WaitingForApproval
            && target.pushed_crl_mark.is_some()
            && crls_changed(vault, &target).await?
        {
            // CRLs do not wait for a decision on a certificate.
            let crl_job = vault
                .new_push_job(&target, PushReason::TrustList, registrant(&target))
                .await?;
            if !run_job(vault, identity, &target, crl_job).await? {
                return Ok(true);
            }
        }
        let ended = run_job(vault, identity, &target, job).await?;
        return Ok(ended || !waiting);
    }
    let Some(reason) = due(vault, &target).await? else {
        return Ok(false);
    };
    let reuse = match reason {
        PushReason::TrustList => None,
        _ => sequence::reusable_request(vault, &target).await?,
    };
    let job = vault
        .new_push_job_with(&target, reason, registrant(&target), reuse)
        .await?;
    run_job(vault, identity, &target, job).await?;
    Ok(true)
}

async fn crls_changed(vault: &Vault, target: &PushTargetRow) -> Result<bool> {
    let list = vault.trust_list(&target.group_id, None).await?;
    Ok(target.pushed_crl_mark.as_deref() != Some(sequence::crl_mark(&list).as_str()))
}

/// What the server needs, if anything, judged by the certificate pushed to it (not by other
/// certificates its application may hold).
async fn due(vault: &Vault, target: &PushTargetRow) -> Result<Option<PushReason>> {
    let Some(serial) = &target.pushed_serial else {
        return Ok(Some(PushReason::Initial));
    };
    let group = vault.group(&target.group_id).await?;
    let renew = match vault.store.request_by_cert_serial(serial).await? {
        Some(pushed) => !vault.renewal_reasons(&pushed, &group).await?.is_empty(),
        None => true,
    };
    if renew {
        return Ok(Some(PushReason::Renewal));
    }
    if crls_changed(vault, target).await? {
        return Ok(Some(PushReason::TrustList));
    }
    Ok(None)
}

/// Ends a job that will not go on, withdrawing its pending request.
async fn cancel(vault: &Vault, mut job: PushJobRow, why: &str) -> Result<()> {
    vault.withdraw_push_request(&job).await?;
    job.state = PushJobState::Failed;
    job.error = Some(why.to_owned());
    job.updated_at = now();
    vault.store.update_push_job(&job).await
}

/// Runs a job and records its end; answers whether it succeeded.
async fn run_job(
    vault: &Arc<Vault>,
    identity: &PushIdentity,
    target: &PushTargetRow,
    mut job: PushJobRow,
) -> Result<bool> {
    let outcome = sequence::run(vault, identity, target, &mut job).await;
    job.updated_at = now();
    match outcome {
        Ok(sequence::Outcome::Waiting) => {
            job.state = PushJobState::WaitingForApproval;
            job.step = "approval".into();
            vault.store.update_push_job(&job).await?;
            Ok(false)
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
            Ok(true)
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
            if failure.disable {
                vault
                    .store
                    .disable_push_target(&target.application_id)
                    .await?;
                vault
                    .store
                    .audit(
                        "system:push",
                        "push.target.disabled",
                        &target.application_id,
                        "its certificate request was rejected",
                    )
                    .await?;
            }
            warn!(
                application = %target.application_id,
                job = %job.id,
                step = %job.step,
                error = %failure,
                retry_in_secs = delay,
                "push failed"
            );
            Ok(false)
        }
    }
}
