//! Decisions on a request after submission: approve (which issues the certificate), reject,
//! accept and revoke, each a conditional state change checked by the [`workflow`] and written
//! with its audit line.

use iiot_auth::Principal;

use super::Vault;
use crate::error::{Result, VaultError};
use crate::model::*;
use crate::store::{AuditLine, RequestRow};
use crate::workflow::{self, Action};

impl Vault {
    pub async fn approve(&self, who: &Principal, id: &str) -> Result<()> {
        let req = self.request(id).await?;
        workflow::check(Action::Approve, req.state, id)?;
        workflow::check_approver(&req.submitted_by, &who.name, id)?;
        self.approve_as(&who.name, id).await?;
        // A push job may be waiting for this request.
        self.push_wake.notify_one();
        Ok(())
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
        self.push_wake.notify_one();
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

    pub(super) async fn revoke_row(
        &self,
        who: &Principal,
        req: &RequestRow,
        why: &str,
    ) -> Result<()> {
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
}
