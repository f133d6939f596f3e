//! The IoT Hub MQTT topics, seen from the hub: what a device or module publishes and subscribes
//! to, whether that identity may, and the topics the hub publishes back.
//!
//! MQTT framing comes from the MQTT codec we keep; which topics an identity may use is IoT Hub's
//! rule and therefore ours, so it lives here as pure functions the endpoint calls per packet.
//! The topic shapes are those the SDKs send (azure-iot-device 2.14.0 observed on the wire; the C,
//! .NET and embedded C SDKs where they differ), so every known client works unchanged.
//!
//! Choices beyond what IoT Hub documents:
//! - Ids are compared literally and case-sensitively, never percent-decoded: the topic carries the
//!   same raw id the client authenticated with.
//! - A property bag is at most [`MAX_BAG_BYTES`] of topic text and [`MAX_PROPERTIES`] pairs, so a
//!   hostile topic cannot make the hub allocate much; no SDK-built bag comes near either.
//! - Bags are decoded the way the Python SDK unquotes: `%XX` only (`+` stays `+`), an escape that
//!   is not one is kept as text (the C SDK sends values unencoded by default), but an escape that
//!   yields non-UTF-8 is refused. Empty pairs (`a=1&&b=2`, a trailing `&`) are skipped; a pair
//!   without a name (`=x`) and a name given twice are refused.
//! - A `$rid` is opaque and echoed back exactly as sent (not decoded), so it must be 1 to
//!   [`MAX_RID_LEN`] visible ASCII characters other than `#` and `+`, which would make the reply
//!   topic invalid MQTT.

use std::collections::HashSet;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};

/// IoT Hub's device-to-cloud message limit; the Python SDK refuses larger messages itself.
pub const MAX_TELEMETRY_BYTES: usize = 256 * 1024;
/// Longest property bag accepted, in bytes of (still encoded) topic text.
pub const MAX_BAG_BYTES: usize = 8 * 1024;
/// Most properties accepted in one bag.
pub const MAX_PROPERTIES: usize = 256;
/// Longest request id accepted; the SDKs send a UUID (36) or a small integer.
pub const MAX_RID_LEN: usize = 128;

/// Who is connected: a device, or a module of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity<'a> {
    pub device_id: &'a str,
    pub module_id: Option<&'a str>,
}

/// A publish from a device, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// `devices/{d}/messages/events/{bag}` or `devices/{d}/modules/{m}/messages/events/{bag}`
    Telemetry { properties: PropertyBag },
    /// `$iothub/twin/GET/?$rid={rid}`
    TwinGet { rid: String },
    /// `$iothub/twin/PATCH/properties/reported/?$rid={rid}[&...]`
    ReportedPatch { rid: String },
    /// `$iothub/methods/res/{status}/?$rid={rid}`
    MethodResponse { status: i32, rid: String },
}

/// Why a topic or filter is refused; topics are shown shortened so a log line stays readable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("'{0}' belongs to another device or module")]
    NotYours(String),
    #[error("'{0}' is not an IoT Hub topic this client may use")]
    Unknown(String),
    #[error("malformed property bag: {0}")]
    MalformedBag(String),
    #[error("the topic carries no '$rid' request id")]
    MissingRid,
    #[error("bad '$rid' request id: {0}")]
    BadRid(String),
    #[error("method response status '{0}' is not an integer")]
    BadStatus(String),
}

/// Topics can be 64 KiB long; errors keep the first 200 bytes.
fn shown(topic: &str) -> String {
    const KEEP: usize = 200;
    if topic.len() <= KEEP {
        return topic.to_owned();
    }
    let mut end = KEEP;
    while !topic.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &topic[..end])
}

fn unknown(topic: &str) -> TopicError {
    TopicError::Unknown(shown(topic))
}

fn not_yours(topic: &str) -> TopicError {
    TopicError::NotYours(shown(topic))
}

fn malformed(why: String) -> TopicError {
    TopicError::MalformedBag(why)
}

/// Splits `devices/{d}/[modules/{m}/]{rest}` into the identity it names and the rest.
fn identity_path(topic: &str) -> Option<(Identity<'_>, &str)> {
    let (device_id, rest) = topic.strip_prefix("devices/")?.split_once('/')?;
    let (module_id, rest) = match rest.strip_prefix("modules/") {
        Some(rest) => rest.split_once('/').map(|(m, rest)| (Some(m), rest))?,
        None => (None, rest),
    };
    Some((
        Identity {
            device_id,
            module_id,
        },
        rest,
    ))
}

/// Classifies a device's PUBLISH; the topic must be one the identity itself may publish on.
pub fn classify_publish(id: &Identity, topic: &str) -> Result<Inbound, TopicError> {
    if topic.starts_with("$iothub/") {
        return classify_request(topic);
    }
    let (target, rest) = identity_path(topic).ok_or_else(|| unknown(topic))?;
    let bag = match rest.strip_prefix("messages/events") {
        Some("") => "",
        Some(tail) => tail.strip_prefix('/').ok_or_else(|| unknown(topic))?,
        None => return Err(unknown(topic)),
    };
    if target != *id {
        return Err(not_yours(topic));
    }
    // The C SDK ends a bag that carries an output name with '/' (`…&%24.on=out/`).
    let bag = bag.strip_suffix('/').unwrap_or(bag);
    Ok(Inbound::Telemetry {
        properties: PropertyBag::parse(bag)?,
    })
}

/// Twin and method requests: the same for devices and modules, since the connection says who.
fn classify_request(topic: &str) -> Result<Inbound, TopicError> {
    let (path, query) = match topic.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (topic, None),
    };
    let path = path.strip_suffix('/').unwrap_or(path);
    let rid = || query.map_or(Err(TopicError::MissingRid), request_id);
    match path {
        "$iothub/twin/GET" => Ok(Inbound::TwinGet { rid: rid()? }),
        "$iothub/twin/PATCH/properties/reported" => Ok(Inbound::ReportedPatch { rid: rid()? }),
        _ => {
            let status = path
                .strip_prefix("$iothub/methods/res/")
                .filter(|s| !s.contains('/'))
                .ok_or_else(|| unknown(topic))?;
            let status = status
                .parse()
                .map_err(|_| TopicError::BadStatus(shown(status)))?;
            Ok(Inbound::MethodResponse {
                status,
                rid: rid()?,
            })
        }
    }
}

/// Finds `$rid` (or `rid`, as the SDKs strip a leading `$`) among the query's parameters, which
/// come in any order; the others are not ours to judge and are ignored.
fn request_id(query: &str) -> Result<String, TopicError> {
    let mut rid = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode_str(key).decode_utf8_lossy();
        if key.strip_prefix('$').unwrap_or(&key) != "rid" {
            continue;
        }
        if rid.replace(value).is_some() {
            return Err(TopicError::BadRid("given twice".into()));
        }
    }
    let rid = rid
        .filter(|r| !r.is_empty())
        .ok_or(TopicError::MissingRid)?;
    let fits = |b: u8| b.is_ascii_graphic() && b != b'#' && b != b'+';
    if rid.len() > MAX_RID_LEN || !rid.bytes().all(fits) {
        let why = format!(
            "'{}' is not 1-{MAX_RID_LEN} visible ASCII characters (no '#', '+')",
            shown(rid)
        );
        return Err(TopicError::BadRid(why));
    }
    Ok(rid.to_owned())
}

/// What a device may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    TwinResponses,
    DesiredPatches,
    Methods,
    CloudToDevice,
    ModuleInputs,
}

/// Classifies a SUBSCRIBE filter. Besides the Python SDK's filters this takes the module-input
/// filter `devices/{d}/modules/{m}/#` of the C and .NET SDKs, and `+` in place of the client's
/// own id (the embedded C SDK subscribes `devices/+/messages/devicebound/#`): the hub only ever
/// sends a connection its own messages, so neither widens what the client receives. Modules get
/// no cloud-to-device messages and devices no inputs, as on IoT Hub.
pub fn classify_subscription(id: &Identity, filter: &str) -> Result<Subscription, TopicError> {
    match filter {
        "$iothub/twin/res/#" => return Ok(Subscription::TwinResponses),
        "$iothub/twin/PATCH/properties/desired/#" => return Ok(Subscription::DesiredPatches),
        "$iothub/methods/POST/#" => return Ok(Subscription::Methods),
        _ => {}
    }
    let (target, rest) = identity_path(filter).ok_or_else(|| unknown(filter))?;
    let kind = match (target.module_id, rest) {
        (None, "messages/devicebound/#") => Subscription::CloudToDevice,
        (Some(_), "inputs/#" | "#") => Subscription::ModuleInputs,
        _ => return Err(unknown(filter)),
    };
    let own = |segment: &str, mine: &str| segment == "+" || segment == mine;
    let mine = own(target.device_id, id.device_id)
        && match (target.module_id, id.module_id) {
            (None, None) => true,
            (Some(segment), Some(mine)) => own(segment, mine),
            _ => false,
        };
    if mine {
        Ok(kind)
    } else {
        Err(not_yours(filter))
    }
}

/// System properties by the short names devices send, and their IoT Hub names. edgeHub's `$.cdid`
/// and `$.cmid` are deliberately absent: they would let a device claim another connection.
const SYSTEM_PROPERTIES: &[(&str, &str)] = &[
    ("$.mid", "message-id"),
    ("$.cid", "correlation-id"),
    ("$.uid", "user-id"),
    ("$.ct", "content-type"),
    ("$.ce", "content-encoding"),
    ("$.on", "output-name"),
    ("$.ifid", "interface-id"),
    ("$.exp", "absolute-expiry-time"),
    ("$.to", "to"),
];

/// Python's `quote(s, safe="")`: everything but `A-Z a-z 0-9 - . _ ~` is escaped, which is what
/// the SDKs send and unquote, and keeps `/`, `&`, `=`, `#` and `+` out of the topic.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A message's properties as a topic carries them: ordered `(name, value)` pairs, decoded;
/// a name with no `=` has a null value, `name=` an empty one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PropertyBag(pub Vec<(String, Option<String>)>);

impl PropertyBag {
    /// Parses the bag part of a topic (see the module notes for what is refused and why).
    pub fn parse(s: &str) -> Result<Self, TopicError> {
        if s.len() > MAX_BAG_BYTES {
            let n = s.len();
            return Err(malformed(format!("{n} bytes, more than {MAX_BAG_BYTES}")));
        }
        let decode = |part: &str| {
            percent_decode_str(part)
                .decode_utf8()
                .map(|d| d.into_owned())
                .map_err(|_| malformed(format!("'{}' is not UTF-8 once decoded", shown(part))))
        };
        let mut pairs = Vec::new();
        let mut seen = HashSet::new();
        for pair in s.split('&').filter(|p| !p.is_empty()) {
            if pairs.len() == MAX_PROPERTIES {
                return Err(malformed(format!("more than {MAX_PROPERTIES} properties")));
            }
            let (key, value) = match pair.split_once('=') {
                Some((key, value)) => (key, Some(value)),
                None => (pair, None),
            };
            if key.is_empty() {
                return Err(malformed(format!("'{}' has no name", shown(pair))));
            }
            let key = decode(key)?;
            if !seen.insert(key.clone()) {
                return Err(malformed(format!("'{}' given twice", shown(&key))));
            }
            pairs.push((key, value.map(decode).transpose()?));
        }
        Ok(Self(pairs))
    }

    /// The value of `key`; a null value reads as absent (`.0` tells them apart).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Splits into system properties (under their IoT Hub names) and application properties, so
    /// routing and the service side see what IoT Hub would show them.
    pub fn split(&self) -> (Map<String, Value>, Map<String, Value>) {
        let mut system = Map::new();
        let mut application = Map::new();
        for (key, value) in &self.0 {
            let value = value.clone().map_or(Value::Null, Value::String);
            match SYSTEM_PROPERTIES.iter().find(|(short, _)| short == key) {
                Some((_, name)) => system.insert((*name).to_owned(), value),
                None => application.insert(key.clone(), value),
            };
        }
        (system, application)
    }

    /// The bag as topic text, escaped as the SDKs escape it, so every SDK's parser reads back
    /// exactly these pairs.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (key, value)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.extend(utf8_percent_encode(key, COMPONENT));
            if let Some(value) = value {
                out.push('=');
                out.extend(utf8_percent_encode(value, COMPONENT));
            }
        }
        out
    }
}

/// The reply to a twin GET or reported patch; `version` is the reported version after a patch.
pub fn twin_response(status: u16, rid: &str, version: Option<u64>) -> String {
    match version {
        Some(v) => format!("$iothub/twin/res/{status}/?$rid={rid}&$version={v}"),
        None => format!("$iothub/twin/res/{status}/?$rid={rid}"),
    }
}

/// A desired-properties patch; the body must carry `"$version"` too, which the SDKs read.
pub fn desired_patch(version: u64) -> String {
    format!("$iothub/twin/PATCH/properties/desired/?$version={version}")
}

/// A direct-method call; the caller has validated the method name (no `/`, `?`, `#`, `+`).
pub fn method_request(name: &str, rid: &str) -> String {
    format!("$iothub/methods/POST/{name}/?$rid={rid}")
}

/// A cloud-to-device message for a device.
pub fn cloud_to_device(device_id: &str, bag: &PropertyBag) -> String {
    format!("devices/{device_id}/messages/devicebound/{}", bag.encode())
}

/// A message routed to a module's input.
pub fn module_input(device_id: &str, module_id: &str, input: &str, bag: &PropertyBag) -> String {
    let bag = bag.encode();
    format!("devices/{device_id}/modules/{module_id}/inputs/{input}/{bag}")
}

/// For a device or module client: the method name and `$rid` of a call the hub sent.
pub fn parse_method_request(topic: &str) -> Option<(String, String)> {
    let rest = topic.strip_prefix("$iothub/methods/POST/")?;
    let (name, query) = rest.split_once("/?")?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    Some((name.to_string(), request_id(query).ok()?))
}

/// For a client: the topic of its answer to call `rid`.
pub fn method_response(status: i32, rid: &str) -> String {
    format!("$iothub/methods/res/{status}/?$rid={rid}")
}

/// For a client: the topic of a reported-properties patch.
pub fn reported_patch(rid: &str) -> String {
    format!("$iothub/twin/PATCH/properties/reported/?$rid={rid}")
}

/// For a client: the topic of a device-to-cloud message.
pub fn telemetry(id: &Identity, bag: &PropertyBag) -> String {
    match id.module_id {
        Some(m) => format!(
            "devices/{}/modules/{m}/messages/events/{}",
            id.device_id,
            bag.encode()
        ),
        None => format!("devices/{}/messages/events/{}", id.device_id, bag.encode()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fmt::Debug;

    #[test]
    fn a_client_reads_calls_and_builds_its_topics() {
        assert_eq!(
            parse_method_request("$iothub/methods/POST/ValueRead_V2/?$rid=7f"),
            Some(("ValueRead_V2".into(), "7f".into()))
        );
        assert_eq!(parse_method_request("$iothub/methods/POST//?$rid=1"), None);
        assert_eq!(
            parse_method_request("$iothub/methods/POST/a/b/?$rid=1"),
            None
        );
        assert_eq!(parse_method_request("$iothub/methods/POST/a/?x=1"), None);
        assert_eq!(
            method_response(200, "7f"),
            "$iothub/methods/res/200/?$rid=7f"
        );
        let id = Identity {
            device_id: "d",
            module_id: Some("m"),
        };
        let bag = PropertyBag(vec![("$.on".into(), Some("output1".into()))]);
        let t = super::telemetry(&id, &bag);
        assert_eq!(t, "devices/d/modules/m/messages/events/%24.on=output1");
        assert!(matches!(
            classify_publish(&id, &t),
            Ok(Inbound::Telemetry { .. })
        ));
        let rid = reported_patch("3");
        assert_eq!(
            classify_publish(&id, &rid),
            Ok(Inbound::ReportedPatch { rid: "3".into() })
        );
    }

    const DEV: Identity = Identity {
        device_id: "dev-1",
        module_id: None,
    };
    const MODULE: Identity = Identity {
        device_id: "edge-gw-1",
        module_id: Some("opcpublisher"),
    };
    /// Ids are compared raw, never decoded.
    const ODD: Identity = Identity {
        device_id: "d%41:1=$'",
        module_id: None,
    };

    fn bag(pairs: &[(&str, Option<&str>)]) -> PropertyBag {
        PropertyBag(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        )
    }

    fn telemetry(id: &Identity, topic: &str) -> PropertyBag {
        match classify_publish(id, topic) {
            Ok(Inbound::Telemetry { properties }) => properties,
            other => panic!("{topic}: {other:?}"),
        }
    }

    /// Runs `who topic => want` lines: `who` is `dev`, `mod` or `odd`, `want` the start of the
    /// result's Debug text without `Ok`/`Err` (a whole value, or an error's variant name).
    fn table<T: Debug>(lines: &str, f: fn(&Identity, &str) -> Result<T, TopicError>) {
        for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (case, want) = line.split_once(" => ").unwrap();
            let (who, topic) = case.split_once(' ').unwrap_or((case, ""));
            let id = match who {
                "dev" => &DEV,
                "mod" => &MODULE,
                _ => &ODD,
            };
            let got = match f(id, topic) {
                Ok(v) => format!("{v:?}"),
                Err(e) => format!("{e:?}"),
            };
            assert!(got.starts_with(want), "{line}\n  got {got}");
        }
    }

    #[test]
    fn observed_module_output() {
        let topic = "devices/edge-gw-1/modules/opcpublisher/messages/events/%24.on=output1&%24.mid=m-1&%24.ct=application%2Fjson&%24.ce=utf-8&nodeId=ns%3D2%3Bs%3DTemp";
        let props = telemetry(&MODULE, topic);
        assert_eq!(props.get("nodeId"), Some("ns=2;s=Temp"));
        let (system, application) = props.split();
        let want = json!({"output-name": "output1", "message-id": "m-1",
                          "content-type": "application/json", "content-encoding": "utf-8"});
        assert_eq!(Value::Object(system), want);
        assert_eq!(Value::Object(application), json!({"nodeId": "ns=2;s=Temp"}));
        // Encoding gives back the SDK's exact text.
        assert_eq!(props.encode(), topic.split_once("events/").unwrap().1);
    }

    #[test]
    fn telemetry_forms() {
        for topic in [
            "devices/dev-1/messages/events/",
            "devices/dev-1/messages/events",
        ] {
            assert_eq!(telemetry(&DEV, topic), bag(&[]));
        }
        // The C SDK: unencoded values, and a '/' after the output name.
        let topic = "devices/edge-gw-1/modules/opcpublisher/messages/events/a=x/y&%24.on=out/";
        assert_eq!(telemetry(&MODULE, topic).encode(), "a=x%2Fy&%24.on=out");
        let props = telemetry(&DEV, "devices/dev-1/messages/events/k&e=&u=50%&s=a+b&&");
        assert_eq!(props.encode(), "k&e=&u=50%25&s=a%2Bb");
        assert_eq!(
            [props.get("k"), props.get("e"), props.get("x")],
            [None, Some(""), None]
        );
        let want = json!({"k": null, "e": "", "u": "50%", "s": "a+b"});
        assert_eq!(Value::Object(props.split().1), want);
    }

    #[test]
    fn every_system_property() {
        let topic = "devices/dev-1/messages/events/%24.mid=1&%24.cid=2&%24.uid=3&%24.ct=4&%24.ce=5&%24.on=6&%24.ifid=7&%24.exp=8&%24.to=9&%24.cdid=x&%24.cmid=y&%24.uid2";
        let (system, application) = telemetry(&DEV, topic).split();
        let want = json!({"message-id": "1", "correlation-id": "2", "user-id": "3",
            "content-type": "4", "content-encoding": "5", "output-name": "6", "interface-id": "7",
            "absolute-expiry-time": "8", "to": "9"});
        assert_eq!(Value::Object(system), want);
        let want = json!({"$.cdid": "x", "$.cmid": "y", "$.uid2": null});
        assert_eq!(Value::Object(application), want);
    }

    #[test]
    fn publishes() {
        let long_rid = "r".repeat(MAX_RID_LEN);
        table(
            &r#"
                dev $iothub/twin/GET/?$rid=7d2b => TwinGet { rid: "7d2b" }
                mod $iothub/twin/GET?rid=1 => TwinGet { rid: "1" }
                dev $iothub/twin/GET/?x=1&%24rid=r-2&y => TwinGet { rid: "r-2" }
                dev $iothub/twin/GET/?$rid=LONG => TwinGet
                mod $iothub/twin/PATCH/properties/reported/?$rid=5 => ReportedPatch { rid: "5" }
                dev $iothub/twin/PATCH/properties/reported/?$version=3&$rid=6 => ReportedPatch { rid: "6" }
                dev $iothub/methods/res/200/?$rid=9 => MethodResponse { status: 200, rid: "9" }
                mod $iothub/methods/res/-1?rid=a => MethodResponse { status: -1, rid: "a" }
                dev devices/dev-1/messages/events/a => Telemetry
                mod devices/edge-gw-1/modules/opcpublisher/messages/events/ => Telemetry
                odd devices/d%41:1=$'/messages/events => Telemetry
                dev devices/d%41:1=$'/messages/events => NotYours
                odd devices/dA:1=$'/messages/events => NotYours
                dev devices/dev-2/messages/events/ => NotYours
                dev devices/DEV-1/messages/events/ => NotYours
                dev devices/dev-1/modules/m/messages/events/ => NotYours
                mod devices/edge-gw-1/messages/events/ => NotYours
                mod devices/edge-gw-1/modules/other/messages/events/ => NotYours
                mod devices/edge-gw-2/modules/opcpublisher/messages/events => NotYours
                dev  => Unknown
                dev devices/dev-1/messages/eventsx => Unknown
                dev devices/dev-1/messages/devicebound/ => Unknown
                dev devices/dev-1/modules/messages/events/ => Unknown
                dev devices/dev-1 => Unknown
                dev devices//messages => Unknown
                dev device/dev-1/messages/events/ => Unknown
                dev $iothub/twin/PATCH/properties/desired/?$rid=1 => Unknown
                dev $iothub/methods/POST/m/?$rid=1 => Unknown
                dev $iothub/methods/res/200/x/?$rid=1 => Unknown
                dev $iothub/twin/GET/x/?$rid=1 => Unknown
                dev devices/dev-1/messages/events/=x => MalformedBag
                dev devices/dev-1/messages/events/a=1&a=2 => MalformedBag
                dev devices/dev-1/messages/events/%61=1&a=2 => MalformedBag
                dev devices/dev-1/messages/events/a=%FF => MalformedBag
                dev devices/dev-1/messages/events/%C3=1 => MalformedBag
                dev $iothub/twin/GET/ => MissingRid
                dev $iothub/twin/GET/?$rid= => MissingRid
                dev $iothub/twin/GET/?$rid => MissingRid
                dev $iothub/twin/GET/?id=1 => MissingRid
                dev $iothub/methods/res/200/ => MissingRid
                dev $iothub/twin/GET/?$rid=rLONG => BadRid
                dev $iothub/twin/GET/?$rid=a&rid=b => BadRid
                dev $iothub/twin/GET/?$rid=a b => BadRid
                dev $iothub/twin/GET/?$rid=é => BadRid
                mod $iothub/twin/PATCH/properties/reported/?$rid=a+ => BadRid
                dev $iothub/methods/res/ok/?$rid=1 => BadStatus("ok")
                dev $iothub/methods/res//?$rid=1 => BadStatus("")
                dev $iothub/methods/res/2147483648/?$rid=1 => BadStatus
                dev $iothub/methods/res/1.5/?$rid=1 => BadStatus
                "#
            .replace("LONG", &long_rid),
            classify_publish,
        );
    }

    #[test]
    fn subscriptions() {
        table(
            "
            dev $iothub/twin/res/# => TwinResponses
            mod $iothub/twin/PATCH/properties/desired/# => DesiredPatches
            dev $iothub/methods/POST/# => Methods
            dev devices/dev-1/messages/devicebound/# => CloudToDevice
            dev devices/+/messages/devicebound/# => CloudToDevice
            mod devices/edge-gw-1/modules/opcpublisher/inputs/# => ModuleInputs
            mod devices/edge-gw-1/modules/opcpublisher/# => ModuleInputs
            mod devices/+/modules/+/inputs/# => ModuleInputs
            dev devices/dev-2/messages/devicebound/# => NotYours
            dev devices/dev-1/modules/m/inputs/# => NotYours
            mod devices/edge-gw-1/messages/devicebound/# => NotYours
            mod devices/edge-gw-1/modules/other/inputs/# => NotYours
            mod devices/other/modules/+/# => NotYours
            dev # => Unknown
            dev $iothub/# => Unknown
            dev $iothub/twin/res/ => Unknown
            dev $iothub/twin/res/+ => Unknown
            dev $iothub/methods/res/# => Unknown
            dev devices/# => Unknown
            dev devices/dev-1/# => Unknown
            dev devices/dev-1/messages/events/# => Unknown
            dev devices/dev-1/messages/devicebound/ => Unknown
            mod devices/edge-gw-1/modules/opcpublisher/messages/devicebound/# => Unknown
            mod devices/edge-gw-1/modules/opcpublisher/inputs/x => Unknown
            ",
            classify_subscription,
        );
    }

    #[test]
    fn builders() {
        let b = bag(&[("$.mid", Some("id 1")), ("n", None)]);
        let got = [
            twin_response(200, "r1", None),
            twin_response(204, "r2", Some(5)),
            desired_patch(9),
            method_request("reboot", "3"),
            cloud_to_device("d", &bag(&[])),
            cloud_to_device("d", &b),
            module_input("d", "m", "i", &b),
        ];
        let want = "\
$iothub/twin/res/200/?$rid=r1
$iothub/twin/res/204/?$rid=r2&$version=5
$iothub/twin/PATCH/properties/desired/?$version=9
$iothub/methods/POST/reboot/?$rid=3
devices/d/messages/devicebound/
devices/d/messages/devicebound/%24.mid=id%201&n
devices/d/modules/m/inputs/i/%24.mid=id%201&n";
        assert_eq!(got.join("\n"), want);
    }

    #[test]
    fn encode_parse_round_trip() {
        let text = "a%2Fb=x%26y%3Dz&%C3%A9%23%2B=&%24.to&~=%2541%20%3F";
        let b = PropertyBag::parse(text).unwrap();
        let want =
            r#"[("a/b", Some("x&y=z")), ("é#+", Some("")), ("$.to", None), ("~", Some("%41 ?"))]"#;
        assert_eq!(format!("{:?}", b.0), want);
        assert_eq!(b.encode(), text);
        let mut rng = Rng(7);
        for _ in 0..500 {
            let mut b = PropertyBag::default();
            for i in 0..rng.below(6) {
                let value = (rng.below(3) > 0).then(|| rng.text(12));
                b.0.push((format!("{i}{}", rng.text(8)), value));
            }
            assert_eq!(PropertyBag::parse(&b.encode()), Ok(b));
        }
    }

    #[test]
    fn limits() {
        let many: Vec<String> = (0..MAX_PROPERTIES).map(|i| format!("k{i}")).collect();
        let many = many.join("&");
        assert_eq!(PropertyBag::parse(&many).unwrap().0.len(), MAX_PROPERTIES);
        let err = PropertyBag::parse(&format!("{many}&x")).unwrap_err();
        assert_eq!(
            err,
            TopicError::MalformedBag("more than 256 properties".into())
        );
        assert!(PropertyBag::parse(&format!("a={}", "v".repeat(MAX_BAG_BYTES - 2))).is_ok());
        let err = PropertyBag::parse(&format!("a={}", "v".repeat(MAX_BAG_BYTES - 1))).unwrap_err();
        assert!(
            err.to_string().ends_with(": 8193 bytes, more than 8192"),
            "{err}"
        );
        // Long topics are shortened in errors, on a character boundary.
        let topic = format!("devices/x/{}", "é".repeat(200));
        let err = classify_publish(&DEV, &topic).unwrap_err().to_string();
        assert!(err.len() < 260 && err.contains("éé…'"), "{err}");
    }

    /// xorshift: garbage without a dependency.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
        fn text(&mut self, max: u64) -> String {
            let pieces: Vec<&str> = "a|/|%|%2|%24|%FF|%C3|=|&|?|$|#|+|é| |rid|$rid=|devices/|modules/|messages/events/|$iothub/|twin/|GET/|methods/res/|dev-1|-5|\0".split('|').collect();
            let n = self.below(max + 1);
            (0..n)
                .map(|_| pieces[self.below(pieces.len() as u64) as usize])
                .collect()
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let s = rng.text(24);
            for id in [&DEV, &MODULE] {
                let _ = classify_publish(id, &s);
                let _ = classify_subscription(id, &s);
            }
            if let Ok(b) = PropertyBag::parse(&s) {
                let _ = b.split();
                assert_eq!(PropertyBag::parse(&b.encode()), Ok(b));
            }
        }
    }
}
