//! `iiot bench read`: ValueRead round trips through the module over HTTP and MQTT v5 RPC, with
//! 1 and 64 concurrent callers.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::error::Result;
use crate::harness::{connection, private_mosquitto, setup};
use crate::mqtt_rpc::Rpc;
use crate::report::report;

pub struct ReadConfig {
    /// Seconds per measurement.
    pub seconds: u64,
    /// Broker for the MQTT runs; `None` starts a private Mosquitto.
    pub mqtt_url: Option<String>,
}

pub async fn run(config: ReadConfig) -> Result<()> {
    let (mqtt_url, _mosquitto) = private_mosquitto(config.mqtt_url.clone()).await?;
    let s = setup(None, Some(mqtt_url.clone())).await?;
    let base = format!("http://{}", s.module.http_addr);
    let body = json!({ "connection": connection(&s.plc.endpoint_url()), "request": { "nodeId": "nsu=urn:iiot:plc-sim;s=Fast/0" } });
    let duration = Duration::from_secs(config.seconds.max(1));
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
