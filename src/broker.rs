//! The embedded MQTT broker (`rumqttd`) used by `iiot up`, so a newcomer needs no Mosquitto.

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::{bail, Result};

/// The one user name and password the broker accepts when it is reachable from other hosts:
/// whoever reaches it could otherwise write values and call methods through the module's RPC.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// Written by hand so that the password never reaches a log line.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}

/// Starts the broker on its own threads; it lives until the process exits. With credentials,
/// a connect without exactly that user name and password is refused.
pub fn start(listen: SocketAddr, credentials: Option<&Credentials>) -> Result<()> {
    // rumqttd reports a taken port only in its own thread's log: check first so the user gets
    // an error that names the flag to change.
    if std::net::TcpListener::bind(listen).is_err() {
        bail!(
            "MQTT port {} is already in use; choose another with --mqtt-port",
            listen.port()
        );
    }
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 16 * 1024 * 1024,
        max_inflight_count: 500,
        auth: credentials.map(|c| HashMap::from([(c.user.clone(), c.password.clone())])),
        external_auth: None,
        dynamic_filters: true,
    };
    let server = |name: &str| rumqttd::ServerSettings {
        name: name.to_string(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: connections.clone(),
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 1000,
            max_outgoing_packet_count: 1000,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: None,
        v5: Some(HashMap::from([("v5".to_string(), server("v5"))])),
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })?;
    Ok(())
}
