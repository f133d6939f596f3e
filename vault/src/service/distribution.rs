//! Distribution: what leaves the vault for its clients. A request's certificate (and once, a
//! generated private key) on fetch, the groups' trust lists, CRLs and issuer certificates, and
//! the CRL re-signing that keeps them current.

use iiot_auth::Principal;

use super::{not_found, Vault};
use crate::ca;
use crate::error::{Result, VaultError};
use crate::model::*;
use crate::store::AuditLine;
use crate::workflow::{self, Action};

impl Vault {
    /// The certificate of a request once approved. The first fetch of an Approved request
    /// accepts it (as the contract says); a key pair's private key is handed out that once.
    pub async fn fetch(
        &self,
        who: &Principal,
        id: &str,
        kind: CertificateRequestType,
        pfx_password: Option<&str>,
    ) -> Result<FinishNewKeyPairRequestResponse> {
        let mut req = self.request(id).await?;
        if req.request_type != kind {
            return Err(VaultError::InvalidArgument(format!(
                "request {id} is a {}; fetch it from its own route",
                req.request_type.as_str()
            )));
        }
        workflow::check(Action::Fetch, req.state, id)?;
        let mut private_key = None;
        if let Some(sealed) = &req.key_sealed {
            if req.state == CertificateRequestState::Approved {
                let stored = self.kek.open(&format!("keypair:{id}"), sealed)?;
                let format = req.key_format.clone().unwrap_or_else(|| "PEM".into());
                // Build the answer before the key is destroyed, so a wrong PFX password
                // leaves the key in place for a second try.
                let key = if format == "PFX" {
                    let password = pfx_password.ok_or_else(|| {
                        VaultError::InvalidArgument(
                            "a PFX is built at fetch time: send its password in the X-Private-Key-Password header".into(),
                        )
                    })?;
                    let cert = req.cert_der.as_deref().unwrap_or_default();
                    crate::keypair::pfx_from_encrypted_pkcs8(&stored, cert, password)?
                } else {
                    String::from_utf8(stored).map_err(|e| VaultError::Crypto(e.to_string()))?
                };
                let line = AuditLine {
                    actor: &who.name,
                    action: "request.keyFetched",
                    target: id,
                    detail: "private key handed out and destroyed".to_string(),
                };
                if self
                    .store
                    .take_private_key_audited(id, sealed, &line)
                    .await?
                {
                    private_key = Some(PrivateKey {
                        format,
                        key,
                        encrypted: req.key_encrypted,
                    });
                }
            }
        }
        // A concurrent fetch may have accepted it already; that is not an error here, but then
        // the row is read again to answer what is stored. Otherwise the answer is the row as
        // read plus the change just committed, which saves a query per certificate.
        if req.state == CertificateRequestState::Approved {
            let line = AuditLine {
                actor: &who.name,
                action: "request.accept",
                target: id,
                detail: "on first fetch".to_string(),
            };
            let at = now();
            if self
                .store
                .accept_request_audited(id, &who.name, at, &line)
                .await?
            {
                req.state = CertificateRequestState::Accepted;
                req.accepted_by = Some(who.name.clone());
                req.accepted_at = Some(at);
                req.key_sealed = None;
            } else {
                req = self.request(id).await?;
            }
        }
        let certificate = req.cert_der.as_deref().map(ca::describe).transpose()?;
        Ok(FinishNewKeyPairRequestResponse {
            request: req.to_record(),
            certificate,
            private_key,
        })
    }

    /// The group's trust list: every CA version that has not expired, each with its current CRL.
    pub async fn trust_list(&self, group_id: &str, cert_type: Option<&str>) -> Result<TrustList> {
        use base64::Engine;
        let group = self.group(group_id).await?;
        let only = cert_type
            .map(|t| Self::cert_type_of(&group, Some(t)))
            .transpose()?;
        self.refresh_crls().await?;
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let mut certs = Vec::new();
        let mut crls = Vec::new();
        for ca in self.store.cas_of_group(group_id).await? {
            if ca.not_after < now() || only.is_some_and(|t| t.id() != ca.cert_type) {
                continue;
            }
            certs.push(b64(&ca.cert_der));
            if let Some(crl) = &ca.crl_der {
                crls.push(b64(crl));
            }
        }
        Ok(TrustList {
            group_id: group_id.to_string(),
            trusted_certificates: certs.clone(),
            trusted_crls: crls.clone(),
            issuer_certificates: certs,
            issuer_crls: crls,
        })
    }

    pub async fn crl(&self, ca_serial: &str) -> Result<Vec<u8>> {
        self.refresh_crls().await?;
        let ca = self
            .store
            .ca(ca_serial)
            .await?
            .ok_or_else(|| not_found("CA", ca_serial))?;
        ca.crl_der.ok_or_else(|| not_found("CRL of CA", ca_serial))
    }

    pub async fn issuer(&self, ca_serial: &str) -> Result<Vec<u8>> {
        Ok(self
            .store
            .ca(ca_serial)
            .await?
            .ok_or_else(|| not_found("CA", ca_serial))?
            .cert_der)
    }

    /// Re-signs every CRL whose nextUpdate is less than half its validity away.
    pub async fn refresh_crls(&self) -> Result<()> {
        let margin = self.config.crl_validity_secs / 2;
        for ca in self.store.all_cas().await? {
            if ca.not_after > now() && ca.crl_next_update - now() < margin {
                self.resign_crl(&ca.serial).await?;
            }
        }
        Ok(())
    }

    /// Signs the next CRL of a CA with everything it has revoked.
    pub async fn resign_crl(&self, ca_serial: &str) -> Result<()> {
        let _guard = self.crl_lock.lock().await;
        let row = self
            .store
            .ca(ca_serial)
            .await?
            .ok_or_else(|| not_found("CA", ca_serial))?;
        let ca = match self.loaded_ca(ca_serial) {
            Some(ca) => ca,
            None => self.load_ca(row.clone())?,
        };
        let revoked = self.store.revoked_by_ca(ca_serial).await?;
        let number = row.crl_number + 1;
        let (der, next) = ca::sign_crl(&ca, number, &revoked, self.config.crl_validity_secs)?;
        if !self
            .store
            .update_crl(ca_serial, row.crl_number, number, &der, next)
            .await?
        {
            return Err(VaultError::InvalidState(format!(
                "CRL of CA {ca_serial} changed meanwhile"
            )));
        }
        self.crl_signed.send_modify(|n| *n += 1);
        tracing::info!(
            ca = ca_serial,
            number,
            revoked = revoked.len(),
            "signed CRL"
        );
        Ok(())
    }
}
