//! Keeps the running writers equal to the configuration: each configuration change is planned
//! and compared with what runs, so that only what changed is touched. A writer whose identity
//! (connection, group, id, publishing interval) stays gets its new node list in place; its
//! session and untouched monitored items live on without a gap.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::config_store::PackedEntries;
use super::metrics::PublisherDiagnostics;
use super::outbox::Outbox;
use super::plan::{MessagingMode, PlanDefaults, PlanError, Planner, WriterPlan};
use super::writer::HeartbeatBehavior;
use super::writer_task::{self, WriterCommand, WriterContext, WriterSetup};
use crate::api::topics::{TopicTemplates, TopicVars};
use crate::opcua::session_pool::{ConnectionKey, SessionPool};
use crate::twin::connection_key;

/// Settings of the publisher that are not per entry (command line), defaults in one place.
#[derive(Debug, Clone)]
pub struct PublisherSettings {
    pub publisher_id: String,
    pub topics: TopicTemplates,
    /// Largest network message; larger batches are split (`--ms`).
    pub max_message_size: usize,
    /// Messaging mode of entries that do not name one (`--mm`).
    pub messaging_mode: MessagingMode,
    /// Nodes without `QueueSize` get a queue for one publishing interval's samples (`--aq`);
    /// off, they get a queue of one.
    pub auto_queue_size: bool,
    pub heartbeat_behavior: HeartbeatBehavior,
    /// Whether `ua-metadata` messages are sent (`--dm` turns them off).
    pub send_metadata: bool,
}

impl Default for PublisherSettings {
    fn default() -> Self {
        Self {
            publisher_id: "iiot-module".into(),
            topics: TopicTemplates::default(),
            max_message_size: 256 * 1024,
            messaging_mode: MessagingMode::PubSub,
            auto_queue_size: true,
            heartbeat_behavior: HeartbeatBehavior::default(),
            send_metadata: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct WriterKey {
    connection: ConnectionKey,
    group: String,
    id: String,
    interval_ms: u128,
}

struct RunningWriter {
    plan: WriterPlan,
    commands: mpsc::Sender<WriterCommand>,
    task: JoinHandle<()>,
}

/// Starts the engine; it runs until `shutdown` turns true, then flushes every writer.
pub fn start(
    settings: PublisherSettings,
    pool: Arc<SessionPool>,
    outbox: Arc<Outbox>,
    diag: Arc<PublisherDiagnostics>,
    mut entries: watch::Receiver<PackedEntries>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let ctx = WriterContext {
            pool,
            outbox,
            diag,
            message_ids: Arc::new(AtomicU64::new(1)),
        };
        let mut engine = Engine {
            settings,
            ctx,
            writers: HashMap::new(),
            writer_ids: HashMap::new(),
        };
        let first = entries.borrow_and_update().clone();
        engine.apply_packed(&first).await;
        let mut trim = tokio::time::interval(super::memory::TRIM_INTERVAL);
        trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = entries.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let current = entries.borrow_and_update().clone();
                    engine.apply_packed(&current).await;
                    drop(current);
                    // What planning freed goes back now; what subscribing frees, in 5 s.
                    super::memory::release_free_memory();
                    trim.reset_after(Duration::from_secs(5));
                }
                _ = trim.tick() => super::memory::release_free_memory(),
                _ = async { shutdown.wait_for(|v| *v).await.is_ok() } => break,
            }
        }
        engine.stop_all().await;
    })
}

struct Engine {
    settings: PublisherSettings,
    ctx: WriterContext,
    writers: HashMap<WriterKey, RunningWriter>,
    writer_ids: HashMap<(String, String), u16>,
}

impl Engine {
    /// Decodes the configuration for the length of one re-plan; a configuration that does
    /// not decode (a bug) leaves the running writers as they are.
    async fn apply_packed(&mut self, packed: &PackedEntries) {
        // Entries are decoded and planned one at a time: only plans are ever held for all.
        let mut planner = Planner::with_defaults(PlanDefaults {
            messaging_mode: self.settings.messaging_mode,
            auto_queue_size: self.settings.auto_queue_size,
        });
        for (index, entry) in packed.iter().enumerate() {
            match entry {
                Ok(entry) => planner.add(index, &entry),
                Err(e) => {
                    error!(error = %e, "configuration change not applied");
                    return;
                }
            }
        }
        self.apply(planner.finish()).await;
    }

    async fn apply(&mut self, plans: Result<Vec<WriterPlan>, Vec<PlanError>>) {
        let plans = match plans {
            Ok(p) => p,
            Err(errors) => {
                for e in errors {
                    error!(error = %e, "configuration cannot be published; keeping the running one");
                }
                return;
            }
        };
        let mut wanted: HashMap<WriterKey, WriterPlan> = HashMap::new();
        for p in plans {
            match connection_key(&p.connection) {
                Ok(connection) => {
                    let key = WriterKey {
                        connection,
                        group: p.group.clone(),
                        id: p.id.clone(),
                        interval_ms: p.publishing_interval.as_millis(),
                    };
                    wanted.insert(key, p);
                }
                Err(e) => warn!(writer = %p.id, error = %e, "writer skipped: bad connection"),
            }
        }
        let gone: Vec<WriterKey> = self
            .writers
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(w) = self.writers.remove(&key) {
                info!(writer = %key.id, group = %key.group, "writer removed");
                stop_writer(w).await;
            }
        }
        let (mut added, mut updated) = (0, 0);
        for (key, p) in wanted {
            match self.writers.get_mut(&key) {
                Some(running) if running.plan == p => {}
                Some(running) => {
                    running.plan = p.clone();
                    if running
                        .commands
                        .send(WriterCommand::Update(Box::new(p)))
                        .await
                        .is_err()
                    {
                        warn!(writer = %key.id, "writer task ended; restarting it");
                        let plan = running.plan.clone();
                        self.writers.remove(&key);
                        self.spawn(key, plan);
                    }
                    updated += 1;
                }
                None => {
                    self.spawn(key, p);
                    added += 1;
                }
            }
        }
        info!(
            writers = self.writers.len(),
            added, updated, "publisher configuration applied"
        );
    }

    fn spawn(&mut self, key: WriterKey, plan: WriterPlan) {
        let next = self.writer_ids.len() as u16 + 1;
        let writer_id = *self
            .writer_ids
            .entry((plan.group.clone(), plan.id.clone()))
            .or_insert(next);
        let (telemetry_topic, metadata_topic) = self.settings.topics.writer_topics(&TopicVars {
            publisher_id: &self.settings.publisher_id,
            writer_group: &plan.group,
            data_set_writer: &plan.id,
            encoding: "Json",
        });
        let setup = WriterSetup {
            key: key.connection.clone(),
            writer_id,
            publisher_id: self.settings.publisher_id.clone(),
            telemetry_topic,
            metadata_topic,
            max_message_size: self.settings.max_message_size,
            heartbeat_behavior: self.settings.heartbeat_behavior,
            send_metadata: self.settings.send_metadata,
        };
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::spawn(writer_task::run(plan.clone(), setup, self.ctx.clone(), rx));
        self.writers.insert(
            key,
            RunningWriter {
                plan,
                commands: tx,
                task,
            },
        );
    }

    async fn stop_all(&mut self) {
        let writers: Vec<_> = self.writers.drain().map(|(_, w)| w).collect();
        futures::future::join_all(writers.into_iter().map(stop_writer)).await;
        info!("publisher stopped");
    }
}

/// Asks a writer to flush and delete its subscriptions; a writer that does not finish in time
/// is aborted (its batched values are lost only then, and that is logged).
async fn stop_writer(w: RunningWriter) {
    let (tx, rx) = oneshot::channel();
    if w.commands.send(WriterCommand::Stop(tx)).await.is_ok()
        && tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .is_ok()
    {
        let _ = w.task.await;
        return;
    }
    warn!("writer did not stop within 10 s; aborting it");
    w.task.abort();
}
