//! Network scan: which (address, port) pairs speak OPC UA.
//!
//! Only the address and port ranges the caller names are probed — a gateway on a plant network
//! must never sweep addresses nobody asked about. A probe is a TCP connect followed by an OPC
//! UA Hello; only an Acknowledge or an Error message counts as an OPC UA server, so web
//! servers and other listeners on the same ports are not reported.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Upper bound of probes in one scan, so a typo such as `/8` fails fast instead of running
/// for days.
pub const MAX_PROBES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("invalid address range '{0}': expected a.b.c.d, a.b.c.d/nn or a.b.c.d-e.f.g.h")]
    BadRange(String),
    #[error("invalid port range '{0}': expected p, p-q or a comma separated list")]
    BadPorts(String),
    #[error("{0} probes requested; at most {MAX_PROBES} are allowed in one scan")]
    TooLarge(u64),
}

/// An inclusive IPv4 range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    pub first: u32,
    pub last: u32,
}

impl AddressRange {
    pub fn len(&self) -> u64 {
        u64::from(self.last - self.first) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn iter(&self) -> impl Iterator<Item = Ipv4Addr> {
        (self.first..=self.last).map(Ipv4Addr::from)
    }
}

/// Parses `a.b.c.d`, `a.b.c.d/nn` or `a.b.c.d-e.f.g.h`, several separated by `;` or `,`.
pub fn parse_address_ranges(text: &str) -> Result<Vec<AddressRange>, ScanError> {
    let mut out = Vec::new();
    for part in text
        .split([';', ','])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let bad = || ScanError::BadRange(part.to_string());
        let range = if let Some((ip, bits)) = part.split_once('/') {
            let ip: Ipv4Addr = ip.trim().parse().map_err(|_| bad())?;
            let bits: u32 = bits.trim().parse().map_err(|_| bad())?;
            if bits > 32 {
                return Err(bad());
            }
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            let base = u32::from(ip) & mask;
            let last = base | !mask;
            // Skip network and broadcast addresses of ordinary subnets.
            if bits <= 30 {
                AddressRange {
                    first: base + 1,
                    last: last - 1,
                }
            } else {
                AddressRange { first: base, last }
            }
        } else if let Some((a, b)) = part.split_once('-') {
            let a: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
            let b: Ipv4Addr = b.trim().parse().map_err(|_| bad())?;
            let (a, b) = (u32::from(a), u32::from(b));
            if a > b {
                return Err(bad());
            }
            AddressRange { first: a, last: b }
        } else {
            let ip: Ipv4Addr = part.parse().map_err(|_| bad())?;
            AddressRange {
                first: ip.into(),
                last: ip.into(),
            }
        };
        out.push(range);
    }
    Ok(out)
}

/// Parses `4840`, `4840-4850` or lists of them separated by `,` or `;`.
pub fn parse_port_ranges(text: &str) -> Result<Vec<(u16, u16)>, ScanError> {
    let mut out = Vec::new();
    for part in text
        .split([';', ','])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let bad = || ScanError::BadPorts(part.to_string());
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: u16 = a.parse().map_err(|_| bad())?;
        let b: u16 = b.parse().map_err(|_| bad())?;
        if a == 0 || a > b {
            return Err(bad());
        }
        out.push((a, b));
    }
    Ok(out)
}

/// Every (address, port) pair to probe, refusing scans above [`MAX_PROBES`].
pub fn targets(
    ranges: &[AddressRange],
    ports: &[(u16, u16)],
) -> Result<Vec<SocketAddr>, ScanError> {
    let hosts: u64 = ranges.iter().map(AddressRange::len).sum();
    let port_count: u64 = ports.iter().map(|(a, b)| u64::from(b - a) + 1).sum();
    let total = hosts.saturating_mul(port_count);
    if total > MAX_PROBES {
        return Err(ScanError::TooLarge(total));
    }
    let mut out = Vec::with_capacity(total as usize);
    for r in ranges {
        for ip in r.iter() {
            for (a, b) in ports {
                for port in *a..=*b {
                    out.push(SocketAddr::new(IpAddr::V4(ip), port));
                }
            }
        }
    }
    Ok(out)
}

/// Builds an OPC UA Hello message (Part 6 §7.1.2.3) for `url`.
pub fn hello_message(url: &str) -> Vec<u8> {
    let url = url.as_bytes();
    let size = 8 + 20 + 4 + url.len();
    let mut m = Vec::with_capacity(size);
    m.extend_from_slice(b"HELF");
    m.extend_from_slice(&(size as u32).to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes()); // protocol version
    m.extend_from_slice(&65_536u32.to_le_bytes()); // receive buffer size
    m.extend_from_slice(&65_536u32.to_le_bytes()); // send buffer size
    m.extend_from_slice(&0u32.to_le_bytes()); // max message size: no limit
    m.extend_from_slice(&0u32.to_le_bytes()); // max chunk count: no limit
    m.extend_from_slice(&(url.len() as i32).to_le_bytes());
    m.extend_from_slice(url);
    m
}

/// True when `addr` answers a Hello with Acknowledge or Error, i.e. speaks OPC UA TCP.
pub async fn probe(addr: SocketAddr, timeout: Duration) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let url = format!("opc.tcp://{addr}");
        stream.write_all(&hello_message(&url)).await.ok()?;
        let mut header = [0u8; 8];
        stream.read_exact(&mut header).await.ok()?;
        Some(matches!(&header[..4], b"ACKF" | b"ERRF"))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Probes all targets with at most `concurrency` in flight; calls `progress(done, found)`
/// now and then and stops early when cancelled.
pub async fn scan(
    targets: Vec<SocketAddr>,
    concurrency: usize,
    timeout: Duration,
    cancel: CancellationToken,
    mut progress: impl FnMut(usize, usize),
) -> Vec<SocketAddr> {
    let total = targets.len();
    let mut found = Vec::new();
    let mut done = 0usize;
    let mut probes = stream::iter(targets)
        .map(|addr| async move { (addr, probe(addr, timeout).await) })
        .buffer_unordered(concurrency.max(1));
    let step = (total / 20).max(1);
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => break,
            n = probes.next() => n,
        };
        let Some((addr, ok)) = next else { break };
        done += 1;
        if ok {
            found.push(addr);
        }
        if done.is_multiple_of(step) || done == total {
            progress(done, found.len());
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges() {
        let r = parse_address_ranges("192.168.1.0/24").unwrap();
        assert_eq!(r[0].len(), 254);
        let r = parse_address_ranges("10.0.0.1-10.0.0.3; 127.0.0.1").unwrap();
        assert_eq!(r.iter().map(AddressRange::len).sum::<u64>(), 4);
        assert_eq!(parse_address_ranges("127.0.0.1/32").unwrap()[0].len(), 1);
        for bad in ["1.2.3", "1.2.3.4/33", "1.2.3.9-1.2.3.1", "x"] {
            assert!(parse_address_ranges(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_port_ranges("4840-4842,50000").unwrap(),
            vec![(4840, 4842), (50000, 50000)]
        );
        assert!(parse_port_ranges("0").is_err());
        assert!(parse_port_ranges("5-4").is_err());
        assert!(parse_port_ranges("70000").is_err());
    }

    #[test]
    fn refuses_huge_scans() {
        let r = parse_address_ranges("10.0.0.0/8").unwrap();
        let p = parse_port_ranges("1-65535").unwrap();
        assert!(matches!(targets(&r, &p), Err(ScanError::TooLarge(_))));
    }

    #[test]
    fn hello_is_well_formed() {
        let m = hello_message("opc.tcp://h:1");
        assert_eq!(&m[..4], b"HELF");
        assert_eq!(
            u32::from_le_bytes([m[4], m[5], m[6], m[7]]) as usize,
            m.len()
        );
    }

    #[tokio::test]
    async fn probe_rejects_non_opcua_listeners() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        assert!(!probe(addr, Duration::from_secs(2)).await);
        // A closed port is not a server either.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(!probe(closed, Duration::from_millis(500)).await);
    }
}
