//! TLS to the MQTT broker from PEM files, set up in one place for every MQTT client of iiot
//! (the module's telemetry sink and RPC responder, the twin API's client), so that all of them
//! take the same `--mqtt-ca`, `--mqtt-cert` and `--mqtt-key` and verify the broker alike.
//!
//! The files are read and parsed here, when a service starts, so that a wrong path or a file
//! without a certificate stops start-up with an error that names the flag; handed to rumqttc
//! as bytes they would only fail each connection attempt, over and over, in the log. The
//! broker's certificate is verified against the CA file (or the system bundle) and its name
//! against the host of the broker URL; with a client certificate the connection is mutual TLS.
//!
//! rustls comes from rumqttc's default `use-rustls` feature with its aws-lc-rs provider, the
//! one TLS stack already in the build; the provider is named explicitly so that a second one
//! appearing in the build can never make the choice ambiguous at run time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rumqttc::tokio_rustls::rustls::{
    self,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    ClientConfig, RootCertStore,
};
use rumqttc::{TlsConfiguration, Transport};
use tracing::warn;

/// Where the system CA bundle lives on the distributions we run on (Debian/Ubuntu/Alpine,
/// then Red Hat/Fedora); used when `mqtts://` is given without `--mqtt-ca`.
const SYSTEM_BUNDLES: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// The PEM files of TLS to the broker, as the command line names them. Paths are not
/// secrets; the key file's content never leaves [`TlsFiles::client_config`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificates that sign the broker's certificate (`--mqtt-ca`); the system bundle
    /// when absent.
    pub ca: Option<PathBuf>,
    /// Client certificate chain (`--mqtt-cert`) and its private key (`--mqtt-key`), for
    /// brokers that require mutual TLS; both or neither.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Why TLS to the broker cannot be set up; each names the flag to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {flag} {}: {error}", path.display())]
    Read {
        flag: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{flag} {} is not valid PEM: {detail}", path.display())]
    Pem {
        flag: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("{flag} {} holds no usable certificate", path.display())]
    NoCertificate { flag: &'static str, path: PathBuf },
    #[error("--mqtt-key {} holds no unencrypted PEM private key", path.display())]
    NoKey { path: PathBuf },
    #[error("--mqtt-cert and --mqtt-key must be given together")]
    HalfIdentity,
    #[error("mqtts:// without --mqtt-ca needs the system CA bundle, and none was found")]
    NoSystemBundle,
    #[error("the client certificate and key cannot be used together: {0}")]
    Identity(rustls::Error),
    #[error("TLS setup: {0}")]
    Setup(rustls::Error),
}

impl TlsFiles {
    /// No file given.
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none()
    }

    /// Warns that the files are ignored when the broker URL is not `mqtts://` (`tls`); called
    /// once at start, not on every reconnect.
    pub fn warn_if_unused(&self, tls: bool) {
        if !tls && !self.is_empty() {
            warn!("--mqtt-ca/--mqtt-cert/--mqtt-key given but the MQTT URL is not mqtts://; they are ignored");
        }
    }

    /// The transport of a broker URL: TLS with these files for `mqtts://` (`tls`), plain TCP
    /// otherwise.
    pub fn transport(&self, tls: bool) -> Result<Transport, TlsError> {
        if !tls {
            return Ok(Transport::Tcp);
        }
        let config = self.client_config()?;
        Ok(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(config),
        )))
    }

    /// Reads the files into a rustls client configuration: the CA certificates as the only
    /// roots, and the client identity when given.
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let roots = self.roots()?;
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                Some((certificates(cert, "--mqtt-cert")?, private_key(key)?))
            }
            (None, None) => None,
            _ => return Err(TlsError::HalfIdentity),
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?
            .with_root_certificates(roots);
        match identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(TlsError::Identity),
            None => Ok(builder.with_no_client_auth()),
        }
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let (path, flag) = match &self.ca {
            Some(p) => (p.clone(), "--mqtt-ca"),
            None => (
                SYSTEM_BUNDLES
                    .into_iter()
                    .map(PathBuf::from)
                    .find(|p| p.exists())
                    .ok_or(TlsError::NoSystemBundle)?,
                "the system CA bundle",
            ),
        };
        let mut roots = RootCertStore::empty();
        let (added, _unusable) = roots.add_parsable_certificates(certificates(&path, flag)?);
        if added == 0 {
            return Err(TlsError::NoCertificate { flag, path });
        }
        Ok(roots)
    }
}

fn read(path: &Path, flag: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        flag,
        path: path.to_path_buf(),
        error,
    })
}

/// Every certificate in a PEM file; none is an error.
fn certificates(path: &Path, flag: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, flag)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            flag,
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            flag,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file (PKCS#8, SEC1 or PKCS#1). The parse error is not
/// shown: it could quote the key.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path, "--mqtt-key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::NoKey {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA and a client certificate signed by it, as PEM files in a fresh directory.
    fn pki(name: &str) -> (PathBuf, TlsFiles) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = std::env::temp_dir().join(format!("iiot-mqtt-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["client".to_string()])
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();
        let files = TlsFiles {
            ca: Some(dir.join("ca.pem")),
            cert: Some(dir.join("client.pem")),
            key: Some(dir.join("client.key")),
        };
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.join("client.pem"), client.pem()).unwrap();
        std::fs::write(dir.join("client.key"), client_key.serialize_pem()).unwrap();
        (dir, files)
    }

    #[test]
    fn reads_a_ca_and_a_client_identity() {
        let (dir, files) = pki("ok");
        let config = files.client_config().unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
        let server_only = TlsFiles {
            cert: None,
            key: None,
            ..files.clone()
        };
        assert!(!server_only
            .client_config()
            .unwrap()
            .client_auth_cert_resolver
            .has_certs());
        assert!(matches!(files.transport(true), Ok(Transport::Tls(_))));
        assert!(matches!(files.transport(false), Ok(Transport::Tcp)));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn errors_name_the_flag_and_never_quote_the_key() {
        let (dir, files) = pki("bad");
        let missing = TlsFiles {
            ca: Some(dir.join("nonexistent.pem")),
            ..files.clone()
        };
        let e = missing.client_config().unwrap_err().to_string();
        assert!(
            e.contains("--mqtt-ca") && e.contains("nonexistent.pem"),
            "{e}"
        );

        let half = TlsFiles {
            key: None,
            ..files.clone()
        };
        assert!(matches!(half.client_config(), Err(TlsError::HalfIdentity)));

        // A key file given as the CA, and a certificate given as the key.
        let swapped = TlsFiles {
            ca: files.key.clone(),
            ..files.clone()
        };
        let e = swapped.client_config().unwrap_err().to_string();
        assert!(
            e.contains("--mqtt-ca") && e.contains("no usable certificate"),
            "{e}"
        );
        let no_key = TlsFiles {
            key: files.cert.clone(),
            ..files.clone()
        };
        let e = no_key.client_config().unwrap_err().to_string();
        assert!(e.contains("--mqtt-key"), "{e}");
        let key_pem = std::fs::read_to_string(files.key.as_ref().unwrap()).unwrap();
        let body = key_pem.lines().nth(1).unwrap();
        std::fs::write(
            dir.join("broken.key"),
            key_pem.replace(body, "!!notbase64!!"),
        )
        .unwrap();
        let broken = TlsFiles {
            key: Some(dir.join("broken.key")),
            ..files.clone()
        };
        let e = broken.client_config().unwrap_err().to_string();
        assert!(e.contains("--mqtt-key") && !e.contains(body), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
