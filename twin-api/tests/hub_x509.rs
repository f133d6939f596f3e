//! X.509 devices with Microsoft's device SDK (`azure-iot-device` 2.14.0): a `selfSigned`
//! device by its thumbprint, a `certificateAuthority` device by a chain to a CA in the hub's
//! trust file; a certificate of a foreign CA, a wrong thumbprint and a certificate the CA's
//! CRL revokes (added to the trust file while the hub runs) are refused at CONNACK.
//! The vault as that CA, end to end, is in the root `tests/hub_vault_x509.rs`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use harness::{TwinApi, ADMIN};
use iiot_testkit::{temp_dir, Mosquitto};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, RevokedCertParams, SerialNumber,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const IP: &str = "127.0.0.73";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let cert = p.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(p, key),
    }
}

/// A client certificate for `cn`, signed by `ca` (or self-signed), as files; its DER.
fn client_cert(dir: &Path, cn: &str, ca: Option<&Ca>, serial: u64) -> (PathBuf, PathBuf, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.serial_number = Some(SerialNumber::from(serial));
    let cert = match ca {
        Some(ca) => p.signed_by(&key, &ca.issuer).unwrap(),
        None => p.self_signed(&key).unwrap(),
    };
    let (c, k) = (dir.join(format!("{cn}.pem")), dir.join(format!("{cn}.key")));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k, cert.der().to_vec())
}

/// Connects with the SDK and reports the first event (`ready` or `connect-failed`).
async fn connect(dir: &Path, device: &str, cert: &Path, key: &Path) -> Value {
    let out = tokio::process::Command::new(repo().join("tests/peers/.venv-azure/bin/python"))
        .arg(repo().join("tests/peers/hub_device_client.py"))
        .arg("--ca-file")
        .arg(dir.join("data/hub-ca.pem"))
        .args(["--x509", "--hostname", IP, "--device-id", device])
        .arg("--cert-file")
        .arg(cert)
        .arg("--key-file")
        .arg(key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("the SDK client ends")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["event"] == "ready" || l["event"] == "connect-failed")
        .unwrap_or_else(|| panic!("no connect outcome in {text}"))
}

async fn put(api: &TwinApi, id: &str, body: Value) {
    let (s, _, b) = api
        .send(
            Method::PUT,
            &format!("/devices/{id}"),
            Some(ADMIN),
            &[],
            Some(body.to_string().into_bytes()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_devices_by_thumbprint_and_by_ca_with_its_crl() {
    let dir = temp_dir("hub-x509");
    let trusted = ca("plant CA");
    let foreign = ca("someone else's CA");
    let trust = dir.join("trust.pem");
    std::fs::write(&trust, &trusted.pem).unwrap();
    let broker = Mosquitto::start().await;
    let trust_file = trust.clone();
    let api = TwinApi::start(&broker.url(), &dir.join("data"), move |c| {
        c.http_bind = format!("{IP}:0").parse().unwrap();
        c.hub.hostname = IP.into();
        c.hub.device_port = Some(8883);
        c.hub.trust = Some(trust_file);
    })
    .await;

    // selfSigned: the thumbprint decides.
    let (c, k, der) = client_cert(&dir, "dev-ss", None, 1);
    let (sha1, _) = iiot_twin_api::hub::endpoint::x509::thumbprints(&der);
    put(
        &api,
        "dev-ss",
        json!({"authentication": {"type": "selfSigned",
            "x509Thumbprint": {"primaryThumbprint": sha1}}}),
    )
    .await;
    assert_eq!(connect(&dir, "dev-ss", &c, &k).await["event"], "ready");
    let (c2, k2, _) = client_cert(&dir, "dev-ss-other", None, 2);
    assert_eq!(
        connect(&dir, "dev-ss", &c2, &k2).await["event"],
        "connect-failed"
    );

    // certificateAuthority: chain to the trusted CA and CN = device id.
    for id in ["dev-ca", "dev-revoked"] {
        put(
            &api,
            id,
            json!({"authentication": {"type": "certificateAuthority"}}),
        )
        .await;
    }
    let (c, k, _) = client_cert(&dir, "dev-ca", Some(&trusted), 10);
    assert_eq!(connect(&dir, "dev-ca", &c, &k).await["event"], "ready");
    let (fc, fk, _) = client_cert(&dir, "dev-ca-foreign", Some(&foreign), 11);
    std::fs::rename(&fc, dir.join("foreign.pem")).unwrap();
    std::fs::rename(&fk, dir.join("foreign.key")).unwrap();
    assert_eq!(
        connect(
            &dir,
            "dev-ca",
            &dir.join("foreign.pem"),
            &dir.join("foreign.key")
        )
        .await["event"],
        "connect-failed"
    );
    // A trusted certificate naming another device is not this device's.
    assert_eq!(
        connect(&dir, "dev-revoked", &c, &k).await["event"],
        "connect-failed"
    );
    let (rc, rk, _) = client_cert(&dir, "dev-revoked", Some(&trusted), 12);
    assert_eq!(
        connect(&dir, "dev-revoked", &rc, &rk).await["event"],
        "ready"
    );

    // The CA revokes serial 12; the hub reads the new trust file while running.
    let now = time::OffsetDateTime::now_utc();
    let crl = CertificateRevocationListParams {
        this_update: now - time::Duration::minutes(1),
        next_update: now + time::Duration::days(1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(12u64),
            revocation_time: now - time::Duration::minutes(1),
            reason_code: None,
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&trusted.issuer)
    .unwrap();
    std::fs::write(&trust, format!("{}{}", trusted.pem, crl.pem().unwrap())).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        connect(&dir, "dev-revoked", &rc, &rk).await["event"],
        "connect-failed"
    );
    assert_eq!(connect(&dir, "dev-ca", &c, &k).await["event"], "ready");
    api.shutdown().await;
}
