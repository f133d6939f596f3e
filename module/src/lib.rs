//! iiot edge module: OPC UA twin operations, discovery and PKI behind OPC Publisher 2.9's API,
//! served over HTTP and MQTT v5 RPC.
//!
//! Layers, outermost first: `transport` (HTTP, MQTT) → `dispatcher` (method name → operation)
//! → `twin` / `discovery` / `pki` (operations) → `opcua` (sessions, node ids, values).
//! `api` is the wire contract shared with the twin API: the `iiot-api` crate, re-exported so
//! that module code and its users name it as one thing.
//!
//! With a broker configured, `publisher` also sends telemetry. Its stages, in the order a value
//! passes them, each with one input and one output:
//! 1. subscriptions (`publisher::subscription`): monitored items on the OPC UA server, sequence
//!    gaps and silent subscriptions;
//! 2. writer task (`publisher::writer_task`), one per data set writer: data set messages
//!    (`publisher::writer`), batcher (`writer_task::batcher`), encoder (`publisher::encoder`,
//!    run by `writer_task::output`) and metadata (`writer_task::metadata`);
//! 3. outbox (`publisher::outbox`): on disk until the broker acknowledged;
//! 4. MQTT sink (`publisher::mqtt_sink`): publishes to the broker.

pub use iiot_api as api;
pub mod discovery;
pub mod dispatcher;
pub mod enrollment;
pub mod error;
pub mod module;
pub mod opcua;
pub mod pki;
pub mod publisher;
pub mod transport;
pub mod twin;

pub use error::{ErrorKind, ServiceError};
pub use module::{start, ModuleConfig, ModuleHandle, StartError};
