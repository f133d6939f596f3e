//! Issued certificates looked up by the certificate itself, as the GDS face receives them:
//! whose certificate secures a channel (ApplicationSelfAdmin), revoking one by its DER
//! (RevokeCertificate), an application's current certificates (GetCertificates), whether one is
//! revoked (CheckRevocationStatus); and the vault's own OPC UA server certificate.

use iiot_auth::Principal;
use rcgen::{DistinguishedName, DnType};

use super::Vault;
use crate::ca::{self, CertType};
use crate::error::{Result, VaultError};
use crate::model::*;
use crate::store::RequestRow;
use crate::workflow::{self, Action};

/// What CheckRevocationStatus finds for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// Issued by one of our CAs and not revoked; valid until the CA's next CRL.
    Good {
        until: i64,
    },
    Revoked {
        until: i64,
    },
    /// Not signed by any CA of this vault.
    UnknownIssuer,
}

/// The vault's own application instance certificate for its OPC UA endpoint.
pub struct ServerCertificate {
    pub cert_der: Vec<u8>,
    /// PKCS#8 PEM, for the OPC UA stack's key file.
    pub key_pem: String,
    pub ca_der: Vec<u8>,
}

/// Serial as the store keeps it (upper-case hex of the DER integer's bytes).
fn serial_of(der: &[u8]) -> Result<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| VaultError::CertificateInvalid(format!("not an X.509 certificate: {e}")))?;
    Ok(hex::encode_upper(cert.raw_serial()))
}

impl Vault {
    /// The request whose current (approved or accepted, not revoked) certificate is `der`.
    pub async fn certificate_holder(&self, der: &[u8]) -> Result<Option<RequestRow>> {
        let Ok(serial) = serial_of(der) else {
            return Ok(None);
        };
        Ok(self
            .store
            .request_by_cert_serial(&serial)
            .await?
            .filter(|r| r.cert_der.as_deref() == Some(der))
            .filter(|r| {
                matches!(
                    r.state,
                    CertificateRequestState::Approved | CertificateRequestState::Accepted
                )
            }))
    }

    /// Revokes the certificate `der` that was issued to application `app_id`, with the same
    /// workflow rule, audit line and CRL re-signing as revoking its request.
    pub async fn revoke_certificate(
        &self,
        who: &Principal,
        app_id: &str,
        der: &[u8],
    ) -> Result<()> {
        self.application(app_id).await?;
        let serial = serial_of(der)?;
        let req = self
            .store
            .request_by_cert_serial(&serial)
            .await?
            .filter(|r| r.cert_der.as_deref() == Some(der) && r.entity_id == app_id)
            .ok_or_else(|| {
                VaultError::InvalidArgument(format!(
                    "the vault issued no certificate with serial {serial} to application '{app_id}'"
                ))
            })?;
        workflow::check(Action::Revoke, req.state, &req.id)?;
        self.revoke_row(who, &req, "by certificate").await
    }

    /// The newest current certificate of each type an application holds in a group.
    pub async fn current_certificates(
        &self,
        app_id: &str,
        group_id: &str,
    ) -> Result<Vec<(CertType, Vec<u8>)>> {
        self.application(app_id).await?;
        self.group(group_id).await?;
        let mut out: Vec<(CertType, i64, Vec<u8>)> = Vec::new();
        for r in self.store.query_requests(app_id, "", 0, i64::MAX).await? {
            if r.group_id != group_id
                || !matches!(
                    r.state,
                    CertificateRequestState::Approved | CertificateRequestState::Accepted
                )
            {
                continue;
            }
            let (Some(t), Some(der)) = (CertType::parse(&r.cert_type), r.cert_der) else {
                continue;
            };
            let at = r.approved_at.unwrap_or(0);
            match out.iter_mut().find(|(ty, _, _)| *ty == t) {
                Some(slot) if slot.1 <= at => *slot = (t, at, der),
                Some(_) => {}
                None => out.push((t, at, der)),
            }
        }
        Ok(out.into_iter().map(|(t, _, der)| (t, der)).collect())
    }

    /// Whether `der` was issued by one of this vault's CAs and is revoked. The issuer is found
    /// by signature, not by name, so a look-alike CA name proves nothing.
    pub async fn revocation_status(&self, der: &[u8]) -> Result<Revocation> {
        let cert = openssl::x509::X509::from_der(der).map_err(|e| {
            VaultError::CertificateInvalid(format!("not an X.509 certificate: {e}"))
        })?;
        let serial = serial_of(der)?;
        for ca_row in self.store.all_cas().await? {
            let Ok(ca_cert) = openssl::x509::X509::from_der(&ca_row.cert_der) else {
                continue;
            };
            let Ok(key) = ca_cert.public_key() else {
                continue;
            };
            if !cert.verify(&key).unwrap_or(false) {
                continue;
            }
            let until = ca_row.crl_next_update;
            let revoked = self
                .store
                .revoked_by_ca(&ca_row.serial)
                .await?
                .iter()
                .any(|(s, _)| *s == serial);
            return Ok(if revoked {
                Revocation::Revoked { until }
            } else {
                Revocation::Good { until }
            });
        }
        Ok(Revocation::UnknownIssuer)
    }

    /// Issues the vault's own OPC UA server certificate from the active RSA CA of
    /// DefaultApplicationGroup, so an application that trusts the vault's CA trusts its GDS
    /// endpoint too. `None` when that group has no RSA CA (the endpoint then signs its own).
    pub async fn issue_server_certificate(
        &self,
        application_uri: &str,
        name: &str,
        hosts: &[String],
    ) -> Result<Option<ServerCertificate>> {
        let group = self.group(crate::config::DEFAULT_GROUPS[0].0).await?;
        if !group
            .cert_types
            .iter()
            .any(|t| t == CertType::RsaSha256.id())
        {
            return Ok(None);
        }
        let ca = self.active_ca(&group.id, CertType::RsaSha256).await?;
        let bits = group.rsa_key_size;
        let key = tokio::task::spawn_blocking(move || CertType::RsaSha256.generate_key(bits))
            .await
            .map_err(|e| VaultError::Crypto(e.to_string()))??;
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for h in hosts {
            match h.parse::<std::net::IpAddr>() {
                Ok(ip) => ips.push(ip),
                Err(_) => dns.push(h.clone()),
            }
        }
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, name);
        use rcgen::PublicKeyData;
        let issued = ca::issue(
            &ca,
            &ca::IssueSpec {
                subject,
                application_uri: Some(application_uri),
                dns_names: &dns,
                ip_addresses: &ips,
                public_key_spki: &key.subject_public_key_info(),
                lifetime_days: group.issued_lifetime_days,
                crl_url: self.crl_url(&ca.row.serial),
                group_type: &group.group_type,
                key_is_rsa: true,
            },
        )?;
        self.store
            .audit(
                "system",
                "gds.serverCertificate",
                application_uri,
                &format!("serial {} by CA {}", issued.serial, ca.row.serial),
            )
            .await?;
        Ok(Some(ServerCertificate {
            cert_der: issued.der,
            key_pem: key.serialize_pem(),
            ca_der: ca.row.cert_der.clone(),
        }))
    }

    /// Every CA certificate of the vault that has not expired, with its current CRL; what the
    /// GDS endpoint's own trust store holds.
    pub async fn ca_certificates_and_crls(
        &self,
    ) -> Result<Vec<(String, Vec<u8>, Option<Vec<u8>>)>> {
        self.refresh_crls().await?;
        Ok(self
            .store
            .all_cas()
            .await?
            .into_iter()
            .filter(|c| c.not_after > now())
            .map(|c| (c.serial, c.cert_der, c.crl_der))
            .collect())
    }
}
