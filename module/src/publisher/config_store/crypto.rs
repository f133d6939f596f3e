//! Credentials at rest: OPC UA user names and passwords in `publishednodes.json` are written as
//! `EncryptedAuthUsername` / `EncryptedAuthPassword`, never in clear.
//!
//! AES-256-GCM (authenticated, so a tampered or foreign value is refused rather than decoded
//! into garbage) with a random key kept in `{data_dir}/config.key` (mode 0600), created the
//! first time a credential is sealed. The member name is the associated data, so a user name
//! cannot be pasted into the password member. A value is `base64(nonce || ciphertext+tag)`.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// Why a credential could not be sealed or opened. Never carries the secret itself.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("credential key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("{field} cannot be decrypted with {key}: {reason}")]
    Open {
        field: &'static str,
        key: PathBuf,
        reason: &'static str,
    },
}

/// Seals and opens credentials with the module's key; remembers what it sealed so that
/// rewriting an unchanged configuration writes the same bytes.
pub struct CredentialCipher {
    key_path: PathBuf,
    cipher: Mutex<Option<Aes256Gcm>>,
    /// (member, clear text) → sealed text, filled on both seal and open.
    sealed: Mutex<HashMap<(&'static str, String), String>>,
}

impl CredentialCipher {
    pub fn new(key_path: PathBuf) -> Self {
        Self {
            key_path,
            cipher: Mutex::new(None),
            sealed: Mutex::new(HashMap::new()),
        }
    }

    fn key_error(&self, message: impl Into<String>) -> CryptoError {
        CryptoError::Key {
            path: self.key_path.clone(),
            message: message.into(),
        }
    }

    /// The cipher, loading the key file or (when `create`) making it on first use.
    fn cipher(&self, create: bool) -> Result<Aes256Gcm, CryptoError> {
        let mut slot = self
            .cipher
            .lock()
            .map_err(|_| self.key_error("lock poisoned"))?;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let bytes = match std::fs::read(&self.key_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => self.create_key()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.key_error(
                    "does not exist, so encrypted credentials cannot be read (restore the \
                     data directory's config.key or enter the credentials in clear)",
                ))
            }
            Err(e) => return Err(self.key_error(e.to_string())),
        };
        if bytes.len() != KEY_LEN {
            return Err(self.key_error(format!("must hold {KEY_LEN} bytes, has {}", bytes.len())));
        }
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes));
        *slot = Some(cipher.clone());
        Ok(cipher)
    }

    fn create_key(&self) -> Result<Vec<u8>, CryptoError> {
        let key = Aes256Gcm::generate_key(OsRng).to_vec();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(&self.key_path) {
            Ok(mut f) => {
                f.write_all(&key)
                    .and_then(|_| f.sync_all())
                    .map_err(|e| self.key_error(e.to_string()))?;
                if let Some(dir) = self.key_path.parent() {
                    super::file::sync_dir(dir);
                }
                tracing::info!(path = %self.key_path.display(), "created the credential key");
                Ok(key)
            }
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::read(&self.key_path).map_err(|e| self.key_error(e.to_string()))
            }
            Err(e) => Err(self.key_error(e.to_string())),
        }
    }

    /// Encrypts `clear` for member `field`.
    pub fn seal(&self, field: &'static str, clear: &str) -> Result<String, CryptoError> {
        let mut cache = self
            .sealed
            .lock()
            .map_err(|_| self.key_error("lock poisoned"))?;
        if let Some(s) = cache.get(&(field, clear.to_string())) {
            return Ok(s.clone());
        }
        let cipher = self.cipher(true)?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: clear.as_bytes(),
                    aad: field.as_bytes(),
                },
            )
            .map_err(|_| self.key_error("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        let sealed = base64::engine::general_purpose::STANDARD.encode(out);
        cache.insert((field, clear.to_string()), sealed.clone());
        Ok(sealed)
    }

    /// Decrypts a value sealed for member `field`.
    pub fn open(&self, field: &'static str, sealed: &str) -> Result<String, CryptoError> {
        let fail = |reason| CryptoError::Open {
            field,
            key: self.key_path.clone(),
            reason,
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed.trim())
            .map_err(|_| fail("it is not base64"))?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(fail("it is too short"));
        }
        let cipher = self.cipher(false)?;
        let (nonce, ct) = bytes.split_at(NONCE_LEN);
        let clear = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: field.as_bytes(),
                },
            )
            .map_err(|_| fail("it was sealed with another key or altered"))?;
        let clear = String::from_utf8(clear).map_err(|_| fail("it is not UTF-8 text"))?;
        if let Ok(mut cache) = self.sealed.lock() {
            cache.insert((field, clear.clone()), sealed.trim().to_string());
        }
        Ok(clear)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "iiot-crypto-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn seals_opens_and_refuses_foreign_values() {
        let d = dir("roundtrip");
        let c = CredentialCipher::new(d.join("config.key"));
        let s = c.seal("EncryptedAuthPassword", "pa55word").unwrap();
        assert!(!s.contains("pa55word"));
        assert_eq!(c.seal("EncryptedAuthPassword", "pa55word").unwrap(), s);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.join("config.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let fresh = CredentialCipher::new(d.join("config.key"));
        assert_eq!(fresh.open("EncryptedAuthPassword", &s).unwrap(), "pa55word");
        // Bound to its member.
        assert!(fresh.open("EncryptedAuthUsername", &s).is_err());
        // Another key.
        let other = CredentialCipher::new(dir("other").join("config.key"));
        other.seal("EncryptedAuthPassword", "x").unwrap();
        let err = other.open("EncryptedAuthPassword", &s).unwrap_err();
        assert!(err.to_string().contains("another key"), "{err}");
        assert!(!err.to_string().contains("pa55word"));
        // No key at all.
        let none = CredentialCipher::new(dir("none").join("config.key"));
        assert!(matches!(
            none.open("EncryptedAuthPassword", &s),
            Err(CryptoError::Key { .. })
        ));
    }
}
