//! Requests and responses of OPC Publisher 2.9's configuration API (PublishNodes,
//! UnpublishNodes, UnpublishAllNodes, AddOrUpdateEndpoints, Get/SetConfiguredEndpoints,
//! GetConfiguredNodesOnEndpoint, GetDiagnosticInfo).
//!
//! Most of these methods take a `PublishedNodesEntryModel` (PascalCase) directly; only the
//! wrappers below are camelCase like the rest of the 2.9 API. OPC Publisher reads member names
//! without regard to case, and its own samples mix `EndpointUrl` and `endpointUrl`, so
//! `parse_entry` / `parse_entries` accept both spellings.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::published_nodes::{OpcNodeModel, PublishedNodesEntryModel};

/// Answer of PublishNodes, UnpublishNodes, UnpublishAllNodes and AddOrUpdateEndpoints: an
/// empty object in 2.9.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublishedNodesResponseModel {
    /// Whatever a newer publisher adds is kept.
    #[serde(flatten, default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// RPC argument of GetConfiguredEndpoints (`?IncludeNodes=` over HTTP).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct GetConfiguredEndpointsRequestModel {
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        alias = "IncludeNodes"
    )]
    pub include_nodes: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct GetConfiguredEndpointsResponseModel {
    #[serde(default)]
    pub endpoints: Vec<PublishedNodesEntryModel>,
}

/// Body of SetConfiguredEndpoints. The entries are kept as JSON here and read with
/// `parse_entries`, so they may be spelled in either case.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SetConfiguredEndpointsRequestModel {
    #[serde(default, alias = "Endpoints")]
    pub endpoints: Option<Vec<Value>>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct GetConfiguredNodesOnEndpointResponseModel {
    #[serde(default)]
    pub opc_nodes: Vec<OpcNodeModel>,
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// Figures of one data set writer, as OPC Publisher reports them. Only the members our
/// pipeline counts are present; OPC Publisher clients treat every member as optional.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PublishDiagnosticInfoModel {
    /// The configuration entries this writer was made from (passwords left out).
    #[serde(default)]
    pub endpoints: Vec<PublishedNodesEntryModel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ingress_value_changes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub encoder_io_t_messages_processed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub monitored_opc_nodes_succeeded_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub monitored_opc_nodes_failed_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub connection_retries: Option<u64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub opc_endpoint_connected: bool,
    /// Module-wide: the outbox is shared by every writer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub outgress_input_buffer_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub outgress_input_buffer_dropped: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub outgress_io_t_message_count: Option<u64>,
    /// Module-wide, an iiot member OPC Publisher does not have: where the module's certificate
    /// enrollment with a GDS stands (`--gds-url`): `starting`, `waiting_for_approval`,
    /// `rejected`, `enrolled` or `failing`; absent without a GDS.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub certificate_enrollment: Option<String>,
    /// Module-wide: when the certificate the GDS issued expires (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub certificate_not_after: Option<String>,
    /// Module-wide: when the trust list (CA certificates and their CRLs) last came from the
    /// GDS (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trust_list_refreshed: Option<String>,
}

/// Why a configuration API body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryBodyError {
    #[error("the body is not valid JSON: {0}")]
    Syntax(String),
    #[error("{0}")]
    Shape(String),
}

/// Members whose first letter is lower case become PascalCase, at the two levels the entry
/// model has (the entry and its `OpcNodes`); nested objects are user data and stay as sent.
fn pascal_case_members(value: Value) -> Value {
    fn pascal(map: Map<String, Value>, nodes: bool) -> Map<String, Value> {
        map.into_iter()
            .map(|(k, v)| {
                let mut chars = k.chars();
                let key = match chars.next() {
                    Some(c) if c.is_ascii_lowercase() => {
                        c.to_ascii_uppercase().to_string() + chars.as_str()
                    }
                    _ => k,
                };
                let v = match (nodes, key.as_str(), v) {
                    (true, "OpcNodes", Value::Array(items)) => Value::Array(
                        items
                            .into_iter()
                            .map(|n| match n {
                                Value::Object(o) => Value::Object(pascal(o, false)),
                                other => other,
                            })
                            .collect(),
                    ),
                    (true, "NodeId", Value::Object(o)) => Value::Object(pascal(o, false)),
                    (_, _, v) => v,
                };
                (key, v)
            })
            .collect()
    }
    match value {
        Value::Object(o) => Value::Object(pascal(o, true)),
        other => other,
    }
}

/// Reads one entry from JSON in either member spelling.
pub fn entry_from_value(value: Value) -> Result<PublishedNodesEntryModel, EntryBodyError> {
    if !value.is_object() {
        return Err(EntryBodyError::Shape(
            "expected a PublishedNodesEntryModel object".into(),
        ));
    }
    serde_json::from_value(pascal_case_members(value))
        .map_err(|e| EntryBodyError::Shape(format!("PublishedNodesEntryModel: {e}")))
}

/// Reads the body of PublishNodes / UnpublishNodes / GetConfiguredNodesOnEndpoint. An empty
/// body or `null` reads as `None` (UnpublishAllNodes takes that as "everything").
pub fn parse_entry(body: &[u8]) -> Result<Option<PublishedNodesEntryModel>, EntryBodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(body)
        .map_err(|e| EntryBodyError::Syntax(e.to_string()))?
    {
        Value::Null => Ok(None),
        v => entry_from_value(v).map(Some),
    }
}

/// Reads a list of entries (AddOrUpdateEndpoints, SetConfiguredEndpoints); the error names
/// the index of the entry that is wrong.
pub fn entries_from_values(
    values: Vec<Value>,
) -> Result<Vec<PublishedNodesEntryModel>, EntryBodyError> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            entry_from_value(v).map_err(|e| EntryBodyError::Shape(format!("entry {i}: {e}")))
        })
        .collect()
}

/// Reads the AddOrUpdateEndpoints body: a JSON array of entries.
pub fn parse_entries(body: &[u8]) -> Result<Vec<PublishedNodesEntryModel>, EntryBodyError> {
    match serde_json::from_slice::<Value>(body)
        .map_err(|e| EntryBodyError::Syntax(e.to_string()))?
    {
        Value::Array(items) => entries_from_values(items),
        _ => Err(EntryBodyError::Shape(
            "expected a JSON array of PublishedNodesEntryModel".into(),
        )),
    }
}

/// Reads the SetConfiguredEndpoints body: `{"endpoints": [...]}` as documented; a bare array
/// is accepted too, since that is what a user copies out of a `publishednodes.json`.
pub fn parse_set_configured_endpoints(
    body: &[u8],
) -> Result<Vec<PublishedNodesEntryModel>, EntryBodyError> {
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| EntryBodyError::Syntax(e.to_string()))?
    };
    match value {
        Value::Array(items) => entries_from_values(items),
        Value::Object(_) => {
            let r: SetConfiguredEndpointsRequestModel =
                serde_json::from_value(value).map_err(|e| {
                    EntryBodyError::Shape(format!("SetConfiguredEndpointsRequestModel: {e}"))
                })?;
            entries_from_values(r.endpoints.unwrap_or_default())
        }
        _ => Err(EntryBodyError::Shape(
            "expected a SetConfiguredEndpointsRequestModel {\"endpoints\": [...]}".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_read_in_either_case() {
        let e = parse_entry(
            br#"{"endpointUrl":"opc.tcp://a:1","dataSetWriterId":"w",
                 "opcNodes":[{"id":"i=2258","opcSamplingIntervalTimespan":"00:00:10",
                 "EventFilter":{"typeDefinitionId":"i=1"}}]}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.endpoint_url, "opc.tcp://a:1");
        assert_eq!(e.data_set_writer_id.as_deref(), Some("w"));
        let n = &e.opc_nodes.as_ref().unwrap()[0];
        assert_eq!(n.id.as_deref(), Some("i=2258"));
        assert_eq!(
            n.opc_sampling_interval_timespan.as_deref(),
            Some("00:00:10")
        );
        // Nested user objects are not renamed.
        assert_eq!(n.extra["EventFilter"]["typeDefinitionId"], "i=1");
        assert_eq!(parse_entry(b"  ").unwrap(), None);
        assert_eq!(parse_entry(b"null").unwrap(), None);
        assert!(matches!(parse_entry(b"[1]"), Err(EntryBodyError::Shape(_))));
        assert!(matches!(parse_entry(b"{"), Err(EntryBodyError::Syntax(_))));
    }

    #[test]
    fn set_configured_endpoints_reads_both_documented_shapes() {
        let a =
            parse_set_configured_endpoints(br#"{"Endpoints":[{"EndpointUrl":"opc.tcp://a:1"}]}"#)
                .unwrap();
        let b =
            parse_set_configured_endpoints(br#"{"endpoints":[{"endpointUrl":"opc.tcp://a:1"}]}"#)
                .unwrap();
        assert_eq!(a, b);
        assert_eq!(parse_set_configured_endpoints(b"{}").unwrap(), vec![]);
        assert!(
            parse_set_configured_endpoints(br#"{"endpoints":[{"EndpointUrl":1}]}"#)
                .unwrap_err()
                .to_string()
                .contains("entry 0")
        );
    }

    #[test]
    fn responses_use_the_2_9_member_names() {
        let r = GetConfiguredNodesOnEndpointResponseModel {
            opc_nodes: vec![OpcNodeModel {
                id: Some("i=1".into()),
                ..Default::default()
            }],
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"opcNodes":[{"Id":"i=1"}]})
        );
        let d = PublishDiagnosticInfoModel {
            ingress_value_changes: Some(3),
            encoder_io_t_messages_processed: Some(1),
            outgress_io_t_message_count: Some(1),
            monitored_opc_nodes_succeeded_count: Some(2),
            opc_endpoint_connected: true,
            ..Default::default()
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["ingressValueChanges"], 3);
        assert_eq!(v["encoderIoTMessagesProcessed"], 1);
        assert_eq!(v["outgressIoTMessageCount"], 1);
        assert_eq!(v["monitoredOpcNodesSucceededCount"], 2);
        assert_eq!(v["opcEndpointConnected"], true);
        assert_eq!(
            serde_json::to_value(PublishedNodesResponseModel::default()).unwrap(),
            json!({})
        );
    }
}
