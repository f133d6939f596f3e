//! The module as an IoT Hub module (issue 17, part 6): one MQTT connection to a hub (ours, a
//! cloud IoT Hub, or an IoT Edge hub) with the module identity of a connection string. Over it
//! the OPC Publisher methods are direct methods (answered by the same `Dispatcher` as HTTP and
//! MQTT RPC) and the module reports OPC Publisher's identity properties (`__type__`), which
//! is how services find publishers among module identities.
//!
//! A hub takes one connection per identity, so the telemetry transport
//! (`publisher::mqtt_sink`) carries it all: [`HubLink`] gives it the options (a SAS token from
//! the connection string's key, valid for [`TOKEN_TTL`], fresh at every connect; the hub ends
//! the session when it expires and the transport reconnects), the subscriptions, the answers
//! to direct methods, and the module's device-to-cloud topic.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use iiot_api::iothub::connection_string::ConnectionString;
use iiot_api::iothub::{sas, topics};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::dispatcher::Dispatcher;

/// How long each SAS token is valid; the connection is renewed at three quarters of it.
pub const TOKEN_TTL: Duration = Duration::from_secs(3600);
/// The api-version the user name announces (IoT Hub accepts any it knows).
const API_VERSION: &str = "2021-04-12";
/// The MQTT port of IoT Hub and IoT Edge hubs (the SDKs' fixed port).
const DEFAULT_PORT: u16 = 8883;
/// Prefix of the twin GET that reads the configuration at connect.
const CONFIG_RID: &str = "config-";
/// Largest packet: IoT Hub's 256 KB message and a topic.
const MAX_PACKET: usize = 256 * 1024 + 16 * 1024;

/// How the module reaches its hub.
#[derive(Clone)]
pub struct IotHubSettings {
    pub connection: ConnectionString,
    /// CA certificates (PEM) the hub's certificate chains to; the system bundle otherwise.
    /// Under IoT Edge: where the workload API's trust bundle is written.
    pub ca: Option<PathBuf>,
    /// Under IoT Edge: the workload API that signs tokens and hands out the trust bundle.
    pub edge: Option<super::workload::EdgeEnvironment>,
}

impl std::fmt::Debug for IotHubSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IotHubSettings")
            .field("connection", &self.connection)
            .field("ca", &self.ca)
            .field("edge", &self.edge)
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
        Ok(Self {
            connection,
            ca,
            edge: None,
        })
    }

    /// The IoT Edge environment (as `create_from_edge_environment` reads it): the edge hub
    /// at `IOTEDGE_GATEWAYHOSTNAME`, tokens signed by the workload API, the trust bundle kept
    /// in `data_dir`.
    pub fn from_edge(env: super::workload::EdgeEnvironment, data_dir: &std::path::Path) -> Self {
        Self {
            connection: ConnectionString::without_key(
                &env.hub_host_name,
                &env.device_id,
                Some(&env.module_id),
                Some(&env.gateway_host_name),
            ),
            ca: Some(data_dir.join("iotedge-trust-bundle.pem")),
            edge: Some(env),
        }
    }

    /// A token valid from now for [`TOKEN_TTL`]: signed with the connection string's key, or
    /// by the workload API (which also refreshes the trust bundle file) under IoT Edge.
    pub async fn fresh_token(&self) -> Result<String, String> {
        let Some(edge) = &self.edge else {
            return self.token();
        };
        let bundle = edge.trust_bundle().await?;
        if let Some(path) = &self.ca {
            write_bundle(path, &bundle)?;
        }
        let expiry = time::OffsetDateTime::now_utc().unix_timestamp()
            + i64::try_from(TOKEN_TTL.as_secs()).unwrap_or(3600);
        let unsigned = sas::Unsigned::new(&self.connection.resource(), expiry);
        let signature = edge.sign(&unsigned.to_sign()).await?;
        Ok(unsigned.token(&signature, None))
    }

    /// Host and port to dial: the gateway (or hub) name, with a port when it names one.
    pub fn endpoint(&self) -> (String, u16) {
        let host = self.connection.endpoint_host();
        match host.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
            Some((h, Ok(port))) => (h.to_string(), port),
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

    /// MQTT 3.1.1 options for the identity with `token`.
    pub fn options(&self, token: String) -> Result<MqttOptions, String> {
        let (host, port) = self.endpoint();
        let mut o = MqttOptions::new(self.connection.client_id(), host, port);
        o.set_credentials(self.connection.username(API_VERSION), token);
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

/// Writes the trust bundle (public certificates) for the TLS transport to read.
fn write_bundle(path: &std::path::Path, pem: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, pem)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            format!(
                "writing the IoT Edge trust bundle to {}: {e}",
                path.display()
            )
        })
}

/// OPC Publisher's reported identity (services select publishers by `__type__`), and the
/// telemetry topic pattern whose topics the messages carry, so a service can still tell
/// writer groups apart.
fn identity_report(telemetry_topic: &str) -> serde_json::Value {
    json!({
        "__type__": "OpcPublisher",
        "__version__": "2.9",
        "__fullversion__": concat!("iiot ", env!("CARGO_PKG_VERSION")),
        "__telemetryTopic__": telemetry_topic,
    })
}

/// The module's side of its hub connection. A hub accepts one connection per identity, so
/// telemetry, direct methods and the twin share the telemetry transport's connection: it
/// asks here for its options (a fresh token on every connect), hands over what the hub sends,
/// and maps telemetry topics to the module's device-to-cloud topic.
pub struct HubLink {
    settings: IotHubSettings,
    dispatcher: Arc<Dispatcher>,
    rid: AtomicU64,
    /// The pattern of the broker topics telemetry would have (`--ttt`), reported.
    telemetry_topic: String,
    /// The desired `$version` whose `publishedNodes` was last applied.
    applied: AtomicU64,
    /// The token of the next connect (a credential: never shown).
    token: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for HubLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubLink")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl HubLink {
    pub fn new(
        settings: IotHubSettings,
        dispatcher: Arc<Dispatcher>,
        telemetry_topic: String,
    ) -> Self {
        Self {
            settings,
            dispatcher,
            rid: AtomicU64::new(0),
            telemetry_topic,
            applied: AtomicU64::new(0),
            token: std::sync::Mutex::new(None),
        }
    }

    /// Makes the token (and, under IoT Edge, fetches the trust bundle) for the next connect;
    /// the hub ends the session when the token expires and the transport reconnects.
    pub async fn prepare(&self) -> Result<(), String> {
        let token = self.settings.fresh_token().await?;
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
        Ok(())
    }

    /// The connection's options with the token [`HubLink::prepare`] made.
    pub fn mqtt_options(&self) -> Result<MqttOptions, String> {
        let token = self
            .token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| "no token prepared".to_string())?;
        self.settings.options(token)
    }

    pub fn describe(&self) -> String {
        let (host, port) = self.settings.endpoint();
        format!(
            "iothub://{host}:{port} as {}",
            self.settings.connection.client_id()
        )
    }

    /// After CONNACK: the subscriptions (again: the connection is a clean session) and the
    /// reported identity. QoS 0 for what the hub sends and for the report, so the telemetry
    /// transport's packet ids stay its own.
    pub async fn on_connected(&self, client: &AsyncClient) {
        info!(hub = %self.settings.connection.host_name, "connected to the IoT Hub");
        for filter in [
            "$iothub/methods/POST/#",
            "$iothub/twin/res/#",
            "$iothub/twin/PATCH/properties/desired/#",
        ] {
            if let Err(e) = client.subscribe(filter, QoS::AtMostOnce).await {
                warn!(error = %e, %filter, "subscribing failed");
            }
        }
        let n = self.rid.fetch_add(1, Ordering::Relaxed) + 1;
        if let Err(e) = client
            .publish(
                topics::reported_patch(&n.to_string()),
                QoS::AtMostOnce,
                false,
                identity_report(&self.telemetry_topic).to_string(),
            )
            .await
        {
            warn!(error = %e, "reporting the module's identity failed");
        }
        // The desired properties as they are now: a configuration set while the module was
        // away applies at connect.
        let n = self.rid.fetch_add(1, Ordering::Relaxed) + 1;
        if let Err(e) = client
            .publish(
                format!("$iothub/twin/GET/?$rid={CONFIG_RID}{n}"),
                QoS::AtMostOnce,
                false,
                " ",
            )
            .await
        {
            warn!(error = %e, "reading the module twin failed");
        }
    }

    /// Applies `publishedNodes` of the desired properties (a `publishednodes.json` array)
    /// through SetConfiguredEndpoints, once per desired version, and reports the outcome.
    fn apply_desired(&self, client: &AsyncClient, desired: serde_json::Value) {
        let version = desired
            .get("$version")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let Some(nodes) = desired
            .get("publishedNodes")
            .filter(|n| !n.is_null())
            .cloned()
        else {
            return;
        };
        if self.applied.fetch_max(version, Ordering::AcqRel) >= version && version != 0 {
            return;
        }
        let (client, dispatcher) = (client.clone(), self.dispatcher.clone());
        let rid = self.rid.fetch_add(1, Ordering::Relaxed) + 1;
        tokio::spawn(async move {
            let body = json!({ "endpoints": nodes }).to_string();
            let (status, answer) = dispatcher
                .call("SetConfiguredEndpoints", body.as_bytes())
                .await;
            let error = (status >= 300).then(|| {
                serde_json::from_slice::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|p| p.get("detail").cloned())
                    .unwrap_or(serde_json::Value::Null)
            });
            info!(
                version,
                status, "publishing configuration from the module twin applied"
            );
            let report = json!({ "publishedNodesStatus": {
                "version": version, "status": status, "error": error } });
            if let Err(e) = client
                .publish(
                    topics::reported_patch(&rid.to_string()),
                    QoS::AtMostOnce,
                    false,
                    report.to_string(),
                )
                .await
            {
                warn!(error = %e, "reporting the configuration's outcome failed");
            }
        });
    }

    /// Something the hub sent: a direct method is answered through the dispatcher.
    pub fn on_publish(&self, client: &AsyncClient, topic: &str, payload: Bytes) {
        if let Some((method, rid)) = topics::parse_method_request(topic) {
            let (client, dispatcher) = (client.clone(), self.dispatcher.clone());
            tokio::spawn(async move {
                let (status, body) = dispatcher.call(&method, &payload).await;
                let topic = topics::method_response(i32::from(status), &rid);
                if let Err(e) = client
                    .publish(topic, QoS::AtMostOnce, false, Bytes::from(body))
                    .await
                {
                    warn!(error = %e, %method, "answering a direct method failed");
                }
            });
        } else if topic.starts_with("$iothub/twin/PATCH/properties/desired/") {
            if let Ok(desired) = serde_json::from_slice::<serde_json::Value>(&payload) {
                self.apply_desired(client, desired);
            }
        } else if topic.starts_with("$iothub/twin/res/") {
            if !topic.starts_with("$iothub/twin/res/2") {
                warn!(%topic, "the hub refused a twin request");
            } else if topic.contains(&format!("$rid={CONFIG_RID}")) {
                if let Ok(mut twin) = serde_json::from_slice::<serde_json::Value>(&payload) {
                    self.apply_desired(client, twin["desired"].take());
                }
            }
        } else {
            debug!(%topic, "message from the hub ignored");
        }
    }

    /// The device-to-cloud topic of a telemetry message: JSON in UTF-8, as OPC Publisher
    /// sends it, with the topic the module would have used on a broker as a property, so
    /// consumers can still tell writer groups apart.
    pub fn telemetry_topic(&self, topic: &str) -> String {
        let c = &self.settings.connection;
        let id = topics::Identity {
            device_id: &c.device_id,
            module_id: c.module_id.as_deref(),
        };
        let bag = topics::PropertyBag(vec![
            ("$.ct".into(), Some("application/json".into())),
            ("$.ce".into(), Some("utf-8".into())),
            ("topic".into(), Some(topic.to_string())),
        ]);
        topics::telemetry(&id, &bag)
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
        let options = s.options(token.clone()).unwrap();
        assert_eq!(options.client_id(), "gw/pub");
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
