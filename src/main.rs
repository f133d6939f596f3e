//! The `iiot` binary: parses the command line and composes the library crates.

mod allocator;
mod args;
mod broker;
mod cli;
mod commands;
mod secrets;
mod shutdown;

use anyhow::Result;

#[tokio::main]
async fn main() -> Result<()> {
    let cli = cli::parse();
    init_tracing(&cli.log);
    match cli.command {
        cli::Command::Up(args) => {
            allocator::tune_for_module();
            commands::up::run(args).await
        }
        cli::Command::Module(args) => commands::module::run(args).await,
        cli::Command::TwinApi(args) => commands::twin_api::run(*args).await,
        cli::Command::Vault(args) => commands::vault::run(*args).await,
        cli::Command::Bench { command } => commands::bench::run(command).await,
        cli::Command::PlcSim(args) => commands::plc_sim::run(args).await,
        cli::Command::Health(args) => commands::health::run(args).await,
    }
}

fn init_tracing(filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{filter},{}", QUIET_TARGETS)));
    // Colours only on a terminal: container runtimes and journald keep the escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();
}

/// Libraries that log routine events at info or error level.
const QUIET_TARGETS: &str = "opcua_client=warn,opcua_core=warn,opcua_server=warn,\
opcua_crypto=warn,opcua_types=warn,rumqttd=warn,rumqttd::router=error";
