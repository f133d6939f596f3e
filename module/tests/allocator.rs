//! The module is a library: starting it must leave the process allocator's tuning to the
//! program that embeds it (`iiot module` sets glibc's mmap threshold itself).
//!
//! glibc raises its mmap threshold to the size of a freed mmapped block unless a program
//! fixed it with `mallopt(M_MMAP_THRESHOLD)`, so whether a block is mmapped after a larger one
//! was freed tells whether anyone fixed it. Its own test binary: the threshold is process-wide.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[tokio::test]
async fn starting_the_module_leaves_the_allocator_alone() {
    use std::hint::black_box;

    let dir = std::env::temp_dir().join(format!("iiot-module-allocator-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let handle = iiot_module::start(iiot_module::ModuleConfig {
        http_bind: ([127, 0, 0, 1], 0).into(),
        api_key: "allocator-test-key".into(),
        data_dir: dir.clone(),
        ..Default::default()
    })
    .await
    .expect("module starts");
    handle.shutdown().await;

    // A freed 4 MiB mmapped block lifts a dynamic threshold to 4 MiB ...
    drop(black_box(vec![1u8; 4 << 20]));
    // ... so a 1 MiB block then comes from the heap; under a fixed 128 KiB one it is mmapped.
    // SAFETY: mallinfo2 only reads glibc's statistics.
    let before = unsafe { libc::mallinfo2() }.hblkhd;
    let block = black_box(vec![1u8; 1 << 20]);
    let after = unsafe { libc::mallinfo2() }.hblkhd;
    drop(block);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        after < before + (1 << 20),
        "a 1 MiB block was mmapped after a 4 MiB one was freed: something fixed glibc's \
         mmap threshold (mmapped bytes {before} → {after})"
    );
}
