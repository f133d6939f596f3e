//! Starting and stopping the module as one unit: client, session pool, dispatcher, transports.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

/// How long a stopping module waits for its tasks (writers flushing to the outbox, transports
/// closing) before it closes the sessions: well inside a container runtime's grace period.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

use iiot_mqtt_tls::{TlsError, TlsFiles};

use crate::api::topics::ModuleTopics;
use crate::discovery::events::EventSink;
use crate::discovery::Discovery;
use crate::dispatcher::Dispatcher;
use crate::opcua::client::{build_client, ClientSettings};
use crate::opcua::session_pool::{PoolConfig, SessionPool};
use crate::pki::Pki;
use crate::publisher::config_store::{self, ConfigError, ConfigStore};
use crate::publisher::engine::{self, PublisherSettings};
use crate::publisher::metrics::PublisherDiagnostics;
use crate::publisher::mqtt_sink::{self as telemetry, MqttVersion, Qos, TelemetryConfig};
use crate::publisher::outbox::{Outbox, OutboxConfig};
use crate::transport::{http, mqtt_rpc};

/// Everything the module needs to run; defaults live in `Default`.
#[derive(Clone)]
pub struct ModuleConfig {
    pub http_bind: SocketAddr,
    pub api_key: String,
    pub data_dir: PathBuf,
    /// `mqtt://host:port` (`mqtts://` for TLS); without it the module serves HTTP only.
    pub mqtt_url: Option<String>,
    /// CA and client certificate of `mqtts://`, for the RPC and the telemetry connection.
    pub mqtt_tls: TlsFiles,
    /// `{root}` of every MQTT topic.
    pub publisher_id: String,
    pub auto_accept: bool,
    pub application_uri: Option<String>,
    pub pool: PoolConfig,
    /// OPC Publisher's `--pf`; default `{data_dir}/publishednodes.json`.
    pub published_nodes_file: Option<PathBuf>,
    /// Topic templates, message size, default messaging mode.
    pub publisher: PublisherSettings,
    /// Store-and-forward; its directory defaults to `{data_dir}/outbox`.
    pub outbox: OutboxConfig,
    pub outbox_dir: Option<PathBuf>,
    /// How telemetry reaches the broker, on top of `mqtt_url`.
    pub telemetry: TelemetryOptions,
    /// Time between liveness heartbeats on `{root}/state` (default 30 s).
    pub heartbeat_interval: Duration,
    /// Enroll the module's certificate with this GDS (`--gds-url`).
    pub gds: Option<crate::enrollment::GdsSettings>,
    /// Connect to an IoT Hub (or IoT Edge hub) as a module: direct methods and reported
    /// properties over it.
    pub iothub: Option<crate::transport::iothub::IotHubSettings>,
}

/// Telemetry transport choices beyond the broker URL (command-line flags).
#[derive(Debug, Clone, Default)]
pub struct TelemetryOptions {
    pub version: Option<MqttVersion>,
    pub qos: Option<Qos>,
}

/// Written by hand so that the API key never reaches a log line.
impl std::fmt::Debug for ModuleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleConfig")
            .field("http_bind", &self.http_bind)
            .field("api_key", &"***")
            .field("data_dir", &self.data_dir)
            .field(
                "mqtt_url",
                &self.mqtt_url.as_ref().map(|u| mqtt_rpc::redact_url(u)),
            )
            .field("mqtt_tls", &self.mqtt_tls)
            .field("publisher_id", &self.publisher_id)
            .field("auto_accept", &self.auto_accept)
            .field("pool", &self.pool)
            .field("published_nodes_file", &self.published_nodes_file)
            .field("publisher", &self.publisher)
            .field("outbox", &self.outbox)
            .field("telemetry", &self.telemetry)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("gds", &self.gds)
            .field("iothub", &self.iothub)
            .finish()
    }
}

impl Default for ModuleConfig {
    fn default() -> Self {
        Self {
            http_bind: SocketAddr::from(([0, 0, 0, 0], 8082)),
            api_key: String::new(),
            data_dir: PathBuf::from("data/module"),
            mqtt_url: None,
            mqtt_tls: TlsFiles::default(),
            publisher_id: "iiot-module".into(),
            auto_accept: false,
            application_uri: None,
            pool: PoolConfig::default(),
            published_nodes_file: None,
            publisher: PublisherSettings::default(),
            outbox: OutboxConfig::default(),
            outbox_dir: None,
            telemetry: TelemetryOptions::default(),
            heartbeat_interval: crate::transport::liveness::DEFAULT_HEARTBEAT,
            gds: None,
            iothub: None,
        }
    }
}

/// Why the module could not start; each names what the user should change.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("an API key is required (--api-key or IIOT_API_KEY)")]
    NoApiKey,
    #[error("HTTP port {0} is already in use; choose another with --http-port")]
    PortInUse(u16),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("invalid --mqtt-url: {0}")]
    MqttUrl(String),
    #[error("TLS to the MQTT broker: {0}")]
    MqttTls(TlsError),
    #[error("cannot prepare data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("OPC UA client: {0}")]
    Client(String),
    #[error("telemetry: {0}")]
    Telemetry(String),
    #[error("publisher configuration: {0} (fix the file, or choose another with --pf)")]
    Config(ConfigError),
    #[error("GDS enrollment: {0} (check --gds-trust)")]
    Enrollment(String),
    #[error("IoT Hub: {0}")]
    IotHub(String),
}

/// A running module.
pub struct ModuleHandle {
    pub http_addr: SocketAddr,
    pub pki: Pki,
    pub pool: Arc<SessionPool>,
    /// What is published; the engine follows `config_store.subscribe()`.
    pub config_store: Arc<ConfigStore>,
    /// Counters the engine fills and `/metrics` and GetDiagnosticInfo report.
    pub diagnostics: Arc<PublisherDiagnostics>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ModuleHandle {
    /// Stops the transports and closes every OPC UA session.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        // One deadline for all tasks, not one each: the writers flush to the outbox and stop
        // in milliseconds, and a container runtime kills what outlives its grace period.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for t in self.tasks {
            let _ = tokio::time::timeout_at(deadline, t).await;
        }
        self.pool.close_all().await;
    }
}

pub async fn start(config: ModuleConfig) -> Result<ModuleHandle, StartError> {
    if config.api_key.trim().is_empty() {
        return Err(StartError::NoApiKey);
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| StartError::DataDir(config.data_dir.clone(), e))?;
    let config_store = ConfigStore::open(config.published_nodes_file.clone(), &config.data_dir)
        .map_err(StartError::Config)?;
    let diagnostics = PublisherDiagnostics::new();
    let telemetry_config = match (&config.iothub, &config.mqtt_url) {
        // The hub link is made once the dispatcher exists (below).
        (Some(_), _) => None,
        (None, Some(url)) => {
            let mut t = TelemetryConfig::from_url(url, &config.publisher_id)
                .map_err(StartError::MqttUrl)?;
            let o = &config.telemetry;
            if let Some(v) = o.version {
                t.version = v;
            }
            if let Some(q) = o.qos {
                t.qos = q;
            }
            t.tls_files = config.mqtt_tls.clone();
            Some(t)
        }
        (None, None) => None,
    };
    let mqtt = match &config.mqtt_url {
        Some(url) => {
            let mut c = mqtt_rpc::MqttConfig::from_url(url, &config.publisher_id)
                .map_err(StartError::MqttUrl)?;
            c.tls_files = config.mqtt_tls.clone();
            c.heartbeat = config.heartbeat_interval;
            c.telemetry = telemetry_config.is_some().then(|| {
                config
                    .publisher
                    .topics
                    .telemetry_pattern(&config.publisher_id)
            });
            Some(c)
        }
        None => None,
    };
    let listener = TcpListener::bind(config.http_bind)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => StartError::PortInUse(config.http_bind.port()),
            _ => StartError::Bind(config.http_bind, e),
        })?;
    let http_addr = listener
        .local_addr()
        .map_err(|e| StartError::Bind(config.http_bind, e))?;

    let pki_dir = config.data_dir.join("pki");
    let host = hostname();
    let settings = ClientSettings {
        application_name: "iiot module".into(),
        application_uri: config
            .application_uri
            .clone()
            .unwrap_or_else(|| format!("urn:{host}:iiot:module")),
        auto_accept: config.auto_accept,
        request_timeout: config.pool.request_timeout,
    };
    let client =
        build_client(&pki_dir, &settings).map_err(|e| StartError::Client(e.to_string()))?;
    let application_uri = settings.application_uri.clone();
    let pool = SessionPool::new(client, config.pool.clone());
    let pki = Pki::new(&pki_dir);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // The TLS files are checked here, before anything runs: a bad one stops the start.
    let mqtt = match mqtt {
        Some(c) => {
            c.tls_files.warn_if_unused(c.tls);
            let (client, event_loop) = mqtt_rpc::connect(&c).map_err(StartError::MqttTls)?;
            Some((c, client, event_loop))
        }
        None => None,
    };
    let events = match &mqtt {
        Some((c, client, _)) => {
            EventSink::mqtt(client.clone(), ModuleTopics::new(c.root.as_str()).events())
        }
        None => EventSink::log_only(),
    };
    let discovery = Discovery::new(pool.client().clone(), events, config.publisher_id.clone());
    let dispatcher = Arc::new(Dispatcher::new(
        pool.clone(),
        pki.clone(),
        discovery,
        config_store.clone(),
        diagnostics.clone(),
    ));

    let mut tasks =
        vec![config_store.spawn_watcher(config_store::POLL_INTERVAL, shutdown_rx.clone())];
    if let Some(gds) = config.gds.clone() {
        diagnostics
            .enrollment
            .set(crate::enrollment::Phase::Starting);
        let identity = crate::enrollment::Identity {
            application_uri,
            application_name: "iiot module".into(),
            product_uri: "urn:iiot:module".into(),
            host: host.clone(),
            pki_dir: pki_dir.clone(),
        };
        tasks.push(
            crate::enrollment::spawn(
                gds,
                identity,
                diagnostics.enrollment.clone(),
                shutdown_rx.clone(),
            )
            .map_err(StartError::Enrollment)?,
        );
    }
    let router = http::router(dispatcher.clone(), &config.api_key);
    let mut rx = shutdown_rx.clone();
    tasks.push(tokio::spawn(async move {
        let stop = async move {
            let _ = rx.wait_for(|v| *v).await;
        };
        if let Err(e) = http::serve(listener, router, stop).await {
            tracing::error!(error = %e, "HTTP API stopped");
        }
    }));
    // As an IoT Hub module, one connection carries telemetry, direct methods and the twin.
    let telemetry_config = match config.iothub.clone() {
        Some(hub) => {
            let pattern = config
                .publisher
                .topics
                .telemetry_pattern(&config.publisher_id);
            let link = crate::transport::iothub::HubLink::new(
                hub,
                dispatcher.clone(),
                pattern.as_str().to_string(),
            );
            Some(TelemetryConfig::for_hub(Arc::new(link)))
        }
        None => telemetry_config,
    };
    if let Some(t) = telemetry_config {
        let mut outbox_config = config.outbox.clone();
        outbox_config.dir = config
            .outbox_dir
            .clone()
            .unwrap_or_else(|| config.data_dir.join("outbox"));
        let outbox = Outbox::open(outbox_config, diagnostics.clone())
            .await
            .map_err(|e| StartError::Telemetry(format!("outbox: {e}")))?;
        tasks.push(telemetry::spawn(
            t,
            outbox.clone(),
            diagnostics.clone(),
            shutdown_rx.clone(),
        ));
        let mut settings = config.publisher.clone();
        settings.publisher_id = config.publisher_id.clone();
        tasks.push(engine::start(
            settings,
            pool.clone(),
            outbox,
            diagnostics.clone(),
            config_store.subscribe(),
            shutdown_rx.clone(),
        ));
        info!("publisher enabled");
    } else if !config_store.subscribe().borrow().is_empty() {
        tracing::warn!("nodes are configured but no --mqtt-url is given: nothing is published");
    }
    if let Some((mqtt, client, event_loop)) = mqtt {
        info!(root = %mqtt.root, "MQTT RPC enabled");
        tasks.push(tokio::spawn(mqtt_rpc::run(
            mqtt,
            client,
            event_loop,
            dispatcher.clone(),
            shutdown_rx.clone(),
        )));
    } else {
        info!("no --mqtt-url given: serving the HTTP API only");
    }
    info!(%http_addr, data_dir = %config.data_dir.display(), "module started");
    Ok(ModuleHandle {
        http_addr,
        pki,
        pool,
        config_store,
        diagnostics,
        shutdown: shutdown_tx,
        tasks,
    })
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
