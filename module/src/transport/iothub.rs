//! The module as an IoT Hub module (issue 17, part 6): one MQTT connection to a hub (ours, a
//! cloud IoT Hub, or an IoT Edge hub) with the module identity of a connection string. Over it
//! the OPC Publisher methods are direct methods (answered by the same `Dispatcher` as HTTP and
//! MQTT RPC) and the module reports OPC Publisher's identity properties (`__type__`), which
//! is how services find publishers among module identities.
//!
//! The SAS token is made from the connection string's key, valid for [`TOKEN_TTL`], and the
//! connection is renewed with a fresh one before it expires (hubs end a session when its
//! token does).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use iiot_api::iothub::connection_string::ConnectionString;
use iiot_api::iothub::{sas, topics};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::dispatcher::Dispatcher;

/// How long each SAS token is valid; the connection is renewed at three quarters of it.
pub const TOKEN_TTL: Duration = Duration::from_secs(3600);
/// The api-version the user name announces (IoT Hub accepts any it knows).
const API_VERSION: &str = "2021-04-12";
/// The MQTT port of IoT Hub and IoT Edge hubs (the SDKs' fixed port).
const DEFAULT_PORT: u16 = 8883;
/// Largest packet: IoT Hub's 256 KB message and a topic.
const MAX_PACKET: usize = 256 * 1024 + 16 * 1024;

/// How the module reaches its hub.
#[derive(Clone)]
pub struct IotHubSettings {
    pub connection: ConnectionString,
    /// CA certificates (PEM) the hub's certificate chains to; the system bundle otherwise.
    pub ca: Option<PathBuf>,
}

impl std::fmt::Debug for IotHubSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IotHubSettings")
            .field("connection", &self.connection)
            .field("ca", &self.ca)
            .finish()
    }
}

impl IotHubSettings {
    /// Parses `--iothub-connection-string`; it must name a module.
    pub fn parse(connection_string: &str, ca: Option<PathBuf>) -> Result<Self, String> {
        let connection = ConnectionString::from_str(connection_string)
            .map_err(|e| format!("--iothub-connection-string: {e}"))?;
        if connection.module_id.is_none() {
            return Err("--iothub-connection-string must name a ModuleId: the module connects as an IoT Hub module".into());
        }
        if sas::key_bytes(connection.shared_access_key()).is_none() {
            return Err("--iothub-connection-string: SharedAccessKey is not base64".into());
        }
        Ok(Self { connection, ca })
    }

    /// Host and port to dial: the gateway (or hub) name, with a port when it names one.
    fn endpoint(&self) -> (String, u16) {
        let host = self.connection.endpoint_host();
        match host.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => {
                (h.to_string(), p.parse().unwrap_or(DEFAULT_PORT))
            }
            _ => (host.to_string(), DEFAULT_PORT),
        }
    }

    fn token(&self) -> Result<String, String> {
        let expiry = time::OffsetDateTime::now_utc().unix_timestamp()
            + i64::try_from(TOKEN_TTL.as_secs()).unwrap_or(3600);
        sas::sign(
            &self.connection.resource(),
            self.connection.shared_access_key(),
            expiry,
            None,
        )
        .ok_or_else(|| "cannot sign a SAS token with the connection string's key".to_string())
    }

    fn options(&self) -> Result<MqttOptions, String> {
        let (host, port) = self.endpoint();
        let mut o = MqttOptions::new(self.connection.client_id(), host, port);
        o.set_credentials(self.connection.username(API_VERSION), self.token()?);
        o.set_keep_alive(Duration::from_secs(60));
        // Subscriptions are made again on every CONNACK.
        o.set_clean_session(true);
        o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        let files = iiot_mqtt_tls::TlsFiles {
            ca: self.ca.clone(),
            cert: None,
            key: None,
        };
        let transport = files
            .transport(true)
            .map_err(|e| format!("--iothub-ca: {e}"))?;
        o.set_transport(transport);
        Ok(o)
    }
}

/// OPC Publisher's reported identity: services select publishers by `__type__`.
fn identity_report() -> serde_json::Value {
    json!({
        "__type__": "OpcPublisher",
        "__version__": "2.9",
        "__fullversion__": concat!("iiot ", env!("CARGO_PKG_VERSION")),
    })
}

/// Starts the connection; it reconnects by itself until `shutdown`.
pub fn spawn(
    settings: IotHubSettings,
    dispatcher: Arc<Dispatcher>,
    shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, String> {
    let options = settings.options()?;
    let (client, mut event_loop) = AsyncClient::new(options, 64);
    // Without TCP_NODELAY every method answer pays Nagle's ~40 ms.
    let mut network = event_loop.network_options();
    network.set_tcp_nodelay(true);
    event_loop.set_network_options(network);
    Ok(tokio::spawn(run(
        settings, client, event_loop, dispatcher, shutdown,
    )))
}

async fn run(
    settings: IotHubSettings,
    client: AsyncClient,
    mut event_loop: EventLoop,
    dispatcher: Arc<Dispatcher>,
    mut shutdown: watch::Receiver<bool>,
) {
    let rid = AtomicU64::new(0);
    let mut renew = tokio::time::interval(TOKEN_TTL * 3 / 4);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    renew.tick().await;
    let mut backoff = Duration::from_secs(1);
    let (host, port) = settings.endpoint();
    info!(hub = %settings.connection.host_name, endpoint = %format!("{host}:{port}"), client = %settings.connection.client_id(), "IoT Hub connection starting");
    loop {
        tokio::select! {
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
                let _ = client.disconnect().await;
                let _ = tokio::time::timeout(Duration::from_secs(1), event_loop.poll()).await;
                break;
            }
            _ = renew.tick() => {
                // A fresh token, used by the reconnect the disconnect causes.
                match settings.token() {
                    Ok(t) => {
                        event_loop
                            .mqtt_options
                            .set_credentials(settings.connection.username(API_VERSION), t);
                        let _ = client.disconnect().await;
                    }
                    Err(e) => warn!(error = %e, "renewing the IoT Hub token failed"),
                }
            }
            event = event_loop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_secs(1);
                    info!("connected to the IoT Hub");
                    for filter in ["$iothub/methods/POST/#", "$iothub/twin/res/#", "$iothub/twin/PATCH/properties/desired/#"] {
                        if let Err(e) = client.subscribe(filter, QoS::AtLeastOnce).await {
                            warn!(error = %e, %filter, "subscribing failed");
                        }
                    }
                    let n = rid.fetch_add(1, Ordering::Relaxed) + 1;
                    if let Err(e) = client
                        .publish(topics::reported_patch(&n.to_string()), QoS::AtLeastOnce, false, identity_report().to_string())
                        .await
                    {
                        warn!(error = %e, "reporting the module's identity failed");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Some((method, rid)) = topics::parse_method_request(&p.topic) {
                        let (client, dispatcher) = (client.clone(), dispatcher.clone());
                        tokio::spawn(async move {
                            let (status, body) = dispatcher.call(&method, &p.payload).await;
                            let topic = topics::method_response(i32::from(status), &rid);
                            if let Err(e) = client.publish(topic, QoS::AtLeastOnce, false, Bytes::from(body)).await {
                                warn!(error = %e, %method, "answering a direct method failed");
                            }
                        });
                    } else if p.topic.starts_with("$iothub/twin/res/") {
                        let ok = p.topic.starts_with("$iothub/twin/res/2");
                        if !ok {
                            warn!(topic = %p.topic, "the hub refused a twin request");
                        }
                    } else {
                        debug!(topic = %p.topic, "message from the hub ignored");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, retry_in = ?backoff, "IoT Hub connection lost");
                    // The next attempt carries a token valid for the whole TTL again.
                    if let Ok(t) = settings.token() {
                        event_loop
                            .mqtt_options
                            .set_credentials(settings.connection.username(API_VERSION), t);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn settings_need_a_module_and_dial_the_gateway() {
        let s = IotHubSettings::parse(
            &format!("HostName=hub1;DeviceId=gw;ModuleId=pub;SharedAccessKey={KEY};GatewayHostName=127.0.0.9:18883"),
            None,
        )
        .unwrap();
        assert_eq!(s.endpoint(), ("127.0.0.9".into(), 18883));
        let token = s.token().unwrap();
        let parsed = sas::SasToken::parse(&token).unwrap();
        assert_eq!(parsed.resource(), "hub1/devices/gw/modules/pub");
        parsed.verify(KEY, 0).unwrap();
        assert!(!format!("{s:?}").contains(KEY));
        let e = IotHubSettings::parse(
            &format!("HostName=h;DeviceId=d;SharedAccessKey={KEY}"),
            None,
        )
        .unwrap_err();
        assert!(e.contains("ModuleId"), "{e}");
        let e = IotHubSettings::parse("HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=%%%", None)
            .unwrap_err();
        assert!(e.contains("base64"), "{e}");
    }
}
