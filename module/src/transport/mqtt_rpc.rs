//! OPC Publisher's method API over MQTT v5 request/response.
//!
//! A request is a publish to `{root}/methods/{Method}` carrying a response topic and
//! correlation data; the answer goes to that response topic with the same correlation data
//! and a `StatusCode` user property holding the HTTP-style status code. Requests are handled
//! concurrently: a slow server must not hold up calls to a fast one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use iiot_mqtt_tls::{TlsError, TlsFiles};
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::sync::watch;
use tracing::{debug, info, warn};

pub use crate::api::broker_url::{redact_url, BrokerUrl};
use crate::api::rpc::{strip_version, MQTT_STATUS_CODE_PROPERTY};
use crate::api::state::ModuleConnectionState;
use crate::api::topics::{ModuleTopics, TelemetryPattern};
use crate::dispatcher::Dispatcher;

use super::liveness::{self, Liveness};

/// Where the module finds its broker and what topic root it answers on.
#[derive(Clone)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    /// TLS to the broker (`mqtts://`), with `tls_files`.
    pub tls: bool,
    pub tls_files: TlsFiles,
    pub client_id: String,
    /// The `{root}` of every topic; OPC Publisher's publisher id.
    pub root: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Time between liveness heartbeats on `{root}/state` (see [`super::liveness`]).
    pub heartbeat: Duration,
    /// The telemetry pattern announced in the state message, where telemetry is published.
    pub telemetry: Option<TelemetryPattern>,
}

/// Written by hand so that the broker password never reaches a log line.
impl std::fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("tls_files", &self.tls_files)
            .field("client_id", &self.client_id)
            .field("root", &self.root)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("heartbeat", &self.heartbeat)
            .field("telemetry", &self.telemetry)
            .finish()
    }
}

impl MqttConfig {
    /// Parses `mqtt://host:port` (also `tcp://`, or a bare `host:port`) and `mqtts://` for
    /// TLS; see [`BrokerUrl`]. The TLS files are set apart, in `tls_files`.
    pub fn from_url(url: &str, root: &str) -> Result<Self, String> {
        let b = BrokerUrl::parse(url)?;
        Ok(Self {
            host: b.host,
            port: b.port,
            tls: b.tls,
            tls_files: TlsFiles::default(),
            client_id: format!("{root}-module"),
            root: root.to_string(),
            username: b.username,
            password: b.password,
            heartbeat: liveness::DEFAULT_HEARTBEAT,
            telemetry: None,
        })
    }
}

/// Largest MQTT packet the responder accepts: the HTTP API's body limit plus room for the
/// packet's properties.
const MAX_REQUEST_PACKET: u32 = (super::http::MAX_BODY_BYTES + 64 * 1024) as u32;

/// Responses in flight on the RPC connection at most; more wait in rumqttc's queue.
const RPC_MAX_IN_FLIGHT: u16 = 1024;

/// Creates the MQTT client; the event loop does nothing until [`run`] polls it. Fails only
/// when the TLS files cannot be used.
pub fn connect(config: &MqttConfig) -> Result<(AsyncClient, EventLoop), TlsError> {
    let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
    options.set_transport(config.tls_files.transport(config.tls)?);
    options.set_keep_alive(Duration::from_secs(30));
    // Requests as large as the HTTP API takes (a whole configuration); rumqttc's 10 KiB
    // default would drop the connection on the first large request.
    options.set_max_packet_size(Some(MAX_REQUEST_PACKET));
    options.set_clean_start(true);
    // rumqttc allocates one slot per possible in-flight publish up front: at the broker's
    // 65,535 that is 14 MB for a connection that answers a few requests at a time.
    options.set_outgoing_inflight_upper_limit(RPC_MAX_IN_FLIGHT);
    // The broker announces the module offline (retained) when this connection dies.
    options.set_last_will(
        Liveness::new(&config.root, config.heartbeat, config.telemetry.clone()).last_will(),
    );
    if let (Some(u), Some(p)) = (&config.username, &config.password) {
        options.set_credentials(u, p);
    }
    // Without TCP_NODELAY every request/response pays Nagle's ~40 ms per hop.
    let mut network = options.network_options();
    network.set_tcp_nodelay(true);
    options.set_network_options(network);
    Ok(AsyncClient::new(options, 256))
}

/// Runs the RPC responder until `shutdown` turns true. Reconnects by itself; the clean
/// session means subscriptions are renewed on every ConnAck. Also keeps the module's liveness
/// state on `{root}/state`: online on every ConnAck, a heartbeat every interval, offline on
/// a clean stop (the last will covers the unclean ones).
pub async fn run(
    config: MqttConfig,
    client: AsyncClient,
    mut event_loop: EventLoop,
    dispatcher: Arc<Dispatcher>,
    mut shutdown: watch::Receiver<bool>,
) {
    let topics = ModuleTopics::new(config.root.as_str());
    let filter = topics.methods_filter();
    let liveness = Liveness::new(&config.root, config.heartbeat, config.telemetry.clone());
    let mut heartbeat = tokio::time::interval(liveness.heartbeat());
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut connected = false;
    info!(broker = %format!("{}:{}", config.host, config.port), tls = config.tls, topic = %filter, "MQTT RPC starting");
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    if connected {
                        liveness.publish(&client, ModuleConnectionState::Offline);
                        // Let the event loop send the offline state before disconnecting.
                        let flush = async {
                            while let Ok(ev) = event_loop.poll().await {
                                if matches!(ev, Event::Incoming(Packet::PubAck(_))) {
                                    break;
                                }
                            }
                        };
                        let _ = tokio::time::timeout(Duration::from_secs(2), flush).await;
                    }
                    let _ = client.disconnect().await;
                    let _ = tokio::time::timeout(Duration::from_secs(1), event_loop.poll()).await;
                    break;
                }
            }
            _ = heartbeat.tick(), if connected => {
                liveness.publish(&client, ModuleConnectionState::Online);
            }
            event = event_loop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    info!("connected to MQTT broker");
                    if let Err(e) = client.subscribe(filter.clone(), QoS::AtLeastOnce).await {
                        warn!(error = %e, "subscribing to method topic failed");
                    }
                    connected = true;
                    heartbeat.reset();
                    liveness.publish(&client, ModuleConnectionState::Online);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic).to_string();
                    let Some(tail) = topics.method_of(&topic) else { continue };
                    let method = strip_version(tail).to_string();
                    let props = p.properties.clone().unwrap_or_default();
                    let Some(response_topic) = props.response_topic.clone() else {
                        debug!(%topic, "request without response topic ignored");
                        continue;
                    };
                    let client = client.clone();
                    let dispatcher = dispatcher.clone();
                    let payload = p.payload.clone();
                    tokio::spawn(async move {
                        let (status, body) = dispatcher.call(&method, &payload).await;
                        let props = PublishProperties {
                            correlation_data: props.correlation_data.clone(),
                            content_type: Some("application/json".into()),
                            user_properties: vec![(MQTT_STATUS_CODE_PROPERTY.into(), status.to_string())],
                            ..Default::default()
                        };
                        if let Err(e) = client
                            .publish_with_properties(response_topic, QoS::AtLeastOnce, false, Bytes::from(body), props)
                            .await
                        {
                            warn!(error = %e, %method, "publishing RPC response failed");
                        }
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    connected = false;
                    warn!(error = %e, "MQTT connection error; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let c = MqttConfig::from_url("mqtt://127.0.0.1:1884", "pub1").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 1884));
        let c = MqttConfig::from_url("tcp://u:p@broker", "x").unwrap();
        assert_eq!((c.username.as_deref(), c.port), (Some("u"), 1883));
        assert!(MqttConfig::from_url("mqtt://:12", "x").is_err());
        assert!(MqttConfig::from_url("mqtt://h:notaport", "x").is_err());
        let mut c = MqttConfig::from_url("mqtts://h", "x").unwrap();
        assert_eq!((c.tls, c.port), (true, 8883));
        c.tls_files.ca = Some("/nonexistent/ca.pem".into());
        let e = connect(&c).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("--mqtt-ca"), "{e}");
    }
}
