//! The device endpoint's TLS: its server certificate (given, or issued at every start by a CA
//! the hub makes once), and client certificates requested but judged at CONNECT, where the
//! identity they must match is known.
//!
//! Devices must trust the hub before they send a key, so without `--hub-cert/--hub-key` the
//! hub makes a CA at first start, writes it to `<data-dir>/hub-ca.pem` for devices to trust,
//! and keeps its key sealed under the hub's key-encryption key (never in clear). The server
//! certificate (host name and bind address as SANs) is issued afresh at every start and its
//! key lives only in memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::{DigitallySignedStruct, DistinguishedName as TlsName, ServerConfig};
use tokio_rustls::rustls::{Error as TlsError, SignatureScheme};

use crate::hub::error::HubError;
use crate::hub::files;
use crate::hub::secrets::HubKek;

/// The CA devices trust, in the data directory.
pub const CA_FILE: &str = "hub-ca.pem";
/// Its key, sealed.
const CA_KEY_FILE: &str = "hub-ca.key.sealed";
const CA_KEY_CONTEXT: &str = "hub-ca-key";

/// Given server certificate chain and key (PEM), instead of the hub's own CA.
#[derive(Debug, Clone)]
pub struct ServerFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn setup(what: impl std::fmt::Display) -> HubError {
    HubError::Setup(what.to_string())
}

/// Loads or makes the CA; returns its certificate PEM and an issuer.
fn hub_ca(data_dir: &Path, kek: &HubKek) -> Result<(String, Issuer<'static, KeyPair>), HubError> {
    let cert_path = data_dir.join(CA_FILE);
    let key_path = data_dir.join(CA_KEY_FILE);
    if let (Ok(pem), Ok(sealed)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) {
        let key = KeyPair::from_pem(&kek.open(CA_KEY_CONTEXT, sealed.trim())?)
            .map_err(|e| setup(format!("{}: {e}", key_path.display())))?;
        let issuer = Issuer::from_ca_cert_pem(&pem, key)
            .map_err(|e| setup(format!("{}: {e}", cert_path.display())))?;
        return Ok((pem, issuer));
    }
    let key = KeyPair::generate().map_err(setup)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(setup)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "iiot hub device endpoint CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let cert = params.self_signed(&key).map_err(setup)?;
    let pem = cert.pem();
    files::write_new_private(
        &key_path,
        kek.seal(CA_KEY_CONTEXT, &key.serialize_pem())?.as_bytes(),
    )?;
    files::replace_private(&cert_path, pem.as_bytes())?;
    // The CA certificate is public: devices read it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&cert_path, std::fs::Permissions::from_mode(0o644));
    }
    tracing::info!(path = %cert_path.display(), "made the hub's device endpoint CA; devices trust this file");
    let issuer = Issuer::new(params, key);
    Ok((pem, issuer))
}

/// The server chain and key: the given files, or a certificate for `names` (host names and
/// IP addresses) from the hub's CA.
pub fn server_identity(
    given: Option<&ServerFiles>,
    data_dir: &Path,
    kek: &HubKek,
    names: &[String],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), HubError> {
    if let Some(f) = given {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&f.cert)
            .and_then(|i| i.collect::<Result<_, _>>())
            .map_err(|e| setup(format!("--hub-cert {}: {e}", f.cert.display())))?;
        if chain.is_empty() {
            return Err(setup(format!(
                "--hub-cert {}: no certificate",
                f.cert.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_file(&f.key)
            .map_err(|e| setup(format!("--hub-key {}: {e}", f.key.display())))?;
        return Ok((chain, key));
    }
    let (ca_pem, issuer) = hub_ca(data_dir, kek)?;
    let key = KeyPair::generate().map_err(setup)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(setup)?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_else(|| "localhost".into()),
    );
    params.distinguished_name = dn;
    for n in names {
        params
            .subject_alt_names
            .push(match n.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(n.clone().try_into().map_err(setup)?),
            });
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365);
    let cert = params.signed_by(&key, &issuer).map_err(setup)?;
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(setup)?;
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).map_err(setup)?;
    Ok((vec![cert.der().clone(), ca], key))
}

/// Asks every client for a certificate, accepts any that proves possession of its key, and
/// leaves the judgement (thumbprint or CA chain, CN = identity) to CONNECT, where the identity
/// is known. A client without one goes on to authenticate by SAS token.
#[derive(Debug)]
struct AskForCertificate {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AskForCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[TlsName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        tokio_rustls::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        tokio_rustls::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The process's crypto provider (aws-lc-rs, which rustls brings here).
pub fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider()))
}

/// TLS 1.2 and 1.3 (Microsoft's Python SDK offers only 1.2), client certificates asked for.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, HubError> {
    let provider = provider();
    let config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[
            &tokio_rustls::rustls::version::TLS12,
            &tokio_rustls::rustls::version::TLS13,
        ])
        .map_err(setup)?
        .with_client_cert_verifier(Arc::new(AskForCertificate { provider }))
        .with_single_cert(chain, key)
        .map_err(setup)?;
    Ok(Arc::new(config))
}
