//! The vault's core on both storage backends: SQLite (a file) and PostgreSQL (a database of
//! its own per test on 127.0.0.1:5432, dropped afterwards). Same operations, same answers.

use std::path::PathBuf;
use std::str::FromStr;

use iiot_auth::{ApiKeys, Principal, Role};
use iiot_vault::model::*;
use iiot_vault::service::Vault;
use iiot_vault::{Kek, Store, VaultConfig, VaultError};
use rcgen::{CertificateParams, KeyPair, SanType};
use sqlx::Connection;

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

fn temp_dir(name: &str) -> PathBuf {
    let mut rnd = [0u8; 6];
    openssl::rand::rand_bytes(&mut rnd).expect("rand");
    let dir = std::env::temp_dir().join(format!(
        "iiot-vault-{name}-{}-{}",
        std::process::id(),
        hex::encode(rnd)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A uniquely named PostgreSQL database, dropped by [`PgDb::drop_db`].
struct PgDb {
    name: String,
}

impl PgDb {
    async fn create() -> PgDb {
        let mut rnd = [0u8; 6];
        openssl::rand::rand_bytes(&mut rnd).expect("rand");
        let name = format!(
            "iiot_vault_test_{}_{}",
            std::process::id(),
            hex::encode(rnd)
        );
        let mut c = sqlx::PgConnection::connect(PG_ADMIN)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .expect("create database");
        PgDb { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    async fn drop_db(self) {
        let mut c = sqlx::PgConnection::connect(PG_ADMIN)
            .await
            .expect("PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut c)
        .await
        .expect("drop database");
    }
}

fn config(dir: &std::path::Path) -> VaultConfig {
    let mut c = VaultConfig::new(ApiKeys::single("x", "0123456789abcdef", [Role::Admin]));
    c.data_dir = dir.to_path_buf();
    c
}

fn csr(uri: &str, dns: &str) -> String {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut p = CertificateParams::new(vec![dns.to_string()]).expect("params");
    p.subject_alt_names
        .push(SanType::URI(uri.try_into().expect("ascii")));
    p.serialize_request(&key).expect("csr").pem().expect("pem")
}

/// Register, submit, approve, fetch, revoke; then reopen the store and find it all again.
async fn lifecycle(database_url: Option<String>) {
    let dir = temp_dir("lifecycle");
    let kek = Kek::generate().expect("kek");
    let writer = Principal::new("ops", [Role::Writer]);
    let approver = Principal::new("sec", [Role::Approver]);
    let store = Store::open(database_url.as_deref(), &dir)
        .await
        .expect("open store");
    let vault = Vault::open(
        store.clone(),
        kek.clone(),
        config(&dir),
        "http://vault.test".into(),
    )
    .await
    .expect("open vault");
    let app = vault
        .register_application(
            &writer,
            &ApplicationRequest {
                application_uri: Some("urn:test:plc1".into()),
                application_type: Some(ApplicationType::Server),
                application_name: Some("PLC 1".into()),
                discovery_urls: Some(vec!["opc.tcp://plc1:4840".into()]),
                ..Default::default()
            },
        )
        .await
        .expect("register");
    let req = StartSigningRequest {
        entity_id: app.application_id.clone(),
        group_id: "DefaultApplicationGroup".into(),
        certificate_type_id: Some("EccNistP256ApplicationCertificateType".into()),
        certificate_request: csr("urn:test:plc1", "plc1"),
    };
    let id = vault
        .submit_signing_request(&writer, &req)
        .await
        .expect("submit");
    assert!(matches!(
        vault.approve(&writer, &id).await,
        Err(VaultError::NotAllowed(_))
    ));
    vault.approve(&approver, &id).await.expect("approve");
    assert!(matches!(
        vault.approve(&approver, &id).await,
        Err(VaultError::InvalidState(_))
    ));
    let got = vault
        .fetch(&writer, &id, CertificateRequestType::SigningRequest, None)
        .await
        .expect("fetch");
    assert_eq!(got.request.state, CertificateRequestState::Accepted);
    let serial = got.certificate.expect("certificate").serial_number;
    let before = vault
        .trust_list("DefaultApplicationGroup", Some("EccNistP256"))
        .await
        .expect("trust list");
    vault.revoke(&approver, &id).await.expect("revoke");
    let after = vault
        .trust_list("DefaultApplicationGroup", Some("EccNistP256"))
        .await
        .expect("trust list");
    assert_ne!(
        before.trusted_crls, after.trusted_crls,
        "revocation must re-sign the CRL"
    );
    let crl_der = base64_decode(&after.trusted_crls[0]);
    let (_, crl) = x509_parser::parse_x509_crl(&crl_der).expect("CRL parses");
    assert!(crl
        .iter_revoked_certificates()
        .any(|r| hex::encode_upper(r.raw_serial()) == serial));
    let audit = vault.audit(0, 100).await.expect("audit");
    for action in [
        "application.register",
        "request.submit",
        "request.approve",
        "request.revoke",
    ] {
        assert!(
            audit.entries.iter().any(|e| e.action == action),
            "audit lacks {action}"
        );
    }
    // Two approvers racing for one request: exactly one wins, on either backend.
    let id2 = vault
        .submit_signing_request(&writer, &req)
        .await
        .expect("submit");
    let approver2 = Principal::new("sec2", [Role::Approver]);
    let (a, b) = tokio::join!(
        vault.approve(&approver, &id2),
        vault.approve(&approver2, &id2)
    );
    assert!(
        a.is_ok() ^ b.is_ok(),
        "exactly one approval must win: {a:?} {b:?}"
    );
    assert!(matches!(
        a.err().or(b.err()),
        Some(VaultError::InvalidState(_))
    ));
    let audit = vault.audit(0, 100).await.expect("audit");

    // Append-only in the database itself, not only by the absence of code that changes it.
    for sql in [
        "UPDATE audit SET actor = 'someone else'",
        "DELETE FROM audit",
    ] {
        let err = sqlx::query(sql).execute(store.pool()).await;
        assert!(err.is_err(), "{sql} must be refused");
    }
    assert_eq!(
        vault.audit(0, 100).await.expect("audit").entries.len(),
        audit.entries.len()
    );
    drop(vault);
    store.close().await;

    // Reopen: the same CAs (no new ones), the request in its last state.
    let store = Store::open(database_url.as_deref(), &dir)
        .await
        .expect("reopen");
    let vault = Vault::open(store.clone(), kek, config(&dir), "http://vault.test".into())
        .await
        .expect("reopen vault");
    let r = vault.request(&id).await.expect("request survives");
    assert_eq!(r.state, CertificateRequestState::Revoked);
    let again = vault
        .trust_list("DefaultApplicationGroup", Some("EccNistP256"))
        .await
        .expect("trust list");
    assert_eq!(again.trusted_certificates, after.trusted_certificates);
    // Without the right KEK the CAs do not open.
    let wrong = Vault::open(
        store.clone(),
        Kek::generate().expect("kek"),
        config(&dir),
        "http://x".into(),
    )
    .await;
    assert!(
        matches!(wrong, Err(VaultError::Crypto(_))),
        "a wrong KEK must not open the CAs"
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

#[tokio::test]
async fn lifecycle_on_sqlite() {
    lifecycle(None).await;
}

#[tokio::test]
async fn lifecycle_on_postgres() {
    let db = PgDb::create().await;
    lifecycle(Some(db.url())).await;
    db.drop_db().await;
}

#[tokio::test]
async fn database_urls_of_other_kinds_are_refused() {
    let dir = temp_dir("url");
    let err = Store::open(Some("mysql://x/y"), &dir).await.unwrap_err();
    assert!(err.to_string().contains("sqlite: or postgres://"), "{err}");
    assert!(sqlx::any::AnyConnectOptions::from_str("sqlite::memory:").is_ok());
}
