//! The operation table shared by the HTTP, direct method and MQTT RPC
//! front ends, plus the naming / topic conventions OPC Publisher 2.9 uses,
//! so every transport resolves a call to the same operation.

/// HTTP verb of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpVerb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpVerb {
    /// Upper-case method token.
    pub const fn as_str(self) -> &'static str {
        match self {
            HttpVerb::Get => "GET",
            HttpVerb::Post => "POST",
            HttpVerb::Put => "PUT",
            HttpVerb::Patch => "PATCH",
            HttpVerb::Delete => "DELETE",
        }
    }
}

/// One API operation. `name` is the RPC method name without version suffix;
/// `http` is `None` for RPC-only methods, `rpc` is false for HTTP-only
/// (streaming) routes. `request` / `response` name the models (`-` = none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiOperation {
    pub name: &'static str,
    pub http: Option<(HttpVerb, &'static str)>,
    pub rpc: bool,
    pub request: &'static str,
    pub response: &'static str,
}

const fn op(
    name: &'static str,
    verb: HttpVerb,
    path: &'static str,
    request: &'static str,
    response: &'static str,
) -> ApiOperation {
    ApiOperation {
        name,
        http: Some((verb, path)),
        rpc: true,
        request,
        response,
    }
}

const fn http_only(
    name: &'static str,
    verb: HttpVerb,
    path: &'static str,
    request: &'static str,
    response: &'static str,
) -> ApiOperation {
    ApiOperation {
        rpc: false,
        ..op(name, verb, path, request, response)
    }
}

const fn rpc_only(
    name: &'static str,
    request: &'static str,
    response: &'static str,
) -> ApiOperation {
    ApiOperation {
        name,
        http: None,
        rpc: true,
        request,
        response,
    }
}

use HttpVerb::{Delete, Get, Patch, Post, Put};

/// Twin ("General"), discovery, PKI, diagnostics, configuration and
/// publisher operations of OPC Publisher 2.9. History, file system and
/// writer operations are not listed.
#[rustfmt::skip]
pub const OPERATIONS: &[ApiOperation] = &[
    // General (twin)
    op("GetServerCapabilities", Post, "/v2/capabilities", "RequestEnvelope<RequestHeaderModel?>", "ServerCapabilitiesModel"),
    op("Browse", Post, "/v2/browse/first", "RequestEnvelope<BrowseFirstRequestModel>", "BrowseFirstResponseModel"),
    op("BrowseNext", Post, "/v2/browse/next", "RequestEnvelope<BrowseNextRequestModel>", "BrowseNextResponseModel"),
    http_only("BrowseStream", Post, "/v2/browse", "RequestEnvelope<BrowseStreamRequestModel>", "BrowseStreamChunkModel stream"),
    op("BrowsePath", Post, "/v2/browse/path", "RequestEnvelope<BrowsePathRequestModel>", "BrowsePathResponseModel"),
    op("ValueRead", Post, "/v2/read", "RequestEnvelope<ValueReadRequestModel>", "ValueReadResponseModel"),
    op("ValueWrite", Post, "/v2/write", "RequestEnvelope<ValueWriteRequestModel>", "ValueWriteResponseModel"),
    op("NodeRead", Post, "/v2/read/attributes", "RequestEnvelope<ReadRequestModel>", "ReadResponseModel"),
    op("NodeWrite", Post, "/v2/write/attributes", "RequestEnvelope<WriteRequestModel>", "WriteResponseModel"),
    op("MethodMetadata", Post, "/v2/call/$metadata", "RequestEnvelope<MethodMetadataRequestModel>", "MethodMetadataResponseModel"),
    op("MethodCall", Post, "/v2/call", "RequestEnvelope<MethodCallRequestModel>", "MethodCallResponseModel"),
    op("GetMetadata", Post, "/v2/metadata", "RequestEnvelope<NodeMetadataRequestModel>", "NodeMetadataResponseModel"),
    op("CompileQuery", Post, "/v2/query/compile", "RequestEnvelope<QueryCompilationRequestModel>", "QueryCompilationResponseModel"),
    op("GetEndpointCertificate", Post, "/v2/certificate", "EndpointModel", "X509CertificateChainModel"),
    op("TestConnection", Post, "/v2/test", "RequestEnvelope<TestConnectionRequestModel>", "TestConnectionResponseModel"),
    // Discovery
    op("Discover", Post, "/v2/discovery", "DiscoveryRequestModel", "bool"),
    op("Cancel", Post, "/v2/discovery/cancel", "DiscoveryCancelRequestModel", "bool"),
    op("FindServer", Post, "/v2/discovery/findserver", "ServerEndpointQueryModel", "ApplicationRegistrationModel"),
    op("Register", Post, "/v2/discovery/register", "ServerRegistrationRequestModel", "bool"),
    // Certificates (PKI)
    op("ListCertificates", Get, "/v2/pki/{store}/certs", "store", "X509CertificateModel[]"),
    op("AddCertificate", Patch, "/v2/pki/{store}/certs", "AddCertificateArgs", "-"),
    op("RemoveCertificate", Delete, "/v2/pki/{store}/certs/{thumbprint}", "RemoveCertificateArgs", "-"),
    op("ListCertificateRevocationLists", Get, "/v2/pki/{store}/crls", "store", "bytes[]"),
    op("AddCertificateRevocationList", Patch, "/v2/pki/{store}/crls", "CertificateRevocationListArgs", "-"),
    op("RemoveCertificateRevocationList", Delete, "/v2/pki/{store}/crls", "CertificateRevocationListArgs", "-"),
    op("RemoveAll", Delete, "/v2/pki/{store}", "store", "-"),
    op("AddCertificateChain", Post, "/v2/pki/trusted/certs", "bytes", "-"),
    op("AddTrustedHttpsCertificate", Post, "/v2/pki/https/certs", "bytes", "-"),
    op("ApproveRejectedCertificate", Post, "/v2/pki/rejected/certs/{thumbprint}/approve", "thumbprint", "-"),
    // Diagnostics
    op("GetActiveConnections", Get, "/v2/connections", "-", "ConnectionModel[]"),
    op("ResetAllConnections", Get, "/v2/reset", "-", "-"),
    op("GetChannelDiagnostics", Get, "/v2/diagnostics/channels", "-", "ChannelDiagnosticModel[]"),
    op("GetConnectionDiagnostics", Get, "/v2/diagnostics/connections", "-", "ConnectionDiagnosticsModel[]"),
    http_only("WatchChannelDiagnostics", Get, "/v2/diagnostics/channels/watch", "-", "ChannelDiagnosticModel stream"),
    // Configuration
    op("GetConfiguredEndpoints", Get, "/v2/configuration", "GetConfiguredEndpointsRequestModel", "GetConfiguredEndpointsResponseModel"),
    op("SetConfiguredEndpoints", Put, "/v2/configuration", "SetConfiguredEndpointsRequestModel", "-"),
    op("AddOrUpdateEndpoints", Patch, "/v2/configuration", "PublishedNodesEntryModel[]", "PublishedNodesResponseModel"),
    op("PublishNodes", Post, "/v2/configuration/nodes", "PublishedNodesEntryModel", "PublishedNodesResponseModel"),
    op("UnpublishNodes", Post, "/v2/configuration/nodes/unpublish", "PublishedNodesEntryModel", "PublishedNodesResponseModel"),
    op("UnpublishAllNodes", Post, "/v2/configuration/nodes/unpublish/all", "PublishedNodesEntryModel?", "PublishedNodesResponseModel"),
    op("GetConfiguredNodesOnEndpoint", Post, "/v2/configuration/endpoints/list/nodes", "PublishedNodesEntryModel", "GetConfiguredNodesOnEndpointResponseModel"),
    op("GetDiagnosticInfo", Post, "/v2/configuration/diagnostics", "-", "PublishDiagnosticInfoModel[]"),
    op("PublishStart", Post, "/v2/configuration/start", "RequestEnvelope<PublishStartRequestModel>", "PublishStartResponseModel"),
    op("PublishStop", Post, "/v2/configuration/stop", "RequestEnvelope<PublishStopRequestModel>", "PublishStopResponseModel"),
    op("PublishBulk", Post, "/v2/configuration/bulk", "RequestEnvelope<PublishBulkRequestModel>", "PublishBulkResponseModel"),
    op("PublishList", Post, "/v2/configuration/list", "RequestEnvelope<PublishedItemListRequestModel>", "PublishedItemListResponseModel"),
    // Publisher (RPC only)
    rpc_only("GetApiKey", "-", "string"),
    rpc_only("GetServerCertificate", "-", "string (PEM)"),
    rpc_only("Shutdown", "bool (failFast)", "-"),
];

/// Version suffixes a method name may carry; all map to the same operation.
pub const METHOD_VERSION_SUFFIXES: &[&str] = &["_V1", "_V2"];

/// Strips a `_V1` / `_V2` suffix (any case), because OPC Publisher registers
/// each method under its bare name and both suffixed names.
pub fn strip_version(method: &str) -> &str {
    METHOD_VERSION_SUFFIXES
        .iter()
        .find_map(|suffix| {
            let cut = method.len().checked_sub(suffix.len())?;
            let tail = method.get(cut..)?;
            tail.eq_ignore_ascii_case(suffix).then(|| &method[..cut])
        })
        .unwrap_or(method)
}

/// Resolves an RPC method name (any version suffix) to its operation.
/// Matching ignores case, as OPC Publisher's method table does.
pub fn find_rpc_operation(method: &str) -> Option<&'static ApiOperation> {
    let name = strip_version(method);
    OPERATIONS
        .iter()
        .find(|o| o.rpc && o.name.eq_ignore_ascii_case(name))
}

/// Resolves an HTTP verb and route template to its operation.
pub fn find_http_operation(verb: HttpVerb, route: &str) -> Option<&'static ApiOperation> {
    OPERATIONS.iter().find(|o| o.http == Some((verb, route)))
}

/// MQTT v5 user property carrying the response status as decimal text
/// (`"200"` on success, otherwise an HTTP status such as `"400"`).
pub const MQTT_STATUS_CODE_PROPERTY: &str = "StatusCode";

/// MQTT 3.1.1 has no response topic, so the request id travels in the topic:
/// requests go to `{methods}/{method}/?$rid={id}` and responses to
/// `{methods}/res/{status}/?$rid={id}`.
pub const MQTT_V311_REQUEST_ID_PREFIX: &str = "?$rid=";
/// Path segment that marks an MQTT 3.1.1 response topic.
pub const MQTT_V311_RESPONSE_SEGMENT: &str = "res";

/// Default root topic template.
pub const DEFAULT_ROOT_TOPIC_TEMPLATE: &str = "{PublisherId}";
/// Default topic under which methods are mounted; the method name is the
/// next (last) topic level.
pub const DEFAULT_METHOD_TOPIC_TEMPLATE: &str = "{RootTopic}/methods";
/// Default events topic template of 2.9.16+ (`{RootTopic}/events` before).
pub const DEFAULT_EVENTS_TOPIC_TEMPLATE: &str = "{RootTopic}/{EventSource}/{EventName}";
/// `{EventSource}` value for discovery progress events.
pub const DISCOVERY_EVENT_SOURCE: &str = "discovery";

/// Message property naming the payload schema of published events.
pub const MESSAGE_SCHEMA_PROPERTY: &str = "$$MessageSchema";
/// Schema of a `DiscoveryEventModel` batch message.
pub const DISCOVERY_EVENTS_SCHEMA: &str = "application/x-discovery-event-v2-json";
/// Schema of a `DiscoveryProgressModel` message.
pub const DISCOVERY_PROGRESS_SCHEMA: &str = "application/x-discovery-message-v2-json";

/// HTTP `Authorization` scheme for the publisher API key.
pub const API_KEY_SCHEME: &str = "ApiKey";
