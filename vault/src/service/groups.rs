//! Certificate groups: reading them with their CA certificates, the certificate type a request
//! asks of a group, and the admin changes to a group (issuing policy, CA renewal).

use iiot_auth::Principal;

use super::{not_found, Vault};
use crate::ca::{self, CertType};
use crate::error::{Result, VaultError};
use crate::model::*;
use crate::store::GroupRow;

impl Vault {
    pub async fn group(&self, id: &str) -> Result<GroupRow> {
        Self::found_group(self.store.group(id).await?, id)
    }

    pub(super) fn found_group(group: Option<GroupRow>, id: &str) -> Result<GroupRow> {
        group.ok_or_else(|| not_found("certificate group", id))
    }

    pub async fn group_registration(&self, g: &GroupRow) -> Result<TrustGroupRegistration> {
        let cas = self.store.cas_of_group(&g.id).await?;
        let first = g.cert_types.first().and_then(|t| CertType::parse(t));
        Ok(TrustGroupRegistration {
            id: g.id.clone(),
            group: TrustGroup {
                name: g.id.clone(),
                group_type: g.group_type.clone(),
                subject_name: g.subject_name.clone(),
                certificate_types: g.cert_types.clone(),
                lifetime: g.ca_lifetime_days,
                issued_lifetime: g.issued_lifetime_days,
                key_size: if first.is_some_and(|t| t.is_rsa()) {
                    g.rsa_key_size
                } else {
                    256
                },
                issued_key_size: g.rsa_key_size,
                auto_approve: g.auto_approve,
            },
            issuers: cas
                .iter()
                .map(|c| ca::describe(&c.cert_der))
                .collect::<Result<_>>()?,
        })
    }

    pub async fn groups(&self) -> Result<Vec<TrustGroupRegistration>> {
        let mut out = Vec::new();
        for g in self.store.groups().await? {
            out.push(self.group_registration(&g).await?);
        }
        Ok(out)
    }

    pub(super) fn cert_type_of(group: &GroupRow, requested: Option<&str>) -> Result<CertType> {
        let t = match requested {
            Some(s) => CertType::parse(s).ok_or_else(|| {
                VaultError::InvalidArgument(format!(
                    "unknown certificate type '{s}' (use RsaSha256ApplicationCertificateType, EccNistP256ApplicationCertificateType or EccNistP384ApplicationCertificateType)"
                ))
            })?,
            None => group
                .cert_types
                .first()
                .and_then(|t| CertType::parse(t))
                .ok_or_else(|| VaultError::InvalidState(format!("group '{}' has no certificate type", group.id)))?,
        };
        if !group.cert_types.iter().any(|g| g == t.id()) {
            return Err(VaultError::InvalidArgument(format!(
                "group '{}' does not issue {}",
                group.id,
                t.id()
            )));
        }
        Ok(t)
    }

    /// Changes a group's issuing policy (admin).
    pub async fn update_group(
        &self,
        who: &Principal,
        id: &str,
        req: &TrustGroupUpdateRequest,
    ) -> Result<TrustGroupRegistration> {
        let mut group = self.group(id).await?;
        if let Some(days) = req.issued_lifetime {
            if !(1..=group.ca_lifetime_days).contains(&days) {
                return Err(VaultError::InvalidArgument(format!(
                    "issuedLifetime must be 1 to {} days (the CA lifetime)",
                    group.ca_lifetime_days
                )));
            }
            group.issued_lifetime_days = days;
        }
        if let Some(on) = req.auto_approve {
            group.auto_approve = on;
        }
        self.store
            .update_group_policy(id, group.issued_lifetime_days, group.auto_approve)
            .await?;
        self.store
            .audit(
                &who.name,
                "group.update",
                id,
                &format!(
                    "issuedLifetime={} autoApprove={}",
                    group.issued_lifetime_days, group.auto_approve
                ),
            )
            .await?;
        self.group_registration(&group).await
    }

    /// Creates a new CA for each of the group's types and makes it the signing one; the old CAs
    /// stay in the trust list with current CRLs until they expire.
    pub async fn renew_group(
        &self,
        who: &Principal,
        group_id: &str,
    ) -> Result<TrustGroupRegistration> {
        let group = self.group(group_id).await?;
        for t in group.cert_types.iter().filter_map(|t| CertType::parse(t)) {
            // Key generation takes a while (RSA): keep it off the async workers.
            let (g, kek, secs) = (
                group.clone(),
                self.kek.clone(),
                self.config.crl_validity_secs,
            );
            let ca = tokio::task::spawn_blocking(move || ca::create_ca(&g, t, &kek, secs))
                .await
                .map_err(|e| VaultError::Crypto(e.to_string()))??;
            self.store.insert_ca(&ca.row).await?;
            self.store
                .activate_ca(group_id, t.id(), &ca.row.serial)
                .await?;
            self.load_ca(ca.row.clone())?;
            self.store
                .audit(
                    &who.name,
                    "group.renew",
                    group_id,
                    &format!("{} CA {}", t.id(), ca.row.serial),
                )
                .await?;
        }
        self.group_registration(&group).await
    }
}
