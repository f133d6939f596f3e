//! `iiot up` end to end: the real binary on free ports with a temporary data directory, checked
//! from outside like a user would (its printed summary, the embedded broker, the data files).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, temp_dir, Proc};
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};

/// A running `iiot up` and everything it printed so far (stdout and stderr, line by line).
struct Up {
    output: Arc<Mutex<Vec<String>>>,
    proc: Proc,
}

impl Up {
    fn start(args: &[String]) -> Up {
        let mut child = Command::new(env!("CARGO_BIN_EXE_iiot"))
            .args(["--log", "info", "up"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn iiot up");
        let output = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for stream in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    output.lock().unwrap().push(line);
                }
            });
        }
        Up {
            output,
            proc: Proc(child),
        }
    }

    fn text(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// Waits for the summary `up` prints once everything listens; panics with the output when
    /// the process exits first.
    async fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if self.text().contains("iiot is up:") {
                // The summary is printed as a block; give it a moment to be complete.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return;
            }
            if let Ok(Some(status)) = self.proc.0.try_wait() {
                tokio::time::sleep(Duration::from_millis(300)).await;
                panic!(
                    "iiot up exited ({status}) before it was up:\n{}",
                    self.text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "iiot up not ready:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The port of the summary's `MQTT broker      mqtt://host:port` line.
    fn mqtt_port(&self) -> u16 {
        let text = self.text();
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("MQTT broker"))
            .unwrap_or_else(|| panic!("no MQTT broker line in:\n{text}"));
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("mqtt://"))
            .unwrap_or_else(|| panic!("no mqtt:// URL in {line:?}"));
        url.rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no port in {url:?}"))
    }
}

/// Every port but MQTT's given as a free one, so tests running side by side never both take a
/// free default (the vault GDS's 4842 among them).
fn port_args(plc: u16, http: u16, twin: u16, vault: u16) -> Vec<String> {
    [
        ("--plc-port", plc),
        ("--http-port", http),
        ("--twin-port", twin),
        ("--vault-port", vault),
        ("--gds-port", free_port()),
        ("--hub-port", free_port()),
    ]
    .into_iter()
    .flat_map(|(flag, port)| [flag.to_string(), port.to_string()])
    .collect()
}

/// Subscribes to the module's telemetry and returns once a `ua-data` message arrived.
async fn telemetry_arrives(port: u16, credentials: Option<(&str, &str)>) {
    let mut opts = MqttOptions::new(format!("up-test-{}", free_port()), "127.0.0.1", port);
    opts.set_max_packet_size(Some(16 << 20));
    if let Some((user, password)) = credentials {
        opts.set_credentials(user, password);
    }
    let (client, mut events) = AsyncClient::new(opts, 100);
    client
        .subscribe("iiot-up/messages/#", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    let wait = async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let body: serde_json::Value =
                        serde_json::from_slice(&p.payload).unwrap_or_default();
                    if body["MessageType"] == "ua-data" {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("subscriber on port {port} lost the broker: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(90), wait)
        .await
        .unwrap_or_else(|_| panic!("no telemetry on port {port} within 90 s"));
}

/// Whether the broker accepts an MQTT 5 connect without user name and password.
async fn anonymous_accepted(port: u16) -> bool {
    let opts = MqttOptions::new(format!("anon-{}", free_port()), "127.0.0.1", port);
    let (_client, mut events) = AsyncClient::new(opts, 10);
    let answer = async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    return ack.code == ConnectReturnCode::Success
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), answer)
        .await
        .expect("the broker neither accepted nor refused an anonymous connect")
}

/// Another MQTT broker already has port 1883 (Mosquitto does on the test machine; otherwise
/// the test holds it itself): `up` without `--mqtt-port` must take a free port, say so, and
/// run everything on it.
#[tokio::test(flavor = "multi_thread")]
async fn up_takes_a_free_mqtt_port_when_1883_is_taken() {
    // Held for the whole test when free; when it fails, someone else has it, which is the point.
    let _held = std::net::TcpListener::bind("127.0.0.1:1883").ok();
    let data_dir = temp_dir("up-port");
    let mut args = vec!["--data-dir".to_string(), data_dir.display().to_string()];
    let (plc, twin) = (free_port(), free_port());
    args.extend(port_args(plc, free_port(), twin, free_port()));
    let mut up = Up::start(&args);
    up.ready().await;
    let port = up.mqtt_port();
    assert_ne!(port, 1883, "summary names the taken port:\n{}", up.text());
    assert!(
        up.text()
            .lines()
            .any(|l| l.contains("1883") && l.contains(&port.to_string())),
        "no line tells that 1883 was taken and which port was used instead:\n{}",
        up.text()
    );
    assert!(
        up.text()
            .contains(&format!("mosquitto_sub -h 127.0.0.1 -p {port} ")),
        "the printed mosquitto_sub line does not use port {port}:\n{}",
        up.text()
    );
    // The module's telemetry reaches the broker through the hub's route.
    telemetry_arrives(port, None).await;
    module_answers_through_the_hub(&data_dir, twin, plc).await;
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// `up`'s module is an IoT Hub module of `up`'s hub: a publisher online in the twin API, and
/// a direct method through the hub's service route reads the simulated PLC.
async fn module_answers_through_the_hub(data_dir: &Path, twin: u16, plc: u16) {
    let key = std::fs::read_to_string(data_dir.join("api-key")).unwrap();
    let key = key.trim();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{twin}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p: serde_json::Value = http
            .get(format!(
                "{base}/registry/v2/publishers/iiot-up_module_publisher"
            ))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_default();
        if p["connected"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hub module never came online: {p}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let call = serde_json::json!({
        "methodName": "ValueRead_V2",
        "responseTimeoutInSeconds": 30,
        "payload": {
            "connection": {"endpoint": {
                "url": format!("opc.tcp://127.0.0.1:{plc}/"),
                "securityMode": "SignAndEncrypt"
            }},
            "request": {"nodeId": "nsu=urn:iiot:plc-sim;s=Fast/0"}
        }
    });
    loop {
        let answer: serde_json::Value = http
            .post(format!("{base}/twins/iiot-up/modules/publisher/methods"))
            .bearer_auth(key)
            .json(&call)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_default();
        if answer["status"] == 200 {
            assert!(answer["payload"]["value"].is_u64(), "{answer}");
            return;
        }
        // Until the vault's certificates are in place the PLC refuses the module's session.
        assert!(
            Instant::now() < deadline,
            "the direct method never read the PLC: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// On a non-loopback address the embedded broker asks for the generated credentials, which
/// are kept owner-only in the data directory and never printed; the module still publishes.
#[tokio::test(flavor = "multi_thread")]
async fn up_on_all_interfaces_requires_mqtt_credentials() {
    let data_dir = temp_dir("up-auth");
    let mqtt_port = free_port();
    let mut args = vec![
        "--data-dir".to_string(),
        data_dir.display().to_string(),
        "--bind".to_string(),
        "0.0.0.0".to_string(),
        "--mqtt-port".to_string(),
        mqtt_port.to_string(),
    ];
    args.extend(port_args(
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    ));
    let mut up = Up::start(&args);
    up.ready().await;
    assert_eq!(up.mqtt_port(), mqtt_port);

    assert!(
        !anonymous_accepted(mqtt_port).await,
        "the broker on 0.0.0.0 accepted an anonymous connect"
    );

    let password_file = data_dir.join("mqtt-password");
    let password = std::fs::read_to_string(&password_file)
        .unwrap_or_else(|e| panic!("{}: {e}", password_file.display()));
    let password = password.trim();
    assert!(password.len() >= 32, "a short MQTT password");
    assert_owner_only(&password_file);

    telemetry_arrives(mqtt_port, Some(("iiot", password))).await;
    // The in-process tail subscribes with the same credentials: its 5 s summary counts messages.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !up
        .text()
        .lines()
        .any(|l| l.starts_with("telemetry: ") && !l.starts_with("telemetry: 0 messages"))
    {
        assert!(
            Instant::now() < deadline,
            "the in-process telemetry tail counted no messages:\n{}",
            up.text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Registration waits for the module's liveness state, which its RPC client publishes and
    // the twin API's client receives: both got in with the credentials.
    while !up
        .text()
        .contains("The simulated PLC is registered in the twin API")
    {
        assert!(
            Instant::now() < deadline,
            "the twin API never saw the module online:\n{}",
            up.text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let text = up.text();
    assert!(
        !text.contains(password),
        "the MQTT password was printed:\n{text}"
    );
    assert!(
        text.contains(&password_file.canonicalize().unwrap().display().to_string()),
        "the summary does not say where the MQTT password is:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[cfg(unix)]
fn assert_owner_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
}

#[cfg(not(unix))]
fn assert_owner_only(_: &Path) {}
