//! The module's certificate stores (`own`, `trusted`, `rejected`, `issuer`) as OPC Publisher's
//! PKI API presents them.
//!
//! Trust decisions are made by the OPC UA stack from these folders; this module only lets an
//! operator see and change them, so that trusting a server is an explicit, reviewable act
//! (approve a rejected certificate) and never a side effect.

use std::path::{Path, PathBuf};

use opcua::types::StatusCode;
use sha1::{Digest, Sha1};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{ErrorKind, Result, ServiceError};

/// The certificate stores the API exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Own,
    Trusted,
    Rejected,
    Issuer,
}

impl Store {
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "own" | "application" => Ok(Store::Own),
            "trusted" => Ok(Store::Trusted),
            "rejected" => Ok(Store::Rejected),
            "issuer" => Ok(Store::Issuer),
            _ => Err(ServiceError::new(
                ErrorKind::NotFound,
                StatusCode::BadNotFound,
                format!("unknown certificate store '{name}' (own, trusted, rejected, issuer)"),
            )),
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Store::Own => "own",
            Store::Trusted => "trusted",
            Store::Rejected => "rejected",
            Store::Issuer => "issuer",
        }
    }
}

/// What the API reports of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub thumbprint: String,
    pub subject: String,
    pub issuer: String,
    pub serial_number: String,
    pub not_before: String,
    pub not_after: String,
    pub self_signed: bool,
    pub der: Vec<u8>,
}

impl CertificateInfo {
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| {
            ServiceError::bad_request(
                StatusCode::BadCertificateInvalid,
                format!("not a DER X.509 certificate: {e}"),
            )
        })?;
        let tbs = &cert.tbs_certificate;
        Ok(Self {
            thumbprint: thumbprint(der),
            subject: tbs.subject.to_string(),
            issuer: tbs.issuer.to_string(),
            serial_number: tbs.raw_serial_as_string().replace(':', "").to_uppercase(),
            not_before: rfc3339(tbs.validity.not_before.timestamp()),
            not_after: rfc3339(tbs.validity.not_after.timestamp()),
            self_signed: tbs.subject == tbs.issuer,
            der: der.to_vec(),
        })
    }
}

/// RFC 3339 text of seconds since 1970 (empty when out of range).
pub(crate) fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// SHA-1 thumbprint in upper-case hex, as OPC UA tools show it.
pub fn thumbprint(der: &[u8]) -> String {
    hex::encode_upper(Sha1::digest(der))
}

/// The PKI folders of the module.
#[derive(Debug, Clone)]
pub struct Pki {
    root: PathBuf,
}

impl Pki {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn list(&self, store: Store) -> Result<Vec<CertificateInfo>> {
        let mut certs = Vec::new();
        for (_, der) in self.read_store(store)? {
            match CertificateInfo::from_der(&der) {
                Ok(info) => certs.push(info),
                Err(e) => tracing::warn!(error = %e, "skipping unreadable certificate file"),
            }
        }
        certs.sort_by(|a, b| a.subject.cmp(&b.subject));
        Ok(certs)
    }

    /// Moves a rejected certificate to `trusted/`, the operator's explicit act of trust.
    pub fn approve(&self, thumbprint: &str) -> Result<CertificateInfo> {
        let (path, der) = self.find(Store::Rejected, thumbprint)?;
        let info = CertificateInfo::from_der(&der)?;
        self.write(Store::Trusted, &info)?;
        std::fs::remove_file(&path).map_err(|e| io("removing from rejected", e))?;
        tracing::info!(thumbprint = %info.thumbprint, subject = %info.subject, "certificate approved and trusted");
        Ok(info)
    }

    pub fn add(&self, store: Store, der: &[u8]) -> Result<CertificateInfo> {
        if store == Store::Own {
            return Err(ServiceError::bad_request(
                StatusCode::BadNotWritable,
                "the own store holds the module's certificate; it is not written through the API",
            ));
        }
        let info = CertificateInfo::from_der(der)?;
        self.write(store, &info)?;
        Ok(info)
    }

    pub fn remove(&self, store: Store, thumbprint: &str) -> Result<()> {
        if store == Store::Own {
            return Err(ServiceError::bad_request(
                StatusCode::BadNotWritable,
                "the module's own certificate cannot be removed",
            ));
        }
        let (path, _) = self.find(store, thumbprint)?;
        std::fs::remove_file(path).map_err(|e| io("removing certificate", e))
    }

    fn write(&self, store: Store, info: &CertificateInfo) -> Result<()> {
        let dir = self.root.join(store.dir());
        std::fs::create_dir_all(&dir).map_err(|e| io("creating store", e))?;
        let name = file_name(&info.der, &info.thumbprint);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, &info.der).map_err(|e| io("writing certificate", e))?;
        std::fs::rename(&tmp, dir.join(name)).map_err(|e| io("writing certificate", e))
    }

    fn find(&self, store: Store, thumbprint: &str) -> Result<(PathBuf, Vec<u8>)> {
        let wanted = thumbprint.trim().to_ascii_uppercase();
        self.read_store(store)?
            .into_iter()
            .find(|(_, der)| self::thumbprint(der) == wanted)
            .ok_or_else(|| {
                ServiceError::new(
                    ErrorKind::NotFound,
                    StatusCode::BadNotFound,
                    format!("no certificate with thumbprint {wanted} in {}", store.dir()),
                )
            })
    }

    fn read_store(&self, store: Store) -> Result<Vec<(PathBuf, Vec<u8>)>> {
        let dir = self.root.join(store.dir());
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("reading store", e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let is_cert = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "der" | "cer" | "crt" | "pem"));
            if !is_cert {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let der = if bytes.starts_with(b"-----BEGIN") {
                match x509_parser::pem::parse_x509_pem(&bytes) {
                    Ok((_, pem)) => pem.contents,
                    Err(_) => continue,
                }
            } else {
                bytes
            };
            out.push((path, der));
        }
        Ok(out)
    }
}

/// The file name the OPC UA stack looks a certificate up by; using its own function keeps
/// the two in step.
fn file_name(der: &[u8], thumbprint: &str) -> String {
    match opcua::crypto::X509::from_der(der) {
        Ok(cert) => opcua::crypto::CertificateStore::cert_file_name(&cert),
        Err(_) => format!("{}.der", thumbprint.to_ascii_lowercase()),
    }
}

fn io(what: &str, e: std::io::Error) -> ServiceError {
    ServiceError::internal(format!("{what}: {e}"))
}
