//! The hub's service face over HTTP as IoT Hub clients use it: the owner's connection string
//! written at first start, SAS tokens of shared access policies (and the twin API's own keys),
//! device and module identities, twins, queries — and IoT Hub's refusals for bad input.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use harness::{TwinApi, ADMIN, READER};
use iiot_testkit::{temp_dir, Mosquitto};
use iiot_twin_api::hub::sas;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The owner policy's key and the hub host from the connection string file.
fn owner(data: &std::path::Path) -> (String, String) {
    let text = std::fs::read_to_string(data.join("hub-connection-string")).unwrap();
    assert!(!text.ends_with(';'), "{text}");
    let field = |name: &str| {
        text.split(';')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .to_string()
    };
    assert_eq!(field("SharedAccessKeyName"), "iothubowner");
    (field("HostName"), field("SharedAccessKey"))
}

fn token(host: &str, key: &str, expiry: i64, policy: &str) -> String {
    sas::sign(host, key, expiry, Some(policy)).unwrap()
}

fn in_an_hour() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() + 3600
}

struct Client<'a> {
    api: &'a TwinApi,
    auth: String,
}

impl Client<'_> {
    async fn call(
        &self,
        method: Method,
        path: &str,
        if_match: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut req = self
            .api
            .http
            .request(
                method,
                format!("{}{path}{sep}api-version=2021-04-12", self.api.base),
            )
            .header("Authorization", &self.auth);
        if let Some(m) = if_match {
            req = req.header("If-Match", m);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, body)
    }
}

/// An IoT Hub error: the status, `iothub-errorcode` and a `Message` naming the code.
fn assert_hub_error(
    got: &(StatusCode, reqwest::header::HeaderMap, Value),
    status: u16,
    code: &str,
) {
    assert_eq!(got.0.as_u16(), status, "{}", got.2);
    assert_eq!(
        got.1.get("iothub-errorcode").and_then(|v| v.to_str().ok()),
        Some(code),
        "{}",
        got.2
    );
    let message = got.2["Message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!("ErrorCode:{code};")),
        "{}",
        got.2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_modules_and_twins_through_the_service_routes() {
    let dir = temp_dir("hub-registry");
    let data = dir.join("data");
    let broker = Mosquitto::start().await;
    let api = TwinApi::start(&broker.url(), &data, |_| {}).await;
    let port = api.base.rsplit(':').next().unwrap().to_string();

    // The owner's connection string, owner-only, naming host and port.
    let (host, key) = owner(&data);
    assert_eq!(host, format!("localhost:{port}"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("hub-connection-string"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let c = Client {
        api: &api,
        auth: token(&host, &key, in_an_hour(), "iothubowner"),
    };

    // Create: 200 (not 201), keys made when none are given; a second create is a 409.
    let created = c
        .call(
            Method::PUT,
            "/devices/dev-1",
            None,
            Some(json!({"deviceId": "dev-1"})),
        )
        .await;
    assert_eq!(created.0, StatusCode::OK, "{}", created.2);
    let dev = created.2;
    assert_eq!(dev["status"], "enabled");
    assert_eq!(dev["connectionState"], "Disconnected");
    assert_eq!(dev["authentication"]["type"], "sas");
    let primary = dev["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(sas::key_bytes(&primary).unwrap().len(), 32);
    assert!(!dev["generationId"].as_str().unwrap().is_empty());
    let again = c
        .call(
            Method::PUT,
            "/devices/dev-1",
            None,
            Some(json!({"deviceId": "dev-1"})),
        )
        .await;
    assert_hub_error(&again, 409, "DeviceAlreadyExists");

    // Update with the etag; a stale etag is a 412; `"*"` (as the SDKs send it) always works.
    let etag = dev["etag"].as_str().unwrap().to_string();
    let disabled = c
        .call(
            Method::PUT,
            "/devices/dev-1",
            Some(&format!("\"{etag}\"")),
            Some(
                json!({"deviceId": "dev-1", "status": "disabled", "statusReason": "maintenance",
                "authentication": {"type": "sas", "symmetricKey": {"primaryKey": primary}}}),
            ),
        )
        .await;
    assert_eq!(disabled.0, StatusCode::OK, "{}", disabled.2);
    assert_eq!(disabled.2["status"], "disabled");
    assert_ne!(disabled.2["etag"], dev["etag"]);
    assert_eq!(disabled.2["generationId"], dev["generationId"]);
    let stale = c
        .call(
            Method::PUT,
            "/devices/dev-1",
            Some(&format!("\"{etag}\"")),
            Some(json!({"deviceId": "dev-1"})),
        )
        .await;
    assert_hub_error(&stale, 412, "PreconditionFailed");
    let enabled = c
        .call(
            Method::PUT,
            "/devices/dev-1",
            Some("\"*\""),
            Some(json!({"deviceId": "dev-1", "status": "enabled"})),
        )
        .await;
    assert_eq!(enabled.2["status"], "enabled");
    // Keys not named in an update are kept.
    assert_eq!(
        enabled.2["authentication"]["symmetricKey"]["primaryKey"],
        primary.as_str()
    );

    // Bad input: a foreign body id, a short key, malformed JSON, a bad id.
    for (path, body) in [
        ("/devices/dev-2", json!({"deviceId": "other"})),
        (
            "/devices/dev-2",
            json!({"authentication": {"symmetricKey": {"primaryKey": "c2hvcnQ="}}}),
        ),
        ("/devices/dev%20space", json!({})),
    ] {
        let r = c.call(Method::PUT, path, None, Some(body)).await;
        assert_hub_error(&r, 400, "ArgumentInvalid");
    }
    let garbage = api
        .http
        .put(format!("{}/devices/dev-2", api.base))
        .header("Authorization", &c.auth)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    assert_hub_error(
        &c.call(Method::GET, "/devices/nobody", None, None).await,
        404,
        "DeviceNotFound",
    );

    // Twin: desired and tags merged, `null` deletes, versions and metadata move.
    let (s, h, twin) = c.call(Method::GET, "/twins/dev-1", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(twin["version"], 1);
    assert_eq!(twin["properties"]["desired"]["$version"], 1);
    assert_eq!(twin["deviceEtag"], enabled.2["etag"]);
    let twin_etag = twin["etag"].as_str().unwrap().to_string();
    assert_eq!(
        h.get("etag").unwrap().to_str().unwrap(),
        format!("\"{twin_etag}\"")
    );
    let patched = c
        .call(
            Method::PATCH,
            "/twins/dev-1",
            Some(&format!("\"{twin_etag}\"")),
            Some(json!({"deviceId": "dev-1", "etag": twin_etag, "version": 1,
                "tags": {"site": "plant-7", "line": {"cell": 3}},
                "properties": {"desired": {"interval": 5, "$version": 1}, "reported": {"x": 1}}})),
        )
        .await;
    assert_eq!(patched.0, StatusCode::OK, "{}", patched.2);
    assert_eq!(patched.2["tags"]["line"]["cell"], 3);
    assert_eq!(patched.2["properties"]["desired"]["interval"], 5);
    assert_eq!(patched.2["properties"]["desired"]["$version"], 2);
    // The service cannot write reported properties: ignored.
    assert!(patched.2["properties"]["reported"].get("x").is_none());
    assert!(
        patched.2["properties"]["desired"]["$metadata"]["interval"]["$lastUpdated"].is_string()
    );
    let stale = c
        .call(
            Method::PATCH,
            "/twins/dev-1",
            Some(&format!("\"{twin_etag}\"")),
            Some(json!({"tags": {"a": 1}})),
        )
        .await;
    assert_hub_error(&stale, 412, "PreconditionFailed");
    let deleted = c
        .call(
            Method::PATCH,
            "/twins/dev-1",
            Some("\"*\""),
            Some(json!({"properties": {"desired": {"interval": null}}})),
        )
        .await;
    assert!(deleted.2["properties"]["desired"].get("interval").is_none());
    let replaced = c
        .call(
            Method::PUT,
            "/twins/dev-1",
            None,
            Some(json!({"tags": {"site": "plant-8"}, "properties": {"desired": {"mode": "fast"}}})),
        )
        .await;
    assert_eq!(replaced.2["tags"], json!({"site": "plant-8"}));
    assert_eq!(replaced.2["properties"]["desired"]["mode"], "fast");
    // Over the limits: refused, the twin unchanged.
    for bad in [
        json!({"tags": {"a.b": 1}}),
        json!({"properties": {"desired": {"big": "x".repeat(5000)}}}),
        json!({"tags": {"t": "x".repeat(9000)}}),
        json!({"tags": []}),
    ] {
        let r = c.call(Method::PATCH, "/twins/dev-1", None, Some(bad)).await;
        assert_hub_error(&r, 400, "ArgumentInvalid");
    }
    let (_, _, now) = c.call(Method::GET, "/twins/dev-1", None, None).await;
    assert_eq!(now["version"], replaced.2["version"]);

    // Modules: only under an existing device; deleted with it.
    assert_hub_error(
        &c.call(
            Method::PUT,
            "/devices/nobody/modules/m1",
            None,
            Some(json!({})),
        )
        .await,
        404,
        "DeviceNotFound",
    );
    let module = c
        .call(
            Method::PUT,
            "/devices/dev-1/modules/opc-publisher",
            None,
            Some(json!({"moduleId": "opc-publisher", "deviceId": "dev-1", "managedBy": "IotEdge"})),
        )
        .await;
    assert_eq!(module.0, StatusCode::OK, "{}", module.2);
    assert_eq!(module.2["managedBy"], "IotEdge");
    let (_, _, list) = c
        .call(Method::GET, "/devices/dev-1/modules", None, None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let mt = c
        .call(
            Method::PATCH,
            "/twins/dev-1/modules/opc-publisher",
            None,
            Some(json!({"properties": {"desired": {"x": 1}}})),
        )
        .await;
    assert_eq!(mt.2["moduleId"], "opc-publisher");
    assert_eq!(mt.2["properties"]["desired"]["x"], 1);

    // Queries: twins by tag, a page at a time, and counts.
    for i in 2..=6 {
        let id = format!("dev-{i}");
        c.call(
            Method::PUT,
            &format!("/devices/{id}"),
            None,
            Some(json!({})),
        )
        .await;
        c.call(
            Method::PATCH,
            &format!("/twins/{id}"),
            None,
            Some(json!({"tags": {"site": if i % 2 == 0 { "plant-8" } else { "plant-9" }}})),
        )
        .await;
    }
    let mut found = Vec::new();
    let mut continuation: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut req = api
            .http
            .post(format!("{}/devices/query?api-version=2021-04-12", api.base))
            .header("Authorization", &c.auth)
            .header("x-ms-max-item-count", "2")
            .json(&json!({"query": "SELECT * FROM devices WHERE tags.site = 'plant-8'"}));
        if let Some(t) = &continuation {
            req = req.header("x-ms-continuation", t);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-ms-item-type"], "twin");
        continuation = res
            .headers()
            .get("x-ms-continuation")
            .map(|v| v.to_str().unwrap().to_string());
        let page: Value = res.json().await.unwrap();
        assert!(page.as_array().unwrap().len() <= 2);
        found.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|t| t["deviceId"].as_str().unwrap().to_string()),
        );
        pages += 1;
        if continuation.is_none() {
            break;
        }
    }
    found.sort();
    assert_eq!(found, ["dev-1", "dev-2", "dev-4", "dev-6"]);
    assert!(pages >= 2);
    let (_, _, count) = c
        .call(
            Method::POST,
            "/devices/query",
            None,
            Some(json!({"query": "SELECT COUNT() AS n FROM devices WHERE tags.site != 'plant-8'"})),
        )
        .await;
    assert_eq!(count, json!([{"n": 2}]));
    let (_, _, modules) = c
        .call(
            Method::POST,
            "/devices/query",
            None,
            Some(json!({"query": "SELECT * FROM devices.modules WHERE properties.desired.x = 1"})),
        )
        .await;
    assert_eq!(modules[0]["moduleId"], "opc-publisher");
    let bad = c
        .call(
            Method::POST,
            "/devices/query",
            None,
            Some(json!({"query": "SELECT * FROM devices GROUP BY status"})),
        )
        .await;
    assert_hub_error(&bad, 400, "ArgumentInvalid");
    assert!(bad.2["Message"].as_str().unwrap().contains("GROUP BY"));

    // GET /devices?top=: a list, capped.
    let (_, _, devices) = c.call(Method::GET, "/devices?top=3", None, None).await;
    assert_eq!(devices.as_array().unwrap().len(), 3);
    assert_hub_error(
        &c.call(Method::GET, "/devices?top=1001", None, None).await,
        400,
        "ArgumentInvalid",
    );

    // Deleting the device deletes its modules; 204.
    let (s, _, _) = c
        .call(Method::DELETE, "/devices/dev-1", Some("\"*\""), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_hub_error(
        &c.call(
            Method::GET,
            "/devices/dev-1/modules/opc-publisher",
            None,
            None,
        )
        .await,
        404,
        "ModuleNotFound",
    );

    // No key is kept in clear in the database.
    api.shutdown().await;
    let db = std::fs::read(data.join("twin-api.db")).unwrap();
    let wal = std::fs::read(data.join("twin-api.db-wal")).unwrap_or_default();
    for blob in [&db, &wal] {
        let text = String::from_utf8_lossy(blob);
        assert!(!text.contains(&key), "the owner key is stored in clear");
        assert!(!text.contains(&primary), "a device key is stored in clear");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_credentials_are_checked() {
    let dir = temp_dir("hub-auth");
    let data = dir.join("data");
    let broker = Mosquitto::start().await;
    let api = TwinApi::start(&broker.url(), &data, |_| {}).await;
    let (host, key) = owner(&data);
    let call = |auth: String| {
        let api = &api;
        async move {
            Client { api, auth }
                .call(Method::GET, "/devices", None, None)
                .await
        }
    };
    assert_eq!(
        call(token(&host, &key, in_an_hour(), "iothubowner"))
            .await
            .0,
        StatusCode::OK
    );
    // Expired, wrong key, unknown policy, another hub, no skn, garbage, nothing.
    let other_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    for bad in [
        token(&host, &key, 1_000, "iothubowner"),
        token(&host, other_key, in_an_hour(), "iothubowner"),
        token(&host, &key, in_an_hour(), "nobody"),
        token("other-hub.example", &key, in_an_hour(), "iothubowner"),
        sas::sign(&host, &key, in_an_hour(), None).unwrap(),
        "SharedAccessSignature sr=x".to_string(),
        String::new(),
    ] {
        let r = call(bad.clone()).await;
        assert_hub_error(&r, 401, "IotHubUnauthorizedAccess");
    }
    // The twin API's own keys work too, by role: a reader lists without keys, cannot write.
    let reader = Client {
        api: &api,
        auth: format!("Bearer {READER}"),
    };
    let admin = Client {
        api: &api,
        auth: format!("Bearer {ADMIN}"),
    };
    let made = admin
        .call(Method::PUT, "/devices/d1", None, Some(json!({})))
        .await;
    assert_eq!(made.0, StatusCode::OK);
    let (s, _, seen) = reader.call(Method::GET, "/devices/d1", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(seen["authentication"]["symmetricKey"]["primaryKey"].is_null());
    let r = reader
        .call(Method::PUT, "/devices/d2", None, Some(json!({})))
        .await;
    assert_hub_error(&r, 403, "IotHubUnauthorizedAccess");
    // Health stays open.
    let h = api
        .http
        .get(format!("{}/healthz", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), StatusCode::OK);

    // A restart keeps the policies (same connection string) and opens the sealed keys.
    api.shutdown().await;
    let api = TwinApi::start(&broker.url(), &data, |_| {}).await;
    let (host2, key2) = owner(&data);
    assert_eq!(key2, key);
    let c = Client {
        api: &api,
        auth: token(&host2, &key2, in_an_hour(), "iothubowner"),
    };
    let (s, _, d1) = c.call(Method::GET, "/devices/d1", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        d1["authentication"]["symmetricKey"]["primaryKey"],
        made.2["authentication"]["symmetricKey"]["primaryKey"]
    );
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_operations_and_a_registry_moved_by_export_and_import() {
    let dir = temp_dir("hub-bulk");
    let broker = Mosquitto::start().await;
    let source = TwinApi::start(&broker.url(), &dir.join("a"), |_| {}).await;
    let admin = Client {
        api: &source,
        auth: format!("Bearer {ADMIN}"),
    };
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    // The service SDKs' bulk registry operation: 200 when all succeed, 400 with the failures.
    let (s, _, r) = admin
        .call(
            Method::POST,
            "/devices",
            None,
            Some(json!([
                {"id": "b-1", "importMode": "create", "status": "enabled",
                 "authentication": {"type": "sas", "symmetricKey": {"primaryKey": key, "secondaryKey": key}},
                 "tags": {"site": "p1"}, "properties": {"desired": {"rate": 5}}},
                {"id": "b-2", "importMode": "create"},
            ])),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["isSuccessful"], true);
    let (s, _, r) = admin
        .call(
            Method::POST,
            "/devices",
            None,
            Some(json!([
                {"id": "b-1", "importMode": "create"},
                {"id": "bad id", "importMode": "create"},
                {"id": "b-2", "moduleId": "m", "importMode": "create"},
                {"id": "b-3", "importMode": "sideways"},
            ])),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{r}");
    assert_eq!(r["isSuccessful"], false);
    let codes: Vec<&str> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["errorCode"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["DeviceAlreadyExists", "ArgumentInvalid", "ArgumentInvalid"],
        "{r}"
    );
    let (_, _, twin) = admin.call(Method::GET, "/twins/b-1", None, None).await;
    assert_eq!(twin["tags"]["site"], "p1");
    assert_eq!(twin["properties"]["desired"]["rate"], 5);

    // Export as JSON lines (IoT Hub's ExportImportDevice), import into another hub.
    let res = source
        .http
        .get(format!("{}/identities/export", source.base))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let exported = res.text().await.unwrap();
    let lines: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{exported}");
    assert!(lines.iter().any(|l| l["moduleId"] == "m"), "{exported}");
    assert_eq!(
        lines[0]["authentication"]["symmetricKey"]["primaryKey"], key,
        "{exported}"
    );
    // A reader's export has no keys.
    let res = source
        .http
        .get(format!("{}/identities/export", source.base))
        .header("Authorization", format!("Bearer {READER}"))
        .send()
        .await
        .unwrap();
    assert!(!res.text().await.unwrap().contains(key));

    let target = TwinApi::start(&broker.url(), &dir.join("b"), |_| {}).await;
    let body = format!("{exported}not json\n");
    let res = target
        .http
        .post(format!("{}/identities/import", target.base))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let r: Value = res.json().await.unwrap();
    assert_eq!(
        (r["imported"].as_u64(), r["failed"].as_u64()),
        (Some(3), Some(1)),
        "{r}"
    );
    assert_eq!(r["errors"][0]["line"], 4, "{r}");
    let moved = Client {
        api: &target,
        auth: format!("Bearer {ADMIN}"),
    };
    let (s, _, d) = moved.call(Method::GET, "/devices/b-1", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(d["authentication"]["symmetricKey"]["primaryKey"], key);
    let (_, _, twin) = moved.call(Method::GET, "/twins/b-1", None, None).await;
    assert_eq!(twin["tags"]["site"], "p1");
    assert_eq!(twin["properties"]["desired"]["rate"], 5);
    let (s, _, _) = moved
        .call(Method::GET, "/devices/b-2/modules/m", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    source.shutdown().await;
    target.shutdown().await;
}
