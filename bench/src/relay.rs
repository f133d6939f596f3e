//! `iiot bench relay`: OPC UA → MQTT telemetry throughput, loss, latency, CPU and memory.
//!
//! Per ladder step (`ITEMSxHZ`): a plc-sim child process serves `Fast/0..ITEMS-1` counters that
//! step every 1/HZ s; a private Mosquitto carries the messages; the sink (`sink.rs`, in this
//! process) subscribes and checks every node's sequence. First the module (`iiot module`, a
//! child process) publishes the nodes as batched PubSub JSON, then (if the step is small
//! enough) `bench/asyncua_relay.py` relays the same nodes with asyncua + paho-mqtt, one QoS 1
//! message per value. Both get the same sampling, publishing interval and queue size.
//!
//! Timeline of one run: start the publisher; the module first relays the step's first 100
//! nodes for 3 s and its RSS then is the baseline (so code pages touched once do not count as
//! memory per item; the asyncua relay's baseline is taken before it subscribes); hand it the
//! nodes (the module: publishednodes.json rewritten, picked up by its
//! file poll; the relay: a `GO` line) and time until every monitored item is Good (the module's
//! `/metrics` gauge, the relay's READY line); warm up; measure for `--duration` seconds (CPU
//! from /proc/PID/stat, RSS from /proc/PID/status, values from the sink); then wait until
//! every node delivered the window's last value, or a drain timeout, before counting loss.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::error::{bail, BenchError, Context, Result};
use crate::harness::{clock_ticks, free_port, proc_sample, terminate, TempDir};
use crate::sink::{now_ns, Sink, RELAY_PREFIX};

/// One run of the relay ladder; `iiot bench relay`'s flags, whose help says more.
pub struct RelayConfig {
    /// The `iiot` binary, started as `iiot plc-sim` and `iiot module` for each step.
    pub iiot_exe: PathBuf,
    /// Ladder steps, comma separated: ITEMSxHZ, and `ramp` for the ramp steps.
    pub steps: String,
    /// Item counts of the ramp, tried in order until the first loss.
    pub ramp_items: String,
    /// Rate of every ramp step.
    pub ramp_hz: u32,
    /// Seconds of each measurement window.
    pub duration: u64,
    /// Seconds discarded after all items are Good, before the window.
    pub warmup: u64,
    /// Only the module, no asyncua relay.
    pub skip_peer: bool,
    /// Steps above this many items skip the asyncua relay.
    pub peer_max_items: u32,
    /// Monitored items per data set writer (one subscription each).
    pub items_per_writer: u32,
    /// BatchSize of every writer.
    pub batch_size: u32,
    /// BatchTriggerInterval of every writer, ms.
    pub batch_trigger_ms: u64,
    /// Python with asyncua and paho-mqtt.
    pub python: PathBuf,
    /// The asyncua + paho relay (`bench/asyncua_relay.py`).
    pub relay_script: PathBuf,
    /// Keep the step directories (logs, publishednodes.json) after the run.
    pub keep: bool,
    /// Profiler command the module runs under, split at spaces.
    pub module_wrapper: Option<String>,
}

impl RelayConfig {
    /// The CI smoke run: one step of 200 items × 5 Hz, at most 5 s measured after 1 s of
    /// warm-up; it fails on any loss like every step outside the ramp.
    pub fn quick(mut self) -> Self {
        self.steps = "200x5".into();
        self.duration = self.duration.min(5);
        self.warmup = 1;
        self
    }
}

/// Items the module relays while its RSS baseline is taken.
const WARM_ITEMS: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Step {
    items: u32,
    hz: u32,
    ramp: bool,
}

impl Step {
    fn period_ms(&self) -> u64 {
        (1000 / u64::from(self.hz.max(1))).max(1)
    }
    /// Sampling at half the source period never merges two values; async-opcua's floor is
    /// 100 ms, which at 10 Hz equals the period (values then arrive, later, never merged).
    fn sampling_ms(&self) -> u64 {
        (self.period_ms() / 2).max(100)
    }
    /// At most 5 values per node per publish, so the server queue (10 at most) never drops.
    fn publishing_ms(&self) -> u64 {
        (self.period_ms() * 5).clamp(100, 1000)
    }
    const QUEUE_SIZE: u32 = 10;
    fn label(&self) -> String {
        format!("{}x{}", self.items, self.hz)
    }
}

fn parse_steps(args: &RelayConfig) -> Result<Vec<Step>> {
    let mut out = Vec::new();
    for s in args
        .steps
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if s.eq_ignore_ascii_case("ramp") {
            for n in args.ramp_items.split(',').map(str::trim) {
                out.push(Step {
                    items: n
                        .parse()
                        .with_context(|| format!("--ramp-items: bad '{n}'"))?,
                    hz: args.ramp_hz,
                    ramp: true,
                });
            }
            continue;
        }
        let (n, hz) = s
            .split_once(['x', 'X'])
            .with_context(|| format!("step '{s}' must be ITEMSxHZ, e.g. 10000x10, or ramp"))?;
        let step = Step {
            items: n.trim().parse().with_context(|| format!("step '{s}'"))?,
            hz: hz.trim().parse().with_context(|| format!("step '{s}'"))?,
            ramp: false,
        };
        // plc-sim counters change at most every 10 ms (iiot_plc_sim::MIN_RATE_MS).
        if step.items == 0 || step.hz == 0 || step.hz > 100 {
            bail!("step '{s}': items ≥ 1 and 1 ≤ hz ≤ 100");
        }
        out.push(step);
    }
    Ok(out)
}

/// Figures of one publisher on one step.
#[derive(Debug, Clone, Default)]
struct Outcome {
    items: u32,
    hz: u32,
    /// Seconds from handing over the nodes to all items Good; `None` if never.
    time_to_good: Option<f64>,
    /// How all-Good was decided.
    good_source: &'static str,
    good_items: u64,
    window_s: f64,
    /// Values per second the source produced for the subscribed nodes in the window.
    produced_per_s: f64,
    delivered_per_s: f64,
    expected: u64,
    /// Window values not received by the end of the drain: gaps and `late` together.
    loss: u64,
    /// Of `loss`, values after each node's newest delivered one (a lagging publisher's
    /// backlog, or values it never sent), rather than gaps before it.
    late: u64,
    duplicates: u64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us_per_value: f64,
    cpu_share: f64,
    rss_base: u64,
    /// Items already running when `rss_base` was taken (the module's warm-up set).
    base_items: u32,
    /// The highest RSS seen: right after all items turned Good, or in the window.
    rss_after: u64,
    /// Median RSS of the window (sampled each second): what the process keeps while it
    /// relays, once start-up's short-lived buffers went back to the OS.
    rss_steady: u64,
    sink_cpu_share: f64,
    sink_us_per_value: f64,
    notes: Vec<String>,
}

impl Outcome {
    /// Items the RSS growth is shared by.
    fn added_items(&self) -> f64 {
        f64::from(self.items.saturating_sub(self.base_items).max(1))
    }
    fn rss_per_item(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_base) as f64 / self.added_items()
    }
    fn steady_rss_per_item(&self) -> f64 {
        self.rss_steady.saturating_sub(self.rss_base) as f64 / self.added_items()
    }
    fn source_limited(&self) -> bool {
        let nominal = f64::from(self.items) * f64::from(self.hz);
        self.loss == 0 && self.produced_per_s < 0.9 * nominal
    }
}

pub async fn run(args: RelayConfig) -> Result<()> {
    let steps = parse_steps(&args)?;
    let exe = args.iiot_exe.clone();
    let dir = std::env::temp_dir().join(format!("iiot-bench-relay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let keep = args.keep;
    let _cleanup = (!keep).then(|| TempDir(dir.clone()));
    let peer_ok = !args.skip_peer && args.python.exists() && args.relay_script.exists();
    if !args.skip_peer && !peer_ok {
        eprintln!(
            "{} or {} not found: run scripts/install-peers.sh --python-only for the asyncua relay",
            args.python.display(),
            args.relay_script.display()
        );
    }
    let tck = clock_ticks();
    let broker = Mosquitto::start(&dir).await?;
    eprintln!(
        "bench relay: broker on port {}, logs in {}{}",
        broker.port,
        dir.display(),
        if keep {
            ""
        } else {
            " (removed at the end; --keep keeps them)"
        }
    );

    let mut rows: Vec<(Step, Outcome, Option<Outcome>)> = Vec::new();
    let mut ramp_stop: Option<String> = None;
    let mut aborted: Option<BenchError> = None;
    for (k, step) in steps.iter().enumerate() {
        if step.ramp && ramp_stop.is_some() {
            continue;
        }
        let sdir = dir.join(format!("step{k}-{}", step.label()));
        std::fs::create_dir_all(&sdir)?;
        eprintln!(
            "== step {} ({} items × {} Hz: sampling {} ms, publishing {} ms, queue {})",
            step.label(),
            step.items,
            step.hz,
            step.sampling_ms(),
            step.publishing_ms(),
            Step::QUEUE_SIZE
        );
        let plc = match PlcSim::start(&exe, &sdir, step).await {
            Ok(p) => p,
            Err(e) => {
                aborted = Some(e.context(format!("step {}: plc-sim", step.label())));
                break;
            }
        };
        let iiot = match run_module(&exe, &sdir, step, &plc, &broker, &args, tck).await {
            Ok(o) => o,
            Err(e) => {
                plc.stop().await;
                aborted = Some(e.context(format!("step {}: module run", step.label())));
                break;
            }
        };
        print_outcome("iiot module", &iiot);
        let peer = if peer_ok && !step.ramp && step.items <= args.peer_max_items {
            match run_peer(&sdir, step, &plc, &broker, &args, tck).await {
                Ok(o) => {
                    print_outcome("asyncua relay", &o);
                    Some(o)
                }
                Err(e) => {
                    eprintln!("step {}: asyncua relay failed: {e:#}", step.label());
                    None
                }
            }
        } else {
            None
        };
        plc.stop().await;
        if step.ramp {
            if iiot.loss > 0 {
                ramp_stop = Some(format!(
                    "first loss at {} items × {} Hz: {} of {} values ({} of them late: not \
                     delivered by the end of the drain), {:.0} values/s delivered",
                    step.items, step.hz, iiot.loss, iiot.expected, iiot.late, iiot.delivered_per_s
                ));
            } else if iiot.source_limited() {
                ramp_stop = Some(format!(
                    "plc-sim could not produce {} items × {} Hz (only {:.0} values/s), without loss: source limited",
                    step.items, step.hz, iiot.produced_per_s
                ));
            }
        }
        rows.push((*step, iiot, peer));
    }
    broker.stop().await;
    print_tables(&rows, ramp_stop.as_deref(), &args);
    if let Some(e) = aborted {
        // Keep the logs of a failed run.
        std::mem::forget(_cleanup);
        return Err(e.context(format!("logs kept in {}", dir.display())));
    }

    let failed: Vec<String> = rows
        .iter()
        .filter(|(s, o, _)| !s.ramp && (o.loss > 0 || o.delivered_per_s == 0.0))
        .map(|(s, o, _)| {
            format!(
                "{}: loss {} of {}, {:.0} values/s",
                s.label(),
                o.loss,
                o.expected,
                o.delivered_per_s
            )
        })
        .collect();
    if !failed.is_empty() {
        bail!("the module lost values: {}", failed.join("; "));
    }
    Ok(())
}

fn print_outcome(who: &str, o: &Outcome) {
    eprintln!(
        "   {who}: {:.0} values/s delivered ({} produced), loss {}/{}, dup {}, p50 {:.1} ms, p99 {:.1} ms, \
         {:.2} µs CPU/value ({:.0}% of a core), RSS {:.1} MB ({:.0} B/item peak, {:.0} B/item steady), all Good {}",
        o.delivered_per_s,
        fmt_opt(o.produced_per_s, 0),
        loss_text(o),
        o.expected,
        o.duplicates,
        o.p50_ms,
        o.p99_ms,
        o.cpu_us_per_value,
        o.cpu_share * 100.0,
        o.rss_after as f64 / 1e6,
        o.rss_per_item(),
        o.steady_rss_per_item(),
        o.time_to_good
            .map(|t| format!("{t:.2} s ({})", o.good_source))
            .unwrap_or_else(|| format!("never ({} of {} Good)", o.good_items, o.items)),
    );
    for n in &o.notes {
        eprintln!("   note: {n}");
    }
}

/// Loss, with the part that was still owed (not yet delivered) at the end.
fn loss_text(o: &Outcome) -> String {
    if o.late > 0 {
        format!("{} ({} late)", o.loss, o.late)
    } else {
        o.loss.to_string()
    }
}

fn fmt_opt(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "–".into()
    }
}

fn row(step: &Step, who: &str, o: &Outcome) -> String {
    format!(
        "| {}{} | {who} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {:.2} | {:.1} | {:.0} | {:.0} | {:.2} | {} |",
        step.label(),
        if step.ramp { " (ramp)" } else { "" },
        o.items,
        o.hz,
        fmt_opt(o.produced_per_s, 0),
        o.delivered_per_s,
        loss_text(o),
        o.duplicates,
        fmt_opt(o.p50_ms, 1),
        fmt_opt(o.p99_ms, 1),
        o.cpu_us_per_value,
        o.rss_after as f64 / 1e6,
        o.rss_per_item(),
        o.steady_rss_per_item(),
        o.steady_rss_per_item() * 10_000.0 / 1e6,
        o.time_to_good
            .map(|t| format!("{t:.2}"))
            .unwrap_or_else(|| format!("never ({}/{})", o.good_items, o.items)),
    )
}

fn print_tables(rows: &[(Step, Outcome, Option<Outcome>)], ramp: Option<&str>, args: &RelayConfig) {
    println!();
    println!(
        "OPC UA → MQTT relay: plc-sim counters → publisher → Mosquitto → sink (QoS 1), {} s windows after {} s warm-up",
        args.duration, args.warmup
    );
    println!(
        "iiot module: PubSub JSON, {} items per writer, BatchSize {}, BatchTriggerInterval {} ms; \
         asyncua relay: asyncua 2.1 + paho-mqtt 2.1, one QoS 1 message per value",
        args.items_per_writer, args.batch_size, args.batch_trigger_ms
    );
    println!();
    println!("| step | publisher | items | Hz | produced values/s | delivered values/s | loss | dup | p50 ms | p99 ms | CPU µs/value | RSS MB (peak) | RSS B/item (peak) | RSS B/item (steady) | RSS MB/10k items (steady) | all Good s |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (step, iiot, peer) in rows {
        println!("{}", row(step, "iiot module", iiot));
        if let Some(p) = peer {
            println!("{}", row(step, "asyncua relay", p));
        }
    }
    let with_peer: Vec<_> = rows
        .iter()
        .filter_map(|(s, i, p)| p.as_ref().map(|p| (s, i, p)))
        .collect();
    if !with_peer.is_empty() {
        println!();
        println!("| step | delivered values/s iiot ÷ asyncua | CPU per value asyncua ÷ iiot | RSS per item asyncua ÷ iiot | p99 latency asyncua ÷ iiot | loss iiot / asyncua |");
        println!("|---|---|---|---|---|---|");
        for (s, i, p) in with_peer {
            println!(
                "| {} | {}× | {}× | {}× | {}× | {} / {} |",
                s.label(),
                fmt_opt(i.delivered_per_s / p.delivered_per_s, 1),
                fmt_opt(p.cpu_us_per_value / i.cpu_us_per_value, 1),
                fmt_opt(p.rss_per_item() / i.rss_per_item(), 1),
                fmt_opt(p.p99_ms / i.p99_ms, 1),
                loss_text(i),
                loss_text(p)
            );
        }
    }
    println!();
    if let Some(r) = ramp {
        println!("ramp: {r}");
    } else if rows.iter().any(|(s, _, _)| s.ramp) {
        println!("ramp: no loss up to the last ramp step");
    }
    // The goals, judged on this run.
    let lossless: Vec<&Outcome> = rows
        .iter()
        .map(|(_, o, _)| o)
        .filter(|o| o.loss == 0 && o.duplicates == 0 && o.delivered_per_s > 0.0)
        .collect();
    let best = lossless
        .iter()
        .max_by(|a, b| a.delivered_per_s.total_cmp(&b.delivered_per_s));
    if let Some(b) = best {
        let mark = |ok: bool| if ok { "met" } else { "NOT met" };
        println!(
            "goal ≥150k values/s with zero loss: best lossless {:.0} values/s ({}x{}) — {}",
            b.delivered_per_s,
            b.items,
            b.hz,
            mark(b.delivered_per_s >= 150_000.0)
        );
        println!(
            "goal ≤3 µs CPU per value: {:.2} µs at that step — {}",
            b.cpu_us_per_value,
            mark(b.cpu_us_per_value <= 3.0)
        );
        if let Some(o) = rows
            .iter()
            .map(|(_, o, _)| o)
            .filter(|o| o.items >= 100_000)
            .min_by(|a, b| {
                a.time_to_good
                    .unwrap_or(f64::MAX)
                    .total_cmp(&b.time_to_good.unwrap_or(f64::MAX))
            })
        {
            println!(
                "goal 100k items subscribed in ≤5 s: {} ({}) — {}",
                o.time_to_good
                    .map(|t| format!("{t:.2} s"))
                    .unwrap_or_else(|| "never".into()),
                o.good_source,
                mark(o.time_to_good.is_some_and(|t| t <= 5.0))
            );
        }
        let worst = |f: fn(&Outcome) -> f64| {
            rows.iter()
                .map(|(_, o, _)| o)
                .filter(|o| o.items >= 10_000)
                .map(f)
                .fold(f64::NAN, f64::max)
        };
        let (steady, peak) = (
            worst(Outcome::steady_rss_per_item),
            worst(Outcome::rss_per_item),
        );
        if steady.is_finite() {
            println!(
                "goal ≤600 B RSS per monitored item: worst {steady:.0} B while relaying, {peak:.0} B at the \
                 start-up peak (steps ≥10k items) — {} / {}",
                mark(steady <= 600.0),
                mark(peak <= 600.0)
            );
        }
    }
}

/// A private Mosquitto with no queue or in-flight limits (they drop messages silently).
struct Mosquitto {
    port: u16,
    child: Child,
}

impl Mosquitto {
    async fn start(dir: &Path) -> Result<Mosquitto> {
        let port = free_port()?;
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n\
                 max_queued_messages 0\nmax_inflight_messages 0\npersistence false\nlog_dest none\n"
            ),
        )?;
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mosquitto");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("mosquitto not found: scripts/install-test-deps.sh installs it")?;
        wait_for_port(port, Duration::from_secs(10)).await?;
        Ok(Mosquitto { port, child })
    }

    async fn stop(mut self) {
        terminate(&mut self.child, Duration::from_secs(5)).await;
    }
}

async fn wait_for_port(port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing listens on port {port} after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct PlcSim {
    child: Child,
    url: String,
    pid: u32,
}

impl PlcSim {
    async fn start(exe: &Path, dir: &Path, step: &Step) -> Result<PlcSim> {
        let port = free_port()?;
        let t = Instant::now();
        let mut child = Command::new(exe)
            .args(["--log", "warn", "plc-sim", "--port", &port.to_string()])
            .arg("--pki-dir")
            .arg(dir.join("plc-pki"))
            .args(["--fast-nodes", &step.items.to_string()])
            .args(["--fast-rate", &step.period_ms().to_string()])
            .args(["--slow-nodes", "1"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("plc-sim.log"))?)
            .kill_on_drop(true)
            .spawn()
            .context("starting iiot plc-sim")?;
        let pid = child.id().context("plc-sim pid")?;
        let mut lines = BufReader::new(child.stdout.take().context("plc-sim stdout")?).lines();
        let url = tokio::time::timeout(Duration::from_secs(300), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("plc-sim listening on ") {
                    return Ok(url.trim().to_string());
                }
            }
            bail!("plc-sim exited (see {})", dir.join("plc-sim.log").display())
        })
        .await
        .context("plc-sim did not start in 300 s")??;
        eprintln!(
            "   plc-sim with {} fast nodes ready in {:.1} s",
            step.items,
            t.elapsed().as_secs_f64()
        );
        // Keep reading stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(PlcSim { child, url, pid })
    }

    async fn stop(mut self) {
        terminate(&mut self.child, Duration::from_secs(5)).await;
    }
}

/// The module's publishednodes.json: `items` nodes over writers of `items_per_writer`.
fn published_nodes(step: &Step, url: &str, args: &RelayConfig) -> serde_json::Value {
    let per = args.items_per_writer.max(1);
    let mut entries = Vec::new();
    let mut first = 0;
    let mut w = 0;
    while first < step.items {
        let last = (first + per).min(step.items);
        let nodes: Vec<_> = (first..last)
            .map(|i| {
                json!({
                    "Id": format!("nsu=urn:iiot:plc-sim;s=Fast/{i}"),
                    "DisplayName": format!("f{i}"),
                    "OpcSamplingInterval": step.sampling_ms(),
                    "QueueSize": Step::QUEUE_SIZE,
                })
            })
            .collect();
        entries.push(json!({
            "EndpointUrl": url,
            "UseSecurity": false,
            "DataSetWriterGroup": "bench",
            "DataSetWriterId": format!("w{w}"),
            "DataSetPublishingInterval": step.publishing_ms(),
            "BatchSize": args.batch_size,
            "BatchTriggerInterval": args.batch_trigger_ms,
            "OpcNodes": nodes,
        }));
        first = last;
        w += 1;
    }
    serde_json::Value::Array(entries)
}

/// Writes next to the target and renames, so the module's poll never reads half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// (good, bad) from the module's Prometheus text; `None` when the gauge is not there.
fn parse_good_bad(text: &str) -> Option<(u64, u64)> {
    let gauge = |name: &str| -> Option<u64> {
        let mut sum = None;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                continue;
            }
            let value = rest.rsplit(' ').next()?.parse::<f64>().ok()?;
            *sum.get_or_insert(0u64) += value.max(0.0) as u64;
        }
        sum
    };
    let good = gauge("iiot_publisher_monitored_items_good")?;
    Some((
        good,
        gauge("iiot_publisher_monitored_items_bad").unwrap_or(0),
    ))
}

/// What the publisher under test is, for the common measurement part.
struct Subject<'a> {
    pid: String,
    /// plc-sim, whose CPU share tells whether the source kept up.
    source_pid: String,
    step: &'a Step,
    drain: Duration,
}

/// Warm-up, the window, the drain; fills the throughput, loss, latency, CPU and RSS figures.
async fn measure(
    s: &Subject<'_>,
    sink: &Sink,
    args: &RelayConfig,
    tck: f64,
    o: &mut Outcome,
) -> Result<()> {
    // The window opens after every node has delivered a value (a slow publisher has not when
    // it says it is subscribed) and the warm-up.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen = sink.lock().seen_nodes;
        if seen >= s.step.items as usize {
            break;
        }
        if Instant::now() > deadline {
            o.notes.push(format!(
                "only {seen} of {} nodes delivered a value 15 s after all Good",
                s.step.items
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let me = std::process::id().to_string();
    // The window is a range of source counter values: from the next one the source makes to
    // the last it made in the window (extrapolated from the newest delivered value, so a
    // lagging publisher owes every value the source made meanwhile).
    let period_ns = s.step.period_ms() as i64 * 1_000_000;
    let (lo, received0, source0) = {
        let mut st = sink.lock();
        let next = st.source_estimate(now_ns(), period_ns) + 1;
        (
            st.start_window(next),
            st.received,
            (st.max_value, st.max_value_ts),
        )
    };
    let t0 = Instant::now();
    let p0 = proc_sample(&s.pid, tck);
    let m0 = proc_sample(&me, tck);
    let s0 = proc_sample(&s.source_pid, tck);
    // RSS once a second through the window: the median is what the process keeps while it
    // relays (one sample would land on a random point of the bursts in flight), the maximum
    // joins the peak.
    let mut rss_samples = Vec::new();
    let window_end = t0 + Duration::from_secs(args.duration.max(1));
    while Instant::now() < window_end {
        let left = window_end.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        rss_samples.push(proc_sample(&s.pid, tck).rss);
    }
    let (lo_hi, received1, source1) = {
        let mut st = sink.lock();
        // One value less than the estimate: it may not exist yet.
        let made = st.source_estimate(now_ns(), period_ns).saturating_sub(1);
        (
            st.end_window(made),
            st.received,
            (st.max_value, st.max_value_ts),
        )
    };
    let p1 = proc_sample(&s.pid, tck);
    let m1 = proc_sample(&me, tck);
    let s1 = proc_sample(&s.source_pid, tck);
    let window = t0.elapsed().as_secs_f64();
    let (_, hi) = lo_hi;
    debug_assert_eq!(lo_hi.0, lo);

    // Drain: every node must deliver `hi`; what has not come by the deadline is lost.
    let deadline = Instant::now() + s.drain;
    loop {
        let behind = sink.lock().behind(hi);
        if behind == 0 || hi < lo {
            break;
        }
        if Instant::now() > deadline {
            o.notes.push(format!(
                "{behind} of {} nodes had not delivered value {hi} {:.0} s after the window",
                s.step.items,
                s.drain.as_secs_f64()
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = sink.lock();
    let values = received1 - received0;
    let span = if hi >= lo { hi - lo + 1 } else { 0 };
    o.window_s = window;
    o.expected = span * u64::from(s.step.items);
    let missing = o.expected.saturating_sub(st.distinct);
    o.late = st.undelivered_tail(lo, hi).min(missing);
    o.loss = missing;
    o.duplicates = st.duplicates;
    // The source's rate in its own time: counter steps between the newest values seen at the
    // window's ends, over their SourceTimestamps (right even when the publisher lags).
    let source_s = (source1.1 - source0.1) as f64 / 1e9;
    o.produced_per_s = if source0.1 > 0 && source_s > 0.5 {
        (source1.0 - source0.0) as f64 * f64::from(s.step.items) / source_s
    } else {
        f64::NAN // nothing new arrived in the window: the source's rate is unknown
    };
    let lag_s = (now_ns() - source1.1) as f64 / 1e9;
    if source1.1 > 0 && lag_s > 2.0 {
        o.notes.push(format!(
            "at the window's end the newest value delivered was {lag_s:.1} s old: the publisher lags"
        ));
    }
    o.delivered_per_s = values as f64 / window;
    o.p50_ms = st.latency.quantile_ms(0.50);
    o.p99_ms = st.latency.quantile_ms(0.99);
    let cpu = p1.cpu_s - p0.cpu_s;
    o.cpu_us_per_value = if values > 0 {
        cpu / values as f64 * 1e6
    } else {
        f64::NAN
    };
    o.cpu_share = cpu / window;
    rss_samples.push(p1.rss);
    rss_samples.sort_unstable();
    o.rss_after = o.rss_after.max(rss_samples.last().copied().unwrap_or(0));
    o.rss_steady = rss_samples[rss_samples.len() / 2];
    let sink_cpu = m1.cpu_s - m0.cpu_s;
    o.sink_cpu_share = sink_cpu / window;
    o.sink_us_per_value = if values > 0 {
        sink_cpu / values as f64 * 1e6
    } else {
        f64::NAN
    };
    if o.sink_cpu_share > 0.8 {
        o.notes.push(format!(
            "the sink (this process) used {:.0}% of a core: the measurement may be sink-limited",
            o.sink_cpu_share * 100.0
        ));
    }
    if st.parse_errors > 0 {
        o.notes.push(format!(
            "{} messages the sink could not parse, first: {}",
            st.parse_errors,
            st.first_error.as_deref().unwrap_or("?")
        ));
    }
    if st.gaps_total > o.loss {
        o.notes.push(format!(
            "{} values missing outside the window (warm-up or after it)",
            st.gaps_total - o.loss.min(st.gaps_total)
        ));
    }
    o.notes.push(format!(
        "sink: {:.2} µs CPU/value, {:.0}% of a core; plc-sim {:.0}% of a core; publisher {:.0}%; \
         window {:.1} s, counter values {lo}..={hi}",
        o.sink_us_per_value,
        o.sink_cpu_share * 100.0,
        (s1.cpu_s - s0.cpu_s) / window * 100.0,
        o.cpu_share * 100.0,
        window
    ));
    Ok(())
}

async fn run_module(
    exe: &Path,
    dir: &Path,
    step: &Step,
    plc: &PlcSim,
    broker: &Mosquitto,
    args: &RelayConfig,
    tck: f64,
) -> Result<Outcome> {
    let mut o = Outcome {
        items: step.items,
        hz: step.hz,
        ..Default::default()
    };
    let topics = vec![iiot_module::api::topics::TopicTemplates::default()
        .telemetry_pattern("bench")
        .filter()];
    let sink = Sink::start("127.0.0.1", broker.port, &topics, step.items as usize).await?;
    let http_port = free_port()?;
    let key = "bench-relay-key";
    let pf = dir.join("publishednodes.json");
    std::fs::write(&pf, "[]")?;
    let log = dir.join("module.log");
    let mut wrapper = args
        .module_wrapper
        .as_deref()
        .unwrap_or_default()
        .split_whitespace();
    let mut command = match wrapper.next() {
        Some(profiler) => {
            let mut c = Command::new(profiler);
            c.args(wrapper).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let mut child = command
        .args(["--log", "warn", "module", "--http-host", "127.0.0.1"])
        .args(["--http-port", &http_port.to_string(), "--api-key", key])
        .arg("--data-dir")
        .arg(dir.join("module-data"))
        .args(["--publisher-id", "bench"])
        .args(["--mqtt-url", &format!("mqtt://127.0.0.1:{}", broker.port)])
        .arg("--pf")
        .arg(&pf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()
        .context("starting iiot module")?;
    let pid = child.id().context("module pid")?.to_string();
    let result = async {
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{http_port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!("the module exited ({status}); see {}", log.display());
            }
            if Instant::now() > deadline {
                bail!(
                    "the module's /healthz did not answer in 60 s; see {}",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The baseline is taken with a few items already relaying, so that it holds what
        // does not grow with items: the code pages of the OPC UA, encoding and MQTT paths
        // (≈ 4 MB of the binary, touched once), the session and the connections. Growth
        // from there is what the items cost.
        let warm = Step {
            items: step.items.min(WARM_ITEMS),
            ..*step
        };
        write_atomic(
            &pf,
            &serde_json::to_vec(&published_nodes(&warm, &plc.url, args))?,
        )?;
        let warm_deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let good = match http
                .get(format!("{base}/metrics"))
                .header("Authorization", format!("ApiKey {key}"))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => {
                    parse_good_bad(&r.text().await.unwrap_or_default()).map(|(g, _)| g)
                }
                _ => None,
            };
            if good.is_some_and(|g| g >= u64::from(warm.items)) || Instant::now() > warm_deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        o.rss_base = proc_sample(&pid, tck).rss;
        o.base_items = warm.items;

        let config = serde_json::to_vec(&published_nodes(step, &plc.url, args))?;
        write_atomic(&pf, &config)?;
        let t0 = Instant::now();
        let limit = Duration::from_secs(60 + u64::from(step.items) / 1000);
        let mut metrics_ok = true;
        loop {
            let good_bad = if metrics_ok {
                match http
                    .get(format!("{base}/metrics"))
                    .header("Authorization", format!("ApiKey {key}"))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        parse_good_bad(&r.text().await.unwrap_or_default())
                    }
                    _ => None,
                }
            } else {
                None
            };
            match good_bad {
                Some((good, bad)) => {
                    o.good_items = good;
                    o.good_source = "module /metrics";
                    if good >= u64::from(step.items) {
                        o.time_to_good = Some(t0.elapsed().as_secs_f64());
                        if bad > 0 {
                            o.notes.push(format!("{bad} monitored items Bad"));
                        }
                        break;
                    }
                }
                None => {
                    if metrics_ok {
                        metrics_ok = false;
                        o.notes.push(
                            "no iiot_publisher_monitored_items_good on /metrics: all Good = \
                             the sink saw a value from every node"
                                .into(),
                        );
                    }
                    o.good_source = "sink saw every node";
                    let seen = sink.lock().seen_nodes;
                    o.good_items = seen as u64;
                    if seen >= step.items as usize {
                        o.time_to_good = Some(t0.elapsed().as_secs_f64());
                        break;
                    }
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!("the module exited ({status}); see {}", log.display());
            }
            if t0.elapsed() > limit {
                o.notes.push(format!(
                    "only {} of {} items Good after {:.0} s; measuring anyway",
                    o.good_items,
                    step.items,
                    limit.as_secs_f64()
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        o.rss_after = proc_sample(&pid, tck).rss;
        let subject = Subject {
            pid: pid.clone(),
            source_pid: plc.pid.to_string(),
            step,
            drain: Duration::from_millis(step.publishing_ms() + args.batch_trigger_ms)
                + Duration::from_secs(5),
        };
        measure(&subject, &sink, args, tck, &mut o).await?;
        Ok(())
    }
    .await;
    terminate(&mut child, Duration::from_secs(5)).await;
    result?;
    Ok(o)
}

async fn run_peer(
    dir: &Path,
    step: &Step,
    plc: &PlcSim,
    broker: &Mosquitto,
    args: &RelayConfig,
    tck: f64,
) -> Result<Outcome> {
    let mut o = Outcome {
        items: step.items,
        hz: step.hz,
        good_source: "relay READY",
        ..Default::default()
    };
    let topics = vec![format!("{RELAY_PREFIX}/+")];
    let sink = Sink::start("127.0.0.1", broker.port, &topics, step.items as usize).await?;
    let log = dir.join("asyncua-relay.log");
    let mut child = Command::new(&args.python)
        .arg(&args.relay_script)
        .args(["--url", &plc.url, "--mqtt-port", &broker.port.to_string()])
        .args(["--count", &step.items.to_string()])
        .args(["--sampling-ms", &step.sampling_ms().to_string()])
        .args(["--publishing-ms", &step.publishing_ms().to_string()])
        .args(["--queue-size", &Step::QUEUE_SIZE.to_string()])
        .args(["--topic-prefix", RELAY_PREFIX, "--wait-go"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()
        .context("starting the asyncua relay")?;
    let pid = child.id().context("relay pid")?.to_string();
    let mut stdin = child.stdin.take().context("relay stdin")?;
    let mut lines = BufReader::new(child.stdout.take().context("relay stdout")?).lines();
    let result = async {
        wait_line(&mut lines, "CONNECTED", 60, &log).await?;
        o.rss_base = proc_sample(&pid, tck).rss;
        stdin.write_all(b"GO\n").await?;
        stdin.flush().await?;
        let t0 = Instant::now();
        let ready = wait_line(&mut lines, "READY", 120 + u64::from(step.items) / 100, &log).await?;
        o.time_to_good = Some(t0.elapsed().as_secs_f64());
        let ready: serde_json::Value = serde_json::from_str(&ready).unwrap_or_default();
        o.good_items = ready["good"].as_u64().unwrap_or(0);
        if o.good_items < u64::from(step.items) {
            o.time_to_good = None;
        }
        o.rss_after = proc_sample(&pid, tck).rss;
        let subject = Subject {
            pid: pid.clone(),
            source_pid: plc.pid.to_string(),
            step,
            drain: Duration::from_millis(step.publishing_ms()) + Duration::from_secs(10),
        };
        measure(&subject, &sink, args, tck, &mut o).await?;
        Ok::<_, BenchError>(())
    }
    .await;
    drop(stdin);
    terminate(&mut child, Duration::from_secs(5)).await;
    if let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(1), lines.next_line()).await
    {
        if let Some(done) = line.strip_prefix("DONE ") {
            o.notes.push(format!("relay totals: {done}"));
        }
    }
    result?;
    Ok(o)
}

type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// The rest of the first line starting with `prefix`.
async fn wait_line(lines: &mut Lines, prefix: &str, secs: u64, log: &Path) -> Result<String> {
    tokio::time::timeout(Duration::from_secs(secs), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.trim().to_string());
            }
        }
        bail!("the relay exited; see {}", log.display())
    })
    .await
    .with_context(|| format!("no {prefix} line from the relay in {secs} s"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(steps: &str) -> RelayConfig {
        RelayConfig {
            iiot_exe: PathBuf::from("iiot"),
            steps: steps.into(),
            ramp_items: "20000,30000".into(),
            ramp_hz: 10,
            duration: 20,
            warmup: 5,
            skip_peer: false,
            peer_max_items: 10_000,
            items_per_writer: 5000,
            batch_size: 500,
            batch_trigger_ms: 100,
            python: PathBuf::from("python"),
            relay_script: PathBuf::from("bench/asyncua_relay.py"),
            keep: false,
            module_wrapper: None,
        }
    }

    #[test]
    fn steps_expand_the_ramp_and_refuse_bad_ones_by_name() {
        let steps = parse_steps(&config("10000x1, ramp")).unwrap();
        let got: Vec<_> = steps.iter().map(|s| (s.items, s.hz, s.ramp)).collect();
        assert_eq!(
            got,
            [(10_000, 1, false), (20_000, 10, true), (30_000, 10, true)]
        );
        let e = parse_steps(&config("10x200")).unwrap_err().to_string();
        assert!(e.contains("'10x200'") && e.contains("hz ≤ 100"), "{e}");
        let e = parse_steps(&config("tenx1")).unwrap_err();
        assert_eq!(e.to_string(), "step 'tenx1'");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn quick_is_one_short_small_step() {
        let quick = config("10000x1,ramp").quick();
        let steps = parse_steps(&quick).unwrap();
        assert_eq!(
            steps,
            [Step {
                items: 200,
                hz: 5,
                ramp: false
            }]
        );
        assert_eq!((quick.duration, quick.warmup), (5, 1));
        let mut short = config("1x1");
        short.duration = 2;
        assert_eq!(short.quick().duration, 2);
    }

    #[test]
    fn metrics_gauges_are_summed_over_labels() {
        let text = "# HELP iiot_publisher_monitored_items_good x\n\
                    iiot_publisher_monitored_items_good{writer=\"a\"} 3\n\
                    iiot_publisher_monitored_items_good{writer=\"b\"} 4\n\
                    iiot_publisher_monitored_items_good_total 99\n\
                    iiot_publisher_monitored_items_bad 1\n";
        assert_eq!(parse_good_bad(text), Some((7, 1)));
        assert_eq!(parse_good_bad("other 1\n"), None);
    }

    #[test]
    fn step_intervals_never_merge_values() {
        let s = |hz| Step {
            items: 1,
            hz,
            ramp: false,
        };
        assert_eq!((s(1).sampling_ms(), s(1).publishing_ms()), (500, 1000));
        assert_eq!((s(10).sampling_ms(), s(10).publishing_ms()), (100, 500));
        assert_eq!((s(5).sampling_ms(), s(5).publishing_ms()), (100, 1000));
    }
}
