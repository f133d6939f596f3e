//! The hub's failures and their one mapping to IoT Hub's error responses.
//!
//! The hub's routes answer as IoT Hub does — a JSON body `{"Message": "ErrorCode:<code>;<text>",
//! "ExceptionMessage": …}` and the `iothub-errorcode` header — not with the twin API's
//! problem+json: Microsoft's service SDKs and the scripts written against IoT Hub read those.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The request itself is wrong (ids, JSON, twin limits, query syntax).
    #[error("{0}")]
    Argument(String),
    #[error("device '{0}' not found")]
    DeviceNotFound(String),
    #[error("module '{1}' on device '{0}' not found")]
    ModuleNotFound(String, String),
    #[error("device '{0}' already exists")]
    DeviceExists(String),
    #[error("module '{1}' already exists on device '{0}'")]
    ModuleExists(String, String),
    #[error("the etag in If-Match does not match: {0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("request body too large: {0}")]
    TooLarge(String),
    #[error("'{0}' is not connected, or not subscribed to direct methods")]
    NotOnline(String),
    #[error("device '{0}' has the most cloud-to-device messages waiting (50)")]
    QueueFull(String),
    #[error("'{0}' did not answer within {1} s")]
    MethodTimeout(String, u64),
    /// Could not start: key files, connection string.
    #[error("hub set-up: {0}")]
    Setup(String),
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("{0}")]
    Internal(String),
}

impl HubError {
    fn status(&self) -> StatusCode {
        match self {
            HubError::Argument(_) => StatusCode::BAD_REQUEST,
            HubError::DeviceNotFound(_) | HubError::ModuleNotFound(..) => StatusCode::NOT_FOUND,
            HubError::DeviceExists(_) | HubError::ModuleExists(..) => StatusCode::CONFLICT,
            HubError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            HubError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            HubError::Forbidden(_) | HubError::QueueFull(_) => StatusCode::FORBIDDEN,
            HubError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HubError::NotOnline(_) => StatusCode::NOT_FOUND,
            HubError::MethodTimeout(..) => StatusCode::GATEWAY_TIMEOUT,
            HubError::Setup(_) | HubError::Storage(_) | HubError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// IoT Hub's error code name for the failure.
    pub fn code(&self) -> &'static str {
        match self {
            HubError::Argument(_) => "ArgumentInvalid",
            HubError::DeviceNotFound(_) => "DeviceNotFound",
            HubError::ModuleNotFound(..) => "ModuleNotFound",
            HubError::DeviceExists(_) => "DeviceAlreadyExists",
            HubError::ModuleExists(..) => "ModuleAlreadyExistsOnDevice",
            HubError::PreconditionFailed(_) => "PreconditionFailed",
            HubError::Unauthorized(_) | HubError::Forbidden(_) => "IotHubUnauthorizedAccess",
            HubError::TooLarge(_) => "MessageTooLarge",
            HubError::QueueFull(_) => "DeviceMaximumQueueDepthExceeded",
            HubError::NotOnline(_) => "DeviceNotOnline",
            HubError::MethodTimeout(..) => "GatewayTimeout",
            HubError::Setup(_) | HubError::Storage(_) | HubError::Internal(_) => "ServerError",
        }
    }
}

impl From<crate::error::ApiError> for HubError {
    /// The shared record store speaks the twin API's error type.
    fn from(e: crate::error::ApiError) -> Self {
        use crate::error::ApiError as A;
        match e {
            A::Storage(s) => HubError::Storage(s),
            A::PreconditionFailed(t) => HubError::PreconditionFailed(t),
            A::BadRequest(m) | A::InvalidId(m) => HubError::Argument(m),
            other => HubError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        let status = self.status();
        let text = if status.is_server_error() {
            // The cause goes to the log, never to the caller.
            tracing::warn!(error = %self, "hub request failed");
            "internal error; see the twin API log".to_string()
        } else {
            self.to_string()
        };
        let tracking = uuid::Uuid::new_v4().simple().to_string();
        let body = json!({
            "Message": format!("ErrorCode:{};{text}", self.code()),
            "ExceptionMessage": format!(
                "Tracking ID:{tracking}-TimeStamp:{}",
                crate::registry::now()
            ),
        });
        let mut res = (status, axum::Json(body)).into_response();
        res.headers_mut()
            .insert("iothub-errorcode", HeaderValue::from_static(self.code()));
        res
    }
}
