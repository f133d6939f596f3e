//! Limits on what plc-sim serves: a connection flood is refused with a clear OPC UA error
//! beyond the cap, and a normal client is still served.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
