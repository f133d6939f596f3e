//! The files of an async-opcua PKI folder as a Part 12 participant changes them: the
//! application's own certificate and key, and the trust list folders (`trusted/`,
//! `trusted/crl/`, `issuer/`, `issuer/crl/`). The module writes them when it enrolls by pull,
//! plc-sim when the vault pushes to it.
//!
//! Each file is written beside the PKI root and renamed over its final name, so the stack
//! never reads half a certificate; keys are readable by the owner only.

use std::path::{Path, PathBuf};

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509NameRef, X509ReqBuilder, X509};

/// Where async-opcua keeps the application's own certificate and key.
pub const OWN_CERT: &str = "own/cert.der";
pub const OWN_KEY: &str = "private/private.pem";

/// The four trust list folders, in the order of `TrustLists`' fields.
pub const TRUSTED_CERTS: &str = "trusted";
pub const TRUSTED_CRLS: &str = "trusted/crl";
pub const ISSUER_CERTS: &str = "issuer";
pub const ISSUER_CRLS: &str = "issuer/crl";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Crypto(String, openssl::error::ErrorStack),
    #[error("{0}")]
    Invalid(String),
}

pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |e| PkiError::Io(path.to_path_buf(), e)
}

pub fn crypto(what: &str) -> impl FnOnce(openssl::error::ErrorStack) -> PkiError + '_ {
    move |e| PkiError::Crypto(what.to_string(), e)
}

/// Writes `bytes` to `path` through a synced temporary file and a rename. The temporary file
/// sits in the PKI root, not beside `path`: the stack reads every file of the CRL folders.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    use std::io::Write;
    let root = path
        .ancestors()
        .find(|p| p.join("private").is_dir())
        .unwrap_or_else(|| path.parent().unwrap_or(path));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = root.join(format!(".tmp-{name}"));
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Writes a private key (PKCS#8 PEM, which async-opcua reads) readable by the owner only.
pub fn write_private_key(path: &Path, key: &PKey<Private>) -> Result<(), PkiError> {
    let pem = key.private_key_to_pem_pkcs8().map_err(crypto("key"))?;
    write_atomically(path, &pem)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))?;
    }
    Ok(())
}

/// A PEM private key, `None` when the file does not exist. async-opcua writes its PEM with
/// carriage returns and no line breaks after the armour, which OpenSSL's PEM reader refuses, so
/// the base64 body is read here.
pub fn read_private_key(path: &Path) -> Result<Option<PKey<Private>>, PkiError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(PkiError::Io(path.to_path_buf(), e)),
    };
    private_key_from_pem(&text)
        .map(Some)
        .map_err(|e| PkiError::Invalid(format!("{}: {e}", path.display())))
}

/// A PKCS#8 or PKCS#1 PEM private key, however its lines are broken.
pub fn private_key_from_pem(text: &str) -> Result<PKey<Private>, PkiError> {
    let body = |label: &str| {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let start = text.find(&begin)? + begin.len();
        let stop = text[start..].find(&end)? + start;
        let b64: String = text[start..stop]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        base64_decode(&b64)
    };
    if let Some(der) = body("PRIVATE KEY") {
        return PKey::private_key_from_pkcs8(&der).map_err(crypto("private key"));
    }
    if let Some(der) = body("RSA PRIVATE KEY") {
        let rsa = openssl::rsa::Rsa::private_key_from_der(&der).map_err(crypto("private key"))?;
        return PKey::from_rsa(rsa).map_err(crypto("private key"));
    }
    Err(PkiError::Invalid(
        "no unencrypted PEM private key (PRIVATE KEY or RSA PRIVATE KEY)".into(),
    ))
}

fn base64_decode(b64: &str) -> Option<Vec<u8>> {
    openssl::base64::decode_block(b64).ok()
}

/// Seconds since 1970 of an ASN.1 time.
pub fn unix_time(t: &openssl::asn1::Asn1TimeRef) -> Result<i64, PkiError> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).map_err(crypto("time"))?;
    let diff = epoch.diff(t).map_err(crypto("time"))?;
    Ok(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

/// The names of a subjectAltName.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AltNames {
    pub uris: Vec<String>,
    pub dns: Vec<String>,
    pub ips: Vec<String>,
}

impl AltNames {
    /// The subjectAltName names of a certificate.
    pub fn of(cert: &X509) -> AltNames {
        let mut names = AltNames::default();
        for name in cert.subject_alt_names().into_iter().flatten() {
            if let Some(u) = name.uri() {
                names.uris.push(u.to_owned());
            } else if let Some(d) = name.dnsname() {
                names.dns.push(d.to_owned());
            } else if let Some(ip) = name.ipaddress() {
                let text = match ip.len() {
                    4 => <[u8; 4]>::try_from(ip).map(|b| std::net::IpAddr::from(b).to_string()),
                    16 => <[u8; 16]>::try_from(ip).map(|b| std::net::IpAddr::from(b).to_string()),
                    _ => continue,
                };
                if let Ok(text) = text {
                    names.ips.push(text);
                }
            }
        }
        names
    }
}

/// A DER PKCS#10 request signed with `key` (SHA-256) for `subject` and `names`.
pub fn signing_request(
    key: &PKey<Private>,
    subject: &X509NameRef,
    names: &AltNames,
) -> Result<Vec<u8>, PkiError> {
    let mut req = X509ReqBuilder::new().map_err(crypto("CSR"))?;
    req.set_pubkey(key).map_err(crypto("CSR"))?;
    req.set_subject_name(subject)
        .map_err(crypto("CSR subject"))?;
    let mut san = SubjectAlternativeName::new();
    for u in &names.uris {
        san.uri(u);
    }
    for d in &names.dns {
        san.dns(d);
    }
    for ip in &names.ips {
        san.ip(ip);
    }
    let san = san
        .build(&req.x509v3_context(None))
        .map_err(crypto("CSR subjectAltName"))?;
    let mut extensions = Stack::new().map_err(crypto("CSR"))?;
    extensions.push(san).map_err(crypto("CSR"))?;
    req.add_extensions(&extensions).map_err(crypto("CSR"))?;
    req.sign(key, MessageDigest::sha256())
        .map_err(crypto("CSR signature"))?;
    req.build().to_der().map_err(crypto("CSR"))
}

/// A new RSA key of `bits`.
pub fn new_rsa_key(bits: u32) -> Result<PKey<Private>, PkiError> {
    let rsa = openssl::rsa::Rsa::generate(bits).map_err(crypto("new key"))?;
    PKey::from_rsa(rsa).map_err(crypto("new key"))
}

/// SHA-1 of the DER in lower-case hex, the thumbprint OPC UA names certificates by.
pub fn thumbprint(der: &[u8]) -> String {
    openssl::sha::sha1(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The file name async-opcua's store looks a certificate up by (`CN [thumbprint].der`):
/// a certificate trusted by its own file must carry it.
pub fn stack_file_name(der: &[u8]) -> Result<String, PkiError> {
    let cert = opcua::crypto::X509::from_der(der)
        .map_err(|e| PkiError::Invalid(format!("certificate: {e}")))?;
    Ok(opcua::crypto::CertificateStore::cert_file_name(&cert))
}

/// Whether `der` is a certificate (`crl` false) or CRL (`crl` true) OpenSSL reads.
pub fn check_der(der: &[u8], crl: bool) -> Result<(), PkiError> {
    if crl {
        openssl::x509::X509Crl::from_der(der)
            .map(drop)
            .map_err(crypto("CRL"))
    } else {
        X509::from_der(der).map(drop).map_err(crypto("certificate"))
    }
}

/// The certificates (or CRLs) of one folder as DER: every regular file, DER or PEM, that
/// parses; others are skipped (the stack skips them too). Sorted by file name.
pub fn read_folder(dir: &Path, crl: bool) -> Result<Vec<(String, Vec<u8>)>, PkiError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PkiError::Io(dir.to_path_buf(), e)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let der = if crl {
            openssl::x509::X509Crl::from_der(&bytes)
                .or_else(|_| openssl::x509::X509Crl::from_pem(&bytes))
                .and_then(|c| c.to_der())
        } else {
            X509::from_der(&bytes)
                .or_else(|_| X509::from_pem(&bytes))
                .and_then(|c| c.to_der())
        };
        if let Ok(der) = der {
            out.push((entry.file_name().to_string_lossy().to_string(), der));
        }
    }
    out.sort();
    Ok(out)
}

/// Makes the files of `dir` that `owned` selects exactly `items`, each under the name
/// `name_of` gives it; files `owned` does not select are left alone.
pub fn replace_folder(
    dir: &Path,
    items: &[Vec<u8>],
    name_of: impl Fn(&[u8]) -> Result<String, PkiError>,
    owned: impl Fn(&str) -> bool,
) -> Result<usize, PkiError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let keep: Vec<String> = items.iter().map(|d| name_of(d)).collect::<Result<_, _>>()?;
    for (der, name) in items.iter().zip(&keep) {
        write_atomically(&dir.join(name), der)?;
    }
    for entry in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if owned(&name) && entry.path().is_file() && !keep.contains(&name) {
            std::fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
        }
    }
    Ok(items.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::x509::X509NameBuilder;

    #[test]
    fn request_carries_the_names_and_keys_read_back() {
        let dir = std::env::temp_dir().join(format!("iiot-gds-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("private")).unwrap();
        let key = new_rsa_key(2048).unwrap();
        write_private_key(&dir.join(OWN_KEY), &key).unwrap();
        let back = read_private_key(&dir.join(OWN_KEY)).unwrap().unwrap();
        assert!(back.public_eq(&key));
        assert!(read_private_key(&dir.join("private/none.pem"))
            .unwrap()
            .is_none());
        // async-opcua's own PEM layout: carriage returns, no line breaks in the body.
        let pem = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let squashed = pem
            .replace('\n', "")
            .replace("-----KEY-----", "-----KEY-----\r\n");
        assert!(private_key_from_pem(&squashed).unwrap().public_eq(&key));

        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "plc").unwrap();
        let names = AltNames {
            uris: vec!["urn:x:plc".into()],
            dns: vec!["plc.example".into()],
            ips: vec!["10.0.0.1".into()],
        };
        let der = signing_request(&key, &name.build(), &names).unwrap();
        let req = openssl::x509::X509Req::from_der(&der).unwrap();
        assert!(req.verify(&key).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn replace_folder_keeps_files_it_does_not_own() {
        let dir = std::env::temp_dir().join(format!("iiot-gds-fold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mine-old"), b"x").unwrap();
        std::fs::write(dir.join("theirs"), b"y").unwrap();
        let name_of = |d: &[u8]| Ok(format!("mine-{}", thumbprint(d)));
        replace_folder(&dir, &[vec![1], vec![2]], name_of, |n| {
            n.starts_with("mine-")
        })
        .unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3);
        assert!(names.contains(&"theirs".to_owned()));
        assert!(!names.contains(&"mine-old".to_owned()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
