//! A TCP proxy between an OPC UA client and server (security mode None) that can misbehave on
//! purpose: drop the network, answer Publish with Bad_TooManyPublishRequests, or return
//! short result arrays, so the client's reaction can be tested against a real server.
//!
//! Client → server bytes are forwarded untouched. Server → client bytes are forwarded one
//! OPC UA TCP chunk at a time (8-byte header: message type, chunk type, size), which lets the
//! proxy rewrite the body of a final (`F`) `MSG` chunk. With security None a `MSG` chunk is
//! the header (8), secure channel id (4), token id (4), sequence number (4), request id (4) and
//! then the encoded response: its type id as a four-byte NodeId, then the ResponseHeader, whose
//! first fields are the timestamp (8) and the request handle (4). A rewritten chunk keeps the
//! sequence number and request id, so the client pairs it with its request as usual.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opcua::types::{ObjectId, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Offset of the encoded response in a `MSG` chunk under security None.
const BODY: usize = 24;
/// Largest chunk the proxy accepts; far above what these tests exchange.
const MAX_CHUNK: usize = 16 * 1024 * 1024;

#[derive(Default)]
struct Rules {
    /// New connections are closed at once until then.
    refuse_until: Option<Instant>,
    /// Publish responses become Bad_TooManyPublishRequests service faults until then.
    too_many_publish_until: Option<Instant>,
    /// The next `.1` responses of type id `.0` (encoding id of a response whose body is
    /// ResponseHeader, results[], diagnosticInfos[]) are sent back with an empty results array.
    empty_results: Option<(u32, u32)>,
}

struct Shared {
    rules: Mutex<Rules>,
    /// Bumped to cut every open connection.
    cut: watch::Sender<u64>,
    too_many_injected: AtomicU64,
    emptied: AtomicU64,
}

pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1 at a free port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let port = listener.local_addr().expect("proxy addr").port();
        let shared = Arc::new(Shared {
            rules: Mutex::new(Rules::default()),
            cut: watch::channel(0).0,
            too_many_injected: AtomicU64::new(0),
            emptied: AtomicU64::new(0),
        });
        let accept_shared = shared.clone();
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let refusing = {
                    let rules = accept_shared.rules.lock().unwrap();
                    rules.refuse_until.is_some_and(|t| Instant::now() < t)
                };
                if refusing {
                    drop(client);
                    continue;
                }
                tokio::spawn(forward(client, upstream, accept_shared.clone()));
            }
        });
        Proxy {
            port,
            shared,
            accept_task,
        }
    }

    pub fn url(&self) -> String {
        format!("opc.tcp://127.0.0.1:{}/", self.port)
    }

    /// The network drops: every open connection is cut now and new ones are closed as soon as
    /// they are accepted, for `outage`.
    pub fn drop_network_for(&self, outage: Duration) {
        self.shared.rules.lock().unwrap().refuse_until = Some(Instant::now() + outage);
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// Every Publish response the server sends during `window` reaches the client as a
    /// ServiceFault with Bad_TooManyPublishRequests.
    pub fn too_many_publish_requests_for(&self, window: Duration) {
        self.shared.rules.lock().unwrap().too_many_publish_until = Some(Instant::now() + window);
    }

    /// The next `count` responses with encoding id `response` arrive with an empty results
    /// array (service result Good).
    pub fn empty_results_of_next(&self, response: ObjectId, count: u32) {
        self.shared.rules.lock().unwrap().empty_results = Some((response as u32, count));
    }

    /// Publish responses turned into Bad_TooManyPublishRequests so far.
    pub fn too_many_injected(&self) -> u64 {
        self.shared.too_many_injected.load(Ordering::Relaxed)
    }

    /// Responses whose results were emptied so far.
    pub fn emptied(&self) -> u64 {
        self.shared.emptied.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.shared.cut.send_modify(|n| *n += 1);
    }
}

async fn forward(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut cut = shared.cut.subscribe();
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut server_write = server_write;
    tokio::select! {
        _ = tokio::io::copy(&mut client_read, &mut server_write) => {}
        _ = server_to_client(server_read, &mut client_write, &shared) => {}
        _ = cut.changed() => {}
    }
    // Both sockets close when the halves drop here.
}

async fn server_to_client(
    mut from: OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    shared: &Shared,
) -> std::io::Result<()> {
    let mut header = [0u8; 8];
    loop {
        from.read_exact(&mut header).await?;
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if !(8..=MAX_CHUNK).contains(&size) {
            return Err(std::io::Error::other("bad chunk size"));
        }
        let mut chunk = vec![0u8; size];
        chunk[..8].copy_from_slice(&header);
        from.read_exact(&mut chunk[8..]).await?;
        if let Some(rewritten) = rewrite(&chunk, shared) {
            chunk = rewritten;
        }
        to.write_all(&chunk).await?;
    }
}

/// Encoding id of the response in a final `MSG` chunk, if it is one.
fn response_type(chunk: &[u8]) -> Option<u32> {
    if chunk.len() < BODY + 4 + 12 || &chunk[..4] != b"MSGF" || chunk[BODY] != 0x01 {
        return None;
    }
    // Four-byte NodeId: 0x01, namespace 0, u16 identifier.
    if chunk[BODY + 1] != 0 {
        return None;
    }
    Some(u16::from_le_bytes([chunk[BODY + 2], chunk[BODY + 3]]) as u32)
}

fn rewrite(chunk: &[u8], shared: &Shared) -> Option<Vec<u8>> {
    let type_id = response_type(chunk)?;
    let mut rules = shared.rules.lock().unwrap();
    if type_id == ObjectId::PublishResponse_Encoding_DefaultBinary as u32
        && rules
            .too_many_publish_until
            .is_some_and(|t| Instant::now() < t)
    {
        shared.too_many_injected.fetch_add(1, Ordering::Relaxed);
        return Some(build(
            chunk,
            ObjectId::ServiceFault_Encoding_DefaultBinary as u32,
            StatusCode::BadTooManyPublishRequests,
            &[],
        ));
    }
    if let Some((id, left)) = rules.empty_results {
        if id == type_id && left > 0 {
            rules.empty_results = (left > 1).then_some((id, left - 1));
            shared.emptied.fetch_add(1, Ordering::Relaxed);
            // results: empty array (length 0); diagnosticInfos: null array (length -1).
            let mut tail = 0i32.to_le_bytes().to_vec();
            tail.extend_from_slice(&(-1i32).to_le_bytes());
            return Some(build(chunk, type_id, StatusCode::Good, &tail));
        }
    }
    None
}

/// A chunk carrying the same security and sequence header as `original`, a response of type
/// `type_id` with a fresh ResponseHeader (original timestamp and request handle, `status`),
/// followed by `tail`.
fn build(original: &[u8], type_id: u32, status: StatusCode, tail: &[u8]) -> Vec<u8> {
    let mut out = original[..BODY].to_vec();
    out.push(0x01);
    out.push(0x00);
    out.extend_from_slice(&(type_id as u16).to_le_bytes());
    // ResponseHeader: timestamp and request handle as sent by the server.
    out.extend_from_slice(&original[BODY + 4..BODY + 16]);
    out.extend_from_slice(&status.bits().to_le_bytes());
    out.push(0x00); // serviceDiagnostics: empty DiagnosticInfo
    out.extend_from_slice(&(-1i32).to_le_bytes()); // stringTable: null
    out.extend_from_slice(&[0x00, 0x00, 0x00]); // additionalHeader: null ExtensionObject
    out.extend_from_slice(tail);
    let size = out.len() as u32;
    out[4..8].copy_from_slice(&size.to_le_bytes());
    out
}
