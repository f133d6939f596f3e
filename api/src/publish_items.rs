//! OPC Publisher 2.9's item-level publishing methods (PublishStart, PublishStop, PublishBulk,
//! PublishList): the twin's "publish this node on this connection" view, which the cloud's
//! `/publisher/v2/publish/{endpointId}` routes use.
//!
//! They are a thin layer over the configuration API: an item on a connection is an `OpcNodes`
//! entry of the `publishednodes.json` entry that connection maps to ([`entry_for`]), so items
//! published this way show up in GetConfiguredEndpoints and survive restarts like any other.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::connection::{ConnectionModel, CredentialType, SecurityMode};
use super::published_nodes::{OpcNodeModel, PublishedNodesEntryModel};
use super::status::ServiceResultModel;

/// A monitored and published item.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PublishedItemModel {
    pub node_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub display_name: Option<String>,
    /// Date-spans (`hh:mm:ss[.fff]`), as OPC Publisher writes them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub publishing_interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sampling_interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub heartbeat_interval: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PublishStartRequestModel {
    /// Absent in a malformed request: answered 400, not a panic.
    #[serde(default)]
    pub item: Option<PublishedItemModel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub header: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PublishStopRequestModel {
    #[serde(default)]
    pub node_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub header: Option<Value>,
}

/// Answer of PublishStart and PublishStop: `errorInfo` only when something failed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PublishResultModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_info: Option<ServiceResultModel>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PublishBulkRequestModel {
    #[serde(default)]
    pub nodes_to_add: Vec<PublishedItemModel>,
    #[serde(default)]
    pub nodes_to_remove: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub header: Option<Value>,
}

/// One result per requested node, in request order (a default result is success).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PublishBulkResponseModel {
    pub nodes_to_add: Vec<ServiceResultModel>,
    pub nodes_to_remove: Vec<ServiceResultModel>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PublishedItemListRequestModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub continuation_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub header: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PublishedItemListResponseModel {
    pub items: Vec<PublishedItemModel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub continuation_token: Option<String>,
}

/// The configuration entry that holds the items published on `connection`: same endpoint,
/// security and user, the connection's `group` as writer group (else the default one), no
/// nodes. Built the same way for every call, so Start, Stop and List find the same entry.
pub fn entry_for(connection: &ConnectionModel) -> PublishedNodesEntryModel {
    let endpoint = &connection.endpoint;
    let mode = endpoint.security_mode.unwrap_or(SecurityMode::None);
    let user = connection
        .user
        .as_ref()
        .filter(|c| c.type_ == Some(CredentialType::UserName))
        .and_then(|c| c.value.as_ref());
    PublishedNodesEntryModel {
        endpoint_url: endpoint.url.clone(),
        use_security: Some(mode != SecurityMode::None),
        endpoint_security_mode: Some(mode.as_str().to_string()),
        endpoint_security_policy: endpoint.security_policy.clone(),
        opc_authentication_mode: Some(
            if user.is_some() {
                "UsernamePassword"
            } else {
                "Anonymous"
            }
            .into(),
        ),
        opc_authentication_username: user.and_then(|u| u.user.clone()),
        opc_authentication_password: user.and_then(|u| u.password.clone()),
        data_set_writer_group: connection.group.clone().filter(|g| !g.is_empty()),
        ..Default::default()
    }
}

impl PublishedItemModel {
    /// The `OpcNodes` member for this item.
    pub fn to_node(&self) -> OpcNodeModel {
        OpcNodeModel {
            id: Some(self.node_id.clone()),
            display_name: self.display_name.clone(),
            opc_publishing_interval_timespan: self.publishing_interval.clone(),
            opc_sampling_interval_timespan: self.sampling_interval.clone(),
            heartbeat_interval_timespan: self.heartbeat_interval.clone(),
            ..Default::default()
        }
    }

    /// The item an `OpcNodes` member stands for (integer milliseconds shown as date-spans).
    pub fn from_node(node: &OpcNodeModel) -> Option<Self> {
        let span = |ts: &Option<String>, ms: Option<f64>, scale: f64| {
            ts.clone().or_else(|| ms.map(|v| date_span(v * scale)))
        };
        Some(Self {
            node_id: node.id.clone().or_else(|| node.expanded_node_id.clone())?,
            display_name: node.display_name.clone(),
            publishing_interval: span(
                &node.opc_publishing_interval_timespan,
                node.opc_publishing_interval,
                1.0,
            ),
            sampling_interval: span(
                &node.opc_sampling_interval_timespan,
                node.opc_sampling_interval,
                1.0,
            ),
            // The integer HeartbeatInterval is in seconds.
            heartbeat_interval: span(
                &node.heartbeat_interval_timespan,
                node.heartbeat_interval,
                1000.0,
            ),
        })
    }
}

/// Milliseconds as a .NET date-span, `hh:mm:ss[.fff]`.
fn date_span(ms: f64) -> String {
    let total = ms.max(0.0).round() as u64;
    let (h, m, s, f) = (
        total / 3_600_000,
        total / 60_000 % 60,
        total / 1000 % 60,
        total % 1000,
    );
    if f == 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}.{f:03}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{CredentialModel, EndpointModel, UserIdentityModel};

    #[test]
    fn items_map_to_nodes_and_back() {
        let item: PublishedItemModel = serde_json::from_str(
            r#"{"nodeId":"nsu=urn:x;s=A","displayName":"A","publishingInterval":"00:00:01","samplingInterval":"00:00:00.500"}"#,
        )
        .unwrap();
        let node = item.to_node();
        assert_eq!(
            node.opc_sampling_interval_timespan.as_deref(),
            Some("00:00:00.500")
        );
        assert_eq!(PublishedItemModel::from_node(&node).unwrap(), item);
        let legacy = OpcNodeModel {
            id: Some("i=1".into()),
            opc_publishing_interval: Some(1500.0),
            heartbeat_interval: Some(90.0),
            ..Default::default()
        };
        let back = PublishedItemModel::from_node(&legacy).unwrap();
        assert_eq!(back.publishing_interval.as_deref(), Some("00:00:01.500"));
        assert_eq!(back.heartbeat_interval.as_deref(), Some("00:01:30"));
    }

    #[test]
    fn a_connection_maps_to_one_entry() {
        let c = ConnectionModel {
            endpoint: EndpointModel {
                url: "opc.tcp://plc:4840".into(),
                security_mode: Some(SecurityMode::SignAndEncrypt),
                ..Default::default()
            },
            user: Some(CredentialModel {
                type_: Some(CredentialType::UserName),
                value: Some(UserIdentityModel {
                    user: Some("u".into()),
                    password: Some("p".into()),
                    thumbprint: None,
                }),
            }),
            ..Default::default()
        };
        let e = entry_for(&c);
        assert_eq!(e.endpoint_security_mode.as_deref(), Some("SignAndEncrypt"));
        assert_eq!(
            e.opc_authentication_mode.as_deref(),
            Some("UsernamePassword")
        );
        assert_eq!(e.opc_authentication_username.as_deref(), Some("u"));
        assert_eq!(entry_for(&c), e, "the same connection, the same entry");
    }
}
