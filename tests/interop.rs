//! The module against OPC UA servers nobody on the team wrote: Python asyncua and node-opcua
//! (installed by scripts/install-peers.sh). Read, write, browse, call and discovery over HTTP
//! and over MQTT RPC through Mosquitto, without security and signed-and-encrypted.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Calls one method over HTTP and over MQTT and checks both answers agree.
struct Both<'a> {
    m: &'a Module,
    rpc: RpcClient,
}

impl Both<'_> {
    async fn call(&mut self, route: &str, method: &str, body: &Value) -> Value {
        let (status, http) = self.m.post(route, body).await;
        assert_eq!(status, 200, "HTTP {route}: {http}");
        let (status, mqtt) = self.rpc.call(&self.m.publisher_id, method, body).await;
        assert_eq!(status, 200, "MQTT {method}: {mqtt}");
        assert!(http.get("errorInfo").is_none(), "{route}: {http}");
        assert!(mqtt.get("errorInfo").is_none(), "{method}: {mqtt}");
        mqtt
    }

    /// Calls over one transport only.
    async fn one(&mut self, transport: &str, route: &str, method: &str, body: &Value) -> Value {
        let (status, answer) = if transport == "http" {
            self.m.post(route, body).await
        } else {
            self.rpc.call(&self.m.publisher_id, method, body).await
        };
        assert_eq!(status, 200, "{transport} {method}: {answer}");
        assert!(
            answer.get("errorInfo").is_none(),
            "{transport} {method}: {answer}"
        );
        answer
    }
}

async fn exercise(peer: &Peer, m: &Module, rpc: RpcClient, conn: &Value) {
    let mut both = Both { m, rpc };

    // The module subscribes to its method topic after connecting: wait for the first answer.
    let probe = envelope(conn, json!({ "nodeId": peer.node("Scalar/Int32") }));
    for _ in 0..40 {
        let quick = tokio::time::timeout(
            Duration::from_millis(500),
            both.rpc.call(&m.publisher_id, "ValueRead", &probe),
        );
        if quick.await.is_ok() {
            break;
        }
    }

    // Read, write (coerced from plain JSON), read back.
    let v = both.call("/v2/read", "ValueRead_V2", &probe).await;
    assert_eq!(v["dataType"], "Int32", "{v}");
    for (id, value) in [
        ("Scalar/Int32", json!(1234)),
        ("Scalar/Double", json!(3.5)),
        ("Scalar/String", json!("interop")),
        ("Scalar/Boolean", json!(false)),
        ("Array/Int32", json!([9, 8, 7])),
    ] {
        both.call(
            "/v2/write",
            "ValueWrite_V2",
            &envelope(conn, json!({ "nodeId": peer.node(id), "value": value })),
        )
        .await;
        let back = both
            .call(
                "/v2/read",
                "ValueRead_V2",
                &envelope(conn, json!({ "nodeId": peer.node(id) })),
            )
            .await;
        assert_eq!(back["value"], value, "{id}: {back}");
    }

    // A value that changes by itself.
    let a = both
        .call(
            "/v2/read",
            "ValueRead",
            &envelope(conn, json!({ "nodeId": peer.node("Counter") })),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let b = both
        .call(
            "/v2/read",
            "ValueRead",
            &envelope(conn, json!({ "nodeId": peer.node("Counter") })),
        )
        .await;
    assert_ne!(a["value"], b["value"], "Counter did not change: {a} {b}");

    // Browse the tree, with BrowseNext when the server pages; a continuation point is good
    // for one use, so each transport pages through its own.
    for transport in ["http", "mqtt"] {
        let first_body = envelope(
            conn,
            json!({ "nodeId": peer.node("Tree/1"), "maxReferencesToReturn": 2 }),
        );
        let first = both
            .one(transport, "/v2/browse/first", "Browse_V2", &first_body)
            .await;
        let mut total = first["references"].as_array().unwrap().len();
        let mut token = first["continuationToken"].as_str().map(str::to_string);
        while let Some(t) = token {
            let body = envelope(conn, json!({ "continuationToken": t }));
            let next = both
                .one(transport, "/v2/browse/next", "BrowseNext_V2", &body)
                .await;
            total += next["references"].as_array().unwrap().len();
            token = next["continuationToken"].as_str().map(str::to_string);
        }
        assert!(
            total >= 3,
            "Tree/1 has 3 variables, browsed {total} over {transport}"
        );
    }
    let objects = both
        .call(
            "/v2/browse/first",
            "Browse",
            &envelope(conn, json!({ "nodeId": "i=85" })),
        )
        .await;
    assert!(
        objects["references"].as_array().unwrap().len() >= 3,
        "{objects}"
    );

    // Methods: metadata and a call.
    let meta = both
        .call(
            "/v2/call/$metadata",
            "MethodMetadata_V2",
            &envelope(conn, json!({ "methodId": peer.node("Methods/Add") })),
        )
        .await;
    assert_eq!(
        meta["inputArguments"].as_array().map(Vec::len),
        Some(2),
        "{meta}"
    );
    let sum = both
        .call(
            "/v2/call",
            "MethodCall_V2",
            &envelope(
                conn,
                json!({
            "methodId": peer.node("Methods/Add"), "objectId": peer.node("Methods"),
            "arguments": [{ "value": 40 }, { "value": 2 }] }),
            ),
        )
        .await;
    assert_eq!(sum["results"][0]["value"], 42, "{sum}");

    // A failing method and an unknown node come back as errorInfo, not as a crash.
    let (status, body) = m
        .post(
            "/v2/call",
            &envelope(
                conn,
                json!({ "methodId": peer.node("Methods/Fail"), "objectId": peer.node("Methods") }),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["errorInfo"]["symbolicId"]
            .as_str()
            .unwrap_or("")
            .starts_with("Bad"),
        "{body}"
    );
    let (_, body) = m
        .post(
            "/v2/read",
            &envelope(conn, json!({ "nodeId": peer.node("Nope") })),
        )
        .await;
    assert_eq!(
        body["errorInfo"]["symbolicId"], "BadNodeIdUnknown",
        "{body}"
    );

    // Discovery of the peer.
    let found = both
        .call(
            "/v2/discovery/findserver",
            "FindServer",
            &json!({ "discoveryUrl": peer.url }),
        )
        .await;
    assert!(
        found["application"]["applicationUri"]
            .as_str()
            .unwrap_or("")
            .starts_with(peer.namespace),
        "{found}"
    );
    let caps = both
        .call(
            "/v2/capabilities",
            "GetServerCapabilities",
            &envelope(conn, Value::Null),
        )
        .await;
    assert!(caps.is_object(), "{caps}");
}

/// Approves the peer's rejected server certificate through the PKI API.
async fn trust_peer(m: &Module, peer: &Peer) {
    let conn = connection_secure(&peer.url, Some(("user1", "password")));
    let (status, body) = m
        .post(
            "/v2/read",
            &envelope(&conn, json!({ "nodeId": peer.node("Scalar/Int32") })),
        )
        .await;
    assert_eq!(
        (status, body["symbolicId"].as_str()),
        (502, Some("BadCertificateUntrusted")),
        "{body}"
    );
    let (_, rejected) = m.get("/v2/pki/rejected/certs").await;
    for cert in rejected.as_array().unwrap() {
        let t = cert["thumbprint"].as_str().unwrap();
        let (status, body) = m
            .post(&format!("/v2/pki/rejected/certs/{t}/approve"), &Value::Null)
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

async fn run_against(peer: Peer, name: &str) {
    let broker = Mosquitto::start().await;
    let m = Module::start(name, Some(&broker.url())).await;
    let rpc = RpcClient::connect(broker.port).await;
    exercise(&peer, &m, rpc, &connection_none(&peer.url)).await;

    trust_peer(&m, &peer).await;
    let rpc = RpcClient::connect(broker.port).await;
    exercise(
        &peer,
        &m,
        rpc,
        &connection_secure(&peer.url, Some(("user1", "password"))),
    )
    .await;
    let rpc = RpcClient::connect(broker.port).await;
    exercise(&peer, &m, rpc, &connection_secure(&peer.url, None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncua_server() {
    run_against(Peer::asyncua().await, "asyncua").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_opcua_server() {
    run_against(Peer::node_opcua().await, "node-opcua").await;
}

/// Our simulator served to a client nobody here wrote: Python asyncua browses a whole tree
/// (this needs the view-timestamp fix in vendor/PATCHES.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncua_client_browses_plc_sim() {
    let plc = plc_sim(false, Some((2, 5))).await;
    let python =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/.venv/bin/python");
    assert!(
        python.exists(),
        "asyncua is not installed: run scripts/install-peers.sh"
    );
    let out = tokio::process::Command::new(python)
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/peers/asyncua_browse_bench.py"),
        )
        .args([
            "--url",
            &plc.endpoint_url(),
            "--root",
            "nsu=urn:iiot:plc-sim;s=Tree",
        ])
        .output()
        .await
        .expect("run asyncua client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json line");
    // Tree + 5 folders + 25 leaves.
    assert_eq!(v["nodes"], 31, "{v}");
    plc.shutdown().await;
}
