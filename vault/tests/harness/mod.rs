//! The vault started in this process (the crate's own `start`) on a free port, with one API
//! key per role, and driven over HTTP like a user would; certificates, keys and CRLs are made
//! and checked by the `openssl` command line (`tools.rs`), a tool we did not write.
#![allow(dead_code)]

pub mod tools;

use std::path::{Path, PathBuf};

use iiot_vault::{ApiKeys, CertType, KekSource, VaultConfig, VaultError, VaultHandle};
use reqwest::Method;
use serde_json::{json, Value};

pub const WRITER: &str = "writer-key-0123456789";
pub const WRITER2: &str = "writer2-key-0123456789";
pub const APPROVER: &str = "approver-key-0123456789";
pub const READER: &str = "reader-key-0123456789";
pub const ADMIN: &str = "admin-key-0123456789";
pub const GROUP: &str = "DefaultApplicationGroup";
pub const RSA: &str = "RsaSha256ApplicationCertificateType";

/// Two writers (`ops`, `ops2`), an approver (`sec`), a reader (`viewer`) and an admin (`root`).
pub fn api_keys() -> ApiKeys {
    let keys = json!([
        {"name": "ops", "key": WRITER, "roles": ["writer"]},
        {"name": "ops2", "key": WRITER2, "roles": ["writer"]},
        {"name": "sec", "key": APPROVER, "roles": ["approver"]},
        {"name": "viewer", "key": READER, "roles": ["reader"]},
        {"name": "root", "key": ADMIN, "roles": ["admin"]}
    ]);
    ApiKeys::parse(&keys.to_string()).expect("API keys")
}

/// The configuration every test starts from: loopback on a free port, the database and the
/// KEK file `kek` in `dir`, RSA and P-256 CAs (P-384 key generation would only slow tests).
pub fn config(dir: &Path) -> VaultConfig {
    let mut c = VaultConfig::new(api_keys());
    c.bind = "127.0.0.1:0".parse().expect("address");
    c.data_dir = dir.to_path_buf();
    c.kek = Some(KekSource::File(dir.join("kek")));
    c.cert_types = vec![CertType::RsaSha256, CertType::EccNistP256];
    c
}

pub struct Vault {
    pub base: String,
    pub dir: PathBuf,
    http: reqwest::Client,
    handle: Option<VaultHandle>,
}

impl Vault {
    /// Starts the vault on `dir` (kept as it is between starts), after `configure` changed
    /// the test configuration.
    pub async fn start(dir: &Path, configure: impl FnOnce(&mut VaultConfig)) -> Vault {
        Vault::try_start(dir, configure)
            .await
            .expect("vault starts")
    }

    /// [`Vault::start`], answering why the vault refused to start instead of failing.
    pub async fn try_start(
        dir: &Path,
        configure: impl FnOnce(&mut VaultConfig),
    ) -> Result<Vault, VaultError> {
        let mut c = config(dir);
        configure(&mut c);
        let handle = iiot_vault::start(c).await?;
        Ok(Vault {
            base: format!("http://{}", handle.addr()),
            dir: dir.to_path_buf(),
            http: reqwest::Client::new(),
            handle: Some(handle),
        })
    }

    /// `opc.tcp://…` of the OPC UA face, when the test configured one.
    pub fn opcua_url(&self) -> Option<String> {
        self.handle
            .as_ref()
            .and_then(|h| h.opcua_url().map(str::to_string))
    }

    /// Finishes the requests in flight and closes the database, as a stopped process would.
    pub async fn shutdown(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await.expect("vault stops cleanly");
        }
    }

    /// Any call; answers (status, content type, body as JSON or `null`).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, String, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
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

    /// Approves a request as the approver and fetches what it issued as the writer: the
    /// two steps every issuing test takes after submitting.
    pub async fn approve_and_fetch(&self, id: &str) -> Value {
        self.ok(
            Method::POST,
            &format!("/v2/requests/{id}/approve"),
            APPROVER,
            None,
        )
        .await;
        self.ok(
            Method::GET,
            &format!("/v2/requests/sign/{id}"),
            WRITER,
            None,
        )
        .await
    }

    pub async fn ok(&self, method: Method, path: &str, key: &str, body: Option<&Value>) -> Value {
        let (status, _, v) = self.call(method.clone(), path, Some(key), body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    /// Expects a problem+json refusal with `status` and OPC UA `symbol`.
    pub async fn refused(
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

    pub async fn register(&self, uri: &str) -> String {
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

    pub async fn sign(&self, key: &str, app: &str, csr: &str, cert_type: &str) -> (u16, Value) {
        let body = json!({
            "entityId": app, "groupId": GROUP, "certificateTypeId": cert_type, "certificateRequest": csr
        });
        let (s, _, v) = self
            .call(Method::PUT, "/v2/requests/sign", Some(key), Some(&body))
            .await;
        (s, v)
    }

    pub async fn request_count(&self) -> usize {
        let v = self.ok(Method::GET, "/v2/requests", READER, None).await;
        v["requests"].as_array().map(Vec::len).unwrap_or(0)
    }
}

/// Signs an openssl-made RSA CSR for `uri`, approves and fetches it; answers the request id
/// and the certificate's PEM file name in `dir`.
pub async fn issue_rsa(
    v: &Vault,
    dir: &Path,
    app: &str,
    uri: &str,
    name: &str,
) -> (String, String) {
    let csr = tools::make_csr(
        dir,
        name,
        "rsa:2048",
        &[&format!("subjectAltName=URI:{uri}")],
    );
    let (s, b) = v.sign(WRITER, app, &csr, RSA).await;
    assert_eq!(s, 200, "{b}");
    let id = b["requestId"].as_str().expect("id").to_string();
    let got = v.approve_and_fetch(&id).await;
    let file = format!("{name}.pem");
    let der = tools::unb64(got["certificate"]["certificate"].as_str().expect("cert"));
    std::fs::write(dir.join(&file), tools::pem("CERTIFICATE", &der)).expect("cert");
    (id, file)
}

/// Writes the trust list's CAs and CRLs as PEM bundles; answers (ca file, crl file).
pub async fn save_trust_list(v: &Vault, dir: &Path, tag: &str) -> (String, String) {
    save_trust_list_of(v, dir, tag, RSA).await
}

pub async fn save_trust_list_of(
    v: &Vault,
    dir: &Path,
    tag: &str,
    cert_type: &str,
) -> (String, String) {
    use tools::{pem, unb64};
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
