//! The OPC UA Global Discovery Server contract (Part 12, pull model) as both sides of iiot
//! speak it: the vault serves it (`iiot-vault`'s `gds`), the module and the benchmarks call it.
//!
//! - [`ids`]: the node ids of the OPC Foundation's GDS NodeSet we serve and call.
//! - [`record`]: `ApplicationRecordDataType` in UA Binary (async-opcua generates nothing for the
//!   GDS namespace, whose index is known only at run time).
//! - [`trust_list`]: the content of a TrustList file; [`file`]: open handles on such files.
//! - [`args`]: typed method arguments, for the servers.
//! - [`pki`]: the files of an async-opcua PKI folder an enrolled application changes.
//! - [`session`]: one SignAndEncrypt session with a user name, opened and closed again.
//! - [`client`]: the pull-model calls on an async-opcua session.
//! - [`push_client`]: the push-model calls (ServerConfiguration, TrustList) on an async-opcua
//!   session, to give any server a certificate and trust list.

pub mod args;
pub mod client;
pub mod file;
pub mod ids;
pub mod pki;
pub mod push_client;
pub mod record;
pub mod session;
pub mod trust_list;

/// The GDS information model's namespace.
pub const GDS_NAMESPACE_URI: &str = "http://opcfoundation.org/UA/GDS/";
