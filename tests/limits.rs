//! Limits on what plc-sim serves: a connection flood is refused with a clear OPC UA error
//! beyond the cap, and a normal client is still served.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "hostile/uatcp.rs"]
#[allow(dead_code)]
mod uatcp;

use std::time::Duration;

use common::*;
use opcua::types::{
    ApplicationDescription, ByteString, CreateSessionRequest, DateTime, NodeId, ObjectId,
    RequestHeader,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uatcp::{encode, RawChannel, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_flood_is_refused_beyond_the_cap_and_clients_are_still_served() {
    let plc = iiot_plc_sim::PlcSim::start(iiot_plc_sim::PlcSimConfig {
        port: 0,
        pki_dir: temp_dir("flood-pki"),
        max_connections: 20,
        ..Default::default()
    })
    .await
    .expect("plc-sim");
    let addr = format!("127.0.0.1:{}", plc.port());

    // Hold 20 idle connections (no Hello): they fill the cap.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Every further connection is told Bad_TcpServerTooBusy and closed.
    let mut refused = 0;
    for _ in 0..30 {
        let mut s = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let mut buf = [0u8; 12];
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf)).await;
        if let Ok(Ok(_)) = read {
            assert_eq!(&buf[..4], b"ERRF");
            let status = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
            assert_eq!(status, 0x807D_0000, "Bad_TcpServerTooBusy");
            refused += 1;
        }
    }
    assert_eq!(refused, 30);

    // Once the flood goes away, a normal client is served.
    for mut s in held.drain(..) {
        let _ = s.shutdown().await;
    }
    drop(held);
    let m = Module::start("flood", None).await;
    let conn = connection_none(&plc.endpoint_url());
    let mut ok = false;
    for _ in 0..50 {
        let (status, body) = m
            .post(
                "/v2/read",
                &envelope(&conn, json!({ "nodeId": "nsu=urn:iiot:plc-sim;s=Fast/0" })),
            )
            .await;
        if status == 200 && body.get("errorInfo").is_none() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ok, "plc-sim did not serve a normal client after the flood");
    plc.shutdown().await;
}

/// Creates a session on a fresh secure channel and never activates it.
async fn create_session_only(url: &str, n: u32) -> Reply {
    let request = CreateSessionRequest {
        request_header: RequestHeader::new(&NodeId::null(), &DateTime::now(), n),
        client_description: ApplicationDescription {
            application_uri: format!("urn:flood:{n}").into(),
            ..Default::default()
        },
        endpoint_url: url.into(),
        session_name: format!("flood {n}").into(),
        client_nonce: ByteString::null(),
        requested_session_timeout: 60_000.0,
        ..Default::default()
    };
    let mut body = encode(&NodeId::from(
        ObjectId::CreateSessionRequest_Encoding_DefaultBinary,
    ));
    body.extend(encode(&request));
    RawChannel::open(url).await.send(&body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_never_activated_cannot_lock_out_real_clients() {
    let plc = iiot_plc_sim::PlcSim::start(iiot_plc_sim::PlcSimConfig {
        port: 0,
        pki_dir: temp_dir("unactivated-pki"),
        max_sessions: 10,
        max_unactivated_sessions: 3,
        ..Default::default()
    })
    .await
    .expect("plc-sim");
    let url = plc.endpoint_url();
    // Twice as many never-activated sessions as there are session slots: each is accepted
    // because the oldest unactivated one is closed, so they never fill max_sessions.
    for n in 0..20 {
        match create_session_only(&url, n).await {
            Reply::Message(_, status) => assert!(status.is_good(), "session {n}: {status}"),
            other => panic!("unexpected reply {other:?}"),
        }
    }
    // A client that activates its session is still served.
    let m = Module::start("unactivated", None).await;
    let (status, body) = m
        .post(
            "/v2/read",
            &envelope(
                &connection_none(&url),
                json!({ "nodeId": "nsu=urn:iiot:plc-sim;s=Fast/0" }),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errorInfo").is_none(), "{body}");
    plc.shutdown().await;
}
