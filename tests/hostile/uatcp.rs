//! Raw OPC UA TCP (Part 6, UA Binary, SecurityPolicy None) for the hostile-input tests: just
//! enough framing to open a secure channel and send, or answer with, a message whose body
//! carries crafted bytes that no well-behaved encoder would produce.

use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opcua::types::{
    BinaryDecodable, BinaryEncodable, ByteString, ChannelSecurityToken, ContextOwned, DataValue,
    DateTime, DiagnosticInfo, FindServersResponse, GetEndpointsResponse, MessageSecurityMode,
    NodeId, NumericRange, ObjectId, OpenSecureChannelRequest, OpenSecureChannelResponse,
    RequestHeader, ResponseHeader, SecurityTokenRequestType, ServiceFault, StatusCode, UAString,
    Variant, WriteRequest, WriteValue,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const POLICY_NONE: &str = "http://opcfoundation.org/UA/SecurityPolicy#None";

/// How deep the crafted structures nest (about 20 KB for a DiagnosticInfo).
pub const DEPTH: usize = 20_000;

/// `DEPTH` inner diagnostic infos (encoding mask 0x40), the innermost one empty.
pub fn deep_diagnostic_info() -> Vec<u8> {
    let mut v = vec![0x40; DEPTH];
    v.push(0x00);
    v
}

/// A Variant of built-in type 25 (DiagnosticInfo) holding [`deep_diagnostic_info`].
pub fn deep_diagnostic_info_variant() -> Vec<u8> {
    let mut v = vec![25];
    v.extend(deep_diagnostic_info());
    v
}

/// Variant(DataValue(Variant(DataValue(...)))) `DEPTH` times, the innermost Variant empty:
/// Variant encoding 23 (DataValue), then DataValue mask 0x01 (value only).
pub fn data_value_cycle_variant() -> Vec<u8> {
    let mut v = Vec::with_capacity(2 * DEPTH + 1);
    for _ in 0..DEPTH {
        v.extend_from_slice(&[23, 0x01]);
    }
    v.push(0x00);
    v
}

/// The value marked for replacement: nobody sends 0x5A5A5A5A by accident.
const SENTINEL: i32 = 0x5A5A_5A5A;

fn ctx() -> ContextOwned {
    ContextOwned::default()
}

pub fn encode<T: BinaryEncodable>(value: &T) -> Vec<u8> {
    value.encode_to_vec(&ctx().context())
}

/// Replaces the only occurrence of `sentinel` in `bytes` with `replacement`.
fn splice(bytes: &[u8], sentinel: &[u8], replacement: &[u8]) -> Vec<u8> {
    let hits: Vec<usize> = bytes
        .windows(sentinel.len())
        .enumerate()
        .filter(|(_, w)| *w == sentinel)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "sentinel must occur exactly once");
    let at = hits[0];
    let mut out = Vec::with_capacity(bytes.len() - sentinel.len() + replacement.len());
    out.extend_from_slice(&bytes[..at]);
    out.extend_from_slice(replacement);
    out.extend_from_slice(&bytes[at + sentinel.len()..]);
    out
}

/// `body` (type id then message) of a WriteRequest whose value is `variant`, raw bytes
/// already encoded as a Variant.
pub fn hostile_write_request(node_id: NodeId, variant: &[u8]) -> Vec<u8> {
    let request = WriteRequest {
        request_header: RequestHeader::new(&NodeId::null(), &DateTime::now(), 7),
        nodes_to_write: Some(vec![WriteValue {
            node_id,
            attribute_id: 13,
            index_range: NumericRange::None,
            value: DataValue::value_only(Variant::Int32(SENTINEL)),
        }]),
    };
    let mut body = encode(&NodeId::from(ObjectId::WriteRequest_Encoding_DefaultBinary));
    body.extend(encode(&request));
    // A scalar Int32 Variant: encoding byte 6, then the value.
    let mut sentinel = vec![6];
    sentinel.extend_from_slice(&SENTINEL.to_le_bytes());
    splice(&body, &sentinel, variant)
}

/// One message chunk: type, chunk type ('F' final), size, then `body`.
pub fn frame(kind: &[u8; 3], body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + body.len());
    v.extend_from_slice(kind);
    v.push(b'F');
    v.extend_from_slice(&((8 + body.len()) as u32).to_le_bytes());
    v.extend_from_slice(body);
    v
}

pub struct Frame {
    pub kind: [u8; 3],
    /// Everything after the 8-byte message header.
    pub body: Vec<u8>,
}

pub async fn read_frame(s: &mut TcpStream) -> std::io::Result<Frame> {
    let mut header = [0u8; 8];
    s.read_exact(&mut header).await?;
    let size = u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize;
    if !(8..=1 << 20).contains(&size) {
        return Err(std::io::Error::other(format!("bad message size {size}")));
    }
    let mut body = vec![0u8; size - 8];
    s.read_exact(&mut body).await?;
    Ok(Frame {
        kind: [header[0], header[1], header[2]],
        body,
    })
}

fn u32_at(c: &mut Cursor<&[u8]>) -> u32 {
    u32::decode(c, &ctx().context()).expect("u32")
}

fn decode<T: BinaryDecodable>(c: &mut Cursor<&[u8]>) -> T {
    T::decode(c, &ctx().context()).expect("decode")
}

/// The asymmetric security header of SecurityPolicy None, then the sequence header.
fn opn_headers(channel_id: u32, sequence: u32, request_id: u32) -> Vec<u8> {
    let mut v = channel_id.to_le_bytes().to_vec();
    v.extend(encode(&UAString::from(POLICY_NONE)));
    v.extend(encode(&ByteString::null()));
    v.extend(encode(&ByteString::null()));
    v.extend_from_slice(&sequence.to_le_bytes());
    v.extend_from_slice(&request_id.to_le_bytes());
    v
}

/// Skips the security and sequence headers of an OPN chunk; answers the request id.
fn skip_opn_headers(c: &mut Cursor<&[u8]>) -> u32 {
    let _channel = u32_at(c);
    let _policy: UAString = decode(c);
    let _cert: ByteString = decode(c);
    let _thumbprint: ByteString = decode(c);
    let _sequence = u32_at(c);
    u32_at(c)
}

/// Skips the symmetric security and sequence headers of a MSG chunk; answers the request id.
fn skip_msg_headers(c: &mut Cursor<&[u8]>) -> u32 {
    let _channel = u32_at(c);
    let _token = u32_at(c);
    let _sequence = u32_at(c);
    u32_at(c)
}

/// A client side secure channel (SecurityPolicy None) over a raw socket.
pub struct RawChannel {
    stream: TcpStream,
    channel_id: u32,
    token_id: u32,
}

/// What a peer answered to a hostile message.
#[derive(Debug)]
pub enum Reply {
    /// An ERR message with its status.
    Error(StatusCode),
    /// A MSG with its type and the service result of its response header.
    Message(NodeId, StatusCode),
    /// The connection was closed (or nothing came within the time limit).
    Closed,
}

impl RawChannel {
    /// Hello/Acknowledge, then OpenSecureChannel with SecurityPolicy None.
    pub async fn open(url: &str) -> RawChannel {
        let addr = url
            .trim_start_matches("opc.tcp://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        let mut hello = Vec::new();
        for v in [0u32, 65_536, 65_536, 0, 0] {
            hello.extend_from_slice(&v.to_le_bytes());
        }
        hello.extend(encode(&UAString::from(url)));
        stream.write_all(&frame(b"HEL", &hello)).await.unwrap();
        let ack = read_frame(&mut stream).await.expect("acknowledge");
        assert_eq!(&ack.kind, b"ACK");

        let request = OpenSecureChannelRequest {
            request_header: RequestHeader::new(&NodeId::null(), &DateTime::now(), 1),
            client_protocol_version: 0,
            request_type: SecurityTokenRequestType::Issue,
            security_mode: MessageSecurityMode::None,
            client_nonce: ByteString::null(),
            requested_lifetime: 60_000,
        };
        let mut body = opn_headers(0, 1, 1);
        body.extend(encode(&NodeId::from(
            ObjectId::OpenSecureChannelRequest_Encoding_DefaultBinary,
        )));
        body.extend(encode(&request));
        stream.write_all(&frame(b"OPN", &body)).await.unwrap();
        let reply = read_frame(&mut stream).await.expect("OPN response");
        assert_eq!(&reply.kind, b"OPN");
        let mut c = Cursor::new(&reply.body[..]);
        skip_opn_headers(&mut c);
        let type_id: NodeId = decode(&mut c);
        assert_eq!(
            type_id,
            ObjectId::OpenSecureChannelResponse_Encoding_DefaultBinary
        );
        let response: OpenSecureChannelResponse = decode(&mut c);
        assert!(response.response_header.service_result.is_good());
        RawChannel {
            stream,
            channel_id: response.security_token.channel_id,
            token_id: response.security_token.token_id,
        }
    }

    /// Sends `body` (type id and message) in one MSG chunk and waits for the answer.
    pub async fn send(mut self, body: &[u8]) -> Reply {
        let mut msg = Vec::with_capacity(16 + body.len());
        // Sequence number 2 (the OPN was 1), request id 2.
        for v in [self.channel_id, self.token_id, 2, 2] {
            msg.extend_from_slice(&v.to_le_bytes());
        }
        msg.extend_from_slice(body);
        if self.stream.write_all(&frame(b"MSG", &msg)).await.is_err() {
            return Reply::Closed;
        }
        let frame = match tokio::time::timeout(Duration::from_secs(5), read_frame(&mut self.stream))
            .await
        {
            Ok(Ok(f)) => f,
            _ => return Reply::Closed,
        };
        let mut c = Cursor::new(&frame.body[..]);
        match &frame.kind {
            b"ERR" => Reply::Error(StatusCode::from(u32_at(&mut c))),
            b"MSG" => {
                skip_msg_headers(&mut c);
                let type_id: NodeId = decode(&mut c);
                let header: ResponseHeader = decode(&mut c);
                Reply::Message(type_id, header.service_result)
            }
            _ => Reply::Closed,
        }
    }
}

/// A server that opens secure channels properly and then answers every request with a
/// response whose `ResponseHeader.serviceDiagnostics` is [`deep_diagnostic_info`]: a
/// GetEndpointsResponse, a FindServersResponse, or a ServiceFault for anything else.
pub struct HostileServer {
    pub url: String,
    /// Hostile responses sent so far.
    pub served: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HostileServer {
    pub async fn start() -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("opc.tcp://{}/", listener.local_addr().unwrap());
        let served = Arc::new(AtomicUsize::new(0));
        let counter = served.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, counter).await;
                });
            }
        });
        HostileServer { url, served, task }
    }
}

/// A response header carrying the sentinel DiagnosticInfo (mask 0x01, symbolic id).
fn sentinel_header(request_handle: u32) -> ResponseHeader {
    let mut header = ResponseHeader::new_good(request_handle);
    header.service_diagnostics = DiagnosticInfo {
        symbolic_id: Some(SENTINEL),
        ..DiagnosticInfo::null()
    };
    header
}

/// The hostile answer to the request `type_id`: type id and message.
fn hostile_response(type_id: &NodeId, request_handle: u32) -> Vec<u8> {
    let header = sentinel_header(request_handle);
    let mut body = Vec::new();
    if *type_id == ObjectId::GetEndpointsRequest_Encoding_DefaultBinary {
        body.extend(encode(&NodeId::from(
            ObjectId::GetEndpointsResponse_Encoding_DefaultBinary,
        )));
        body.extend(encode(&GetEndpointsResponse {
            response_header: header,
            endpoints: None,
        }));
    } else if *type_id == ObjectId::FindServersRequest_Encoding_DefaultBinary {
        body.extend(encode(&NodeId::from(
            ObjectId::FindServersResponse_Encoding_DefaultBinary,
        )));
        body.extend(encode(&FindServersResponse {
            response_header: header,
            servers: None,
        }));
    } else {
        body.extend(encode(&NodeId::from(
            ObjectId::ServiceFault_Encoding_DefaultBinary,
        )));
        body.extend(encode(&ServiceFault {
            response_header: ResponseHeader {
                service_result: StatusCode::BadServiceUnsupported,
                ..header
            },
        }));
    }
    let mut sentinel = vec![0x01];
    sentinel.extend_from_slice(&SENTINEL.to_le_bytes());
    splice(&body, &sentinel, &deep_diagnostic_info())
}

async fn serve(mut stream: TcpStream, served: Arc<AtomicUsize>) -> std::io::Result<()> {
    const CHANNEL_ID: u32 = 1;
    const TOKEN_ID: u32 = 1;
    let mut sequence = 1u32;
    loop {
        let incoming = read_frame(&mut stream).await?;
        let mut c = Cursor::new(&incoming.body[..]);
        match &incoming.kind {
            b"HEL" => {
                let _version = u32_at(&mut c);
                let receive = u32_at(&mut c);
                let send = u32_at(&mut c);
                let max_message = u32_at(&mut c);
                let max_chunks = u32_at(&mut c);
                let mut ack = Vec::new();
                // Our receive buffer matches their send buffer and the other way round.
                for v in [0, send, receive, max_message, max_chunks] {
                    ack.extend_from_slice(&v.to_le_bytes());
                }
                stream.write_all(&frame(b"ACK", &ack)).await?;
            }
            b"OPN" => {
                let request_id = skip_opn_headers(&mut c);
                let _type_id: NodeId = decode(&mut c);
                let request: OpenSecureChannelRequest = decode(&mut c);
                let response = OpenSecureChannelResponse {
                    response_header: ResponseHeader::new_good(
                        request.request_header.request_handle,
                    ),
                    server_protocol_version: 0,
                    security_token: ChannelSecurityToken {
                        channel_id: CHANNEL_ID,
                        token_id: TOKEN_ID,
                        created_at: DateTime::now(),
                        revised_lifetime: request.requested_lifetime,
                    },
                    server_nonce: ByteString::null(),
                };
                let mut body = opn_headers(CHANNEL_ID, sequence, request_id);
                sequence += 1;
                body.extend(encode(&NodeId::from(
                    ObjectId::OpenSecureChannelResponse_Encoding_DefaultBinary,
                )));
                body.extend(encode(&response));
                stream.write_all(&frame(b"OPN", &body)).await?;
            }
            b"MSG" => {
                let request_id = skip_msg_headers(&mut c);
                let type_id: NodeId = decode(&mut c);
                // Every request starts with its RequestHeader.
                let header: RequestHeader = decode(&mut c);
                let mut body = Vec::new();
                for v in [CHANNEL_ID, TOKEN_ID, sequence, request_id] {
                    body.extend_from_slice(&v.to_le_bytes());
                }
                sequence += 1;
                body.extend(hostile_response(&type_id, header.request_handle));
                stream.write_all(&frame(b"MSG", &body)).await?;
                served.fetch_add(1, Ordering::SeqCst);
            }
            _ => return Ok(()),
        }
    }
}
