//! Simulated PLC OPC UA server, modelled on Microsoft's OPC PLC, used as a data source for
//! the iiot gateway's tests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), iiot_plc_sim::PlcSimError> {
//! use iiot_plc_sim::{PlcSim, PlcSimConfig};
//! let sim = PlcSim::start(PlcSimConfig { port: 0, ..Default::default() }).await?;
//! println!("{}", sim.endpoint_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Node id and browse name conventions are described in [`nodes`].

mod config;
mod error;
mod methods;
mod node_manager;
pub mod nodes;
mod pki;
mod push;
mod server;
mod simulation;

pub use config::{PlcSimConfig, LOG_FILTER_DIRECTIVES, MAX_GENERATED_NODES, MIN_RATE_MS};
pub use error::PlcSimError;
pub use server::{application_uri, PlcSim, APPLICATION_NAME};

/// Namespace of every simulator node; its index is [`PlcSim::namespace_index`].
pub const NAMESPACE_URI: &str = "urn:iiot:plc-sim";
