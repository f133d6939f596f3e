//! A device whose X.509 certificate the vault issued connects to the hub as a
//! `certificateAuthority` device, with Microsoft's device SDK (`azure-iot-device` 2.14.0,
//! `tests/peers/hub_device_client.py`), sends a message the hub's SSE stream shows, and is
//! refused once the vault has revoked the certificate and the hub has its new CRL.
//!
//! Why: twin-api's own `twin-api/tests/hub_x509.rs` proves the hub's chain and CRL checks
//! against a CA made with rcgen in the test. Only this test shows that what the *vault* hands
//! out (its OPC UA application-certificate profile, an RSA key as encrypted PKCS#8 PEM) and the
//! CRL it publishes are what the hub accepts and enforces. Both services run as the real
//! `iiot` binary, and nothing joins them but a file: the hub's `--hub-trust` is written from
//! the vault's anonymous distribution endpoints (`/v2/issuer/{serial}`, and `/v2/crl/{serial}`
//! that the certificate's CRL distribution point names), as an operator's script would.
//! The `openssl` command line checks the same files independently, so a refusal by the hub is
//! told apart from a bad certificate.
//!
//! The SDK dials port 8883 (fixed in it), so the hub listens on a loopback address of its own,
//! 127.0.0.74 (other hub tests use 127.0.0.71–73). `IIOT_TEST_LOG=info` shows the services'
//! logs, among them why the hub refused a certificate.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use iiot_testkit::{free_port, temp_dir, KillOnDrop, Mosquitto};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// The hub's address, host name and device endpoint (`IP:8883`).
const IP: &str = "127.0.0.74";
const DEVICE: &str = "vault-dev-1";
const KEY_PASSWORD: &str = "device-key-pass-42";

const VAULT_WRITER: &str = "vault-writer-key-0123456789";
const VAULT_APPROVER: &str = "vault-approver-key-0123456789";
const HUB_ADMIN: &str = "hub-admin-key-0123456789";
const GROUP: &str = "DefaultApplicationGroup";
const RSA: &str = "RsaSha256ApplicationCertificateType";

/// Longest wait for one HTTP answer, one line of the SDK client, one SSE event.
const STEP: Duration = Duration::from_secs(40);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn log_level() -> String {
    std::env::var("IIOT_TEST_LOG").unwrap_or_else(|_| "warn".into())
}

/// The services log to stdout: shown only with `IIOT_TEST_LOG`.
fn show_logs() -> bool {
    std::env::var_os("IIOT_TEST_LOG").is_some()
}

/// `iiot --log <level> <args>`, its stderr the test's.
fn iiot(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iiot"));
    cmd.args(["--log", &log_level()])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("IIOT_KEK")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

/// An API keys file of `(name, key, role)` entries.
fn keys_file(path: &Path, keys: &[(&str, &str, &str)]) -> String {
    let list: Vec<Value> = keys
        .iter()
        .map(|(name, key, role)| json!({"name": name, "key": key, "roles": [role]}))
        .collect();
    std::fs::write(path, Value::Array(list).to_string()).unwrap();
    // Owner-only, as the services want key files (they warn otherwise).
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_string()
}

/// PEM of `der` under `label`.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Runs `openssl` in `dir`; answers (success, stdout and stderr).
fn openssl(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Replaces `path` in one step, so the hub never reads half a trust file.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// HTTP with a time limit on every call; `key` goes as `Authorization: Bearer`.
struct Http(reqwest::Client);

impl Http {
    fn new() -> Http {
        Http(
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        )
    }

    fn request(
        &self,
        method: Method,
        url: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::RequestBuilder {
        let mut req = self.0.request(method, url);
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        req
    }

    /// The status and the body's bytes.
    async fn call(
        &self,
        method: Method,
        url: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Vec<u8>) {
        let res = self
            .request(method.clone(), url, key, body)
            .timeout(STEP)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = res.status().as_u16();
        (status, res.bytes().await.unwrap().to_vec())
    }

    /// A 2xx answer's JSON body (`null` when empty).
    async fn ok(&self, method: Method, url: &str, key: &str, body: Option<&Value>) -> Value {
        let (status, bytes) = self.call(method.clone(), url, Some(key), body).await;
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            (200..300).contains(&status),
            "{method} {url}: {status} {text}"
        );
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    /// An anonymous GET's body (the vault's DER distribution endpoints).
    async fn get_bytes(&self, url: &str) -> Vec<u8> {
        let (status, bytes) = self.call(Method::GET, url, None, None).await;
        assert_eq!(
            status,
            200,
            "GET {url}: {}",
            String::from_utf8_lossy(&bytes)
        );
        bytes
    }
}

/// Polls until `addr` accepts TCP; panics at once if `child` (its server) has exited.
async fn wait_listening(addr: &str, what: &str, child: &mut KillOnDrop) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("{what} exited early: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {addr}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `iiot vault` on 127.0.0.1 with RSA CAs only (P-256 and P-384 would only slow the start).
async fn start_vault(dir: &Path) -> (KillOnDrop, String) {
    std::fs::create_dir_all(dir).unwrap();
    let keys = keys_file(
        &dir.join("keys.json"),
        &[
            ("ops", VAULT_WRITER, "writer"),
            ("sec", VAULT_APPROVER, "approver"),
        ],
    );
    let port = free_port().to_string();
    let data = dir.to_str().unwrap();
    let kek = dir.join("kek");
    let mut child = KillOnDrop(
        iiot(&[
            "vault",
            "--http-host",
            "127.0.0.1",
            "--http-port",
            &port,
            "--data-dir",
            data,
            "--api-keys",
            &keys,
            "--kek-file",
            kek.to_str().unwrap(),
            "--cert-types",
            "RsaSha256",
        ])
        .stdout(if show_logs() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("spawn iiot vault"),
    );
    let addr = format!("127.0.0.1:{port}");
    wait_listening(&addr, "iiot vault", &mut child).await;
    (child, format!("http://{addr}"))
}

/// `iiot twin-api` with the hub's device endpoint on `IP:8883`, trusting `trust` for
/// `certificateAuthority` devices; ready once it printed where the device endpoint listens.
async fn start_hub(dir: &Path, trust: &Path, mqtt_url: &str) -> (KillOnDrop, String) {
    std::fs::create_dir_all(dir).unwrap();
    let keys = keys_file(&dir.join("keys.json"), &[("root", HUB_ADMIN, "admin")]);
    let port = free_port().to_string();
    let mut child = KillOnDrop(
        iiot(&[
            "twin-api",
            "--http-host",
            IP,
            "--http-port",
            &port,
            "--hub-hostname",
            IP,
            "--hub-port",
            "8883",
            "--hub-trust",
            trust.to_str().unwrap(),
            "--data-dir",
            dir.to_str().unwrap(),
            "--api-keys",
            &keys,
            "--mqtt-url",
            mqtt_url,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn iiot twin-api"),
    );
    let stdout = tokio::process::ChildStdout::from_std(child.0.stdout.take().unwrap()).unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if show_logs() {
                println!("{line}");
            }
            if line.starts_with("hub device endpoint on") {
                return true;
            }
        }
        false
    })
    .await;
    if ready != Ok(true) {
        let status = child.0.try_wait();
        panic!("iiot twin-api did not report its device endpoint (exit status: {status:?})");
    }
    // Keep draining stdout so the hub never blocks on a full pipe.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if show_logs() {
                println!("{line}");
            }
        }
    });
    (child, format!("http://{IP}:{port}"))
}

/// The device's files: its certificate and its key (encrypted with `KEY_PASSWORD`).
struct DeviceFiles {
    cert: PathBuf,
    key: PathBuf,
}

/// The SDK client as a child process speaking JSON lines (see the script's docstring).
struct Device {
    proc: KillOnDrop,
    stdin: Option<tokio::process::ChildStdin>,
    lines: mpsc::UnboundedReceiver<Value>,
}

impl Device {
    /// Starts connecting as `DEVICE` with `files`, trusting the hub's CA in `hub_dir`.
    fn connect(hub_dir: &Path, files: &DeviceFiles) -> Device {
        let python = repo().join("tests/peers/.venv-azure/bin/python");
        assert!(
            python.exists(),
            "the Azure SDK is not installed: run scripts/install-peers.sh --azure-only"
        );
        let mut child = Command::new(python)
            .arg(repo().join("tests/peers/hub_device_client.py"))
            .arg("--ca-file")
            .arg(hub_dir.join("hub-ca.pem"))
            .args(["--x509", "--hostname", IP, "--device-id", DEVICE])
            .arg("--cert-file")
            .arg(&files.cert)
            .arg("--key-file")
            .arg(&files.key)
            .args(["--pass-phrase", KEY_PASSWORD])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the SDK client");
        let stdin = tokio::process::ChildStdin::from_std(child.stdin.take().unwrap()).unwrap();
        let stdout = tokio::process::ChildStdout::from_std(child.stdout.take().unwrap()).unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut out = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = out.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        let _ = tx.send(v);
                    }
                    Err(_) => eprintln!("sdk: {line}"),
                }
            }
        });
        Device {
            proc: KillOnDrop(child),
            stdin: Some(stdin),
            lines,
        }
    }

    /// The next line that satisfies `want`; other lines are shown.
    async fn next(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} from the SDK client within {STEP:?}"))
                .unwrap_or_else(|| panic!("the SDK client ended before {what}"));
            if want(&line) {
                return line;
            }
            eprintln!("sdk: {line}");
        }
    }

    /// `ready` (connected, receive handlers set) or `connect-failed`.
    async fn outcome(&mut self) -> Value {
        self.next("connect outcome", |l| {
            l["event"] == "ready" || l["event"] == "connect-failed" || l["event"] == "setup-failed"
        })
        .await
    }

    /// Sends a command; answers its result line.
    async fn call(&mut self, cmd: Value) -> Value {
        let name = cmd["cmd"].as_str().unwrap().to_string();
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
        self.next(&name, |l| l["cmd"].as_str() == Some(name.as_str()))
            .await
    }

    /// Closes stdin (the script then shuts the client down) and answers the exit code.
    async fn exit_code(mut self) -> Option<i32> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.proc.0.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the SDK client did not end within 20 s of EOF"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The next SSE event's `data:` JSON from a response body.
async fn next_event(stream: &mut reqwest::Response, buf: &mut String) -> Value {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) {
                return serde_json::from_str(data.trim()).unwrap();
            }
            continue; // a keep-alive comment
        }
        let chunk = tokio::time::timeout(STEP, stream.chunk())
            .await
            .expect("an SSE event within the time limit")
            .unwrap()
            .expect("the SSE stream stays open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// The CA certificate and the current CRL, from the distribution endpoints `cert_file`'s CRL
/// distribution point names (`<vault>/v2/crl/<CA serial>`, the CA at `/v2/issuer/<serial>`),
/// written as `ca.pem` and `crl-<tag>.pem` in `dir` and together as the hub's trust file.
async fn publish_trust(http: &Http, dir: &Path, cert_file: &str, tag: &str, trust: &Path) {
    let (ok, ext) = openssl(
        &[
            "x509",
            "-in",
            cert_file,
            "-noout",
            "-ext",
            "crlDistributionPoints",
        ],
        dir,
    );
    assert!(ok, "{ext}");
    let crl_url = ext
        .split("URI:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no CRL distribution point URL in {ext}"))
        .to_string();
    let issuer_url = crl_url.replacen("/v2/crl/", "/v2/issuer/", 1);
    assert_ne!(issuer_url, crl_url, "unexpected CRL URL {crl_url}");
    let ca = pem("CERTIFICATE", &http.get_bytes(&issuer_url).await);
    let crl = pem("X509 CRL", &http.get_bytes(&crl_url).await);
    std::fs::write(dir.join("ca.pem"), &ca).unwrap();
    std::fs::write(dir.join(format!("crl-{tag}.pem")), &crl).unwrap();
    replace(trust, &format!("{ca}{crl}"));
}

/// `openssl verify` of the device certificate for TLS client use against the vault's CA and
/// CRL; answers (ok, output).
fn openssl_verify(dir: &Path, crl_tag: &str) -> (bool, String) {
    let crl = format!("crl-{crl_tag}.pem");
    openssl(
        &[
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            "ca.pem",
            "-crl_check",
            "-CRLfile",
            &crl,
            "device.pem",
        ],
        dir,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_issued_device_certificate_connects_until_revoked() {
    let started = Instant::now();
    let dir = temp_dir("hub-vault-x509");
    let http = Http::new();
    let broker = Mosquitto::start().await;
    let (_vault, vault) = start_vault(&dir.join("vault")).await;

    // 1. The vault issues the device a key pair: requested by a writer, approved by an
    //    approver, fetched (with its key, once) by the writer.
    let app = http
        .ok(
            Method::POST,
            &format!("{vault}/v2/applications"),
            VAULT_WRITER,
            Some(&json!({
                "applicationUri": format!("urn:iiot:test:{DEVICE}"),
                "applicationType": "Client",
                "applicationNames": [{"locale": "en", "text": DEVICE}],
            })),
        )
        .await;
    let app = app["applicationId"].as_str().expect("applicationId");
    let request = http
        .ok(
            Method::PUT,
            &format!("{vault}/v2/requests/keypair"),
            VAULT_WRITER,
            Some(&json!({
                "entityId": app,
                "groupId": GROUP,
                "certificateTypeId": RSA,
                "subjectName": format!("CN={DEVICE}"),
                "privateKeyFormat": "PEM",
                "privateKeyPassword": KEY_PASSWORD,
            })),
        )
        .await;
    let request = request["requestId"].as_str().expect("requestId");
    http.ok(
        Method::POST,
        &format!("{vault}/v2/requests/{request}/approve"),
        VAULT_APPROVER,
        None,
    )
    .await;
    let issued = http
        .ok(
            Method::GET,
            &format!("{vault}/v2/requests/keypair/{request}"),
            VAULT_WRITER,
            None,
        )
        .await;
    let cert_der = base64::engine::general_purpose::STANDARD
        .decode(issued["certificate"]["certificate"].as_str().expect("cert"))
        .unwrap();
    let key_pem = issued["privateKey"]["key"].as_str().expect("private key");
    assert!(
        key_pem.contains("BEGIN ENCRYPTED PRIVATE KEY"),
        "the key comes encrypted with the password"
    );
    let device = DeviceFiles {
        cert: dir.join("device.pem"),
        key: dir.join("device.key"),
    };
    std::fs::write(&device.cert, pem("CERTIFICATE", &cert_der)).unwrap();
    std::fs::write(&device.key, key_pem).unwrap();

    // The hub identifies a certificateAuthority device by the leaf's CN, and rustls' WebPki
    // client verifier insists on the TLS client-auth EKU: the vault's profile must carry both.
    let (ok, text) = openssl(&["x509", "-in", "device.pem", "-noout", "-text"], &dir);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("Subject: CN = {DEVICE}")),
        "subject is not CN={DEVICE}:\n{text}"
    );
    assert!(
        text.contains("TLS Web Client Authentication"),
        "vault-issued certificates lack the clientAuth EKU, which the hub requires:\n{text}"
    );

    // 2. The hub trusts the vault's CA and its CRL, fetched where the certificate points.
    let trust = dir.join("hub-trust.pem");
    publish_trust(&http, &dir, "device.pem", "1", &trust).await;
    let (ok, out) = openssl_verify(&dir, "1");
    assert!(
        ok && out.contains("device.pem: OK"),
        "openssl verify: {out}"
    );
    let hub_dir = dir.join("hub");
    let (_hub, hub) = start_hub(&hub_dir, &trust, &broker.url()).await;

    // 3. The device, registered by CA (no thumbprint, no key), connects and sends.
    let registered = http
        .ok(
            Method::PUT,
            &format!("{hub}/devices/{DEVICE}"),
            HUB_ADMIN,
            Some(&json!({"authentication": {"type": "certificateAuthority"}})),
        )
        .await;
    assert_eq!(
        registered["authentication"]["type"], "certificateAuthority",
        "{registered}"
    );
    let mut sdk = Device::connect(&hub_dir, &device);
    let outcome = sdk.outcome().await;
    assert_eq!(
        outcome["event"], "ready",
        "the hub refused the vault-issued certificate (IIOT_TEST_LOG=info shows why): {outcome}"
    );
    let state = http
        .ok(
            Method::GET,
            &format!("{hub}/devices/{DEVICE}"),
            HUB_ADMIN,
            None,
        )
        .await;
    assert_eq!(state["connectionState"], "Connected", "{state}");
    let sent = sdk
        .call(json!({"cmd": "send", "body": "hello from the vault's device"}))
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    assert_eq!(sdk.exit_code().await, Some(0));

    let mut stream = http
        .request(
            Method::GET,
            &format!("{hub}/events/v2/hub/messages?deviceId={DEVICE}&after=0"),
            Some(HUB_ADMIN),
            None,
        )
        .send()
        .await
        .expect("SSE stream");
    assert_eq!(stream.status().as_u16(), 200);
    let message = next_event(&mut stream, &mut String::new()).await;
    assert_eq!(
        message["body"], "hello from the vault's device",
        "{message}"
    );
    assert_eq!(
        message["systemProperties"]["iothub-connection-device-id"], DEVICE,
        "{message}"
    );
    drop(stream);

    // 4. The vault revokes the certificate; the hub gets the new CRL through its trust file
    //    (looked at at most every 2 s) and refuses the same certificate, key and device.
    http.ok(
        Method::POST,
        &format!("{vault}/v2/requests/{request}/revoke"),
        VAULT_APPROVER,
        None,
    )
    .await;
    publish_trust(&http, &dir, "device.pem", "2", &trust).await;
    let (ok, out) = openssl_verify(&dir, "2");
    assert!(
        !ok && out.contains("certificate revoked"),
        "the vault's new CRL does not revoke the certificate for openssl: {out}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut sdk = Device::connect(&hub_dir, &device);
    let outcome = sdk.outcome().await;
    assert_eq!(
        outcome["event"], "connect-failed",
        "the hub accepted a certificate the vault's CRL revokes: {outcome}"
    );
    assert_eq!(sdk.exit_code().await, Some(2));
    let state = http
        .ok(
            Method::GET,
            &format!("{hub}/devices/{DEVICE}"),
            HUB_ADMIN,
            None,
        )
        .await;
    assert_eq!(state["connectionState"], "Disconnected", "{state}");
    eprintln!(
        "vault → hub X.509 scenario took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
