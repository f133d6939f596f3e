//! The publisher: configured nodes → subscriptions → data set writers → encoders → outbox →
//! broker, each stage a component with one input and one output.
//!
//! `plan` normalizes OPC Publisher configuration (every `publishednodes.json` form) into writer
//! plans; `config_store` keeps, persists and watches that configuration; `engine` turns plans
//! into OPC UA subscriptions and runs one task per writer; `writer` and `encoder` make the
//! messages; `outbox` holds them on disk until `transport` has them acknowledged; `metrics`
//! counts every stage; `memory` returns what big configurations freed to the OS (the `iiot`
//! binary, not this library, keeps big transient buffers out of the heap).

pub mod config_store;
pub mod encoder;
pub mod engine;
mod memory;
pub mod metrics;
pub mod outbox;
pub mod plan;
pub mod subscription;

pub mod transport;
pub mod writer;
pub mod writer_task;
