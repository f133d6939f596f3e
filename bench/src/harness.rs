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

/// CPU seconds (user + system) and resident bytes of a process.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcSample {
    pub cpu_s: f64,
    pub rss: u64,
}

/// Clock ticks per second, the unit of `/proc/{pid}/stat`'s CPU times.
pub(crate) fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant of the system.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// A process's CPU time and RSS from `/proc` (zeros once it is gone).
pub(crate) fn proc_sample(pid: impl std::fmt::Display, tck: f64) -> ProcSample {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name (which may hold spaces): utime is field 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    ProcSample {
        cpu_s: (ticks(11) + ticks(12)) / tck,
        rss: rss_kb * 1024,
    }
}
