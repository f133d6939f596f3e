//! One broker connection of either MQTT version behind one small interface, so that the send
//! loop is written once. A connection is built fresh for every attempt and never reconnects by
//! itself: rumqttc would otherwise replay its own pending publishes next to the outbox's resend.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use std::sync::Arc;

use crate::transport::iothub::HubLink;

use super::{MqttVersion, Qos, TelemetryConfig};

/// What the send loop needs to know from the event loop.
#[derive(Debug)]
pub(super) enum Ev {
    Connected {
        receive_max: Option<u16>,
        max_packet_size: Option<u32>,
    },
    /// A publish was written; 0 for QoS 0.
    Written(u16),
    Acked {
        pkid: u16,
        /// The broker's refusal, and whether resending can never help.
        refused: Option<(String, bool)>,
    },
    /// The connection ended; `too_large` when rumqttc refused to write the next publish.
    Closed { error: String, too_large: bool },
}

enum Client {
    V5(v5::AsyncClient),
    V4(rumqttc::AsyncClient),
}

pub(super) struct Connection {
    client: Client,
    qos: Qos,
    poller: JoinHandle<()>,
    pub events: mpsc::Receiver<Ev>,
}

/// Highest packet size MQTT can express.
const MQTT_MAX_PACKET: usize = 268_435_455;

impl Connection {
    pub fn open(config: &TelemetryConfig, transport: rumqttc::Transport) -> Self {
        let cap = config.max_in_flight as usize + 16;
        let (tx, events) = mpsc::channel(cap.max(64));
        let (client, poller) = match config.version {
            MqttVersion::V5 => {
                let mut o = v5::MqttOptions::new(&config.client_id, &config.host, config.port);
                o.set_keep_alive(config.keep_alive);
                o.set_clean_start(true);
                o.set_outgoing_inflight_upper_limit(config.max_in_flight);
                o.set_connection_timeout(10);
                if let Some(u) = &config.username {
                    o.set_credentials(u, config.password.as_deref().unwrap_or_default());
                }
                o.set_transport(transport);
                let mut n = o.network_options();
                n.set_tcp_nodelay(true);
                o.set_network_options(n);
                let (c, el) = v5::AsyncClient::new(o, cap);
                (Client::V5(c), tokio::spawn(poll_v5(el, tx)))
            }
            MqttVersion::V311 if config.hub.is_some() => {
                let hub = config.hub.clone();
                let mut o = match hub.as_ref().map(|h| h.mqtt_options()) {
                    Some(Ok(o)) => o,
                    // The caller checked the options just before; report and let it retry.
                    other => {
                        let error = match other {
                            Some(Err(e)) => e,
                            _ => "no hub connection settings".to_string(),
                        };
                        let (c, _) = rumqttc::AsyncClient::new(
                            rumqttc::MqttOptions::new("unused", "unused", 1),
                            1,
                        );
                        let poller = tokio::spawn(async move {
                            let _ = tx
                                .send(Ev::Closed {
                                    error,
                                    too_large: false,
                                })
                                .await;
                        });
                        return Self {
                            client: Client::V4(c),
                            qos: config.qos,
                            poller,
                            events,
                        };
                    }
                };
                o.set_inflight(config.max_in_flight);
                let (c, mut el) = rumqttc::AsyncClient::new(o, cap);
                let mut n = el.network_options();
                n.set_tcp_nodelay(true);
                n.set_connection_timeout(10);
                el.set_network_options(n);
                let link = hub.map(|h| (h, c.clone()));
                (Client::V4(c), tokio::spawn(poll_v4(el, tx, link)))
            }
            MqttVersion::V311 => {
                let mut o = rumqttc::MqttOptions::new(&config.client_id, &config.host, config.port);
                o.set_keep_alive(config.keep_alive);
                o.set_clean_session(true);
                o.set_inflight(config.max_in_flight);
                // The 10 KiB default would refuse ordinary telemetry messages.
                o.set_max_packet_size(MQTT_MAX_PACKET, MQTT_MAX_PACKET);
                if let Some(u) = &config.username {
                    o.set_credentials(u, config.password.as_deref().unwrap_or_default());
                }
                o.set_transport(transport);
                let (c, mut el) = rumqttc::AsyncClient::new(o, cap);
                // In 3.1.1 the network options live on the event loop.
                let mut n = el.network_options();
                n.set_tcp_nodelay(true);
                n.set_connection_timeout(10);
                el.set_network_options(n);
                (Client::V4(c), tokio::spawn(poll_v4(el, tx, None)))
            }
        };
        Self {
            client,
            qos: config.qos,
            poller,
            events,
        }
    }

    /// Queues a publish without waiting; the request channel is sized above the window.
    pub fn publish(&self, topic: &str, payload: Bytes, retain: bool) -> Result<(), String> {
        match &self.client {
            Client::V5(c) => {
                let qos = match self.qos {
                    Qos::AtMostOnce => v5::mqttbytes::QoS::AtMostOnce,
                    Qos::AtLeastOnce => v5::mqttbytes::QoS::AtLeastOnce,
                };
                c.try_publish(topic, qos, retain, payload)
                    .map_err(|e| e.to_string())
            }
            Client::V4(c) => {
                let qos = match self.qos {
                    Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
                    Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
                };
                c.try_publish(topic, qos, retain, payload)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Sends DISCONNECT and gives the event loop a moment to write it.
    pub async fn close(mut self) {
        let _ = match &self.client {
            Client::V5(c) => c.try_disconnect().map_err(|_| ()),
            Client::V4(c) => c.try_disconnect().map_err(|_| ()),
        };
        let _ = tokio::time::timeout(Duration::from_millis(500), &mut self.poller).await;
        self.poller.abort();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

/// Size of a PUBLISH packet without properties, as the broker's maximum packet size counts it.
pub(super) fn publish_packet_size(
    version: MqttVersion,
    qos: Qos,
    topic: &str,
    payload: usize,
) -> usize {
    let mut remaining = 2 + topic.len() + payload;
    if qos == Qos::AtLeastOnce {
        remaining += 2;
    }
    if version == MqttVersion::V5 {
        remaining += 1; // property length 0
    }
    let len_len = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + len_len + remaining
}

async fn poll_v5(mut el: v5::EventLoop, tx: mpsc::Sender<Ev>) {
    use v5::mqttbytes::v5::{Packet, PubAckReason};
    loop {
        let ev = match el.poll().await {
            Ok(v5::Event::Incoming(Packet::ConnAck(ack))) => {
                let p = ack.properties.as_ref();
                Ev::Connected {
                    receive_max: p.and_then(|p| p.receive_max),
                    max_packet_size: p.and_then(|p| p.max_packet_size),
                }
            }
            Ok(v5::Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => Ev::Written(pkid),
            Ok(v5::Event::Incoming(Packet::PubAck(ack))) => {
                let refused = match ack.reason {
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers => None,
                    r @ (PubAckReason::NotAuthorized
                    | PubAckReason::TopicNameInvalid
                    | PubAckReason::PayloadFormatInvalid) => Some((format!("{r:?}"), true)),
                    r => Some((format!("{r:?}"), false)),
                };
                Ev::Acked {
                    pkid: ack.pkid,
                    refused,
                }
            }
            Ok(_) => continue,
            Err(e) => {
                let too_large = matches!(
                    e,
                    v5::ConnectionError::MqttState(v5::StateError::OutgoingPacketTooLarge { .. })
                );
                let _ = tx
                    .send(Ev::Closed {
                        error: e.to_string(),
                        too_large,
                    })
                    .await;
                return;
            }
        };
        if tx.send(ev).await.is_err() {
            return;
        }
    }
}

/// `hub`: the connection is an IoT Hub module's; what the hub sends goes to its link, and
/// the link's own publishes (QoS 0: method answers, reports) are not telemetry.
async fn poll_v4(
    mut el: rumqttc::EventLoop,
    tx: mpsc::Sender<Ev>,
    hub: Option<(Arc<HubLink>, rumqttc::AsyncClient)>,
) {
    use rumqttc::{Event, Outgoing, Packet};
    loop {
        let ev = match el.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if let Some((link, client)) = &hub {
                    let (link, client) = (link.clone(), client.clone());
                    tokio::spawn(async move { link.on_connected(&client).await });
                }
                Ev::Connected {
                    receive_max: None,
                    max_packet_size: None,
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if let Some((link, client)) = &hub {
                    link.on_publish(client, &p.topic, p.payload);
                }
                continue;
            }
            Ok(Event::Outgoing(Outgoing::Publish(0))) if hub.is_some() => continue,
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Ev::Written(pkid),
            Ok(Event::Incoming(Packet::PubAck(ack))) => Ev::Acked {
                pkid: ack.pkid,
                refused: None,
            },
            Ok(_) => continue,
            Err(e) => {
                let too_large = format!("{e:?}").contains("PacketTooLarge");
                let _ = tx
                    .send(Ev::Closed {
                        error: e.to_string(),
                        too_large,
                    })
                    .await;
                return;
            }
        };
        if tx.send(ev).await.is_err() {
            return;
        }
    }
}
