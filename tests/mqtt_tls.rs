//! TLS to the broker, end to end against a real Mosquitto with a TLS listener: the module's
//! telemetry and MQTT RPC and the twin API's client over `mqtts://` with a CA file (the
//! broker's certificate and host name verified), and mutual TLS where the broker requires a
//! client certificate. The certificates come from the `openssl` command line and the test's
//! own MQTT clients use rumqttc's TLS settings, so nothing here checks our code with itself.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const READER: &str = "reader-key-0123456789";

/// Options of a test client that speaks TLS to `port` with `pki`'s CA (and its client
/// certificate when `with_client_cert`).
fn tls_options(pki: &TestPki, port: u16, with_client_cert: bool) -> MqttOptions {
    let mut o = MqttOptions::new(format!("tls-test-{}", free_port()), "localhost", port);
    o.set_transport(pki.rumqttc_tls(with_client_cert));
    o.set_max_packet_size(Some(10 << 20));
    o
}

/// Every message on `filter` as (topic, payload), once subscribed.
async fn subscribe(
    options: MqttOptions,
    filter: &str,
) -> mpsc::UnboundedReceiver<(String, Vec<u8>)> {
    let (client, mut el) = AsyncClient::new(options, 64);
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let filter = filter.to_string();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.subscribe(filter.clone(), QoS::AtLeastOnce).await;
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic).into_owned();
                    if tx.send((topic, p.payload.to_vec())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx.recv())
        .await
        .expect("the test client subscribed over TLS within 10 s");
    rx
}

/// The first message within `within`, if any.
async fn first(
    rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    within: Duration,
) -> Option<(String, Vec<u8>)> {
    tokio::time::timeout(within, rx.recv()).await.ok().flatten()
}

fn published_nodes(dir: &Path, plc_url: &str) -> String {
    let pf = dir.join("publishednodes.json");
    let entries = json!([{
        "EndpointUrl": plc_url,
        "UseSecurity": false,
        "DataSetWriterGroup": "line1",
        "DataSetWriterId": "counters",
        "DataSetPublishingInterval": 100,
        "OpcNodes": [{ "Id": "nsu=urn:iiot:plc-sim;s=Fast/0", "DisplayName": "fast0",
            "OpcSamplingInterval": 100 }],
    }]);
    std::fs::write(&pf, entries.to_string()).expect("publishednodes.json");
    pf.to_string_lossy().into_owned()
}

/// Calls ValueRead until the module, which subscribes after connecting, answers.
async fn value_read(rpc: &mut RpcClient, root: &str, plc_url: &str) -> (u16, Value) {
    let read = envelope(
        &connection_none(plc_url),
        json!({ "nodeId": "nsu=urn:iiot:plc-sim;s=Fast/0" }),
    );
    for _ in 0..20 {
        let call = tokio::time::timeout(
            Duration::from_secs(2),
            rpc.call(root, "ValueRead_V2", &read),
        );
        if let Ok(answer) = call.await {
            return answer;
        }
    }
    panic!("the module never answered ValueRead over TLS");
}

/// The twin API binary on a free port with extra arguments.
struct TwinApi {
    base: String,
    _proc: Proc,
}

impl TwinApi {
    async fn start(mqtt_url: &str, extra: &[&str]) -> TwinApi {
        let dir = temp_dir("tls-twin");
        let keys = dir.join("api-keys.json");
        std::fs::write(
            &keys,
            json!([{ "name": "viewer", "key": READER, "roles": ["reader"] }]).to_string(),
        )
        .expect("api keys");
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_iiot"))
            .args(["--log", "warn", "twin-api", "--http-host", "127.0.0.1"])
            .arg("--http-port")
            .arg(port.to_string())
            .arg("--mqtt-url")
            .arg(mqtt_url)
            .arg("--data-dir")
            .arg(&dir)
            .arg("--api-keys")
            .arg(&keys)
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn iiot twin-api");
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("twin-api exited early: {status}");
            }
            assert!(Instant::now() < deadline, "twin-api did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        TwinApi {
            base: format!("http://127.0.0.1:{port}"),
            _proc: Proc(child),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let res = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {READER}"))
            .send()
            .await
            .expect("twin-api answers");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Waits until the registry shows the module `Connected`, which it learns only from the
    /// module's state message received over the twin API's own broker connection.
    async fn wait_connected(&self, publisher_id: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self
                .get(&format!("/registry/v2/publishers/{publisher_id}"))
                .await;
            if status == 200 && body["connectionState"] == "Connected" {
                let (_, health) = self.get("/healthz").await;
                assert_eq!(health["mqttConnected"], true, "{health}");
                assert_eq!(health["droppedModuleEvents"], 0, "{health}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the twin API never saw {publisher_id} connected: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_rpc_and_twin_api_over_tls_with_a_ca_file() {
    let pki = TestPki::new("tls-pki");
    let broker = Mosquitto::start_tls(&pki, false).await;
    let plc = plc_sim(false, None).await;
    let data_dir = temp_dir("tls-module");
    let pf = published_nodes(&data_dir, &plc.endpoint_url());
    let ca = pki.ca().to_string_lossy().into_owned();

    let m = Module::start_in(
        "tls",
        Some(&format!("mqtts://127.0.0.1:{}", broker.port)),
        &data_dir,
        &["--pf", &pf, "--mqtt-ca", &ca],
    )
    .await;
    let root = m.publisher_id.clone();

    // Telemetry reaches a subscriber through the TLS listener.
    let mut telemetry = subscribe(
        tls_options(&pki, broker.port, false),
        &format!("{root}/messages/#"),
    )
    .await;
    let (topic, payload) = first(&mut telemetry, Duration::from_secs(30))
        .await
        .expect("telemetry arrived over TLS within 30 s");
    assert!(topic.starts_with(&format!("{root}/messages/")), "{topic}");
    let text = String::from_utf8_lossy(&payload);
    assert!(text.contains("fast0"), "{text}");

    // An RPC call is answered over TLS.
    let mut rpc = RpcClient::connect_with(tls_options(&pki, broker.port, false)).await;
    let (status, body) = value_read(&mut rpc, &root, &plc.endpoint_url()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dataType"], "UInt64", "{body}");

    // The twin API connects with the CA file (checking the `localhost` name this time) and
    // sees the module.
    let api = TwinApi::start(
        &format!("mqtts://localhost:{}", broker.port),
        &["--mqtt-ca", &ca],
    )
    .await;
    api.wait_connected(&root).await;

    // A module that trusts another CA does not connect: the broker's certificate is verified.
    let other = TestPki::new("tls-other-pki");
    let other_ca = other.ca().to_string_lossy().into_owned();
    let mut states = subscribe(tls_options(&pki, broker.port, false), "+/state").await;
    let stranger = Module::start_in(
        "tls-stranger",
        Some(&format!("mqtts://127.0.0.1:{}", broker.port)),
        &temp_dir("tls-stranger"),
        &["--mqtt-ca", &other_ca],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(4);
    while let Some((topic, _)) = first(
        &mut states,
        deadline.saturating_duration_since(Instant::now()),
    )
    .await
    {
        assert!(
            !topic.starts_with(&stranger.publisher_id),
            "a module trusting another CA connected: {topic}"
        );
    }
    plc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = TestPki::new("mtls-pki");
    let broker = Mosquitto::start_tls(&pki, true).await;
    let plc = plc_sim(false, None).await;
    let url = format!("mqtts://localhost:{}", broker.port);
    let ca = pki.ca().to_string_lossy().into_owned();
    let (cert, key) = pki.client();
    let (cert, key) = (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    );
    let mut states = subscribe(tls_options(&pki, broker.port, true), "+/state").await;

    // Without a client certificate the broker refuses the module: no state message.
    let anonymous = Module::start_in(
        "mtls-anon",
        Some(&url),
        &temp_dir("mtls-anon"),
        &["--mqtt-ca", &ca],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(4);
    while let Some((topic, _)) = first(
        &mut states,
        deadline.saturating_duration_since(Instant::now()),
    )
    .await
    {
        assert!(
            !topic.starts_with(&anonymous.publisher_id),
            "a module without client certificate connected: {topic}"
        );
    }

    // With one it connects, announces itself and answers RPC.
    let m = Module::start_in(
        "mtls",
        Some(&url),
        &temp_dir("mtls"),
        &["--mqtt-ca", &ca, "--mqtt-cert", &cert, "--mqtt-key", &key],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (topic, payload) = first(&mut states, left)
            .await
            .expect("the module with a client certificate announced itself");
        if topic == format!("{}/state", m.publisher_id) {
            let state: Value = serde_json::from_slice(&payload).expect("state JSON");
            assert_eq!(state["state"], "Online", "{state}");
            break;
        }
    }
    let mut rpc = RpcClient::connect_with(tls_options(&pki, broker.port, true)).await;
    let (status, body) = value_read(&mut rpc, &m.publisher_id, &plc.endpoint_url()).await;
    assert_eq!(status, 200, "{body}");

    // The twin API with the client certificate sees it too.
    let api = TwinApi::start(
        &url,
        &["--mqtt-ca", &ca, "--mqtt-cert", &cert, "--mqtt-key", &key],
    )
    .await;
    api.wait_connected(&m.publisher_id).await;
    plc.shutdown().await;
}
