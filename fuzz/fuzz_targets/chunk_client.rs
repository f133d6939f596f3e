//! A TCP byte stream (HEL/ACK/ERR/OPN/MSG/CLO frames, message chunks, multi-chunk messages)
//! received by a client (the module's sessions), through the stack's whole receive path up to
//! the decoded `ResponseMessage`. Byte 0 picks the secure channel's state (security None,
//! or an established Basic256Sha256 Sign / SignAndEncrypt channel); the rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    iiot_fuzz::receive_stream(iiot_fuzz::Side::Client, mode, stream);
});
