//! One task per data set writer: it owns the writer's subscriptions, turns notifications into
//! data set messages, batches them, encodes them and appends them to the outbox.
//!
//! Keeping a writer's whole path in one task keeps its order (sequence numbers and values
//! leave in the order the server produced them) without locks; writers run in parallel.
//! Appending waits for the outbox's commit, which is the back-pressure of the pipeline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use opcua::types::{
    AttributeId, DataChangeNotification, DataValue, DateTime, NodeId, NotificationMessage,
    ReadValueId, StatusCode, TimestampsToReturn, Variant,
};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::encoder::{
    encode_split, metadata_message, network_message, samples_message, DataSetMessage, FieldValue,
    MetadataField,
};
use super::metrics::{PublisherDiagnostics, WriterDiagnostics};
use super::outbox::{Commit, Message, Outbox, OutboxError};
use super::plan::{MessagingMode, NodePlan, WriterPlan};
use super::subscription::{next_handle, SubscriptionEvent, SubscriptionSet, SubscriptionSettings};
use super::writer::{HeartbeatBehavior, WriterState};
use crate::api::NamespaceFormat;
use crate::opcua::json_value::{builtin_of, to_json};
use crate::opcua::node_id::Namespaces;
use crate::opcua::session_pool::{ConnectionKey, PinnedSession, Reconnects, SessionPool};

/// The most notifications a gap may span before Republish is not attempted.
const MAX_REPUBLISH: u32 = 1000;
/// Appends a writer may have on their way to disk before it waits for the oldest. The outbox
/// writes an append to the page cache at once and only its fsync is pending, so waiting
/// commits cost no memory; the bound only matters when the disk stalls. A writer may take
/// all of a burst (the server answers Publish for one subscription until it runs dry), and
/// with 2 it was capped near 250k values/s by the 5 ms commit window.
const MAX_PENDING_COMMITS: usize = 8;

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

struct Batch {
    messages: Vec<DataSetMessage>,
    values: usize,
    started: Option<Instant>,
}

struct Writer {
    plan: WriterPlan,
    setup: WriterSetup,
    ctx: WriterContext,
    wdiag: Arc<WriterDiagnostics>,
    state: WriterState,
    subs: SubscriptionSet,
    /// Client handle of each field, in field order (the node plans are in `state`).
    handles: Vec<u32>,
    field_of: HashMap<u32, u32>,
    /// Per field, the notification (`stamp`) that last carried it: finds a field repeated
    /// within one notification in O(1).
    seen: Vec<u32>,
    stamp: u32,
    session: Option<PinnedSession>,
    reconnects: Option<watch::Receiver<Reconnects>>,
    /// The last reconnect state handled, to tell whether a new session came since.
    reconnects_seen: Reconnects,
    ns: Namespaces,
    next_connect: Instant,
    connect_backoff: Duration,
    batch: Batch,
    metadata_sent: Option<(u32, u32)>,
    /// The distinct (DataType, ValueRank) pairs of the fields; a field holds an index here
    /// (`WriterState::type_index`), since 100k fields share a handful of types.
    types: Vec<(NodeId, i32)>,
    pending_update: Option<WriterPlan>,
    /// Appends not yet known to be durable, oldest first.
    commits: std::collections::VecDeque<Commit>,
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
        handles: Vec::new(),
        field_of: HashMap::new(),
        seen: Vec::new(),
        stamp: 0,
        session: None,
        reconnects: None,
        reconnects_seen: Reconnects::default(),
        ns: Namespaces(Vec::new()),
        next_connect: now,
        connect_backoff: Duration::from_millis(500),
        batch: Batch {
            messages: Vec::new(),
            values: 0,
            started: None,
        },
        metadata_sent: None,
        types: Vec::new(),
        pending_update: None,
        commits: std::collections::VecDeque::new(),
    };
    w.set_nodes(&plan, now);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if w.session.as_ref().is_none_or(|s| s.is_dead()) && Instant::now() >= w.next_connect {
            w.connect().await;
        }
        let deadline = w.next_deadline();
        // Ok(true): the session reconnected; Ok(false): its sender is gone.
        let mut reconnect_seen = None;
        let mut reconnects = w.reconnects.take();
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
                        reconnect_seen = None;
                        w.pending_update = Some(*plan);
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
        if w.reconnects.is_none() {
            w.reconnects = reconnects;
        }
        if let Some(plan) = w.pending_update.take() {
            w.update(plan).await;
        }
        match reconnect_seen {
            Some(true) => w.after_reconnect().await,
            Some(false) => w.reconnects = None,
            None => {}
        }
        w.on_time().await;
    }
}

impl Writer {
    /// Takes a new node list: unchanged nodes keep their handle (and monitored item), the
    /// rest are registered for creation. Answers the handles of the nodes that left, for the
    /// caller to remove.
    fn set_nodes(&mut self, plan: &WriterPlan, now: Instant) -> Vec<u32> {
        // Old node → its handle in O(1) (a writer may hold 100k nodes). Field names are
        // unique in a writer, so (node id, name) names one node; it is kept only when its
        // settings did not change either.
        let mut old: HashMap<(&str, &str), (&Arc<NodePlan>, u32)> =
            HashMap::with_capacity(self.handles.len());
        for (node, h) in self.state.nodes().zip(&self.handles) {
            old.insert((&node.node_id, &node.field_name), (node, *h));
        }
        let mut handles = Vec::with_capacity(plan.nodes.len());
        let mut added = Vec::new();
        let mut removed_changed = Vec::new();
        for n in &plan.nodes {
            let kept = old
                .remove(&(&*n.node_id, &*n.field_name))
                .filter(|(o, h)| {
                    let same = **o == *n;
                    if !same {
                        // Re-created below with the new settings.
                        removed_changed.push(*h);
                    }
                    same
                })
                .map(|(_, h)| h);
            match kept {
                Some(h) => handles.push(h),
                None => {
                    let h = next_handle();
                    added.push((h, n.clone()));
                    handles.push(h);
                }
            }
        }
        let mut removed: Vec<u32> = old.into_values().map(|(_, h)| h).collect();
        removed.append(&mut removed_changed);
        for (h, n) in added {
            self.subs.insert(h, n);
        }
        self.handles = handles;
        self.field_of = self
            .handles
            .iter()
            .enumerate()
            .map(|(i, h)| (*h, i as u32))
            .collect();
        self.state.set_fields(plan, now);
        self.plan = without_nodes(plan);
        removed
    }

    async fn update(&mut self, plan: WriterPlan) {
        let removed = self.set_nodes(&plan, Instant::now());
        info!(writer = %self.plan.id, nodes = self.handles.len(), removed = removed.len(), "writer updated in place");
        if let Some(session) = self.session.as_ref().filter(|s| !s.is_dead()) {
            let session = session.session.clone();
            self.subs.remove(&session, &removed).await;
            self.subs.sync(&session, &self.ns).await;
            self.send_metadata().await;
        } else {
            // Not on the server yet: forget them locally; the next connect creates the rest.
            self.subs.forget(&removed);
        }
    }

    async fn connect(&mut self) {
        self.session = None;
        self.reconnects = None;
        self.subs.forget_server_state();
        self.wdiag.connected.set(0);
        match self.ctx.pool.pin(&self.setup.key).await {
            Ok(pinned) => {
                self.connect_backoff = Duration::from_millis(500);
                self.ns = pinned.namespaces().await;
                let reconnects = pinned.reconnects();
                self.reconnects_seen = *reconnects.borrow();
                self.reconnects = Some(reconnects);
                let session = pinned.session.clone();
                self.subs.set_backlog(pinned.backlog.clone());
                self.session = Some(pinned);
                self.wdiag.connected.set(1);
                let started = Instant::now();
                self.subs.sync(&session, &self.ns).await;
                info!(
                    writer = %self.plan.id,
                    url = %self.setup.key.url,
                    good = self.subs.good_count(),
                    bad = self.subs.bad_count(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "writer subscribed"
                );
                for (node, status) in self.subs.bad_items().into_iter().take(10) {
                    warn!(writer = %self.plan.id, %node, %status, "node not monitored; retrying with backoff");
                }
                self.state
                    .set_application_uri(self.session_application_uri());
                self.metadata_sent = None;
                self.send_metadata().await;
            }
            Err(e) => {
                warn!(writer = %self.plan.id, url = %self.setup.key.url, error = %e,
                      retry_in_ms = self.connect_backoff.as_millis() as u64, "cannot open a session for the writer");
                *self
                    .wdiag
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                self.next_connect = Instant::now() + self.connect_backoff;
                self.connect_backoff = (self.connect_backoff * 2).min(Duration::from_secs(30));
            }
        }
    }

    fn session_application_uri(&self) -> String {
        self.session
            .as_ref()
            .map(|s| s.endpoint.server.application_uri.as_ref().to_string())
            .unwrap_or_default()
    }

    async fn after_reconnect(&mut self) {
        let Some(pinned) = self.session.as_ref() else {
            return;
        };
        self.ctx.diag.pipeline.opcua_reconnects.inc();
        self.wdiag.reconnects.inc();
        let session = pinned.session.clone();
        let now = self
            .reconnects
            .as_ref()
            .map(|r| *r.borrow())
            .unwrap_or_default();
        let new_session = now.new_sessions != self.reconnects_seen.new_sessions;
        self.reconnects_seen = now;
        let before = std::mem::replace(&mut self.ns, pinned.namespaces().await);
        self.subs
            .after_reconnect(&session, &before, &self.ns, new_session)
            .await;
        self.subs.sync(&session, &self.ns).await;
        session.trigger_publish_now();
        info!(writer = %self.plan.id, good = self.subs.good_count(), bad = self.subs.bad_count(),
              "writer resumed after reconnect");
    }

    async fn stop(&mut self) {
        self.flush().await;
        self.settle(0).await;
        if let Some(s) = self.session.take() {
            let session = s.session.clone();
            self.subs.delete_all(&session).await;
        } else {
            let handles = self.handles.clone();
            self.subs.forget(&handles);
        }
        let ms = self.plan.publishing_interval.as_millis() as u64;
        self.ctx
            .diag
            .remove_writer(&self.plan.group, &self.plan.id, ms);
    }

    async fn on_event(&mut self, event: SubscriptionEvent) {
        // `_held` keeps the response counted in the session's backlog until it is processed.
        let SubscriptionEvent::Notification {
            slot,
            message,
            held: _held,
        } = event;
        let now = Instant::now();
        let Some(Some(s)) = self.subs.slots.get_mut(slot) else {
            return;
        };
        s.last_heard = now;
        s.revived_at = None;
        let server_id = s.server_id;
        let has_data = message
            .notification_data
            .as_ref()
            .is_some_and(|d| !d.is_empty());
        // Data carries its own sequence number, a keep-alive the next one: either way every
        // number below it must have been seen.
        let seq = message.sequence_number;
        let last_consumed = seq.wrapping_sub(1);
        let missing = match s.last_sequence {
            Some(l) if last_consumed > l && last_consumed - l <= MAX_REPUBLISH => {
                Some((l + 1)..=last_consumed)
            }
            _ => None,
        };
        if has_data {
            s.last_sequence = Some(seq);
        } else if s.last_sequence.is_some() {
            s.last_sequence = Some(seq.wrapping_sub(1));
        }
        if let Some(missing) = missing {
            self.republish(server_id, missing).await;
        }
        if has_data {
            self.on_data(message).await;
        }
    }

    async fn republish(&mut self, server_id: u32, missing: std::ops::RangeInclusive<u32>) {
        let Some(session) = self.session.as_ref().map(|s| s.session.clone()) else {
            return;
        };
        let count = missing.clone().count();
        let mut recovered = 0u64;
        for seq in missing {
            match session.republish(server_id, seq).await {
                Ok(message) => {
                    recovered += 1;
                    self.on_data(message).await;
                }
                Err(e) => {
                    debug!(seq, error = %e, "Republish failed");
                }
            }
        }
        self.ctx.diag.pipeline.republished.add(recovered);
        if recovered < count as u64 {
            warn!(writer = %self.plan.id, missing = count, recovered,
                  "notifications missing from a subscription could not all be republished");
        } else {
            info!(writer = %self.plan.id, recovered, "missing notifications republished");
        }
    }

    async fn on_data(&mut self, message: NotificationMessage) {
        let timestamp = message.publish_time;
        let now = Instant::now();
        let mut values: Vec<(usize, FieldValue)> = Vec::new();
        let mut received = 0u64;
        self.seen.resize(self.handles.len(), 0);
        self.stamp = self.stamp.wrapping_add(1);
        for obj in message.notification_data.into_iter().flatten() {
            let Some(change) = obj.into_inner_as::<DataChangeNotification>() else {
                continue;
            };
            let items = change.monitored_items.unwrap_or_default();
            values.reserve(items.len());
            for item in items {
                received += 1;
                let Some(&field) = self.field_of.get(&item.client_handle) else {
                    continue;
                };
                let field = field as usize;
                // A field twice in one notification (queue size > 1): send what we have first,
                // so that no value replaces another.
                if self.seen.get(field) == Some(&self.stamp) {
                    let run = std::mem::take(&mut values);
                    self.emit(run, timestamp, now).await;
                    self.stamp = self.stamp.wrapping_add(1);
                }
                if let Some(s) = self.seen.get_mut(field) {
                    *s = self.stamp;
                }
                values.push((field, field_value(item.value, &self.ns)));
            }
        }
        self.ctx.diag.pipeline.notifications_in.add(received);
        self.wdiag.values_in.add(received);
        if !values.is_empty() {
            self.emit(values, timestamp, now).await;
        }
    }

    async fn emit(&mut self, values: Vec<(usize, FieldValue)>, timestamp: DateTime, now: Instant) {
        if let Some(m) = self.state.on_values(values, timestamp, now) {
            self.push(m).await;
        }
    }

    async fn push(&mut self, m: DataSetMessage) {
        self.batch.values += m.fields.len().max(1);
        self.batch.started.get_or_insert_with(Instant::now);
        self.batch.messages.push(m);
        if self.batch.values >= self.plan.batch_size.max(1) as usize {
            self.flush().await;
        }
    }

    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let batch = self
            .batch
            .started
            .map(|t| t + self.plan.batch_trigger_interval)
            .unwrap_or(far);
        let beat = self.state.next_heartbeat().unwrap_or(far);
        let retry = self.subs.next_retry().unwrap_or(far);
        let connect = if self.session.is_none() {
            self.next_connect
        } else {
            far
        };
        batch.min(beat).min(retry).min(connect)
    }

    async fn on_time(&mut self) {
        self.settle(usize::MAX).await;
        let now = Instant::now();
        if self.state.next_heartbeat().is_some_and(|t| t <= now) {
            if let Some(m) = self.state.on_tick(DateTime::now(), now) {
                self.push(m).await;
            }
        }
        if self
            .batch
            .started
            .is_some_and(|t| now >= t + self.plan.batch_trigger_interval)
        {
            self.flush().await;
        }
        if self.subs.next_retry().is_some_and(|t| t <= now) {
            if let Some(session) = self.session.as_ref().filter(|s| !s.is_dead()) {
                let session = session.session.clone();
                let before = self.subs.good_count();
                self.subs.sync(&session, &self.ns).await;
                if self.subs.good_count() != before {
                    self.send_metadata().await;
                }
            }
        }
    }

    /// Revives subscriptions that fell silent: first by triggering a publish, then, if they
    /// stay silent, by re-creating them.
    async fn watchdog(&mut self) {
        let Some(pinned) = self.session.as_ref() else {
            return;
        };
        if pinned.is_dead() || !pinned.is_connected() {
            return;
        }
        let session = pinned.session.clone();
        let limit = self.subs.settings().silence_limit();
        let now = Instant::now();
        let mut recreate = Vec::new();
        for (i, slot) in self.subs.slots.iter_mut().enumerate() {
            let Some(s) = slot else { continue };
            if now.duration_since(s.last_heard) < limit {
                continue;
            }
            match s.revived_at {
                None => {
                    warn!(writer = %self.plan.id, subscription = s.server_id, "subscription silent; triggering a publish");
                    s.revived_at = Some(now);
                    session.trigger_publish_now();
                    self.ctx.diag.pipeline.watchdog_revivals.inc();
                }
                Some(t) if now.duration_since(t) >= limit => recreate.push(i),
                Some(_) => {}
            }
        }
        for i in recreate {
            warn!(writer = %self.plan.id, "subscription still silent; re-creating it");
            self.ctx.diag.pipeline.watchdog_revivals.inc();
            self.subs.recreate_slot(&session, &self.ns, i).await;
        }
    }

    async fn flush(&mut self) {
        let messages = std::mem::take(&mut self.batch.messages);
        self.batch.values = 0;
        self.batch.started = None;
        if messages.is_empty() {
            return;
        }
        let values: usize = messages.iter().map(|m| m.fields.len()).sum();
        let publisher_id = self.setup.publisher_id.clone();
        let ids = self.ctx.message_ids.clone();
        let encoded = match self.plan.messaging_mode {
            MessagingMode::PubSub => encode_split(&messages, self.setup.max_message_size, &|m| {
                network_message(&publisher_id, ids.fetch_add(1, Ordering::Relaxed), m)
            }),
            MessagingMode::Samples => encode_split(&messages, self.setup.max_message_size, &|m| {
                samples_message(&publisher_id, m)
            }),
        };
        let pipeline = &self.ctx.diag.pipeline;
        pipeline.values_encoded.add(values as u64);
        pipeline.messages_encoded.add(encoded.len() as u64);
        self.wdiag.messages_out.add(encoded.len() as u64);
        let out: Vec<Message> = encoded
            .into_iter()
            .map(|payload| Message {
                topic: self.setup.telemetry_topic.clone(),
                payload: Bytes::from(payload),
                retain: false,
            })
            .collect();
        self.append(out).await;
    }

    /// Hands messages to the outbox and goes on without waiting for the disk; only when
    /// `MAX_PENDING_COMMITS` appends are still on their way does it wait for the oldest,
    /// the pipeline's back-pressure when the disk stalls. Waiting on every append instead
    /// left the writer idle for each fsync while its subscription's notifications piled up.
    async fn append(&mut self, messages: Vec<Message>) {
        match self.ctx.outbox.enqueue(messages) {
            Ok(commit) => self.commits.push_back(commit),
            // Counted, and logged rate-limited, by the outbox itself.
            Err(e @ (OutboxError::Full { .. } | OutboxError::TooLarge { .. })) => {
                debug!(writer = %self.plan.id, error = %e, "outbox refused messages")
            }
            Err(e) => warn!(writer = %self.plan.id, error = %e, "outbox refused messages"),
        }
        self.settle(MAX_PENDING_COMMITS).await;
    }

    /// Waits for the oldest commits until at most `keep` are pending, and takes the ones
    /// already durable: a failure is reported when it is known, not at the next append.
    async fn settle(&mut self, keep: usize) {
        while self.commits.len() > keep || self.commits.front().is_some_and(Commit::is_done) {
            let Some(commit) = self.commits.pop_front() else {
                break;
            };
            if let Err(e) = commit.durable().await {
                warn!(writer = %self.plan.id, error = %e, "outbox refused messages");
            }
        }
    }

    /// Sends `ua-metadata` (retained) when the writer's fields changed since the last one.
    async fn send_metadata(&mut self) {
        if !self.setup.send_metadata || self.plan.messaging_mode != MessagingMode::PubSub {
            return;
        }
        let version = self.state.metadata_version();
        if self.metadata_sent == Some(version) && self.untyped_good_fields().next().is_none() {
            return;
        }
        self.load_field_types().await;
        let types = &self.types;
        let state = &self.state;
        let fields = state.fields().enumerate().map(|(i, (name, _))| {
            let known = usize::from(state.type_index(i))
                .checked_sub(1)
                .and_then(|t| types.get(t));
            MetadataField {
                name,
                builtin_type: known.and_then(|(dt, _)| builtin_of(dt)).map(|b| b as u32),
                data_type: known.map(|(dt, _)| self.ns.format(dt, NamespaceFormat::Expanded)),
                value_rank: known.map(|(_, rank)| *rank),
            }
        });
        let payload = metadata_message(
            &self.setup.publisher_id,
            self.ctx.message_ids.fetch_add(1, Ordering::Relaxed),
            self.setup.writer_id,
            &self.plan.id,
            version,
            fields,
        );
        self.append(vec![Message {
            topic: self.setup.metadata_topic.clone(),
            payload: Bytes::from(payload),
            retain: true,
        }])
        .await;
        self.metadata_sent = Some(version);
    }

    /// Fields whose item is on the server but whose type is not known yet.
    fn untyped_good_fields(&self) -> impl Iterator<Item = usize> + '_ {
        self.subs
            .good_handles()
            .filter_map(|h| self.field_of.get(&h).map(|f| *f as usize))
            .filter(|f| self.state.type_index(*f) == 0)
    }

    /// Reads DataType and ValueRank of the monitored nodes not yet known, in chunks.
    async fn load_field_types(&mut self) {
        let Some(session) = self.session.as_ref().map(|s| s.session.clone()) else {
            return;
        };
        let nodes: Vec<&Arc<NodePlan>> = self.state.nodes().collect();
        let todo: Vec<(usize, NodeId)> = self
            .untyped_good_fields()
            .filter_map(|f| {
                let node = nodes.get(f)?;
                self.ns.parse(&node.node_id).ok().map(|id| (f, id))
            })
            .collect();
        drop(nodes);
        for chunk in todo.chunks(500) {
            let reads: Vec<ReadValueId> = chunk
                .iter()
                .flat_map(|(_, n)| {
                    [AttributeId::DataType, AttributeId::ValueRank].map(|a| ReadValueId {
                        node_id: n.clone(),
                        attribute_id: a as u32,
                        ..Default::default()
                    })
                })
                .collect();
            let Ok(values) = session.read(&reads, TimestampsToReturn::Neither, 0.0).await else {
                debug!("reading field types for metadata failed");
                return;
            };
            for ((field, _), pair) in chunk.iter().zip(values.chunks(2)) {
                let dt = match pair.first().and_then(|v| v.value.as_ref()) {
                    Some(Variant::NodeId(n)) => (**n).clone(),
                    _ => continue,
                };
                let rank = match pair.get(1).and_then(|v| v.value.as_ref()) {
                    Some(Variant::Int32(r)) => *r,
                    _ => -1,
                };
                let index = match self.types.iter().position(|t| t.0 == dt && t.1 == rank) {
                    Some(i) => i,
                    None => {
                        self.types.push((dt, rank));
                        self.types.len() - 1
                    }
                };
                // More distinct types than a u16 holds stay unknown (never seen in practice).
                if let Ok(t) = u16::try_from(index + 1) {
                    self.state.set_type_index(*field, t);
                }
            }
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

fn field_value(dv: DataValue, ns: &Namespaces) -> FieldValue {
    let status = dv.status.unwrap_or(StatusCode::Good);
    FieldValue {
        name: "".into(),
        value: dv
            .value
            .as_ref()
            .map(|v| to_json(v, ns, NamespaceFormat::Expanded)),
        status: status.bits(),
        status_symbol: crate::error::symbol(status),
        source_timestamp: dv.source_timestamp,
        server_timestamp: dv.server_timestamp,
        node_id: "".into(),
    }
}
