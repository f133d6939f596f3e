//! A telemetry subscriber for the end-to-end tests: records every counter value the module
//! relays (PubSub and Samples encodings) with a persistent QoS 1 session, and checks that no
//! counter value is missing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::Value;

use super::free_port;

#[derive(Default)]
pub struct Received {
    /// Counter values per field, in arrival order.
    pub values: HashMap<String, Vec<(u64, String)>>,
    pub metadata: Vec<Value>,
    pub messages: u64,
}

/// Subscribes with a persistent session (QoS 1) and records every counter value.
pub struct Sink {
    pub received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    pub async fn start(port: u16, topic: &str) -> Sink {
        let received = Arc::new(Mutex::new(Received::default()));
        let mut opts = MqttOptions::new(format!("sink-{}", free_port()), "127.0.0.1", port);
        opts.set_clean_start(false);
        opts.set_session_expiry_interval(Some(3600));
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_max_packet_size(Some(16 * 1024 * 1024));
        let (client, mut event_loop) = AsyncClient::new(opts, 1000);
        client
            .subscribe(topic, QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready = Some(ready_tx);
        let r = received.clone();
        let topic = topic.to_string();
        let task = tokio::spawn(async move {
            let _client = client;
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::ConnAck(ack))) if !ack.session_present => {
                        let _ = _client.subscribe(topic.clone(), QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let body: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        record(&mut r.lock().unwrap(), &body);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("sink subscribed")
            .ok();
        Sink { received, task }
    }

    pub fn counts(&self) -> HashMap<String, usize> {
        let r = self.received.lock().unwrap();
        r.values.iter().map(|(k, v)| (k.clone(), v.len())).collect()
    }

    /// Waits until every field in `fields` has at least `n` values.
    pub async fn wait_for(&self, fields: &[&str], n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let counts = self.counts();
            if fields
                .iter()
                .all(|f| counts.get(*f).copied().unwrap_or(0) >= n)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "fewer than {n} values per field within {within:?}: {counts:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn values(&self, field: &str) -> Vec<(u64, String)> {
        self.received
            .lock()
            .unwrap()
            .values
            .get(field)
            .cloned()
            .unwrap_or_default()
    }
}

fn record(r: &mut Received, body: &Value) {
    r.messages += 1;
    match body["MessageType"].as_str() {
        Some("ua-metadata") => r.metadata.push(body.clone()),
        Some("ua-data") => {
            for m in body["Messages"].as_array().into_iter().flatten() {
                for (name, field) in m["Payload"].as_object().into_iter().flatten() {
                    if let Some(v) = field["Value"].as_u64() {
                        let ts = field["SourceTimestamp"].as_str().unwrap_or("").to_string();
                        r.values.entry(name.clone()).or_default().push((v, ts));
                    }
                }
            }
        }
        _ => {
            // Samples: one object or an array of them.
            let samples = match body {
                Value::Array(a) => a.clone(),
                v => vec![v.clone()],
            };
            for s in samples {
                if let (Some(name), Some(v)) =
                    (s["DisplayName"].as_str(), s["Value"]["Value"].as_u64())
                {
                    let ts = s["Value"]["SourceTimestamp"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    r.values.entry(name.to_string()).or_default().push((v, ts));
                }
            }
        }
    }
}

/// Checks a field's values: repeats of values already seen are duplicates (allowed: at least
/// once), everything else must continue the counter by exactly one. Returns (distinct values,
/// duplicates, gaps as (last before, first after)).
pub fn analyse(values: &[(u64, String)]) -> (usize, usize, Vec<(u64, u64)>) {
    let mut max: Option<u64> = None;
    let mut distinct = 0;
    let mut duplicates = 0;
    let mut gaps = Vec::new();
    for (v, _) in values {
        match max {
            Some(m) if *v <= m => duplicates += 1,
            Some(m) => {
                if *v != m + 1 {
                    gaps.push((m, *v));
                }
                distinct += 1;
                max = Some(*v);
            }
            None => {
                distinct += 1;
                max = Some(*v);
            }
        }
    }
    (distinct, duplicates, gaps)
}

pub fn assert_no_loss(sink: &Sink, fields: &[&str]) {
    for f in fields {
        let values = sink.values(f);
        let (distinct, _dups, gaps) = analyse(&values);
        assert!(gaps.is_empty(), "{f}: values lost between {gaps:?}");
        assert!(distinct > 0, "{f}: no values");
    }
}

/// For a module that was down: at most one gap per field, and the last value before it was
/// sampled at or after `accepted_by`. Everything sampled before then was accepted (batched and
/// committed) and must have arrived; values the server sampled while no module was subscribed
/// are the only ones allowed to be missing.
pub fn assert_only_downtime_lost(sink: &Sink, fields: &[&str], accepted_by: time::OffsetDateTime) {
    for f in fields {
        let values = sink.values(f);
        let (_, _, gaps) = analyse(&values);
        assert!(gaps.len() <= 1, "{f}: more than one gap: {gaps:?}");
        for (last, _) in gaps {
            let ts = values
                .iter()
                .find(|(v, _)| *v == last)
                .map(|(_, t)| t.clone())
                .unwrap_or_default();
            let t =
                time::OffsetDateTime::parse(&ts, &time::format_description::well_known::Rfc3339)
                    .expect("SourceTimestamp");
            assert!(
                t >= accepted_by,
                "{f}: values after {last} (sampled {ts}) were lost although they were accepted by {accepted_by}"
            );
        }
    }
}
