//! What the vault keeps: state across a restart, CA keys sealed in the database (read from
//! outside with the `sqlite3` command line) and refused without their KEK, the PostgreSQL
//! backend end to end, and CRLs re-signed before their nextUpdate. The vault runs in this
//! process; each restart is a new `start` on the same directory.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::process::Command;
use std::time::Duration;

use harness::tools::{from_hex, make_csr, openssl, pem, sqlite_hex, unb64};
use harness::{save_trust_list, Vault, APPROVER, READER, RSA, WRITER};
use iiot_testkit::{free_port, temp_dir};
use reqwest::Method;

#[tokio::test]
async fn state_survives_a_restart_and_ca_keys_are_sealed() {
    let dir = temp_dir("vault-restart");
    let v = Vault::start(&dir, |_| {}).await;
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
    v.shutdown().await;

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
    let v = Vault::start(&dir, |_| {}).await;
    assert_eq!(v.ok(Method::GET, "/v2/groups", READER, None).await, groups);
    let rec = v
        .ok(Method::GET, &format!("/v2/requests/{id}"), READER, None)
        .await;
    assert_eq!(rec["state"], "New");
    let got = v.approve_and_fetch(&id).await;
    assert!(got["certificate"]["certificate"].is_string());
    v.shutdown().await;

    // Another KEK does not open the CAs: the vault refuses to start.
    std::fs::write(dir.join("kek"), "ab".repeat(32)).expect("kek");
    let err = Vault::try_start(&dir, |_| {})
        .await
        .err()
        .expect("a vault with another KEK must not start")
        .to_string();
    assert!(err.contains("cannot decrypt"), "{err}");

    // A lost KEK file is not silently replaced by a new one.
    std::fs::remove_file(dir.join("kek")).expect("rm kek");
    let err = Vault::try_start(&dir, |_| {})
        .await
        .err()
        .expect("a vault without its KEK file must not start")
        .to_string();
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
        let v = Vault::start(&dir, |c| c.database_url = Some(url.clone())).await;
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
        v.shutdown().await;
        assert!(
            !dir.join("vault.db").exists(),
            "PostgreSQL mode must not create a SQLite file"
        );
        let v = Vault::start(&dir, |c| c.database_url = Some(url.clone())).await;
        let got = v.approve_and_fetch(&id).await;
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

#[tokio::test]
async fn crls_are_resigned_before_next_update() {
    let dir = temp_dir("vault-crl");
    let v = Vault::start(&dir, |c| {
        c.crl_validity_secs = 4;
        c.crl_refresh_interval = Duration::from_secs(1);
    })
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
    v.shutdown().await;
}
