//! One file per `iiot` command, each owning its arguments and its `run`. Commands import only
//! the shared modules (`args`, `shutdown`, `broker`, `allocator`, `secrets`), never each other or `cli`.

pub mod bench;
pub mod health;
pub mod module;
pub mod plc_sim;
pub mod twin_api;
pub mod up;
pub mod vault;
