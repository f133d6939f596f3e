//! `iiot module`: its arguments and its run.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use iiot_module::publisher::mqtt_sink::{MqttVersion, Qos};
use iiot_module::publisher::outbox::OverflowPolicy;

use crate::args::MqttTlsArgs;

/// `--mm`: how entries without a MessagingMode are published.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MessagingModeArg {
    /// OPC UA Part 14 PubSub JSON network messages.
    #[value(name = "PubSub")]
    PubSub,
    /// OPC Publisher's flat samples.
    #[value(name = "Samples")]
    Samples,
}

/// `--mqtt-version` of the telemetry connection.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MqttVersionArg {
    #[value(name = "5", alias = "v5")]
    V5,
    #[value(name = "311", alias = "3.1.1")]
    V311,
}

/// `--qos` of telemetry.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum QosArg {
    #[value(name = "0")]
    AtMostOnce,
    #[value(name = "1")]
    AtLeastOnce,
}

/// `--outbox-overflow`: what a full outbox does.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OverflowArg {
    DropOldest,
    RejectNew,
}

#[derive(Args)]
pub struct ModuleArgs {
    #[arg(long, default_value_t = 8082)]
    pub http_port: u16,
    /// Address the HTTP API listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub http_host: IpAddr,
    /// Key every API call must present as `Authorization: ApiKey <key>`.
    #[arg(long)]
    pub api_key: Option<String>,
    /// Read the API key from this file instead.
    #[arg(long, conflicts_with = "api_key")]
    pub api_key_file: Option<PathBuf>,
    #[arg(long, default_value = "data/module")]
    pub data_dir: PathBuf,
    /// MQTT broker, e.g. mqtt://127.0.0.1:1883; without it the module serves HTTP only.
    #[arg(long)]
    pub mqtt_url: Option<String>,
    /// Root of every MQTT topic (OPC Publisher's PublisherId).
    #[arg(long, default_value = "iiot-module")]
    pub publisher_id: String,
    /// Seconds between the module's retained `{root}/state` heartbeats (liveness for the twin
    /// API; the broker's last will announces it offline).
    #[arg(long, default_value_t = 30)]
    pub heartbeat_interval: u64,
    /// Trust every server certificate without review (not for production).
    #[arg(long)]
    pub auto_accept: bool,
    /// Most OPC UA sessions open at once.
    #[arg(long, default_value_t = 100)]
    pub max_sessions: usize,
    /// Seconds an idle session stays open for the next call.
    #[arg(long, default_value_t = 60)]
    pub session_linger: u64,
    /// The publishednodes.json to publish from and persist API changes to (OPC Publisher's
    /// -f/--pf/--publishfile/--PublishedNodesFile); default <data-dir>/publishednodes.json.
    #[arg(
        short = 'f',
        long = "pf",
        visible_aliases = ["publishfile", "PublishedNodesFile"]
    )]
    pub published_nodes_file: Option<PathBuf>,
    /// Messaging mode of entries that do not set one: PubSub (OPC UA Part 14 JSON) or Samples.
    #[arg(
        long = "mm",
        visible_alias = "messagingmode",
        value_enum,
        ignore_case = true,
        default_value = "PubSub"
    )]
    pub messaging_mode: MessagingModeArg,
    /// Size the server queue of nodes without `QueueSize` to hold every sample of one
    /// publishing interval and one more, ceil(publishing / sampling) + 1 (OPC Publisher's
    /// --aq, here on by default); `--aq false` gives them a queue of one. An explicit
    /// `QueueSize` always wins.
    #[arg(
        long = "aq",
        visible_alias = "autosetqueuesize",
        value_name = "BOOL",
        num_args = 0..=1,
        default_value = "true",
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub auto_queue_size: bool,
    /// Largest network message in bytes; bigger batches are split without dropping values.
    #[arg(long = "ms", visible_alias = "maxmessagesize", default_value_t = 256 * 1024)]
    pub max_message_size: usize,
    /// Root topic template (`{PublisherId}`, `{SiteId}`).
    #[arg(
        long = "rtt",
        visible_alias = "roottopictemplate",
        default_value = "{PublisherId}"
    )]
    pub root_topic_template: String,
    /// Telemetry topic template (`{RootTopic}`, `{WriterGroup}`, `{DataSetWriter}`, `{Encoding}`, ...).
    #[arg(
        long = "ttt",
        visible_alias = "telemetrytopictemplate",
        default_value = "{RootTopic}/messages/{WriterGroup}"
    )]
    pub telemetry_topic_template: String,
    /// Retained `ua-metadata` topic template (`{TelemetryTopic}` and the telemetry variables).
    #[arg(
        long = "mdt",
        visible_alias = "metadatatopictemplate",
        default_value = "{TelemetryTopic}/metadata/{DataSetWriter}"
    )]
    pub metadata_topic_template: String,
    /// Site id for `{SiteId}` in topic templates.
    #[arg(long = "site")]
    pub site_id: Option<String>,
    /// Do not send `ua-metadata` messages.
    #[arg(long = "dm", visible_alias = "disablemetadata")]
    pub disable_metadata: bool,
    /// MQTT protocol for telemetry: 5 or 311.
    #[arg(long, value_enum, default_value = "5")]
    pub mqtt_version: MqttVersionArg,
    /// Telemetry QoS: 1 (acknowledged, never lost) or 0.
    #[arg(long, value_enum, default_value = "1")]
    pub qos: QosArg,
    #[command(flatten)]
    pub mqtt_tls: MqttTlsArgs,
    /// Store-and-forward directory; default <data-dir>/outbox.
    #[arg(long)]
    pub outbox_dir: Option<PathBuf>,
    /// Bytes the outbox may hold while the broker is away.
    #[arg(long, default_value_t = 1 << 30)]
    pub outbox_max_bytes: u64,
    /// When the outbox is full: drop-oldest (keep the newest data) or reject-new.
    #[arg(long, value_enum, default_value = "drop-oldest")]
    pub outbox_overflow: OverflowArg,
    /// Enroll the module's certificate with this Global Discovery Server (OPC UA Part 12),
    /// e.g. opc.tcp://vault:4842/ (`iiot vault --opcua-port`).
    #[arg(long, requires_all = ["gds_user", "gds_password_file"])]
    pub gds_url: Option<String>,
    /// GDS user name (for the vault: an API key's name, with the writer role).
    #[arg(long, requires = "gds_url")]
    pub gds_user: Option<String>,
    /// File holding the GDS password (for the vault: the API key).
    #[arg(long, requires = "gds_url")]
    pub gds_password_file: Option<PathBuf>,
    /// Certificate to trust for the first contact with the GDS (its server certificate, or
    /// its CA with the CA's CRL in one PEM file); repeatable. Afterwards the GDS trust list is.
    #[arg(long, requires = "gds_url")]
    pub gds_trust: Vec<PathBuf>,
    /// Seconds between FinishRequest calls while the signing request waits for approval.
    #[arg(long, default_value_t = 5)]
    pub gds_poll_secs: u64,
    /// Seconds between renewal checks and trust list (CRL) refreshes.
    #[arg(long, default_value_t = 3600)]
    pub gds_refresh_secs: u64,
    /// Connect to an IoT Hub as this module identity:
    /// HostName=…;DeviceId=…;ModuleId=…;SharedAccessKey=…[;GatewayHostName=…]. The OPC
    /// Publisher methods are then also direct methods. Prefer the environment variable: a
    /// command line is visible to other users of the machine.
    #[arg(long, value_name = "CONNECTION_STRING")]
    pub iothub_connection_string: Option<String>,
    /// CA certificates (PEM) of the hub's TLS certificate (e.g. hub-ca.pem of `iiot
    /// twin-api`); default: the system bundle.
    #[arg(long, value_name = "FILE", requires = "iothub_connection_string")]
    pub iothub_ca: Option<PathBuf>,
}

impl ModuleArgs {
    pub fn into_config(self: Box<Self>) -> Result<iiot_module::ModuleConfig> {
        let api_key = match (self.api_key, self.api_key_file) {
            (Some(k), _) => k,
            (None, Some(path)) => std::fs::read_to_string(&path)
                .with_context(|| format!("reading --api-key-file {}", path.display()))?
                .trim()
                .to_string(),
            // As OPC Publisher does, a module given no key makes one (kept in the data
            // directory, mode 0600) and says where; callers read it from there.
            (None, None) => {
                let path = self.data_dir.join("api-key");
                std::fs::create_dir_all(&self.data_dir)
                    .with_context(|| format!("creating {}", self.data_dir.display()))?;
                let key = crate::secrets::load_or_create_key(&path)?;
                tracing::info!(file = %path.display(), "API key (none was given) is kept in this file");
                key
            }
        };
        let mut config = iiot_module::ModuleConfig {
            http_bind: SocketAddr::new(self.http_host, self.http_port),
            api_key,
            data_dir: self.data_dir,
            mqtt_url: self.mqtt_url,
            mqtt_tls: self.mqtt_tls.files(),
            publisher_id: self.publisher_id,
            auto_accept: self.auto_accept,
            published_nodes_file: self.published_nodes_file,
            ..Default::default()
        };
        if self.heartbeat_interval == 0 {
            bail!("--heartbeat-interval must be at least 1 second");
        }
        config.heartbeat_interval = std::time::Duration::from_secs(self.heartbeat_interval);
        config.pool.max_sessions = self.max_sessions.max(1);
        config.pool.linger = std::time::Duration::from_secs(self.session_linger);
        use iiot_module::publisher::plan::MessagingMode;
        config.publisher.messaging_mode = match self.messaging_mode {
            MessagingModeArg::PubSub => MessagingMode::PubSub,
            MessagingModeArg::Samples => MessagingMode::Samples,
        };
        config.publisher.auto_queue_size = self.auto_queue_size;
        if self.max_message_size < 1024 {
            bail!("--ms must be at least 1024 bytes");
        }
        config.publisher.max_message_size = self.max_message_size;
        config.publisher.topics.root = self.root_topic_template;
        config.publisher.topics.telemetry = self.telemetry_topic_template;
        config.publisher.topics.metadata = self.metadata_topic_template;
        config.publisher.topics.site_id = self.site_id;
        config.publisher.send_metadata = !self.disable_metadata;
        config.telemetry.version = Some(match self.mqtt_version {
            MqttVersionArg::V5 => MqttVersion::V5,
            MqttVersionArg::V311 => MqttVersion::V311,
        });
        config.telemetry.qos = Some(match self.qos {
            QosArg::AtMostOnce => Qos::AtMostOnce,
            QosArg::AtLeastOnce => Qos::AtLeastOnce,
        });
        use iiot_module::transport::{iothub::IotHubSettings, workload::EdgeEnvironment};
        if let Some(cs) = &self.iothub_connection_string {
            let settings =
                IotHubSettings::parse(cs, self.iothub_ca.clone()).map_err(anyhow::Error::msg)?;
            // A CA file that cannot be used is an error now, not at the first connect.
            settings
                .options(String::new())
                .map_err(anyhow::Error::msg)?;
            config.iothub = Some(settings);
        } else if let Some(env) = EdgeEnvironment::from_process().map_err(anyhow::Error::msg)? {
            // Under IoT Edge: the environment edgeAgent gives every module.
            tracing::info!(hub = %env.hub_host_name, device = %env.device_id, module = %env.module_id, "IoT Edge environment found; connecting to the edge hub");
            config.iothub = Some(IotHubSettings::from_edge(env, &config.data_dir));
        }
        if let Some(url) = self.gds_url {
            let password_file = self
                .gds_password_file
                .context("--gds-password-file is required with --gds-url")?;
            let password = std::fs::read_to_string(&password_file)
                .with_context(|| {
                    format!("reading --gds-password-file {}", password_file.display())
                })?
                .trim()
                .to_string();
            if self.gds_poll_secs == 0 || self.gds_refresh_secs == 0 {
                bail!("--gds-poll-secs and --gds-refresh-secs must be at least 1");
            }
            config.gds = Some(iiot_module::enrollment::GdsSettings {
                url,
                user: self
                    .gds_user
                    .context("--gds-user is required with --gds-url")?,
                password,
                trust: self.gds_trust,
                poll_interval: std::time::Duration::from_secs(self.gds_poll_secs),
                refresh_interval: std::time::Duration::from_secs(self.gds_refresh_secs),
            });
        }
        config.outbox_dir = self.outbox_dir;
        config.outbox.max_bytes = self.outbox_max_bytes;
        config.outbox.overflow = match self.outbox_overflow {
            OverflowArg::DropOldest => OverflowPolicy::DropOldest,
            OverflowArg::RejectNew => OverflowPolicy::RejectNew,
        };
        Ok(config)
    }
}

/// Starts the module and serves until SIGTERM or SIGINT.
pub async fn run(args: Box<ModuleArgs>) -> Result<()> {
    crate::allocator::tune_for_module();
    let handle = iiot_module::start(args.into_config()?).await?;
    println!("module API on http://{}", handle.http_addr);
    crate::shutdown::wait_for_shutdown().await;
    handle.shutdown().await;
    Ok(())
}
