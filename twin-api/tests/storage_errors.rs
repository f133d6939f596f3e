//! A storage failure answers 500 problem+json that names no database detail: the sqlx error
//! (table names, SQL, driver text) goes to the twin API's log only.

use std::time::Duration;

use iiot_twin_api::{ApiKeys, TwinApiConfig};
use serde_json::Value;

const READER: &str = "reader-key-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_answers_500_without_the_database_error() {
    let dir = std::env::temp_dir().join(format!(
        "twin-storage-errors-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let keys = ApiKeys::parse(&format!(
        r#"[{{"name": "viewer", "key": "{READER}", "roles": ["reader"]}}]"#
    ))
    .expect("key file");
    let mut config = TwinApiConfig::new(keys);
    config.http_bind = "127.0.0.1:0".parse().expect("address");
    config.data_dir = dir.clone();
    // The registry is served from the database alone; no broker is needed for this test.
    config.mqtt_url = format!("mqtt://127.0.0.1:{}", free_port());
    let api = iiot_twin_api::start(config).await.expect("twin API starts");
    let url = format!("http://{}/registry/v2/applications", api.http_addr);
    let http = reqwest::Client::new();
    let get = || {
        http.get(&url)
            .header("Authorization", format!("Bearer {READER}"))
            .timeout(Duration::from_secs(10))
            .send()
    };
    assert_eq!(get().await.expect("answer").status(), 200);

    // The table goes away underneath the running service.
    sqlx::any::install_default_drivers();
    let db = format!("sqlite://{}", dir.join("twin-api.db").display());
    let pool = sqlx::AnyPool::connect(&db)
        .await
        .expect("open the SQLite file");
    sqlx::query("DROP TABLE records")
        .execute(&pool)
        .await
        .expect("drop the table");
    pool.close().await;

    let res = get().await.expect("answer");
    assert_eq!(res.status(), 500);
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let text = res.text().await.expect("body");
    let body: Value = serde_json::from_str(&text).expect("problem+json");
    assert_eq!(body["status"], 500, "{body}");
    assert_eq!(body["symbolicId"], "BadInternalError", "{body}");
    for leak in [
        "records",
        "no such table",
        "sqlite",
        "SQLITE",
        "error returned",
    ] {
        assert!(!text.contains(leak), "answer names '{leak}': {text}");
    }
    api.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}
