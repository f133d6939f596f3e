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
        let text = text.trim();
        let malformed = || NodeIdError::Malformed(text.to_string());
        if text.is_empty() {
            return Err(malformed());
        }
        if let Some(rest) = text.strip_prefix("nsu=") {
            let (uri, id) = rest.split_once(';').ok_or_else(malformed)?;
            // The stack's parser slices the first two bytes: check they are an ASCII prefix.
            if !is_identifier(id) {
                return Err(malformed());
            }
            let identifier = Identifier::from_str(id).map_err(|_| malformed())?;
            return self.with_uri(text, uri, identifier);
        }
        if text.starts_with("ns=") || is_identifier(text) {
            return NodeId::from_str(text).map_err(|_| malformed());
        }
        // `{uri}#{identifier}`: the URI may itself contain '#', the identifier never starts
        // with one, so split at the last '#' followed by an identifier prefix.
        if let Some(pos) = text.rfind('#') {
            let (uri, id) = (&text[..pos], &text[pos + 1..]);
            if is_identifier(id) && !uri.is_empty() {
                let identifier = Identifier::from_str(id).map_err(|_| malformed())?;
                return self.with_uri(text, uri, identifier);
            }
        }
        Err(malformed())
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
        assert_eq!(n.parse(" s=a;b ").unwrap(), NodeId::new(0, "a;b"));
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
