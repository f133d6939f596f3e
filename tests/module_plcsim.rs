//! The module against the simulated PLC: every twin operation over HTTP, with security None
//! and with Basic256Sha256 SignAndEncrypt (trust established through the PKI API), and the
//! bad inputs a user will send.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};

const NS: &str = "urn:iiot:plc-sim";

fn node(id: &str) -> String {
    format!("nsu={NS};s={id}")
}

async fn read(m: &Module, conn: &Value, id: &str) -> Value {
    let (status, body) = m
        .post("/v2/read", &envelope(conn, json!({ "nodeId": node(id) })))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// All operations on one connection, shared by the None and the secure test.
async fn exercise_operations(m: &Module, conn: &Value) {
    // A changing value.
    let a = read(m, conn, "Fast/0").await;
    assert_eq!(a["dataType"], "UInt64", "{a}");
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    let b = read(m, conn, "Fast/0").await;
    assert!(b["value"].as_u64() > a["value"].as_u64(), "{a} then {b}");
    assert!(b["sourceTimestamp"].is_string());

    // Writes coerced to the node's type, read back.
    for (id, value) in [
        ("Scalar/Int32", json!(-123)),
        ("Scalar/Byte", json!(200)),
        ("Scalar/Double", json!(2.5)),
        ("Scalar/String", json!("hello")),
        ("Scalar/Boolean", json!(true)),
        ("Scalar/UInt64", json!(18446744073709551615u64)),
        ("Scalar/DateTime", json!("2024-05-06T07:08:09Z")),
        ("Scalar/Guid", json!("72962b91-fa75-4ae6-8d28-b404dc7daf63")),
        ("Scalar/ByteString", json!("AQID")),
        ("Array/Int32", json!([4, 5, 6, 7])),
    ] {
        let (status, body) = m
            .post(
                "/v2/write",
                &envelope(conn, json!({ "nodeId": node(id), "value": value })),
            )
            .await;
        assert_eq!(status, 200, "{id}: {body}");
        assert!(body.get("errorInfo").is_none(), "{id}: {body}");
        let back = read(m, conn, id).await;
        let got = &back["value"];
        if id == "Scalar/DateTime" {
            assert!(
                got.as_str()
                    .unwrap_or("")
                    .starts_with("2024-05-06T07:08:09"),
                "{back}"
            );
        } else {
            assert_eq!(got, &value, "{id}: {back}");
        }
    }
    // An explicit dataType is honoured.
    let (status, body) = m
        .post(
            "/v2/write",
            &envelope(
                conn,
                json!({ "nodeId": node("Scalar/Int16"), "value": "12", "dataType": "Int16" }),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(read(m, conn, "Scalar/Int16").await["value"], 12);

    // Attribute read and write.
    let (status, body) = m
        .post(
            "/v2/read/attributes",
            &envelope(
                conn,
                json!({ "attributes": [
                    { "nodeId": node("Scalar/Int32"), "attribute": "DisplayName" },
                    { "nodeId": node("Scalar/Int32"), "attribute": "DataType" },
                    { "nodeId": node("Scalar/Int32"), "attribute": "Value" },
                ]}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["value"], "Scalar/Int32", "{body}");
    assert_eq!(body["results"][1]["value"], "i=6", "{body}");
    assert_eq!(body["results"][2]["value"], -123, "{body}");
    let (status, body) = m
        .post(
            "/v2/write/attributes",
            &envelope(
                conn,
                json!({ "attributes": [
                    { "nodeId": node("Scalar/Int32"), "attribute": "Value", "value": 77 },
                ]}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["results"][0].get("errorInfo").is_none(), "{body}");
    assert_eq!(read(m, conn, "Scalar/Int32").await["value"], 77);

    // Browse: Objects holds the simulator's folders.
    let (status, body) = m
        .post(
            "/v2/browse/first",
            &envelope(conn, json!({ "nodeId": "i=85" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["references"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["target"]["displayName"].as_str())
        .collect();
    for want in ["Fast", "Slow", "Scalar", "Array", "Methods"] {
        assert!(names.contains(&want), "{want} missing in {names:?}");
    }
    assert_eq!(body["node"]["nodeClass"], "Object", "{body}");

    // Paging with BrowseNext until the folder is exhausted.
    let (status, first) = m
        .post(
            "/v2/browse/first",
            &envelope(
                conn,
                json!({
            "nodeId": node("Scalar"), "maxReferencesToReturn": 5, "readVariableValues": true }),
            ),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let mut seen = first["references"].as_array().unwrap().len();
    assert_eq!(seen, 5, "{first}");
    assert!(
        first["references"][0]["target"].get("value").is_some(),
        "{first}"
    );
    let mut token = first["continuationToken"].as_str().map(str::to_string);
    while let Some(t) = token {
        let (status, next) = m
            .post(
                "/v2/browse/next",
                &envelope(conn, json!({ "continuationToken": t })),
            )
            .await;
        assert_eq!(status, 200, "{next}");
        seen += next["references"].as_array().unwrap().len();
        token = next["continuationToken"].as_str().map(str::to_string);
    }
    assert!(seen >= 21, "only {seen} scalar nodes browsed");

    // Browse path from Objects.
    let (status, body) = m
        .post(
            "/v2/browse/path",
            &envelope(
                conn,
                json!({
            "nodeId": "i=85",
            "browsePaths": [[format!("{NS}#Scalar"), format!("{NS}#Double")]],
            "readVariableValues": true }),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let target = &body["targets"][0]["target"];
    assert_eq!(target["nodeId"], format!("{NS}#s=Scalar/Double"), "{body}");
    assert_eq!(target["value"], 2.5, "{body}");

    // Methods: metadata and calls.
    let (status, body) = m
        .post(
            "/v2/call/$metadata",
            &envelope(conn, json!({ "methodId": node("Methods/Add") })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["objectId"], format!("{NS}#s=Methods"), "{body}");
    assert_eq!(
        body["inputArguments"].as_array().unwrap().len(),
        2,
        "{body}"
    );
    assert_eq!(body["inputArguments"][0]["type"]["nodeId"], "i=6", "{body}");
    assert_eq!(
        body["outputArguments"].as_array().unwrap().len(),
        1,
        "{body}"
    );
    let (status, body) = m
        .post(
            "/v2/call",
            &envelope(
                conn,
                json!({
            "methodId": node("Methods/Add"),
            "arguments": [ { "value": 2 }, { "value": 3 } ] }),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["value"], 5, "{body}");
    assert_eq!(body["results"][0]["dataType"], "Int32", "{body}");
    let (status, body) = m
        .post(
            "/v2/call",
            &envelope(
                conn,
                json!({
            "methodId": node("Methods/Fail"), "objectId": node("Methods") }),
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

    // Capabilities, certificate and a connection test.
    let (status, body) = m
        .post("/v2/capabilities", &envelope(conn, Value::Null))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["operationLimits"]["maxNodesPerRead"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{body}"
    );
    let (status, body) = m.post("/v2/test", &envelope(conn, json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errorInfo").is_none(), "{body}");
    let (status, body) = m.post("/v2/certificate", &conn["endpoint"]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["chain"][0]["thumbprint"].as_str().unwrap_or("").len(),
        40,
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_without_security() {
    let plc = plc_sim(false, None).await;
    let m = Module::start("none", None).await;
    exercise_operations(&m, &connection_none(&plc.endpoint_url())).await;
    plc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_signed_and_encrypted_after_approving_the_server() {
    // The simulator trusts the module's certificate; the module must be told to trust the
    // simulator's, through its PKI API.
    let plc = plc_sim(true, None).await;
    let m = Module::start("secure", None).await;
    let conn = connection_secure(&plc.endpoint_url(), Some(("user1", "password")));

    let (status, body) = m
        .post(
            "/v2/read",
            &envelope(&conn, json!({ "nodeId": node("Fast/0") })),
        )
        .await;
    assert_ne!(status, 200, "an untrusted server must be refused: {body}");
    assert_eq!(body["symbolicId"], "BadCertificateUntrusted", "{body}");

    let (status, rejected) = m.get("/v2/pki/rejected/certs").await;
    assert_eq!(status, 200, "{rejected}");
    let thumbprint = rejected[0]["thumbprint"]
        .as_str()
        .expect("rejected cert")
        .to_string();
    let expected = {
        use std::fmt::Write;
        let der = plc.server_certificate_der();
        let digest = sha1_hex(&der);
        let mut s = String::new();
        write!(s, "{digest}").unwrap();
        s
    };
    assert_eq!(thumbprint, expected);
    let (status, body) = m
        .post(
            &format!("/v2/pki/rejected/certs/{thumbprint}/approve"),
            &Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, trusted) = m.get("/v2/pki/trusted/certs").await;
    assert!(trusted
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["thumbprint"] == thumbprint.as_str()));

    exercise_operations(&m, &conn).await;

    // A wrong password is refused, and says so.
    let bad = connection_secure(&plc.endpoint_url(), Some(("user1", "wrong")));
    let (status, body) = m
        .post(
            "/v2/read",
            &envelope(&bad, json!({ "nodeId": node("Fast/0") })),
        )
        .await;
    assert_ne!(status, 200, "{body}");
    assert!(
        body["symbolicId"].as_str().unwrap_or("").contains("Bad"),
        "{body}"
    );
    plc.shutdown().await;
}

fn sha1_hex(data: &[u8]) -> String {
    // The same SHA-1 thumbprint the module reports, computed with a different tool.
    let out = std::process::Command::new("sha1sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .expect("sha1sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_uppercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors() {
    let plc = plc_sim(false, None).await;
    let m = Module::start("bad", None).await;
    let conn = connection_none(&plc.endpoint_url());

    // Unknown node: the server's status in errorInfo.
    let (status, body) = m
        .post(
            "/v2/read",
            &envelope(&conn, json!({ "nodeId": node("Nope/1") })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["errorInfo"]["symbolicId"], "BadNodeIdUnknown",
        "{body}"
    );

    // Malformed node id.
    let (status, body) = m
        .post(
            "/v2/read",
            &envelope(&conn, json!({ "nodeId": "ns=x;q=1" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["symbolicId"], "BadNodeIdInvalid", "{body}");

    // Wrong type on write, and an array to a scalar.
    for value in [json!("not a number"), json!([1, 2]), json!(1e40)] {
        let (status, body) = m
            .post(
                "/v2/write",
                &envelope(
                    &conn,
                    json!({ "nodeId": node("Scalar/Int32"), "value": value }),
                ),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["symbolicId"], "BadTypeMismatch", "{body}");
    }

    // Wrong number of method arguments: the server's own verdict.
    let (status, body) = m
        .post(
            "/v2/call",
            &envelope(
                &conn,
                json!({
            "methodId": node("Methods/Add"), "arguments": [ { "value": 1 } ] }),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["errorInfo"]["symbolicId"], "BadArgumentsMissing",
        "{body}"
    );
    let (_, body) = m
        .post(
            "/v2/call",
            &envelope(
                &conn,
                json!({
            "methodId": node("Methods/Add"),
            "arguments": [ { "value": 1 }, { "value": 2 }, { "value": 3 } ] }),
            ),
        )
        .await;
    assert_eq!(
        body["errorInfo"]["symbolicId"], "BadTooManyArguments",
        "{body}"
    );

    // Unreachable endpoint: a closed port answers at once.
    let closed = format!("opc.tcp://127.0.0.1:{}/", free_port());
    let (status, body) = m
        .post(
            "/v2/read",
            &envelope(&connection_none(&closed), json!({ "nodeId": "i=2258" })),
        )
        .await;
    assert!(
        status == 503 || status == 502 || status == 504,
        "{status} {body}"
    );
    assert!(
        body["symbolicId"].as_str().unwrap_or("").starts_with("Bad"),
        "{body}"
    );

    // Not an OPC UA URL, missing connection, not JSON.
    let (status, body) = m
        .post(
            "/v2/read",
            &envelope(
                &connection_none("http://example"),
                json!({ "nodeId": "i=1" }),
            ),
        )
        .await;
    assert_eq!(
        (status, body["symbolicId"].as_str()),
        (400, Some("BadTcpEndpointUrlInvalid")),
        "{body}"
    );
    let (status, body) = m.post("/v2/read", &json!({ "request": {} })).await;
    assert_eq!(
        (status, body["symbolicId"].as_str()),
        (400, Some("BadDecodingError")),
        "{body}"
    );
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{}/v2/read", m.base))
        .header("Authorization", format!("ApiKey {API_KEY}"))
        .body("{ not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    // Missing and wrong API key.
    let res = client
        .post(format!("{}/v2/read", m.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let res = client
        .post(format!("{}/v2/read", m.base))
        .header("Authorization", "ApiKey wrong")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let res = client
        .get(format!("{}/v2/pki/own/certs", m.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401, "PKI routes need the key too");
    let res = client
        .get(format!("{}/healthz", m.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "health needs no key");

    // Oversized body.
    let huge = "x".repeat(5 * 1024 * 1024);
    let res = client
        .post(format!("{}/v2/read", m.base))
        .header("Authorization", format!("ApiKey {API_KEY}"))
        .header("Content-Type", "application/json")
        .body(format!("\"{huge}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 413);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["symbolicId"], "BadRequestTooLarge", "{body}");

    // The module survived all of it.
    let ok = m
        .post(
            "/v2/read",
            &envelope(&conn, json!({ "nodeId": node("Fast/0") })),
        )
        .await;
    assert_eq!(ok.0, 200);
    plc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_serves_many_concurrent_callers() {
    let plc = plc_sim(false, None).await;
    let m = Module::start("pool", None).await;
    let conn = connection_none(&plc.endpoint_url());
    let calls = (0..64).map(|_| {
        let body = envelope(&conn, json!({ "nodeId": node("Fast/1") }));
        let m = &m;
        async move { m.post("/v2/read", &body).await }
    });
    for (status, body) in futures::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
    }
    // All of them shared one connection (one session) to the server.
    assert_eq!(established_connections_to(plc.port()), 1);
    plc.shutdown().await;
}

/// Established client-side TCP connections to a local port, read from /proc/net/tcp.
fn established_connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 3
                && cols[3] == "01"
                && cols[2].rsplit(':').next() == Some(&format!("{port:04X}"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_stream_walks_a_whole_tree_in_one_call() {
    let plc = plc_sim(false, Some((3, 4))).await;
    let m = Module::start("stream", None).await;
    let conn = connection_none(&plc.endpoint_url());
    let res = reqwest::Client::new()
        .post(format!("{}/v2/browse", m.base))
        .header("Authorization", format!("ApiKey {API_KEY}"))
        .json(&envelope(&conn, json!({ "nodeId": [node("Tree")] })))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let text = res.text().await.unwrap();
    let mut targets = std::collections::HashSet::new();
    for line in text.lines() {
        let chunk: Value = serde_json::from_str(line).unwrap();
        assert!(chunk.get("errorInfo").is_none(), "{chunk}");
        targets.insert(
            chunk["reference"]["target"]["nodeId"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // 4 folders, 16 sub-folders, 64 leaves.
    assert_eq!(targets.len(), 4 + 16 + 64, "{text}");
    assert!(targets.contains(&format!("{NS}#s=Tree/3/3/3")));

    // Without recursion only the start node's children come back.
    let res = reqwest::Client::new()
        .post(format!("{}/v2/browse", m.base))
        .header("Authorization", format!("ApiKey {API_KEY}"))
        .json(&envelope(
            &conn,
            json!({ "nodeId": [node("Tree")], "noRecurse": true }),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap().lines().count(), 4);
    plc.shutdown().await;
}
