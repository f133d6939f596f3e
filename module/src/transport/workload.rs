//! The IoT Edge workload API, as a module under IoT Edge reaches its hub: the trust bundle
//! (the edge CA the edge hub's certificate chains to) and `sign` (the module's SAS token,
//! signed by the security daemon with a key the module never sees). The environment is read
//! exactly as Microsoft's SDK's `create_from_edge_environment` reads it.
//!
//! The workload URI is a Unix socket (`unix:///var/run/iotedge/workload.sock`) under IoT Edge
//! and may be `http://host:port`; both are spoken with hyper's HTTP/1.1 client.

use std::collections::HashMap;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// The seven variables edgeAgent gives a module.
const VARIABLES: [&str; 7] = [
    "IOTEDGE_IOTHUBHOSTNAME",
    "IOTEDGE_DEVICEID",
    "IOTEDGE_MODULEID",
    "IOTEDGE_GATEWAYHOSTNAME",
    "IOTEDGE_MODULEGENERATIONID",
    "IOTEDGE_WORKLOADURI",
    "IOTEDGE_APIVERSION",
];

/// A module's IoT Edge environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeEnvironment {
    pub hub_host_name: String,
    pub device_id: String,
    pub module_id: String,
    pub gateway_host_name: String,
    pub generation_id: String,
    pub workload_uri: String,
    pub api_version: String,
}

impl EdgeEnvironment {
    /// The environment when all seven variables are set (`None` when none is: not under IoT
    /// Edge); an error names what is missing when only some are.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Option<Self>, String> {
        let get = |k: &str| {
            vars.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let present: Vec<&str> = VARIABLES
            .iter()
            .copied()
            .filter(|k| get(k).is_some())
            .collect();
        if present.is_empty() {
            return Ok(None);
        }
        let missing: Vec<&str> = VARIABLES
            .iter()
            .copied()
            .filter(|k| get(k).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "IoT Edge environment incomplete: {} not set",
                missing.join(", ")
            ));
        }
        let v = |k: &str| get(k).unwrap_or_default();
        Ok(Some(Self {
            hub_host_name: v("IOTEDGE_IOTHUBHOSTNAME"),
            device_id: v("IOTEDGE_DEVICEID"),
            module_id: v("IOTEDGE_MODULEID"),
            gateway_host_name: v("IOTEDGE_GATEWAYHOSTNAME"),
            generation_id: v("IOTEDGE_MODULEGENERATIONID"),
            workload_uri: v("IOTEDGE_WORKLOADURI"),
            api_version: v("IOTEDGE_APIVERSION"),
        }))
    }

    pub fn from_process() -> Result<Option<Self>, String> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// `GET /trust-bundle`: the PEM the edge hub's certificate chains to.
    pub async fn trust_bundle(&self) -> Result<String, String> {
        let path = format!("/trust-bundle?api-version={}", self.api_version);
        let answer = self.call("GET", &path, None).await?;
        answer
            .get("certificate")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| "the workload API's trust bundle has no certificate".into())
    }

    /// `POST /modules/{m}/genid/{g}/sign`: HMAC-SHA256 of `data` with the module's primary
    /// key, base64.
    pub async fn sign(&self, data: &str) -> Result<String, String> {
        let module = percent_encoding::utf8_percent_encode(
            &self.module_id,
            percent_encoding::NON_ALPHANUMERIC,
        );
        let path = format!(
            "/modules/{module}/genid/{}/sign?api-version={}",
            self.generation_id, self.api_version
        );
        let body = json!({
            "keyId": "primary",
            "algo": "HMACSHA256",
            "data": base64::engine::general_purpose::STANDARD.encode(data),
        });
        let answer = self.call("POST", &path, Some(body)).await?;
        answer
            .get("digest")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| "the workload API's signature has no digest".into())
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let fail = |e: &dyn std::fmt::Display| format!("workload API {}: {e}", self.workload_uri);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (host, response) = if let Some(socket) = self.workload_uri.strip_prefix("unix://") {
            let stream = tokio::net::UnixStream::connect(socket)
                .await
                .map_err(|e| fail(&e))?;
            (
                "localhost".to_string(),
                send(stream, method, "localhost", path, body).await,
            )
        } else if let Some(rest) = self.workload_uri.strip_prefix("http://") {
            let authority = rest.trim_end_matches('/').to_string();
            let stream = tokio::net::TcpStream::connect(&authority)
                .await
                .map_err(|e| fail(&e))?;
            let r = send(stream, method, &authority, path, body).await;
            (authority, r)
        } else {
            return Err(format!(
                "IOTEDGE_WORKLOADURI '{}': use unix:// or http://",
                self.workload_uri
            ));
        };
        let (status, bytes) = response.map_err(|e| fail(&e))?;
        if !(200..300).contains(&status) {
            return Err(format!(
                "workload API {host}{path}: status {status}: {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| fail(&e))
    }
}

/// One HTTP/1.1 request on `stream`.
async fn send<S>(
    stream: S,
    method: &str,
    host: &str,
    path: &str,
    body: String,
) -> Result<(u16, Bytes), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        sender.send_request(request),
    )
    .await
    .map_err(|_| "no answer within 30 s".to_string())?
    .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn all_seven_variables_or_none() {
        let mut vars: HashMap<String, String> = VARIABLES
            .iter()
            .map(|k| (k.to_string(), format!("v-{k}")))
            .collect();
        let env = EdgeEnvironment::from_vars(&vars).unwrap().unwrap();
        assert_eq!(env.module_id, "v-IOTEDGE_MODULEID");
        vars.remove("IOTEDGE_APIVERSION");
        let e = EdgeEnvironment::from_vars(&vars).unwrap_err();
        assert!(e.contains("IOTEDGE_APIVERSION"), "{e}");
        assert_eq!(EdgeEnvironment::from_vars(&HashMap::new()).unwrap(), None);
    }
}
