//! The measuring end of `iiot bench relay`: an MQTT subscriber that checks every node's
//! sequence and measures latency from the values' SourceTimestamp.
//!
//! plc-sim's `Fast/{i}` counters are the sequence numbers: every node steps by one per tick,
//! all nodes share one counter. A value above `last + 1` means values were lost; a value at or
//! below `last` is a repeat (a duplicate). Counting is exact over a window of counter values
//! `[lo, hi]`: each node must deliver each of them once, so
//! `loss = nodes × (hi − lo + 1) − distinct values received in the window`.
//!
//! Two payload shapes are understood:
//! - OPC UA PubSub JSON (`ua-data` network messages, the module's), on `{publisher}/messages/+`;
//!   the field name is the node's DisplayName `f{i}`;
//! - one value per message `{"NodeId","DisplayName","Value","SourceTimestamp"}`, the asyncua
//!   relay's, on `relay/+`.
//!
//! Payloads are parsed into borrowed structs (no `serde_json::Value` trees) under one mutex
//! per MQTT message; the driver checks the sink's own CPU share so a saturated sink cannot go
//! unnoticed.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::error::{BenchError, Context};

/// Topic prefix of the asyncua relay's one-value messages.
pub const RELAY_PREFIX: &str = "relay";
const NONE: u64 = u64::MAX;

/// Latency histogram: 10 µs buckets below 1 s, 1 ms buckets up to 100 s, then one overflow.
#[derive(Debug, Clone)]
pub struct Histogram {
    fine: Vec<u64>,
    coarse: Vec<u64>,
    over: u64,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            fine: vec![0; 100_000],
            coarse: vec![0; 100_000],
            over: 0,
            count: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, micros: u64) {
        self.count += 1;
        if micros < 1_000_000 {
            self.fine[(micros / 10) as usize] += 1;
        } else if micros < 100_000_000 {
            self.coarse[(micros / 1000) as usize] += 1;
        } else {
            self.over += 1;
        }
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `p` quantile (0..1) in milliseconds, NaN when empty.
    pub fn quantile_ms(&self, p: f64) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        let rank = ((self.count as f64 * p).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.fine.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return (i as f64 * 10.0 + 5.0) / 1000.0;
            }
        }
        for (i, n) in self.coarse.iter().enumerate().skip(1000) {
            seen += n;
            if seen >= rank {
                return i as f64 + 0.5;
            }
        }
        f64::INFINITY
    }
}

/// What the sink has seen; the driver reads it under the lock.
#[derive(Debug)]
pub struct SinkState {
    /// Last (highest) value per node, `NONE` before the first.
    last: Vec<u64>,
    /// Nodes that delivered at least one value.
    pub seen_nodes: usize,
    /// Every value parsed, in or out of the window.
    pub received: u64,
    pub messages: u64,
    /// Highest counter value seen on any node, and its SourceTimestamp (Unix ns, 0 if none).
    pub max_value: u64,
    pub max_value_ts: i64,
    window: Option<(u64, u64)>,
    /// Values in the window received for the first time, and repeats of them.
    pub distinct: u64,
    pub duplicates: u64,
    /// Repeats and skipped values at any time (warm-up and drain included), for information.
    pub duplicates_total: u64,
    pub gaps_total: u64,
    pub latency: Histogram,
    pub parse_errors: u64,
    /// Values of names that are not `f{i}` with `i` below the item count.
    pub unknown: u64,
    pub first_error: Option<String>,
}

impl SinkState {
    pub fn new(items: usize) -> Self {
        Self {
            last: vec![NONE; items],
            seen_nodes: 0,
            received: 0,
            messages: 0,
            max_value: 0,
            max_value_ts: 0,
            window: None,
            distinct: 0,
            duplicates: 0,
            duplicates_total: 0,
            gaps_total: 0,
            latency: Histogram::default(),
            parse_errors: 0,
            unknown: 0,
            first_error: None,
        }
    }

    /// The source's counter now, extrapolated from the newest value delivered and its
    /// SourceTimestamp at the nominal period; the newest value itself when it has no stamp.
    pub fn source_estimate(&self, now_ns: i64, period_ns: i64) -> u64 {
        if self.max_value_ts <= 0 || period_ns <= 0 {
            return self.max_value;
        }
        self.max_value + ((now_ns - self.max_value_ts).max(0) / period_ns) as u64
    }

    /// Opens the window at counter value `at_least`, or later if a node already delivered
    /// it: every value of the window arrives after this call. Returns `lo`.
    pub fn start_window(&mut self, at_least: u64) -> u64 {
        let lo = at_least.max(self.max_value + 1);
        self.window = Some((lo, u64::MAX));
        self.distinct = 0;
        self.duplicates = 0;
        self.latency = Histogram::default();
        lo
    }

    /// Closes the window at `hi` (at least the highest value delivered so far, so values
    /// arriving later are outside). Returns `(lo, hi)`.
    pub fn end_window(&mut self, at_least: u64) -> (u64, u64) {
        let lo = self.window.map(|w| w.0).unwrap_or(self.max_value + 1);
        let hi = at_least.max(self.max_value);
        self.window = Some((lo, hi));
        (lo, hi)
    }

    /// Nodes still short of `value`.
    pub fn behind(&self, value: u64) -> usize {
        self.last
            .iter()
            .filter(|&&l| l == NONE || l < value)
            .count()
    }

    /// Window values not delivered yet *after* each node's newest value: late (or never sent),
    /// as opposed to gaps before it, which are lost.
    pub fn undelivered_tail(&self, lo: u64, hi: u64) -> u64 {
        if hi < lo {
            return 0;
        }
        self.last
            .iter()
            .map(|&l| {
                let done = if l == NONE { lo - 1 } else { l.max(lo - 1) };
                hi.saturating_sub(done)
            })
            .sum()
    }

    fn error(&mut self, e: impl fmt::Display) {
        self.parse_errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    /// One MQTT message, received at `now_ns` (Unix nanoseconds).
    pub fn on_message(&mut self, topic: &str, payload: &[u8], now_ns: i64) {
        self.messages += 1;
        if topic.starts_with(RELAY_PREFIX)
            && topic.as_bytes().get(RELAY_PREFIX.len()) == Some(&b'/')
        {
            match serde_json::from_slice::<RelayValue>(payload) {
                Ok(v) => self.value(v.display_name, v.value.0, v.source_timestamp, now_ns, false),
                Err(e) => self.error(format_args!("relay message on {topic}: {e}")),
            }
            return;
        }
        let msg = match serde_json::from_slice::<NetworkMessage>(payload) {
            Ok(m) => m,
            Err(e) => return self.error(format_args!("PubSub message on {topic}: {e}")),
        };
        if msg.message_type.is_some_and(|t| t != "ua-data") {
            return; // ua-metadata and anything else carries no values
        }
        for d in msg.messages {
            let key_frame = d.message_type == Some("ua-keyframe");
            for (name, field) in d.payload.map(|p| p.0).unwrap_or_default() {
                match field.value {
                    Some(v) => self.value(name, v.0, field.source_timestamp, now_ns, key_frame),
                    None => self.unknown += 1, // a Bad status carries no value
                }
            }
        }
    }

    fn value(&mut self, name: &str, v: u64, ts: Option<&str>, now_ns: i64, key_frame: bool) {
        let Some(idx) = name
            .strip_prefix('f')
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|&i| i < self.last.len())
        else {
            self.unknown += 1;
            return;
        };
        self.received += 1;
        if v > self.max_value {
            self.max_value = v;
            self.max_value_ts = ts.and_then(parse_rfc3339_ns).unwrap_or(0);
        }
        let in_window = self.window.is_some_and(|(lo, hi)| v >= lo && v <= hi);
        let last = self.last[idx];
        if last != NONE && v <= last {
            // Key frames repeat the last value of every field on purpose.
            if !key_frame {
                self.duplicates_total += 1;
                if in_window {
                    self.duplicates += 1;
                }
            }
            return;
        }
        if last == NONE {
            self.seen_nodes += 1;
        } else if v > last + 1 {
            self.gaps_total += v - last - 1;
        }
        self.last[idx] = v;
        if in_window {
            self.distinct += 1;
            if let Some(t) = ts.and_then(parse_rfc3339_ns) {
                self.latency.record((now_ns - t).max(0) as u64 / 1000);
            }
        }
    }
}

/// A running sink: the MQTT connection's task and the state it fills.
pub struct Sink {
    state: Arc<Mutex<SinkState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    /// Connects to `host:port`, subscribes (QoS 1) to `topics` and returns once the broker
    /// acknowledged the subscriptions.
    pub async fn start(
        host: &str,
        port: u16,
        topics: &[String],
        items: usize,
    ) -> Result<Sink, BenchError> {
        use rumqttc::v5::mqttbytes::v5::Packet;
        use rumqttc::v5::mqttbytes::QoS;
        use rumqttc::v5::{AsyncClient, Event, MqttOptions};
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut options =
            MqttOptions::new(format!("bench-sink-{}-{n}", std::process::id()), host, port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(Some(256 * 1024 * 1024));
        let mut net = options.network_options();
        net.set_tcp_nodelay(true);
        net.set_tcp_recv_buffer_size(4 * 1024 * 1024);
        options.set_network_options(net);
        let (client, mut event_loop) = AsyncClient::new(options, 64);
        let state = Arc::new(Mutex::new(SinkState::new(items)));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let topics = topics.to_vec();
        let st = state.clone();
        let task = tokio::spawn(async move {
            let mut acks = 0;
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let now = now_ns();
                        let topic = String::from_utf8_lossy(&p.topic);
                        if let Ok(mut s) = st.lock() {
                            s.on_message(&topic, &p.payload, now);
                        }
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for t in &topics {
                            let _ = client.subscribe(t.clone(), QoS::AtLeastOnce).await;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        acks += 1;
                        if acks >= topics.len() {
                            if let Some(t) = ready_tx.take() {
                                let _ = t.send(());
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Ok(mut s) = st.lock() {
                            s.error(format_args!("sink connection: {e}"));
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .context("the broker did not acknowledge the sink's subscriptions")??;
        Ok(Sink { state, task })
    }

    pub fn lock(&self) -> MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` → Unix nanoseconds.
pub fn parse_rfc3339_ns(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, to: usize| -> Option<i64> {
        let mut n = 0i64;
        for &c in b.get(from..to)? {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + i64::from(c - b'0');
        }
        Some(n)
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut i = 19;
    let mut nanos = 0i64;
    if b[i] == b'.' {
        i += 1;
        let mut scale = 100_000_000i64;
        while i < b.len() && b[i].is_ascii_digit() {
            nanos += i64::from(b[i] - b'0') * scale;
            scale /= 10;
            i += 1;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' => 0,
        sign @ (b'+' | b'-') => {
            let o = num(i + 1, i + 3)? * 3600 + num(i + 4, i + 6)? * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    // Days from civil (H. Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(secs * 1_000_000_000 + nanos)
}

/// An unsigned integer written as a JSON number or string (Part 6 writes 64-bit integers as
/// strings in some profiles).
#[derive(Debug)]
struct U64Like(u64);

impl<'de> Deserialize<'de> for U64Like {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = U64Like;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an unsigned integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<U64Like, E> {
                Ok(U64Like(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<U64Like, E> {
                u64::try_from(v).map(U64Like).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<U64Like, E> {
                if v >= 0.0 && v.fract() == 0.0 {
                    Ok(U64Like(v as u64))
                } else {
                    Err(E::custom("not an unsigned integer"))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<U64Like, E> {
                v.parse().map(U64Like).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct RelayValue<'a> {
    #[serde(rename = "DisplayName", borrow)]
    display_name: &'a str,
    #[serde(rename = "Value")]
    value: U64Like,
    #[serde(rename = "SourceTimestamp", borrow, default)]
    source_timestamp: Option<&'a str>,
}

#[derive(Deserialize)]
struct NetworkMessage<'a> {
    #[serde(rename = "MessageType", borrow, default)]
    message_type: Option<&'a str>,
    #[serde(rename = "Messages", borrow, default)]
    messages: Vec<DataSetMessage<'a>>,
}

#[derive(Deserialize)]
struct DataSetMessage<'a> {
    #[serde(rename = "MessageType", borrow, default)]
    message_type: Option<&'a str>,
    #[serde(rename = "Payload", borrow, default)]
    payload: Option<Payload<'a>>,
}

#[derive(Deserialize)]
struct Field<'a> {
    #[serde(rename = "Value", default)]
    value: Option<U64Like>,
    #[serde(rename = "SourceTimestamp", borrow, default)]
    source_timestamp: Option<&'a str>,
}

/// A data set message's fields in their order, without building a map.
struct Payload<'a>(Vec<(&'a str, Field<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Payload<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Payload<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of fields")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Payload<'a>, M::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(64));
                while let Some(entry) = m.next_entry::<&'de str, Field<'de>>()? {
                    out.push(entry);
                }
                Ok(Payload(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse() {
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ns("2024-03-01T12:34:56.1234567Z"),
            Some(1_709_296_496_123_456_700)
        );
        assert_eq!(
            parse_rfc3339_ns("2024-03-01T13:34:56.5+01:00"),
            Some(1_709_296_496_500_000_000)
        );
        assert_eq!(parse_rfc3339_ns("garbage"), None);
    }

    #[test]
    fn counts_loss_and_duplicates_in_the_window() {
        let mut s = SinkState::new(2);
        let ts = "2024-01-01T00:00:00Z";
        let msg = |vals: &[(usize, u64)], kind: &str| {
            let fields: Vec<String> = vals
                .iter()
                .map(|(i, v)| format!(r#""f{i}":{{"Value":{v},"SourceTimestamp":"{ts}"}}"#))
                .collect();
            format!(
                r#"{{"MessageId":"1","MessageType":"ua-data","PublisherId":"p","Messages":[{{"DataSetWriterId":1,"MessageType":"{kind}","Payload":{{{}}}}}]}}"#,
                fields.join(",")
            )
        };
        let now = parse_rfc3339_ns(ts).unwrap() + 2_000_000;
        s.on_message(
            "p/messages/g",
            msg(&[(0, 1), (1, 1)], "ua-deltaframe").as_bytes(),
            now,
        );
        let lo = s.start_window(0);
        assert_eq!(lo, 2);
        s.on_message(
            "p/messages/g",
            msg(&[(0, 2), (1, 2)], "ua-deltaframe").as_bytes(),
            now,
        );
        s.on_message(
            "p/messages/g",
            msg(&[(0, 2)], "ua-deltaframe").as_bytes(),
            now,
        );
        s.on_message(
            "p/messages/g",
            msg(&[(0, 4), (1, 3)], "ua-deltaframe").as_bytes(),
            now,
        );
        s.on_message(
            "p/messages/g",
            msg(&[(0, 4), (1, 3)], "ua-keyframe").as_bytes(),
            now,
        );
        s.on_message(
            "relay/f1",
            format!(r#"{{"NodeId":"x","DisplayName":"f1","Value":"4","SourceTimestamp":"{ts}"}}"#)
                .as_bytes(),
            now,
        );
        assert_eq!(s.end_window(0), (2, 4));
        assert_eq!(s.undelivered_tail(2, 4), 0);
        assert_eq!(s.undelivered_tail(2, 5), 2);
        s.on_message(
            "p/messages/g",
            msg(&[(0, 5), (1, 5)], "ua-deltaframe").as_bytes(),
            now,
        );
        assert_eq!(s.behind(4), 0);
        // Expected 2 nodes × 3 values; node 0 missed 3.
        assert_eq!(s.distinct, 5);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.parse_errors, 0, "{:?}", s.first_error);
        assert_eq!(s.latency.count(), 5);
        assert!((s.latency.quantile_ms(0.5) - 2.0).abs() < 0.02);
        s.on_message(
            "p/messages/g/metadata/w",
            br#"{"MessageType":"ua-metadata"}"#,
            now,
        );
        assert_eq!(s.parse_errors, 0);
    }
}
