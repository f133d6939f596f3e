//! The vault's configuration, with every default in one place.

use std::fmt;
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
#[derive(Clone)]
pub enum KekSource {
    /// A file holding 64 hex digits, created (mode 0600) when missing.
    File(PathBuf),
    /// The key itself (hex or base64), e.g. from `IIOT_KEK`.
    Value(String),
}

/// Names where the key comes from, never the key: a configuration printed into a log or a
/// panic message must not hand out what unseals every CA key.
impl fmt::Debug for KekSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KekSource::File(path) => f.debug_tuple("File").field(path).finish(),
            KekSource::Value(_) => f.write_str("Value(***)"),
        }
    }
}

#[derive(Clone)]
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
    /// The OPC UA face (GDS); off when `None`.
    pub opcua: Option<crate::gds::GdsConfig>,
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
            opcua: None,
        }
    }
}

/// Every field, with the database password replaced by `***` and the KEK by its source; the
/// API keys show their names only (see [`ApiKeys`]).
impl fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultConfig")
            .field("bind", &self.bind)
            .field("public_url", &self.public_url)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_database_url),
            )
            .field("kek", &self.kek)
            .field("api_keys", &self.api_keys)
            .field("cert_types", &self.cert_types)
            .field("rsa_key_size", &self.rsa_key_size)
            .field("ca_lifetime_days", &self.ca_lifetime_days)
            .field("issued_lifetime_days", &self.issued_lifetime_days)
            .field("auto_approve_groups", &self.auto_approve_groups)
            .field("crl_validity_secs", &self.crl_validity_secs)
            .field("crl_refresh_interval", &self.crl_refresh_interval)
            .field("renewal_window_percent", &self.renewal_window_percent)
            .field("jwt", &self.jwt)
            .field("opcua", &self.opcua)
            .finish()
    }
}

/// `url` with its password replaced by `***`, wherever a PostgreSQL URL can carry one: after
/// the user name, or as a `password` (or `sslpassword`) query parameter. Scheme, user, host,
/// port, database and the other parameters stay, so a log still tells which database it is.
///
/// The user info ends at the last `@`, so a password with a raw `@` or `/` in it is hidden
/// whole; an `@` further on (in a parameter) only hides more than needed, never less.
pub(crate) fn redact_database_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let (scheme, rest) = url.split_at(scheme_end + 3);
    let (userinfo, after) = match rest.rfind('@') {
        Some(at) if rest[..at].contains(':') || !rest[..at].contains(['/', '?']) => {
            (Some(&rest[..at]), &rest[at..])
        }
        _ => (None, rest),
    };
    let mut out = scheme.to_string();
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            Some((user, _password)) => {
                out.push_str(user);
                out.push_str(":***");
            }
            None => out.push_str(userinfo),
        }
    }
    match after.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.to_ascii_lowercase().ends_with("password") => {
                        format!("{k}=***")
                    }
                    _ => p.to_string(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(after),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DB_PASSWORD: &str = "Db-S3cret-pw";
    const KEK_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn config_with_secrets() -> VaultConfig {
        let mut c = VaultConfig::new(ApiKeys::single(
            "ops",
            "api-key-0123456789",
            [iiot_auth::Role::Admin],
        ));
        c.database_url = Some(format!(
            "postgres://vault:{DB_PASSWORD}@db.plant.example:5432/vaultdb?sslmode=require"
        ));
        c.kek = Some(KekSource::Value(KEK_HEX.into()));
        c
    }

    #[test]
    fn debug_of_the_config_shows_no_secret() {
        let shown = format!("{:?}", config_with_secrets());
        for secret in [DB_PASSWORD, KEK_HEX, "api-key-0123456789"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // What an operator needs to see stays: where the database is, and where the KEK comes from.
        for kept in [
            "postgres://",
            "vault:***@db.plant.example:5432/vaultdb",
            "Value",
        ] {
            assert!(shown.contains(kept), "{kept} missing from {shown}");
        }
        let alternate = format!("{:#?}", config_with_secrets());
        assert!(!alternate.contains(DB_PASSWORD) && !alternate.contains(KEK_HEX));
    }

    #[test]
    fn debug_of_a_kek_source_names_the_kind_only() {
        let shown = format!("{:?}", KekSource::Value(KEK_HEX.into()));
        assert!(!shown.contains(KEK_HEX), "{shown}");
        assert!(!shown.contains("0011"), "{shown}");
        let base64 = "ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8=";
        assert!(!format!("{:?}", KekSource::Value(base64.into())).contains(base64));
        // A file path is where the key is, not the key: it stays visible.
        let file = format!("{:?}", KekSource::File("/etc/iiot/vault.kek".into()));
        assert!(file.contains("/etc/iiot/vault.kek"), "{file}");
    }

    #[test]
    fn database_passwords_are_redacted_in_every_place_a_url_can_carry_them() {
        for (url, shown) in [
            (
                "postgres://vault:pw@db:5432/v",
                "postgres://vault:***@db:5432/v",
            ),
            (
                "postgresql://vault:p%40ss@db/v?sslmode=require",
                "postgresql://vault:***@db/v?sslmode=require",
            ),
            (
                "postgres://vault@db/v?password=pw&sslmode=require",
                "postgres://vault@db/v?password=***&sslmode=require",
            ),
            ("postgres://vault@db/v", "postgres://vault@db/v"),
            (
                "sqlite:///var/lib/iiot/vault.db",
                "sqlite:///var/lib/iiot/vault.db",
            ),
        ] {
            assert_eq!(redact_database_url(url), shown, "{url}");
        }
        // A password with a raw '/' or '@' (not percent-encoded) is still hidden.
        for url in ["postgres://vault:pa/ss@db/v", "postgres://vault:p@ss@db/v"] {
            let shown = redact_database_url(url);
            assert!(
                !shown.contains("pa/ss") && !shown.contains("p@ss"),
                "{shown}"
            );
        }
    }
}
