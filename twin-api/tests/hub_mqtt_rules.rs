//! The device endpoint's refusals, driven with rumqttc (3.1.1 and 5) where the Azure SDK
//! cannot misbehave on purpose: expired and foreign tokens refused at CONNACK, another
//! identity's topics, an oversize message and a malformed property bag each end only the
//! offending session — a well-behaved device on the same hub keeps going and every message
//! it had acknowledged is stored.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use harness::{TwinApi, ADMIN};
use iiot_testkit::{temp_dir, Mosquitto};
use iiot_twin_api::hub::sas;
use reqwest::{Method, StatusCode};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS,
};
use serde_json::{json, Value};

const HUB: &str = "localhost";

/// Something a misbehaving client does on its session.
type Offence = Box<dyn Fn(&AsyncClient) -> futures::future::BoxFuture<'_, ()> + Send>;

fn in_an_hour() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() + 3600
}

/// A twin API whose hub's device endpoint listens on a free port, named [`HUB`].
async fn hub(broker: &str, data: &Path) -> TwinApi {
    TwinApi::start(broker, data, |c| {
        c.hub.hostname = HUB.into();
        c.hub.device_port = Some(0);
    })
    .await
}

async fn device(api: &TwinApi, id: &str) -> String {
    let (s, _, d) = api
        .send(
            Method::PUT,
            &format!("/devices/{id}"),
            Some(ADMIN),
            &[],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    d["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_string()
}

fn options(api: &TwinApi, data: &Path, id: &str, password: &str) -> MqttOptions {
    let addr = api.device_addr.unwrap();
    let mut o = MqttOptions::new(id, HUB, addr.port());
    o.set_credentials(format!("{HUB}/{id}/?api-version=2021-04-12"), password);
    o.set_transport(harness::hub_tls(data));
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(512 * 1024, 512 * 1024);
    o
}

/// Polls until CONNACK: `Ok` when accepted, the refusal code otherwise.
async fn connack(ev: &mut EventLoop) -> Result<(), ConnectReturnCode> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.poll())
            .await
            .expect("an answer to CONNECT")
        {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
            Ok(_) => {}
            Err(ConnectionError::ConnectionRefused(code)) => return Err(code),
            Err(e) => panic!("connect failed otherwise: {e}"),
        }
    }
}

/// Polls until the hub closes the connection (any error), within 10 s.
async fn closed(ev: &mut EventLoop) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while ev.poll().await.is_ok() {}
    })
    .await
    .expect("the hub closes the session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_and_topics_end_only_the_offender() {
    let dir = temp_dir("hub-mqtt-rules");
    let data = dir.join("data");
    let broker = Mosquitto::start().await;
    let api = hub(&broker.url(), &data).await;
    let k1 = device(&api, "d1").await;
    let k2 = device(&api, "d2").await;
    let token = |id: &str, key: &str, exp: i64| {
        sas::sign(&format!("{HUB}/devices/{id}"), key, exp, None).unwrap()
    };

    // Refused at CONNACK: expired, signed with another device's key, for another resource,
    // garbage, no password for a SAS device, an unknown device.
    for (id, password) in [
        ("d1", token("d1", &k1, 1_000)),
        ("d1", token("d1", &k2, in_an_hour())),
        ("d1", token("d2", &k1, in_an_hour())),
        ("d1", "SharedAccessSignature nonsense".to_string()),
        ("d1", String::new()),
        ("nobody", token("nobody", &k1, in_an_hour())),
    ] {
        let (_c, mut ev) = AsyncClient::new(options(&api, &data, id, &password), 10);
        let code = connack(&mut ev).await.unwrap_err();
        assert!(
            matches!(
                code,
                ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword
            ),
            "{id}: {code:?}"
        );
    }
    // A user name for another hub.
    let mut o = options(&api, &data, "d1", &token("d1", &k1, in_an_hour()));
    o.set_credentials(
        "other-hub/d1/?api-version=x",
        token("d1", &k1, in_an_hour()),
    );
    let (_c, mut ev) = AsyncClient::new(o, 10);
    assert_eq!(
        connack(&mut ev).await,
        Err(ConnectReturnCode::BadUserNamePassword)
    );

    // The well-behaved device: QoS 1 telemetry all along.
    let (good, mut good_ev) = AsyncClient::new(
        options(&api, &data, "d2", &token("d2", &k2, in_an_hour())),
        100,
    );
    connack(&mut good_ev).await.unwrap();
    let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = acked.clone();
    let good_loop = tokio::spawn(async move {
        loop {
            match good_ev.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(e) => panic!("the well-behaved device lost its session: {e}"),
            }
        }
    });
    let sender = tokio::spawn(async move {
        for i in 0..200 {
            good.publish(
                "devices/d2/messages/events/seq=".to_string() + &i.to_string(),
                QoS::AtLeastOnce,
                false,
                json!({"i": i}).to_string(),
            )
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        good
    });

    // Each offence closes the offender's session.
    let offences: Vec<(&str, Offence)> = vec![
        (
            "publishing as another device",
            Box::new(|c: &AsyncClient| {
                Box::pin(async move {
                    c.publish("devices/d2/messages/events/", QoS::AtLeastOnce, false, "x")
                        .await
                        .unwrap();
                })
            }),
        ),
        (
            "subscribing to another device's messages",
            Box::new(|c: &AsyncClient| {
                Box::pin(async move {
                    c.subscribe("devices/d2/messages/devicebound/#", QoS::AtLeastOnce)
                        .await
                        .unwrap();
                })
            }),
        ),
        (
            "a message over 256 KB",
            Box::new(|c: &AsyncClient| {
                Box::pin(async move {
                    c.publish(
                        "devices/d1/messages/events/",
                        QoS::AtLeastOnce,
                        false,
                        vec![b'x'; 256 * 1024 + 1],
                    )
                    .await
                    .unwrap();
                })
            }),
        ),
        (
            "a malformed property bag",
            Box::new(|c: &AsyncClient| {
                Box::pin(async move {
                    c.publish(
                        "devices/d1/messages/events/a=1&a=2",
                        QoS::AtLeastOnce,
                        false,
                        "x",
                    )
                    .await
                    .unwrap();
                })
            }),
        ),
        (
            "a topic of no IoT Hub meaning",
            Box::new(|c: &AsyncClient| {
                Box::pin(async move {
                    c.publish("plant/secrets", QoS::AtLeastOnce, false, "x")
                        .await
                        .unwrap();
                })
            }),
        ),
    ];
    for (what, offend) in &offences {
        let (c, mut ev) = AsyncClient::new(
            options(&api, &data, "d1", &token("d1", &k1, in_an_hour())),
            10,
        );
        connack(&mut ev).await.unwrap();
        offend(&c).await;
        tokio::time::timeout(Duration::from_secs(10), closed(&mut ev))
            .await
            .unwrap_or_else(|_| panic!("{what}: the session stays open"));
    }

    let good = sender.await.unwrap();
    // Every acknowledged message is stored (and none of the offenders').
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while acked.load(std::sync::atomic::Ordering::SeqCst) < 200 {
        assert!(tokio::time::Instant::now() < deadline, "PUBACKs missing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    good_loop.abort();
    drop(good);
    let mut res = api
        .http
        .get(format!("{}/events/v2/hub/messages?after=0", api.base))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let mut seen = Vec::new();
    while seen.len() < 200 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), res.chunk())
            .await
            .expect("stored messages")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) {
                let v: Value = serde_json::from_str(data.trim()).unwrap();
                assert_eq!(
                    v["systemProperties"]["iothub-connection-device-id"], "d2",
                    "{v}"
                );
                seen.push(
                    v["properties"]["seq"]
                        .as_str()
                        .unwrap()
                        .parse::<u32>()
                        .unwrap(),
                );
            }
        }
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, (0..200).collect::<Vec<_>>());
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt5_device_reads_and_reports_its_twin() {
    use rumqttc::v5::mqttbytes::v5::Packet as P5;
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::{AsyncClient as C5, Event as E5, MqttOptions as O5};

    let dir = temp_dir("hub-mqtt5");
    let data = dir.join("data");
    let broker = Mosquitto::start().await;
    let api = hub(&broker.url(), &data).await;
    let key = device(&api, "d5").await;
    let mut o = O5::new("d5", HUB, api.device_addr.unwrap().port());
    o.set_credentials(
        format!("{HUB}/d5/?api-version=2021-04-12"),
        sas::sign(&format!("{HUB}/devices/d5"), &key, in_an_hour(), None).unwrap(),
    );
    o.set_transport(harness::hub_tls(&data));
    let (c, mut ev) = C5::new(o, 10);
    c.subscribe("$iothub/twin/res/#", Q5::AtLeastOnce)
        .await
        .unwrap();
    c.publish(
        "$iothub/twin/PATCH/properties/reported/?$rid=1",
        Q5::AtLeastOnce,
        false,
        json!({"mode": "v5"}).to_string(),
    )
    .await
    .unwrap();
    c.publish("$iothub/twin/GET/?$rid=2", Q5::AtLeastOnce, false, " ")
        .await
        .unwrap();
    let mut answers = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while answers.len() < 2 {
            if let E5::Incoming(P5::Publish(p)) = ev.poll().await.unwrap() {
                answers.push((String::from_utf8_lossy(&p.topic).into_owned(), p.payload));
            }
        }
    })
    .await
    .expect("twin answers");
    assert!(
        answers[0].0.starts_with("$iothub/twin/res/204/?$rid=1"),
        "{answers:?}"
    );
    assert!(answers[0].0.contains("$version=2"), "{answers:?}");
    assert!(
        answers[1].0.starts_with("$iothub/twin/res/200/?$rid=2"),
        "{answers:?}"
    );
    let twin: Value = serde_json::from_slice(&answers[1].1).unwrap();
    assert_eq!(twin["reported"]["mode"], "v5", "{twin}");
    assert_eq!(twin["desired"]["$version"], 1, "{twin}");
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_subscriptions_survive_a_restart_and_tokens_end_sessions() {
    let dir = temp_dir("hub-mqtt-kept");
    let data = dir.join("data");
    let broker = Mosquitto::start().await;
    let url = broker.url();
    let start = || hub(&url, &data);
    let api = start().await;
    let key = device(&api, "dk").await;
    let token = |exp: i64| sas::sign(&format!("{HUB}/devices/dk"), &key, exp, None).unwrap();

    // Clean session 0: subscribe to methods once.
    let mut o = options(&api, &data, "dk", &token(in_an_hour()));
    o.set_clean_session(false);
    let (c, mut ev) = AsyncClient::new(o, 10);
    connack(&mut ev).await.unwrap();
    c.subscribe("$iothub/methods/POST/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = ev.poll().await.unwrap() {
            break;
        }
    }
    drop((c, ev));
    api.shutdown().await;

    // After a restart (the subscriptions live with the identity) the same client id without
    // subscribing again gets the call, and CONNACK says the session was kept.
    let api = start().await;
    let mut o = options(&api, &data, "dk", &token(in_an_hour()));
    o.set_clean_session(false);
    let (c, mut ev) = AsyncClient::new(o, 10);
    let present = loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.poll())
            .await
            .unwrap()
            .unwrap()
        {
            Event::Incoming(Packet::ConnAck(a)) => break a.session_present,
            _ => continue,
        }
    };
    assert!(present, "CONNACK session present");
    let responder = tokio::spawn(async move {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = ev.poll().await.unwrap() {
                let rid = p.topic.rsplit("$rid=").next().unwrap().to_string();
                c.publish(
                    format!("$iothub/methods/res/200/?$rid={rid}"),
                    QoS::AtLeastOnce,
                    false,
                    "{\"ok\":true}",
                )
                .await
                .unwrap();
                // Keep polling so the answer is sent.
                let _ = tokio::time::timeout(Duration::from_secs(1), ev.poll()).await;
                return;
            }
        }
    });
    let (s, _, answer) = api
        .send(
            Method::POST,
            "/twins/dk/methods",
            Some(ADMIN),
            &[],
            Some(
                json!({"methodName": "ping", "responseTimeoutInSeconds": 10})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    assert_eq!(answer["payload"], json!({"ok": true}));
    responder.await.unwrap();

    // A token about to expire: the session ends when it does.
    let soon = time::OffsetDateTime::now_utc().unix_timestamp() + 3;
    let (_c, mut ev) = AsyncClient::new(options(&api, &data, "dk", &token(soon)), 10);
    connack(&mut ev).await.unwrap();
    let began = std::time::Instant::now();
    closed(&mut ev).await;
    assert!(
        began.elapsed() >= Duration::from_secs(1),
        "closed too early"
    );
    api.shutdown().await;
}

/// A cloud-to-device message stays queued until the device's PUBACK: one received but not
/// acknowledged comes again on the next connection; once acknowledged, never again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_to_device_messages_wait_for_their_puback() {
    let dir = temp_dir("hub-mqtt-c2d");
    let data = dir.join("data");
    let broker = Mosquitto::start().await;
    let api = hub(&broker.url(), &data).await;
    let key = device(&api, "dc").await;
    let token = sas::sign(&format!("{HUB}/devices/dc"), &key, in_an_hour(), None).unwrap();
    let (s, _, b) = api
        .send(
            Method::POST,
            "/devices/dc/messages/deviceBound",
            Some(ADMIN),
            &[("iothub-messageid", "once")],
            Some(b"payload".to_vec()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Receives the message, with `pkid`, and acknowledges it only when told to.
    let receive = |ack: bool| {
        let mut o = options(&api, &data, "dc", &token);
        o.set_manual_acks(true);
        async move {
            let (c, mut ev) = AsyncClient::new(o, 10);
            connack(&mut ev).await.unwrap();
            c.subscribe("devices/dc/messages/devicebound/#", QoS::AtLeastOnce)
                .await
                .unwrap();
            let got = tokio::time::timeout(Duration::from_secs(3), async {
                loop {
                    if let Event::Incoming(Packet::Publish(p)) = ev.poll().await.unwrap() {
                        return p;
                    }
                }
            })
            .await
            .ok();
            if let (true, Some(p)) = (ack, &got) {
                c.ack(p).await.unwrap();
                // Poll until the PUBACK is out.
                let _ = tokio::time::timeout(Duration::from_millis(500), ev.poll()).await;
                let _ = tokio::time::timeout(Duration::from_millis(500), ev.poll()).await;
            }
            c.disconnect().await.unwrap();
            let _ = tokio::time::timeout(Duration::from_millis(500), ev.poll()).await;
            got
        }
    };
    let first = receive(false).await.expect("the queued message");
    assert_eq!(first.qos, QoS::AtLeastOnce);
    assert!(
        first.topic.starts_with("devices/dc/messages/devicebound/"),
        "{}",
        first.topic
    );
    assert!(first.topic.contains("%24.mid=once"), "{}", first.topic);
    let again = receive(true).await.expect("not acknowledged: sent again");
    assert_eq!(again.payload, first.payload);
    assert!(receive(false).await.is_none(), "acknowledged: not again");
    api.shutdown().await;
}
