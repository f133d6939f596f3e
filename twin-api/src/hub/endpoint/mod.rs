//! The device endpoint: IoT Hub's MQTT dialect (3.1.1 and 5) over TLS, so Microsoft's device
//! SDKs and the IoT Edge runtime connect unmodified.
//!
//! `codec` frames packets with rumqttc's `mqttbytes` (a kept codec already in our tree; no
//! broker framework is needed because the hub routes nothing between clients: every topic
//! is the hub's own), `topics` holds the dialect's rules, `session` one connection, `live`
//! the connected identities and waiting method calls, `certs` the TLS identity and `x509`
//! the certificate rules of CONNECT.

pub mod certs;
pub mod codec;
pub mod live;
pub mod session;
/// The MQTT dialect's rules; in the contract crate, shared with the module.
pub use iiot_api::iothub::topics;
pub mod x509;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::error::HubError;
use super::Hub;

/// Time a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how the device endpoint listens.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub bind: SocketAddr,
    /// Server certificate chain and key; `None`: issued by the hub's own CA.
    pub server: Option<certs::ServerFiles>,
    /// PEM file of the CAs (and their CRLs) that `certificateAuthority` devices chain to.
    pub trust: Option<PathBuf>,
    /// Most connections at once; more are closed at once.
    pub max_connections: usize,
}

/// The running endpoint.
pub struct Endpoint {
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
}

/// Starts listening; the server certificate names the hub's host name and the bind address.
pub async fn start(
    hub: Arc<Hub>,
    config: &EndpointConfig,
    data_dir: &std::path::Path,
    shutdown: watch::Receiver<bool>,
) -> Result<Endpoint, HubError> {
    let mut names = vec![hub.hostname.clone()];
    // Bound to every interface, local clients still dial an address: the loopback one.
    let ip = match config.bind.ip() {
        std::net::IpAddr::V4(a) if a.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(a) if a.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        other => other,
    };
    if ip.to_string() != hub.hostname {
        names.push(ip.to_string());
    }
    let (chain, key) =
        certs::server_identity(config.server.as_ref(), data_dir, hub.store.kek(), &names)?;
    let acceptor = TlsAcceptor::from(certs::server_config(chain, key)?);
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|e| HubError::Setup(format!("device endpoint on {}: {e}", config.bind)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| HubError::Setup(format!("device endpoint on {}: {e}", config.bind)))?;
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let mut stop = shutdown.clone();
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.wait_for(|s| *s) => return,
            };
            let (tcp, peer) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "hub: accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "hub: connection limit reached; closing");
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, hub, shutdown) = (acceptor.clone(), hub.clone(), shutdown.clone());
            tokio::spawn(async move {
                let _slot = slot;
                let tls =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, Box::pin(acceptor.accept(tcp)))
                        .await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "hub: TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                let certificates = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| c.iter().map(|d| d.to_vec()).collect())
                    .unwrap_or_default();
                let peer = session::Peer {
                    addr: Some(peer),
                    certificates,
                };
                session::serve(tls, peer, hub, shutdown).await;
            });
        }
    });
    tracing::info!(%addr, hub = %names.join(", "), "hub device endpoint listening (MQTT over TLS)");
    Ok(Endpoint { addr, task })
}
