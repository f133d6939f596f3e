//! `iiot bench hub`: the hub's device endpoint under the three loads, with Mosquitto
//! over the same TLS as the reference where a broker can do the same work.
//!
//! The hub runs as a child process of this very binary (`iiot twin-api --hub-port …`), so its
//! RSS and CPU are read from /proc without the clients' share; the clients run here. Devices
//! are created through the REST routes as a user would (the time is printed), and every device
//! dials its own TLS connection with its own SAS token.
//!
//! The clients are lean on purpose: 10,000 rumqttc event loops would cost the shared 2 cores
//! and memory more than the hub they measure. Each connection is one task over a tokio-rustls
//! stream, with packets written and read by rumqttc's `mqttbytes` codec (no hand framing).
//! Every client does a full TLS handshake (no session resumption, as a device's first
//! connection) with X25519 key exchange: what a device built on OpenSSL 3.0 negotiates, and
//! the same work for both servers (left to itself, rustls would pick the post-quantum hybrid
//! with the hub, which this Mosquitto's OpenSSL 3.0 lacks).
//!
//! 1. **Connections**: N devices connect and stay connected; connections/s, the hub's RSS
//!    before and after, RSS and CPU per connection. The reference is Mosquitto with a TLS
//!    listener and a P-256 server certificate like the hub's, anonymous: it checks no
//!    credential and writes nothing per connection, while the hub reads the identity, checks
//!    the SAS token and records `connectionState` in its database before CONNACK.
//! 2. **Telemetry**: devices publish 256-byte JSON bodies at QoS 1 with a window of PUBACKs
//!    outstanding; acknowledged messages/s. The hub acknowledges after its group commit, so
//!    the bench counts the rows of `hub_messages` before and after and checks every PUBACK
//!    has its row. Mosquitto acknowledges from memory (`persistence false`, no subscriber):
//!    the cost of MQTT over TLS alone, not of a durable store.
//! 3. **Direct methods**: devices subscribed to `$iothub/methods/POST/#` answer at once; a
//!    REST client calls `POST /twins/{id}/methods` at a fixed rate (open loop: each call is
//!    sent at its time whatever the earlier ones do, so a stall shows as latency instead of a
//!    lower rate). Latency counts from the send, as `bench twin` counts it; the p99 from when
//!    each call was due is printed too. Mosquitto has no such route.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use rumqttc::mqttbytes::v4::{self, Packet};
use rumqttc::mqttbytes::QoS;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

use crate::error::{bail, BenchError, Context, Result};
use crate::harness::{clock_ticks, free_port, private_mosquitto, proc_sample, terminate, TempDir};

/// What `iiot bench hub` measures and for how long.
#[derive(Debug, Clone)]
pub struct HubBenchConfig {
    /// The `iiot` binary the hub runs from (this one).
    pub iiot_exe: PathBuf,
    /// Devices connected at once in the connection phase.
    pub devices: usize,
    /// TLS handshakes + CONNECTs in flight while connecting.
    pub dial_concurrency: usize,
    /// Devices publishing telemetry.
    pub ingest_devices: usize,
    /// QoS 1 messages each publisher keeps unacknowledged.
    pub in_flight: usize,
    /// Seconds of the telemetry window (after `warmup`).
    pub ingest_seconds: u64,
    /// Bytes of each telemetry body (JSON).
    pub body_bytes: usize,
    /// Devices answering direct methods.
    pub method_devices: usize,
    /// Direct-method calls per second offered.
    pub method_rate: u32,
    /// Seconds of the direct-method window.
    pub method_seconds: u64,
    /// Seconds of load before each telemetry and method window, not counted.
    pub warmup: u64,
    pub skip_connections: bool,
    pub skip_ingest: bool,
    pub skip_methods: bool,
    /// No Mosquitto reference runs.
    pub skip_mosquitto: bool,
    /// Keep the temporary directory (hub log and database, Mosquitto's files).
    pub keep: bool,
}

impl Default for HubBenchConfig {
    fn default() -> Self {
        Self {
            iiot_exe: PathBuf::from("iiot"),
            devices: 10_000,
            dial_concurrency: 64,
            ingest_devices: 100,
            in_flight: 32,
            ingest_seconds: 10,
            body_bytes: 256,
            method_devices: 10,
            method_rate: 1000,
            method_seconds: 10,
            warmup: 2,
            skip_connections: false,
            skip_ingest: false,
            skip_methods: false,
            skip_mosquitto: false,
            keep: false,
        }
    }
}

/// The REST credential of the bench (all roles: create devices, call methods, query).
const KEY: &str = "bench-hub-key-0123456789";
/// The hub's host name: the SAS resources and the server certificate's SAN.
const HOST: &str = "127.0.0.1";
/// `api-version` the device SDKs send in the user name.
const API_VERSION: &str = "2021-04-12";
/// Keep-alive the clients announce (Microsoft's Python device SDK default); they ping at it.
const KEEP_ALIVE: u16 = 60;
/// REST PUTs in flight while devices are created.
const CREATE_CONCURRENCY: usize = 32;
/// Largest packet the clients read.
const MAX_PACKET: usize = 64 * 1024;
/// Time one dial (TCP + TLS + CONNECT/CONNACK) may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(60);

/// A server the clients dial: address, trusted CA, and the name its certificate carries.
#[derive(Clone)]
struct Target {
    addr: std::net::SocketAddr,
    connector: TlsConnector,
    name: ServerName<'static>,
    /// SAS credentials per device (the hub); `false`: anonymous (Mosquitto).
    with_sas: bool,
}

/// One device's credentials.
#[derive(Clone)]
struct Device {
    id: String,
    key: String,
}

impl Device {
    /// User name and SAS token password as Microsoft's SDKs send them.
    fn login(&self) -> Result<(String, String)> {
        let expiry = time_now_secs() + 24 * 3600;
        let token = iiot_twin_api::hub::sas::sign(
            &format!("{HOST}/devices/{}", self.id),
            &self.key,
            expiry,
            None,
        )
        .with_context(|| format!("signing a SAS token for {}: bad key", self.id))?;
        Ok((
            format!("{HOST}/{}/?api-version={API_VERSION}", self.id),
            token,
        ))
    }
}

fn time_now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

pub async fn run(args: HubBenchConfig) -> Result<()> {
    let limit = raise_nofile_limit();
    let need = args.devices as u64 + 256;
    if !args.skip_connections && limit < need {
        bail!(
            "open files are limited to {limit} (hard limit); {} connections need {need}: raise \
             `ulimit -Hn` or pass a smaller --devices",
            args.devices
        );
    }
    let dir = std::env::temp_dir().join(format!("iiot-bench-hub-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let _cleanup = (!args.keep).then(|| TempDir(dir.clone()));
    if args.keep {
        eprintln!("keeping {}", dir.display());
    }
    let tck = clock_ticks();

    // The twin API's RPC side needs a broker; it carries nothing in this bench.
    let (rpc_url, _rpc_broker) = private_mosquitto(None).await?;
    let hub = HubProcess::start(&args.iiot_exe, &dir, &rpc_url).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()?;

    let wanted = [
        if args.skip_connections {
            0
        } else {
            args.devices
        },
        if args.skip_ingest {
            0
        } else {
            args.ingest_devices
        },
        if args.skip_methods {
            0
        } else {
            args.method_devices
        },
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    let created = Instant::now();
    let devices = create_devices(&http, &hub.base, wanted).await?;
    let create_s = created.elapsed().as_secs_f64();
    eprintln!(
        "created {} devices through PUT /devices/{{id}} in {create_s:.1} s ({:.0}/s, {CREATE_CONCURRENCY} in flight)",
        devices.len(),
        devices.len() as f64 / create_s.max(1e-9)
    );

    let hub_target = Target {
        addr: hub.device_addr,
        connector: connector(&hub.dir.join("hub-ca.pem"))?,
        name: ServerName::try_from(HOST.to_string())
            .map_err(|e| BenchError::Failed(format!("server name {HOST}: {e}")))?,
        with_sas: true,
    };
    let mosquitto = if args.skip_mosquitto || (args.skip_connections && args.skip_ingest) {
        None
    } else {
        Some(TlsMosquitto::start(&dir).await?)
    };
    let mosquitto_target = match &mosquitto {
        Some(m) => Some(Target {
            addr: ([127, 0, 0, 1], m.port).into(),
            connector: connector(&m.ca)?,
            name: ServerName::try_from(HOST.to_string())
                .map_err(|e| BenchError::Failed(format!("server name {HOST}: {e}")))?,
            with_sas: false,
        }),
        None => None,
    };

    // Everything of this bench that uses CPU; the rest of the machine is reported.
    let mut ours = vec![std::process::id(), hub.pid];
    ours.extend(mosquitto.as_ref().map(|m| m.pid));
    let mut others: Vec<(&str, f64)> = Vec::new();
    let mut rows: Vec<(String, String, String)> = vec![(
        "devices created through REST (`PUT /devices/{id}`)".into(),
        format!(
            "{} in {create_s:.1} s ({}/s)",
            thousands(devices.len() as u64),
            thousands((devices.len() as f64 / create_s.max(1e-9)) as u64)
        ),
        "–".into(),
    )];

    if !args.skip_connections {
        let conn_devices = &devices[..args.devices];
        eprintln!("connections: {} devices to the hub…", args.devices);
        let registry = Some((&http, hub.base.as_str()));
        let h = connections(
            &hub_target,
            conn_devices,
            hub.pid,
            tck,
            &args,
            registry,
            &ours,
        )
        .await?;
        let closed = h.closing_idle_s;
        others.push(("the hub's connections", h.others));
        let m = match (&mosquitto, &mosquitto_target) {
            (Some(m), Some(t)) => {
                eprintln!("connections: {} clients to Mosquitto…", args.devices);
                let m = connections(t, conn_devices, m.pid, tck, &args, None, &ours).await?;
                others.push(("Mosquitto's connections", m.others));
                Some(m)
            }
            _ => None,
        };
        let none = || "–".to_string();
        rows.push((
            format!(
                "concurrent TLS connections, each its own device{} (goal 10,000)",
                if hub_target.with_sas {
                    " and SAS token"
                } else {
                    ""
                }
            ),
            format!(
                "**{} of {}** connected in {:.1} s = **{}/s**{}; {} dropped while held; the registry showed {} Connected",
                thousands(h.ok),
                thousands(args.devices as u64),
                h.elapsed_s,
                thousands(h.rate() as u64),
                h.failures_text(),
                h.dropped,
                h.registry_connected.map_or("?".into(), thousands)
            ),
            m.as_ref().map_or_else(none, |m| {
                format!(
                    "{} of {} in {:.1} s = {}/s{}; {} dropped",
                    thousands(m.ok),
                    thousands(args.devices as u64),
                    m.elapsed_s,
                    thousands(m.rate() as u64),
                    m.failures_text(),
                    m.dropped
                )
            }),
        ));
        rows.push((
            "server RSS before → with all connected (goal ≤ 10 KB per connection)".into(),
            format!(
                "{:.1} → {:.1} MiB = **{:.1} KB per connection**",
                mib(h.rss_before),
                mib(h.rss_after),
                h.rss_per_conn() / 1000.0
            ),
            m.as_ref().map_or_else(none, |m| {
                format!(
                    "{:.1} → {:.1} MiB = {:.1} KB per connection",
                    mib(m.rss_before),
                    mib(m.rss_after),
                    m.rss_per_conn() / 1000.0
                )
            }),
        ));
        rows.push((
            "server CPU per connection (handshake, CONNECT, CONNACK)".into(),
            format!(
                "{:.2} ms; after all closed, idle again in {closed:.1} s",
                h.cpu_per_conn_ms()
            ),
            m.as_ref()
                .map_or_else(none, |m| format!("{:.2} ms", m.cpu_per_conn_ms())),
        ));
    }

    if !args.skip_ingest {
        let ingest_devices = &devices[..args.ingest_devices];
        let db = hub.dir.join("twin-api.db");
        let rows_before = count_rows(&db).await?;
        eprintln!(
            "telemetry: {} devices × {} in flight to the hub for {} + {} s…",
            args.ingest_devices, args.in_flight, args.warmup, args.ingest_seconds
        );
        let h = ingest(&hub_target, ingest_devices, hub.pid, tck, &args, &ours).await?;
        let rows_after = count_rows(&db).await?;
        others.push(("the hub's telemetry window", h.others));
        let stored = rows_after.saturating_sub(rows_before);
        let m = match &mosquitto_target {
            Some(t) => {
                eprintln!("telemetry: the same load to Mosquitto…");
                let pid = mosquitto.as_ref().map_or(0, |m| m.pid);
                let m = ingest(t, ingest_devices, pid, tck, &args, &ours).await?;
                others.push(("Mosquitto's telemetry window", m.others));
                Some(m)
            }
            None => None,
        };
        let stored_text = if stored == h.total_acked {
            format!(
                "every PUBACK has its row ({} rows added to hub_messages = {} PUBACKs)",
                thousands(stored),
                thousands(h.total_acked)
            )
        } else {
            format!(
                "**{} rows added to hub_messages for {} PUBACKs**",
                thousands(stored),
                thousands(h.total_acked)
            )
        };
        rows.push((
            format!(
                "telemetry acknowledged, {} devices × {} in flight, {} B JSON, QoS 1 (goal ≥ 50,000/s, durable)",
                args.ingest_devices, args.in_flight, args.body_bytes
            ),
            format!(
                "**{} msg/s** (PUBACK after the group commit); PUBACK p50 {:.1} ms / p99 {:.1} ms; {:.1} µs CPU per message; {stored_text}",
                thousands(h.rate as u64),
                ms(h.p50),
                ms(h.p99),
                h.cpu_per_msg_us
            ),
            m.as_ref().map_or_else(|| "–".into(), |m| {
                format!(
                    "{} msg/s (acknowledged from memory, nothing stored); p50 {:.1} ms / p99 {:.1} ms; {:.1} µs CPU per message",
                    thousands(m.rate as u64),
                    ms(m.p50),
                    ms(m.p99),
                    m.cpu_per_msg_us
                )
            }),
        ));
        if stored != h.total_acked {
            eprintln!(
                "WARNING: the hub acknowledged {} messages but stored {}",
                h.total_acked, stored
            );
        }
    }

    if !args.skip_methods {
        let method_devices = &devices[..args.method_devices];
        eprintln!(
            "direct methods: {} devices answering, {} calls/s for {} s…",
            args.method_devices, args.method_rate, args.method_seconds
        );
        let r = methods(&hub_target, &http, &hub.base, method_devices, &args, &ours).await?;
        others.push(("the method window", r.others));
        rows.push((
            format!(
                "direct-method round trip (REST → device → REST) at {} calls/s offered, {} devices (goal p99 ≤ 5 ms)",
                thousands(u64::from(args.method_rate)),
                args.method_devices
            ),
            format!(
                "{} calls/s answered, {} failed; p50 {:.2} ms, p90 {:.2} ms, **p99 {:.2} ms**, max {:.1} ms (p99 {:.2} ms counted from when each call was due)",
                thousands(r.rate.round() as u64),
                r.failed,
                ms(r.p50),
                ms(r.p90),
                ms(r.p99),
                ms(r.max),
                ms(r.p99_from_due)
            ),
            "–".into(),
        ));
    }

    let peer = match &mosquitto {
        Some(m) => format!("Mosquitto {} (TLS, anonymous)", m.version),
        None => "Mosquitto".into(),
    };
    println!();
    println!("The hub (`iiot twin-api --hub-port`, SQLite) and {peer}, same run, same clients");
    println!("| figure | hub | {peer} |");
    println!("|---|---|---|");
    for (figure, hub, peer) in &rows {
        println!("| {figure} | {hub} | {peer} |");
    }
    println!(
        "(TLS 1.3, X25519, P-256 server certificates, full handshakes; hub log level warn; \
         clients, hub and Mosquitto share the machine's cores)"
    );
    let text: Vec<String> = others
        .iter()
        .map(|(what, cores)| format!("{cores:.2} cores during {what}"))
        .collect();
    println!("Other processes on the machine used {}.", text.join(", "));
    if others.iter().any(|(_, c)| *c > 0.1) {
        eprintln!(
            "WARNING: something else used more than 0.1 core during a window; its figure is \
             not the hub's alone. Measure on a quiet machine."
        );
    }

    if let Some(m) = mosquitto {
        m.stop().await;
    }
    hub.stop().await;
    Ok(())
}

/// Raises the soft limit of open files to the hard one (the children inherit it) and answers
/// the limit now in force: every connection is a descriptor on each side.
fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    lim.rlim_cur
}

/// A TLS client for `ca`: X25519 only, no session resumption (see the module docs).
fn connector(ca: &Path) -> Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
        .and_then(|i| i.collect::<std::result::Result<_, _>>())
        .map_err(|e| BenchError::Failed(format!("{}: {e}", ca.display())))?;
    for c in certs {
        roots
            .add(c)
            .map_err(|e| BenchError::Failed(format!("{}: {e}", ca.display())))?;
    }
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| BenchError::Failed(format!("TLS client: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// TCP, TLS, CONNECT and its CONNACK. The leftover bytes after CONNACK are returned with the
/// stream.
async fn dial(target: &Target, device: &Device) -> Result<(Tls, BytesMut)> {
    let tcp = TcpStream::connect(target.addr)
        .await
        .context("TCP connect")?;
    tcp.set_nodelay(true)?;
    let mut tls = target
        .connector
        .connect(target.name.clone(), tcp)
        .await
        .context("TLS handshake")?;
    let mut connect = v4::Connect::new(device.id.clone());
    connect.keep_alive = KEEP_ALIVE;
    connect.clean_session = true;
    if target.with_sas {
        let (user, password) = device.login()?;
        connect.set_login(user, password);
    }
    let mut out = BytesMut::with_capacity(512);
    connect.write(&mut out).map_err(mqtt_error)?;
    tls.write_all(&out).await.context("sending CONNECT")?;
    let mut buf = BytesMut::with_capacity(64);
    loop {
        match v4::Packet::read(&mut buf, MAX_PACKET) {
            Ok(Packet::ConnAck(a)) if a.code == v4::ConnectReturnCode::Success => {
                return Ok((tls, buf))
            }
            Ok(Packet::ConnAck(a)) => bail!("CONNACK {:?}", a.code),
            Ok(p) => bail!("{p:?} before CONNACK"),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(e) => return Err(mqtt_error(e)),
        }
        if tls.read_buf(&mut buf).await.context("reading CONNACK")? == 0 {
            bail!("closed before CONNACK");
        }
    }
}

fn mqtt_error(e: rumqttc::mqttbytes::Error) -> BenchError {
    BenchError::Failed(format!("MQTT framing: {e}"))
}

/// The first line of an error chain, shortened, for grouping failures.
fn reason(e: &BenchError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().take(120).collect()
}

/// Holds an open connection until `stop`, pinging at the keep-alive. `true` when it ended
/// because the server closed it.
async fn hold(mut tls: Tls, mut stop: watch::Receiver<bool>) -> bool {
    let mut buf = [0u8; 64];
    let ping = [0xC0u8, 0x00];
    let every = Duration::from_secs(u64::from(KEEP_ALIVE));
    let mut next_ping = tokio::time::Instant::now() + every;
    loop {
        let closed = tokio::select! {
            r = tls.read(&mut buf) => matches!(r, Ok(0) | Err(_)),
            _ = tokio::time::sleep_until(next_ping) => {
                next_ping += every;
                tls.write_all(&ping).await.is_err()
            }
            _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                let _ = tls.shutdown().await;
                return false;
            }
        };
        if closed {
            return !*stop.borrow();
        }
    }
}

/// The connection phase's figures for one server.
struct Connections {
    ok: u64,
    failures: Vec<(String, u64)>,
    dropped: u64,
    elapsed_s: f64,
    rss_before: u64,
    rss_after: u64,
    cpu_s: f64,
    closing_idle_s: f64,
    /// Devices the hub's registry showed Connected while all were held.
    registry_connected: Option<u64>,
    /// Cores other processes used while connecting.
    others: f64,
}

impl Connections {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed_s.max(1e-9)
    }
    fn rss_per_conn(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.ok.max(1) as f64
    }
    fn cpu_per_conn_ms(&self) -> f64 {
        self.cpu_s * 1000.0 / self.ok.max(1) as f64
    }
    fn failures_text(&self) -> String {
        if self.failures.is_empty() {
            return String::new();
        }
        let list: Vec<String> = self
            .failures
            .iter()
            .map(|(why, n)| format!("{n}× {why}"))
            .collect();
        format!(" (failed: {})", list.join("; "))
    }
}

/// Connects every device (at most `dial_concurrency` dials at once), keeps them all open,
/// samples the server, then closes them and waits for the server to go idle.
async fn connections(
    target: &Target,
    devices: &[Device],
    pid: u32,
    tck: f64,
    args: &HubBenchConfig,
    registry: Option<(&reqwest::Client, &str)>,
    ours: &[u32],
) -> Result<Connections> {
    wait_idle(pid, tck).await;
    let before = proc_sample(pid, tck);
    let load = Load::sample(ours, tck);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<std::result::Result<(), String>>();
    let dials = Arc::new(Semaphore::new(args.dial_concurrency.max(1)));
    let started = Instant::now();
    let mut holders = Vec::with_capacity(devices.len());
    for d in devices {
        let (target, d, stop, done, dials) = (
            target.clone(),
            d.clone(),
            stop_rx.clone(),
            done_tx.clone(),
            dials.clone(),
        );
        holders.push(tokio::spawn(async move {
            let dialled = {
                let Ok(_permit) = dials.acquire().await else {
                    return false;
                };
                tokio::time::timeout(DIAL_TIMEOUT, dial(&target, &d)).await
            };
            match dialled {
                Ok(Ok((tls, _))) => {
                    let _ = done.send(Ok(()));
                    drop(done);
                    hold(tls, stop).await
                }
                Ok(Err(e)) => {
                    let _ = done.send(Err(reason(&e)));
                    false
                }
                Err(_) => {
                    let _ = done.send(Err("no CONNACK within 60 s".into()));
                    false
                }
            }
        }));
    }
    drop(done_tx);
    let mut ok = 0u64;
    let mut failures: Vec<(String, u64)> = Vec::new();
    let mut last = started;
    while let Some(r) = done_rx.recv().await {
        last = Instant::now();
        match r {
            Ok(()) => {
                ok += 1;
                if ok.is_multiple_of(2000) {
                    eprintln!(
                        "   {ok} connected after {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            Err(why) => match failures.iter_mut().find(|(w, _)| *w == why) {
                Some((_, n)) => *n += 1,
                None => failures.push((why, 1)),
            },
        }
    }
    let elapsed_s = last.duration_since(started).as_secs_f64();
    let others = load.others(ours, tck);
    let connected = proc_sample(pid, tck);
    // What the server does after the last CONNACK (buffers settling) belongs to the figure.
    wait_idle(pid, tck).await;
    let after = proc_sample(pid, tck);
    let dropped_so_far = holders.iter().filter(|h| h.is_finished()).count();
    eprintln!(
        "   {ok} connected in {elapsed_s:.1} s; RSS {:.1} MiB; {dropped_so_far} tasks ended",
        mib(after.rss)
    );
    // After the RSS sample: the query's own memory must not count.
    let registry_connected = match registry {
        Some((http, base)) => count_connected(http, base).await,
        None => None,
    };
    let _ = stop_tx.send(true);
    let closing = Instant::now();
    let mut dropped = 0;
    for h in holders {
        if h.await.unwrap_or(false) {
            dropped += 1;
        }
    }
    wait_idle(pid, tck).await;
    Ok(Connections {
        ok,
        failures,
        dropped,
        elapsed_s,
        rss_before: before.rss,
        rss_after: after.rss.max(connected.rss),
        cpu_s: connected.cpu_s - before.cpu_s,
        closing_idle_s: closing.elapsed().as_secs_f64(),
        registry_connected,
        others,
    })
}

/// The telemetry phase's figures for one server.
struct Ingest {
    rate: f64,
    total_acked: u64,
    p50: Duration,
    p99: Duration,
    cpu_per_msg_us: f64,
    /// Cores other processes used during the window.
    others: f64,
}

/// A JSON body of exactly `len` bytes (at least the fixed members).
fn body(device: &str, len: usize) -> Bytes {
    let head = format!("{{\"deviceId\":\"{device}\",\"temperature\":21.5,\"pressure\":1013.25,\"status\":\"ok\",\"pad\":\"");
    let pad = len.saturating_sub(head.len() + 2);
    Bytes::from(format!("{head}{}\"}}", "x".repeat(pad)))
}

/// Every device publishes for warmup + window; acknowledged messages are counted across the
/// window and latencies kept for messages sent in it. Then every outstanding PUBACK is waited
/// for, so `total_acked` is all the server acknowledged.
async fn ingest(
    target: &Target,
    devices: &[Device],
    pid: u32,
    tck: f64,
    args: &HubBenchConfig,
    ours: &[u32],
) -> Result<Ingest> {
    wait_idle(pid, tck).await;
    let mut streams = Vec::with_capacity(devices.len());
    for d in devices {
        let (tls, buf) = dial(target, d)
            .await
            .with_context(|| format!("connecting {}", d.id))?;
        streams.push((tls, buf, d.id.clone()));
    }
    let acked = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(100);
    let measure_from = start + Duration::from_secs(args.warmup);
    let until = measure_from + Duration::from_secs(args.ingest_seconds.max(1));
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|(tls, buf, id)| {
            let acked = acked.clone();
            let topic = format!("devices/{id}/messages/events/");
            let body = body(&id, args.body_bytes);
            let window = args.in_flight.clamp(1, 65_535);
            tokio::spawn(publisher(
                tls,
                buf,
                topic,
                body,
                window,
                (start, measure_from, until),
                acked,
            ))
        })
        .collect();
    tokio::time::sleep_until(measure_from.into()).await;
    let (a0, c0) = (acked.load(Ordering::Relaxed), proc_sample(pid, tck));
    let load = Load::sample(ours, tck);
    tokio::time::sleep_until(until.into()).await;
    let (a1, c1) = (acked.load(Ordering::Relaxed), proc_sample(pid, tck));
    let others = load.others(ours, tck);
    let window = until.duration_since(measure_from).as_secs_f64();
    let mut lat = Vec::new();
    let mut errors = Vec::new();
    for t in futures::future::join_all(tasks).await {
        match t {
            Ok(Ok(l)) => lat.extend(l),
            Ok(Err(e)) => errors.push(reason(&e)),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if let Some(e) = errors.first() {
        bail!(
            "{} of {} publishers failed: {e}",
            errors.len(),
            devices.len()
        );
    }
    lat.sort();
    let n = a1 - a0;
    Ok(Ingest {
        rate: n as f64 / window,
        total_acked: acked.load(Ordering::Relaxed),
        p50: pct(&lat, 0.50),
        p99: pct(&lat, 0.99),
        cpu_per_msg_us: (c1.cpu_s - c0.cpu_s) * 1e6 / n.max(1) as f64,
        others,
    })
}

/// One device's QoS 1 publisher with `window` packet ids in flight; answers the PUBACK
/// latencies of messages sent at or after `measure_from`.
async fn publisher(
    mut tls: Tls,
    mut inbuf: BytesMut,
    topic: String,
    body: Bytes,
    window: usize,
    (start, measure_from, until): (Instant, Instant, Instant),
    acked: Arc<AtomicU64>,
) -> Result<Vec<Duration>> {
    tokio::time::sleep_until(start.into()).await;
    let mut publish = v4::Publish::from_bytes(topic, QoS::AtLeastOnce, body);
    // Packet ids 1..=window, reused as their PUBACKs come back.
    let mut free: Vec<u16> = (1..=window).filter_map(|i| u16::try_from(i).ok()).collect();
    let mut sent_at = vec![start; window + 1];
    let mut out = BytesMut::with_capacity(window * (publish.size() + 8));
    let mut lat = Vec::new();
    loop {
        let now = Instant::now();
        if now < until {
            while let Some(pkid) = free.pop() {
                publish.pkid = pkid;
                publish.write(&mut out).map_err(mqtt_error)?;
                sent_at[usize::from(pkid)] = now;
            }
            tls.write_all(&out).await.context("publishing")?;
            out.clear();
        } else if free.len() == window {
            return Ok(lat);
        }
        let n = tokio::time::timeout(Duration::from_secs(30), tls.read_buf(&mut inbuf))
            .await
            .context("no PUBACK for 30 s")?
            .context("reading PUBACKs")?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        loop {
            match v4::Packet::read(&mut inbuf, MAX_PACKET) {
                Ok(Packet::PubAck(a)) => {
                    let sent = sent_at
                        .get(usize::from(a.pkid))
                        .copied()
                        .with_context(|| format!("PUBACK for unknown packet id {}", a.pkid))?;
                    if sent >= measure_from && sent < until {
                        lat.push(sent.elapsed());
                    }
                    free.push(a.pkid);
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => break,
                Err(e) => return Err(mqtt_error(e)),
            }
        }
    }
}

/// The direct-method phase's figures.
struct Methods {
    rate: f64,
    failed: usize,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
    /// From when the call was due rather than sent: the client's own timer and scheduling
    /// delays included (coordinated omission would hide a stalled machine otherwise).
    p99_from_due: Duration,
    /// Cores other processes used during the window.
    others: f64,
}

/// A device that answers every direct method at once with status 200.
async fn method_device(
    mut tls: Tls,
    mut inbuf: BytesMut,
    subscribed: tokio::sync::oneshot::Sender<()>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut out = BytesMut::with_capacity(4096);
    v4::Subscribe::new("$iothub/methods/POST/#", QoS::AtMostOnce)
        .write(&mut out)
        .map_err(mqtt_error)?;
    tls.write_all(&out).await?;
    out.clear();
    let mut subscribed = Some(subscribed);
    let answer = Bytes::from_static(b"{\"ok\":true}");
    loop {
        loop {
            match v4::Packet::read(&mut inbuf, MAX_PACKET) {
                Ok(Packet::SubAck(_)) => {
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(());
                    }
                }
                Ok(Packet::Publish(p)) => {
                    let Some((_, rid)) = p.topic.split_once("$rid=") else {
                        continue;
                    };
                    v4::Publish::from_bytes(
                        format!("$iothub/methods/res/200/?$rid={rid}"),
                        QoS::AtMostOnce,
                        answer.clone(),
                    )
                    .write(&mut out)
                    .map_err(mqtt_error)?;
                }
                Ok(_) => {}
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => break,
                Err(e) => return Err(mqtt_error(e)),
            }
        }
        if !out.is_empty() {
            tls.write_all(&out).await?;
            out.clear();
        }
        tokio::select! {
            r = tls.read_buf(&mut inbuf) => {
                if r? == 0 {
                    bail!("the hub closed a method device's connection");
                }
            }
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return Ok(()),
        }
    }
}

async fn call_method(
    http: &reqwest::Client,
    url: &str,
    seq: u64,
) -> std::result::Result<(), String> {
    let r = http
        .post(url)
        .bearer_auth(KEY)
        .json(
            &json!({"methodName": "ping", "payload": {"seq": seq}, "responseTimeoutInSeconds": 5}),
        )
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let body: Value = r.json().await.map_err(|e| e.to_string())?;
    if status.is_success() && body["status"] == 200 {
        Ok(())
    } else {
        Err(format!("{status}: {body}"))
    }
}

async fn methods(
    target: &Target,
    http: &reqwest::Client,
    base: &str,
    devices: &[Device],
    args: &HubBenchConfig,
    ours: &[u32],
) -> Result<Methods> {
    let tck = clock_ticks();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut answering = Vec::new();
    for d in devices {
        let (tls, buf) = dial(target, d)
            .await
            .with_context(|| format!("connecting {}", d.id))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        answering.push(tokio::spawn(method_device(tls, buf, tx, stop_rx.clone())));
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .context("no SUBACK for $iothub/methods/POST/#")??;
    }
    let urls: Vec<Arc<String>> = devices
        .iter()
        .map(|d| Arc::new(format!("{base}/twins/{}/methods", d.id)))
        .collect();
    // Warm the HTTP pool and both sides' paths.
    for (i, url) in urls.iter().cycle().take(200).enumerate() {
        call_method(http, url, i as u64)
            .await
            .map_err(|e| BenchError::Failed(format!("a direct method failed: {e}")))?;
    }
    let rate = f64::from(args.method_rate.max(1));
    let warm = args.warmup as f64 * rate;
    let total = warm + args.method_seconds.max(1) as f64 * rate;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total as usize);
    let mut load = None;
    for i in 0..total as u64 {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let (http, url) = (http.clone(), urls[i as usize % urls.len()].clone());
        let counted = i as f64 >= warm;
        if counted && load.is_none() {
            load = Some(Load::sample(ours, tck));
        }
        tasks.push(tokio::spawn(async move {
            let sent = tokio::time::Instant::now();
            let r = call_method(&http, &url, i).await;
            (counted, due, sent, r.map(|()| tokio::time::Instant::now()))
        }));
    }
    let others = load.map_or(0.0, |l| l.others(ours, tck));
    let measured_from = start + Duration::from_secs_f64(warm / rate);
    let mut lat = Vec::new();
    let mut lag = Vec::new();
    let mut failed = 0;
    let mut first_error = None;
    // The window of the answered rate ends with the last answer of a counted call.
    let mut last_answer = measured_from;
    for t in futures::future::join_all(tasks).await {
        match t {
            Ok((true, due, sent, Ok(done))) => {
                last_answer = last_answer.max(done);
                lat.push(done.duration_since(sent));
                lag.push(done.duration_since(due));
            }
            Ok((true, _, _, Err(e))) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            Ok((false, ..)) => {}
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    if let Some(e) = first_error {
        eprintln!("   first failed call: {e}");
    }
    let _ = stop_tx.send(true);
    for a in answering {
        match a.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("   a method device failed: {}", reason(&e)),
            Err(e) => eprintln!("   a method device failed: {e}"),
        }
    }
    lat.sort();
    lag.sort();
    let window = last_answer.duration_since(measured_from).as_secs_f64();
    Ok(Methods {
        rate: lat.len() as f64 / window.max(1e-9),
        failed,
        p50: pct(&lat, 0.50),
        p90: pct(&lat, 0.90),
        p99: pct(&lat, 0.99),
        max: pct(&lat, 1.0),
        p99_from_due: pct(&lag, 0.99),
        others,
    })
}

/// The `p` quantile of sorted latencies (p = 1: the maximum).
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// 12345 → "12,345".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Creates `n` SAS devices `bench-00000…` and answers their primary keys.
async fn create_devices(http: &reqwest::Client, base: &str, n: usize) -> Result<Vec<Device>> {
    let made = futures::stream::iter(0..n)
        .map(|i| {
            let http = http.clone();
            let id = format!("bench-{i:05}");
            let url = format!("{base}/devices/{id}");
            async move {
                let r = http
                    .put(&url)
                    .bearer_auth(KEY)
                    .json(&json!({}))
                    .send()
                    .await?;
                let status = r.status();
                let body: Value = r.json().await?;
                if !status.is_success() {
                    bail!("PUT /devices/{id}: {status} {body}");
                }
                let key = body["authentication"]["symmetricKey"]["primaryKey"]
                    .as_str()
                    .with_context(|| format!("PUT /devices/{id} answered no primaryKey: {body}"))?
                    .to_string();
                Ok::<Device, BenchError>(Device { id, key })
            }
        })
        .buffered(CREATE_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    made.into_iter().collect()
}

/// Devices the registry shows Connected (an IoT Hub query over all twins); `None` if the
/// query failed.
async fn count_connected(http: &reqwest::Client, base: &str) -> Option<u64> {
    let r = http
        .post(format!("{base}/devices/query"))
        .bearer_auth(KEY)
        .json(&json!({"query": "SELECT COUNT() AS n FROM devices WHERE connectionState = 'Connected'"}))
        .send()
        .await
        .ok()?;
    let body: Value = r.json().await.ok()?;
    body[0]["n"].as_u64()
}

/// Rows of `hub_messages`, read from the hub's SQLite file beside the running hub (WAL lets a
/// reader in).
async fn count_rows(db: &Path) -> Result<u64> {
    let db = db.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open_with_flags(
            &db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| BenchError::Failed(format!("{}: {e}", db.display())))?;
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM hub_messages", [], |r| r.get(0))
            .map_err(|e| BenchError::Failed(format!("counting hub_messages: {e}")))?;
        Ok(u64::try_from(n).unwrap_or(0))
    })
    .await?
}

/// The machine's busy CPU time beside that of the bench's own processes, so a window that
/// shared the cores with something else (a build, a test run) says so instead of passing off
/// a contended figure as the hub's.
#[derive(Debug, Clone, Copy)]
struct Load {
    at: Instant,
    busy_s: f64,
    ours_s: f64,
}

impl Load {
    fn sample(ours: &[u32], tck: f64) -> Load {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        // cpu  user nice system idle iowait irq softirq steal …: busy is all but idle, iowait
        // and steal.
        let f: Vec<f64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let at = |i: usize| f.get(i).copied().unwrap_or(0.0);
        Load {
            at: Instant::now(),
            busy_s: (at(0) + at(1) + at(2) + at(5) + at(6)) / tck,
            ours_s: ours.iter().map(|p| proc_sample(*p, tck).cpu_s).sum(),
        }
    }

    /// Cores used by processes other than `ours` since this sample.
    fn others(&self, ours: &[u32], tck: f64) -> f64 {
        let now = Load::sample(ours, tck);
        let wall = now.at.duration_since(self.at).as_secs_f64().max(1e-9);
        ((now.busy_s - self.busy_s) - (now.ours_s - self.ours_s)).max(0.0) / wall
    }
}

/// Waits (at most 60 s) until the process used under 2 % of a core over 500 ms: the work a
/// phase left behind (closing sessions, their database writes) must not count in the next.
async fn wait_idle(pid: u32, tck: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = proc_sample(pid, tck);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = proc_sample(pid, tck);
        if now.cpu_s - last.cpu_s < 0.01 {
            return;
        }
        last = now;
    }
}

/// `iiot twin-api` with the hub's device endpoint, a child process.
struct HubProcess {
    child: Child,
    pid: u32,
    base: String,
    device_addr: std::net::SocketAddr,
    dir: PathBuf,
}

impl HubProcess {
    async fn start(exe: &Path, dir: &Path, rpc_url: &str) -> Result<HubProcess> {
        let data = dir.join("hub");
        std::fs::create_dir_all(&data)?;
        let keys = dir.join("api-keys.json");
        std::fs::write(
            &keys,
            json!([{ "name": "bench", "key": KEY, "roles": ["reader", "writer", "admin"] }])
                .to_string(),
        )?;
        let log = dir.join("hub.log");
        let (http_port, device_port) = (free_port()?, free_port()?);
        let mut child = Command::new(exe)
            .args(["--log", "warn", "twin-api", "--http-host", HOST])
            .args(["--http-port", &http_port.to_string()])
            .args(["--mqtt-url", rpc_url])
            .arg("--data-dir")
            .arg(&data)
            .arg("--api-keys")
            .arg(&keys)
            .args(["--hub-hostname", HOST])
            .args(["--hub-port", &device_port.to_string()])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("starting iiot twin-api")?;
        let pid = child.id().context("twin-api pid")?;
        let mut lines = BufReader::new(child.stdout.take().context("twin-api stdout")?).lines();
        let (base, device) = tokio::time::timeout(Duration::from_secs(60), async {
            let mut base = None;
            while let Some(line) = lines.next_line().await? {
                if let Some(u) = line.strip_prefix("twin-api listening on ") {
                    base = Some(u.trim().to_string());
                }
                if let Some(a) = line.strip_prefix("hub device endpoint on mqtts://") {
                    let addr: std::net::SocketAddr = a
                        .trim()
                        .parse()
                        .map_err(|e| BenchError::Failed(format!("device endpoint {a}: {e}")))?;
                    let base = base.context("no REST address before the device endpoint")?;
                    return Ok((base, addr));
                }
            }
            bail!("twin-api exited (see {})", log.display())
        })
        .await
        .context("twin-api did not start in 60 s")??;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(HubProcess {
            child,
            pid,
            base,
            device_addr: device,
            dir: data,
        })
    }

    async fn stop(mut self) {
        terminate(&mut self.child, Duration::from_secs(10)).await;
    }
}

/// Mosquitto with a TLS listener (P-256 server certificate from a CA of its own, as the hub
/// has), anonymous, nothing persisted: the reference for the connection and telemetry loads.
struct TlsMosquitto {
    child: Child,
    pid: u32,
    port: u16,
    ca: PathBuf,
    version: String,
}

impl TlsMosquitto {
    async fn start(dir: &Path) -> Result<TlsMosquitto> {
        let dir = dir.join("mosquitto");
        std::fs::create_dir_all(&dir)?;
        let (ca_pem, chain_pem, key_pem) = server_certificate()?;
        let (ca, cert, key) = (
            dir.join("ca.pem"),
            dir.join("server.pem"),
            dir.join("server.key"),
        );
        std::fs::write(&ca, ca_pem)?;
        std::fs::write(&cert, chain_pem)?;
        // Mosquitto started as root reads its files after dropping to its own user.
        std::fs::write(&key, key_pem)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for p in [&dir, &ca, &cert, &key] {
                let mode = if p.is_dir() { 0o755 } else { 0o644 };
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
            }
        }
        let port = free_port()?;
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} {HOST}\ncertfile {}\nkeyfile {}\ncafile {}\n\
                 allow_anonymous true\nmax_connections -1\nset_tcp_nodelay true\n\
                 persistence false\nlog_dest none\n",
                cert.display(),
                key.display(),
                ca.display()
            ),
        )?;
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mosquitto");
        let version = std::process::Command::new(bin)
            .arg("-h")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .find_map(|l| l.strip_prefix("mosquitto version "))
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_default();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("mosquitto not found: scripts/install-test-deps.sh installs it")?;
        let pid = child.id().context("mosquitto pid")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((HOST, port)).await.is_err() {
            if Instant::now() > deadline {
                bail!("Mosquitto with TLS did not listen on {port} in 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(TlsMosquitto {
            child,
            pid,
            port,
            ca,
            version,
        })
    }

    async fn stop(mut self) {
        terminate(&mut self.child, Duration::from_secs(10)).await;
    }
}

/// A CA and a P-256 server certificate for 127.0.0.1 signed by it: (CA PEM, chain PEM
/// leaf-first, key PEM), the shape of the hub's own.
fn server_certificate() -> Result<(String, String, String)> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };
    let failed =
        |e: rcgen::Error| BenchError::Failed(format!("making Mosquitto's certificate: {e}"));
    let ca_key = KeyPair::generate().map_err(failed)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca.distinguished_name
        .push(DnType::CommonName, "iiot bench Mosquitto CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(failed)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(failed)?;
    let mut leaf = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    leaf.distinguished_name.push(DnType::CommonName, HOST);
    leaf.subject_alt_names = vec![SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]))];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = leaf.signed_by(&key, &issuer).map_err(failed)?;
    Ok((
        ca_cert.pem(),
        format!("{}{}", cert.pem(), ca_cert.pem()),
        key.serialize_pem(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_asked_size_and_are_json() {
        let b = body("bench-00001", 256);
        assert_eq!(b.len(), 256);
        let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
        assert_eq!(v["deviceId"], "bench-00001");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn quantiles_of_sorted_latencies() {
        let lat: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(pct(&lat, 0.5), Duration::from_millis(51));
        assert_eq!(pct(&lat, 0.99), Duration::from_millis(100));
        assert_eq!(pct(&lat, 1.0), Duration::from_millis(100));
        assert_eq!(pct(&[], 0.5), Duration::ZERO);
    }
}
