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

/// Declares [`Operation`] and its canonical names in one list, so a name cannot be spelt in
/// two places.
macro_rules! operations {
    ($($(#[$doc:meta])* $variant:ident,)*) => {
        /// Every operation of the OPC Publisher 2.9 API this project knows. Dispatch, HTTP
        /// routes and MQTT / direct method names are all derived from it ([`OPERATIONS`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($(#[$doc])* $variant,)*
        }

        impl Operation {
            /// All operations, in table order.
            pub const ALL: &'static [Operation] = &[$(Operation::$variant,)*];

            /// The method name without version suffix, as OPC Publisher registers it.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Operation::$variant => stringify!($variant),)*
                }
            }
        }
    };
}

operations! {
    GetServerCapabilities,
    Browse,
    BrowseNext,
    BrowseStream,
    BrowsePath,
    ValueRead,
    ValueWrite,
    NodeRead,
    NodeWrite,
    MethodMetadata,
    MethodCall,
    GetMetadata,
    CompileQuery,
    GetEndpointCertificate,
    TestConnection,
    Discover,
    Cancel,
    FindServer,
    Register,
    ListCertificates,
    AddCertificate,
    RemoveCertificate,
    ListCertificateRevocationLists,
    AddCertificateRevocationList,
    RemoveCertificateRevocationList,
    RemoveAll,
    AddCertificateChain,
    AddTrustedHttpsCertificate,
    ApproveRejectedCertificate,
    GetActiveConnections,
    ResetAllConnections,
    GetChannelDiagnostics,
    GetConnectionDiagnostics,
    WatchChannelDiagnostics,
    GetConfiguredEndpoints,
    SetConfiguredEndpoints,
    AddOrUpdateEndpoints,
    PublishNodes,
    UnpublishNodes,
    UnpublishAllNodes,
    GetConfiguredNodesOnEndpoint,
    GetDiagnosticInfo,
    PublishStart,
    PublishStop,
    PublishBulk,
    PublishList,
    GetApiKey,
    GetServerCertificate,
    Shutdown,
}

/// Other spellings OPC Publisher clients send for an operation.
const ALIASES: &[(&str, Operation)] = &[
    ("BrowseFirst", Operation::Browse),
    // The spelling of directmethods.md's example; OPC Publisher registers only the other.
    (
        "GetConfiguredNodesOnEndpoints",
        Operation::GetConfiguredNodesOnEndpoint,
    ),
];

impl Operation {
    /// The operation's row of [`OPERATIONS`].
    pub fn spec(self) -> &'static ApiOperation {
        // Every variant has its row: the `every_operation_has_one_row` test keeps it so.
        OPERATIONS
            .iter()
            .find(|o| o.op == self)
            .unwrap_or(&OPERATIONS[0])
    }

    /// The HTTP verb and route of the operation, if it has one.
    pub fn http(self) -> Option<(HttpVerb, &'static str)> {
        self.spec().http
    }

    /// Resolves a method name as the RPC transports receive it: any `_V1` / `_V2` suffix,
    /// any letter case, and the aliases clients use. Only operations callable by RPC.
    pub fn from_rpc_name(method: &str) -> Option<Operation> {
        let name = strip_version(method);
        Operation::ALL
            .iter()
            .copied()
            .find(|o| o.name().eq_ignore_ascii_case(name))
            .or_else(|| {
                ALIASES
                    .iter()
                    .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
                    .map(|(_, op)| *op)
            })
            .filter(|o| o.spec().rpc)
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One API operation's row: its HTTP route (`None` for RPC-only methods), whether RPC
/// reaches it (false for HTTP-only streaming routes), and the models it takes and answers
/// (`-` = none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiOperation {
    pub op: Operation,
    pub http: Option<(HttpVerb, &'static str)>,
    pub rpc: bool,
    pub request: &'static str,
    pub response: &'static str,
}

impl ApiOperation {
    pub const fn name(&self) -> &'static str {
        self.op.name()
    }
}

const fn op(
    op: Operation,
    verb: HttpVerb,
    path: &'static str,
    request: &'static str,
    response: &'static str,
) -> ApiOperation {
    ApiOperation {
        op,
        http: Some((verb, path)),
        rpc: true,
        request,
        response,
    }
}

const fn http_only(
    o: Operation,
    verb: HttpVerb,
    path: &'static str,
    request: &'static str,
    response: &'static str,
) -> ApiOperation {
    ApiOperation {
        rpc: false,
        ..op(o, verb, path, request, response)
    }
}

const fn rpc_only(op: Operation, request: &'static str, response: &'static str) -> ApiOperation {
    ApiOperation {
        op,
        http: None,
        rpc: true,
        request,
        response,
    }
}

use HttpVerb::{Delete, Get, Patch, Post, Put};
use Operation as O;

/// Twin ("General"), discovery, PKI, diagnostics, configuration and
/// publisher operations of OPC Publisher 2.9. History, file system and
/// writer operations are not listed.
#[rustfmt::skip]
pub const OPERATIONS: &[ApiOperation] = &[
    // General (twin)
    op(O::GetServerCapabilities, Post, "/v2/capabilities", "RequestEnvelope<RequestHeaderModel?>", "ServerCapabilitiesModel"),
    op(O::Browse, Post, "/v2/browse/first", "RequestEnvelope<BrowseFirstRequestModel>", "BrowseFirstResponseModel"),
    op(O::BrowseNext, Post, "/v2/browse/next", "RequestEnvelope<BrowseNextRequestModel>", "BrowseNextResponseModel"),
    http_only(O::BrowseStream, Post, "/v2/browse", "RequestEnvelope<BrowseStreamRequestModel>", "BrowseStreamChunkModel stream"),
    op(O::BrowsePath, Post, "/v2/browse/path", "RequestEnvelope<BrowsePathRequestModel>", "BrowsePathResponseModel"),
    op(O::ValueRead, Post, "/v2/read", "RequestEnvelope<ValueReadRequestModel>", "ValueReadResponseModel"),
    op(O::ValueWrite, Post, "/v2/write", "RequestEnvelope<ValueWriteRequestModel>", "ValueWriteResponseModel"),
    op(O::NodeRead, Post, "/v2/read/attributes", "RequestEnvelope<ReadRequestModel>", "ReadResponseModel"),
    op(O::NodeWrite, Post, "/v2/write/attributes", "RequestEnvelope<WriteRequestModel>", "WriteResponseModel"),
    op(O::MethodMetadata, Post, "/v2/call/$metadata", "RequestEnvelope<MethodMetadataRequestModel>", "MethodMetadataResponseModel"),
    op(O::MethodCall, Post, "/v2/call", "RequestEnvelope<MethodCallRequestModel>", "MethodCallResponseModel"),
    op(O::GetMetadata, Post, "/v2/metadata", "RequestEnvelope<NodeMetadataRequestModel>", "NodeMetadataResponseModel"),
    op(O::CompileQuery, Post, "/v2/query/compile", "RequestEnvelope<QueryCompilationRequestModel>", "QueryCompilationResponseModel"),
    op(O::GetEndpointCertificate, Post, "/v2/certificate", "EndpointModel", "X509CertificateChainModel"),
    op(O::TestConnection, Post, "/v2/test", "RequestEnvelope<TestConnectionRequestModel>", "TestConnectionResponseModel"),
    // Discovery
    op(O::Discover, Post, "/v2/discovery", "DiscoveryRequestModel", "bool"),
    op(O::Cancel, Post, "/v2/discovery/cancel", "DiscoveryCancelRequestModel", "bool"),
    op(O::FindServer, Post, "/v2/discovery/findserver", "ServerEndpointQueryModel", "ApplicationRegistrationModel"),
    op(O::Register, Post, "/v2/discovery/register", "ServerRegistrationRequestModel", "bool"),
    // Certificates (PKI)
    op(O::ListCertificates, Get, "/v2/pki/{store}/certs", "store", "X509CertificateModel[]"),
    op(O::AddCertificate, Patch, "/v2/pki/{store}/certs", "AddCertificateArgs", "X509CertificateModel"),
    op(O::RemoveCertificate, Delete, "/v2/pki/{store}/certs/{thumbprint}", "RemoveCertificateArgs", "-"),
    op(O::ListCertificateRevocationLists, Get, "/v2/pki/{store}/crls", "store", "bytes[]"),
    op(O::AddCertificateRevocationList, Patch, "/v2/pki/{store}/crls", "CertificateRevocationListArgs", "-"),
    op(O::RemoveCertificateRevocationList, Delete, "/v2/pki/{store}/crls", "CertificateRevocationListArgs", "-"),
    op(O::RemoveAll, Delete, "/v2/pki/{store}", "store", "-"),
    op(O::AddCertificateChain, Post, "/v2/pki/trusted/certs", "bytes", "-"),
    op(O::AddTrustedHttpsCertificate, Post, "/v2/pki/https/certs", "bytes", "-"),
    op(O::ApproveRejectedCertificate, Post, "/v2/pki/rejected/certs/{thumbprint}/approve", "thumbprint", "X509CertificateModel"),
    // Diagnostics
    op(O::GetActiveConnections, Get, "/v2/connections", "-", "ConnectionModel[]"),
    op(O::ResetAllConnections, Get, "/v2/reset", "-", "-"),
    op(O::GetChannelDiagnostics, Get, "/v2/diagnostics/channels", "-", "ChannelDiagnosticModel[]"),
    op(O::GetConnectionDiagnostics, Get, "/v2/diagnostics/connections", "-", "ConnectionDiagnosticsModel[]"),
    http_only(O::WatchChannelDiagnostics, Get, "/v2/diagnostics/channels/watch", "-", "ChannelDiagnosticModel stream"),
    // Configuration
    op(O::GetConfiguredEndpoints, Get, "/v2/configuration", "GetConfiguredEndpointsRequestModel", "GetConfiguredEndpointsResponseModel"),
    op(O::SetConfiguredEndpoints, Put, "/v2/configuration", "SetConfiguredEndpointsRequestModel", "PublishedNodesResponseModel"),
    op(O::AddOrUpdateEndpoints, Patch, "/v2/configuration", "PublishedNodesEntryModel[]", "PublishedNodesResponseModel"),
    op(O::PublishNodes, Post, "/v2/configuration/nodes", "PublishedNodesEntryModel", "PublishedNodesResponseModel"),
    op(O::UnpublishNodes, Post, "/v2/configuration/nodes/unpublish", "PublishedNodesEntryModel", "PublishedNodesResponseModel"),
    op(O::UnpublishAllNodes, Post, "/v2/configuration/nodes/unpublish/all", "PublishedNodesEntryModel?", "PublishedNodesResponseModel"),
    op(O::GetConfiguredNodesOnEndpoint, Post, "/v2/configuration/endpoints/list/nodes", "PublishedNodesEntryModel", "GetConfiguredNodesOnEndpointResponseModel"),
    op(O::GetDiagnosticInfo, Post, "/v2/configuration/diagnostics", "-", "PublishDiagnosticInfoModel[]"),
    op(O::PublishStart, Post, "/v2/configuration/start", "RequestEnvelope<PublishStartRequestModel>", "PublishResultModel"),
    op(O::PublishStop, Post, "/v2/configuration/stop", "RequestEnvelope<PublishStopRequestModel>", "PublishResultModel"),
    op(O::PublishBulk, Post, "/v2/configuration/bulk", "RequestEnvelope<PublishBulkRequestModel>", "PublishBulkResponseModel"),
    op(O::PublishList, Post, "/v2/configuration/list", "RequestEnvelope<PublishedItemListRequestModel>", "PublishedItemListResponseModel"),
    // Publisher (RPC only)
    rpc_only(O::GetApiKey, "-", "string"),
    rpc_only(O::GetServerCertificate, "-", "string (PEM)"),
    rpc_only(O::Shutdown, "bool (failFast)", "-"),
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

/// Resolves an RPC method name (any version suffix, case or alias) to its operation.
pub fn find_rpc_operation(method: &str) -> Option<&'static ApiOperation> {
    Operation::from_rpc_name(method).map(Operation::spec)
}

/// Resolves an HTTP verb and route template to its operation.
pub fn find_http_operation(verb: HttpVerb, route: &str) -> Option<&'static ApiOperation> {
    OPERATIONS.iter().find(|o| o.http == Some((verb, route)))
}

/// MQTT v5 user property carrying the response status as decimal text
/// (`"200"` on success, otherwise an HTTP status such as `"400"`).
pub const MQTT_STATUS_CODE_PROPERTY: &str = "StatusCode";

/// Message property naming the payload schema of published events.
pub const MESSAGE_SCHEMA_PROPERTY: &str = "$$MessageSchema";
/// Schema of a `DiscoveryEventModel` batch message.
pub const DISCOVERY_EVENTS_SCHEMA: &str = "application/x-discovery-event-v2-json";
/// Schema of a `DiscoveryProgressModel` message.
pub const DISCOVERY_PROGRESS_SCHEMA: &str = "application/x-discovery-message-v2-json";
