//! iiot-module JSON → Variant coercion (`json_value::from_json`, used by ValueWrite,
//! NodeWrite and MethodCall) for every built-in target type, and the `to_json` round trip.
//!
//! Input: byte 0 picks the target type (all 25 built-in types), byte 1 bit 0 `allow_array`
//! and bits 1-2 the `NamespaceFormat` for `to_json`; the rest is the JSON value. A value that
//! was accepted must convert back to JSON, and that JSON must be accepted again as the same
//! value: a client that writes back what it read must not get an error or a different value.
#![no_main]

use iiot_module::api::NamespaceFormat;
use iiot_module::opcua::json_value::{from_json, to_json};
use libfuzzer_sys::fuzz_target;
use opcua::types::Variant;

fuzz_target!(|data: &[u8]| {
    let [type_byte, flags, json @ ..] = data else {
        return;
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return;
    };
    let target = iiot_fuzz::scalar_type(*type_byte);
    let allow_array = flags & 1 == 1;
    let format = match (flags >> 1) & 3 {
        0 => NamespaceFormat::Uri,
        1 => NamespaceFormat::Index,
        2 => NamespaceFormat::Expanded,
        _ => NamespaceFormat::ExpandedWithNamespace0,
    };
    let ns = iiot_fuzz::namespaces();
    let coerced = from_json(&value, target, allow_array, &ns);
    iiot_fuzz::trace!("{value} as {target:?}: {coerced:?}");
    let Ok(variant) = coerced else {
        return;
    };
    let written = to_json(&variant, &ns, format);
    let _ = serde_json::to_vec(&written).expect("to_json output serializes");
    match from_json(&written, target, allow_array, &ns) {
        Ok(again) => assert!(
            same(&again, &variant),
            "{value} as {target:?} gave {variant:?}; written as {written}, read back as {again:?}"
        ),
        Err(e) => panic!(
            "{value} as {target:?} gave {variant:?}; written as {written}, refused on the way back: {e}"
        ),
    }
});

/// Equality where NaN equals NaN (a NaN written as "NaN" reads back as NaN).
fn same(a: &Variant, b: &Variant) -> bool {
    match (a, b) {
        (Variant::Float(x), Variant::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Variant::Double(x), Variant::Double(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Variant::Array(x), Variant::Array(y)) => {
            x.value_type == y.value_type
                && x.dimensions == y.dimensions
                && x.values.len() == y.values.len()
                && x.values.iter().zip(&y.values).all(|(p, q)| same(p, q))
        }
        _ => a == b,
    }
}
