//! One task per data set writer: it owns the writer's subscriptions, turns notifications into
//! data set messages, batches them, encodes them and appends them to the outbox.
//!
//! Keeping a writer's whole path in one task keeps its order (sequence numbers and values
//! leave in the order the server produced them) without locks; writers run in parallel.
//! Appending waits for the outbox's commit, which is the back-pressure of the pipeline.
//!
//! The task's stages, in the order a value passes them:
//! - `notifications`: a publish response → gap check and Republish (the subscription set
//!   decides, `subscription::Heard`) → field values → `WriterState` → a `DataSetMessage`;
//! - `batcher`: pure; holds messages until `BatchSize` values or `BatchTriggerInterval`;
//! - `output`: encodes a due batch (`encoder::encode_split`) and queues it to the outbox,
//!   bounding the commits still on their way to disk;
//! - `metadata`: field types read from the server, the retained `ua-metadata` message.
//!
//! Beside them: `fields` (which client handle feeds which field; node list changes),
//! `session` (connect, reconnects, the watchdog, stop) and, here, the select loop that
//! drives them all.

mod batcher;
mod fields;
mod metadata;
mod notifications;
mod output;
mod session;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opcua::types::DateTime;
use tokio::sync::{mpsc, oneshot};

use super::metrics::{PublisherDiagnostics, WriterDiagnostics};
use super::outbox::Outbox;
use super::plan::WriterPlan;
use super::subscription::{SubscriptionSet, SubscriptionSettings};
use super::writer::{HeartbeatBehavior, WriterState};
use crate::opcua::session_pool::{ConnectionKey, SessionPool};
use batcher::Batcher;
use fields::FieldIndex;
use metadata::Metadata;
use output::PendingCommits;
use session::SessionLink;

/// What a writer needs to know besides its plan.
#[derive(Debug, Clone)]
pub struct WriterSetup {
    pub key: ConnectionKey,
    pub writer_id: u16,
    pub publisher_id: String,
    pub telemetry_topic: String,
    pub metadata_topic: String,
    pub max_message_size: usize,
    pub heartbeat_behavior: HeartbeatBehavior,
    pub send_metadata: bool,
}

/// Shared by all writers.
#[derive(Clone)]
pub struct WriterContext {
    pub pool: Arc<SessionPool>,
    pub outbox: Arc<Outbox>,
    pub diag: Arc<PublisherDiagnostics>,
    pub message_ids: Arc<AtomicU64>,
}

pub enum WriterCommand {
    /// The writer's nodes or settings changed; its identity did not.
    Update(Box<WriterPlan>),
    /// Flush what is batched, delete the subscriptions, end.
    Stop(oneshot::Sender<()>),
}

struct Writer {
    /// The writer's settings; its nodes live in `state`.
    plan: WriterPlan,
    setup: WriterSetup,
    ctx: WriterContext,
    wdiag: Arc<WriterDiagnostics>,
    state: WriterState,
    subs: SubscriptionSet,
    fields: FieldIndex,
    link: SessionLink,
    batcher: Batcher,
    metadata: Metadata,
    commits: PendingCommits,
}

pub async fn run(
    plan: WriterPlan,
    setup: WriterSetup,
    ctx: WriterContext,
    mut commands: mpsc::Receiver<WriterCommand>,
) {
    let (tx, mut events) = mpsc::unbounded_channel();
    let wdiag = ctx.diag.writer(
        &plan.group,
        &plan.id,
        &plan.connection.endpoint.url,
        plan.publishing_interval.as_millis() as u64,
    );
    let subs = SubscriptionSet::new(
        SubscriptionSettings::for_interval(plan.publishing_interval),
        tx,
        ctx.diag.clone(),
        wdiag.clone(),
    );
    let now = Instant::now();
    let state =
        WriterState::new(setup.writer_id, &plan, now).with_behavior(setup.heartbeat_behavior);
    let mut w = Writer {
        plan: without_nodes(&plan),
        setup,
        ctx,
        wdiag,
        state,
        subs,
        fields: FieldIndex::default(),
        link: SessionLink::new(now),
        batcher: Batcher::new(plan.batch_size, plan.batch_trigger_interval),
        metadata: Metadata::default(),
        commits: PendingCommits::default(),
    };
    w.set_nodes(&plan, now);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if w.link.needs_connect(Instant::now()) {
            w.connect().await;
        }
        let deadline = w.next_deadline();
        // Ok(true): the session reconnected; Ok(false): its sender is gone.
        let mut reconnect_seen = None;
        let mut pending_update = None;
        let mut reconnects = w.link.reconnects.take();
        {
            let reconnected = async {
                match reconnects.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    Some(WriterCommand::Update(plan)) => {
                        // Handled after the select, once `reconnects` is back in place.
                        pending_update = Some(*plan);
                    }
                    Some(WriterCommand::Stop(done)) => {
                        w.stop().await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        w.stop().await;
                        return;
                    }
                },
                ok = reconnected => reconnect_seen = Some(ok),
                Some(event) = events.recv() => {
                    w.on_event(event).await;
                    // Drain what else arrived, so a busy writer batches instead of looping.
                    let mut n = 0;
                    while let Ok(event) = events.try_recv() {
                        w.on_event(event).await;
                        n += 1;
                        if n >= 256 {
                            break;
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {}
                _ = tick.tick() => w.watchdog().await,
            }
        }
        if w.link.reconnects.is_none() {
            w.link.reconnects = reconnects;
        }
        if let Some(plan) = pending_update {
            w.update(plan).await;
        }
        match reconnect_seen {
            Some(true) => w.after_reconnect().await,
            Some(false) => w.link.reconnects = None,
            None => {}
        }
        w.on_time().await;
    }
}

impl Writer {
    /// The earliest of: the batch due by time, a heartbeat, a bad item's retry, the next
    /// connect attempt.
    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let batch = self.batcher.due_at().unwrap_or(far);
        let beat = self.state.next_heartbeat().unwrap_or(far);
        let retry = self.subs.next_retry().unwrap_or(far);
        let connect = self.link.connect_at().unwrap_or(far);
        batch.min(beat).min(retry).min(connect)
    }

    /// Does what is due by time: settles durable commits, sends heartbeats, flushes a batch
    /// due by time, retries refused items.
    async fn on_time(&mut self) {
        self.settle(usize::MAX).await;
        let now = Instant::now();
        if self.state.next_heartbeat().is_some_and(|t| t <= now) {
            if let Some(m) = self.state.on_tick(DateTime::now(), now) {
                self.push(m).await;
            }
        }
        if self.batcher.is_due(now) {
            self.flush().await;
        }
        if self.subs.next_retry().is_some_and(|t| t <= now) {
            self.retry_refused_items().await;
        }
    }
}

/// The writer task keeps the plan for its settings; the nodes live in `WriterState`.
fn without_nodes(plan: &WriterPlan) -> WriterPlan {
    WriterPlan {
        group: plan.group.clone(),
        id: plan.id.clone(),
        connection: plan.connection.clone(),
        publishing_interval: plan.publishing_interval,
        key_frame_count: plan.key_frame_count,
        messaging_mode: plan.messaging_mode,
        batch_size: plan.batch_size,
        batch_trigger_interval: plan.batch_trigger_interval,
        nodes: Vec::new(),
    }
}
