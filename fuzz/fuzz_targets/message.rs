//! A whole service message body as the chunker hands it to the decoder: the encoding NodeId
//! followed by the message, decoded by object id into `RequestMessage` (what our plc-sim
//! server accepts) or `ResponseMessage` (what the module's client accepts). The first byte
//! picks the side.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use opcua::core::{Message, RequestMessage, ResponseMessage};
use opcua::types::{BinaryDecodable, NodeId};

fn decode<T: Message + std::fmt::Debug>(body: &[u8]) {
    let owned = iiot_fuzz::context();
    let ctx = owned.context();
    let mut stream = Cursor::new(body);
    let Ok(node_id) = NodeId::decode(&mut stream, &ctx) else {
        return;
    };
    let Ok(object_id) = node_id.as_object_id() else {
        return;
    };
    let decoded = T::decode_by_object_id(&mut stream, object_id, &ctx);
    iiot_fuzz::trace!("{object_id:?}: {decoded:?}");
    if let Ok(message) = decoded {
        let len = message.byte_len(&ctx);
        let mut out = Vec::with_capacity(len.min(1 << 20));
        if message.encode(&mut out, &ctx).is_ok() {
            assert_eq!(out.len(), len, "byte_len disagrees with the encoded length");
        }
        let _ = message.request_handle();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&side, body)) = data.split_first() else {
        return;
    };
    if side & 1 == 0 {
        decode::<RequestMessage>(body);
    } else {
        decode::<ResponseMessage>(body);
    }
});
