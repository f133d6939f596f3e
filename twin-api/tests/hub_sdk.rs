//! Microsoft's service SDK (PyPI `azure-iot-hub` 2.7.0, `IoTHubRegistryManager`) against the
//! hub over HTTPS with the connection string the hub wrote: devices, modules, twins, queries
//! with paging, stale etags and a wrong key, each as the SDK sees them
//! (`tests/peers/hub_service_client.py`, installed by `scripts/install-peers.sh`).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::{Path, PathBuf};

use harness::TwinApi;
use iiot_testkit::{temp_dir, Mosquitto};
use iiot_twin_api::tls::TlsFiles;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A CA and a server certificate for `localhost` (the hub's name) signed by it.
fn pki(dir: &Path) -> TlsFiles {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: OpenSSL takes a leaf whose issuer is its own subject for self-signed.
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "iiot hub test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

/// Runs one scenario of the SDK client; its exit code and its JSON lines.
fn sdk(dir: &Path, data: &Path, args: &[&str]) -> (i32, Vec<Value>, String) {
    let python = repo().join("tests/peers/.venv-azure/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-peers.sh",
        python.display()
    );
    let out = std::process::Command::new(python)
        .arg(repo().join("tests/peers/hub_service_client.py"))
        .arg("--connection-string-file")
        .arg(data.join("hub-connection-string"))
        .args(args)
        .env("REQUESTS_CA_BUNDLE", dir.join("ca.pem"))
        .env("NO_PROXY", "*")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_sdk_manages_devices_modules_and_twins() {
    let dir = temp_dir("hub-sdk");
    let data = dir.join("data");
    let tls = pki(&dir);
    let broker = Mosquitto::start().await;
    let api = TwinApi::start(&broker.url(), &data, |c| c.tls = Some(tls.clone())).await;

    let (code, lines, output) = tokio::task::spawn_blocking({
        let (dir, data) = (dir.clone(), data.clone());
        move || sdk(&dir, &data, &["registry"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{output}");
    let step = |name: &str| {
        lines
            .iter()
            .find(|l| l["step"] == name)
            .unwrap_or_else(|| panic!("step {name} in {output}"))
            .clone()
    };
    // Spot checks of what the script asserted itself.
    let created = step("create-device");
    assert_eq!(created["deviceId"], "sdk-dev-1", "{output}");
    assert_eq!(created["status"], "enabled", "{output}");
    let names: Vec<&str> = lines.iter().filter_map(|l| l["step"].as_str()).collect();
    for want in [
        "get-device",
        "update-device",
        "get-twin",
        "update-twin",
        "replace-twin",
        "query-paged",
        "update-module-twin",
        "stale-etag",
        "not-found",
        "delete-device",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(want)),
            "{want} in {names:?}"
        );
    }

    let (code, lines, output) = tokio::task::spawn_blocking({
        let (dir, data) = (dir.clone(), data.clone());
        move || sdk(&dir, &data, &["wrong-key"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{output}");
    assert_eq!(lines[0]["status"], 401, "{output}");
    api.shutdown().await;
}
