//! `publishednodes.json` and the configuration API's entry model (OPC Publisher 2.9), in every
//! form OPC Publisher has accepted since 2.5: top-level `NodeId.Identifier`, `OpcNodes` with
//! `Id` or `ExpandedNodeId`, intervals as milliseconds or as .NET TimeSpan strings.
//!
//! Members are PascalCase on the wire. Members this version does not model are kept in
//! `extra`, so writing a configuration back never loses what a user put in it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One endpoint + writer entry of the configuration.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct PublishedNodesEntryModel {
    pub endpoint_url: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub use_security: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub endpoint_security_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub endpoint_security_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub opc_authentication_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub opc_authentication_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub opc_authentication_password: Option<String>,
    /// Credentials as persisted by the module: encrypted, never in clear.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub encrypted_auth_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub encrypted_auth_password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_set_writer_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_set_writer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_set_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_set_publishing_interval: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_set_publishing_interval_timespan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_set_sampling_interval: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_set_sampling_interval_timespan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_set_key_frame_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub batch_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub batch_trigger_interval: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub batch_trigger_interval_timespan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub messaging_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message_encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub default_heartbeat_interval: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub default_heartbeat_interval_timespan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub default_heartbeat_behavior: Option<String>,
    /// 2.5 form: one node per entry.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node_id: Option<NodeIdModel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub opc_nodes: Option<Vec<OpcNodeModel>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<u64>,
    /// Every member not modelled above, kept as it was.
    #[serde(flatten, default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// Written by hand so that credentials never reach a log line.
impl std::fmt::Debug for PublishedNodesEntryModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishedNodesEntryModel")
            .field("endpoint_url", &self.endpoint_url)
            .field("use_security", &self.use_security)
            .field("endpoint_security_mode", &self.endpoint_security_mode)
            .field("opc_authentication_mode", &self.opc_authentication_mode)
            .field(
                "opc_authentication_username",
                &self.opc_authentication_username,
            )
            .field(
                "opc_authentication_password",
                &self.opc_authentication_password.as_ref().map(|_| "***"),
            )
            .field("data_set_writer_group", &self.data_set_writer_group)
            .field("data_set_writer_id", &self.data_set_writer_id)
            .field("opc_nodes", &self.opc_nodes.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

/// The 2.5 `NodeId` object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct NodeIdModel {
    pub identifier: String,
}

/// One node to publish.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct OpcNodeModel {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expanded_node_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub browse_path: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_set_field_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub opc_sampling_interval: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub opc_sampling_interval_timespan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub opc_publishing_interval: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub opc_publishing_interval_timespan: Option<String>,
    /// Seconds in 2.5 files, milliseconds since 2.8 (see `HeartbeatIntervalTimespan`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub heartbeat_interval: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub heartbeat_interval_timespan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub heartbeat_behavior: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub skip_first: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub queue_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub discard_new: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_change_trigger: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub deadband_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub deadband_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attribute_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub index_range: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// Why a configuration file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigFileError {
    #[error("publishednodes.json is not valid JSON at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("publishednodes.json must be a JSON array of entries")]
    NotAnArray,
    #[error("entry {index} ({endpoint}): {message}")]
    Entry {
        index: usize,
        endpoint: String,
        message: String,
    },
}

/// Parses a `publishednodes.json` text: a UTF-8 BOM and `//` or `/* */` comments (as in
/// OPC Publisher's own samples) are accepted.
///
/// A valid file is read straight into the typed entries. Going through a `serde_json::Value`
/// first costs ≈ 630 bytes per node for a moment (a map per node object): 63 MB for a 100k-node
/// file, which glibc then keeps scattered between the long-lived state built meanwhile. Only a
/// file that does not parse takes the slow path, to say which entry and endpoint are wrong.
pub fn parse_published_nodes(text: &str) -> Result<Vec<PublishedNodesEntryModel>, ConfigFileError> {
    let clean = strip_comments(text.trim_start_matches('\u{feff}'));
    match serde_json::from_str::<Vec<PublishedNodesEntryModel>>(&clean) {
        Ok(entries) => Ok(entries),
        Err(_) => Err(explain(&clean)),
    }
}

/// The error of a text that does not parse as entries: the JSON syntax error, or the first
/// entry that does not fit the model, named by its index and endpoint.
fn explain(clean: &str) -> ConfigFileError {
    let value: Value = match serde_json::from_str(clean) {
        Ok(v) => v,
        Err(e) => {
            return ConfigFileError::Syntax {
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            }
        }
    };
    let Value::Array(items) = value else {
        return ConfigFileError::NotAnArray;
    };
    for (index, item) in items.into_iter().enumerate() {
        let endpoint = item
            .get("EndpointUrl")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        if let Err(e) = serde_json::from_value::<PublishedNodesEntryModel>(item) {
            return ConfigFileError::Entry {
                index,
                endpoint,
                message: e.to_string(),
            };
        }
    }
    // Each entry parses alone but not the whole (not expected): report it as syntax.
    ConfigFileError::Syntax {
        line: 1,
        column: 1,
        message: "the entries do not parse together".into(),
    }
}

/// Removes `//` line and `/* */` block comments outside of strings, keeping line breaks so
/// error positions still point at the user's line. A text without comments (the usual case, and
/// every file the module writes) is not copied.
pub fn strip_comments(text: &str) -> std::borrow::Cow<'_, str> {
    if has_comment(text) {
        std::borrow::Cow::Owned(without_comments(text))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Whether a `//` or `/*` starts outside of a string.
fn has_comment(text: &str) -> bool {
    let mut bytes = text.bytes().peekable();
    let mut in_string = false;
    while let Some(b) = bytes.next() {
        match (in_string, b) {
            (true, b'\\') => {
                bytes.next();
            }
            (true, b'"') | (false, b'"') => in_string = !in_string,
            (false, b'/') if matches!(bytes.peek(), Some(b'/' | b'*')) => return true,
            _ => {}
        }
    }
    false
}

fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                    }
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_2_5_forms_with_comments_and_bom() {
        let text = "\u{feff}[
          // a 2.5 file
          { \"EndpointUrl\": \"opc.tcp://plc:50000\", \"UseSecurity\": false,
            \"NodeId\": { \"Identifier\": \"nsu=http://microsoft.com/Opc/OpcPlc/;s=FastUInt1\" } },
          { \"EndpointUrl\": \"opc.tcp://plc:50000\", /* inline */ \"OpcNodes\": [
              { \"ExpandedNodeId\": \"nsu=http://opcfoundation.org/UA/;i=2258\", \"OpcPublishingInterval\": 4000 },
              { \"Id\": \"ns=2;s=Siemens S7 \\\"TCP\\\" // not a comment\", \"HeartbeatInterval\": 3600 } ] }
        ]";
        let entries = parse_published_nodes(text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].node_id.as_ref().unwrap().identifier,
            "nsu=http://microsoft.com/Opc/OpcPlc/;s=FastUInt1"
        );
        let nodes = entries[1].opc_nodes.as_ref().unwrap();
        assert_eq!(nodes[0].opc_publishing_interval, Some(4000.0));
        assert_eq!(
            nodes[1].id.as_deref(),
            Some("ns=2;s=Siemens S7 \"TCP\" // not a comment")
        );
    }

    #[test]
    fn keeps_unknown_members_and_hides_passwords() {
        let text = r#"[{ "EndpointUrl": "opc.tcp://a:1", "WriterGroupPartitions": 3,
            "OpcAuthenticationMode": "UsernamePassword", "OpcAuthenticationUsername": "u",
            "OpcAuthenticationPassword": "secret",
            "OpcNodes": [{ "Id": "i=2258", "EventFilter": { "TypeDefinitionId": "i=2041" } }] }]"#;
        let entries = parse_published_nodes(text).unwrap();
        let back = serde_json::to_value(&entries).unwrap();
        assert_eq!(back[0]["WriterGroupPartitions"], 3);
        assert_eq!(
            back[0]["OpcNodes"][0]["EventFilter"]["TypeDefinitionId"],
            "i=2041"
        );
        assert!(!format!("{:?}", entries[0]).contains("secret"));
    }

    #[test]
    fn a_file_without_comments_is_not_copied() {
        let text = r#"[{ "EndpointUrl": "opc.tcp://a:1/x", "OpcNodes": [{ "Id": "s=a/*b*/ \"c\" //d" }] }]"#;
        assert!(matches!(
            strip_comments(text),
            std::borrow::Cow::Borrowed(_)
        ));
        assert!(matches!(
            strip_comments("[ /* x */ ]"),
            std::borrow::Cow::Owned(s) if s.trim() == "[  ]"
        ));
        assert!(matches!(
            strip_comments("[ // x\n ]"),
            std::borrow::Cow::Owned(_)
        ));
        let entries = parse_published_nodes(text).unwrap();
        assert_eq!(
            entries[0].opc_nodes.as_ref().unwrap()[0].id.as_deref(),
            Some("s=a/*b*/ \"c\" //d")
        );
    }

    #[test]
    fn reports_where_a_file_is_wrong() {
        assert!(matches!(
            parse_published_nodes("[{ \"EndpointUrl\": 1 }]"),
            Err(ConfigFileError::Entry { index: 0, .. })
        ));
        assert!(matches!(
            parse_published_nodes("{}"),
            Err(ConfigFileError::NotAnArray)
        ));
        match parse_published_nodes("[\n{ \"EndpointUrl\": }\n]") {
            Err(ConfigFileError::Syntax { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
    }
}
