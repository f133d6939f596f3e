//! Two hub replicas on one PostgreSQL database (issue 17, part 5): a device connected to one
//! is reached through the other — direct methods (a payload too large for one NOTIFY among
//! them), desired patches, take-over, disabling — both replicas' messages stream from either
//! in one order with none lost, a publisher connected to one is online in the other's
//! registry, and the connections of a replica that stopped beating are marked over.
//!
//! Devices are rumqttc clients (each trusts the CA of the replica it dials: the replicas
//! here make their own; behind one address they would share `--hub-cert`). Run against the
//! PostgreSQL on 127.0.0.1:5432 (trust auth), a fresh database dropped after.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use harness::{TwinApi, ADMIN};
use iiot_testkit::{temp_dir, Mosquitto};
use iiot_twin_api::hub::route::TopicTemplate;
use iiot_twin_api::hub::sas;
use reqwest::{Method, StatusCode};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const HUB: &str = "localhost";
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

struct Replica {
    api: TwinApi,
    data: PathBuf,
}

async fn replica(broker: &str, dir: &Path, name: &str, db: &str, kek: &Path) -> Replica {
    let data = dir.join(name);
    let (db, kek) = (db.to_string(), kek.to_path_buf());
    let api = TwinApi::start(broker, &data, move |c| {
        c.database_url = Some(db);
        c.hub.hostname = HUB.into();
        c.hub.device_port = Some(0);
        c.hub.kek_file = Some(kek);
        c.hub.route_topic = Some(TopicTemplate::parse("hub/{deviceId}").unwrap());
    })
    .await;
    Replica { api, data }
}

/// Creates an identity through `r` and returns its primary key.
async fn identity(r: &Replica, path: &str) -> String {
    let (s, _, d) = r
        .api
        .send(Method::PUT, path, Some(ADMIN), &[], Some(b"{}".to_vec()))
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    d["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A device (or `device/module`) connected to replica `r`, its publishes on a channel; the
/// event loop answers every direct method with the request's payload.
struct Device {
    client: AsyncClient,
    incoming: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    /// Ends when the hub closes the session.
    task: tokio::task::JoinHandle<()>,
}

async fn connect(r: &Replica, client_id: &str, key: &str) -> Device {
    let resource = match client_id.split_once('/') {
        Some((d, m)) => format!("{HUB}/devices/{d}/modules/{m}"),
        None => format!("{HUB}/devices/{client_id}"),
    };
    let expiry = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let token = sas::sign(&resource, key, expiry, None).unwrap();
    let port = r.api.device_addr.unwrap().port();
    let mut o = MqttOptions::new(client_id, HUB, port);
    o.set_credentials(format!("{HUB}/{client_id}/?api-version=2021-04-12"), token);
    o.set_transport(harness::hub_tls(&r.data));
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(512 * 1024, 512 * 1024);
    let (client, mut ev) = AsyncClient::new(o, 100);
    connack(&mut ev).await;
    let (tx, incoming) = mpsc::unbounded_channel();
    let answer = client.clone();
    let task = tokio::spawn(async move {
        while let Ok(event) = ev.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                if let Some(rid) = p.topic.strip_prefix("$iothub/methods/POST/") {
                    let rid = rid.rsplit("$rid=").next().unwrap().to_string();
                    let topic = format!("$iothub/methods/res/200/?$rid={rid}");
                    let body = p.payload.to_vec();
                    let answer = answer.clone();
                    tokio::spawn(async move {
                        answer
                            .publish(topic, QoS::AtMostOnce, false, body)
                            .await
                            .unwrap();
                    });
                }
                let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
            }
        }
    });
    client
        .subscribe("$iothub/methods/POST/#", QoS::AtMostOnce)
        .await
        .unwrap();
    client
        .subscribe("$iothub/twin/PATCH/properties/desired/#", QoS::AtMostOnce)
        .await
        .unwrap();
    if !client_id.contains('/') {
        client
            .subscribe(
                format!("devices/{client_id}/messages/devicebound/#"),
                QoS::AtLeastOnce,
            )
            .await
            .unwrap();
    }
    Device {
        client,
        incoming,
        task,
    }
}

async fn connack(ev: &mut EventLoop) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.poll())
            .await
            .expect("an answer to CONNECT")
        {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return,
            Ok(_) => {}
            Err(e) => panic!("connect failed: {e}"),
        }
    }
}

async fn wait_for<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    wait_longer(what, Duration::from_secs(20), check).await
}

async fn wait_longer<T>(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Direct method through `r` (long enough for the subscriptions to land first).
async fn call(r: &Replica, path: &str, payload: &Value) -> (StatusCode, Value) {
    let body = json!({"methodName": "echo", "responseTimeoutInSeconds": 10, "payload": payload});
    let (s, _, b) = r
        .api
        .send(
            Method::POST,
            path,
            Some(ADMIN),
            &[],
            Some(body.to_string().into_bytes()),
        )
        .await;
    (s, b)
}

/// Reads `n` events from an SSE response: `(id, device, seq)`.
async fn events(res: &mut reqwest::Response, n: usize) -> Vec<(String, String, u32)> {
    let mut text = String::new();
    let mut seen = Vec::new();
    while seen.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(15), res.chunk())
            .await
            .unwrap_or_else(|_| panic!("{} of {n} messages streamed", seen.len()))
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            let id = event.lines().find_map(|l| l.strip_prefix("id:"));
            let data = event.lines().find_map(|l| l.strip_prefix("data:"));
            if let (Some(id), Some(data)) = (id, data) {
                let v: Value = serde_json::from_str(data.trim()).unwrap();
                seen.push((
                    id.trim().to_string(),
                    v["systemProperties"]["iothub-connection-device-id"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    v["properties"]["seq"].as_str().unwrap().parse().unwrap(),
                ));
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_reach_each_others_devices() {
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(ADMIN_URL)
        .await
        .expect("PostgreSQL at 127.0.0.1:5432");
    let name = format!("hub_replicas_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let db = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let outcome =
        futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(scenario(db))).await;
    let drop_db = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(drop_db))
        .execute(&admin)
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(db: String) {
    let dir = temp_dir("hub-replicas");
    let broker = Mosquitto::start().await;
    let kek = dir.join("shared-hub.kek");
    // Both replicas route device messages to the broker; one at a time does.
    let port: u16 = broker.url().rsplit(':').next().unwrap().parse().unwrap();
    let routed = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let mut o = MqttOptions::new("route-reader", "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (reader, mut reader_ev) = AsyncClient::new(o, 100);
    reader.subscribe("hub/#", QoS::AtLeastOnce).await.unwrap();
    let count = routed.clone();
    let reader_task = tokio::spawn(async move {
        while let Ok(e) = reader_ev.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = e {
                let body = String::from_utf8_lossy(&p.payload).into_owned();
                count.lock().unwrap().insert((p.topic.clone(), body));
            }
        }
    });
    let a = replica(&broker.url(), &dir, "a", &db, &kek).await;
    let b = replica(&broker.url(), &dir, "b", &db, &kek).await;

    // A device created through A, connected to B, called through A: the call and a payload
    // far over NOTIFY's 8,000 bytes go to B and the answer comes back.
    let k1 = identity(&a, "/devices/d1").await;
    let mut d1 = connect(&b, "d1", &k1).await;
    let big = json!({"blob": "x".repeat(20_000)});
    let (s, answer) = wait_for(
        "the call reaches d1 through the other replica",
        async || {
            let (s, body) = call(&a, "/twins/d1/methods", &big).await;
            (s != StatusCode::NOT_FOUND).then_some((s, body))
        },
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["payload"], big);

    // A desired patch written through A reaches the device on B at once, with $version.
    let (s, _, twin) = a
        .api
        .send(
            Method::PATCH,
            "/twins/d1",
            Some(ADMIN),
            &[],
            Some(br#"{"properties":{"desired":{"rate":5}}}"#.to_vec()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{twin}");
    let patch = loop {
        let (topic, body) = tokio::time::timeout(Duration::from_secs(10), d1.incoming.recv())
            .await
            .expect("the desired patch")
            .unwrap();
        if topic.starts_with("$iothub/twin/PATCH/properties/desired/") {
            break serde_json::from_slice::<Value>(&body).unwrap();
        }
    };
    assert_eq!(patch["rate"], 5, "{patch}");
    assert!(patch["$version"].as_i64().is_some(), "{patch}");

    // Messages from devices on both replicas stream from A in one order, none lost.
    let k2 = identity(&b, "/devices/d2").await;
    let d2 = connect(&a, "d2", &k2).await;
    let mut stream = a
        .api
        .http
        .get(format!("{}/events/v2/hub/messages", a.api.base))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let send = |c: AsyncClient, device: &'static str| async move {
        for seq in 0..100 {
            c.publish(
                format!("devices/{device}/messages/events/seq={seq}"),
                QoS::AtLeastOnce,
                false,
                format!("{{\"seq\":{seq}}}"),
            )
            .await
            .unwrap();
        }
    };
    tokio::join!(send(d1.client.clone(), "d1"), send(d2.client.clone(), "d2"));
    let got = events(&mut stream, 200).await;
    let ids: Vec<&String> = got.iter().map(|(id, _, _)| id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in one order");
    for device in ["d1", "d2"] {
        let mut seqs: Vec<u32> = got
            .iter()
            .filter(|(_, d, _)| d == device)
            .map(|(_, _, s)| *s)
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs, (0..100).collect::<Vec<_>>(), "{device}'s messages");
    }
    // At least once: every message of both devices on the broker (duplicates would be
    // allowed; none is missing).
    wait_for("every message routed to the broker", async || {
        let got = routed.lock().unwrap();
        let all = ["d1", "d2"].iter().all(|d| {
            (0..100).all(|seq| got.contains(&(format!("hub/{d}"), format!("{{\"seq\":{seq}}}"))))
        });
        all.then_some(())
    })
    .await;
    reader_task.abort();
    // ... and replay from B's store in the same order.
    let mut replay = b
        .api
        .http
        .get(format!("{}/events/v2/hub/messages?after=0", b.api.base))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .send()
        .await
        .unwrap();
    let replayed = events(&mut replay, 200).await;
    assert_eq!(
        replayed.iter().map(|(id, _, _)| id).collect::<Vec<_>>(),
        ids,
        "B replays what A streamed"
    );
    drop((stream, replay));

    // A publisher module connected to B is online in A's registry; A's twin API reaches it.
    identity(&a, "/devices/gw").await;
    let kp = identity(&a, "/devices/gw/modules/pub").await;
    let publisher = connect(&b, "gw/pub", &kp).await;
    publisher
        .client
        .publish(
            "$iothub/twin/PATCH/properties/reported/?$rid=1",
            QoS::AtMostOnce,
            false,
            r#"{"__type__":"OpcPublisher","__version__":"2.9.0"}"#,
        )
        .await
        .unwrap();
    wait_for("A lists B's publisher online", async || {
        let (s, p) = a
            .api
            .get("/registry/v2/publishers/gw_module_pub", ADMIN)
            .await;
        (s == StatusCode::OK && p["connected"] == true).then_some(())
    })
    .await;

    // The same identity connecting to A takes over: B closes the old session.
    let mut d1_again = connect(&a, "d1", &k1).await;
    tokio::time::timeout(Duration::from_secs(10), d1.task)
        .await
        .expect("B ends the session taken over")
        .unwrap();
    let (s, answer) = call(&b, "/twins/d1/methods", &json!({"n": 1})).await;
    assert_eq!(s, StatusCode::OK, "B reaches d1 on A now: {answer}");
    // A cloud-to-device message queued through B reaches d1 on A at once.
    let (s, _, queued) = b
        .api
        .send(
            Method::POST,
            "/devices/d1/messages/deviceBound",
            Some(ADMIN),
            &[],
            Some(b"to d1".to_vec()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{queued}");
    loop {
        let (topic, body) = tokio::time::timeout(Duration::from_secs(10), d1_again.incoming.recv())
            .await
            .expect("the cloud-to-device message")
            .unwrap();
        if topic.starts_with("devices/d1/messages/devicebound/") {
            assert_eq!(body, b"to d1");
            break;
        }
    }

    // Disabling d2 through B ends its session on A.
    let (s, _, body) = b
        .api
        .send(
            Method::PUT,
            "/devices/d2",
            Some(ADMIN),
            &[("If-Match", "*")],
            Some(br#"{"deviceId":"d2","status":"disabled"}"#.to_vec()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    tokio::time::timeout(Duration::from_secs(10), d2.task)
        .await
        .expect("A ends the disabled device's session")
        .unwrap();

    // A device connected nowhere: 404 from either.
    identity(&a, "/devices/d3").await;
    let (s, body) = call(&b, "/twins/d3/methods", &json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");

    // A replica that stopped beating (crashed) leaves its connections behind: marked over.
    let pool = sqlx::AnyPool::connect(&db).await.unwrap();
    let ghost = "0123456789abcdef0123456789abcdef";
    sqlx::query("INSERT INTO hub_replicas (instance, seen) VALUES ($1, $2)")
        .bind(ghost)
        .bind(time::OffsetDateTime::now_utc().unix_timestamp() - 600)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE hub_identities SET connected = 1, connection_id = $1, revision = revision + 1 \
         WHERE device_id = 'd3' AND module_id = ''",
    )
    .bind(format!("{ghost}-1"))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    // Gone once its beat has not changed for 20 s of the replicas' own time (clocks that
    // disagree do not count).
    wait_longer(
        "the stale connection is marked over",
        Duration::from_secs(45),
        async || {
            let (_, d) = a.api.get("/devices/d3", ADMIN).await;
            (d["connectionState"] == "Disconnected").then_some(())
        },
    )
    .await;
    let (s, body) = call(&a, "/twins/d3/methods", &json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");

    // A live session the store lost (a mistaken sweep) is recorded again by its replica.
    let pool = sqlx::AnyPool::connect(&db).await.unwrap();
    sqlx::query(
        "UPDATE hub_identities SET connected = 0, connection_id = '', revision = revision + 1 \
         WHERE device_id = 'd1' AND module_id = ''",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    wait_for("d1's session is recorded again", async || {
        let (_, d) = b.api.get("/devices/d1", ADMIN).await;
        (d["connectionState"] == "Connected").then_some(())
    })
    .await;
    let (s, answer) = call(&b, "/twins/d1/methods", &json!({"n": 2})).await;
    assert_eq!(s, StatusCode::OK, "{answer}");

    // The replicas' listening connections drop (notes sent meanwhile are lost): each checks
    // its sessions, closes those that take desired patches (they GET the twin again on
    // reconnect), and the bus works again once the listeners reconnect.
    let pool = sqlx::AnyPool::connect(&db).await.unwrap();
    let killed = sqlx::query(
        "SELECT CAST(pg_terminate_backend(pid) AS TEXT) AS done FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE '%LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert!(killed.len() >= 2, "both replicas' listeners");
    tokio::time::timeout(Duration::from_secs(20), d1_again.task)
        .await
        .expect("the session that takes desired patches is closed after the bus dropped")
        .unwrap();
    let _d1_back = connect(&a, "d1", &k1).await;
    wait_for("B reaches d1 on A through the bus again", async || {
        let (s, _) = call(&b, "/twins/d1/methods", &json!({"n": 3})).await;
        (s == StatusCode::OK).then_some(())
    })
    .await;

    drop(publisher);
    a.api.shutdown().await;
    b.api.shutdown().await;
}
