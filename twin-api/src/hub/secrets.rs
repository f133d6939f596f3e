//! Symmetric keys of identities and access policies, sealed before they reach the database.
//!
//! The hub must be able to recompute a SAS signature, so it keeps the keys themselves, not a
//! hash; a copy of the database alone must still not let anyone sign in as a device. Every key
//! is therefore sealed with AES-256-GCM under the hub's key-encryption key (a file beside the
//! data, or one replicas share), bound to the row it belongs to so a blob copied onto another
//! identity does not open.

use std::path::Path;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;

use super::error::HubError;

const MAGIC: &str = "hk1:";
const NONCE_LEN: usize = 12;

/// The hub's key-encryption key.
#[derive(Clone)]
pub struct HubKek(Key<Aes256Gcm>);

impl std::fmt::Debug for HubKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubKek(..)")
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl HubKek {
    /// Reads the key file (64 hex digits), creating it owner-only with a fresh key when absent.
    pub fn load_or_create(path: &Path) -> Result<Self, HubError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .ok()
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| {
                        HubError::Setup(format!(
                            "{}: the hub key-encryption key must be 64 hex digits",
                            path.display()
                        ))
                    })?;
                Ok(Self(*Key::<Aes256Gcm>::from_slice(&bytes)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Aes256Gcm::generate_key(OsRng);
                // Written whole elsewhere, then linked into place: a replica starting at the
                // same moment either wins or reads the winner's complete key.
                if super::files::publish_new_private(path, hex::encode(key).as_bytes())? {
                    tracing::info!(path = %path.display(), "created the hub's key-encryption key; back it up apart from the database");
                    Ok(Self(key))
                } else {
                    Self::load_or_create(path)
                }
            }
            Err(e) => Err(HubError::Setup(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Seals `plain` for the row `context` names.
    pub fn seal(&self, context: &str, plain: &str) -> Result<String, HubError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = Aes256Gcm::new(&self.0)
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| HubError::Internal("sealing a key failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(format!("{MAGIC}{}", b64().encode(out)))
    }

    /// Opens what [`HubKek::seal`] made for the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<String, HubError> {
        let wrong = || {
            HubError::Internal(format!(
                "the keys of {context} cannot be opened (another hub key-encryption key?)"
            ))
        };
        let raw = sealed
            .strip_prefix(MAGIC)
            .and_then(|s| b64().decode(s).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or_else(wrong)?;
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let plain = Aes256Gcm::new(&self.0)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| wrong())?;
        String::from_utf8(plain).map_err(|_| wrong())
    }
}

/// A new symmetric key as IoT Hub makes them: 32 random bytes, base64.
pub fn new_key() -> String {
    b64().encode(Aes256Gcm::generate_key(OsRng))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_for_its_own_row_and_key() {
        let dir = iiot_testkit::temp_dir("hub-kek");
        let kek = HubKek::load_or_create(&dir.join("hub.kek")).unwrap();
        let sealed = kek.seal("device:d1/", "secret-key").unwrap();
        assert!(!sealed.contains("secret-key"));
        assert_eq!(kek.open("device:d1/", &sealed).unwrap(), "secret-key");
        assert!(kek.open("device:d2/", &sealed).is_err());
        let other = HubKek::load_or_create(&dir.join("other.kek")).unwrap();
        assert!(other.open("device:d1/", &sealed).is_err());
        // The same file gives the same key again.
        let again = HubKek::load_or_create(&dir.join("hub.kek")).unwrap();
        assert_eq!(again.open("device:d1/", &sealed).unwrap(), "secret-key");
        assert!(format!("{kek:?}").ends_with("(..)"));
    }
}
