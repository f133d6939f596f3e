//! Reading values (`ValueRead`) and arbitrary attributes (`NodeRead`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::connection::RequestHeaderModel;
use super::status::ServiceResultModel;

string_enum! {
    /// OPC UA attribute to read or write. Integer values are the OPC UA
    /// attribute ids.
    pub enum NodeAttribute {
        NodeId = 1,
        NodeClass = 2,
        BrowseName = 3,
        DisplayName = 4,
        Description = 5,
        WriteMask = 6,
        UserWriteMask = 7,
        IsAbstract = 8,
        Symmetric = 9,
        InverseName = 10,
        ContainsNoLoops = 11,
        EventNotifier = 12,
        Value = 13,
        DataType = 14,
        ValueRank = 15,
        ArrayDimensions = 16,
        AccessLevel = 17,
        UserAccessLevel = 18,
        MinimumSamplingInterval = 19,
        Historizing = 20,
        Executable = 21,
        UserExecutable = 22,
        DataTypeDefinition = 23,
        RolePermissions = 24,
        UserRolePermissions = 25,
        AccessRestrictions = 26,
    }
}

string_enum! {
    /// Which timestamps the server should return with a value.
    pub enum TimestampsToReturn {
        Both = 0,
        Source = 1,
        Server = 2,
        None = 3,
    }
}

/// Read one variable's value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ValueReadRequestModel {
    /// The node to read, or the start of `browsePath`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node_id: Option<String>,
    /// Relative path from `nodeId` (or the root) to the variable.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub browse_path: Option<Vec<String>>,
    /// OPC UA NumericRange, e.g. `1:2,0:1`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub index_range: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub header: Option<RequestHeaderModel>,
    /// .NET TimeSpan text (`[d.]hh:mm:ss[.fffffff]`); absent means read fresh.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_age: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub timestamps_to_return: Option<TimestampsToReturn>,
}

/// The value read, with its type and timestamps.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ValueReadResponseModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<Value>,
    /// Built-in type name (e.g. `DateTime`) or data type node id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_picoseconds: Option<u16>,
    /// ISO-8601 date-time.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub server_picoseconds: Option<u16>,
    /// ISO-8601 date-time.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub server_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_info: Option<ServiceResultModel>,
}

/// One attribute of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AttributeReadRequestModel {
    pub node_id: String,
    pub attribute: NodeAttribute,
}

/// Batch attribute read; results come back in request order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ReadRequestModel {
    pub attributes: Vec<AttributeReadRequestModel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub header: Option<RequestHeaderModel>,
}

/// One attribute read result; `value` is written even when null.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AttributeReadResponseModel {
    #[serde(default)]
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_info: Option<ServiceResultModel>,
}

/// Results of a batch attribute read.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ReadResponseModel {
    pub results: Vec<AttributeReadResponseModel>,
    /// Set when the whole call failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_info: Option<ServiceResultModel>,
}
