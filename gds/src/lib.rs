//! The OPC UA Global Discovery Server contract (Part 12, pull model) as both sides of iiot
//! speak it: the vault serves it (`iiot-vault`'s `gds`), the module and the benchmarks call it.
//!
//! - [`ids`]: the node ids of the OPC Foundation's GDS NodeSet we serve and call.
//! - [`record`]: `ApplicationRecordDataType` in UA Binary (async-opcua generates nothing for the
//!   GDS namespace, whose index is known only at run time).
//! - [`trust_list`]: the content of a TrustList file.
//! - [`client`]: the pull-model calls on an async-opcua session.

pub mod client;
pub mod ids;
pub mod record;
pub mod trust_list;

/// The GDS information model's namespace.
pub const GDS_NAMESPACE_URI: &str = "http://opcfoundation.org/UA/GDS/";
