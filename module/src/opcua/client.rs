//! The module's OPC UA client application: its identity, certificate and transport limits.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opcua::client::{Client, ClientBuilder};
use tracing::warn;

use crate::error::{Result, ServiceError};

/// Identity and trust settings of the client application.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub application_name: String,
    pub application_uri: String,
    /// Trust every server certificate (`--auto-accept`); off by default.
    pub auto_accept: bool,
    pub request_timeout: Duration,
}

/// Builds the client; at first start this creates the self-signed application certificate
/// (applicationUri in its SAN) under `pki_dir/own` and its key under `pki_dir/private`.
pub fn build_client(pki_dir: &Path, settings: &ClientSettings) -> Result<Arc<Client>> {
    if settings.auto_accept {
        warn!("--auto-accept is on: every server certificate will be trusted without review");
    }
    for dir in ["own", "private", "trusted", "rejected", "issuer"] {
        std::fs::create_dir_all(pki_dir.join(dir)).map_err(|e| {
            ServiceError::internal(format!(
                "cannot create {}: {e}",
                pki_dir.join(dir).display()
            ))
        })?;
    }
    let client = ClientBuilder::new()
        .application_name(settings.application_name.clone())
        .application_uri(settings.application_uri.clone())
        .product_uri("urn:iiot:module")
        .pki_dir(pki_dir)
        .create_sample_keypair(true)
        .trust_server_certs(settings.auto_accept)
        .verify_server_certs(true)
        .session_retry_limit(-1)
        .session_retry_initial(Duration::from_millis(500))
        .session_retry_max(Duration::from_secs(30))
        .keep_alive_interval(Duration::from_secs(10))
        .request_timeout(settings.request_timeout)
        .session_timeout(120_000)
        .max_message_size(64 * 1024 * 1024)
        .max_chunk_count(4096)
        .max_array_length(10_000_000)
        .max_string_length(16 * 1024 * 1024)
        .max_byte_string_length(64 * 1024 * 1024)
        .session_name("iiot module")
        // The publisher transfers or re-creates its own subscriptions after a reconnect
        // (`publisher::subscription`): it knows every item's settings already, so the client
        // need not keep a second copy of each monitored item.
        .recreate_subscriptions(false)
        .client()
        .map_err(|e| ServiceError::internal(format!("invalid client config: {}", e.join("; "))))?;
    restrict_key_permissions(&pki_dir.join("private"));
    Ok(Arc::new(client))
}

/// The stack reads its private key from a PEM file; keep that file readable by us alone.
fn restrict_key_permissions(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o600));
            }
        }
    }
}
