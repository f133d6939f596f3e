//! Address space navigation: browse first/next, browse by path, and the
//! HTTP-only streaming browse.

use serde::{Deserialize, Serialize};

use super::connection::RequestHeaderModel;
use super::node::{NodeClass, NodeModel};
use super::status::ServiceResultModel;

string_enum! {
    /// Which way to follow references.
    pub enum BrowseDirection {
        Forward = 0,
        Backward = 1,
        Both = 2,
    }
}

/// Browse inside a view rather than the whole address space.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BrowseViewModel {
    pub view_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<u32>,
    /// ISO-8601 date-time.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub timestamp: Option<String>,
}

/// Start browsing a node's references.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BrowseFirstRequestModel {
    /// Node to browse; the Root folder (`i=84`) when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node_id: Option<String>,
    /// Forward when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub direction: Option<BrowseDirection>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub view: Option<BrowseViewModel>,
    /// Reference type to follow; hierarchical references when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reference_type_id: Option<String>,
    /// Do not include subtypes of `referenceTypeId`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub no_subtypes: Option<bool>,
    /// Page size; a continuation token is returned if more remain.
    /// An explicit 0 returns only the node, without references.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_references_to_return: Option<u32>,
    /// Return only the target nodes, without the reference details.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target_nodes_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub read_variable_values: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node_class_filter: Option<Vec<NodeClass>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub header: Option<RequestHeaderModel>,
    /// Skip reading target attributes; targets carry only their node id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node_ids_only: Option<bool>,
}

/// A reference from the browsed node to `target`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct NodeReferenceModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reference_type_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub direction: Option<BrowseDirection>,
    pub target: NodeModel,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_info: Option<ServiceResultModel>,
}

/// First page of a browse: the node itself plus its references.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BrowseFirstResponseModel {
    pub node: NodeModel,
    pub references: Vec<NodeReferenceModel>,
    /// Present when more references remain; pass to BrowseNext.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub continuation_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_info: Option<ServiceResultModel>,
}

/// Continue (or, with `abort`, release) a paged browse.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BrowseNextRequestModel {
    pub continuation_token: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub abort: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target_nodes_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub read_variable_values: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub header: Option<RequestHeaderModel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node_ids_only: Option<bool>,
}

/// A further page of references.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BrowseNextResponseModel {
    pub references: Vec<NodeReferenceModel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub continuation_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_info: Option<ServiceResultModel>,
}

/// Resolve one or more relative paths starting at `nodeId`. Each inner list
/// is one path; each element is a relative path element such as
/// `Objects`, `/Server`, `.ServerStatus`, `<HasComponent>Name`, `!/Parent`
/// or `nsu=http://uri;Name` (see API-FACTS.md).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BrowsePathRequestModel {
    /// Start node; the root folder when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node_id: Option<String>,
    pub browse_paths: Vec<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub read_variable_values: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub header: Option<RequestHeaderModel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node_ids_only: Option<bool>,
}

/// A node a browse path resolved to.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct NodePathTargetModel {
    /// The requested path this target belongs to.
    pub browse_path: Vec<String>,
    pub target: NodeModel,
    /// Index of the first unresolved element if the path left the server.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub remaining_path_index: Option<i32>,
}

/// All targets of all requested paths.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BrowsePathResponseModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub targets: Option<Vec<NodePathTargetModel>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_info: Option<ServiceResultModel>,
}

/// Recursive browse streamed over HTTP (`POST /v2/browse`); not offered over
/// direct methods or MQTT RPC.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BrowseStreamRequestModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub header: Option<RequestHeaderModel>,
    /// Start nodes; the root folder when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node_id: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub direction: Option<BrowseDirection>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub view: Option<BrowseViewModel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reference_type_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub no_subtypes: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub read_variable_values: Option<bool>,
    /// Browse only the start nodes, not their descendants.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub no_recurse: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node_class_filter: Option<Vec<NodeClass>>,
}

/// One element of the browse stream: a node's attributes or one reference.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BrowseStreamChunkModel {
    /// The node the chunk was produced for.
    pub source_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attributes: Option<NodeModel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reference: Option<NodeReferenceModel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_info: Option<ServiceResultModel>,
}
