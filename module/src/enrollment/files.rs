//! What enrollment writes into the module's PKI folder, and the CSR it sends.
//!
//! Files this code owns start with `gds-`, so a refresh can replace exactly them and leaves
//! every certificate an operator trusted by hand alone. Each file is written beside its final
//! name and renamed over it, so the OPC UA stack never reads half a certificate.

use std::path::Path;

pub use iiot_gds::pki::PkiError as FilesError;
use iiot_gds::pki::{self, crypto, io, AltNames, OWN_CERT, OWN_KEY};
use iiot_gds::trust_list::TrustLists;
use opcua::types::NodeId;
use openssl::x509::{X509NameBuilder, X509};

use super::Identity;

const PREFIX: &str = "gds-";

/// The module's current certificate, as far as enrollment cares.
pub struct OwnCertificate {
    pub self_signed: bool,
    pub not_after: i64,
}

pub fn own_certificate(pki: &Path) -> Result<Option<OwnCertificate>, FilesError> {
    let path = pki.join(OWN_CERT);
    let der = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FilesError::Io(path, e)),
    };
    let cert = X509::from_der(&der).map_err(crypto("own certificate"))?;
    let self_signed = cert.issuer_name().to_der().ok() == cert.subject_name().to_der().ok();
    Ok(Some(OwnCertificate {
        self_signed,
        not_after: pki::unix_time(cert.not_after())?,
    }))
}

/// Where the key of a request waiting for approval is kept until its certificate arrives.
const PENDING_KEY: &str = "private/gds-pending-key.pem";

/// A DER PKCS#10 request for a new key (every certificate gets its own key, so a renewal after
/// a revocation or a stricter key size never re-certifies the old one), with the application
/// URI and host name in the subjectAltName (the GDS refuses a URI other than the registered
/// one). The key waits in `private/` until the certificate arrives; an existing pending key is
/// reused, so a restart keeps the key of the request it asks about.
pub fn csr(pki_dir: &Path, identity: &Identity) -> Result<Vec<u8>, FilesError> {
    let key = match pki::read_private_key(&pki_dir.join(PENDING_KEY))? {
        Some(k) => k,
        None => {
            let key = pki::new_rsa_key(2048)?;
            pki::write_private_key(&pki_dir.join(PENDING_KEY), &key)?;
            key
        }
    };
    let mut name = X509NameBuilder::new().map_err(crypto("CSR"))?;
    name.append_entry_by_text("CN", &identity.application_name)
        .map_err(crypto("CSR subject"))?;
    let names = AltNames {
        uris: vec![identity.application_uri.clone()],
        dns: vec![identity.host.clone()],
        ips: Vec::new(),
    };
    pki::signing_request(&key, &name.build(), &names)
}

/// Gives the module a new key and a self-signed certificate, dropping any pending request's
/// key: what it must do when the GDS refuses its certificate (revoked or expired), since a
/// refused certificate cannot open the session that would renew it.
pub fn start_over(pki: &Path, identity: &Identity) -> Result<(), FilesError> {
    use opcua::crypto::{CertificateStore, X509Data};
    use opcua::types::{ApplicationDescription, LocalizedText};
    let description = ApplicationDescription {
        application_uri: identity.application_uri.as_str().into(),
        application_name: LocalizedText::new("", &identity.application_name),
        product_uri: identity.product_uri.as_str().into(),
        ..Default::default()
    };
    let data = X509Data::from((description, Some(vec![identity.host.clone()])));
    CertificateStore::create_certificate_and_key(
        &data,
        true,
        &pki.join(OWN_CERT),
        &pki.join(OWN_KEY),
    )
    .map_err(FilesError::Invalid)?;
    let _ = std::fs::remove_file(pki.join(PENDING_KEY));
    clear_pending_request(pki)
}

/// Where the id of a request waiting for approval is kept, in the PKI root (which the stack
/// does not read).
const PENDING: &str = "gds-pending-request";

/// The request waiting for approval, if one was sent, as a NodeId of the GDS namespace
/// `namespace` (its index may differ from when it was saved).
pub fn pending_request(pki: &Path, namespace: u16) -> Result<Option<NodeId>, FilesError> {
    let path = pki.join(PENDING);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FilesError::Io(path, e)),
    };
    match text.trim().parse::<NodeId>() {
        Ok(mut id) => {
            id.namespace = namespace;
            Ok(Some(id))
        }
        Err(_) => {
            let _ = std::fs::remove_file(&path);
            Ok(None)
        }
    }
}

pub fn save_pending_request(pki: &Path, request: &NodeId) -> Result<(), FilesError> {
    pki::write_atomically(&pki.join(PENDING), request.to_string().as_bytes())
}

pub fn clear_pending_request(pki: &Path) -> Result<(), FilesError> {
    let path = pki.join(PENDING);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FilesError::Io(path, e)),
    }
}

/// What an installed certificate is.
pub struct Installed {
    pub serial: String,
    pub not_after: i64,
}

/// Installs an issued certificate with the key it was requested for: the pending key when
/// there is one (it becomes the module's key), else the module's own key. A certificate for
/// any other key is refused, as it would lock the module out. The key is written before the
/// certificate; a channel opened between the two renames fails once and is retried.
pub fn install_certificate(pki_dir: &Path, der: &[u8]) -> Result<Installed, FilesError> {
    let cert = X509::from_der(der).map_err(crypto("issued certificate"))?;
    let cert_key = cert.public_key().map_err(crypto("issued certificate"))?;
    let pending = pki::read_private_key(&pki_dir.join(PENDING_KEY))?;
    let own = pki::read_private_key(&pki_dir.join(OWN_KEY))?;
    match (&pending, &own) {
        (Some(k), _) if cert_key.public_eq(k) => {
            pki::write_private_key(&pki_dir.join(OWN_KEY), k)?;
        }
        (_, Some(k)) if cert_key.public_eq(k) => {}
        _ => {
            return Err(FilesError::Invalid(
                "the issued certificate is for none of the module's keys".into(),
            ))
        }
    }
    pki::write_atomically(&pki_dir.join(OWN_CERT), der)?;
    let _ = std::fs::remove_file(pki_dir.join(PENDING_KEY));
    let serial = cert
        .serial_number()
        .to_bn()
        .and_then(|b| b.to_hex_str().map(|s| s.to_string()))
        .map_err(crypto("serial"))?;
    Ok(Installed {
        serial,
        not_after: pki::unix_time(cert.not_after())?,
    })
}

/// SHA-1 of the DER, the file name the stack's own stores use.
fn file_name(der: &[u8], extension: &str) -> String {
    format!("{PREFIX}{}.{extension}", pki::thumbprint(der))
}

/// Replaces the `gds-` files of one folder with `items`.
fn replace_folder(dir: &Path, items: &[Vec<u8>], extension: &str) -> Result<usize, FilesError> {
    pki::replace_folder(
        dir,
        items,
        |d| Ok(file_name(d, extension)),
        |n| n.starts_with(PREFIX),
    )
}

/// Installs the GDS trust list: trusted CAs and their CRLs into `trusted/` and `trusted/crl/`,
/// issuers into `issuer/` and `issuer/crl/`. Answers (certificates, CRLs) installed.
pub fn install_trust_lists(pki: &Path, lists: &TrustLists) -> Result<(usize, usize), FilesError> {
    for der in lists
        .trusted_certificates
        .iter()
        .chain(&lists.issuer_certificates)
    {
        pki::check_der(der, false)?;
    }
    for der in lists.trusted_crls.iter().chain(&lists.issuer_crls) {
        pki::check_der(der, true)?;
    }
    let certs = replace_folder(&pki.join("trusted"), &lists.trusted_certificates, "der")?
        + replace_folder(&pki.join("issuer"), &lists.issuer_certificates, "der")?;
    let crls = replace_folder(&pki.join("trusted/crl"), &lists.trusted_crls, "crl")?
        + replace_folder(&pki.join("issuer/crl"), &lists.issuer_crls, "crl")?;
    Ok((certs, crls))
}

/// Installs a first-contact trust file (`--gds-trust`): each certificate into `trusted/`, each
/// CRL into `trusted/crl/`, PEM (any number of blocks) or a single DER certificate.
pub fn install_trust_file(pki: &Path, path: &Path) -> Result<(), FilesError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let mut certs = Vec::new();
    let mut crls = Vec::new();
    if bytes.starts_with(b"-----BEGIN") {
        certs = X509::stack_from_pem(&bytes)
            .map_err(crypto("trust file"))?
            .into_iter()
            .map(|c| c.to_der())
            .collect::<Result<_, _>>()
            .map_err(crypto("trust file"))?;
        let text = String::from_utf8_lossy(&bytes);
        for block in text.split("-----BEGIN X509 CRL-----").skip(1) {
            let pem = format!("-----BEGIN X509 CRL-----{block}");
            let crl = openssl::x509::X509Crl::from_pem(pem.as_bytes())
                .map_err(crypto("trust file CRL"))?;
            crls.push(crl.to_der().map_err(crypto("trust file CRL"))?);
        }
    } else {
        certs.push(
            X509::from_der(&bytes)
                .map_err(crypto("trust file"))?
                .to_der()
                .map_err(crypto("trust file"))?,
        );
    }
    if certs.is_empty() {
        return Err(FilesError::Invalid(format!(
            "{}: no certificate in the --gds-trust file",
            path.display()
        )));
    }
    for (dir, items, extension) in [("trusted", &certs, "der"), ("trusted/crl", &crls, "crl")] {
        let dir = pki.join(dir);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        for der in items {
            // Certificates under the stack's own file name, or trusting one by its file (a
            // GDS server certificate, which has no CRL beside it) does not work; neither
            // starts with `gds-`, so trust list refreshes leave them alone.
            let name = if extension == "der" {
                pki::stack_file_name(der)?
            } else {
                format!("first-{}", file_name(der, extension))
            };
            pki::write_atomically(&dir.join(name), der)?;
        }
    }
    Ok(())
}
