//! The certificate authority: CA creation per group and certificate type, issuance with the
//! profile the vault decides (OPC UA Part 6), and CRLs.
//!
//! Nothing from a CSR other than its public key reaches an issued certificate: subject, SAN URI
//! and usages come from the registration and the group.

mod signer;

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType, SerialNumber,
    SubjectPublicKeyInfo,
};
use time::{Duration, OffsetDateTime};

use signer::RcgenKey;
pub use signer::{Signer, SoftwareSigner};

use crate::error::{Result, VaultError};
use crate::kek::Kek;
use crate::model::{rfc3339, X509Certificate};
use crate::store::{CaRow, GroupRow};

/// The OPC UA certificate types the vault issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertType {
    RsaSha256,
    EccNistP256,
    EccNistP384,
}

impl CertType {
    pub const ALL: [CertType; 3] = [
        CertType::RsaSha256,
        CertType::EccNistP256,
        CertType::EccNistP384,
    ];

    /// The OPC UA type name, as stored and returned.
    pub fn id(self) -> &'static str {
        match self {
            CertType::RsaSha256 => "RsaSha256ApplicationCertificateType",
            CertType::EccNistP256 => "EccNistP256ApplicationCertificateType",
            CertType::EccNistP384 => "EccNistP384ApplicationCertificateType",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            CertType::RsaSha256 => "RsaSha256",
            CertType::EccNistP256 => "EccNistP256",
            CertType::EccNistP384 => "EccNistP384",
        }
    }

    /// Accepts the full OPC UA name or its short form, case-insensitively.
    pub fn parse(s: &str) -> Option<CertType> {
        let s = s.trim();
        CertType::ALL.into_iter().find(|t| {
            s.eq_ignore_ascii_case(t.id())
                || s.eq_ignore_ascii_case(t.short())
                || (*t == CertType::RsaSha256
                    && s.eq_ignore_ascii_case("ApplicationCertificateType"))
        })
    }

    fn algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            CertType::RsaSha256 => &rcgen::PKCS_RSA_SHA256,
            CertType::EccNistP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            CertType::EccNistP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }

    pub fn is_rsa(self) -> bool {
        self == CertType::RsaSha256
    }

    /// A new key pair of this type (`rsa_bits` for RSA: 2048, 3072 or 4096).
    pub fn generate_key(self, rsa_bits: i64) -> Result<KeyPair> {
        let key = match self {
            CertType::RsaSha256 => {
                let size = match rsa_bits {
                    2048 => rcgen::RsaKeySize::_2048,
                    3072 => rcgen::RsaKeySize::_3072,
                    4096 => rcgen::RsaKeySize::_4096,
                    other => {
                        return Err(VaultError::Config(format!(
                            "RSA key size {other}: use 2048, 3072 or 4096"
                        )))
                    }
                };
                KeyPair::generate_rsa_for(self.algorithm(), size)
            }
            _ => KeyPair::generate_for(self.algorithm()),
        };
        key.map_err(|e| VaultError::Crypto(format!("key generation: {e}")))
    }
}

/// A CA ready to sign: its stored row, its signer and its certificate parsed once as the
/// issuer every certificate and CRL it signs names.
#[derive(Clone)]
pub struct LoadedCa {
    pub row: CaRow,
    issuer: Arc<Issuer<'static, RcgenKey>>,
}

impl LoadedCa {
    pub fn new(row: CaRow, signer: Arc<dyn Signer>) -> Result<Self> {
        let issuer = Issuer::from_ca_cert_der(&row.cert_der.as_slice().into(), RcgenKey(signer))
            .map_err(|e| VaultError::Crypto(format!("CA certificate {}: {e}", row.serial)))?;
        Ok(LoadedCa {
            row,
            issuer: Arc::new(issuer),
        })
    }
}

/// What a CA seals its key under; binds the sealed blob to this CA.
pub fn key_context(serial: &str) -> String {
    format!("ca:{serial}")
}

/// A random positive serial of 16 bytes (RFC 5280 allows up to 20).
pub fn random_serial() -> Result<(SerialNumber, String)> {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes).map_err(|e| VaultError::Crypto(e.to_string()))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok((SerialNumber::from_slice(&bytes), hex::encode_upper(bytes)))
}

fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// Creates a new self-signed CA for `group` and `cert_type`, its key sealed with the KEK and
/// its first (empty) CRL signed.
pub fn create_ca(
    group: &GroupRow,
    cert_type: CertType,
    kek: &Kek,
    crl_validity_secs: i64,
) -> Result<LoadedCa> {
    let key = cert_type.generate_key(group.rsa_key_size)?;
    let (serial, serial_hex) = random_serial()?;
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("{} {}", group.subject_name, cert_type.short()),
    );
    dn.push(DnType::OrganizationName, "iiot vault");
    params.distinguished_name = dn;
    params.serial_number = Some(serial);
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(group.ca_lifetime_days);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params
        .self_signed(&key)
        .map_err(|e| VaultError::Crypto(format!("CA certificate: {e}")))?;
    let signer = SoftwareSigner::new(&key)?;
    let key_sealed = signer.seal(kek, &key_context(&serial_hex))?;
    let mut ca = LoadedCa::new(
        CaRow {
            serial: serial_hex,
            group_id: group.id.clone(),
            cert_type: cert_type.id().to_string(),
            cert_der: cert.der().to_vec(),
            key_sealed,
            not_before: ts(params.not_before),
            not_after: ts(params.not_after),
            active: true,
            crl_number: 0,
            crl_der: None,
            crl_next_update: 0,
        },
        Arc::new(signer),
    )?;
    let (crl, next) = sign_crl(&ca, 1, &[], crl_validity_secs)?;
    ca.row.crl_number = 1;
    ca.row.crl_der = Some(crl);
    ca.row.crl_next_update = next;
    Ok(ca)
}

/// The names and key an issued certificate gets.
pub struct IssueSpec<'a> {
    pub subject: DistinguishedName,
    pub application_uri: Option<&'a str>,
    pub dns_names: &'a [String],
    pub ip_addresses: &'a [IpAddr],
    /// DER SubjectPublicKeyInfo of the subject's key.
    pub public_key_spki: &'a [u8],
    pub lifetime_days: i64,
    pub crl_url: String,
    pub group_type: &'a str,
    pub key_is_rsa: bool,
}

pub struct IssuedCert {
    pub der: Vec<u8>,
    pub serial: String,
    pub not_after: i64,
}

/// Signs an end-entity certificate with the OPC UA Part 6 application certificate profile.
pub fn issue(ca: &LoadedCa, spec: &IssueSpec<'_>) -> Result<IssuedCert> {
    let public_key = SubjectPublicKeyInfo::from_der(spec.public_key_spki)
        .map_err(|e| VaultError::PolicyCheckFailed(format!("unsupported public key: {e}")))?;
    let (serial, serial_hex) = random_serial()?;
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = spec.subject.clone();
    params.serial_number = Some(serial);
    params.not_before = now - Duration::minutes(5);
    let mut not_after = now + Duration::days(spec.lifetime_days);
    let ca_end = OffsetDateTime::from_unix_timestamp(ca.row.not_after)
        .map_err(|e| VaultError::Crypto(e.to_string()))?;
    if not_after > ca_end {
        not_after = ca_end;
    }
    params.not_after = not_after;
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = if spec.key_is_rsa {
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::DataEncipherment,
        ]
    } else {
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
            KeyUsagePurpose::KeyAgreement,
        ]
    };
    params.extended_key_usages = match spec.group_type {
        "UserCredentialCertificate" => vec![ExtendedKeyUsagePurpose::ClientAuth],
        _ => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    let mut sans = Vec::new();
    if let Some(uri) = spec.application_uri {
        sans.push(SanType::URI(uri.try_into().map_err(|_| {
            VaultError::InvalidArgument("application URI is not ASCII".into())
        })?));
    }
    for d in spec.dns_names {
        sans.push(SanType::DnsName(d.as_str().try_into().map_err(|_| {
            VaultError::InvalidArgument(format!("domain name '{d}' is not ASCII"))
        })?));
    }
    for ip in spec.ip_addresses {
        sans.push(SanType::IpAddress(*ip));
    }
    params.subject_alt_names = sans;
    params.crl_distribution_points = vec![CrlDistributionPoint {
        uris: vec![spec.crl_url.clone()],
    }];
    let cert = params
        .signed_by(&public_key, ca.issuer.as_ref())
        .map_err(|e| VaultError::Crypto(format!("signing: {e}")))?;
    Ok(IssuedCert {
        der: cert.der().to_vec(),
        serial: serial_hex,
        not_after: ts(not_after),
    })
}

/// Signs CRL number `number` listing `revoked` (serial hex, revocation time); answers the DER
/// and its nextUpdate.
pub fn sign_crl(
    ca: &LoadedCa,
    number: i64,
    revoked: &[(String, i64)],
    validity_secs: i64,
) -> Result<(Vec<u8>, i64)> {
    let now = OffsetDateTime::now_utc();
    let next = now + Duration::seconds(validity_secs);
    let ski = ca_ski(&ca.row.cert_der)?;
    let mut revoked_certs = Vec::with_capacity(revoked.len());
    for (serial, at) in revoked {
        let bytes = hex::decode(serial)
            .map_err(|_| VaultError::Crypto(format!("stored serial '{serial}' is not hex")))?;
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&bytes),
            revocation_time: OffsetDateTime::from_unix_timestamp(*at).unwrap_or(now),
            reason_code: Some(RevocationReason::Unspecified),
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update: now - Duration::minutes(5),
        next_update: next,
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::PreSpecified(ski),
    };
    let crl = params
        .signed_by(ca.issuer.as_ref())
        .map_err(|e| VaultError::Crypto(format!("CRL: {e}")))?;
    Ok((crl.der().to_vec(), ts(next)))
}

fn ca_ski(der: &[u8]) -> Result<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| VaultError::Crypto(format!("stored CA certificate: {e}")))?;
    for ext in cert.extensions() {
        if let x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) =
            ext.parsed_extension()
        {
            return Ok(id.0.to_vec());
        }
    }
    Err(VaultError::Crypto(
        "CA certificate has no subject key identifier".into(),
    ))
}

/// The API view of a certificate.
pub fn describe(der: &[u8]) -> Result<X509Certificate> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| VaultError::Crypto(format!("stored certificate: {e}")))?;
    Ok(X509Certificate {
        certificate: base64::engine::general_purpose::STANDARD.encode(der),
        not_before_utc: rfc3339(cert.validity().not_before.timestamp()),
        not_after_utc: rfc3339(cert.validity().not_after.timestamp()),
        serial_number: hex::encode_upper(cert.raw_serial()),
        subject: cert.subject().to_string(),
        thumbprint: hex::encode_upper(openssl::sha::sha1(der)),
    })
}
