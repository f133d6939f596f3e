//! The trust-store routes must never block a runtime thread: a store is a directory of files,
//! and a slow disk (or a network mount) would otherwise stall every request on that thread.

use std::sync::mpsc;
use std::time::Duration;

use super::*;
use crate::discovery::events::EventSink;
use crate::opcua::client::{build_client, ClientSettings};
use crate::opcua::session_pool::PoolConfig;

fn dispatcher(data_dir: &std::path::Path) -> Dispatcher {
    let pki_dir = data_dir.join("pki");
    let settings = ClientSettings {
        application_name: "dispatcher test".into(),
        application_uri: "urn:test:dispatcher".into(),
        auto_accept: false,
        request_timeout: Duration::from_secs(5),
    };
    let client = build_client(&pki_dir, &settings).expect("client");
    let discovery = Discovery::new(client.clone(), EventSink::log_only(), "test".into());
    Dispatcher::new(
        SessionPool::new(client, PoolConfig::default()),
        Pki::new(&pki_dir),
        discovery,
        ConfigStore::open(None, data_dir).expect("config store"),
        Arc::new(PublisherDiagnostics::default()),
    )
}

/// A FIFO in the trusted store blocks whoever reads it until a writer opens it. If the listing
/// read it on the runtime's only thread, the timer beside it could never fire.
#[test]
fn trust_store_files_are_read_off_the_runtime_threads() {
    let dir = iiot_testkit::temp_dir("dispatcher-pki");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let d = runtime.block_on(async { dispatcher(&dir) });
    let fifo = dir.join("pki/trusted/certs/stalled.der");
    std::fs::create_dir_all(fifo.parent().expect("parent")).expect("certs dir");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success(), "mkfifo failed");

    let (timer_tx, timer_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        runtime.block_on(async move {
            let d = Arc::new(d);
            let listing = tokio::spawn({
                let d = d.clone();
                async move { d.pki_list("trusted").await }
            });
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = timer_tx.send(());
            let _ = done_tx.send(listing.await.map(|r| r.map_err(|e| e.message)));
        })
    });

    let runtime_stayed_free = timer_rx.recv_timeout(Duration::from_secs(10)).is_ok();
    // Unblock the reader either way, so a failing run ends instead of hanging: open the
    // write end (without blocking, retried until the reader is there) and close it at once.
    let listed = loop {
        use std::os::unix::fs::OpenOptionsExt;
        drop(
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo),
        );
        match done_rx.recv_timeout(Duration::from_millis(20)) {
            Ok(listed) => break listed,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(e) => panic!("the runtime thread ended without an answer: {e}"),
        }
    };
    worker.join().expect("runtime thread");
    assert!(
        runtime_stayed_free,
        "the trust store listing blocked the runtime thread"
    );
    // The empty FIFO is no certificate: skipped, and the store lists nothing.
    assert_eq!(
        listed.expect("task").expect("listing"),
        Value::Array(vec![])
    );
}
