//! A storage failure answers 500 problem+json that names no database detail: the sqlx error
//! (table names, SQL, driver text) goes to the twin API's log only.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use harness::{TwinApi, READER};
use iiot_testkit::{temp_dir, Mosquitto};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_answers_500_without_the_database_error() {
    let broker = Mosquitto::start().await;
    let dir = temp_dir("twin-storage-errors");
    let api = TwinApi::start(&broker.url(), &dir, |_| {}).await;
    let (s, body) = api.get("/registry/v2/applications", READER).await;
    assert_eq!(s, 200, "{body}");

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

    let (s, h, body) = api
        .send(
            reqwest::Method::GET,
            "/registry/v2/applications",
            Some(READER),
            &[],
            None,
        )
        .await;
    harness::assert_problem(s, &h, &body, 500);
    assert_eq!(body["symbolicId"], "BadInternalError", "{body}");
    let text = body.to_string();
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
}
