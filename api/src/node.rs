//! The node description returned by browse, browse-path and method metadata,
//! plus the attribute enums it uses.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::status::ServiceResultModel;

string_enum! {
    /// OPC UA node class. The wire form is the name, not the OPC UA mask value.
    pub enum NodeClass {
        Object = 0,
        Variable = 1,
        Method = 2,
        ObjectType = 3,
        VariableType = 4,
        ReferenceType = 5,
        DataType = 6,
        View = 7,
    }
}

string_enum! {
    /// OPC UA value rank, named. The integer values are the OPC UA ones.
    pub enum NodeValueRank {
        ScalarOrOneDimension = -3,
        Any = -2,
        Scalar = -1,
        OneOrMoreDimensions = 0,
        OneDimension = 1,
        TwoDimensions = 2,
    }
}

flags_enum! {
    /// AccessLevel / UserAccessLevel attribute bits.
    pub struct NodeAccessLevel {
        const NONE = 0x0 => "None";
        const CURRENT_READ = 0x1 => "CurrentRead";
        const CURRENT_WRITE = 0x2 => "CurrentWrite";
        const HISTORY_READ = 0x4 => "HistoryRead";
        const HISTORY_WRITE = 0x8 => "HistoryWrite";
        const SEMANTIC_CHANGE = 0x10 => "SemanticChange";
        const STATUS_WRITE = 0x20 => "StatusWrite";
        const TIMESTAMP_WRITE = 0x40 => "TimestampWrite";
        const NONATOMIC_READ = 0x100 => "NonatomicRead";
        const NONATOMIC_WRITE = 0x200 => "NonatomicWrite";
        const WRITE_FULL_ARRAY_ONLY = 0x400 => "WriteFullArrayOnly";
    }
}

flags_enum! {
    /// AccessRestrictions attribute bits.
    pub struct NodeAccessRestrictions {
        const NONE = 0x0 => "None";
        const SIGNING_REQUIRED = 0x1 => "SigningRequired";
        const ENCRYPTION_REQUIRED = 0x2 => "EncryptionRequired";
        const SESSION_REQUIRED = 0x4 => "SessionRequired";
    }
}

flags_enum! {
    /// EventNotifier attribute bits. There is no zero member, so an empty
    /// set goes on the wire as the number 0, as .NET writes it.
    pub struct NodeEventNotifier {
        const SUBSCRIBE_TO_EVENTS = 0x1 => "SubscribeToEvents";
        const HISTORY_READ = 0x4 => "HistoryRead";
        const HISTORY_WRITE = 0x8 => "HistoryWrite";
    }
}

flags_enum! {
    /// RolePermissions bits (OPC UA PermissionType).
    pub struct RolePermissions {
        const NONE = 0x0 => "None";
        const BROWSE = 0x1 => "Browse";
        const READ_ROLE_PERMISSIONS = 0x2 => "ReadRolePermissions";
        const WRITE_ATTRIBUTE = 0x4 => "WriteAttribute";
        const WRITE_ROLE_PERMISSIONS = 0x8 => "WriteRolePermissions";
        const WRITE_HISTORIZING = 0x10 => "WriteHistorizing";
        const READ = 0x20 => "Read";
        const WRITE = 0x40 => "Write";
        const READ_HISTORY = 0x80 => "ReadHistory";
        const INSERT_HISTORY = 0x100 => "InsertHistory";
        const MODIFY_HISTORY = 0x200 => "ModifyHistory";
        const DELETE_HISTORY = 0x400 => "DeleteHistory";
        const RECEIVE_EVENTS = 0x800 => "ReceiveEvents";
        const CALL = 0x1000 => "Call";
        const ADD_REFERENCE = 0x2000 => "AddReference";
        const REMOVE_REFERENCE = 0x4000 => "RemoveReference";
        const DELETE_NODE = 0x8000 => "DeleteNode";
        const ADD_NODE = 0x10000 => "AddNode";
    }
}

/// One role's permissions on a node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RolePermissionModel {
    pub role_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub permissions: Option<RolePermissions>,
}

/// A node and whichever of its attributes were read. Attributes that do not
/// apply to the node class, or were not read, are absent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct NodeModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node_class: Option<NodeClass>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub display_name: Option<String>,
    /// Formatted per the request's namespace format; required.
    pub node_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    /// Qualified name, formatted per the request's namespace format.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub browse_name: Option<String>,
    /// Variable value (or variable type default value) as JSON.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<Value>,
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
    /// Why reading some attribute of the node failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_info: Option<ServiceResultModel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub access_restrictions: Option<NodeAccessRestrictions>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub write_mask: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_write_mask: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub is_abstract: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub contains_no_loops: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub event_notifier: Option<NodeEventNotifier>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub executable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_executable: Option<bool>,
    /// DataTypeDefinition of a data type node, as JSON.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_type_definition: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub access_level: Option<NodeAccessLevel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_access_level: Option<NodeAccessLevel>,
    /// Data type node id (built-in types appear by name in `Uri` format).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value_rank: Option<NodeValueRank>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub array_dimensions: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub historizing: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub minimum_sampling_interval: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub inverse_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub symmetric: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub role_permissions: Option<Vec<RolePermissionModel>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_role_permissions: Option<Vec<RolePermissionModel>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub type_definition_id: Option<String>,
    /// Whether forward hierarchical references exist; absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub children: Option<bool>,
}

impl NodeModel {
    /// A node known only by id, as returned when `nodeIdsOnly` is set.
    pub fn with_id(node_id: impl Into<String>) -> Self {
        NodeModel {
            node_id: node_id.into(),
            ..Default::default()
        }
    }
}
