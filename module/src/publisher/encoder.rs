//! Network message encoders: OPC UA PubSub JSON (Part 14, OPC Publisher's `ua-data` shape) and
//! the legacy Samples format, with splitting so no message exceeds the transport's limit.
//!
//! Encoders are pure: they take data set messages whose values are already JSON and return
//! bytes, so they are tested without servers or brokers. They write JSON straight into one
//! buffer instead of building a `serde_json::Value` tree first: that tree cost several
//! allocations per value and was the largest share of a relayed value's CPU time. Keys come
//! out in OPC Publisher's order, and a data set's fields in the writer's node order.

use std::sync::Arc;

use opcua::types::DateTime;
use serde_json::Value;

use crate::opcua::json_value::write_iso8601;

/// A value of one field in a data set message.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldValue {
    pub name: Arc<str>,
    /// The value in OPC UA JSON (non-reversible); `None` when the status is Bad.
    pub value: Option<Value>,
    /// Status code bits; 0 is Good and is left out of the message.
    pub status: u32,
    pub status_symbol: &'static str,
    pub source_timestamp: Option<DateTime>,
    pub server_timestamp: Option<DateTime>,
    /// Node id, used by the Samples format.
    pub node_id: Arc<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    KeyFrame,
    DeltaFrame,
    KeepAlive,
}

impl FrameKind {
    fn message_type(self) -> &'static str {
        match self {
            FrameKind::KeyFrame => "ua-keyframe",
            FrameKind::DeltaFrame => "ua-deltaframe",
            FrameKind::KeepAlive => "ua-keepalive",
        }
    }
}

/// One data set message of one writer.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSetMessage {
    pub writer_id: u16,
    pub writer_name: Arc<str>,
    pub sequence_number: u32,
    pub kind: FrameKind,
    pub timestamp: DateTime,
    pub metadata_version: (u32, u32),
    pub fields: Vec<FieldValue>,
    pub endpoint_url: Arc<str>,
    pub application_uri: Arc<str>,
}

/// Bytes a value usually takes in a message, to size the buffer once.
const BYTES_PER_VALUE: usize = 96;

/// Writes a JSON string (quoted, escaped). Writing to a `Vec` cannot fail.
fn string(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

fn key(out: &mut Vec<u8>, k: &str) {
    string(out, k);
    out.push(b':');
}

fn number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn timestamp(out: &mut Vec<u8>, t: &DateTime) {
    out.push(b'"');
    write_iso8601(out, t);
    out.push(b'"');
}

/// `{"Value":…,"StatusCode":{…},"SourceTimestamp":…,"ServerTimestamp":…}`
fn field_json(out: &mut Vec<u8>, f: &FieldValue) {
    out.push(b'{');
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    if let Some(v) = &f.value {
        sep(out);
        key(out, "Value");
        let _ = serde_json::to_writer(&mut *out, v);
    }
    if f.status != 0 {
        sep(out);
        out.extend_from_slice(b"\"StatusCode\":{\"Code\":");
        number(out, f.status);
        out.extend_from_slice(b",\"Symbol\":");
        string(out, f.status_symbol);
        out.push(b'}');
    }
    if let Some(t) = &f.source_timestamp {
        sep(out);
        key(out, "SourceTimestamp");
        timestamp(out, t);
    }
    if let Some(t) = &f.server_timestamp {
        sep(out);
        key(out, "ServerTimestamp");
        timestamp(out, t);
    }
    out.push(b'}');
}

fn data_set_json(out: &mut Vec<u8>, d: &DataSetMessage) {
    out.extend_from_slice(b"{\"DataSetWriterId\":");
    number(out, d.writer_id);
    out.extend_from_slice(b",\"DataSetWriterName\":");
    string(out, &d.writer_name);
    out.extend_from_slice(b",\"SequenceNumber\":");
    number(out, d.sequence_number);
    out.extend_from_slice(b",\"MetaDataVersion\":{\"MajorVersion\":");
    number(out, d.metadata_version.0);
    out.extend_from_slice(b",\"MinorVersion\":");
    number(out, d.metadata_version.1);
    out.extend_from_slice(b"},\"MessageType\":");
    string(out, d.kind.message_type());
    out.extend_from_slice(b",\"Timestamp\":");
    timestamp(out, &d.timestamp);
    if d.kind != FrameKind::KeepAlive {
        out.extend_from_slice(b",\"Payload\":{");
        for (i, f) in d.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            key(out, &f.name);
            field_json(out, f);
        }
        out.push(b'}');
    }
    out.push(b'}');
}

fn value_count(messages: &[DataSetMessage]) -> usize {
    messages.iter().map(|m| m.fields.len() + 1).sum()
}

/// A `ua-data` network message holding the given data set messages.
pub fn network_message(
    publisher_id: &str,
    message_id: u64,
    messages: &[DataSetMessage],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + value_count(messages) * BYTES_PER_VALUE);
    out.extend_from_slice(b"{\"MessageId\":\"");
    number(&mut out, message_id);
    out.extend_from_slice(b"\",\"MessageType\":\"ua-data\",\"PublisherId\":");
    string(&mut out, publisher_id);
    out.extend_from_slice(b",\"Messages\":[");
    for (i, d) in messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        data_set_json(&mut out, d);
    }
    out.extend_from_slice(b"]}");
    out
}

/// Legacy Samples: one JSON object per value; a batch is a JSON array of them.
pub fn samples_message(publisher_id: &str, messages: &[DataSetMessage]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + value_count(messages) * BYTES_PER_VALUE * 3);
    let data = || messages.iter().filter(|d| d.kind != FrameKind::KeepAlive);
    let count: usize = data().map(|d| d.fields.len()).sum();
    if count != 1 {
        out.push(b'[');
    }
    let mut first = true;
    for d in data() {
        for f in &d.fields {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"NodeId\":");
            string(&mut out, &f.node_id);
            out.extend_from_slice(b",\"EndpointUrl\":");
            string(&mut out, &d.endpoint_url);
            out.extend_from_slice(b",\"ApplicationUri\":");
            string(&mut out, &d.application_uri);
            out.extend_from_slice(b",\"DisplayName\":");
            string(&mut out, &f.name);
            out.extend_from_slice(b",\"Timestamp\":");
            timestamp(&mut out, &d.timestamp);
            out.extend_from_slice(b",\"Value\":");
            field_json(&mut out, f);
            out.extend_from_slice(b",\"SequenceNumber\":");
            number(&mut out, d.sequence_number);
            out.extend_from_slice(b",\"ExtensionFields\":{\"PublisherId\":");
            string(&mut out, publisher_id);
            out.extend_from_slice(b",\"DataSetWriterId\":");
            string(&mut out, &d.writer_name);
            out.extend_from_slice(b"}}");
        }
    }
    if count != 1 {
        out.push(b']');
    }
    out
}

/// One field of a `ua-metadata` message: its name and, once read from the server, its type.
pub struct MetadataField<'a> {
    pub name: &'a str,
    pub builtin_type: Option<u32>,
    pub data_type: Option<String>,
    pub value_rank: Option<i32>,
}

/// The retained `ua-metadata` message of a writer. Written straight into a buffer like the
/// data messages: built as a `serde_json::Value` tree it cost ≈ 1.2 kB of short-lived heap per
/// field, the largest memory peak when a big node set is subscribed.
pub fn metadata_message<'a>(
    publisher_id: &str,
    message_id: u64,
    writer_id: u16,
    writer_name: &str,
    version: (u32, u32),
    fields: impl Iterator<Item = MetadataField<'a>>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + fields.size_hint().0 * 96);
    out.extend_from_slice(b"{\"MessageId\":\"");
    number(&mut out, message_id);
    out.extend_from_slice(b"\",\"MessageType\":\"ua-metadata\",\"PublisherId\":");
    string(&mut out, publisher_id);
    out.extend_from_slice(b",\"DataSetWriterId\":");
    number(&mut out, writer_id);
    out.extend_from_slice(b",\"DataSetWriterName\":");
    string(&mut out, writer_name);
    out.extend_from_slice(b",\"MetaData\":{\"Name\":");
    string(&mut out, writer_name);
    out.extend_from_slice(b",\"Fields\":[");
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"Name\":");
        string(&mut out, f.name);
        if let Some(b) = f.builtin_type {
            out.extend_from_slice(b",\"BuiltInType\":");
            number(&mut out, b);
        }
        if let Some(dt) = &f.data_type {
            out.extend_from_slice(b",\"DataType\":");
            string(&mut out, dt);
        }
        if let Some(r) = f.value_rank {
            out.extend_from_slice(b",\"ValueRank\":");
            number(&mut out, r);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"ConfigurationVersion\":{\"MajorVersion\":");
    number(&mut out, version.0);
    out.extend_from_slice(b",\"MinorVersion\":");
    number(&mut out, version.1);
    out.extend_from_slice(b"}}}");
    out
}

/// Encodes `messages` into as few network messages as fit in `max_bytes` each. A data set
/// message that is too large alone is split by fields into several messages of the same
/// writer and sequence number; a single field that is too large is still sent whole, since
/// dropping it would lose a value (the transport reports it if the broker refuses it).
pub fn encode_split(
    messages: &[DataSetMessage],
    max_bytes: usize,
    encode: &dyn Fn(&[DataSetMessage]) -> Vec<u8>,
) -> Vec<Vec<u8>> {
    let whole = encode(messages);
    if whole.len() <= max_bytes || messages.is_empty() {
        return vec![whole];
    }
    if messages.len() > 1 {
        let (a, b) = messages.split_at(messages.len() / 2);
        let mut out = encode_split(a, max_bytes, encode);
        out.extend(encode_split(b, max_bytes, encode));
        return out;
    }
    let d = &messages[0];
    if d.fields.len() <= 1 {
        return vec![whole];
    }
    let (a, b) = d.fields.split_at(d.fields.len() / 2);
    let halves = [
        DataSetMessage {
            fields: a.to_vec(),
            ..d.clone()
        },
        DataSetMessage {
            fields: b.to_vec(),
            ..d.clone()
        },
    ];
    let mut out = encode_split(&halves[..1], max_bytes, encode);
    out.extend(encode_split(&halves[1..], max_bytes, encode));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str, v: i64) -> FieldValue {
        FieldValue {
            name: name.into(),
            value: Some(json!(v)),
            status: 0,
            status_symbol: "Good",
            source_timestamp: Some(DateTime::from((2024, 1, 1, 0, 0, 0))),
            server_timestamp: None,
            node_id: format!("nsu=urn:x;s={name}").into(),
        }
    }

    fn message(seq: u32, fields: Vec<FieldValue>) -> DataSetMessage {
        DataSetMessage {
            writer_id: 1,
            writer_name: "w1".into(),
            sequence_number: seq,
            kind: FrameKind::DeltaFrame,
            timestamp: DateTime::from((2024, 1, 1, 0, 0, 1, 500_000_000)),
            metadata_version: (1, 0),
            fields,
            endpoint_url: "opc.tcp://plc:50000/".into(),
            application_uri: "urn:plc".into(),
        }
    }

    #[test]
    fn pubsub_network_message_has_the_publisher_shape() {
        let mut bad = field("Bad", 0);
        bad.value = None;
        bad.status = 0x8031_0000;
        bad.status_symbol = "BadNoCommunication";
        let bytes = network_message("pub", 7, &[message(3, vec![field("A", 1), bad])]);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["MessageType"], "ua-data");
        assert_eq!(v["MessageId"], "7");
        let d = &v["Messages"][0];
        assert_eq!(d["DataSetWriterId"], 1);
        assert_eq!(d["SequenceNumber"], 3);
        assert_eq!(d["MessageType"], "ua-deltaframe");
        assert_eq!(d["Payload"]["A"]["Value"], 1);
        assert!(d["Payload"]["A"].get("StatusCode").is_none());
        assert_eq!(
            d["Payload"]["Bad"]["StatusCode"]["Symbol"],
            "BadNoCommunication"
        );
        assert!(d["Payload"]["Bad"].get("Value").is_none());
        assert_eq!(d["Timestamp"], "2024-01-01T00:00:01.500Z");
        assert_eq!(d["Payload"]["A"]["SourceTimestamp"], "2024-01-01T00:00:00Z");
        // Fields keep the writer's order, whatever their names.
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.find("\"A\"").unwrap() < text.find("\"Bad\"").unwrap());
    }

    #[test]
    fn metadata_has_the_publisher_shape() {
        let fields = vec![
            MetadataField {
                name: "T\"1",
                builtin_type: Some(9),
                data_type: Some("i=9".into()),
                value_rank: Some(-1),
            },
            MetadataField {
                name: "unknown",
                builtin_type: None,
                data_type: None,
                value_rank: None,
            },
        ];
        let v: Value = serde_json::from_slice(&metadata_message(
            "p",
            5,
            3,
            "w",
            (2, 0),
            fields.into_iter(),
        ))
        .unwrap();
        assert_eq!(v["MessageType"], "ua-metadata");
        assert_eq!(v["MessageId"], "5");
        assert_eq!(v["DataSetWriterId"], 3);
        assert_eq!(v["MetaData"]["Name"], "w");
        assert_eq!(v["MetaData"]["Fields"][0]["Name"], "T\"1");
        assert_eq!(v["MetaData"]["Fields"][0]["BuiltInType"], 9);
        assert_eq!(v["MetaData"]["Fields"][0]["ValueRank"], -1);
        assert!(v["MetaData"]["Fields"][1].get("DataType").is_none());
        assert_eq!(v["MetaData"]["ConfigurationVersion"]["MajorVersion"], 2);
    }

    #[test]
    fn names_and_strings_are_escaped() {
        let mut f = field("quote\"and\\back\nline", 1);
        f.value = Some(json!("a\u{1}b"));
        let mut m = message(1, vec![f]);
        m.writer_name = "w\"1".into();
        for bytes in [
            network_message("p\"x", 1, std::slice::from_ref(&m)),
            samples_message("p\"x", std::slice::from_ref(&m)),
        ] {
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            let text = v.to_string();
            assert!(text.contains("quote\\\"and\\\\back\\nline"), "{text}");
            assert!(text.contains("a\\u0001b"), "{text}");
        }
    }

    #[test]
    fn keep_alive_has_no_payload_and_samples_flatten() {
        let mut ka = message(9, vec![]);
        ka.kind = FrameKind::KeepAlive;
        let v: Value = serde_json::from_slice(&network_message("p", 1, &[ka.clone()])).unwrap();
        assert!(v["Messages"][0].get("Payload").is_none());
        let s: Value = serde_json::from_slice(&samples_message(
            "p",
            &[message(2, vec![field("A", 5), field("B", 6)]), ka],
        ))
        .unwrap();
        assert_eq!(s.as_array().unwrap().len(), 2);
        assert_eq!(s[1]["DisplayName"], "B");
        assert_eq!(s[1]["Value"]["Value"], 6);
        assert_eq!(s[1]["ExtensionFields"]["DataSetWriterId"], "w1");
    }

    #[test]
    fn splits_to_fit_and_loses_nothing() {
        let messages: Vec<_> = (0..20)
            .map(|i| {
                message(
                    i,
                    (0..10)
                        .map(|j| field(&format!("F{j}"), i64::from(i) * 100 + j))
                        .collect(),
                )
            })
            .collect();
        let encode = |m: &[DataSetMessage]| network_message("p", 1, m);
        let whole = encode(&messages).len();
        let parts = encode_split(&messages, whole / 7, &encode);
        assert!(parts.len() >= 7);
        let mut values = Vec::new();
        for p in &parts {
            assert!(p.len() <= whole / 7, "{} > {}", p.len(), whole / 7);
            let v: Value = serde_json::from_slice(p).unwrap();
            for d in v["Messages"].as_array().unwrap() {
                for (_, f) in d["Payload"].as_object().unwrap() {
                    values.push(f["Value"].as_i64().unwrap());
                }
            }
        }
        values.sort();
        let expected: Vec<i64> = (0..20)
            .flat_map(|i| (0..10).map(move |j| i * 100 + j))
            .collect();
        assert_eq!(values, expected);
        // A single field larger than the limit still goes out.
        let huge = message(1, vec![field("A", 1)]);
        assert_eq!(encode_split(&[huge], 10, &encode).len(), 1);
    }
}
