//! Microsoft's device SDK (PyPI `azure-iot-device` 2.14.0, `tests/peers/hub_device_client.py`)
//! against the hub's device endpoint: a SAS device connects, sends telemetry the SSE stream
//! shows, reads its twin, reports, receives a desired patch and answers a direct method
//! invoked through REST; a module connects through a GatewayHostName; wrong keys, disabled
//! devices and take-overs are refused or handled as IoT Hub does.
//!
//! The SDK dials port 8883 (fixed in it), so each test listens there on a loopback address
//! of its own (127.0.0.N).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use harness::{TwinApi, ADMIN};
use iiot_testkit::{temp_dir, Mosquitto};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A hub whose device endpoint listens on `ip`:8883 with `ip` as its host name.
async fn hub(ip: &str, dir: &Path, broker: &Mosquitto) -> TwinApi {
    let ip = ip.to_string();
    TwinApi::start(&broker.url(), &dir.join("data"), move |c| {
        c.http_bind = format!("{ip}:0").parse().unwrap();
        c.hub.hostname = ip.clone();
        c.hub.device_port = Some(8883);
    })
    .await
}

async fn rest(
    api: &TwinApi,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (s, _, b) = api
        .send(
            method,
            path,
            Some(ADMIN),
            &[],
            body.map(|b| b.to_string().into_bytes()),
        )
        .await;
    (s, b)
}

/// Registers a SAS device (or module) and writes its connection string to a file.
async fn register(
    api: &TwinApi,
    dir: &Path,
    ip: &str,
    device: &str,
    module: Option<&str>,
) -> PathBuf {
    let path = match module {
        Some(m) => format!("/devices/{device}/modules/{m}"),
        None => format!("/devices/{device}"),
    };
    let (s, d) = rest(api, Method::PUT, &path, Some(json!({}))).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let key = d["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap();
    let mut cs = format!("HostName={ip};DeviceId={device}");
    if let Some(m) = module {
        cs.push_str(&format!(";ModuleId={m}"));
    }
    cs.push_str(&format!(";SharedAccessKey={key}"));
    let file = dir.join(format!("{device}-{}.cs", module.unwrap_or("device")));
    std::fs::write(&file, cs).unwrap();
    file
}

/// The SDK client as a child process speaking JSON lines.
struct Sdk {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
}

impl Sdk {
    fn start(dir: &Path, args: &[&str]) -> Sdk {
        let python = repo().join("tests/peers/.venv-azure/bin/python");
        assert!(python.exists(), "run scripts/install-peers.sh");
        let mut child = Command::new(python)
            .arg(repo().join("tests/peers/hub_device_client.py"))
            .arg("--ca-file")
            .arg(dir.join("data/hub-ca.pem"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut out = BufReader::new(stdout).lines();
            while let Ok(Some(l)) = out.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&l) {
                    let _ = tx.send(v);
                }
            }
        });
        Sdk {
            child,
            stdin,
            lines,
        }
    }

    /// The next line that satisfies `want`, within 40 s.
    async fn wait(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} from the SDK client"))
                .unwrap_or_else(|| panic!("the SDK client ended before {what}"));
            if want(&line) {
                return line;
            }
            eprintln!("sdk: {line}");
        }
    }

    async fn event(&mut self, name: &str) -> Value {
        self.wait(name, |l| {
            l["event"] == name || l["event"] == "connect-failed"
        })
        .await
    }

    async fn send(&mut self, cmd: Value) {
        self.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn call(&mut self, cmd: Value) -> Value {
        let name = cmd["cmd"].as_str().unwrap().to_string();
        self.send(cmd).await;
        let r = self
            .wait(&name, |l| l["cmd"].as_str() == Some(name.as_str()))
            .await;
        assert_eq!(r["ok"], true, "{r}");
        r
    }

    async fn end(mut self) {
        let _ = self.send(json!({"cmd": "disconnect"})).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// The next SSE `message` event's data, read from a response body stream.
async fn next_event(body: &mut reqwest::Response, buf: &mut String) -> Value {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) {
                return serde_json::from_str(data.trim()).unwrap();
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), body.chunk())
            .await
            .expect("an SSE event")
            .unwrap()
            .expect("stream open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sas_device_sends_reports_and_answers() {
    let ip = "127.0.0.71";
    let dir = temp_dir("hub-device-sdk");
    let broker = Mosquitto::start().await;
    let api = hub(ip, &dir, &broker).await;
    let cs = register(&api, &dir, ip, "sdk-device", None).await;

    // The SSE stream of this device, open before anything is sent.
    let stream = api
        .http
        .get(format!(
            "{}/events/v2/hub/messages?deviceId=sdk-device",
            api.base
        ))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mut events = stream;
    let mut buf = String::new();

    // A cloud-to-device message queued while the device is offline waits for it.
    let c2d = |body: &'static str, headers: &'static [(&'static str, &'static str)]| {
        let api = &api;
        async move {
            api.send(
                Method::POST,
                "/devices/sdk-device/messages/deviceBound",
                Some(ADMIN),
                headers,
                Some(body.as_bytes().to_vec()),
            )
            .await
        }
    };
    let (s, _, queued) = c2d(
        r#"{"cmd":"start"}"#,
        &[
            ("iothub-messageid", "c2d-1"),
            ("iothub-app-priority", "high"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{queued}");
    assert_eq!(queued["messageId"], "c2d-1");

    let mut sdk = Sdk::start(&dir, &["--connection-string-file", cs.to_str().unwrap()]);
    let ready = sdk.event("ready").await;
    assert_eq!(ready["event"], "ready", "{ready}");
    let (_, device) = rest(&api, Method::GET, "/devices/sdk-device", None).await;
    assert_eq!(device["connectionState"], "Connected");
    let got = sdk
        .call(json!({"cmd": "expect_c2d", "timeoutSecs": 20}))
        .await;
    assert_eq!(got["body"], r#"{"cmd":"start"}"#, "{got}");
    assert_eq!(got["messageId"], "c2d-1", "{got}");
    assert_eq!(got["contentType"], "application/json", "{got}");
    assert_eq!(got["properties"]["priority"], "high", "{got}");
    // ... and one sent while it is connected arrives at once.
    let (s, _, _) = c2d(
        "second",
        &[("iothub-correlationid", "corr-2"), ("iothub-expiry", "60")],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let got = sdk
        .call(json!({"cmd": "expect_c2d", "timeoutSecs": 20}))
        .await;
    assert_eq!(got["body"], "second", "{got}");
    assert_eq!(got["correlationId"], "corr-2", "{got}");

    // Telemetry: acknowledged, then in the stream with its properties.
    sdk.call(
        json!({"cmd": "send", "body": {"temp": 21.5}, "properties": {"line": "7"},
        "contentType": "application/json", "contentEncoding": "utf-8", "messageId": "m-1"}),
    )
    .await;
    let e = next_event(&mut events, &mut buf).await;
    assert_eq!(e["body"], json!({"temp": 21.5}), "{e}");
    assert_eq!(e["properties"]["line"], "7", "{e}");
    assert_eq!(
        e["systemProperties"]["iothub-connection-device-id"],
        "sdk-device"
    );
    assert_eq!(e["systemProperties"]["message-id"], "m-1", "{e}");
    assert_eq!(
        e["systemProperties"]["content-type"], "application/json",
        "{e}"
    );
    assert!(e["systemProperties"]["iothub-enqueuedtime"].is_string());

    // Twin: GET, reported patch visible through REST, desired patch pushed at once.
    let twin = sdk.call(json!({"cmd": "get_twin"})).await;
    assert_eq!(twin["twin"]["desired"]["$version"], 1, "{twin}");
    sdk.call(json!({"cmd": "patch_reported", "patch": {"temp": 21, "fw": {"v": "1.2"}}}))
        .await;
    let (_, t) = rest(&api, Method::GET, "/twins/sdk-device", None).await;
    assert_eq!(t["properties"]["reported"]["temp"], 21, "{t}");
    assert_eq!(t["properties"]["reported"]["fw"]["v"], "1.2", "{t}");
    let (s, _) = rest(
        &api,
        Method::PATCH,
        "/twins/sdk-device",
        Some(json!({"properties": {"desired": {"interval": 7}}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let patch = sdk
        .call(json!({"cmd": "expect_desired", "timeoutSecs": 20}))
        .await;
    assert_eq!(patch["patch"]["interval"], 7, "{patch}");
    assert_eq!(patch["patch"]["$version"], 2, "{patch}");

    // A direct method through REST, answered by the device.
    sdk.send(
        json!({"cmd": "expect_method", "timeoutSecs": 20, "status": 201,
        "respondWith": {"rebooted": true}}),
    )
    .await;
    let (s, answer) = rest(
        &api,
        Method::POST,
        "/twins/sdk-device/methods",
        Some(json!({"methodName": "reboot", "payload": {"delay": 1},
            "responseTimeoutInSeconds": 15})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"status": 201, "payload": {"rebooted": true}})
    );
    let asked = sdk
        .wait("expect_method", |l| l["cmd"] == "expect_method")
        .await;
    assert_eq!(asked["payload"], json!({"delay": 1}), "{asked}");

    // Nobody answers: 504 after the timeout; an unknown device: 404; offline: 404.
    let (s, b) = rest(
        &api,
        Method::POST,
        "/twins/sdk-device/methods",
        Some(json!({"methodName": "slow", "responseTimeoutInSeconds": 5})),
    )
    .await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{b}");
    sdk.end().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, b) = rest(
        &api,
        Method::POST,
        "/twins/sdk-device/methods",
        Some(json!({"methodName": "reboot"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert!(
        b["Message"].as_str().unwrap().contains("DeviceNotOnline"),
        "{b}"
    );
    let (_, device) = rest(&api, Method::GET, "/devices/sdk-device", None).await;
    assert_eq!(device["connectionState"], "Disconnected");

    // The device acknowledged both messages: nothing waits. IoT Hub's queue depth: 50.
    for _ in 0..50 {
        let (s, _, b) = c2d("queued", &[]).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (s, h, b) = c2d("one too many", &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(
        h.get("iothub-errorcode").unwrap(),
        "DeviceMaximumQueueDepthExceeded"
    );
    let (s, b) = rest(&api, Method::DELETE, "/devices/sdk-device/commands", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["totalMessagesPurged"], 50, "{b}");
    let (s, _, b) = c2d("too long", &[("iothub-expiry", "999999")]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _, b) = api
        .send(
            Method::POST,
            "/devices/nobody/messages/deviceBound",
            Some(ADMIN),
            &[],
            Some(b"x".to_vec()),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_disabled_devices_and_take_overs() {
    let ip = "127.0.0.72";
    let dir = temp_dir("hub-device-refusals");
    let broker = Mosquitto::start().await;
    let api = hub(ip, &dir, &broker).await;
    let cs = register(&api, &dir, ip, "dev-a", None).await;

    // A wrong key is refused at CONNACK.
    let text = std::fs::read_to_string(&cs).unwrap();
    let wrong = dir.join("wrong.cs");
    let key = text.split("SharedAccessKey=").nth(1).unwrap();
    std::fs::write(
        &wrong,
        text.replace(key, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
    )
    .unwrap();
    let mut sdk = Sdk::start(&dir, &["--connection-string-file", wrong.to_str().unwrap()]);
    let e = sdk.event("connected").await;
    assert_eq!(e["event"], "connect-failed", "{e}");

    // A second connection of the same identity takes over the first.
    let mut first = Sdk::start(&dir, &["--connection-string-file", cs.to_str().unwrap()]);
    assert_eq!(first.event("ready").await["event"], "ready");
    let mut second = Sdk::start(&dir, &["--connection-string-file", cs.to_str().unwrap()]);
    assert_eq!(second.event("ready").await["event"], "ready");
    let dropped = first
        .wait("a take-over", |l| {
            l["event"] == "connection-state" && l["connected"] == false
        })
        .await;
    assert_eq!(dropped["connected"], false);
    second
        .call(json!({"cmd": "send", "body": "still here"}))
        .await;

    // Disabling the device ends its session and refuses the next CONNECT.
    let (s, _) = rest(
        &api,
        Method::PUT,
        "/devices/dev-a",
        Some(json!({"deviceId": "dev-a", "status": "disabled"})),
    )
    .await;
    // Without If-Match a PUT creates only.
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _, b) = api
        .send(
            Method::PUT,
            "/devices/dev-a",
            Some(ADMIN),
            &[("If-Match", "*")],
            Some(
                json!({"deviceId": "dev-a", "status": "disabled"})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    second
        .wait("the disabled device's session to end", |l| {
            l["event"] == "connection-state" && l["connected"] == false
        })
        .await;
    let mut third = Sdk::start(&dir, &["--connection-string-file", cs.to_str().unwrap()]);
    assert_eq!(third.event("connected").await["event"], "connect-failed");

    // A module through a GatewayHostName: HostName names the hub, the gateway is dialled.
    register(&api, &dir, ip, "edge-1", None).await;
    let mcs = register(&api, &dir, ip, "edge-1", Some("opcpublisher")).await;
    let text = std::fs::read_to_string(&mcs).unwrap();
    std::fs::write(&mcs, format!("{text};GatewayHostName={ip}")).unwrap();
    let mut module = Sdk::start(&dir, &["--connection-string-file", mcs.to_str().unwrap()]);
    assert_eq!(module.event("ready").await["event"], "ready");
    module
        .call(json!({"cmd": "send", "body": "{}", "output": "output1"}))
        .await;
    let stored = api
        .http
        .get(format!(
            "{}/events/v2/hub/messages?moduleId=opcpublisher&after=0",
            api.base
        ))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .send()
        .await
        .unwrap();
    let mut events = stored;
    let mut buf = String::new();
    let e = next_event(&mut events, &mut buf).await;
    assert_eq!(
        e["systemProperties"]["iothub-connection-module-id"], "opcpublisher",
        "{e}"
    );
    assert_eq!(e["systemProperties"]["output-name"], "output1", "{e}");
    module.end().await;
    first.end().await;
    api.shutdown().await;
}

/// IoT Edge routes from the device's `$edgeHub` twin (as a deployment manifest sets them):
/// module `a`'s output messages reach module `b`'s inputs — by output name, and by a WHERE on
/// properties and body — with their properties and edgeHub's sender properties; a message no
/// route takes reaches no input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_routes_carry_module_outputs_to_module_inputs() {
    let ip = "127.0.0.76";
    let dir = temp_dir("hub-device-routes");
    let broker = Mosquitto::start().await;
    let api = hub(ip, &dir, &broker).await;
    let (s, d) = rest(&api, Method::PUT, "/devices/edge-dev", Some(json!({}))).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let a = register(&api, &dir, ip, "edge-dev", Some("a")).await;
    let b = register(&api, &dir, ip, "edge-dev", Some("b")).await;
    let (s, d) = rest(
        &api,
        Method::PUT,
        "/devices/edge-dev/modules/$edgeHub",
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let (s, t) = rest(
        &api,
        Method::PATCH,
        "/twins/edge-dev/modules/$edgeHub",
        Some(json!({"properties": {"desired": {
            "schemaVersion": "1.1",
            "routes": {
                "toB": "FROM /messages/modules/a/outputs/out1 INTO BrokeredEndpoint(\"/modules/b/inputs/in1\")",
                "hot": {"route": "FROM /messages/modules/a/* WHERE unit = 'C' AND $body.t > 25 INTO BrokeredEndpoint(\"/modules/b/inputs/hot\")",
                        "priority": 0, "timeToLiveSecs": 600},
                "upstream": "FROM /messages/* INTO $upstream"
            },
            "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}
        }}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");

    let mut receiver = Sdk::start(&dir, &["--connection-string-file", b.to_str().unwrap()]);
    assert_eq!(receiver.event("ready").await["event"], "ready");
    let mut sender = Sdk::start(&dir, &["--connection-string-file", a.to_str().unwrap()]);
    assert_eq!(sender.event("ready").await["event"], "ready");
    sender
        .call(json!({"cmd": "send", "body": {"t": 30}, "output": "out1",
            "properties": {"unit": "C"}, "messageId": "r-1",
            "contentType": "application/json", "contentEncoding": "utf-8"}))
        .await;
    let mut inputs = Vec::new();
    for _ in 0..2 {
        let got = receiver
            .call(json!({"cmd": "expect_input", "timeoutSecs": 20}))
            .await;
        let body: Value = serde_json::from_str(got["body"].as_str().unwrap()).unwrap();
        assert_eq!(body, json!({"t": 30}), "{got}");
        assert_eq!(got["messageId"], "r-1", "{got}");
        assert_eq!(got["properties"]["unit"], "C", "{got}");
        assert_eq!(got["properties"]["$.cmid"], "a", "{got}");
        inputs.push(got["input"].as_str().unwrap().to_string());
    }
    inputs.sort();
    assert_eq!(inputs, ["hot", "in1"]);
    // Another output, too cold: no route to an input takes it.
    sender
        .call(json!({"cmd": "send", "body": {"t": 10}, "output": "out2",
            "properties": {"unit": "C"}}))
        .await;
    receiver
        .send(json!({"cmd": "expect_input", "timeoutSecs": 3}))
        .await;
    let none = receiver
        .wait("expect_input", |l| l["cmd"] == "expect_input")
        .await;
    assert_eq!(none["ok"], false, "{none}");
    sender.end().await;
    receiver.end().await;
    api.shutdown().await;
}
