//! What several benches set up the same way: free ports, a temporary directory, a private
//! Mosquitto, and a plc-sim with a module in this process.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{Context, Result};

pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Removes a benchmark's temporary directory on every exit path.
pub(crate) struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (and reaped) when the guard drops.
pub(crate) struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The broker a benchmark uses: `given`, or a private Mosquitto on a free port (stopped when
/// the returned guard drops).
pub(crate) async fn private_mosquitto(
    given: Option<String>,
) -> Result<(String, Option<KillOnDrop>)> {
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

/// A plc-sim and a module running in this process, on free ports.
pub(crate) struct Setup {
    pub plc: iiot_plc_sim::PlcSim,
    pub module: iiot_module::ModuleHandle,
    pub api_key: String,
    _dir: TempDir,
}

pub(crate) async fn setup(tree: Option<(u32, u32)>, mqtt_url: Option<String>) -> Result<Setup> {
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

/// The `connection` of a module request to an unsecured endpoint.
pub(crate) fn connection(url: &str) -> Value {
    json!({ "endpoint": { "url": url, "securityMode": "None" } })
}

/// Stops a child service as an operator would (SIGTERM, so it shuts down cleanly and its
/// figures are final), killing it if it has not exited within `grace`.
pub(crate) async fn terminate(child: &mut tokio::process::Child, grace: std::time::Duration) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill sends a signal to our own child, whose id we hold.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}
