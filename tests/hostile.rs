//! Hostile input from the network: one crafted ~20 KB message must not take down a process
//! built on async-opcua. Upstream 0.19.0 decoded a DiagnosticInfo nested 20,000 deep (and a
//! Variant -> DataValue -> Variant chain) by unbounded recursion, so the stack overflowed and
//! the process aborted; our vendored async-opcua-types stops at the decoding depth limit with
//! Bad_DecodingError (vendor/PATCHES.md). Both directions are covered: a hostile client against
//! plc-sim (an async-opcua server, in this process: an abort kills the test run) and a hostile
//! server against the module (the real binary, a crash fails every later request).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "hostile/uatcp.rs"]
mod uatcp;

use std::sync::atomic::Ordering;

use common::*;
use opcua::types::{ObjectId, StatusCode};
use serde_json::{json, Value};
use uatcp::{HostileServer, RawChannel, Reply};

const FAST_0: &str = "nsu=urn:iiot:plc-sim;s=Fast/0";

/// Reads `Fast/0` through the module and checks that a value came back.
async fn read_fast_0(m: &Module, conn: &Value) {
    let (status, body) = m
        .post("/v2/read", &envelope(conn, json!({ "nodeId": FAST_0 })))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errorInfo").is_none(), "{body}");
    assert_eq!(body["dataType"], "UInt64", "{body}");
}

/// The symbolic error of a module answer: problem+json on an HTTP error status, or the
/// `errorInfo` of a 200 answer.
fn error_of(status: u16, body: &Value) -> String {
    let id = if status == 200 {
        &body["errorInfo"]["symbolicId"]
    } else {
        &body["symbolicId"]
    };
    id.as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plc_sim_survives_deeply_nested_write() {
    let plc = plc_sim(false, None).await;
    let url = plc.endpoint_url();
    let target = plc.node_id("Fast/0");

    for (what, variant) in [
        (
            "DiagnosticInfo nested 20,000 deep",
            uatcp::deep_diagnostic_info_variant(),
        ),
        (
            "Variant/DataValue chain 20,000 deep",
            uatcp::data_value_cycle_variant(),
        ),
    ] {
        let channel = RawChannel::open(&url).await;
        let body = uatcp::hostile_write_request(target.clone(), &variant);
        assert!(body.len() > uatcp::DEPTH, "{what}: payload not spliced in");
        // Without the fix the server's decoder recursed until the stack overflowed and this
        // whole test process aborted here.
        let reply = channel.send(&body).await;
        match &reply {
            // async-opcua answers a request it cannot decode with a ServiceFault.
            Reply::Message(type_id, status) => {
                assert_eq!(
                    *type_id,
                    ObjectId::ServiceFault_Encoding_DefaultBinary,
                    "{what}: {reply:?}"
                );
                assert_eq!(*status, StatusCode::BadDecodingError, "{what}: {reply:?}");
            }
            Reply::Error(status) => {
                assert_eq!(*status, StatusCode::BadDecodingError, "{what}: {reply:?}")
            }
            // Dropping the connection is an acceptable answer too; the read below shows the
            // server is still there.
            Reply::Closed => {}
        }
        eprintln!("plc-sim answered the {what} with {reply:?}");
    }

    // Still alive and serving: a regular client reads through it.
    let m = Module::start("hostile-plc", None).await;
    read_fast_0(&m, &connection_none(&url)).await;
    plc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_survives_hostile_server() {
    let hostile = HostileServer::start().await;
    let plc = plc_sim(false, None).await;
    let m = Module::start("hostile", None).await;
    let good = connection_none(&plc.endpoint_url());

    // A session to a real server that must outlive the attack.
    read_fast_0(&m, &good).await;

    // FindServers answered with a 20,000-deep DiagnosticInfo in the response header.
    let (status, body) = m
        .post(
            "/v2/discovery/findserver",
            &json!({ "discoveryUrl": hostile.url }),
        )
        .await;
    let error = error_of(status, &body);
    assert_eq!(error, "BadDecodingError", "findserver: {status} {body}");
    eprintln!("findserver on the hostile server: {status} {error}");

    // A read through a connection to it: its GetEndpoints answer is just as deep.
    let (status, body) = m
        .post(
            "/v2/read",
            &envelope(&connection_none(&hostile.url), json!({ "nodeId": FAST_0 })),
        )
        .await;
    let error = error_of(status, &body);
    assert_eq!(error, "BadDecodingError", "read: {status} {body}");
    eprintln!("read on the hostile server: {status} {error}");

    let served = hostile.served.load(Ordering::SeqCst);
    assert!(served >= 2, "only {served} hostile responses were sent");

    // The module is alive and still serves its other connection.
    read_fast_0(&m, &good).await;
    plc.shutdown().await;
}
