//! The module's identity in `up`'s hub: device `iiot-up` with module `publisher`, made
//! through the hub's own service routes (as an operator would with IoT Hub's) at first start
//! and read back at every later one, so the module keeps its key across restarts.

use std::net::SocketAddr;

use anyhow::{anyhow, Context, Result};
use reqwest::StatusCode;
use serde_json::Value;

use super::PUBLISHER_ID;

/// The module identity's id under the `iiot-up` device.
pub const MODULE_ID: &str = "publisher";

/// The module identity's primary key, made when it does not exist yet.
pub async fn provision(twin: SocketAddr, api_key: &str) -> Result<String> {
    let http = reqwest::Client::new();
    let base = format!("http://{twin}");
    let module = format!("{base}/devices/{PUBLISHER_ID}/modules/{MODULE_ID}");
    let found = http
        .get(&module)
        .bearer_auth(api_key)
        .send()
        .await
        .context("reading the module's hub identity")?;
    let body = if found.status() == StatusCode::OK {
        found.json::<Value>().await?
    } else {
        let device = http
            .put(format!("{base}/devices/{PUBLISHER_ID}"))
            .bearer_auth(api_key)
            .json(&serde_json::json!({ "deviceId": PUBLISHER_ID }))
            .send()
            .await?;
        // 409: the device exists already (its module did not).
        if !device.status().is_success() && device.status() != StatusCode::CONFLICT {
            return Err(anyhow!(
                "creating hub device {PUBLISHER_ID}: {}",
                device.text().await.unwrap_or_default()
            ));
        }
        let made = http
            .put(&module)
            .bearer_auth(api_key)
            .json(&serde_json::json!({ "deviceId": PUBLISHER_ID, "moduleId": MODULE_ID }))
            .send()
            .await?;
        if !made.status().is_success() {
            return Err(anyhow!(
                "creating hub module {PUBLISHER_ID}/{MODULE_ID}: {}",
                made.text().await.unwrap_or_default()
            ));
        }
        made.json::<Value>().await?
    };
    body["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the hub identity {PUBLISHER_ID}/{MODULE_ID} has no key"))
}
