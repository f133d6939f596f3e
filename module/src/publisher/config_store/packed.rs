//! The running configuration as it sits in memory between changes: compact JSON.
//!
//! A parsed `OpcNodeModel` is ≈ 450 bytes (two dozen optional members) however few of them a
//! node sets, and the store used to keep one per published node for the life of the
//! process: with 100k nodes that was 45 MB holding nothing the engine needs between changes
//! (it works from its plans). The same node as JSON is the handful of members it sets, ≈ 40
//! bytes. The store parses it back when a change or a report needs the entries, which costs
//! milliseconds at those rare moments instead of memory all the time. Each entry's JSON is
//! also LZ4-compressed: node after node repeats the same member names and namespace, so a
//! 100k-node configuration takes ≈ 1–2 MB instead of ≈ 11 MB, and decompressing runs at
//! gigabytes per second.

use std::sync::Arc;

use super::ConfigError;
use crate::api::PublishedNodesEntryModel;

/// Entries with credentials in clear (in memory only, as before), encoded once per change,
/// one compressed JSON document per entry: the engine decodes and plans them one at a time,
/// so a change never holds every parsed node at once.
#[derive(Clone, Debug)]
pub struct PackedEntries {
    entries: Arc<[Box<[u8]>]>,
    nodes: usize,
}

impl PartialEq for PackedEntries {
    /// Equal entries encode to equal bytes (members in declaration order), so this is entry
    /// equality without decoding. At worst unknown members in another order count as a
    /// change, which the engine then finds changes no plan.
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Default for PackedEntries {
    fn default() -> Self {
        Self {
            entries: Arc::from(Vec::new()),
            nodes: 0,
        }
    }
}

impl PackedEntries {
    pub fn pack(entries: &[PublishedNodesEntryModel]) -> Result<Self, ConfigError> {
        let packed = entries
            .iter()
            .map(|e| {
                serde_json::to_vec(e)
                    .map(|json| lz4_flex::compress_prepend_size(&json).into_boxed_slice())
                    .map_err(|e| ConfigError::Memory(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            entries: Arc::from(packed),
            nodes: entries.iter().map(super::node_count).sum(),
        })
    }

    /// The entries again. Only fails if the encoding above did not round-trip, which would
    /// be a bug: callers refuse the operation rather than act on an empty configuration.
    pub fn unpack(&self) -> Result<Vec<PublishedNodesEntryModel>, ConfigError> {
        self.iter().collect()
    }

    /// The entries decoded one at a time.
    pub fn iter(&self) -> impl Iterator<Item = Result<PublishedNodesEntryModel, ConfigError>> + '_ {
        self.entries.iter().map(|packed| {
            let json = lz4_flex::decompress_size_prepended(packed)
                .map_err(|e| ConfigError::Memory(e.to_string()))?;
            serde_json::from_slice(&json).map_err(|e| ConfigError::Memory(e.to_string()))
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of nodes over all entries.
    pub fn node_count(&self) -> usize {
        self.nodes
    }

    /// Bytes held (compressed); what the configuration costs between changes.
    pub fn size(&self) -> usize {
        self.entries.iter().map(|e| e.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parse_published_nodes;

    #[test]
    fn round_trips_every_member_and_is_small() {
        let text = r#"[{ "EndpointUrl": "opc.tcp://plc:50000", "UseSecurity": true,
            "DataSetWriterGroup": "g", "DataSetWriterId": "w", "DataSetPublishingInterval": 500,
            "OpcAuthenticationMode": "UsernamePassword", "OpcAuthenticationUsername": "u",
            "OpcAuthenticationPassword": "p", "MessagingMode": "Samples", "Custom": {"x": 1},
            "OpcNodes": [
              { "Id": "ns=2;s=A", "DisplayName": "a", "OpcSamplingIntervalTimespan": "00:00:01",
                "HeartbeatInterval": 5, "HeartbeatBehavior": "PeriodicLKV", "SkipFirst": true,
                "QueueSize": 4, "DiscardNew": true, "DataChangeTrigger": "StatusValue",
                "DeadbandType": "Absolute", "DeadbandValue": 0.5, "BrowsePath": ["a", "b"],
                "Extra": "kept" },
              { "ExpandedNodeId": "nsu=http://x;s=B" }
            ] },
            { "EndpointUrl": "opc.tcp://other:4840", "NodeId": { "Identifier": "i=2258" } }]"#;
        let entries = parse_published_nodes(text).expect("parses");
        let packed = PackedEntries::pack(&entries).expect("packs");
        assert_eq!(packed.unpack().expect("unpacks"), entries);
        assert_eq!(packed.len(), 2);
        assert_eq!(packed.node_count(), 3);

        let many: Vec<PublishedNodesEntryModel> = parse_published_nodes(&format!(
            r#"[{{ "EndpointUrl": "opc.tcp://plc:50000", "OpcNodes": [{}] }}]"#,
            (0..1000)
                .map(|i| format!(r#"{{ "Id": "ns=2;s=Fast.{i:05}" }}"#))
                .collect::<Vec<_>>()
                .join(",")
        ))
        .expect("parses");
        let packed = PackedEntries::pack(&many).expect("packs");
        assert!(
            packed.size() < 1000 * 40,
            "{} bytes for 1000 nodes",
            packed.size()
        );
    }

    #[test]
    fn empty_is_an_empty_list() {
        let p = PackedEntries::default();
        assert!(p.is_empty());
        assert_eq!(p.unpack().expect("unpacks"), Vec::new());
    }
}
