//! plc-sim's Part 12 push face driven by our own push client (`iiot_gds::push_client`): who
//! may push, a full push (CSR → CA-signed certificate → trust list → ApplyChanges) seen by the
//! next session, a server-made key (kept across a restart), a staged certificate that belongs
//! to its session and survives a failed ApplyChanges, and bad input that must be refused with
//! its exact status and change nothing.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::Path, path::PathBuf, sync::Arc, time::Duration};

use iiot_gds::pki::{new_rsa_key, stack_file_name, thumbprint};
use iiot_gds::push_client::{PushClient, PushError};
use iiot_gds::trust_list::{TrustLists, ALL, TRUSTED_CERTIFICATES, TRUSTED_CRLS};
use iiot_plc_sim::{PlcSim, PlcSimConfig, LOG_FILTER_DIRECTIVES};
use opcua::client::{Client, ClientBuilder, IdentityToken, Session};
use opcua::crypto::SecurityPolicy;
use opcua::types::MessageSecurityMode::{Sign, SignAndEncrypt};
use opcua::types::{
    ByteString, CallMethodRequest, MessageSecurityMode, MethodId, NodeId, ObjectId, ObjectTypeId,
    StatusCode, UAString,
};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{HasPublic, PKey, PKeyRef, Private, Public};
use openssl::x509::extension::{
    AuthorityKeyIdentifier as Aki, BasicConstraints, CrlNumber, ExtendedKeyUsage, KeyUsage,
    SubjectAlternativeName, SubjectKeyIdentifier as Ski,
};
use openssl::x509::{X509Builder, X509CrlBuilder, X509Extension, X509NameBuilder, X509NameRef};
use openssl::x509::{X509Req, X509};

const ADMIN: (&str, &str) = ("admin", "admin-secret");
/// Where plc-sim keeps a key it made until the certificate for it is applied.
const PENDING_KEY: &str = "private/push-pending-key.pem";
const USER: (&str, &str) = ("user1", "password");

/// The status of a refused push call; anything else fails the test.
macro_rules! refuses {
    ($call:expr => $status:ident) => {
        match $call.await {
            Err(PushError::Refused { status, .. }) => assert_eq!(status, StatusCode::$status),
            other => panic!("{}: {other:?}", stringify!($call)),
        }
    };
}

fn scratch(name: &str) -> PathBuf {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
            "info,{LOG_FILTER_DIRECTIVES}"
        )))
        .with_test_writer()
        .try_init();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("plc-sim-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A client with its own certificate. Trusting the server blindly is acceptable here only: it
/// is the server under test, and its certificate changes on purpose.
fn client(pki: &Path) -> (Client, Vec<u8>) {
    let client = ClientBuilder::new()
        .pki_dir(pki)
        .application_name("push test client")
        .application_uri("urn:iiot:plc-sim:push-test-client")
        .session_retry_limit(0)
        .create_sample_keypair(true)
        .trust_server_certs(true)
        .client()
        .unwrap();
    (client, std::fs::read(pki.join("own/cert.der")).unwrap())
}

async fn connect(
    client: &mut Client,
    url: &str,
    mode: MessageSecurityMode,
    (user, password): (&str, &str),
) -> Result<Arc<Session>, StatusCode> {
    let endpoint = (url, SecurityPolicy::Basic256Sha256.to_str(), mode);
    let identity = IdentityToken::new_user_name(user, password);
    let connecting = client.connect_to_matching_endpoint(endpoint, identity);
    let (session, event_loop) = connecting.await.map_err(|e| e.status())?;
    let mut event_loop = event_loop.spawn();
    tokio::time::timeout(Duration::from_secs(15), async {
        tokio::select! {
            ok = session.wait_for_connection() => {
                if ok { Ok(()) } else { Err(StatusCode::BadConnectionClosed) }
            }
            ended = &mut event_loop => Err(ended.unwrap_or(StatusCode::BadInternalError)),
        }
    })
    .await
    .unwrap_or(Err(StatusCode::BadTimeout))
    .map(|()| session)
}

async fn push_client(client: &mut Client, url: &str, mode: MessageSecurityMode) -> PushClient {
    PushClient::new(connect(client, url, mode, ADMIN).await.unwrap())
}

fn key_of(der: &[u8]) -> PKey<Public> {
    X509::from_der(der).unwrap().public_key().unwrap()
}

fn csr_key(csr: &[u8]) -> PKey<Public> {
    X509Req::from_der(csr).unwrap().public_key().unwrap()
}

fn sorted(mut list: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    list.sort();
    list
}

/// A test CA made with the openssl crate: self-signed, with an empty CRL.
struct Ca {
    key: PKey<Private>,
    cert: X509,
}

/// A certificate builder with everything but extensions and signature.
fn builder(
    subject: &X509NameRef,
    issuer: &X509NameRef,
    key: &PKeyRef<impl HasPublic>,
) -> X509Builder {
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(subject).unwrap();
    b.set_issuer_name(issuer).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    b
}

impl Ca {
    fn new(cn: &str) -> Ca {
        let key = new_rsa_key(2048).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = builder(&name, &name, &key);
        let ski = Ski::new().build(&b.x509v3_context(None, None)).unwrap();
        let bc = BasicConstraints::new().critical().ca().build().unwrap();
        let ku = KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .unwrap();
        for e in [ski, bc, ku] {
            b.append_extension(e).unwrap();
        }
        b.sign(&key, MessageDigest::sha256()).unwrap();
        let cert = b.build();
        Ca { key, cert }
    }

    fn der(&self) -> Vec<u8> {
        self.cert.to_der().unwrap()
    }

    /// An application instance certificate for `key` with `extensions` (the SAN) added.
    fn issue(
        &self,
        subject: &X509NameRef,
        key: &PKeyRef<Public>,
        extensions: Vec<X509Extension>,
    ) -> Vec<u8> {
        let mut b = builder(subject, self.cert.subject_name(), key);
        let ctx = b.x509v3_context(Some(&self.cert), None);
        let ski = Ski::new().build(&ctx).unwrap();
        let aki = Aki::new().keyid(true).build(&ctx).unwrap();
        let bc = BasicConstraints::new().critical().build().unwrap();
        let mut ku = KeyUsage::new();
        ku.critical()
            .digital_signature()
            .non_repudiation()
            .key_encipherment();
        let ku = ku.data_encipherment().build().unwrap();
        let eku = ExtendedKeyUsage::new()
            .server_auth()
            .client_auth()
            .build()
            .unwrap();
        for e in extensions.into_iter().chain([ski, aki, bc, ku, eku]) {
            b.append_extension(e).unwrap();
        }
        b.sign(&self.key, MessageDigest::sha256()).unwrap();
        b.build().to_der().unwrap()
    }

    /// Signs a CSR as it stands: its subject, key and subjectAltName.
    fn sign(&self, csr_der: &[u8]) -> Vec<u8> {
        let csr = X509Req::from_der(csr_der).unwrap();
        let key = csr.public_key().unwrap();
        assert!(csr.verify(&key).unwrap(), "CSR signature");
        let extensions = csr.extensions().unwrap().into_iter().collect();
        self.issue(csr.subject_name(), &key, extensions)
    }

    fn crl(&self) -> Vec<u8> {
        let mut crl = X509CrlBuilder::new().unwrap();
        crl.set_issuer_name(self.cert.subject_name()).unwrap();
        crl.set_last_update(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        crl.set_next_update(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        let b = X509Builder::new().unwrap();
        let aki = Aki::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(&self.cert), None));
        crl.append_extension(aki.unwrap()).unwrap();
        let number = CrlNumber::new(BigNum::from_u32(1).unwrap()).unwrap();
        crl.append_extension(number.build().unwrap()).unwrap();
        crl.sign(&self.key, MessageDigest::sha256()).unwrap();
        crl.build().unwrap().to_der().unwrap()
    }
}

/// A started plc-sim that trusts one client (by its own file), and that client's admin
/// session over SignAndEncrypt.
struct Setup {
    dir: PathBuf,
    pki: PathBuf,
    sim: PlcSim,
    url: String,
    client: Client,
    client_cert: Vec<u8>,
    admin: PushClient,
}

fn sim_config(pki: &Path) -> PlcSimConfig {
    PlcSimConfig {
        port: 0,
        pki_dir: pki.to_path_buf(),
        security_admins: vec![(ADMIN.0.into(), ADMIN.1.into())],
        fast_nodes: 1,
        slow_nodes: 1,
        ..Default::default()
    }
}

async fn setup(name: &str) -> Setup {
    let dir = scratch(name);
    let pki = dir.join("server");
    let (mut client, client_cert) = client(&dir.join("client"));
    let trusted = pki.join("trusted");
    std::fs::create_dir_all(&trusted).unwrap();
    let name = stack_file_name(&client_cert).unwrap();
    std::fs::write(trusted.join(name), &client_cert).unwrap();
    let sim = PlcSim::start(sim_config(&pki)).await.unwrap();
    let url = sim.endpoint_url();
    let admin = push_client(&mut client, &url, SignAndEncrypt).await;
    Setup {
        dir,
        pki,
        sim,
        url,
        client,
        client_cert,
        admin,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_push_a_certificate_and_trust_list_that_new_sessions_see() {
    let mut s = setup("push").await;
    let admin = &s.admin;
    let self_signed = s.sim.server_certificate_der();

    // Only a security administrator, and only over SignAndEncrypt: over Sign the administrator
    // cannot even sign in, and any session there is refused the calls.
    let user = connect(&mut s.client, &s.url, SignAndEncrypt, USER).await;
    let user = PushClient::new(user.unwrap());
    refuses!(user.create_signing_request(false) => BadUserAccessDenied);
    refuses!(user.read_trust_list(ALL) => BadUserAccessDenied);
    let signed = connect(&mut s.client, &s.url, Sign, ADMIN).await;
    assert_eq!(signed.err(), Some(StatusCode::BadIdentityTokenRejected));
    let signed = PushClient::new(connect(&mut s.client, &s.url, Sign, USER).await.unwrap());
    refuses!(signed.create_signing_request(false) => BadSecurityModeInsufficient);
    refuses!(signed.add_certificate(&s.client_cert, true) => BadSecurityModeInsufficient);

    // What the server declares before a push.
    let formats = admin.supported_private_key_formats().await.unwrap();
    assert_eq!(formats, ["PEM"]);
    let rsa = NodeId::from(ObjectTypeId::RsaSha256ApplicationCertificateType);
    assert_eq!(admin.certificate_types().await.unwrap(), [rsa]);
    assert_eq!(admin.max_trust_list_size().await.unwrap(), 1 << 20);

    // CSR for the current key → CA-signed certificate, staged until ApplyChanges.
    let ca = Ca::new("push test CA");
    let crl = ca.crl();
    let csr = admin.create_signing_request(false).await.unwrap();
    assert!(csr_key(&csr).public_eq(&key_of(&self_signed)));
    let cert = ca.sign(&csr);
    let staged = admin.update_certificate(&cert, &[ca.der()], None).await;
    assert!(staged.unwrap(), "ApplyChanges is required");
    assert_eq!(s.sim.server_certificate_der(), self_signed, "too early");

    // The trust list: the CA, its CRL and this client (trusted by its own file).
    let lists = TrustLists {
        trusted_certificates: vec![ca.der(), s.client_cert.clone()],
        trusted_crls: vec![crl.clone()],
        ..Default::default()
    };
    let masks = TRUSTED_CERTIFICATES | TRUSTED_CRLS;
    let apply_required = admin.write_trust_list(&lists, masks).await.unwrap();
    assert!(!apply_required, "plc-sim reads trust lists per session");
    let read = admin.read_trust_list(masks).await.unwrap();
    let wanted = sorted(lists.trusted_certificates);
    assert_eq!(sorted(read.trusted_certificates), wanted);
    assert_eq!(read.trusted_crls, [crl]);

    // Applied: new channels and GetEndpoints present the new certificate, the chain is kept,
    // and a channel secured with the old one is closed at its next request (Part 12 §7.10.7).
    assert!(user.supported_private_key_formats().await.is_ok());
    admin.apply_changes().await.unwrap();
    assert_eq!(s.sim.server_certificate_der(), cert);
    assert!(
        user.supported_private_key_formats().await.is_ok(),
        "grace period"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let cut = user.supported_private_key_formats().await;
    assert!(
        cut.as_ref()
            .err()
            .and_then(|e| e.status())
            .is_some_and(|st| st != StatusCode::Good),
        "the old channel still answers: {cut:?}"
    );
    let endpoints = s.client.get_server_endpoints_from_url(s.url.as_str()).await;
    let endpoints = endpoints.unwrap().into_iter();
    let secure: Vec<_> = endpoints
        .filter(|e| e.security_mode != MessageSecurityMode::None)
        .collect();
    assert_eq!(secure.len(), 6);
    for ep in secure {
        assert_eq!(ep.server_certificate.as_ref(), &cert[..]);
    }
    let fresh = push_client(&mut s.client, &s.url, SignAndEncrypt).await;
    let issuer = format!("issuer/push-{}.der", thumbprint(&ca.der()));
    let issuer = std::fs::read(s.pki.join(issuer));
    assert_eq!(issuer.unwrap(), ca.der(), "the chain is not in issuer/");

    // A key the server makes and keeps: the next certificate is for it.
    let csr = fresh.create_signing_request(true).await.unwrap();
    let new_key = csr_key(&csr);
    assert!(!new_key.public_eq(&key_of(&cert)), "key not regenerated");
    let renewed = ca.sign(&csr);
    let staged = fresh.update_certificate(&renewed, &[ca.der()], None).await;
    assert!(staged.unwrap());
    fresh.apply_changes().await.unwrap();
    assert_eq!(s.sim.server_certificate_der(), renewed);
    assert!(key_of(&renewed).public_eq(&new_key));
    let stored = iiot_gds::pki::read_private_key(&s.pki.join("private/private.pem"));
    assert!(stored.unwrap().unwrap().public_eq(&new_key), "key file");
    assert!(
        !s.pki.join(PENDING_KEY).exists(),
        "the installed key is still pending"
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let s = setup("push-bad").await;
    let admin = &s.admin;
    let ca = Ca::new("push test CA");
    let current = s.sim.server_certificate_der();

    // A stranger's certificate, parked in rejected/ by the stack, is listed.
    let (mut stranger, stranger_cert) = client(&s.dir.join("stranger"));
    let denied = connect(&mut stranger, &s.url, SignAndEncrypt, ADMIN).await;
    assert_eq!(denied.err(), Some(StatusCode::BadCertificateUntrusted));
    assert_eq!(admin.rejected_list().await.unwrap(), [stranger_cert]);

    // Certificates the server must not install.
    let csr = admin.create_signing_request(false).await.unwrap();
    let req = X509Req::from_der(&csr).unwrap();
    let other_key = new_rsa_key(2048).unwrap();
    let other_key = PKey::public_key_from_der(&other_key.public_key_to_der().unwrap()).unwrap();
    let san = req.extensions().unwrap().into_iter().collect();
    let wrong_key = ca.issue(req.subject_name(), &other_key, san);
    refuses!(admin.update_certificate(&wrong_key, &[ca.der()], None) => BadSecurityChecksFailed);
    let b = X509Builder::new().unwrap();
    let mut other_uri = SubjectAlternativeName::new();
    let other_uri = other_uri.uri("urn:somebody:else").dns("localhost");
    let other_uri = other_uri.build(&b.x509v3_context(None, None)).unwrap();
    let wrong_uri = ca.issue(req.subject_name(), &csr_key(&csr), vec![other_uri]);
    refuses!(admin.update_certificate(&wrong_uri, &[ca.der()], None) => BadCertificateUriInvalid);
    refuses!(admin.update_certificate(b"not a certificate", &[], None) => BadCertificateInvalid);
    let good = ca.sign(&csr);
    let foreign_chain = [Ca::new("another CA").der()];
    refuses!(admin.update_certificate(&good, &foreign_chain, None) => BadSecurityChecksFailed);
    let pfx = Some(("PFX", &b"\x30\x82"[..]));
    refuses!(admin.update_certificate(&good, &[ca.der()], pfx) => BadNotSupported);
    // A group plc-sim does not have (PushClient always names the DefaultApplicationGroup).
    let unknown_group = CallMethodRequest {
        object_id: ObjectId::ServerConfiguration.into(),
        method_id: MethodId::ServerConfiguration_CreateSigningRequest.into(),
        input_arguments: Some(vec![
            NodeId::new(0, 999_999u32).into(),
            NodeId::from(ObjectTypeId::RsaSha256ApplicationCertificateType).into(),
            UAString::null().into(),
            false.into(),
            ByteString::null().into(),
        ]),
    };
    let result = admin.session().call_one(unknown_group).await.unwrap();
    assert_eq!(result.status_code, StatusCode::BadInvalidArgument);
    // Nothing was staged (Part 12 §7.10.7): the certificate stays.
    refuses!(admin.apply_changes() => BadNothingToDo);
    assert_eq!(s.sim.server_certificate_der(), current);

    // Trust list writes that must leave the list as it was.
    let before = admin.read_trust_list(ALL).await.unwrap();
    let only_client = std::slice::from_ref(&s.client_cert);
    assert_eq!(before.trusted_certificates, only_client);
    refuses!(admin.write_trust_list_file(b"garbage") => BadDecodingError);
    assert_eq!(admin.read_trust_list(ALL).await.unwrap(), before);
    let garbage = TrustLists {
        trusted_certificates: vec![ca.der(), b"not a certificate".to_vec()],
        ..Default::default()
    };
    refuses!(admin.write_trust_list(&garbage, ALL) => BadCertificateInvalid);
    assert_eq!(admin.read_trust_list(ALL).await.unwrap(), before);
    refuses!(admin.open(0x02) => BadInvalidArgument);

    // AddCertificate waits for the file to be closed; RemoveCertificate takes the CRLs along.
    let handle = admin.open(0x06).await.unwrap();
    refuses!(admin.add_certificate(&ca.der(), true) => BadInvalidState);
    admin.close(handle).await.unwrap();
    refuses!(admin.remove_certificate(&"00".repeat(20), true) => BadInvalidArgument);
    let with_ca = TrustLists {
        trusted_certificates: vec![ca.der(), s.client_cert.clone()],
        trusted_crls: vec![ca.crl()],
        ..Default::default()
    };
    let masks = TRUSTED_CERTIFICATES | TRUSTED_CRLS;
    admin.write_trust_list(&with_ca, masks).await.unwrap();
    let ca_thumbprint = thumbprint(&ca.der()).to_uppercase();
    admin
        .remove_certificate(&ca_thumbprint, true)
        .await
        .unwrap();
    let after = admin.read_trust_list(ALL).await.unwrap();
    assert_eq!(after.trusted_certificates, only_client);
    assert!(after.trusted_crls.is_empty(), "the CA's CRL stayed");

    // AddCertificate takes no CA (its CRL cannot come along) and nothing untrusted (an
    // issuer is a CA): Part 12 §7.8.2.6. An application certificate it adds.
    refuses!(admin.add_certificate(&ca.der(), true) => BadCertificateInvalid);
    refuses!(admin.add_certificate(&ca.der(), false) => BadCertificateInvalid);
    refuses!(admin.add_certificate(&good, false) => BadCertificateInvalid);
    assert_eq!(admin.read_trust_list(ALL).await.unwrap(), after);
    admin.add_certificate(&good, true).await.unwrap();
    let added = admin.read_trust_list(ALL).await.unwrap();
    let wanted = sorted(vec![good.clone(), s.client_cert.clone()]);
    assert_eq!(sorted(added.trusted_certificates), wanted);
    assert!(added.issuer_certificates.is_empty());
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_belongs_to_its_session_and_survives_a_failed_apply() {
    let mut s = setup("push-staging").await;
    let admin = &s.admin;
    let other = push_client(&mut s.client, &s.url, SignAndEncrypt).await;
    let ca = Ca::new("push test CA");
    let current = s.sim.server_certificate_der();
    let key_file = s.pki.join("private/private.pem");
    let old_key = std::fs::read(&key_file).unwrap();

    let csr = admin.create_signing_request(true).await.unwrap();
    let cert = ca.sign(&csr);
    assert!(admin
        .update_certificate(&cert, &[ca.der()], None)
        .await
        .unwrap());

    // Another session's ApplyChanges has nothing of its own to apply.
    refuses!(other.apply_changes() => BadNothingToDo);
    assert_eq!(s.sim.server_certificate_der(), current);

    // Not while a TrustList is open for writing (Part 12 §7.10.7), whoever writes it.
    let handle = other.open(0x06).await.unwrap();
    refuses!(admin.apply_changes() => BadInvalidState);
    other.close(handle).await.unwrap();

    // The certificate cannot be stored: nothing changes, on disk or in the server, and the
    // staged certificate waits for a retry.
    let cert_file = s.pki.join("own/cert.der");
    let own_cert = std::fs::read(&cert_file).unwrap();
    std::fs::remove_file(&cert_file).unwrap();
    std::fs::create_dir_all(cert_file.join("in-the-way")).unwrap();
    refuses!(admin.apply_changes() => BadInternalError);
    assert_eq!(s.sim.server_certificate_der(), current);
    assert_eq!(
        std::fs::read(&key_file).unwrap(),
        old_key,
        "the key changed alone"
    );
    assert!(s.pki.join(PENDING_KEY).exists());
    let leftovers: Vec<_> = std::fs::read_dir(&s.pki)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::remove_dir_all(&cert_file).unwrap();
    std::fs::write(&cert_file, own_cert).unwrap();

    admin.apply_changes().await.unwrap();
    assert_eq!(s.sim.server_certificate_der(), cert);
    let stored = iiot_gds::pki::read_private_key(&key_file).unwrap().unwrap();
    assert!(stored.public_eq(&csr_key(&csr)));
    assert_eq!(std::fs::read(&cert_file).unwrap(), cert);
    assert!(!s.pki.join(PENDING_KEY).exists());
    refuses!(admin.apply_changes() => BadNothingToDo);
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_key_waits_on_disk_for_its_certificate_across_a_restart() {
    let mut s = setup("push-pending-key").await;
    let ca = Ca::new("push test CA");
    let csr = s.admin.create_signing_request(true).await.unwrap();
    let pending = s.pki.join(PENDING_KEY);
    let stored = iiot_gds::pki::read_private_key(&pending).unwrap().unwrap();
    assert!(stored.public_eq(&csr_key(&csr)));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&pending), 0o600);
        assert_eq!(mode(&s.pki.join("private")), 0o700);
    }

    // A later request for a new key replaces the pending one.
    let csr = s.admin.create_signing_request(true).await.unwrap();
    let stored = iiot_gds::pki::read_private_key(&pending).unwrap().unwrap();
    assert!(stored.public_eq(&csr_key(&csr)));

    // The certificate manager answers after a restart.
    s.sim.shutdown().await;
    let sim = PlcSim::start(sim_config(&s.pki)).await.unwrap();
    let admin = push_client(&mut s.client, &sim.endpoint_url(), SignAndEncrypt).await;
    let cert = ca.sign(&csr);
    assert!(admin
        .update_certificate(&cert, &[ca.der()], None)
        .await
        .unwrap());
    admin.apply_changes().await.unwrap();
    assert_eq!(sim.server_certificate_der(), cert);
    assert!(!pending.exists(), "the installed key is still pending");
    let key = iiot_gds::pki::read_private_key(&s.pki.join("private/private.pem"));
    assert!(key.unwrap().unwrap().public_eq(&csr_key(&csr)));
    sim.shutdown().await;
}
