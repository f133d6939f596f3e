//! The vault's push engine against a push target nobody here wrote: node-opcua 2.160's
//! `OPCUAServer` with `installPushCertificateManagementOnServer` from
//! node-opcua-server-configuration 2.157 (tests/peers/node_push_server.js). Its TrustList
//! CloseAndUpdate does nothing, so the vault falls back to AddCertificate (CAs, no CRLs) and
//! says so in the job; after ApplyChanges node-opcua restarts its endpoints and presents the
//! vault-issued certificate, which the job verifies before it succeeds.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{tools, Vault, ADMIN, READER, WRITER};
use iiot_testkit::{free_port, temp_dir, KillOnDrop};
use iiot_vault::gds::GdsConfig;
use reqwest::Method;
use serde_json::{json, Value};

fn peers() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/peers")
}

/// Starts node_push_server.js trusting the vault (its CA, the CA's CRL and the vault's own
/// client certificate); answers the process and its `ready` line.
fn start_node_server(
    dir: &Path,
    port: u16,
    trust: &[PathBuf],
    crls: &[PathBuf],
) -> (KillOnDrop, Value) {
    assert!(
        peers()
            .join("node_modules/node-opcua-server-configuration")
            .is_dir(),
        "node-opcua-server-configuration is not installed: run scripts/install-peers.sh"
    );
    std::fs::write(dir.join("admin.pw"), "node-admin-secret\n").unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(peers().join("node_push_server.js"))
        .args(["--port", &port.to_string(), "--host", "127.0.0.1"])
        .arg("--pki")
        .arg(dir.join("node-pki"))
        .args(["--admin-user", "admin", "--admin-password-file"])
        .arg(dir.join("admin.pw"));
    for t in trust {
        cmd.arg("--trust-client-cert").arg(t);
    }
    for c in crls {
        cmd.arg("--trust-crl").arg(c);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node");
    let stdout = child.stdout.take().unwrap();
    let guard = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = rx.recv_timeout(left).expect("node push server ready line");
        if v["ready"] == true {
            return (guard, v);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_pushes_to_a_node_opcua_server() {
    let dir = temp_dir("vault-push-node-opcua");
    let gds_port = free_port();
    let v = Vault::start(&dir, |c| {
        c.cert_types = vec![iiot_vault::CertType::RsaSha256];
        c.opcua = Some(GdsConfig {
            bind: format!("127.0.0.1:{gds_port}").parse().unwrap(),
            hostname: "localhost".into(),
        });
    })
    .await;
    v.ok(
        Method::POST,
        "/v2/groups/DefaultApplicationGroup",
        ADMIN,
        Some(&json!({"autoApprove": true})),
    )
    .await;

    // node-opcua trusts the vault's CA (with its CRL: it refuses CA-issued peers without one)
    // and the vault's own certificate, as an operator would set it up.
    let tl = v
        .ok(
            Method::GET,
            "/v2/groups/DefaultApplicationGroup/trustlist",
            READER,
            None,
        )
        .await;
    let ca = dir.join("vault-ca.der");
    std::fs::write(
        &ca,
        tools::unb64(tl["trustedCertificates"][0].as_str().unwrap()),
    )
    .unwrap();
    let crl = dir.join("vault-ca.crl");
    std::fs::write(&crl, tools::unb64(tl["trustedCrls"][0].as_str().unwrap())).unwrap();
    let own = dir.join("gds-pki/own/cert.der");
    let port = free_port();
    let (_node, ready) = start_node_server(&dir, port, &[ca, own], &[crl]);
    let url = format!("opc.tcp://127.0.0.1:{port}");

    let body = json!({
        "applicationUri": ready["applicationUri"],
        "applicationType": "Server",
        "applicationNames": [{"locale": "en", "text": "node-opcua push target"}],
        "productUri": "urn:node-push-target",
        "discoveryUrls": [url]
    });
    let app = v
        .ok(Method::POST, "/v2/applications", WRITER, Some(&body))
        .await["applicationId"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v2/push/targets/{app}");
    v.ok(
        Method::PUT,
        &path,
        ADMIN,
        Some(&json!({
            "endpointUrl": url,
            "userName": "admin",
            "password": "node-admin-secret",
            "serverThumbprint": ready["certificateThumbprint"],
        })),
    )
    .await;

    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let t = v.ok(Method::GET, &path, READER, None).await;
        let state = t["lastJob"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if state == "succeeded" || state == "failed" {
            break t["lastJob"].clone();
        }
        assert!(Instant::now() < deadline, "push did not finish: {t}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["trustListMode"], "addCertificate", "{job}");
    assert_eq!(job["crlsPushed"], false);

    // node-opcua keeps the pushed certificate in its PKI: the vault's, for its URI.
    let pem = std::fs::read(dir.join("node-pki/own/certs/certificate.pem")).unwrap();
    let cert = openssl::x509::X509::from_pem(&pem).unwrap();
    assert_eq!(
        job["certificateThumbprint"],
        iiot_gds::pki::thumbprint(&cert.to_der().unwrap()).to_ascii_uppercase()
    );
    let ca = openssl::x509::X509::from_der(&tools::unb64(
        tl["trustedCertificates"][0].as_str().unwrap(),
    ))
    .unwrap();
    assert!(cert.verify(&ca.public_key().unwrap()).unwrap());
    v.shutdown().await;
}
