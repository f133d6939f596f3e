//! Whom the engine connects to. A server presenting a certificate this vault issued is trusted
//! through the vault's CA (in the PKI folder's `trusted/`, with its CRL); before its first push
//! a server presents a certificate of its own, which is trusted only when its SHA-1 thumbprint
//! is the one the operator pinned on the target (`serverThumbprint`). No other certificate is
//! accepted: the engine hands a SecurityAdmin password to whatever it connects to.

use std::path::Path;
use std::time::Duration;

use iiot_gds::pki;
use opcua::client::Client;
use opcua::crypto::SecurityPolicy;
use opcua::types::MessageSecurityMode;

use super::sequence::Failure;

/// How long GetEndpoints may take.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate the server's Basic256Sha256 SignAndEncrypt endpoint presents, read with
/// GetEndpoints (which needs no security).
pub async fn presented_certificate(client: &Client, url: &str) -> Result<Vec<u8>, Failure> {
    let endpoints =
        tokio::time::timeout(DISCOVERY_TIMEOUT, client.get_server_endpoints_from_url(url))
            .await
            .map_err(|_| Failure::new("connect", format!("GetEndpoints on {url}: no answer")))?
            .map_err(|e| {
                Failure::status("connect", e.status(), format!("GetEndpoints on {url}: {e}"))
            })?;
    endpoints
        .iter()
        .find(|e| {
            e.security_mode == MessageSecurityMode::SignAndEncrypt
                && e.security_policy_uri.as_ref() == SecurityPolicy::Basic256Sha256.to_uri()
        })
        .and_then(|e| e.server_certificate.value.clone())
        .filter(|der| !der.is_empty())
        .ok_or_else(|| {
            Failure::new(
                "connect",
                format!(
                    "{url} offers no Basic256Sha256 SignAndEncrypt endpoint with a certificate"
                ),
            )
        })
}

/// Makes sure the engine will trust the certificate `der`: issued by one of `vault_cas`, or
/// pinned. A pinned certificate is written to `trusted/` under the name the stack looks up.
pub fn admit(
    pki_dir: &Path,
    der: &[u8],
    pinned: Option<&str>,
    vault_cas: &[Vec<u8>],
) -> Result<(), Failure> {
    let cert = openssl::x509::X509::from_der(der)
        .map_err(|e| Failure::new("connect", format!("the server's certificate: {e}")))?;
    let issued_here = vault_cas.iter().any(|ca| {
        openssl::x509::X509::from_der(ca)
            .ok()
            .and_then(|ca| ca.public_key().ok())
            .is_some_and(|key| cert.verify(&key).unwrap_or(false))
    });
    if issued_here {
        return Ok(());
    }
    let thumbprint = pki::thumbprint(der);
    if pinned != Some(thumbprint.as_str()) {
        return Err(Failure::status(
            "connect",
            opcua::types::StatusCode::BadCertificateUntrusted,
            format!(
                "the server presents certificate {thumbprint}, which this vault did not issue \
                 and which is not the target's serverThumbprint"
            ),
        ));
    }
    let name = pki::stack_file_name(der).map_err(|e| Failure::new("connect", e.to_string()))?;
    pki::write_atomically(&pki_dir.join("trusted").join(name), der)
        .map_err(|e| Failure::new("connect", e.to_string()))
}
