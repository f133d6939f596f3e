//! Typed errors of twin-api and their one mapping to HTTP: `application/problem+json` with the
//! OPC UA status symbol, the shape the module's own HTTP API answers with.

use std::net::SocketAddr;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use iiot_api::problem::{Problem, StatusSymbol, PROBLEM_CONTENT_TYPE};
use iiot_auth::problem_response;
use serde_json::Value;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum TwinApiError {
    #[error("HTTP port {0} is already in use; choose another with --http-port")]
    PortInUse(u16),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("invalid --mqtt-url: {0}")]
    MqttUrl(String),
    #[error("TLS to the MQTT broker: {0}")]
    MqttTls(iiot_mqtt_tls::TlsError),
    #[error("cannot prepare data directory {0}: {1}")]
    DataDir(std::path::PathBuf, std::io::Error),
    #[error("database {url}: {source} (check --database-url)")]
    Database {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("HTTPS (--tls-cert/--tls-key): {0}")]
    Tls(String),
    #[error(transparent)]
    Hub(#[from] crate::hub::HubError),
}

/// A request that failed; turned into problem+json once, in [`IntoResponse`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidId(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the record changed: If-Match '{0}' does not match its etag")]
    PreconditionFailed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Disabled(String),
    #[error("{0}")]
    Offline(String),
    #[error("module '{module}' did not answer {method} within {millis} ms")]
    Timeout {
        module: String,
        method: String,
        millis: u128,
    },
    #[error("request body too large: {0}")]
    TooLarge(String),
    /// The module answered with an error: its status and problem body are passed on.
    #[error("module answered {status}")]
    Module { status: u16, body: Value },
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    /// No credential (401) or not the role the route needs (403); answered by iiot-auth.
    #[error(transparent)]
    Auth(#[from] iiot_auth::AuthError),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::InvalidId(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::Conflict(_) | ApiError::Disabled(_) => StatusCode::CONFLICT,
            ApiError::Offline(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Module { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            ApiError::Storage(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Auth(iiot_auth::AuthError::Missing | iiot_auth::AuthError::Invalid) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Auth(iiot_auth::AuthError::Forbidden { .. }) => StatusCode::FORBIDDEN,
            ApiError::Auth(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OPC UA status of the failure; a module's answer keeps the module's own symbol.
    pub fn symbol(&self) -> &str {
        match self {
            ApiError::Module { body, .. } => body
                .get("symbolicId")
                .and_then(Value::as_str)
                .unwrap_or(StatusSymbol::BadUnexpectedError.name()),
            ApiError::Auth(e) => e.symbol().name(),
            _ => self.own_symbol().name(),
        }
    }

    fn own_symbol(&self) -> StatusSymbol {
        match self {
            ApiError::BadRequest(_) => StatusSymbol::BadDecodingError,
            ApiError::InvalidId(_) => StatusSymbol::BadInvalidArgument,
            ApiError::NotFound(_) => StatusSymbol::BadNotFound,
            ApiError::PreconditionFailed(_) => StatusSymbol::BadInvalidState,
            ApiError::Conflict(_) => StatusSymbol::BadEntryExists,
            ApiError::Disabled(_) => StatusSymbol::BadOutOfService,
            ApiError::Offline(_) => StatusSymbol::BadServerNotConnected,
            ApiError::Timeout { .. } => StatusSymbol::BadTimeout,
            ApiError::TooLarge(_) => StatusSymbol::BadRequestTooLarge,
            ApiError::Module { .. } => StatusSymbol::BadUnexpectedError,
            ApiError::Storage(_) | ApiError::Internal(_) => StatusSymbol::BadInternalError,
            ApiError::Auth(e) => e.symbol(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Auth(e) = self {
            return e.into_response();
        }
        let status = self.status();
        if status.is_server_error() && !matches!(self, ApiError::Module { .. }) {
            tracing::warn!(error = %self, "request failed");
        }
        match &self {
            // The module's own problem document, so the caller sees the OPC UA status of the
            // operation that failed on the plant side.
            ApiError::Module { body, .. } if body.get("symbolicId").is_some() => {
                let mut res = (status, axum::Json(body.clone())).into_response();
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
                );
                res
            }
            // Storage and internal faults: the cause goes to the log, never to the caller.
            ApiError::Storage(_) | ApiError::Internal(_) => problem_response(&Problem::of(
                status.as_u16(),
                self.own_symbol(),
                "internal error; see the twin API log",
            )),
            _ => problem_response(&Problem::of(
                status.as_u16(),
                self.own_symbol(),
                self.to_string(),
            )),
        }
    }
}
