//! The server's own application instance certificate: creation, reuse and renewal.

use std::path::Path;

use iiot_gds::pki::{OWN_CERT, OWN_KEY};
use opcua::{
    crypto::{CertificateStore, X509Data},
    types::{ApplicationDescription, DateTime},
};
use tracing::info;

use crate::PlcSimError;

fn pki_err(path: &Path, message: impl Into<String>) -> PlcSimError {
    PlcSimError::Pki {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Makes sure `pki_dir` holds a usable self-signed certificate for this application URI
/// and host, creating or replacing it when needed.
///
/// Done here rather than with async-opcua's `create_sample_keypair` because that one
/// (crypto/src/certificate_store.rs:72-119, via `X509Data::from(ApplicationDescription)`)
/// only puts localhost and the machine's own names in the SAN, not the configured host,
/// never replaces a certificate whose application URI or host no longer match, and on
/// failure merely logs while the server keeps advertising unusable secure endpoints.
pub(crate) fn ensure_own_certificate(
    pki_dir: &Path,
    description: ApplicationDescription,
    host: &str,
) -> Result<(), PlcSimError> {
    // `trusted/crl`, `issuer`, `issuer/crl`: where CA-based trust finds CRLs and intermediate
    // CAs (config.rs `pki_dir`), created so an operator sees where they go.
    for sub in [
        "own",
        "private",
        "trusted",
        "rejected",
        "trusted/crl",
        "issuer",
        "issuer/crl",
    ] {
        let dir = pki_dir.join(sub);
        std::fs::create_dir_all(&dir).map_err(|e| pki_err(&dir, e.to_string()))?;
    }
    let cert_path = pki_dir.join(OWN_CERT);
    let key_path = pki_dir.join(OWN_KEY);
    // `private/` also holds a key waiting for its pushed certificate: owner-only.
    iiot_gds::pki::ensure_key_dir(&key_path).map_err(|e| pki_err(&key_path, e.to_string()))?;
    let application_uri = description.application_uri.as_ref().to_owned();

    match existing_certificate_problem(&cert_path, &key_path, &application_uri, host) {
        None => return Ok(()),
        Some(reason) => info!(
            pki_dir = %pki_dir.display(),
            "creating self-signed server certificate ({reason})"
        ),
    }

    let data = X509Data::from((description, Some(vec![host.to_owned()])));
    CertificateStore::create_certificate_and_key(&data, true, &cert_path, &key_path)
        .map_err(|e| pki_err(&cert_path, e))?;
    Ok(())
}

/// `None` if the stored certificate can be reused, otherwise why it cannot.
fn existing_certificate_problem(
    cert_path: &Path,
    key_path: &Path,
    application_uri: &str,
    host: &str,
) -> Option<String> {
    if !cert_path.exists() || !key_path.exists() {
        return Some("none stored yet".to_owned());
    }
    let cert = match CertificateStore::read_cert(cert_path) {
        Ok(c) => c,
        Err(e) => return Some(format!("stored certificate unreadable: {e}")),
    };
    if let Err(e) = CertificateStore::read_pkey(key_path) {
        return Some(format!("stored private key unreadable: {e}"));
    }
    // A push writes the key and then the certificate; a crash between the two must not leave
    // a server that cannot use its certificate.
    let matches = (|| {
        let key = iiot_gds::pki::read_private_key(key_path).ok()??;
        let der = cert.to_der().ok()?;
        let public = openssl::x509::X509::from_der(&der)
            .ok()?
            .public_key()
            .ok()?;
        Some(public.public_eq(&key))
    })();
    if matches != Some(true) {
        return Some("stored private key does not belong to the stored certificate".to_owned());
    }
    if cert.is_application_uri_valid(application_uri).is_err() {
        return Some(format!("stored certificate is not for {application_uri}"));
    }
    if cert.is_hostname_valid(host).is_err() {
        return Some(format!("stored certificate does not name host {host}"));
    }
    // Renew a little ahead of expiry so a long test run does not cross it.
    let now = DateTime::now().as_chrono();
    let fresh = cert.is_time_valid(&now).is_ok()
        && cert
            .not_after()
            .is_ok_and(|not_after| (not_after - now).num_days() >= 7);
    if !fresh {
        return Some("stored certificate expired or about to".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use opcua::crypto::X509;

    fn description(uri: &str) -> ApplicationDescription {
        ApplicationDescription {
            application_uri: uri.into(),
            application_name: opcua::types::LocalizedText::new("", "pki test"),
            ..Default::default()
        }
    }

    #[test]
    fn certificate_names_host_is_reused_and_renewed_on_host_change() {
        let dir = std::env::temp_dir().join(format!("iiot-plc-sim-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let read = || std::fs::read(dir.join(OWN_CERT)).unwrap();

        ensure_own_certificate(&dir, description("urn:t:a"), "plc.example").unwrap();
        let first = read();
        let cert = X509::from_der(&first).unwrap();
        cert.is_application_uri_valid("urn:t:a").unwrap();
        cert.is_hostname_valid("plc.example").unwrap();
        for sub in ["trusted", "rejected"] {
            assert!(dir.join(sub).is_dir());
        }

        ensure_own_certificate(&dir, description("urn:t:a"), "plc.example").unwrap();
        assert_eq!(read(), first, "valid certificate was not reused");

        ensure_own_certificate(&dir, description("urn:t:a"), "other.example").unwrap();
        let renewed = read();
        assert_ne!(renewed, first);
        X509::from_der(&renewed)
            .unwrap()
            .is_hostname_valid("other.example")
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
