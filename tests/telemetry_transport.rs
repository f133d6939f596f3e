//! The telemetry path from the outbox to a real broker: order, zero loss across a broker
//! restart, QoS 0, MQTT 3.1.1, and delivery of what a previous run left in the outbox.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iiot_module::publisher::metrics::PublisherDiagnostics;
use iiot_module::publisher::mqtt_sink::{self as transport, MqttVersion, Qos, TelemetryConfig};
use iiot_module::publisher::outbox::{Message, Outbox, OutboxConfig};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::{mpsc, watch};

use common::{free_port, temp_dir, Mosquitto};

const TOPIC: &str = "tt/messages/g";

fn message(i: usize) -> Message {
    Message {
        topic: format!("{TOPIC}{}", i % 2),
        payload: format!("seq-{i:08}-{}", "v".repeat(200))
            .into_bytes()
            .into(),
        retain: false,
    }
}

fn seq_of(payload: &[u8]) -> usize {
    std::str::from_utf8(&payload[4..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("payload carries a sequence number")
}

/// A QoS 1 subscriber to `tt/#`; `persistent` keeps its session (and queued messages) at the
/// broker while it is away. Resolves once subscribed.
async fn subscriber(port: u16, persistent: bool) -> mpsc::UnboundedReceiver<usize> {
    let id = format!("sub-{port}-{persistent}");
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_clean_start(!persistent);
    if persistent {
        o.set_session_expiry_interval(Some(3600));
    }
    o.set_max_packet_size(Some(10 << 20));
    let (client, mut el) = AsyncClient::new(o, 100);
    let (tx, rx) = mpsc::unbounded_channel();
    let (sub_tx, mut sub_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    if !ack.session_present {
                        let _ = client.subscribe("tt/#", QoS::AtLeastOnce).await;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = sub_tx.send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send(seq_of(&p.payload)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), sub_rx.recv())
        .await
        .expect("subscribed within 10 s");
    rx
}

async fn receive(
    rx: &mut mpsc::UnboundedReceiver<usize>,
    n: usize,
    within: Duration,
) -> Vec<usize> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(s)) => got.push(s),
            _ => break,
        }
    }
    got
}

fn outbox_config(dir: &Path) -> OutboxConfig {
    OutboxConfig {
        dir: dir.to_path_buf(),
        ..Default::default()
    }
}

struct Running {
    outbox: Arc<Outbox>,
    diag: Arc<PublisherDiagnostics>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(url: &str, dir: &Path, tune: impl FnOnce(&mut TelemetryConfig)) -> Running {
    let diag = PublisherDiagnostics::new();
    let outbox = Outbox::open(outbox_config(dir), diag.clone())
        .await
        .expect("outbox opens");
    let mut config = TelemetryConfig::from_url(url, &format!("test-{}", free_port())).unwrap();
    tune(&mut config);
    let (stop, rx) = watch::channel(false);
    let task = transport::spawn(config, outbox.clone(), diag.clone(), rx);
    Running {
        outbox,
        diag,
        stop,
        task,
    }
}

impl Running {
    async fn append(&self, range: std::ops::Range<usize>) {
        let all: Vec<usize> = range.collect();
        for chunk in all.chunks(10) {
            self.outbox
                .append(chunk.iter().copied().map(message).collect())
                .await
                .expect("append");
        }
    }

    async fn wait_empty(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.outbox.is_empty() {
            assert!(
                Instant::now() < deadline,
                "outbox not drained: {:?}",
                self.outbox.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("transport stops on shutdown")
            .expect("transport task");
    }
}

async fn in_order(tune: impl FnOnce(&mut TelemetryConfig)) {
    let broker = Mosquitto::start().await;
    let mut rx = subscriber(broker.port, false).await;
    let dir = temp_dir("telemetry-order");
    let r = start(&broker.url(), &dir, tune).await;
    let n = 3000;
    r.append(0..n).await;
    let got = receive(&mut rx, n, Duration::from_secs(30)).await;
    assert_eq!(
        got,
        (0..n).collect::<Vec<_>>(),
        "every message, once, in order"
    );
    r.wait_empty().await;
    let p = &r.diag.pipeline;
    assert_eq!(p.messages_acked.get(), n as u64);
    assert_eq!(p.messages_sent.get(), n as u64);
    assert_eq!(p.outbox_messages.get(), 0);
    assert!(p.bytes_acked.get() > (n * 200) as u64);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_qos1_delivers_everything_in_order() {
    in_order(|_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_delivers_in_order() {
    in_order(|c| c.qos = Qos::AtMostOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt311_delivers_in_order() {
    in_order(|c| c.version = MqttVersion::V311).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_left_by_a_previous_run_are_delivered() {
    let broker = Mosquitto::start().await;
    let dir = temp_dir("telemetry-reopen");
    {
        let diag = PublisherDiagnostics::new();
        let outbox = Outbox::open(outbox_config(&dir), diag).await.unwrap();
        for i in 0..50 {
            outbox.append(vec![message(i)]).await.unwrap();
        }
        // Dropped without any transport: nothing acknowledged.
    }
    let mut rx = subscriber(broker.port, false).await;
    let r = start(&broker.url(), &dir, |_| {}).await;
    let got = receive(&mut rx, 50, Duration::from_secs(20)).await;
    assert_eq!(got, (0..50).collect::<Vec<_>>());
    r.wait_empty().await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_mid_stream_loses_nothing() {
    let mut broker = Mosquitto::start_persistent(&[]).await;
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let mut rx = subscriber(broker.port, true).await;
    let dir = temp_dir("telemetry-outage");
    let r = Arc::new(start(&url, &dir, |_| {}).await);
    let n = 6000;
    let producer = {
        let r = r.clone();
        tokio::spawn(async move {
            for start in (0..n).step_by(20) {
                r.append(start..start + 20).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let mut seen = BTreeSet::new();
    // Let the stream run, then take the broker away for several seconds.
    for s in receive(&mut rx, 1000, Duration::from_secs(20)).await {
        seen.insert(s);
    }
    broker.stop().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let queued_while_down = r.outbox.len().0;
    broker.resume().await;
    producer.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < n && Instant::now() < deadline {
        for s in receive(&mut rx, n - seen.len(), Duration::from_millis(500)).await {
            seen.insert(s);
        }
    }
    let missing: Vec<_> = (0..n).filter(|s| !seen.contains(s)).take(20).collect();
    assert!(
        missing.is_empty(),
        "lost {} messages, first {missing:?}",
        n - seen.len()
    );
    assert!(
        queued_while_down > 0,
        "the outage held messages in the outbox"
    );
    let p = &r.diag.pipeline;
    assert!(p.mqtt_reconnects.get() >= 1);
    assert!(p.messages_acked.get() >= n as u64);
    r.wait_empty().await;
    match Arc::try_unwrap(r) {
        Ok(r) => r.stop().await,
        Err(_) => panic!("producer still holds the pipeline"),
    }
    broker.stop().await;
}

/// A TCP relay to the broker that can swallow what the client sends and then cut every
/// connection: publishes in flight at that moment are really lost and must be resent.
struct Relay {
    port: u16,
    /// 0 = forward, 1 = swallow client bytes, 2 = refuse and cut.
    mode: Arc<std::sync::atomic::AtomicU8>,
}

impl Relay {
    async fn start(upstream: u16) -> Relay {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(std::sync::atomic::AtomicU8::new(0));
        let m = mode.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if m.load(Ordering::SeqCst) != 0 {
                    continue;
                }
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let m = m.clone();
                tokio::spawn(async move {
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let mut up = vec![0u8; 64 << 10];
                    let mut down = vec![0u8; 64 << 10];
                    let mut tick = tokio::time::interval(Duration::from_millis(20));
                    loop {
                        tokio::select! {
                            r = cr.read(&mut up) => match r {
                                Ok(0) | Err(_) => return,
                                Ok(n) => match m.load(Ordering::SeqCst) {
                                    0 => if sw.write_all(&up[..n]).await.is_err() { return },
                                    1 => {}
                                    _ => return,
                                },
                            },
                            r = sr.read(&mut down) => match r {
                                Ok(0) | Err(_) => return,
                                Ok(n) => if cw.write_all(&down[..n]).await.is_err() { return },
                            },
                            _ = tick.tick() => if m.load(Ordering::SeqCst) == 2 { return },
                        }
                    }
                });
            }
        });
        Relay { port, mode }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_lost_with_the_connection_are_resent() {
    let broker = Mosquitto::start().await;
    let relay = Relay::start(broker.port).await;
    let mut rx = subscriber(broker.port, false).await;
    let dir = temp_dir("telemetry-cut");
    let r = Arc::new(start(&format!("mqtt://127.0.0.1:{}", relay.port), &dir, |_| {}).await);
    let n = 4000;
    let producer = {
        let r = r.clone();
        tokio::spawn(async move {
            for start in (0..n).step_by(20) {
                r.append(start..start + 20).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut seen = BTreeSet::new();
    for s in receive(&mut rx, 500, Duration::from_secs(20)).await {
        seen.insert(s);
    }
    // Swallow publishes for a while (they are "sent" but never arrive), then cut.
    relay.set(1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let in_flight = r.outbox.len().0;
    relay.set(2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    relay.set(0);
    producer.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < n && Instant::now() < deadline {
        for s in receive(&mut rx, n - seen.len(), Duration::from_millis(500)).await {
            seen.insert(s);
        }
    }
    let missing: Vec<_> = (0..n).filter(|s| !seen.contains(s)).take(20).collect();
    assert!(
        missing.is_empty(),
        "lost {} messages, first {missing:?}",
        n - seen.len()
    );
    assert!(
        in_flight > 0,
        "messages were held while publishes were swallowed"
    );
    let p = &r.diag.pipeline;
    assert!(p.mqtt_reconnects.get() >= 1);
    assert!(
        p.messages_sent.get() > n as u64,
        "swallowed publishes were sent again ({} sends)",
        p.messages_sent.get()
    );
    r.wait_empty().await;
    match Arc::try_unwrap(r) {
        Ok(r) => r.stop().await,
        Err(_) => panic!("producer still holds the pipeline"),
    }
}
