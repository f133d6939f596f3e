//! Private keys handed to applications that cannot make their own CSR: password-protected
//! PKCS#8 (PEM) or PKCS#12 (PFX), built with OpenSSL. Clear keys exist only in memory.

use base64::Engine;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::symm::Cipher;
use openssl::x509::X509;

use crate::error::{Result, VaultError};
use crate::kek::crypto;

/// PKCS#8 PEM encrypted with AES-256-CBC under `password` (PBES2).
pub fn encrypted_pkcs8_pem(pkcs8_der: &[u8], password: &str) -> Result<String> {
    let key = PKey::private_key_from_pkcs8(pkcs8_der).map_err(crypto)?;
    let pem = key
        .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), password.as_bytes())
        .map_err(crypto)?;
    String::from_utf8(pem).map_err(crypto)
}

/// Encrypted PKCS#8 DER: how a PFX key waits for its certificate.
pub fn encrypted_pkcs8_der(pkcs8_der: &[u8], password: &str) -> Result<Vec<u8>> {
    let key = PKey::private_key_from_pkcs8(pkcs8_der).map_err(crypto)?;
    key.private_key_to_pkcs8_passphrase(Cipher::aes_256_cbc(), password.as_bytes())
        .map_err(crypto)
}

/// Base64 of a PKCS#12 holding the key and certificate, protected by `password`, which must
/// also open the stored encrypted key.
pub fn pfx_from_encrypted_pkcs8(
    encrypted: &[u8],
    cert_der: &[u8],
    password: &str,
) -> Result<String> {
    let key =
        PKey::private_key_from_pkcs8_passphrase(encrypted, password.as_bytes()).map_err(|_| {
            VaultError::InvalidArgument(
                "the PFX password does not match the one given at submission".into(),
            )
        })?;
    let cert = X509::from_der(cert_der).map_err(crypto)?;
    let pfx = Pkcs12::builder()
        .name("iiot vault")
        .pkey(&key)
        .cert(&cert)
        .build2(password)
        .map_err(crypto)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(pfx.to_der().map_err(crypto)?))
}
