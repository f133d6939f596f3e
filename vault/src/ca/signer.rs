//! Who holds a CA's private key. Everything that signs (certificates, CRLs) goes through
//! [`Signer`], so a PKCS#11/HSM backend can replace the software key without touching issuance.

use std::sync::Arc;

use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm, SigningKey};

use crate::error::{Result, VaultError};
use crate::kek::Kek;

pub trait Signer: Send + Sync {
    /// The signature algorithm this key produces.
    fn algorithm(&self) -> &'static SignatureAlgorithm;
    /// The raw subjectPublicKey bits (what a SubjectPublicKeyInfo wraps).
    fn public_key(&self) -> &[u8];
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>>;
}

/// A key held in memory, loaded from its KEK-sealed PKCS#8 form.
pub struct SoftwareSigner {
    key: KeyPair,
}

impl SoftwareSigner {
    pub fn new(key: KeyPair) -> Self {
        SoftwareSigner { key }
    }

    /// Opens a sealed PKCS#8 key. `context` must be the one it was sealed with.
    pub fn unseal(kek: &Kek, context: &str, sealed: &[u8]) -> Result<Arc<dyn Signer>> {
        let der = kek.open(context, sealed)?;
        let key = KeyPair::try_from(der.as_slice())
            .map_err(|e| VaultError::Crypto(format!("{context}: not a usable key: {e}")))?;
        Ok(Arc::new(SoftwareSigner { key }))
    }

    /// Seals this key's PKCS#8 form with the KEK.
    pub fn seal(&self, kek: &Kek, context: &str) -> Result<Vec<u8>> {
        kek.seal(context, self.key.serialized_der())
    }
}

impl Signer for SoftwareSigner {
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.key.algorithm()
    }

    fn public_key(&self) -> &[u8] {
        self.key.public_key_raw()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        SigningKey::sign(&self.key, message).map_err(|e| VaultError::Crypto(e.to_string()))
    }
}

/// Adapts any [`Signer`] to the signing-key trait of rcgen, which builds the DER.
pub(crate) struct RcgenKey<'a>(pub &'a dyn Signer);

impl PublicKeyData for RcgenKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.0.algorithm()
    }
}

impl SigningKey for RcgenKey<'_> {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg).map_err(|e| {
            tracing::error!(error = %e, "CA signer failed");
            rcgen::Error::RemoteKeyError
        })
    }
}
