//! `application/problem+json` answers (RFC 9457) carrying the OPC UA status of the failure.

use axum::http::{header, StatusCode as HttpStatus};
use axum::response::{IntoResponse, Response};

use crate::api::problem::{Problem, PROBLEM_CONTENT_TYPE};

use crate::error::{ErrorKind, ServiceError};

pub fn http_status(kind: ErrorKind) -> HttpStatus {
    match kind {
        ErrorKind::BadRequest => HttpStatus::BAD_REQUEST,
        ErrorKind::Unauthorized => HttpStatus::UNAUTHORIZED,
        ErrorKind::NotFound => HttpStatus::NOT_FOUND,
        ErrorKind::NotImplemented => HttpStatus::NOT_IMPLEMENTED,
        ErrorKind::TooLarge => HttpStatus::PAYLOAD_TOO_LARGE,
        ErrorKind::Unavailable => HttpStatus::SERVICE_UNAVAILABLE,
        ErrorKind::Timeout => HttpStatus::GATEWAY_TIMEOUT,
        ErrorKind::Service => HttpStatus::BAD_GATEWAY,
        ErrorKind::Internal => HttpStatus::INTERNAL_SERVER_ERROR,
    }
}

/// The problem document, shared by HTTP and MQTT RPC answers.
pub fn problem_body(err: &ServiceError) -> Problem {
    Problem::new(
        http_status(err.kind).as_u16(),
        err.symbol(),
        err.status.bits(),
        err.message.clone(),
    )
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let status = http_status(self.kind);
        let mut res = (status, problem_body(&self).to_json()).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if self.kind == ErrorKind::Unauthorized {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("ApiKey"),
            );
        }
        res
    }
}
