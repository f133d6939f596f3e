//! The DefaultApplicationGroup's trust list as the PKI folders hold it: `trusted/` and
//! `trusted/crl/`, `issuer/` and `issuer/crl/`, which the stack reads on every new session, so
//! a change takes effect without ApplyChanges. A push replaces the lists it specifies whole:
//! the certificate manager owns the server's trust list (Part 12 §7.8.2).

use std::path::Path;

use iiot_gds::pki::{self, PkiError, ISSUER_CERTS, ISSUER_CRLS, TRUSTED_CERTS, TRUSTED_CRLS};
use iiot_gds::trust_list::{self, TrustLists};
use opcua::types::{DateTime, DateTimeUtc, StatusCode};
use tracing::{info, warn};

fn internal(e: PkiError) -> StatusCode {
    warn!(error = %e, "push: trust list folder failure");
    StatusCode::BadInternalError
}

/// The folders with the mask bit and whether they hold CRLs.
const FOLDERS: [(&str, u32, bool); 4] = [
    (TRUSTED_CERTS, trust_list::TRUSTED_CERTIFICATES, false),
    (TRUSTED_CRLS, trust_list::TRUSTED_CRLS, true),
    (ISSUER_CERTS, trust_list::ISSUER_CERTIFICATES, false),
    (ISSUER_CRLS, trust_list::ISSUER_CRLS, true),
];

fn lists_mut(lists: &mut TrustLists, bit: u32) -> &mut Vec<Vec<u8>> {
    match bit {
        trust_list::TRUSTED_CERTIFICATES => &mut lists.trusted_certificates,
        trust_list::TRUSTED_CRLS => &mut lists.trusted_crls,
        trust_list::ISSUER_CERTIFICATES => &mut lists.issuer_certificates,
        _ => &mut lists.issuer_crls,
    }
}

/// The TrustList file content holding the lists `masks` selects.
pub(crate) fn read(pki_dir: &Path, masks: u32) -> Result<Vec<u8>, StatusCode> {
    let mut lists = TrustLists::default();
    for (folder, bit, crl) in FOLDERS {
        if masks & bit != 0 {
            *lists_mut(&mut lists, bit) = pki::read_folder(&pki_dir.join(folder), crl)
                .map_err(internal)?
                .into_iter()
                .map(|(_, der)| der)
                .collect();
        }
    }
    Ok(lists.encode(masks))
}

/// When a trust list folder last changed (adding or removing a file changes its folder).
pub(crate) fn last_update(pki_dir: &Path) -> DateTime {
    FOLDERS
        .iter()
        .filter_map(|(folder, _, _)| std::fs::metadata(pki_dir.join(folder)).ok())
        .filter_map(|m| m.modified().ok())
        .max()
        .map(|t| DateTime::from(DateTimeUtc::from(t)))
        .unwrap_or_else(DateTime::null)
}

fn file_name(der: &[u8], crl: bool) -> Result<String, PkiError> {
    if crl {
        Ok(format!("{}.crl", pki::thumbprint(der)))
    } else {
        // Under the stack's own name, so a self-signed peer is trusted by its file.
        pki::stack_file_name(der)
    }
}

/// CloseAndUpdate: replaces the lists the written file specifies, after checking every
/// certificate and CRL in it (one bad entry changes nothing).
pub(crate) fn replace(pki_dir: &Path, data: &[u8]) -> Result<(), StatusCode> {
    let (masks, mut lists) =
        TrustLists::decode_specified(data).map_err(|_| StatusCode::BadDecodingError)?;
    for (_, bit, crl) in FOLDERS {
        for der in lists_mut(&mut lists, bit).iter() {
            pki::check_der(der, crl).map_err(|_| StatusCode::BadCertificateInvalid)?;
        }
    }
    for (folder, bit, crl) in FOLDERS {
        if masks & bit != 0 {
            let items = lists_mut(&mut lists, bit);
            pki::replace_folder(
                &pki_dir.join(folder),
                items,
                |d| file_name(d, crl),
                |_| true,
            )
            .map_err(internal)?;
        }
    }
    info!(
        masks,
        trusted = lists.trusted_certificates.len(),
        trusted_crls = lists.trusted_crls.len(),
        issuers = lists.issuer_certificates.len(),
        issuer_crls = lists.issuer_crls.len(),
        "push: trust list replaced"
    );
    Ok(())
}

/// AddCertificate: one certificate into the trusted (or issuer) list.
pub(crate) fn add(pki_dir: &Path, der: &[u8], trusted: bool) -> Result<(), StatusCode> {
    pki::check_der(der, false).map_err(|_| StatusCode::BadCertificateInvalid)?;
    let folder = pki_dir.join(if trusted { TRUSTED_CERTS } else { ISSUER_CERTS });
    std::fs::create_dir_all(&folder).map_err(|e| internal(PkiError::Io(folder.clone(), e)))?;
    let name = file_name(der, false).map_err(|_| StatusCode::BadCertificateInvalid)?;
    pki::write_atomically(&folder.join(name), der).map_err(internal)?;
    info!(thumbprint = %pki::thumbprint(der), trusted, "push: certificate added to the trust list");
    Ok(())
}

/// RemoveCertificate: the certificate with this SHA-1 thumbprint (hex, any case) leaves the
/// trusted (or issuer) list, with the CRLs it issued. Bad_InvalidArgument when it is not there.
pub(crate) fn remove(pki_dir: &Path, thumbprint: &str, trusted: bool) -> Result<(), StatusCode> {
    let (certs, crls) = if trusted {
        (TRUSTED_CERTS, TRUSTED_CRLS)
    } else {
        (ISSUER_CERTS, ISSUER_CRLS)
    };
    let wanted = thumbprint.trim().to_ascii_lowercase();
    let found = pki::read_folder(&pki_dir.join(certs), false)
        .map_err(internal)?
        .into_iter()
        .find(|(_, der)| pki::thumbprint(der) == wanted)
        .ok_or(StatusCode::BadInvalidArgument)?;
    let (name, der) = found;
    let path = pki_dir.join(certs).join(&name);
    std::fs::remove_file(&path).map_err(|e| internal(PkiError::Io(path.clone(), e)))?;
    // Its CRLs: those whose issuer is the removed certificate's subject.
    if let Ok(cert) = openssl::x509::X509::from_der(&der) {
        let subject = cert.subject_name().to_der().ok();
        for (crl_name, crl_der) in pki::read_folder(&pki_dir.join(crls), true).map_err(internal)? {
            let issuer = openssl::x509::X509Crl::from_der(&crl_der)
                .ok()
                .and_then(|c| c.issuer_name().to_der().ok());
            if issuer.is_some() && issuer == subject {
                let _ = std::fs::remove_file(pki_dir.join(crls).join(crl_name));
            }
        }
    }
    info!(%thumbprint, trusted, "push: certificate removed from the trust list");
    Ok(())
}

/// GetRejectedList: the certificates the stack refused and parked in `rejected/`.
pub(crate) fn rejected(pki_dir: &Path) -> Result<Vec<Vec<u8>>, StatusCode> {
    Ok(pki::read_folder(&pki_dir.join("rejected"), false)
        .map_err(internal)?
        .into_iter()
        .map(|(_, der)| der)
        .collect())
}
