//! End-to-end tests of `iiot vault`: the real binary on a free port, CSRs and verification by
//! the `openssl` command line (a tool we did not write), and the database read from outside.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, temp_dir, Proc};
use reqwest::Method;
use serde_json::{json, Value};

const WRITER: &str = "writer-key-0123456789";
const WRITER2: &str = "writer2-key-0123456789";
const APPROVER: &str = "approver-key-0123456789";
const READER: &str = "reader-key-0123456789";
const ADMIN: &str = "admin-key-0123456789";
const GROUP: &str = "DefaultApplicationGroup";
const RSA: &str = "RsaSha256ApplicationCertificateType";

struct Vault {
    base: String,
    dir: PathBuf,
    _proc: Proc,
}

fn write_keys(dir: &Path) -> PathBuf {
    let path = dir.join("keys.json");
    let keys = json!([
        {"name": "ops", "key": WRITER, "roles": ["writer"]},
        {"name": "ops2", "key": WRITER2, "roles": ["writer"]},
        {"name": "sec", "key": APPROVER, "roles": ["approver"]},
        {"name": "viewer", "key": READER, "roles": ["reader"]},
        {"name": "root", "key": ADMIN, "roles": ["admin"]}
    ]);
    std::fs::write(&path, keys.to_string()).expect("keys file");
    path
}

/// `iiot vault` on `dir` and `port` with `extra` arguments; stderr goes to the test's.
fn vault_command(dir: &Path, port: u16, extra: &[&str]) -> Command {
    let keys = write_keys(dir);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iiot"));
    cmd.args(["--log", "warn", "vault", "--http-host", "127.0.0.1"])
        .arg("--http-port")
        .arg(port.to_string())
        .arg("--data-dir")
        .arg(dir)
        .arg("--api-keys")
        .arg(&keys)
        .arg("--kek-file")
        .arg(dir.join("kek"))
        .args(["--cert-types", "RsaSha256,EccNistP256"])
        .args(extra)
        .env_remove("RUST_LOG")
        .env_remove("IIOT_VAULT_KEK")
        .stderr(Stdio::inherit());
    cmd
}

impl Vault {
    /// Starts `iiot vault` on `dir` (kept as it is between starts) with `extra` arguments.
    async fn start(dir: &Path, extra: &[&str]) -> Vault {
        let port = free_port();
        let mut child = vault_command(dir, port, extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn iiot vault");
        // Ready when /healthz answers: the port is bound before the CAs are opened.
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
            assert!(
                Instant::now() < deadline,
                "iiot vault did not answer on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Vault {
            base: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
            _proc: Proc(child),
        }
    }

    /// Any call; answers (status, content type, body as JSON or `null`).
    async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, String, Value) {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.header("Authorization", format!("Bearer {key}"));
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let res = req.send().await.expect("HTTP request");
        let status = res.status().as_u16();
        let ct = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = res.text().await.unwrap_or_default();
        (
            status,
            ct,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    async fn ok(&self, method: Method, path: &str, key: &str, body: Option<&Value>) -> Value {
        let (status, _, v) = self.call(method.clone(), path, Some(key), body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    /// Expects a problem+json refusal with `status` and OPC UA `symbol`.
    async fn refused(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
        status: u16,
        symbol: &str,
    ) -> Value {
        let (got, ct, v) = self.call(method.clone(), path, key, body).await;
        assert_eq!(got, status, "{method} {path}: {v}");
        assert_eq!(ct, "application/problem+json", "{method} {path}");
        assert_eq!(v["symbolicId"], symbol, "{method} {path}: {v}");
        v
    }

    async fn register(&self, uri: &str) -> String {
        let body = json!({
            "applicationUri": uri,
            "applicationType": "Server",
            "applicationNames": [{"locale": "en", "text": "Test PLC"}],
            "productUri": "urn:iiot:test:product",
            "discoveryUrls": ["opc.tcp://localhost:4840"]
        });
        let v = self
            .ok(Method::POST, "/v2/applications", WRITER, Some(&body))
            .await;
        v["applicationId"]
            .as_str()
            .expect("applicationId")
            .to_string()
    }

    async fn sign(&self, key: &str, app: &str, csr: &str, cert_type: &str) -> (u16, Value) {
        let body = json!({
            "entityId": app, "groupId": GROUP, "certificateTypeId": cert_type, "certificateRequest": csr
        });
        let (s, _, v) = self
            .call(Method::PUT, "/v2/requests/sign", Some(key), Some(&body))
            .await;
        (s, v)
    }

    async fn request_count(&self) -> usize {
        let v = self.ok(Method::GET, "/v2/requests", READER, None).await;
        v["requests"].as_array().map(Vec::len).unwrap_or(0)
    }
}

fn openssl(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A CSR made by the openssl command line: `key` is e.g. `rsa:2048` or `ec`, `ext` the
/// `-addext` values.
fn make_csr(dir: &Path, name: &str, key: &str, ext: &[&str]) -> String {
    let csr = format!("{name}.csr");
    let keyfile = format!("{name}.key");
    let mut args = vec![
        "req",
        "-new",
        "-nodes",
        "-subj",
        "/CN=test plc",
        "-keyout",
        &keyfile,
        "-out",
        &csr,
    ];
    let ec;
    if key == "ec" {
        ec = format!("{name}.ecparam");
        let (ok, out) = openssl(&["ecparam", "-name", "prime256v1", "-out", &ec], dir);
        assert!(ok, "{out}");
        args.extend(["-newkey", "ec:"]);
        let last = args.len() - 1;
        let spec: &'static str = Box::leak(format!("ec:{ec}").into_boxed_str());
        args[last] = spec;
    } else {
        args.extend(["-newkey", key]);
    }
    for e in ext {
        args.extend(["-addext", e]);
    }
    let (ok, out) = openssl(&args, dir);
    assert!(ok, "openssl req: {out}");
    std::fs::read_to_string(dir.join(csr)).expect("csr")
}

fn b64(data: &[u8]) -> String {
    // Small encoder so the test does not trust the vault's base64 either.
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

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

fn pem(label: &str, der: &[u8]) -> String {
    let body = b64(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn pem_body(pem: &str) -> Vec<u8> {
    unb64(
        &pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>(),
    )
}

/// Writes the trust list's CAs and CRLs as PEM bundles; answers (ca file, crl file).
async fn save_trust_list(v: &Vault, dir: &Path, tag: &str) -> (String, String) {
    save_trust_list_of(v, dir, tag, RSA).await
}

async fn save_trust_list_of(v: &Vault, dir: &Path, tag: &str, cert_type: &str) -> (String, String) {
    let tl = v
        .ok(
            Method::GET,
            &format!("/v2/groups/{GROUP}/trustlist?certificateType={cert_type}"),
            READER,
            None,
        )
        .await;
    let certs: String = tl["trustedCertificates"]
        .as_array()
        .expect("certs")
        .iter()
        .map(|c| pem("CERTIFICATE", &unb64(c.as_str().unwrap_or_default())))
        .collect();
    let crls: String = tl["trustedCrls"]
        .as_array()
        .expect("crls")
        .iter()
        .map(|c| pem("X509 CRL", &unb64(c.as_str().unwrap_or_default())))
        .collect();
    assert!(
        !certs.is_empty() && !crls.is_empty(),
        "trust list without CA or CRL: {tl}"
    );
    let (ca, crl) = (format!("ca-{tag}.pem"), format!("crl-{tag}.pem"));
    std::fs::write(dir.join(&ca), certs).expect("ca.pem");
    std::fs::write(dir.join(&crl), crls).expect("crl.pem");
    (ca, crl)
}

#[tokio::test]
async fn lifecycle_verified_by_openssl_then_revoked() {
    let dir = temp_dir("vault-life");
    let v = Vault::start(&dir, &[]).await;
    let uri = "urn:iiot:test:plc1";
    let app = v.register(uri).await;
    let csr = make_csr(
        &dir,
        "plc1",
        "rsa:2048",
        &[&format!(
            "subjectAltName=URI:{uri},DNS:localhost,IP:127.0.0.1"
        )],
    );
    let (s, body) = v.sign(WRITER, &app, &csr, RSA).await;
    assert_eq!(s, 200, "{body}");
    let id = body["requestId"].as_str().expect("requestId").to_string();

    // Not before approval; never by a writer; never by whoever submitted it.
    v.refused(
        Method::GET,
        &format!("/v2/requests/sign/{id}"),
        Some(WRITER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    v.refused(
        Method::POST,
        &format!("/v2/requests/{id}/approve"),
        Some(WRITER),
        None,
        403,
        "BadUserAccessDenied",
    )
    .await;
    let (s, body) = v.sign(ADMIN, &app, &csr, RSA).await;
    assert_eq!(s, 200, "{body}");
    let own = body["requestId"].as_str().expect("requestId").to_string();
    v.refused(
        Method::POST,
        &format!("/v2/requests/{own}/approve"),
        Some(ADMIN),
        None,
        403,
        "BadRequestNotAllowed",
    )
    .await;
    let rec = v
        .ok(Method::GET, &format!("/v2/requests/{own}"), READER, None)
        .await;
    assert_eq!(rec["state"], "New");

    v.ok(
        Method::POST,
        &format!("/v2/requests/{id}/approve"),
        APPROVER,
        None,
    )
    .await;
    v.refused(
        Method::POST,
        &format!("/v2/requests/{id}/approve"),
        Some(APPROVER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    v.refused(
        Method::POST,
        &format!("/v2/requests/{id}/reject"),
        Some(APPROVER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    let fetched = v
        .ok(
            Method::GET,
            &format!("/v2/requests/sign/{id}"),
            WRITER,
            None,
        )
        .await;
    assert_eq!(fetched["request"]["state"], "Accepted", "{fetched}");
    assert_eq!(fetched["request"]["approved"]["authorityId"], "sec");
    let cert_der = unb64(
        fetched["certificate"]["certificate"]
            .as_str()
            .expect("certificate"),
    );
    std::fs::write(dir.join("cert.pem"), pem("CERTIFICATE", &cert_der)).expect("cert.pem");

    // The profile is the vault's, checked with openssl's own reading of the certificate.
    let (ok, text) = openssl(&["x509", "-in", "cert.pem", "-noout", "-text"], &dir);
    assert!(ok, "{text}");
    for want in [
        "CA:FALSE",
        "Digital Signature, Non Repudiation, Key Encipherment, Data Encipherment",
        "TLS Web Server Authentication, TLS Web Client Authentication",
        &format!("URI:{uri}"),
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
        "X509v3 CRL Distribution Points",
        &format!("{}/v2/crl/", v.base),
        "Subject: CN = Test PLC",
    ] {
        assert!(text.contains(want), "certificate lacks '{want}':\n{text}");
    }
    assert!(!text.contains("Certificate Sign"), "{text}");
    let serial = fetched["certificate"]["serialNumber"]
        .as_str()
        .expect("serial");
    assert!(serial.len() >= 32, "serial of at least 16 bytes: {serial}");

    let (ca, crl) = save_trust_list(&v, &dir, "1").await;
    let (ok, out) = openssl(
        &[
            "verify",
            "-CAfile",
            &ca,
            "-crl_check",
            "-CRLfile",
            &crl,
            "cert.pem",
        ],
        &dir,
    );
    assert!(ok && out.contains("cert.pem: OK"), "openssl verify: {out}");

    // The anonymous CRL distribution point serves the same CRL the trust list carries.
    let (ok, text) = openssl(
        &[
            "x509",
            "-in",
            "cert.pem",
            "-noout",
            "-ext",
            "crlDistributionPoints",
        ],
        &dir,
    );
    assert!(ok, "{text}");
    let url = text
        .split("URI:")
        .nth(1)
        .expect("CRL URL")
        .trim()
        .to_string();
    let res = reqwest::get(&url).await.expect("GET CRL");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "application/pkix-crl");
    let crl_der = res.bytes().await.expect("CRL body").to_vec();
    assert_eq!(
        pem("X509 CRL", &crl_der),
        std::fs::read_to_string(dir.join(&crl)).expect("crl")
    );
    let ca_serial = url.rsplit('/').next().expect("serial");
    let (s, _, _) = v
        .call(Method::GET, &format!("/v2/issuer/{ca_serial}"), None, None)
        .await;
    assert_eq!(s, 200);

    // Revocation reaches the trust list at once.
    v.refused(
        Method::POST,
        &format!("/v2/requests/{id}/revoke"),
        Some(WRITER),
        None,
        403,
        "BadUserAccessDenied",
    )
    .await;
    v.ok(
        Method::POST,
        &format!("/v2/requests/{id}/revoke"),
        APPROVER,
        None,
    )
    .await;
    let (ca, crl2) = save_trust_list(&v, &dir, "2").await;
    let (ok, out) = openssl(
        &[
            "verify",
            "-CAfile",
            &ca,
            "-crl_check",
            "-CRLfile",
            &crl2,
            "cert.pem",
        ],
        &dir,
    );
    assert!(
        !ok && out.contains("certificate revoked"),
        "openssl verify after revoke: {out}"
    );
    let n1 = openssl(&["crl", "-in", &crl, "-noout", "-crlnumber"], &dir).1;
    let n2 = openssl(&["crl", "-in", &crl2, "-noout", "-crlnumber"], &dir).1;
    let num = |s: &str| {
        u64::from_str_radix(
            s.trim()
                .trim_start_matches("crlNumber=0x")
                .trim_start_matches("crlNumber="),
            16,
        )
        .expect("crl number")
    };
    assert!(num(&n2) > num(&n1), "CRLNumber must grow: {n1} → {n2}");

    // The audit log has every step, with who did it, for admins only.
    v.refused(
        Method::GET,
        "/v2/audit",
        Some(APPROVER),
        None,
        403,
        "BadUserAccessDenied",
    )
    .await;
    let audit = v.ok(Method::GET, "/v2/audit", ADMIN, None).await;
    let entries = audit["entries"].as_array().expect("entries");
    for (actor, action) in [
        ("ops", "application.register"),
        ("ops", "request.submit"),
        ("sec", "request.approve"),
        ("ops", "request.accept"),
        ("sec", "request.revoke"),
    ] {
        assert!(
            entries
                .iter()
                .any(|e| e["actor"] == actor && e["action"] == action),
            "audit lacks {actor} {action}: {audit}"
        );
    }
    assert!(!audit.to_string().contains("PRIVATE KEY"));
}

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let dir = temp_dir("vault-bad");
    let v = Vault::start(&dir, &[]).await;
    let uri = "urn:iiot:test:bad";
    let app = v.register(uri).await;
    let san = format!("subjectAltName=URI:{uri},DNS:localhost");
    let good = make_csr(&dir, "good", "rsa:2048", &[&san]);

    // Credentials and roles.
    let body = json!({"entityId": app, "groupId": GROUP, "certificateRequest": good});
    v.refused(
        Method::PUT,
        "/v2/requests/sign",
        None,
        Some(&body),
        401,
        "BadIdentityTokenInvalid",
    )
    .await;
    v.refused(
        Method::PUT,
        "/v2/requests/sign",
        Some("not-a-known-key-000"),
        Some(&body),
        401,
        "BadIdentityTokenInvalid",
    )
    .await;
    v.refused(
        Method::PUT,
        "/v2/requests/sign",
        Some(READER),
        Some(&body),
        403,
        "BadUserAccessDenied",
    )
    .await;
    v.refused(
        Method::GET,
        "/v2/groups",
        None,
        None,
        401,
        "BadIdentityTokenInvalid",
    )
    .await;
    let (s, _, h) = v.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((s, h["status"].as_str()), (200, Some("ok")));
    let (s, _, doc) = v.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, 200);
    for route in [
        "/v2/requests/sign",
        "/v2/groups/{id}/trustlist",
        "/v2/crl/{serial}",
    ] {
        assert!(doc["paths"][route].is_object(), "OpenAPI lacks {route}");
    }
    let docs = reqwest::get(format!("{}/docs/", v.base))
        .await
        .expect("docs");
    assert_eq!(docs.status().as_u16(), 200);
    assert!(
        docs.text().await.unwrap_or_default().contains("swagger"),
        "Swagger UI at /docs"
    );

    // Malformed and truncated CSRs, and a flipped signature byte.
    for (s, sym) in [("not a csr", "BadCertificateInvalid")] {
        let (st, b) = v.sign(WRITER, &app, s, RSA).await;
        assert_eq!((st, b["symbolicId"].as_str()), (400, Some(sym)), "{b}");
    }
    let der = pem_body(&good);
    let truncated = b64(&der[..der.len() / 2]);
    let (st, b) = v.sign(WRITER, &app, &truncated, RSA).await;
    assert_eq!(
        (st, b["symbolicId"].as_str()),
        (400, Some("BadCertificateInvalid")),
        "{b}"
    );
    let mut flipped = der.clone();
    let last = flipped.len() - 10;
    flipped[last] ^= 0x55;
    let (st, b) = v.sign(WRITER, &app, &b64(&flipped), RSA).await;
    assert_eq!(
        (st, b["symbolicId"].as_str()),
        (400, Some("BadCertificateInvalid")),
        "{b}"
    );
    assert!(
        b["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("signature"),
        "{b}"
    );
    // The unflipped DER as base64 is accepted later; PEM with no END line is not.
    let cut_pem = good.lines().take(5).collect::<Vec<_>>().join("\n");
    let (st, _) = v.sign(WRITER, &app, &cut_pem, RSA).await;
    assert_eq!(st, 400);

    // Policy: names, key types and sizes, CA requests.
    let cases: Vec<(String, &str, &str)> = vec![
        (
            make_csr(
                &dir,
                "otheruri",
                "rsa:2048",
                &["subjectAltName=URI:urn:iiot:test:someone-else,DNS:localhost"],
            ),
            RSA,
            "BadCertificateUriInvalid",
        ),
        (
            make_csr(&dir, "nouri", "rsa:2048", &["subjectAltName=DNS:localhost"]),
            RSA,
            "BadCertificateUriInvalid",
        ),
        (
            make_csr(&dir, "rsa1024", "rsa:1024", &[&san]),
            RSA,
            "BadCertificatePolicyCheckFailed",
        ),
        (
            make_csr(&dir, "ecc", "ec", &[&san]),
            RSA,
            "BadCertificatePolicyCheckFailed",
        ),
        (
            make_csr(&dir, "rsaforecc", "rsa:2048", &[&san]),
            "EccNistP256ApplicationCertificateType",
            "BadCertificatePolicyCheckFailed",
        ),
        (
            make_csr(
                &dir,
                "ca",
                "rsa:2048",
                &[&san, "basicConstraints=critical,CA:TRUE"],
            ),
            RSA,
            "BadCertificatePolicyCheckFailed",
        ),
        (
            make_csr(
                &dir,
                "baddns",
                "rsa:2048",
                &[&format!("subjectAltName=URI:{uri},DNS:bad_host!name")],
            ),
            RSA,
            "BadInvalidArgument",
        ),
        (good.clone(), "NoSuchCertificateType", "BadInvalidArgument"),
    ];
    for (csr, ty, sym) in &cases {
        let (st, b) = v.sign(WRITER, &app, csr, ty).await;
        assert_eq!(
            (st, b["symbolicId"].as_str()),
            (400, Some(*sym)),
            "{ty}: {b}"
        );
        assert_eq!(b["status"], 400);
    }
    let body = json!({"entityId": app, "groupId": "NoSuchGroup", "certificateRequest": good});
    v.refused(
        Method::PUT,
        "/v2/requests/sign",
        Some(WRITER),
        Some(&body),
        404,
        "BadNotFound",
    )
    .await;
    let body = json!({"entityId": "no-such-app", "groupId": GROUP, "certificateRequest": good});
    v.refused(
        Method::PUT,
        "/v2/requests/sign",
        Some(WRITER),
        Some(&body),
        404,
        "BadNotFound",
    )
    .await;
    v.refused(
        Method::PUT,
        "/v2/requests/sign",
        Some(WRITER),
        Some(&json!({"entityId": 5})),
        400,
        "BadInvalidArgument",
    )
    .await;
    assert_eq!(
        v.request_count().await,
        0,
        "refused requests must leave no trace"
    );

    // Registration rules of the GDS.
    for bad in [
        json!({"applicationUri": "not a uri", "applicationType": "Client", "applicationName": "x"}),
        json!({"applicationUri": "urn:x", "applicationType": "Server", "applicationName": "x"}),
        json!({"applicationUri": "urn:x", "applicationType": "Client"}),
        json!({"applicationUri": "urn:x", "applicationType": "Robot", "applicationName": "x"}),
        json!({"applicationUri": uri, "applicationType": "Client", "applicationName": "again"}),
    ] {
        let (s, ct, b) = v
            .call(Method::POST, "/v2/applications", Some(WRITER), Some(&bad))
            .await;
        assert!(s == 400 || s == 409, "{bad}: {s} {b}");
        assert_eq!(ct, "application/problem+json");
    }
    let list = v.ok(Method::GET, "/v2/applications", READER, None).await;
    assert_eq!(list["applications"].as_array().map(Vec::len), Some(1));

    // Workflow refusals on a real request; the good CSR as base64 DER is accepted.
    let (st, b) = v.sign(WRITER, &app, &b64(&der), RSA).await;
    assert_eq!(st, 200, "{b}");
    let id = b["requestId"].as_str().expect("id").to_string();
    v.refused(
        Method::POST,
        &format!("/v2/requests/{id}/accept"),
        Some(WRITER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    v.refused(
        Method::POST,
        &format!("/v2/requests/{id}/revoke"),
        Some(APPROVER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    v.refused(
        Method::GET,
        &format!("/v2/requests/keypair/{id}"),
        Some(WRITER),
        None,
        400,
        "BadInvalidArgument",
    )
    .await;
    v.ok(
        Method::POST,
        &format!("/v2/requests/{id}/reject"),
        APPROVER,
        None,
    )
    .await;
    v.refused(
        Method::POST,
        &format!("/v2/requests/{id}/approve"),
        Some(APPROVER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    v.refused(
        Method::GET,
        &format!("/v2/requests/sign/{id}"),
        Some(WRITER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    v.refused(
        Method::GET,
        "/v2/requests/sign/no-such-request",
        Some(WRITER),
        None,
        404,
        "BadNotFound",
    )
    .await;
    let q = v
        .ok(
            Method::POST,
            "/v2/requests/query",
            READER,
            Some(&json!({"entityId": app, "state": "Rejected"})),
        )
        .await;
    assert_eq!(q["requests"].as_array().map(Vec::len), Some(1), "{q}");
}

#[tokio::test]
async fn key_pair_is_handed_out_once() {
    let dir = temp_dir("vault-keypair");
    let v = Vault::start(&dir, &[]).await;
    let app = v.register("urn:iiot:test:kp").await;
    let bad = json!({"entityId": app, "groupId": GROUP, "subjectName": "CN=kp", "domainNames": ["no spaces allowed"], "privateKeyFormat": "PEM"});
    v.refused(
        Method::PUT,
        "/v2/requests/keypair",
        Some(WRITER),
        Some(&bad),
        400,
        "BadInvalidArgument",
    )
    .await;
    let body = json!({
        "entityId": app, "groupId": GROUP, "certificateTypeId": RSA, "subjectName": "CN=kp, O=Plant",
        "domainNames": ["kp.plant.example", "10.0.0.7"], "privateKeyFormat": "PEM", "privateKeyPassword": "s3cret-pass"
    });
    let id = v
        .ok(Method::PUT, "/v2/requests/keypair", WRITER, Some(&body))
        .await["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    v.refused(
        Method::GET,
        &format!("/v2/requests/keypair/{id}"),
        Some(WRITER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    v.ok(
        Method::POST,
        &format!("/v2/requests/{id}/approve"),
        APPROVER,
        None,
    )
    .await;
    let first = v
        .ok(
            Method::GET,
            &format!("/v2/requests/keypair/{id}"),
            WRITER2,
            None,
        )
        .await;
    let key = first["privateKey"]["key"]
        .as_str()
        .expect("private key on first fetch");
    assert!(key.contains("BEGIN ENCRYPTED PRIVATE KEY"), "{key}");
    std::fs::write(dir.join("kp.key"), key).expect("key");
    std::fs::write(
        dir.join("kp.pem"),
        pem(
            "CERTIFICATE",
            &unb64(first["certificate"]["certificate"].as_str().expect("cert")),
        ),
    )
    .expect("cert");
    let (ok, out) = openssl(
        &["pkey", "-in", "kp.key", "-passin", "pass:wrong", "-noout"],
        &dir,
    );
    assert!(!ok, "a wrong password must not open the key: {out}");
    // The key opens with the password and belongs to the certificate.
    let (ok, k) = openssl(
        &[
            "pkey",
            "-in",
            "kp.key",
            "-passin",
            "pass:s3cret-pass",
            "-pubout",
        ],
        &dir,
    );
    assert!(ok, "{k}");
    let (ok, c) = openssl(&["x509", "-in", "kp.pem", "-noout", "-pubkey"], &dir);
    assert!(ok && c == k, "certificate and key differ");
    let (_, text) = openssl(&["x509", "-in", "kp.pem", "-noout", "-text"], &dir);
    assert!(
        text.contains("DNS:kp.plant.example")
            && text.contains("IP Address:10.0.0.7")
            && text.contains("URI:urn:iiot:test:kp"),
        "{text}"
    );
    let second = v
        .ok(
            Method::GET,
            &format!("/v2/requests/keypair/{id}"),
            WRITER2,
            None,
        )
        .await;
    assert!(
        second["privateKey"].is_null(),
        "second fetch must not return a key: {second}"
    );
    assert_eq!(second["request"]["state"], "Accepted");
    let audit = v
        .ok(Method::GET, "/v2/audit", ADMIN, None)
        .await
        .to_string();
    assert!(
        !audit.contains("s3cret-pass") && !audit.contains("PRIVATE KEY"),
        "{audit}"
    );
}

/// Reads a blob column from the SQLite database as hex, with the sqlite3 command line.
fn sqlite_hex(db: &Path, sql: &str) -> Vec<String> {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test]
async fn state_survives_a_restart_and_ca_keys_are_sealed() {
    let dir = temp_dir("vault-restart");
    let v = Vault::start(&dir, &[]).await;
    let app = v.register("urn:iiot:test:restart").await;
    let csr = make_csr(
        &dir,
        "r",
        "rsa:2048",
        &["subjectAltName=URI:urn:iiot:test:restart"],
    );
    let (s, b) = v.sign(WRITER, &app, &csr, RSA).await;
    assert_eq!(s, 200, "{b}");
    let id = b["requestId"].as_str().expect("id").to_string();
    let groups = v.ok(Method::GET, "/v2/groups", READER, None).await;
    drop(v);

    // The CA keys in the database are sealed: no form of them parses as a key.
    let keys = sqlite_hex(&dir.join("vault.db"), "SELECT hex(key_sealed) FROM cas");
    assert_eq!(keys.len(), 6, "3 groups x 2 types");
    for (i, k) in keys.iter().enumerate() {
        let der = from_hex(k);
        std::fs::write(dir.join(format!("sealed{i}.der")), &der).expect("write");
        std::fs::write(dir.join(format!("sealed{i}.pem")), pem("PRIVATE KEY", &der))
            .expect("write");
        for f in [format!("sealed{i}.der"), format!("sealed{i}.pem")] {
            let (ok, out) = openssl(
                &[
                    "pkey",
                    "-in",
                    &f,
                    "-inform",
                    if f.ends_with("der") { "DER" } else { "PEM" },
                    "-noout",
                ],
                &dir,
            );
            assert!(!ok, "sealed CA key parsed as a key: {out}");
        }
    }
    let kek = std::fs::metadata(dir.join("kek")).expect("kek file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(kek.permissions().mode() & 0o777, 0o600);
    }

    // Same data and KEK: same CAs, the pending request still there and approvable.
    let v = Vault::start(&dir, &[]).await;
    assert_eq!(v.ok(Method::GET, "/v2/groups", READER, None).await, groups);
    let rec = v
        .ok(Method::GET, &format!("/v2/requests/{id}"), READER, None)
        .await;
    assert_eq!(rec["state"], "New");
    v.ok(
        Method::POST,
        &format!("/v2/requests/{id}/approve"),
        APPROVER,
        None,
    )
    .await;
    let got = v
        .ok(
            Method::GET,
            &format!("/v2/requests/sign/{id}"),
            WRITER,
            None,
        )
        .await;
    assert!(got["certificate"]["certificate"].is_string());
    drop(v);

    // Another KEK does not open the CAs: the vault refuses to start.
    std::fs::write(dir.join("kek"), "ab".repeat(32)).expect("kek");
    let out = Command::new(env!("CARGO_BIN_EXE_iiot"))
        .args([
            "--log",
            "warn",
            "vault",
            "--http-host",
            "127.0.0.1",
            "--http-port",
        ])
        .arg(free_port().to_string())
        .arg("--data-dir")
        .arg(&dir)
        .arg("--api-keys")
        .arg(dir.join("keys.json"))
        .arg("--kek-file")
        .arg(dir.join("kek"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot decrypt"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A lost KEK file is not silently replaced by a new one.
    std::fs::remove_file(dir.join("kek")).expect("rm kek");
    let out = Command::new(env!("CARGO_BIN_EXE_iiot"))
        .args([
            "--log",
            "warn",
            "vault",
            "--http-host",
            "127.0.0.1",
            "--http-port",
        ])
        .arg(free_port().to_string())
        .arg("--data-dir")
        .arg(&dir)
        .arg("--api-keys")
        .arg(dir.join("keys.json"))
        .arg("--kek-file")
        .arg(dir.join("kek"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is missing"), "{err}");
    assert!(!dir.join("kek").exists(), "a new KEK must not be created");
}

/// The lifecycle, restart and revocation on PostgreSQL, in a database of its own.
#[tokio::test]
async fn postgres_backend_end_to_end() {
    let name = format!("iiot_vault_e2e_{}_{}", std::process::id(), free_port());
    let psql = |sql: &str| {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    psql(&format!("CREATE DATABASE {name}"));
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let dir = temp_dir("vault-pg");
    {
        let v = Vault::start(&dir, &["--database-url", &url]).await;
        let app = v.register("urn:iiot:test:pg").await;
        let csr = make_csr(
            &dir,
            "pg",
            "rsa:2048",
            &["subjectAltName=URI:urn:iiot:test:pg,DNS:localhost"],
        );
        let (s, b) = v.sign(WRITER, &app, &csr, RSA).await;
        assert_eq!(s, 200, "{b}");
        let id = b["requestId"].as_str().expect("id").to_string();
        drop(v);
        assert!(
            !dir.join("vault.db").exists(),
            "PostgreSQL mode must not create a SQLite file"
        );
        let v = Vault::start(&dir, &["--database-url", &url]).await;
        v.ok(
            Method::POST,
            &format!("/v2/requests/{id}/approve"),
            APPROVER,
            None,
        )
        .await;
        let got = v
            .ok(
                Method::GET,
                &format!("/v2/requests/sign/{id}"),
                WRITER,
                None,
            )
            .await;
        std::fs::write(
            dir.join("cert.pem"),
            pem(
                "CERTIFICATE",
                &unb64(got["certificate"]["certificate"].as_str().expect("cert")),
            ),
        )
        .expect("cert");
        let (ca, crl) = save_trust_list(&v, &dir, "pg1").await;
        let (ok, out) = openssl(
            &[
                "verify",
                "-CAfile",
                &ca,
                "-crl_check",
                "-CRLfile",
                &crl,
                "cert.pem",
            ],
            &dir,
        );
        assert!(ok, "{out}");
        v.ok(
            Method::DELETE,
            &format!("/v2/applications/{app}"),
            APPROVER,
            None,
        )
        .await;
        let (ca, crl) = save_trust_list(&v, &dir, "pg2").await;
        let (ok, out) = openssl(
            &[
                "verify",
                "-CAfile",
                &ca,
                "-crl_check",
                "-CRLfile",
                &crl,
                "cert.pem",
            ],
            &dir,
        );
        assert!(
            !ok && out.contains("certificate revoked"),
            "unregister must revoke: {out}"
        );
        let _ = v.dir.clone();
    }
    psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}

async fn issue_rsa(v: &Vault, dir: &Path, app: &str, uri: &str, name: &str) -> (String, String) {
    let csr = make_csr(
        dir,
        name,
        "rsa:2048",
        &[&format!("subjectAltName=URI:{uri}")],
    );
    let (s, b) = v.sign(WRITER, app, &csr, RSA).await;
    assert_eq!(s, 200, "{b}");
    let id = b["requestId"].as_str().expect("id").to_string();
    v.ok(
        Method::POST,
        &format!("/v2/requests/{id}/approve"),
        APPROVER,
        None,
    )
    .await;
    let got = v
        .ok(
            Method::GET,
            &format!("/v2/requests/sign/{id}"),
            WRITER,
            None,
        )
        .await;
    let file = format!("{name}.pem");
    let der = unb64(got["certificate"]["certificate"].as_str().expect("cert"));
    std::fs::write(dir.join(&file), pem("CERTIFICATE", &der)).expect("cert");
    (id, file)
}

#[tokio::test]
async fn ca_renewal_keeps_the_old_ca_trusted_and_flags_its_certificates() {
    let dir = temp_dir("vault-renew");
    let v = Vault::start(&dir, &[]).await;
    let uri = "urn:iiot:test:renew";
    let app = v.register(uri).await;
    let (old_id, old_cert) = issue_rsa(&v, &dir, &app, uri, "old").await;
    let status =
        format!("/v2/applications/{app}/certificatestatus?groupId={GROUP}&certificateType={RSA}");
    let st = v.ok(Method::GET, &status, READER, None).await;
    assert_eq!(st["updateRequired"], false, "{st}");

    v.refused(
        Method::POST,
        &format!("/v2/groups/{GROUP}/renew"),
        Some(APPROVER),
        None,
        403,
        "BadUserAccessDenied",
    )
    .await;
    v.ok(
        Method::POST,
        &format!("/v2/groups/{GROUP}/renew"),
        ADMIN,
        None,
    )
    .await;
    let st = v.ok(Method::GET, &status, READER, None).await;
    assert_eq!(st["updateRequired"], true, "{st}");
    assert!(st["reasons"].to_string().contains("renewed"), "{st}");

    // Both CA versions are in the trust list, each with its CRL; old and new certificates verify.
    let tl = v
        .ok(
            Method::GET,
            &format!("/v2/groups/{GROUP}/trustlist?certificateType={RSA}"),
            READER,
            None,
        )
        .await;
    assert_eq!(
        tl["trustedCertificates"].as_array().map(Vec::len),
        Some(2),
        "{tl}"
    );
    assert_eq!(tl["trustedCrls"].as_array().map(Vec::len), Some(2), "{tl}");
    let (_, new_cert) = issue_rsa(&v, &dir, &app, uri, "new").await;
    let (ca, crl) = save_trust_list(&v, &dir, "r1").await;
    for cert in [&old_cert, &new_cert] {
        let (ok, out) = openssl(
            &[
                "verify",
                "-CAfile",
                &ca,
                "-crl_check",
                "-CRLfile",
                &crl,
                cert,
            ],
            &dir,
        );
        assert!(ok, "{cert}: {out}");
    }
    let (ok, i1) = openssl(&["x509", "-in", &old_cert, "-noout", "-issuer"], &dir);
    let (_, i2) = openssl(&["x509", "-in", &new_cert, "-noout", "-issuer"], &dir);
    assert!(ok && i1 == i2, "same group subject: {i1} {i2}");
    let (_, a1) = openssl(
        &[
            "x509",
            "-in",
            &old_cert,
            "-noout",
            "-ext",
            "authorityKeyIdentifier",
        ],
        &dir,
    );
    let (_, a2) = openssl(
        &[
            "x509",
            "-in",
            &new_cert,
            "-noout",
            "-ext",
            "authorityKeyIdentifier",
        ],
        &dir,
    );
    assert_ne!(a1, a2, "the new certificate must come from the new CA");

    // Revoking the old certificate updates the old CA's CRL.
    v.ok(
        Method::POST,
        &format!("/v2/requests/{old_id}/revoke"),
        APPROVER,
        None,
    )
    .await;
    let (ca, crl) = save_trust_list(&v, &dir, "r2").await;
    let (ok, out) = openssl(
        &[
            "verify",
            "-CAfile",
            &ca,
            "-crl_check",
            "-CRLfile",
            &crl,
            &old_cert,
        ],
        &dir,
    );
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = openssl(
        &[
            "verify",
            "-CAfile",
            &ca,
            "-crl_check",
            "-CRLfile",
            &crl,
            &new_cert,
        ],
        &dir,
    );
    assert!(ok, "{out}");
}

#[tokio::test]
async fn auto_approve_policy_and_pfx_key_pairs() {
    let dir = temp_dir("vault-auto");
    let v = Vault::start(&dir, &["--auto-approve", GROUP]).await;
    let app = v.register("urn:iiot:test:auto").await;
    let body = json!({
        "entityId": app, "groupId": GROUP, "certificateTypeId": "EccNistP256ApplicationCertificateType",
        "subjectName": "CN=auto", "domainNames": ["auto.local"], "privateKeyFormat": "PFX", "privateKeyPassword": "pfx-pass-123"
    });
    let id = v
        .ok(Method::PUT, "/v2/requests/keypair", WRITER, Some(&body))
        .await["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    let rec = v
        .ok(Method::GET, &format!("/v2/requests/{id}"), READER, None)
        .await;
    assert_eq!(rec["state"], "Approved", "{rec}");
    assert_eq!(rec["approved"]["authorityId"], "policy:auto-approve");
    // Without the password no PFX can be built, and the key stays for a second try.
    v.refused(
        Method::GET,
        &format!("/v2/requests/keypair/{id}"),
        Some(WRITER),
        None,
        400,
        "BadInvalidArgument",
    )
    .await;
    let res = reqwest::Client::new()
        .get(format!("{}/v2/requests/keypair/{id}", v.base))
        .header("Authorization", format!("Bearer {WRITER}"))
        .header("X-Private-Key-Password", "pfx-pass-123")
        .send()
        .await
        .expect("fetch");
    assert_eq!(res.status().as_u16(), 200);
    let got: Value = res.json().await.expect("json");
    assert_eq!(got["privateKey"]["format"], "PFX");
    std::fs::write(
        dir.join("auto.pfx"),
        unb64(got["privateKey"]["key"].as_str().expect("pfx")),
    )
    .expect("pfx");
    let (ok, out) = openssl(
        &[
            "pkcs12",
            "-in",
            "auto.pfx",
            "-passin",
            "pass:pfx-pass-123",
            "-nodes",
            "-info",
        ],
        &dir,
    );
    assert!(
        ok && out.contains("PRIVATE KEY") && out.contains("BEGIN CERTIFICATE"),
        "{out}"
    );
    // The ECC certificate chains to the group's P-256 CA and passes the CRL check.
    std::fs::write(
        dir.join("auto.pem"),
        pem(
            "CERTIFICATE",
            &unb64(got["certificate"]["certificate"].as_str().expect("cert")),
        ),
    )
    .expect("cert");
    let (ca, crl) =
        save_trust_list_of(&v, &dir, "ecc", "EccNistP256ApplicationCertificateType").await;
    let (ok, out) = openssl(
        &[
            "verify",
            "-CAfile",
            &ca,
            "-crl_check",
            "-CRLfile",
            &crl,
            "auto.pem",
        ],
        &dir,
    );
    assert!(ok, "{out}");
    let (_, text) = openssl(&["x509", "-in", "auto.pem", "-noout", "-text"], &dir);
    assert!(
        text.contains("ecdsa-with-SHA256") && text.contains("Key Agreement"),
        "{text}"
    );
    let again = v
        .ok(
            Method::GET,
            &format!("/v2/requests/keypair/{id}"),
            WRITER,
            None,
        )
        .await;
    assert!(again["privateKey"].is_null(), "{again}");
    // Only an admin changes the policy; once off, submissions wait for an approver again.
    let off = json!({"autoApprove": false, "issuedLifetime": 90});
    v.refused(
        Method::POST,
        &format!("/v2/groups/{GROUP}"),
        Some(APPROVER),
        Some(&off),
        403,
        "BadUserAccessDenied",
    )
    .await;
    let bad = json!({"issuedLifetime": 0});
    v.refused(
        Method::POST,
        &format!("/v2/groups/{GROUP}"),
        Some(ADMIN),
        Some(&bad),
        400,
        "BadInvalidArgument",
    )
    .await;
    let g = v
        .ok(
            Method::POST,
            &format!("/v2/groups/{GROUP}"),
            ADMIN,
            Some(&off),
        )
        .await;
    assert_eq!(
        (
            g["group"]["autoApprove"].as_bool(),
            g["group"]["issuedLifetime"].as_i64()
        ),
        (Some(false), Some(90)),
        "{g}"
    );
    let csr = make_csr(
        &dir,
        "manual",
        "ec",
        &["subjectAltName=URI:urn:iiot:test:auto"],
    );
    let (s, b) = v
        .sign(WRITER, &app, &csr, "EccNistP256ApplicationCertificateType")
        .await;
    assert_eq!(s, 200, "{b}");
    let rec = v
        .ok(
            Method::GET,
            &format!("/v2/requests/{}", b["requestId"].as_str().expect("id")),
            READER,
            None,
        )
        .await;
    assert_eq!(rec["state"], "New", "{rec}");
    let audit = v.ok(Method::GET, "/v2/audit", ADMIN, None).await;
    assert!(
        audit["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["actor"] == "root" && e["action"] == "group.update"),
        "{audit}"
    );
}

#[tokio::test]
async fn crls_are_resigned_before_next_update() {
    let dir = temp_dir("vault-crl");
    let v = Vault::start(
        &dir,
        &["--crl-validity-secs", "4", "--crl-refresh-secs", "1"],
    )
    .await;
    let db = dir.join("vault.db");
    let read = || {
        sqlite_hex(
            &db,
            "SELECT crl_number || ' ' || crl_next_update FROM cas ORDER BY serial",
        )
    };
    let before = read();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let after = read();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        let parse = |s: &str| -> (i64, i64) {
            let mut it = s.split(' ').map(|x| x.parse::<i64>().expect("number"));
            (it.next().expect("n"), it.next().expect("t"))
        };
        let ((n0, _), (n1, next)) = (parse(b), parse(a));
        assert!(n1 > n0, "CRL not re-signed: {b} → {a}");
        assert!(next > now, "nextUpdate lapsed: {a} at {now}");
    }
    drop(v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_tokens_carry_roles_and_separation_of_duties_still_holds() {
    let idp = common::OpensslIdp::new();
    let dir = temp_dir("vault-jwt");
    let jwks = idp.jwks();
    let v = Vault::start(
        &dir,
        &[
            "--jwks",
            &jwks,
            "--jwt-issuer",
            "https://idp.test",
            "--jwt-audience",
            "vault",
            "--jwt-roles-claim",
            "realm_access.roles",
        ],
    )
    .await;
    let token = |roles: &[&str], aud: &str, exp: i64| {
        idp.token(&common::OpensslIdp::claims(roles, aud, exp))
    };
    let reader = token(&["reader"], "vault", 300);
    let groups = v.ok(Method::GET, "/v2/groups", &reader, None).await;
    assert!(
        groups["registrations"]
            .as_array()
            .is_some_and(|g| !g.is_empty()),
        "{groups}"
    );
    // An admin route with a reader token, and tokens that must not pass.
    let (s, _, body) = v
        .call(
            Method::POST,
            &format!("/v2/groups/{GROUP}/renew"),
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(s, 403, "{body}");
    for (what, bad) in [
        ("expired", token(&["admin"], "vault", -3600)),
        ("audience", token(&["admin"], "twin", 300)),
    ] {
        let (s, _, body) = v.call(Method::GET, "/v2/groups", Some(&bad), None).await;
        assert_eq!(s, 401, "{what}: {body}");
    }
    // A token holder who is both writer and approver still cannot approve its own request.
    let both = token(&["writer", "approver"], "vault", 300);
    let app = v.register("urn:iiot:test:jwt-app").await;
    let csr = make_csr(
        &dir,
        "jwt",
        "rsa:2048",
        &["subjectAltName=URI:urn:iiot:test:jwt-app,DNS:localhost"],
    );
    let (s, body) = v.sign(&both, &app, &csr, RSA).await;
    assert!((200..300).contains(&s), "{body}");
    let id = body["requestId"].as_str().expect("requestId");
    let (s, _, body) = v
        .call(
            Method::POST,
            &format!("/v2/requests/{id}/approve"),
            Some(&both),
            None,
        )
        .await;
    assert_eq!(s, 403, "the submitter approved its own request: {body}");
}

/// `iiot vault` stops cleanly on SIGTERM (what systemd, Docker and Kubernetes send) as it does
/// on SIGINT: it finishes the requests in flight, closes the database and exits 0, within 5 s.
#[tokio::test]
async fn sigterm_and_sigint_stop_the_vault_cleanly() {
    use tokio::io::AsyncBufReadExt;
    for signal in ["TERM", "INT"] {
        let dir = temp_dir(&format!("vault-sig{}", signal.to_lowercase()));
        let port = free_port();
        let mut child = tokio::process::Command::from(vault_command(&dir, port, &[]))
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn iiot vault");
        // The line is printed once the vault serves and its signal handlers are in place.
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if line.starts_with("vault listening on") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(ready, Ok(true), "iiot vault did not report it listens");
        let groups = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/v2/groups"))
            .header("Authorization", format!("Bearer {READER}"))
            .send()
            .await
            .expect("GET /v2/groups");
        assert!(groups.status().is_success(), "{}", groups.status());

        let pid = child.id().expect("iiot vault runs");
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} failed: {sent}");
        let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .unwrap_or_else(|_| panic!("iiot vault still runs 5 s after SIG{signal}"))
            .expect("wait for iiot vault");
        assert!(
            status.success(),
            "SIG{signal} must stop iiot vault cleanly, it exited with {status}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
