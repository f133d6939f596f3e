//! Whom the engine connects to. It hands the server a SecurityAdmin password, so it opens a
//! session only on an endpoint whose certificate it checked itself, and then exactly on that
//! endpoint (no second GetEndpoints an attacker could answer differently):
//!
//! - a certificate this vault issued to the target's own application, current (approved or
//!   accepted, not revoked) and naming the application's URI; or
//! - before the first push, the certificate whose SHA-1 thumbprint the operator pinned on the
//!   target (`serverThumbprint`), written to the PKI's `trusted/` for the job's duration only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use iiot_gds::pki::{self, AltNames};
use opcua::client::Client;
use opcua::crypto::SecurityPolicy;
use opcua::types::{EndpointDescription, MessageSecurityMode, StatusCode};

use super::sequence::Failure;
use crate::store::RequestRow;

/// How long GetEndpoints may take.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's Basic256Sha256 SignAndEncrypt endpoint with its certificate, read with
/// GetEndpoints (which needs no security).
pub async fn endpoint(
    client: &Client,
    url: &str,
) -> Result<(EndpointDescription, Vec<u8>), Failure> {
    let endpoints =
        tokio::time::timeout(DISCOVERY_TIMEOUT, client.get_server_endpoints_from_url(url))
            .await
            .map_err(|_| Failure::new("connect", format!("GetEndpoints on {url}: no answer")))?
            .map_err(|e| {
                Failure::status("connect", e.status(), format!("GetEndpoints on {url}: {e}"))
            })?;
    endpoints
        .into_iter()
        .filter(|e| {
            e.security_mode == MessageSecurityMode::SignAndEncrypt
                && e.security_policy_uri.as_ref() == SecurityPolicy::Basic256Sha256.to_uri()
        })
        .find_map(|e| {
            let der = e
                .server_certificate
                .value
                .clone()
                .filter(|d| !d.is_empty())?;
            Some((e, der))
        })
        .ok_or_else(|| {
            Failure::new(
                "connect",
                format!(
                    "{url} offers no Basic256Sha256 SignAndEncrypt endpoint with a certificate"
                ),
            )
        })
}

/// A pinned certificate written for one job; removed when dropped.
pub struct Pinned(PathBuf);

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Decides whether the engine may talk to the server presenting `der`.
pub fn admit(
    pki_dir: &Path,
    der: &[u8],
    pinned: Option<&str>,
    application_id: &str,
    application_uri: &str,
    holder: Option<&RequestRow>,
) -> Result<Option<Pinned>, Failure> {
    let cert = openssl::x509::X509::from_der(der)
        .map_err(|e| Failure::new("connect", format!("the server's certificate: {e}")))?;
    let thumbprint = pki::thumbprint(der);
    if pinned == Some(thumbprint.as_str()) {
        let name = pki::stack_file_name(der).map_err(|e| Failure::new("connect", e.to_string()))?;
        let path = pki_dir.join("trusted").join(name);
        pki::write_atomically(&path, der).map_err(|e| Failure::new("connect", e.to_string()))?;
        return Ok(Some(Pinned(path)));
    }
    let names_application = AltNames::of(&cert)
        .uris
        .iter()
        .any(|u| u == application_uri);
    match holder {
        Some(r) if r.entity_id == application_id && names_application => Ok(None),
        _ => Err(Failure::status(
            "connect",
            StatusCode::BadCertificateUntrusted,
            format!(
                "the server presents certificate {}, which is neither a current certificate \
                 this vault issued to {application_uri} nor the target's serverThumbprint",
                thumbprint.to_ascii_uppercase()
            ),
        )),
    }
}
