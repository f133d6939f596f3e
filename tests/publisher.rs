//! End to end: the real `iiot module` binary publishes plc-sim's counters through a private
//! Mosquitto, and a sink checks every counter value arrives once, in order: in steady state,
//! across a broker outage, across a `kill -9` of the module during an outage, after the OPC UA
//! server restarts, and against OPC UA servers nobody here wrote (asyncua, node-opcua).
//!
//! Counters change every 100 ms and are monitored with a queue, so any missing counter value is
//! a value the pipeline lost.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "subscriptions/proxy.rs"]
#[allow(dead_code)]
mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::sink::{analyse, assert_no_loss, assert_only_downtime_lost, Sink};
use common::{counter_plc, free_port, temp_dir, Mosquitto, Peer, Proc, API_KEY};
use iiot_testkit::{signal, wait_for_port as wait_port};
use serde_json::{json, Value};

const PLC_NS: &str = "urn:iiot:plc-sim";

/// A Mosquitto that can be stopped and started again on the same port, keeping its sessions
/// (so the sink's persistent session queues what arrives while the sink reconnects).
async fn persistent_broker() -> Mosquitto {
    Mosquitto::start_persistent(&["max_inflight_messages 0"]).await
}

/// The module binary, restartable on the same data directory.
struct Publisher {
    data_dir: PathBuf,
    pf: PathBuf,
    publisher_id: String,
    mqtt_url: String,
    extra: Vec<String>,
    http_port: u16,
    proc: Option<Proc>,
}

impl Publisher {
    async fn start(name: &str, mqtt_url: &str, entries: Value, extra: &[&str]) -> Publisher {
        let data_dir = temp_dir(name);
        let pf = data_dir.join("publishednodes.json");
        std::fs::write(&pf, serde_json::to_vec_pretty(&entries).unwrap()).unwrap();
        let mut p = Publisher {
            data_dir,
            pf,
            publisher_id: format!("pub-{name}-{}", free_port()),
            mqtt_url: mqtt_url.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            http_port: 0,
            proc: None,
        };
        p.restart().await;
        p
    }

    async fn restart(&mut self) {
        self.http_port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_iiot"))
            .args([
                "--log",
                &std::env::var("IIOT_TEST_LOG").unwrap_or_else(|_| "warn".into()),
                "module",
                "--http-host",
                "127.0.0.1",
            ])
            .arg("--http-port")
            .arg(self.http_port.to_string())
            .arg("--api-key")
            .arg(API_KEY)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--publisher-id")
            .arg(&self.publisher_id)
            .arg("--mqtt-url")
            .arg(&self.mqtt_url)
            .arg("--pf")
            .arg(&self.pf)
            .args(&self.extra)
            .env_remove("RUST_LOG")
            .stdout(if std::env::var_os("IIOT_TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn iiot module");
        self.proc = Some(Proc(child));
        wait_port(self.http_port).await;
    }

    fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            signal(&p.0, "KILL");
            let _ = p.0.wait();
        }
    }

    fn topic(&self) -> String {
        format!("{}/messages/#", self.publisher_id)
    }
}

fn entry(url: &str, nodes: &[(&str, &str)], batch_size: u32) -> Value {
    json!([{
        "EndpointUrl": url,
        "UseSecurity": false,
        "DataSetWriterGroup": "line1",
        "DataSetWriterId": "counters",
        "DataSetPublishingInterval": 100,
        "BatchSize": batch_size,
        "BatchTriggerInterval": 200,
        "OpcNodes": nodes.iter().map(|(id, name)| json!({
            "Id": id,
            "DisplayName": name,
            "OpcSamplingInterval": 100,
            "QueueSize": 100,
        })).collect::<Vec<_>>(),
    }])
}

async fn plc_sim() -> iiot_plc_sim::PlcSim {
    plc_sim_on(0, &temp_dir("plc-pki")).await
}

async fn plc_sim_on(port: u16, pki: &Path) -> iiot_plc_sim::PlcSim {
    counter_plc(port, pki, 8).await
}

fn fast_nodes(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("nsu={PLC_NS};s=Fast/{i}"), format!("fast{i}")))
        .collect()
}

fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_arrive_complete_and_in_order_with_metadata() {
    let plc = plc_sim().await;
    let broker = persistent_broker().await;
    let nodes = fast_nodes(4);
    let module = Publisher::start(
        "pub-steady",
        &broker.url(),
        entry(&plc.endpoint_url(), &refs(&nodes), 10),
        &[],
    )
    .await;
    let sink = Sink::start(broker.port, &module.topic()).await;
    let fields = ["fast0", "fast1", "fast2", "fast3"];
    sink.wait_for(&fields, 40, Duration::from_secs(30)).await;
    assert_no_loss(&sink, &fields);
    let r = sink.received.lock().unwrap();
    let meta = r
        .metadata
        .iter()
        .find(|m| m["DataSetWriterName"] == "counters")
        .expect("ua-metadata message for the writer");
    let names: Vec<&str> = meta["MetaData"]["Fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["Name"].as_str())
        .collect();
    assert_eq!(names, fields);
    assert_eq!(
        meta["MetaData"]["Fields"][0]["BuiltInType"], 9,
        "UInt64: {meta}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_mode_carries_the_same_values() {
    let plc = plc_sim().await;
    let broker = persistent_broker().await;
    let nodes = fast_nodes(2);
    let module = Publisher::start(
        "pub-samples",
        &broker.url(),
        entry(&plc.endpoint_url(), &refs(&nodes), 5),
        &["--mm", "Samples"],
    )
    .await;
    let sink = Sink::start(broker.port, &module.topic()).await;
    sink.wait_for(&["fast0", "fast1"], 20, Duration::from_secs(30))
        .await;
    assert_no_loss(&sink, &["fast0", "fast1"]);
}

/// A node sampled every 100 ms in a writer published every 200 ms, with no `QueueSize`:
/// the server must keep every sample of each publishing interval (OPC Publisher's `--aq`),
/// so the counter arrives without the every-other gaps a queue of one leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_queue_size_samples_between_publishes_are_kept() {
    let plc = plc_sim().await;
    let broker = persistent_broker().await;
    let fields = ["fast0", "fast1"];
    let entries = json!([{
        "EndpointUrl": plc.endpoint_url(),
        "UseSecurity": false,
        "DataSetWriterGroup": "line1",
        "DataSetWriterId": "auto-queue",
        "DataSetPublishingInterval": 200,
        "BatchSize": 10,
        "BatchTriggerInterval": 200,
        "OpcNodes": fields.iter().enumerate().map(|(i, name)| json!({
            "Id": format!("nsu={PLC_NS};s=Fast/{i}"),
            "DisplayName": name,
            "OpcSamplingInterval": 100,
        })).collect::<Vec<_>>(),
    }]);
    let module = Publisher::start("pub-autoqueue", &broker.url(), entries, &[]).await;
    let sink = Sink::start(broker.port, &module.topic()).await;
    sink.wait_for(&fields, 40, Duration::from_secs(30)).await;
    for f in fields {
        let (distinct, _dups, gaps) = analyse(&sink.values(f));
        let lost: u64 = gaps.iter().map(|(a, b)| b - a - 1).sum();
        eprintln!("{f}: {distinct} values, {lost} lost");
        // A queue of one loses every other value (≈ 50 %); allow a stray late sample.
        assert!(
            lost * 20 <= distinct as u64 + lost,
            "{f}: {lost} of {} values lost: {gaps:?}",
            distinct as u64 + lost
        );
    }
}

/// A node named only by a BrowsePath (from the Root folder), and one by an Id plus a path
/// relative to it, are monitored at the node the path leads to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_given_by_browse_path_are_resolved_on_the_server() {
    let plc = plc_sim().await;
    let broker = persistent_broker().await;
    let mut config = entry(&plc.endpoint_url(), &[], 5);
    config[0]["OpcNodes"] = json!([
        {
            "BrowsePath": ["0:Objects", format!("{PLC_NS}#Fast"), format!("{PLC_NS}#3")],
            "DisplayName": "byPath",
            "OpcSamplingInterval": 100,
            "QueueSize": 100,
        },
        {
            "Id": "i=85",
            "BrowsePath": [format!("{PLC_NS}#Fast"), format!("{PLC_NS}#5")],
            "DisplayName": "fromObjects",
            "OpcSamplingInterval": 100,
            "QueueSize": 100,
        },
    ]);
    let module = Publisher::start("pub-paths", &broker.url(), config, &[]).await;
    let sink = Sink::start(broker.port, &module.topic()).await;
    sink.wait_for(&["byPath", "fromObjects"], 20, Duration::from_secs(30))
        .await;
    assert_no_loss(&sink, &["byPath", "fromObjects"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_loses_nothing() {
    let plc = plc_sim().await;
    let mut broker = persistent_broker().await;
    let nodes = fast_nodes(4);
    let module = Publisher::start(
        "pub-outage",
        &broker.url(),
        entry(&plc.endpoint_url(), &refs(&nodes), 10),
        &[],
    )
    .await;
    let fields = ["fast0", "fast1", "fast2", "fast3"];
    let sink = Sink::start(broker.port, &module.topic()).await;
    sink.wait_for(&fields, 10, Duration::from_secs(30)).await;
    broker.stop().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = sink.counts();
    broker.resume().await;
    // Values of the outage (≈ 50 per field) arrive after it, then live ones.
    let want = before.values().min().copied().unwrap_or(0) + 80;
    sink.wait_for(&fields, want, Duration::from_secs(60)).await;
    assert_no_loss(&sink, &fields);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_broker_outage_loses_nothing_that_was_accepted() {
    let plc = plc_sim().await;
    let mut broker = persistent_broker().await;
    let nodes = fast_nodes(4);
    let mut module = Publisher::start(
        "pub-kill",
        &broker.url(),
        entry(&plc.endpoint_url(), &refs(&nodes), 10),
        &[],
    )
    .await;
    let fields = ["fast0", "fast1", "fast2", "fast3"];
    let sink = Sink::start(broker.port, &module.topic()).await;
    sink.wait_for(&fields, 10, Duration::from_secs(30)).await;
    broker.stop().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let killed_at = time::OffsetDateTime::now_utc();
    module.kill9();
    tokio::time::sleep(Duration::from_secs(1)).await;
    module.restart().await;
    broker.resume().await;
    sink.wait_for(&fields, 70, Duration::from_secs(60)).await;
    // Values sampled up to a second before the kill were batched, committed and must all be
    // there; the only gap allowed is the time the module was dead.
    assert_only_downtime_lost(&sink, &fields, killed_at - time::Duration::seconds(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_flow_again_after_the_plc_restarts() {
    let pki = temp_dir("plc-restart-pki");
    let plc = plc_sim_on(0, &pki).await;
    let port = plc.port();
    let url = plc.endpoint_url();
    let broker = persistent_broker().await;
    let nodes = fast_nodes(2);
    let module = Publisher::start(
        "pub-plc-restart",
        &broker.url(),
        entry(&url, &refs(&nodes), 5),
        &[],
    )
    .await;
    let sink = Sink::start(broker.port, &module.topic()).await;
    sink.wait_for(&["fast0", "fast1"], 10, Duration::from_secs(30))
        .await;
    plc.shutdown().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = sink.counts();
    let _plc = plc_sim_on(port, &pki).await;
    let want = before.values().max().copied().unwrap_or(0) + 20;
    sink.wait_for(&["fast0", "fast1"], want, Duration::from_secs(60))
        .await;
}

/// The network drops for 3 s while the server lives on: the client reactivates its session,
/// the subscriptions it still holds on the server resume (the module's own reconnect path,
/// since the OPC UA client no longer re-creates subscriptions), and what the server queued
/// during the outage arrives: no value is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_drop_loses_nothing_and_keeps_the_subscriptions() {
    let plc = plc_sim().await;
    let upstream: std::net::SocketAddr = format!("127.0.0.1:{}", plc.port())
        .parse()
        .expect("address");
    let net = proxy::Proxy::start(upstream).await;
    let broker = persistent_broker().await;
    let nodes = fast_nodes(2);
    let module = Publisher::start(
        "pub-net-drop",
        &broker.url(),
        entry(&net.url(), &refs(&nodes), 5),
        &[],
    )
    .await;
    let sink = Sink::start(broker.port, &module.topic()).await;
    let fields = ["fast0", "fast1"];
    sink.wait_for(&fields, 10, Duration::from_secs(30)).await;
    net.drop_network_for(Duration::from_secs(3));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = sink.counts();
    let want = before.values().max().copied().unwrap_or(0) + 30;
    sink.wait_for(&fields, want, Duration::from_secs(60)).await;
    assert_no_loss(&sink, &fields);
    let reconnects = metric(module.http_port, "iiot_publisher_opcua_reconnects_total")
        .await
        .unwrap_or(0.0);
    assert!(reconnects >= 1.0, "the module saw the reconnect");
    assert_eq!(
        metric(
            module.http_port,
            "iiot_publisher_publish_gate_saturations_total"
        )
        .await,
        Some(0.0),
        "a writer that keeps up never stops the Publish requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_to_asyncua_and_node_opcua_servers() {
    let asyncua = Peer::asyncua().await;
    let node = Peer::node_opcua().await;
    let broker = persistent_broker().await;
    let entries = json!([
        {
            "EndpointUrl": asyncua.url, "UseSecurity": false, "DataSetWriterGroup": "peers",
            "DataSetWriterId": "asyncua", "DataSetPublishingInterval": 100, "BatchSize": 5,
            "BatchTriggerInterval": 200,
            "OpcNodes": [{ "Id": asyncua.node("Counter"), "DisplayName": "asyncua", "OpcSamplingInterval": 100, "QueueSize": 100 }]
        },
        {
            "EndpointUrl": node.url, "UseSecurity": false, "DataSetWriterGroup": "peers",
            "DataSetWriterId": "node-opcua", "DataSetPublishingInterval": 100, "BatchSize": 5,
            "BatchTriggerInterval": 200,
            "OpcNodes": [{ "Id": node.node("Counter"), "DisplayName": "nodeopcua", "OpcSamplingInterval": 100, "QueueSize": 100 }]
        }
    ]);
    let module = Publisher::start("pub-peers", &broker.url(), entries, &[]).await;
    let sink = Sink::start(broker.port, &module.topic()).await;
    sink.wait_for(&["asyncua", "nodeopcua"], 20, Duration::from_secs(60))
        .await;
    // The peers' own timers drift under load, but whatever they produced must arrive in order.
    for f in ["asyncua", "nodeopcua"] {
        let (distinct, dups, _) = analyse(&sink.values(f));
        assert!(
            distinct >= 20 && dups == 0,
            "{f}: {distinct} values, {dups} duplicates"
        );
    }
}

async fn post(port: u16, path: &str, body: &Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}{path}"))
        .header("Authorization", format!("ApiKey {API_KEY}"))
        .json(body)
        .send()
        .await
        .expect("HTTP request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_added_and_removed_at_runtime_leave_the_others_without_a_gap() {
    let plc = plc_sim().await;
    let broker = persistent_broker().await;
    let nodes = fast_nodes(3);
    let url = plc.endpoint_url();
    let module = Publisher::start(
        "pub-runtime",
        &broker.url(),
        entry(&url, &refs(&nodes[..2]), 5),
        &[],
    )
    .await;
    let sink = Sink::start(broker.port, &module.topic()).await;
    sink.wait_for(&["fast0", "fast1"], 10, Duration::from_secs(30))
        .await;

    // Add fast2 to the same writer through the configuration API.
    let mut add = entry(&url, &refs(&nodes[2..]), 5)[0].clone();
    add["OpcNodes"][0]["Id"] = json!(nodes[2].0);
    let (status, body) = post(module.http_port, "/v2/configuration/nodes", &add).await;
    assert_eq!(status, 200, "PublishNodes: {body}");
    sink.wait_for(&["fast2"], 10, Duration::from_secs(30)).await;

    // Remove fast1; fast0 and fast2 go on.
    let remove = entry(&url, &refs(&nodes[1..2]), 5)[0].clone();
    let (status, body) = post(
        module.http_port,
        "/v2/configuration/nodes/unpublish",
        &remove,
    )
    .await;
    assert_eq!(status, 200, "UnpublishNodes: {body}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fast1_after_removal = sink.counts()["fast1"];
    let base = sink.counts();
    sink.wait_for(
        &["fast0", "fast2"],
        base["fast0"].max(base["fast2"]) + 20,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        sink.counts()["fast1"],
        fast1_after_removal,
        "fast1 still published after UnpublishNodes"
    );
    // Untouched fast0 never missed a value through both changes.
    assert_no_loss(&sink, &["fast0", "fast2"]);
}

async fn metric(port: u16, name: &str) -> Option<f64> {
    let text = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .header("Authorization", format!("ApiKey {API_KEY}"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_limits_split_requests_and_subscriptions_and_bad_nodes_are_reported() {
    // 7 items per CreateMonitoredItems and 10 per subscription: 25 nodes need 4 calls and 3
    // subscriptions; a node the server does not know is reported, and the others flow.
    let plc = iiot_plc_sim::PlcSim::start(iiot_plc_sim::PlcSimConfig {
        port: 0,
        pki_dir: temp_dir("plc-limits-pki"),
        fast_nodes: 25,
        fast_rate_ms: 100,
        slow_nodes: 1,
        max_monitored_items_per_call: 7,
        max_monitored_items_per_subscription: 10,
        ..Default::default()
    })
    .await
    .expect("plc-sim start");
    let broker = persistent_broker().await;
    let mut nodes = fast_nodes(25);
    // A namespace no node manager owns (async-opcua accepts unknown ids in its own namespaces).
    nodes.push(("ns=9;s=NoSuchNode".into(), "missing".into()));
    let module = Publisher::start(
        "pub-limits",
        &broker.url(),
        entry(&plc.endpoint_url(), &refs(&nodes), 50),
        &[],
    )
    .await;
    let sink = Sink::start(broker.port, &module.topic()).await;
    let fields: Vec<String> = (0..25).map(|i| format!("fast{i}")).collect();
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    sink.wait_for(&fields, 20, Duration::from_secs(30)).await;
    assert_no_loss(&sink, &fields);
    assert_eq!(
        metric(module.http_port, "iiot_publisher_monitored_items_good").await,
        Some(25.0)
    );
    assert_eq!(
        metric(module.http_port, "iiot_publisher_monitored_items_bad").await,
        Some(1.0)
    );
    let (status, body) = post(
        module.http_port,
        "/v2/configuration/diagnostics",
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.to_string()
            .contains("\"monitoredOpcNodesFailedCount\":1"),
        "{body}"
    );
}
