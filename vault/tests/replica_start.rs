//! Replicas of the vault started at the same moment on one empty PostgreSQL database (on
//! 127.0.0.1:5432, a database of its own per round, dropped afterwards): all of them start and
//! serve, and they share one set of CAs. Without the start-up lock they raced in the schema
//! migration (`duplicate key value violates unique constraint "pg_type_typname_nsp_index"`)
//! and in creating the first groups and CAs.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;

use iiot_testkit::temp_dir;
use iiot_vault::{ApiKeys, CertType, KekSource, Role, VaultConfig, VaultHandle};
use sqlx::{Connection, Row};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
const READER_KEY: &str = "reader-key-0123456789";
const REPLICAS: usize = 3;
/// Fresh databases per run: one round does not always hit the race on the unlocked code.
const ROUNDS: usize = 5;

fn random_hex(bytes: usize) -> String {
    let mut rnd = vec![0u8; bytes];
    openssl::rand::rand_bytes(&mut rnd).expect("rand");
    hex::encode(rnd)
}

async fn admin() -> sqlx::PgConnection {
    sqlx::PgConnection::connect(PG_ADMIN)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432")
}

/// Replica `i` of a deployment: its own port and data directory, the shared database and KEK.
fn replica_config(database_url: &str, kek: &str, i: usize) -> VaultConfig {
    let mut c = VaultConfig::new(ApiKeys::single("viewer", READER_KEY, [Role::Reader]));
    c.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    c.data_dir = temp_dir(&format!("replica{i}"));
    c.database_url = Some(database_url.to_string());
    c.kek = Some(KekSource::Value(kek.to_string()));
    c.cert_types = vec![CertType::EccNistP256];
    c
}

/// `GET path` on a running vault as the reader; the JSON body of a 200 answer.
async fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {READER_KEY}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("answer");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP answer");
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "GET {path}: {head}\n{body}"
    );
    serde_json::from_str(body).expect("JSON body")
}

/// Thumbprints of every CA certificate the vault at `addr` lists, sorted.
async fn ca_thumbprints(addr: SocketAddr) -> Vec<String> {
    let groups = get_json(addr, "/v2/groups").await;
    let mut out: Vec<String> = groups["registrations"]
        .as_array()
        .expect("registrations")
        .iter()
        .flat_map(|g| g["issuers"].as_array().cloned().unwrap_or_default())
        .map(|c| c["thumbprint"].as_str().expect("thumbprint").to_string())
        .collect();
    out.sort();
    out
}

async fn one_round(round: usize) {
    let name = format!("vault_race_{}_{}", std::process::id(), random_hex(6));
    let mut c = admin().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut c)
        .await
        .expect("create database");
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let kek = random_hex(32);

    // The same start-up the binary runs, three times at once.
    let configs: Vec<VaultConfig> = (0..REPLICAS)
        .map(|i| replica_config(&url, &kek, i))
        .collect();
    let dirs: Vec<PathBuf> = configs.iter().map(|c| c.data_dir.clone()).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, config) in configs.into_iter().enumerate() {
        tasks.spawn(async move { (i, iiot_vault::start(config).await) });
    }
    let mut handles: Vec<VaultHandle> = Vec::new();
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("start task") {
            (_, Ok(h)) => handles.push(h),
            (i, Err(e)) => failures.push(format!("replica {i}: {e}")),
        }
    }

    let mut seen = Vec::new();
    if failures.is_empty() {
        for h in &handles {
            seen.push(ca_thumbprints(h.addr()).await);
        }
    }
    let mut db = sqlx::PgConnection::connect(&url).await.expect("database");
    let count = |sql: &'static str| sqlx::query(sql);
    let cas: i64 = match count("SELECT COUNT(*) AS n FROM cas")
        .fetch_one(&mut db)
        .await
    {
        Ok(r) => r.get("n"),
        Err(_) => -1,
    };
    let groups: i64 = match count("SELECT COUNT(*) AS n FROM cert_groups")
        .fetch_one(&mut db)
        .await
    {
        Ok(r) => r.get("n"),
        Err(_) => -1,
    };
    // Released once the replicas are up: a replica restarting later must not wait forever.
    let held: i64 = match count(
        "SELECT COUNT(*) AS n FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&mut db)
    .await
    {
        Ok(r) => r.get("n"),
        Err(_) => -1,
    };
    let _ = db.close().await;
    for h in handles {
        h.shutdown().await.expect("shutdown");
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut c)
    .await
    .expect("drop database");
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }

    assert!(
        failures.is_empty(),
        "round {round}: every replica must start: {failures:?}"
    );
    let defaults = iiot_vault::config::DEFAULT_GROUPS.len() as i64;
    assert_eq!(held, 0, "round {round}: the start-up lock is released");
    assert_eq!(groups, defaults, "round {round}: one set of default groups");
    assert_eq!(cas, defaults, "round {round}: one CA per group and type");
    assert_eq!(seen[0].len(), defaults as usize, "round {round}: {seen:?}");
    assert!(
        seen.iter().all(|s| *s == seen[0]),
        "round {round}: every replica must serve the same CAs: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_started_together_on_one_postgres_share_one_set_of_cas() {
    for round in 0..ROUNDS {
        one_round(round).await;
    }
}
