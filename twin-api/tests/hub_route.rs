//! The hub's route to the broker (`--hub-route-topic`): device messages published on the
//! twin API's broker — on the topic their `topic` property names, or the hub's own — with
//! content type and properties, each once; after a restart the route resumes where the
//! broker's acknowledgements left it (nothing again, nothing missed).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::Path;
use std::time::Duration;

use harness::{TwinApi, ADMIN};
use iiot_testkit::{temp_dir, Mosquitto};
use iiot_twin_api::hub::route::TopicTemplate;
use iiot_twin_api::hub::sas;
use reqwest::{Method, StatusCode};
use rumqttc::v5::mqttbytes::v5::Packet as Packet5;
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::v5::{AsyncClient as Client5, Event as Event5, MqttOptions as Options5};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

const HUB: &str = "localhost";

/// What the broker's subscriber got: topic, content type, user properties, body.
type Routed = (String, Option<String>, Vec<(String, String)>, String);

async fn subscriber(port: u16) -> mpsc::UnboundedReceiver<Routed> {
    let mut o = Options5::new("route-reader", "127.0.0.1", port);
    o.set_max_packet_size(Some(1 << 20));
    let (client, mut ev) = Client5::new(o, 100);
    client.subscribe("#", QoS5::AtLeastOnce).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed_tx);
    tokio::spawn(async move {
        let _client = client;
        while let Ok(e) = ev.poll().await {
            match e {
                Event5::Incoming(Packet5::SubAck(_)) => {
                    if let Some(t) = subscribed_tx.take() {
                        let _ = t.send(());
                    }
                }
                Event5::Incoming(Packet5::Publish(p)) => {
                    let props = p.properties.unwrap_or_default();
                    let _ = tx.send((
                        String::from_utf8_lossy(&p.topic).into_owned(),
                        props.content_type,
                        props.user_properties,
                        String::from_utf8_lossy(&p.payload).into_owned(),
                    ));
                }
                _ => {}
            }
        }
    });
    subscribed.await.unwrap();
    rx
}

/// Connects device `id` and sends each `(property bag, body)` with QoS 1, waiting for every
/// PUBACK (the hub stored them).
async fn send(api: &TwinApi, data: &Path, id: &str, key: &str, messages: &[(&str, &str)]) {
    let expiry = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let token = sas::sign(&format!("{HUB}/devices/{id}"), key, expiry, None).unwrap();
    let mut o = MqttOptions::new(id, HUB, api.device_addr.unwrap().port());
    o.set_credentials(format!("{HUB}/{id}/?api-version=2021-04-12"), token);
    o.set_transport(harness::hub_tls(data));
    let (c, mut ev) = AsyncClient::new(o, 10);
    for (bag, body) in messages {
        c.publish(
            format!("devices/{id}/messages/events/{bag}"),
            QoS::AtLeastOnce,
            false,
            body.to_string(),
        )
        .await
        .unwrap();
    }
    let mut acked = 0;
    while acked < messages.len() {
        match tokio::time::timeout(Duration::from_secs(10), ev.poll())
            .await
            .expect("PUBACKs")
            .unwrap()
        {
            Event::Incoming(Packet::PubAck(_)) => acked += 1,
            _ => continue,
        }
    }
    c.disconnect().await.unwrap();
}

async fn routed(rx: &mut mpsc::UnboundedReceiver<Routed>) -> Routed {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a routed message")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_messages_reach_broker_topics_once_across_restarts() {
    let dir = temp_dir("hub-route");
    let data = dir.join("data");
    let broker = Mosquitto::start().await;
    let url = broker.url();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let start = || {
        TwinApi::start(&url, &data, |c| {
            c.hub.hostname = HUB.into();
            c.hub.device_port = Some(0);
            c.hub.route_topic = Some(TopicTemplate::parse("{topic}").unwrap());
        })
    };
    let mut rx = subscriber(port).await;
    let api = start().await;
    let (s, _, d) = api
        .send(
            Method::PUT,
            "/devices/r1",
            Some(ADMIN),
            &[],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let key = d["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_string();
    send(
        &api,
        &data,
        "r1",
        &key,
        &[
            (
                "topic=r1%2Fline1%2Fdata&unit=C&%24.ct=application%2Fjson",
                r#"{"t":21.5}"#,
            ),
            ("", "plain"),
            ("topic=bad%2F%23", "wildcard"),
            ("topic=r1%2Fstate", "forged state"),
            ("topic=other%2Fmessages", "elsewhere"),
        ],
    )
    .await;
    let (topic, ct, props, body) = routed(&mut rx).await;
    assert_eq!(topic, "r1/line1/data");
    assert_eq!(ct.as_deref(), Some("application/json"));
    assert_eq!(body, r#"{"t":21.5}"#);
    for want in [("unit", "C"), ("iothub-connection-device-id", "r1")] {
        assert!(
            props.iter().any(|(k, v)| k == want.0 && v == want.1),
            "{want:?} in {props:?}"
        );
    }
    let (topic, _, _, body) = routed(&mut rx).await;
    assert_eq!(
        (topic.as_str(), body.as_str()),
        ("devices/r1/messages/events", "plain")
    );
    // A wildcard, another module's state topic, another device's namespace: the hub's own.
    for want in ["wildcard", "forged state", "elsewhere"] {
        let (topic, _, _, body) = routed(&mut rx).await;
        assert_eq!(
            (topic.as_str(), body.as_str()),
            ("devices/r1/messages/events", want)
        );
    }
    api.shutdown().await;

    // Restarted: only what is new is routed.
    let api = start().await;
    send(&api, &data, "r1", &key, &[("topic=r1%2Fafter", "again")]).await;
    let (topic, _, _, body) = routed(&mut rx).await;
    assert_eq!((topic.as_str(), body.as_str()), ("r1/after", "again"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(rx.try_recv().is_err(), "a message routed twice");
    api.shutdown().await;
}
