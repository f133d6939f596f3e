//! Hands freed heap back to the operating system.
//!
//! Subscribing a large node set builds big short-lived structures (the parsed configuration,
//! CreateMonitoredItems requests, the `ua-metadata` message), and glibc keeps what they freed
//! in its arenas for reuse. Without a trim the module's RSS stays at that start-up peak for
//! good, which is what an operator watching memory sees. The trim is cheap (it walks the free
//! lists), so the engine runs it after applying a configuration and then periodically.

use std::time::Duration;

/// How often the engine trims while running.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(2);

/// Returns free heap pages to the OS; a no-op where the allocator has no such call.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and unmaps glibc's own free lists; it takes no pointers
    // from us and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
