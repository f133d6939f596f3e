//! `iiot vault` as a process: what only the binary does. Its flags reach the running vault,
//! a refused start exits non-zero naming the reason, and SIGTERM and SIGINT stop it cleanly.
//! The REST API itself is tested in process by the crate (`vault/tests/`).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, temp_dir, OpensslIdp, Proc};
use serde_json::{json, Value};

const WRITER: &str = "writer-key-0123456789";
const WRITER2: &str = "writer2-key-0123456789";
const APPROVER: &str = "approver-key-0123456789";
const READER: &str = "reader-key-0123456789";
const ADMIN: &str = "admin-key-0123456789";
const GROUP: &str = "DefaultApplicationGroup";

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
        .env_remove("IIOT_KEK")
        .stderr(Stdio::inherit());
    cmd
}

/// `GET path` with `credential`; the status and the JSON body.
async fn get(port: u16, path: &str, credential: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .header("Authorization", format!("Bearer {credential}"))
        .send()
        .await
        .expect("HTTP request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The flags are parsed into the vault's configuration (policy, lifetimes, CA types, OIDC),
/// and a vault that cannot open its CAs stops with an error naming why and a failure status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_reach_the_vault_and_a_refused_start_fails_the_process() {
    let idp = OpensslIdp::new();
    let dir = temp_dir("vault-flags");
    let port = free_port();
    let jwks = idp.jwks();
    let mut child = vault_command(
        &dir,
        port,
        &[
            "--auto-approve",
            GROUP,
            "--issued-lifetime-days",
            "90",
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
    .stdout(Stdio::null())
    .spawn()
    .expect("spawn iiot vault");
    iiot_testkit::wait_for_port_of(port, "iiot vault", &mut child).await;
    let child = Proc(child);

    let token = idp.token(&OpensslIdp::claims(&["reader"], "vault", 300));
    let (status, group) = get(port, &format!("/v2/groups/{GROUP}"), &token).await;
    assert_eq!(status, 200, "{group}");
    assert_eq!(group["group"]["autoApprove"], true, "{group}");
    assert_eq!(group["group"]["issuedLifetime"], 90, "{group}");
    let types = group["group"]["certificateTypes"].to_string();
    assert!(
        types.contains("RsaSha256") && types.contains("EccNistP256") && !types.contains("P384"),
        "{types}"
    );
    let wrong_audience = idp.token(&OpensslIdp::claims(&["reader"], "twin", 300));
    let (status, body) = get(port, "/v2/groups", &wrong_audience).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = get(port, "/v2/groups", READER).await;
    assert_eq!(status, 200, "{body}");
    drop(child);

    // Another KEK does not open the CAs: the process fails and says why.
    std::fs::write(dir.join("kek"), "ab".repeat(32)).expect("kek");
    let out = vault_command(&dir, free_port(), &[])
        .stderr(Stdio::piped())
        .output()
        .expect("run iiot vault");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("cannot decrypt"), "{err}");
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
