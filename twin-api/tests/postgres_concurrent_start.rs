//! Replicas started at once on one empty PostgreSQL database: every one opens (migrates) the
//! registry store and serves, none dies in a migration race. Run against the PostgreSQL on
//! 127.0.0.1:5432 (trust auth), a fresh database per round, dropped after.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use iiot_twin_api::store::{Filter, Store, APPLICATION};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const REPLICAS: usize = 3;
const ROUNDS: usize = 5;

/// Databases created by the test, dropped when it ends whatever happened.
struct Databases {
    admin: sqlx::AnyPool,
    names: Vec<String>,
}

impl Databases {
    async fn create(&mut self) -> String {
        let name = format!("twin_api_race_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&self.admin)
            .await
            .expect("create database");
        self.names.push(name.clone());
        format!("postgres://postgres@127.0.0.1:5432/{name}")
    }

    async fn drop_all(&mut self) {
        for name in self.names.drain(..) {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&self.admin)
                .await
            {
                eprintln!("dropping {name}: {e}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_on_an_empty_database_all_serve() {
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(ADMIN_URL)
        .await
        .expect("PostgreSQL at 127.0.0.1:5432");
    let mut dbs = Databases {
        admin,
        names: Vec::new(),
    };
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let url = dbs.create().await;
        let opened = futures::future::join_all((0..REPLICAS).map(|_| Store::open(&url))).await;
        for (replica, store) in opened.into_iter().enumerate() {
            match store {
                Ok(store) => {
                    let page = store.list(APPLICATION, Filter::default(), None, None).await;
                    if let Err(e) = page {
                        failures.push(format!("round {round}, replica {replica} reads: {e}"));
                    }
                    store.close().await;
                }
                Err(e) => failures.push(format!("round {round}, replica {replica} opens: {e}")),
            }
        }
    }
    dbs.drop_all().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
