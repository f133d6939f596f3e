//! The vault's OPC UA face: a Global Discovery Server (OPC UA Part 12, pull model) on our
//! async-opcua stack, beside the REST API and calling the same service.
//!
//! - `nodes`: the address space, built from the GDS NodeSet's ids (`iiot-gds`, the contract
//!   crate the module's enrollment client shares).
//! - `access`: user name = API key name, password = the key; ApplicationSelfAdmin by the
//!   channel's vault-issued certificate.
//! - `directory`: the method implementations; `records`, `args`, `trust_file`, `status`: the
//!   conversions they need.
//!
//! The endpoint admits client certificates it does not trust (an application comes here to
//! become trusted: our async-opcua patch `admit_untrusted_client_certs`), still refusing one
//! that chains to the vault's CA and is revoked, and authorises by identity. Its own
//! certificate is issued by the vault's DefaultApplicationGroup RSA CA.

mod access;
mod args;
mod directory;
mod nodes;
mod records;
mod status;
mod trust_file;

pub use iiot_gds::{ids, GDS_NAMESPACE_URI};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iiot_auth::ApiKeys;
use opcua::{
    crypto::SecurityPolicy,
    server::{
        address_space::{add_namespaces, AddressSpace},
        node_manager::{memory::InMemoryNodeManagerBuilder, ServerContext},
        ServerBuilder, ServerEndpoint, ServerHandle, ANONYMOUS_USER_TOKEN_ID,
    },
    types::MessageSecurityMode,
};
use tokio::task::JoinHandle;

pub use directory::GdsNodeManager;
pub use nodes::{APPROVE_REQUEST, REJECT_REQUEST, VAULT_NAMESPACE_URI};

use crate::error::{Result, VaultError};
use crate::service::Vault;

/// Default port of the OPC UA face (DESIGN.md; 4840 is left to the discovery server).
pub const DEFAULT_OPCUA_PORT: u16 = 4842;
/// The OPC UA application name of the GDS face (and of the push engine, the same application).
pub const APPLICATION_NAME: &str = "iiot vault GDS";
const PRODUCT_URI: &str = "urn:iiot:vault";
const OWN_CERT: &str = "own/cert.der";
const OWN_KEY: &str = "private/private.pem";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Where and under which name the OPC UA face listens.
#[derive(Debug, Clone)]
pub struct GdsConfig {
    pub bind: SocketAddr,
    /// Host name in the endpoint URL and the server certificate; clients check it.
    pub hostname: String,
}

impl GdsConfig {
    /// The application URI: the host is part of it, so two vaults are two applications.
    pub fn application_uri(&self) -> String {
        format!("{PRODUCT_URI}:gds:{}", self.hostname)
    }
}

/// A running OPC UA face.
pub struct GdsEndpoint {
    url: String,
    port: u16,
    pki_dir: PathBuf,
    handle: ServerHandle,
    task: Option<JoinHandle<std::result::Result<(), String>>>,
    trust_sync: JoinHandle<()>,
}

impl GdsEndpoint {
    /// `opc.tcp://{hostname}:{port}/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Brings the endpoint's own trust store up to date with the vault's CAs and CRLs.
    pub async fn sync_trust(&self, vault: &Vault) -> Result<()> {
        sync_trust_store(vault, &self.pki_dir).await
    }

    /// Stops the server and waits (a bounded time) for its connections to close.
    pub async fn shutdown(mut self) {
        self.trust_sync.abort();
        self.handle.cancel();
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for GdsEndpoint {
    fn drop(&mut self) {
        self.trust_sync.abort();
        self.handle.cancel();
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

fn io(path: &Path, e: impl std::fmt::Display) -> VaultError {
    VaultError::Config(format!("{}: {e}", path.display()))
}

/// Starts the GDS on `config.bind`, its PKI in `<data_dir>/gds-pki`.
pub async fn start(
    vault: Arc<Vault>,
    keys: ApiKeys,
    config: &GdsConfig,
    data_dir: &Path,
) -> Result<GdsEndpoint> {
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| {
            VaultError::Config(format!(
                "cannot listen on {} for OPC UA: {e} (choose another --opcua-port)",
                config.bind
            ))
        })?;
    let port = listener.local_addr()?.port();
    let url = format!("opc.tcp://{}:{port}/", config.hostname);
    let pki_dir = data_dir.join("gds-pki");
    prepare_pki(&vault, config, &pki_dir).await?;

    let (server, handle) = {
        let (vault, config, pki_dir, url) =
            (vault.clone(), config.clone(), pki_dir.clone(), url.clone());
        // The stack's core namespace takes a while to build in unoptimised builds.
        tokio::task::spawn_blocking(move || {
            build_server(vault, keys, &config, &pki_dir, &url, port)
        })
        .await
        .map_err(|e| VaultError::Config(format!("OPC UA server build: {e}")))??
    };
    let task = tokio::spawn(server.run_with(listener));
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    // async-opcua sets the port right before its accept loop (see plc-sim's server.rs).
    while handle.info().port.load(Ordering::Relaxed) == 0 {
        if task.is_finished() || Instant::now() > deadline {
            return Err(VaultError::Config(
                "the OPC UA server did not start listening".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let trust_sync = tokio::spawn(follow_crls(
        vault,
        config.clone(),
        pki_dir.clone(),
        handle.clone(),
    ));
    tracing::info!(%url, "vault GDS listening");
    Ok(GdsEndpoint {
        url,
        port,
        pki_dir,
        handle,
        task: Some(task),
        trust_sync,
    })
}

/// The async-opcua server with the GDS node manager and the endpoints.
fn build_server(
    vault: Arc<Vault>,
    keys: ApiKeys,
    config: &GdsConfig,
    pki_dir: &Path,
    url: &str,
    port: u16,
) -> Result<(opcua::server::Server, ServerHandle)> {
    let node_vault = vault;
    let node_keys = keys.clone();
    let node_manager =
        InMemoryNodeManagerBuilder::new(move |context: ServerContext, space: &mut AddressSpace| {
            let added = add_namespaces(
                &context,
                space,
                &[GDS_NAMESPACE_URI, nodes::VAULT_NAMESPACE_URI],
            );
            let (ns, vault_ns) = (added[0], added[1]);
            let group_types: Vec<_> = ids::GROUPS
                .iter()
                .map(|_| {
                    node_vault
                        .certificate_types()
                        .into_iter()
                        .map(directory::type_node)
                        .collect()
                })
                .collect();
            nodes::populate(space, ns, vault_ns, &group_types);
            directory::GdsNodeManagerImpl::new(node_vault.clone(), node_keys.clone(), ns, vault_ns)
        });

    let mut builder = ServerBuilder::new()
        .application_name(APPLICATION_NAME)
        .application_uri(config.application_uri())
        .product_uri(PRODUCT_URI)
        .pki_dir(pki_dir)
        .create_sample_keypair(false)
        .admit_untrusted_client_certs(true)
        .host(config.hostname.clone())
        .port(port)
        .discovery_urls(vec![url.to_string()])
        .with_authenticator(Arc::new(access::GdsAuthenticator::new(keys)))
        .with_node_manager(node_manager);
    // None carries no user token policy: discovery (FindServers, GetEndpoints) only.
    builder = builder.add_endpoint(
        "none",
        ServerEndpoint::new("/", SecurityPolicy::None, MessageSecurityMode::None, &[]),
    );
    let anonymous = [ANONYMOUS_USER_TOKEN_ID.to_owned()];
    for (name, policy) in [
        ("basic256sha256", SecurityPolicy::Basic256Sha256),
        ("aes128_sha256_rsaoaep", SecurityPolicy::Aes128Sha256RsaOaep),
        ("aes256_sha256_rsapss", SecurityPolicy::Aes256Sha256RsaPss),
    ] {
        for (suffix, mode) in [
            ("sign", MessageSecurityMode::Sign),
            ("sign_encrypt", MessageSecurityMode::SignAndEncrypt),
        ] {
            builder = builder.add_endpoint(
                format!("{name}_{suffix}"),
                ServerEndpoint::new("/", policy, mode, &anonymous),
            );
        }
    }
    let limits = builder.limits_mut();
    limits.max_sessions = 1000;
    limits.max_unactivated_sessions = 100;
    limits.max_connections = 1000;

    builder
        .build()
        .map_err(|e| VaultError::Config(format!("OPC UA server: {e}")))
}

/// Creates the PKI folders, the server's own certificate when it has none fit for use, and
/// the trust store.
async fn prepare_pki(vault: &Vault, config: &GdsConfig, pki_dir: &Path) -> Result<()> {
    for sub in [
        "own",
        "private",
        "trusted",
        "trusted/crl",
        "rejected",
        "issuer",
        "issuer/crl",
    ] {
        let dir = pki_dir.join(sub);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let private = pki_dir.join("private");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io(&private, e))?;
    }
    let uri = config.application_uri();
    let cert_path = pki_dir.join(OWN_CERT);
    let key_path = pki_dir.join(OWN_KEY);
    if let Some(why) =
        own_certificate_problem(vault, &cert_path, &key_path, &uri, &config.hostname).await
    {
        tracing::info!(reason = %why, "issuing the GDS server certificate");
        let mut hosts = vec![config.hostname.clone()];
        if !config.bind.ip().is_unspecified() && config.bind.ip().to_string() != config.hostname {
            hosts.push(config.bind.ip().to_string());
        }
        match vault
            .issue_server_certificate(&uri, APPLICATION_NAME, &hosts)
            .await?
        {
            Some(issued) => {
                // Key first, each renamed into place, the key owner-only from its first byte.
                iiot_gds::pki::write_atomically_mode(
                    &key_path,
                    issued.key_pem.as_bytes(),
                    Some(0o600),
                )
                .map_err(|e| io(&key_path, e))?;
                iiot_gds::pki::write_atomically(&cert_path, &issued.cert_der)
                    .map_err(|e| io(&cert_path, e))?;
            }
            None => {
                use opcua::crypto::{CertificateStore, X509Data};
                let data = X509Data {
                    key_size: 2048,
                    common_name: APPLICATION_NAME.into(),
                    organization: "iiot".into(),
                    organizational_unit: String::new(),
                    country: String::new(),
                    state: String::new(),
                    alt_host_names: vec![uri.clone(), config.hostname.clone()].into(),
                    certificate_duration_days: 365,
                };
                CertificateStore::create_certificate_and_key(&data, true, &cert_path, &key_path)
                    .map_err(|e| io(&cert_path, e))?;
            }
        }
    }
    sync_trust_store(vault, pki_dir).await
}

/// `None` when the stored certificate and key can serve: present, for this URI and host name,
/// and not yet in the last fifth of their life.
async fn own_certificate_problem(
    vault: &Vault,
    cert_path: &Path,
    key_path: &Path,
    uri: &str,
    hostname: &str,
) -> Option<String> {
    if !cert_path.exists() || !key_path.exists() {
        return Some("none stored yet".into());
    }
    let der = match std::fs::read(cert_path) {
        Ok(d) => d,
        Err(e) => return Some(format!("unreadable: {e}")),
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return Some("not a certificate".into());
    };
    let names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(|n| n.to_string())
                .collect()
        })
        .unwrap_or_default();
    if !names.iter().any(|n| n.contains(uri)) || !names.iter().any(|n| n.contains(hostname)) {
        return Some("application URI or host name changed".into());
    }
    let (start, end) = (
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    );
    if crate::model::now() >= end - (end - start) / 5 {
        return Some("close to expiry".into());
    }
    // Issued by a CA this vault still has (not a previous database's).
    let issued_here = match vault.ca_certificates_and_crls().await {
        Ok(cas) => cas.iter().any(|(_, ca, _)| {
            openssl::x509::X509::from_der(ca)
                .ok()
                .and_then(|ca| ca.public_key().ok())
                .zip(openssl::x509::X509::from_der(&der).ok())
                .is_some_and(|(key, cert)| cert.verify(&key).unwrap_or(false))
        }),
        // Not knowing the CAs (a database hiccup) is no reason to replace a certificate.
        Err(_) => true,
    };
    let self_signed = cert.subject() == cert.issuer();
    if !issued_here && !self_signed {
        return Some("issued by a CA this vault no longer has".into());
    }
    None
}

/// How often the endpoint's own certificate is looked at between CRLs.
const OWN_CERTIFICATE_CHECK: Duration = Duration::from_secs(3600);

/// Rewrites the trust store after every CRL this process signs: a certificate revoked through
/// REST or OPC UA is refused by the next CreateSession. Then, and every hour, renews the
/// endpoint's own certificate when it is due (a vault runs for longer than a certificate
/// lives), serving the new one without a restart.
async fn follow_crls(vault: Arc<Vault>, config: GdsConfig, pki_dir: PathBuf, handle: ServerHandle) {
    let mut signed = vault.crl_signed();
    loop {
        let changed = tokio::select! {
            changed = signed.changed() => changed.is_ok(),
            _ = tokio::time::sleep(OWN_CERTIFICATE_CHECK) => false,
        };
        if changed {
            if let Err(e) = sync_trust_store(&vault, &pki_dir).await {
                tracing::error!(error = %e, "GDS trust store update failed");
            }
        }
        if let Err(e) = renew_if_due(&vault, &config, &pki_dir, &handle).await {
            tracing::error!(error = %e, "GDS server certificate renewal failed; will retry");
        }
    }
}

/// Issues the endpoint a new certificate when its own is due (close to expiry, lost, no longer
/// the vault's) and makes the running server present it (async-opcua patch `ServerKeys`).
async fn renew_if_due(
    vault: &Vault,
    config: &GdsConfig,
    pki_dir: &Path,
    handle: &ServerHandle,
) -> Result<()> {
    let (cert_path, key_path) = (pki_dir.join(OWN_CERT), pki_dir.join(OWN_KEY));
    let uri = config.application_uri();
    if own_certificate_problem(vault, &cert_path, &key_path, &uri, &config.hostname)
        .await
        .is_none()
    {
        return Ok(());
    }
    let before = std::fs::read(&cert_path).ok();
    prepare_pki(vault, config, pki_dir).await?;
    if std::fs::read(&cert_path).ok() == before {
        // Nothing was issued after all (the second look found no problem).
        return Ok(());
    }
    let cert =
        opcua::crypto::CertificateStore::read_cert(&cert_path).map_err(|e| io(&cert_path, e))?;
    let key =
        opcua::crypto::CertificateStore::read_pkey(&key_path).map_err(|e| io(&key_path, e))?;
    handle.info().set_server_keys(cert, key);
    tracing::info!("the GDS endpoint serves its renewed certificate");
    Ok(())
}

/// Writes every CA certificate of the vault into `trusted/` and its CRL into `trusted/crl/`,
/// so that a certificate the vault revoked is refused at CreateSession. Each file is written
/// outside those folders and renamed in (the stack reads every file there on each
/// validation), and files of CAs the vault no longer has are removed.
pub async fn sync_trust_store(vault: &Vault, pki_dir: &Path) -> Result<()> {
    let cas = vault.ca_certificates_and_crls().await?;
    let mut keep = Vec::new();
    for (serial, cert, crl) in &cas {
        let name = format!("vault-ca-{serial}.der");
        iiot_gds::pki::write_atomically(&pki_dir.join("trusted").join(&name), cert)
            .map_err(|e| io(pki_dir, e))?;
        keep.push(name);
        if let Some(crl) = crl {
            let name = format!("vault-ca-{serial}.crl");
            iiot_gds::pki::write_atomically(&pki_dir.join("trusted/crl").join(&name), crl)
                .map_err(|e| io(pki_dir, e))?;
            keep.push(name);
        }
    }
    for dir in ["trusted", "trusted/crl"] {
        let Ok(entries) = std::fs::read_dir(pki_dir.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("vault-ca-") && !keep.contains(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}
