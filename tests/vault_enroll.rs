//! Enrolment end to end (issue 5, test 2): a certificate issued by `iiot vault` is used by a
//! real OPC UA client we did not write (Python asyncua) to connect with Basic256Sha256
//! SignAndEncrypt to plc-sim, which trusts only the vault's CA and its CRL, nothing about the
//! client itself. Then the negative cases: the same certificate after revocation (with the
//! new CRL given to plc-sim), and a certificate from another CA, are both refused.
//!
//! CA-based trust in the OPC UA stack is our patch to the vendored async-opcua-crypto
//! (vendor/PATCHES.md, "CA-based trust"); without it the first connection is refused.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, temp_dir, Proc};
use reqwest::Method;
use serde_json::{json, Value};

const WRITER: &str = "enrol-writer-key-0123456789";
const APPROVER: &str = "enrol-approver-key-0123456789";
const READER: &str = "enrol-reader-key-0123456789";
const GROUP: &str = "DefaultApplicationGroup";
const RSA: &str = "RsaSha256ApplicationCertificateType";
const CLIENT_URI: &str = "urn:iiot:test:enrolled-asyncua-client";

struct Vault {
    base: String,
    _proc: Proc,
}

impl Vault {
    async fn start(dir: &Path) -> Vault {
        let port = free_port();
        std::fs::create_dir_all(dir).expect("vault dir");
        let keys = dir.join("keys.json");
        std::fs::write(
            &keys,
            json!([
                {"name": "ops", "key": WRITER, "roles": ["writer"]},
                {"name": "sec", "key": APPROVER, "roles": ["approver"]},
                {"name": "viewer", "key": READER, "roles": ["reader"]}
            ])
            .to_string(),
        )
        .expect("keys file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_iiot"))
            .args(["--log", "warn", "vault", "--http-host", "127.0.0.1"])
            .arg("--http-port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(dir)
            .arg("--api-keys")
            .arg(&keys)
            .arg("--kek-file")
            .arg(dir.join("kek"))
            .args(["--cert-types", "RsaSha256"])
            .env_remove("RUST_LOG")
            .env_remove("IIOT_KEK")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn iiot vault");
        let deadline = Instant::now() + Duration::from_secs(60);
        let health = format!("http://127.0.0.1:{port}/healthz");
        loop {
            if let Ok(r) = reqwest::get(&health).await {
                if r.status().is_success() {
                    break;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("iiot vault exited early: {status}");
            }
            assert!(Instant::now() < deadline, "iiot vault did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Vault {
            base: format!("http://127.0.0.1:{port}"),
            _proc: Proc(child),
        }
    }

    async fn ok(&self, method: Method, path: &str, key: &str, body: Option<&Value>) -> Value {
        let mut req = reqwest::Client::new()
            .request(method.clone(), format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {key}"));
        if let Some(body) = body {
            req = req.json(body);
        }
        let res = req.send().await.expect("HTTP request");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Writes the group's trust list into plc-sim's PKI: CA certificates in `trusted/`, their
    /// CRLs in `trusted/crl/` (overwriting the previous CRL files).
    async fn install_trust_list(&self, pki: &Path) {
        let tl = self
            .ok(
                Method::GET,
                &format!("/v2/groups/{GROUP}/trustlist?certificateType={RSA}"),
                READER,
                None,
            )
            .await;
        let certs = tl["trustedCertificates"].as_array().expect("certs");
        let crls = tl["trustedCrls"].as_array().expect("crls");
        assert!(!certs.is_empty() && !crls.is_empty(), "{tl}");
        std::fs::create_dir_all(pki.join("trusted/crl")).expect("pki dirs");
        for (i, c) in certs.iter().enumerate() {
            std::fs::write(
                pki.join(format!("trusted/vault-ca-{i}.der")),
                unb64(c.as_str().expect("b64")),
            )
            .expect("ca");
        }
        for (i, c) in crls.iter().enumerate() {
            std::fs::write(
                pki.join(format!("trusted/crl/vault-ca-{i}.crl")),
                unb64(c.as_str().expect("b64")),
            )
            .expect("crl");
        }
    }
}

/// Base64 decoder kept in the test so it does not trust the vault's encoder.
fn unb64(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client certificate for the same application URI, issued by a CA of our own making
/// with the openssl command line: a perfectly good chain, just not to a CA plc-sim trusts.
fn foreign_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "other-ca.key",
            "-out",
            "other-ca.pem",
            "-subj",
            "/CN=Some other CA",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        dir,
    );
    openssl(
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "other-key.pem",
            "-out",
            "other.csr",
            "-subj",
            "/CN=asyncua enrol client",
        ],
        dir,
    );
    std::fs::write(
        dir.join("other.ext"),
        format!(
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,nonRepudiation,keyEncipherment,dataEncipherment\n\
             extendedKeyUsage=clientAuth,serverAuth\n\
             subjectAltName=URI:{CLIENT_URI},DNS:localhost\n"
        ),
    )
    .expect("ext file");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "other.csr",
            "-CA",
            "other-ca.pem",
            "-CAkey",
            "other-ca.key",
            "-CAcreateserial",
            "-days",
            "10",
            "-sha256",
            "-extfile",
            "other.ext",
            "-outform",
            "DER",
            "-out",
            "other.der",
        ],
        dir,
    );
    (dir.join("other.der"), dir.join("other-key.pem"))
}

/// Runs the asyncua client with `cert`/`key`; answers (exit code, JSON line it printed).
async fn asyncua_connect(url: &str, cert: &Path, key: &Path) -> (i32, Value) {
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers");
    let python = peers.join(".venv/bin/python");
    assert!(
        python.exists(),
        "asyncua is not installed: run scripts/install-peers.sh"
    );
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(python)
            .arg(peers.join("asyncua_vault_client.py"))
            .args(["--url", url, "--app-uri", CLIENT_URI])
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .args(["--ns-uri", "urn:iiot:plc-sim", "--node", "Scalar/Int32"])
            .output(),
    )
    .await
    .expect("asyncua client hung")
    .expect("run asyncua client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "no JSON from the client: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

/// The client saw the server refuse the session with `status` (the Part 4 code of the check
/// that failed), not some unrelated error.
fn assert_refused_with(v: &Value, status: &str) {
    assert_eq!(v["connected"], false, "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.contains(status), "expected {status}, got {v}");
}

/// Files in plc-sim's `rejected/` folder.
fn rejected(pki: &Path) -> usize {
    std::fs::read_dir(pki.join("rejected"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_issued_certificate_connects_to_plc_sim_until_revoked() {
    let dir = temp_dir("vault-enroll");
    let vault = Vault::start(&dir.join("vault")).await;

    // Enrol: register the client application, a key pair request, approval, one fetch.
    let app = vault
        .ok(
            Method::POST,
            "/v2/applications",
            WRITER,
            Some(&json!({
                "applicationUri": CLIENT_URI,
                "applicationType": "Client",
                "applicationNames": [{"locale": "en", "text": "asyncua enrol client"}],
                "productUri": "urn:iiot:test:product"
            })),
        )
        .await["applicationId"]
        .as_str()
        .expect("applicationId")
        .to_string();
    let id = vault
        .ok(
            Method::PUT,
            "/v2/requests/keypair",
            WRITER,
            Some(&json!({
                "entityId": app, "groupId": GROUP, "certificateTypeId": RSA,
                "subjectName": "CN=asyncua enrol client, O=iiot tests",
                "domainNames": ["localhost"], "privateKeyFormat": "PEM"
            })),
        )
        .await["requestId"]
        .as_str()
        .expect("requestId")
        .to_string();
    vault
        .ok(
            Method::POST,
            &format!("/v2/requests/{id}/approve"),
            APPROVER,
            None,
        )
        .await;
    let issued = vault
        .ok(
            Method::GET,
            &format!("/v2/requests/keypair/{id}"),
            WRITER,
            None,
        )
        .await;
    let client_dir = dir.join("client");
    std::fs::create_dir_all(&client_dir).expect("client dir");
    let (cert, key) = (client_dir.join("cert.der"), client_dir.join("key.pem"));
    std::fs::write(
        &cert,
        unb64(issued["certificate"]["certificate"].as_str().expect("cert")),
    )
    .expect("cert");
    std::fs::write(&key, issued["privateKey"]["key"].as_str().expect("key")).expect("key");

    // plc-sim trusts the vault's CA and CRL, and nothing about the client.
    let pki = dir.join("plc-pki");
    vault.install_trust_list(&pki).await;
    let plc = iiot_plc_sim::PlcSim::start(iiot_plc_sim::PlcSimConfig {
        port: 0,
        pki_dir: pki.clone(),
        fast_nodes: 1,
        slow_nodes: 1,
        ..Default::default()
    })
    .await
    .expect("plc-sim");
    let url = plc.endpoint_url();

    let (code, v) = asyncua_connect(&url, &cert, &key).await;
    assert_eq!(
        code, 0,
        "the vault-issued certificate must be accepted: {v}"
    );
    assert_eq!(v["connected"], true, "{v}");
    assert!(v["value"].is_i64(), "read Scalar/Int32: {v}");
    assert_eq!(rejected(&pki), 0, "nothing parked in rejected/");

    // A certificate for the same application from a CA plc-sim does not trust: refused, and
    // parked in rejected/ like any unknown certificate.
    let (other_cert, other_key) = foreign_certificate(&client_dir);
    let (code, v) = asyncua_connect(&url, &other_cert, &other_key).await;
    assert_eq!(code, 2, "a foreign CA's certificate must be refused: {v}");
    assert_refused_with(&v, "BadCertificateUntrusted");
    assert_eq!(rejected(&pki), 1, "the foreign certificate is in rejected/");

    // Without the CA's CRL the vault-issued certificate is refused (revocation unknown: fail
    // closed), and accepted again once the CRL is back.
    for entry in std::fs::read_dir(pki.join("trusted/crl")).expect("crl dir") {
        std::fs::remove_file(entry.expect("entry").path()).expect("remove crl");
    }
    let (code, v) = asyncua_connect(&url, &cert, &key).await;
    assert_eq!(code, 2, "no CRL must mean no trust: {v}");
    assert_refused_with(&v, "BadCertificateRevocationUnknown");
    vault.install_trust_list(&pki).await;
    let (code, v) = asyncua_connect(&url, &cert, &key).await;
    assert_eq!(code, 0, "accepted again with the CRL back: {v}");

    // Revoke in the vault, hand plc-sim the new CRL: the same certificate is now refused.
    vault
        .ok(
            Method::POST,
            &format!("/v2/requests/{id}/revoke"),
            APPROVER,
            None,
        )
        .await;
    vault.install_trust_list(&pki).await;
    let (code, v) = asyncua_connect(&url, &cert, &key).await;
    assert_eq!(code, 2, "a revoked certificate must be refused: {v}");
    assert_refused_with(&v, "BadCertificateRevoked");
    // Refused for revocation, not parked as unknown.
    assert_eq!(rejected(&pki), 1);

    plc.shutdown().await;
}
