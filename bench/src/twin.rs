//! `iiot bench twin`: the cloud read path, REST → twin API → Mosquitto → module → plc-sim.
//!
//! Everything runs in this process on free ports (Mosquitto as a child), the simulated PLC is
//! registered through the twin API exactly as a user would, and reads go to
//! `POST /twin/v2/read/{endpointId}` on its unsecured endpoint. Closed-loop rows (1, 16, 64
//! callers, each sending its next read when the last one answered) give the ceiling; the
//! open-loop row sends a fixed 1,000 reads/s whatever the answers do, which is how the issue's
//! latency goal is stated. Then the module relays 10k values/s of telemetry through the same
//! broker and the open-loop row is measured again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{bail, BenchError, Context, Result};
use crate::harness::{free_port, private_mosquitto, TempDir};
use crate::report::report;

pub struct TwinConfig {
    /// Seconds per measurement.
    pub seconds: u64,
    /// Reads per second of the open-loop rows.
    pub rate: u32,
    /// Broker to use; `None` starts a private Mosquitto.
    pub mqtt_url: Option<String>,
}

const KEY: &str = "bench-twin-key-0123456789";
/// Fast counters published in the relay phase: 1,000 nodes × 10 Hz = 10k values/s.
const RELAY_NODES: u32 = 1000;

pub async fn run(args: TwinConfig) -> Result<()> {
    let (mqtt_url, _mosquitto) = private_mosquitto(args.mqtt_url.clone()).await?;
    let dir = std::env::temp_dir().join(format!("iiot-bench-twin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let _cleanup = TempDir(dir.clone());

    let plc = iiot_plc_sim::PlcSim::start(iiot_plc_sim::PlcSimConfig {
        port: 0,
        pki_dir: dir.join("plc"),
        fast_nodes: RELAY_NODES,
        fast_rate_ms: 100,
        slow_nodes: 0,
        ..Default::default()
    })
    .await?;
    let module = iiot_module::start(iiot_module::ModuleConfig {
        http_bind: ([127, 0, 0, 1], 0).into(),
        api_key: KEY.into(),
        data_dir: dir.join("module"),
        mqtt_url: Some(mqtt_url.clone()),
        publisher_id: "bench-twin".into(),
        ..Default::default()
    })
    .await?;
    let mut config = iiot_twin_api::TwinApiConfig::new(iiot_twin_api::ApiKeys::single(
        "bench",
        KEY,
        [iiot_twin_api::Role::Admin],
    ));
    config.http_bind = ([127, 0, 0, 1], free_port()?).into();
    config.mqtt_url = mqtt_url.clone();
    config.data_dir = dir.join("twin-api");
    let twin = iiot_twin_api::start(config).await?;
    let base = format!("http://{}", twin.http_addr);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;

    let endpoint = register(&http, &base, &plc.endpoint_url()).await?;
    let url = Arc::new(format!("{base}/twin/v2/read/{endpoint}"));
    let body = Arc::new(json!({ "nodeId": "nsu=urn:iiot:plc-sim;s=Fast/0" }));
    for _ in 0..200 {
        read_once(&http, &url, &body).await?;
    }
    let window = Duration::from_secs(args.seconds.max(1));
    println!(
        "ValueRead through the twin API (REST → MQTT v5 → module → plc-sim), {} s per row",
        window.as_secs()
    );
    println!("| load | callers | p50 ms | p99 ms | reads/s |");
    println!("|---|---|---|---|---|");
    for callers in [1usize, 16, 64] {
        let (lat, elapsed) = closed_loop(&http, &url, &body, callers, window).await;
        report("closed loop", callers, lat, elapsed);
    }
    let (lat, elapsed, failed) = open_loop(&http, &url, &body, args.rate, window).await;
    report(
        &format!("{} reads/s offered ({failed} failed)", args.rate),
        0,
        lat,
        elapsed,
    );

    // The same offered load while the module relays telemetry through the same broker.
    let nodes: Vec<Value> = (0..RELAY_NODES)
        // Queue 10: five samples per node wait for each 500 ms publish instead of one.
        .map(|i| json!({ "Id": format!("nsu=urn:iiot:plc-sim;s=Fast/{i}"), "OpcSamplingInterval": 100, "QueueSize": 10 }))
        .collect();
    let entry = json!({
        "EndpointUrl": plc.endpoint_url(), "UseSecurity": false, "DataSetWriterGroup": "bench",
        "DataSetWriterId": "relay", "DataSetPublishingInterval": 500, "BatchSize": 500,
        "BatchTriggerInterval": 100, "OpcNodes": nodes,
    });
    http.post(format!(
        "http://{}/v2/configuration/nodes",
        module.http_addr
    ))
    .header("Authorization", format!("ApiKey {KEY}"))
    .json(&entry)
    .send()
    .await?
    .error_for_status()
    .context("PublishNodes")?;
    let relayed = wait_for_relay(&http, &module.http_addr.to_string()).await?;
    let (lat, elapsed, failed) = open_loop(&http, &url, &body, args.rate, window).await;
    report(
        &format!(
            "{} reads/s offered while relaying {relayed:.0} values/s ({failed} failed)",
            args.rate
        ),
        0,
        lat,
        elapsed,
    );
    println!("(callers 0: open loop, requests sent on a fixed schedule)");

    twin.shutdown().await;
    module.shutdown().await;
    plc.shutdown().await;
    Ok(())
}

/// Registers the PLC (retrying while the module's first state message is on its way) and
/// answers the id of its unsecured endpoint.
async fn register(http: &reqwest::Client, base: &str, plc_url: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http
            .post(format!("{base}/registry/v2/applications"))
            .bearer_auth(KEY)
            .json(&json!({ "discoveryUrl": plc_url }))
            .send()
            .await?;
        if r.status().is_success() {
            break;
        }
        if Instant::now() > deadline {
            bail!("registering plc-sim failed: {}", r.text().await?);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let endpoints: Value = http
        .get(format!("{base}/registry/v2/endpoints"))
        .bearer_auth(KEY)
        .send()
        .await?
        .json()
        .await?;
    endpoints["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["registration"]["endpoint"]["securityMode"] == "None")
        .and_then(|e| e["registration"]["id"].as_str())
        .map(str::to_string)
        .context("plc-sim's None endpoint is not in the registry")
}

async fn read_once(http: &reqwest::Client, url: &str, body: &Value) -> Result<()> {
    http.post(url)
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

async fn closed_loop(
    http: &reqwest::Client,
    url: &Arc<String>,
    body: &Arc<Value>,
    callers: usize,
    window: Duration,
) -> (Vec<Duration>, Duration) {
    let start = Instant::now();
    let tasks = (0..callers).map(|_| {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            while start.elapsed() < window {
                let t = Instant::now();
                if read_once(&http, &url, &body).await.is_ok() {
                    lat.push(t.elapsed());
                }
            }
            lat
        })
    });
    let mut lat = Vec::new();
    for t in futures::future::join_all(tasks).await {
        lat.extend(t.unwrap_or_default());
    }
    (lat, start.elapsed())
}

/// Sends `rate` reads per second on a fixed schedule; a late answer does not delay the next
/// request, so queueing shows in the latency instead of lowering the load.
async fn open_loop(
    http: &reqwest::Client,
    url: &Arc<String>,
    body: &Arc<Value>,
    rate: u32,
    window: Duration,
) -> (Vec<Duration>, Duration, usize) {
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut tasks = Vec::new();
    while start.elapsed() < window {
        tick.tick().await;
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            read_once(&http, &url, &body)
                .await
                .ok()
                .map(|_| t.elapsed())
        }));
    }
    let elapsed = start.elapsed();
    let mut lat = Vec::new();
    let mut failed = 0;
    for t in futures::future::join_all(tasks).await {
        match t.ok().flatten() {
            Some(d) => lat.push(d),
            None => failed += 1,
        }
    }
    (lat, elapsed, failed)
}

/// Waits until the relay runs at full rate and answers its values/s (from `/metrics`).
async fn wait_for_relay(http: &reqwest::Client, module: &str) -> Result<f64> {
    let encoded = || async {
        let text = http
            .get(format!("http://{module}/metrics"))
            .header("Authorization", format!("ApiKey {KEY}"))
            .send()
            .await?
            .text()
            .await?;
        Ok::<f64, BenchError>(
            text.lines()
                .find_map(|l| l.strip_prefix("iiot_publisher_values_encoded_total "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0),
        )
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (v0, t0) = (encoded().await?, Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rate = (encoded().await? - v0) / t0.elapsed().as_secs_f64();
    if rate < f64::from(RELAY_NODES) * 5.0 {
        bail!("the module relays only {rate:.0} values/s; the relay did not start");
    }
    Ok(rate)
}
