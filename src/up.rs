//! `iiot up`: the whole gateway in one process on embedded defaults, for a first look.
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

    let mqtt_addr = SocketAddr::new(args.bind, args.mqtt_port);
    crate::broker::start(mqtt_addr)?;

    let plc = iiot_plc_sim::PlcSim::start(iiot_plc_sim::PlcSimConfig {
        port: args.plc_port,
        pki_dir: data_dir.join("plc-sim/pki"),
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e} (choose another port with --plc-port)"))?;

    let module = iiot_module::start(iiot_module::ModuleConfig {
        http_bind: SocketAddr::new(args.bind, args.http_port),
        api_key,
        data_dir: data_dir.join("module"),
        mqtt_url: Some(format!("mqtt://{mqtt_addr}")),
        publisher_id: "iiot-up".into(),
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
    println!();
    println!("Read a changing value (run it twice):");
    println!(
        "  curl -s -X POST http://{http}/v2/read -H \"Authorization: ApiKey $(cat {})\" \\\n    -H 'Content-Type: application/json' \\\n    -d '{{\"connection\":{{\"endpoint\":{{\"url\":\"{url}\",\"securityMode\":\"SignAndEncrypt\"}}}},\"request\":{{\"nodeId\":\"nsu=urn:iiot:plc-sim;s=Fast/0\"}}}}'",
        api_key_file.display()
    );
    println!();
    crate::wait_for_shutdown().await;
    module.shutdown().await;
    plc.shutdown().await;
    Ok(())
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
