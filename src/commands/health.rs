//! `iiot health`: the container image's HEALTHCHECK. It asks the service in the same container
//! for `/healthz`, so the image needs no curl; it reads the port and address from the same
//! `IIOT_HTTP_PORT`/`IIOT_HTTP_HOST` the service does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

#[derive(Args)]
pub struct HealthArgs {
    /// Port the service's HTTP API listens on.
    #[arg(long, default_value_t = 8082)]
    pub http_port: u16,
    /// Address the service listens on; an unspecified one (0.0.0.0, ::) is asked on loopback.
    #[arg(long, default_value = "127.0.0.1")]
    pub http_host: IpAddr,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
}

impl HealthArgs {
    /// The `/healthz` address: a service bound to every address is asked on loopback.
    pub fn url(&self) -> String {
        let host = match self.http_host {
            IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            a => a,
        };
        format!("http://{}/healthz", SocketAddr::new(host, self.http_port))
    }
}

/// Exits 0 when the service answers 2xx, 1 (with the reason on stderr) otherwise.
pub async fn run(args: HealthArgs) -> Result<()> {
    let url = args.url();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout.max(1)))
        .build()
        .context("HTTP client")?;
    let answer = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("{url} did not answer"))?;
    let status = answer.status();
    if !status.is_success() {
        bail!("{url} answered {status}");
    }
    println!("healthy: {url} answered {status}");
    Ok(())
}
