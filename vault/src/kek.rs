//! The key-encryption key (KEK): seals every private key the vault keeps (CA keys, generated
//! key pairs waiting to be fetched) with AES-256-GCM before it reaches the database.
//!
//! A sealed blob is `"IVK1" || nonce (12) || ciphertext || tag (16)`; the associated data names
//! what the blob is (e.g. `ca:<serial>`), so a blob copied onto another row does not open. The KEK
//! itself comes from the environment or a file created with mode 0600; it is never written to
//! the database, so a copy of the database alone yields no key.

use std::path::Path;

use base64::Engine;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};

use crate::error::{Result, VaultError};

const MAGIC: &[u8; 4] = b"IVK1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A 256-bit key-encryption key.
#[derive(Clone)]
pub struct Kek([u8; 32]);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(..)")
    }
}

impl Kek {
    /// Parses 64 hex digits or base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let bytes = hex::decode(text)
            .ok()
            .filter(|b| b.len() == 32)
            .or_else(|| {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .ok()
                    .filter(|b| b.len() == 32)
            })
            .ok_or_else(|| {
                VaultError::Config("the KEK must be 32 bytes as 64 hex digits or base64".into())
            })?;
        let mut k = [0u8; 32];
        k.copy_from_slice(&bytes);
        Ok(Kek(k))
    }

    pub fn generate() -> Result<Self> {
        let mut k = [0u8; 32];
        openssl::rand::rand_bytes(&mut k).map_err(crypto)?;
        Ok(Kek(k))
    }

    /// Reads the KEK file, creating it (mode 0600) with a fresh random key when it is missing.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = std::fs::metadata(path)?.permissions().mode();
                    if mode & 0o077 != 0 {
                        tracing::warn!(path = %path.display(), "KEK file is readable by other users: chmod 600 it");
                    }
                }
                Kek::parse(&text)
                    .map_err(|e| VaultError::Config(format!("{}: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let kek = Kek::generate()?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                use std::io::Write;
                let mut f = opts.open(path)?;
                f.write_all(hex::encode(kek.0).as_bytes())?;
                f.sync_all()?;
                tracing::info!(path = %path.display(), "created a new key-encryption key; back it up apart from the database");
                Ok(kek)
            }
            Err(e) => Err(VaultError::Config(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Encrypts `plain`, binding it to `context`.
    pub fn seal(&self, context: &str, plain: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        openssl::rand::rand_bytes(&mut nonce).map_err(crypto)?;
        let mut tag = [0u8; TAG_LEN];
        let ct = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.0,
            Some(&nonce),
            context.as_bytes(),
            plain,
            &mut tag,
        )
        .map_err(crypto)?;
        let mut out = Vec::with_capacity(4 + NONCE_LEN + ct.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts a blob made by [`Kek::seal`] with the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < 4 + NONCE_LEN + TAG_LEN || &sealed[..4] != MAGIC {
            return Err(VaultError::Crypto(format!("{context}: not a sealed key")));
        }
        let nonce = &sealed[4..4 + NONCE_LEN];
        let (ct, tag) = sealed[4 + NONCE_LEN..].split_at(sealed.len() - 4 - NONCE_LEN - TAG_LEN);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.0,
            Some(nonce),
            context.as_bytes(),
            ct,
            tag,
        )
        .map_err(|_| {
            VaultError::Crypto(format!(
                "{context}: cannot decrypt (wrong key-encryption key?)"
            ))
        })
    }
}

pub(crate) fn crypto(e: impl std::fmt::Display) -> VaultError {
    VaultError::Crypto(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_blobs_open_only_with_the_same_key_and_context() {
        let kek = Kek::generate().unwrap();
        let blob = kek.seal("ca:01", b"secret key bytes").unwrap();
        assert!(!blob.windows(6).any(|w| w == b"secret"));
        assert_eq!(kek.open("ca:01", &blob).unwrap(), b"secret key bytes");
        assert!(kek.open("ca:02", &blob).is_err());
        assert!(Kek::generate().unwrap().open("ca:01", &blob).is_err());
        let mut bad = blob.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(kek.open("ca:01", &bad).is_err());
    }

    #[test]
    fn kek_parses_hex_and_base64_and_refuses_short_keys() {
        assert!(Kek::parse(&"ab".repeat(32)).is_ok());
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(Kek::parse(&b64).is_ok());
        assert!(Kek::parse("abcd").is_err());
    }

    #[test]
    fn debug_of_a_kek_shows_no_key_bytes() {
        let hex_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let kek = Kek::parse(hex_key).unwrap();
        for shown in [format!("{kek:?}"), format!("{kek:#?}")] {
            assert!(
                !shown.contains("0011") && !shown.contains("[0, 17"),
                "{shown}"
            );
            assert!(!shown.contains(&format!("{:?}", kek.0)), "{shown}");
        }
    }
}
