//! Counters of every telemetry pipeline stage, shared by the stages that move values and the
//! two places that report them (`/metrics` and GetDiagnosticInfo), so both always agree.
//!
//! Plain atomics: a stage increments with `Relaxed` ordering on its hot path and readers take
//! a snapshot; no lock is held while values flow.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (queue sizes, items in a state).
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Module-wide figures, one per pipeline stage, in the order values travel.
#[derive(Debug, Default)]
pub struct PipelineMetrics {
    /// Data change notifications received from OPC UA servers (one per value).
    pub notifications_in: Counter,
    /// Values written into data set messages (heartbeats and key frames included).
    pub values_encoded: Counter,
    /// Network messages produced by the encoders.
    pub messages_encoded: Counter,
    /// Network messages accepted into the outbox (durably committed).
    pub outbox_appended: Counter,
    /// Messages currently held by the outbox and the bytes they take on disk.
    pub outbox_messages: Gauge,
    pub outbox_bytes: Gauge,
    /// Messages removed from the outbox by its overflow policy, never delivered.
    pub outbox_dropped_messages: Counter,
    pub outbox_dropped_bytes: Counter,
    /// Messages the outbox refused, never stored nor delivered: full under `reject-new`,
    /// batches larger than it can ever hold, and messages a disk failure (full disk, failed
    /// fsync) kept from being durable.
    pub outbox_rejected_full: Counter,
    pub outbox_rejected_too_large: Counter,
    pub outbox_rejected_disk_error: Counter,
    /// Publishes handed to the broker connection (a resend after reconnect counts again).
    pub messages_sent: Counter,
    /// Publishes the broker acknowledged (QoS 1 PUBACK, or written to the socket for QoS 0).
    pub messages_acked: Counter,
    /// Bytes of acknowledged payloads.
    pub bytes_acked: Counter,
    /// Broker connections established after the first one.
    pub mqtt_reconnects: Counter,
    /// OPC UA session reconnects seen by the publisher.
    pub opcua_reconnects: Counter,
    /// Monitored items the servers accepted, and those that failed (retried with backoff).
    pub monitored_items_good: Gauge,
    pub monitored_items_bad: Gauge,
    /// Notifications recovered with Republish after a gap in a subscription's sequence.
    pub republished: Counter,
    /// Subscriptions revived by the watchdog after they fell silent.
    pub watchdog_revivals: Counter,
}

/// What one data set writer reports: its identity and its own counters.
#[derive(Debug, Default)]
pub struct WriterDiagnostics {
    pub group: String,
    pub writer_id: String,
    pub endpoint_url: String,
    pub publishing_interval_ms: u64,
    pub values_in: Counter,
    pub messages_out: Counter,
    pub items_good: Gauge,
    pub items_bad: Gauge,
    pub reconnects: Counter,
    /// 1 while the writer's session is connected.
    pub connected: Gauge,
    /// The last error worth showing a user (bad node, refused subscription), if any.
    pub last_error: Mutex<Option<String>>,
}

/// Every counter of the publisher: the module-wide stages and one entry per writer.
#[derive(Debug, Default)]
pub struct PublisherDiagnostics {
    pub pipeline: PipelineMetrics,
    /// Keyed by `{group}/{writer id}/{publishing interval ms}`: the writer's identity.
    pub writers: DashMap<String, Arc<WriterDiagnostics>>,
    /// Certificate enrollment with a GDS (`--gds-url`).
    pub enrollment: Arc<crate::enrollment::EnrollmentStatus>,
}

impl PublisherDiagnostics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The writer's entry, created on first use so that counters survive a re-plan.
    pub fn writer(
        &self,
        group: &str,
        writer_id: &str,
        endpoint_url: &str,
        publishing_interval_ms: u64,
    ) -> Arc<WriterDiagnostics> {
        let key = format!("{group}/{writer_id}/{publishing_interval_ms}");
        self.writers
            .entry(key)
            .or_insert_with(|| {
                Arc::new(WriterDiagnostics {
                    group: group.to_string(),
                    writer_id: writer_id.to_string(),
                    endpoint_url: endpoint_url.to_string(),
                    publishing_interval_ms,
                    ..Default::default()
                })
            })
            .clone()
    }

    /// Forgets a writer that is no longer configured.
    pub fn remove_writer(&self, group: &str, writer_id: &str, publishing_interval_ms: u64) {
        self.writers
            .remove(&format!("{group}/{writer_id}/{publishing_interval_ms}"));
    }
}
