//! One push job: connect as the target's SecurityAdmin, get a CSR from the server, issue the
//! certificate through the workflow (approval included), UpdateCertificate with the issuer,
//! the group's trust list with its CRLs, ApplyChanges, then reconnect and check that the
//! server presents the new certificate; only then is the request accepted. A trust-list job
//! does only the trust list. The job row records each step as it is reached, so the API shows
//! where a push stands or failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use iiot_auth::{Principal, Role};
use iiot_gds::push_client::{PushClient, PushError};
use iiot_gds::session::{self, ConnectError};
use iiot_gds::trust_list::{TrustLists, ALL};
use opcua::client::{Client, ClientBuilder};
use opcua::types::{EndpointDescription, StatusCode};

use super::{server_trust, PushIdentity};
use crate::error::{Result, VaultError};
use crate::model::{
    now, CertificateRequestState, CertificateRequestType, PushReason, StartSigningRequest,
    TrustList,
};
use crate::service::Vault;
use crate::store::{PushJobRow, PushTargetRow, RequestRow};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server may take to present its new certificate after ApplyChanges
/// (node-opcua restarts its endpoints 2 s later).
const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// A server's answer quoted in a job's error is cut here (it goes into the audit log).
const MAX_MESSAGE: usize = 400;

/// How a job ended, when it did not fail.
pub enum Outcome {
    /// The certificate request waits for an approver; the job resumes in a later round.
    Waiting,
    /// Everything pushed and verified: the certificate (serial, notAfter) when one was.
    Done {
        certificate: Option<(String, i64)>,
        crl_mark: String,
    },
}

/// Why a job failed: its step, and the OPC UA status where there is one.
#[derive(Debug)]
pub struct Failure {
    pub step: &'static str,
    status: Option<StatusCode>,
    message: String,
    /// The target must not be retried until an operator acts (its request was rejected).
    pub disable: bool,
}

impl Failure {
    pub fn new(step: &'static str, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        Failure {
            step,
            status: None,
            message,
            disable: false,
        }
    }

    pub fn status(step: &'static str, status: StatusCode, message: impl Into<String>) -> Self {
        Failure {
            status: Some(status),
            ..Failure::new(step, message)
        }
    }

    fn push(step: &'static str, e: PushError) -> Self {
        Failure {
            status: e.status(),
            ..Failure::new(step, e.to_string())
        }
    }

    fn vault(step: &'static str, e: VaultError) -> Self {
        Failure::new(step, e.to_string())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "{}: {s} ({})", self.step, self.message),
            None => write!(f, "{}: {}", self.step, self.message),
        }
    }
}

type Step<T> = std::result::Result<T, Failure>;

/// What the group's CAs and CRLs are in `list`; a target whose pushed mark differs gets them.
pub fn crl_mark(list: &TrustList) -> String {
    let mut all = String::new();
    for item in list.trusted_certificates.iter().chain(&list.trusted_crls) {
        all.push_str(item);
        all.push('\n');
    }
    iiot_gds::pki::thumbprint(all.as_bytes())
}

/// The request is submitted (and collected) in the name of whoever asked for the job, so the
/// requester ≠ approver rule keeps that principal from approving it.
fn requester(job: &PushJobRow) -> Principal {
    Principal::new(job.requested_by.clone(), [Role::Writer])
}

fn build_client(identity: &PushIdentity) -> Step<Client> {
    ClientBuilder::new()
        .application_name(identity.application_name.clone())
        .application_uri(identity.application_uri.clone())
        .product_uri("urn:iiot:vault")
        .pki_dir(&identity.pki_dir)
        .create_sample_keypair(false)
        .trust_server_certs(false)
        .verify_server_certs(true)
        .session_retry_limit(0)
        .session_timeout(60_000)
        .session_name("iiot vault push")
        .client()
        .map_err(|e| Failure::new("connect", format!("OPC UA client: {}", e.join("; "))))
}

async fn progress(vault: &Vault, job: &mut PushJobRow, step: &str) -> Step<()> {
    job.step = step.to_owned();
    job.updated_at = now();
    vault
        .store
        .update_push_job(job)
        .await
        .map_err(|e| Failure::vault("progress", e))
}

/// The request a job goes on with: Waiting while it is New.
async fn decided_request(vault: &Vault, id: &str) -> Step<Option<RequestRow>> {
    let request = vault
        .request(id)
        .await
        .map_err(|e| Failure::vault("approval", e))?;
    match request.state {
        CertificateRequestState::New => Ok(None),
        CertificateRequestState::Approved | CertificateRequestState::Accepted => Ok(Some(request)),
        CertificateRequestState::Rejected => Err(Failure {
            disable: true,
            ..Failure::new(
                "approval",
                format!(
                    "request {id} was rejected; the target is disabled until it is saved again"
                ),
            )
        }),
        other => Err(Failure::new(
            "approval",
            format!("request {id} is {}", other.as_str()),
        )),
    }
}

/// Runs `job` against `target` as far as it can go now.
pub async fn run(
    vault: &Arc<Vault>,
    identity: &PushIdentity,
    target: &PushTargetRow,
    job: &mut PushJobRow,
) -> Step<Outcome> {
    let wants_certificate = job.reason != PushReason::TrustList;
    // A job waiting for approval goes on only once the request is decided.
    let mut issued = None;
    if let Some(id) = job.request_id.clone() {
        match decided_request(vault, &id).await? {
            None => return Ok(Outcome::Waiting),
            Some(r) => issued = Some(r),
        }
    }
    let app = vault
        .application(&target.application_id)
        .await
        .map_err(|e| Failure::vault("connect", e))?;

    progress(vault, job, "connect").await?;
    let password = vault
        .push_password(target)
        .map_err(|e| Failure::vault("connect", e))?;
    // One snapshot: what is pushed is what the job records as pushed.
    let trust = vault
        .trust_list(&target.group_id, None)
        .await
        .map_err(|e| Failure::vault("trustList", e))?;
    let mut client = build_client(identity)?;
    let (endpoint, presented) = server_trust::endpoint(&client, &target.endpoint_url).await?;
    let holder = vault
        .certificate_holder(&presented)
        .await
        .map_err(|e| Failure::vault("connect", e))?;
    let pinned = server_trust::admit(
        &identity.pki_dir,
        &presented,
        target.server_thumbprint.as_deref(),
        &app.id,
        &app.application_uri,
        holder.as_ref(),
    )?;
    let open = session::open_endpoint(
        &mut client,
        endpoint,
        &target.user_name,
        &password,
        CONNECT_TIMEOUT,
    )
    .await
    .map_err(|e| match e {
        ConnectError::Refused(status) => Failure::status("connect", status, "session refused"),
        ConnectError::Failed(why) => Failure::new("connect", why),
    })?;
    let push = PushClient::new(open.session.clone());
    let result = push_over(vault, target, job, &push, issued, wants_certificate, &trust).await;
    open.close().await;
    drop(pinned);
    let pushed = match result? {
        Pushed::Waiting => return Ok(Outcome::Waiting),
        Pushed::Done(pushed) => pushed,
    };

    let certificate = match pushed {
        Some(boxed) => {
            let (request, der) = *boxed;
            progress(vault, job, "verify").await?;
            verify(identity, target, &password, &der).await?;
            // Collected only now: a certificate the server never presented stays Approved,
            // and the next job installs it without a new approval.
            let fetched = vault
                .fetch(&requester(job), &request.id, request.request_type, None)
                .await
                .map_err(|e| Failure::vault("verify", e))?;
            job.cert_serial = fetched.certificate.map(|c| c.serial_number);
            Some((
                job.cert_serial.clone().unwrap_or_default(),
                request.not_after.unwrap_or(0),
            ))
        }
        None => None,
    };
    Ok(Outcome::Done {
        certificate,
        crl_mark: crl_mark(&trust),
    })
}

/// What the steps on the session got to.
enum Pushed {
    /// The new request waits for an approver: nothing was changed on the server.
    Waiting,
    /// The request and certificate pushed, if one was.
    Done(Option<Box<(RequestRow, Vec<u8>)>>),
}

/// The steps on the open session.
async fn push_over(
    vault: &Arc<Vault>,
    target: &PushTargetRow,
    job: &mut PushJobRow,
    push: &PushClient,
    issued: Option<RequestRow>,
    wants_certificate: bool,
    trust: &TrustList,
) -> Step<Pushed> {
    let mut pushed = None;
    let mut apply = false;
    if wants_certificate {
        let request = match issued {
            Some(r) => r,
            None => {
                progress(vault, job, "createSigningRequest").await?;
                let id = request_certificate(vault, target, job, push).await?;
                job.request_id = Some(id.clone());
                progress(vault, job, "approval").await?;
                match decided_request(vault, &id).await? {
                    None => return Ok(Pushed::Waiting),
                    Some(r) => r,
                }
            }
        };
        progress(vault, job, "updateCertificate").await?;
        // Read again: a revocation since the job started must not reach the server.
        let request = decided_request(vault, &request.id)
            .await?
            .ok_or_else(|| Failure::new("updateCertificate", "the request is pending again"))?;
        let der = request
            .cert_der
            .clone()
            .ok_or_else(|| Failure::new("updateCertificate", "the request has no certificate"))?;
        let issuer = match &request.ca_serial {
            Some(serial) => vec![vault
                .issuer(serial)
                .await
                .map_err(|e| Failure::vault("updateCertificate", e))?],
            None => Vec::new(),
        };
        // A key pair's private key leaves the vault once, with the certificate; collecting it
        // accepts the request, so a certificate the server then refuses is revoked at once.
        let key = match request.request_type {
            CertificateRequestType::KeyPairRequest => {
                let fetched = vault
                    .fetch(
                        &requester(job),
                        &request.id,
                        CertificateRequestType::KeyPairRequest,
                        None,
                    )
                    .await
                    .map_err(|e| Failure::vault("updateCertificate", e))?;
                let key = fetched.private_key.map(|k| k.key).ok_or_else(|| {
                    Failure::new(
                        "updateCertificate",
                        "the key pair's private key was handed out already",
                    )
                })?;
                Some(key)
            }
            CertificateRequestType::SigningRequest => None,
        };
        let updated = push
            .update_certificate(&der, &issuer, key.as_deref().map(|k| ("PEM", k.as_bytes())))
            .await;
        if key.is_some() && updated.is_err() {
            vault
                .revoke(&crate::service::push_system(), &request.id)
                .await
                .map_err(|e| Failure::vault("updateCertificate", e))?;
        }
        apply |= updated.map_err(|e| Failure::push("updateCertificate", e))?;
        job.thumbprint = Some(iiot_gds::pki::thumbprint(&der).to_ascii_uppercase());
        pushed = Some(Box::new((request, der)));
    }

    progress(vault, job, "trustList").await?;
    let lists = trust
        .to_lists()
        .map_err(|e| Failure::new("trustList", format!("the vault's trust list: {e}")))?;
    apply |= push_trust_list(push, job, &lists).await?;

    if apply || pushed.is_some() {
        progress(vault, job, "applyChanges").await?;
        match push.apply_changes().await {
            Ok(()) => {}
            // Part 12 §7.10.7: nothing left to apply (the server applied as it went).
            Err(PushError::Refused { status, .. }) if status == StatusCode::BadNothingToDo => {}
            Err(e) => return Err(Failure::push("applyChanges", e)),
        }
    }
    Ok(Pushed::Done(pushed))
}

/// Statuses of a server that makes no CSR (Part 12 makes CreateSigningRequest optional when
/// the server takes a private key).
const NO_CSR: [StatusCode; 4] = [
    StatusCode::BadNotSupported,
    StatusCode::BadNotImplemented,
    StatusCode::BadMethodInvalid,
    StatusCode::BadServiceUnsupported,
];

/// Submits the certificate request through the workflow: a CSR the server made, or, when the
/// target asks for vault-made keys or the server makes no CSR, a new key pair whose private
/// key (unencrypted PEM, sent over SignAndEncrypt only) goes with the certificate.
async fn request_certificate(
    vault: &Vault,
    target: &PushTargetRow,
    job: &PushJobRow,
    push: &PushClient,
) -> Step<String> {
    if !target.new_key_pair {
        match push.create_signing_request(target.regenerate_key).await {
            Ok(csr) => {
                return vault
                    .submit_signing_request(
                        &requester(job),
                        &StartSigningRequest {
                            entity_id: target.application_id.clone(),
                            group_id: target.group_id.clone(),
                            certificate_type_id: None,
                            certificate_request: base64::engine::general_purpose::STANDARD
                                .encode(&csr),
                        },
                    )
                    .await
                    .map_err(|e| Failure::vault("createSigningRequest", e));
            }
            Err(PushError::Refused { status, .. }) if NO_CSR.contains(&status) => {}
            Err(e) => return Err(Failure::push("createSigningRequest", e)),
        }
    }
    let formats = push
        .supported_private_key_formats()
        .await
        .map_err(|e| Failure::push("createSigningRequest", e))?;
    if !formats.iter().any(|f| f.eq_ignore_ascii_case("PEM")) {
        return Err(Failure::new(
            "createSigningRequest",
            format!("the server takes no PEM private key (it supports {formats:?})"),
        ));
    }
    let app = vault
        .application(&target.application_id)
        .await
        .map_err(|e| Failure::vault("createSigningRequest", e))?;
    let hosts = crate::validate::certifiable_hosts(
        app.discovery_urls
            .iter()
            .chain(std::iter::once(&target.endpoint_url)),
    );
    let name = app
        .application_names
        .first()
        .map(|n| n.text.clone())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| app.application_uri.clone());
    vault
        .submit_keypair_request(
            &requester(job),
            &crate::model::StartNewKeyPairRequest {
                entity_id: target.application_id.clone(),
                group_id: target.group_id.clone(),
                certificate_type_id: None,
                subject_name: Some(format!("CN={}", name.replace([',', '=', '/', '+'], " "))),
                domain_names: hosts,
                private_key_format: Some("PEM".into()),
                private_key_password: None,
            },
        )
        .await
        .map_err(|e| Failure::vault("createSigningRequest", e))
}

/// Replaces the server's trust list with the group's (CAs and CRLs); a server that cannot
/// replace its list, or silently keeps it (node-opcua 2.157), gets the CA certificates by
/// AddCertificate, without CRLs. Answers whether ApplyChanges is needed.
async fn push_trust_list(
    push: &PushClient,
    job: &mut PushJobRow,
    lists: &TrustLists,
) -> Step<bool> {
    let written = push.write_trust_list(lists, ALL).await;
    let (replaced, apply) = match written {
        // node-opcua 2.157 answers CloseAndUpdate Good without its output argument (and does
        // nothing): what the server holds decides, not what it said.
        Ok(_) | Err(PushError::Answer(_)) => {
            let apply = matches!(written, Ok(true));
            let back = push
                .read_trust_list(ALL)
                .await
                .map_err(|e| Failure::push("trustList", e))?;
            let holds = lists
                .trusted_crls
                .iter()
                .all(|crl| back.trusted_crls.contains(crl))
                && lists
                    .trusted_certificates
                    .iter()
                    .all(|c| back.trusted_certificates.contains(c));
            (holds, apply)
        }
        Err(PushError::Refused { status, .. })
            if [
                StatusCode::BadNotSupported,
                StatusCode::BadNotWritable,
                StatusCode::BadNotImplemented,
                StatusCode::BadMethodInvalid,
                StatusCode::BadInvalidArgument,
            ]
            .contains(&status) =>
        {
            (false, false)
        }
        Err(e) => return Err(Failure::push("trustList", e)),
    };
    if replaced {
        job.trust_list_mode = Some("replaced".into());
        job.crls_pushed = !lists.trusted_crls.is_empty();
        return Ok(apply);
    }
    for ca in &lists.trusted_certificates {
        push.add_certificate(ca, true)
            .await
            .map_err(|e| Failure::push("trustList", e))?;
    }
    job.trust_list_mode = Some("addCertificate".into());
    job.crls_pushed = false;
    Ok(apply)
}

/// Reconnects until the server presents `der`, then opens a SignAndEncrypt session on that
/// endpoint, which proves the server holds its key.
async fn verify(
    identity: &PushIdentity,
    target: &PushTargetRow,
    password: &str,
    der: &[u8],
) -> Step<()> {
    let deadline = Instant::now() + VERIFY_TIMEOUT;
    let client = build_client(identity)?;
    let endpoint: EndpointDescription = loop {
        match server_trust::endpoint(&client, &target.endpoint_url).await {
            Ok((endpoint, presented)) if presented == der => break endpoint,
            Ok(_) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok((_, presented)) => {
                return Err(Failure::new(
                    "verify",
                    format!(
                        "after ApplyChanges the server still presents {}",
                        iiot_gds::pki::thumbprint(&presented).to_ascii_uppercase()
                    ),
                ))
            }
            Err(e) => return Err(e),
        }
    };
    let mut client = build_client(identity)?;
    let open = session::open_endpoint(
        &mut client,
        endpoint,
        &target.user_name,
        password,
        CONNECT_TIMEOUT,
    )
    .await
    .map_err(|e| match e {
        ConnectError::Refused(status) => {
            Failure::status("verify", status, "no session with the new certificate")
        }
        ConnectError::Failed(why) => Failure::new("verify", why),
    })?;
    open.close().await;
    Ok(())
}

/// An approved request a failed job of the same target configuration left, which the next
/// job installs without a new approval; `None` if there is none.
pub async fn reusable_request(vault: &Vault, target: &PushTargetRow) -> Result<Option<String>> {
    let recent = vault.store.push_jobs(&target.application_id, 10).await?;
    let Some(last) = recent.first() else {
        return Ok(None);
    };
    let Some(id) = last
        .request_id
        .clone()
        .filter(|_| last.state == crate::model::PushJobState::Failed)
    else {
        return Ok(None);
    };
    let request = vault.request(&id).await?;
    if request.state != CertificateRequestState::Approved {
        return Ok(None);
    }
    let group = vault.group(&target.group_id).await?;
    let tries = recent
        .iter()
        .filter(|j| j.request_id.as_deref() == Some(id.as_str()))
        .count();
    // Not worth installing any more: refused by the server (its key is gone, say), meant for a
    // target configuration since replaced, tried often enough, or due for renewal already. It
    // will never be installed, so it must not stay a valid certificate nobody holds.
    let spent = last.step == "updateCertificate"
        || last.target_revision != target.revision
        || tries >= MAX_TRIES_PER_REQUEST
        || !vault.renewal_reasons(&request, &group).await?.is_empty();
    if spent {
        vault.revoke(&crate::service::push_system(), &id).await?;
        return Ok(None);
    }
    Ok(request.not_after.is_some_and(|t| t > now()).then_some(id))
}

/// Jobs that may install one approved certificate before it is given up (revoked).
const MAX_TRIES_PER_REQUEST: usize = 3;
