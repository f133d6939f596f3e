//! The MQTT sink, the telemetry pipeline's last stage, drains the outbox to the broker: it
//! publishes messages oldest first, keeps up to the broker's Receive Maximum (or the configured
//! window) in flight, and acknowledges each one out of the outbox only on its PUBACK (QoS 1) or
//! once written (QoS 0).
//!
//! After a connection loss nothing rumqttc still holds is trusted: the connection is dropped,
//! a fresh one is built (after a 100 ms → 5 s backoff), and the outbox is rewound so that every
//! unacknowledged message is sent again, oldest first. That gives at-least-once delivery with
//! the outbox as the one source of truth.

mod connection;
mod inflight;

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use iiot_mqtt_tls::{TlsError, TlsFiles};

use super::metrics::PublisherDiagnostics;
use super::outbox::{Consumer, Delivery, Outbox};
use crate::transport::mqtt_rpc::BrokerUrl;
use connection::{Connection, Ev};
use inflight::{InFlight, Sent};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Payload bytes read from the outbox at a time.
const READ_BYTES: usize = 8 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttVersion {
    V5,
    V311,
}

impl FromStr for MqttVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "5" | "v5" | "5.0" => Ok(Self::V5),
            "311" | "3.1.1" | "v311" | "4" => Ok(Self::V311),
            _ => Err(format!("unknown MQTT version '{s}' (use 5 or 311)")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    AtMostOnce,
    AtLeastOnce,
}

impl FromStr for Qos {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "0" => Ok(Self::AtMostOnce),
            "1" => Ok(Self::AtLeastOnce),
            _ => Err(format!(
                "unsupported telemetry QoS '{s}' (use 0 or 1; QoS 1 is acknowledged)"
            )),
        }
    }
}

/// Where and how telemetry is published. Built from the module's `--mqtt-url`; the other
/// fields map one to one to command-line flags.
#[derive(Clone)]
pub struct TelemetryConfig {
    pub host: String,
    pub port: u16,
    /// TLS to the broker (`mqtts://`).
    pub tls: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `{publisher_id}-telemetry`: distinct from the RPC connection's id.
    pub client_id: String,
    pub version: MqttVersion,
    pub qos: Qos,
    /// CA and client certificate files for `mqtts://`, shared with the RPC connection.
    pub tls_files: TlsFiles,
    /// Publishes awaiting their PUBACK at most (the broker's Receive Maximum lowers it).
    pub max_in_flight: u16,
    /// Payload bytes read from the outbox and not yet acknowledged, at most (at least one
    /// message always goes). The MQTT client keeps every payload until its PUBACK, so this
    /// bounds the transport's memory: 256 publishes of 256 KB would otherwise be 64 MB.
    /// 1 MiB keeps a local broker busy at any rate seen here; a distant broker at 50 ms
    /// round trip still gets 20 MB/s (≈ 130k values/s of PubSub JSON).
    pub max_in_flight_bytes: u64,
    pub keep_alive: Duration,
    /// Telemetry goes to an IoT Hub as this module identity, over the one connection that
    /// also carries its direct methods (see `transport::iothub`).
    pub hub: Option<Arc<crate::transport::iothub::HubLink>>,
}

/// Written by hand so that the broker password never reaches a log line.
impl std::fmt::Debug for TelemetryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("client_id", &self.client_id)
            .field("version", &self.version)
            .field("qos", &self.qos)
            .field("tls_files", &self.tls_files)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_in_flight_bytes", &self.max_in_flight_bytes)
            .field("keep_alive", &self.keep_alive)
            .field("hub", &self.hub)
            .finish()
    }
}

impl TelemetryConfig {
    /// Parses the same URLs as the RPC responder (`mqtt://[user:pass@]host:port`, and
    /// `mqtts://` for TLS) with MQTT 5, QoS 1 and 256 publishes in flight.
    pub fn from_url(url: &str, publisher_id: &str) -> Result<Self, String> {
        let b = BrokerUrl::parse(url)?;
        Ok(Self {
            host: b.host,
            port: b.port,
            tls: b.tls,
            username: b.username,
            password: b.password,
            client_id: format!("{publisher_id}-telemetry"),
            version: MqttVersion::V5,
            qos: Qos::AtLeastOnce,
            tls_files: TlsFiles::default(),
            max_in_flight: 256,
            max_in_flight_bytes: 1 << 20,
            keep_alive: Duration::from_secs(30),
            hub: None,
        })
    }

    /// Telemetry to an IoT Hub: MQTT 3.1.1 (IoT Hub's), QoS 1 (a message leaves the outbox
    /// only when the hub stored it), over `hub`'s connection.
    pub fn for_hub(hub: Arc<crate::transport::iothub::HubLink>) -> Self {
        Self {
            host: String::new(),
            port: 0,
            tls: true,
            username: None,
            password: None,
            client_id: String::new(),
            version: MqttVersion::V311,
            qos: Qos::AtLeastOnce,
            tls_files: TlsFiles::default(),
            max_in_flight: 256,
            max_in_flight_bytes: 1 << 20,
            keep_alive: Duration::from_secs(60),
            hub: Some(hub),
        }
    }

    /// The broker connection's transport, the TLS files read afresh (so a renewed
    /// certificate is picked up at the next reconnect); an error names the file and the flag.
    pub fn transport(&self) -> Result<rumqttc::Transport, TlsError> {
        self.tls_files.transport(self.tls)
    }

    fn broker(&self) -> String {
        if let Some(hub) = &self.hub {
            return hub.describe();
        }
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }
}

/// Starts draining `outbox` to the broker until `shutdown` turns true.
pub fn spawn(
    config: TelemetryConfig,
    outbox: Arc<Outbox>,
    diag: Arc<PublisherDiagnostics>,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(run(config, outbox, diag, shutdown))
}

enum End {
    Shutdown,
    /// The connection is gone; `productive` when it worked for a while (backoff restarts).
    Lost {
        productive: bool,
    },
}

async fn run(
    config: TelemetryConfig,
    outbox: Arc<Outbox>,
    diag: Arc<PublisherDiagnostics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut consumer = match outbox.consumer() {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "telemetry transport cannot read the outbox");
            return;
        }
    };
    info!(broker = %config.broker(), client_id = %config.client_id, version = ?config.version,
        qos = ?config.qos, "telemetry transport starting");
    let mut backoff = BACKOFF_MIN;
    let mut connected_once = false;
    loop {
        if *shutdown.borrow() {
            break;
        }
        consumer.rewind();
        let transport = match &config.hub {
            // The hub link makes its own TLS transport; check it can, so a bad CA file is
            // reported here like a bad broker TLS file.
            Some(hub) => match hub.prepare().await {
                Ok(()) => hub.mqtt_options().map(|o| o.transport()),
                Err(e) => Err(e),
            },
            None => config.transport().map_err(|e| e.to_string()),
        };
        let end = match transport {
            Ok(transport) => {
                let s = Session {
                    config: &config,
                    diag: &diag,
                    conn: Connection::open(&config, transport),
                    inflight: InFlight::default(),
                    window: 0,
                    max_packet_size: None,
                    backlog: VecDeque::new(),
                    connected_at: None,
                    acked_any: false,
                };
                s.run(&mut consumer, &mut shutdown, &mut connected_once)
                    .await
            }
            Err(e) => {
                error!(error = %e, "telemetry TLS configuration unusable");
                backoff = BACKOFF_MAX;
                End::Lost { productive: false }
            }
        };
        match end {
            End::Shutdown => break,
            End::Lost { productive } => {
                if productive {
                    backoff = BACKOFF_MIN;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    info!("telemetry transport stopped");
}

struct Session<'a> {
    config: &'a TelemetryConfig,
    diag: &'a PublisherDiagnostics,
    conn: Connection,
    inflight: InFlight,
    /// Publishes allowed in flight; 0 until the broker accepted the connection.
    window: usize,
    max_packet_size: Option<u32>,
    /// Read from the outbox, not yet handed to rumqttc.
    backlog: VecDeque<Delivery>,
    connected_at: Option<Instant>,
    acked_any: bool,
}

impl Session<'_> {
    async fn run(
        mut self,
        consumer: &mut Consumer,
        shutdown: &mut watch::Receiver<bool>,
        connected_once: &mut bool,
    ) -> End {
        let outbox = consumer.outbox().clone();
        loop {
            if let Err(e) = self.feed(&outbox) {
                warn!(error = %e, "handing a publish to the MQTT client failed; reconnecting");
                return self.lost();
            }
            let want_more = self.window > 0
                && self.backlog.is_empty()
                && self.inflight.len() < self.window
                && self.bytes_room() > 0;
            let mut read = false;
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        self.conn.close().await;
                        return End::Shutdown;
                    }
                }
                ev = self.conn.events.recv() => {
                    let Some(ev) = ev else { return self.lost() };
                    if let Some(end) = self.on_event(ev, &outbox, connected_once) {
                        return end;
                    }
                }
                r = consumer.ready(), if want_more => match r {
                    Ok(()) => read = true,
                    Err(e) => {
                        error!(error = %e, "telemetry transport cannot read the outbox");
                        return self.lost();
                    }
                },
            }
            if read {
                let room = self.window.saturating_sub(self.inflight.len());
                let bytes = (self.bytes_room() as usize).min(READ_BYTES);
                match consumer.next_batch(room, bytes).await {
                    Ok(batch) => self.backlog.extend(batch),
                    Err(e) => {
                        error!(error = %e, "reading the outbox failed");
                        return self.lost();
                    }
                }
            }
        }
    }

    fn lost(&self) -> End {
        let productive = self.acked_any
            || self
                .connected_at
                .is_some_and(|t| t.elapsed() >= Duration::from_secs(1));
        End::Lost { productive }
    }

    /// Payload bytes that may still be read: none while the budget is spent, except that an
    /// empty pipe always takes one message, however large.
    fn bytes_room(&self) -> u64 {
        if self.inflight.len() == 0 {
            return self.config.max_in_flight_bytes.max(1);
        }
        self.config
            .max_in_flight_bytes
            .saturating_sub(self.inflight.bytes())
    }

    /// Hands backlog messages to rumqttc while the window has room.
    fn feed(&mut self, outbox: &Outbox) -> Result<(), String> {
        while self.window > 0 && self.inflight.len() < self.window {
            let Some(d) = self.backlog.pop_front() else {
                break;
            };
            let m = &d.message;
            let topic = match &self.config.hub {
                Some(hub) => std::borrow::Cow::Owned(hub.telemetry_topic(&m.topic)),
                None => std::borrow::Cow::Borrowed(m.topic.as_str()),
            };
            let size = connection::publish_packet_size(
                self.config.version,
                self.config.qos,
                &topic,
                m.payload.len(),
            );
            if let Some(max) = self.max_packet_size.filter(|&max| size > max as usize) {
                error!(id = d.id, topic = %m.topic, size, broker_max = max,
                    "telemetry message larger than the broker accepts; dropped");
                outbox.discard(d.id);
                continue;
            }
            if !rumqttc::valid_topic(&topic) {
                error!(id = d.id, topic = %m.topic, "telemetry message with an invalid topic; dropped");
                outbox.discard(d.id);
                continue;
            }
            // A hub keeps nothing retained: metadata goes as a message like the others.
            let retain = m.retain && self.config.hub.is_none();
            self.conn.publish(&topic, m.payload.clone(), retain)?;
            self.inflight.queue(Sent {
                id: d.id,
                bytes: m.payload.len() as u32,
            });
            self.diag.pipeline.messages_sent.inc();
        }
        Ok(())
    }

    fn complete(&mut self, outbox: &Outbox, s: Sent) {
        outbox.ack(s.id);
        let p = &self.diag.pipeline;
        p.messages_acked.inc();
        p.bytes_acked.add(s.bytes as u64);
        self.acked_any = true;
    }

    fn on_event(&mut self, ev: Ev, outbox: &Outbox, connected_once: &mut bool) -> Option<End> {
        match ev {
            Ev::Connected {
                receive_max,
                max_packet_size,
            } => {
                self.window = self
                    .config
                    .max_in_flight
                    .min(receive_max.unwrap_or(u16::MAX))
                    .max(1) as usize;
                self.max_packet_size = max_packet_size;
                self.connected_at = Some(Instant::now());
                if *connected_once {
                    self.diag.pipeline.mqtt_reconnects.inc();
                }
                *connected_once = true;
                info!(broker = %self.config.broker(), window = self.window, ?max_packet_size,
                    "telemetry connected to MQTT broker");
            }
            Ev::Written(pkid) => {
                if let Some(s) = self.inflight.written(pkid) {
                    self.complete(outbox, s);
                }
            }
            Ev::Acked { pkid, refused } => match (self.inflight.acked(pkid), refused) {
                (Some(s), None) => self.complete(outbox, s),
                (Some(s), Some((reason, true))) => {
                    error!(id = s.id, %reason, "broker refused a telemetry message for good; dropped");
                    outbox.discard(s.id);
                }
                (Some(s), Some((reason, false))) => {
                    warn!(id = s.id, %reason, "broker refused a telemetry message; reconnecting to resend");
                    return Some(self.lost());
                }
                (None, _) => debug!(pkid, "PUBACK for an unknown packet id ignored"),
            },
            Ev::Closed { error, too_large } => {
                if too_large {
                    if let Some(s) = self.inflight.pop_next_queued() {
                        error!(id = s.id, %error, "telemetry message larger than the broker accepts; dropped");
                        outbox.discard(s.id);
                    }
                }
                if self.connected_at.is_some() {
                    warn!(broker = %self.config.broker(), %error, in_flight = self.inflight.len(),
                        "telemetry connection lost; unacknowledged messages will be resent");
                } else {
                    warn!(broker = %self.config.broker(), %error, "telemetry cannot connect to MQTT broker");
                }
                return Some(self.lost());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_url_and_flags() {
        let c = TelemetryConfig::from_url("mqtts://u:pw@broker", "pub1").unwrap();
        assert_eq!(
            (c.port, c.tls, c.client_id.as_str()),
            (8883, true, "pub1-telemetry")
        );
        assert_eq!((c.version, c.qos), (MqttVersion::V5, Qos::AtLeastOnce));
        assert!(!format!("{c:?}").contains("pw"));
        assert_eq!("311".parse::<MqttVersion>(), Ok(MqttVersion::V311));
        assert_eq!("0".parse::<Qos>(), Ok(Qos::AtMostOnce));
        assert!("2".parse::<Qos>().is_err());
        let mut c = TelemetryConfig::from_url("mqtts://h", "p").unwrap();
        c.tls_files.ca = Some("/nonexistent/ca.pem".into());
        let e = c.transport().map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("--mqtt-ca"), "{e}");
    }

    #[test]
    fn packet_size_matches_rumqttc() {
        use rumqttc::v5::mqttbytes::v5::Publish;
        use rumqttc::v5::mqttbytes::QoS;
        for len in [0usize, 100, 20_000, 3_000_000] {
            let mut p = Publish::new("a/b", QoS::AtLeastOnce, vec![0u8; len], None);
            p.pkid = 1;
            assert_eq!(
                connection::publish_packet_size(MqttVersion::V5, Qos::AtLeastOnce, "a/b", len),
                p.size()
            );
        }
    }
}
