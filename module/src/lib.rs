//! iiot edge module: OPC UA twin operations, discovery and PKI behind OPC Publisher 2.9's API,
//! served over HTTP and MQTT v5 RPC.
//!
//! Layers, outermost first: `transport` (HTTP, MQTT) → `dispatcher` (method name → operation)
//! → `twin` / `discovery` / `pki` (operations) → `opcua` (sessions, node ids, values).
//! `api` is the wire contract shared with the twin API: the `iiot-api` crate, re-exported so
//! that module code and its users name it as one thing.

pub use iiot_api as api;
pub mod discovery;
pub mod dispatcher;
pub mod error;
pub mod module;
pub mod opcua;
pub mod pki;
pub mod publisher;
pub mod transport;
pub mod twin;

pub use error::{ErrorKind, ServiceError};
pub use module::{start, ModuleConfig, ModuleHandle, StartError};
