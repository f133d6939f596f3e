//! Method metadata lookup and method calls.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::connection::RequestHeaderModel;
use super::node::{NodeModel, NodeValueRank};
use super::status::ServiceResultModel;

/// Ask for a method's signature so a caller can build typed arguments.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MethodMetadataRequestModel {
    /// The method node, or the start of `methodBrowsePath`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub method_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub method_browse_path: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub header: Option<RequestHeaderModel>,
}

/// One declared input or output argument.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MethodMetadataArgumentModel {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    /// The argument's data type node.
    #[serde(rename = "type")]
    pub type_: NodeModel,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub default_value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value_rank: Option<NodeValueRank>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub array_dimensions: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_info: Option<ServiceResultModel>,
}

/// A method's signature and the object it belongs to.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MethodMetadataResponseModel {
    /// The object the method is a component of (use as the call's objectId).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub input_arguments: Option<Vec<MethodMetadataArgumentModel>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output_arguments: Option<Vec<MethodMetadataArgumentModel>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_info: Option<ServiceResultModel>,
}

/// An argument value; `dataType` tells how to encode a JSON value the
/// server cannot infer. Both fields are written even when null.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MethodCallArgumentModel {
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub data_type: Option<String>,
}

/// Call a method. Either ids or browse paths (relative to the ids, or to the
/// root) locate the method and object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MethodCallRequestModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub method_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object_id: Option<String>,
    /// Positional input arguments; a `null` entry means "use the default".
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub arguments: Option<Vec<Option<MethodCallArgumentModel>>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub method_browse_path: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object_browse_path: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub header: Option<RequestHeaderModel>,
}

/// Output arguments of a call, in declaration order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MethodCallResponseModel {
    pub results: Vec<MethodCallArgumentModel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_info: Option<ServiceResultModel>,
}
