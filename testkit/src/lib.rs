//! What the workspace's tests share, so each harness stops carrying its own copy: temporary
//! directories, free ports, child processes killed on drop, a private Mosquitto, and an OIDC
//! identity provider signed by the `openssl` command line. A dev-dependency only; it panics
//! instead of returning errors because a test that cannot set up has nothing to recover.

mod dirs;
mod mosquitto;
mod openssl_idp;
mod ports;
mod process;

pub use dirs::temp_dir;
pub use mosquitto::Mosquitto;
pub use openssl_idp::OpensslIdp;
pub use ports::{free_port, wait_for_port, wait_for_port_of};
pub use process::{signal, KillOnDrop};
