//! The DefaultApplicationGroup's trust list as the PKI folders hold it: `trusted/` and
//! `trusted/crl/`, `issuer/` and `issuer/crl/`, which the stack reads on every new session, so
//! a change takes effect without ApplyChanges. A push replaces the lists it specifies whole:
//! the certificate manager owns the server's trust list (Part 12 §7.8.2).

use std::path::{Path, PathBuf};

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
/// certificate and CRL in it (one bad entry changes nothing). Every folder gets its new files
/// before any loses an old one, so an I/O error never leaves one list new and another old: a
/// failed write phase is undone, a failed removal leaves old files beside the new ones. Old
/// certificates go before old CRLs (the order of `FOLDERS`), so a removal failing halfway
/// leaves a stray CRL rather than a CA without its CRL.
pub(crate) fn replace(pki_dir: &Path, data: &[u8]) -> Result<(), StatusCode> {
    let (masks, mut lists) =
        TrustLists::decode_specified(data).map_err(|_| StatusCode::BadDecodingError)?;
    for (_, bit, crl) in FOLDERS {
        for der in lists_mut(&mut lists, bit).iter() {
            pki::check_der(der, crl).map_err(|_| StatusCode::BadCertificateInvalid)?;
        }
    }
    // Per folder written: its path, the files it had, the files it has to keep.
    let mut written: Vec<(PathBuf, Vec<String>, Vec<String>)> = Vec::new();
    for (folder, bit, crl) in FOLDERS {
        if masks & bit == 0 {
            continue;
        }
        let dir = pki_dir.join(folder);
        let items = lists_mut(&mut lists, bit);
        let phase = pki::file_names(&dir).and_then(|before| {
            pki::write_items(&dir, items, |d| file_name(d, crl)).map(|names| (before, names))
        });
        match phase {
            Ok((before, names)) => written.push((dir, before, names)),
            Err(e) => {
                for (dir, before, names) in &written {
                    pki::remove_new(dir, names, before);
                }
                return Err(internal(e));
            }
        }
    }
    for (dir, _, names) in &written {
        pki::remove_others(dir, names, |_| true).map_err(internal)?;
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

/// AddCertificate (Part 12 §7.8.2.6): one certificate into the trusted list. Refused with
/// Bad_CertificateInvalid: a CA certificate, because trusting a CA takes its CRL too, which only
/// a Write of the whole list carries (the stack refuses a CA's certificates without it); and
/// isTrustedCertificate false, because an issuer, too, is a CA.
pub(crate) fn add(pki_dir: &Path, der: &[u8], trusted: bool) -> Result<(), StatusCode> {
    pki::check_der(der, false).map_err(|_| StatusCode::BadCertificateInvalid)?;
    if !trusted || is_ca(der) != Some(false) {
        return Err(StatusCode::BadCertificateInvalid);
    }
    let folder = pki_dir.join(TRUSTED_CERTS);
    std::fs::create_dir_all(&folder).map_err(|e| internal(PkiError::Io(folder.clone(), e)))?;
    let name = file_name(der, false).map_err(|_| StatusCode::BadCertificateInvalid)?;
    pki::write_atomically(&folder.join(name), der).map_err(internal)?;
    info!(thumbprint = %pki::thumbprint(der), "push: certificate added to the trust list");
    Ok(())
}

/// Whether a DER certificate carries basicConstraints with cA TRUE (RFC 5280 §4.2.1.9);
/// `None` when it cannot be parsed. (The openssl crate has no accessor for it.)
fn is_ca(der: &[u8]) -> Option<bool> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let constraints = cert.basic_constraints().ok()?;
    Some(constraints.is_some_and(|bc| bc.value.ca))
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

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::x509::extension::BasicConstraints;
    use openssl::x509::{X509Builder, X509NameBuilder};

    fn certificate(constraints: Option<BasicConstraints>) -> Vec<u8> {
        let key = pki::new_rsa_key(2048).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "basicConstraints test")
            .unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        if let Some(bc) = constraints {
            b.append_extension(bc.build().unwrap()).unwrap();
        }
        b.sign(&key, MessageDigest::sha256()).unwrap();
        b.build().to_der().unwrap()
    }

    /// An empty CRL of a throw-away CA (the openssl crate wants the CA's key identifier in it).
    fn crl() -> Vec<u8> {
        use openssl::x509::extension::{AuthorityKeyIdentifier, CrlNumber, SubjectKeyIdentifier};
        let key = pki::new_rsa_key(2048).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "crl test").unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(ski).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        let ca = b.build();
        let mut crl = openssl::x509::X509CrlBuilder::new().unwrap();
        crl.set_issuer_name(&name).unwrap();
        crl.set_last_update(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        crl.set_next_update(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        let context = X509Builder::new().unwrap();
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&context.x509v3_context(Some(&ca), None))
            .unwrap();
        crl.append_extension(aki).unwrap();
        let number = CrlNumber::new(openssl::bn::BigNum::from_u32(1).unwrap()).unwrap();
        crl.append_extension(number.build().unwrap()).unwrap();
        crl.sign(&key, MessageDigest::sha256()).unwrap();
        crl.build().unwrap().to_der().unwrap()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names = pki::file_names(dir).unwrap();
        names.sort();
        names
    }

    #[test]
    fn a_replacement_failing_in_one_folder_changes_no_folder() {
        let dir = std::env::temp_dir().join(format!("iiot-plc-sim-tl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for folder in ["private", TRUSTED_CERTS, TRUSTED_CRLS] {
            std::fs::create_dir_all(dir.join(folder)).unwrap();
        }
        std::fs::write(dir.join(TRUSTED_CERTS).join("old.der"), certificate(None)).unwrap();
        let (cert, crl) = (certificate(None), crl());
        let lists = TrustLists {
            trusted_certificates: vec![cert.clone()],
            trusted_crls: vec![crl.clone()],
            ..Default::default()
        };
        let masks = trust_list::TRUSTED_CERTIFICATES | trust_list::TRUSTED_CRLS;
        let data = lists.encode(masks);
        // Something in the way of the CRL's file: the CRL folder cannot be written.
        let blocked = dir.join(TRUSTED_CRLS).join(file_name(&crl, true).unwrap());
        std::fs::create_dir_all(blocked.join("x")).unwrap();
        assert_eq!(replace(&dir, &data), Err(StatusCode::BadInternalError));
        assert_eq!(files(&dir.join(TRUSTED_CERTS)), ["old.der"]);
        assert!(files(&dir.join(TRUSTED_CRLS)).is_empty());
        assert!(files(&dir).is_empty(), "temporary files left");

        std::fs::remove_dir_all(&blocked).unwrap();
        replace(&dir, &data).unwrap();
        let cert_name = file_name(&cert, false).unwrap();
        assert_eq!(files(&dir.join(TRUSTED_CERTS)), [cert_name]);
        assert_eq!(
            files(&dir.join(TRUSTED_CRLS)),
            [file_name(&crl, true).unwrap()]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tells_ca_certificates_from_others() {
        let mut ca = BasicConstraints::new();
        ca.critical().ca();
        assert_eq!(is_ca(&certificate(Some(ca))), Some(true));
        let mut with_path = BasicConstraints::new();
        with_path.ca().pathlen(0);
        assert_eq!(is_ca(&certificate(Some(with_path))), Some(true));
        let mut leaf = BasicConstraints::new();
        leaf.critical();
        assert_eq!(is_ca(&certificate(Some(leaf))), Some(false));
        assert_eq!(is_ca(&certificate(None)), Some(false));
        let der = certificate(None);
        assert_eq!(is_ca(&der[..der.len() / 2]), None);
        assert_eq!(is_ca(b""), None);
    }
}
