//! IoT Edge message routes: what edgeHub does with a module's output messages, read from the
//! desired properties of the device's `$edgeHub` module twin exactly as a deployment
//! manifest sets them (`routes`: `name: "FROM … [WHERE …] INTO …"` or `{route, priority,
//! timeToLiveSecs}`; `storeAndForwardConfiguration.timeToLiveSecs`).
//!
//! Sources: `/*`, `/messages/*`, `/messages/modules/*`, `/messages/modules/{m}/*`,
//! `/messages/modules/{m}/outputs/*`, `/messages/modules/{m}/outputs/{o}`. Sinks: `$upstream`
//! (every message is stored for the hub's routes anyway) and
//! `BrokeredEndpoint("/modules/{m}/inputs/{i}")`, which queues the message for module `m`'s
//! input `i` of the same device. `WHERE` takes the hub's query conditions over the message:
//! application properties by name, `$connectionDeviceId`, `$connectionModuleId`,
//! `$outputName`, `$messageId`, `$correlationId`, `$userId`, `$contentType`,
//! `$contentEncoding`, and `$body` when the body is JSON.

use iiot_api::iothub::topics::PropertyBag;
use serde_json::{Map, Value};

use super::messages::Message;
use super::query::HubQuery;

/// edgeHub's store-and-forward time to live when the manifest gives none.
pub const DEFAULT_TTL_SECS: i64 = 7200;

#[derive(Debug, Clone, PartialEq)]
enum From {
    All,
    Modules,
    Module(String),
    AnyOutput(String),
    Output(String, String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Into {
    Upstream,
    Input { module: String, input: String },
}

/// One parsed route.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    from: From,
    filter: Option<HubQuery>,
    pub into: Into,
    pub ttl_secs: i64,
}

/// Byte offsets of `word` (ASCII, any case) in `s` as a whole word.
fn word_offsets(s: &str, word: &str) -> Vec<usize> {
    let lower = s.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find(word) {
        let at = from + i;
        let end = at + word.len();
        let before = at == 0 || bytes[at - 1].is_ascii_whitespace();
        let after = end == bytes.len() || bytes[end].is_ascii_whitespace();
        if before && after {
            found.push(at);
        }
        from = end;
    }
    found
}

fn parse_from(source: &str) -> Result<From, String> {
    let parts: Vec<&str> = source.trim_start_matches('/').split('/').collect();
    Ok(match parts.as_slice() {
        ["*"] | ["messages", "*"] => From::All,
        ["messages", "modules", "*"] => From::Modules,
        ["messages", "modules", m, "*"] => From::Module((*m).into()),
        ["messages", "modules", m, "outputs", "*"] => From::AnyOutput((*m).into()),
        ["messages", "modules", m, "outputs", o] => From::Output((*m).into(), (*o).into()),
        _ => return Err(format!("source '{source}' is not one edgeHub routes")),
    })
}

fn parse_into(sink: &str) -> Result<Into, String> {
    if sink.eq_ignore_ascii_case("$upstream") {
        return Ok(Into::Upstream);
    }
    let inner = sink
        .get(..16)
        .filter(|p| p.eq_ignore_ascii_case("brokeredendpoint"))
        .and_then(|_| sink[16..].trim().strip_prefix('('))
        .and_then(|s| s.strip_suffix(')'))
        .map(|s| s.trim().trim_matches('"'))
        .ok_or_else(|| format!("sink '{sink}' is neither $upstream nor BrokeredEndpoint(\"…\")"))?;
    let parts: Vec<&str> = inner.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["modules", m, "inputs", i] if !m.is_empty() && !i.is_empty() => Ok(Into::Input {
            module: (*m).into(),
            input: (*i).into(),
        }),
        _ => Err(format!(
            "BrokeredEndpoint(\"{inner}\") is not /modules/{{module}}/inputs/{{input}}"
        )),
    }
}

impl Route {
    /// Parses `FROM <source> [WHERE <condition>] INTO <sink>`.
    pub fn parse(name: &str, text: &str, ttl_secs: i64) -> Result<Self, String> {
        let text = text.trim();
        let rest = text
            .get(..4)
            .filter(|p| p.eq_ignore_ascii_case("from"))
            .map(|_| text[4..].trim_start())
            .ok_or_else(|| format!("route '{name}' does not start with FROM"))?;
        // The last INTO ends the condition (a quoted 'into' may be in it); the first WHERE
        // begins it.
        let into_at = *word_offsets(rest, "into")
            .last()
            .ok_or_else(|| format!("route '{name}' has no INTO"))?;
        let (head, sink) = (&rest[..into_at], rest[into_at + 4..].trim());
        let (source, filter) = match word_offsets(head, "where").first().copied() {
            Some(w) => (head[..w].trim(), Some(head[w + 5..].trim())),
            None => (head.trim(), None),
        };
        let filter = filter
            .map(|f| {
                super::query::parse(&format!("SELECT * FROM devices WHERE {f}"))
                    .map_err(|e| format!("route '{name}': WHERE {f}: {e}"))
            })
            .transpose()?;
        Ok(Self {
            name: name.into(),
            from: parse_from(source).map_err(|e| format!("route '{name}': {e}"))?,
            filter,
            into: parse_into(sink).map_err(|e| format!("route '{name}': {e}"))?,
            ttl_secs,
        })
    }

    /// Whether the route takes `m`.
    pub fn matches(&self, m: &Message) -> bool {
        let output = m
            .system_properties
            .get("output-name")
            .and_then(Value::as_str);
        let module = (!m.module_id.is_empty()).then_some(m.module_id.as_str());
        let source = match &self.from {
            From::All => true,
            From::Modules => module.is_some(),
            From::Module(x) => module == Some(x.as_str()),
            From::AnyOutput(x) => module == Some(x.as_str()) && output.is_some(),
            From::Output(x, o) => module == Some(x.as_str()) && output == Some(o.as_str()),
        };
        source && self.filter.as_ref().is_none_or(|f| f.matches(&document(m)))
    }
}

/// The message as route conditions see it.
fn document(m: &Message) -> Value {
    let mut doc: Map<String, Value> = m.properties.clone();
    doc.insert("$connectionDeviceId".into(), m.device_id.clone().into());
    if !m.module_id.is_empty() {
        doc.insert("$connectionModuleId".into(), m.module_id.clone().into());
    }
    for (system, name) in [
        ("output-name", "$outputName"),
        ("message-id", "$messageId"),
        ("correlation-id", "$correlationId"),
        ("user-id", "$userId"),
        ("content-type", "$contentType"),
        ("content-encoding", "$contentEncoding"),
    ] {
        if let Some(v) = m.system_properties.get(system) {
            doc.insert(name.into(), v.clone());
        }
    }
    if let Ok(body) = serde_json::from_slice::<Value>(&m.body) {
        doc.insert("$body".into(), body);
    }
    Value::Object(doc)
}

/// The properties a module input message carries: the sender's system properties, edgeHub's
/// `$.cdid` and `$.cmid` (the sending device and module), then its application properties
/// sorted by name.
pub fn input_properties(m: &Message) -> PropertyBag {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    let mut pairs = Vec::new();
    for (system, short) in [
        ("message-id", "$.mid"),
        ("correlation-id", "$.cid"),
        ("user-id", "$.uid"),
        ("content-type", "$.ct"),
        ("content-encoding", "$.ce"),
    ] {
        if let Some(v) = m.system_properties.get(system) {
            pairs.push((short.to_string(), text(v)));
        }
    }
    pairs.push(("$.cdid".into(), Some(m.device_id.clone())));
    if !m.module_id.is_empty() {
        pairs.push(("$.cmid".into(), Some(m.module_id.clone())));
    }
    let mut application: Vec<(String, Option<String>)> = m
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), text(v)))
        .collect();
    application.sort();
    pairs.extend(application);
    PropertyBag(pairs)
}

/// The routes of an `$edgeHub` twin's desired properties; a route that does not parse is
/// skipped with a warning (edgeHub refuses the whole configuration; one bad route should not
/// stop the others here, and the warning names it).
pub fn from_desired(desired: &Map<String, Value>) -> Vec<Route> {
    let default_ttl = desired
        .get("storeAndForwardConfiguration")
        .and_then(|s| s.get("timeToLiveSecs"))
        .and_then(Value::as_i64)
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_TTL_SECS);
    let Some(Value::Object(routes)) = desired.get("routes") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, spec) in routes {
        let (text, ttl) = match spec {
            Value::String(t) => (t.as_str(), default_ttl),
            Value::Object(o) => match o.get("route").and_then(Value::as_str) {
                Some(t) => (
                    t,
                    o.get("timeToLiveSecs")
                        .and_then(Value::as_i64)
                        .filter(|t| *t > 0)
                        .unwrap_or(default_ttl),
                ),
                None => {
                    tracing::warn!(route = %name, "hub: an $edgeHub route without 'route'");
                    continue;
                }
            },
            _ => continue,
        };
        match Route::parse(name, text, ttl) {
            Ok(r) => out.push(r),
            Err(e) => tracing::warn!(error = %e, "hub: an $edgeHub route is skipped"),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn message(module: &str, output: Option<&str>, props: &[(&str, &str)]) -> Message {
        let mut system = Map::new();
        if let Some(o) = output {
            system.insert("output-name".into(), o.into());
        }
        Message {
            id: String::new(),
            device_id: "edge".into(),
            module_id: module.into(),
            enqueued_time: String::new(),
            system_properties: system,
            properties: props
                .iter()
                .map(|(k, v)| ((*k).to_string(), Value::from(*v)))
                .collect(),
            body: Bytes::from_static(br#"{"t":30}"#),
        }
    }

    #[test]
    fn manifest_routes_pick_their_messages() {
        let desired = serde_json::json!({
            "schemaVersion": "1.1",
            "routes": {
                "toB": "FROM /messages/modules/a/outputs/out1 INTO BrokeredEndpoint(\"/modules/b/inputs/in1\")",
                "hot": {"route": "from /messages/modules/a/* where $body.t > 25 AND unit = 'C' into brokeredEndpoint(\"/modules/b/inputs/hot\")", "priority": 0, "timeToLiveSecs": 60},
                "up": "FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream",
                "bad": "FROM /twinChangeNotifications INTO $upstream"
            },
            "storeAndForwardConfiguration": {"timeToLiveSecs": 300}
        });
        let routes = from_desired(desired.as_object().unwrap());
        assert_eq!(routes.len(), 3, "{routes:?}");
        let by = |n: &str| routes.iter().find(|r| r.name == n).unwrap();
        assert_eq!(by("toB").ttl_secs, 300);
        assert_eq!(by("hot").ttl_secs, 60);
        assert_eq!(
            by("toB").into,
            Into::Input {
                module: "b".into(),
                input: "in1".into()
            }
        );
        let out1 = message("a", Some("out1"), &[("unit", "C")]);
        assert!(by("toB").matches(&out1));
        assert!(by("hot").matches(&out1));
        assert!(!by("up").matches(&out1));
        assert!(!by("toB").matches(&message("a", Some("out2"), &[])));
        assert!(!by("hot").matches(&message("a", None, &[("unit", "F")])));
        assert!(by("up").matches(&message("", None, &[])));
    }

    #[test]
    fn malformed_routes_are_refused() {
        for bad in [
            "INTO $upstream",
            "FROM /messages/*",
            "FROM /messages/modules/a/things INTO $upstream",
            "FROM /messages/* INTO BrokeredEndpoint(\"/modules/b/outputs/x\")",
            "FROM /messages/* INTO somewhere",
            "FROM /messages/* WHERE (( INTO $upstream",
        ] {
            assert!(Route::parse("r", bad, 1).is_err(), "{bad}");
        }
    }
}
