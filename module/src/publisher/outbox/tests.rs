use std::fs::{self, OpenOptions};
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::*;

pub(super) fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "iiot-outbox-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&d);
    d
}

pub(super) fn config(dir: &Path) -> OutboxConfig {
    OutboxConfig {
        dir: dir.to_path_buf(),
        commit_interval: Duration::from_millis(1),
        ..Default::default()
    }
}

pub(super) fn msg(i: usize) -> Message {
    Message {
        topic: format!("root/messages/g{}", i % 3),
        payload: Bytes::from(format!("payload-{i}-{}", "x".repeat(i % 50))),
        retain: i % 7 == 3,
    }
}

pub(super) async fn open(c: OutboxConfig) -> (Arc<Outbox>, Arc<PublisherDiagnostics>) {
    let diag = PublisherDiagnostics::new();
    (Outbox::open(c, diag.clone()).await.unwrap(), diag)
}

pub(super) async fn append_range(o: &Outbox, r: std::ops::Range<usize>) {
    o.append(r.map(msg).collect()).await.unwrap();
}

/// Reads everything committed now, without waiting.
pub(super) async fn drain(c: &mut Consumer) -> Vec<Delivery> {
    let mut out = Vec::new();
    while tokio::time::timeout(Duration::from_millis(50), c.ready())
        .await
        .is_ok()
    {
        out.extend(c.next_batch(1000, usize::MAX).await.unwrap());
    }
    out
}

pub(super) fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn appends_are_consumed_in_order_and_acks_empty_the_outbox() {
    let dir = temp_dir("order");
    let (o, diag) = open(config(&dir)).await;
    append_range(&o, 0..10).await;
    append_range(&o, 10..25).await;
    assert_eq!(diag.pipeline.outbox_appended.get(), 25);
    assert_eq!(diag.pipeline.outbox_messages.get(), 25);
    let mut c = o.consumer().unwrap();
    assert!(matches!(o.consumer(), Err(OutboxError::ConsumerBusy)));
    let got = drain(&mut c).await;
    let msgs: Vec<_> = got.iter().map(|d| d.message.clone()).collect();
    assert_eq!(msgs, (0..25).map(msg).collect::<Vec<_>>());
    let ids: Vec<_> = got.iter().map(|d| d.id).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
    for d in &got {
        o.ack(d.id);
    }
    assert_eq!(o.len(), (0, 0));
    assert_eq!(diag.pipeline.outbox_messages.get(), 0);
    assert_eq!(diag.pipeline.outbox_bytes.get(), 0);
    drop(c);
    drop(o);
    let _ = fs::remove_dir_all(dir);
}

#[tokio::test]
async fn reopen_keeps_unacknowledged_messages_and_forgets_acknowledged_ones() {
    let dir = temp_dir("reopen");
    {
        let (o, _) = open(config(&dir)).await;
        append_range(&o, 0..20).await;
        let mut c = o.consumer().unwrap();
        let got = drain(&mut c).await;
        for d in &got[..8] {
            o.ack(d.id);
        }
    }
    let (o, diag) = open(config(&dir)).await;
    assert_eq!(diag.pipeline.outbox_messages.get(), 12);
    let mut c = o.consumer().unwrap();
    let got: Vec<_> = drain(&mut c).await.into_iter().map(|d| d.message).collect();
    assert_eq!(got, (8..20).map(msg).collect::<Vec<_>>());
    append_range(&o, 20..22).await;
    let more: Vec<_> = drain(&mut c).await.into_iter().map(|d| d.message).collect();
    assert_eq!(more, (20..22).map(msg).collect::<Vec<_>>());
    drop(c);
    drop(o);
    let _ = fs::remove_dir_all(dir);
}

#[tokio::test]
async fn acks_out_of_order_advance_the_head_over_contiguous_ids_only() {
    let dir = temp_dir("ooo");
    {
        let (o, _) = open(config(&dir)).await;
        append_range(&o, 0..6).await;
        let mut c = o.consumer().unwrap();
        let ids: Vec<_> = drain(&mut c).await.iter().map(|d| d.id).collect();
        o.ack(ids[2]);
        o.ack(ids[1]);
        o.ack(ids[4]);
        assert_eq!(o.len().0, 3);
        // Rewind skips the acknowledged ones.
        c.rewind();
        let again: Vec<_> = drain(&mut c).await.iter().map(|d| d.id).collect();
        assert_eq!(again, vec![ids[0], ids[3], ids[5]]);
        o.ack(ids[0]);
        assert_eq!(o.len().0, 2);
    }
    let (o, _) = open(config(&dir)).await;
    let mut c = o.consumer().unwrap();
    let got: Vec<_> = drain(&mut c).await.into_iter().map(|d| d.message).collect();
    // Acks above the head are not persisted: 4 is sent again (at-least-once), 1..3 are not.
    assert_eq!(got, vec![msg(3), msg(4), msg(5)]);
    drop(c);
    drop(o);
    let _ = fs::remove_dir_all(dir);
}

async fn torn(cut: impl FnOnce(&Path)) {
    let dir = temp_dir("torn");
    {
        let (o, _) = open(config(&dir)).await;
        append_range(&o, 0..10).await;
    }
    let segs = segment_files(&dir);
    assert_eq!(segs.len(), 1);
    cut(&segs[0]);
    let (o, _) = open(config(&dir)).await;
    let mut c = o.consumer().unwrap();
    let got: Vec<_> = drain(&mut c).await.into_iter().map(|d| d.message).collect();
    assert_eq!(
        got,
        (0..9).map(msg).collect::<Vec<_>>(),
        "good records kept"
    );
    // Appending after the truncation works, and is read back.
    append_range(&o, 100..102).await;
    let more: Vec<_> = drain(&mut c).await.into_iter().map(|d| d.message).collect();
    assert_eq!(more, (100..102).map(msg).collect::<Vec<_>>());
    drop(c);
    drop(o);
    let (o, _) = open(config(&dir)).await;
    assert_eq!(o.len().0, 11);
    drop(o);
    let _ = fs::remove_dir_all(dir);
}

#[tokio::test]
async fn cut_last_record_is_truncated() {
    torn(|p| {
        let len = fs::metadata(p).unwrap().len();
        let f = OpenOptions::new().write(true).open(p).unwrap();
        f.set_len(len - 5).unwrap();
    })
    .await;
}

#[tokio::test]
async fn corrupt_last_record_is_truncated() {
    torn(|p| {
        let mut b = fs::read(p).unwrap();
        let n = b.len();
        b[n - 3] ^= 0xff;
        fs::write(p, b).unwrap();
    })
    .await;
}

#[tokio::test]
async fn garbage_after_the_last_record_is_truncated() {
    let dir = temp_dir("garbage");
    {
        let (o, _) = open(config(&dir)).await;
        append_range(&o, 0..5).await;
    }
    let seg = &segment_files(&dir)[0];
    let good = fs::metadata(seg).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(seg).unwrap();
    f.write_all(&[0xab; 37]).unwrap();
    drop(f);
    let (o, _) = open(config(&dir)).await;
    assert_eq!(fs::metadata(seg).unwrap().len(), good);
    let mut c = o.consumer().unwrap();
    let got: Vec<_> = drain(&mut c).await.into_iter().map(|d| d.message).collect();
    assert_eq!(got, (0..5).map(msg).collect::<Vec<_>>());
    drop(c);
    drop(o);
    let _ = fs::remove_dir_all(dir);
}

#[tokio::test]
async fn drop_oldest_removes_unsent_messages_and_counts_them() {
    let dir = temp_dir("dropoldest");
    let one = 16 + 3 + msg(0).topic.len() as u64 + 1000;
    let big = |i: usize| Message {
        topic: msg(0).topic,
        payload: Bytes::from(vec![i as u8; 1000]),
        retain: false,
    };
    let (o, diag) = open(OutboxConfig {
        max_bytes: one * 10,
        ..config(&dir)
    })
    .await;
    for i in 0..15 {
        o.append(vec![big(i)]).await.unwrap();
    }
    let p = &diag.pipeline;
    assert_eq!(p.outbox_dropped_messages.get(), 5);
    assert_eq!(p.outbox_dropped_bytes.get(), 5 * one);
    assert_eq!(p.outbox_messages.get(), 10);
    assert_eq!(p.outbox_bytes.get() as u64, 10 * one);
    let mut c = o.consumer().unwrap();
    let got: Vec<_> = drain(&mut c).await.into_iter().map(|d| d.message).collect();
    assert_eq!(
        got,
        (5..15).map(big).collect::<Vec<_>>(),
        "the newest ten remain"
    );
    drop(c);
    drop(o);
    let _ = fs::remove_dir_all(dir);
}

#[tokio::test]
async fn reject_new_refuses_with_a_typed_error() {
    let dir = temp_dir("reject");
    let (o, diag) = open(OutboxConfig {
        max_bytes: 150,
        overflow: OverflowPolicy::RejectNew,
        ..config(&dir)
    })
    .await;
    append_range(&o, 0..2).await;
    let err = o.append((2..4).map(msg).collect()).await.unwrap_err();
    assert!(matches!(err, OutboxError::Full { .. }), "{err}");
    assert_eq!(o.len().0, 2);
    assert_eq!(diag.pipeline.outbox_dropped_messages.get(), 0);
    assert!(matches!(
        o.append(vec![Message {
            topic: "t".into(),
            payload: Bytes::from(vec![0; 500]),
            retain: false
        }])
        .await,
        Err(OutboxError::TooLarge { .. })
    ));
    assert_eq!(
        "reject-new".parse::<OverflowPolicy>(),
        Ok(OverflowPolicy::RejectNew)
    );
    assert_eq!(
        "drop-oldest".parse::<OverflowPolicy>(),
        Ok(OverflowPolicy::DropOldest)
    );
    assert!("drop".parse::<OverflowPolicy>().is_err());
    drop(o);
    let _ = fs::remove_dir_all(dir);
}

/// Every refused message is counted per reason and shown in `/metrics`, not only logged.
#[tokio::test]
async fn refused_messages_are_counted_per_reason_in_the_metrics() {
    let dir = temp_dir("refusals");
    let (o, diag) = open(OutboxConfig {
        max_bytes: 150,
        overflow: OverflowPolicy::RejectNew,
        ..config(&dir)
    })
    .await;
    append_range(&o, 0..2).await;
    for _ in 0..3 {
        let err = o.append((2..4).map(msg).collect()).await.unwrap_err();
        assert!(matches!(err, OutboxError::Full { .. }), "{err}");
    }
    let huge = Message {
        topic: "t".into(),
        payload: Bytes::from(vec![0; 500]),
        retain: false,
    };
    let err = o.append(vec![huge]).await.unwrap_err();
    assert!(matches!(err, OutboxError::TooLarge { .. }), "{err}");
    assert_eq!(o.len().0, 2, "nothing refused was stored");
    assert_eq!(diag.pipeline.outbox_rejected_full.get(), 6);
    assert_eq!(diag.pipeline.outbox_rejected_too_large.get(), 1);
    assert_eq!(diag.pipeline.outbox_dropped_messages.get(), 0);
    let text = crate::publisher::config_store::render_prometheus(
        &diag,
        &crate::publisher::config_store::PackedEntries::default(),
    );
    assert!(
        text.contains("# TYPE iiot_publisher_outbox_rejected_messages_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("\niiot_publisher_outbox_rejected_messages_total{reason=\"full\"} 6\n"),
        "{text}"
    );
    assert!(
        text.contains("\niiot_publisher_outbox_rejected_messages_total{reason=\"too_large\"} 1\n"),
        "{text}"
    );
    drop(o);
    let _ = fs::remove_dir_all(dir);
}

#[tokio::test]
async fn acknowledged_segments_are_deleted() {
    let dir = temp_dir("segments");
    let (o, _) = open(OutboxConfig {
        segment_bytes: 500,
        ..config(&dir)
    })
    .await;
    for i in 0..40 {
        append_range(&o, i..i + 1).await;
    }
    let before = segment_files(&dir).len();
    assert!(before >= 4, "{before} segments");
    let mut c = o.consumer().unwrap();
    let got = drain(&mut c).await;
    assert_eq!(
        got.iter().map(|d| d.message.clone()).collect::<Vec<_>>(),
        (0..40).map(msg).collect::<Vec<_>>(),
        "read across segment boundaries"
    );
    for d in &got[..30] {
        o.ack(d.id);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = segment_files(&dir).len();
    assert!(after < before && after >= 1, "{before} → {after}");
    // A rewind starts inside the first remaining segment at the right record.
    c.rewind();
    let rest: Vec<_> = drain(&mut c).await.into_iter().map(|d| d.message).collect();
    assert_eq!(rest, (30..40).map(msg).collect::<Vec<_>>());
    for d in &got[30..] {
        o.ack(d.id);
    }
    drop(c);
    drop(o);
    assert_eq!(
        segment_files(&dir).len(),
        1,
        "only the active segment is left"
    );
    let (o, _) = open(config(&dir)).await;
    assert!(o.is_empty());
    drop(o);
    let _ = fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_are_all_committed() {
    let dir = temp_dir("concurrent");
    let (o, diag) = open(config(&dir)).await;
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let o = o.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    o.append(vec![msg(t * 100 + i)]).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(diag.pipeline.outbox_appended.get(), 640);
    let mut c = o.consumer().unwrap();
    let got = drain(&mut c).await;
    assert_eq!(got.len(), 640);
    drop(c);
    drop(o);
    let _ = fs::remove_dir_all(dir);
}

/// `cargo test -p iiot-module --release --lib outbox_throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn outbox_throughput() {
    let dir = temp_dir("throughput");
    let (o, _) = open(config(&dir)).await;
    let n = 40_000usize;
    let size = 5_000usize;
    let payload = Bytes::from(vec![b'v'; size]);
    let producer = {
        let o = o.clone();
        let payload = payload.clone();
        tokio::spawn(async move {
            // Appenders as the writers would: 4 concurrent, 10 messages each call.
            let mut js = Vec::new();
            for w in 0..4 {
                let o = o.clone();
                let payload = payload.clone();
                js.push(tokio::spawn(async move {
                    for _ in 0..(n / 40) {
                        let batch = (0..10)
                            .map(|_| Message {
                                topic: format!("root/messages/w{w}"),
                                payload: payload.clone(),
                                retain: false,
                            })
                            .collect();
                        o.append(batch).await.unwrap();
                    }
                }));
            }
            for j in js {
                j.await.unwrap();
            }
        })
    };
    let start = Instant::now();
    let cpu0 = cpu_time();
    let mut c = o.consumer().unwrap();
    let mut seen = 0;
    while seen < n {
        let b = c.next_batch(1000, usize::MAX).await.unwrap();
        for d in &b {
            o.ack(d.id);
        }
        seen += b.len();
    }
    producer.await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_time() - cpu0;
    println!(
        "outbox append+drain: {n} × {size} B in {secs:.2} s = {:.0} msg/s, {:.1} MB/s, {:.1} µs CPU per message",
        n as f64 / secs,
        (n * size) as f64 / secs / 1e6,
        cpu * 1e6 / n as f64
    );
    drop(c);
    drop(o);
    let _ = fs::remove_dir_all(dir);
}

/// Process CPU seconds (user + system), from /proc.
fn cpu_time() -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::test]
async fn enqueued_batches_keep_their_order_and_each_commit_resolves() {
    let dir = temp_dir("enqueue");
    let (o, diag) = open(config(&dir)).await;
    // Three batches queued back to back, none awaited yet: the writer's pipelined path.
    let commits: Vec<Commit> = [0..5, 5..12, 12..20]
        .into_iter()
        .map(|r| o.enqueue(r.map(msg).collect()).unwrap())
        .collect();
    let empty = o.enqueue(Vec::new()).unwrap();
    assert!(empty.is_done(), "nothing to write is durable at once");
    for c in commits {
        c.durable().await.unwrap();
    }
    assert_eq!(diag.pipeline.outbox_appended.get(), 20);
    let mut c = o.consumer().unwrap();
    let got: Vec<_> = drain(&mut c).await.into_iter().map(|d| d.message).collect();
    assert_eq!(got, (0..20).map(msg).collect::<Vec<_>>());
}
