//! The module enrolls itself with a Global Discovery Server (OPC UA Part 12 pull model,
//! `--gds-url`): it registers its application, sends a CSR made from its own key with
//! StartSigningRequest, asks FinishRequest until an approver has decided, installs the
//! certificate and the group's trust list (CA certificates and their CRLs) into its PKI, and
//! then, every refresh interval, renews inside the renewal window (GetCertificateStatus) and
//! fetches fresh CRLs.
//!
//! The OPC UA stack reads the own certificate and key from the PKI folder at every new secure
//! channel, so sessions opened after an installation present the new certificate. Every
//! request is for a new key, which replaces the old one when its certificate arrives. When the
//! GDS refuses the module's certificate (revoked or expired), the module makes a new key and a
//! self-signed certificate and enrolls again.
//!
//! - `files`: what is written into the PKI (certificate, trust list files, CSR).
//! - `status`: the state `/metrics` reports.

mod files;
pub(crate) mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use iiot_gds::client::{GdsClient, GdsError};
use iiot_gds::record::ApplicationRecord;
use iiot_gds::session::{self, ConnectError};
use opcua::client::{Client, ClientBuilder};
use opcua::types::{LocalizedText, NodeId, ObjectTypeId, StatusCode};
use tokio::sync::watch;
use tracing::{error, info, warn};

pub use status::{EnrollmentStatus, Phase};

/// How the module reaches its GDS (`--gds-*`).
#[derive(Clone)]
pub struct GdsSettings {
    /// `opc.tcp://host:port/` of the GDS.
    pub url: String,
    /// The GDS user name (a vault API key's name) and password (the key).
    pub user: String,
    pub password: String,
    /// Certificates (and CRLs) to trust for the first contact with the GDS: its server
    /// certificate, or its CA with the CA's CRL. PEM or DER, installed into the PKI at start.
    pub trust: Vec<PathBuf>,
    /// Time between FinishRequest calls while a request waits for approval.
    pub poll_interval: Duration,
    /// Time between renewal checks and trust list (CRL) refreshes.
    pub refresh_interval: Duration,
}

/// Never prints the password.
impl std::fmt::Debug for GdsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GdsSettings")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &"***")
            .field("trust", &self.trust)
            .field("poll_interval", &self.poll_interval)
            .field("refresh_interval", &self.refresh_interval)
            .finish()
    }
}

/// Who the module is to the GDS.
#[derive(Debug, Clone)]
pub struct Identity {
    pub application_uri: String,
    pub application_name: String,
    pub product_uri: String,
    /// Host name written into the CSR's subjectAltName.
    pub host: String,
    pub pki_dir: PathBuf,
}

/// After a failure, the next attempt waits this long (at most the refresh interval).
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// What a server answers when the module's own certificate is revoked or expired (or its CA
/// is): the module can then only start over with a new key.
const REFUSED_OWN_CERTIFICATE: [StatusCode; 4] = [
    StatusCode::BadCertificateRevoked,
    StatusCode::BadCertificateTimeInvalid,
    StatusCode::BadCertificateIssuerRevoked,
    StatusCode::BadCertificateIssuerTimeInvalid,
];
/// How long opening the GDS session may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const CERTIFICATE_TYPE: ObjectTypeId = ObjectTypeId::RsaSha256ApplicationCertificateType;

/// Why one enrollment round stopped.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("GDS: {0}")]
    Gds(#[from] GdsError),
    #[error("connecting to the GDS: {0}")]
    Connect(String),
    /// The GDS refused the module's own certificate when the session was opened.
    #[error("the GDS refused the module's certificate: {0}")]
    Refused(StatusCode),
    #[error("the GDS rejected signing request {0}")]
    Rejected(String),
    #[error("PKI: {0}")]
    Files(#[from] files::FilesError),
    #[error("stopped")]
    Stopped,
}

/// Installs the first-contact trust and runs enrollment until `stop`.
pub fn spawn(
    settings: GdsSettings,
    identity: Identity,
    status: Arc<EnrollmentStatus>,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    for path in &settings.trust {
        files::install_trust_file(&identity.pki_dir, path).map_err(|e| e.to_string())?;
    }
    Ok(tokio::spawn(run(settings, identity, status, stop)))
}

async fn run(
    settings: GdsSettings,
    identity: Identity,
    status: Arc<EnrollmentStatus>,
    mut stop: watch::Receiver<bool>,
) {
    if let Err(e) = build_client(&identity) {
        status.failed(&e);
        error!(error = %e, "GDS enrollment cannot start");
        return;
    }
    info!(url = %settings.url, "GDS enrollment started");
    loop {
        let wait = match round(&settings, &identity, &status, &mut stop).await {
            Ok(()) => settings.refresh_interval,
            Err(RoundError::Stopped) => return,
            Err(e @ RoundError::Refused(_)) => {
                status.failed(&e.to_string());
                warn!(error = %e, "starting over with a new key and a self-signed certificate");
                match files::start_over(&identity.pki_dir, &identity) {
                    // At once: nothing is gained by waiting, and the module has no usable
                    // certificate until it enrolls again.
                    Ok(()) => std::time::Duration::ZERO,
                    Err(e) => {
                        error!(error = %e, "cannot make a new key");
                        RETRY_AFTER
                    }
                }
            }
            // Not again before an operator had time to look: a new request every few seconds
            // would flood the approvers.
            Err(e @ RoundError::Rejected(_)) => {
                status.failed(&e.to_string());
                warn!(error = %e, "GDS refused the module's certificate request");
                settings.refresh_interval
            }
            Err(e) => {
                status.failed(&e.to_string());
                warn!(error = %e, "GDS enrollment round failed; will retry");
                RETRY_AFTER.min(settings.refresh_interval)
            }
        };
        if sleep_or_stop(wait, &mut stop).await {
            return;
        }
    }
}

/// `true` when stopped.
async fn sleep_or_stop(wait: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    stopped || *stop.borrow()
}

/// A client of its own on the module's PKI folder: it presents the module's certificate and
/// trusts what the module trusts (no auto-accept).
fn build_client(identity: &Identity) -> Result<Client, String> {
    ClientBuilder::new()
        .application_name(identity.application_name.clone())
        .application_uri(identity.application_uri.clone())
        .product_uri(identity.product_uri.clone())
        .pki_dir(&identity.pki_dir)
        .create_sample_keypair(true)
        .trust_server_certs(false)
        .verify_server_certs(true)
        .session_retry_limit(0)
        .session_timeout(60_000)
        .session_name("iiot module GDS enrollment")
        .client()
        .map_err(|e| format!("GDS client: {}", e.join("; ")))
}

/// One connection: register if needed, enroll if needed, refresh the trust list.
async fn round(
    settings: &GdsSettings,
    identity: &Identity,
    status: &EnrollmentStatus,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), RoundError> {
    let mut client = build_client(identity).map_err(RoundError::Connect)?;
    let open = session::open(
        &mut client,
        &settings.url,
        &settings.user,
        &settings.password,
        CONNECT_TIMEOUT,
    )
    .await
    .map_err(|e| match e {
        ConnectError::Refused(status) if REFUSED_OWN_CERTIFICATE.contains(&status) => {
            RoundError::Refused(status)
        }
        other => RoundError::Connect(other.to_string()),
    })?;
    let result = async {
        let gds = GdsClient::new(open.session.clone()).await?;
        enroll(&gds, settings, identity, status, stop).await
    }
    .await;
    open.close().await;
    result
}

async fn enroll(
    gds: &GdsClient,
    settings: &GdsSettings,
    identity: &Identity,
    status: &EnrollmentStatus,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), RoundError> {
    let app = application_id(gds, identity).await?;
    let group = gds.application_group();
    // CRLs first: a request may wait for approval longer than a CRL lives, and a module with
    // expired CRLs refuses every server whose certificate chains to the CA (fail closed).
    refresh_trust_list(gds, &app, &group, identity, status).await?;
    let pki = &identity.pki_dir;
    let request = match files::pending_request(pki, gds.namespace())? {
        Some(request) => request,
        None => {
            let own = files::own_certificate(pki)?;
            let self_signed = own.as_ref().is_none_or(|c| c.self_signed);
            if !self_signed && !gds.update_required(&app, &group, CERTIFICATE_TYPE).await? {
                if let Some(c) = own {
                    status.enrolled(c.not_after);
                }
                return Ok(());
            }
            let csr = files::csr(pki, identity)?;
            let request = gds
                .start_signing_request(&app, &group, CERTIFICATE_TYPE, &csr)
                .await?;
            // Kept, so a later round (or a restart) asks about this request instead of
            // submitting another one to the approvers.
            files::save_pending_request(pki, &request)?;
            info!(%request, "GDS signing request sent; waiting for approval");
            request
        }
    };
    status.set(Phase::WaitingForApproval);
    // One round waits at most a refresh interval; the next refreshes the CRLs and asks again.
    let deadline = tokio::time::Instant::now() + settings.refresh_interval;
    let finished = loop {
        match gds.finish_request(&app, &request).await {
            Ok(Some(f)) => break f,
            Ok(None) => {}
            Err(e) if e.status() == Some(StatusCode::BadRequestNotAllowed) => {
                files::clear_pending_request(pki)?;
                status.set(Phase::Rejected);
                return Err(RoundError::Rejected(request.to_string()));
            }
            Err(e)
                if matches!(
                    e.status(),
                    Some(StatusCode::BadNotFound | StatusCode::BadInvalidArgument)
                ) =>
            {
                // Not a request of this application (any more): start over next round.
                files::clear_pending_request(pki)?;
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        if sleep_or_stop(settings.poll_interval, stop).await {
            return Err(RoundError::Stopped);
        }
    };
    let installed = files::install_certificate(pki, &finished.certificate)?;
    files::clear_pending_request(pki)?;
    status.enrolled(installed.not_after);
    info!(
        serial = %installed.serial,
        not_after = installed.not_after,
        "GDS certificate installed"
    );
    Ok(())
}

async fn refresh_trust_list(
    gds: &GdsClient,
    app: &NodeId,
    group: &NodeId,
    identity: &Identity,
    status: &EnrollmentStatus,
) -> Result<(), RoundError> {
    let lists = gds.trust_list(app, group).await?;
    let (certificates, crls) = files::install_trust_lists(&identity.pki_dir, &lists)?;
    status.trust_list_refreshed();
    info!(certificates, crls, "GDS trust list installed");
    Ok(())
}

/// The module's application id at the GDS, registering it the first time.
async fn application_id(gds: &GdsClient, identity: &Identity) -> Result<NodeId, RoundError> {
    let found = gds.find_applications(&identity.application_uri).await?;
    if let Some(r) = found.first() {
        return Ok(r.application_id.clone());
    }
    let record = ApplicationRecord {
        application_id: NodeId::null(),
        application_uri: identity.application_uri.as_str().into(),
        // Client: the module calls OPC UA servers; it serves none.
        application_type: 1,
        application_names: vec![LocalizedText::new("en", &identity.application_name)],
        product_uri: identity.product_uri.as_str().into(),
        discovery_urls: Vec::new(),
        server_capabilities: Vec::new(),
    };
    let id = gds.register_application(&record).await?;
    info!(application = %id, uri = %identity.application_uri, "registered with the GDS");
    Ok(id)
}
