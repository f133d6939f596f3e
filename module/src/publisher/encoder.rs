//! Network message encoders: OPC UA PubSub JSON (Part 14, OPC Publisher's `ua-data` shape) and
//! the legacy Samples format, with splitting so no message exceeds the transport's limit.
//!
//! Encoders are pure: they take data set messages whose values are already JSON and return
//! bytes, so they are tested without servers or brokers.

use serde_json::{json, Map, Value};

/// A value of one field in a data set message.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldValue {
    pub name: String,
    /// The value in OPC UA JSON (non-reversible); `None` when the status is Bad.
    pub value: Option<Value>,
    /// Status code bits; 0 is Good and is left out of the message.
    pub status: u32,
    pub status_symbol: &'static str,
    pub source_timestamp: Option<String>,
    pub server_timestamp: Option<String>,
    /// Node id, endpoint and display name, used by the Samples format.
    pub node_id: String,
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
    pub writer_name: String,
    pub sequence_number: u32,
    pub kind: FrameKind,
    pub timestamp: String,
    pub metadata_version: (u32, u32),
    pub fields: Vec<FieldValue>,
    pub endpoint_url: String,
    pub application_uri: String,
}

fn field_json(f: &FieldValue) -> Value {
    let mut m = Map::new();
    if let Some(v) = &f.value {
        m.insert("Value".into(), v.clone());
    }
    if f.status != 0 {
        m.insert(
            "StatusCode".into(),
            json!({ "Code": f.status, "Symbol": f.status_symbol }),
        );
    }
    if let Some(t) = &f.source_timestamp {
        m.insert("SourceTimestamp".into(), json!(t));
    }
    if let Some(t) = &f.server_timestamp {
        m.insert("ServerTimestamp".into(), json!(t));
    }
    Value::Object(m)
}

fn data_set_json(d: &DataSetMessage) -> Value {
    let mut m = Map::new();
    m.insert("DataSetWriterId".into(), json!(d.writer_id));
    m.insert("DataSetWriterName".into(), json!(d.writer_name));
    m.insert("SequenceNumber".into(), json!(d.sequence_number));
    m.insert(
        "MetaDataVersion".into(),
        json!({ "MajorVersion": d.metadata_version.0, "MinorVersion": d.metadata_version.1 }),
    );
    m.insert("MessageType".into(), json!(d.kind.message_type()));
    m.insert("Timestamp".into(), json!(d.timestamp));
    if d.kind != FrameKind::KeepAlive {
        let payload: Map<String, Value> = d
            .fields
            .iter()
            .map(|f| (f.name.clone(), field_json(f)))
            .collect();
        m.insert("Payload".into(), Value::Object(payload));
    }
    Value::Object(m)
}

/// A `ua-data` network message holding the given data set messages.
pub fn network_message(
    publisher_id: &str,
    message_id: u64,
    messages: &[DataSetMessage],
) -> Vec<u8> {
    let body = json!({
        "MessageId": message_id.to_string(),
        "MessageType": "ua-data",
        "PublisherId": publisher_id,
        "Messages": messages.iter().map(data_set_json).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Legacy Samples: one JSON object per value; a batch is a JSON array of them.
pub fn samples_message(publisher_id: &str, messages: &[DataSetMessage]) -> Vec<u8> {
    let mut samples = Vec::new();
    for d in messages.iter().filter(|d| d.kind != FrameKind::KeepAlive) {
        for f in &d.fields {
            samples.push(json!({
                "NodeId": f.node_id,
                "EndpointUrl": d.endpoint_url,
                "ApplicationUri": d.application_uri,
                "DisplayName": f.name,
                "Timestamp": d.timestamp,
                "Value": field_json(f),
                "SequenceNumber": d.sequence_number,
                "ExtensionFields": { "PublisherId": publisher_id, "DataSetWriterId": d.writer_name },
            }));
        }
    }
    let body = if samples.len() == 1 {
        samples.remove(0)
    } else {
        Value::Array(samples)
    };
    serde_json::to_vec(&body).unwrap_or_default()
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

    fn field(name: &str, v: i64) -> FieldValue {
        FieldValue {
            name: name.into(),
            value: Some(json!(v)),
            status: 0,
            status_symbol: "Good",
            source_timestamp: Some("2024-01-01T00:00:00Z".into()),
            server_timestamp: None,
            node_id: format!("nsu=urn:x;s={name}"),
        }
    }

    fn message(seq: u32, fields: Vec<FieldValue>) -> DataSetMessage {
        DataSetMessage {
            writer_id: 1,
            writer_name: "w1".into(),
            sequence_number: seq,
            kind: FrameKind::DeltaFrame,
            timestamp: "2024-01-01T00:00:01Z".into(),
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
