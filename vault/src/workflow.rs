//! The request state machine: New → Approved | Rejected, Approved → Accepted, Approved |
//! Accepted → Revoked. Pure rules, so every refusal says which state the request is in and
//! what the action needs; the store enforces the same transitions atomically.

use crate::error::{Result, VaultError};
use crate::model::CertificateRequestState as S;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Approve,
    Reject,
    Accept,
    Revoke,
    Fetch,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Accept => "accept",
            Action::Revoke => "revoke",
            Action::Fetch => "fetch",
        }
    }

    /// The states the action may start from.
    fn allowed_states(self) -> &'static [S] {
        match self {
            Action::Approve | Action::Reject => &[S::New],
            Action::Accept => &[S::Approved],
            Action::Revoke => &[S::Approved, S::Accepted],
            Action::Fetch => &[S::Approved, S::Accepted, S::Revoked],
        }
    }
}

/// `Ok` when `action` may run on a request in `state`, else a BadInvalidState error.
pub fn check(action: Action, state: S, request_id: &str) -> Result<()> {
    let allowed = action.allowed_states();
    if allowed.contains(&state) {
        return Ok(());
    }
    let need = allowed
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" or ");
    Err(VaultError::InvalidState(format!(
        "cannot {} request {request_id}: it is {}, this needs {need}",
        action.as_str(),
        state.as_str()
    )))
}

/// Separation of duties: whoever submitted a request never approves it.
pub fn check_approver(submitted_by: &str, approver: &str, request_id: &str) -> Result<()> {
    if submitted_by == approver {
        return Err(VaultError::NotAllowed(format!(
            "'{approver}' submitted request {request_id} and cannot approve it: another approver must"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_the_contract() {
        assert!(check(Action::Approve, S::New, "r").is_ok());
        assert!(check(Action::Approve, S::Approved, "r").is_err());
        assert!(check(Action::Reject, S::Approved, "r").is_err());
        assert!(check(Action::Accept, S::New, "r").is_err());
        assert!(check(Action::Accept, S::Approved, "r").is_ok());
        assert!(check(Action::Revoke, S::Accepted, "r").is_ok());
        assert!(check(Action::Revoke, S::Rejected, "r").is_err());
        assert!(check(Action::Fetch, S::New, "r").is_err());
        let e = check(Action::Approve, S::Rejected, "r")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Rejected") && e.contains("New"), "{e}");
        assert!(check_approver("ops", "ops", "r").is_err());
        assert!(check_approver("ops", "sec", "r").is_ok());
    }
}
