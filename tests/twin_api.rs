//! End to end: plc-sim + the real `iiot module` + a private Mosquitto + the real `iiot
//! twin-api`, driven through the REST API like a user would: the module shows up online,
//! plc-sim is registered by discovery URL, its endpoint is browsed, read, written and called
//! through `/twin/v2`; a stopped module answers 504 at the timeout, a killed one goes offline
//! (last will) and gives 503 at once, and calls work again when it is back. Identity-registry
//! rules on what the module discovered (If-Match, generationId, disabled module and
//! application) and bad input about it are checked on the same running service. What needs no
//! module (paging, export/import, OIDC, problem+json of bad requests) is tested beside the
//! crate, in `twin-api/tests/registry_rest.rs`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, plc_sim, temp_dir, Mosquitto, Proc, API_KEY};
use iiot_testkit::{signal, wait_for_port_of};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const READER: &str = "reader-key-0123456789";
const WRITER: &str = "writer-key-0123456789";
const ADMIN: &str = "admin-key-01234567890";
const NS: &str = "nsu=urn:iiot:plc-sim;s=";

fn quiet() -> Stdio {
    if std::env::var_os("IIOT_TEST_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

fn log_level() -> String {
    std::env::var("IIOT_TEST_LOG").unwrap_or_else(|_| "warn".into())
}

/// The module binary with a fixed publisher id, so a restart is the same module.
async fn start_module(publisher_id: &str, data_dir: &Path, mqtt_url: &str) -> Proc {
    start_module_with(publisher_id, data_dir, mqtt_url, &[]).await
}

async fn start_module_with(
    publisher_id: &str,
    data_dir: &Path,
    mqtt_url: &str,
    extra: &[&str],
) -> Proc {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_iiot"))
        .args(["--log", &log_level(), "module", "--http-host", "127.0.0.1"])
        .arg("--http-port")
        .arg(port.to_string())
        .arg("--api-key")
        .arg(API_KEY)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--publisher-id")
        .arg(publisher_id)
        .arg("--mqtt-url")
        .arg(mqtt_url)
        .args(extra)
        .env_remove("RUST_LOG")
        .stdout(quiet())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn iiot module");
    wait_for_port_of(port, "module", &mut child).await;
    Proc(child)
}

/// The twin-api binary on a free port.
struct TwinApi {
    base: String,
    http: reqwest::Client,
    _proc: Proc,
}

fn write_keys(dir: &Path) -> PathBuf {
    let path = dir.join("api-keys.json");
    std::fs::write(
        &path,
        json!([
            { "name": "viewer", "key": READER, "roles": ["reader"] },
            { "name": "operator", "key": WRITER, "roles": ["writer"] },
            { "name": "root", "key": ADMIN, "roles": ["admin"] },
        ])
        .to_string(),
    )
    .unwrap();
    path
}

impl TwinApi {
    async fn start(mqtt_url: &str, data_dir: &Path, extra: &[&str]) -> TwinApi {
        let port = free_port();
        let keys = write_keys(data_dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_iiot"))
            .args([
                "--log",
                &log_level(),
                "twin-api",
                "--http-host",
                "127.0.0.1",
            ])
            .arg("--http-port")
            .arg(port.to_string())
            .arg("--mqtt-url")
            .arg(mqtt_url)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--api-keys")
            .arg(&keys)
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(quiet())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn iiot twin-api");
        wait_for_port_of(port, "twin-api", &mut child).await;
        TwinApi {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _proc: Proc(child),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        for (h, v) in headers {
            req = req.header(*h, *v);
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b);
        }
        let res = req.send().await.expect("twin-api answers");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, headers, body)
    }

    async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        let (s, _, b) = self.send(Method::GET, path, Some(key), &[], None).await;
        (s, b)
    }

    async fn post(&self, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
        let (s, _, b) = self
            .send(
                Method::POST,
                path,
                Some(key),
                &[],
                Some(body.to_string().into_bytes()),
            )
            .await;
        (s, b)
    }

    /// Polls a publisher until its `connectionState` is `want`.
    async fn wait_state(&self, id: &str, want: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (s, body) = self
                .get(&format!("/registry/v2/publishers/{id}"), READER)
                .await;
            if s == StatusCode::OK && body["connectionState"] == want {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "publisher {id} never became {want}: {s} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn assert_problem(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
    want: u16,
) {
    assert_eq!(status.as_u16(), want, "{body}");
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{body}"
    );
    assert_eq!(body["status"], want, "{body}");
    assert!(
        body["symbolicId"]
            .as_str()
            .is_some_and(|s| s.starts_with("Bad")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_operations_through_the_module() {
    let broker = Mosquitto::start().await;
    let plc = plc_sim(false, None).await;
    let module_id = format!("twin-mod-{}", free_port());
    let module_dir = temp_dir("twin-module");
    // The module publishes one plc-sim counter, for the live telemetry stream.
    std::fs::write(
        module_dir.join("publishednodes.json"),
        json!([{
            "EndpointUrl": plc.endpoint_url(), "UseSecurity": false,
            "DataSetWriterGroup": "line1", "DataSetWriterId": "fast",
            "OpcNodes": [{ "Id": format!("{NS}Fast/0"), "OpcSamplingInterval": 100 }]
        }])
        .to_string(),
    )
    .unwrap();
    // Telemetry under a topic template of its own: the twin API must follow the pattern the
    // module announces, not assume OPC Publisher's default `{root}/messages/{group}`.
    let mut module = Some(
        start_module_with(
            &module_id,
            &module_dir,
            &broker.url(),
            &["--ttt", "plant/{PublisherId}/{WriterGroup}/data"],
        )
        .await,
    );
    let twin_dir = temp_dir("twin-api");
    let api = TwinApi::start(&broker.url(), &twin_dir, &["--request-timeout", "3"]).await;

    // The module announces itself (retained online state) and shows up connected.
    let p = api.wait_state(&module_id, "Connected").await;
    assert_eq!(p["connected"], true, "{p}");
    assert_eq!(p["status"], "enabled", "{p}");
    assert!(p["lastActivityTime"].is_string(), "{p}");
    assert!(
        p["generationId"].is_string() && p["etag"].is_string(),
        "{p}"
    );
    let (s, list) = api.get("/registry/v2/publishers", READER).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == module_id.as_str()),
        "{list}"
    );

    // Register plc-sim by discovery URL: only admins change the registry.
    let reg = json!({ "discoveryUrl": plc.endpoint_url() });
    let (s, body) = api.post("/registry/v2/applications", WRITER, &reg).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let (s, body) = api.post("/registry/v2/applications", ADMIN, &reg).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let app_id = body["id"].as_str().expect("application id").to_string();
    assert!(app_id.starts_with("uas"), "{app_id}");
    let (s, app) = api
        .get(&format!("/registry/v2/applications/{app_id}"), READER)
        .await;
    assert_eq!(s, StatusCode::OK, "{app}");
    assert_eq!(
        app["application"]["discovererId"],
        module_id.as_str(),
        "{app}"
    );
    let first_generation = app["application"]["generationId"].clone();

    let (s, eps) = api.get("/registry/v2/endpoints", READER).await;
    assert_eq!(s, StatusCode::OK, "{eps}");
    let items = eps["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{eps}");
    assert!(
        items.iter().all(|e| e["applicationId"] == app_id.as_str()),
        "{eps}"
    );
    let ep = items
        .iter()
        .find(|e| e["registration"]["endpoint"]["securityMode"] == "None")
        .expect("a None endpoint");
    let ep_id = ep["registration"]["id"].as_str().unwrap().to_string();
    assert!(ep_id.starts_with("uat") && ep["id"].is_null(), "{ep}");
    let (s, one) = api
        .get(&format!("/registry/v2/endpoints/{ep_id}"), READER)
        .await;
    assert_eq!(s, StatusCode::OK, "{one}");

    // Through the module: the endpoint's certificate, a connection test, and what the
    // module is configured to publish.
    let (s, body) = api
        .get(
            &format!("/registry/v2/endpoints/{ep_id}/certificate"),
            READER,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(!body["chain"].as_array().unwrap().is_empty(), "{body}");
    let (s, body) = api
        .post(
            &format!("/registry/v2/endpoints/{ep_id}/test"),
            WRITER,
            &json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body["errorInfo"].is_null(), "{body}");
    let (s, body) = api
        .get(
            &format!("/registry/v2/publishers/{module_id}/endpoints"),
            READER,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body["endpoints"][0]["EndpointUrl"],
        plc.endpoint_url(),
        "{body}"
    );

    // Live telemetry of the endpoint as Server-Sent Events.
    let (s, h, body) = api
        .send(
            Method::GET,
            &format!("/events/v2/telemetry/{ep_id}"),
            None,
            &[],
            None,
        )
        .await;
    assert_problem(s, &h, &body, 401);
    let mut sse = api
        .http
        .get(format!("{}/events/v2/telemetry/{ep_id}", api.base))
        .header("Authorization", format!("Bearer {READER}"))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), StatusCode::OK);
    assert!(sse.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(text.contains("event: telemetry") && text.contains("Fast/0")) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, sse.chunk())
            .await
            .unwrap_or_else(|_| panic!("no telemetry event in time: {text}"))
            .unwrap()
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(sse);

    // Browse, read, write + read back, call.
    let (s, body) = api
        .post(
            &format!("/twin/v2/browse/{ep_id}"),
            WRITER,
            &json!({ "nodeId": format!("{NS}Methods") }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body["references"].as_array().unwrap().len() >= 2, "{body}");
    let read = |node: &str| json!({ "nodeId": format!("{NS}{node}") });
    let (s, body) = api
        .post(&format!("/twin/v2/read/{ep_id}"), WRITER, &read("Fast/0"))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["dataType"], "UInt64", "{body}");
    let (s, body) = api
        .post(
            &format!("/twin/v2/write/{ep_id}"),
            WRITER,
            &json!({ "nodeId": format!("{NS}Scalar/Double"), "value": 6.25 }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, body) = api
        .post(
            &format!("/twin/v2/read/{ep_id}"),
            WRITER,
            &read("Scalar/Double"),
        )
        .await;
    assert_eq!(body["value"], 6.25, "{body}");
    let (s, body) = api
        .post(
            &format!("/twin/v2/call/{ep_id}"),
            WRITER,
            &json!({ "methodId": format!("{NS}Methods/Add"), "arguments": [{ "value": 20 }, { "value": 22 }] }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["value"], 42, "{body}");

    // The GET forms take the node from the query.
    let (s, body) = api
        .get(
            &format!("/twin/v2/read/{ep_id}?nodeId={NS}Scalar/Double"),
            WRITER,
        )
        .await;
    assert_eq!(
        (s, &body["value"]),
        (StatusCode::OK, &json!(6.25)),
        "{body}"
    );
    let (s, body) = api.get(&format!("/twin/v2/browse/{ep_id}"), WRITER).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(!body["references"].as_array().unwrap().is_empty(), "{body}");
    let (s, body) = api
        .get(&format!("/twin/v2/browse/{ep_id}/next"), WRITER)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");

    // Round trip REST → twin-api → broker → module → plc-sim and back, one caller.
    let mut took = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let (s, _) = api
            .post(&format!("/twin/v2/read/{ep_id}"), WRITER, &read("Fast/0"))
            .await;
        took.push(t.elapsed());
        assert_eq!(s, StatusCode::OK);
    }
    took.sort();
    let (p50, p99) = (took[100], took[197]);
    eprintln!("twin read round trip: p50 {p50:?}, p99 {p99:?}");
    assert!(p50 < Duration::from_millis(50), "p50 {p50:?}");

    // The module's own errors come back with its OPC UA status.
    let (s, h, body) = api
        .send(
            Method::POST,
            &format!("/twin/v2/read/{ep_id}"),
            Some(WRITER),
            &[],
            Some(json!({ "nodeId": "bad id" }).to_string().into_bytes()),
        )
        .await;
    assert_problem(s, &h, &body, 400);
    assert_eq!(body["symbolicId"], "BadNodeIdInvalid", "{body}");

    // Bad input: clear 4xx problem+json.
    let path = format!("/twin/v2/read/{ep_id}");
    let (s, h, body) = api
        .send(
            Method::POST,
            &path,
            Some(WRITER),
            &[],
            Some(b"{not json".to_vec()),
        )
        .await;
    assert_problem(s, &h, &body, 400);
    let (s, h, body) = api
        .send(
            Method::POST,
            &path,
            Some(READER),
            &[],
            Some(read("Fast/0").to_string().into_bytes()),
        )
        .await;
    assert_problem(s, &h, &body, 403);
    let (s, h, body) = api
        .send(
            Method::PATCH,
            &format!("/registry/v2/publishers/{module_id}"),
            Some(ADMIN),
            &[],
            Some(json!({ "status": "sleeping" }).to_string().into_bytes()),
        )
        .await;
    assert_problem(s, &h, &body, 400);
    let (_, after) = api
        .get(&format!("/registry/v2/publishers/{module_id}"), READER)
        .await;
    assert_eq!(
        after["etag"], p["etag"],
        "a refused change changed nothing: {after}"
    );

    // Disable the module (If-Match honoured): it gets no requests; enable: it works again.
    let patch = |body: Value| Some(body.to_string().into_bytes());
    let pub_path = format!("/registry/v2/publishers/{module_id}");
    let (s, h, body) = api
        .send(
            Method::PATCH,
            &pub_path,
            Some(ADMIN),
            &[("If-Match", "\"stale\"")],
            patch(json!({ "status": "disabled", "statusReason": "maintenance" })),
        )
        .await;
    assert_problem(s, &h, &body, 412);
    // A bare (unquoted) tag, even the current one, is no entity tag: it matches nothing.
    let (s, h, body) = api
        .send(
            Method::PATCH,
            &pub_path,
            Some(ADMIN),
            &[("If-Match", p["etag"].as_str().unwrap())],
            patch(json!({ "status": "disabled", "statusReason": "maintenance" })),
        )
        .await;
    assert_problem(s, &h, &body, 412);
    let etag = format!("\"{}\"", p["etag"].as_str().unwrap());
    let (s, _, body) = api
        .send(
            Method::PATCH,
            &pub_path,
            Some(ADMIN),
            &[("If-Match", &etag)],
            patch(json!({ "status": "disabled", "statusReason": "maintenance" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "disabled", "{body}");
    assert_eq!(body["statusReason"], "maintenance", "{body}");
    assert!(body["statusUpdateTime"].is_string(), "{body}");
    let (s, h, body) = api
        .send(
            Method::POST,
            &path,
            Some(WRITER),
            &[],
            Some(read("Fast/0").to_string().into_bytes()),
        )
        .await;
    assert_problem(s, &h, &body, 409);
    let (s, _, body) = api
        .send(
            Method::PATCH,
            &pub_path,
            Some(ADMIN),
            &[],
            patch(json!({ "status": "Enabled" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = api.post(&path, WRITER, &read("Fast/0")).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    // Registry queries: GET and POST forms, paged with the query carried in the token.
    let (s, body) = api
        .get(
            &format!(
                "/registry/v2/applications/query?applicationUri={}&pageSize=1",
                app["application"]["applicationUri"]
                    .as_str()
                    .unwrap()
                    .to_uppercase()
            ),
            READER,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["items"][0]["applicationId"], app_id.as_str(), "{body}");
    let (s, body) = api
        .post(
            "/registry/v2/applications/query",
            READER,
            &json!({ "applicationType": "Client" }),
        )
        .await;
    assert_eq!((s, &body["items"]), (StatusCode::OK, &json!([])), "{body}");
    let ep_url = ep["registration"]["endpoint"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, body) = api
        .post(
            "/registry/v2/endpoints/query?pageSize=1",
            READER,
            &json!({ "url": ep_url.to_uppercase(), "securityMode": "None" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body["items"][0]["registration"]["id"],
        ep_id.as_str(),
        "{body}"
    );
    let (s, body) = api
        .get("/registry/v2/publishers/query?connected=true", READER)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == module_id.as_str()),
        "{body}"
    );

    // PATCH an application: bad input of every kind changes nothing, then If-Match.
    let app_path = format!("/registry/v2/applications/{app_id}");
    let (_, app_now) = api.get(&app_path, READER).await;
    let app_etag = app_now["application"]["etag"].as_str().unwrap().to_string();
    let change = || patch(json!({ "applicationName": "Press 7", "capabilities": ["DA"] }));
    for (path, key, hdrs, body, want) in [
        (
            app_path.clone(),
            ADMIN,
            vec![("If-Match", "\"stale\"")],
            change(),
            412,
        ),
        (app_path.clone(), WRITER, vec![], change(), 403),
        (
            app_path.clone(),
            ADMIN,
            vec![],
            Some(b"{not json".to_vec()),
            400,
        ),
        (
            app_path.clone(),
            ADMIN,
            vec![],
            patch(json!({ "nmae": "typo" })),
            400,
        ),
    ] {
        let (s, h, b) = api.send(Method::PATCH, &path, Some(key), &hdrs, body).await;
        assert_problem(s, &h, &b, want);
    }
    let (_, unchanged) = api.get(&app_path, READER).await;
    assert_eq!(
        unchanged["application"]["etag"],
        app_etag.as_str(),
        "{unchanged}"
    );
    let if_match = format!("\"{app_etag}\"");
    let (s, h, body) = api
        .send(
            Method::PATCH,
            &app_path,
            Some(ADMIN),
            &[("If-Match", &if_match)],
            change(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["applicationName"], "Press 7", "{body}");
    assert_ne!(body["etag"], app_etag.as_str(), "{body}");
    assert!(h.get("etag").is_some());

    // Disable the application: its endpoints are refused for twin calls and show
    // notSeenSince; enable: they work again.
    let (s, h, body) = api
        .send(
            Method::POST,
            &format!("{app_path}/disable"),
            Some(WRITER),
            &[],
            None,
        )
        .await;
    assert_problem(s, &h, &body, 403);
    let (s, _, body) = api
        .send(
            Method::POST,
            &format!("{app_path}/disable"),
            Some(ADMIN),
            &[],
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body["notSeenSince"].is_string(), "{body}");
    let (s, h, body) = api
        .send(
            Method::POST,
            &path,
            Some(WRITER),
            &[],
            Some(read("Fast/0").to_string().into_bytes()),
        )
        .await;
    assert_problem(s, &h, &body, 409);
    assert_eq!(body["symbolicId"], "BadOutOfService", "{body}");
    let (_, one) = api
        .get(&format!("/registry/v2/endpoints/{ep_id}"), READER)
        .await;
    assert!(one["notSeenSince"].is_string(), "{one}");
    let (_, body) = api
        .get(
            &format!("/registry/v2/endpoints/query?applicationId={app_id}"),
            READER,
        )
        .await;
    assert_eq!(
        body["items"],
        json!([]),
        "disabled endpoints leave default queries: {body}"
    );
    let (s, _, body) = api
        .send(
            Method::POST,
            &format!("{app_path}/enable"),
            Some(ADMIN),
            &[],
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body["notSeenSince"].is_null(), "{body}");
    let (s, body) = api.post(&path, WRITER, &read("Fast/0")).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    // Delete + re-register: a new generationId for the same application id.
    let (s, h, body) = api
        .send(
            Method::DELETE,
            &format!("/registry/v2/applications/{app_id}"),
            Some(ADMIN),
            &[("If-Match", "\"stale\"")],
            None,
        )
        .await;
    assert_problem(s, &h, &body, 412);
    let (s, _, _) = api
        .send(
            Method::DELETE,
            &format!("/registry/v2/applications/{app_id}"),
            Some(ADMIN),
            &[],
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = api.post(&path, WRITER, &read("Fast/0")).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "endpoints go with their application: {body}"
    );
    let (s, body) = api.post("/registry/v2/applications", ADMIN, &reg).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["id"], app_id.as_str(), "ids are derived, stable");
    let (_, app) = api
        .get(&format!("/registry/v2/applications/{app_id}"), READER)
        .await;
    assert_ne!(
        app["application"]["generationId"], first_generation,
        "{app}"
    );
    let (s, body) = api.post(&path, WRITER, &read("Fast/0")).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    // A discovery scan by the module: its events upsert what it finds again and mark what it
    // no longer finds (an application it reported earlier) as not seen.
    let stale = json!({
        "kind": "application", "id": "uasstale", "owner": module_id, "generationId": "g",
        "etag": "e", "body": { "applicationId": "uasstale", "applicationUri": "urn:gone",
            "discovererId": module_id }
    });
    let (s, _, body) = api
        .send(
            Method::POST,
            "/registry/v2/import",
            Some(ADMIN),
            &[],
            Some(format!("{stale}\n").into_bytes()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let port = plc.port();
    let (s, body) = api
        .post(
            &format!("/registry/v2/applications/discover?discovererId={module_id}"),
            ADMIN,
            &json!({
                "id": "scan-1",
                "discovery": "Scan",
                "configuration": {
                    "addressRangesToScan": "127.0.0.1/32",
                    "portRangesToScan": format!("{port}-{}", port + 1),
                    "portProbeTimeout": "00:00:02"
                }
            }),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, gone) = api.get("/registry/v2/applications/uasstale", READER).await;
        if gone["application"]["notSeenSince"].is_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "scan never marked the stale application: {gone}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, app) = api
        .get(&format!("/registry/v2/applications/{app_id}"), READER)
        .await;
    assert!(
        app["application"]["notSeenSince"].is_null(),
        "found again: {app}"
    );
    let (_, one) = api
        .get(&format!("/registry/v2/endpoints/{ep_id}"), READER)
        .await;
    assert!(one["notSeenSince"].is_null(), "found again: {one}");

    // Purge what has not been seen: the stale application goes, plc-sim's stays.
    let (s, _, body) = api
        .send(
            Method::DELETE,
            "/registry/v2/applications?notSeenFor=1.00:00:00",
            Some(ADMIN),
            &[],
            None,
        )
        .await;
    assert_eq!((s, &body["purged"]), (StatusCode::OK, &json!(0)), "{body}");
    let (s, _, body) = api
        .send(
            Method::DELETE,
            "/registry/v2/applications?notSeenFor=0",
            Some(ADMIN),
            &[],
            None,
        )
        .await;
    assert_eq!((s, &body["purged"]), (StatusCode::OK, &json!(1)), "{body}");
    let (s, _) = api.get("/registry/v2/applications/uasstale", READER).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = api
        .get(&format!("/registry/v2/applications/{app_id}"), READER)
        .await;
    assert_eq!(s, StatusCode::OK);

    // A module that does not answer (stopped): 504 at the timeout, header or default.
    let m = module.as_ref().unwrap();
    signal(&m.0, "STOP");
    let t = Instant::now();
    let (s, h, body) = api
        .send(
            Method::POST,
            &path,
            Some(WRITER),
            &[("x-iiot-timeout-ms", "1500")],
            Some(read("Fast/0").to_string().into_bytes()),
        )
        .await;
    let took = t.elapsed();
    assert_problem(s, &h, &body, 504);
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    let t = Instant::now();
    let (s, body) = api.post(&path, WRITER, &read("Fast/0")).await;
    let took = t.elapsed();
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_millis(4500),
        "{took:?}"
    );
    signal(&m.0, "CONT");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, body) = api.post(&path, WRITER, &read("Fast/0")).await;
        if s == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "module did not recover: {s} {body}"
        );
    }

    // Killed: the broker publishes its last will, the module is offline, calls get 503 at once.
    drop(module.take());
    let p = api.wait_state(&module_id, "Disconnected").await;
    assert_eq!(p["connected"], false, "{p}");
    let t = Instant::now();
    let (s, h, body) = api
        .send(
            Method::POST,
            &path,
            Some(WRITER),
            &[],
            Some(read("Fast/0").to_string().into_bytes()),
        )
        .await;
    assert_problem(s, &h, &body, 503);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );

    // Back: same id, online again, calls work again.
    module = Some(start_module(&module_id, &module_dir, &broker.url()).await);
    api.wait_state(&module_id, "Connected").await;
    let (s, body) = api.post(&path, WRITER, &read("Fast/0")).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    drop(module);
    plc.shutdown().await;
}

/// The liveness contract on `{root}/state`: a retained Online state with a heartbeat that
/// moves `lastActivityTime` forward, and a clean stop that leaves a retained Offline state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_heartbeat_and_clean_stop() {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};

    let broker = Mosquitto::start().await;
    let api = TwinApi::start(&broker.url(), &temp_dir("twin-heartbeat"), &[]).await;
    let id = format!("beat-{}", free_port());
    let module = iiot_module::start(iiot_module::ModuleConfig {
        http_bind: "127.0.0.1:0".parse().unwrap(),
        api_key: API_KEY.into(),
        data_dir: temp_dir("twin-beat-module"),
        mqtt_url: Some(broker.url()),
        publisher_id: id.clone(),
        heartbeat_interval: Duration::from_secs(1),
        ..Default::default()
    })
    .await
    .expect("module starts");

    let first = api.wait_state(&id, "Connected").await;
    let t0 = first["lastActivityTime"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, p) = api
            .get(&format!("/registry/v2/publishers/{id}"), READER)
            .await;
        let t = p["lastActivityTime"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if t > t0 {
            assert_eq!(p["connectionState"], "Connected", "{p}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no heartbeat moved lastActivityTime: {p}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The retained message a late subscriber gets.
    let mut o = MqttOptions::new(format!("late-{id}"), "127.0.0.1", broker.port);
    o.set_clean_start(true);
    let (client, mut el) = AsyncClient::new(o, 10);
    client
        .subscribe(format!("{id}/state"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let state: Value = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = el.poll().await {
                assert!(p.retain, "state is retained");
                return serde_json::from_slice(&p.payload).unwrap();
            }
        }
    })
    .await
    .expect("retained state");
    assert_eq!(state["state"], "Online", "{state}");
    assert_eq!(state["publisherId"], id.as_str(), "{state}");
    assert_eq!(state["rootTopic"], id.as_str(), "{state}");
    assert_eq!(state["heartbeatInterval"], 1, "{state}");
    assert!(
        state["version"].is_string() && state["connectedTime"].is_string(),
        "{state}"
    );

    module.shutdown().await;
    let p = api.wait_state(&id, "Disconnected").await;
    assert_eq!(p["connected"], false, "{p}");
}

/// Collects the `ua-data` field names seen on `{root}/messages/#`.
async fn telemetry_fields(
    broker_port: u16,
    root: &str,
) -> std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>> {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let mut opts = MqttOptions::new(format!("tele-{}", free_port()), "127.0.0.1", broker_port);
    opts.set_max_packet_size(Some(1 << 24));
    let (client, mut events) = AsyncClient::new(opts, 100);
    client
        .subscribe(format!("{root}/messages/#"), QoS::AtMostOnce)
        .await
        .expect("subscribe");
    let s = seen.clone();
    tokio::spawn(async move {
        let _client = client;
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let v: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    for m in v["Messages"].as_array().into_iter().flatten() {
                        for (k, _) in m["Payload"].as_object().into_iter().flatten() {
                            s.lock().unwrap().insert(k.clone());
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_published_through_the_publisher_routes_flow_as_telemetry() {
    let broker = Mosquitto::start().await;
    let plc = plc_sim(false, None).await;
    let module_id = format!("pub-mod-{}", free_port());
    let _module = start_module(&module_id, &temp_dir("pub-module"), &broker.url()).await;
    let api = TwinApi::start(&broker.url(), &temp_dir("pub-twin"), &[]).await;
    api.wait_state(&module_id, "Connected").await;
    let (s, body) = api
        .post(
            "/registry/v2/applications",
            ADMIN,
            &json!({ "discoveryUrl": plc.endpoint_url() }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, eps) = api.get("/registry/v2/endpoints", READER).await;
    let ep = eps["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["registration"]["endpoint"]["securityMode"] == "None")
        .and_then(|e| e["registration"]["id"].as_str())
        .expect("None endpoint")
        .to_string();
    let seen = telemetry_fields(broker.port, &module_id).await;
    let base = format!("/publisher/v2/publish/{ep}");

    // Nothing published yet on this connection: an empty list, not an error.
    let (s, list) = api.get(&base, READER).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["items"], json!([]), "{list}");

    let item = json!({ "item": { "nodeId": format!("{NS}Fast/1"), "displayName": "F1", "samplingInterval": "00:00:00.100", "publishingInterval": "00:00:00.500" } });
    let (s, body) = api.post(&format!("{base}/start"), READER, &item).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "readers do not publish: {body}");
    let (s, body) = api.post(&format!("{base}/start"), WRITER, &item).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body["errorInfo"].is_null(), "{body}");
    let (s, body) = api.post(&format!("{base}/start"), WRITER, &json!({})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "an item is required: {body}");

    let bulk = json!({
        "nodesToAdd": [{ "nodeId": format!("{NS}Fast/2"), "displayName": "F2" }, { "nodeId": format!("{NS}Fast/3"), "displayName": "F3" }],
        "nodesToRemove": [format!("{NS}Fast/7")],
    });
    let (s, body) = api.post(&format!("{base}/bulk"), WRITER, &bulk).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["nodesToAdd"].as_array().unwrap().len(), 2, "{body}");
    assert!(body["nodesToAdd"][0]["statusCode"].is_null(), "{body}");
    assert_eq!(
        body["nodesToRemove"][0]["symbolicId"], "BadNodeIdUnknown",
        "never published: {body}"
    );

    let (_, list) = api.get(&base, READER).await;
    let mut ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["nodeId"].as_str())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            format!("{NS}Fast/1"),
            format!("{NS}Fast/2"),
            format!("{NS}Fast/3")
        ],
        "{list}"
    );

    // The module really publishes them.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !["F1", "F2", "F3"]
        .iter()
        .all(|f| seen.lock().unwrap().contains(*f))
    {
        assert!(
            Instant::now() < deadline,
            "telemetry of the published nodes: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (s, body) = api
        .post(
            &format!("{base}/stop"),
            WRITER,
            &json!({ "nodeId": format!("{NS}Fast/2") }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, list) = api.get(&base, READER).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    let (s, body) = api
        .post(
            &format!("{base}/stop"),
            WRITER,
            &json!({ "nodeId": format!("{NS}Fast/2") }),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "stopped twice: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_operations_against_the_asyncua_peer() {
    let broker = Mosquitto::start().await;
    let peer = common::Peer::asyncua().await;
    let ns = format!("nsu={};s=", peer.namespace);
    let module_id = format!("twin-peer-{}", free_port());
    let _module = start_module(&module_id, &temp_dir("twin-peer-module"), &broker.url()).await;
    let api = TwinApi::start(&broker.url(), &temp_dir("twin-peer"), &[]).await;
    api.wait_state(&module_id, "Connected").await;

    let (s, body) = api
        .post(
            "/registry/v2/applications",
            ADMIN,
            &json!({ "discoveryUrl": peer.url }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let app_id = body["id"].as_str().expect("application id").to_string();
    let (_, eps) = api.get("/registry/v2/endpoints", READER).await;
    let ep = eps["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["applicationId"] == app_id.as_str()
                && e["registration"]["endpoint"]["securityMode"] == "None"
        })
        .and_then(|e| e["registration"]["id"].as_str())
        .unwrap_or_else(|| panic!("the peer's None endpoint: {eps}"))
        .to_string();

    let (s, body) = api
        .post(
            &format!("/twin/v2/browse/{ep}"),
            WRITER,
            &json!({ "nodeId": format!("{ns}Methods") }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        body["references"].as_array().is_some_and(|r| r.len() >= 2),
        "{body}"
    );
    let read = json!({ "nodeId": format!("{ns}Scalar/Int32") });
    let (s, body) = api
        .post(&format!("/twin/v2/read/{ep}"), WRITER, &read)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["dataType"], "Int32", "{body}");
    let (s, body) = api
        .post(
            &format!("/twin/v2/write/{ep}"),
            WRITER,
            &json!({ "nodeId": format!("{ns}Scalar/Int32"), "value": 7 }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, body) = api
        .post(&format!("/twin/v2/read/{ep}"), WRITER, &read)
        .await;
    assert_eq!(body["value"], 7, "{body}");
    let (s, body) = api
        .post(
            &format!("/twin/v2/call/{ep}"),
            WRITER,
            &json!({ "methodId": format!("{ns}Methods/Add"), "arguments": [{ "value": 20, "dataType": "Int32" }, { "value": 22, "dataType": "Int32" }] }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["value"], 42, "{body}");
}
