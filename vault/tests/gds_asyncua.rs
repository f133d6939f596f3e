//! The vault's OPC UA face (GDS pull model, issue 16) driven by a client we did not write:
//! Python asyncua 2.1.0 (`tests/peers/asyncua_gds_client.py`) registers, enrolls by CSR and by
//! new key pair, waits for approval (by REST and by the OPC UA face), reads the trust list file
//! and checks it with openssl, revokes, unregisters, and tries the refusals (roles, None
//! security, malformed records and CSRs, another application's request).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::PathBuf;
use std::process::Command;

use harness::{Vault, APPROVER, READER, WRITER};
use iiot_testkit::{free_port, temp_dir};
use iiot_vault::gds::GdsConfig;
use reqwest::Method;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn peers_python() -> PathBuf {
    let py = repo().join("tests/peers/.venv/bin/python");
    assert!(
        py.exists(),
        "{} missing: run scripts/install-test-deps.sh",
        py.display()
    );
    py
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncua_enrolls_through_the_gds_pull_model() {
    let dir = temp_dir("vault-gds-asyncua");
    let port = free_port();
    let v = Vault::start(&dir, |c| {
        c.cert_types = vec![iiot_vault::CertType::RsaSha256];
        c.opcua = Some(GdsConfig {
            bind: format!("127.0.0.1:{port}").parse().unwrap(),
            hostname: "localhost".into(),
        });
    })
    .await;
    let url = v.opcua_url().expect("GDS url");
    assert_eq!(url, format!("opc.tcp://localhost:{port}/"));
    let (base, work) = (v.base.clone(), dir.join("client"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(peers_python())
            .arg(repo().join("tests/peers/asyncua_gds_client.py"))
            .args(["--url", &url, "--rest", &base])
            .arg("--dir")
            .arg(&work)
            .args(["--writer", &format!("ops:{WRITER}")])
            .args(["--approver", &format!("sec:{APPROVER}")])
            .args(["--reader", &format!("viewer:{READER}")])
            .output()
            .expect("run the asyncua GDS client")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "asyncua GDS client failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );

    // Both faces wrote to one audit trail, naming who did what.
    let audit = v
        .ok(Method::GET, "/v2/audit?limit=1000", harness::ADMIN, None)
        .await;
    let lines = audit.to_string();
    for expected in [
        "application.register",
        "request.submit",
        "request.approve",
        "request.revoke",
        "application.unregister",
        "gds.serverCertificate",
        "application:",
    ] {
        assert!(lines.contains(expected), "audit lacks {expected}: {lines}");
    }
    v.shutdown().await;
}
