//! Arguments and start-up of `iiot twin-api`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use iiot_twin_api::TwinApiConfig;

#[derive(Args)]
pub struct TwinApiArgs {
    /// HTTP port of the REST API.
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// Address the REST API (and the hub) listens on; 0.0.0.0 serves every interface.
    #[arg(long, visible_alias = "bind", default_value = "127.0.0.1")]
    pub http_host: IpAddr,
    /// Broker the modules use: mqtt://[user[:pass]@]host[:port], or mqtts:// for TLS.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub mqtt_url: String,
    #[command(flatten)]
    pub mqtt_tls: crate::args::MqttTlsArgs,
    /// Where the SQLite registry (twin-api.db) is kept.
    #[arg(long, default_value = "data/twin-api")]
    pub data_dir: PathBuf,
    /// JSON array of {"name", "key" | "keySha256", "roles": ["reader"|"writer"|"admin"]}.
    #[arg(long, value_name = "FILE")]
    pub api_keys: PathBuf,
    /// postgres://user@host/db to share one registry between replicas (default: SQLite).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Seconds a module may take to answer (a request's x-iiot-timeout-ms header overrides).
    #[arg(long, default_value_t = 10)]
    pub request_timeout: u64,
    #[command(flatten)]
    pub jwt: crate::args::JwtArgs,
    /// Serve HTTPS with this certificate chain (PEM, leaf first) instead of HTTP. Needs
    /// --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name devices and service clients know the hub by: HostName= of its connection
    /// strings and the host of its SAS tokens.
    #[arg(long, default_value = "localhost", value_name = "NAME")]
    pub hub_hostname: String,
    /// The hub's key-encryption key (64 hex digits; made at first start). Replicas on one
    /// database must share it. Default: hub.kek in --data-dir.
    #[arg(long, value_name = "FILE")]
    pub hub_kek_file: Option<PathBuf>,
    /// Port of the hub's device endpoint (IoT Hub's MQTT over TLS; devices dial 8883) on
    /// --http-host. Without it there is no device endpoint.
    #[arg(long, value_name = "PORT")]
    pub hub_port: Option<u16>,
    /// Server certificate chain (PEM) of the device endpoint. Default: issued at every start
    /// by a CA the hub makes once and writes to hub-ca.pem in --data-dir for devices to trust.
    #[arg(long, value_name = "FILE", requires = "hub_key")]
    pub hub_cert: Option<PathBuf>,
    /// The private key (PEM) of --hub-cert.
    #[arg(long, value_name = "FILE", requires = "hub_cert")]
    pub hub_key: Option<PathBuf>,
    /// PEM file of the CAs and CRLs that devices with certificateAuthority authentication
    /// chain to (e.g. the vault's); read again when it changes.
    #[arg(long, value_name = "FILE")]
    pub hub_trust: Option<PathBuf>,
    /// Most device connections at once.
    #[arg(long, default_value_t = 20_000)]
    pub hub_max_connections: usize,
    /// Hours device messages are kept for the routes (at most ten years).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=87_600))]
    pub hub_retention_hours: u64,
    /// Also publish every device message (QoS 1, at least once) on the broker of
    /// --mqtt-url, on this topic: `{deviceId}`, `{moduleId}` and `{topic}` (the message's
    /// `topic` property, the broker topic a module would have used, when it lies under
    /// `{deviceId}/`) are filled in.
    #[arg(long, value_parser = parse_route_topic)]
    pub hub_route_topic: Option<iiot_twin_api::hub::route::TopicTemplate>,
}

fn parse_route_topic(s: &str) -> Result<iiot_twin_api::hub::route::TopicTemplate, String> {
    iiot_twin_api::hub::route::TopicTemplate::parse(s)
}

impl TwinApiArgs {
    fn config(self) -> Result<TwinApiConfig> {
        let keys = iiot_twin_api::ApiKeys::load(&self.api_keys)
            .with_context(|| format!("--api-keys {}", self.api_keys.display()))?;
        anyhow::ensure!(
            self.request_timeout > 0,
            "--request-timeout must be positive"
        );
        let mut c = TwinApiConfig::new(keys);
        c.http_bind = SocketAddr::new(self.http_host, self.http_port);
        c.mqtt_url = self.mqtt_url;
        c.mqtt_tls = self.mqtt_tls.files();
        c.data_dir = self.data_dir;
        // Empty is no database (compose passes `IIOT_DATABASE_URL: ${IIOT_DATABASE_URL:-}`).
        c.database_url = self.database_url.filter(|u| !u.trim().is_empty());
        c.request_timeout = Duration::from_secs(self.request_timeout);
        c.jwt = self.jwt.validator()?;
        anyhow::ensure!(
            is_host_name(&self.hub_hostname),
            "--hub-hostname '{}' is not a host name",
            self.hub_hostname
        );
        anyhow::ensure!(
            self.hub_max_connections > 0 && self.hub_retention_hours > 0,
            "--hub-max-connections and --hub-retention-hours must be positive"
        );
        c.hub = iiot_twin_api::hub::HubConfig {
            hostname: self.hub_hostname,
            kek_file: self.hub_kek_file,
            device_port: self.hub_port,
            server_cert: self
                .hub_cert
                .zip(self.hub_key)
                .map(|(cert, key)| iiot_twin_api::hub::endpoint::certs::ServerFiles { cert, key }),
            trust: self.hub_trust,
            max_connections: self.hub_max_connections,
            retention: Duration::from_secs(self.hub_retention_hours * 3600),
            route_topic: self.hub_route_topic,
        };
        c.tls = self
            .tls_cert
            .zip(self.tls_key)
            .map(|(cert, key)| iiot_twin_api::tls::TlsFiles { cert, key });
        Ok(c)
    }
}

/// A DNS name or an IP address: what may stand in `HostName=` and a SAS resource.
fn is_host_name(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
        || (!s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }))
}

pub async fn run(args: TwinApiArgs) -> Result<()> {
    let config = args.config()?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let handle = iiot_twin_api::start(config).await?;
    println!("twin-api listening on {scheme}://{}", handle.http_addr);
    if let Some(addr) = handle.device_addr {
        println!("hub device endpoint on mqtts://{addr}");
    }
    crate::shutdown::wait_for_shutdown().await;
    tracing::info!("shutting down");
    handle.shutdown().await;
    Ok(())
}
