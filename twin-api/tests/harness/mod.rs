//! The twin API started in this process (the crate's own `start`) on a free port, against a
//! private Mosquitto, and driven over HTTP like a user would.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use iiot_twin_api::{ApiKeys, TwinApiConfig, TwinApiHandle};
use reqwest::{Method, StatusCode};
use rumqttc::{TlsConfiguration, Transport};
use serde_json::{json, Value};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

pub const READER: &str = "reader-key-0123456789";
pub const WRITER: &str = "writer-key-0123456789";
pub const ADMIN: &str = "admin-key-01234567890";

/// One key per role.
pub fn api_keys() -> ApiKeys {
    let file = json!([
        { "name": "viewer", "key": READER, "roles": ["reader"] },
        { "name": "operator", "key": WRITER, "roles": ["writer"] },
        { "name": "root", "key": ADMIN, "roles": ["admin"] },
    ]);
    ApiKeys::parse(&file.to_string()).expect("API keys")
}

pub struct TwinApi {
    pub base: String,
    pub http: reqwest::Client,
    /// The hub's device endpoint, when the configuration asked for one.
    pub device_addr: Option<std::net::SocketAddr>,
    handle: Option<TwinApiHandle>,
}

impl TwinApi {
    /// Registry in `data_dir` (SQLite) unless `configure` sets a database URL.
    pub async fn start(
        mqtt_url: &str,
        data_dir: &Path,
        configure: impl FnOnce(&mut TwinApiConfig),
    ) -> TwinApi {
        let mut config = TwinApiConfig::new(api_keys());
        config.http_bind = "127.0.0.1:0".parse().expect("address");
        config.mqtt_url = mqtt_url.into();
        config.data_dir = data_dir.to_path_buf();
        configure(&mut config);
        let handle = iiot_twin_api::start(config).await.expect("twin API starts");
        TwinApi {
            base: format!("http://{}", handle.http_addr),
            http: reqwest::Client::new(),
            device_addr: handle.device_addr,
            handle: Some(handle),
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        for (h, v) in headers {
            req = req.header(*h, *v);
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b);
        }
        let res = req.send().await.expect("twin-api answers");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, headers, body)
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        let (s, _, b) = self.send(Method::GET, path, Some(key), &[], None).await;
        (s, b)
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
        let (s, _, b) = self
            .send(
                Method::POST,
                path,
                Some(key),
                &[],
                Some(body.to_string().into_bytes()),
            )
            .await;
        (s, b)
    }
}

/// A problem+json answer with status `want` and a `Bad…` OPC UA symbol.
pub fn assert_problem(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
    want: u16,
) {
    assert_eq!(status.as_u16(), want, "{body}");
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{body}"
    );
    assert_eq!(body["status"], want, "{body}");
    assert!(
        body["symbolicId"]
            .as_str()
            .is_some_and(|s| s.starts_with("Bad")),
        "{body}"
    );
}
/// A POST announcing `length` bytes but sending only the first KiB, over a raw socket, so the
/// answer to an oversize body is read whatever the server does with the rest.
pub async fn raw_post(base: &str, path: &str, key: &str, length: usize) -> (u16, String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(&vec![b' '; 1024]).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(String::from)
        })
        .unwrap_or_default();
    let body = body
        .find('{')
        .and_then(|i| {
            serde_json::Deserializer::from_str(&body[i..])
                .into_iter::<Value>()
                .next()
        })
        .and_then(Result::ok)
        .unwrap_or(Value::Null);
    (status, content_type, body)
}

/// rumqttc's TLS to a hub's device endpoint, trusting the CA the hub wrote to `data`.
pub fn hub_tls(data: &Path) -> Transport {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(data.join("hub-ca.pem")).expect("hub CA"))
        .expect("hub CA");
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Transport::tls_with_config(TlsConfiguration::Rustls(std::sync::Arc::new(config)))
}
