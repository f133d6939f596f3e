//! The twin API's REST surface that needs no module: identity-registry paging, export and
//! import (SQLite and PostgreSQL), the OpenAPI document, credentials (API keys, OIDC tokens)
//! and the problem+json answers to bad requests. The service runs in this process against a
//! private Mosquitto; what needs a module process is in the workspace's `tests/twin_api.rs`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::process::Command;
use std::sync::Arc;

use harness::{assert_problem, raw_post, TwinApi, ADMIN, READER, WRITER};
use iiot_testkit::{free_port, temp_dir, Mosquitto, OpensslIdp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Answers that need no module: anonymous health, refused credentials, and bad input of
/// every kind as problem+json.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_and_refused_credentials_answer_problem_json() {
    let broker = Mosquitto::start().await;
    let api = TwinApi::start(&broker.url(), &temp_dir("twin-refusals"), |_| {}).await;

    // Health is anonymous; everything else needs a credential.
    let (s, body) = api.get("/healthz", "").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, h, body) = api
        .send(Method::GET, "/registry/v2/publishers", None, &[], None)
        .await;
    assert_problem(s, &h, &body, 401);
    let (s, h, body) = api
        .send(
            Method::POST,
            "/twin/v2/read/uatnosuchendpoint",
            Some("wrong-key-0123456789"),
            &[],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_problem(s, &h, &body, 401);

    let (s, h, body) = api
        .send(
            Method::POST,
            "/twin/v2/read/uatnosuchendpoint",
            Some(WRITER),
            &[],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_problem(s, &h, &body, 404);
    let (s, h, body) = api
        .send(
            Method::POST,
            "/twin/v2/read/bad%3Cid%3E",
            Some(WRITER),
            &[],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_problem(s, &h, &body, 400);
    let (s, h, body) = api
        .send(
            Method::GET,
            &format!("/registry/v2/endpoints/{}", "a".repeat(129)),
            Some(READER),
            &[],
            None,
        )
        .await;
    assert_problem(s, &h, &body, 400);
    // Oversize: refused from its Content-Length, before the body is read.
    let (status, content_type, body) = raw_post(
        &api.base,
        "/twin/v2/read/uatnosuchendpoint",
        WRITER,
        2 * 1024 * 1024,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["symbolicId"], "BadRequestTooLarge", "{body}");

    let (s, h, body) = api
        .send(
            Method::GET,
            "/registry/v2/publishers/query?connected=maybe",
            Some(READER),
            &[],
            None,
        )
        .await;
    assert_problem(s, &h, &body, 400);
    let change = || {
        let body = json!({ "applicationName": "Press 7", "capabilities": ["DA"] });
        Some(body.to_string().into_bytes())
    };
    for (path, want) in [
        ("/registry/v2/applications/uasnosuchapp", 404),
        ("/registry/v2/applications/bad%3Cid%3E", 400),
    ] {
        let (s, h, b) = api
            .send(Method::PATCH, path, Some(ADMIN), &[], change())
            .await;
        assert_problem(s, &h, &b, want);
    }
    let (s, h, body) = api
        .send(
            Method::POST,
            "/registry/v2/applications/uasnosuchapp/disable",
            Some(ADMIN),
            &[],
            None,
        )
        .await;
    assert_problem(s, &h, &body, 404);
    let (s, h, body) = api
        .send(
            Method::DELETE,
            "/registry/v2/applications?notSeenFor=soon",
            Some(ADMIN),
            &[],
            None,
        )
        .await;
    assert_problem(s, &h, &body, 400);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_paging_and_export_import() {
    paging_and_export(None).await;
}

/// A PostgreSQL database of its own (created with psql on 127.0.0.1:5432), dropped after.
struct PgDatabase {
    name: String,
}

fn psql(sql: &str) {
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
        .expect("psql (PostgreSQL client) installed");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PgDatabase {
    fn create() -> PgDatabase {
        let name = format!("twin_api_e2e_{}_{}", std::process::id(), free_port());
        psql(&format!("CREATE DATABASE {name}"));
        PgDatabase { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_paging_and_export_import_on_postgres() {
    let db = PgDatabase::create();
    paging_and_export(Some(db.url())).await;
}

async fn paging_and_export(database_url: Option<String>) {
    let broker = Mosquitto::start().await;
    let api = TwinApi::start(&broker.url(), &temp_dir("twin-paging"), |c| {
        c.database_url = database_url
    })
    .await;
    // OpenAPI from the code, Swagger UI at /docs; neither needs a credential.
    let doc: Value = api
        .http
        .get(format!("{}/openapi.json", api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/twin/v2/read/{endpointId}",
        "/registry/v2/publishers/{publisherId}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing from {doc}");
    }
    let ui = api
        .http
        .get(format!("{}/docs/", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), StatusCode::OK);
    assert!(
        ui.text().await.unwrap().contains("swagger"),
        "Swagger UI page"
    );

    // 2,500 applications through the bulk import.
    let mut lines = String::new();
    for i in 0..2500 {
        let id = format!("app-{i:05}");
        lines.push_str(
            &json!({
                "kind": "application", "id": id, "generationId": format!("g{i}"),
                "etag": format!("e{i}"),
                "body": { "applicationId": id, "applicationUri": format!("urn:test:{i}") }
            })
            .to_string(),
        );
        lines.push('\n');
    }
    let (s, h, body) = api
        .send(
            Method::POST,
            "/registry/v2/import",
            Some(WRITER),
            &[],
            Some(lines.clone().into_bytes()),
        )
        .await;
    assert_problem(s, &h, &body, 403);
    let (s, h, body) = api
        .send(
            Method::POST,
            "/registry/v2/import",
            Some(ADMIN),
            &[],
            Some(b"{\"kind\": \"application\", \"id\": \"bad id\"}\n".to_vec()),
        )
        .await;
    assert_problem(s, &h, &body, 400);
    let (s, _, body) = api
        .send(
            Method::POST,
            "/registry/v2/import",
            Some(ADMIN),
            &[],
            Some(lines.into_bytes()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["imported"], 2500);

    // More than a page may hold is refused, as the OpenAPI document says (maximum 1000).
    let (s, problem) = api
        .get("/registry/v2/applications?pageSize=5000", READER)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["status"], 400);

    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &token {
            Some(t) => format!("/registry/v2/applications?pageSize=1000&continuationToken={t}"),
            None => "/registry/v2/applications?pageSize=1000".to_string(),
        };
        let (s, page) = api.get(&path, READER).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 1000);
        pages += 1;
        ids.extend(
            items
                .iter()
                .map(|i| i["applicationId"].as_str().unwrap().to_string()),
        );
        match page["continuationToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids.len(), 2500);
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 2500);
    let (s, body) = api
        .get("/registry/v2/applications?pageSize=0", READER)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");

    // Export, import into an empty registry: the same registry.
    let export = |api: &TwinApi| {
        let http = api.http.clone();
        let url = format!("{}/registry/v2/export", api.base);
        async move {
            http.get(url)
                .header("Authorization", format!("Bearer {ADMIN}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let first = export(&api).await;
    assert_eq!(first.lines().count(), 2500);
    let other = TwinApi::start(&broker.url(), &temp_dir("twin-import"), |_| {}).await;
    let (s, _, body) = other
        .send(
            Method::POST,
            "/registry/v2/import",
            Some(ADMIN),
            &[],
            Some(first.clone().into_bytes()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(export(&other).await, first);
    let (_, one) = other
        .get("/registry/v2/applications/app-00042", READER)
        .await;
    assert_eq!(one["application"]["generationId"], "g42", "{one}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_access_tokens_are_checked_against_the_jwks() {
    let idp = OpensslIdp::new();
    let broker = Mosquitto::start().await;
    let settings = iiot_auth::JwtSettings {
        issuer: Some("https://idp.test".into()),
        audience: Some("iiot".into()),
        roles_claim: "realm_access.roles".into(),
        ..Default::default()
    };
    let jwt = iiot_auth::JwtValidator::load(&idp.dir.join("jwks.json"), settings).expect("JWKS");
    let api = TwinApi::start(&broker.url(), &temp_dir("twin-jwt"), |c| {
        c.jwt = Some(Arc::new(jwt))
    })
    .await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 300;
    let claims = |roles: Value, aud: &str, exp: u64| json!({ "iss": "https://idp.test", "aud": aud, "sub": "svc-1", "exp": exp, "realm_access": { "roles": roles } });
    let reader = idp.token(&claims(json!(["reader"]), "iiot", exp));
    let (s, body) = api.get("/registry/v2/publishers", &reader).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Admin routes need the admin role, whoever signed the token.
    let (s, _, body) = api
        .send(
            Method::DELETE,
            "/registry/v2/applications?notSeenFor=1",
            Some(&reader),
            &[],
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    for (what, bad) in [
        (
            "audience",
            idp.token(&claims(json!(["admin"]), "someone-else", exp)),
        ),
        (
            "expired",
            idp.token(&claims(json!(["admin"]), "iiot", exp - 3600)),
        ),
        (
            "foreign key",
            OpensslIdp::new().token(&claims(json!(["admin"]), "iiot", exp)),
        ),
    ] {
        let (s, body) = api.get("/registry/v2/publishers", &bad).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(
            body["symbolicId"], "BadIdentityTokenInvalid",
            "{what}: {body}"
        );
    }
    // API keys keep working beside tokens.
    let (s, _) = api.get("/registry/v2/publishers", READER).await;
    assert_eq!(s, StatusCode::OK);
}
