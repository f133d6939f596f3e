//! Server discovery: requests, the application / endpoint registrations it
//! produces, and the progress and result events it publishes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::connection::{CredentialType, EndpointModel, SecurityMode};

string_enum! {
    /// How far discovery reaches: `Off` none (explicit registration only),
    /// `Local` the local discovery server on the gateway host, `Network` the
    /// discovery servers of all attached networks, `Fast` a quick scan of
    /// each /24 on well-known ports, `Scan` a deep scan of all networks.
    #[derive(Default)]
    pub enum DiscoveryMode {
        #[default]
        Off = 0,
        Local = 1,
        Network = 2,
        Fast = 3,
        Scan = 4,
    }
}

string_enum! {
    /// OPC UA application type.
    #[derive(Default)]
    pub enum ApplicationType {
        #[default]
        Server = 0,
        Client = 1,
        ClientAndServer = 2,
        DiscoveryServer = 3,
    }
}

string_enum! {
    /// Stage reported by a discovery progress event; also the last segment
    /// of the progress event topic.
    #[derive(Default)]
    pub enum DiscoveryProgressType {
        #[default]
        Pending = 0,
        Started = 1,
        Cancelled = 2,
        Error = 3,
        Finished = 4,
        NetworkScanStarted = 5,
        NetworkScanResult = 6,
        NetworkScanProgress = 7,
        NetworkScanFinished = 8,
        PortScanStarted = 9,
        PortScanResult = 10,
        PortScanProgress = 11,
        PortScanFinished = 12,
        ServerDiscoveryStarted = 13,
        EndpointsDiscoveryStarted = 14,
        EndpointsDiscoveryFinished = 15,
        ServerDiscoveryFinished = 16,
    }
}

/// Who asked for an operation and when. Unlike every other model, its
/// members are PascalCase on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperationContextModel {
    #[serde(
        rename = "AuthorityId",
        alias = "authorityId",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub authority_id: Option<String>,
    /// ISO-8601 date-time.
    #[serde(
        rename = "Time",
        alias = "time",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub time: Option<String>,
}

/// Scan tuning. Durations are .NET TimeSpan text (`[d.]hh:mm:ss[.fffffff]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryConfigModel {
    /// Address ranges; the subnets of all wired NICs when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub address_ranges_to_scan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub network_probe_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_network_probes: Option<i32>,
    /// Port ranges; all unassigned ports when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub port_ranges_to_scan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub port_probe_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_port_probes: Option<i32>,
    /// Share of `maxPortProbes` always kept running, in percent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub min_port_probes_percent: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub idle_time_between_scans: Option<String>,
    /// Preset discovery urls to query.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub discovery_urls: Option<Vec<String>>,
    /// Only keep applications offering these locales.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub locales: Option<Vec<String>>,
}

/// Start a discovery run; results are published as events, not returned.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryRequestModel {
    /// Caller chosen id, echoed in progress events; used to cancel.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub discovery: Option<DiscoveryMode>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub configuration: Option<DiscoveryConfigModel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub context: Option<OperationContextModel>,
}

/// Cancel the discovery run started with the same id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryCancelRequestModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub context: Option<OperationContextModel>,
}

/// Register (discover once, publish as events) the server at `discoveryUrl`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServerRegistrationRequestModel {
    pub discovery_url: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub context: Option<OperationContextModel>,
}

/// Find a server synchronously (`FindServer`). Either a discovery url or an
/// endpoint url plus optional security filters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServerEndpointQueryModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub discovery_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub security_mode: Option<SecurityMode>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub security_policy: Option<String>,
    /// Endpoint certificate thumbprint to match.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub certificate: Option<String>,
}

/// A user token policy an endpoint accepts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationMethodModel {
    /// The server's policy id.
    pub id: String,
    #[serde(default)]
    pub credential_type: CredentialType,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub security_policy: Option<String>,
    /// Method specific settings, as JSON.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub configuration: Option<Value>,
}

/// A discovered endpoint of an application.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EndpointRegistrationModel {
    /// Hash of discoverer, site and url.
    pub id: String,
    /// The url as the server advertises it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub endpoint_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub site_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub discoverer_id: Option<String>,
    /// Endpoint url and security settings to connect with.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub endpoint: Option<EndpointModel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub security_level: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub authentication_methods: Option<Vec<AuthenticationMethodModel>>,
}

/// A discovered OPC UA application.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ApplicationInfoModel {
    /// Unique application id.
    pub application_id: String,
    #[serde(default)]
    pub application_type: ApplicationType,
    pub application_uri: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub product_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub application_name: Option<String>,
    /// Locale of `applicationName` (`en` when not known).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub locale: Option<String>,
    /// Locale to application name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub localized_names: Option<BTreeMap<String, String>>,
    /// Server capability identifiers (OPC UA Part 12, e.g. `DA`, `HD`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub capabilities: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub discovery_urls: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub discovery_profile_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gateway_server_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub host_addresses: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub site_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub discoverer_id: Option<String>,
    /// ISO-8601 date-time the application was last seen, if no longer visible.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub not_seen_since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created: Option<OperationContextModel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub updated: Option<OperationContextModel>,
}

/// An application with its endpoints (the `FindServer` result).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ApplicationRegistrationModel {
    pub application: ApplicationInfoModel,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub endpoints: Option<Vec<EndpointRegistrationModel>>,
}

/// Published on the events topic while discovery runs, so callers can follow
/// a run they started (matched by `requestId`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryProgressModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub event_type: DiscoveryProgressType,
    /// Identity of the publisher that ran discovery.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub discoverer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub request_details: Option<BTreeMap<String, String>>,
    /// ISO-8601 date-time; always written.
    #[serde(default)]
    pub time_stamp: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub workers: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub progress: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub total: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub discovered: Option<i32>,
    /// Result text, e.g. an address or url found, or an error message.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result_details: Option<BTreeMap<String, String>>,
    /// The request the progress belongs to.
    #[serde(default)]
    pub request: DiscoveryRequestModel,
}

/// Summary closing a batch of discovery events.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryResultModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub discovery_config: Option<DiscoveryConfigModel>,
    /// True for registration runs (mode Off): consumers should add what the
    /// batch lists but not remove what it omits.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub register_only: Option<bool>,
    /// Failure information when the run failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub diagnostics: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub context: Option<OperationContextModel>,
}

/// One message of a discovery result batch: one per discovered endpoint
/// (`application` + `registration`), then a final one carrying `result`.
/// `index` numbers the messages of the batch from 0. This type has no data
/// contract in OPC Publisher, so its own members go out PascalCase (the
/// default .NET serializer); camelCase is accepted too.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiscoveryEventModel {
    /// ISO-8601 date-time of the run.
    #[serde(rename = "TimeStamp", alias = "timeStamp", default)]
    pub time_stamp: String,
    #[serde(rename = "Index", alias = "index", default)]
    pub index: i32,
    #[serde(
        rename = "Registration",
        alias = "registration",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub registration: Option<EndpointRegistrationModel>,
    #[serde(
        rename = "Application",
        alias = "application",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub application: Option<ApplicationInfoModel>,
    #[serde(
        rename = "Result",
        alias = "result",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub result: Option<DiscoveryResultModel>,
}
