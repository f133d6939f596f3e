//! The publisher: configured nodes → subscriptions → messages → broker (issue in progress).
//!
//! This first part turns OPC Publisher configuration (every `publishednodes.json` form) into
//! a normalized plan of writer groups, data set writers and nodes, with every default and
//! precedence rule applied in one place. The subscription engine, encoders, outbox and
//! transport build on the plan.

pub mod encoder;
pub mod plan;
pub mod writer;
