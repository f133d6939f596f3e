//! Command-line arguments of every `iiot` command, and their translation into the library
//! crates' configuration structs.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

/// No `Debug` here nor on the commands that take secrets (API key, broker and database URLs
/// with passwords, KEK): a derived one would print them.
#[derive(Parser)]
#[command(name = "iiot", version, about = "OPC UA industrial gateway")]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Everything in one process: simulated PLC, embedded MQTT broker, the module, the twin
    /// API and the vault.
    Up(UpArgs),
    /// The edge module: OPC Publisher compatible API over HTTP and MQTT.
    Module(Box<ModuleArgs>),
    /// The cloud REST service: registry of modules, applications and endpoints, and remote
    /// operations through the modules.
    TwinApi(Box<crate::cli_twin_api::TwinApiArgs>),
    /// The certificate authority and OPC UA Global Discovery Server core.
    Vault(Box<crate::cli_vault::VaultArgs>),
    /// The simulated PLC (OPC UA server).
    PlcSim(PlcSimArgs),
    /// Benchmarks that print the figures of README's performance table.
    Bench {
        #[command(subcommand)]
        command: crate::bench::BenchCommand,
    },
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Where state (PKI, keys) is kept between runs.
    #[arg(long, default_value = "iiot-data", env = "IIOT_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Simulated PLC OPC UA port [default: 50000, or a free port when 50000 is taken]. A port
    /// given here that is taken stops `up` with an error.
    #[arg(long)]
    pub plc_port: Option<u16>,
    /// Embedded MQTT broker port [default: 1883, or a free port when 1883 is taken, e.g. by
    /// Mosquitto].
    #[arg(long)]
    pub mqtt_port: Option<u16>,
    /// Module HTTP API port [default: 8082, or a free port when 8082 is taken].
    #[arg(long)]
    pub http_port: Option<u16>,
    /// Twin API (cloud REST service) HTTP port [default: 8080, or a free port when 8080 is
    /// taken].
    #[arg(long)]
    pub twin_port: Option<u16>,
    /// Vault (certificate authority) HTTP API port [default: 8081, or a free port when 8081 is
    /// taken].
    #[arg(long)]
    pub vault_port: Option<u16>,
    /// Address the HTTP API and broker listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
}

#[derive(Args)]
pub struct ModuleArgs {
    #[arg(long, default_value_t = 8082, env = "IIOT_HTTP_PORT")]
    pub http_port: u16,
    /// Address the HTTP API listens on.
    #[arg(long, default_value = "0.0.0.0", env = "IIOT_HTTP_HOST")]
    pub http_host: IpAddr,
    /// Key every API call must present as `Authorization: ApiKey <key>`.
    #[arg(long, env = "IIOT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Read the API key from this file instead.
    #[arg(long, env = "IIOT_API_KEY_FILE", conflicts_with = "api_key")]
    pub api_key_file: Option<PathBuf>,
    #[arg(long, default_value = "data/module", env = "IIOT_DATA_DIR")]
    pub data_dir: PathBuf,
    /// MQTT broker, e.g. mqtt://127.0.0.1:1883; without it the module serves HTTP only.
    #[arg(long, env = "IIOT_MQTT_URL", hide_env_values = true)]
    pub mqtt_url: Option<String>,
    /// Root of every MQTT topic (OPC Publisher's PublisherId).
    #[arg(long, default_value = "iiot-module", env = "IIOT_PUBLISHER_ID")]
    pub publisher_id: String,
    /// Seconds between the module's retained `{root}/state` heartbeats (liveness for the twin
    /// API; the broker's last will announces it offline).
    #[arg(long, default_value_t = 30, env = "IIOT_HEARTBEAT_INTERVAL")]
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
        visible_aliases = ["publishfile", "PublishedNodesFile"],
        env = "IIOT_PUBLISHED_NODES_FILE"
    )]
    pub published_nodes_file: Option<PathBuf>,
    /// Messaging mode of entries that do not set one: PubSub (OPC UA Part 14 JSON) or Samples.
    #[arg(long = "mm", visible_alias = "messagingmode", default_value = "PubSub")]
    pub messaging_mode: String,
    /// Size the server queue of nodes without `QueueSize` to hold every sample of one
    /// publishing interval and one more, ceil(publishing / sampling) + 1 (OPC Publisher's
    /// --aq, here on by default); `--aq false` gives them a queue of one. An explicit
    /// `QueueSize` always wins.
    #[arg(
        long = "aq",
        visible_alias = "autosetqueuesize",
        env = "IIOT_AUTO_SET_QUEUE_SIZE",
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
    #[arg(long, default_value = "5")]
    pub mqtt_version: String,
    /// Telemetry QoS: 1 (acknowledged, never lost) or 0.
    #[arg(long, default_value = "1")]
    pub qos: String,
    #[command(flatten)]
    pub mqtt_tls: MqttTlsArgs,
    /// Store-and-forward directory; default <data-dir>/outbox.
    #[arg(long)]
    pub outbox_dir: Option<PathBuf>,
    /// Bytes the outbox may hold while the broker is away.
    #[arg(long, default_value_t = 1 << 30)]
    pub outbox_max_bytes: u64,
    /// When the outbox is full: drop-oldest (keep the newest data) or reject-new.
    #[arg(long, default_value = "drop-oldest")]
    pub outbox_overflow: String,
}

impl ModuleArgs {
    pub fn into_config(self: Box<Self>) -> Result<iiot_module::ModuleConfig> {
        let api_key = match (self.api_key, self.api_key_file) {
            (Some(k), _) => k,
            (None, Some(path)) => std::fs::read_to_string(&path)
                .with_context(|| format!("reading --api-key-file {}", path.display()))?
                .trim()
                .to_string(),
            (None, None) => {
                bail!("an API key is required: --api-key, --api-key-file or IIOT_API_KEY")
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
        config.publisher.messaging_mode = match self.messaging_mode.to_ascii_lowercase().as_str() {
            "pubsub" => MessagingMode::PubSub,
            "samples" => MessagingMode::Samples,
            other => bail!("--mm {other}: use PubSub or Samples"),
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
        config.telemetry.version = Some(self.mqtt_version.parse().map_err(anyhow::Error::msg)?);
        config.telemetry.qos = Some(self.qos.parse().map_err(anyhow::Error::msg)?);
        config.outbox_dir = self.outbox_dir;
        config.outbox.max_bytes = self.outbox_max_bytes;
        config.outbox.overflow = self.outbox_overflow.parse().map_err(anyhow::Error::msg)?;
        Ok(config)
    }
}

/// TLS to the broker for `mqtts://` URLs; the module and the twin API take the same flags.
#[derive(Args, Debug)]
pub struct MqttTlsArgs {
    /// CA certificate (PEM) that signed the broker's certificate (mqtts://); the system CA
    /// bundle when absent.
    #[arg(long, env = "IIOT_MQTT_CA")]
    pub mqtt_ca: Option<PathBuf>,
    /// Client certificate (PEM) for brokers that require mutual TLS.
    #[arg(long, requires = "mqtt_key", env = "IIOT_MQTT_CERT")]
    pub mqtt_cert: Option<PathBuf>,
    /// Private key (PEM) of --mqtt-cert.
    #[arg(long, requires = "mqtt_cert", env = "IIOT_MQTT_KEY")]
    pub mqtt_key: Option<PathBuf>,
}

impl MqttTlsArgs {
    pub fn files(self) -> iiot_mqtt_tls::TlsFiles {
        iiot_mqtt_tls::TlsFiles {
            ca: self.mqtt_ca,
            cert: self.mqtt_cert,
            key: self.mqtt_key,
        }
    }
}

#[derive(Args, Debug)]
pub struct PlcSimArgs {
    #[arg(long, default_value_t = 50000)]
    pub port: u16,
    /// Host name or address used in endpoint URLs and bound to.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value = "plc-sim-pki")]
    pub pki_dir: PathBuf,
    #[arg(long, default_value_t = 50)]
    pub fast_nodes: u32,
    /// Milliseconds between updates of the fast nodes (at least 10; clients may sample the
    /// server that fast).
    #[arg(long, default_value_t = 1000)]
    pub fast_rate: u64,
    #[arg(long, default_value_t = 50)]
    pub slow_nodes: u32,
    /// Milliseconds between updates of the slow nodes (at least 10).
    #[arg(long, default_value_t = 10000)]
    pub slow_rate: u64,
    /// Folder tree DEPTHxBREADTH under `Tree`, e.g. 2x316 for ~100k leaves.
    #[arg(long)]
    pub tree: Option<String>,
    #[arg(long)]
    pub max_monitored_items_per_call: Option<u32>,
    #[arg(long)]
    pub max_nodes_per_browse: Option<u32>,
    #[arg(long)]
    pub max_nodes_per_read: Option<u32>,
    #[arg(long)]
    pub max_nodes_per_write: Option<u32>,
    #[arg(long)]
    pub max_nodes_per_method_call: Option<u32>,
    #[arg(long)]
    pub max_sessions: Option<u32>,
    /// Open TCP connections before new ones are refused (0: no limit).
    #[arg(long)]
    pub max_connections: Option<u32>,
    /// Sessions not yet activated before CreateSession is refused (0: no limit).
    #[arg(long)]
    pub max_unactivated_sessions: Option<u32>,
    /// A user as NAME:PASSWORD; repeat for more. Default: user1:password and user2:password1.
    #[arg(long = "user")]
    pub users: Vec<String>,
    /// Trust every client certificate (a simulator convenience; logged as a warning).
    #[arg(long)]
    pub auto_accept: bool,
}

impl PlcSimArgs {
    pub fn into_config(self) -> Result<iiot_plc_sim::PlcSimConfig> {
        use iiot_plc_sim::MIN_RATE_MS;
        for (flag, rate) in [
            ("--fast-rate", self.fast_rate),
            ("--slow-rate", self.slow_rate),
        ] {
            if rate < MIN_RATE_MS {
                bail!(
                    "{flag} {rate}: plc-sim lets clients sample at most every {MIN_RATE_MS} ms, \
                     so values changing faster would be skipped; use {MIN_RATE_MS} or more"
                );
            }
        }
        let mut c = iiot_plc_sim::PlcSimConfig {
            host: self.host,
            port: self.port,
            pki_dir: self.pki_dir,
            fast_nodes: self.fast_nodes,
            fast_rate_ms: self.fast_rate,
            slow_nodes: self.slow_nodes,
            slow_rate_ms: self.slow_rate,
            tree: self.tree.as_deref().map(parse_tree).transpose()?,
            auto_accept: self.auto_accept,
            ..Default::default()
        };
        if let Some(v) = self.max_monitored_items_per_call {
            c.max_monitored_items_per_call = v;
        }
        if let Some(v) = self.max_nodes_per_browse {
            c.max_nodes_per_browse = v;
        }
        if let Some(v) = self.max_nodes_per_read {
            c.max_nodes_per_read = v;
        }
        if let Some(v) = self.max_nodes_per_write {
            c.max_nodes_per_write = v;
        }
        if let Some(v) = self.max_nodes_per_method_call {
            c.max_nodes_per_method_call = v;
        }
        if let Some(v) = self.max_sessions {
            c.max_sessions = v;
        }
        if let Some(v) = self.max_connections {
            c.max_connections = v;
        }
        if let Some(v) = self.max_unactivated_sessions {
            c.max_unactivated_sessions = v;
        }
        if !self.users.is_empty() {
            c.users = self
                .users
                .iter()
                .map(|u| {
                    u.split_once(':')
                        .map(|(n, p)| (n.to_string(), p.to_string()))
                        .with_context(|| format!("--user '{u}' must be NAME:PASSWORD"))
                })
                .collect::<Result<_>>()?;
        }
        Ok(c)
    }
}

/// Parses `DEPTHxBREADTH`.
pub fn parse_tree(text: &str) -> Result<(u32, u32)> {
    let (d, b) = text
        .split_once(['x', 'X'])
        .with_context(|| format!("--tree '{text}' must be DEPTHxBREADTH, e.g. 2x316"))?;
    let d: u32 = d
        .trim()
        .parse()
        .with_context(|| format!("bad depth in --tree '{text}'"))?;
    let b: u32 = b
        .trim()
        .parse()
        .with_context(|| format!("bad breadth in --tree '{text}'"))?;
    if d == 0 || b == 0 {
        bail!("--tree '{text}': depth and breadth must be at least 1");
    }
    Ok((d, b))
}

/// OIDC access tokens for the REST services: without `--jwks` only API keys are accepted.
#[derive(Args, Debug, Clone)]
pub struct JwtArgs {
    /// The identity provider's JSON Web Key Set (a file; read again when a token names an
    /// unknown key id, so it can be replaced for key rotation).
    #[arg(long, value_name = "FILE", env = "IIOT_JWKS")]
    pub jwks: Option<PathBuf>,
    /// Required `iss` of tokens.
    #[arg(long, requires = "jwks", env = "IIOT_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` of tokens.
    #[arg(long, requires = "jwks", env = "IIOT_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Claim holding the roles (dots walk into objects, e.g. realm_access.roles).
    #[arg(long, default_value = "roles", env = "IIOT_JWT_ROLES_CLAIM")]
    pub jwt_roles_claim: String,
}

impl JwtArgs {
    pub fn validator(&self) -> Result<Option<std::sync::Arc<iiot_auth::JwtValidator>>> {
        let Some(path) = &self.jwks else {
            return Ok(None);
        };
        if self.jwt_issuer.is_none() && self.jwt_audience.is_none() {
            tracing::warn!("--jwks without --jwt-issuer or --jwt-audience: any token signed by those keys is accepted");
        }
        let settings = iiot_auth::JwtSettings {
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            roles_claim: self.jwt_roles_claim.clone(),
            ..Default::default()
        };
        let v = iiot_auth::JwtValidator::load(path, settings)
            .map_err(|e| anyhow::anyhow!("--jwks: {e}"))?;
        Ok(Some(std::sync::Arc::new(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Command {
        let argv = ["iiot"].iter().chain(args).copied();
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli.command,
            Err(e) => panic!("{e}"),
        }
    }

    fn module_config(args: &[&str]) -> iiot_module::ModuleConfig {
        let argv: Vec<&str> = ["module", "--api-key", "k"]
            .iter()
            .chain(args)
            .copied()
            .collect();
        match parse(&argv) {
            Command::Module(m) => m.into_config().expect("module config"),
            _ => panic!("not the module command"),
        }
    }

    #[test]
    fn aq_is_on_unless_turned_off() {
        assert!(module_config(&[]).publisher.auto_queue_size);
        assert!(module_config(&["--aq"]).publisher.auto_queue_size);
        assert!(!module_config(&["--aq", "false"]).publisher.auto_queue_size);
        assert!(
            !module_config(&["--autosetqueuesize=false"])
                .publisher
                .auto_queue_size
        );
    }

    #[test]
    fn plc_sim_refuses_a_fast_rate_below_ten_ms_naming_the_flag() {
        let config = |rate: &str| match parse(&["plc-sim", "--fast-rate", rate]) {
            Command::PlcSim(args) => args.into_config(),
            _ => panic!("not the plc-sim command"),
        };
        let e = config("5").unwrap_err().to_string();
        assert!(e.contains("--fast-rate 5") && e.contains("10 ms"), "{e}");
        assert_eq!(config("10").unwrap().fast_rate_ms, 10);
    }
}
