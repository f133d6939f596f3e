//! The wire transports of the module API; both call the same dispatcher.

pub mod http;
pub mod iothub;
pub mod liveness;
pub mod mqtt_rpc;
pub mod openapi;
pub mod problem;
pub mod workload;
