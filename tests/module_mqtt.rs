//! The module's MQTT v5 RPC through a real broker (Mosquitto), and discovery with its events.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_over_mqtt_rpc() {
    let broker = Mosquitto::start().await;
    let plc = plc_sim(false, None).await;
    let m = Module::start("mqtt", Some(&broker.url())).await;
    let mut rpc = RpcClient::connect(broker.port).await;
    let conn = connection_none(&plc.endpoint_url());
    let root = m.publisher_id.clone();

    // The module subscribes after connecting; retry the first call until it answers.
    let read = envelope(&conn, json!({ "nodeId": "nsu=urn:iiot:plc-sim;s=Fast/0" }));
    let mut first = None;
    for _ in 0..20 {
        let call = tokio::time::timeout(
            Duration::from_secs(2),
            rpc.call(&root, "ValueRead_V2", &read),
        );
        if let Ok(answer) = call.await {
            first = Some(answer);
            break;
        }
    }
    let (status, body) = first.expect("module answered over MQTT");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dataType"], "UInt64", "{body}");

    let (status, body) = rpc
        .call(
            &root,
            "ValueWrite",
            &envelope(
                &conn,
                json!({
            "nodeId": "nsu=urn:iiot:plc-sim;s=Scalar/Double", "value": 6.25 }),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = rpc
        .call(
            &root,
            "ValueRead_V1",
            &envelope(
                &conn,
                json!({ "nodeId": "nsu=urn:iiot:plc-sim;s=Scalar/Double" }),
            ),
        )
        .await;
    assert_eq!(body["value"], 6.25, "{body}");
    let (status, body) = rpc
        .call(
            &root,
            "Browse_V2",
            &envelope(&conn, json!({ "nodeId": "nsu=urn:iiot:plc-sim;s=Methods" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["references"].as_array().unwrap().len() >= 2, "{body}");
    let (_, body) = rpc
        .call(
            &root,
            "MethodCall_V2",
            &envelope(
                &conn,
                json!({
            "methodId": "nsu=urn:iiot:plc-sim;s=Methods/Add",
            "arguments": [{ "value": 20 }, { "value": 22 }] }),
            ),
        )
        .await;
    assert_eq!(body["results"][0]["value"], 42, "{body}");

    // Errors carry their status and a problem body; unknown methods are refused.
    let (status, body) = rpc
        .call(
            &root,
            "ValueRead_V2",
            &envelope(&conn, json!({ "nodeId": "bad id" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["symbolicId"], "BadNodeIdInvalid", "{body}");
    let (status, _) = rpc.call(&root, "NoSuchMethod", &json!({})).await;
    assert_eq!(status, 501);

    // Many callers in parallel are answered and correlated.
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(RpcClient::connect(broker.port).await);
    }
    let calls = clients.iter_mut().map(|c| {
        let read = read.clone();
        let root = root.clone();
        async move {
            let mut out = Vec::new();
            for _ in 0..10 {
                out.push(c.call(&root, "ValueRead", &read).await.0);
            }
            out
        }
    });
    for statuses in futures::future::join_all(calls).await {
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    plc.shutdown().await;
}

/// Collects what the module publishes on `{root}/events`.
async fn watch_events(
    port: u16,
    root: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<(String, Value)> {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let (client, mut event_loop) = AsyncClient::new(
        MqttOptions::new(format!("ev-{}", free_port()), "127.0.0.1", port),
        64,
    );
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    let topic = format!("{root}/events");
    tokio::spawn(async move {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.subscribe(topic.clone(), QoS::AtLeastOnce).await;
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(t) = ready_tx.take() {
                        let _ = t.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let schema = p
                        .properties
                        .unwrap_or_default()
                        .user_properties
                        .into_iter()
                        .find(|(k, _)| k == "$$MessageSchema")
                        .map(|(_, v)| v)
                        .unwrap_or_default();
                    let body = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    if tx.send((schema, body)).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    ready_rx.await.expect("subscribed to events");
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_servers_and_reports_events() {
    let broker = Mosquitto::start().await;
    let plc = plc_sim(false, None).await;
    let m = Module::start("discovery", Some(&broker.url())).await;
    let url = plc.endpoint_url();

    // FindServer answers directly with the application and its endpoints.
    let (status, body) = m
        .post("/v2/discovery/findserver", &json!({ "discoveryUrl": url }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["application"]["applicationUri"],
        iiot_plc_sim::application_uri("127.0.0.1"),
        "{body}"
    );
    let endpoints = body["endpoints"].as_array().unwrap();
    assert!(endpoints.len() >= 5, "{body}");
    assert!(endpoints
        .iter()
        .any(|e| e["endpoint"]["securityMode"] == "SignAndEncrypt"));
    let (status, body) = m
        .post(
            "/v2/discovery/findserver",
            &json!({ "discoveryUrl": url, "securityMode": "None" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["endpoints"].as_array().unwrap().len(), 1, "{body}");

    // A scan of the one address and port range we name finds the simulator, not the
    // non-OPC-UA listener next to it.
    let mut events = watch_events(broker.port, &m.publisher_id).await;
    let decoy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let decoy_port = decoy.local_addr().unwrap().port();
    let (lo, hi) = (plc.port().min(decoy_port), plc.port().max(decoy_port));
    let (status, body) = m
        .post(
            "/v2/discovery",
            &json!({
                "id": "scan-1",
                "discovery": "Scan",
                "configuration": {
                    "addressRangesToScan": "127.0.0.1/32",
                    "portRangesToScan": format!("{lo}-{}", (lo + 20).max(hi)),
                    "portProbeTimeout": "00:00:02"
                }
            }),
        )
        .await;
    assert_eq!((status, &body), (200, &json!(true)));
    let mut found_plc = false;
    let mut finished = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !finished {
        let (schema, body) = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("discovery finished in time")
            .expect("events");
        if schema.contains("discovery-event") {
            if let Some(reg) = body.get("Registration") {
                let ep = reg["endpointUrl"].as_str().unwrap_or_default();
                found_plc |= ep.contains(&plc.port().to_string());
                assert!(
                    !ep.contains(&format!(":{decoy_port}")),
                    "decoy reported: {body}"
                );
            }
        } else if body["eventType"] == "Finished" {
            assert_eq!(body["requestId"], "scan-1");
            finished = true;
        }
    }
    assert!(found_plc, "the simulator was not discovered");
    drop(decoy);

    // Register runs the same way for one discovery URL.
    let (status, _) = m
        .post(
            "/v2/discovery/register",
            &json!({ "discoveryUrl": url, "id": "reg-1" }),
        )
        .await;
    assert_eq!(status, 200);

    // Bad discovery requests.
    let (status, body) = m
        .post("/v2/discovery", &json!({ "discovery": "Scan", "configuration": { "addressRangesToScan": "10.0.0.0/8", "portRangesToScan": "1-65535" } }))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = m
        .post("/v2/discovery", &json!({ "discovery": "Network" }))
        .await;
    assert_eq!(
        (status, body["symbolicId"].as_str()),
        (400, Some("BadNothingToDo")),
        "{body}"
    );
    let (status, _) = m
        .post("/v2/discovery/cancel", &json!({ "id": "no-such-run" }))
        .await;
    assert_eq!(status, 404);
    let (status, body) = m
        .post(
            "/v2/discovery/findserver",
            &json!({ "discoveryUrl": format!("opc.tcp://127.0.0.1:{}", free_port()) }),
        )
        .await;
    assert_ne!(status, 200, "{body}");
    plc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_can_be_cancelled() {
    let broker = Mosquitto::start().await;
    let m = Module::start("cancel", Some(&broker.url())).await;
    let mut events = watch_events(broker.port, &m.publisher_id).await;
    // 127.0.0.0/24 over 200 ports with low concurrency takes long enough to cancel.
    let (status, _) = m
        .post("/v2/discovery", &json!({
            "id": "long", "discovery": "Scan",
            "configuration": { "addressRangesToScan": "127.0.0.1-127.0.0.200", "portRangesToScan": "20000-20200",
                               "maxPortProbes": 4, "portProbeTimeout": "00:00:01" } }))
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = m
        .post("/v2/discovery/cancel", &json!({ "id": "long" }))
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("a Cancelled event")
            .expect("events");
        if body["eventType"] == "Cancelled" {
            break;
        }
        assert_ne!(
            body["eventType"], "Finished",
            "the run finished instead of stopping"
        );
    }
}
