//! `iiot up` on vault-issued certificates: the simulated PLC gets its certificate and trust
//! list by GDS push, the module by pull, and both trust the vault's CA instead of each other's
//! self-signed certificates.
//!
//! `up` set up every part itself, so it also approves the requests its own `admin` key made,
//! with its `approver` key (the vault never lets a requester approve its own request): a
//! newcomer sees the workflow run without having to act. Other requests are left alone.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use base64::Engine;
use serde_json::{json, Value};

/// The plc-sim user the vault pushes as (Part 12 SecurityAdmin).
pub const PUSH_USER: &str = "vault";
/// The name of `up`'s own admin key in the vault (`api-keys.json`).
const ADMIN_NAME: &str = "admin";
/// How often pending requests of `up`'s own parts are looked for.
const APPROVE_EVERY: Duration = Duration::from_secs(2);

struct Vault {
    http: reqwest::Client,
    base: String,
}

impl Vault {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> Result<(reqwest::StatusCode, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await?;
        let status = res.status();
        Ok((status, res.json().await.unwrap_or(Value::Null)))
    }

    async fn ok(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let (status, v) = self.call(method.clone(), path, key, body).await?;
        if !status.is_success() {
            return Err(anyhow!("vault {method} {path}: {status} {}", v["detail"]));
        }
        Ok(v)
    }
}

/// Puts the vault's CA certificates and CRLs into plc-sim's trust list, so that plc-sim accepts
/// the vault's push client the first time; each push then replaces the whole list.
pub async fn trust_vault(vault: SocketAddr, admin_key: &str, plc_pki: &Path) -> Result<()> {
    let v = Vault {
        http: reqwest::Client::new(),
        base: format!("http://{vault}"),
    };
    let tl = v
        .ok(
            reqwest::Method::GET,
            "/v2/groups/DefaultApplicationGroup/trustlist",
            admin_key,
            None,
        )
        .await?;
    let b64 = |s: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(s.as_str().unwrap_or_default())
            .context("trust list entry")
    };
    for (dir, list, ext) in [
        ("trusted", "trustedCertificates", "der"),
        ("trusted/crl", "trustedCrls", "crl"),
    ] {
        let dir = plc_pki.join(dir);
        std::fs::create_dir_all(&dir)?;
        for (i, item) in tl[list].as_array().into_iter().flatten().enumerate() {
            let path = dir.join(format!("vault-ca-{i}.{ext}"));
            std::fs::write(&path, b64(item)?).with_context(|| path.display().to_string())?;
        }
    }
    Ok(())
}

/// What the push needs to know about the simulated PLC.
pub struct PlcTarget {
    pub application_uri: String,
    pub endpoint_url: String,
    pub certificate_der: Vec<u8>,
    pub password: String,
}

/// Registers plc-sim in the vault with its push target, then approves, for as long as `up`
/// runs, the requests `up`'s admin key made (the push's and the module's, renewals included).
pub async fn enroll(vault: SocketAddr, admin_key: String, approver_key: String, plc: PlcTarget) {
    let v = Vault {
        http: reqwest::Client::new(),
        base: format!("http://{vault}"),
    };
    match register_push_target(&v, &admin_key, &plc).await {
        Ok(app) => {
            tokio::spawn(report_push(
                Vault {
                    http: v.http.clone(),
                    base: v.base.clone(),
                },
                admin_key,
                app,
            ));
        }
        Err(e) => tracing::warn!(error = %e, "the simulated PLC is not set up for GDS push"),
    }
    loop {
        if let Err(e) = approve_own_requests(&v, &approver_key).await {
            tracing::debug!(error = %e, "approving up's requests failed; will retry");
        }
        tokio::time::sleep(APPROVE_EVERY).await;
    }
}

async fn register_push_target(v: &Vault, key: &str, plc: &PlcTarget) -> Result<String> {
    use reqwest::Method;
    let found = v
        .ok(
            Method::POST,
            "/v2/applications/query",
            key,
            Some(json!({ "applicationUri": plc.application_uri })),
        )
        .await?;
    let app = match found["applications"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|a| a["applicationId"].as_str())
    {
        Some(id) => id.to_owned(),
        None => v
            .ok(
                Method::POST,
                "/v2/applications",
                key,
                Some(json!({
                    "applicationUri": plc.application_uri,
                    "applicationType": "Server",
                    "applicationNames": [{"locale": "en", "text": iiot_plc_sim::APPLICATION_NAME}],
                    "productUri": iiot_plc_sim::NAMESPACE_URI,
                    "discoveryUrls": [plc.endpoint_url],
                })),
            )
            .await?["applicationId"]
            .as_str()
            .ok_or_else(|| anyhow!("the vault answered no applicationId"))?
            .to_owned(),
    };
    v.ok(
        Method::PUT,
        &format!("/v2/push/targets/{app}"),
        key,
        Some(json!({
            "endpointUrl": plc.endpoint_url,
            "userName": PUSH_USER,
            "password": plc.password,
            // First contact: the certificate plc-sim has now (self-signed on a first run).
            "serverThumbprint": iiot_gds::pki::thumbprint(&plc.certificate_der),
        })),
    )
    .await?;
    Ok(app)
}

async fn approve_own_requests(v: &Vault, approver_key: &str) -> Result<()> {
    use reqwest::Method;
    let pending = v
        .ok(
            Method::POST,
            "/v2/requests/query",
            approver_key,
            Some(json!({ "state": "New" })),
        )
        .await?;
    for r in pending["requests"].as_array().into_iter().flatten() {
        if r["submitted"]["authorityId"] != ADMIN_NAME {
            continue;
        }
        if let Some(id) = r["requestId"].as_str() {
            v.ok(
                Method::POST,
                &format!("/v2/requests/{id}/approve"),
                approver_key,
                None,
            )
            .await?;
        }
    }
    Ok(())
}

/// Says once when plc-sim presents its pushed certificate (or why not).
async fn report_push(v: Vault, key: String, app: String) {
    let path = format!("/v2/push/targets/{app}");
    let mut reported_failure = false;
    for _ in 0..300 {
        if let Ok(t) = v.ok(reqwest::Method::GET, &path, &key, None).await {
            let job = &t["lastJob"];
            if t["pushedCertificateSerial"].is_string() && job["state"] == "succeeded" {
                println!(
                    "The simulated PLC runs on a vault-issued certificate (serial {}), pushed by the vault's GDS.",
                    t["pushedCertificateSerial"].as_str().unwrap_or_default()
                );
                return;
            }
            if job["state"] == "failed" && !reported_failure {
                reported_failure = true;
                println!(
                    "GDS push to the simulated PLC failed: {} (retrying)",
                    job["error"].as_str().unwrap_or_default()
                );
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
