//! The benchmarks behind README's performance table, run as `iiot bench …`.
//!
//! The `iiot` binary owns the command line (`src/commands/bench.rs`) and hands each bench a
//! config; this crate never depends on the binary. `browse`, `read`, `twin` and `vault` start
//! what they measure in this process (plc-sim, the module, the twin API, the vault) on free
//! ports, warm up, then measure through the public API exactly as a user's client would.
//! `relay` runs plc-sim and the module as child processes of the `iiot` binary (the caller
//! passes its path), so that their CPU and memory can be read from /proc. `container` builds
//! the image from a given binary and runs it with podman. `hub` runs the twin API with its
//! hub as a child process for the same reason and drives its device endpoint with thousands
//! of TLS connections from here.

pub mod browse;
pub mod container;
mod error;
pub mod gds;
mod harness;
pub mod hub;
mod mqtt_rpc;
pub mod read;
pub mod relay;
mod report;
mod sink;
pub mod twin;
pub mod vault;

pub use error::{BenchError, Result};
