//! The REST API's data shapes (camelCase JSON). Field and enum names follow the OPC Vault
//! contract (Azure Industrial-IoT 2.6.146, `docs/api/vault`) and the GDS ApplicationRecord.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Seconds since the Unix epoch, the vault's clock in storage.
pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// RFC 3339 text of a stored time.
pub fn rfc3339(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ApplicationType {
    Server,
    Client,
    ClientAndServer,
    DiscoveryServer,
}

impl ApplicationType {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationType::Server => "Server",
            ApplicationType::Client => "Client",
            ApplicationType::ClientAndServer => "ClientAndServer",
            ApplicationType::DiscoveryServer => "DiscoveryServer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }

    /// Servers (and discovery servers) must be reachable, so they need a discovery URL.
    pub fn is_server(self) -> bool {
        !matches!(self, ApplicationType::Client)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LocalizedText {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub locale: String,
    pub text: String,
}

/// Who did something, and when.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationContext {
    pub authority_id: String,
    pub time: String,
}

impl OperationContext {
    pub fn from_parts(who: Option<String>, at: Option<i64>) -> Option<Self> {
        match (who, at) {
            (Some(authority_id), Some(at)) => Some(OperationContext {
                authority_id,
                time: rfc3339(at),
            }),
            _ => None,
        }
    }
}

/// `POST /v2/applications` and `PATCH /v2/applications/{id}` bodies. `applicationName` (the
/// registry's single default name) is accepted beside the GDS `applicationNames` list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationRequest {
    pub application_uri: Option<String>,
    pub application_type: Option<ApplicationType>,
    pub application_names: Option<Vec<LocalizedText>>,
    pub application_name: Option<String>,
    pub product_uri: Option<String>,
    pub discovery_urls: Option<Vec<String>>,
    #[serde(alias = "capabilities")]
    pub server_capabilities: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationRecord {
    pub application_id: String,
    pub application_uri: String,
    pub application_type: ApplicationType,
    pub application_names: Vec<LocalizedText>,
    pub product_uri: String,
    pub discovery_urls: Vec<String>,
    pub server_capabilities: Vec<String>,
    /// `Registered` or `Unregistered`.
    pub state: String,
    pub registered: Option<OperationContext>,
    pub updated: Option<OperationContext>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationQuery {
    pub application_uri: Option<String>,
    pub application_type: Option<ApplicationType>,
    pub application_name: Option<String>,
    #[serde(default)]
    pub include_unregistered: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationList {
    pub applications: Vec<ApplicationRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum CertificateRequestState {
    New,
    Approved,
    Rejected,
    Accepted,
    Revoked,
}

impl CertificateRequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "New",
            Self::Approved => "Approved",
            Self::Rejected => "Rejected",
            Self::Accepted => "Accepted",
            Self::Revoked => "Revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum CertificateRequestType {
    SigningRequest,
    KeyPairRequest,
}

impl CertificateRequestType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SigningRequest => "SigningRequest",
            Self::KeyPairRequest => "KeyPairRequest",
        }
    }
}

/// `PUT /v2/requests/sign`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartSigningRequest {
    pub entity_id: String,
    pub group_id: String,
    /// OPC UA certificate type (`RsaSha256ApplicationCertificateType` or short `RsaSha256`);
    /// the group's first type when absent.
    #[serde(alias = "certificateType")]
    pub certificate_type_id: Option<String>,
    /// PEM text or base64 DER of a PKCS#10 request.
    pub certificate_request: String,
}

/// `PUT /v2/requests/keypair`. Its `Debug` output leaves the password out.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartNewKeyPairRequest {
    pub entity_id: String,
    pub group_id: String,
    #[serde(alias = "certificateType")]
    pub certificate_type_id: Option<String>,
    pub subject_name: Option<String>,
    #[serde(default)]
    pub domain_names: Vec<String>,
    /// `PEM` (default) or `PFX`.
    pub private_key_format: Option<String>,
    /// Protects the returned key (encrypted PKCS#8 or the PFX); never stored.
    pub private_key_password: Option<String>,
}

impl std::fmt::Debug for StartNewKeyPairRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartNewKeyPairRequest")
            .field("entity_id", &self.entity_id)
            .field("group_id", &self.group_id)
            .field("certificate_type_id", &self.certificate_type_id)
            .field("subject_name", &self.subject_name)
            .field("domain_names", &self.domain_names)
            .field("private_key_format", &self.private_key_format)
            .field(
                "private_key_password",
                &self.private_key_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartRequestResponse {
    pub request_id: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestRecord {
    pub request_id: String,
    pub entity_id: String,
    pub group_id: String,
    pub certificate_type_id: String,
    pub state: CertificateRequestState,
    #[serde(rename = "type")]
    pub request_type: CertificateRequestType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_info: Option<String>,
    pub submitted: Option<OperationContext>,
    pub approved: Option<OperationContext>,
    pub accepted: Option<OperationContext>,
    pub revoked: Option<OperationContext>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct X509Certificate {
    /// Base64 DER.
    pub certificate: String,
    pub not_before_utc: String,
    pub not_after_utc: String,
    pub serial_number: String,
    pub subject: String,
    pub thumbprint: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FinishSigningRequestResponse {
    pub request: CertificateRequestRecord,
    pub certificate: Option<X509Certificate>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivateKey {
    /// `PEM` or `PFX`.
    pub format: String,
    /// PEM text, or base64 of the PFX.
    pub key: String,
    pub encrypted: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FinishNewKeyPairRequestResponse {
    pub request: CertificateRequestRecord,
    pub certificate: Option<X509Certificate>,
    /// Present on the first fetch after approval only.
    pub private_key: Option<PrivateKey>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateRequestQuery {
    pub entity_id: Option<String>,
    pub state: Option<CertificateRequestState>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestQueryResponse {
    pub requests: Vec<CertificateRequestRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_link: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustGroup {
    pub name: String,
    /// `ApplicationInstanceCertificate`, `HttpsCertificate` or `UserCredentialCertificate`.
    #[serde(rename = "type")]
    pub group_type: String,
    pub subject_name: String,
    pub certificate_types: Vec<String>,
    /// CA lifetime in days.
    pub lifetime: i64,
    /// Lifetime of issued certificates in days.
    pub issued_lifetime: i64,
    pub key_size: i64,
    pub issued_key_size: i64,
    pub auto_approve: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustGroupRegistration {
    pub id: String,
    pub group: TrustGroup,
    /// The group's CAs, newest first.
    pub issuers: Vec<X509Certificate>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustGroupRegistrationList {
    pub registrations: Vec<TrustGroupRegistration>,
}

/// `POST /v2/groups/{id}`: the group's issuing policy.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrustGroupUpdateRequest {
    /// Lifetime of certificates issued from now on, in days.
    #[serde(default, deserialize_with = "whole_number")]
    pub issued_lifetime: Option<i64>,
    /// Approve requests at submission.
    pub auto_approve: Option<bool>,
}

impl TrustList {
    /// The lists as DER, as the OPC UA faces (the GDS's TrustList files, pushes) carry them.
    pub fn to_lists(&self) -> Result<iiot_gds::trust_list::TrustLists, base64::DecodeError> {
        use base64::Engine;
        let decode = |items: &[String]| {
            items
                .iter()
                .map(|b| base64::engine::general_purpose::STANDARD.decode(b))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(iiot_gds::trust_list::TrustLists {
            trusted_certificates: decode(&self.trusted_certificates)?,
            trusted_crls: decode(&self.trusted_crls)?,
            issuer_certificates: decode(&self.issuer_certificates)?,
            issuer_crls: decode(&self.issuer_crls)?,
        })
    }
}

/// A trust list as a GDS pushes it: all base64 DER.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustList {
    pub group_id: String,
    pub trusted_certificates: Vec<String>,
    pub trusted_crls: Vec<String>,
    pub issuer_certificates: Vec<String>,
    pub issuer_crls: Vec<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    pub update_required: bool,
    pub reasons: Vec<String>,
    pub certificate: Option<X509Certificate>,
}

/// An optional integer that JSON may also write as a whole float (`30.0` is the integer 30
/// to JSON and to JSON Schema's `integer`); a fraction is refused.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
        _ => Err(D::Error::custom(format!("{n} is not a whole number"))),
    }
}

/// `PUT /v2/push/targets/{applicationId}`: where and as whom the vault pushes an application's
/// certificate and trust list (OPC UA Part 12 push model). Its `Debug` output leaves the
/// password out.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushTargetRequest {
    /// `opc.tcp://host[:port][/path]` of the server's endpoint.
    #[schema(
        max_length = 1024,
        pattern = r"^opc\.tcp://(\[[0-9A-Fa-f:.]+\]|[^\s/:@\[\]\x00-\x1f\x7f-\x9f]+)(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/[^\s\x00-\x1f\x7f-\x9f]*)?$"
    )]
    pub endpoint_url: String,
    /// A user with the SecurityAdmin role on that server.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub user_name: String,
    /// Its password; stored sealed with the vault's key-encryption key, never returned.
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
    /// SHA-1 thumbprint (hex) of the certificate the server presents before its first push,
    /// when that certificate is not one this vault issued: the vault connects to no server it
    /// cannot authenticate.
    #[serde(default)]
    #[schema(pattern = r"^[0-9A-Fa-f]{40}$")]
    pub server_thumbprint: Option<String>,
    /// Ask the server for a new key pair with every certificate (CreateSigningRequest's
    /// regeneratePrivateKey).
    #[serde(default)]
    pub regenerate_private_key: bool,
    /// The vault makes the key pair and sends the private key (unencrypted PEM, over
    /// SignAndEncrypt) with the certificate, for servers that cannot make a CSR or whose
    /// random numbers are not to be trusted; without it the vault does so only when the server
    /// refuses CreateSigningRequest.
    #[serde(default)]
    pub new_key_pair: bool,
    /// The certificate group of application instance certificates (the vault has one);
    /// `DefaultApplicationGroup` when absent.
    #[serde(default)]
    #[schema(pattern = "^DefaultApplicationGroup$")]
    pub group_id: Option<String>,
    /// Pushes run only while enabled (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
}

impl std::fmt::Debug for PushTargetRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushTargetRequest")
            .field("endpoint_url", &self.endpoint_url)
            .field("user_name", &self.user_name)
            .field("password", &"***")
            .field("server_thumbprint", &self.server_thumbprint)
            .field("regenerate_private_key", &self.regenerate_private_key)
            .field("new_key_pair", &self.new_key_pair)
            .field("group_id", &self.group_id)
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// A push target as the API shows it (never with its password).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushTarget {
    pub application_id: String,
    pub endpoint_url: String,
    pub user_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_thumbprint: Option<String>,
    pub regenerate_private_key: bool,
    pub new_key_pair: bool,
    pub group_id: String,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered: Option<OperationContext>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<OperationContext>,
    /// Serial number of the certificate last pushed and presented by the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed_certificate_serial: Option<String>,
    /// When that certificate expires (a renewal is pushed inside the group's renewal window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed_certificate_not_after: Option<String>,
    /// The newest push job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_job: Option<PushJob>,
}

/// Why a push job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum PushReason {
    /// The server has no certificate from this vault yet.
    Initial,
    /// Asked for through the API.
    Manual,
    /// The pushed certificate needs renewal (renewal window, revoked, CA renewed).
    Renewal,
    /// The group's CRLs changed since the last push: trust list only.
    TrustList,
}

/// Where a push job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum PushJobState {
    Pending,
    /// The certificate request waits for an approver (the group does not auto-approve).
    WaitingForApproval,
    Succeeded,
    Failed,
}

/// One run of the push sequence against a server.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushJob {
    pub id: String,
    pub application_id: String,
    pub reason: PushReason,
    pub state: PushJobState,
    /// The step reached (connect, createSigningRequest, approval, updateCertificate,
    /// trustList, applyChanges, verify, done).
    pub step: String,
    /// The certificate request this job made through the workflow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_serial: Option<String>,
    /// SHA-1 thumbprint of the certificate pushed (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_thumbprint: Option<String>,
    /// How the trust list reached the server: `replaced` (TrustList Write with the CAs and
    /// their CRLs) or `addCertificate` (the server cannot replace its list: CAs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_list_mode: Option<String>,
    pub crls_pushed: bool,
    /// Why it failed: the step's OPC UA status symbol and text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created: String,
    pub updated: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushTargetList {
    pub targets: Vec<PushTarget>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushJobList {
    pub jobs: Vec<PushJob>,
}
