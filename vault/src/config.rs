//! The vault's configuration, with every default in one place.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use iiot_auth::ApiKeys;

use crate::ca::CertType;

/// The certificate groups created at first start, with their GDS group type.
pub const DEFAULT_GROUPS: [(&str, &str); 3] = [
    ("DefaultApplicationGroup", "ApplicationInstanceCertificate"),
    ("DefaultHttpsGroup", "HttpsCertificate"),
    ("DefaultUserTokenGroup", "UserCredentialCertificate"),
];

/// Default HTTP port of the vault (DESIGN.md).
pub const DEFAULT_PORT: u16 = 8081;

/// Where the key-encryption key comes from.
#[derive(Debug, Clone)]
pub enum KekSource {
    /// A file holding 64 hex digits, created (mode 0600) when missing.
    File(PathBuf),
    /// The key itself (hex or base64), e.g. from `IIOT_VAULT_KEK`.
    Value(String),
}

#[derive(Debug, Clone)]
pub struct VaultConfig {
    pub bind: SocketAddr,
    /// Base URL clients reach the vault at, written into CRL distribution points; defaults to
    /// `http://<bound address>`.
    pub public_url: Option<String>,
    pub data_dir: PathBuf,
    /// `postgres://...` or `sqlite:...`; the SQLite file `vault.db` in `data_dir` when `None`.
    pub database_url: Option<String>,
    /// `None`: the file `vault.kek` in `data_dir`.
    pub kek: Option<KekSource>,
    pub api_keys: ApiKeys,
    /// Certificate types each new group gets a CA for.
    pub cert_types: Vec<CertType>,
    pub rsa_key_size: i64,
    pub ca_lifetime_days: i64,
    pub issued_lifetime_days: i64,
    /// Groups whose auto-approve policy is switched on at start (off for all by default;
    /// switched off again only through the admin API).
    pub auto_approve_groups: Vec<String>,
    pub crl_validity_secs: i64,
    /// How often CRLs are checked and re-signed before their nextUpdate.
    pub crl_refresh_interval: Duration,
    /// A certificate needs renewal in this last part of its life.
    pub renewal_window_percent: i64,
    /// Also accept OIDC access tokens checked against this JWKS.
    pub jwt: Option<std::sync::Arc<iiot_auth::JwtValidator>>,
}

impl VaultConfig {
    pub fn new(api_keys: ApiKeys) -> Self {
        VaultConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            public_url: None,
            data_dir: PathBuf::from("iiot-data/vault"),
            database_url: None,
            kek: None,
            api_keys,
            cert_types: CertType::ALL.to_vec(),
            rsa_key_size: 2048,
            ca_lifetime_days: 3650,
            issued_lifetime_days: 730,
            auto_approve_groups: Vec::new(),
            crl_validity_secs: 7 * 86_400,
            crl_refresh_interval: Duration::from_secs(3600),
            renewal_window_percent: 20,
            jwt: None,
        }
    }
}
