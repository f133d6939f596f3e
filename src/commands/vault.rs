//! Arguments and start-up of `iiot vault`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use iiot_vault::{ApiKeys, CertType, KekSource, VaultConfig};

#[derive(Args)]
pub struct VaultArgs {
    /// HTTP port of the REST API.
    #[arg(long, default_value_t = iiot_vault::DEFAULT_PORT)]
    pub http_port: u16,
    /// Address the REST API listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub http_host: IpAddr,
    /// Base URL applications reach the vault at; written into the CRL distribution point of
    /// every issued certificate (default http://127.0.0.1:<port>).
    #[arg(long)]
    pub public_url: Option<String>,
    /// Where the SQLite database (and, without --kek-file, the KEK) is kept.
    #[arg(long, default_value = "data/vault")]
    pub data_dir: PathBuf,
    /// PostgreSQL instead of SQLite, e.g. postgres://user@host/db.
    #[arg(long)]
    pub database_url: Option<String>,
    /// File holding the key-encryption key (64 hex digits); created with mode 0600 if missing.
    #[arg(long, conflicts_with = "kek")]
    pub kek_file: Option<PathBuf>,
    /// The key-encryption key itself (64 hex digits or base64); prefer the environment.
    #[arg(long)]
    pub kek: Option<String>,
    /// API key file: JSON array of {"name", "key", "roles"} (reader, writer, approver, admin).
    #[arg(long)]
    pub api_keys: PathBuf,
    /// Switch on approval at submission for this group (repeatable; off by default; switch it
    /// off with POST /v2/groups/{id} {"autoApprove": false}).
    #[arg(long = "auto-approve", value_name = "GROUP")]
    pub auto_approve: Vec<String>,
    /// Certificate types new groups get a CA for (comma separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "RsaSha256,EccNistP256,EccNistP384"
    )]
    pub cert_types: Vec<String>,
    /// RSA key size of CAs and the minimum for requests: 2048, 3072 or 4096.
    #[arg(long, default_value_t = 2048)]
    pub rsa_key_size: i64,
    /// Lifetime of new CA certificates in days.
    #[arg(long, default_value_t = 3650)]
    pub ca_lifetime_days: i64,
    /// Lifetime of issued certificates in days.
    #[arg(long, default_value_t = 730)]
    pub issued_lifetime_days: i64,
    /// Validity of each CRL in seconds (default 7 days); CRLs are re-signed at half of it.
    #[arg(long, default_value_t = 7 * 86_400)]
    pub crl_validity_secs: i64,
    /// Seconds between checks that re-sign CRLs before their nextUpdate.
    #[arg(long, default_value_t = 3600)]
    pub crl_refresh_secs: u64,
    /// Serve the OPC UA face (a Global Discovery Server, OPC UA Part 12) on this port
    /// (4842 by convention); not served when absent.
    #[arg(long)]
    pub opcua_port: Option<u16>,
    /// Address the OPC UA face listens on (default: --http-host).
    #[arg(long, requires = "opcua_port")]
    pub opcua_host: Option<IpAddr>,
    /// Host name applications reach the OPC UA face by, in its endpoint URL and certificate
    /// (default: the listen address, or localhost when that is 0.0.0.0).
    #[arg(long, requires = "opcua_port")]
    pub opcua_hostname: Option<String>,
    #[command(flatten)]
    pub jwt: crate::args::JwtArgs,
}

impl VaultArgs {
    pub(crate) fn config(self) -> Result<VaultConfig> {
        let keys = ApiKeys::load(&self.api_keys)?;
        let mut c = VaultConfig::new(keys);
        c.bind = SocketAddr::new(self.http_host, self.http_port);
        c.public_url = self.public_url;
        c.data_dir = self.data_dir;
        // Empty is no database (compose passes `IIOT_DATABASE_URL: ${IIOT_DATABASE_URL:-}`).
        c.database_url = self.database_url.filter(|u| !u.trim().is_empty());
        c.kek = match (self.kek_file, self.kek) {
            (Some(f), _) => Some(KekSource::File(f)),
            (None, Some(v)) => Some(KekSource::Value(v)),
            (None, None) => None,
        };
        c.auto_approve_groups = self.auto_approve;
        c.cert_types = self
            .cert_types
            .iter()
            .map(|t| {
                CertType::parse(t).with_context(|| {
                    format!(
                        "--cert-types: unknown type '{t}' (RsaSha256, EccNistP256, EccNistP384)"
                    )
                })
            })
            .collect::<Result<_>>()?;
        anyhow::ensure!(
            [2048, 3072, 4096].contains(&self.rsa_key_size),
            "--rsa-key-size must be 2048, 3072 or 4096"
        );
        c.rsa_key_size = self.rsa_key_size;
        anyhow::ensure!(
            self.ca_lifetime_days > 0,
            "--ca-lifetime-days must be positive"
        );
        anyhow::ensure!(
            self.issued_lifetime_days > 0,
            "--issued-lifetime-days must be positive"
        );
        anyhow::ensure!(
            self.crl_validity_secs > 0,
            "--crl-validity-secs must be positive"
        );
        anyhow::ensure!(
            self.crl_refresh_secs > 0,
            "--crl-refresh-secs must be positive"
        );
        c.ca_lifetime_days = self.ca_lifetime_days;
        c.issued_lifetime_days = self.issued_lifetime_days;
        c.crl_validity_secs = self.crl_validity_secs;
        c.crl_refresh_interval = Duration::from_secs(self.crl_refresh_secs);
        c.jwt = self.jwt.validator()?;
        if let Some(port) = self.opcua_port {
            let ip = self.opcua_host.unwrap_or(self.http_host);
            let hostname = match self.opcua_hostname {
                Some(h) if !h.trim().is_empty() => h,
                _ if ip.is_unspecified() => "localhost".to_string(),
                _ => ip.to_string(),
            };
            c.opcua = Some(iiot_vault::gds::GdsConfig {
                bind: SocketAddr::new(ip, port),
                hostname,
            });
        }
        Ok(c)
    }
}

pub async fn run(args: VaultArgs) -> Result<()> {
    let config = args.config()?;
    let mut handle = iiot_vault::start(config).await?;
    // SIGTERM (systemd, Docker, Kubernetes) as well as SIGINT, like the other services; in
    // place before the line below tells anyone the vault is ready.
    let shutdown = crate::shutdown::shutdown_signal();
    println!("vault listening on http://{}", handle.addr());
    if let Some(url) = handle.opcua_url() {
        println!("vault GDS listening on {url}");
    }
    tokio::select! {
        r = handle.wait() => r.context("vault HTTP server stopped")?,
        _ = shutdown => {
            tracing::info!("shutting down");
            handle.shutdown().await?;
        }
    }
    Ok(())
}
