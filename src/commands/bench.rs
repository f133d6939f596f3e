//! `iiot bench …`: the flags of the benchmarks that print README's performance table. The
//! benchmarks themselves are the `iiot-bench` crate (`bench/`), which gets a config from here.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::args::parse_tree;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Browse a whole plc-sim tree through the API (BrowseStream), and with an asyncua client.
    Browse(BrowseArgs),
    /// ValueRead round trips over HTTP and MQTT RPC with 1 and 64 concurrent callers.
    Read(ReadArgs),
    /// OPC UA → MQTT telemetry: values/s, loss, duplicates, latency, CPU and RSS of the module,
    /// beside an asyncua + paho-mqtt relay (bench/asyncua_relay.py), over a ladder of loads.
    Relay(RelayArgs),
    /// ValueRead through the twin API (REST → MQTT v5 → module → plc-sim): closed loop with 1,
    /// 16 and 64 callers, then a fixed 1,000 reads/s, alone and while the module relays 10k
    /// values/s.
    Twin(TwinArgs),
    /// The container image: size, `podman run` to healthy (new and same volume), idle RSS
    /// inside, `podman stop` time (run from a release build for users' figures).
    Container(ContainerArgs),
    /// Certificates signed per second through the vault's REST API (RSA-2048 and P-256 CAs, 1
    /// and 16 clients) beside `openssl speed` for the same key type.
    Vault(VaultArgs),
    /// Enrollments per second through the vault's OPC UA face (GDS StartSigningRequest +
    /// FinishRequest on SignAndEncrypt sessions) beside its REST API, RSA-2048 CA.
    Gds(GdsArgs),
    /// The hub's device endpoint (run as a child `iiot twin-api`): 10,000 concurrent TLS
    /// connections with SAS tokens (connections/s, RSS per connection), durable QoS 1
    /// telemetry (acknowledged messages/s) and direct methods at 1,000 calls/s (latency), beside
    /// Mosquitto with TLS for the first two.
    Hub(HubArgs),
}

pub async fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Browse(a) => iiot_bench::browse::run(a.into_config()?).await?,
        BenchCommand::Read(a) => iiot_bench::read::run(a.into_config()).await?,
        BenchCommand::Relay(a) => iiot_bench::relay::run(a.into_config()?).await?,
        BenchCommand::Twin(a) => iiot_bench::twin::run(a.into_config()).await?,
        BenchCommand::Vault(a) => iiot_bench::vault::run(a.into_config()).await?,
        BenchCommand::Gds(a) => iiot_bench::gds::run(a.into_config()).await?,
        BenchCommand::Container(a) => iiot_bench::container::run(a.into_config()?).await?,
        BenchCommand::Hub(a) => iiot_bench::hub::run(a.into_config()?).await?,
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct BrowseArgs {
    /// Tree shape DEPTHxBREADTH; 2x316 gives 99,856 leaves (100,172 nodes).
    #[arg(long, default_value = "2x316")]
    pub tree: String,
    /// Python with asyncua for the side-by-side run (scripts/install-peers.sh makes it).
    #[arg(long, default_value = "tests/peers/.venv/bin/python")]
    pub python: PathBuf,
    /// Runs of each; the best is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
}

impl BrowseArgs {
    pub fn into_config(self) -> Result<iiot_bench::browse::BrowseConfig> {
        Ok(iiot_bench::browse::BrowseConfig {
            tree: parse_tree(&self.tree)?,
            python: self.python,
            runs: self.runs,
        })
    }
}

#[derive(Args, Debug)]
pub struct ReadArgs {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Broker for the MQTT runs; by default a private Mosquitto is started if installed.
    #[arg(long)]
    pub mqtt_url: Option<String>,
}

impl ReadArgs {
    pub fn into_config(self) -> iiot_bench::read::ReadConfig {
        iiot_bench::read::ReadConfig {
            seconds: self.seconds,
            mqtt_url: self.mqtt_url,
        }
    }
}

#[derive(Args, Debug)]
pub struct RelayArgs {
    /// Ladder steps, comma separated: ITEMSxHZ (e.g. 10000x10), and `ramp` for "raise the
    /// rate until the first loss" (--ramp-items at --ramp-hz).
    #[arg(long, default_value = "10000x1,10000x10,100000x1,ramp")]
    pub steps: String,
    /// Item counts of the ramp, tried in order until the first loss.
    #[arg(long, default_value = "20000,30000,40000,60000,80000,100000")]
    pub ramp_items: String,
    /// Rate of every ramp step (the OPC UA server samples at 100 ms at best).
    #[arg(long, default_value_t = 10)]
    pub ramp_hz: u32,
    /// Seconds of each measurement window.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Seconds discarded after all items are Good, before the window.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Only the module, no asyncua relay.
    #[arg(long)]
    pub skip_peer: bool,
    /// Steps above this many items skip the asyncua relay (it saturates near 7k values/s).
    #[arg(long, default_value_t = 10_000)]
    pub peer_max_items: u32,
    /// Short smoke run for CI: 200 items × 5 Hz for 5 s; exits non-zero on any loss.
    #[arg(long)]
    pub quick: bool,
    /// Monitored items per data set writer (one subscription each); more writers spread the
    /// work over the module's cores.
    #[arg(long, default_value_t = 5000)]
    pub items_per_writer: u32,
    /// BatchSize of every writer (values per network message).
    #[arg(long, default_value_t = 500)]
    pub batch_size: u32,
    /// BatchTriggerInterval of every writer, ms.
    #[arg(long, default_value_t = 100)]
    pub batch_trigger_ms: u64,
    /// Python with asyncua and paho-mqtt (scripts/install-peers.sh makes it).
    #[arg(long, default_value = "tests/peers/.venv/bin/python")]
    pub python: PathBuf,
    #[arg(long, default_value = "bench/asyncua_relay.py")]
    pub relay_script: PathBuf,
    /// Keep the step directories (logs, publishednodes.json) after the run.
    #[arg(long)]
    pub keep: bool,
    /// Runs the module under this profiler command (e.g. `heaptrack`, or `perf record -g
    /// --`), split at spaces; its figures then include the profiler's own cost.
    #[arg(long)]
    pub module_wrapper: Option<String>,
}

impl RelayArgs {
    /// The relay runs plc-sim and the module as child processes of this very binary.
    pub fn into_config(self) -> Result<iiot_bench::relay::RelayConfig> {
        let config = iiot_bench::relay::RelayConfig {
            iiot_exe: std::env::current_exe().context("locating the iiot binary")?,
            steps: self.steps,
            ramp_items: self.ramp_items,
            ramp_hz: self.ramp_hz,
            duration: self.duration,
            warmup: self.warmup,
            skip_peer: self.skip_peer,
            peer_max_items: self.peer_max_items,
            items_per_writer: self.items_per_writer,
            batch_size: self.batch_size,
            batch_trigger_ms: self.batch_trigger_ms,
            python: self.python,
            relay_script: self.relay_script,
            keep: self.keep,
            module_wrapper: self.module_wrapper,
        };
        Ok(if self.quick { config.quick() } else { config })
    }
}

#[derive(Args, Debug)]
pub struct TwinArgs {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Reads per second of the open-loop rows.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Broker to use; by default a private Mosquitto is started.
    #[arg(long)]
    pub mqtt_url: Option<String>,
}

impl TwinArgs {
    pub fn into_config(self) -> iiot_bench::twin::TwinConfig {
        iiot_bench::twin::TwinConfig {
            seconds: self.seconds,
            rate: self.rate,
            mqtt_url: self.mqtt_url,
        }
    }
}

#[derive(Args, Debug)]
pub struct VaultArgs {
    /// Seconds per measured window; `openssl speed` runs half as long right before and right
    /// after each window.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrent HTTP clients, comma separated.
    #[arg(long, default_value = "1,16", value_delimiter = ',')]
    pub clients: Vec<usize>,
    /// CSRs generated per key type (reused round-robin).
    #[arg(long, default_value_t = 32)]
    pub csrs: usize,
    /// CA key types to measure, comma separated: RSA-2048, P-256.
    #[arg(long, default_value = "RSA-2048,P-256", value_delimiter = ',')]
    pub keys: Vec<String>,
    /// The openssl command line used for CSRs and `openssl speed`.
    #[arg(long, default_value = "openssl")]
    pub openssl: PathBuf,
}

impl VaultArgs {
    pub fn into_config(self) -> iiot_bench::vault::VaultConfig {
        iiot_bench::vault::VaultConfig {
            seconds: self.seconds,
            clients: self.clients,
            csrs: self.csrs,
            keys: self.keys,
            openssl: self.openssl,
        }
    }
}

#[derive(Args, Debug)]
pub struct GdsArgs {
    /// Seconds per measured window (each path, each client count).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrent clients (REST) and sessions (OPC UA), comma separated.
    #[arg(long, default_value = "1,8", value_delimiter = ',')]
    pub clients: Vec<usize>,
    /// CSRs generated per path (reused round-robin).
    #[arg(long, default_value_t = 16)]
    pub csrs: usize,
    /// The openssl command line used for CSRs.
    #[arg(long, default_value = "openssl")]
    pub openssl: PathBuf,
}

impl GdsArgs {
    pub fn into_config(self) -> iiot_bench::gds::GdsBenchConfig {
        iiot_bench::gds::GdsBenchConfig {
            seconds: self.seconds,
            clients: self.clients,
            csrs: self.csrs,
            openssl: self.openssl,
        }
    }
}

#[derive(Args, Debug)]
pub struct HubArgs {
    /// Devices connected at once in the connection phase (each its own TLS connection and SAS
    /// token); also how many are created.
    #[arg(long, default_value_t = 10_000)]
    pub devices: usize,
    /// TLS handshakes + CONNECTs in flight while connecting.
    #[arg(long, default_value_t = 64)]
    pub dial_concurrency: usize,
    /// Devices publishing telemetry.
    #[arg(long, default_value_t = 100)]
    pub ingest_devices: usize,
    /// QoS 1 messages each publishing device keeps unacknowledged.
    #[arg(long, default_value_t = 32)]
    pub in_flight: usize,
    /// Seconds of the telemetry window (per server).
    #[arg(long, default_value_t = 10)]
    pub ingest_seconds: u64,
    /// Bytes of each telemetry body (JSON).
    #[arg(long, default_value_t = 256)]
    pub body_bytes: usize,
    /// Devices answering direct methods.
    #[arg(long, default_value_t = 10)]
    pub method_devices: usize,
    /// Direct-method calls per second offered (open loop).
    #[arg(long, default_value_t = 1000)]
    pub method_rate: u32,
    /// Seconds of the direct-method window.
    #[arg(long, default_value_t = 10)]
    pub method_seconds: u64,
    /// Seconds of load before each telemetry and method window, not counted.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// No connection phase.
    #[arg(long)]
    pub skip_connections: bool,
    /// No telemetry phase.
    #[arg(long)]
    pub skip_ingest: bool,
    /// No direct-method phase.
    #[arg(long)]
    pub skip_methods: bool,
    /// No Mosquitto reference runs.
    #[arg(long)]
    pub skip_mosquitto: bool,
    /// Keep the temporary directory (hub log and database, Mosquitto's files).
    #[arg(long)]
    pub keep: bool,
}

impl HubArgs {
    /// The hub runs as a child process of this very binary.
    pub fn into_config(self) -> Result<iiot_bench::hub::HubBenchConfig> {
        anyhow::ensure!(
            self.ingest_devices > 0 && self.method_devices > 0 && self.in_flight > 0,
            "--ingest-devices, --method-devices and --in-flight must be positive"
        );
        Ok(iiot_bench::hub::HubBenchConfig {
            iiot_exe: std::env::current_exe().context("locating the iiot binary")?,
            devices: self.devices,
            dial_concurrency: self.dial_concurrency,
            ingest_devices: self.ingest_devices,
            in_flight: self.in_flight,
            ingest_seconds: self.ingest_seconds,
            body_bytes: self.body_bytes,
            method_devices: self.method_devices,
            method_rate: self.method_rate,
            method_seconds: self.method_seconds,
            warmup: self.warmup,
            skip_connections: self.skip_connections,
            skip_ingest: self.skip_ingest,
            skip_methods: self.skip_methods,
            skip_mosquitto: self.skip_mosquitto,
            keep: self.keep,
        })
    }
}

#[derive(Args, Debug)]
pub struct ContainerArgs {
    /// Start/stop cycles (each a first start on a new volume and a restart on it).
    #[arg(long, default_value_t = 5)]
    pub runs: u32,
    /// The binary to package; this one by default.
    #[arg(long)]
    pub iiot_exe: Option<PathBuf>,
    /// The repository holding the Dockerfile and scripts/container-rootfs.sh.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
}

impl ContainerArgs {
    pub fn into_config(self) -> Result<iiot_bench::container::ContainerConfig> {
        let iiot_exe = match self.iiot_exe {
            Some(p) => p,
            None => std::env::current_exe().context("the path of this binary")?,
        };
        // Absolute: podman runs helpers in other working directories.
        let repo = std::fs::canonicalize(&self.repo)
            .with_context(|| format!("--repo {}", self.repo.display()))?;
        Ok(iiot_bench::container::ContainerConfig {
            iiot_exe,
            repo,
            runs: self.runs,
        })
    }
}
