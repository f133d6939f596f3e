//! One device connection: CONNECT checked against the registry (SAS token or certificate),
//! then the IoT Hub dialect — telemetry stored before its PUBACK, twin GET and reported
//! patches, method answers, subscriptions limited to the identity's own topics — and what the
//! hub sends it (desired patches, method calls).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::codec::{self, ConnAck, Frame, Goodbye, Version};
use super::live::Outbound;
use super::topics::{self, Inbound, Subscription};
use crate::hub::deliveries::Delivery;
use crate::hub::identity::{AuthType, Identity};
use crate::hub::messages::Message;
use crate::hub::sas::SasToken;
use crate::hub::store::Right;
use crate::hub::Hub;

/// Time a client has to send CONNECT after the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest packet read: a 256 KB message plus its topic and headers.
const MAX_PACKET: usize = topics::MAX_TELEMETRY_BYTES + 16 * 1024;
/// Outbound queue of one session.
const OUTBOUND: usize = 64;
/// Messages of one session waiting for their commit before it stops reading (MQTT's receive
/// maximum, in effect).
const MAX_UNACKED: usize = 256;
/// Longest a write to a client may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection's read or write buffer larger than this is given back once empty (a burst
/// or one large message should not stay allocated while the device idles).
const KEEP_BUFFER: usize = 32 * 1024;
/// Deliveries sent to one session and not yet acknowledged.
const MAX_INFLIGHT: usize = 16;
/// Answers queued while handling one read are written once they reach this size, so a
/// client pipelining requests cannot pile up unbounded answers.
const FLUSH_AT: usize = 64 * 1024;

/// What the TLS layer learnt about the client.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    pub addr: Option<std::net::SocketAddr>,
    /// The client's certificate chain (DER, leaf first), when it presented one.
    pub certificates: Vec<Vec<u8>>,
}

/// Why a session ended, for the log.
#[derive(Debug)]
enum End {
    Closed,
    Goodbye(Goodbye, String),
    Io(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Closed => f.write_str("closed by the client"),
            End::Goodbye(why, text) => write!(f, "{why:?}: {text}"),
            End::Io(e) => write!(f, "connection error: {e}"),
        }
    }
}

/// A message waiting for its commit: QoS, packet id, and whether it was stored.
type PendingAck = std::pin::Pin<Box<dyn std::future::Future<Output = (u8, u16, bool)> + Send>>;

struct Conn<S> {
    stream: S,
    version: Version,
    inbuf: BytesMut,
    out: BytesMut,
    /// Telemetry waiting for its commit, in the order received: PUBACKs go out in that order
    /// as commits land, while the session goes on reading (a device's messages then share
    /// group commits with each other, not only with other devices').
    acks: futures::stream::FuturesOrdered<PendingAck>,
    /// Deliveries (cloud-to-device messages, module inputs) sent with QoS 1 and not yet
    /// acknowledged, by packet id; they stay stored until the PUBACK.
    inflight: std::collections::HashMap<u16, String>,
    /// The last delivery sent in this session: the next are read after it.
    sent: String,
    next_pkid: u16,
}

impl<S> Conn<S> {
    /// A packet id no delivery in flight uses (never 0).
    fn packet_id(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
            if !self.inflight.contains_key(&self.next_pkid) {
                return self.next_pkid;
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Writes what is queued; a client that does not read for [`WRITE_TIMEOUT`] is dropped,
    /// so it cannot hold its session (and the hub's calls to it) forever.
    async fn flush(&mut self) -> Result<(), End> {
        if !self.out.is_empty() {
            match tokio::time::timeout(WRITE_TIMEOUT, self.stream.write_all(&self.out)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(End::Io(e.to_string())),
                Err(_) => return Err(End::Io("the client stopped reading".into())),
            }
            self.out.clear();
            if self.out.capacity() > KEEP_BUFFER {
                self.out = BytesMut::new();
            }
        }
        Ok(())
    }

    /// Sends the goodbye an MQTT 5 client understands, then ends.
    async fn bye(&mut self, why: Goodbye, text: impl Into<String>) -> End {
        let _ = codec::disconnect(self.version, why, &mut self.out);
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
        End::Goodbye(why, text.into())
    }
}

/// Splits `{device}` or `{device}/{module}`.
fn client_identity(client_id: &str) -> Option<(String, String)> {
    let (d, m) = match client_id.split_once('/') {
        Some((d, m)) => (d, m),
        None => (client_id, ""),
    };
    crate::ids::validate_id(d).ok()?;
    if !m.is_empty() {
        crate::ids::validate_id(m).ok()?;
    }
    Some((d.to_string(), m.to_string()))
}

/// `{hub}/{clientId}/?api-version=…` (or `/api-version=…`): the hub must be ours, the
/// client id the CONNECT's.
fn username_matches(username: &str, hostname: &str, client_id: &str) -> bool {
    let Some((host, rest)) = username.split_once('/') else {
        return false;
    };
    crate::hub::sas::without_port(host).eq_ignore_ascii_case(hostname)
        && rest
            .strip_prefix(client_id)
            .is_some_and(|tail| tail.is_empty() || tail.starts_with('/'))
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Checks the credential of a CONNECT; the identity when it may connect, and when its token
/// expires (the session ends then, as in IoT Hub; certificates have no such end here).
async fn authenticate(
    hub: &Hub,
    peer: &Peer,
    device_id: &str,
    module_id: &str,
    password: Option<&str>,
) -> Result<(Identity, Option<i64>), ConnAck> {
    let identity = match hub.store.get(device_id, module_id).await {
        Ok(Some(i)) => i,
        Ok(None) => return Err(ConnAck::NotAuthorized),
        Err(e) => {
            tracing::warn!(error = %e, "hub: reading an identity at CONNECT failed");
            return Err(ConnAck::NotAuthorized);
        }
    };
    // A module connects only while its device is enabled.
    let enabled = if module_id.is_empty() {
        identity.desc.enabled
    } else {
        hub.store.device_enabled(device_id).await.unwrap_or(false)
    };
    if !enabled {
        return Err(ConnAck::NotAuthorized);
    }
    match password {
        Some(p) => {
            let token = SasToken::parse(p).map_err(|_| ConnAck::BadCredentials)?;
            let mut resource = format!("devices/{device_id}");
            if !module_id.is_empty() {
                resource.push_str(&format!("/modules/{module_id}"));
            }
            token
                .covers(&hub.hostname, &resource)
                .map_err(|_| ConnAck::NotAuthorized)?;
            let now = unix_now();
            let signed = match token.skn.as_deref() {
                // A shared access policy with DeviceConnect may sign for any device.
                Some(name) => hub
                    .policies
                    .iter()
                    .find(|p| p.name == name && p.rights.contains(&Right::DeviceConnect))
                    .is_some_and(|p| {
                        token.verify(&p.keys.primary_key, now).is_ok()
                            || token.verify(&p.keys.secondary_key, now).is_ok()
                    }),
                None => identity.keys.as_ref().is_some_and(|k| {
                    token.verify(&k.primary_key, now).is_ok()
                        || token.verify(&k.secondary_key, now).is_ok()
                }),
            };
            if signed {
                Ok((identity, token.expiry().ok()))
            } else {
                Err(ConnAck::NotAuthorized)
            }
        }
        None => match identity.desc.auth_type {
            AuthType::SelfSigned | AuthType::CertificateAuthority => {
                if hub.x509_matches(&identity, &peer.certificates) {
                    Ok((identity, None))
                } else {
                    Err(ConnAck::NotAuthorized)
                }
            }
            _ => Err(ConnAck::NotAuthorized),
        },
    }
}

/// Reads until a whole packet is there (`None`: the client closed cleanly).
async fn next_frame<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<S>,
) -> Result<Option<Frame>, End> {
    loop {
        match codec::read(c.version, &mut c.inbuf, MAX_PACKET) {
            Ok(Some(f)) => return Ok(Some(f)),
            Ok(None) => {}
            Err(codec::CodecError::TooLarge(n)) => {
                return Err(c
                    .bye(Goodbye::TooLarge, format!("packet over {n} bytes"))
                    .await)
            }
            Err(e) => return Err(c.bye(Goodbye::Malformed, e.to_string()).await),
        }
        if !read_more(c).await? {
            return Ok(None);
        }
    }
}

/// Reads what the client sent next into `inbuf`; `false` when it closed the connection.
async fn read_more<S: AsyncRead + Unpin>(c: &mut Conn<S>) -> Result<bool, End> {
    let n = c
        .stream
        .read_buf(&mut c.inbuf)
        .await
        .map_err(|e| End::Io(e.to_string()))?;
    Ok(n > 0)
}

/// Answers CONNECT with a refusal and closes.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut Conn<S>, code: ConnAck) {
    let _ = codec::connack(conn.version, code, false, &mut conn.out);
    let _ = conn.flush().await;
    let _ = conn.stream.shutdown().await;
}

/// What the session keeps of its CONNECT once admitted; the rest (the identity as read, the
/// token, the client's certificates) is dropped with the phase, not held for the session.
struct Admitted {
    device_id: String,
    module_id: String,
    keep_alive: u16,
    clean: bool,
    kept: u8,
    expires: Option<i64>,
}

/// Reads CONNECT and admits the identity, or refuses it (`None`, CONNACK sent).
async fn admit<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    peer: Peer,
    hub: &Hub,
) -> Option<Admitted> {
    // CONNECT first, within CONNECT_TIMEOUT.
    // The phases that run once or per packet are boxed: a session's future then keeps only
    // the idle loop's state for its lifetime, not the largest phase's (memory per connection).
    let connect = tokio::time::timeout(
        CONNECT_TIMEOUT,
        Box::pin(async {
            loop {
                match codec::connect_version(&conn.inbuf) {
                    Ok(Some(v)) => {
                        conn.version = v;
                        return next_frame(conn).await;
                    }
                    Ok(None) => {}
                    Err(e) => return Err(End::Goodbye(Goodbye::Malformed, e.to_string())),
                }
                if !read_more(conn).await? {
                    return Ok(None);
                }
            }
        }),
    )
    .await;
    let Ok(Ok(Some(Frame::Connect {
        client_id,
        username,
        password,
        keep_alive,
        clean,
    }))) = connect
    else {
        tracing::debug!(peer = ?peer.addr, "hub: no valid CONNECT");
        return None;
    };
    let Some((device_id, module_id)) = client_identity(&client_id) else {
        tracing::info!(peer = ?peer.addr, "hub: CONNECT refused: client id is not an identity");
        refuse(conn, ConnAck::BadClientId).await;
        return None;
    };
    if !username
        .as_deref()
        .is_some_and(|u| username_matches(u, &hub.hostname, &client_id))
    {
        tracing::info!(device = %device_id, module = %module_id, "hub: CONNECT refused: user name is not {{hub}}/{{clientId}}/…");
        refuse(conn, ConnAck::BadCredentials).await;
        return None;
    }
    let (identity, expires) = match Box::pin(authenticate(
        hub,
        &peer,
        &device_id,
        &module_id,
        password.as_deref(),
    ))
    .await
    {
        Ok(found) => found,
        Err(code) => {
            tracing::info!(device = %device_id, module = %module_id, ?code, "hub: CONNECT refused");
            refuse(conn, code).await;
            return None;
        }
    };
    // Clean session 0 keeps the subscriptions of the identity's last session (stored with
    // it, so also across restarts and replicas): Microsoft's SDKs do not subscribe again.
    let kept = if clean { 0 } else { identity.subscriptions };
    Some(Admitted {
        device_id,
        module_id,
        keep_alive,
        clean,
        kept,
        expires,
    })
}

/// Serves one connection to its end.
pub async fn serve<S>(stream: S, peer: Peer, hub: Arc<Hub>, mut shutdown: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut conn = Conn {
        stream,
        version: Version::V311,
        // Grown as packets need (and given back, see `KEEP_BUFFER`): most connections sit
        // idle, and each byte they hold is multiplied by the number of devices.
        inbuf: BytesMut::new(),
        out: BytesMut::new(),
        acks: futures::stream::FuturesOrdered::new(),
        inflight: std::collections::HashMap::new(),
        sent: String::new(),
        next_pkid: 0,
    };
    let Some(Admitted {
        device_id,
        module_id,
        keep_alive,
        clean,
        kept,
        expires,
    }) = Box::pin(admit(&mut conn, peer, &hub)).await
    else {
        return;
    };
    let (tx, mut rx) = mpsc::channel(OUTBOUND);
    let (session, mut closed) = hub.live.register(&device_id, &module_id, tx, kept);
    Box::pin(record(
        &hub,
        &device_id,
        &module_id,
        &session.connection_id,
        true,
        clean,
    ))
    .await;
    tracing::info!(device = %device_id, module = %module_id, version = ?conn.version, "hub: device connected");
    if codec::connack(conn.version, ConnAck::Accepted, kept != 0, &mut conn.out).is_err()
        || conn.flush().await.is_err()
    {
        Box::pin(ended(&hub, &device_id, &module_id, &session)).await;
        return;
    }

    let ctx = Ctx {
        hub: &hub,
        device_id: &device_id,
        module_id: &module_id,
        session: &session,
    };
    // Kept subscriptions: what waited meanwhile goes out at once.
    Box::pin(ctx.pump(&mut conn)).await;
    if conn.flush().await.is_err() {
        Box::pin(ended(&hub, &device_id, &module_id, &session)).await;
        return;
    }
    // IoT Hub's rule: silence for 1.5 keep-alive periods ends the session.
    let idle = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
    let mut deadline = idle.map(|d| Instant::now() + d);
    // A SAS session ends when its token does; the SDKs reconnect with a fresh one before.
    let expiry = expires.map(|se| {
        let left = se.saturating_sub(unix_now()).max(0);
        Instant::now() + Duration::from_secs(u64::try_from(left).unwrap_or_default())
    });
    let end = loop {
        tokio::select! {
            read = conn.stream.read_buf(&mut conn.inbuf), if conn.acks.len() < MAX_UNACKED => {
                match read {
                    Ok(0) => break End::Closed,
                    Ok(_) => {}
                    Err(e) => break End::Io(e.to_string()),
                }
                deadline = idle.map(|d| Instant::now() + d);
                match Box::pin(ctx.drain(&mut conn)).await {
                    Ok(true) => {}
                    Ok(false) => break End::Closed,
                    Err(end) => break end,
                }
            }
            Some((qos, pkid, stored)) = futures::StreamExt::next(&mut conn.acks), if !conn.acks.is_empty() => {
                // This commit, and those that landed with it, in one write.
                let mut landed = vec![(qos, pkid, stored)];
                while let Some(Some(next)) =
                    futures::FutureExt::now_or_never(futures::StreamExt::next(&mut conn.acks))
                {
                    landed.push(next);
                }
                if landed.iter().any(|(_, _, stored)| !stored) {
                    // Not stored: no PUBACK, the device sends it again on its next session.
                    break End::Io("a message could not be stored".into());
                }
                for (qos, pkid, _) in landed {
                    if qos > 0 {
                        let _ = codec::puback(conn.version, pkid, &mut conn.out);
                    }
                }
                if let Err(e) = conn.flush().await {
                    break e;
                }
            }
            out = rx.recv() => match out {
                Some(out) => {
                    let Outbound { topic, payload } = *out;
                    if codec::publish(conn.version, &topic, 0, 0, payload, &mut conn.out).is_ok() {
                        if let Err(e) = conn.flush().await {
                            break e;
                        }
                    }
                }
                None => break End::Closed,
            },
            () = session.deliveries.notified() => {
                Box::pin(ctx.pump(&mut conn)).await;
                if let Err(e) = conn.flush().await {
                    break e;
                }
            }
            changed = closed.changed() => {
                let why = match changed {
                    Ok(()) => (*closed.borrow()).unwrap_or(Goodbye::ShuttingDown),
                    Err(_) => Goodbye::ShuttingDown,
                };
                break conn.bye(why, "closed by the hub").await;
            }
            _ = async {
                match expiry {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => break conn.bye(Goodbye::NotAuthorized, "the SAS token expired").await,
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => break conn.bye(Goodbye::KeepAlive, "keep-alive expired").await,
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
                break conn.bye(Goodbye::ShuttingDown, "hub stopping").await
            }
        }
    };
    Box::pin(ended(&hub, &device_id, &module_id, &session)).await;
    tracing::info!(device = %device_id, module = %module_id, %end, "hub: device disconnected");
}

/// A session ended: out of the live sessions, and recorded (if it still was the identity's).
async fn ended(hub: &Hub, device_id: &str, module_id: &str, session: &super::live::Session) {
    hub.live.unregister(device_id, module_id, session.id);
    record(
        hub,
        device_id,
        module_id,
        &session.connection_id,
        false,
        false,
    )
    .await;
}

/// Records that a session connected or ended (`connectionState`, the publishers view).
/// Awaited boxed: its database futures are large, and inline they would size every session's
/// task for its whole life (memory per connection).
async fn record(
    hub: &Hub,
    device_id: &str,
    module_id: &str,
    connection_id: &str,
    connected: bool,
    clean: bool,
) {
    if let Some(i) = hub
        .set_connected(device_id, module_id, connection_id, connected, clean)
        .await
    {
        hub.publisher_state(&i, connected).await;
    }
}

/// Queues routed module inputs and tells their sessions; `false` when one could not be
/// queued (the sender then gets no PUBACK and sends again).
async fn queue_inputs(hub: &Hub, inputs: &[Delivery]) -> bool {
    for d in inputs {
        match hub
            .deliveries
            .enqueue(d, crate::hub::deliveries::MAX_INPUTS_QUEUED)
            .await
        {
            Ok(true) => hub.wake_deliveries(&d.device_id, &d.module_id).await,
            Ok(false) => {
                tracing::warn!(device = %d.device_id, module = %d.module_id, input = %d.input, "hub: a module input queue is full; the routed message is dropped for it");
            }
            Err(e) => {
                tracing::warn!(error = %e, device = %d.device_id, "hub: queueing a module input failed");
                return false;
            }
        }
    }
    true
}

struct Ctx<'a> {
    hub: &'a Arc<Hub>,
    device_id: &'a str,
    module_id: &'a str,
    session: &'a super::live::Session,
}

impl Ctx<'_> {
    fn identity(&self) -> topics::Identity<'_> {
        topics::Identity {
            device_id: self.device_id,
            module_id: (!self.module_id.is_empty()).then_some(self.module_id),
        }
    }

    /// Handles every whole packet read so far. `Ok(false)`: the client said goodbye.
    async fn drain<S: AsyncRead + AsyncWrite + Unpin>(&self, c: &mut Conn<S>) -> Result<bool, End> {
        loop {
            let frame = match codec::read(c.version, &mut c.inbuf, MAX_PACKET) {
                Ok(Some(f)) => f,
                Ok(None) => {
                    if c.inbuf.is_empty() && c.inbuf.capacity() > KEEP_BUFFER {
                        c.inbuf = BytesMut::new();
                    }
                    break;
                }
                Err(codec::CodecError::TooLarge(n)) => {
                    return Err(c
                        .bye(Goodbye::TooLarge, format!("packet over {n} bytes"))
                        .await)
                }
                Err(e) => return Err(c.bye(Goodbye::Malformed, e.to_string()).await),
            };
            if c.out.len() >= FLUSH_AT {
                c.flush().await?;
            }
            match frame {
                // IoT Hub speaks QoS 0 and 1 only, and closes on 2.
                Frame::Publish { qos: 2, .. } => {
                    return Err(c.bye(Goodbye::Malformed, "QoS 2 is not supported").await)
                }
                Frame::Publish {
                    topic,
                    qos,
                    pkid,
                    payload,
                } => self.publish(c, &topic, qos, pkid, payload).await?,
                Frame::Subscribe { pkid, filters } => {
                    let mut granted = Vec::with_capacity(filters.len());
                    for (filter, qos) in &filters {
                        match topics::classify_subscription(&self.identity(), filter) {
                            Ok(s) => {
                                self.set_subscription(s, true);
                                granted.push(Some((*qos).min(1)));
                            }
                            Err(topics::TopicError::NotYours(t)) => {
                                return Err(c
                                    .bye(
                                        Goodbye::NotAuthorized,
                                        format!("subscribed to another identity's topic {t}"),
                                    )
                                    .await)
                            }
                            Err(_) => granted.push(None),
                        }
                    }
                    self.keep_subscriptions().await;
                    let _ = codec::suback(c.version, pkid, &granted, &mut c.out);
                    Box::pin(self.pump(c)).await;
                }
                Frame::Unsubscribe { pkid, filters } => {
                    for f in &filters {
                        if let Ok(s) = topics::classify_subscription(&self.identity(), f) {
                            self.set_subscription(s, false);
                        }
                    }
                    self.keep_subscriptions().await;
                    let _ = codec::unsuback(c.version, pkid, filters.len(), &mut c.out);
                }
                Frame::PingReq => {
                    let _ = codec::pingresp(c.version, &mut c.out);
                }
                Frame::PubAck { pkid } => {
                    if let Some(id) = c.inflight.remove(&pkid) {
                        if let Err(e) = self
                            .hub
                            .deliveries
                            .complete(self.device_id, self.module_id, &id)
                            .await
                        {
                            tracing::warn!(error = %e, device = %self.device_id, "hub: completing a delivery failed; it may come again");
                        }
                        Box::pin(self.pump(c)).await;
                    }
                }
                Frame::Disconnect => {
                    c.flush().await?;
                    return Ok(false);
                }
                Frame::Connect { .. } => {
                    return Err(c.bye(Goodbye::Malformed, "a second CONNECT").await)
                }
                Frame::Unexpected(what) => return Err(c.bye(Goodbye::Malformed, what).await),
            }
        }
        c.flush().await?;
        Ok(true)
    }

    /// The module inputs `$edgeHub` routes send `m` to, as deliveries (queued once `m` is
    /// stored).
    async fn route_to_inputs(&self, m: &Message) -> Vec<Delivery> {
        let routes = self.hub.routes_for(self.device_id).await;
        if routes.is_empty() {
            return Vec::new();
        }
        let now = unix_now();
        let mut out: Vec<Delivery> = Vec::new();
        for r in routes.iter() {
            let crate::hub::edge_routes::Into::Input { module, input } = &r.into else {
                continue;
            };
            if !r.matches(m)
                || out
                    .iter()
                    .any(|d| d.module_id == *module && d.input == *input)
            {
                continue;
            }
            out.push(Delivery {
                id: crate::hub::deliveries::new_id(),
                device_id: self.device_id.to_string(),
                module_id: module.clone(),
                input: input.clone(),
                properties: crate::hub::edge_routes::input_properties(m),
                body: m.body.clone(),
                expires: now + r.ttl_secs,
            });
        }
        out
    }

    /// Sends what waits for the identity (cloud-to-device messages to a device subscribed
    /// to them, inputs to a module subscribed to its inputs), QoS 1, up to [`MAX_INFLIGHT`]
    /// unacknowledged.
    async fn pump<S>(&self, c: &mut Conn<S>) {
        let subs = &self.session.subscriptions;
        let wanted = if self.module_id.is_empty() {
            subs.cloud_to_device.load(Ordering::Acquire)
        } else {
            subs.inputs.load(Ordering::Acquire)
        };
        let room = MAX_INFLIGHT.saturating_sub(c.inflight.len());
        if !wanted || room == 0 {
            return;
        }
        let pending = match self
            .hub
            .deliveries
            .pending(self.device_id, self.module_id, &c.sent, room)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, device = %self.device_id, "hub: reading deliveries failed");
                return;
            }
        };
        for d in pending {
            c.sent.clone_from(&d.id);
            let topic = if self.module_id.is_empty() {
                topics::cloud_to_device(self.device_id, &d.properties)
            } else if d.input.is_empty() {
                continue;
            } else {
                topics::module_input(self.device_id, self.module_id, &d.input, &d.properties)
            };
            let pkid = c.packet_id();
            if codec::publish(c.version, &topic, 1, pkid, d.body, &mut c.out).is_ok() {
                c.inflight.insert(pkid, d.id);
            }
        }
    }

    /// Stores the session's subscriptions with the identity when they changed.
    async fn keep_subscriptions(&self) {
        let bits = self.session.subscriptions.bits();
        let done = self
            .hub
            .store
            .update(self.device_id, self.module_id, |i| {
                let changed = i.subscriptions != bits;
                i.subscriptions = bits;
                Ok(changed)
            })
            .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, device = %self.device_id, "hub: keeping subscriptions failed");
        }
    }

    fn set_subscription(&self, s: Subscription, on: bool) {
        let subs = &self.session.subscriptions;
        let flag = match s {
            Subscription::TwinResponses => &subs.twin_responses,
            Subscription::DesiredPatches => &subs.desired,
            Subscription::Methods => &subs.methods,
            Subscription::CloudToDevice => &subs.cloud_to_device,
            Subscription::ModuleInputs => &subs.inputs,
        };
        flag.store(on, Ordering::Release);
    }

    /// Queues a twin response if the device subscribed to them.
    fn twin_response(
        &self,
        c: &mut Conn<impl AsyncRead + AsyncWrite + Unpin>,
        status: u16,
        rid: &str,
        version: Option<u64>,
        body: Bytes,
    ) {
        if self
            .session
            .subscriptions
            .twin_responses
            .load(Ordering::Acquire)
        {
            let _ = codec::publish(
                c.version,
                &topics::twin_response(status, rid, version),
                0,
                0,
                body,
                &mut c.out,
            );
        }
    }

    async fn publish<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        c: &mut Conn<S>,
        topic: &str,
        qos: u8,
        pkid: u16,
        payload: Bytes,
    ) -> Result<(), End> {
        let inbound = match topics::classify_publish(&self.identity(), topic) {
            Ok(i) => i,
            Err(e) => {
                let why = match e {
                    topics::TopicError::NotYours(_) => Goodbye::NotAuthorized,
                    _ => Goodbye::Malformed,
                };
                return Err(c.bye(why, e.to_string()).await);
            }
        };
        match inbound {
            Inbound::Telemetry { properties } => {
                if payload.len() > topics::MAX_TELEMETRY_BYTES {
                    return Err(c
                        .bye(
                            Goodbye::TooLarge,
                            format!("message of {} bytes", payload.len()),
                        )
                        .await);
                }
                let (system, application) = properties.split();
                let message = Message {
                    // Both given by the writer, in commit order.
                    id: String::new(),
                    device_id: self.device_id.into(),
                    module_id: self.module_id.into(),
                    enqueued_time: String::new(),
                    system_properties: system,
                    properties: application,
                    body: payload,
                };
                // Module outputs the device's `$edgeHub` routes send to module inputs.
                let inputs = if self.module_id.is_empty() {
                    Vec::new()
                } else {
                    self.route_to_inputs(&message).await
                };
                // Stored before acknowledged: the PUBACK goes out when the commit lands (see
                // `Conn::acks`); a failure closes without it, so the device sends again.
                let committed = match self.hub.messages.submit(message).await {
                    Ok(rx) => rx,
                    Err(e) => {
                        tracing::warn!(error = %e, device = %self.device_id, "hub: message not stored");
                        return Err(End::Io(e.to_string()));
                    }
                };
                if inputs.is_empty() {
                    c.acks.push_back(Box::pin(async move {
                        (qos, pkid, matches!(committed.await, Ok(Ok(()))))
                    }));
                } else {
                    let hub = self.hub.clone();
                    c.acks.push_back(Box::pin(async move {
                        let stored = matches!(committed.await, Ok(Ok(())))
                            && queue_inputs(&hub, &inputs).await;
                        (qos, pkid, stored)
                    }));
                }
            }
            Inbound::TwinGet { rid } => {
                match self.hub.store.get(self.device_id, self.module_id).await {
                    Ok(Some(i)) => {
                        let body = i.twin.properties_json().to_string();
                        self.twin_response(c, 200, &rid, None, Bytes::from(body));
                    }
                    Ok(None) => self.twin_response(c, 404, &rid, None, Bytes::new()),
                    Err(e) => {
                        tracing::warn!(error = %e, "hub: twin GET failed");
                        self.twin_response(c, 500, &rid, None, Bytes::new());
                    }
                }
                self.puback_if(c, qos, pkid);
            }
            Inbound::ReportedPatch { rid } => {
                let patch = match serde_json::from_slice::<Value>(&payload) {
                    Ok(Value::Object(o)) => Ok(o),
                    Ok(_) => Err("a reported patch is a JSON object".to_string()),
                    Err(e) => Err(format!("the reported patch is not JSON: {e}")),
                };
                match patch {
                    Err(e) => {
                        let body = serde_json::json!({"message": e}).to_string();
                        self.twin_response(c, 400, &rid, None, Bytes::from(body));
                    }
                    Ok(patch) => {
                        let now = crate::registry::now();
                        let done = self
                            .hub
                            .store
                            .update(self.device_id, self.module_id, |i| {
                                i.twin.report(&patch, &now)
                            })
                            .await;
                        match done {
                            Ok(Some(i)) => {
                                self.twin_response(
                                    c,
                                    204,
                                    &rid,
                                    Some(i.twin.reported.version),
                                    Bytes::new(),
                                );
                                // Reporting `__type__` makes a module a publisher.
                                if patch.contains_key("__type__")
                                    || patch.contains_key("__version__")
                                {
                                    self.hub.publisher_state(&i, true).await;
                                }
                            }
                            Ok(None) => self.twin_response(c, 404, &rid, None, Bytes::new()),
                            Err(crate::hub::HubError::Argument(m)) => {
                                let body = serde_json::json!({"message": m}).to_string();
                                self.twin_response(c, 400, &rid, None, Bytes::from(body));
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, device = %self.device_id, "hub: reported patch failed");
                                let body =
                                    serde_json::json!({"message": "internal error"}).to_string();
                                self.twin_response(c, 500, &rid, None, Bytes::from(body));
                            }
                        }
                    }
                }
                self.puback_if(c, qos, pkid);
            }
            Inbound::MethodResponse { status, rid } => {
                if !self
                    .hub
                    .live
                    .answer(self.device_id, self.module_id, &rid, status, payload)
                {
                    tracing::debug!(device = %self.device_id, %rid, "hub: a method answer nobody waits for");
                }
                self.puback_if(c, qos, pkid);
            }
        }
        Ok(())
    }

    fn puback_if(&self, c: &mut Conn<impl AsyncRead + AsyncWrite + Unpin>, qos: u8, pkid: u16) {
        if qos > 0 {
            let _ = codec::puback(c.version, pkid, &mut c.out);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_and_user_names_follow_iot_hub() {
        assert_eq!(client_identity("d1"), Some(("d1".into(), String::new())));
        assert_eq!(client_identity("d1/m1"), Some(("d1".into(), "m1".into())));
        assert_eq!(client_identity(""), None);
        assert_eq!(client_identity("d1/m1/x"), None);
        assert!(username_matches(
            "hub.local/d1/?api-version=2021-04-12",
            "hub.local",
            "d1"
        ));
        assert!(username_matches(
            "HUB.local:8883/d1/m1/?api-version=x",
            "hub.local",
            "d1/m1"
        ));
        assert!(username_matches(
            "127.0.0.5/d1/api-version=2019-03-30",
            "127.0.0.5",
            "d1"
        ));
        assert!(!username_matches(
            "other/d1/?api-version=x",
            "hub.local",
            "d1"
        ));
        assert!(!username_matches(
            "hub.local/d10/?api-version=x",
            "hub.local",
            "d1"
        ));
        assert!(!username_matches("hub.local", "hub.local", "d1"));
    }
}
