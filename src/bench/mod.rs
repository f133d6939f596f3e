//! `iiot bench ...`: benchmarks that print the figures README's performance table quotes.
//!
//! `browse` and `read` start what they measure in this process (plc-sim, the module) on free
//! ports, warm up, then measure through the public API exactly as a user's client would.
//! `relay` runs plc-sim and the module as child processes, so that their CPU and memory can be
//! read from /proc (see `relay.rs`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

mod relay;
mod sink;
mod twin;
mod vault;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Browse a whole plc-sim tree through the API (BrowseStream), and with an asyncua client.
    Browse(BrowseArgs),
    /// ValueRead round trips over HTTP and MQTT RPC with 1 and 64 concurrent callers.
    Read(ReadArgs),
    /// OPC UA → MQTT telemetry: values/s, loss, duplicates, latency, CPU and RSS of the module,
    /// beside an asyncua + paho-mqtt relay (bench/asyncua_relay.py), over a ladder of loads.
    Relay(relay::RelayArgs),
    /// ValueRead through the twin API (REST → MQTT v5 → module → plc-sim): closed loop with 1,
    /// 16 and 64 callers, then a fixed 1,000 reads/s, alone and while the module relays 10k
    /// values/s.
    Twin(twin::TwinArgs),
    /// Certificates signed per second through the vault's REST API (RSA-2048 and P-256 CAs, 1
    /// and 16 clients) beside `openssl speed` for the same key type.
    Vault(vault::VaultArgs),
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

#[derive(Args, Debug)]
pub struct ReadArgs {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Broker for the MQTT runs; by default a private Mosquitto is started if installed.
    #[arg(long)]
    pub mqtt_url: Option<String>,
}

pub async fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Browse(a) => browse(a).await,
        BenchCommand::Read(a) => read(a).await,
        BenchCommand::Relay(a) => relay::relay(a).await,
        BenchCommand::Twin(a) => twin::twin(a).await,
        BenchCommand::Vault(a) => vault::vault(a).await,
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Setup {
    plc: iiot_plc_sim::PlcSim,
    module: iiot_module::ModuleHandle,
    api_key: String,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn setup(tree: Option<(u32, u32)>, mqtt_url: Option<String>) -> Result<Setup> {
    let dir = std::env::temp_dir().join(format!("iiot-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let started = Instant::now();
    let plc = iiot_plc_sim::PlcSim::start(iiot_plc_sim::PlcSimConfig {
        port: 0,
        pki_dir: dir.join("plc"),
        fast_nodes: 10,
        fast_rate_ms: 100,
        slow_nodes: 0,
        tree,
        ..Default::default()
    })
    .await?;
    eprintln!("plc-sim ready in {:.2} s", started.elapsed().as_secs_f64());
    let api_key = "bench-key".to_string();
    let module = iiot_module::start(iiot_module::ModuleConfig {
        http_bind: ([127, 0, 0, 1], 0).into(),
        api_key: api_key.clone(),
        data_dir: dir.join("module"),
        mqtt_url,
        publisher_id: "bench".into(),
        ..Default::default()
    })
    .await?;
    Ok(Setup {
        plc,
        module,
        api_key,
        _dir: TempDir(dir),
    })
}

fn connection(url: &str) -> Value {
    json!({ "endpoint": { "url": url, "securityMode": "None" } })
}

async fn browse(args: BrowseArgs) -> Result<()> {
    let tree = crate::args::parse_tree(&args.tree)?;
    let s = setup(Some(tree), None).await?;
    let url = s.plc.endpoint_url();
    let http = reqwest::Client::new();
    let base = format!("http://{}", s.module.http_addr);
    let conn = connection(&url);
    // Warm-up: opens the session, as asyncua's connect is outside its timing too.
    http.post(format!("{base}/v2/read"))
        .header("Authorization", format!("ApiKey {}", s.api_key))
        .json(&json!({ "connection": conn, "request": { "nodeId": "i=2258" } }))
        .send()
        .await?
        .error_for_status()?;

    let mut best_api = f64::MAX;
    let mut api_nodes = 0;
    for _ in 0..args.runs.max(1) {
        let t = Instant::now();
        let body = http
            .post(format!("{base}/v2/browse"))
            .header("Authorization", format!("ApiKey {}", s.api_key))
            .json(&json!({ "connection": conn, "request": { "nodeId": ["nsu=urn:iiot:plc-sim;s=Tree"] } }))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let secs = t.elapsed().as_secs_f64();
        let mut nodes = std::collections::HashSet::new();
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let chunk: Value = serde_json::from_slice(line)?;
            if let Some(id) = chunk["reference"]["target"]["nodeId"].as_str() {
                nodes.insert(id.to_string());
            } else {
                bail!("browse stream reported an error: {chunk}");
            }
        }
        api_nodes = nodes.len() + 1; // + the Tree folder itself, as asyncua counts it
        best_api = best_api.min(secs);
    }

    let mut peer = None;
    if args.python.exists() {
        let mut best = f64::MAX;
        let mut count = 0;
        for _ in 0..args.runs.max(1) {
            let out = Command::new(&args.python)
                .arg("tests/peers/asyncua_browse_bench.py")
                .args(["--url", &url, "--root", "nsu=urn:iiot:plc-sim;s=Tree"])
                .stderr(Stdio::inherit())
                .output()
                .context("running the asyncua browse bench")?;
            let v: Value = serde_json::from_slice(&out.stdout).with_context(|| {
                format!(
                    "asyncua bench printed {}",
                    String::from_utf8_lossy(&out.stdout)
                )
            })?;
            best = best.min(v["seconds"].as_f64().unwrap_or(f64::MAX));
            count = v["nodes"].as_u64().unwrap_or(0);
        }
        peer = Some((count, best));
    } else {
        eprintln!(
            "{} not found: run scripts/install-peers.sh for the asyncua comparison",
            args.python.display()
        );
    }

    println!(
        "browse of Tree ({}) on plc-sim, best of {} runs",
        args.tree, args.runs
    );
    println!("| client | nodes | seconds | nodes/s |");
    println!("|---|---|---|---|");
    println!(
        "| iiot module API (POST /v2/browse) | {api_nodes} | {best_api:.3} | {:.0} |",
        api_nodes as f64 / best_api
    );
    if let Some((n, secs)) = peer {
        println!(
            "| asyncua 2.1 client (direct OPC UA) | {n} | {secs:.3} | {:.0} |",
            n as f64 / secs
        );
        println!("ratio asyncua / iiot API: {:.2}x", secs / best_api);
    }
    s.module.shutdown().await;
    s.plc.shutdown().await;
    Ok(())
}

/// Latency percentiles and throughput of one measurement.
fn report(label: &str, callers: usize, mut lat: Vec<Duration>, elapsed: Duration) {
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(f64::NAN)
    };
    println!(
        "| {label} | {callers} | {:.2} | {:.2} | {:.0} |",
        pct(0.50),
        pct(0.99),
        lat.len() as f64 / elapsed.as_secs_f64()
    );
}

/// The broker a benchmark uses: `given`, or a private Mosquitto on a free port (stopped when
/// the returned guard drops).
async fn private_mosquitto(given: Option<String>) -> Result<(String, Option<KillOnDrop>)> {
    if let Some(u) = given {
        return Ok((u, None));
    }
    let port = free_port()?;
    let conf = std::env::temp_dir().join(format!("iiot-bench-mosquitto-{port}.conf"));
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nmax_queued_messages 0\nlog_dest none\n"))?;
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("mosquitto not found: install it or pass --mqtt-url")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok((format!("mqtt://127.0.0.1:{port}"), Some(KillOnDrop(child))))
}

async fn read(args: ReadArgs) -> Result<()> {
    let (mqtt_url, _mosquitto) = private_mosquitto(args.mqtt_url.clone()).await?;
    let s = setup(None, Some(mqtt_url.clone())).await?;
    let base = format!("http://{}", s.module.http_addr);
    let body = json!({ "connection": connection(&s.plc.endpoint_url()), "request": { "nodeId": "nsu=urn:iiot:plc-sim;s=Fast/0" } });
    let duration = Duration::from_secs(args.seconds.max(1));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()?;
    let key = s.api_key.clone();
    http.post(format!("{base}/v2/read"))
        .header("Authorization", format!("ApiKey {key}"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?;

    println!(
        "ValueRead of one plc-sim node through the module, {} s per row",
        duration.as_secs()
    );
    println!("| transport | callers | p50 ms | p99 ms | reads/s |");
    println!("|---|---|---|---|---|");
    for callers in [1usize, 64] {
        let start = Instant::now();
        let tasks = (0..callers).map(|_| {
            let http = http.clone();
            let url = format!("{base}/v2/read");
            let key = key.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while start.elapsed() < duration {
                    let t = Instant::now();
                    let ok = http
                        .post(&url)
                        .header("Authorization", format!("ApiKey {key}"))
                        .json(&body)
                        .send()
                        .await
                        .map(|r| r.status().is_success())
                        .unwrap_or(false);
                    if ok {
                        lat.push(t.elapsed());
                    }
                }
                lat
            })
        });
        let mut lat = Vec::new();
        for t in futures::future::join_all(tasks).await {
            lat.extend(t?);
        }
        report("HTTP", callers, lat, start.elapsed());
    }

    let rpc = Rpc::connect(&mqtt_url).await?;
    let payload = serde_json::to_vec(&body)?;
    for _ in 0..50 {
        if tokio::time::timeout(
            Duration::from_millis(200),
            rpc.call("bench/methods/ValueRead", &payload),
        )
        .await
        .is_ok()
        {
            break;
        }
    }
    for callers in [1usize, 64] {
        let start = Instant::now();
        let tasks = (0..callers).map(|_| {
            let rpc = rpc.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while start.elapsed() < duration {
                    let t = Instant::now();
                    if let Ok(Ok(200)) = tokio::time::timeout(
                        Duration::from_secs(10),
                        rpc.call("bench/methods/ValueRead", &payload),
                    )
                    .await
                    {
                        lat.push(t.elapsed());
                    }
                }
                lat
            })
        });
        let mut lat = Vec::new();
        for t in futures::future::join_all(tasks).await {
            lat.extend(t?);
        }
        report("MQTT v5 RPC (Mosquitto)", callers, lat, start.elapsed());
    }
    s.module.shutdown().await;
    s.plc.shutdown().await;
    Ok(())
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Pending = Arc<Mutex<HashMap<Vec<u8>, tokio::sync::oneshot::Sender<u16>>>>;

/// An MQTT v5 RPC caller that correlates many concurrent requests on one connection.
#[derive(Clone)]
struct Rpc {
    client: rumqttc::v5::AsyncClient,
    pending: Pending,
    reply: String,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl Rpc {
    async fn connect(url: &str) -> Result<Rpc> {
        use rumqttc::v5::mqttbytes::v5::Packet;
        use rumqttc::v5::mqttbytes::QoS;
        use rumqttc::v5::{AsyncClient, Event, MqttOptions};
        let hostport = url.trim_start_matches("mqtt://");
        let (host, port) = hostport
            .rsplit_once(':')
            .context("mqtt url needs host:port")?;
        let mut options =
            MqttOptions::new(format!("bench-{}", std::process::id()), host, port.parse()?);
        let mut net = options.network_options();
        net.set_tcp_nodelay(true);
        options.set_network_options(net);
        let (client, mut event_loop) = AsyncClient::new(options, 1024);
        let reply = format!("bench-{}/replies", std::process::id());
        let pending: Pending = Arc::default();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let p = pending.clone();
        let sub = client.clone();
        let topic = reply.clone();
        tokio::spawn(async move {
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = sub.subscribe(topic.clone(), QoS::AtMostOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(t) = ready_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(msg))) => {
                        let props = msg.properties.unwrap_or_default();
                        let status = props
                            .user_properties
                            .iter()
                            .find(|(k, _)| k == "StatusCode")
                            .and_then(|(_, v)| v.parse().ok())
                            .unwrap_or(0);
                        if let Some(c) = props.correlation_data {
                            if let Some(tx) = p.lock().ok().and_then(|mut m| m.remove(c.as_ref())) {
                                let _ = tx.send(status);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .context("MQTT broker did not answer")??;
        Ok(Rpc {
            client,
            pending,
            reply,
            next: Arc::default(),
        })
    }

    async fn call(&self, topic: &str, payload: &[u8]) -> Result<u16> {
        use rumqttc::v5::mqttbytes::v5::PublishProperties;
        use rumqttc::v5::mqttbytes::QoS;
        let id = self
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_le_bytes()
            .to_vec();
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Ok(mut m) = self.pending.lock() {
            m.insert(id.clone(), tx);
        }
        let props = PublishProperties {
            response_topic: Some(self.reply.clone()),
            correlation_data: Some(id.into()),
            ..Default::default()
        };
        self.client
            .publish_with_properties(topic, QoS::AtMostOnce, false, payload.to_vec(), props)
            .await?;
        Ok(rx.await?)
    }
}
