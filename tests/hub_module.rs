//! End to end: the real `iiot module` connected to the real `iiot twin-api`'s hub as an IoT
//! Hub module identity (`--iothub-connection-string`, no broker of its own), plc-sim beside
//! it. The module reports `__type__ = OpcPublisher`, so it is listed as publisher
//! `{device}_module_{module}`; plc-sim is registered through it (FindServer by direct
//! method) and `/twin/v2/read` and `/browse` reach plc-sim by direct method (`ValueRead_V2`…).
//! When the module goes away, its publisher goes offline and calls answer 503 at once.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, plc_sim, temp_dir, Mosquitto, Proc, API_KEY};
use iiot_testkit::wait_for_port_of;
use reqwest::StatusCode;
use serde_json::{json, Value};

const ADMIN: &str = "admin-key-01234567890";
const NS: &str = "nsu=urn:iiot:plc-sim;s=";

fn log_level() -> String {
    std::env::var("IIOT_TEST_LOG").unwrap_or_else(|_| "warn".into())
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {ADMIN}"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let bytes = res.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

async fn twin_api(dir: &Path, mqtt_url: &str, hub_port: u16) -> (Proc, Api) {
    let keys = dir.join("api-keys.json");
    std::fs::write(
        &keys,
        json!([{ "name": "root", "key": ADMIN, "roles": ["admin"] }]).to_string(),
    )
    .unwrap();
    let port = free_port();
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
        .arg(dir.join("data"))
        .arg("--api-keys")
        .arg(&keys)
        .args(["--hub-hostname", "hub1.localhost", "--hub-port"])
        .arg(hub_port.to_string())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn iiot twin-api");
    wait_for_port_of(port, "twin-api", &mut child).await;
    // The device endpoint writes its CA as it starts, just after the REST API.
    let ca = dir.join("data/hub-ca.pem");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ca.exists() {
        assert!(Instant::now() < deadline, "no {}", ca.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (
        Proc(child),
        Api {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        },
    )
}

/// Polls `GET path` every 200 ms until `done` holds for the answer, within 20 s.
async fn wait_until(api: &Api, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = api.call(reqwest::Method::GET, path, None).await;
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads an SSE response into `text` until `done` holds for it, within 30 s.
async fn read_until(
    res: &mut reqwest::Response,
    text: &mut String,
    what: &str,
    done: impl Fn(&str) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(text) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, res.chunk())
            .await
            .unwrap_or_else(|_| panic!("{what}: {text}"))
            .unwrap()
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// The module binary with `args` and `envs`, on a free port, data in `dir/module`.
async fn module(dir: &Path, args: &[&std::ffi::OsStr], envs: &[(&str, String)]) -> Proc {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iiot"));
    cmd.args(["--log", &log_level(), "module", "--http-host", "127.0.0.1"])
        .arg("--http-port")
        .arg(port.to_string())
        .arg("--api-key")
        .arg(API_KEY)
        .arg("--data-dir")
        .arg(dir.join("module"))
        .args(args)
        .env_remove("IIOT_IOTHUB_CONNECTION_STRING")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn iiot module");
    wait_for_port_of(port, "module", &mut child).await;
    Proc(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_module_serves_twin_operations_through_the_hub() {
    let dir = temp_dir("hub-module");
    let broker = Mosquitto::start().await;
    let hub_port = free_port();
    let (_twin, api) = twin_api(&dir, &broker.url(), hub_port).await;
    let plc = plc_sim(true, None).await;

    // The module identity, and its connection string: HostName is the hub's name, the
    // gateway is where it listens (the certificate names 127.0.0.1, the bind address).
    let (s, _) = api
        .call(reqwest::Method::PUT, "/devices/edge-1", Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, m) = api
        .call(
            reqwest::Method::PUT,
            "/devices/edge-1/modules/publisher",
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let key = m["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap();
    let cs = format!(
        "HostName=hub1.localhost;DeviceId=edge-1;ModuleId=publisher;SharedAccessKey={key};GatewayHostName=127.0.0.1:{hub_port}"
    );

    // Telemetry of one plc-sim value, to go to the hub as the module's messages.
    let pn = dir.join("publishednodes.json");
    std::fs::write(
        &pn,
        json!([{
            "EndpointUrl": plc.endpoint_url(),
            "UseSecurity": false,
            "OpcNodes": [{ "Id": format!("{NS}Fast/0"), "OpcSamplingInterval": 100, "OpcPublishingInterval": 200 }],
        }])
        .to_string(),
    )
    .unwrap();
    // The hub's message stream, open before the module starts.
    let mut stream = api
        .http
        .get(format!(
            "{}/events/v2/hub/messages?deviceId=edge-1&moduleId=publisher",
            api.base
        ))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let ca = dir.join("data/hub-ca.pem");
    let module = module(
        &dir,
        &[
            "--auto-accept".as_ref(),
            "--pf".as_ref(),
            pn.as_os_str(),
            "--iothub-ca".as_ref(),
            ca.as_os_str(),
        ],
        &[("IIOT_IOTHUB_CONNECTION_STRING", cs.clone())],
    )
    .await;

    // The module reports itself as OPC Publisher: a publisher, online.
    let publisher = "edge-1_module_publisher";
    let path = format!("/registry/v2/publishers/{publisher}");
    wait_until(&api, &path, "the publisher never came online", |p| {
        p["connected"] == true
    })
    .await;
    let (_, twin) = api
        .call(
            reqwest::Method::GET,
            "/twins/edge-1/modules/publisher",
            None,
        )
        .await;
    assert_eq!(
        twin["properties"]["reported"]["__type__"], "OpcPublisher",
        "{twin}"
    );
    assert_eq!(twin["connectionState"], "Connected", "{twin}");

    // Register plc-sim through the module (FindServer by direct method), then read and browse.
    let (s, app) = api
        .call(
            reqwest::Method::POST,
            &format!("/registry/v2/applications?discovererId={publisher}"),
            Some(json!({ "discoveryUrl": plc.endpoint_url() })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{app}");
    let (_, eps) = api
        .call(reqwest::Method::GET, "/registry/v2/endpoints", None)
        .await;
    let ep = eps["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["registration"]["endpoint"]["securityMode"] == "None")
        .unwrap_or_else(|| panic!("a None endpoint in {eps}"))
        .clone();
    let ep_id = ep["registration"]["id"].as_str().unwrap();
    let (s, value) = api
        .call(
            reqwest::Method::POST,
            &format!("/twin/v2/read/{ep_id}"),
            Some(json!({ "nodeId": format!("{NS}Fast/0") })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{value}");
    assert_eq!(value["dataType"], "UInt64", "{value}");
    let (s, refs) = api
        .call(
            reqwest::Method::POST,
            &format!("/twin/v2/browse/{ep_id}"),
            Some(json!({ "nodeId": format!("{NS}Methods") })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{refs}");
    assert!(refs["references"].as_array().unwrap().len() >= 2, "{refs}");
    // An OPC UA failure comes back as the module's problem document.
    let (s, bad) = api
        .call(
            reqwest::Method::POST,
            &format!("/twin/v2/read/{ep_id}"),
            Some(json!({ "nodeId": format!("{NS}NoSuchNode") })),
        )
        .await;
    assert!(
        s.is_client_error() || s.is_server_error() || bad["errorInfo"].is_object(),
        "{s} {bad}"
    );

    // Its telemetry arrived as the module's device-to-cloud messages, stored before acked.
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let event = loop {
        if let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) {
                break serde_json::from_str::<Value>(data.trim()).unwrap();
            }
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, stream.chunk())
            .await
            .expect("telemetry through the hub")
            .unwrap()
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    };
    assert_eq!(
        event["systemProperties"]["iothub-connection-module-id"], "publisher",
        "{event}"
    );
    assert_eq!(
        event["systemProperties"]["content-type"], "application/json",
        "{event}"
    );
    assert!(event["properties"]["topic"].is_string(), "{event}");
    assert!(
        event["body"].to_string().contains("Fast/0")
            || event["body"].is_object()
            || event["body"].is_array(),
        "{event}"
    );

    // The endpoint's live values, as for a module on the broker: from the hub's messages.
    let mut live = api
        .http
        .get(format!("{}/events/v2/telemetry/{ep_id}", api.base))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    let mut seen = String::new();
    read_until(&mut live, &mut seen, "no live value through the hub", |t| {
        t.contains("event: telemetry") && t.contains("Fast/0")
    })
    .await;
    drop(live);

    // A publishing configuration in the module twin's desired properties replaces the file's.
    let (s, body) = api
        .call(
            reqwest::Method::PATCH,
            "/twins/edge-1/modules/publisher",
            Some(json!({"properties": {"desired": {"publishedNodes": [{
                "EndpointUrl": plc.endpoint_url(),
                "UseSecurity": false,
                "OpcNodes": [{ "Id": format!("{NS}Slow/0"), "OpcSamplingInterval": 100, "OpcPublishingInterval": 200 }],
            }]}}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    wait_until(
        &api,
        "/twins/edge-1/modules/publisher",
        "the configuration was not applied",
        |t| t["properties"]["reported"]["publishedNodesStatus"]["status"] == 200,
    )
    .await;
    read_until(
        &mut stream,
        &mut text,
        "no telemetry of the twin's configuration",
        |t| t.contains("Slow/0"),
    )
    .await;

    // The module goes away: the publisher is offline and calls answer 503 at once.
    drop(module);
    wait_until(&api, &path, "the publisher stays online", |p| {
        p["connected"] == false
    })
    .await;
    let began = Instant::now();
    let (s, body) = api
        .call(
            reqwest::Method::POST,
            &format!("/twin/v2/read/{ep_id}"),
            Some(json!({ "nodeId": format!("{NS}Fast/0") })),
        )
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(began.elapsed() < Duration::from_secs(3));
}

/// The IoT Edge workload API as the security daemon serves it to one module (trust bundle,
/// and HMAC signatures with the module's key, which the module itself never gets), over
/// HTTP: IoT Edge's runtime cannot run here, its API contract can.
async fn workload_api(ca_pem: String, module_key: String) -> std::net::SocketAddr {
    use axum::extract::Path as UrlPath;
    use axum::routing::{get, post};
    use axum::Json;
    let app = axum::Router::new()
        .route(
            "/trust-bundle",
            get(move || {
                let pem = ca_pem.clone();
                async move { Json(json!({ "certificate": pem })) }
            }),
        )
        .route(
            "/modules/{module}/genid/{genid}/sign",
            post(
                move |UrlPath((module, genid)): UrlPath<(String, String)>,
                      Json(req): Json<Value>| {
                    let key = module_key.clone();
                    async move {
                        use base64::Engine;
                        assert_eq!((module.as_str(), genid.as_str()), ("publisher", "gen-7"));
                        assert_eq!(req["keyId"], "primary");
                        assert_eq!(req["algo"], "HMACSHA256");
                        let data = base64::engine::general_purpose::STANDARD
                            .decode(req["data"].as_str().unwrap())
                            .unwrap();
                        let digest = iiot_twin_api::hub::sas::hmac(&key, &data).unwrap();
                        Json(json!({ "digest": digest }))
                    }
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_module_connects_from_an_iot_edge_environment() {
    let dir = temp_dir("hub-module-edge");
    let broker = Mosquitto::start().await;
    let hub_port = free_port();
    let (_twin, api) = twin_api(&dir, &broker.url(), hub_port).await;
    api.call(reqwest::Method::PUT, "/devices/edge-2", Some(json!({})))
        .await;
    let (_, m) = api
        .call(
            reqwest::Method::PUT,
            "/devices/edge-2/modules/publisher",
            Some(json!({"managedBy": "IotEdge"})),
        )
        .await;
    let key = m["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_string();
    let ca = std::fs::read_to_string(dir.join("data/hub-ca.pem")).unwrap();
    let workload = workload_api(ca, key).await;

    // What edgeAgent sets for a module (IOTEDGE_APIVERSION is aziot-edged's).
    let _module = module(
        &dir,
        &[],
        &[
            ("IOTEDGE_IOTHUBHOSTNAME", "hub1.localhost".into()),
            ("IOTEDGE_DEVICEID", "edge-2".into()),
            ("IOTEDGE_MODULEID", "publisher".into()),
            ("IOTEDGE_GATEWAYHOSTNAME", format!("127.0.0.1:{hub_port}")),
            ("IOTEDGE_MODULEGENERATIONID", "gen-7".into()),
            ("IOTEDGE_WORKLOADURI", format!("http://{workload}/")),
            ("IOTEDGE_APIVERSION", "2022-08-03".into()),
        ],
    )
    .await;
    wait_until(
        &api,
        "/registry/v2/publishers/edge-2_module_publisher",
        "the IoT Edge module never came online",
        |p| p["connected"] == true,
    )
    .await;
    assert!(dir.join("module/iotedge-trust-bundle.pem").exists());
}
