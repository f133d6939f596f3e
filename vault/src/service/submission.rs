//! Submission: signing requests (a CSR) and key pair requests (the vault generates the key)
//! enter the workflow here, checked against the registration and the group; under a group's
//! auto-approve policy they leave it approved in the same commit. Also reads requests back.

use iiot_auth::Principal;

use super::{not_found, parse_subject, Vault, AUTO_APPROVER};
use crate::csr;
use crate::error::{Result, VaultError};
use crate::model::*;
use crate::store::{
    ApplicationRow, Approval, AuditLine, GroupRow, IssueContext, NewRequest, RequestRow,
};
use crate::workflow;

impl Vault {
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
        if names.is_empty() && app.application_type.is_server() {
            // A CSR naming no host (node-opcua's CreateSigningRequest names only the URI)
            // gets the hosts the server registered its discovery URLs with, as the OPC
            // Foundation's GDS does: clients check the host name of a server's certificate.
            names = crate::validate::certifiable_hosts(&app.discovery_urls);
        }
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
