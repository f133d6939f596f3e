//! A private Mosquitto on a free port: tests never share the machine's broker, so retained
//! messages and sessions of one test cannot reach another.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, signal, temp_dir, wait_for_port_of, KillOnDrop};

/// A Mosquitto process, stopped when dropped.
pub struct Mosquitto {
    pub port: u16,
    pub dir: PathBuf,
    conf: PathBuf,
    proc: Option<KillOnDrop>,
}

impl Mosquitto {
    /// Anonymous, nothing kept across a restart, and no queued QoS 1 message dropped
    /// (`max_queued_messages 0`).
    pub async fn start() -> Mosquitto {
        Self::launch("mosquitto", "persistence false\n", &[]).await
    }

    /// Like [`start`](Self::start), with `extra` lines for its one listener (e.g. TLS files).
    pub async fn start_with(extra: &[&str]) -> Mosquitto {
        Self::launch("mosquitto", "persistence false\n", extra).await
    }

    /// Keeps sessions and their queued messages across [`stop`](Self::stop) and
    /// [`resume`](Self::resume) on the same port; `extra` lines are added to the
    /// configuration (e.g. `max_inflight_messages 0`).
    pub async fn start_persistent(extra: &[&str]) -> Mosquitto {
        Self::launch("mosquitto-persist", "persistence true\n", extra).await
    }

    async fn launch(name: &str, persistence: &str, extra: &[&str]) -> Mosquitto {
        let port = free_port();
        let dir = temp_dir(name);
        // Started as root, Mosquitto drops to its own user: without write access to its
        // directory it silently keeps no sessions across a restart.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("broker dir permissions");
        let mut text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n\
             max_queued_messages 0\n{persistence}persistence_location {}/\nlog_dest none\n",
            dir.display()
        );
        for line in extra {
            text.push_str(line);
            text.push('\n');
        }
        let conf = dir.join("mosquitto.conf");
        std::fs::write(&conf, text).expect("mosquitto.conf");
        let mut m = Mosquitto {
            port,
            dir,
            conf,
            proc: None,
        };
        m.resume().await;
        m
    }

    /// Starts the broker again on its port with its configuration (after [`stop`](Self::stop)).
    pub async fn resume(&mut self) {
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mosquitto");
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mosquitto must be installed (scripts/install-test-deps.sh)");
        wait_for_port_of(self.port, "mosquitto", &mut child).await;
        self.proc = Some(KillOnDrop(child));
    }

    /// SIGTERM, so a persistent broker saves its sessions before it goes; killed if it has
    /// not exited within 10 s.
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            signal(&p.0, "TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while p.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}
