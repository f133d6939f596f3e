//! `iiot plc-sim`: its arguments and its run.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::args::parse_tree;

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
    /// A user with OPC UA Part 12's SecurityAdmin role: over SignAndEncrypt it may push a
    /// certificate and trust list (ServerConfiguration), as `iiot vault` does. Needs
    /// --security-admin-password-file.
    #[arg(long, requires = "security_admin_password_file")]
    pub security_admin: Option<String>,
    /// File holding the security administrator's password (one line).
    #[arg(long, requires = "security_admin")]
    pub security_admin_password_file: Option<std::path::PathBuf>,
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
        if let (Some(name), Some(file)) = (self.security_admin, self.security_admin_password_file) {
            let password = std::fs::read_to_string(&file)
                .with_context(|| format!("--security-admin-password-file {}", file.display()))?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            if password.is_empty() {
                bail!("--security-admin-password-file {} is empty", file.display());
            }
            c.security_admins = vec![(name, password)];
        }
        Ok(c)
    }
}

/// Starts the simulated PLC and serves until SIGTERM or SIGINT.
pub async fn run(args: PlcSimArgs) -> Result<()> {
    let sim = iiot_plc_sim::PlcSim::start(args.into_config()?).await?;
    println!("plc-sim listening on {}", sim.endpoint_url());
    crate::shutdown::wait_for_shutdown().await;
    sim.shutdown().await;
    Ok(())
}
