//! Reading and judging PKCS#10 certificate signing requests. A CSR passes when it parses, its
//! self-signature verifies, its key fits the certificate type, it asks for no CA powers, and
//! its names are well-formed; what the certificate finally says is decided elsewhere (ca/).

use std::net::IpAddr;

use base64::Engine;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::ca::CertType;
use crate::error::{Result, VaultError};

/// Smallest RSA key the vault signs for.
pub const MIN_RSA_BITS: usize = 2048;

const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

/// What the vault takes from a valid CSR.
#[derive(Debug, Clone)]
pub struct CheckedCsr {
    pub der: Vec<u8>,
    /// DER SubjectPublicKeyInfo.
    pub public_key_spki: Vec<u8>,
    pub uris: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
}

/// Accepts PEM (`-----BEGIN CERTIFICATE REQUEST-----`) or base64 of the DER.
pub fn decode(text: &str) -> Result<Vec<u8>> {
    let text = text.trim();
    let b64: String = if text.starts_with("-----BEGIN") {
        let body = text
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect::<Vec<_>>()
            .concat();
        if !text.contains("-----END") {
            return Err(VaultError::CertificateInvalid(
                "certificateRequest: PEM without an END line".into(),
            ));
        }
        body
    } else {
        text.split_whitespace().collect()
    };
    base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| {
            VaultError::CertificateInvalid(
                "certificateRequest must be PEM or base64 of a DER PKCS#10 request".into(),
            )
        })
}

/// Parses and checks a CSR for `cert_type`, with RSA keys at least `min_rsa_bits`.
pub fn check(der: &[u8], cert_type: CertType, min_rsa_bits: usize) -> Result<CheckedCsr> {
    let (rest, csr) = X509CertificationRequest::from_der(der).map_err(|e| {
        VaultError::CertificateInvalid(format!("certificateRequest is not a PKCS#10 request: {e}"))
    })?;
    if !rest.is_empty() {
        return Err(VaultError::CertificateInvalid(
            "certificateRequest has trailing bytes".into(),
        ));
    }
    let spki = &csr.certification_request_info.subject_pki;
    let key = spki.parsed().map_err(|e| {
        VaultError::PolicyCheckFailed(format!("the CSR's public key cannot be read: {e}"))
    })?;
    match (cert_type, key) {
        (CertType::RsaSha256, PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            if bits < min_rsa_bits {
                return Err(VaultError::PolicyCheckFailed(format!(
                    "RSA key of {bits} bits: this group requires at least {min_rsa_bits}"
                )));
            }
        }
        (CertType::EccNistP256 | CertType::EccNistP384, PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            let want = if cert_type == CertType::EccNistP256 {
                OID_P256
            } else {
                OID_P384
            };
            if curve != want {
                return Err(VaultError::PolicyCheckFailed(format!(
                    "the CSR's EC key is on curve {curve}, {} needs {want}",
                    cert_type.id()
                )));
            }
        }
        (t, k) => {
            let kind = match k {
                PublicKey::RSA(_) => "an RSA",
                PublicKey::EC(_) => "an EC",
                _ => "an unsupported",
            };
            return Err(VaultError::PolicyCheckFailed(format!(
                "the CSR carries {kind} key, which does not fit {}",
                t.id()
            )));
        }
    }
    // After the key policy: the verifier refuses weak keys itself, which would hide the reason.
    csr.verify_signature().map_err(|_| {
        VaultError::CertificateInvalid("the CSR's signature does not verify".into())
    })?;
    let mut out = CheckedCsr {
        der: der.to_vec(),
        public_key_spki: spki.raw.to_vec(),
        uris: Vec::new(),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
    };
    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            match ext {
                ParsedExtension::BasicConstraints(bc) if bc.ca => {
                    return Err(VaultError::PolicyCheckFailed(
                        "the CSR asks for a CA certificate (cA=true); the vault issues end-entity certificates only".into(),
                    ));
                }
                // A requested keyUsage is not refused but not copied either: the vault issues with
                // its own profile (no keyCertSign/cRLSign for end entities). OPC UA servers ask
                // for the usages of their self-signed certificate, keyCertSign included
                // (node-opcua's CreateSigningRequest does), and must still get a certificate.
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        match name {
                            GeneralName::URI(u) => out.uris.push(u.to_string()),
                            GeneralName::DNSName(d) => {
                                check_domain_name(d)?;
                                out.dns_names.push(d.to_ascii_lowercase());
                            }
                            GeneralName::IPAddress(b) => out.ip_addresses.push(ip(b)?),
                            _ => {}
                        }
                    }
                }
                ParsedExtension::UnsupportedExtension { .. }
                | ParsedExtension::ParseError { .. } => {}
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Whether a DER SubjectPublicKeyInfo holds an RSA key.
pub fn spki_is_rsa(der: &[u8]) -> bool {
    x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
        .ok()
        .and_then(|(_, s)| s.parsed().ok().map(|k| matches!(k, PublicKey::RSA(_))))
        .unwrap_or(false)
}

fn ip(bytes: &[u8]) -> Result<IpAddr> {
    match bytes.len() {
        4 => {
            let mut a = [0u8; 4];
            a.copy_from_slice(bytes);
            Ok(IpAddr::from(a))
        }
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(bytes);
            Ok(IpAddr::from(a))
        }
        n => Err(VaultError::InvalidArgument(format!(
            "IP address SAN of {n} bytes"
        ))),
    }
}

/// A host name as RFC 1123 allows it (letters, digits, hyphens; labels of 1–63 characters, 253
/// in all). Wildcards are refused: an application certificate names its own hosts.
pub fn check_domain_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(VaultError::InvalidArgument(format!(
            "invalid domain name '{name}': {why}"
        )))
    };
    let n = name.strip_suffix('.').unwrap_or(name);
    if n.is_empty() || n.len() > 253 {
        return bad("empty or longer than 253 characters");
    }
    for label in n.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("labels must have 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("only letters, digits and '-' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label cannot start or end with '-'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_follow_rfc_1123() {
        for ok in ["plc1", "plc-1.plant.example", "a.b.c.", "x1"] {
            assert!(check_domain_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-plc",
            "plc-",
            "pl c",
            "*.plant",
            "a..b",
            "under_score",
            &"a".repeat(64),
        ] {
            assert!(check_domain_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn garbage_and_truncated_requests_are_refused() {
        assert!(matches!(
            decode("%%%"),
            Err(VaultError::CertificateInvalid(_))
        ));
        let der = decode("MIIBAA==").unwrap();
        assert!(matches!(
            check(&der, CertType::RsaSha256, MIN_RSA_BITS),
            Err(VaultError::CertificateInvalid(_))
        ));
    }
}
