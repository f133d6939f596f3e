// OPCUA for Rust
// SPDX-License-Identifier: MPL-2.0
//
// iiot patch: tests of CA-based trust (src/ca_trust.rs, vendor/PATCHES.md). The CAs, certificates
// and CRLs are built with OpenSSL's builders, so each test states its PKI in a few lines.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use opcua_types::StatusCode;
use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{
    X509Builder, X509Crl, X509CrlBuilder, X509Extension, X509Name, X509RevokedBuilder,
    X509 as OsslX509,
};
use tempdir::TempDir;
use x509_cert::der::Encode;

use crate::ca_trust::{verify_chain, ChainError};
use crate::{CertificateStore, SecurityPolicy, X509};

const URI: &str = "urn:iiot:test:client";
const DAY: i64 = 86_400;

/// Kind of issuer certificate a test wants.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// basicConstraints cA=TRUE, keyUsage keyCertSign + cRLSign.
    Ca,
    /// basicConstraints cA=FALSE but keyUsage keyCertSign (like async-opcua's self-signed
    /// application certificates).
    LeafWithCertSign,
    /// No basicConstraints at all, keyUsage keyCertSign: OpenSSL alone takes it as a CA.
    NoBasicConstraints,
    /// An application instance certificate.
    Leaf,
}

struct Cert {
    cert: OsslX509,
    key: PKey<Private>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn time(offset_secs: i64) -> Asn1Time {
    Asn1Time::from_unix((now() + offset_secs) as _).expect("time")
}

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey")
}

fn serial(n: u32) -> Asn1Integer {
    BigNum::from_u32(n)
        .and_then(|b| b.to_asn1_integer())
        .expect("serial")
}

/// A certificate of `kind` named `cn`, signed by `issuer` (self-signed when `None`), valid from
/// `from` to `to` seconds relative to now.
fn make(cn: &str, kind: Kind, issuer: Option<&Cert>, from: i64, to: i64, sn: u32) -> Cert {
    let key = key();
    let mut name = X509Name::builder().expect("name");
    name.append_entry_by_nid(Nid::COMMONNAME, cn).expect("cn");
    let name = name.build();
    let mut b = X509Builder::new().expect("builder");
    b.set_version(2).expect("v3");
    b.set_serial_number(&serial(sn)).expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(issuer.map(|i| i.cert.subject_name()).unwrap_or(&name))
        .expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&time(from)).expect("nb");
    b.set_not_after(&time(to)).expect("na");
    match kind {
        Kind::Ca => {
            b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
                .expect("bc");
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .expect("ku"),
            )
            .expect("ku");
        }
        Kind::LeafWithCertSign => {
            b.append_extension(BasicConstraints::new().critical().build().expect("bc"))
                .expect("bc");
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .expect("ku"),
            )
            .expect("ku");
        }
        Kind::NoBasicConstraints => {
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .expect("ku"),
            )
            .expect("ku");
        }
        Kind::Leaf => {
            b.append_extension(BasicConstraints::new().critical().build().expect("bc"))
                .expect("bc");
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .non_repudiation()
                    .key_encipherment()
                    .data_encipherment()
                    .build()
                    .expect("ku"),
            )
            .expect("ku");
            let san = SubjectAlternativeName::new()
                .uri(URI)
                .dns("testhost")
                .build(&b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None))
                .expect("san");
            b.append_extension(san).expect("san");
        }
    }
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .expect("ski");
    b.append_extension(ski).expect("ski");
    if let Some(i) = issuer {
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(&i.cert), None))
            .expect("aki");
        b.append_extension(aki).expect("aki");
    }
    let signer = issuer.map(|i| &i.key).unwrap_or(&key);
    b.sign(signer, MessageDigest::sha256()).expect("sign");
    Cert {
        cert: b.build(),
        key,
    }
}

fn ca(cn: &str) -> Cert {
    make(cn, Kind::Ca, None, -DAY, 365 * DAY, 1)
}

fn leaf(issuer: &Cert, sn: u32) -> Cert {
    make("client", Kind::Leaf, Some(issuer), -DAY, 30 * DAY, sn)
}

/// A CRL of `ca` listing `revoked`, whose nextUpdate is `next` seconds from now.
fn crl(ca: &Cert, revoked: &[&Cert], next: i64) -> X509Crl {
    let mut b = X509CrlBuilder::new().expect("crl");
    b.set_issuer_name(ca.cert.subject_name()).expect("issuer");
    b.set_last_update(&time(-3600)).expect("last");
    b.set_next_update(&time(next)).expect("next");
    // The AKI extension needs an X509v3 context naming the CA; a scratch builder gives one.
    let scratch = X509Builder::new().expect("scratch");
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&scratch.x509v3_context(Some(&ca.cert), None))
        .expect("aki");
    b.append_extension(aki).expect("aki");
    // The CRLNumber value is encoded by x509-cert, the DER library this crate already uses.
    let number_der =
        x509_cert::ext::pkix::CrlNumber(x509_cert::der::asn1::Uint::new(&[1]).expect("crl number"))
            .to_der()
            .expect("crl number der");
    let number = X509Extension::new_from_der(
        &Asn1Object::from_str("2.5.29.20").expect("oid"),
        false,
        &Asn1OctetString::new_from_bytes(&number_der).expect("octets"),
    )
    .expect("crl number");
    b.append_extension(number).expect("crl number");
    for r in revoked {
        let mut rb = X509RevokedBuilder::new().expect("revoked");
        rb.set_serial_number(r.cert.serial_number())
            .expect("serial");
        rb.set_revocation_date(&time(-60)).expect("date");
        b.add_revoked(rb.build()).expect("add");
    }
    b.sign(&ca.key, MessageDigest::sha256()).expect("sign");
    b.build().expect("build crl")
}

/// A PKI directory as the certificate store lays it out.
fn pki() -> (TempDir, CertificateStore) {
    let dir = TempDir::new("ca-trust").expect("tempdir");
    let store = CertificateStore::new(dir.path());
    store.ensure_pki_path().expect("pki dirs");
    (dir, store)
}

fn put_cert(pki: &Path, sub: &str, name: &str, c: &Cert) {
    std::fs::write(
        pki.join(sub).join(format!("{name}.der")),
        c.cert.to_der().expect("der"),
    )
    .expect("write cert");
}

fn put_crl(pki: &Path, sub: &str, name: &str, crl: &X509Crl) {
    std::fs::write(
        pki.join(sub).join("crl").join(format!("{name}.crl")),
        crl.to_der().expect("der"),
    )
    .expect("write crl");
}

fn check(pki: &Path, c: &Cert) -> Result<usize, ChainError> {
    verify_chain(pki, &c.cert.to_der().expect("der"), true)
}

fn status(r: Result<usize, ChainError>) -> StatusCode {
    match r {
        Ok(n) => panic!("expected a refusal, got a chain of {n}"),
        Err(e) => e.status(),
    }
}

#[test]
fn valid_chain_to_a_trusted_ca_is_accepted() {
    let (dir, _) = pki();
    let root = ca("root");
    put_cert(dir.path(), "trusted", "root", &root);
    put_crl(dir.path(), "trusted", "root", &crl(&root, &[], DAY));
    assert_eq!(check(dir.path(), &leaf(&root, 10)), Ok(2));
}

#[test]
fn chain_through_an_intermediate_in_issuer_is_accepted_and_needs_both_crls() {
    let (dir, _) = pki();
    let root = ca("root");
    let inter = make("inter", Kind::Ca, Some(&root), -DAY, 365 * DAY, 2);
    let c = leaf(&inter, 10);
    put_cert(dir.path(), "trusted", "root", &root);
    put_cert(dir.path(), "issuer", "inter", &inter);
    put_crl(dir.path(), "trusted", "root", &crl(&root, &[], DAY));
    // The intermediate's own CRL is missing: the leaf's revocation is unknown.
    assert_eq!(
        status(check(dir.path(), &c)),
        StatusCode::BadCertificateRevocationUnknown
    );
    put_crl(dir.path(), "issuer", "inter", &crl(&inter, &[], DAY));
    assert_eq!(check(dir.path(), &c), Ok(3));
    // An intermediate revoked by the root takes its certificates down with it.
    put_crl(dir.path(), "trusted", "root", &crl(&root, &[&inter], DAY));
    assert_eq!(
        status(check(dir.path(), &c)),
        StatusCode::BadCertificateIssuerRevoked
    );
}

#[test]
fn intermediate_only_in_issuer_is_not_a_trust_anchor() {
    let (dir, _) = pki();
    let root = ca("root");
    let inter = make("inter", Kind::Ca, Some(&root), -DAY, 365 * DAY, 2);
    put_cert(dir.path(), "issuer", "inter", &inter);
    put_crl(dir.path(), "issuer", "inter", &crl(&inter, &[], DAY));
    // Something unrelated in trusted/, so the chain search runs.
    put_cert(dir.path(), "trusted", "other", &ca("other"));
    assert!(matches!(
        check(dir.path(), &leaf(&inter, 10)),
        Err(ChainError::Untrusted(_))
    ));
}

#[test]
fn unknown_ca_is_untrusted() {
    let (dir, _) = pki();
    let root = ca("root");
    put_cert(dir.path(), "trusted", "root", &root);
    put_crl(dir.path(), "trusted", "root", &crl(&root, &[], DAY));
    let stranger = ca("stranger");
    assert!(matches!(
        check(dir.path(), &leaf(&stranger, 10)),
        Err(ChainError::Untrusted(_))
    ));
    // Same subject name as the trusted CA, different key: the signature does not verify.
    let impostor = ca("root");
    assert!(matches!(
        check(dir.path(), &leaf(&impostor, 10)),
        Err(ChainError::Untrusted(_))
    ));
    // A self-signed certificate that is not in trusted/ stays unknown, as before the patch.
    let selfsigned = make("client", Kind::Leaf, None, -DAY, DAY, 5);
    assert!(matches!(
        check(dir.path(), &selfsigned),
        Err(ChainError::Untrusted(_))
    ));
}

#[test]
fn revoked_certificate_is_refused() {
    let (dir, _) = pki();
    let root = ca("root");
    let good = leaf(&root, 10);
    let bad = leaf(&root, 11);
    put_cert(dir.path(), "trusted", "root", &root);
    put_crl(dir.path(), "trusted", "root", &crl(&root, &[&bad], DAY));
    assert_eq!(
        status(check(dir.path(), &bad)),
        StatusCode::BadCertificateRevoked
    );
    assert_eq!(check(dir.path(), &good), Ok(2));
}

#[test]
fn missing_expired_or_forged_crl_fails_closed() {
    let (dir, _) = pki();
    let root = ca("root");
    let c = leaf(&root, 10);
    put_cert(dir.path(), "trusted", "root", &root);
    assert_eq!(
        status(check(dir.path(), &c)),
        StatusCode::BadCertificateRevocationUnknown
    );
    put_crl(dir.path(), "trusted", "root", &crl(&root, &[], -60));
    assert_eq!(
        status(check(dir.path(), &c)),
        StatusCode::BadCertificateRevocationUnknown
    );
    // A CRL with the right issuer name signed by another key does not count.
    let impostor = ca("root");
    put_crl(dir.path(), "trusted", "root", &crl(&impostor, &[], DAY));
    assert_eq!(
        status(check(dir.path(), &c)),
        StatusCode::BadCertificateRevocationUnknown
    );
    // PEM CRLs are read too.
    std::fs::write(
        dir.path().join("trusted/crl/root.crl"),
        crl(&root, &[], DAY).to_pem().expect("pem"),
    )
    .expect("write");
    assert_eq!(check(dir.path(), &c), Ok(2));
}

#[test]
fn expired_certificate_or_issuer_is_refused() {
    let (dir, _) = pki();
    let root = ca("root");
    put_cert(dir.path(), "trusted", "root", &root);
    put_crl(dir.path(), "trusted", "root", &crl(&root, &[], DAY));
    let expired = make("client", Kind::Leaf, Some(&root), -10 * DAY, -DAY, 12);
    assert_eq!(
        status(check(dir.path(), &expired)),
        StatusCode::BadCertificateTimeInvalid
    );
    let future = make("client", Kind::Leaf, Some(&root), DAY, 10 * DAY, 13);
    assert_eq!(
        status(check(dir.path(), &future)),
        StatusCode::BadCertificateTimeInvalid
    );
    // The store's check_time switch also governs the chain check.
    assert_eq!(
        verify_chain(dir.path(), &expired.cert.to_der().expect("der"), false),
        Ok(2)
    );

    let (dir, _) = pki();
    let old_root = make("old root", Kind::Ca, None, -10 * DAY, -DAY, 1);
    put_cert(dir.path(), "trusted", "old", &old_root);
    put_crl(dir.path(), "trusted", "old", &crl(&old_root, &[], DAY));
    assert_eq!(
        status(check(dir.path(), &leaf(&old_root, 14))),
        StatusCode::BadCertificateIssuerTimeInvalid
    );
}

#[test]
fn issuer_that_is_not_a_ca_is_refused() {
    for kind in [Kind::LeafWithCertSign, Kind::NoBasicConstraints] {
        let (dir, _) = pki();
        let fake = make("fake ca", kind, None, -DAY, 365 * DAY, 1);
        put_cert(dir.path(), "trusted", "fake", &fake);
        put_crl(dir.path(), "trusted", "fake", &crl(&fake, &[], DAY));
        assert_eq!(
            status(check(dir.path(), &leaf(&fake, 10))),
            StatusCode::BadCertificateIssuerUseNotAllowed
        );
    }
}

/// The patch as the stack calls it: `validate_or_reject_application_instance_cert`.
#[test]
fn certificate_store_trusts_ca_issued_certificates_and_keeps_file_trust() {
    let (dir, store) = pki();
    let root = ca("root");
    put_cert(dir.path(), "trusted", "root", &root);
    put_crl(dir.path(), "trusted", "root", &crl(&root, &[], DAY));
    let as_store_cert = |c: &Cert| X509::from_der(&c.cert.to_der().expect("der")).expect("x509");
    let validate = |c: &X509| {
        store.validate_or_reject_application_instance_cert(
            c,
            SecurityPolicy::Basic256Sha256,
            Some("testhost"),
            Some(URI),
        )
    };
    let rejected = |c: &X509| {
        store
            .rejected_certs_dir()
            .join(CertificateStore::cert_file_name(c))
            .exists()
    };

    let good = as_store_cert(&leaf(&root, 10));
    assert!(validate(&good).is_ok());
    // Trust by chain does not copy the certificate anywhere.
    assert!(!store
        .trusted_certs_dir()
        .join(CertificateStore::cert_file_name(&good))
        .exists());

    // The usual checks still apply after the chain: a wrong application URI is refused.
    let r = store.validate_or_reject_application_instance_cert(
        &good,
        SecurityPolicy::Basic256Sha256,
        None,
        Some("urn:someone:else"),
    );
    assert_eq!(
        r.map_err(|e| e.status()),
        Err(StatusCode::BadCertificateUriInvalid)
    );

    // Revoked: refused with its Part 4 code and not parked in rejected/, so nothing sticks
    // when a later CRL or certificate changes the answer.
    let bad_cert = leaf(&root, 11);
    let bad = as_store_cert(&bad_cert);
    put_crl(
        dir.path(),
        "trusted",
        "root",
        &crl(&root, &[&bad_cert], DAY),
    );
    assert_eq!(
        validate(&bad).map_err(|e| e.status()),
        Err(StatusCode::BadCertificateRevoked)
    );
    assert!(!rejected(&bad));
    assert!(validate(&good).is_ok());

    // Unknown CA: untrusted and parked in rejected/, exactly as upstream does for unknown
    // certificates.
    let stranger = as_store_cert(&leaf(&ca("stranger"), 12));
    assert_eq!(
        validate(&stranger).map_err(|e| e.status()),
        Err(StatusCode::BadCertificateUntrusted)
    );
    assert!(rejected(&stranger));

    // A self-signed certificate trusted by its own file works as before, with no CRL.
    let own = make("peer", Kind::Leaf, None, -DAY, 30 * DAY, 20);
    let own_cert = as_store_cert(&own);
    std::fs::write(
        store
            .trusted_certs_dir()
            .join(CertificateStore::cert_file_name(&own_cert)),
        own.cert.to_der().expect("der"),
    )
    .expect("write");
    assert!(validate(&own_cert).is_ok());
}
