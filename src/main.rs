//! The `iiot` binary: parses the command line and composes the library crates.

mod allocator;
mod bench;
mod broker;
mod cli;
mod cli_twin_api;
mod cli_vault;
mod up;

use anyhow::Result;
use clap::Parser;

#[tokio::main]
async fn main() -> Result<()> {
    let cli = cli::Cli::parse();
    init_tracing(&cli.log);
    match cli.command {
        cli::Command::Up(args) => {
            allocator::tune_for_module();
            up::run(args).await
        }
        cli::Command::Module(args) => {
            allocator::tune_for_module();
            let handle = iiot_module::start(args.into_config()?).await?;
            println!("module API on http://{}", handle.http_addr);
            wait_for_shutdown().await;
            handle.shutdown().await;
            Ok(())
        }
        cli::Command::TwinApi(args) => cli_twin_api::run(*args).await,
        cli::Command::Vault(args) => cli_vault::run(*args).await,
        cli::Command::Bench { command } => bench::run(command).await,
        cli::Command::PlcSim(args) => {
            let sim = iiot_plc_sim::PlcSim::start(args.into_config()?).await?;
            println!("plc-sim listening on {}", sim.endpoint_url());
            wait_for_shutdown().await;
            sim.shutdown().await;
            Ok(())
        }
    }
}

fn init_tracing(filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{filter},{}", QUIET_TARGETS)));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

/// Libraries that log routine events at info or error level.
const QUIET_TARGETS: &str = "opcua_client=warn,opcua_core=warn,opcua_server=warn,\
opcua_crypto=warn,opcua_types=warn,rumqttd=warn,rumqttd::router=error";

pub async fn wait_for_shutdown() {
    shutdown_signal().await
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are in place when this returns, not
/// only once the future is first polled: a service that announces it is ready after calling
/// this cannot be killed by a signal sent right after the announcement.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::terminate())
            .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
    };
    async move {
        #[cfg(unix)]
        if let Ok((mut term, mut int)) = handlers {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
