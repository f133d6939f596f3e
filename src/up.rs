//! `iiot up`: the whole gateway in one process on embedded defaults, for a first look: the
//! simulated PLC, the embedded broker, the module, the twin API and the vault.
//!
//! The simulated PLC and the module trust each other's certificates explicitly at start (both
//! are created here, so nothing untrusted is accepted); the API key is generated once and kept
//! in the data directory, readable by the owner only.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::UpArgs;

pub async fn run(args: UpArgs) -> Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let api_key_file = data_dir.join("api-key");
    let api_key = load_or_create_key(&api_key_file)?;
    let api_keys_file = data_dir.join("api-keys.json");
    let api_keys = load_or_create_api_keys(&api_keys_file, &api_key)?;

    let mqtt_addr = SocketAddr::new(args.bind, args.mqtt_port);
    crate::broker::start(mqtt_addr)?;

    let plc = iiot_plc_sim::PlcSim::start(iiot_plc_sim::PlcSimConfig {
        port: args.plc_port,
        pki_dir: data_dir.join("plc-sim/pki"),
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e} (choose another port with --plc-port)"))?;

    let module_dir = data_dir.join("module");
    std::fs::create_dir_all(&module_dir)?;
    let published_nodes = module_dir.join("publishednodes.json");
    if !published_nodes.exists() {
        write_demo_configuration(&published_nodes, &plc.endpoint_url())?;
    }
    let module = iiot_module::start(iiot_module::ModuleConfig {
        http_bind: SocketAddr::new(args.bind, args.http_port),
        api_key: api_key.clone(),
        data_dir: module_dir,
        mqtt_url: Some(format!("mqtt://{mqtt_addr}")),
        publisher_id: "iiot-up".into(),
        published_nodes_file: Some(published_nodes.clone()),
        ..Default::default()
    })
    .await?;

    // Mutual trust between the two parts this process created.
    module.pki.add(
        iiot_module::pki::Store::Trusted,
        &plc.server_certificate_der(),
    )?;
    let plc_pki = iiot_module::pki::Pki::new(data_dir.join("plc-sim/pki"));
    for cert in module.pki.list(iiot_module::pki::Store::Own)? {
        plc_pki.add(iiot_module::pki::Store::Trusted, &cert.der)?;
    }

    let mut twin_config = iiot_twin_api::TwinApiConfig::new(api_keys.clone());
    twin_config.http_bind = SocketAddr::new(args.bind, args.twin_port);
    twin_config.mqtt_url = format!("mqtt://{mqtt_addr}");
    twin_config.data_dir = data_dir.join("twin-api");
    let twin = iiot_twin_api::start(twin_config)
        .await
        .map_err(|e| anyhow::anyhow!("twin API: {e} (choose another port with --twin-port)"))?;

    let vault_dir = data_dir.join("vault");
    let mut vault_config = iiot_vault::VaultConfig::new(api_keys.clone());
    vault_config.bind = SocketAddr::new(args.bind, args.vault_port);
    vault_config.data_dir = vault_dir;
    let vault = iiot_vault::start(vault_config)
        .await
        .map_err(|e| anyhow::anyhow!("vault: {e} (choose another port with --vault-port)"))?;

    let http = module.http_addr;
    let url = plc.endpoint_url();
    println!();
    println!("iiot is up:");
    println!("  simulated PLC    {url}");
    println!("  MQTT broker      mqtt://{mqtt_addr}   (module methods on iiot-up/methods/#)");
    println!(
        "  module HTTP API  http://{http}/v2   (API key in {})",
        api_key_file.display()
    );
    println!(
        "  twin API         http://{}/registry/v2, /twin/v2   (Swagger UI at /docs)",
        twin.http_addr
    );
    println!(
        "  vault (CA, GDS)  http://{}/v2   (Swagger UI at /docs)",
        vault.addr()
    );
    println!(
        "  REST API keys    {}   ('admin' may do everything but approve its own requests; 'approver' approves)",
        api_keys_file.display()
    );
    println!();
    println!("Read a changing value (run it twice):");
    println!(
        "  curl -s -X POST http://{http}/v2/read -H \"Authorization: ApiKey $(cat {})\" \\\n    -H 'Content-Type: application/json' \\\n    -d '{{\"connection\":{{\"endpoint\":{{\"url\":\"{url}\",\"securityMode\":\"SignAndEncrypt\"}}}},\"request\":{{\"nodeId\":\"nsu=urn:iiot:plc-sim;s=Fast/0\"}}}}'",
        api_key_file.display()
    );
    println!();
    println!(
        "Telemetry (OPC UA PubSub JSON) from {} on iiot-up/messages/plc; a line every 5 s below.",
        published_nodes.display()
    );
    println!(
        "  mosquitto_sub -h {} -p {} -t 'iiot-up/messages/#' -v",
        args.bind, args.mqtt_port
    );
    println!();
    tokio::spawn(register_plc(
        twin.http_addr,
        api_key.clone(),
        api_key_file.clone(),
        url.clone(),
    ));
    tokio::spawn(tail_telemetry(mqtt_addr));
    crate::wait_for_shutdown().await;
    twin.shutdown().await;
    if let Err(e) = vault.shutdown().await {
        tracing::warn!(error = %e, "vault did not stop cleanly");
    }
    module.shutdown().await;
    plc.shutdown().await;
    Ok(())
}

/// Registers the simulated PLC in the twin API's registry (the module runs FindServer once its
/// liveness state arrived), then prints a read through `/twin/v2` on its SignAndEncrypt
/// endpoint, so a newcomer has a working call at once.
async fn register_plc(
    twin: SocketAddr,
    key: String,
    key_file: std::path::PathBuf,
    plc_url: String,
) {
    let http = reqwest::Client::new();
    let base = format!("http://{twin}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let answer = http
            .post(format!("{base}/registry/v2/applications"))
            .bearer_auth(&key)
            .json(&serde_json::json!({ "discoveryUrl": plc_url }))
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => break,
            // The module is not online in the registry yet: its first state message is on its way.
            Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {}
            Ok(r) => {
                tracing::warn!(status = %r.status(), "registering the simulated PLC in the twin API failed");
                return;
            }
            Err(e) => tracing::debug!(error = %e, "twin API not answering yet"),
        }
        if std::time::Instant::now() > deadline {
            tracing::warn!("the module did not come online in the twin API within 60 s");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let endpoints: serde_json::Value = match http
        .get(format!("{base}/registry/v2/endpoints"))
        .bearer_auth(&key)
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => return,
    };
    let Some(id) = endpoints["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["registration"]["endpoint"]["securityMode"] == "SignAndEncrypt")
        .and_then(|e| e["registration"]["id"].as_str())
    else {
        return;
    };
    println!();
    println!("The simulated PLC is registered in the twin API; read through it:");
    println!(
        "  curl -s -X POST {base}/twin/v2/read/{id} -H \"Authorization: Bearer $(cat {})\" \\\n    -H 'Content-Type: application/json' -d '{{\"nodeId\":\"nsu=urn:iiot:plc-sim;s=Fast/0\"}}'",
        key_file.display()
    );
    println!();
}

/// A random 32-byte key, hex encoded, created on first start with mode 0600.
fn load_or_create_key(path: &Path) -> Result<String> {
    if let Ok(k) = std::fs::read_to_string(path) {
        let k = k.trim().to_string();
        if !k.is_empty() {
            return Ok(k);
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, key.as_bytes())?;
    Ok(key)
}

/// The REST services' key file: `admin` holds the module's API key, `approver` a key of its
/// own, since the vault never lets the principal that submitted a request approve it.
fn load_or_create_api_keys(path: &Path, admin_key: &str) -> Result<iiot_vault::ApiKeys> {
    if !path.exists() {
        let approver = load_or_create_key(&path.with_file_name("approver-key"))?;
        let keys = serde_json::json!([
            { "name": "admin", "key": admin_key, "roles": ["admin"] },
            { "name": "approver", "key": approver, "roles": ["approver"] },
        ]);
        write_private(path, &serde_json::to_vec_pretty(&keys)?)?;
    }
    iiot_vault::ApiKeys::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}

/// A first configuration so a newcomer sees telemetry at once: a few changing PLC values over
/// a signed and encrypted session, batched once a second.
fn write_demo_configuration(path: &Path, plc_url: &str) -> Result<()> {
    let mut nodes: Vec<serde_json::Value> = (0..5)
        .map(|i| {
            serde_json::json!({
                "Id": format!("nsu=urn:iiot:plc-sim;s=Fast/{i}"),
                "DisplayName": format!("Fast{i}"),
                "OpcSamplingInterval": 1000,
            })
        })
        .collect();
    nodes.push(serde_json::json!({
        "Id": "nsu=urn:iiot:plc-sim;s=Slow/0", "DisplayName": "Slow0",
        "OpcSamplingInterval": 1000, "HeartbeatInterval": 5
    }));
    let entries = serde_json::json!([{
        "EndpointUrl": plc_url,
        "EndpointSecurityMode": "SignAndEncrypt",
        "DataSetWriterGroup": "plc",
        "DataSetWriterId": "demo",
        "DataSetPublishingInterval": 1000,
        "BatchSize": 50,
        "BatchTriggerInterval": 1000,
        "OpcNodes": nodes,
    }]);
    std::fs::write(path, serde_json::to_vec_pretty(&entries)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Prints a summary of the telemetry arriving at the embedded broker every 5 s.
async fn tail_telemetry(broker: SocketAddr) {
    use rumqttc::v5::mqttbytes::{v5::Packet, QoS};
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let mut opts = MqttOptions::new("iiot-up-tail", broker.ip().to_string(), broker.port());
    opts.set_max_packet_size(Some(16 << 20));
    let (client, mut events) = AsyncClient::new(opts, 100);
    if client
        .subscribe("iiot-up/messages/#", QoS::AtMostOnce)
        .await
        .is_err()
    {
        return;
    }
    let mut last = std::collections::BTreeMap::<String, String>::new();
    let (mut messages, mut values) = (0u64, 0u64);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    tick.tick().await;
    loop {
        tokio::select! {
            ev = events.poll() => match ev {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&p.payload) else { continue };
                    if body["MessageType"] != "ua-data" { continue; }
                    messages += 1;
                    for m in body["Messages"].as_array().into_iter().flatten() {
                        for (name, f) in m["Payload"].as_object().into_iter().flatten() {
                            values += 1;
                            last.insert(name.clone(), f["Value"].to_string());
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
            },
            _ = tick.tick() => {
                let latest: Vec<String> = last.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("telemetry: {messages} messages, {values} values in 5 s; latest {}", latest.join(" "));
                messages = 0;
                values = 0;
            }
        }
    }
}
