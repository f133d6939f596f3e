//! `iiot bench container`: the figures of the container image (issue 15): its size, how long
//! the module takes from `podman run` to healthy (first start on an empty volume, which makes
//! the application certificate, and a restart on the same volume), its idle RSS inside the
//! container, and how long `podman stop` takes.
//!
//! The image is the Dockerfile's `host-binary` target built from the given `iiot` binary (the
//! one running this bench unless told otherwise: run it from a release build for the figures
//! users get). Healthy means `/healthz` answers 200, polled every 10 ms from here; the image's
//! own HEALTHCHECK (`iiot health`) is run once after that to confirm it agrees.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::{bail, Context, Result};
use crate::harness::{free_port, TempDir};

const TAG: &str = "localhost/iiot:bench";

/// One run; `iiot bench container`'s flags.
pub struct ContainerConfig {
    /// The binary packaged into the image.
    pub iiot_exe: PathBuf,
    /// The repository (its Dockerfile and scripts/container-rootfs.sh).
    pub repo: PathBuf,
    /// Start/stop cycles measured (each a first start on a new volume and a restart).
    pub runs: u32,
}

struct Podman {
    conf: PathBuf,
}

impl Podman {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &self.conf).args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Result<String> {
        let out = self
            .cmd(args)
            .output()
            .with_context(|| format!("podman {} (is podman installed?)", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "podman {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// One measured start and stop of the module container.
struct Cycle {
    to_healthy: Duration,
    idle_rss_kib: u64,
    /// `podman stop` asked to the process's exit, as the runtime recorded it.
    exit: Duration,
    /// The whole `podman stop` command (with podman's clean-up).
    stop: Duration,
}

pub async fn run(config: ContainerConfig) -> Result<()> {
    let dir = TempDir(std::env::temp_dir().join(format!("iiot-bench-container-{}", free_port()?)));
    std::fs::create_dir_all(&dir.0)?;
    let podman = Podman {
        conf: config.repo.join("scripts/containers.conf"),
    };

    let ctx = dir.0.join("context");
    let build_started = Instant::now();
    let status = Command::new("bash")
        .arg(config.repo.join("scripts/container-image.sh"))
        .arg(&config.iiot_exe)
        .arg(TAG)
        .arg(&ctx)
        .env("CONTAINERS_CONF", &podman.conf)
        .status()
        .context("scripts/container-image.sh")?;
    if !status.success() {
        bail!("scripts/container-image.sh failed");
    }
    let build = build_started.elapsed();
    let size: u64 = podman
        .run(&["image", "inspect", "--format", "{{.Size}}", TAG])?
        .parse()?;
    let binary = std::fs::metadata(ctx.join("rootfs/usr/local/bin/iiot"))?.len();

    let mut first = Vec::new();
    let mut again = Vec::new();
    for _ in 0..config.runs.max(1) {
        let volume = format!("iiot-bench-{}", free_port()?);
        podman.run(&["volume", "create", &volume])?;
        let measured = async {
            first.push(cycle(&podman, &volume).await?);
            again.push(cycle(&podman, &volume).await?);
            Ok::<_, crate::BenchError>(())
        }
        .await;
        let _ = podman.run(&["volume", "rm", "-f", &volume]);
        measured?;
    }
    let _ = podman.run(&["rmi", "-f", TAG]);

    println!(
        "container image (Dockerfile target host-binary, {})",
        config.iiot_exe.display()
    );
    println!(
        "  image size            {:.1} MB (binary {:.1} MB), built in {:.1} s",
        mb(size),
        mb(binary),
        build.as_secs_f64()
    );
    for (label, cycles) in [
        ("first start (new volume)", &first),
        ("restart (same volume)", &again),
    ] {
        println!("  {label}");
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        row(
            "run → healthy",
            "ms",
            cycles.iter().map(|c| ms(c.to_healthy)),
        );
        row(
            "idle RSS",
            "MiB",
            cycles.iter().map(|c| c.idle_rss_kib as f64 / 1024.0),
        );
        row("SIGTERM → exit", "ms", cycles.iter().map(|c| ms(c.exit)));
        row("podman stop", "ms", cycles.iter().map(|c| ms(c.stop)));
    }
    Ok(())
}

/// `podman run` of the module on `volume`, timed to its first healthy answer; its RSS after
/// 3 s idle; then a timed `podman stop`.
async fn cycle(podman: &Podman, volume: &str) -> Result<Cycle> {
    let port = free_port()?;
    let name = format!("iiot-bench-module-{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()?;
    let url = format!("http://127.0.0.1:{port}/healthz");
    let started = Instant::now();
    podman.run(&[
        "run",
        "-d",
        "--name",
        &name,
        "--read-only",
        "--network",
        "host",
        "-e",
        &format!("IIOT_HTTP_PORT={port}"),
        "-e",
        "IIOT_LOG=warn",
        "-v",
        &format!("{volume}:/data"),
        TAG,
    ])?;
    let result = async {
        let to_healthy = loop {
            if let Ok(r) = http.get(&url).send().await {
                if r.status().is_success() {
                    break started.elapsed();
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the module in the container was not healthy within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        podman
            .run(&["healthcheck", "run", &name])
            .context("the image's HEALTHCHECK disagrees with /healthz")?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let pid = podman.run(&["inspect", "--format", "{{.State.Pid}}", &name])?;
        let idle_rss_kib = rss_kib(&PathBuf::from(format!("/proc/{pid}/status")))?;
        let asked = unix_nanos()?;
        let stop_started = Instant::now();
        podman.run(&["stop", "-t", "10", &name])?;
        let stop = stop_started.elapsed();
        let code = podman.run(&["inspect", "--format", "{{.State.ExitCode}}", &name])?;
        if code != "0" {
            bail!("the module exited with {code} after SIGTERM");
        }
        let finished: u128 = podman
            .run(&[
                "inspect",
                "--format",
                "{{.State.FinishedAt.UnixNano}}",
                &name,
            ])?
            .parse()
            .context("FinishedAt")?;
        let exit =
            Duration::from_nanos(u64::try_from(finished.saturating_sub(asked)).unwrap_or(u64::MAX));
        Ok(Cycle {
            to_healthy,
            idle_rss_kib,
            exit,
            stop,
        })
    }
    .await;
    let _ = podman.run(&["rm", "-f", "-t", "0", &name]);
    result
}

fn rss_kib(status: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(status)?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("no VmRSS in /proc/PID/status")?;
    Ok(line.trim().trim_end_matches("kB").trim().parse()?)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// One figure of a start/stop kind: its median and every run's value.
fn row(label: &str, unit: &str, values: impl Iterator<Item = f64>) {
    let mut v: Vec<f64> = values.collect();
    let runs = v
        .iter()
        .map(|x| format!("{x:.1}"))
        .collect::<Vec<_>>()
        .join(", ");
    v.sort_by(f64::total_cmp);
    let median = v.get(v.len() / 2).copied().unwrap_or(f64::NAN);
    println!("    {label:<19} median {median:>6.1} {unit:<3} (runs: {runs})");
}

fn unix_nanos() -> Result<u128> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| crate::BenchError::Failed(format!("clock before 1970: {e}")))?
        .as_nanos())
}
