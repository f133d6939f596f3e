//! `iiot bench browse`: a whole plc-sim tree through the module's BrowseStream, beside the
//! asyncua browse client of `tests/peers/` on the same server.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{json, Value};

use crate::error::{bail, Context, Result};
use crate::harness::{connection, setup};

pub struct BrowseConfig {
    /// Tree shape (depth, breadth) of plc-sim's `Tree` folder.
    pub tree: (u32, u32),
    /// Python with asyncua for the side-by-side run; skipped when the file is missing.
    pub python: PathBuf,
    /// Runs of each; the best is reported.
    pub runs: u32,
}

pub async fn run(config: BrowseConfig) -> Result<()> {
    let s = setup(Some(config.tree), None).await?;
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
    for _ in 0..config.runs.max(1) {
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
    if config.python.exists() {
        let mut best = f64::MAX;
        let mut count = 0;
        for _ in 0..config.runs.max(1) {
            let out = Command::new(&config.python)
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
            config.python.display()
        );
    }

    let (depth, breadth) = config.tree;
    println!(
        "browse of Tree ({depth}x{breadth}) on plc-sim, best of {} runs",
        config.runs
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
