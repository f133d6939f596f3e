//! The cloud REST service (issue 4): a registry of modules (publishers), applications and
//! endpoints, and the twin operations (browse, read, write, call) carried to the module that
//! serves an endpoint over MQTT v5 RPC.
//!
//! Layers, outside in: `http` (routes, credential, body, problem+json via `error`) →
//! `registry` (rules: ids, discovery upserts, routing an endpoint to its module) → `store`
//! (sqlx `Any`: SQLite or PostgreSQL) and `rpc` (the one MQTT connection, correlation,
//! module state and discovery subscriptions) → `liveness` (module connection state).

pub mod error;
mod http;
pub mod hub;
pub mod ids;
pub mod liveness;
pub mod query;
pub mod registry;
pub mod rpc;
pub mod store;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use iiot_auth::Authenticator;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use error::{ApiError, TwinApiError};
pub use http::TIMEOUT_HEADER;
/// The credential types of the configuration, for callers that do not depend on iiot-auth.
pub use iiot_auth::{ApiKeys, Role};

use crate::liveness::LivenessTable;
use crate::registry::Registry;
use crate::rpc::MqttRpc;
use crate::store::Store;

/// Everything the service needs; defaults live in [`TwinApiConfig::new`].
#[derive(Clone)]
pub struct TwinApiConfig {
    pub http_bind: SocketAddr,
    /// `mqtt://[user[:pass]@]host[:port]` of the broker the modules use (`mqtts://` for TLS).
    pub mqtt_url: String,
    /// CA and client certificate of `mqtts://`.
    pub mqtt_tls: iiot_mqtt_tls::TlsFiles,
    /// Holds the SQLite registry (`twin-api.db`) unless `database_url` is given.
    pub data_dir: PathBuf,
    /// `postgres://…` (or `sqlite://…`) to use instead of the file in `data_dir`.
    pub database_url: Option<String>,
    pub api_keys: ApiKeys,
    /// How long a module may take to answer a request (the `x-iiot-timeout-ms` header
    /// overrides it per request, up to `max_request_timeout`).
    pub request_timeout: Duration,
    pub max_request_timeout: Duration,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// MQTT client id; unique per replica (default: `twin-api-<random>`).
    pub mqtt_client_id: Option<String>,
    /// Also accept OIDC access tokens checked against this JWKS.
    pub jwt: Option<Arc<iiot_auth::JwtValidator>>,
    /// Serve HTTPS with this certificate and key instead of HTTP.
    pub tls: Option<tls::TlsFiles>,
    /// The hub's name and key file.
    pub hub: hub::HubConfig,
}

impl TwinApiConfig {
    /// The defaults: port 8080 on the loopback interface (where to serve beyond this host is
    /// the operator's choice), broker on localhost:1883, `data/twin-api`.
    pub fn new(api_keys: ApiKeys) -> Self {
        Self {
            http_bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            mqtt_url: "mqtt://127.0.0.1:1883".into(),
            mqtt_tls: iiot_mqtt_tls::TlsFiles::default(),
            data_dir: PathBuf::from("data/twin-api"),
            database_url: None,
            api_keys,
            request_timeout: Duration::from_secs(10),
            max_request_timeout: Duration::from_secs(300),
            max_body_bytes: 1024 * 1024,
            mqtt_client_id: None,
            jwt: None,
            tls: None,
            hub: hub::HubConfig::default(),
        }
    }

    /// The database the registry lives in.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("twin-api.db").display()
            ),
        }
    }
}

/// Written by hand because both URLs may carry a password: they are shown redacted. The
/// destructuring names every field so that a new one cannot reach `Debug` unconsidered.
impl std::fmt::Debug for TwinApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use iiot_api::broker_url::redact_url;
        let Self {
            http_bind,
            mqtt_url,
            data_dir,
            database_url,
            api_keys,
            request_timeout,
            max_request_timeout,
            max_body_bytes,
            mqtt_client_id,
            jwt,
            mqtt_tls,
            tls,
            hub,
        } = self;
        f.debug_struct("TwinApiConfig")
            .field("http_bind", http_bind)
            .field("mqtt_url", &redact_url(mqtt_url))
            .field("data_dir", data_dir)
            .field("database_url", &database_url.as_deref().map(redact_url))
            .field("api_keys", api_keys)
            .field("request_timeout", request_timeout)
            .field("max_request_timeout", max_request_timeout)
            .field("max_body_bytes", max_body_bytes)
            .field("mqtt_client_id", mqtt_client_id)
            .field("jwt", jwt)
            .field("mqtt_tls", mqtt_tls)
            .field("tls", tls)
            .field("hub", hub)
            .finish()
    }
}

/// A running twin-api.
pub struct TwinApiHandle {
    pub http_addr: SocketAddr,
    /// The hub's device endpoint, when it was asked for.
    pub device_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    store: Store,
}

impl TwinApiHandle {
    /// Stops serving, disconnects from the broker and closes the database.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.store.close().await;
    }
}

pub async fn start(config: TwinApiConfig) -> Result<TwinApiHandle, TwinApiError> {
    // Also with an external database: the hub keeps its key file and connection string here.
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| TwinApiError::DataDir(config.data_dir.clone(), e))?;
    let url = config.database_url();
    let store = Store::open(&url)
        .await
        .map_err(|source| TwinApiError::Database {
            url: iiot_api::broker_url::redact_url(&url),
            source,
        })?;
    let tls = config.tls.as_ref().map(tls::server_config).transpose()?;
    if tls.is_none() && !config.http_bind.ip().is_loopback() {
        warn!(bind = %config.http_bind, "serving HTTP beyond this host: API keys, hub SAS tokens and the device keys the hub returns cross the network in clear; give --tls-cert/--tls-key");
    }
    let listener = TcpListener::bind(config.http_bind)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => TwinApiError::PortInUse(config.http_bind.port()),
            _ => TwinApiError::Bind(config.http_bind, e),
        })?;
    let http_addr = listener
        .local_addr()
        .map_err(|e| TwinApiError::Bind(config.http_bind, e))?;

    let liveness = Arc::new(LivenessTable::default());
    let (events_tx, mut events_rx) = rpc::event_queue::channel(rpc::event_queue::CAPACITY);
    let client_id = config
        .mqtt_client_id
        .clone()
        .unwrap_or_else(|| format!("twin-api-{}", uuid::Uuid::new_v4().simple()));
    let (rpc, mqtt_task) = MqttRpc::new(
        &config.mqtt_url,
        &config.mqtt_tls,
        &client_id,
        liveness.clone(),
        events_tx,
    )?;
    let registry = Arc::new(Registry::new(store.clone(), liveness));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let hub = hub::Hub::open(
        store.pool().clone(),
        &url,
        &config.data_dir,
        &config.hub,
        http_addr.port(),
        shutdown_rx.clone(),
    )
    .await?;
    hub.link_publishers(hub::publishers::PublisherLink {
        liveness: rpc.liveness.clone(),
        registry: registry.clone(),
        rpc: rpc.clone(),
    });
    rpc.use_hub(hub.clone());
    let auth = Arc::new(match &config.jwt {
        Some(jwt) => Authenticator::new(config.api_keys.clone()).with_jwt(jwt.clone()),
        None => Authenticator::new(config.api_keys.clone()),
    });

    let state = http::AppState {
        registry: registry.clone(),
        rpc: rpc.clone(),
        auth: auth.clone(),
        request_timeout: config.request_timeout,
        max_request_timeout: config.max_request_timeout,
    };
    let app = http::router(state, hub::routes(hub.clone(), auth), config.max_body_bytes);
    let mut rx = shutdown_rx.clone();
    let mut tasks = vec![tokio::spawn(async move {
        let stop = async move {
            let _ = rx.wait_for(|v| *v).await;
        };
        let served = match tls {
            Some(tls) => match tls::TlsListener::new(listener, tls) {
                Ok(listener) => {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await
                }
                Err(e) => Err(e),
            },
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
            }
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    })];
    tasks.push(tokio::spawn(rpc.run(mqtt_task, shutdown_rx.clone())));
    tasks.extend(hub.take_tasks());
    if let Some(template) = config.hub.route_topic.clone() {
        hub::route::prepare(&hub).await?;
        let options = rpc::broker_options(
            &config.mqtt_url,
            &config.mqtt_tls,
            &format!("{client_id}-route"),
        )?;
        tasks.push(tokio::spawn(hub::route::run(
            hub.clone(),
            template,
            options,
            url.clone(),
            shutdown_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(
        hub.clone()
            .prune_messages(config.hub.retention, shutdown_rx.clone()),
    ));
    // Message streams end when the service stops, so the HTTP server can finish.
    let (stopping, mut rx) = (hub.clone(), shutdown_rx.clone());
    tasks.push(tokio::spawn(async move {
        let _ = rx.wait_for(|v| *v).await;
        stopping.messages.stop();
    }));
    let device_addr = match config.hub.device_port {
        Some(port) => {
            let endpoint = hub::endpoint::start(
                hub.clone(),
                &hub::endpoint::EndpointConfig {
                    bind: SocketAddr::new(config.http_bind.ip(), port),
                    server: config.hub.server_cert.clone(),
                    trust: config.hub.trust.clone(),
                    max_connections: config.hub.max_connections,
                },
                &config.data_dir,
                shutdown_rx.clone(),
            )
            .await?;
            tasks.push(endpoint.task);
            Some(endpoint.addr)
        }
        None => None,
    };
    // Discovery events and module announcements, applied in arrival order.
    let mut rx = shutdown_rx;
    tasks.push(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = async { let _ = rx.wait_for(|v| *v).await; } => break,
                event = events_rx.recv() => match event {
                    Some(e) => {
                        if let Err(e) = registry.apply(e).await {
                            warn!(error = %e, "applying a module event failed");
                        }
                    }
                    None => break,
                }
            }
        }
    }));
    info!(%http_addr, mqtt = %iiot_api::broker_url::redact_url(&config.mqtt_url), "twin-api started");
    Ok(TwinApiHandle {
        http_addr,
        device_addr,
        shutdown: shutdown_tx,
        tasks,
        store,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_the_config_hides_broker_and_database_passwords() {
        let keys = ApiKeys::parse(
            r#"[{"name": "ops", "key": "key-s3cret-0123456789", "roles": ["admin"]}]"#,
        )
        .expect("key file");
        let mut config = TwinApiConfig::new(keys);
        config.mqtt_url = "mqtt://u:s3cret@h".into();
        config.database_url = Some("postgres://u:s3cret@h/db".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        // Still useful for diagnosis: who and where.
        assert!(shown.contains("mqtt://u:***@h"), "{shown}");
        assert!(shown.contains("postgres://u:***@h/db"), "{shown}");
    }
}
