//! The registry store's semantics, run against SQLite and against the PostgreSQL on
//! 127.0.0.1:5432 (a database of its own per test, dropped after).

use std::sync::Arc;

use serde_json::json;
use sqlx::any::AnyPoolOptions;

use super::*;

fn app(id: &str) -> Change {
    Change {
        owner: "m1".into(),
        body: json!({ "applicationId": id, "n": 0 }),
        ..Default::default()
    }
}

async fn create(store: &Store, kind: &str, id: &str) -> Record {
    store
        .modify(kind, id, None, |_| Ok(Some(app(id))))
        .await
        .unwrap()
        .unwrap()
}

async fn exercise(store: Store) {
    // Create: generationId and etag.
    let r1 = create(&store, PUBLISHER, "p1").await;
    assert!(!r1.generation_id.is_empty() && !r1.etag.is_empty());
    assert_eq!(store.get(PUBLISHER, "p1").await.unwrap(), Some(r1.clone()));

    // If-Match: a stale etag is refused and changes nothing.
    let stale = store
        .modify(PUBLISHER, "p1", Some("not-the-etag"), |c| {
            Ok(Some(Change::of(c.unwrap(), json!({ "changed": true }))))
        })
        .await;
    assert!(
        matches!(stale, Err(ApiError::PreconditionFailed(_))),
        "{stale:?}"
    );
    assert_eq!(
        store.get(PUBLISHER, "p1").await.unwrap().unwrap().body,
        r1.body
    );

    let r2 = store
        .modify(PUBLISHER, "p1", Some(&r1.etag), |c| {
            Ok(Some(Change::of(c.unwrap(), json!({ "changed": true }))))
        })
        .await
        .unwrap()
        .unwrap();
    assert_ne!(r2.etag, r1.etag);
    assert_eq!(r2.generation_id, r1.generation_id);
    // The same body again keeps the etag.
    let r3 = store
        .modify(PUBLISHER, "p1", None, |c| {
            Ok(Some(Change::of(c.unwrap(), json!({ "changed": true }))))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r3.etag, r2.etag);

    // Delete honours If-Match; a re-created id gets a new generationId.
    assert!(matches!(
        store.delete(PUBLISHER, "p1", Some(&r1.etag)).await,
        Err(ApiError::PreconditionFailed(_))
    ));
    store.delete(PUBLISHER, "p1", Some(&r2.etag)).await.unwrap();
    assert_eq!(store.get(PUBLISHER, "p1").await.unwrap(), None);
    assert!(matches!(
        store.delete(PUBLISHER, "p1", None).await,
        Err(ApiError::NotFound(_))
    ));
    let again = create(&store, PUBLISHER, "p1").await;
    assert_ne!(again.generation_id, r1.generation_id);

    // Ids are case-sensitive.
    create(&store, PUBLISHER, "Abc").await;
    create(&store, PUBLISHER, "abc").await;
    assert_eq!(
        store.all(PUBLISHER, Filter::default()).await.unwrap().len(),
        3
    );

    // Concurrent read-modify-write on one record loses no update.
    let shared = Arc::new(store.clone());
    create(&store, APPLICATION, "counter").await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let s = shared.clone();
            tokio::spawn(async move {
                s.modify(APPLICATION, "counter", None, |c| {
                    let c = c.unwrap();
                    let n = c.body["n"].as_i64().unwrap() + 1;
                    Ok(Some(Change::of(c, json!({ "n": n }))))
                })
                .await
                .unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let counter = store.get(APPLICATION, "counter").await.unwrap().unwrap();
    assert_eq!(counter.body["n"], 10);
    store.delete(APPLICATION, "counter", None).await.unwrap();

    // Paging over 2,500 records: at most 1000 a page, every record once, in order.
    for i in 0..2500 {
        create(&store, APPLICATION, &format!("app-{i:05}")).await;
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list(APPLICATION, Filter::default(), token.as_deref(), Some(5000))
            .await
            .unwrap();
        assert!(page.items.len() <= MAX_PAGE);
        pages += 1;
        seen.extend(page.items.into_iter().map(|r| r.id));
        match page.continuation_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 2500);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen);
    let small = store
        .list(APPLICATION, Filter::default(), None, Some(7))
        .await
        .unwrap();
    assert_eq!(small.items.len(), 7);
    assert!(small.continuation_token.is_some());
    assert!(matches!(
        store
            .list(APPLICATION, Filter::default(), Some("%%%"), None)
            .await,
        Err(ApiError::BadRequest(_))
    ));

    // Children by parent, filters by owner.
    let mut ep = app("e1");
    ep.parent = "app-00001".into();
    store
        .modify(ENDPOINT, "e1", None, |_| Ok(Some(ep.clone())))
        .await
        .unwrap();
    let f = Filter {
        owner: Some("m1"),
        parent: Some("app-00001"),
    };
    assert_eq!(store.all(ENDPOINT, f).await.unwrap().len(), 1);
    assert_eq!(
        store.delete_children(ENDPOINT, "app-00001").await.unwrap(),
        1
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_semantics_on_sqlite() {
    let dir = iiot_testkit::temp_dir("twin-store");
    let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
    let store = Store::open(&url).await.unwrap();
    exercise(store).await;
    // Migrations are applied once: opening again is fine and keeps the data.
    let store = Store::open(&url).await.unwrap();
    assert_eq!(
        store
            .all(APPLICATION, Filter::default())
            .await
            .unwrap()
            .len(),
        2500
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `postgres://postgres@127.0.0.1:5432/test` unless `IIOT_TEST_POSTGRES` names another.
fn postgres_admin_url() -> String {
    std::env::var("IIOT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_semantics_on_postgres() {
    sqlx::any::install_default_drivers();
    let admin_url = postgres_admin_url();
    let admin = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (set IIOT_TEST_POSTGRES to use another)");
    let db = format!("twin_api_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&admin)
        .await
        .unwrap();
    let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap();
    let url = format!("{base}/{db}");
    let outcome = tokio::spawn(async move {
        let store = Store::open(&url).await.unwrap();
        exercise(store).await;
        // A second replica opening the same database migrates nothing twice.
        let store = Store::open(&url).await.unwrap();
        assert_eq!(
            store
                .all(APPLICATION, Filter::default())
                .await
                .unwrap()
                .len(),
            2500
        );
        store.close().await;
    })
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
