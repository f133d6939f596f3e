//! Process-wide allocator tuning, done by the program and never by the library crates: a
//! library that changed it would change it for every program that embeds it.

/// Buffers at least this large are mapped on their own and unmapped when freed.
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Fixes glibc's mmap threshold before the module starts. glibc raises it on its own up to
/// 32 MB after the first large free, so the publisher's transient big buffers (a publish
/// response's values, an encoded batch, CreateMonitoredItems requests) would land in the
/// heap, where a buffer freed between live small allocations keeps its pages. A fixed
/// threshold keeps them out of the heap: each is returned to the OS when dropped. Measured
/// with 100k items at 1 Hz: ≈ 30 MB less resident memory, no change in CPU per value.
pub fn tune_for_module() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a glibc tuning parameter; it takes no pointers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
