//! The registry's queries, PATCH and enable/disable over a real store, run on SQLite and on
//! the PostgreSQL on 127.0.0.1:5432 (a database of its own per run, dropped after).

use std::sync::Arc;

use serde_json::{json, Value};
use sqlx::any::AnyPoolOptions;

use super::*;
use crate::query::{ApplicationQuery, EndpointQuery};

fn registration(
    uri: &str,
    kind: &str,
    site: Option<&str>,
    port: u16,
) -> ApplicationRegistrationModel {
    serde_json::from_value(json!({
        "application": {
            "applicationId": "", "applicationUri": uri, "applicationType": kind,
            "applicationName": format!("name of {uri}"), "capabilities": ["DA"],
            "productUri": "http://vendor/plc", "siteId": site,
        },
        "endpoints": [
            { "id": "", "endpoint": { "url": format!("opc.tcp://plc:{port}/"), "securityMode": "None",
              "securityPolicy": "http://opcfoundation.org/UA/SecurityPolicy#None" } },
            { "id": "", "endpoint": { "url": format!("opc.tcp://plc:{port}/"), "securityMode": "SignAndEncrypt",
              "securityPolicy": "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256" } },
        ]
    }))
    .unwrap()
}

fn apps(v: Value) -> RegistryQuery {
    RegistryQuery::Applications(serde_json::from_value::<ApplicationQuery>(v).unwrap())
}

fn eps(v: Value) -> RegistryQuery {
    RegistryQuery::Endpoints(serde_json::from_value::<EndpointQuery>(v).unwrap())
}

/// Every record a query finds, following its tokens; also checks each page's size.
async fn all(r: &Registry, q: RegistryQuery, page: usize) -> Vec<Record> {
    let mut out = Vec::new();
    let (mut query, mut after) = (q, String::new());
    loop {
        let (items, token) = r.query(query.clone(), &after, Some(page)).await.unwrap();
        assert!(items.len() <= page);
        out.extend(items);
        match token {
            None => return out,
            Some(t) => {
                let t = QueryToken::decode(&t).unwrap().expect("a query token");
                assert_eq!(t.query, query, "the token carries the query");
                (query, after) = (t.query, t.after);
            }
        }
    }
}

async fn exercise(store: Store) {
    let r = Registry::new(store.clone(), Arc::new(LivenessTable::default()));
    let a = r
        .register("m1", registration("urn:a", "Server", None, 1), "run1")
        .await
        .unwrap();
    let b = r
        .register(
            "m1",
            registration("urn:B", "ClientAndServer", Some("s2"), 2),
            "run1",
        )
        .await
        .unwrap();
    let c = r
        .register("m2", registration("urn:c", "Client", None, 3), "run1")
        .await
        .unwrap();
    for i in 0..5 {
        r.register(
            "m2",
            registration(&format!("urn:many:{i}"), "DiscoveryServer", None, 10 + i),
            "run1",
        )
        .await
        .unwrap();
    }
    let ids = |v: Vec<Record>| {
        let mut v: Vec<String> = v.into_iter().map(|r| r.id).collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<&str>| {
        v.sort();
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };

    // Application filters.
    assert_eq!(all(&r, apps(json!({})), 1000).await.len(), 8);
    assert_eq!(
        ids(all(&r, apps(json!({ "applicationType": "Server" })), 1).await),
        sorted(vec![&a, &b])
    );
    assert_eq!(
        ids(all(&r, apps(json!({ "applicationType": "client" })), 1).await),
        sorted(vec![&b, &c])
    );
    assert_eq!(
        all(&r, apps(json!({ "applicationType": "DiscoveryServer" })), 2)
            .await
            .len(),
        5
    );
    assert_eq!(
        ids(all(&r, apps(json!({ "applicationUri": "URN:b" })), 10).await),
        vec![b.clone()]
    );
    assert_eq!(
        ids(all(&r, apps(json!({ "applicationName": "NAME OF urn:c" })), 10).await),
        vec![c.clone()]
    );
    assert_eq!(
        all(
            &r,
            apps(json!({ "capability": "da", "productUri": "HTTP://vendor/plc" })),
            3
        )
        .await
        .len(),
        8
    );
    assert!(all(&r, apps(json!({ "capability": "HD" })), 3)
        .await
        .is_empty());
    assert_eq!(
        ids(all(&r, apps(json!({ "siteOrGatewayId": "s2" })), 10).await),
        vec![b.clone()]
    );
    assert_eq!(
        ids(all(&r, apps(json!({ "discovererId": "m1" })), 10).await),
        sorted(vec![&a, &b])
    );
    assert_eq!(
        all(&r, apps(json!({ "siteOrGatewayId": "m2" })), 10)
            .await
            .len(),
        6
    );

    // Endpoint filters.
    assert_eq!(all(&r, eps(json!({})), 3).await.len(), 16);
    let a_eps = all(&r, eps(json!({ "applicationId": a })), 1).await;
    assert_eq!(a_eps.len(), 2);
    assert_eq!(
        all(&r, eps(json!({ "url": "OPC.TCP://plc:1" })), 5)
            .await
            .len(),
        2
    );
    assert_eq!(
        all(
            &r,
            eps(json!({ "url": "opc.tcp://plc:1", "securityMode": "NotNone" })),
            5
        )
        .await
        .len(),
        1
    );
    assert_eq!(
        all(&r, eps(json!({ "securityPolicy": "Basic256Sha256" })), 5)
            .await
            .len(),
        8
    );
    assert_eq!(
        all(
            &r,
            eps(json!({ "discovererId": "m1", "securityMode": "None" })),
            5
        )
        .await
        .len(),
        2
    );
    assert!(all(&r, eps(json!({ "endpointState": "Ready" })), 5)
        .await
        .is_empty());

    // PATCH: a stale etag changes nothing; the right one changes what is given.
    let before = store.get(APPLICATION, &a).await.unwrap().unwrap();
    let patch = || -> ApplicationUpdate {
        serde_json::from_value(json!({
            "applicationName": "Press 7", "productUri": null,
            "localizedNames": { "de": "Presse 7", "fr": null },
            "capabilities": ["DA", "HD"], "certificate": "MIIB"
        }))
        .unwrap()
    };
    assert!(matches!(
        r.update_application(&a, patch(), "root", Some("stale"))
            .await,
        Err(ApiError::PreconditionFailed(_))
    ));
    assert_eq!(store.get(APPLICATION, &a).await.unwrap().unwrap(), before);
    let after = r
        .update_application(&a, patch(), "root", Some(&before.etag))
        .await
        .unwrap();
    assert_ne!(after.etag, before.etag);
    assert_eq!(after.generation_id, before.generation_id);
    assert_eq!(after.body["applicationName"], "Press 7");
    assert_eq!(
        after.body["productUri"], "http://vendor/plc",
        "null leaves it"
    );
    assert_eq!(after.body["localizedNames"], json!({ "de": "Presse 7" }));
    assert_eq!(after.body["updated"]["authorityId"], "root");
    assert_eq!(
        ids(all(&r, apps(json!({ "capability": "hd" })), 5).await),
        vec![a.clone()]
    );
    assert_eq!(
        ids(all(
            &r,
            apps(json!({ "applicationName": "presse 7", "locale": "de" })),
            5
        )
        .await),
        vec![a.clone()]
    );
    let bad: ApplicationUpdate = serde_json::from_value(json!({ "certificate": "%%" })).unwrap();
    assert!(matches!(
        r.update_application(&a, bad, "root", None).await,
        Err(ApiError::BadRequest(_))
    ));
    assert!(matches!(
        r.update_application("uasnone", ApplicationUpdate::default(), "root", None)
            .await,
        Err(ApiError::NotFound(_))
    ));
    assert!(serde_json::from_value::<ApplicationUpdate>(json!({ "nmae": "x" })).is_err());

    // Disable: the application and its endpoints show notSeenSince, leave default queries,
    // twin requests are refused; discovery does not undo it; enable restores.
    let ep = a_eps[0].id.clone();
    let disabled = r
        .set_application_enabled(&a, false, "root", None)
        .await
        .unwrap();
    assert!(
        disabled.body["notSeenSince"].is_string(),
        "{}",
        disabled.body
    );
    assert_eq!(disabled.body[DISABLED], true);
    let again = r
        .set_application_enabled(&a, false, "root", None)
        .await
        .unwrap();
    assert_eq!(again.etag, disabled.etag, "disabling twice changes nothing");
    assert!(matches!(r.route(&ep).await, Err(ApiError::Disabled(_))));
    assert!(!ids(all(&r, apps(json!({})), 100).await).contains(&a));
    assert!(ids(all(&r, apps(json!({ "includeNotSeenSince": true })), 100).await).contains(&a));
    assert!(all(&r, eps(json!({ "applicationId": a })), 5)
        .await
        .is_empty());
    assert_eq!(
        all(
            &r,
            eps(json!({ "applicationId": a, "includeNotSeenSince": true })),
            5
        )
        .await
        .len(),
        2
    );
    r.register("m1", registration("urn:a", "Server", None, 1), "run2")
        .await
        .unwrap();
    assert!(
        matches!(r.route(&ep).await, Err(ApiError::Disabled(_))),
        "rediscovery keeps it disabled"
    );
    let kept = store.get(APPLICATION, &a).await.unwrap().unwrap();
    assert!(kept.body["notSeenSince"].is_string() && kept.body["certificate"] == "MIIB");
    assert!(matches!(
        r.set_application_enabled(&a, true, "root", Some("stale"))
            .await,
        Err(ApiError::PreconditionFailed(_))
    ));
    let enabled = r
        .set_application_enabled(&a, true, "root", None)
        .await
        .unwrap();
    assert!(enabled.body.get("notSeenSince").is_none() && enabled.body.get(DISABLED).is_none());
    // No publisher record in this test: past the disabled check, the route finds no module.
    assert!(matches!(r.route(&ep).await, Err(ApiError::NotFound(_))));
    assert_eq!(
        all(&r, eps(json!({ "applicationId": a })), 5).await.len(),
        2
    );
    assert!(matches!(
        r.set_application_enabled("uasnone", false, "root", None)
            .await,
        Err(ApiError::NotFound(_))
    ));
    assert!(matches!(
        r.set_application_enabled("bad id", false, "root", None)
            .await,
        Err(ApiError::InvalidId(_))
    ));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_patch_and_disable_on_sqlite() {
    let dir = iiot_testkit::temp_dir("twin-reg");
    let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
    exercise(Store::open(&url).await.unwrap()).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_patch_and_disable_on_postgres() {
    sqlx::any::install_default_drivers();
    let admin_url = std::env::var("IIOT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let admin = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (set IIOT_TEST_POSTGRES to use another)");
    let db = format!("twin_api_reg_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&admin)
        .await
        .unwrap();
    let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap();
    let url = format!("{base}/{db}");
    let outcome =
        tokio::spawn(async move { exercise(Store::open(&url).await.unwrap()).await }).await;
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
