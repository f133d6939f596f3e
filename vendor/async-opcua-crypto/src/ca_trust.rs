// OPCUA for Rust
// SPDX-License-Identifier: MPL-2.0
// Copyright (C) 2017-2024 Adam Lock
//
// iiot patch: this whole file is added by the iiot project (vendor/PATCHES.md, "CA-based trust").

//! Trust through an issuer chain, the OPC UA Part 4 §6.1.3 way.
//!
//! Upstream 0.19.0 trusts a peer certificate only when that very certificate is a file in
//! `trusted/`, so a certificate issued by a CA the operator trusts (the vault's, a plant PKI's)
//! was parked in `rejected/` and refused. This module decides whether a certificate that is
//! *not* itself in `trusted/` chains to a CA that is:
//!
//! * trust anchors are the certificates in `trusted/` (`.der`, `.pem`, `.crt`, `.cer`);
//! * intermediate CAs may be put in `issuer/`: they help build a chain but are never trusted
//!   on their own;
//! * CRLs live in `trusted/crl/` and `issuer/crl/` (the Part 12 trust list layout:
//!   TrustedCrls, IssuerCrls);
//! * every signature, every validity period (unless time checks are off), every CRL's
//!   signature and thisUpdate/nextUpdate are checked by OpenSSL's `X509_verify_cert`, a
//!   verifier we did not write;
//! * every issuer in the chain must carry basicConstraints cA=TRUE (checked here, because
//!   OpenSSL alone also accepts v1 roots and keyCertSign without basicConstraints), and a
//!   keyUsage without keyCertSign disqualifies an issuer (checked by OpenSSL);
//! * revocation is required for every certificate of the chain, the anchor included: no
//!   current CRL from its issuer means the certificate is refused (fail closed, Part 4:
//!   Bad_CertificateRevocationUnknown / Bad_CertificateIssuerRevocationUnknown).

use std::path::{Path, PathBuf};

use opcua_types::status_code::StatusCode;
use openssl::ssl::SslFiletype;
use openssl::stack::Stack;
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509StoreContext, X509 as OsslX509};
use openssl_sys as ffi;
use tracing::warn;
use x509_cert::der::Decode;

/// Directory beside the certificates of `trusted/` and `issuer/` that holds their CRLs.
pub(crate) const CRL_DIR: &str = "crl";
/// Directory of intermediate CA certificates (chain building only, never trust anchors).
pub(crate) const ISSUER_CERTS_DIR: &str = "issuer";
/// Directory of trust anchors, shared with the upstream one-file-per-certificate trust.
pub(crate) const TRUSTED_CERTS_DIR: &str = "trusted";

/// Why a certificate that is not itself in `trusted/` is not trusted through a CA.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ChainError {
    /// No chain to a CA in `trusted/` exists: the certificate is unknown, exactly as it was
    /// before this patch (the caller parks it in `rejected/`).
    Untrusted(String),
    /// A chain to a trusted CA exists but fails a check. The status code is the Part 4 one
    /// (revoked, revocation unknown, time invalid, issuer use not allowed, ...).
    Invalid {
        /// The Part 4 status code for the failed step.
        status: StatusCode,
        /// What failed, for the log line and the error returned to the stack.
        reason: String,
    },
}

impl ChainError {
    /// The status code the stack should answer with.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ChainError::Untrusted(_) => StatusCode::BadCertificateUntrusted,
            ChainError::Invalid { status, .. } => *status,
        }
    }

    /// The human-readable reason.
    pub(crate) fn reason(&self) -> &str {
        match self {
            ChainError::Untrusted(r) => r,
            ChainError::Invalid { reason, .. } => reason,
        }
    }
}

fn invalid(status: StatusCode, reason: impl Into<String>) -> ChainError {
    ChainError::Invalid {
        status,
        reason: reason.into(),
    }
}

/// Files of a directory that are not directories themselves; an absent directory is empty.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Every certificate in the certificate files of `dir`; unreadable files are logged and skipped
/// (they cannot make anything trusted, so skipping them fails closed).
fn read_certs(dir: &Path) -> Vec<OsslX509> {
    let mut out = Vec::new();
    for path in files_in(dir) {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("der" | "pem" | "crt" | "cer")) {
            continue;
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                warn!("Cannot read certificate file {}: {e}", path.display());
                continue;
            }
        };
        let parsed = if is_pem(&bytes) {
            OsslX509::stack_from_pem(&bytes)
        } else {
            OsslX509::from_der(&bytes).map(|c| vec![c])
        };
        match parsed {
            Ok(certs) => out.extend(certs),
            Err(e) => warn!(
                "Ignoring unparsable certificate file {}: {e}",
                path.display()
            ),
        }
    }
    out
}

/// Whether the DER certificate carries basicConstraints with cA=TRUE (decoded with the
/// `x509-cert` crate this crate already uses).
fn has_ca_basic_constraints(der: &[u8]) -> Result<bool, String> {
    use const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS;
    use x509_cert::ext::pkix::BasicConstraints;
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| e.to_string())?;
    let Some(exts) = cert.tbs_certificate.extensions.as_ref() else {
        return Ok(false);
    };
    for ext in exts {
        if ext.extn_id == ID_CE_BASIC_CONSTRAINTS {
            let bc =
                BasicConstraints::from_der(ext.extn_value.as_bytes()).map_err(|e| e.to_string())?;
            return Ok(bc.ca);
        }
    }
    Ok(false)
}

/// Maps an OpenSSL verification error at `depth` (0 = the peer certificate) to Part 4.
fn map_verify_error(code: i32, depth: u32, text: &str) -> ChainError {
    let leaf = depth == 0;
    let pick = |leaf_code, issuer_code| if leaf { leaf_code } else { issuer_code };
    let reason = format!("{text} (at chain depth {depth})");
    match code {
        // No path to anything in trusted/: an unknown certificate, as before the patch.
        ffi::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
        | ffi::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        | ffi::X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
        | ffi::X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
        | ffi::X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
        | ffi::X509_V_ERR_CERT_UNTRUSTED
        | ffi::X509_V_ERR_CERT_REJECTED => ChainError::Untrusted(reason),
        // A certificate naming a trusted CA as issuer but not signed by it is a forgery or
        // from another CA with the same name: not trusted.
        ffi::X509_V_ERR_CERT_SIGNATURE_FAILURE
        | ffi::X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY
        | ffi::X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE => ChainError::Untrusted(reason),
        ffi::X509_V_ERR_CERT_REVOKED => invalid(
            pick(
                StatusCode::BadCertificateRevoked,
                StatusCode::BadCertificateIssuerRevoked,
            ),
            reason,
        ),
        ffi::X509_V_ERR_UNABLE_TO_GET_CRL
        | ffi::X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER
        | ffi::X509_V_ERR_CRL_HAS_EXPIRED
        | ffi::X509_V_ERR_CRL_NOT_YET_VALID
        | ffi::X509_V_ERR_CRL_SIGNATURE_FAILURE
        | ffi::X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE
        | ffi::X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD
        | ffi::X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD
        | ffi::X509_V_ERR_KEYUSAGE_NO_CRL_SIGN
        | ffi::X509_V_ERR_DIFFERENT_CRL_SCOPE
        | ffi::X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION => invalid(
            pick(
                StatusCode::BadCertificateRevocationUnknown,
                StatusCode::BadCertificateIssuerRevocationUnknown,
            ),
            format!(
                "{reason}: revocation cannot be checked, a current CRL signed by the issuer \
                 must be in trusted/crl or issuer/crl"
            ),
        ),
        ffi::X509_V_ERR_CERT_HAS_EXPIRED
        | ffi::X509_V_ERR_CERT_NOT_YET_VALID
        | ffi::X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD
        | ffi::X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD => invalid(
            pick(
                StatusCode::BadCertificateTimeInvalid,
                StatusCode::BadCertificateIssuerTimeInvalid,
            ),
            reason,
        ),
        ffi::X509_V_ERR_INVALID_CA
        | ffi::X509_V_ERR_KEYUSAGE_NO_CERTSIGN
        | ffi::X509_V_ERR_PATH_LENGTH_EXCEEDED
        | ffi::X509_V_ERR_INVALID_PURPOSE => invalid(
            pick(
                StatusCode::BadCertificateUseNotAllowed,
                StatusCode::BadCertificateIssuerUseNotAllowed,
            ),
            reason,
        ),
        _ => invalid(StatusCode::BadCertificateInvalid, reason),
    }
}

/// Decides whether `leaf_der` (a peer certificate that is not itself a file in `trusted/`)
/// chains to a CA certificate in `pki/trusted/`, through intermediates in `pki/issuer/`, with
/// a current CRL for every certificate of the chain. `check_time` mirrors the store's setting
/// (when off, validity periods of certificates and CRLs are not checked).
///
/// Answers the chain length on success.
pub(crate) fn verify_chain(
    pki: &Path,
    leaf_der: &[u8],
    check_time: bool,
) -> Result<usize, ChainError> {
    let internal = |e: openssl::error::ErrorStack| {
        invalid(
            StatusCode::BadInternalError,
            format!("certificate chain check could not run: {e}"),
        )
    };
    let leaf = OsslX509::from_der(leaf_der).map_err(|e| {
        invalid(
            StatusCode::BadCertificateInvalid,
            format!("certificate cannot be parsed: {e}"),
        )
    })?;
    let trusted_dir = pki.join(TRUSTED_CERTS_DIR);
    let issuer_dir = pki.join(ISSUER_CERTS_DIR);
    let anchors = read_certs(&trusted_dir);
    if anchors.is_empty() {
        return Err(ChainError::Untrusted(
            "no certificate in trusted/ to chain to".to_string(),
        ));
    }

    let mut builder = X509StoreBuilder::new().map_err(internal)?;
    for cert in anchors {
        builder.add_cert(cert).map_err(internal)?;
    }
    let mut intermediates = Stack::new().map_err(internal)?;
    for cert in read_certs(&issuer_dir) {
        intermediates.push(cert).map_err(internal)?;
    }
    {
        let lookup = builder.add_lookup(X509Lookup::file()).map_err(internal)?;
        for dir in [trusted_dir.join(CRL_DIR), issuer_dir.join(CRL_DIR)] {
            for path in files_in(&dir) {
                // X509_load_crl_file wants a UTF-8 path (the binding unwraps otherwise).
                if path.to_str().is_none() {
                    warn!("Ignoring CRL file with a non UTF-8 name {}", path.display());
                    continue;
                }
                let kind = match std::fs::read(&path) {
                    Ok(bytes) if is_pem(&bytes) => SslFiletype::PEM,
                    Ok(_) => SslFiletype::ASN1,
                    Err(e) => {
                        warn!("Cannot read CRL file {}: {e}", path.display());
                        continue;
                    }
                };
                if let Err(e) = lookup.load_crl_file(&path, kind) {
                    warn!("Ignoring unparsable CRL file {}: {e}", path.display());
                }
            }
        }
    }
    // PARTIAL_CHAIN: any certificate in trusted/ is an anchor (Part 4 trusts what the trust
    // list holds, self-signed root or not). CRL_CHECK_ALL: revocation of every certificate of
    // the chain, failing when a CRL is missing.
    let mut flags = X509VerifyFlags::PARTIAL_CHAIN
        | X509VerifyFlags::CRL_CHECK
        | X509VerifyFlags::CRL_CHECK_ALL;
    if !check_time {
        flags |= X509VerifyFlags::NO_CHECK_TIME;
    }
    builder.set_flags(flags).map_err(internal)?;
    let store = builder.build();

    let mut ctx = X509StoreContext::new().map_err(internal)?;
    let (ok, code, text, depth, chain) = ctx
        .init(&store, &leaf, &intermediates, |c| {
            let ok = c.verify_cert()?;
            let chain: Vec<Vec<u8>> = match c.chain() {
                Some(chain) => chain.iter().map(|x| x.to_der()).collect::<Result<_, _>>()?,
                None => Vec::new(),
            };
            Ok((
                ok,
                c.error().as_raw(),
                c.error().error_string().to_string(),
                c.error_depth(),
                chain,
            ))
        })
        .map_err(internal)?;
    if !ok {
        return Err(map_verify_error(code, depth, &text));
    }
    // OpenSSL also takes a v1 root or a keyCertSign-only certificate as a CA; Part 4 and
    // RFC 5280 want basicConstraints cA=TRUE on every issuer.
    for (depth, der) in chain.iter().enumerate().skip(1) {
        match has_ca_basic_constraints(der) {
            Ok(true) => {}
            Ok(false) => {
                return Err(invalid(
                    StatusCode::BadCertificateIssuerUseNotAllowed,
                    format!(
                        "issuer at chain depth {depth} is not a CA (no basicConstraints cA=TRUE)"
                    ),
                ))
            }
            Err(e) => {
                return Err(invalid(
                    StatusCode::BadCertificateIssuerUseNotAllowed,
                    format!("issuer at chain depth {depth} cannot be decoded: {e}"),
                ))
            }
        }
    }
    Ok(chain.len())
}
