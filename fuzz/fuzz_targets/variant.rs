//! OPC UA binary decoding of a `Variant` (async-opcua-types `BinaryDecodable::decode` with the
//! default decoding options and context), then re-encoding it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opcua::types::Variant;

fuzz_target!(|data: &[u8]| {
    let _ = iiot_fuzz::decode_encode::<Variant>(data);
});
