//! Error type returned when the simulator cannot be configured or started.

use std::path::PathBuf;

/// Everything that can stop [`crate::PlcSim::start`] from producing a listening server.
///
/// Runtime problems after start (a failing value update, a client misbehaving) are logged
/// instead, because a test source must keep serving the other clients.
#[derive(Debug, thiserror::Error)]
pub enum PlcSimError {
    /// The configuration is inconsistent (zero update rate, tree too large, bad user...).
    #[error("invalid plc-sim configuration: {0}")]
    Config(String),
    /// The listening socket could not be bound, typically because the port is taken.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// `host:port` that was requested.
        addr: String,
        /// Underlying socket error.
        #[source]
        source: std::io::Error,
    },
    /// The server's own certificate or key could not be created or loaded; without them the
    /// secure endpoints would be advertised but unusable, so start refuses.
    #[error("PKI error in {path}: {message}")]
    Pki {
        /// File or directory involved.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// async-opcua rejected the server configuration.
    #[error("cannot build the OPC UA server: {0}")]
    Server(String),
    /// The server task ended (or took too long) before it started accepting connections.
    #[error("OPC UA server did not start: {0}")]
    Startup(String),
}
