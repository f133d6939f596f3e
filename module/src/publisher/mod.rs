//! The publisher: configured nodes → subscriptions → data set writers → encoders → outbox →
//! broker, each stage a component with one input and one output.
//!
//! Configuration: `plan` normalizes OPC Publisher configuration (every `publishednodes.json`
//! form) into writer plans; `config_store` keeps, persists and watches that configuration;
//! `engine` diffs plans against the running writers and starts, updates or stops one
//! `writer_task` per writer.
//!
//! Telemetry, in the order a value passes the stages:
//! 1. `subscription`: the writer's OPC UA subscriptions and monitored items; it also tells
//!    sequence gaps (to republish) and silent subscriptions (for the watchdog);
//! 2. `writer_task`: one task per writer, whose stages are
//!    `writer_task::notifications` (values → `writer::WriterState` → data set messages),
//!    `writer_task::batcher` (by `BatchSize` / `BatchTriggerInterval`), `writer_task::output`
//!    (encoding with `encoder`, queueing to the outbox) and `writer_task::metadata`
//!    (`ua-metadata`);
//! 3. `outbox`: holds the encoded messages on disk until the broker acknowledged them;
//! 4. `mqtt_sink`: publishes them to the broker and acknowledges them out of the outbox.
//!
//! `metrics` counts every stage; `memory` returns what big configurations freed to the OS (the
//! `iiot` binary, not this library, keeps big transient buffers out of the heap).

pub mod config_store;
pub mod encoder;
pub mod engine;
mod memory;
pub mod metrics;
pub mod mqtt_sink;
pub mod outbox;
pub mod plan;
pub mod subscription;
pub mod writer;
pub mod writer_task;
