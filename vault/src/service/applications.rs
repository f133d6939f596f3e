//! Application registrations: register, update, query and unregister the OPC UA applications
//! certificates are issued to, and tell an application whether its certificate needs renewal.
//! Owns the rule that only a registered application takes part in the workflow.

use iiot_auth::Principal;

use super::{not_found, Vault};
use crate::ca;
use crate::error::{Result, VaultError};
use crate::model::*;
use crate::store::ApplicationRow;
use crate::validate::{self, ValidApplication};

impl Vault {
    pub async fn register_application(
        &self,
        who: &Principal,
        req: &ApplicationRequest,
    ) -> Result<ApplicationRecord> {
        let v = validate::application(req, None)?;
        if !self
            .store
            .applications_by_uri(&v.application_uri)
            .await?
            .is_empty()
        {
            return Err(VaultError::AlreadyExists(format!(
                "an application with URI '{}' is already registered",
                v.application_uri
            )));
        }
        let row = ApplicationRow {
            id: uuid::Uuid::new_v4().to_string(),
            application_uri: v.application_uri,
            application_type: v.application_type,
            application_names: v.application_names,
            product_uri: v.product_uri,
            discovery_urls: v.discovery_urls,
            server_capabilities: v.server_capabilities,
            state: "Registered".into(),
            created_by: who.name.clone(),
            created_at: now(),
            updated_by: None,
            updated_at: None,
        };
        self.store.insert_application(&row).await?;
        self.store
            .audit(
                &who.name,
                "application.register",
                &row.id,
                &row.application_uri,
            )
            .await?;
        Ok(row.to_record())
    }

    pub async fn application(&self, id: &str) -> Result<ApplicationRow> {
        self.store
            .application(id)
            .await?
            .ok_or_else(|| not_found("application", id))
    }

    async fn registered_application(&self, id: &str) -> Result<ApplicationRow> {
        Self::registered(self.store.application(id).await?, id)
    }

    /// `app` (application `id` as read) when it exists and is registered.
    pub(super) fn registered(app: Option<ApplicationRow>, id: &str) -> Result<ApplicationRow> {
        let app = app.ok_or_else(|| not_found("application", id))?;
        if !app.is_registered() {
            return Err(VaultError::InvalidState(format!(
                "application '{id}' is unregistered"
            )));
        }
        Ok(app)
    }

    pub async fn update_application(
        &self,
        who: &Principal,
        id: &str,
        req: &ApplicationRequest,
    ) -> Result<ApplicationRecord> {
        let app = self.registered_application(id).await?;
        let current = ValidApplication {
            application_uri: app.application_uri.clone(),
            application_type: app.application_type,
            application_names: app.application_names.clone(),
            product_uri: app.product_uri.clone(),
            discovery_urls: app.discovery_urls.clone(),
            server_capabilities: app.server_capabilities.clone(),
        };
        let v = validate::application(req, Some(&current))?;
        if v.application_uri != app.application_uri
            && !self
                .store
                .applications_by_uri(&v.application_uri)
                .await?
                .is_empty()
        {
            return Err(VaultError::AlreadyExists(format!(
                "an application with URI '{}' is already registered",
                v.application_uri
            )));
        }
        let row = ApplicationRow {
            application_uri: v.application_uri,
            application_type: v.application_type,
            application_names: v.application_names,
            product_uri: v.product_uri,
            discovery_urls: v.discovery_urls,
            server_capabilities: v.server_capabilities,
            updated_by: Some(who.name.clone()),
            updated_at: Some(now()),
            ..app
        };
        if !self.store.update_application(&row).await? {
            return Err(VaultError::InvalidState(format!(
                "application '{id}' is unregistered"
            )));
        }
        self.store
            .audit(&who.name, "application.update", id, &row.application_uri)
            .await?;
        Ok(row.to_record())
    }

    pub async fn query_applications(&self, q: &ApplicationQuery) -> Result<Vec<ApplicationRecord>> {
        let name = q.application_name.as_deref().map(str::to_lowercase);
        Ok(self
            .store
            .all_applications()
            .await?
            .into_iter()
            .filter(|a| q.include_unregistered || a.is_registered())
            .filter(|a| {
                q.application_uri
                    .as_deref()
                    .is_none_or(|u| a.application_uri == u)
            })
            .filter(|a| q.application_type.is_none_or(|t| a.application_type == t))
            .filter(|a| {
                name.as_deref().is_none_or(|n| {
                    a.application_names
                        .iter()
                        .any(|x| x.text.to_lowercase().contains(n))
                })
            })
            .map(|a| a.to_record())
            .collect())
    }

    /// Revokes every certificate the application received, then marks it unregistered. Any
    /// revocation that fails stops the unregistration with an error.
    pub async fn unregister_application(&self, who: &Principal, id: &str) -> Result<()> {
        self.registered_application(id).await?;
        let mut revoked = 0;
        for req in self.store.query_requests(id, "", 0, i64::MAX).await? {
            if matches!(
                req.state,
                CertificateRequestState::Approved | CertificateRequestState::Accepted
            ) {
                self.revoke_row(who, &req, "application unregistered")
                    .await?;
                revoked += 1;
            }
        }
        if !self
            .store
            .mark_application_unregistered(id, &who.name, now())
            .await?
        {
            return Err(VaultError::InvalidState(format!(
                "application '{id}' is unregistered"
            )));
        }
        self.store
            .audit(
                &who.name,
                "application.unregister",
                id,
                &format!("revoked {revoked} certificate(s)"),
            )
            .await?;
        Ok(())
    }

    /// Whether the application's current certificate in a group must be renewed.
    pub async fn certificate_status(
        &self,
        app_id: &str,
        group_id: &str,
        cert_type: Option<&str>,
    ) -> Result<CertificateStatus> {
        self.application(app_id).await?;
        let group = self.group(group_id).await?;
        let t = Self::cert_type_of(&group, cert_type)?;
        let latest = self
            .store
            .query_requests(app_id, "", 0, i64::MAX)
            .await?
            .into_iter()
            .filter(|r| r.group_id == group.id && r.cert_type == t.id() && r.cert_der.is_some())
            .max_by_key(|r| r.approved_at.unwrap_or(0));
        let Some(req) = latest else {
            return Ok(CertificateStatus {
                update_required: true,
                reasons: vec!["no certificate issued in this group".into()],
                certificate: None,
            });
        };
        let reasons = self.renewal_reasons(&req, &group).await?;
        Ok(CertificateStatus {
            update_required: !reasons.is_empty(),
            reasons,
            certificate: req.cert_der.as_deref().map(ca::describe).transpose()?,
        })
    }

    /// Why a certificate of `group` must be renewed (none: it need not be): revoked, inside
    /// the renewal window, from a CA that has been renewed, or weaker than the group's policy.
    pub async fn renewal_reasons(
        &self,
        req: &crate::store::RequestRow,
        group: &crate::store::GroupRow,
    ) -> Result<Vec<String>> {
        let t = Self::cert_type_of(group, Some(&req.cert_type))?;
        let mut reasons = Vec::new();
        if req.state == CertificateRequestState::Revoked {
            reasons.push("revoked".to_string());
        }
        let (start, end) = (req.approved_at.unwrap_or(0), req.not_after.unwrap_or(0));
        let window = (end - start) * self.config.renewal_window_percent / 100;
        if now() >= end - window {
            reasons.push(format!(
                "inside the renewal window (last {}% of its life)",
                self.config.renewal_window_percent
            ));
        }
        let active = self.active_ca(&group.id, t).await?;
        if req.ca_serial.as_deref() != Some(active.row.serial.as_str()) {
            reasons.push("issued by a CA that has been renewed".to_string());
        }
        if let Some(spki) = &req.public_key_der {
            if let Ok((_, info)) = <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<_>>::from_der(spki) {
                if let Ok(x509_parser::public_key::PublicKey::RSA(k)) = info.parsed() {
                    if (k.key_size() as i64) < group.rsa_key_size {
                        reasons.push(format!("RSA key of {} bits is below the group's {}", k.key_size(), group.rsa_key_size));
                    }
                }
            }
        }
        Ok(reasons)
    }
}
