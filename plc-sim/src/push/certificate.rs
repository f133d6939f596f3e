//! The server's own certificate by push (Part 12 §7.7.4-§7.7.6): CreateSigningRequest makes a
//! CSR (with the current key or a new one), UpdateCertificate stages a certificate for one of
//! those keys (or with a key the caller sends), ApplyChanges stores it and makes the server
//! present it on every channel opened from then on.

use std::path::Path;
use std::sync::Mutex;

use iiot_gds::pki::{self, AltNames, PkiError, OWN_CERT, OWN_KEY};
use opcua::{
    server::ServerInfo,
    types::{Identifier, NodeId, ObjectId, ObjectTypeId, StatusCode},
};
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509NameBuilder, X509};
use tracing::{info, warn};

/// Part 12 §7.7.4: a caller asking for a new key gives at least this much entropy.
const MIN_NONCE: usize = 32;
/// New keys, and the smallest key a pushed certificate may have.
const KEY_BITS: u32 = 2048;

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
    certificate: Vec<u8>,
    key: PKey<Private>,
    issuers: Vec<Vec<u8>>,
}

#[derive(Default)]
struct State {
    /// The key of the last CreateSigningRequest that asked for a new one.
    new_key: Option<PKey<Private>>,
    /// What ApplyChanges will install.
    staged: Option<Staged>,
}

/// The push state between CreateSigningRequest, UpdateCertificate and ApplyChanges. Kept in
/// memory: a restart in between loses it, and the certificate manager starts over.
#[derive(Default)]
pub(crate) struct Staging {
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

impl Staging {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StatusCode> {
        self.state.lock().map_err(|_| StatusCode::BadInternalError)
    }

    /// A DER PKCS#10 request naming the server as its current certificate does (subject
    /// unless one is given, and every subjectAltName), signed with the current key or, when
    /// asked, a new one kept for UpdateCertificate.
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
            pki::new_rsa_key(KEY_BITS).map_err(internal)?
        } else {
            current_key(info)?
        };
        let csr = pki::signing_request(&key, &subject, &names).map_err(internal)?;
        if args.regenerate_key {
            self.lock()?.new_key = Some(key);
        }
        info!(
            new_key = args.regenerate_key,
            "push: certificate signing request made"
        );
        Ok(csr)
    }

    /// Checks and stages a certificate; answers whether ApplyChanges is needed (always).
    pub(crate) fn update_certificate(
        &self,
        info: &ServerInfo,
        application_uri: &str,
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
        let mut state = self.lock()?;
        let key = match args.key_format.as_deref().filter(|_| !args.key.is_empty()) {
            Some("PEM") => {
                let text =
                    std::str::from_utf8(&args.key).map_err(|_| StatusCode::BadInvalidArgument)?;
                pki::private_key_from_pem(text).map_err(|_| StatusCode::BadInvalidArgument)?
            }
            Some(_) => return Err(StatusCode::BadNotSupported),
            None => match &state.new_key {
                Some(k) if public.public_eq(k) => k.clone(),
                _ => current_key(info)?,
            },
        };
        if !public.public_eq(&key) {
            // Installing it would leave the server with a certificate it cannot use.
            return Err(StatusCode::BadSecurityChecksFailed);
        }
        state.staged = Some(Staged {
            certificate: args.certificate,
            key,
            issuers: args.issuers,
        });
        info!(
            thumbprint = %pki::thumbprint(cert.to_der().as_deref().unwrap_or_default()),
            "push: certificate staged until ApplyChanges"
        );
        Ok(true)
    }

    /// Stores the staged certificate and key (key first, each file renamed into place) and
    /// serves them on every channel opened from now on; channels already open keep theirs.
    /// The issuers go to `issuer/`, where the stack finds intermediate CAs.
    pub(crate) fn apply(&self, info: &ServerInfo, pki_dir: &Path) -> Result<(), StatusCode> {
        let mut state = self.lock()?;
        let Some(staged) = state.staged.take() else {
            return Ok(());
        };
        let stack_cert = opcua::crypto::X509::from_der(&staged.certificate)
            .map_err(|_| StatusCode::BadCertificateInvalid)?;
        let pem = staged
            .key
            .private_key_to_pem_pkcs8()
            .map_err(|_| StatusCode::BadInternalError)?;
        let stack_key =
            opcua::crypto::PrivateKey::from_pem(&pem).map_err(|_| StatusCode::BadInternalError)?;
        for der in &staged.issuers {
            let name = format!("push-{}.der", pki::thumbprint(der));
            pki::write_atomically(&pki_dir.join(pki::ISSUER_CERTS).join(name), der)
                .map_err(internal)?;
        }
        pki::write_private_key(&pki_dir.join(OWN_KEY), &staged.key).map_err(internal)?;
        pki::write_atomically(&pki_dir.join(OWN_CERT), &staged.certificate).map_err(internal)?;
        info.set_server_keys(stack_cert, stack_key);
        state.new_key = None;
        info!(
            thumbprint = %pki::thumbprint(&staged.certificate),
            "push: new server certificate applied"
        );
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
