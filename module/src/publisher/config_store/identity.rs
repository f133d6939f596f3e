//! When two configuration entries describe the same data set writer, and two nodes the same
//! monitored item: the matching rules every configuration method relies on.
//!
//! OPC Publisher 2.9 identifies a writer by its writer group settings (group name, messaging
//! mode, encoding, batching, ...), its connection (endpoint URL, security, credentials) and
//! its data set settings (writer id, name, key frame count, sampling and heartbeat defaults,
//! ...). We compare the same members, spelled-out forms normalized (a TimeSpan and the same
//! number of milliseconds are equal, enum names in any case are equal, empty equals absent).
//!
//! Deviation: 2.9.17 moves `DataSetPublishingInterval` onto the nodes when it stores an entry,
//! so the interval is not part of a writer's identity there. We keep the entry as the user
//! wrote it and count the interval in the identity instead, which is what the documented
//! examples (GetConfiguredNodesOnEndpoint with `DataSetPublishingInterval`) expect.

use serde_json::Value;

use crate::api::{OpcNodeModel, PublishedNodesEntryModel};
use crate::twin::read::parse_duration_ms;

/// Members OPC Publisher 2.9 counts in a writer's identity that we keep in `extra`.
const EXTRA_IDENTITY: &[&str] = &[
    "PublisherId",
    "WriterGroupType",
    "WriterGroupRootNodeId",
    "WriterGroupTransport",
    "WriterGroupTransportConfiguration",
    "WriterGroupQualityOfService",
    "WriterGroupQueueName",
    "WriterGroupPartitions",
    "WriterGroupMessageRetention",
    "WriterGroupMessageTtlTimepan",
    "UseReverseConnect",
    "DisableSubscriptionTransfer",
    "MaxKeepAliveCount",
    "DataSetType",
    "DataSetRootNodeId",
    "DataSetSourceUri",
    "DataSetSubject",
    "DataSetClassId",
    "SendKeepAliveDataSetMessages",
    "SendKeepAliveAsKeyFrameMessages",
    "Priority",
    "QualityOfService",
    "QueueName",
    "MetaDataQueueName",
    "MetaDataUpdateTime",
    "MetaDataUpdateTimeTimespan",
    "DataSetRouting",
    "RepublishAfterTransfer",
    "OpcNodeWatchdogTimespan",
    "DataSetWriterWatchdogBehavior",
    "OpcNodeWatchdogCondition",
    "DataSetFetchDisplayNames",
    "MessageRetention",
    "MessageTtlTimespan",
];

fn text(v: &Option<String>) -> &str {
    v.as_deref().map(str::trim).unwrap_or("")
}

fn same_text(a: &Option<String>, b: &Option<String>) -> bool {
    text(a) == text(b)
}

fn same_name(a: &Option<String>, b: &Option<String>) -> bool {
    text(a).eq_ignore_ascii_case(text(b))
}

/// An interval in milliseconds, the TimeSpan winning as in `plan`; an unreadable TimeSpan
/// compares by its text so that it still matches itself.
fn interval(timespan: &Option<String>, ms: Option<f64>) -> Option<Result<u64, String>> {
    match timespan.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => Some(
            parse_duration_ms(t)
                .map(|ms| (ms * 1000.0).round() as u64)
                .ok_or_else(|| t.to_string()),
        ),
        None => ms.map(|ms| Ok((ms * 1000.0).round() as u64)),
    }
}

/// The security mode an entry asks for, as `plan` reads it.
fn security(e: &PublishedNodesEntryModel) -> String {
    match e.endpoint_security_mode.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => m.to_ascii_lowercase(),
        _ if e.use_security.unwrap_or(false) => "notnone".into(),
        _ => "none".into(),
    }
}

fn auth_mode(e: &PublishedNodesEntryModel) -> String {
    match text(&e.opc_authentication_mode) {
        "" => "anonymous".into(),
        m => m.to_ascii_lowercase(),
    }
}

/// Absent, `null` and `false` are the same setting.
fn extra_value<'a>(e: &'a PublishedNodesEntryModel, key: &str) -> Option<&'a Value> {
    e.extra
        .get(key)
        .filter(|v| !matches!(v, Value::Null | Value::Bool(false)))
        .filter(|v| !matches!(v, Value::String(s) if s.is_empty()))
}

/// Whether `a` and `b` (credentials in clear) name the same data set writer.
pub fn same_data_set(a: &PublishedNodesEntryModel, b: &PublishedNodesEntryModel) -> bool {
    same_text(&a.data_set_writer_group, &b.data_set_writer_group)
        && a.endpoint_url.trim() == b.endpoint_url.trim()
        && security(a) == security(b)
        && same_text(&a.endpoint_security_policy, &b.endpoint_security_policy)
        && auth_mode(a) == auth_mode(b)
        && same_text(
            &a.opc_authentication_username,
            &b.opc_authentication_username,
        )
        && same_text(
            &a.opc_authentication_password,
            &b.opc_authentication_password,
        )
        && same_text(&a.data_set_writer_id, &b.data_set_writer_id)
        && same_text(&a.data_set_name, &b.data_set_name)
        && a.data_set_key_frame_count == b.data_set_key_frame_count
        && interval(
            &a.data_set_publishing_interval_timespan,
            a.data_set_publishing_interval,
        ) == interval(
            &b.data_set_publishing_interval_timespan,
            b.data_set_publishing_interval,
        )
        && interval(
            &a.data_set_sampling_interval_timespan,
            a.data_set_sampling_interval,
        ) == interval(
            &b.data_set_sampling_interval_timespan,
            b.data_set_sampling_interval,
        )
        && interval(
            &a.default_heartbeat_interval_timespan,
            a.default_heartbeat_interval,
        ) == interval(
            &b.default_heartbeat_interval_timespan,
            b.default_heartbeat_interval,
        )
        && same_name(&a.default_heartbeat_behavior, &b.default_heartbeat_behavior)
        && same_name(&a.messaging_mode, &b.messaging_mode)
        && same_name(&a.message_encoding, &b.message_encoding)
        && a.batch_size == b.batch_size
        && interval(&a.batch_trigger_interval_timespan, a.batch_trigger_interval)
            == interval(&b.batch_trigger_interval_timespan, b.batch_trigger_interval)
        && EXTRA_IDENTITY
            .iter()
            .all(|k| extra_value(a, k) == extra_value(b, k))
}

/// The node id a node is published by (`Id`, else `ExpandedNodeId`).
pub fn node_id(n: &OpcNodeModel) -> &str {
    n.id.as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .or_else(|| n.expanded_node_id.as_deref().map(str::trim))
        .unwrap_or("")
}

fn browse_path(n: &OpcNodeModel) -> &[String] {
    n.browse_path.as_deref().unwrap_or(&[])
}

fn node_interval(n: &OpcNodeModel) -> Option<Result<u64, String>> {
    interval(
        &n.opc_publishing_interval_timespan,
        n.opc_publishing_interval,
    )
}

/// Whether two nodes of one writer are the same monitored item: same node id (and browse
/// path) at the same publishing interval. Other settings (display name, sampling, heartbeat)
/// are the item's settings, which a second PublishNodes updates rather than duplicates.
pub fn same_node(a: &OpcNodeModel, b: &OpcNodeModel) -> bool {
    node_id(a) == node_id(b)
        && browse_path(a) == browse_path(b)
        && node_interval(a) == node_interval(b)
}

/// Whether an UnpublishNodes request node names `stored`; a request without a publishing
/// interval matches the node at any interval.
pub fn request_names_node(request: &OpcNodeModel, stored: &OpcNodeModel) -> bool {
    node_id(request) == node_id(stored)
        && browse_path(request) == browse_path(stored)
        && (node_interval(request).is_none() || node_interval(request) == node_interval(stored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parse_published_nodes;

    fn entries(text: &str) -> Vec<PublishedNodesEntryModel> {
        parse_published_nodes(text).unwrap()
    }

    #[test]
    fn writer_identity_normalizes_spellings_and_counts_what_2_9_counts() {
        let e = entries(
            r#"[
            { "EndpointUrl": "opc.tcp://a:1", "DataSetWriterGroup": "g", "DataSetWriterId": "w",
              "DataSetPublishingInterval": 2000, "MessagingMode": "PubSub", "UseSecurity": true },
            { "EndpointUrl": "opc.tcp://a:1 ", "DataSetWriterGroup": "g", "DataSetWriterId": "w",
              "DataSetPublishingIntervalTimespan": "00:00:02", "MessagingMode": "pubsub",
              "EndpointSecurityMode": "NotNone", "DataSetWriterWatchdogBehavior": null },
            { "EndpointUrl": "opc.tcp://a:1", "DataSetWriterGroup": "g", "DataSetWriterId": "w",
              "DataSetPublishingInterval": 1000, "UseSecurity": true },
            { "EndpointUrl": "opc.tcp://a:1", "DataSetWriterGroup": "g", "DataSetWriterId": "w",
              "DataSetPublishingInterval": 2000, "UseSecurity": true, "PublisherId": "other" },
            { "EndpointUrl": "opc.tcp://a:1", "DataSetWriterGroup": "g", "DataSetWriterId": "w",
              "DataSetPublishingInterval": 2000, "UseSecurity": true,
              "OpcAuthenticationMode": "UsernamePassword", "OpcAuthenticationUsername": "u" }
        ]"#,
        );
        assert!(same_data_set(&e[0], &e[1]));
        assert!(!same_data_set(&e[0], &e[2]), "publishing interval");
        assert!(!same_data_set(&e[0], &e[3]), "PublisherId");
        assert!(!same_data_set(&e[0], &e[4]), "credentials");
    }

    #[test]
    fn node_identity() {
        let n = |id: &str, ms: Option<f64>| OpcNodeModel {
            id: Some(id.into()),
            opc_publishing_interval: ms,
            display_name: Some("x".into()),
            ..Default::default()
        };
        let expanded = OpcNodeModel {
            expanded_node_id: Some("i=1".into()),
            ..Default::default()
        };
        assert!(same_node(&n("i=1", None), &expanded));
        assert!(!same_node(&n("i=1", Some(100.0)), &n("i=1", None)));
        assert!(request_names_node(&n("i=1", None), &n("i=1", Some(100.0))));
        assert!(!request_names_node(
            &n("i=1", Some(200.0)),
            &n("i=1", Some(100.0))
        ));
        assert!(!same_node(&n("ns=2;s=A", None), &n("ns=2;s=a", None)));
    }
}
