//! X.509 devices at CONNECT: `selfSigned` identities by the thumbprint of the certificate
//! they presented, `certificateAuthority` identities by a chain to a CA the hub trusts (the
//! vault's among them; CRLs checked) whose leaf names the identity in its CN.
//!
//! The trusted CAs and CRLs are one PEM file (`--hub-trust`), read again when it changes, so
//! a CRL the vault publishes takes effect without a restart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sha1::Digest;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use tokio_rustls::rustls::server::danger::ClientCertVerifier;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::RootCertStore;

use crate::hub::identity::{AuthType, Identity};

/// How often the trust file's modification time is looked at.
const RECHECK: Duration = Duration::from_secs(2);

/// The CAs `certificateAuthority` devices chain to.
pub struct Trust {
    path: Option<PathBuf>,
    cache: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    checked: Option<Instant>,
    modified: Option<SystemTime>,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
}

/// SHA-1 and SHA-256 thumbprints, upper-case hex, as IoT Hub shows them.
pub fn thumbprints(der: &[u8]) -> (String, String) {
    (
        hex::encode_upper(sha1::Sha1::digest(der)),
        hex::encode_upper(sha2::Sha256::digest(der)),
    )
}

/// The subject CN of a certificate.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

impl Trust {
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            cache: Mutex::new(Cached::default()),
        }
    }

    fn load(path: &PathBuf) -> Result<Arc<dyn ClientCertVerifier>, String> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(path).map_err(|e| e.to_string())? {
            roots
                .add(c.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let crls: Vec<CertificateRevocationListDer<'static>> =
            CertificateRevocationListDer::pem_file_iter(path)
                .map_err(|e| e.to_string())?
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), super::certs::provider())
            .with_crls(crls)
            // A CA that publishes no CRL in the file is not a reason to refuse its devices;
            // one that does is checked.
            .allow_unknown_revocation_status()
            .build()
            .map_err(|e| e.to_string())
    }

    /// The verifier for the file as it is now (reloaded when it changed).
    fn verifier(&self) -> Option<Arc<dyn ClientCertVerifier>> {
        let path = self.path.as_ref()?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let due = cache.checked.is_none_or(|t| t.elapsed() >= RECHECK);
        if due {
            cache.checked = Some(Instant::now());
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            if modified != cache.modified || cache.verifier.is_none() {
                match Self::load(path) {
                    Ok(v) => {
                        cache.verifier = Some(v);
                        cache.modified = modified;
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "hub: cannot read the trusted CAs; certificateAuthority devices are refused");
                        cache.verifier = None;
                        cache.modified = modified;
                    }
                }
            }
        }
        cache.verifier.clone()
    }

    /// Whether `chain` (DER, leaf first) proves `identity`.
    pub fn matches(&self, identity: &Identity, chain: &[Vec<u8>]) -> bool {
        let Some(leaf) = chain.first() else {
            return false;
        };
        match identity.desc.auth_type {
            AuthType::SelfSigned => {
                let (sha1, sha256) = thumbprints(leaf);
                [
                    &identity.desc.primary_thumbprint,
                    &identity.desc.secondary_thumbprint,
                ]
                .into_iter()
                .flatten()
                .any(|t| *t == sha1 || *t == sha256)
            }
            AuthType::CertificateAuthority => {
                let Some(verifier) = self.verifier() else {
                    return false;
                };
                let end = CertificateDer::from(leaf.as_slice());
                let intermediates: Vec<CertificateDer<'_>> = chain[1..]
                    .iter()
                    .map(|c| CertificateDer::from(c.as_slice()))
                    .collect();
                if let Err(e) = verifier.verify_client_cert(&end, &intermediates, UnixTime::now()) {
                    tracing::info!(device = %identity.device_id, error = %e, "hub: client certificate refused");
                    return false;
                }
                // A module's certificate names its device too: module names repeat across
                // gateways, so a CN of `opcpublisher` alone would fit every gateway's.
                let want = if identity.is_module() {
                    format!("{}/{}", identity.device_id, identity.module_id)
                } else {
                    identity.device_id.clone()
                };
                common_name(leaf).as_deref() == Some(want.as_str())
            }
            AuthType::Sas | AuthType::None => false,
        }
    }
}
