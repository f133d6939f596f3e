//! Shared helpers of the fuzz targets in `fuzz_targets/`.

use std::io::Cursor;
use std::sync::OnceLock;

use opcua::types::{
    BinaryDecodable, BinaryEncodable, ContextOwned, DecodingOptions, NamespaceMap,
    VariantScalarTypeId,
};

/// `IIOT_FUZZ_VERBOSE=1` makes the targets print what they decoded and why they stopped, to
/// check that seeds are valid: `IIOT_FUZZ_VERBOSE=1 fuzz/target/<host>/release/<target> FILE`.
pub fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("IIOT_FUZZ_VERBOSE").is_some())
}

/// Prints `what` in verbose mode.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => {
        if $crate::verbose() {
            eprintln!($($arg)*);
        }
    };
}

/// `let x = step!(expr, "what");`: the value of an `Ok`, or (tracing the error) return.
macro_rules! step {
    ($e:expr, $what:literal) => {
        match $e {
            Ok(v) => v,
            Err(e) => {
                trace!("{}: {e}", $what);
                return;
            }
        }
    };
}

/// The decoding context a server or client starts with: the generated (namespace 0) type
/// loaders plus the fallback loader, and `DecodingOptions::default()` limits.
pub fn context() -> &'static ContextOwned {
    static CTX: OnceLock<ContextOwned> = OnceLock::new();
    CTX.get_or_init(|| ContextOwned::new_default(NamespaceMap::new(), DecodingOptions::default()))
}

/// Decodes `T` from `data` as the stack does from a message body. Whatever decodes must
/// encode again to exactly `byte_len` bytes: the chunker sizes chunks by `byte_len`, and the
/// server re-encodes values it received (written values are read back).
pub fn decode_encode<T: BinaryDecodable + BinaryEncodable>(data: &[u8]) -> Option<T> {
    let owned = context();
    let ctx = owned.context();
    let mut stream = Cursor::new(data);
    let value = match T::decode(&mut stream, &ctx) {
        Ok(v) => v,
        Err(e) => {
            trace!("decode error: {e}");
            return None;
        }
    };
    trace!("decoded {} of {} bytes", stream.position(), data.len());
    let len = value.byte_len(&ctx);
    let mut out = Vec::with_capacity(len.min(1 << 20));
    if value.encode(&mut out, &ctx).is_ok() {
        assert_eq!(out.len(), len, "byte_len disagrees with the encoded length");
    }
    Some(value)
}

/// A built-in scalar type chosen by one input byte (all 25 types, Boolean..DiagnosticInfo).
pub fn scalar_type(byte: u8) -> VariantScalarTypeId {
    VariantScalarTypeId::try_from(u32::from(byte % 25) + 1).expect("1..=25 are built-in types")
}

/// The namespace array of a typical server session: namespace 0, the server's own URI, a
/// URI with a `#` in it (which the `uri#id` node id form must cope with) and a URN with a `;`
/// in it (which the `nsu=uri;id` form must cope with).
pub fn namespaces() -> iiot_module::opcua::node_id::Namespaces {
    iiot_module::opcua::node_id::Namespaces(vec![
        "http://opcfoundation.org/UA/".to_string(),
        "urn:iiot:plc-sim".to_string(),
        "http://example.com/ns#frag".to_string(),
        "urn:a;b=c".to_string(),
    ])
}

/// Which end of a connection receives the fuzzed byte stream.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A server (our plc-sim) reading requests from a client.
    Server,
    /// A client (the module's sessions) reading responses from a server.
    Client,
}

/// Feeds `data` as a TCP byte stream to the receive path of a client or server connection
/// (async-opcua-core `TcpCodec` → `SecureChannel::verify_and_remove_security[_server]` →
/// sequence numbers → `Chunker::validate_chunks` → `Chunker::decode`), the way
/// async-opcua-server's `transport/tcp.rs` and async-opcua-client's `transport/core.rs` do.
///
/// `mode` picks the state of the secure channel the bytes arrive on: 0 = security None (the
/// only state an unauthenticated peer reaches), 1 = an established Basic256Sha256 Sign channel,
/// 2 = SignAndEncrypt. In the secure states the keys come from fixed nonces, so the fuzzer
/// cannot forge signatures: it exercises what runs before verification (header, sizes,
/// decryption and padding).
pub fn receive_stream(side: Side, mode: u8, data: &[u8]) {
    use bytes::BytesMut;
    use opcua::core::comms::chunker::Chunker;
    use opcua::core::comms::message_chunk::{MessageChunk, MessageIsFinalType};
    use opcua::core::comms::secure_channel::{Role, SecureChannel};
    use opcua::core::comms::sequence_number::SequenceNumberHandle;
    use opcua::core::comms::tcp_codec::{Message, TcpCodec};
    use opcua::core::sync::RwLock;
    use opcua::core::{RequestMessage, ResponseMessage};
    use opcua::crypto::{CertificateStore, SecurityPolicy};
    use opcua::types::{ChannelSecurityToken, DateTime, MessageSecurityMode};
    use std::collections::HashMap;
    use std::sync::Arc;
    use tokio_util::codec::Decoder;

    let options = DecodingOptions::default();
    // No PKI directory: reading the own certificate fails and is only logged, as for a
    // stack without certificates. The symmetric keys below need none.
    let store = Arc::new(RwLock::new(CertificateStore::new(std::path::Path::new(
        "/nonexistent/iiot-fuzz-pki",
    ))));
    let role = match side {
        Side::Server => Role::Server,
        Side::Client => Role::Client,
    };
    let ctx = Arc::new(RwLock::new(ContextOwned::new_default(
        NamespaceMap::new(),
        options.clone(),
    )));
    let mut channel = SecureChannel::new(store, role, ctx);
    let security_mode = match mode % 3 {
        0 => MessageSecurityMode::None,
        1 => MessageSecurityMode::Sign,
        _ => MessageSecurityMode::SignAndEncrypt,
    };
    if security_mode != MessageSecurityMode::None {
        channel.set_security_policy(SecurityPolicy::Basic256Sha256);
        channel.set_security_mode(security_mode);
        channel.set_security_token(ChannelSecurityToken {
            channel_id: 1,
            token_id: 1,
            created_at: DateTime::now(),
            revised_lifetime: 600_000,
        });
        channel.set_local_nonce(&[0x11; 32]);
        channel.set_remote_nonce(&[0x22; 32]);
        channel.derive_keys();
    }

    let mut codec = TcpCodec::new(options.clone());
    let mut buf = BytesMut::from(data);
    let mut sequence = SequenceNumberHandle::new(true);
    let mut pending: Vec<MessageChunk> = Vec::new();
    let mut by_request: HashMap<u32, Vec<(u32, MessageChunk)>> = HashMap::new();
    // Both stacks close the connection on the first error, so the first error ends the stream.
    for _ in 0..64 {
        let message = match codec.decode(&mut buf) {
            Ok(Some(m)) => m,
            other => {
                trace!("codec: {other:?}, {} bytes left", buf.len());
                return;
            }
        };
        trace!("frame: {message:?}");
        let Message::Chunk(chunk) = message else {
            continue;
        };
        let header = step!(chunk.message_header(&channel.decoding_options()), "header");
        match side {
            Side::Server => {
                if header.is_final == MessageIsFinalType::FinalError {
                    pending.clear();
                    continue;
                }
                let chunk = step!(
                    channel.verify_and_remove_security_server(chunk.data),
                    "security"
                );
                if options.max_chunk_count > 0 && pending.len() == options.max_chunk_count {
                    return;
                }
                let info = step!(chunk.chunk_info(&channel), "chunk info");
                step!(
                    sequence.validate_and_increment(info.sequence_header.sequence_number),
                    "sequence number"
                );
                pending.push(chunk);
                if header.is_final == MessageIsFinalType::Intermediate {
                    continue;
                }
                step!(pending[0].chunk_info(&channel), "chunk info");
                step!(
                    Chunker::validate_chunks(&channel, &pending),
                    "validate chunks"
                );
                let decoded = Chunker::decode::<RequestMessage>(&pending, &channel, None);
                pending.clear();
                match decoded {
                    Ok(m) => trace!("request: {m:?}"),
                    Err(e) => {
                        trace!("decode error: {e}");
                        return;
                    }
                }
            }
            Side::Client => {
                let chunk = step!(channel.verify_and_remove_security(chunk.data), "security");
                let info = step!(chunk.chunk_info(&channel), "chunk info");
                step!(
                    sequence.validate_and_increment(info.sequence_header.sequence_number),
                    "sequence number"
                );
                // The client keeps chunks per pending request; here every request id is
                // pending.
                let request_id = info.sequence_header.request_id;
                let seq = info.sequence_header.sequence_number;
                match info.message_header.is_final {
                    MessageIsFinalType::Intermediate => {
                        let chunks = by_request.entry(request_id).or_default();
                        chunks.push((seq, chunk));
                        if options.max_chunk_count > 0 && chunks.len() > options.max_chunk_count {
                            by_request.remove(&request_id);
                        }
                    }
                    MessageIsFinalType::FinalError => {
                        let _ = chunk.final_error_body(&info, &options);
                        by_request.remove(&request_id);
                    }
                    MessageIsFinalType::Final => {
                        let mut chunks = by_request.remove(&request_id).unwrap_or_default();
                        chunks.push((seq, chunk));
                        // `merge_chunks`: order by sequence number, drop duplicates.
                        chunks.sort_by_key(|(s, _)| *s);
                        let mut expect = chunks[0].0;
                        let mut merged = Vec::with_capacity(chunks.len());
                        for (s, c) in chunks {
                            if s != expect {
                                continue;
                            }
                            expect = expect.wrapping_add(1);
                            merged.push(c);
                        }
                        step!(
                            Chunker::validate_chunks(&channel, &merged),
                            "validate chunks"
                        );
                        match Chunker::decode::<ResponseMessage>(&merged, &channel, None) {
                            Ok(m) => trace!("response: {m:?}"),
                            Err(e) => {
                                trace!("decode error: {e}");
                                return;
                            }
                        }
                    }
                }
            }
        }
    }
}
