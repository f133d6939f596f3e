//! What a server supports (`GetServerCapabilities`) and a bare connectivity
//! check (`TestConnection`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::connection::RequestHeaderModel;
use super::status::ServiceResultModel;

/// The server's OperationLimits object; absent members were not reported.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OperationLimitsModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub min_supported_sample_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_browse_continuation_points: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_query_continuation_points: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_history_continuation_points: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_array_length: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_string_length: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_byte_string_length: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_nodes_per_browse: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_nodes_per_read: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_nodes_per_write: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_nodes_per_method_call: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_nodes_per_history_read_data: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_nodes_per_history_read_events: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_nodes_per_history_update_data: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_nodes_per_history_update_events: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_nodes_per_register_nodes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_nodes_per_translate_paths_to_node_ids: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_nodes_per_node_management: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_monitored_items_per_call: Option<u32>,
}

/// Server capabilities. Note the `Max*` members are PascalCase on the wire
/// in OPC Publisher 2.9 (unlike every other member), and the profile list is
/// named `serverProfileArray`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServerCapabilitiesModel {
    pub operation_limits: OperationLimitsModel,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub supported_locales: Option<Vec<String>>,
    #[serde(
        rename = "serverProfileArray",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub server_profiles: Option<Vec<String>>,
    /// Modelling rule browse name to node id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub modelling_rules: Option<BTreeMap<String, String>>,
    /// Aggregate function browse name to node id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub aggregate_functions: Option<BTreeMap<String, String>>,
    #[serde(
        rename = "MaxSessions",
        alias = "maxSessions",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub max_sessions: Option<u32>,
    #[serde(
        rename = "MaxSubscriptions",
        alias = "maxSubscriptions",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub max_subscriptions: Option<u32>,
    #[serde(
        rename = "MaxMonitoredItems",
        alias = "maxMonitoredItems",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub max_monitored_items: Option<u32>,
    #[serde(
        rename = "MaxSubscriptionsPerSession",
        alias = "maxSubscriptionsPerSession",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub max_subscriptions_per_session: Option<u32>,
    #[serde(
        rename = "MaxMonitoredItemsPerSubscription",
        alias = "maxMonitoredItemsPerSubscription",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub max_monitored_items_per_subscription: Option<u32>,
    #[serde(
        rename = "MaxSelectClauseParameters",
        alias = "maxSelectClauseParameters",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub max_select_clause_parameters: Option<u32>,
    #[serde(
        rename = "MaxWhereClauseParameters",
        alias = "maxWhereClauseParameters",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub max_where_clause_parameters: Option<u32>,
    #[serde(
        rename = "MaxMonitoredItemsQueueSize",
        alias = "maxMonitoredItemsQueueSize",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub max_monitored_items_queue_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub conformance_units: Option<Vec<String>>,
}

/// Connect (and disconnect) only, to prove endpoint and credentials work.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TestConnectionRequestModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub header: Option<RequestHeaderModel>,
}

/// Absence of `errorInfo` means the connection succeeded.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TestConnectionResponseModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_info: Option<ServiceResultModel>,
}
