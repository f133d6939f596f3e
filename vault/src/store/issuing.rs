//! What issuing a certificate reads, in one visit to the database.
//!
//! Why: a submission needs the application, the group and the group's signing CA, and each
//! read through the pool costs an acquire, the statement and the ping sqlx sends when the
//! connection is handed back (round trips to the connection's worker thread, or to the
//! PostgreSQL server). Profiles of `iiot bench vault` showed those hand-offs as a main cost of
//! a certificate; reading the three on one connection saves two of them per request. Nothing
//! is cached: every request still reads the current registration, policy and active CA.

use super::{ApplicationRow, GroupRow, Store};
use crate::error::Result;

/// An application, a certificate group and the group's signing CAs, as read together.
#[derive(Debug, Clone)]
pub struct IssueContext {
    pub application: Option<ApplicationRow>,
    pub group: Option<GroupRow>,
    /// (certificate type id, serial) of each type's active CA; empty when not asked for.
    pub active_cas: Vec<(String, String)>,
}

impl IssueContext {
    /// The serial of the active CA of `cert_type` (an OPC UA type id).
    pub fn active_ca_serial(&self, cert_type: &str) -> Option<&str> {
        self.active_cas
            .iter()
            .find(|(t, _)| t == cert_type)
            .map(|(_, s)| s.as_str())
    }
}

impl Store {
    /// Reads application `app_id`, group `group_id` and the group's active CA serials on one
    /// pooled connection. The serials are read only when a certificate will be issued now:
    /// `approving` (an approver's call) or under the group's auto-approve policy.
    pub async fn issue_context(
        &self,
        app_id: &str,
        group_id: &str,
        approving: bool,
    ) -> Result<IssueContext> {
        if let Some(reads) = &self.reads {
            match reads.issue_context(app_id, group_id, approving) {
                Err(e) if reads.falls_back(&e) => {}
                done => return done,
            }
        }
        let mut conn = self.pool().acquire().await?;
        let application = Self::application_on(&mut *conn, app_id).await?;
        let group = Self::group_on(&mut *conn, group_id).await?;
        let active_cas = match &group {
            Some(g) if approving || g.auto_approve => {
                Self::active_ca_serials_on(&mut *conn, group_id).await?
            }
            _ => Vec::new(),
        };
        Ok(IssueContext {
            application,
            group,
            active_cas,
        })
    }
}
