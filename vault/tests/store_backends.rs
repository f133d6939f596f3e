//! The vault's core on both storage backends: SQLite (a file) and PostgreSQL (a database of
//! its own per test on 127.0.0.1:5432, dropped afterwards). Same operations, same answers.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::str::FromStr;

use iiot_auth::{ApiKeys, Principal, Role};
use iiot_testkit::temp_dir;
use iiot_vault::model::*;
use iiot_vault::service::Vault;
use iiot_vault::{Kek, Store, VaultConfig, VaultError};
use rcgen::{CertificateParams, KeyPair, SanType};
use sqlx::Connection;

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

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

// ------------------------------------------------------------------ group commit

use iiot_vault::store::{AuditLine, Issued, NewRequest};
use sqlx::Row;

fn new_request(id: &str) -> NewRequest {
    NewRequest {
        id: id.to_string(),
        request_type: CertificateRequestType::SigningRequest,
        entity_id: "app-gc".into(),
        group_id: "DefaultApplicationGroup".into(),
        cert_type: "EccNistP256ApplicationCertificateType".into(),
        csr_der: Some(vec![0x30, 0x00]),
        public_key_der: Some(vec![0x30, 0x00]),
        subject_name: String::new(),
        domain_names: vec!["plc".into()],
        key_format: None,
        key_encrypted: false,
        key_sealed: None,
        submitted_by: "ops".into(),
        submitted_at: 1,
    }
}

fn issued(n: usize) -> Issued {
    Issued {
        cert_der: vec![0x30, 0x03, 0x02, 0x01, n as u8],
        cert_serial: format!("{n:04X}"),
        ca_serial: "CA".into(),
        not_after: 2,
    }
}

async fn submit(store: &Store, id: &str) -> Result<(), VaultError> {
    let line = AuditLine {
        actor: "ops",
        action: "request.submit",
        target: id,
        detail: "group commit test".into(),
    };
    store
        .insert_request_audited(&new_request(id), &line, None)
        .await
}

async fn approve(store: &Store, id: &str, n: usize) -> Result<bool, VaultError> {
    let line = AuditLine {
        actor: "sec",
        action: "request.approve",
        target: id,
        detail: format!("serial {n:04X}"),
    };
    store
        .approve_request_audited(id, "sec", 3, &issued(n), &line)
        .await
}

/// A connection of its own, outside the store's pool: what another process (or the vault
/// after a restart) would see.
enum Fresh {
    Sqlite(sqlx::SqliteConnection),
    Pg(sqlx::PgConnection),
}

impl Fresh {
    async fn open(database_url: Option<&str>, dir: &std::path::Path) -> Fresh {
        match database_url {
            Some(url) => Fresh::Pg(sqlx::PgConnection::connect(url).await.expect("pg")),
            None => Fresh::Sqlite(
                sqlx::SqliteConnection::connect(&format!(
                    "sqlite://{}",
                    dir.join("vault.db").display()
                ))
                .await
                .expect("sqlite"),
            ),
        }
    }

    async fn execute(&mut self, sql: &'static str) {
        match self {
            Fresh::Sqlite(c) => sqlx::query(sql).execute(c).await.map(|_| ()),
            Fresh::Pg(c) => sqlx::query(sql).execute(c).await.map(|_| ()),
        }
        .expect(sql);
    }

    /// `(state, audit lines naming the request)` of request `id`, if it exists.
    async fn request(&mut self, id: &str) -> Option<(String, i64)> {
        const SQL: &str = "SELECT state, (SELECT COUNT(*) FROM audit WHERE target = r.id) AS n \
                           FROM requests r WHERE id = $1";
        match self {
            Fresh::Sqlite(c) => sqlx::query(SQL)
                .bind(id)
                .fetch_optional(c)
                .await
                .expect("select")
                .map(|r| (r.get("state"), r.get("n"))),
            Fresh::Pg(c) => sqlx::query(SQL)
                .bind(id)
                .fetch_optional(c)
                .await
                .expect("select")
                .map(|r| (r.get("state"), r.get("n"))),
        }
    }
}

/// Many concurrent state changes share commits, each caller gets its own answer, and what was
/// answered is in the database as seen from a fresh connection.
async fn group_commit_many(database_url: Option<String>) {
    let dir = temp_dir("group-many");
    let store = Store::open(database_url.as_deref(), &dir)
        .await
        .expect("open");
    let before = store.write_stats();
    let n = 300;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let store = store.clone();
        tasks.spawn(async move {
            let id = format!("many-{i}");
            submit(&store, &id).await.expect("submit");
            let won = approve(&store, &id, i).await.expect("approve");
            (id, won)
        });
    }
    let mut answered = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (id, won) = r.expect("task");
        assert!(won, "{id}: approval of a New request must apply");
        answered.push(id);
    }
    assert_eq!(answered.len(), n);
    let stats = store.write_stats();
    let ops = (stats.answered - before.answered) as usize;
    let commits = (stats.commits - before.commits) as usize;
    assert_eq!(ops, 2 * n, "every operation answered once");
    assert_eq!((stats.applied - before.applied) as usize, 2 * n);
    assert!(
        commits < ops / 2,
        "concurrent operations must share commits: {commits} commits for {ops} operations"
    );
    // Every acknowledged change is durable: a separate connection sees all of them, each with
    // its two audit lines.
    let mut fresh = Fresh::open(database_url.as_deref(), &dir).await;
    for id in &answered {
        assert_eq!(
            fresh.request(id).await,
            Some(("Approved".to_string(), 2)),
            "{id}"
        );
    }
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// One batch holding a valid approval, an approval of a request in the wrong state and a
/// submission that breaks the primary key: only the two bad operations fail, each alone, and
/// the rest of the batch commits with its audit lines.
async fn group_commit_isolates_failures(database_url: Option<String>) {
    let dir = temp_dir("group-fail");
    let store = Store::open(database_url.as_deref(), &dir)
        .await
        .expect("open");
    for i in 0..10 {
        submit(&store, &format!("r{i}")).await.expect("submit");
    }
    assert!(approve(&store, "r9", 99).await.expect("approve r9"));

    // Hold the database's write lock so the writer stalls on its first batch (r0) while the
    // rest queue up behind it and must then go in one batch together.
    let mut lock = Fresh::open(database_url.as_deref(), &dir).await;
    match lock {
        Fresh::Sqlite(_) => lock.execute("BEGIN IMMEDIATE").await,
        Fresh::Pg(_) => {
            lock.execute("BEGIN").await;
            lock.execute("LOCK TABLE requests IN EXCLUSIVE MODE").await;
        }
    }
    let commits = store.write_stats().commits;
    let first = {
        let store = store.clone();
        tokio::spawn(async move { approve(&store, "r0", 0).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut rest = tokio::task::JoinSet::new();
    for i in 1..9 {
        let store = store.clone();
        rest.spawn(async move { (i, approve(&store, &format!("r{i}"), i).await) });
    }
    let wrong_state = {
        let store = store.clone();
        tokio::spawn(async move { approve(&store, "r9", 9).await })
    };
    let duplicate = {
        let store = store.clone();
        tokio::spawn(async move { submit(&store, "r1").await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        store.write_stats().commits,
        commits,
        "nothing commits while the lock is held"
    );
    lock.execute("ROLLBACK").await;

    assert!(first.await.expect("task").expect("approve r0"));
    while let Some(r) = rest.join_next().await {
        let (i, won) = r.expect("task");
        assert!(won.expect("approve"), "r{i} must be approved");
    }
    assert!(
        !wrong_state.await.expect("task").expect("no error"),
        "approving an Approved request must fail alone"
    );
    assert!(
        matches!(
            duplicate.await.expect("task"),
            Err(VaultError::Storage(_) | VaultError::Sqlite(_))
        ),
        "a duplicate id fails alone"
    );
    assert_eq!(
        store.write_stats().commits,
        commits + 2,
        "r0's batch, then one batch with everything queued behind it"
    );

    let mut fresh = Fresh::open(database_url.as_deref(), &dir).await;
    for i in 0..9 {
        assert_eq!(
            fresh.request(&format!("r{i}")).await,
            Some(("Approved".to_string(), 2)),
            "r{i}: approved once, with its audit line"
        );
    }
    assert_eq!(
        fresh.request("r9").await,
        Some(("Approved".to_string(), 2)),
        "r9 keeps its first approval and gets no second audit line"
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_on_sqlite() {
    group_commit_many(None).await;
    group_commit_isolates_failures(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_on_postgres() {
    let db = PgDb::create().await;
    group_commit_many(Some(db.url())).await;
    group_commit_isolates_failures(Some(db.url())).await;
    db.drop_db().await;
}

// ------------------------------------------------------------------ inline SQLite reads

/// Byte offsets, in the `-shm` file, of the WAL locks SQLite's unix VFS takes there:
/// `WAL_WRITE_LOCK` and `WAL_RECOVER_LOCK` (`UNIX_SHM_BASE` + 0 and + 2, sqlite3.c).
const SHM_WRITE_LOCK: i64 = 120;
const SHM_RECOVER_LOCK: i64 = 122;
/// `iChange` of the second copy of the wal-index header (two 48-byte copies at offset 0).
const SHM_SECOND_HEADER_BYTE: u64 = 48 + 8;

/// The wal-index of a SQLite file left as a writer that died in the middle of a commit
/// leaves it (the two header copies differ), with its WAL write and recover locks held, as
/// by the process recovering it: until [`WalRecovery::finish`], a reader that cannot wait
/// gets `SQLITE_BUSY_RECOVERY`, and a reader with a busy timeout waits.
///
/// Why this and not a plain lock: in WAL mode readers wait for no writer, and SQLite's
/// connections in one process share their lock on the database file, so nothing else in
/// this process makes a reader busy. The locks are open file description locks, which
/// conflict with SQLite's own (classic POSIX) locks even within one process.
#[cfg(target_os = "linux")]
struct WalRecovery {
    shm: std::fs::File,
    original: u8,
}

#[cfg(target_os = "linux")]
impl WalRecovery {
    fn begin(db: &std::path::Path) -> WalRecovery {
        use std::os::unix::fs::FileExt;
        let shm = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(db.with_extension("db-shm"))
            .expect("the WAL index of an open database");
        for offset in [SHM_WRITE_LOCK, SHM_RECOVER_LOCK] {
            ofd_lock(&shm, offset, libc::F_WRLCK as libc::c_short)
                .expect("nobody holds the WAL lock of an idle store");
        }
        let mut byte = [0u8; 1];
        shm.read_exact_at(&mut byte, SHM_SECOND_HEADER_BYTE)
            .expect("read wal-index");
        shm.write_all_at(&[byte[0] ^ 0xff], SHM_SECOND_HEADER_BYTE)
            .expect("write wal-index");
        WalRecovery {
            shm,
            original: byte[0],
        }
    }

    /// Puts the header back as it was, then releases the locks (closing the file).
    fn finish(self) {
        use std::os::unix::fs::FileExt;
        self.shm
            .write_all_at(&[self.original], SHM_SECOND_HEADER_BYTE)
            .expect("restore wal-index");
    }
}

/// An open file description lock (`F_OFD_SETLK`) of one byte, without waiting.
#[cfg(target_os = "linux")]
fn ofd_lock(file: &std::fs::File, offset: i64, kind: libc::c_short) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` is plain data, fully initialized below; `fcntl` reads it during the call.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = offset;
    lock.l_len = 1;
    // SAFETY: a valid descriptor, and a pointer to a live `flock` for F_OFD_SETLK.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut lock) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(target_os = "linux")]
/// Waits (up to 10 s) until `store` counted `n` inline reads sent to sqlx.
async fn wait_for_fallbacks(store: &Store, n: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.inline_read_fallbacks() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "no inline read fell back: {} of {n}",
            store.inline_read_fallbacks()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// The certificate path's inline reads (rusqlite, no busy timeout: they run on an async
/// worker) must not fail when the SQLite file is busy: they answer through sqlx, which waits
/// on its own thread, with the same rows as the inline path once the file is free again.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_reads_answer_through_sqlx_while_the_database_is_busy() {
    let dir = temp_dir("busy-reads");
    let writer = Principal::new("ops", [Role::Writer]);
    let store = Store::open(None, &dir).await.expect("open store");
    let mut c = config(&dir);
    c.cert_types = vec![iiot_vault::CertType::EccNistP256];
    let vault = Vault::open(
        store.clone(),
        Kek::generate().expect("kek"),
        c,
        "http://vault.test".into(),
    )
    .await
    .expect("open vault");
    let app = vault
        .register_application(
            &writer,
            &ApplicationRequest {
                application_uri: Some("urn:test:busy".into()),
                application_type: Some(ApplicationType::Client),
                application_name: Some("busy".into()),
                ..Default::default()
            },
        )
        .await
        .expect("register")
        .application_id;
    let group = "DefaultApplicationGroup";
    let id = vault
        .submit_signing_request(
            &writer,
            &StartSigningRequest {
                entity_id: app.clone(),
                group_id: group.into(),
                certificate_type_id: Some("EccNistP256ApplicationCertificateType".into()),
                certificate_request: csr("urn:test:busy", "busy"),
            },
        )
        .await
        .expect("submit");
    // What the inline path answers on a free database.
    let request = format!("{:?}", store.request(&id).await.expect("read"));
    let context = format!(
        "{:?}",
        store.issue_context(&app, group, true).await.expect("read")
    );
    assert!(request.contains(&id), "{request}");
    assert!(
        context.contains(&app) && context.contains("EccNistP256ApplicationCertificateType"),
        "{context}"
    );
    assert_eq!(store.inline_read_fallbacks(), 0);

    let recovery = WalRecovery::begin(&dir.join("vault.db"));
    // The database is busy for a reader that does not wait, as the inline reads do.
    let probe = rusqlite::Connection::open(dir.join("vault.db")).expect("open");
    probe
        .busy_timeout(std::time::Duration::ZERO)
        .expect("no busy timeout");
    let err = probe
        .query_row("SELECT count(*) FROM requests", [], |r| r.get::<_, i64>(0))
        .expect_err("the database must be busy");
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy),
        "{err}"
    );
    let request_read = {
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move { store.request(&id).await })
    };
    let context_read = {
        let (store, app) = (store.clone(), app.clone());
        tokio::spawn(async move { store.issue_context(&app, group, true).await })
    };
    // Both reads went to sqlx, which waits while the database stays busy.
    wait_for_fallbacks(&store, 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !request_read.is_finished() && !context_read.is_finished(),
        "a read answered from a busy database"
    );
    recovery.finish();
    let got = request_read.await.expect("task").expect("read");
    assert_eq!(format!("{got:?}"), request);
    let got = context_read.await.expect("task").expect("read");
    assert_eq!(format!("{got:?}"), context);
    assert_eq!(store.inline_read_fallbacks(), 2);

    // Free again: the inline path answers, without sqlx.
    assert_eq!(
        format!("{:?}", store.request(&id).await.expect("read")),
        request
    );
    assert_eq!(store.inline_read_fallbacks(), 2);
    drop(probe);
    store.close().await;
}
