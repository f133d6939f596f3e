//! Writing values (`ValueWrite`) and arbitrary attributes (`NodeWrite`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::connection::RequestHeaderModel;
use super::read::NodeAttribute;
use super::status::ServiceResultModel;

/// Write one variable's value. `dataType` disambiguates JSON values (e.g. a
/// number meant as `Float` rather than `Double`); without it the variable's
/// data type is looked up first.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ValueWriteRequestModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node_id: Option<String>,
    /// Relative path from `nodeId` (or the root) to the variable.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub browse_path: Option<Vec<String>>,
    /// Required; JSON `null` is a legal value.
    #[serde(default)]
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub index_range: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub header: Option<RequestHeaderModel>,
}

/// Outcome of a value write; absence of `errorInfo` means success.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ValueWriteResponseModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_info: Option<ServiceResultModel>,
}

/// One attribute value to write on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AttributeWriteRequestModel {
    pub node_id: String,
    pub attribute: NodeAttribute,
    #[serde(default)]
    pub value: Value,
}

/// Batch attribute write; results come back in request order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WriteRequestModel {
    pub attributes: Vec<AttributeWriteRequestModel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub header: Option<RequestHeaderModel>,
}

/// Outcome of one attribute write.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AttributeWriteResponseModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_info: Option<ServiceResultModel>,
}

/// Results of a batch attribute write.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WriteResponseModel {
    pub results: Vec<AttributeWriteResponseModel>,
    /// Set when the whole call failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_info: Option<ServiceResultModel>,
}
