//! The server's own certificate by push (Part 12 §7.10.4-§7.10.7): CreateSigningRequest makes
//! a CSR (with the current key or a new one), UpdateCertificate stages a certificate for one of
//! those keys (or with a key the caller sends), ApplyChanges stores it and makes the server
//! present it on every channel opened from then on.

use std::path::PathBuf;
use std::sync::Mutex;

use iiot_gds::pki::{self, AltNames, PkiError, OWN_CERT, OWN_KEY};
use opcua::{
    server::ServerInfo,
    types::{Identifier, NodeId, ObjectId, ObjectTypeId, StatusCode},
};
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509NameBuilder, X509};
use tracing::{info, warn};

/// Part 12 §7.10.4: a caller asking for a new key gives at least this much entropy.
const MIN_NONCE: usize = 32;
/// New keys, and the smallest key a pushed certificate may have.
const KEY_BITS: u32 = 2048;
/// Where a key made by CreateSigningRequest waits for its certificate. The certificate
/// manager may take long to answer (an approver signs the request), and a restart meanwhile
/// must not leave it a certificate for a key the server forgot.
pub(crate) const PENDING_KEY: &str = "private/push-pending-key.pem";

pub(crate) struct SigningRequestArgs {
    pub group: NodeId,
    pub certificate_type: NodeId,
    pub subject: Option<String>,
    pub regenerate_key: bool,
    pub nonce: Vec<u8>,
}

pub(crate) struct UpdateArgs {
    pub group: NodeId,
    pub certificate_type: NodeId,
    pub certificate: Vec<u8>,
    pub issuers: Vec<Vec<u8>>,
    pub key_format: Option<String>,
    pub key: Vec<u8>,
}

struct Staged {
    /// The session whose UpdateCertificate staged it: Part 12 §7.10.2 ties a transaction to
    /// its session, so another session's ApplyChanges does not install it.
    session: u32,
    certificate: Vec<u8>,
    key: PKey<Private>,
    issuers: Vec<Vec<u8>>,
}

#[derive(Default)]
struct State {
    /// The key of the last CreateSigningRequest that asked for a new one, once made or read
    /// back from [`PENDING_KEY`].
    new_key: Option<PKey<Private>>,
    /// What ApplyChanges will install; the latest UpdateCertificate of any session replaces
    /// it.
    staged: Option<Staged>,
}

/// The push state between CreateSigningRequest, UpdateCertificate and ApplyChanges. A staged
/// certificate is kept in memory (a restart loses it and the certificate manager sends it
/// again); a new key is kept on disk as well, owner-only.
pub(crate) struct Staging {
    pki_dir: PathBuf,
    state: Mutex<State>,
}

fn internal(e: PkiError) -> StatusCode {
    warn!(error = %e, "push: PKI failure");
    StatusCode::BadInternalError
}

/// The one group and certificate type plc-sim has; a null id means them.
fn check_group_and_type(group: &NodeId, certificate_type: &NodeId) -> Result<(), StatusCode> {
    let group_ok = group.is_null()
        || group.as_object_id().ok()
            == Some(ObjectId::ServerConfiguration_CertificateGroups_DefaultApplicationGroup);
    let type_ok = certificate_type.is_null()
        || [
            ObjectTypeId::RsaSha256ApplicationCertificateType,
            ObjectTypeId::ApplicationCertificateType,
        ]
        .iter()
        .any(|t| {
            certificate_type.namespace == 0
                && certificate_type.identifier == Identifier::Numeric(*t as u32)
        });
    if group_ok && type_ok {
        Ok(())
    } else {
        Err(StatusCode::BadInvalidArgument)
    }
}

/// The server's current key in OpenSSL's form.
fn current_key(info: &ServerInfo) -> Result<PKey<Private>, StatusCode> {
    let keys = info.server_keys();
    let key = keys
        .private_key
        .as_ref()
        .ok_or(StatusCode::BadInternalError)?;
    let der = key.to_der().map_err(|_| StatusCode::BadInternalError)?;
    PKey::private_key_from_pkcs8(der.as_bytes()).map_err(|_| StatusCode::BadInternalError)
}

fn current_certificate(info: &ServerInfo) -> Result<X509, StatusCode> {
    let der = info
        .server_certificate()
        .and_then(|c| c.to_der().ok())
        .ok_or(StatusCode::BadInternalError)?;
    X509::from_der(&der).map_err(|_| StatusCode::BadInternalError)
}

/// `CN=plc, O=Org, DC=host` (commas or slashes between the parts) as an X.509 name.
fn parse_subject(text: &str) -> Result<openssl::x509::X509Name, StatusCode> {
    let mut name = X509NameBuilder::new().map_err(|_| StatusCode::BadInternalError)?;
    let parts = text
        .split([',', '/'])
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let mut any = false;
    for part in parts {
        let (key, value) = part.split_once('=').ok_or(StatusCode::BadInvalidArgument)?;
        name.append_entry_by_text(key.trim(), value.trim())
            .map_err(|_| StatusCode::BadInvalidArgument)?;
        any = true;
    }
    if !any {
        return Err(StatusCode::BadInvalidArgument);
    }
    Ok(name.build())
}

/// Runs CPU-bound work (making an RSA key takes up to a second) inside an async Call without
/// stalling the other sessions served by the same worker thread: on a multi-threaded runtime
/// the worker hands its tasks to another thread first. A current-thread runtime has no other
/// thread to hand them to, so there it simply runs.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

impl Staging {
    pub(crate) fn new(pki_dir: PathBuf) -> Self {
        Staging {
            pki_dir,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StatusCode> {
        self.state.lock().map_err(|_| StatusCode::BadInternalError)
    }

    fn pending_key_path(&self) -> PathBuf {
        self.pki_dir.join(PENDING_KEY)
    }

    /// The key a CreateSigningRequest made, from memory or, after a restart, from disk. An
    /// unreadable file counts as none: the certificate for it is then refused as not matching.
    fn pending_key(&self, state: &mut State) -> Option<PKey<Private>> {
        if state.new_key.is_none() {
            match pki::read_private_key(&self.pending_key_path()) {
                Ok(key) => state.new_key = key,
                Err(e) => warn!(error = %e, "push: pending key unreadable"),
            }
        }
        state.new_key.clone()
    }

    /// A DER PKCS#10 request naming the server as its current certificate does (subject
    /// unless one is given, and every subjectAltName), signed with the current key or, when
    /// asked, a new one kept (in memory and at [`PENDING_KEY`]) for UpdateCertificate.
    pub(crate) fn create_signing_request(
        &self,
        info: &ServerInfo,
        args: &SigningRequestArgs,
    ) -> Result<Vec<u8>, StatusCode> {
        check_group_and_type(&args.group, &args.certificate_type)?;
        if args.regenerate_key && args.nonce.len() < MIN_NONCE {
            return Err(StatusCode::BadInvalidArgument);
        }
        let current = current_certificate(info)?;
        let subject = match args.subject.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(text) => parse_subject(text)?,
            None => current
                .subject_name()
                .to_owned()
                .map_err(|_| StatusCode::BadInternalError)?,
        };
        let names = AltNames::of(&current);
        let key = if args.regenerate_key {
            blocking(|| pki::new_rsa_key(KEY_BITS)).map_err(internal)?
        } else {
            current_key(info)?
        };
        let csr = pki::signing_request(&key, &subject, &names).map_err(internal)?;
        if args.regenerate_key {
            // Stored before the CSR leaves: a certificate issued for it must find its key.
            let mut state = self.lock()?;
            pki::write_private_key(&self.pending_key_path(), &key).map_err(internal)?;
            state.new_key = Some(key);
        }
        info!(
            new_key = args.regenerate_key,
            "push: certificate signing request made"
        );
        Ok(csr)
    }

    /// Checks and stages a certificate for `session`; answers whether ApplyChanges is needed
    /// (always).
    pub(crate) fn update_certificate(
        &self,
        info: &ServerInfo,
        application_uri: &str,
        session: u32,
        args: UpdateArgs,
    ) -> Result<bool, StatusCode> {
        check_group_and_type(&args.group, &args.certificate_type)?;
        let cert =
            X509::from_der(&args.certificate).map_err(|_| StatusCode::BadCertificateInvalid)?;
        let public = cert
            .public_key()
            .map_err(|_| StatusCode::BadCertificateInvalid)?;
        if public.bits() < KEY_BITS || public.rsa().is_err() {
            return Err(StatusCode::BadCertificatePolicyCheckFailed);
        }
        if !AltNames::of(&cert)
            .uris
            .iter()
            .any(|u| u == application_uri)
        {
            return Err(StatusCode::BadCertificateUriInvalid);
        }
        let now =
            openssl::asn1::Asn1Time::days_from_now(0).map_err(|_| StatusCode::BadInternalError)?;
        if cert.not_before() > now || cert.not_after() < now {
            return Err(StatusCode::BadCertificateTimeInvalid);
        }
        let issuers = args
            .issuers
            .iter()
            .map(|der| X509::from_der(der).map_err(|_| StatusCode::BadCertificateInvalid))
            .collect::<Result<Vec<_>, _>>()?;
        // A chain given must be the certificate's: its first issuer signed it.
        if let Some(issuer) = issuers.first() {
            let key = issuer
                .public_key()
                .map_err(|_| StatusCode::BadCertificateInvalid)?;
            if !cert.verify(&key).unwrap_or(false) {
                return Err(StatusCode::BadSecurityChecksFailed);
            }
        }
        // Installing them needs these forms; checked now so ApplyChanges cannot fail on them.
        opcua::crypto::X509::from_der(&args.certificate)
            .map_err(|_| StatusCode::BadCertificateInvalid)?;
        let mut state = self.lock()?;
        let key = match args.key_format.as_deref().filter(|_| !args.key.is_empty()) {
            Some("PEM") => {
                let text =
                    std::str::from_utf8(&args.key).map_err(|_| StatusCode::BadInvalidArgument)?;
                pki::private_key_from_pem(text).map_err(|_| StatusCode::BadInvalidArgument)?
            }
            Some(_) => return Err(StatusCode::BadNotSupported),
            None => match self.pending_key(&mut state) {
                Some(k) if public.public_eq(&k) => k,
                _ => current_key(info)?,
            },
        };
        if !public.public_eq(&key) {
            // Installing it would leave the server with a certificate it cannot use.
            return Err(StatusCode::BadSecurityChecksFailed);
        }
        state.staged = Some(Staged {
            session,
            certificate: args.certificate,
            key,
            issuers: args.issuers,
        });
        info!(
            thumbprint = %pki::thumbprint(cert.to_der().as_deref().unwrap_or_default()),
            session,
            "push: certificate staged until ApplyChanges"
        );
        Ok(true)
    }

    /// Stores what `session` staged and serves it on every channel opened from now on;
    /// channels already open keep theirs. The issuers go to `issuer/`, where the stack finds
    /// intermediate CAs. Bad_NothingToDo when `session` staged nothing (Part 12 §7.10.7);
    /// when storing fails, nothing changes and the staged certificate waits for a retry.
    pub(crate) fn apply(&self, info: &ServerInfo, session: u32) -> Result<(), StatusCode> {
        let mut state = self.lock()?;
        let staged = match &state.staged {
            Some(staged) if staged.session == session => staged,
            _ => return Err(StatusCode::BadNothingToDo),
        };
        let stack_cert = opcua::crypto::X509::from_der(&staged.certificate)
            .map_err(|_| StatusCode::BadCertificateInvalid)?;
        let pem = staged
            .key
            .private_key_to_pem_pkcs8()
            .map_err(|_| StatusCode::BadInternalError)?;
        let stack_key =
            opcua::crypto::PrivateKey::from_pem(&pem).map_err(|_| StatusCode::BadInternalError)?;
        self.store(staged).map_err(internal)?;
        info.set_server_keys(stack_cert, stack_key);
        let installed_pending = state
            .new_key
            .as_ref()
            .is_some_and(|k| k.public_eq(&staged.key));
        let thumbprint = pki::thumbprint(&staged.certificate);
        state.staged = None;
        if installed_pending {
            state.new_key = None;
            let path = self.pending_key_path();
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    warn!(path = %path.display(), error = %e, "push: pending key not removed");
                }
            }
        }
        info!(%thumbprint, "push: new server certificate applied");
        Ok(())
    }

    /// Writes the staged files: all of them under temporary names first (written and synced),
    /// then renamed into place, the key before the certificate. A crash between the two
    /// renames leaves a key without its certificate, which the next start notices and
    /// replaces; a failed certificate rename puts the old key back.
    fn store(&self, staged: &Staged) -> Result<(), PkiError> {
        let dir = &self.pki_dir;
        let issuers = staged
            .issuers
            .iter()
            .map(|der| {
                let name = format!("push-{}.der", pki::thumbprint(der));
                let folder = dir.join(pki::ISSUER_CERTS);
                std::fs::create_dir_all(&folder).map_err(pki::io(&folder))?;
                pki::PendingFile::write(&folder.join(name), der, None)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key_path = dir.join(OWN_KEY);
        let key = pki::pending_private_key(&key_path, &staged.key)?;
        let cert_path = dir.join(OWN_CERT);
        if let Some(own) = cert_path.parent() {
            std::fs::create_dir_all(own).map_err(pki::io(own))?;
        }
        let cert = pki::PendingFile::write(&cert_path, &staged.certificate, None)?;
        let old_key = std::fs::read(&key_path).ok();
        for issuer in issuers {
            issuer.commit()?;
        }
        key.commit()?;
        if let Err(e) = cert.commit() {
            if let Some(old) = old_key {
                if let Err(restore) =
                    pki::write_atomically_mode(&key_path, &old, Some(pki::KEY_MODE))
                {
                    warn!(error = %restore, "push: previous key not restored");
                }
            }
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_groups() {
        let name = parse_subject("CN=plc, O=Acme/DC=host").unwrap();
        assert_eq!(name.entries().count(), 3);
        assert!(matches!(
            parse_subject("plc"),
            Err(StatusCode::BadInvalidArgument)
        ));
        assert!(parse_subject("XX=1").is_err());
        assert!(check_group_and_type(&NodeId::null(), &NodeId::null()).is_ok());
        assert_eq!(
            check_group_and_type(&NodeId::new(0, 1), &NodeId::null()),
            Err(StatusCode::BadInvalidArgument)
        );
        assert_eq!(
            check_group_and_type(
                &NodeId::null(),
                &NodeId::from(ObjectTypeId::EccNistP256ApplicationCertificateType)
            ),
            Err(StatusCode::BadInvalidArgument)
        );
    }
}
