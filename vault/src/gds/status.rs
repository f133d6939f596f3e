//! The OPC UA status a GDS method answers for a vault error: the symbol the REST problem
//! carries ([`VaultError::status`]), as a status code. Internal failures are logged here and
//! reach the client as Bad_InternalError without their details.

use iiot_api::problem::StatusSymbol as S;
use opcua::types::StatusCode;

use crate::error::VaultError;

pub fn status_of(e: VaultError) -> StatusCode {
    let code = match e.status() {
        S::BadInvalidArgument => StatusCode::BadInvalidArgument,
        S::BadCertificateInvalid => StatusCode::BadCertificateInvalid,
        S::BadCertificatePolicyCheckFailed => StatusCode::BadCertificatePolicyCheckFailed,
        S::BadCertificateUriInvalid => StatusCode::BadCertificateUriInvalid,
        S::BadNotFound => StatusCode::BadNotFound,
        S::BadInvalidState => StatusCode::BadInvalidState,
        S::BadEntryExists => StatusCode::BadEntryExists,
        S::BadRequestNotAllowed => StatusCode::BadRequestNotAllowed,
        S::BadUserAccessDenied => StatusCode::BadUserAccessDenied,
        S::BadNothingToDo => StatusCode::BadNothingToDo,
        S::BadNotSupported => StatusCode::BadNotSupported,
        _ => StatusCode::BadInternalError,
    };
    if code == StatusCode::BadInternalError {
        tracing::error!(error = %e, "GDS method failed");
    } else {
        tracing::info!(status = %code, reason = %e, "GDS method refused");
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_their_symbol() {
        assert_eq!(
            status_of(VaultError::UriInvalid("x".into())),
            StatusCode::BadCertificateUriInvalid
        );
        assert_eq!(
            status_of(VaultError::NotAllowed("x".into())),
            StatusCode::BadRequestNotAllowed
        );
        assert_eq!(
            status_of(VaultError::Crypto("detail".into())),
            StatusCode::BadInternalError
        );
    }
}
