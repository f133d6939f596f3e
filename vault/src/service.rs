//! The vault's operations: what each API call does to the store and the CAs, with the
//! workflow and policy checks in between. Handlers in routes/ only parse and answer.

use std::collections::HashMap;
use std::sync::RwLock;

use iiot_auth::Principal;
use rcgen::{DistinguishedName, DnType};

use crate::ca::{self, CertType, LoadedCa, SoftwareSigner};
use crate::config::VaultConfig;
use crate::csr;
use crate::error::{Result, VaultError};
use crate::kek::Kek;
use crate::model::*;
use crate::store::{
    ApplicationRow, Approval, AuditLine, CaRow, GroupRow, IssueContext, Issued, NewRequest,
    RequestRow, Store,
};
use crate::validate::{self, ValidApplication};
use crate::workflow::{self, Action};

/// The identity recorded for approvals made by a group's auto-approve policy.
pub const AUTO_APPROVER: &str = "policy:auto-approve";

pub struct Vault {
    pub(crate) store: Store,
    kek: Kek,
    config: VaultConfig,
    /// Base URL written into CRL distribution points.
    public_url: String,
    /// Unsealed CAs by serial.
    cas: RwLock<HashMap<String, LoadedCa>>,
    /// Serialises CRL re-signing so CRL numbers only grow.
    crl_lock: tokio::sync::Mutex<()>,
}

fn not_found(what: &str, id: &str) -> VaultError {
    VaultError::NotFound(format!("{what} '{id}' does not exist"))
}

impl Vault {
    /// Opens the vault on `store`: creates the default groups and their CAs on first start and
    /// unseals every CA (a wrong KEK fails here, not on the first signature).
    pub async fn open(
        store: Store,
        kek: Kek,
        config: VaultConfig,
        public_url: String,
    ) -> Result<Vault> {
        let vault = Vault {
            store,
            kek,
            config,
            public_url: public_url.trim_end_matches('/').to_string(),
            cas: RwLock::new(HashMap::new()),
            crl_lock: tokio::sync::Mutex::new(()),
        };
        vault.ensure_groups().await?;
        for row in vault.store.all_cas().await? {
            vault.load_ca(row)?;
        }
        // `--auto-approve GROUP` switches the policy on; switching it off is an admin call
        // (POST /v2/groups/{id}), so the setting a security team chose is not lost on restart.
        let groups = vault.store.groups().await?;
        for id in &vault.config.auto_approve_groups {
            let g = groups.iter().find(|g| &g.id == id).ok_or_else(|| {
                VaultError::Config(format!("--auto-approve: no certificate group '{id}'"))
            })?;
            if !g.auto_approve {
                vault.store.set_group_auto_approve(id, true).await?;
                vault
                    .store
                    .audit("config", "group.update", id, "autoApprove=true")
                    .await?;
            }
        }
        vault.refresh_crls().await?;
        Ok(vault)
    }

    async fn ensure_groups(&self) -> Result<()> {
        let existing = self.store.groups().await?;
        for (id, group_type) in crate::config::DEFAULT_GROUPS {
            if existing.iter().any(|g| g.id == id) {
                continue;
            }
            let group = GroupRow {
                id: id.to_string(),
                group_type: group_type.to_string(),
                subject_name: format!("iiot vault {id}"),
                cert_types: self
                    .config
                    .cert_types
                    .iter()
                    .map(|t| t.id().to_string())
                    .collect(),
                ca_lifetime_days: self.config.ca_lifetime_days,
                issued_lifetime_days: self.config.issued_lifetime_days,
                rsa_key_size: self.config.rsa_key_size,
                auto_approve: false,
            };
            self.store.insert_group(&group).await?;
            for t in &self.config.cert_types {
                let ca = ca::create_ca(&group, *t, &self.kek, self.config.crl_validity_secs)?;
                self.store.insert_ca(&ca.row).await?;
                tracing::info!(group = id, cert_type = t.id(), serial = %ca.row.serial, "created CA");
            }
            self.store
                .audit(
                    "system",
                    "group.create",
                    id,
                    &format!("types={:?}", group.cert_types),
                )
                .await?;
        }
        Ok(())
    }

    fn load_ca(&self, row: CaRow) -> Result<LoadedCa> {
        let signer =
            SoftwareSigner::unseal(&self.kek, &ca::key_context(&row.serial), &row.key_sealed)?;
        let loaded = LoadedCa::new(row, signer)?;
        if let Ok(mut map) = self.cas.write() {
            map.insert(loaded.row.serial.clone(), loaded.clone());
        }
        Ok(loaded)
    }

    fn loaded_ca(&self, serial: &str) -> Option<LoadedCa> {
        self.cas.read().ok().and_then(|m| m.get(serial).cloned())
    }

    fn crl_url(&self, ca_serial: &str) -> String {
        format!("{}/v2/crl/{ca_serial}", self.public_url)
    }

    // ---------------------------------------------------------------- applications

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
    fn registered(app: Option<ApplicationRow>, id: &str) -> Result<ApplicationRow> {
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

    // ---------------------------------------------------------------- groups

    pub async fn group(&self, id: &str) -> Result<GroupRow> {
        Self::found_group(self.store.group(id).await?, id)
    }

    fn found_group(group: Option<GroupRow>, id: &str) -> Result<GroupRow> {
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

    fn cert_type_of(group: &GroupRow, requested: Option<&str>) -> Result<CertType> {
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

    /// The active CA of a group and type, unsealed once and then kept in memory.
    async fn active_ca(&self, group_id: &str, t: CertType) -> Result<LoadedCa> {
        let serial = self.store.active_ca_serial(group_id, t.id()).await?;
        self.signing_ca(group_id, t, serial.as_deref()).await
    }

    /// The loaded CA with `serial`, the active one of a group and type as the database named
    /// it (`None`: the group has none).
    async fn signing_ca(
        &self,
        group_id: &str,
        t: CertType,
        serial: Option<&str>,
    ) -> Result<LoadedCa> {
        let no_ca =
            || VaultError::InvalidState(format!("group '{group_id}' has no active {} CA", t.id()));
        let serial = serial.ok_or_else(no_ca)?;
        if let Some(ca) = self.loaded_ca(serial) {
            return Ok(ca);
        }
        let row = self.store.ca(serial).await?.ok_or_else(no_ca)?;
        self.load_ca(row)
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

    // ---------------------------------------------------------------- requests

    pub async fn submit_signing_request(
        &self,
        who: &Principal,
        req: &StartSigningRequest,
    ) -> Result<String> {
        let mut ctx = self
            .store
            .issue_context(&req.entity_id, &req.group_id, false)
            .await?;
        let app = Self::registered(ctx.application.take(), &req.entity_id)?;
        let group = Self::found_group(ctx.group.take(), &req.group_id)?;
        let t = Self::cert_type_of(&group, req.certificate_type_id.as_deref())?;
        let der = csr::decode(&req.certificate_request)?;
        let checked = csr::check(&der, t, csr::MIN_RSA_BITS.max(group.rsa_key_size as usize))?;
        if group.group_type == "ApplicationInstanceCertificate" && checked.uris.is_empty() {
            return Err(VaultError::UriInvalid(format!(
                "the CSR has no subjectAltName URI; it must be the registered applicationUri '{}'",
                app.application_uri
            )));
        }
        if let Some(bad) = checked.uris.iter().find(|u| **u != app.application_uri) {
            return Err(VaultError::UriInvalid(format!(
                "the CSR's subjectAltName URI '{bad}' differs from the registered applicationUri '{}'",
                app.application_uri
            )));
        }
        let mut names = checked.dns_names.clone();
        names.extend(checked.ip_addresses.iter().map(|ip| ip.to_string()));
        let id = request_id();
        let row = NewRequest {
            id: id.clone(),
            request_type: CertificateRequestType::SigningRequest,
            entity_id: app.id.clone(),
            group_id: group.id.clone(),
            cert_type: t.id().to_string(),
            csr_der: Some(checked.der.clone()),
            public_key_der: Some(checked.public_key_spki.clone()),
            subject_name: String::new(),
            domain_names: names,
            key_format: None,
            key_encrypted: false,
            key_sealed: None,
            submitted_by: who.name.clone(),
            submitted_at: now(),
        };
        let submitted = AuditLine {
            actor: &who.name,
            action: "request.submit",
            target: &id,
            detail: format!(
                "SigningRequest for {} in {} ({})",
                app.id,
                group.id,
                t.short()
            ),
        };
        self.store_submission(&row, &submitted, &app, &group, &ctx)
            .await?;
        Ok(id)
    }

    pub async fn submit_keypair_request(
        &self,
        who: &Principal,
        req: &StartNewKeyPairRequest,
    ) -> Result<String> {
        let mut ctx = self
            .store
            .issue_context(&req.entity_id, &req.group_id, false)
            .await?;
        let app = Self::registered(ctx.application.take(), &req.entity_id)?;
        let group = Self::found_group(ctx.group.take(), &req.group_id)?;
        let t = Self::cert_type_of(&group, req.certificate_type_id.as_deref())?;
        let format = match req.private_key_format.as_deref().unwrap_or("PEM") {
            f if f.eq_ignore_ascii_case("PEM") => "PEM",
            f if f.eq_ignore_ascii_case("PFX") => "PFX",
            f => {
                return Err(VaultError::InvalidArgument(format!(
                    "privateKeyFormat '{f}': use PEM or PFX"
                )))
            }
        };
        let password = req
            .private_key_password
            .as_deref()
            .filter(|p| !p.is_empty());
        if format == "PFX" && password.is_none() {
            return Err(VaultError::InvalidArgument(
                "a PFX needs a privateKeyPassword".into(),
            ));
        }
        for d in &req.domain_names {
            if d.parse::<std::net::IpAddr>().is_err() {
                csr::check_domain_name(d)?;
            }
        }
        if let Some(s) = &req.subject_name {
            parse_subject(s)?;
        }
        let rsa_bits = group.rsa_key_size;
        let key = tokio::task::spawn_blocking(move || t.generate_key(rsa_bits))
            .await
            .map_err(|e| VaultError::Crypto(e.to_string()))??;
        let spki = key_spki(&key)?;
        let id = request_id();
        // PEM keys are put in their final (password-protected) form now, so the password is
        // never kept; a PFX needs the certificate and is built at fetch time from the key.
        let (stored, encrypted) = match (format, password) {
            ("PEM", Some(p)) => (
                crate::keypair::encrypted_pkcs8_pem(key.serialized_der(), p)?.into_bytes(),
                true,
            ),
            ("PEM", None) => (key.serialize_pem().into_bytes(), false),
            _ => (
                crate::keypair::encrypted_pkcs8_der(
                    key.serialized_der(),
                    password.unwrap_or_default(),
                )?,
                true,
            ),
        };
        let sealed = self.kek.seal(&format!("keypair:{id}"), &stored)?;
        let row = NewRequest {
            id: id.clone(),
            request_type: CertificateRequestType::KeyPairRequest,
            entity_id: app.id.clone(),
            group_id: group.id.clone(),
            cert_type: t.id().to_string(),
            csr_der: None,
            public_key_der: Some(spki),
            subject_name: req.subject_name.clone().unwrap_or_default(),
            domain_names: req.domain_names.clone(),
            key_format: Some(format.to_string()),
            key_encrypted: encrypted,
            key_sealed: Some(sealed),
            submitted_by: who.name.clone(),
            submitted_at: now(),
        };
        let submitted = AuditLine {
            actor: &who.name,
            action: "request.submit",
            target: &id,
            detail: format!(
                "KeyPairRequest for {} in {} ({}, {format})",
                app.id,
                group.id,
                t.short()
            ),
        };
        self.store_submission(&row, &submitted, &app, &group, &ctx)
            .await?;
        Ok(id)
    }

    pub async fn request(&self, id: &str) -> Result<RequestRow> {
        self.store
            .request(id)
            .await?
            .ok_or_else(|| not_found("request", id))
    }

    pub async fn query_requests(
        &self,
        q: &CertificateRequestQuery,
        offset: i64,
        limit: i64,
    ) -> Result<CertificateRequestQueryResponse> {
        let limit = limit.clamp(1, 1000);
        let rows = self
            .store
            .query_requests(
                q.entity_id.as_deref().unwrap_or(""),
                q.state.map(|s| s.as_str()).unwrap_or(""),
                offset,
                limit + 1,
            )
            .await?;
        let more = rows.len() as i64 > limit;
        Ok(CertificateRequestQueryResponse {
            requests: rows
                .iter()
                .take(limit as usize)
                .map(|r| r.to_record())
                .collect(),
            next_page_link: more.then(|| (offset + limit).to_string()),
        })
    }

    pub async fn approve(&self, who: &Principal, id: &str) -> Result<()> {
        let req = self.request(id).await?;
        workflow::check(Action::Approve, req.state, id)?;
        workflow::check_approver(&req.submitted_by, &who.name, id)?;
        self.approve_as(&who.name, id).await
    }

    /// Issues the certificate and moves the request to Approved.
    async fn approve_as(&self, approver: &str, id: &str) -> Result<()> {
        let req = self.request(id).await?;
        workflow::check(Action::Approve, req.state, id)?;
        workflow::check_approver(&req.submitted_by, approver, id)?;
        let mut ctx = self
            .store
            .issue_context(&req.entity_id, &req.group_id, true)
            .await?;
        let app = Self::registered(ctx.application.take(), &req.entity_id)?;
        let group = Self::found_group(ctx.group.take(), &req.group_id)?;
        let issued = self
            .issue_for(
                id,
                &app,
                &group,
                &ctx,
                &req.cert_type,
                req.public_key_der.as_deref(),
                &req.subject_name,
                &req.domain_names,
            )
            .await?;
        let line = AuditLine {
            actor: approver,
            action: "request.approve",
            target: id,
            detail: format!(
                "issued serial {} by CA {}",
                issued.cert_serial, issued.ca_serial
            ),
        };
        if !self
            .store
            .approve_request_audited(id, approver, now(), &issued, &line)
            .await?
        {
            return Err(VaultError::InvalidState(format!(
                "request {id} changed state meanwhile"
            )));
        }
        Ok(())
    }

    /// Stores a submission with its audit line. Under the group's auto-approve policy the
    /// certificate is issued first and the approval (by [`AUTO_APPROVER`], with the same
    /// separation-of-duties check and its own audit line) is written in the same transaction:
    /// the record is the one an approver's approval leaves, for one commit instead of four.
    async fn store_submission(
        &self,
        row: &NewRequest,
        submitted: &AuditLine<'_>,
        app: &ApplicationRow,
        group: &GroupRow,
        ctx: &IssueContext,
    ) -> Result<()> {
        if !group.auto_approve {
            return self
                .store
                .insert_request_audited(row, submitted, None)
                .await;
        }
        workflow::check_approver(&row.submitted_by, AUTO_APPROVER, &row.id)?;
        let issued = self
            .issue_for(
                &row.id,
                app,
                group,
                ctx,
                &row.cert_type,
                row.public_key_der.as_deref(),
                &row.subject_name,
                &row.domain_names,
            )
            .await?;
        let approval = Approval {
            by: AUTO_APPROVER,
            at: now(),
            issued: &issued,
            audit: AuditLine {
                actor: AUTO_APPROVER,
                action: "request.approve",
                target: &row.id,
                detail: format!(
                    "issued serial {} by CA {}",
                    issued.cert_serial, issued.ca_serial
                ),
            },
        };
        self.store
            .insert_request_audited(row, submitted, Some(&approval))
            .await
    }

    /// Issues the certificate of request `id` with the group's active CA (as `ctx` read it,
    /// with the application and group); the profile comes from the registration and the
    /// group, never from the CSR.
    #[allow(clippy::too_many_arguments)]
    async fn issue_for(
        &self,
        id: &str,
        app: &ApplicationRow,
        group: &GroupRow,
        ctx: &IssueContext,
        cert_type: &str,
        public_key_der: Option<&[u8]>,
        subject_name: &str,
        domain_names: &[String],
    ) -> Result<Issued> {
        let t = CertType::parse(cert_type).ok_or_else(|| {
            VaultError::InvalidState(format!("request {id} has unknown type {cert_type}"))
        })?;
        let ca = self
            .signing_ca(&group.id, t, ctx.active_ca_serial(t.id()))
            .await?;
        let spki = public_key_der
            .ok_or_else(|| VaultError::InvalidState(format!("request {id} has no public key")))?;
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for n in domain_names {
            match n.parse::<std::net::IpAddr>() {
                Ok(ip) => ips.push(ip),
                Err(_) => dns.push(n.clone()),
            }
        }
        let subject = if subject_name.is_empty() {
            let mut dn = DistinguishedName::new();
            let name = app
                .application_names
                .first()
                .map(|n| n.text.trim().chars().take(64).collect::<String>())
                .unwrap_or_default();
            // X.520 limits a common name to 64 characters.
            dn.push(DnType::CommonName, name);
            dn
        } else {
            parse_subject(subject_name)?
        };
        let key_is_rsa = csr::spki_is_rsa(spki);
        let issued = ca::issue(
            &ca,
            &ca::IssueSpec {
                subject,
                application_uri: Some(&app.application_uri),
                dns_names: &dns,
                ip_addresses: &ips,
                public_key_spki: spki,
                lifetime_days: group.issued_lifetime_days,
                crl_url: self.crl_url(&ca.row.serial),
                group_type: &group.group_type,
                key_is_rsa,
            },
        )?;
        Ok(Issued {
            cert_der: issued.der,
            cert_serial: issued.serial,
            ca_serial: ca.row.serial.clone(),
            not_after: issued.not_after,
        })
    }

    pub async fn reject(&self, who: &Principal, id: &str) -> Result<()> {
        let req = self.request(id).await?;
        workflow::check(Action::Reject, req.state, id)?;
        let line = AuditLine {
            actor: &who.name,
            action: "request.reject",
            target: id,
            detail: String::new(),
        };
        if !self
            .store
            .reject_request_audited(id, &who.name, now(), &line)
            .await?
        {
            return Err(VaultError::InvalidState(format!(
                "request {id} changed state meanwhile"
            )));
        }
        Ok(())
    }

    pub async fn accept(&self, who: &Principal, id: &str) -> Result<()> {
        let req = self.request(id).await?;
        workflow::check(Action::Accept, req.state, id)?;
        let line = AuditLine {
            actor: &who.name,
            action: "request.accept",
            target: id,
            detail: String::new(),
        };
        if !self
            .store
            .accept_request_audited(id, &who.name, now(), &line)
            .await?
        {
            return Err(VaultError::InvalidState(format!(
                "request {id} changed state meanwhile"
            )));
        }
        Ok(())
    }

    pub async fn revoke(&self, who: &Principal, id: &str) -> Result<()> {
        let req = self.request(id).await?;
        workflow::check(Action::Revoke, req.state, id)?;
        self.revoke_row(who, &req, "").await
    }

    async fn revoke_row(&self, who: &Principal, req: &RequestRow, why: &str) -> Result<()> {
        let line = AuditLine {
            actor: &who.name,
            action: "request.revoke",
            target: &req.id,
            detail: format!("serial {} {why}", req.cert_serial.as_deref().unwrap_or("")),
        };
        if !self
            .store
            .revoke_request_audited(&req.id, &who.name, now(), &line)
            .await?
        {
            return Err(VaultError::InvalidState(format!(
                "request {} changed state meanwhile",
                req.id
            )));
        }
        if let Some(ca) = &req.ca_serial {
            self.resign_crl(ca).await?;
        }
        Ok(())
    }

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

    // ---------------------------------------------------------------- distribution

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
        tracing::info!(
            ca = ca_serial,
            number,
            revoked = revoked.len(),
            "signed CRL"
        );
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
        Ok(CertificateStatus {
            update_required: !reasons.is_empty(),
            reasons,
            certificate: req.cert_der.as_deref().map(ca::describe).transpose()?,
        })
    }

    pub async fn audit(&self, after: i64, limit: i64) -> Result<AuditList> {
        Ok(AuditList {
            entries: self
                .store
                .audit_entries(after, limit.clamp(1, 1000))
                .await?,
        })
    }
}

/// A new request id: a UUID version 7, time-ordered in its first 48 bits and random in the
/// other 74. Ids that grow with time append to the request table's id index instead of
/// landing on a random page of it, which saves a page write per request in every commit.
fn request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// DER SubjectPublicKeyInfo of a generated key.
fn key_spki(key: &rcgen::KeyPair) -> Result<Vec<u8>> {
    use rcgen::PublicKeyData;
    Ok(key.subject_public_key_info())
}

/// `CN=name, O=org, ...` with the attribute types an application subject uses.
pub fn parse_subject(s: &str) -> Result<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            VaultError::InvalidArgument(format!("subjectName part '{part}' is not KEY=value"))
        })?;
        let v = v.trim();
        if v.is_empty() || v.len() > 64 {
            return Err(VaultError::InvalidArgument(format!(
                "subjectName value of '{k}' must have 1 to 64 characters"
            )));
        }
        let ty = match k.trim().to_ascii_uppercase().as_str() {
            "CN" => DnType::CommonName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "C" => DnType::CountryName,
            "ST" => DnType::StateOrProvinceName,
            "L" => DnType::LocalityName,
            "DC" => DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]),
            other => {
                return Err(VaultError::InvalidArgument(format!(
                    "subjectName attribute '{other}' is not supported (CN, O, OU, C, ST, L, DC)"
                )))
            }
        };
        dn.push(ty, v);
    }
    if dn.get(&DnType::CommonName).is_none() {
        return Err(VaultError::InvalidArgument("subjectName needs a CN".into()));
    }
    Ok(dn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_take_known_attributes_and_need_a_cn() {
        let dn = parse_subject("CN=plc1, O=Plant, OU=Line 1, C=DE").expect("valid");
        assert!(dn.get(&DnType::CommonName).is_some());
        assert!(dn.get(&DnType::OrganizationName).is_some());
        for bad in [
            "O=Plant",
            "CN=",
            "CN=x, EMAIL=a@b",
            "CN x",
            &format!("CN={}", "a".repeat(65)),
        ] {
            assert!(parse_subject(bad).is_err(), "{bad}");
        }
    }
}
