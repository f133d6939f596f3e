//! Everything that speaks OPC UA to servers: sessions, node ids, value encoding.

pub mod client;
pub mod json_value;
pub mod node_id;
pub mod notification_backlog;
pub mod session_pool;
