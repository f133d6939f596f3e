//! The vault's one error type, and its translation into an HTTP problem+json answer.
//!
//! Every failure carries the OPC UA status symbol a GDS client would see for it, so the REST API
//! and the later OPC UA Directory interface report the same thing. The mapping to HTTP happens
//! once, here.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use iiot_auth::AuthError;

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

    /// The OPC UA status symbol and code of the failure.
    pub fn status(&self) -> (&'static str, u32) {
        match self {
            VaultError::InvalidArgument(_) => ("BadInvalidArgument", 0x80AB_0000),
            VaultError::CertificateInvalid(_) => ("BadCertificateInvalid", 0x8012_0000),
            VaultError::PolicyCheckFailed(_) => ("BadCertificatePolicyCheckFailed", 0x8114_0000),
            VaultError::UriInvalid(_) => ("BadCertificateUriInvalid", 0x8017_0000),
            VaultError::NotFound(_) => ("BadNotFound", 0x803E_0000),
            VaultError::InvalidState(_) => ("BadInvalidState", 0x80AF_0000),
            VaultError::AlreadyExists(_) => ("BadEntryExists", 0x809F_0000),
            VaultError::NotAllowed(_) => ("BadRequestNotAllowed", 0x80E4_0000),
            VaultError::Auth(_) => ("BadUserAccessDenied", 0x801F_0000),
            _ => ("BadInternalError", 0x8002_0000),
        }
    }
}

impl IntoResponse for VaultError {
    fn into_response(self) -> Response {
        if let VaultError::Auth(e) = self {
            return e.into_response();
        }
        let status = self.http_status();
        let (symbol, code) = self.status();
        // Internal details (SQL, crypto library messages) go to the log, not to the caller.
        let detail = if status.is_server_error() {
            tracing::error!(error = %self, "vault request failed");
            "internal error; see the vault log".to_string()
        } else {
            self.to_string()
        };
        let body = serde_json::json!({
            "type": format!("urn:iiot:problem:{symbol}"),
            "title": symbol,
            "status": status.as_u16(),
            "detail": detail,
            "symbolicId": symbol,
            "statusCode": code,
        });
        let mut res = (status, axum::Json(body)).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res
    }
}

pub type Result<T, E = VaultError> = std::result::Result<T, E>;
