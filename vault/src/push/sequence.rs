//! One push job: connect as the target's SecurityAdmin, get a CSR from the server, issue the
//! certificate through the workflow (approval included), UpdateCertificate with the issuer,
//! the group's trust list with its CRLs, ApplyChanges, then reconnect and check that the
//! server presents the new certificate. A trust-list job does only the trust list. The job row
//! records each step as it is reached, so the API shows where a push stands or failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use iiot_auth::{Principal, Role};
use iiot_gds::push_client::{PushClient, PushError};
use iiot_gds::session::{self, ConnectError};
use iiot_gds::trust_list::{TrustLists, ALL};
use opcua::client::{Client, ClientBuilder};
use opcua::types::StatusCode;

use super::{server_trust, PushIdentity};
use crate::error::{Result, VaultError};
use crate::model::{
    now, CertificateRequestState, CertificateRequestType, PushReason, StartSigningRequest,
};
use crate::service::Vault;
use crate::store::{PushJobRow, PushTargetRow};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server may take to present its new certificate after ApplyChanges
/// (node-opcua restarts its endpoints 2 s later).
const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);

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
    step: &'static str,
    status: Option<StatusCode>,
    message: String,
}

impl Failure {
    pub fn new(step: &'static str, message: impl Into<String>) -> Self {
        Failure {
            step,
            status: None,
            message: message.into(),
        }
    }

    pub fn status(step: &'static str, status: StatusCode, message: impl Into<String>) -> Self {
        Failure {
            step,
            status: Some(status),
            message: message.into(),
        }
    }

    fn push(step: &'static str, e: PushError) -> Self {
        Failure {
            step,
            status: e.status(),
            message: e.to_string(),
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

/// What the group's CRLs and CAs are now; a target whose pushed mark differs gets them.
pub async fn crl_mark(vault: &Vault, group_id: &str) -> Result<String> {
    let list = vault.trust_list(group_id, None).await?;
    let mut all = String::new();
    for item in list.trusted_certificates.iter().chain(&list.trusted_crls) {
        all.push_str(item);
        all.push('\n');
    }
    Ok(iiot_gds::pki::thumbprint(all.as_bytes()))
}

fn decode_all(items: &[String]) -> Vec<Vec<u8>> {
    items
        .iter()
        .filter_map(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .collect()
}

/// The request is the registrant's: the person who set up the target asked for what it
/// pushes, so the requester ≠ approver rule keeps them from approving it themselves.
fn requester(target: &PushTargetRow) -> Principal {
    let name = target.updated_by.as_ref().unwrap_or(&target.created_by);
    Principal::new(name.clone(), [Role::Writer])
}

fn build_client(identity: &PushIdentity) -> std::result::Result<Client, Failure> {
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

async fn progress(vault: &Vault, job: &mut PushJobRow, step: &str) -> Result<()> {
    job.step = step.to_owned();
    job.updated_at = now();
    vault.store.update_push_job(job).await
}

/// Runs `job` against `target` as far as it can go now.
pub async fn run(
    vault: &Arc<Vault>,
    identity: &PushIdentity,
    target: &PushTargetRow,
    job: &mut PushJobRow,
) -> std::result::Result<Outcome, Failure> {
    let wants_certificate = job.reason != PushReason::TrustList;
    // A job waiting for approval goes on only once the request is decided.
    let mut issued = None;
    if let Some(id) = job.request_id.clone() {
        let request = vault
            .request(&id)
            .await
            .map_err(|e| Failure::vault("approval", e))?;
        match request.state {
            CertificateRequestState::New => return Ok(Outcome::Waiting),
            CertificateRequestState::Approved | CertificateRequestState::Accepted => {
                issued = Some(request)
            }
            other => {
                return Err(Failure::new(
                    "approval",
                    format!("request {id} was {}", other.as_str()),
                ))
            }
        }
    }

    progress(vault, job, "connect")
        .await
        .map_err(|e| Failure::vault("connect", e))?;
    let password = vault
        .push_password(target)
        .map_err(|e| Failure::vault("connect", e))?;
    let trust = vault
        .trust_list(&target.group_id, None)
        .await
        .map_err(|e| Failure::vault("trustList", e))?;
    let vault_cas = decode_all(&trust.trusted_certificates);
    let mut client = build_client(identity)?;
    let presented = server_trust::presented_certificate(&client, &target.endpoint_url).await?;
    server_trust::admit(
        &identity.pki_dir,
        &presented,
        target.server_thumbprint.as_deref(),
        &vault_cas,
    )?;
    let open = session::open(
        &mut client,
        &target.endpoint_url,
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
    let result = push_over(vault, target, job, &push, issued, wants_certificate, trust).await;
    open.close().await;
    let pushed = match result? {
        Pushed::Waiting => return Ok(Outcome::Waiting),
        Pushed::Done(pushed) => pushed,
    };

    let certificate = match pushed {
        Some((der, serial, not_after)) => {
            progress(vault, job, "verify")
                .await
                .map_err(|e| Failure::vault("verify", e))?;
            verify(identity, target, &password, &der).await?;
            Some((serial, not_after))
        }
        None => None,
    };
    let crl_mark = crl_mark(vault, &target.group_id)
        .await
        .map_err(|e| Failure::vault("done", e))?;
    Ok(Outcome::Done {
        certificate,
        crl_mark,
    })
}

/// What the steps on the session got to.
enum Pushed {
    /// The new request waits for an approver: nothing was changed on the server.
    Waiting,
    /// The certificate pushed (DER, serial, notAfter), if one was.
    Done(Option<(Vec<u8>, String, i64)>),
}

/// The steps on the open session.
async fn push_over(
    vault: &Arc<Vault>,
    target: &PushTargetRow,
    job: &mut PushJobRow,
    push: &PushClient,
    issued: Option<crate::store::RequestRow>,
    wants_certificate: bool,
    trust: crate::model::TrustList,
) -> std::result::Result<Pushed, Failure> {
    let mut pushed = None;
    if wants_certificate {
        let request = match issued {
            Some(r) => r,
            None => {
                progress(vault, job, "createSigningRequest")
                    .await
                    .map_err(|e| Failure::vault("createSigningRequest", e))?;
                let csr = push
                    .create_signing_request(target.regenerate_key)
                    .await
                    .map_err(|e| Failure::push("createSigningRequest", e))?;
                let id = vault
                    .submit_signing_request(
                        &requester(target),
                        &StartSigningRequest {
                            entity_id: target.application_id.clone(),
                            group_id: target.group_id.clone(),
                            certificate_type_id: None,
                            certificate_request: base64::engine::general_purpose::STANDARD
                                .encode(&csr),
                        },
                    )
                    .await
                    .map_err(|e| Failure::vault("createSigningRequest", e))?;
                job.request_id = Some(id.clone());
                progress(vault, job, "approval")
                    .await
                    .map_err(|e| Failure::vault("approval", e))?;
                let request = vault
                    .request(&id)
                    .await
                    .map_err(|e| Failure::vault("approval", e))?;
                if request.state == CertificateRequestState::New {
                    return Ok(Pushed::Waiting);
                }
                request
            }
        };
        progress(vault, job, "updateCertificate")
            .await
            .map_err(|e| Failure::vault("updateCertificate", e))?;
        // Collecting the certificate accepts the request, as a pull client's fetch does.
        let fetched = vault
            .fetch(
                &requester(target),
                &request.id,
                CertificateRequestType::SigningRequest,
                None,
            )
            .await
            .map_err(|e| Failure::vault("updateCertificate", e))?;
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
        push.update_certificate(&der, &issuer, None)
            .await
            .map_err(|e| Failure::push("updateCertificate", e))?;
        job.cert_serial = fetched
            .certificate
            .as_ref()
            .map(|c| c.serial_number.clone());
        job.thumbprint = Some(iiot_gds::pki::thumbprint(&der));
        let not_after = request.not_after.unwrap_or(0);
        pushed = Some((der, job.cert_serial.clone().unwrap_or_default(), not_after));
    }

    progress(vault, job, "trustList")
        .await
        .map_err(|e| Failure::vault("trustList", e))?;
    let lists = TrustLists {
        trusted_certificates: decode_all(&trust.trusted_certificates),
        trusted_crls: decode_all(&trust.trusted_crls),
        issuer_certificates: decode_all(&trust.issuer_certificates),
        issuer_crls: decode_all(&trust.issuer_crls),
    };
    push_trust_list(push, job, &lists).await?;

    progress(vault, job, "applyChanges")
        .await
        .map_err(|e| Failure::vault("applyChanges", e))?;
    push.apply_changes()
        .await
        .map_err(|e| Failure::push("applyChanges", e))?;
    Ok(Pushed::Done(pushed))
}

/// Replaces the server's trust list with the group's (CAs and CRLs); a server that cannot
/// replace its list, or silently keeps it (node-opcua 2.157), gets the CA certificates by
/// AddCertificate, without CRLs.
async fn push_trust_list(
    push: &PushClient,
    job: &mut PushJobRow,
    lists: &TrustLists,
) -> std::result::Result<(), Failure> {
    let written = push.write_trust_list(lists, ALL).await;
    let replaced = match written {
        // node-opcua 2.157 answers CloseAndUpdate Good without its output argument (and does
        // nothing): what the server holds decides, not what it said.
        Ok(_) | Err(PushError::Answer(_)) => {
            let back = push
                .read_trust_list(ALL)
                .await
                .map_err(|e| Failure::push("trustList", e))?;
            lists
                .trusted_crls
                .iter()
                .all(|crl| back.trusted_crls.contains(crl))
                && lists
                    .trusted_certificates
                    .iter()
                    .all(|c| back.trusted_certificates.contains(c))
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
            false
        }
        Err(e) => return Err(Failure::push("trustList", e)),
    };
    if replaced {
        job.trust_list_mode = Some("replaced".into());
        job.crls_pushed = !lists.trusted_crls.is_empty();
        return Ok(());
    }
    for ca in &lists.trusted_certificates {
        push.add_certificate(ca, true)
            .await
            .map_err(|e| Failure::push("trustList", e))?;
    }
    job.trust_list_mode = Some("addCertificate".into());
    job.crls_pushed = false;
    Ok(())
}

/// Reconnects until the server presents `der`, then opens a SignAndEncrypt session, which
/// proves the server holds its key.
async fn verify(
    identity: &PushIdentity,
    target: &PushTargetRow,
    password: &str,
    der: &[u8],
) -> std::result::Result<(), Failure> {
    let deadline = Instant::now() + VERIFY_TIMEOUT;
    let client = build_client(identity)?;
    loop {
        match server_trust::presented_certificate(&client, &target.endpoint_url).await {
            Ok(presented) if presented == der => break,
            Ok(_) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(presented) => {
                return Err(Failure::new(
                    "verify",
                    format!(
                        "after ApplyChanges the server still presents {}",
                        iiot_gds::pki::thumbprint(&presented)
                    ),
                ))
            }
            Err(e) => return Err(e),
        }
    }
    let mut client = build_client(identity)?;
    let open = session::open(
        &mut client,
        &target.endpoint_url,
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
