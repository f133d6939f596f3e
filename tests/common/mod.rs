//! Shared harness of the end-to-end tests: starts the real `iiot` binary, a simulated PLC, a
//! private Mosquitto and the peer servers on free ports, and talks to them like a user would.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod sink;

pub const API_KEY: &str = "test-key-0123456789";

/// Shared with the crates' own tests through `iiot-testkit`; not every test binary uses each.
#[allow(unused_imports)]
pub use iiot_testkit::{free_port, temp_dir, KillOnDrop as Proc, Mosquitto, OpensslIdp};

async fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    iiot_testkit::wait_for_port_of(port, what, child).await;
}

/// The module, run as the real binary.
pub struct Module {
    pub base: String,
    pub data_dir: PathBuf,
    pub publisher_id: String,
    _proc: Proc,
}

impl Module {
    pub async fn start(name: &str, mqtt_url: Option<&str>) -> Module {
        let port = free_port();
        let data_dir = temp_dir(name);
        let publisher_id = format!("test-{name}-{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_iiot"));
        cmd.args(["--log", "warn", "module", "--http-host", "127.0.0.1"])
            .arg("--http-port")
            .arg(port.to_string())
            .arg("--api-key")
            .arg(API_KEY)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--publisher-id")
            .arg(&publisher_id)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(url) = mqtt_url {
            cmd.arg("--mqtt-url").arg(url);
        }
        let mut child = cmd.spawn().expect("spawn iiot module");
        wait_for_port(port, "iiot module", &mut child).await;
        Module {
            base: format!("http://127.0.0.1:{port}"),
            data_dir,
            publisher_id,
            _proc: Proc(child),
        }
    }

    /// POSTs JSON with the API key; answers (HTTP status, body).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let res = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("ApiKey {API_KEY}"))
            .json(body)
            .send()
            .await
            .expect("HTTP request");
        let status = res.status().as_u16();
        let body = res.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("ApiKey {API_KEY}"))
            .send()
            .await
            .expect("HTTP request");
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap_or(Value::Null))
    }
}

/// A `{connection, request}` envelope.
pub fn envelope(connection: &Value, request: Value) -> Value {
    json!({ "connection": connection, "request": request })
}

pub fn connection_none(url: &str) -> Value {
    json!({ "endpoint": { "url": url, "securityMode": "None" } })
}

pub fn connection_secure(url: &str, user: Option<(&str, &str)>) -> Value {
    let mut c = json!({ "endpoint": {
        "url": url,
        "securityMode": "SignAndEncrypt",
        "securityPolicy": "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256"
    }});
    if let Some((u, p)) = user {
        c["user"] = json!({ "type": "UserName", "value": { "user": u, "password": p } });
    }
    c
}

/// An OPC UA peer server nobody on the team wrote (asyncua or node-opcua).
pub struct Peer {
    pub url: String,
    pub namespace: &'static str,
    _proc: Proc,
}

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

impl Peer {
    pub async fn asyncua() -> Peer {
        let python = peers_dir().join(".venv/bin/python");
        assert!(
            python.exists(),
            "asyncua is not installed: run scripts/install-peers.sh"
        );
        let script = peers_dir().join("asyncua_server.py");
        Self::spawn(Command::new(python).arg(script), "urn:iiot:peer:asyncua").await
    }

    pub async fn node_opcua() -> Peer {
        assert!(
            peers_dir().join("node_modules/node-opcua").exists(),
            "node-opcua is not installed: run scripts/install-peers.sh"
        );
        let script = peers_dir().join("node_opcua_server.js");
        Self::spawn(Command::new("node").arg(script), "urn:iiot:peer:node-opcua").await
    }

    async fn spawn(cmd: &mut Command, namespace: &'static str) -> Peer {
        use tokio::io::AsyncBufReadExt;
        let port = free_port();
        let pki = temp_dir("peer-pki");
        let child = cmd
            .arg("--port")
            .arg(port.to_string())
            .arg("--pki")
            .arg(&pki)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn peer server");
        let mut proc = Proc(child);
        let stdout = proc.0.stdout.take().expect("stdout");
        let stdout = tokio::process::ChildStdout::from_std(stdout).expect("async stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("READY ") {
                    return Some(url.trim().to_string());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("peer server did not print READY");
        // Keep draining stdout so the peer never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Peer {
            url: ready,
            namespace,
            _proc: proc,
        }
    }

    pub fn node(&self, id: &str) -> String {
        format!("nsu={};s={id}", self.namespace)
    }
}

/// Answers an MQTT v5 RPC call the way an OPC Publisher client makes it.
pub struct RpcClient {
    client: rumqttc::v5::AsyncClient,
    responses: tokio::sync::mpsc::UnboundedReceiver<(Vec<u8>, String, Value)>,
    reply_topic: String,
}

impl RpcClient {
    pub async fn connect(port: u16) -> RpcClient {
        let id = format!("rpc-test-{}", free_port());
        Self::connect_with(rumqttc::v5::MqttOptions::new(&id, "127.0.0.1", port)).await
    }

    /// Connects with `options` as they are (a TLS transport, say); its client id names the
    /// reply topic.
    pub async fn connect_with(mut options: rumqttc::v5::MqttOptions) -> RpcClient {
        use rumqttc::v5::mqttbytes::v5::Packet;
        use rumqttc::v5::mqttbytes::QoS;
        use rumqttc::v5::{AsyncClient, Event};
        let id = options.client_id();
        let mut net = options.network_options();
        net.set_tcp_nodelay(true);
        options.set_network_options(net);
        let (client, mut event_loop) = AsyncClient::new(options, 64);
        let reply_topic = format!("{id}/responses");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        let mut subscribed_tx = Some(subscribed_tx);
        let sub_client = client.clone();
        let topic = reply_topic.clone();
        tokio::spawn(async move {
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = sub_client.subscribe(topic.clone(), QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(t) = subscribed_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let props = p.properties.unwrap_or_default();
                        let status = props
                            .user_properties
                            .iter()
                            .find(|(k, _)| k == "StatusCode")
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default();
                        let corr = props
                            .correlation_data
                            .map(|b| b.to_vec())
                            .unwrap_or_default();
                        let body = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        let _ = tx.send((corr, status, body));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed_rx)
            .await
            .expect("MQTT subscribe timed out")
            .expect("MQTT subscribe");
        RpcClient {
            client,
            responses: rx,
            reply_topic,
        }
    }

    /// Calls `{root}/methods/{method}`; answers (status, body).
    pub async fn call(&mut self, root: &str, method: &str, body: &Value) -> (u16, Value) {
        use rumqttc::v5::mqttbytes::v5::PublishProperties;
        use rumqttc::v5::mqttbytes::QoS;
        let corr = format!("c{}", free_port()).into_bytes();
        let props = PublishProperties {
            response_topic: Some(self.reply_topic.clone()),
            correlation_data: Some(corr.clone().into()),
            ..Default::default()
        };
        self.client
            .publish_with_properties(
                format!("{root}/methods/{method}"),
                QoS::AtLeastOnce,
                false,
                serde_json::to_vec(body).expect("json"),
                props,
            )
            .await
            .expect("publish");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (c, status, body) = tokio::time::timeout(left, self.responses.recv())
                .await
                .expect("no RPC response within 30 s")
                .expect("response channel closed");
            if c == corr {
                return (status.parse().unwrap_or(0), body);
            }
        }
    }
}

/// A plc-sim in this process whose `fast` counters change every 100 ms (and one slow node):
/// what the telemetry tests count values of.
pub async fn counter_plc(port: u16, pki_dir: &Path, fast: u32) -> iiot_plc_sim::PlcSim {
    iiot_plc_sim::PlcSim::start(iiot_plc_sim::PlcSimConfig {
        port,
        pki_dir: pki_dir.to_path_buf(),
        fast_nodes: fast,
        fast_rate_ms: 100,
        slow_nodes: 1,
        ..Default::default()
    })
    .await
    .expect("plc-sim start")
}

/// Starts a plc-sim in this process on a free port.
pub async fn plc_sim(auto_accept: bool, tree: Option<(u32, u32)>) -> iiot_plc_sim::PlcSim {
    iiot_plc_sim::PlcSim::start(iiot_plc_sim::PlcSimConfig {
        port: 0,
        pki_dir: temp_dir("plc-pki"),
        fast_rate_ms: 100,
        tree,
        auto_accept,
        ..Default::default()
    })
    .await
    .expect("plc-sim start")
}

impl Module {
    /// Starts the module on `data_dir`, which is kept as it is (so a second start sees what
    /// the first one left), with extra `iiot module` arguments.
    pub async fn start_in(
        name: &str,
        mqtt_url: Option<&str>,
        data_dir: &Path,
        extra: &[&str],
    ) -> Module {
        let port = free_port();
        let publisher_id = format!("test-{name}-{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_iiot"));
        cmd.args(["--log", "warn", "module", "--http-host", "127.0.0.1"])
            .arg("--http-port")
            .arg(port.to_string())
            .arg("--api-key")
            .arg(API_KEY)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--publisher-id")
            .arg(&publisher_id)
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(url) = mqtt_url {
            cmd.arg("--mqtt-url").arg(url);
        }
        let mut child = cmd.spawn().expect("spawn iiot module");
        wait_for_port(port, "iiot module", &mut child).await;
        Module {
            base: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_path_buf(),
            publisher_id,
            _proc: Proc(child),
        }
    }

    /// Any verb, with the API key unless `key` is `None`; answers (status, content type,
    /// body text).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, String, String) {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.header("Authorization", format!("ApiKey {key}"));
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let res = req.send().await.expect("HTTP request");
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, content_type, res.text().await.unwrap_or_default())
    }

    /// Like `request` with the API key, the body read as JSON (`null` when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let (status, _, text) = self.request(method, path, Some(API_KEY), body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// Mosquitto with TLS: the test's broker speaking only TLS.
pub trait MosquittoTls {
    /// A broker whose only listener speaks TLS with `pki`'s server certificate; with
    /// `require_client_cert` it refuses clients without a certificate signed by `pki`'s CA.
    async fn start_tls(pki: &TestPki, require_client_cert: bool) -> Mosquitto;
}

impl MosquittoTls for Mosquitto {
    async fn start_tls(pki: &TestPki, require_client_cert: bool) -> Mosquitto {
        let (cert, key) = pki.server();
        let lines = [
            format!("cafile {}", pki.ca().display()),
            format!("certfile {}", cert.display()),
            format!("keyfile {}", key.display()),
            format!("require_certificate {require_client_cert}"),
        ];
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        Mosquitto::start_with(&lines).await
    }
}

/// A certificate authority made with the `openssl` command line (so independent of the code
/// under test): a CA, a server certificate for `localhost` and 127.0.0.1, and a client
/// certificate, all ECDSA P-256 PEM files in `dir`.
pub struct TestPki {
    pub dir: PathBuf,
}

impl TestPki {
    pub fn new(name: &str) -> TestPki {
        let dir = temp_dir(name);
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl must be installed");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509", "-new"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=iiot test CA",
                ],
            ]
            .concat(),
        );
        for (name, ext) in [
            (
                "server",
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            let ext_file = format!("{name}.ext");
            std::fs::write(
                dir.join(&ext_file),
                format!(
                    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n{ext}"
                ),
            )
            .expect("extension file");
            let (key, csr, pem) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
            );
            let subject = format!("/CN=iiot test {name}");
            openssl(
                &[
                    &["req", "-new"][..],
                    &ec,
                    &["-keyout", &key, "-out", &csr, "-subj", &subject],
                ]
                .concat(),
            );
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                &ext_file,
            ]);
        }
        // Mosquitto may read its files after dropping root for its own user.
        for f in ["ca.pem", "server.pem", "server.key"] {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644));
        }
        TestPki { dir }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// (certificate, key) of the broker.
    pub fn server(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("server.pem"), self.dir.join("server.key"))
    }

    /// (certificate, key) of a client, for mutual TLS.
    pub fn client(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("client.pem"), self.dir.join("client.key"))
    }

    /// rumqttc's own TLS settings from these files (not the code under test), with the client
    /// certificate when `with_client_cert`.
    pub fn rumqttc_tls(&self, with_client_cert: bool) -> rumqttc::Transport {
        let read = |p: PathBuf| std::fs::read(&p).expect("PEM file");
        let (cert, key) = self.client();
        rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Simple {
            ca: read(self.ca()),
            alpn: None,
            client_auth: with_client_cert.then(|| (read(cert), read(key))),
        })
    }
}
