//! `iiot up`: the whole gateway in one process on embedded defaults, for a first look: the
//! simulated PLC, the embedded broker, the module, the twin API and the vault.
//!
//! The simulated PLC and the module run on certificates the vault issues (`certificates`): the
//! PLC's by GDS push, the module's by pull, and each trusts the other through the vault's CA;
//! nothing untrusted is accepted. The API key is generated once and kept in the data
//! directory, readable by the owner only. So is the MQTT password the embedded
//! broker asks for when it listens beyond loopback.
//!
//! Each port has a default; a default that is taken (Mosquitto on 1883, another web server on
//! 8080) is replaced by a free port, printed, since `up` is for a first look on any machine. A
//! port given by flag is the user's choice and stops `up` when it is taken.

mod certificates;
mod hub_identity;

use iiot_module::api::topics::TopicTemplates;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;

use anyhow::{anyhow, Context, Result};

use crate::broker::Credentials;
use crate::secrets::{load_or_create_key, write_private};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Where state (PKI, keys) is kept between runs.
    #[arg(long, default_value = "iiot-data")]
    pub data_dir: PathBuf,
    /// Simulated PLC OPC UA port [default: 50000, or a free port when 50000 is taken]. A port
    /// given here that is taken stops `up` with an error.
    #[arg(long)]
    pub plc_port: Option<u16>,
    /// Embedded MQTT broker port [default: 1883, or a free port when 1883 is taken, e.g. by
    /// Mosquitto].
    #[arg(long)]
    pub mqtt_port: Option<u16>,
    /// Module HTTP API port [default: 8082, or a free port when 8082 is taken].
    #[arg(long)]
    pub http_port: Option<u16>,
    /// Twin API (cloud REST service) HTTP port [default: 8080, or a free port when 8080 is
    /// taken].
    #[arg(long)]
    pub twin_port: Option<u16>,
    /// Vault (certificate authority) HTTP API port [default: 8081, or a free port when 8081 is
    /// taken].
    #[arg(long)]
    pub vault_port: Option<u16>,
    /// Vault OPC UA face (GDS) port [default: 4842, or a free port when 4842 is taken].
    #[arg(long)]
    pub gds_port: Option<u16>,
    /// The hub's device endpoint (MQTT over TLS), which the module connects to as an IoT
    /// Hub module [default: 8883, or a free port when 8883 is taken].
    #[arg(long)]
    pub hub_port: Option<u16>,
    /// Address the HTTP API and broker listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
}

/// The module's publisher id (its MQTT root) in `iiot up`.
const PUBLISHER_ID: &str = "iiot-up";
/// The hub's name: the module's connection string and SAS tokens name it.
const HUB_HOSTNAME: &str = "localhost";

/// The user name of the embedded broker's credentials (off loopback).
const MQTT_USER: &str = "iiot";

pub async fn run(args: UpArgs) -> Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let api_key_file = data_dir.join("api-key");
    let api_key = load_or_create_key(&api_key_file)?;
    let api_keys_file = data_dir.join("api-keys.json");
    let api_keys = load_or_create_api_keys(&api_keys_file, &api_key)?;

    let mut plc_config = iiot_plc_sim::PlcSimConfig {
        pki_dir: data_dir.join("plc-sim/pki"),
        ..Default::default()
    };
    // The simulated PLC listens on its own host (loopback), whatever --bind says.
    let plc_ip = plc_config
        .host
        .parse()
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let chosen = [
        (&PLC_PORT, choose_port(plc_ip, args.plc_port, &PLC_PORT)?),
        (
            &MQTT_PORT,
            choose_port(args.bind, args.mqtt_port, &MQTT_PORT)?,
        ),
        (
            &HTTP_PORT,
            choose_port(args.bind, args.http_port, &HTTP_PORT)?,
        ),
        (
            &TWIN_PORT,
            choose_port(args.bind, args.twin_port, &TWIN_PORT)?,
        ),
        (
            &VAULT_PORT,
            choose_port(args.bind, args.vault_port, &VAULT_PORT)?,
        ),
        (&GDS_PORT, choose_port(args.bind, args.gds_port, &GDS_PORT)?),
        (&HUB_PORT, choose_port(args.bind, args.hub_port, &HUB_PORT)?),
    ];
    for (spec, reserved) in &chosen {
        if let Some(taken) = reserved.instead_of {
            println!(
                "{} port {taken} is already in use; using free port {} instead ({} sets one)",
                spec.what, reserved.port, spec.flag
            );
        }
    }
    // Releases the reservations: each service binds its port right below.
    let [plc_port, mqtt_port, http_port, twin_port, vault_port, gds_port, hub_port] =
        chosen.map(|(_, r)| r.port);

    // Beyond loopback anyone on the network reaches the broker, and the module's MQTT RPC
    // writes values and calls methods for whoever publishes there: require credentials.
    let mqtt_password_file = data_dir.join("mqtt-password");
    let mqtt_credentials = if args.bind.is_loopback() {
        None
    } else {
        Some(Credentials {
            user: MQTT_USER.into(),
            password: load_or_create_key(&mqtt_password_file)?,
        })
    };
    let mqtt_addr = SocketAddr::new(args.bind, mqtt_port);
    crate::broker::start(mqtt_addr, mqtt_credentials.as_ref())?;
    // What the clients in this process (and the printed commands) connect to.
    let mqtt_local = SocketAddr::new(reachable(args.bind), mqtt_port);
    // Holds the password: passed to the module and the twin API, never printed.
    let mqtt_url = match &mqtt_credentials {
        Some(c) => format!("mqtt://{}:{}@{mqtt_local}", c.user, c.password),
        None => format!("mqtt://{mqtt_local}"),
    };

    let vault_dir = data_dir.join("vault");
    let vault_dir_gds_cert = vault_dir.join("gds-pki/own/cert.der");
    let mut vault_config = iiot_vault::VaultConfig::new(api_keys.clone());
    vault_config.bind = SocketAddr::new(args.bind, vault_port);
    vault_config.data_dir = vault_dir;
    vault_config.opcua = Some(iiot_vault::gds::GdsConfig {
        bind: SocketAddr::new(args.bind, gds_port),
        hostname: reachable(args.bind).to_string(),
    });
    let vault = iiot_vault::start(vault_config)
        .await
        .map_err(|e| anyhow::anyhow!("vault: {e} (choose another port with --vault-port)"))?;

    // plc-sim accepts the vault's push client through the vault's CA; the vault pushes to it as
    // this SecurityAdmin.
    std::fs::create_dir_all(data_dir.join("plc-sim"))?;
    let push_password = load_or_create_key(&data_dir.join("plc-sim/security-admin-password"))?;
    plc_config.security_admins = vec![(certificates::PUSH_USER.into(), push_password.clone())];
    certificates::trust_vault(vault.addr(), &api_key, &plc_config.pki_dir).await?;
    plc_config.port = plc_port;
    let plc = iiot_plc_sim::PlcSim::start(plc_config)
        .await
        .map_err(|e| anyhow!("{e} (choose another port with --plc-port)"))?;

    let module_dir = data_dir.join("module");
    std::fs::create_dir_all(&module_dir)?;
    let published_nodes = module_dir.join("publishednodes.json");
    let plc_url_file = data_dir.join("plc-sim/endpoint-url");
    if published_nodes.exists() {
        follow_plc_url(&published_nodes, &plc_url_file, &plc.endpoint_url())?;
    } else {
        write_demo_configuration(&published_nodes, &plc.endpoint_url())?;
    }
    std::fs::write(&plc_url_file, plc.endpoint_url())
        .with_context(|| format!("writing {}", plc_url_file.display()))?;
    // The twin API with its hub: the module connects to it as an IoT Hub module, and the
    // hub routes the module's telemetry to the broker topics it would have used itself.
    let mut twin_config = iiot_twin_api::TwinApiConfig::new(api_keys.clone());
    twin_config.http_bind = SocketAddr::new(args.bind, twin_port);
    twin_config.mqtt_url = mqtt_url;
    twin_config.data_dir = data_dir.join("twin-api");
    twin_config.hub.hostname = HUB_HOSTNAME.into();
    twin_config.hub.device_port = Some(hub_port);
    twin_config.hub.route_topic = Some(
        iiot_twin_api::hub::route::TopicTemplate::parse("{topic}").map_err(anyhow::Error::msg)?,
    );
    let hub_ca = twin_config.data_dir.join("hub-ca.pem");
    let twin = iiot_twin_api::start(twin_config).await.map_err(|e| {
        anyhow::anyhow!("twin API: {e} (choose another port with --twin-port or --hub-port)")
    })?;
    let hub_address = SocketAddr::new(reachable(args.bind), hub_port);
    let twin_local = SocketAddr::new(reachable(args.bind), twin.http_addr.port());
    let module_key = hub_identity::provision(twin_local, &api_key).await?;
    let connection_string = format!(
        "HostName={HUB_HOSTNAME};DeviceId={PUBLISHER_ID};ModuleId={}\
         ;SharedAccessKey={module_key};GatewayHostName={hub_address}",
        hub_identity::MODULE_ID
    );
    let iothub =
        iiot_module::transport::iothub::IotHubSettings::parse(&connection_string, Some(hub_ca))
            .map_err(anyhow::Error::msg)?;
    let module = iiot_module::start(iiot_module::ModuleConfig {
        http_bind: SocketAddr::new(args.bind, http_port),
        api_key: api_key.clone(),
        data_dir: module_dir,
        iothub: Some(iothub),
        publisher_id: PUBLISHER_ID.into(),
        published_nodes_file: Some(published_nodes.clone()),
        // The module enrolls itself as `up`'s admin; its first contact trusts the GDS's own
        // certificate, written by the vault started above.
        gds: vault
            .opcua_url()
            .map(|url| iiot_module::enrollment::GdsSettings {
                url: url.to_owned(),
                user: "admin".into(),
                password: api_key.clone(),
                trust: vec![vault_dir_gds_cert.clone()],
                poll_interval: std::time::Duration::from_secs(2),
                refresh_interval: std::time::Duration::from_secs(3600),
            }),
        ..Default::default()
    })
    .await?;
    tokio::spawn(certificates::enroll(
        vault.addr(),
        api_key.clone(),
        load_or_create_key(&data_dir.join("approver-key"))?,
        certificates::PlcTarget {
            application_uri: plc.application_uri(),
            endpoint_url: plc.endpoint_url(),
            certificate_der: plc.server_certificate_der(),
            password: push_password,
        },
    ));

    let http = module.http_addr;
    let url = plc.endpoint_url();
    println!();
    println!("iiot is up:");
    println!("  simulated PLC    {url}");
    let telemetry = TopicTemplates::default().telemetry_pattern(PUBLISHER_ID);
    println!(
        "  IoT hub          mqtts://{hub_address}   (the module is its IoT Hub module {PUBLISHER_ID}/{}; devices trust {})",
        hub_identity::MODULE_ID,
        data_dir.join("twin-api/hub-ca.pem").display()
    );
    println!(
        "                   service connection string in {}",
        data_dir.join("twin-api/hub-connection-string").display()
    );
    println!("  MQTT broker      mqtt://{mqtt_addr}   (the hub routes device messages here)");
    // The password file's path, never the password.
    let mqtt_login = match &mqtt_credentials {
        Some(c) => {
            println!(
                "                   user {}, password in {} (required off loopback)",
                c.user,
                mqtt_password_file.display()
            );
            format!(
                " -u {} -P \"$(cat {})\"",
                c.user,
                mqtt_password_file.display()
            )
        }
        None => String::new(),
    };
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
    if let Some(gds) = vault.opcua_url() {
        println!(
            "  vault GDS        {gds}   (user name and password: a REST API key's name and key)"
        );
    }
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
        "Telemetry (OPC UA PubSub JSON) from {} on {}; a line every 5 s below.",
        published_nodes.display(),
        telemetry.as_str()
    );
    println!(
        "  mosquitto_sub -h {} -p {}{mqtt_login} -t '{}' -v",
        mqtt_local.ip(),
        mqtt_local.port(),
        telemetry.filter()
    );
    println!();
    tokio::spawn(register_plc(
        twin_local,
        api_key.clone(),
        api_key_file.clone(),
        url.clone(),
    ));
    tokio::spawn(tail_telemetry(mqtt_local, mqtt_credentials));
    crate::shutdown::wait_for_shutdown().await;
    twin.shutdown().await;
    if let Err(e) = vault.shutdown().await {
        tracing::warn!(error = %e, "vault did not stop cleanly");
    }
    module.shutdown().await;
    plc.shutdown().await;
    Ok(())
}

/// One port `up` listens on: what listens there, the flag that sets it and its default.
struct PortSpec {
    what: &'static str,
    flag: &'static str,
    default: u16,
}

const PLC_PORT: PortSpec = PortSpec {
    what: "simulated PLC",
    flag: "--plc-port",
    default: 50000,
};
const MQTT_PORT: PortSpec = PortSpec {
    what: "MQTT",
    flag: "--mqtt-port",
    default: 1883,
};
const HTTP_PORT: PortSpec = PortSpec {
    what: "module HTTP API",
    flag: "--http-port",
    default: 8082,
};
const TWIN_PORT: PortSpec = PortSpec {
    what: "twin API",
    flag: "--twin-port",
    default: 8080,
};
const VAULT_PORT: PortSpec = PortSpec {
    what: "vault",
    flag: "--vault-port",
    default: iiot_vault::DEFAULT_PORT,
};
const GDS_PORT: PortSpec = PortSpec {
    what: "vault GDS",
    flag: "--gds-port",
    default: iiot_vault::gds::DEFAULT_OPCUA_PORT,
};
const HUB_PORT: PortSpec = PortSpec {
    what: "hub device endpoint",
    flag: "--hub-port",
    default: 8883,
};

/// A port chosen for one service. It stays bound until every port is chosen, so that two
/// fallbacks cannot land on the same free port and a flag cannot name a port already chosen.
struct Reserved {
    port: u16,
    /// The taken default this port replaces.
    instead_of: Option<u16>,
    _hold: TcpListener,
}

/// The port given by flag (an error naming the flag when it is taken: the user asked for that
/// one; 0 lets the OS pick), else the default, else, when the default is taken, a free port.
fn choose_port(ip: IpAddr, requested: Option<u16>, spec: &PortSpec) -> Result<Reserved> {
    if let Some(port) = requested {
        let hold = TcpListener::bind((ip, port)).map_err(|e| {
            anyhow!(
                "{} port {port} on {ip} cannot be used ({e}); choose another with {}",
                spec.what,
                spec.flag
            )
        })?;
        return Ok(Reserved {
            port: hold.local_addr()?.port(),
            instead_of: None,
            _hold: hold,
        });
    }
    if let Ok(hold) = TcpListener::bind((ip, spec.default)) {
        return Ok(Reserved {
            port: spec.default,
            instead_of: None,
            _hold: hold,
        });
    }
    let hold = TcpListener::bind((ip, 0))
        .with_context(|| format!("no free port on {ip} for the {}", spec.what))?;
    Ok(Reserved {
        port: hold.local_addr()?.port(),
        instead_of: Some(spec.default),
        _hold: hold,
    })
}

/// Points the entries of an existing configuration that named the simulated PLC's URL of the
/// last run at its URL of this one, so that a port that changed (its default was taken) does
/// not leave the demo publishing from nowhere. Other entries are left as they are.
fn follow_plc_url(published_nodes: &Path, last_url_file: &Path, url: &str) -> Result<()> {
    let Ok(last) = std::fs::read_to_string(last_url_file) else {
        return Ok(());
    };
    let last = last.trim();
    if last == url {
        return Ok(());
    }
    let text = std::fs::read(published_nodes)
        .with_context(|| format!("reading {}", published_nodes.display()))?;
    // A file the module cannot read either is the module's to report.
    let Ok(mut entries) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return Ok(());
    };
    let mut changed = false;
    for entry in entries.as_array_mut().into_iter().flatten() {
        if entry["EndpointUrl"] == last {
            entry["EndpointUrl"] = url.into();
            changed = true;
        }
    }
    if changed {
        std::fs::write(published_nodes, serde_json::to_vec_pretty(&entries)?)
            .with_context(|| format!("writing {}", published_nodes.display()))?;
        println!(
            "{}: the simulated PLC moved from {last} to {url}",
            published_nodes.display()
        );
    }
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
    let application = loop {
        let answer = http
            .post(format!("{base}/registry/v2/applications"))
            .bearer_auth(&key)
            .json(&serde_json::json!({ "discoveryUrl": plc_url }))
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => {
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                break body["id"].as_str().map(str::to_string);
            }
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
    };
    let endpoints: serde_json::Value = match http
        .get(format!("{base}/registry/v2/endpoints"))
        .bearer_auth(&key)
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => return,
    };
    // The endpoint of the application just registered (a data directory of an older `up`
    // may hold others, owned by a publisher that no longer comes online).
    let secure: Vec<&serde_json::Value> = endpoints["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["registration"]["endpoint"]["securityMode"] == "SignAndEncrypt")
        .collect();
    let Some(id) = secure
        .iter()
        .find(|e| application.is_some() && e["applicationId"].as_str() == application.as_deref())
        .or_else(|| secure.first())
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

/// Where a client on this host reaches a server bound to `bind`: loopback for "every
/// interface" (0.0.0.0 or ::), the address itself otherwise.
fn reachable(bind: IpAddr) -> IpAddr {
    match bind {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// Prints a summary of the telemetry arriving at the embedded broker every 5 s.
async fn tail_telemetry(broker: SocketAddr, credentials: Option<Credentials>) {
    use rumqttc::v5::mqttbytes::{v5::Packet, QoS};
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let mut opts = MqttOptions::new("iiot-up-tail", broker.ip().to_string(), broker.port());
    opts.set_max_packet_size(Some(16 << 20));
    if let Some(c) = credentials {
        opts.set_credentials(c.user, c.password);
    }
    let (client, mut events) = AsyncClient::new(opts, 100);
    if client
        .subscribe(
            TopicTemplates::default()
                .telemetry_pattern(PUBLISHER_ID)
                .filter(),
            QoS::AtMostOnce,
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// A port this test holds bound, so it is taken for as long as the listener lives.
    fn taken() -> (TcpListener, u16) {
        let listener = TcpListener::bind((LOOPBACK, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    fn spec(default: u16) -> PortSpec {
        PortSpec {
            what: "MQTT",
            flag: "--mqtt-port",
            default,
        }
    }

    #[test]
    fn a_taken_default_is_replaced_by_a_free_port() {
        let (_held, port) = taken();
        let chosen = choose_port(LOOPBACK, None, &spec(port)).unwrap();
        assert_ne!(chosen.port, port);
        assert_eq!(chosen.instead_of, Some(port));
        let free = chosen.port;
        drop(chosen);
        TcpListener::bind((LOOPBACK, free)).expect("the chosen port is free once released");
    }

    #[test]
    fn a_free_default_is_kept() {
        let (held, port) = taken();
        drop(held);
        let chosen = choose_port(LOOPBACK, None, &spec(port)).unwrap();
        assert_eq!((chosen.port, chosen.instead_of), (port, None));
    }

    #[test]
    fn a_taken_port_given_by_flag_is_an_error_naming_the_flag() {
        let (_held, port) = taken();
        let e = choose_port(LOOPBACK, Some(port), &spec(1883))
            .err()
            .unwrap();
        let text = e.to_string();
        assert!(text.contains("--mqtt-port"), "{text}");
        assert!(text.contains(&port.to_string()), "{text}");
    }

    #[test]
    fn a_free_port_given_by_flag_is_used() {
        let (held, port) = taken();
        drop(held);
        let chosen = choose_port(LOOPBACK, Some(port), &spec(1883)).unwrap();
        assert_eq!((chosen.port, chosen.instead_of), (port, None));
    }

    #[test]
    fn a_chosen_port_stays_reserved_until_released() {
        let (held, port) = taken();
        drop(held);
        let first = choose_port(LOOPBACK, None, &spec(port)).unwrap();
        let second = choose_port(LOOPBACK, None, &spec(port)).unwrap();
        assert_eq!(first.port, port);
        assert_ne!(second.port, port);
        assert!(choose_port(LOOPBACK, Some(port), &spec(port)).is_err());
    }

    #[test]
    fn the_demo_configuration_follows_the_plc_to_its_new_port() {
        let dir = std::env::temp_dir().join(format!("iiot-up-follow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let nodes = dir.join("publishednodes.json");
        let last = dir.join("endpoint-url");
        write_demo_configuration(&nodes, "opc.tcp://127.0.0.1:50000/").unwrap();
        let mut entries: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&nodes).unwrap()).unwrap();
        let mut other = entries[0].clone();
        other["EndpointUrl"] = "opc.tcp://127.0.0.1:4840/".into();
        entries.as_array_mut().unwrap().push(other);
        std::fs::write(&nodes, serde_json::to_vec(&entries).unwrap()).unwrap();
        std::fs::write(&last, "opc.tcp://127.0.0.1:50000/").unwrap();

        follow_plc_url(&nodes, &last, "opc.tcp://127.0.0.1:41234/").unwrap();

        let entries: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&nodes).unwrap()).unwrap();
        assert_eq!(entries[0]["EndpointUrl"], "opc.tcp://127.0.0.1:41234/");
        assert_eq!(entries[1]["EndpointUrl"], "opc.tcp://127.0.0.1:4840/");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
