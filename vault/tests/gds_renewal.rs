//! The vault's OPC UA face renews its own certificate while it runs (a vault outlives a
//! certificate): when the certificate is due — here, lost from the PKI folder — the next check
//! issues a new one from the vault's CA and the running endpoint presents it at once.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::time::{Duration, Instant};

use harness::{Vault, APPROVER, READER};
use iiot_testkit::{free_port, temp_dir};
use iiot_vault::gds::GdsConfig;
use opcua::client::ClientBuilder;
use opcua::types::MessageSecurityMode;
use reqwest::Method;

async fn presented(url: &str, dir: &std::path::Path) -> Vec<u8> {
    let client = ClientBuilder::new()
        .application_name("renewal test")
        .application_uri("urn:iiot:test:renewal")
        .pki_dir(dir)
        .create_sample_keypair(false)
        .client()
        .unwrap();
    let endpoints = client.get_server_endpoints_from_url(url).await.unwrap();
    endpoints
        .into_iter()
        .find(|e| e.security_mode == MessageSecurityMode::SignAndEncrypt)
        .and_then(|e| e.server_certificate.value)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gds_endpoint_renews_its_certificate_without_a_restart() {
    let dir = temp_dir("vault-gds-renewal");
    let port = free_port();
    let v = Vault::start(&dir, |c| {
        c.cert_types = vec![iiot_vault::CertType::RsaSha256];
        c.opcua = Some(GdsConfig {
            bind: format!("127.0.0.1:{port}").parse().unwrap(),
            hostname: "localhost".into(),
        });
    })
    .await;
    let url = v.opcua_url().unwrap();
    let client_pki = dir.join("client-pki");
    let first = presented(&url, &client_pki).await;
    assert_eq!(
        first,
        std::fs::read(dir.join("gds-pki/own/cert.der")).unwrap()
    );

    // The certificate file is lost; the next check (after the next CRL the vault signs, here a
    // revocation's) issues a new one and the endpoint serves it.
    std::fs::remove_file(dir.join("gds-pki/own/cert.der")).unwrap();
    let app = v.register("urn:iiot:test:renewal-trigger").await;
    let (request, _) =
        harness::issue_rsa(&v, &dir, &app, "urn:iiot:test:renewal-trigger", "t").await;
    v.ok(
        Method::POST,
        &format!("/v2/requests/{request}/revoke"),
        APPROVER,
        None,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let renewed = loop {
        let now = presented(&url, &client_pki).await;
        if now != first {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the endpoint still presents the old certificate"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        renewed,
        std::fs::read(dir.join("gds-pki/own/cert.der")).unwrap()
    );
    let tl = v
        .ok(
            Method::GET,
            "/v2/groups/DefaultApplicationGroup/trustlist",
            READER,
            None,
        )
        .await;
    let ca = openssl::x509::X509::from_der(&harness::tools::unb64(
        tl["trustedCertificates"][0].as_str().unwrap(),
    ))
    .unwrap();
    let cert = openssl::x509::X509::from_der(&renewed).unwrap();
    assert!(
        cert.verify(&ca.public_key().unwrap()).unwrap(),
        "not from the vault's CA"
    );
    v.shutdown().await;
}
