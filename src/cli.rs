//! The `iiot` command line: the global flags and one subcommand per file of `commands/`,
//! each of which owns its arguments and its run.

use clap::{Parser, Subcommand};

use crate::commands;

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
    Up(commands::up::UpArgs),
    /// The edge module: OPC Publisher compatible API over HTTP and MQTT.
    Module(Box<commands::module::ModuleArgs>),
    /// The cloud REST service: registry of modules, applications and endpoints, and remote
    /// operations through the modules.
    TwinApi(Box<commands::twin_api::TwinApiArgs>),
    /// The certificate authority and OPC UA Global Discovery Server core.
    Vault(Box<commands::vault::VaultArgs>),
    /// The simulated PLC (OPC UA server).
    PlcSim(commands::plc_sim::PlcSimArgs),
    /// Asks the service in this container whether it is healthy (the image's HEALTHCHECK).
    Health(commands::health::HealthArgs),
    /// Benchmarks that print the figures of README's performance table.
    Bench {
        #[command(subcommand)]
        command: commands::bench::BenchCommand,
    },
}

/// The environment variable that sets an argument: `IIOT_` and its name in capitals, the same
/// in every command (`--http-port` is `IIOT_HTTP_PORT` for the module, the twin API, the vault
/// and `health`), because containers are configured by environment, one service per container.
pub fn env_name(arg_id: &str) -> String {
    format!("IIOT_{}", arg_id.to_uppercase().replace('-', "_"))
}

/// Commands whose flags are not deployment settings, so no environment variable sets them.
const WITHOUT_ENV: &[&str] = &["bench"];

/// The command line with every flag of every service command settable from the environment.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    with_env(Cli::command())
}

fn with_env(cmd: clap::Command) -> clap::Command {
    if WITHOUT_ENV.contains(&cmd.get_name()) {
        return cmd;
    }
    cmd.mut_args(|arg| {
        if arg.get_env().is_some() || arg.is_positional() {
            return arg;
        }
        // `--help` names the variable but never shows its value: URLs carry passwords, and a
        // rule for every flag cannot know which ones do.
        let name = env_name(arg.get_id().as_str());
        arg.env(name).hide_env_values(true)
    })
    .mut_subcommands(with_env)
}

/// Parses the process's arguments (and `IIOT_*` variables); exits with clap's message on error.
pub fn parse() -> Cli {
    use clap::FromArgMatches;
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
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

    fn vault_config(args: &[&str]) -> iiot_vault::VaultConfig {
        let keys = std::env::temp_dir().join(format!("iiot-cli-keys-{}.json", std::process::id()));
        std::fs::write(
            &keys,
            r#"[{"name":"ops","key":"ops-key-0123456789","roles":["writer"]}]"#,
        )
        .unwrap();
        let keys = keys.to_string_lossy().to_string();
        let argv: Vec<&str> = ["vault", "--api-keys", keys.as_str()]
            .iter()
            .chain(args)
            .copied()
            .collect();
        match parse(&argv) {
            Command::Vault(v) => v.config().expect("vault config"),
            _ => panic!("not the vault command"),
        }
    }

    /// The OPC UA face is off unless asked for; it listens where the REST API does unless told
    /// otherwise, and names a host clients can reach (never 0.0.0.0) in its URL and certificate.
    #[test]
    fn the_vault_opcua_face_follows_its_flags() {
        assert!(vault_config(&[]).opcua.is_none());
        let c = vault_config(&["--opcua-port", "4842"]).opcua.unwrap();
        assert_eq!(c.bind.to_string(), "0.0.0.0:4842");
        assert_eq!(c.hostname, "localhost");
        let c = vault_config(&["--http-host", "127.0.0.1", "--opcua-port", "0"])
            .opcua
            .unwrap();
        assert_eq!(
            (c.bind.ip().to_string(), c.hostname.as_str()),
            ("127.0.0.1".into(), "127.0.0.1")
        );
        let c = vault_config(&[
            "--opcua-port",
            "4842",
            "--opcua-host",
            "10.0.0.5",
            "--opcua-hostname",
            "vault.plant",
        ])
        .opcua
        .unwrap();
        assert_eq!(c.bind.to_string(), "10.0.0.5:4842");
        assert_eq!(c.application_uri(), "urn:iiot:vault:gds:vault.plant");
    }

    /// Containers are configured by environment: every flag of every service command has its
    /// `IIOT_*` variable, named by one rule, and README's table lists exactly those.
    #[test]
    fn every_service_flag_has_its_variable_and_readme_lists_them() {
        let readme = include_str!("../README.md");
        let table = readme
            .split("## Configuration by environment")
            .nth(1)
            .expect("README has a 'Configuration by environment' section")
            .split("\n## ")
            .next()
            .unwrap_or_default();
        let mut cmd = command();
        cmd.build();
        let mut names = std::collections::BTreeSet::new();
        for sub in cmd.get_subcommands() {
            if WITHOUT_ENV.contains(&sub.get_name()) || sub.get_name() == "help" {
                continue;
            }
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                let env = arg
                    .get_env()
                    .and_then(|e| e.to_str())
                    .unwrap_or_else(|| panic!("{} --{id} has no variable", sub.get_name()));
                assert_eq!(env, env_name(id), "{} --{id}", sub.get_name());
                names.insert(env.to_string());
            }
        }
        assert!(names.contains("IIOT_HTTP_PORT") && names.contains("IIOT_LOG"));
        for name in &names {
            assert!(
                table.contains(&format!("| `{name}` |")),
                "README's table lacks {name}"
            );
        }
        for row in table.lines().filter(|l| l.starts_with("| `IIOT_")) {
            let name = row.split('`').nth(1).unwrap_or_default();
            assert!(
                names.contains(name),
                "README lists {name}, which sets nothing"
            );
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

    fn bench(args: &[&str]) -> commands::bench::BenchCommand {
        let argv: Vec<&str> = ["bench"].iter().chain(args).copied().collect();
        match parse(&argv) {
            Command::Bench { command } => command,
            _ => panic!("not the bench command"),
        }
    }

    #[test]
    fn bench_relay_runs_this_binary_and_quick_shrinks_the_ladder() {
        use commands::bench::BenchCommand;
        let config = |args: &[&str]| match bench(args) {
            BenchCommand::Relay(a) => a.into_config().unwrap(),
            _ => panic!("not bench relay"),
        };
        let full = config(&["relay"]);
        assert_eq!(full.iiot_exe, std::env::current_exe().unwrap());
        assert_eq!(full.steps, "10000x1,10000x10,100000x1,ramp");
        assert_eq!(full.relay_script.to_str(), Some("bench/asyncua_relay.py"));
        let quick = config(&["relay", "--quick", "--duration", "3"]);
        assert_eq!((quick.steps.as_str(), quick.duration), ("200x5", 3));
    }

    #[test]
    fn bench_configs_carry_the_flags() {
        use commands::bench::BenchCommand;
        match bench(&["browse", "--tree", "3x4", "--runs", "1"]) {
            BenchCommand::Browse(a) => {
                let c = a.into_config().unwrap();
                assert_eq!((c.tree, c.runs), ((3, 4), 1));
            }
            _ => panic!("not bench browse"),
        }
        match bench(&["browse", "--tree", "0x4"]) {
            BenchCommand::Browse(a) => {
                let e = a.into_config().err().unwrap().to_string();
                assert!(e.contains("--tree '0x4'"), "{e}");
            }
            _ => panic!("not bench browse"),
        }
        match bench(&["vault", "--clients", "2,3", "--keys", "P-256"]) {
            BenchCommand::Vault(a) => {
                let c = a.into_config();
                assert_eq!((c.clients, c.keys), (vec![2, 3], vec!["P-256".to_string()]));
            }
            _ => panic!("not bench vault"),
        }
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
