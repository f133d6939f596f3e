//! Argument types more than one command takes (OIDC tokens, MQTT TLS, plc-sim tree shapes).
//! Imports nothing else from the binary, so every command can use it.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;

/// TLS to the broker for `mqtts://` URLs; the module and the twin API take the same flags.
#[derive(Args, Debug)]
pub struct MqttTlsArgs {
    /// CA certificate (PEM) that signed the broker's certificate (mqtts://); the system CA
    /// bundle when absent.
    #[arg(long)]
    pub mqtt_ca: Option<PathBuf>,
    /// Client certificate (PEM) for brokers that require mutual TLS.
    #[arg(long, requires = "mqtt_key")]
    pub mqtt_cert: Option<PathBuf>,
    /// Private key (PEM) of --mqtt-cert.
    #[arg(long, requires = "mqtt_cert")]
    pub mqtt_key: Option<PathBuf>,
}

impl MqttTlsArgs {
    pub fn files(self) -> iiot_mqtt_tls::TlsFiles {
        iiot_mqtt_tls::TlsFiles {
            ca: self.mqtt_ca,
            cert: self.mqtt_cert,
            key: self.mqtt_key,
        }
    }
}

/// Parses `DEPTHxBREADTH`.
pub fn parse_tree(text: &str) -> Result<(u32, u32)> {
    let (d, b) = text
        .split_once(['x', 'X'])
        .with_context(|| format!("--tree '{text}' must be DEPTHxBREADTH, e.g. 2x316"))?;
    let d: u32 = d
        .trim()
        .parse()
        .with_context(|| format!("bad depth in --tree '{text}'"))?;
    let b: u32 = b
        .trim()
        .parse()
        .with_context(|| format!("bad breadth in --tree '{text}'"))?;
    if d == 0 || b == 0 {
        bail!("--tree '{text}': depth and breadth must be at least 1");
    }
    Ok((d, b))
}

/// OIDC access tokens for the REST services: without `--jwks` only API keys are accepted.
#[derive(Args, Debug, Clone)]
pub struct JwtArgs {
    /// The identity provider's JSON Web Key Set (a file; read again when a token names an
    /// unknown key id, so it can be replaced for key rotation).
    #[arg(long, value_name = "FILE")]
    pub jwks: Option<PathBuf>,
    /// Required `iss` of tokens.
    #[arg(long, requires = "jwks")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` of tokens.
    #[arg(long, requires = "jwks")]
    pub jwt_audience: Option<String>,
    /// Claim holding the roles (dots walk into objects, e.g. realm_access.roles).
    #[arg(long, default_value = "roles")]
    pub jwt_roles_claim: String,
}

impl JwtArgs {
    pub fn validator(&self) -> Result<Option<std::sync::Arc<iiot_auth::JwtValidator>>> {
        let Some(path) = &self.jwks else {
            return Ok(None);
        };
        if self.jwt_issuer.is_none() && self.jwt_audience.is_none() {
            tracing::warn!("--jwks without --jwt-issuer or --jwt-audience: any token signed by those keys is accepted");
        }
        let settings = iiot_auth::JwtSettings {
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            roles_claim: self.jwt_roles_claim.clone(),
            ..Default::default()
        };
        let v = iiot_auth::JwtValidator::load(path, settings)
            .map_err(|e| anyhow::anyhow!("--jwks: {e}"))?;
        Ok(Some(std::sync::Arc::new(v)))
    }
}
