//! OPC UA values to and from the plain JSON that OPC Publisher's API carries.
//!
//! Responses use the non-reversible OPC UA JSON form (Part 6 §5.4, a number is a number, a
//! string a string), with the built-in type name reported beside it as `dataType`. Writes go
//! the other way: the JSON value is coerced to the node's data type, so a client can send `42`
//! to a Byte, Int64 or Double node and get the right wire type; anything that would lose
//! information (out of range, fractional to integer, unparsable text) is refused, never
//! truncated.

use std::str::FromStr;

use base64::Engine;
use opcua::types::{
    Array, ByteString, DataTypeId, DateTime, ExpandedNodeId, Guid, LocalizedText, NodeId,
    QualifiedName, StatusCode, UAString, Variant, VariantScalarTypeId, XmlElement,
};
use serde_json::{json, Map, Number, Value};

use super::node_id::Namespaces;
use crate::api::NamespaceFormat;

/// Why a JSON value cannot become the requested OPC UA value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot convert {value} to {target}: {reason}")]
pub struct CoercionError {
    pub value: String,
    pub target: String,
    pub reason: String,
}

impl CoercionError {
    fn new(value: &Value, target: VariantScalarTypeId, reason: impl Into<String>) -> Self {
        let mut text = value.to_string();
        if text.len() > 64 {
            text.truncate(61);
            text.push_str("...");
        }
        Self {
            value: text,
            target: target.to_string(),
            reason: reason.into(),
        }
    }
}

/// Built-in type of a well-known namespace-0 data type, following the subtypes OPC UA defines
/// so that e.g. `UtcTime` writes as a DateTime and enumerations as Int32. Other data types need
/// their supertype chain browsed on the server first.
pub fn builtin_of(data_type: &NodeId) -> Option<VariantScalarTypeId> {
    if data_type.namespace != 0 {
        return None;
    }
    let id = data_type.as_u32()?;
    if let Ok(t) = VariantScalarTypeId::try_from(id) {
        return Some(t);
    }
    use VariantScalarTypeId as T;
    let t = match id {
        x if x == DataTypeId::Number as u32 => T::Double,
        x if x == DataTypeId::Integer as u32 => T::Int64,
        x if x == DataTypeId::UInteger as u32 => T::UInt64,
        x if x == DataTypeId::Enumeration as u32 => T::Int32,
        x if x == DataTypeId::UtcTime as u32 => T::DateTime,
        x if x == DataTypeId::Duration as u32 => T::Double,
        x if x == DataTypeId::LocaleId as u32 => T::String,
        x if x == DataTypeId::NumericRange as u32 => T::String,
        x if x == DataTypeId::IntegerId as u32 => T::UInt32,
        x if x == DataTypeId::Counter as u32 => T::UInt32,
        x if x == DataTypeId::Index as u32 => T::UInt32,
        x if x == DataTypeId::Image as u32 => T::ByteString,
        x if x == DataTypeId::ApplicationInstanceCertificate as u32 => T::ByteString,
        x if x == DataTypeId::SessionAuthenticationToken as u32 => T::NodeId,
        _ => return None,
    };
    Some(t)
}

/// Built-in type from a type name as OPC Publisher clients send it in `dataType`
/// ("Int32", "i=6", "Double", ...).
pub fn builtin_from_name(name: &str) -> Option<VariantScalarTypeId> {
    if let Ok(node_id) = NodeId::from_str(name) {
        return builtin_of(&node_id);
    }
    (1u32..=25)
        .filter_map(|i| VariantScalarTypeId::try_from(i).ok())
        .find(|t| t.to_string().eq_ignore_ascii_case(name))
}

/// Name of a value's built-in type, as reported in `dataType` of read responses.
pub fn type_name(value: &Variant) -> Option<String> {
    match value {
        Variant::Empty => None,
        Variant::Array(a) => Some(a.value_type.to_string()),
        v => v.scalar_type_id().map(|t| t.to_string()),
    }
}

/// Encodes a value in the non-reversible JSON form.
pub fn to_json(value: &Variant, ns: &Namespaces, format: NamespaceFormat) -> Value {
    match value {
        Variant::Empty => Value::Null,
        Variant::Boolean(v) => json!(v),
        Variant::SByte(v) => json!(v),
        Variant::Byte(v) => json!(v),
        Variant::Int16(v) => json!(v),
        Variant::UInt16(v) => json!(v),
        Variant::Int32(v) => json!(v),
        Variant::UInt32(v) => json!(v),
        Variant::Int64(v) => json!(v),
        Variant::UInt64(v) => json!(v),
        Variant::Float(v) => float(f64::from(*v)),
        Variant::Double(v) => float(*v),
        Variant::String(v) => ua_string(v),
        Variant::XmlElement(v) => {
            let text = v.to_string();
            // A null XmlElement prints as "[null]"; it is JSON null.
            if *v == XmlElement::null() {
                Value::Null
            } else {
                json!(text)
            }
        }
        Variant::DateTime(v) => json!(iso8601(v)),
        Variant::Guid(v) => json!(v.to_string()),
        Variant::ByteString(v) => {
            if v.is_null() {
                Value::Null
            } else {
                json!(v.as_base64())
            }
        }
        Variant::StatusCode(s) => json!({ "Code": s.bits(), "Symbol": crate::error::symbol(*s) }),
        Variant::QualifiedName(q) => qualified_name_json(q, ns, format),
        Variant::LocalizedText(t) => localized_text_json(t),
        Variant::NodeId(id) => json!(ns.format(id, format)),
        Variant::ExpandedNodeId(id) => json!(ns.format_expanded(id, format)),
        Variant::ExtensionObject(eo) => {
            if eo.is_null() {
                Value::Null
            } else {
                json!({ "TypeId": ns.format_expanded(&eo.binary_type_id(), format) })
            }
        }
        Variant::Variant(inner) => to_json(inner, ns, format),
        Variant::DataValue(dv) => {
            let mut m = Map::new();
            if let Some(v) = &dv.value {
                m.insert("Value".into(), to_json(v, ns, format));
            }
            if let Some(s) = &dv.status {
                m.insert(
                    "StatusCode".into(),
                    json!({ "Code": s.bits(), "Symbol": crate::error::symbol(*s) }),
                );
            }
            if let Some(t) = &dv.source_timestamp {
                m.insert("SourceTimestamp".into(), json!(iso8601(t)));
            }
            if let Some(t) = &dv.server_timestamp {
                m.insert("ServerTimestamp".into(), json!(iso8601(t)));
            }
            Value::Object(m)
        }
        Variant::DiagnosticInfo(_) => Value::Null,
        Variant::Array(a) => array_json(a, ns, format),
    }
}

fn array_json(a: &Array, ns: &Namespaces, format: NamespaceFormat) -> Value {
    let flat: Vec<Value> = a.values.iter().map(|v| to_json(v, ns, format)).collect();
    match a.dimensions.as_deref() {
        Some(dims) if dims.len() > 1 => nest(&flat, dims),
        _ => Value::Array(flat),
    }
}

/// Folds a flat, row-major array into nested JSON arrays per the array dimensions.
fn nest(flat: &[Value], dims: &[u32]) -> Value {
    match dims.split_first() {
        Some((_, [])) | None => Value::Array(flat.to_vec()),
        Some((&n, rest)) => {
            let stride: usize = rest.iter().map(|d| *d as usize).product::<usize>().max(1);
            Value::Array(
                (0..n as usize)
                    .map(|i| {
                        let start = (i * stride).min(flat.len());
                        let end = ((i + 1) * stride).min(flat.len());
                        nest(&flat[start..end], rest)
                    })
                    .collect(),
            )
        }
    }
}

fn float(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn ua_string(v: &UAString) -> Value {
    v.value()
        .as_ref()
        .map(|s| Value::String(s.clone()))
        .unwrap_or(Value::Null)
}

/// ISO 8601 with all the precision the value has (OPC UA DateTime counts 100 ns ticks), in
/// UTC with a `Z`.
pub fn iso8601(t: &DateTime) -> String {
    t.as_chrono()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Appends exactly what [`iso8601`] returns, without allocating: the telemetry encoder writes
/// two timestamps per value, and formatting through chrono into a fresh `String` was a
/// measurable share of a value's cost.
pub fn write_iso8601(out: &mut Vec<u8>, t: &DateTime) {
    let c = t.as_chrono();
    let secs = c.timestamp();
    let nanos = c.timestamp_subsec_nanos();
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) || nanos >= 1_000_000_000 {
        // Outside what four digits and a plain fraction show (or a leap second): chrono.
        out.extend_from_slice(iso8601(t).as_bytes());
        return;
    }
    let sod = secs.rem_euclid(86_400) as u32;
    let mut buf = [0u8; 30];
    let digits = |b: &mut [u8], v: u32| {
        let mut v = v;
        for c in b.iter_mut().rev() {
            *c = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    digits(&mut buf[0..4], y as u32);
    buf[4] = b'-';
    digits(&mut buf[5..7], m);
    buf[7] = b'-';
    digits(&mut buf[8..10], d);
    buf[10] = b'T';
    digits(&mut buf[11..13], sod / 3600);
    buf[13] = b':';
    digits(&mut buf[14..16], sod / 60 % 60);
    buf[16] = b':';
    digits(&mut buf[17..19], sod % 60);
    let mut len = 19;
    // chrono's AutoSi: no fraction, or 3, 6 or 9 digits, whichever shows the value exactly.
    let frac = if nanos == 0 {
        0
    } else if nanos.is_multiple_of(1_000_000) {
        3
    } else if nanos.is_multiple_of(1_000) {
        6
    } else {
        9
    };
    if frac > 0 {
        buf[19] = b'.';
        digits(&mut buf[20..29], nanos);
        len = 20 + frac;
    }
    buf[len] = b'Z';
    out.extend_from_slice(&buf[..=len]);
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn qualified_name_json(q: &QualifiedName, ns: &Namespaces, format: NamespaceFormat) -> Value {
    let name = q.name.as_ref();
    if q.namespace_index == 0 {
        // A name that would read back with a namespace prefix keeps an explicit `0:`.
        if name.contains(':') || name.contains('#') {
            return json!(format!("0:{name}"));
        }
        return json!(name);
    }
    match (format, ns.uri_of(q.namespace_index)) {
        (NamespaceFormat::Index, _) | (_, None) => json!(format!("{}:{name}", q.namespace_index)),
        (_, Some(uri)) => json!(format!("{uri}#{name}")),
    }
}

fn localized_text_json(t: &LocalizedText) -> Value {
    if t.locale.is_null() || t.locale.as_ref().is_empty() {
        ua_string(&t.text)
    } else {
        json!({ "Locale": t.locale.as_ref(), "Text": t.text.as_ref() })
    }
}

/// Coerces a JSON value to `target`; an array in JSON needs `allow_array` (ValueRank ≥ 0 or
/// unspecified), a scalar node refuses one.
pub fn from_json(
    value: &Value,
    target: VariantScalarTypeId,
    allow_array: bool,
    ns: &Namespaces,
) -> Result<Variant, CoercionError> {
    if let Value::Array(items) = value {
        if target == VariantScalarTypeId::ByteString && !allow_array {
            // A ByteString sent as an array of numbers.
            let bytes: Result<Vec<u8>, _> = items
                .iter()
                .map(|i| {
                    i.as_u64()
                        .and_then(|b| u8::try_from(b).ok())
                        .ok_or_else(|| CoercionError::new(value, target, "bytes must be 0..255"))
                })
                .collect();
            return Ok(Variant::ByteString(ByteString::from(bytes?)));
        }
        if !allow_array {
            return Err(CoercionError::new(
                value,
                target,
                "the node holds a scalar, not an array",
            ));
        }
        let mut values = Vec::with_capacity(items.len());
        let mut dims: Option<Vec<u32>> = None;
        flatten(value, target, ns, &mut values, &mut dims, 0)?;
        if target == VariantScalarTypeId::Variant {
            // An array of Variant holds each element wrapped as a Variant.
            values = values
                .into_iter()
                .map(|v| match v {
                    Variant::Variant(_) => v,
                    other => Variant::Variant(Box::new(other)),
                })
                .collect();
        }
        let array = match dims {
            Some(d) if d.len() > 1 => Array::new_multi(target, values, d),
            _ => Array::new(target, values),
        }
        .map_err(|e| CoercionError::new(value, target, e.to_string()))?;
        return Ok(Variant::Array(Box::new(array)));
    }
    scalar_from_json(value, target, ns)
}

fn flatten(
    value: &Value,
    target: VariantScalarTypeId,
    ns: &Namespaces,
    out: &mut Vec<Variant>,
    dims: &mut Option<Vec<u32>>,
    depth: usize,
) -> Result<(), CoercionError> {
    const MAX_RANK: usize = 32;
    match value {
        Value::Array(items) if target != VariantScalarTypeId::ByteString || depth == 0 => {
            if depth >= MAX_RANK {
                return Err(CoercionError::new(value, target, "array rank above 32"));
            }
            let len = u32::try_from(items.len())
                .map_err(|_| CoercionError::new(value, target, "array too long"))?;
            let d = dims.get_or_insert_with(Vec::new);
            match d.get(depth) {
                None if d.len() == depth => d.push(len),
                Some(&expected) if expected == len => {}
                _ => return Err(CoercionError::new(value, target, "ragged array")),
            }
            for item in items {
                flatten(item, target, ns, out, dims, depth + 1)?;
            }
            Ok(())
        }
        _ => {
            if dims.as_ref().is_some_and(|d| d.len() > depth) {
                return Err(CoercionError::new(value, target, "ragged array"));
            }
            out.push(scalar_from_json(value, target, ns)?);
            Ok(())
        }
    }
}

fn scalar_from_json(
    value: &Value,
    target: VariantScalarTypeId,
    ns: &Namespaces,
) -> Result<Variant, CoercionError> {
    use VariantScalarTypeId as T;
    let err = |reason: &str| CoercionError::new(value, target, reason);
    if value.is_null() {
        return match target {
            T::String => Ok(Variant::String(UAString::null())),
            T::ByteString => Ok(Variant::ByteString(ByteString::null())),
            T::XmlElement => Ok(Variant::XmlElement(XmlElement::null())),
            _ => Err(err(
                "null is only valid for String, ByteString and XmlElement",
            )),
        };
    }
    let v = match target {
        T::Boolean => Variant::Boolean(match value {
            Value::Bool(b) => *b,
            Value::Number(n) if n.as_u64() == Some(0) => false,
            Value::Number(n) if n.as_u64() == Some(1) => true,
            Value::String(s) if s.eq_ignore_ascii_case("true") => true,
            Value::String(s) if s.eq_ignore_ascii_case("false") => false,
            _ => return Err(err("expected true or false")),
        }),
        T::SByte => Variant::SByte(integer(value, target)?),
        T::Byte => Variant::Byte(integer(value, target)?),
        T::Int16 => Variant::Int16(integer(value, target)?),
        T::UInt16 => Variant::UInt16(integer(value, target)?),
        T::Int32 => Variant::Int32(integer(value, target)?),
        T::UInt32 => Variant::UInt32(integer(value, target)?),
        T::Int64 => Variant::Int64(integer(value, target)?),
        T::UInt64 => Variant::UInt64(integer(value, target)?),
        T::Float => {
            let f = real(value, target)?;
            if f.is_finite() && f.abs() > f64::from(f32::MAX) {
                return Err(err("out of range for Float"));
            }
            Variant::Float(f as f32)
        }
        T::Double => Variant::Double(real(value, target)?),
        T::String => Variant::String(match value {
            Value::String(s) => s.as_str().into(),
            Value::Number(_) | Value::Bool(_) => value.to_string().into(),
            _ => return Err(err("expected a string")),
        }),
        T::XmlElement => Variant::XmlElement(text(value, target)?.into()),
        T::DateTime => {
            let s = text(value, target)?;
            Variant::DateTime(Box::new(
                DateTime::parse_from_rfc3339(s).map_err(|_| err("expected an RFC 3339 date"))?,
            ))
        }
        T::Guid => Variant::Guid(Box::new(
            Guid::from_str(text(value, target)?).map_err(|_| err("expected a GUID"))?,
        )),
        T::ByteString => {
            let s = text(value, target)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| err("expected base64"))?;
            Variant::ByteString(ByteString::from(bytes))
        }
        T::NodeId => Variant::NodeId(Box::new(
            ns.parse(text(value, target)?)
                .map_err(|e| err(&e.to_string()))?,
        )),
        T::ExpandedNodeId => {
            let s = text(value, target)?;
            let id = ExpandedNodeId::from_str(s)
                .or_else(|_| ns.parse(s).map(ExpandedNodeId::from))
                .map_err(|_| err("expected an expanded node id"))?;
            Variant::ExpandedNodeId(Box::new(id))
        }
        T::StatusCode => Variant::StatusCode(match value {
            Value::Number(n) => n
                .as_u64()
                .and_then(|c| u32::try_from(c).ok())
                .map(StatusCode::from)
                .ok_or_else(|| err("expected a 32-bit status code"))?,
            Value::String(s) => opcua::types::SubStatusCode::from_str(s)
                .map(StatusCode::from_category)
                .map_err(|_| err("unknown status symbol"))?,
            Value::Object(o) => match o.get("Code").or_else(|| o.get("code")) {
                Some(c) => return scalar_from_json(c, target, ns),
                None => return Err(err("expected {\"Code\": n}")),
            },
            _ => return Err(err("expected a status code")),
        }),
        T::QualifiedName => Variant::QualifiedName(Box::new(qualified_name(value, ns, target)?)),
        T::LocalizedText => Variant::LocalizedText(Box::new(match value {
            Value::String(s) => LocalizedText::new("", s),
            Value::Object(o) => {
                let get = |k: &str, k2: &str| {
                    o.get(k)
                        .or_else(|| o.get(k2))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                LocalizedText::new(&get("Locale", "locale"), &get("Text", "text"))
            }
            _ => return Err(err("expected text or {\"Locale\",\"Text\"}")),
        })),
        T::Variant => infer(value, ns)?,
        T::ExtensionObject | T::DataValue | T::DiagnosticInfo => {
            return Err(err("writing this type from JSON is not supported"))
        }
    };
    Ok(v)
}

/// A value for a node of abstract type (BaseDataType): the JSON type decides.
fn infer(value: &Value, ns: &Namespaces) -> Result<Variant, CoercionError> {
    use VariantScalarTypeId as T;
    match value {
        Value::Bool(b) => Ok(Variant::Boolean(*b)),
        Value::Number(n) if n.is_i64() => {
            let i = n.as_i64().unwrap_or_default();
            Ok(i32::try_from(i).map_or(Variant::Int64(i), Variant::Int32))
        }
        Value::Number(n) if n.is_u64() => Ok(Variant::UInt64(n.as_u64().unwrap_or_default())),
        Value::Number(n) => Ok(Variant::Double(n.as_f64().unwrap_or_default())),
        Value::String(s) => Ok(Variant::String(s.as_str().into())),
        Value::Array(_) => from_json(value, T::Variant, true, ns),
        _ => Err(CoercionError::new(
            value,
            T::Variant,
            "objects need an explicit dataType",
        )),
    }
}

fn integer<I>(value: &Value, target: VariantScalarTypeId) -> Result<I, CoercionError>
where
    I: TryFrom<i64> + TryFrom<u64> + FromStr,
{
    let err = |reason: &str| CoercionError::new(value, target, reason);
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                I::try_from(i).map_err(|_| err("out of range"))
            } else if let Some(u) = n.as_u64() {
                I::try_from(u).map_err(|_| err("out of range"))
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() != 0.0 || !f.is_finite() {
                    return Err(err("not an integer"));
                }
                // Whole floats such as 5.0 are accepted when they are exact.
                if (0.0..1.8e19).contains(&f) {
                    I::try_from(f as u64).map_err(|_| err("out of range"))
                } else if (-9.2e18..0.0).contains(&f) {
                    I::try_from(f as i64).map_err(|_| err("out of range"))
                } else {
                    Err(err("out of range"))
                }
            }
        }
        Value::String(s) => s.trim().parse::<I>().map_err(|_| err("not an integer")),
        Value::Bool(b) => I::try_from(u64::from(*b)).map_err(|_| err("out of range")),
        _ => Err(err("expected a number")),
    }
}

fn real(value: &Value, target: VariantScalarTypeId) -> Result<f64, CoercionError> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| CoercionError::new(value, target, "expected a number")),
        Value::String(s) => match s.trim() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            t => t
                .parse::<f64>()
                .map_err(|_| CoercionError::new(value, target, "expected a number")),
        },
        _ => Err(CoercionError::new(value, target, "expected a number")),
    }
}

fn text(value: &Value, target: VariantScalarTypeId) -> Result<&str, CoercionError> {
    value
        .as_str()
        .ok_or_else(|| CoercionError::new(value, target, "expected a string"))
}

fn qualified_name(
    value: &Value,
    ns: &Namespaces,
    target: VariantScalarTypeId,
) -> Result<QualifiedName, CoercionError> {
    let err = |reason: &str| CoercionError::new(value, target, reason);
    match value {
        Value::String(s) => {
            if let Some((uri, name)) = s.rsplit_once('#') {
                let idx = ns
                    .index_of(uri)
                    .ok_or_else(|| err("unknown namespace URI"))?;
                return Ok(QualifiedName::new(idx, name));
            }
            if let Some((idx, name)) = s.split_once(':') {
                if let Ok(idx) = idx.parse::<u16>() {
                    return Ok(QualifiedName::new(idx, name));
                }
            }
            Ok(QualifiedName::new(0, s.as_str()))
        }
        Value::Object(o) => {
            let name = o
                .get("Name")
                .or_else(|| o.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| err("expected {\"Name\",\"Uri\"}"))?;
            let idx = match o.get("Uri").or_else(|| o.get("uri")) {
                Some(Value::String(uri)) => ns.index_of(uri).ok_or_else(|| err("unknown URI"))?,
                Some(Value::Number(n)) => n
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| err("bad namespace index"))?,
                _ => 0,
            };
            Ok(QualifiedName::new(idx, name))
        }
        _ => Err(err("expected a qualified name")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VariantScalarTypeId as T;

    fn ns() -> Namespaces {
        Namespaces(vec!["http://opcfoundation.org/UA/".into(), "urn:a".into()])
    }

    #[test]
    fn timestamps_written_in_place_match_chrono() {
        // Ticks (100 ns since 1601) across the range OPC UA uses, with and without fractions.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut ticks = vec![
            0i64,
            1,
            10_000,
            116_444_736_000_000_000,
            2_650_467_743_999_999_999,
        ];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = (x % 2_650_467_743_999_999_999) as i64;
            ticks.extend([t, t - t % 10, t - t % 10_000, t - t % 10_000_000]);
        }
        let mut out = Vec::new();
        for t in ticks {
            let dt = DateTime::from(t);
            out.clear();
            write_iso8601(&mut out, &dt);
            assert_eq!(
                std::str::from_utf8(&out).unwrap(),
                iso8601(&dt),
                "ticks {t}"
            );
        }
    }

    #[test]
    fn coerces_numbers_with_range_checks() {
        let n = ns();
        assert_eq!(
            from_json(&json!(42), T::Byte, false, &n).unwrap(),
            Variant::Byte(42)
        );
        assert_eq!(
            from_json(&json!("7"), T::Int64, false, &n).unwrap(),
            Variant::Int64(7)
        );
        assert_eq!(
            from_json(&json!(5.0), T::Int32, false, &n).unwrap(),
            Variant::Int32(5)
        );
        assert!(from_json(&json!(256), T::Byte, false, &n).is_err());
        assert!(from_json(&json!(-1), T::UInt32, false, &n).is_err());
        assert!(from_json(&json!(1.5), T::Int32, false, &n).is_err());
        assert!(from_json(&json!("abc"), T::Int32, false, &n).is_err());
        assert!(from_json(&json!(1e300), T::Float, false, &n).is_err());
        assert_eq!(
            from_json(&json!(u64::MAX), T::UInt64, false, &n).unwrap(),
            Variant::UInt64(u64::MAX)
        );
    }

    #[test]
    fn coerces_arrays_and_refuses_array_for_scalar() {
        let n = ns();
        let v = from_json(&json!([1, 2, 3]), T::Int32, true, &n).unwrap();
        assert_eq!(to_json(&v, &n, NamespaceFormat::Expanded), json!([1, 2, 3]));
        assert!(from_json(&json!([1, 2]), T::Int32, false, &n).is_err());
        let m = from_json(&json!([[1, 2], [3, 4]]), T::Int16, true, &n).unwrap();
        assert_eq!(
            to_json(&m, &n, NamespaceFormat::Expanded),
            json!([[1, 2], [3, 4]])
        );
        assert!(from_json(&json!([[1, 2], [3]]), T::Int16, true, &n).is_err());
    }

    #[test]
    fn round_trips_structured_scalars() {
        let n = ns();
        for (value, t) in [
            (json!("2024-01-02T03:04:05.006Z"), T::DateTime),
            (json!("72962b91-fa75-4ae6-8d28-b404dc7daf63"), T::Guid),
            (json!("AQID"), T::ByteString),
            (json!("nsu=urn:a;s=x"), T::NodeId),
            (json!(true), T::Boolean),
            (json!("hello"), T::String),
            (json!(1.25), T::Double),
        ] {
            let v = from_json(&value, t, false, &n).unwrap();
            assert_eq!(to_json(&v, &n, NamespaceFormat::Expanded), value, "{t}");
        }
        let q = from_json(&json!("urn:a#Name"), T::QualifiedName, false, &n).unwrap();
        let tricky = Variant::QualifiedName(Box::new(QualifiedName::new(0, "1:x")));
        let text = to_json(&tricky, &n, NamespaceFormat::Uri);
        assert_eq!(
            from_json(&text, T::QualifiedName, false, &n).unwrap(),
            tricky
        );
        let fine = from_json(
            &json!("2024-01-02T03:04:05.1234567Z"),
            T::DateTime,
            false,
            &n,
        )
        .unwrap();
        assert_eq!(
            to_json(&fine, &n, NamespaceFormat::Uri),
            json!("2024-01-02T03:04:05.123456700Z")
        );
        assert_eq!(to_json(&q, &n, NamespaceFormat::Uri), json!("urn:a#Name"));
        assert_eq!(
            to_json(&Variant::Double(f64::NAN), &n, NamespaceFormat::Uri),
            json!("NaN")
        );
    }

    #[test]
    fn arrays_of_abstract_type_hold_variants() {
        let n = ns();
        let v = from_json(&json!([1, "a", true]), T::Variant, true, &n).unwrap();
        assert_eq!(
            to_json(&v, &n, NamespaceFormat::Expanded),
            json!([1, "a", true])
        );
    }

    #[test]
    fn resolves_type_names_and_subtypes() {
        assert_eq!(builtin_from_name("Int32"), Some(T::Int32));
        assert_eq!(builtin_from_name("double"), Some(T::Double));
        assert_eq!(builtin_from_name("i=294"), Some(T::DateTime));
        assert_eq!(builtin_of(&NodeId::new(0, 29u32)), Some(T::Int32));
        assert_eq!(builtin_from_name("Nope"), None);
    }
}
