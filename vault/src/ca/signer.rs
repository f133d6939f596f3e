//! Who holds a CA's private key. Everything that signs (certificates, CRLs) goes through
//! [`Signer`], so a PKCS#11/HSM backend can replace the software key without touching issuance.

use std::sync::{Arc, Mutex};

use openssl::bn::BigNumContext;
use openssl::ec::PointConversionForm;
use openssl::hash::MessageDigest;
use openssl::md::Md;
use openssl::pkey::{Id, PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm, SigningKey};
use zeroize::Zeroizing;

use crate::error::{Result, VaultError};
use crate::kek::Kek;

pub trait Signer: Send + Sync {
    /// The signature algorithm this key produces.
    fn algorithm(&self) -> &'static SignatureAlgorithm;
    /// The raw subjectPublicKey bits (what a SubjectPublicKeyInfo wraps).
    fn public_key(&self) -> &[u8];
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>>;
}

/// A key held in memory, loaded from its KEK-sealed PKCS#8 form. It signs through the
/// system's libcrypto, the same code `openssl speed` measures, so the vault's signing cost is
/// the one operators know from their own tools.
pub struct SoftwareSigner {
    key: PKey<Private>,
    algorithm: &'static SignatureAlgorithm,
    digest: MessageDigest,
    public_key: Vec<u8>,
    /// Signing contexts set up once and reused: setting one up costs about as much as an
    /// ECDSA signature, and a certificate needs only the signature.
    contexts: Mutex<Vec<PkeyCtx<Private>>>,
}

/// More idle contexts than threads that sign at once would only hold memory.
const MAX_IDLE_CONTEXTS: usize = 8;

fn crypto(context: &str) -> impl Fn(openssl::error::ErrorStack) -> VaultError + '_ {
    move |e| VaultError::Crypto(format!("{context}: {e}"))
}

impl SoftwareSigner {
    /// Takes over a key pair made by rcgen (how CAs are created).
    pub fn new(key: &KeyPair) -> Result<Self> {
        Self::from_pkcs8(key.serialized_der(), "new CA key")
    }

    fn from_pkcs8(der: &[u8], context: &str) -> Result<Self> {
        let unusable =
            |why: String| VaultError::Crypto(format!("{context}: not a usable key: {why}"));
        let key = PKey::private_key_from_pkcs8(der).map_err(|e| unusable(e.to_string()))?;
        let (algorithm, digest, public_key) = match key.id() {
            Id::RSA => {
                let rsa = key.rsa().map_err(crypto(context))?;
                let public = rsa.public_key_to_der_pkcs1().map_err(crypto(context))?;
                (&rcgen::PKCS_RSA_SHA256, MessageDigest::sha256(), public)
            }
            Id::EC => {
                let ec = key.ec_key().map_err(crypto(context))?;
                let (alg, digest) = match ec.group().curve_name() {
                    Some(openssl::nid::Nid::X9_62_PRIME256V1) => {
                        (&rcgen::PKCS_ECDSA_P256_SHA256, MessageDigest::sha256())
                    }
                    Some(openssl::nid::Nid::SECP384R1) => {
                        (&rcgen::PKCS_ECDSA_P384_SHA384, MessageDigest::sha384())
                    }
                    other => return Err(unusable(format!("EC curve {other:?}"))),
                };
                let mut ctx = BigNumContext::new().map_err(crypto(context))?;
                let public = ec
                    .public_key()
                    .to_bytes(ec.group(), PointConversionForm::UNCOMPRESSED, &mut ctx)
                    .map_err(crypto(context))?;
                (alg, digest, public)
            }
            other => return Err(unusable(format!("key type {other:?}"))),
        };
        Ok(SoftwareSigner {
            key,
            algorithm,
            digest,
            public_key,
            contexts: Mutex::new(Vec::new()),
        })
    }

    /// A signing context for this key: RSA with PKCS#1 v1.5 padding, ECDSA with its DER
    /// signature (what X.509 carries), both over a digest made by the caller.
    fn context(&self) -> Result<PkeyCtx<Private>> {
        let mut ctx = PkeyCtx::new(&self.key).map_err(crypto("CA signer"))?;
        ctx.sign_init().map_err(crypto("CA signer"))?;
        if self.key.id() == Id::RSA {
            ctx.set_rsa_padding(Padding::PKCS1)
                .map_err(crypto("CA signer"))?;
        }
        let md = Md::from_nid(self.digest.type_())
            .ok_or_else(|| VaultError::Crypto("CA signer: digest unknown to libcrypto".into()))?;
        ctx.set_signature_md(md).map_err(crypto("CA signer"))?;
        Ok(ctx)
    }

    /// Opens a sealed PKCS#8 key. `context` must be the one it was sealed with.
    pub fn unseal(kek: &Kek, context: &str, sealed: &[u8]) -> Result<Arc<dyn Signer>> {
        // The clear PKCS#8 is wiped once libcrypto holds the key.
        let der = Zeroizing::new(kek.open(context, sealed)?);
        Ok(Arc::new(Self::from_pkcs8(&der, context)?))
    }

    /// Seals this key's PKCS#8 form with the KEK.
    pub fn seal(&self, kek: &Kek, context: &str) -> Result<Vec<u8>> {
        let der = Zeroizing::new(self.key.private_key_to_pkcs8().map_err(crypto(context))?);
        kek.seal(context, &der)
    }
}

impl Signer for SoftwareSigner {
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }

    fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let digest = openssl::hash::hash(self.digest, message).map_err(crypto("CA signer"))?;
        let idle = self.contexts.lock().ok().and_then(|mut pool| pool.pop());
        let mut ctx = match idle {
            Some(ctx) => ctx,
            None => self.context()?,
        };
        let mut signature = Vec::new();
        ctx.sign_to_vec(&digest, &mut signature)
            .map_err(crypto("CA signer"))?;
        if let Ok(mut pool) = self.contexts.lock() {
            if pool.len() < MAX_IDLE_CONTEXTS {
                pool.push(ctx);
            }
        }
        Ok(signature)
    }
}

/// Adapts a shared [`Signer`] to rcgen's signing-key trait, which builds the DER; owning the
/// `Arc` lets a CA keep its parsed issuer for its whole life.
#[derive(Clone)]
pub(crate) struct RcgenKey(pub Arc<dyn Signer>);

impl PublicKeyData for RcgenKey {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.0.algorithm()
    }
}

impl SigningKey for RcgenKey {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg).map_err(|e| {
            tracing::error!(error = %e, "CA signer failed");
            rcgen::Error::RemoteKeyError
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::CertType;

    /// The libcrypto signer must describe the same public key and algorithm rcgen derives
    /// from the key, or issued certificates would name a key that did not sign them.
    #[test]
    fn the_openssl_signer_matches_the_rcgen_key_it_was_made_from() {
        for t in CertType::ALL {
            let key = t.generate_key(2048).expect("key");
            let signer = SoftwareSigner::new(&key).expect("signer");
            assert_eq!(signer.public_key(), key.public_key_raw(), "{t:?}");
            assert_eq!(signer.algorithm(), key.algorithm(), "{t:?}");
            let public = PKey::public_key_from_der(&key.subject_public_key_info()).expect("public");
            // Twice: the second signature comes from a reused context.
            for message in [b"to be signed".as_slice(), b"and this one too"] {
                let sig = signer.sign(message).expect("sign");
                let mut v = openssl::sign::Verifier::new(signer.digest, &public).expect("verifier");
                assert!(v.verify_oneshot(&sig, message).expect("verify"), "{t:?}");
            }
        }
    }
}
