//! `--tls-cert/--tls-key`: the twin API serves HTTPS (TLS 1.2 and 1.3) with the given chain,
//! and nothing in clear on that port; a bad key file stops the start naming the flag.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::Path;
use std::sync::Arc;

use harness::{TwinApi, READER};
use iiot_testkit::{temp_dir, Mosquitto};
use iiot_twin_api::tls::TlsFiles;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files.
fn pki(dir: &Path) -> TlsFiles {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

/// One HTTP/1.1 request over TLS trusting only `ca`; answers the raw response.
async fn https(addr: std::net::SocketAddr, ca: &Path, request: &str) -> String {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    let _ = tls.read_to_string(&mut out).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_the_given_certificate_and_nothing_in_clear() {
    let dir = temp_dir("twin-api-https");
    let files = pki(&dir);
    let broker = Mosquitto::start().await;
    let api = TwinApi::start(&broker.url(), &dir.join("data"), |c| {
        c.tls = Some(files.clone());
    })
    .await;
    let addr: std::net::SocketAddr = api.base.trim_start_matches("http://").parse().unwrap();

    let health = https(
        addr,
        &dir.join("ca.pem"),
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let listed = https(
        addr,
        &dir.join("ca.pem"),
        &format!(
            "GET /registry/v2/applications HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer {READER}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(listed.starts_with("HTTP/1.1 200"), "{listed}");

    // Plain HTTP on the same port gets no HTTP answer.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(12),
        tcp.read_to_end(&mut out),
    )
    .await;
    assert!(!out.starts_with(b"HTTP/"), "answered in clear");
    api.shutdown().await;

    // A key that is not a key: the start fails naming the flags.
    std::fs::write(dir.join("server.key"), "not a key").unwrap();
    let mut config = iiot_twin_api::TwinApiConfig::new(harness::api_keys());
    config.http_bind = "127.0.0.1:0".parse().unwrap();
    config.mqtt_url = broker.url();
    config.data_dir = dir.join("data2");
    config.tls = Some(files);
    let refused = iiot_twin_api::start(config)
        .await
        .err()
        .expect("a bad key is refused");
    let text = refused.to_string();
    assert!(
        text.contains("--tls-cert/--tls-key") && text.contains("server.key"),
        "{text}"
    );
}
