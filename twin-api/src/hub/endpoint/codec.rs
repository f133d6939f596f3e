//! MQTT 3.1.1 and 5 framing from rumqttc's `mqttbytes` (a kept codec, already in our tree),
//! behind one small vocabulary: the hub's session logic is the same for both versions and
//! only these functions know their packet types apart.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

/// Which MQTT the client spoke in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V311,
    V5,
}

/// A packet a device sends, as far as the hub cares. `Debug` (below) hides the password.
#[derive(Clone, PartialEq)]
pub enum Frame {
    Connect {
        client_id: String,
        username: Option<String>,
        /// `None` when the password flag is unset (X.509 devices send none at all).
        password: Option<String>,
        keep_alive: u16,
        /// MQTT 3.1.1 clean session / 5 clean start: `false` keeps subscriptions.
        clean: bool,
    },
    Publish {
        topic: String,
        qos: u8,
        pkid: u16,
        payload: Bytes,
    },
    PubAck {
        pkid: u16,
    },
    Subscribe {
        pkid: u16,
        filters: Vec<(String, u8)>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    PingReq,
    Disconnect,
    /// Anything else a device has no business sending (QoS 2 flows, CONNACK…).
    Unexpected(&'static str),
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frame::Connect {
                client_id,
                username,
                keep_alive,
                clean,
                ..
            } => f
                .debug_struct("Connect")
                .field("client_id", client_id)
                .field("username", username)
                .field("keep_alive", keep_alive)
                .field("clean", clean)
                .finish_non_exhaustive(),
            Frame::Publish {
                topic, qos, pkid, ..
            } => f
                .debug_struct("Publish")
                .field("topic", topic)
                .field("qos", qos)
                .field("pkid", pkid)
                .finish_non_exhaustive(),
            Frame::PubAck { pkid } => f.debug_struct("PubAck").field("pkid", pkid).finish(),
            Frame::Subscribe { pkid, filters } => f
                .debug_struct("Subscribe")
                .field("pkid", pkid)
                .field("filters", filters)
                .finish(),
            Frame::Unsubscribe { pkid, filters } => f
                .debug_struct("Unsubscribe")
                .field("pkid", pkid)
                .field("filters", filters)
                .finish(),
            Frame::PingReq => f.write_str("PingReq"),
            Frame::Disconnect => f.write_str("Disconnect"),
            Frame::Unexpected(w) => write!(f, "Unexpected({w})"),
        }
    }
}

/// Why reading failed: the stream is not MQTT, or a packet breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("not an MQTT 3.1.1 or 5 CONNECT")]
    NotConnect,
    #[error("packet larger than {0} bytes")]
    TooLarge(usize),
    #[error("malformed packet: {0}")]
    Malformed(String),
}

/// The protocol level of a CONNECT at the start of `buf` (`None` while too little is read):
/// byte 0 is the packet type, then 1–4 bytes of length, then "\0\x04MQTT" and the level.
pub fn connect_version(buf: &[u8]) -> Result<Option<Version>, CodecError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] >> 4 != 1 {
        return Err(CodecError::NotConnect);
    }
    let mut i = 1;
    loop {
        let Some(b) = buf.get(i) else {
            return Ok(None);
        };
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i > 4 {
            return Err(CodecError::NotConnect);
        }
    }
    let Some(head) = buf.get(i..i + 7) else {
        return Ok(None);
    };
    match (&head[..6], head[6]) {
        (b"\0\x04MQTT", 4) => Ok(Some(Version::V311)),
        (b"\0\x04MQTT", 5) => Ok(Some(Version::V5)),
        _ => Err(CodecError::NotConnect),
    }
}

fn qos_of(q: rumqttc::mqttbytes::QoS) -> u8 {
    q as u8
}

fn login(l: Option<(String, String)>, password_flag: bool) -> (Option<String>, Option<String>) {
    match l {
        None => (None, None),
        Some((u, p)) => (
            Some(u).filter(|u| !u.is_empty()),
            Some(p).filter(|p| password_flag || !p.is_empty()),
        ),
    }
}

/// Reads one packet from `buf` if a whole one is there (`Ok(None)`: read more).
pub fn read(version: Version, buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, CodecError> {
    match version {
        Version::V311 => match v4::Packet::read(buf, max) {
            Ok(p) => Ok(Some(from_v4(p))),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(_)) => {
                Err(CodecError::TooLarge(max))
            }
            Err(e) => Err(CodecError::Malformed(e.to_string())),
        },
        Version::V5 => match v5::Packet::read(buf, u32::try_from(max).ok()) {
            Ok(p) => Ok(Some(from_v5(p))),
            Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(rumqttc::v5::mqttbytes::Error::PayloadSizeLimitExceeded { .. }) => {
                Err(CodecError::TooLarge(max))
            }
            Err(e) => Err(CodecError::Malformed(e.to_string())),
        },
    }
}

fn from_v4(p: v4::Packet) -> Frame {
    match p {
        v4::Packet::Connect(c) => {
            let (username, password) = login(c.login.map(|l| (l.username, l.password)), false);
            Frame::Connect {
                client_id: c.client_id,
                username,
                password,
                keep_alive: c.keep_alive,
                clean: c.clean_session,
            }
        }
        v4::Packet::Publish(p) => Frame::Publish {
            topic: p.topic,
            qos: qos_of(p.qos),
            pkid: p.pkid,
            payload: p.payload,
        },
        v4::Packet::PubAck(a) => Frame::PubAck { pkid: a.pkid },
        v4::Packet::Subscribe(s) => Frame::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| (f.path, qos_of(f.qos)))
                .collect(),
        },
        v4::Packet::Unsubscribe(u) => Frame::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
        },
        v4::Packet::PingReq => Frame::PingReq,
        v4::Packet::Disconnect => Frame::Disconnect,
        _ => Frame::Unexpected("a packet a device does not send"),
    }
}

fn from_v5(p: v5::Packet) -> Frame {
    match p {
        v5::Packet::Connect(c, _, l) => {
            let (username, password) = login(l.map(|l| (l.username, l.password)), false);
            Frame::Connect {
                client_id: c.client_id,
                username,
                password,
                keep_alive: c.keep_alive,
                clean: c.clean_start,
            }
        }
        v5::Packet::Publish(p) => Frame::Publish {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            qos: p.qos as u8,
            pkid: p.pkid,
            payload: p.payload,
        },
        v5::Packet::PubAck(a) => Frame::PubAck { pkid: a.pkid },
        v5::Packet::Subscribe(s) => Frame::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| (f.path, f.qos as u8))
                .collect(),
        },
        v5::Packet::Unsubscribe(u) => Frame::Unsubscribe {
            pkid: u.pkid,
            filters: u.filters,
        },
        v5::Packet::PingReq(_) => Frame::PingReq,
        v5::Packet::Disconnect(_) => Frame::Disconnect,
        _ => Frame::Unexpected("a packet a device does not send"),
    }
}

/// CONNACK outcomes the hub gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnAck {
    Accepted,
    BadCredentials,
    NotAuthorized,
    BadClientId,
}

fn write_err(e: impl std::fmt::Display) -> CodecError {
    CodecError::Malformed(format!("cannot encode: {e}"))
}

pub fn connack(
    version: Version,
    code: ConnAck,
    session_present: bool,
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    let session_present = session_present && code == ConnAck::Accepted;
    match version {
        Version::V311 => {
            use v4::ConnectReturnCode as C;
            let c = match code {
                ConnAck::Accepted => C::Success,
                ConnAck::BadCredentials => C::BadUserNamePassword,
                ConnAck::NotAuthorized => C::NotAuthorized,
                ConnAck::BadClientId => C::BadClientId,
            };
            v4::Packet::ConnAck(v4::ConnAck::new(c, session_present))
                .write(out, usize::MAX)
                .map_err(write_err)?;
        }
        Version::V5 => {
            use v5::ConnectReturnCode as C;
            let c = match code {
                ConnAck::Accepted => C::Success,
                ConnAck::BadCredentials => C::BadUserNamePassword,
                ConnAck::NotAuthorized => C::NotAuthorized,
                ConnAck::BadClientId => C::ClientIdentifierNotValid,
            };
            v5::Packet::ConnAck(v5::ConnAck {
                session_present,
                code: c,
                properties: None,
            })
            .write(out, None)
            .map_err(write_err)?;
        }
    }
    Ok(())
}

pub fn publish(
    version: Version,
    topic: &str,
    qos: u8,
    pkid: u16,
    payload: Bytes,
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    match version {
        Version::V311 => {
            let mut p = v4::Publish::new(
                topic,
                rumqttc::mqttbytes::qos(qos).map_err(write_err)?,
                Vec::new(),
            );
            p.payload = payload;
            p.pkid = pkid;
            v4::Packet::Publish(p)
                .write(out, usize::MAX)
                .map_err(write_err)?;
        }
        Version::V5 => {
            let mut p = v5::Publish::new(
                topic,
                rumqttc::v5::mqttbytes::qos(qos).ok_or_else(|| write_err(format!("QoS {qos}")))?,
                payload,
                None,
            );
            p.pkid = pkid;
            v5::Packet::Publish(p).write(out, None).map_err(write_err)?;
        }
    }
    Ok(())
}

pub fn puback(version: Version, pkid: u16, out: &mut BytesMut) -> Result<(), CodecError> {
    match version {
        Version::V311 => v4::Packet::PubAck(v4::PubAck::new(pkid))
            .write(out, usize::MAX)
            .map(drop)
            .map_err(write_err),
        Version::V5 => v5::Packet::PubAck(v5::PubAck {
            pkid,
            reason: v5::PubAckReason::Success,
            properties: None,
        })
        .write(out, None)
        .map(drop)
        .map_err(write_err),
    }
}

/// SUBACK: the granted QoS per filter, `None` for a refused one.
pub fn suback(
    version: Version,
    pkid: u16,
    granted: &[Option<u8>],
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    match version {
        Version::V311 => {
            let codes = granted
                .iter()
                .map(|g| match g.and_then(|q| rumqttc::mqttbytes::qos(q).ok()) {
                    Some(q) => v4::SubscribeReasonCode::Success(q),
                    None => v4::SubscribeReasonCode::Failure,
                })
                .collect();
            v4::Packet::SubAck(v4::SubAck::new(pkid, codes))
                .write(out, usize::MAX)
                .map(drop)
                .map_err(write_err)
        }
        Version::V5 => {
            let codes = granted
                .iter()
                .map(|g| match g.and_then(rumqttc::v5::mqttbytes::qos) {
                    Some(q) => v5::SubscribeReasonCode::Success(q),
                    None => v5::SubscribeReasonCode::NotAuthorized,
                })
                .collect();
            v5::Packet::SubAck(v5::SubAck {
                pkid,
                return_codes: codes,
                properties: None,
            })
            .write(out, None)
            .map(drop)
            .map_err(write_err)
        }
    }
}

pub fn unsuback(
    version: Version,
    pkid: u16,
    n: usize,
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    match version {
        Version::V311 => v4::Packet::UnsubAck(v4::UnsubAck::new(pkid))
            .write(out, usize::MAX)
            .map(drop)
            .map_err(write_err),
        Version::V5 => v5::Packet::UnsubAck(v5::UnsubAck {
            pkid,
            reasons: vec![v5::UnsubAckReason::Success; n],
            properties: None,
        })
        .write(out, None)
        .map(drop)
        .map_err(write_err),
    }
}

pub fn pingresp(version: Version, out: &mut BytesMut) -> Result<(), CodecError> {
    match version {
        Version::V311 => v4::Packet::PingResp
            .write(out, usize::MAX)
            .map(drop)
            .map_err(write_err),
        Version::V5 => v5::Packet::PingResp(v5::PingResp)
            .write(out, None)
            .map(drop)
            .map_err(write_err),
    }
}

/// Why the hub ends a session; MQTT 5 clients are told, 3.1.1 clients only see the close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goodbye {
    TakenOver,
    NotAuthorized,
    Malformed,
    TooLarge,
    KeepAlive,
    ShuttingDown,
}

pub fn disconnect(version: Version, why: Goodbye, out: &mut BytesMut) -> Result<(), CodecError> {
    if version == Version::V311 {
        return Ok(());
    }
    use v5::DisconnectReasonCode as R;
    let reason = match why {
        Goodbye::TakenOver => R::SessionTakenOver,
        Goodbye::NotAuthorized => R::NotAuthorized,
        Goodbye::Malformed => R::MalformedPacket,
        Goodbye::TooLarge => R::PacketTooLarge,
        Goodbye::KeepAlive => R::KeepAliveTimeout,
        Goodbye::ShuttingDown => R::ServerShuttingDown,
    };
    v5::Packet::Disconnect(v5::Disconnect::new(reason))
        .write(out, None)
        .map(drop)
        .map_err(write_err)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn connect_bytes(version: Version, password: Option<&str>) -> BytesMut {
        let mut out = BytesMut::new();
        match version {
            Version::V311 => {
                let mut c = v4::Connect::new("dev-1");
                c.keep_alive = 60;
                if let Some(p) = password {
                    c.set_login("hub/dev-1/?api-version=2021-04-12", p);
                }
                v4::Packet::Connect(c).write(&mut out, usize::MAX).unwrap();
            }
            Version::V5 => {
                let c = v5::Connect {
                    keep_alive: 60,
                    client_id: "dev-1".into(),
                    clean_start: false,
                    properties: None,
                };
                let login = password.map(|p| v5::Login::new("hub/dev-1/?api-version=x", p));
                v5::Packet::Connect(c, None, login)
                    .write(&mut out, None)
                    .unwrap();
            }
        }
        out
    }

    #[test]
    fn both_versions_are_recognised_and_read() {
        for v in [Version::V311, Version::V5] {
            let mut b = connect_bytes(v, Some("SharedAccessSignature sr=x"));
            assert_eq!(connect_version(&b[..3]).unwrap(), None);
            assert_eq!(connect_version(&b).unwrap(), Some(v));
            let f = read(v, &mut b, 1024).unwrap().unwrap();
            match f {
                Frame::Connect {
                    client_id,
                    password,
                    username,
                    keep_alive,
                    ..
                } => {
                    assert_eq!(client_id, "dev-1");
                    assert_eq!(password.as_deref(), Some("SharedAccessSignature sr=x"));
                    assert!(username.unwrap().starts_with("hub/dev-1/"));
                    assert_eq!(keep_alive, 60);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(connect_version(b"\x30\x02ab"), Err(CodecError::NotConnect));
        assert_eq!(
            connect_version(b"GET / HTTP/1.1\r\n"),
            Err(CodecError::NotConnect)
        );
    }

    #[test]
    fn a_publish_round_trips_and_partial_input_waits() {
        for v in [Version::V311, Version::V5] {
            let mut out = BytesMut::new();
            publish(v, "a/b", 1, 7, Bytes::from_static(b"hello"), &mut out).unwrap();
            let mut half = BytesMut::from(&out[..4]);
            assert_eq!(read(v, &mut half, 1024).unwrap(), None);
            let f = read(v, &mut out, 1024).unwrap().unwrap();
            assert_eq!(
                f,
                Frame::Publish {
                    topic: "a/b".into(),
                    qos: 1,
                    pkid: 7,
                    payload: Bytes::from_static(b"hello")
                }
            );
            let mut big = BytesMut::new();
            publish(v, "a", 0, 0, Bytes::from(vec![0u8; 2000]), &mut big).unwrap();
            assert_eq!(read(v, &mut big, 1000), Err(CodecError::TooLarge(1000)));
        }
    }
}
