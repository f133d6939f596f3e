//! The one error document of every REST answer and MQTT RPC error: RFC 9457
//! `application/problem+json`, carrying the OPC UA status that names the failure, so an HTTP
//! caller, an MQTT caller and a GDS client see the same `symbolicId` for the same cause.
//!
//! The services that do not link an OPC UA stack (twin API, vault, auth) take their symbols
//! from [`StatusSymbol`]; the module passes the symbol and code of the stack's status as is.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Media type of a [`Problem`].
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The OPC UA status symbols the cloud services answer with, and their codes (OPC UA Part 6,
/// StatusCode.csv). One table, so a symbol never travels with another symbol's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusSymbol {
    BadUnexpectedError,
    BadInternalError,
    BadDecodingError,
    BadTimeout,
    BadServerNotConnected,
    BadNothingToDo,
    BadCertificateInvalid,
    BadCertificateUriInvalid,
    BadUserAccessDenied,
    BadIdentityTokenInvalid,
    BadNotFound,
    BadOutOfService,
    BadEntryExists,
    BadInvalidArgument,
    BadInvalidState,
    BadRequestTooLarge,
    BadRequestNotAllowed,
    BadNotSupported,
    BadCertificatePolicyCheckFailed,
}

impl StatusSymbol {
    /// Every symbol of the table, for look-ups by name and for tests.
    pub const ALL: &'static [StatusSymbol] = &[
        Self::BadUnexpectedError,
        Self::BadInternalError,
        Self::BadDecodingError,
        Self::BadTimeout,
        Self::BadServerNotConnected,
        Self::BadNothingToDo,
        Self::BadCertificateInvalid,
        Self::BadCertificateUriInvalid,
        Self::BadUserAccessDenied,
        Self::BadIdentityTokenInvalid,
        Self::BadNotFound,
        Self::BadOutOfService,
        Self::BadEntryExists,
        Self::BadInvalidArgument,
        Self::BadInvalidState,
        Self::BadRequestTooLarge,
        Self::BadRequestNotAllowed,
        Self::BadNotSupported,
        Self::BadCertificatePolicyCheckFailed,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::BadUnexpectedError => "BadUnexpectedError",
            Self::BadInternalError => "BadInternalError",
            Self::BadDecodingError => "BadDecodingError",
            Self::BadTimeout => "BadTimeout",
            Self::BadServerNotConnected => "BadServerNotConnected",
            Self::BadNothingToDo => "BadNothingToDo",
            Self::BadCertificateInvalid => "BadCertificateInvalid",
            Self::BadCertificateUriInvalid => "BadCertificateUriInvalid",
            Self::BadUserAccessDenied => "BadUserAccessDenied",
            Self::BadIdentityTokenInvalid => "BadIdentityTokenInvalid",
            Self::BadNotFound => "BadNotFound",
            Self::BadOutOfService => "BadOutOfService",
            Self::BadEntryExists => "BadEntryExists",
            Self::BadInvalidArgument => "BadInvalidArgument",
            Self::BadInvalidState => "BadInvalidState",
            Self::BadRequestTooLarge => "BadRequestTooLarge",
            Self::BadRequestNotAllowed => "BadRequestNotAllowed",
            Self::BadNotSupported => "BadNotSupported",
            Self::BadCertificatePolicyCheckFailed => "BadCertificatePolicyCheckFailed",
        }
    }

    /// The 32-bit status code (severity and sub-code, no info bits).
    pub const fn code(self) -> u32 {
        match self {
            Self::BadUnexpectedError => 0x8001_0000,
            Self::BadInternalError => 0x8002_0000,
            Self::BadDecodingError => 0x8007_0000,
            Self::BadTimeout => 0x800A_0000,
            Self::BadServerNotConnected => 0x800D_0000,
            Self::BadNothingToDo => 0x800F_0000,
            Self::BadCertificateInvalid => 0x8012_0000,
            Self::BadCertificateUriInvalid => 0x8017_0000,
            Self::BadUserAccessDenied => 0x801F_0000,
            Self::BadIdentityTokenInvalid => 0x8020_0000,
            Self::BadNotFound => 0x803E_0000,
            Self::BadOutOfService => 0x808D_0000,
            Self::BadEntryExists => 0x809F_0000,
            Self::BadInvalidArgument => 0x80AB_0000,
            Self::BadInvalidState => 0x80AF_0000,
            Self::BadRequestTooLarge => 0x80B8_0000,
            Self::BadRequestNotAllowed => 0x80E4_0000,
            Self::BadNotSupported => 0x803D_0000,
            Self::BadCertificatePolicyCheckFailed => 0x8114_0000,
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for StatusSymbol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An RFC 9457 problem document with the OPC UA status of the failure. The services write
/// every member but `instance`; read from elsewhere (OPC Publisher answers RFC 7807 bodies
/// without an OPC UA status) absent members stay empty and extension members are kept.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// `urn:iiot:problem:{symbolicId}`.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty", default)]
    pub kind: String,
    /// The symbol again, as the short human-readable summary.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub title: String,
    /// The HTTP status of the answer (also sent as MQTT RPC's `StatusCode` property).
    #[serde(default)]
    pub status: u16,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub instance: Option<String>,
    /// The OPC UA status symbol, e.g. `BadNodeIdUnknown`.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub symbolic_id: String,
    /// The OPC UA status code of `symbolicId`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status_code: Option<u32>,
    /// Extension members (e.g. `traceId`) are kept rather than dropped.
    #[serde(flatten, default, skip_serializing_if = "Map::is_empty")]
    pub extensions: Map<String, Value>,
}

impl Problem {
    /// A problem named by any OPC UA status (the module passes its stack's statuses).
    pub fn new(status: u16, symbol: &str, code: u32, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:iiot:problem:{symbol}"),
            title: symbol.to_string(),
            status,
            detail: detail.into(),
            symbolic_id: symbol.to_string(),
            status_code: Some(code),
            ..Self::default()
        }
    }

    /// A problem named by one of the cloud services' symbols.
    pub fn of(status: u16, symbol: StatusSymbol, detail: impl Into<String>) -> Self {
        Self::new(status, symbol.name(), symbol.code(), detail)
    }

    /// The document as JSON bytes; it cannot fail for this shape, and an empty body would
    /// still be an answer.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_round_trip_and_codes_are_bad() {
        for s in StatusSymbol::ALL {
            assert_eq!(StatusSymbol::from_name(s.name()), Some(*s));
            assert_eq!(s.code() & 0xC000_0000, 0x8000_0000, "{s} is not Bad");
            assert_eq!(s.code() & 0xFFFF, 0, "{s} carries info bits");
        }
        let mut codes: Vec<u32> = StatusSymbol::ALL.iter().map(|s| s.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(
            codes.len(),
            StatusSymbol::ALL.len(),
            "two symbols share a code"
        );
    }

    #[test]
    fn problem_has_the_wire_shape() {
        let p = Problem::of(404, StatusSymbol::BadNotFound, "no such endpoint");
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["type"], "urn:iiot:problem:BadNotFound");
        assert_eq!(v["title"], "BadNotFound");
        assert_eq!(v["status"], 404);
        assert_eq!(v["symbolicId"], "BadNotFound");
        assert_eq!(v["statusCode"], 0x803E_0000u32);
        let back: Problem = serde_json::from_slice(&p.to_json()).unwrap();
        assert_eq!(back, p);
    }
}
