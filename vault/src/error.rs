//! The vault's one error type, and its translation into an HTTP problem+json answer.
//!
//! Every failure carries the OPC UA status symbol a GDS client would see for it, so the REST API
//! and the later OPC UA Directory interface report the same thing. The mapping to HTTP happens
//! once, here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use iiot_api::problem::{Problem, StatusSymbol};
use iiot_auth::{problem_response, AuthError};

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A request body or parameter that is malformed or breaks a GDS rule.
    #[error("{0}")]
    InvalidArgument(String),
    /// A CSR that cannot be parsed or whose signature does not verify.
    #[error("{0}")]
    CertificateInvalid(String),
    /// A CSR whose key or extensions do not fit the group's policy.
    #[error("{0}")]
    PolicyCheckFailed(String),
    /// A CSR whose application URI differs from the registration.
    #[error("{0}")]
    UriInvalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The operation does not fit the current state (replay, out of order).
    #[error("{0}")]
    InvalidState(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// Separation of duties and similar refusals decided by the vault, not by the role.
    #[error("{0}")]
    NotAllowed(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    /// A statement run through rusqlite (the SQLite writer and inline reads).
    #[error("storage: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A group commit that failed: every caller in the batch gets its own copy of the reason,
    /// and none of them was acknowledged.
    #[error("storage commit: {0}")]
    Commit(String),
    #[error("storage migration: {0}")]
    Migration(String),
    #[error("cryptography: {0}")]
    Crypto(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl VaultError {
    fn http_status(&self) -> StatusCode {
        match self {
            VaultError::InvalidArgument(_)
            | VaultError::CertificateInvalid(_)
            | VaultError::PolicyCheckFailed(_)
            | VaultError::UriInvalid(_) => StatusCode::BAD_REQUEST,
            VaultError::NotFound(_) => StatusCode::NOT_FOUND,
            VaultError::InvalidState(_) | VaultError::AlreadyExists(_) => StatusCode::CONFLICT,
            VaultError::NotAllowed(_) => StatusCode::FORBIDDEN,
            VaultError::Auth(_) => StatusCode::UNAUTHORIZED,
            VaultError::Storage(_)
            | VaultError::Sqlite(_)
            | VaultError::Commit(_)
            | VaultError::Migration(_)
            | VaultError::Crypto(_)
            | VaultError::Config(_)
            | VaultError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OPC UA status of the failure (what a GDS client would see).
    pub fn status(&self) -> StatusSymbol {
        match self {
            VaultError::InvalidArgument(_) => StatusSymbol::BadInvalidArgument,
            VaultError::CertificateInvalid(_) => StatusSymbol::BadCertificateInvalid,
            VaultError::PolicyCheckFailed(_) => StatusSymbol::BadCertificatePolicyCheckFailed,
            VaultError::UriInvalid(_) => StatusSymbol::BadCertificateUriInvalid,
            VaultError::NotFound(_) => StatusSymbol::BadNotFound,
            VaultError::InvalidState(_) => StatusSymbol::BadInvalidState,
            VaultError::AlreadyExists(_) => StatusSymbol::BadEntryExists,
            VaultError::NotAllowed(_) => StatusSymbol::BadRequestNotAllowed,
            VaultError::Auth(_) => StatusSymbol::BadUserAccessDenied,
            _ => StatusSymbol::BadInternalError,
        }
    }
}

impl IntoResponse for VaultError {
    fn into_response(self) -> Response {
        if let VaultError::Auth(e) = self {
            return e.into_response();
        }
        let status = self.http_status();
        // Internal details (SQL, crypto library messages) go to the log, not to the caller.
        let detail = if status.is_server_error() {
            tracing::error!(error = %self, "vault request failed");
            "internal error; see the vault log".to_string()
        } else {
            self.to_string()
        };
        problem_response(&Problem::of(status.as_u16(), self.status(), detail))
    }
}

pub type Result<T, E = VaultError> = std::result::Result<T, E>;
