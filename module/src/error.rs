//! The module's one error type, and the single place it becomes a wire answer.
//!
//! Every failure carries the OPC UA status that best names it, so that HTTP callers, MQTT RPC
//! callers and the twin API all see the same `symbolicId` for the same cause.

use opcua::types::StatusCode;

/// How a failure should be answered on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is wrong (malformed JSON, node id, value): HTTP 400.
    BadRequest,
    /// Missing or wrong credential: HTTP 401.
    Unauthorized,
    /// A named thing does not exist (certificate, discovery request): HTTP 404.
    NotFound,
    /// The method is not one the module implements: HTTP 501.
    NotImplemented,
    /// Request body too large: HTTP 413.
    TooLarge,
    /// The server or the module could not be reached or is overloaded: HTTP 503.
    Unavailable,
    /// The server did not answer in time: HTTP 504.
    Timeout,
    /// The OPC UA server answered with a Bad status; carried in `errorInfo` like OPC Publisher.
    Service,
    /// A fault inside the module: HTTP 500.
    Internal,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{status_name}: {message}")]
pub struct ServiceError {
    pub kind: ErrorKind,
    pub status: StatusCode,
    status_name: &'static str,
    pub message: String,
}

impl ServiceError {
    pub fn new(kind: ErrorKind, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            kind,
            status,
            status_name: symbol(status),
            message: message.into(),
        }
    }

    pub fn bad_request(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, status, message)
    }

    pub fn service(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Service, status, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, StatusCode::BadInternalError, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, StatusCode::BadNotFound, message)
    }

    /// Classifies a failure reported by the OPC UA stack.
    pub fn from_opcua(err: &opcua::types::Error, context: &str) -> Self {
        Self::from_status(err.status(), format!("{context}: {err}"))
    }

    pub fn from_status(status: StatusCode, message: impl Into<String>) -> Self {
        let kind = match status.sub_code() {
            s if s == StatusCode::BadTimeout.sub_code()
                || s == StatusCode::BadRequestTimeout.sub_code() =>
            {
                ErrorKind::Timeout
            }
            s if s == StatusCode::BadNotConnected.sub_code()
                || s == StatusCode::BadConnectionClosed.sub_code()
                || s == StatusCode::BadCommunicationError.sub_code()
                || s == StatusCode::BadServerNotConnected.sub_code()
                || s == StatusCode::BadTooManySessions.sub_code()
                || s == StatusCode::BadTcpEndpointUrlInvalid.sub_code() =>
            {
                ErrorKind::Unavailable
            }
            _ => ErrorKind::Service,
        };
        Self::new(kind, status, message)
    }

    pub fn symbol(&self) -> &'static str {
        self.status_name
    }
}

/// The symbolic name of a status (`BadNodeIdUnknown`), without the info bits.
pub fn symbol(status: StatusCode) -> &'static str {
    status.sub_code().name()
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;
