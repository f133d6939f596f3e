//! The schema, embedded in the binary and applied in order at start-up. Each step runs once,
//! recorded in `vault_schema`. Steps are shared SQL with `{blob}` and `{autoid}` filled in per
//! backend, except where the dialects part ways (triggers), which have one text per backend.
//! Statements end with `;` at the end of a line.

use sqlx::{AssertSqlSafe, Row};

use super::{Backend, Store};
use crate::error::{Result, VaultError};

/// Step 2: the audit log refuses UPDATE and DELETE in the database itself.
const AUDIT_APPEND_ONLY_SQLITE: &str = r#"
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#;
const AUDIT_APPEND_ONLY_POSTGRES: &str = r#"
CREATE FUNCTION vault_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION vault_audit_append_only();
"#;

fn migrations(backend: Backend) -> [(i64, &'static str); 4] {
    [
        (1, SCHEMA),
        (
            2,
            match backend {
                Backend::Sqlite => AUDIT_APPEND_ONLY_SQLITE,
                Backend::Postgres => AUDIT_APPEND_ONLY_POSTGRES,
            },
        ),
        (3, CERT_SERIAL_INDEX),
        (4, PUSH),
    ]
}

/// The GDS face finds a request by the certificate a channel presents (ApplicationSelfAdmin,
/// RevokeCertificate, CheckRevocationStatus), on every call of an application session.
const CERT_SERIAL_INDEX: &str = "CREATE INDEX requests_cert_serial ON requests (cert_serial)";

/// Part 12 push: targets (credentials sealed) and the jobs run against them.
const PUSH: &str = r#"
CREATE TABLE push_targets (
    application_id TEXT PRIMARY KEY,
    endpoint_url TEXT NOT NULL,
    user_name TEXT NOT NULL,
    password_sealed {blob} NOT NULL,
    server_thumbprint TEXT,
    regenerate_key BIGINT NOT NULL,
    new_key_pair BIGINT NOT NULL,
    group_id TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_by TEXT,
    updated_at BIGINT,
    pushed_serial TEXT,
    pushed_not_after BIGINT,
    pushed_crl_mark TEXT,
    next_attempt BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    revision BIGINT NOT NULL
);
CREATE TABLE push_jobs (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    state TEXT NOT NULL,
    step TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    target_revision BIGINT NOT NULL,
    request_id TEXT,
    cert_serial TEXT,
    thumbprint TEXT,
    trust_list_mode TEXT,
    crls_pushed BIGINT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX push_jobs_application ON push_jobs (application_id, id);
"#;

const SCHEMA: &str = r#"
CREATE TABLE applications (
    id TEXT PRIMARY KEY,
    application_uri TEXT NOT NULL,
    application_type TEXT NOT NULL,
    application_names TEXT NOT NULL,
    product_uri TEXT NOT NULL,
    discovery_urls TEXT NOT NULL,
    server_capabilities TEXT NOT NULL,
    state TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_by TEXT,
    updated_at BIGINT
);
CREATE INDEX applications_uri ON applications (application_uri);
CREATE TABLE cert_groups (
    id TEXT PRIMARY KEY,
    group_type TEXT NOT NULL,
    subject_name TEXT NOT NULL,
    cert_types TEXT NOT NULL,
    ca_lifetime_days BIGINT NOT NULL,
    issued_lifetime_days BIGINT NOT NULL,
    rsa_key_size BIGINT NOT NULL,
    auto_approve BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE cas (
    serial TEXT PRIMARY KEY,
    group_id TEXT NOT NULL,
    cert_type TEXT NOT NULL,
    cert_der {blob} NOT NULL,
    key_sealed {blob} NOT NULL,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    active BIGINT NOT NULL,
    crl_number BIGINT NOT NULL,
    crl_der {blob},
    crl_next_update BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX cas_group ON cas (group_id, cert_type);
CREATE TABLE requests (
    id TEXT PRIMARY KEY,
    request_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    cert_type TEXT NOT NULL,
    state TEXT NOT NULL,
    csr_der {blob},
    public_key_der {blob},
    subject_name TEXT NOT NULL,
    domain_names TEXT NOT NULL,
    key_format TEXT,
    key_encrypted BIGINT NOT NULL,
    key_sealed {blob},
    cert_der {blob},
    cert_serial TEXT,
    ca_serial TEXT,
    not_after BIGINT,
    error_info TEXT,
    submitted_by TEXT NOT NULL,
    submitted_at BIGINT NOT NULL,
    approved_by TEXT,
    approved_at BIGINT,
    accepted_by TEXT,
    accepted_at BIGINT,
    revoked_by TEXT,
    revoked_at BIGINT
);
CREATE INDEX requests_entity ON requests (entity_id);
CREATE INDEX requests_ca ON requests (ca_serial, state);
CREATE TABLE audit (
    id {autoid},
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#;

pub(super) async fn apply(store: &Store) -> Result<()> {
    let pool = store.pool();
    sqlx::query("CREATE TABLE IF NOT EXISTS vault_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .execute(pool)
        .await?;
    let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM vault_schema")
        .fetch_one(pool)
        .await?
        .try_get("v")?;
    for (version, sql) in migrations(store.backend()) {
        if version <= current {
            continue;
        }
        let (blob, autoid) = match store.backend() {
            Backend::Sqlite => ("BLOB", "INTEGER PRIMARY KEY AUTOINCREMENT"),
            Backend::Postgres => ("BYTEA", "BIGSERIAL PRIMARY KEY"),
        };
        let sql = sql.replace("{blob}", blob).replace("{autoid}", autoid);
        let mut tx = pool.begin().await?;
        for stmt in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(AssertSqlSafe(stmt.to_string()))
                .execute(&mut *tx)
                .await
                .map_err(|e| VaultError::Migration(format!("step {version}: {e}")))?;
        }
        sqlx::query("INSERT INTO vault_schema (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(crate::model::now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, "applied vault schema migration");
    }
    Ok(())
}
