//! What a server sends, as the module renders it: a `DataValue` decoded from OPC UA binary
//! (as in a Read or Call response) converted by iiot-module's `json_value::to_json` and
//! `type_name` for each `NamespaceFormat`. Byte 0 picks Variant (even) or DataValue (odd).
#![no_main]

use std::io::Cursor;

use iiot_module::api::NamespaceFormat;
use iiot_module::opcua::json_value::{to_json, type_name};
use libfuzzer_sys::fuzz_target;
use opcua::types::{BinaryDecodable, DataValue, Variant};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let owned = iiot_fuzz::context();
    let ctx = owned.context();
    let mut stream = Cursor::new(body);
    let value = if kind & 1 == 0 {
        match Variant::decode(&mut stream, &ctx) {
            Ok(v) => v,
            Err(_) => return,
        }
    } else {
        match DataValue::decode(&mut stream, &ctx) {
            Ok(dv) => Variant::from(dv),
            Err(_) => return,
        }
    };
    let ns = iiot_fuzz::namespaces();
    let _ = type_name(&value);
    for format in [
        NamespaceFormat::Uri,
        NamespaceFormat::Index,
        NamespaceFormat::Expanded,
        NamespaceFormat::ExpandedWithNamespace0,
    ] {
        let json = to_json(&value, &ns, format);
        iiot_fuzz::trace!("{format:?}: {json}");
        let _ = serde_json::to_vec(&json).expect("to_json output serializes");
    }
});
