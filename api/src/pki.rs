//! Certificate models: the publisher's own PKI stores (`/v2/pki/...`) and
//! a server endpoint's certificate chain (`GetEndpointCertificate`).

use serde::{Deserialize, Serialize};

use super::wire::ByteString;

string_enum! {
    /// A PKI store of the publisher. The `{store}` route segment and the RPC
    /// `store` argument are parsed case-sensitively by OPC Publisher, so
    /// callers must send these exact names.
    pub enum CertificateStoreName {
        Application = 0,
        Rejected = 1,
        Trusted = 2,
        Https = 3,
        User = 4,
        Issuer = 5,
        HttpsIssuer = 6,
        UserIssuer = 7,
    }
}

impl CertificateStoreName {
    /// Exact-case lookup, matching OPC Publisher's route parsing.
    pub fn from_route(segment: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.as_str() == segment)
    }
}

flags_enum! {
    /// X509 chain validation problems (the .NET `X509ChainStatusFlags`).
    /// The chain model carries a list of these, one flag per entry.
    pub struct X509ChainStatus {
        const NOT_TIME_VALID = 0x1 => "NotTimeValid";
        const REVOKED = 0x4 => "Revoked";
        const NOT_SIGNATURE_VALID = 0x8 => "NotSignatureValid";
        const NOT_VALID_FOR_USAGE = 0x10 => "NotValidForUsage";
        const UNTRUSTED_ROOT = 0x20 => "UntrustedRoot";
        const REVOCATION_STATUS_UNKNOWN = 0x40 => "RevocationStatusUnknown";
        const CYCLIC = 0x80 => "Cyclic";
        const INVALID_EXTENSION = 0x100 => "InvalidExtension";
        const INVALID_POLICY_CONSTRAINTS = 0x200 => "InvalidPolicyConstraints";
        const INVALID_BASIC_CONSTRAINTS = 0x400 => "InvalidBasicConstraints";
        const INVALID_NAME_CONSTRAINTS = 0x800 => "InvalidNameConstraints";
        const HAS_NOT_SUPPORTED_NAME_CONSTRAINT = 0x1000 => "HasNotSupportedNameConstraint";
        const HAS_NOT_DEFINED_NAME_CONSTRAINT = 0x2000 => "HasNotDefinedNameConstraint";
        const HAS_NOT_PERMITTED_NAME_CONSTRAINT = 0x4000 => "HasNotPermittedNameConstraint";
        const HAS_EXCLUDED_NAME_CONSTRAINT = 0x8000 => "HasExcludedNameConstraint";
        const PARTIAL_CHAIN = 0x10000 => "PartialChain";
        const CTL_NOT_TIME_VALID = 0x20000 => "CtlNotTimeValid";
        const CTL_NOT_SIGNATURE_VALID = 0x40000 => "CtlNotSignatureValid";
        const CTL_NOT_VALID_FOR_USAGE = 0x80000 => "CtlNotValidForUsage";
        const HAS_WEAK_SIGNATURE = 0x100000 => "HasWeakSignature";
        const OFFLINE_REVOCATION = 0x1000000 => "OfflineRevocation";
        const NO_ISSUANCE_CHAIN_POLICY = 0x2000000 => "NoIssuanceChainPolicy";
        const EXPLICIT_DISTRUST = 0x4000000 => "ExplicitDistrust";
        const HAS_NOT_SUPPORTED_CRITICAL_EXTENSION = 0x8000000 => "HasNotSupportedCriticalExtension";
    }
}

/// One certificate as listed from a store or an endpoint chain.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct X509CertificateModel {
    /// Distinguished name, .NET formatting (`CN=..., O=...`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subject: Option<String>,
    /// SHA-1 thumbprint, upper-case hex; the key for remove / approve.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub thumbprint: Option<String>,
    /// Upper-case hex.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub serial_number: Option<String>,
    /// ISO-8601 date-time.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub not_before_utc: Option<String>,
    /// ISO-8601 date-time.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub not_after_utc: Option<String>,
    /// Only written when true.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub self_signed: Option<bool>,
    /// The certificate exported as PKCS#12 (no private key when listing).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pfx: Option<ByteString>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub has_private_key: Option<bool>,
}

/// A certificate chain, leaf first, plus any validation problems found.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct X509CertificateChainModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub chain: Option<Vec<X509CertificateModel>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<Vec<X509ChainStatus>>,
}

/// RPC argument object of `AddCertificate` (HTTP passes these as route,
/// query and body instead). Property names are the C# parameter names.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AddCertificateArgs {
    pub store: String,
    /// PKCS#12 or DER certificate.
    pub pfx_blob: ByteString,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub password: Option<String>,
}

/// RPC argument object of `RemoveCertificate`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RemoveCertificateArgs {
    pub store: String,
    pub thumbprint: String,
}

/// RPC argument object of `AddCertificateRevocationList` and
/// `RemoveCertificateRevocationList`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CertificateRevocationListArgs {
    pub store: String,
    /// DER encoded CRL.
    #[serde(default)]
    pub crl: ByteString,
}
