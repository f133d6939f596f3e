//! The OPC Publisher 2.9 API contract: the JSON request / response models of
//! the twin, discovery and PKI APIs and the operation / topic naming rules.
//! This module owns that contract and nothing else: it is plain serde data
//! with no I/O, no async and no OPC UA stack types, so every transport (HTTP,
//! MQTT RPC, direct methods) and every test can share it.
//!
//! Wire conventions OPC Publisher clients rely on: members are camelCase
//! (a few documented exceptions are PascalCase), absent optionals are left
//! out, unknown members are ignored, enums are written as member names and
//! read in any letter case or as their integer value. See `API-FACTS.md`.

#[macro_use]
mod macros;

pub mod broker_url;
pub mod browse;
pub mod call;
pub mod capabilities;
pub mod connection;
pub mod discovery;
pub mod envelope;
pub mod iothub;
pub mod node;
pub mod pki;
pub mod problem;
pub mod publish_items;
pub mod published_nodes;
pub mod publisher_config;
pub mod read;
pub mod rpc;
pub mod state;
pub mod status;
pub mod topics;
pub mod wire;
pub mod write;
pub mod writer_group;

#[cfg(test)]
mod tests;

pub use browse::{
    BrowseDirection, BrowseFirstRequestModel, BrowseFirstResponseModel, BrowseNextRequestModel,
    BrowseNextResponseModel, BrowsePathRequestModel, BrowsePathResponseModel,
    BrowseStreamChunkModel, BrowseStreamRequestModel, BrowseViewModel, NodePathTargetModel,
    NodeReferenceModel,
};
pub use call::{
    MethodCallArgumentModel, MethodCallRequestModel, MethodCallResponseModel,
    MethodMetadataArgumentModel, MethodMetadataRequestModel, MethodMetadataResponseModel,
};
pub use capabilities::{
    OperationLimitsModel, ServerCapabilitiesModel, TestConnectionRequestModel,
    TestConnectionResponseModel,
};
pub use connection::{
    ConnectionModel, ConnectionOptions, CredentialModel, CredentialType, DiagnosticsLevel,
    DiagnosticsModel, EndpointModel, NamespaceFormat, RequestHeaderModel, SecurityMode,
    UserIdentityModel,
};
pub use discovery::{
    ApplicationInfoModel, ApplicationRegistrationModel, ApplicationType, AuthenticationMethodModel,
    DiscoveryCancelRequestModel, DiscoveryConfigModel, DiscoveryEventModel, DiscoveryMode,
    DiscoveryProgressModel, DiscoveryProgressType, DiscoveryRequestModel, DiscoveryResultModel,
    EndpointRegistrationModel, OperationContextModel, ServerEndpointQueryModel,
    ServerRegistrationRequestModel,
};
pub use envelope::RequestEnvelope;
pub use node::{
    NodeAccessLevel, NodeAccessRestrictions, NodeClass, NodeEventNotifier, NodeModel,
    NodeValueRank, RolePermissionModel, RolePermissions,
};
pub use pki::{
    AddCertificateArgs, CertificateRevocationListArgs, CertificateStoreName, RemoveCertificateArgs,
    X509CertificateChainModel, X509CertificateModel, X509ChainStatus,
};
pub use problem::{Problem, StatusSymbol};
pub use published_nodes::{
    parse_published_nodes, ConfigFileError, NodeIdModel, OpcNodeModel, PublishedNodesEntryModel,
};
pub use publisher_config::{
    EntryBodyError, GetConfiguredEndpointsRequestModel, GetConfiguredEndpointsResponseModel,
    GetConfiguredNodesOnEndpointResponseModel, PublishDiagnosticInfoModel,
    PublishedNodesResponseModel, SetConfiguredEndpointsRequestModel,
};
pub use read::{
    AttributeReadRequestModel, AttributeReadResponseModel, NodeAttribute, ReadRequestModel,
    ReadResponseModel, TimestampsToReturn, ValueReadRequestModel, ValueReadResponseModel,
};
pub use rpc::{
    find_http_operation, find_rpc_operation, ApiOperation, HttpVerb, Operation, OPERATIONS,
};
pub use state::{ModuleConnectionState, ModuleStateModel};
pub use status::ServiceResultModel;
pub use wire::{ByteString, UnknownEnumValue};
pub use write::{
    AttributeWriteRequestModel, AttributeWriteResponseModel, ValueWriteRequestModel,
    ValueWriteResponseModel, WriteRequestModel, WriteResponseModel,
};
