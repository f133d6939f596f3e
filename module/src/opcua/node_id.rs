//! Node id text forms accepted and produced by the API, resolved against one session's
//! namespace table.
//!
//! OPC Publisher clients send node ids in several spellings (`i=85`, `ns=2;s=x`,
//! `nsu=urn:x;s=x`, `urn:x#s=x`); the namespace index behind a URI differs per server and may
//! change after a server restart, so URIs are resolved per session, never cached globally.

use std::str::FromStr;

use opcua::types::{ExpandedNodeId, Identifier, NodeId};

use crate::api::NamespaceFormat;

/// Why a node id string could not be turned into a node id of this server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdError {
    #[error("node id '{0}' is malformed: expected i=, s=, g= or b= with an optional ns=, nsu= or URI# prefix")]
    Malformed(String),
    #[error("namespace '{uri}' of node id '{id}' is not known to the server")]
    UnknownNamespace { id: String, uri: String },
}

/// The namespace array of one server session (index → URI).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces(pub Vec<String>);

impl Namespaces {
    pub fn index_of(&self, uri: &str) -> Option<u16> {
        self.0
            .iter()
            .position(|u| u == uri)
            .and_then(|i| u16::try_from(i).ok())
    }

    pub fn uri_of(&self, index: u16) -> Option<&str> {
        self.0.get(index as usize).map(String::as_str)
    }

    /// Parses any accepted spelling of a node id.
    pub fn parse(&self, text: &str) -> Result<NodeId, NodeIdError> {
        // Leading blanks cannot belong to an id; trailing ones can (string ids are arbitrary).
        let text = text.trim_start();
        let malformed = || NodeIdError::Malformed(text.to_string());
        if text.is_empty() {
            return Err(malformed());
        }
        if let Some(rest) = text.strip_prefix("nsu=") {
            return self.split_uri_and_id(text, rest, ';');
        }
        if text.starts_with("ns=") || is_identifier(text) {
            if has_empty_value(text.rsplit(';').next().unwrap_or(text)) {
                return Err(malformed());
            }
            return NodeId::from_str(text).map_err(|_| malformed());
        }
        if text.contains('#') {
            return self.split_uri_and_id(text, text, '#');
        }
        Err(malformed())
    }

    /// Splits `{uri}{sep}{identifier}`. URIs may contain the separator and string identifiers
    /// may too, so the split chosen is the first whose left side is a namespace of this server
    /// and whose right side is an identifier; without a known URI, the first well-formed split
    /// names the unknown namespace.
    fn split_uri_and_id(&self, text: &str, rest: &str, sep: char) -> Result<NodeId, NodeIdError> {
        let malformed = || NodeIdError::Malformed(text.to_string());
        let candidates: Vec<(&str, &str)> = rest
            .match_indices(sep)
            .map(|(pos, _)| (&rest[..pos], &rest[pos + 1..]))
            .filter(|(uri, id)| !uri.is_empty() && is_identifier(id) && !has_empty_value(id))
            .collect();
        let (uri, id) = candidates
            .iter()
            .find(|(uri, _)| self.index_of(uri).is_some())
            .or_else(|| candidates.first())
            .copied()
            .ok_or_else(malformed)?;
        // The stack's parser slices the first two bytes: `is_identifier` checked they are an
        // ASCII prefix.
        let identifier = Identifier::from_str(id).map_err(|_| malformed())?;
        self.with_uri(text, uri, identifier)
    }

    /// Parses an expanded node id (`nsu=`/`svr=` forms) and resolves it to a local node id.
    pub fn parse_expanded(&self, text: &str) -> Result<NodeId, NodeIdError> {
        if let Ok(expanded) = ExpandedNodeId::from_str(text) {
            if expanded.server_index == 0 {
                return self.resolve_expanded(&expanded, text);
            }
        }
        self.parse(text)
    }

    pub fn resolve_expanded(
        &self,
        expanded: &ExpandedNodeId,
        text: &str,
    ) -> Result<NodeId, NodeIdError> {
        let uri = expanded.namespace_uri.as_ref();
        if uri.is_empty() {
            return Ok(expanded.node_id.clone());
        }
        self.with_uri(text, uri, expanded.node_id.identifier.clone())
    }

    fn with_uri(&self, text: &str, uri: &str, id: Identifier) -> Result<NodeId, NodeIdError> {
        let ns = self
            .index_of(uri)
            .ok_or_else(|| NodeIdError::UnknownNamespace {
                id: text.to_string(),
                uri: uri.to_string(),
            })?;
        Ok(NodeId::new(ns, id))
    }

    /// Formats a node id the way the caller asked for; namespace 0 stays bare (`i=85`) unless
    /// `ExpandedWithNamespace0` asks otherwise.
    pub fn format(&self, node_id: &NodeId, format: NamespaceFormat) -> String {
        let id = node_id.identifier.to_string();
        if node_id.namespace == 0 {
            return match (format, self.uri_of(0)) {
                (NamespaceFormat::ExpandedWithNamespace0, Some(uri)) => format!("nsu={uri};{id}"),
                _ => id,
            };
        }
        match (format, self.uri_of(node_id.namespace)) {
            (NamespaceFormat::Index, _) | (_, None) => format!("ns={};{id}", node_id.namespace),
            (NamespaceFormat::Expanded | NamespaceFormat::ExpandedWithNamespace0, Some(uri)) => {
                format!("nsu={uri};{id}")
            }
            (NamespaceFormat::Uri, Some(uri)) => format!("{uri}#{id}"),
        }
    }

    pub fn format_expanded(&self, node_id: &ExpandedNodeId, format: NamespaceFormat) -> String {
        if node_id.server_index != 0 {
            return node_id.to_string();
        }
        let uri = node_id.namespace_uri.as_ref();
        if uri.is_empty() {
            return self.format(&node_id.node_id, format);
        }
        let id = node_id.node_id.identifier.to_string();
        match format {
            NamespaceFormat::Uri => format!("{uri}#{id}"),
            _ => format!("nsu={uri};{id}"),
        }
    }
}

fn is_identifier(text: &str) -> bool {
    matches!(text.get(..2), Some("i=" | "s=" | "g=" | "b="))
}

/// `s=` with nothing after it: refused in every spelling alike.
fn has_empty_value(id: &str) -> bool {
    id.len() <= 2 && is_identifier(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> Namespaces {
        Namespaces(vec![
            "http://opcfoundation.org/UA/".into(),
            "urn:server".into(),
            "urn:iiot:plc-sim".into(),
        ])
    }

    #[test]
    fn parses_every_spelling() {
        let n = ns();
        assert_eq!(n.parse("i=85").unwrap(), NodeId::new(0, 85u32));
        assert_eq!(n.parse("ns=2;s=Fast/0").unwrap(), NodeId::new(2, "Fast/0"));
        assert_eq!(
            n.parse("nsu=urn:iiot:plc-sim;s=Fast/0").unwrap(),
            NodeId::new(2, "Fast/0")
        );
        assert_eq!(
            n.parse("urn:iiot:plc-sim#s=Fast/0").unwrap(),
            NodeId::new(2, "Fast/0")
        );
        assert_eq!(
            n.parse("http://opcfoundation.org/UA/#i=2253").unwrap(),
            NodeId::new(0, 2253u32)
        );
        assert_eq!(n.parse(" s=a;b ").unwrap(), NodeId::new(0, "a;b "));
    }

    #[test]
    fn rejects_malformed_and_unknown() {
        let n = ns();
        for bad in [
            "",
            "x",
            "ns=a;i=1",
            "i=abc",
            "nsu=urn:x",
            "g=not-a-guid",
            "#i=1",
            "nsu=urn:iiot:plc-sim;s\u{e9}",
            "nsu=u;\u{e9}",
        ] {
            assert!(
                matches!(n.parse(bad), Err(NodeIdError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            n.parse("nsu=urn:nope;i=1"),
            Err(NodeIdError::UnknownNamespace { .. })
        ));
    }

    #[test]
    fn separators_inside_uris_and_ids_round_trip() {
        let n = Namespaces(vec![
            "http://opcfoundation.org/UA/".into(),
            "urn:a;b".into(),
            "http://x/#frag".into(),
        ]);
        for id in [
            NodeId::new(1, "p;q"),
            NodeId::new(2, "a#b"),
            NodeId::new(2, "s=#"),
        ] {
            for f in [
                NamespaceFormat::Uri,
                NamespaceFormat::Index,
                NamespaceFormat::Expanded,
                NamespaceFormat::ExpandedWithNamespace0,
            ] {
                let text = n.format(&id, f);
                assert_eq!(n.parse(&text).unwrap(), id, "{text}");
            }
        }
        for empty in ["s=", "ns=1;s=", "nsu=urn:a;b;s=", "urn:a;b#s="] {
            assert!(n.parse(empty).is_err(), "{empty}");
        }
    }

    #[test]
    fn formats_per_namespace_format() {
        let n = ns();
        let id = NodeId::new(2, "Fast/0");
        assert_eq!(n.format(&id, NamespaceFormat::Index), "ns=2;s=Fast/0");
        assert_eq!(
            n.format(&id, NamespaceFormat::Expanded),
            "nsu=urn:iiot:plc-sim;s=Fast/0"
        );
        assert_eq!(
            n.format(&id, NamespaceFormat::Uri),
            "urn:iiot:plc-sim#s=Fast/0"
        );
        assert_eq!(
            n.format(&NodeId::new(0, 85u32), NamespaceFormat::Uri),
            "i=85"
        );
        let unknown = NodeId::new(9, 1u32);
        assert_eq!(n.format(&unknown, NamespaceFormat::Uri), "ns=9;i=1");
    }
}
