//! The wire transports of the module API; both call the same dispatcher.

pub mod http;
pub mod mqtt_rpc;
pub mod problem;
