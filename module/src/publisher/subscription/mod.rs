//! The OPC UA side of one data set writer: its subscriptions and monitored items.
//!
//! Real servers refuse large requests in many ways, so everything here assumes they will:
//! CreateMonitoredItems goes out in chunks of the server's MaxMonitoredItemsPerCall (halved
//! on Bad_TooManyOperations), a subscription that answers Bad_TooManyMonitoredItems is full
//! and the rest go to a new one, and a node the server refuses is retried with backoff and
//! reported instead of failing the writer. Items are addressed by client handles we choose,
//! so notifications are matched by handle.
//!
//! This set is the only record of the monitored items: they are created with the plain
//! CreateMonitoredItems service, so the OPC UA client keeps no copy of them (which cost
//! ≈ 300 bytes per item), and after a reconnect this set transfers its subscriptions to the
//! new session itself, or creates them and their items again when the server cannot.
//!
//! It also owns what each subscription's publish responses say about it (`liveness`): the
//! writer asks it which notifications a response shows missing and which subscriptions fell
//! silent, and acts on the answers.

mod liveness;

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opcua::client::services::CreateMonitoredItems;
use opcua::client::{MonitoredItemMap, OnSubscriptionNotificationCore, Session, UARequest};
use opcua::types::{
    AttributeId, DataChangeFilter, DataChangeTrigger as UaTrigger, DeadbandType, ExtensionObject,
    MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters, NodeId, NotificationMessage,
    ReadValueId, StatusCode, TimestampsToReturn,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::metrics::{PublisherDiagnostics, WriterDiagnostics};
use super::plan::{DataChangeTrigger, Deadband, NodePlan};
use crate::opcua::node_id::Namespaces;
use crate::opcua::notification_backlog::{Held, NotificationBacklog, Subscribed};
use crate::twin::session_ops::resolve_node;
use liveness::Liveness;
pub use liveness::Silence;

/// How long a stopping writer waits for the server to delete its subscriptions. A module must
/// stop within seconds (SIGTERM in a container), also when the server is unreachable.
pub const CLEANUP_GRACE: Duration = Duration::from_millis(500);

/// Chunk size when the server states no MaxMonitoredItemsPerCall.
const DEFAULT_ITEMS_PER_CALL: usize = 1000;
/// Values the server may put in one publish response; more go in the next ones. Bounds what
/// one response costs to decode and turn into a message (≈ 200 bytes per value), so memory
/// in flight does not grow with the number of items per subscription or their rate.
const MAX_NOTIFICATIONS_PER_PUBLISH: u32 = 500;
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Client handles are unique in the process, so a handle found in a log or a notification
/// names one item.
static NEXT_HANDLE: AtomicU32 = AtomicU32::new(1);

pub fn next_handle() -> u32 {
    NEXT_HANDLE.fetch_add(1, Ordering::Relaxed)
}

/// What the subscription callbacks hand to the writer task.
pub enum SubscriptionEvent {
    /// A publish response (data or keep-alive) for the subscription in `slot`.
    Notification {
        slot: usize,
        message: NotificationMessage,
        /// Counts the response in the session's backlog until the writer has processed it.
        held: Option<Held>,
    },
}

/// Runs inside the client's publish loop: it must not block, so it only forwards.
struct Forwarder {
    slot: usize,
    tx: mpsc::UnboundedSender<SubscriptionEvent>,
    backlog: Option<Subscribed>,
}

impl OnSubscriptionNotificationCore for Forwarder {
    fn on_subscription_notification(
        &mut self,
        message: NotificationMessage,
        _items: MonitoredItemMap<'_>,
    ) {
        let _ = self.tx.send(SubscriptionEvent::Notification {
            slot: self.slot,
            message,
            held: self.backlog.as_ref().map(|s| s.backlog().hold()),
        });
    }
}

/// Eight bytes: a writer may hold 100k items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemState {
    /// Not on the server yet (new, or its subscription was lost).
    Pending,
    Good {
        slot: u16,
        monitored_item_id: u32,
    },
    /// Refused by the server; why and when to try again is in `SubscriptionSet::retries`.
    Bad,
}

#[derive(Debug, Clone)]
struct Item {
    node: Arc<NodePlan>,
    state: ItemState,
}

/// Why a refused item was refused, and when it is tried again.
#[derive(Debug, Clone, Copy)]
struct Retry {
    status: StatusCode,
    at: Instant,
    backoff: Duration,
}

#[derive(Debug)]
struct Slot {
    /// The server's id; changes when the client re-creates the subscription.
    server_id: u32,
    full: bool,
    items: usize,
    /// Sequence gaps and silence, from its publish responses.
    liveness: Liveness,
}

/// A publish response as the writer must handle it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    /// The subscription's id on the server, to republish from.
    pub server_id: u32,
    /// Sequence numbers missed before this response, to republish.
    pub missing: Option<RangeInclusive<u32>>,
}

/// A subscription the watchdog found silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silent {
    pub slot: usize,
    pub server_id: u32,
    pub silence: Silence,
}

/// Settings of the writer's subscriptions.
#[derive(Debug, Clone)]
pub struct SubscriptionSettings {
    pub publishing_interval: Duration,
    pub keep_alive_count: u32,
    pub lifetime_count: u32,
}

impl SubscriptionSettings {
    /// Keep-alives about every 10 s (at least every interval), lifetime three keep-alives.
    pub fn for_interval(publishing_interval: Duration) -> Self {
        let ms = publishing_interval.as_millis().max(1) as u64;
        let keep_alive_count = (10_000 / ms).clamp(1, 1000) as u32;
        Self {
            publishing_interval,
            keep_alive_count,
            lifetime_count: keep_alive_count * 3,
        }
    }

    /// When a subscription that heard nothing for this long is considered silent.
    pub fn silence_limit(&self) -> Duration {
        self.publishing_interval * self.keep_alive_count * 2 + Duration::from_secs(5)
    }
}

/// All subscriptions and items of one writer on one session.
pub struct SubscriptionSet {
    settings: SubscriptionSettings,
    slots: Vec<Option<Slot>>,
    items: HashMap<u32, Item>,
    /// Items the server refused, by handle (few, so kept apart from `items`).
    retries: HashMap<u32, Retry>,
    items_per_call: usize,
    tx: mpsc::UnboundedSender<SubscriptionEvent>,
    all: Arc<PublisherDiagnostics>,
    diag: Arc<WriterDiagnostics>,
    /// (good, bad), kept as items change state so the gauges never need a pass over 100k items.
    counts: (usize, usize),
    /// The backlog of the session the subscriptions live on.
    backlog: Option<Arc<NotificationBacklog>>,
}

impl SubscriptionSet {
    pub fn new(
        settings: SubscriptionSettings,
        tx: mpsc::UnboundedSender<SubscriptionEvent>,
        all: Arc<PublisherDiagnostics>,
        diag: Arc<WriterDiagnostics>,
    ) -> Self {
        Self {
            settings,
            slots: Vec::new(),
            items: HashMap::new(),
            retries: HashMap::new(),
            items_per_call: DEFAULT_ITEMS_PER_CALL,
            tx,
            all,
            diag,
            counts: (0, 0),
            backlog: None,
        }
    }

    /// The session's backlog, counted by the subscriptions created from now on.
    pub fn set_backlog(&mut self, backlog: Arc<NotificationBacklog>) {
        self.backlog = Some(backlog);
    }

    pub fn settings(&self) -> &SubscriptionSettings {
        &self.settings
    }

    pub fn set_items_per_call(&mut self, n: usize) {
        if n > 0 {
            self.items_per_call = n;
        }
    }

    /// Records a publish response (data or keep-alive) of the subscription in `slot`, and
    /// answers the notifications missing before it. `None` when the slot is gone (a late
    /// response of a deleted subscription).
    pub fn record_notification(
        &mut self,
        slot: usize,
        sequence_number: u32,
        has_data: bool,
        now: Instant,
    ) -> Option<Heard> {
        let s = self.slots.get_mut(slot)?.as_mut()?;
        let missing = s.liveness.record(sequence_number, has_data, now);
        Some(Heard {
            server_id: s.server_id,
            missing,
        })
    }

    /// The subscriptions silent for the settings' silence limit at `now`, slot order. A
    /// revival is answered once per silence (it counts as done), a re-creation at every call
    /// until the subscription is heard or re-created.
    pub fn silent_slots(&mut self, now: Instant) -> Vec<Silent> {
        let limit = self.settings.silence_limit();
        let mut silent = Vec::new();
        for (slot, s) in self.slots.iter_mut().enumerate() {
            let Some(s) = s else { continue };
            if let Some(silence) = s.liveness.check(now, limit) {
                silent.push(Silent {
                    slot,
                    server_id: s.server_id,
                    silence,
                });
            }
        }
        silent
    }

    /// Registers items to monitor; they are created by the next `sync`.
    pub fn insert(&mut self, handle: u32, node: Arc<NodePlan>) {
        let old = self.items.insert(
            handle,
            Item {
                node,
                state: ItemState::Pending,
            },
        );
        if let Some(old) = old {
            self.count(old.state, -1);
            self.retries.remove(&handle);
        }
    }

    pub fn good_count(&self) -> usize {
        self.counts.0
    }

    pub fn bad_count(&self) -> usize {
        self.counts.1
    }

    /// Nodes the server refused, with its reason, for logs and diagnostics.
    pub fn bad_items(&self) -> Vec<(String, StatusCode)> {
        self.retries
            .iter()
            .filter_map(|(h, r)| {
                let item = self.items.get(h)?;
                Some((item.node.node_id.to_string(), r.status))
            })
            .collect()
    }

    /// When the earliest bad item is due for another try.
    pub fn next_retry(&self) -> Option<Instant> {
        self.retries.values().map(|r| r.at).min()
    }

    /// Keeps `counts` and the gauges in step with one item entering or leaving `state`.
    fn count(&mut self, state: ItemState, delta: i64) {
        let (good, bad) = match state {
            ItemState::Good { .. } => (delta, 0),
            ItemState::Bad => (0, delta),
            ItemState::Pending => return,
        };
        self.counts.0 = (self.counts.0 as i64 + good).max(0) as usize;
        self.counts.1 = (self.counts.1 as i64 + bad).max(0) as usize;
        let pipeline = &self.all.pipeline;
        pipeline.monitored_items_good.add(good);
        pipeline.monitored_items_bad.add(bad);
        self.diag.items_good.set(self.counts.0 as i64);
        self.diag.items_bad.set(self.counts.1 as i64);
    }

    fn set_state(&mut self, handle: u32, state: ItemState) {
        let Some(item) = self.items.get_mut(&handle) else {
            return;
        };
        let old = std::mem::replace(&mut item.state, state);
        if old != state {
            self.count(old, -1);
            self.count(state, 1);
        }
        if state != ItemState::Bad {
            self.retries.remove(&handle);
        }
    }

    /// The server refused the item (or could not be asked): try again later, each time
    /// waiting twice as long.
    fn set_bad(&mut self, handle: u32, status: StatusCode, now: Instant) {
        let backoff = match self.retries.get(&handle) {
            Some(r) => (r.backoff * 2).min(RETRY_MAX),
            None => RETRY_FIRST,
        };
        self.set_state(handle, ItemState::Bad);
        if self.items.contains_key(&handle) {
            self.retries.insert(
                handle,
                Retry {
                    status,
                    at: now + backoff,
                    backoff,
                },
            );
        }
    }

    fn note_error(&self, text: String) {
        *self
            .diag
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(text);
    }

    /// Takes items out of the set, answering the monitored items to delete per slot.
    fn take(&mut self, handles: &[u32]) -> HashMap<u16, Vec<u32>> {
        let mut by_slot: HashMap<u16, Vec<u32>> = HashMap::new();
        for h in handles {
            if let Some(item) = self.items.remove(h) {
                self.retries.remove(h);
                self.count(item.state, -1);
                if let ItemState::Good {
                    slot,
                    monitored_item_id,
                } = item.state
                {
                    by_slot.entry(slot).or_default().push(monitored_item_id);
                }
            }
        }
        by_slot
    }

    /// Removes items from the server and from the set.
    pub async fn remove(&mut self, session: &Session, handles: &[u32]) {
        for (slot, ids) in self.take(handles) {
            let Some(Some(s)) = self.slots.get_mut(usize::from(slot)) else {
                continue;
            };
            s.items = s.items.saturating_sub(ids.len());
            s.full = false;
            let server_id = s.server_id;
            for chunk in ids.chunks(self.items_per_call) {
                if let Err(e) = session.delete_monitored_items(server_id, chunk).await {
                    debug!(error = %e, "DeleteMonitoredItems failed; the items go with the subscription");
                }
            }
        }
    }

    /// Deletes every subscription of the writer on the server.
    pub async fn delete_all(&mut self, session: &Session) {
        let ids: Vec<u32> = self.slots.iter().flatten().map(|s| s.server_id).collect();
        if !ids.is_empty() {
            // Courtesy to the server, bounded: one that is gone would hold a stop for the
            // whole request timeout, and closing the session deletes them anyway.
            match tokio::time::timeout(CLEANUP_GRACE, session.delete_subscriptions(&ids)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => debug!(error = %e, "DeleteSubscriptions failed"),
                Err(_) => debug!("DeleteSubscriptions unanswered; the session close drops them"),
            }
        }
        self.slots.clear();
        let handles: Vec<u32> = self.items.keys().copied().collect();
        self.take(&handles);
    }

    /// Drops items locally only (they are not on any server).
    pub fn forget(&mut self, handles: &[u32]) {
        self.take(handles);
    }

    /// Items of the slots for which `lost` is true go back to Pending.
    fn lose_slots(&mut self, lost: impl Fn(u16) -> bool) {
        let handles: Vec<u32> = self
            .items
            .iter()
            .filter(|(_, i)| matches!(i.state, ItemState::Good { slot, .. } if lost(slot)))
            .map(|(h, _)| *h)
            .collect();
        for h in handles {
            self.set_state(h, ItemState::Pending);
        }
    }

    /// The session was replaced: nothing of ours exists on the server any more.
    pub fn forget_server_state(&mut self) {
        self.slots.clear();
        self.lose_slots(|_| true);
    }

    /// After a reconnect. On a reactivated session everything is still there. On a new
    /// session our subscriptions belong to the old one: TransferSubscriptions moves them
    /// with their items and ids (the server then sends every current value again); those
    /// the server cannot transfer are dropped and their items created again by the next
    /// `sync`. Items whose `nsu=` id now resolves to another namespace index are moved to
    /// the new node id.
    pub async fn after_reconnect(
        &mut self,
        session: &Session,
        before: &Namespaces,
        now: &Namespaces,
        new_session: bool,
    ) {
        if new_session {
            let ids: Vec<u32> = self.slots.iter().flatten().map(|s| s.server_id).collect();
            let transferred: Vec<bool> = if ids.is_empty() {
                Vec::new()
            } else {
                match session.transfer_subscriptions(&ids, true).await {
                    Ok(results) => results.iter().map(|r| r.status_code.is_good()).collect(),
                    Err(e) => {
                        info!(error = %e, "TransferSubscriptions failed; creating the subscriptions again");
                        vec![false; ids.len()]
                    }
                }
            };
            let lost: Vec<u32> = ids
                .iter()
                .zip(&transferred)
                .filter(|(_, ok)| !**ok)
                .map(|(id, _)| *id)
                .collect();
            if !lost.is_empty() {
                // Ends them in the client too, so its publish loop stops asking for them.
                let _ = session.delete_subscriptions(&lost).await;
            }
            let mut lost_slots = Vec::new();
            for (index, slot) in self.slots.iter_mut().enumerate() {
                let Some(s) = slot else { continue };
                if lost.contains(&s.server_id) {
                    info!(
                        subscription = s.server_id,
                        "subscription not transferred; creating it again"
                    );
                    *slot = None;
                    lost_slots.push(index as u16);
                } else {
                    s.liveness.transferred(Instant::now());
                }
            }
            self.lose_slots(|slot| lost_slots.contains(&slot));
        }
        if before.0 != now.0 {
            let moved: Vec<u32> = self
                .items
                .iter()
                .filter(|(_, i)| matches!(i.state, ItemState::Good { .. }))
                .filter(|(_, i)| {
                    before.parse(&i.node.node_id).ok() != now.parse(&i.node.node_id).ok()
                })
                .map(|(h, _)| *h)
                .collect();
            if !moved.is_empty() {
                info!(
                    count = moved.len(),
                    "namespace indices changed on the server; re-creating the affected items"
                );
                let nodes: Vec<(u32, Arc<NodePlan>)> = moved
                    .iter()
                    .filter_map(|h| self.items.get(h).map(|i| (*h, i.node.clone())))
                    .collect();
                self.remove(session, &moved).await;
                for (h, n) in nodes {
                    self.insert(h, n);
                }
            }
        }
    }

    /// Deletes a subscription that stayed silent after a revival and creates its items again
    /// in a new one.
    pub async fn recreate_slot(&mut self, session: &Session, ns: &Namespaces, index: usize) {
        let Some(Some(slot)) = self.slots.get(index) else {
            return;
        };
        let id = slot.server_id;
        if let Err(e) = session.delete_subscriptions(&[id]).await {
            debug!(error = %e, "deleting the silent subscription failed");
        }
        self.slots[index] = None;
        self.lose_slots(|slot| usize::from(slot) == index);
        self.sync(session, ns).await;
    }

    /// Client handles of the items that are Good.
    pub fn good_handles(&self) -> impl Iterator<Item = u32> + '_ {
        self.items
            .iter()
            .filter(|(_, i)| matches!(i.state, ItemState::Good { .. }))
            .map(|(h, _)| *h)
    }

    /// Creates everything pending and every bad item whose retry time has come.
    pub async fn sync(&mut self, session: &Session, ns: &Namespaces) {
        let before = self.counts;
        let now = Instant::now();
        let mut due: Vec<u32> = self
            .items
            .iter()
            .filter(|(h, i)| match i.state {
                ItemState::Pending => true,
                ItemState::Bad => self.retries.get(h).is_none_or(|r| r.at <= now),
                ItemState::Good { .. } => false,
            })
            .map(|(h, _)| *h)
            .collect();
        // Stable order keeps configuration order on the server, which keeps messages readable.
        due.sort_unstable();
        // Requests are built a chunk at a time: 100k of them at once would be ≈ 25 MB.
        let mut queue: std::collections::VecDeque<u32> = due.into();
        let mut chunk: Vec<(u32, MonitoredItemCreateRequest)> = Vec::new();
        while !queue.is_empty() || !chunk.is_empty() {
            while chunk.len() < self.items_per_call {
                let Some(h) = queue.pop_front() else { break };
                let Some(item) = self.items.get(&h) else {
                    continue;
                };
                let node = item.node.clone();
                match target(session, ns, &node).await {
                    Ok(node_id) => chunk.push((h, create_request(h, &node, node_id))),
                    Err((status, e)) => {
                        self.note_error(format!("{}: {e}", node.node_id));
                        self.set_bad(h, status, now);
                    }
                }
            }
            if chunk.is_empty() {
                break;
            }
            let slot = match self.slot_with_room(session).await {
                Ok(slot) => slot,
                Err(status) => {
                    warn!(%status, "cannot create a subscription; items stay pending");
                    let rest: Vec<u32> = chunk
                        .drain(..)
                        .map(|(h, _)| h)
                        .chain(queue.drain(..))
                        .collect();
                    for h in rest {
                        self.set_bad(h, status, now);
                    }
                    self.note_error(format!("CreateSubscription: {status}"));
                    break;
                }
            };
            let Some(Some(s)) = self.slots.get(usize::from(slot)) else {
                break;
            };
            let server_id = s.server_id;
            // A subscription that holds nothing and still says "too many" never will: stop
            // opening new ones for this chunk.
            let empty = s.items == 0;
            let requests: Vec<MonitoredItemCreateRequest> =
                chunk.iter().map(|(_, r)| r.clone()).collect();
            let result = CreateMonitoredItems::new(server_id, session)
                .timestamps_to_return(TimestampsToReturn::Both)
                .items_to_create(requests)
                .send(session.channel())
                .await
                .map(|r| r.results);
            match result {
                Err(e)
                    if e.status() == StatusCode::BadTooManyOperations
                        && self.items_per_call > 1 =>
                {
                    self.items_per_call = (self.items_per_call / 2).max(1);
                    info!(
                        per_call = self.items_per_call,
                        "server refused the batch size; halving it"
                    );
                    // The chunk shrinks to the new size on the next round.
                    while chunk.len() > self.items_per_call {
                        if let Some((h, _)) = chunk.pop() {
                            queue.push_front(h);
                        }
                    }
                }
                Err(e) if e.status() == StatusCode::BadTooManyMonitoredItems && empty => {
                    for (h, _) in chunk.drain(..) {
                        self.set_bad(h, e.status(), now);
                    }
                    self.note_error(format!("CreateMonitoredItems: {}", e.status()));
                }
                Err(e) if e.status() == StatusCode::BadTooManyMonitoredItems => {
                    if let Some(Some(s)) = self.slots.get_mut(usize::from(slot)) {
                        s.full = true;
                    }
                }
                Err(e) => {
                    warn!(error = %e, "CreateMonitoredItems failed; retrying later");
                    for (h, _) in chunk.drain(..) {
                        self.set_bad(h, e.status(), now);
                    }
                    self.note_error(format!("CreateMonitoredItems: {}", e.status()));
                }
                Ok(results) if results.len() != chunk.len() => {
                    warn!(
                        "CreateMonitoredItems answered {} results for {} items",
                        results.len(),
                        chunk.len()
                    );
                    for (h, _) in chunk.drain(..) {
                        self.set_bad(h, StatusCode::BadUnexpectedError, now);
                    }
                }
                Ok(results) => {
                    let mut full_again = Vec::new();
                    for ((h, req), r) in chunk.drain(..).zip(results) {
                        let status = r.result.status_code;
                        if status.is_good() {
                            if self.items.contains_key(&h) {
                                self.set_state(
                                    h,
                                    ItemState::Good {
                                        slot,
                                        monitored_item_id: r.result.monitored_item_id,
                                    },
                                );
                                if let Some(Some(s)) = self.slots.get_mut(usize::from(slot)) {
                                    s.items += 1;
                                }
                            }
                        } else if status == StatusCode::BadTooManyMonitoredItems {
                            full_again.push((h, req));
                        } else if let Some(item) = self.items.get(&h) {
                            debug!(node = %item.node.node_id, %status, "monitored item refused");
                            self.note_error(format!("{}: {status}", item.node.node_id));
                            self.set_bad(h, status, now);
                        }
                    }
                    let took_none = self
                        .slots
                        .get(usize::from(slot))
                        .and_then(Option::as_ref)
                        .is_some_and(|s| s.items == 0);
                    if !full_again.is_empty() && took_none {
                        for (h, _) in full_again {
                            self.set_bad(h, StatusCode::BadTooManyMonitoredItems, now);
                        }
                    } else if !full_again.is_empty() {
                        if let Some(Some(s)) = self.slots.get_mut(usize::from(slot)) {
                            s.full = true;
                        }
                        chunk = full_again;
                    }
                }
            }
        }
        let (good, bad) = self.counts;
        if bad > 0 && (good, bad) != before {
            warn!(
                good,
                bad, "some monitored items were refused; retrying them with backoff"
            );
        }
    }

    async fn slot_with_room(&mut self, session: &Session) -> Result<u16, StatusCode> {
        if let Some(i) = self
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| !s.full))
        {
            return u16::try_from(i).map_err(|_| StatusCode::BadTooManySubscriptions);
        }
        let index = self
            .slots
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.slots.len());
        let slot_id = u16::try_from(index).map_err(|_| StatusCode::BadTooManySubscriptions)?;
        let forwarder = Forwarder {
            slot: index,
            tx: self.tx.clone(),
            backlog: self.backlog.as_ref().map(NotificationBacklog::subscribe),
        };
        let id = session
            .create_subscription(
                self.settings.publishing_interval,
                self.settings.lifetime_count,
                self.settings.keep_alive_count,
                MAX_NOTIFICATIONS_PER_PUBLISH,
                0,
                true,
                forwarder,
            )
            .await
            .map_err(|e| e.status())?;
        let slot = Slot {
            server_id: id,
            full: false,
            items: 0,
            liveness: Liveness::new(Instant::now()),
        };
        if index == self.slots.len() {
            self.slots.push(Some(slot));
        } else {
            self.slots[index] = Some(slot);
        }
        debug!(subscription = id, slot = index, "subscription created");
        Ok(slot_id)
    }
}

/// The node an item monitors: its id, or with a `BrowsePath` the node that path leads to from
/// the id (the Root folder when only a path is given). A path is resolved again each time the
/// item is created, as OPC Publisher does, so it follows a server whose node ids changed.
async fn target(
    session: &Session,
    ns: &Namespaces,
    node: &NodePlan,
) -> Result<NodeId, (StatusCode, String)> {
    match node.settings.browse_path.as_deref() {
        Some(path) => resolve_node(session, ns, Some(&node.node_id), Some(path))
            .await
            .map_err(|e| (e.status, e.message)),
        None => ns
            .parse(&node.node_id)
            .map_err(|e| (StatusCode::BadNodeIdInvalid, e.to_string())),
    }
}

fn create_request(handle: u32, node: &NodePlan, node_id: NodeId) -> MonitoredItemCreateRequest {
    let settings = &node.settings;
    let filter =
        if settings.trigger != DataChangeTrigger::StatusValue || settings.deadband.is_some() {
            let (deadband_type, deadband_value) = match settings.deadband {
                Some(Deadband::Absolute(v)) => (DeadbandType::Absolute as u32, v),
                Some(Deadband::Percent(v)) => (DeadbandType::Percent as u32, v),
                None => (DeadbandType::None as u32, 0.0),
            };
            ExtensionObject::from_message(DataChangeFilter {
                trigger: match settings.trigger {
                    DataChangeTrigger::Status => UaTrigger::Status,
                    DataChangeTrigger::StatusValue => UaTrigger::StatusValue,
                    DataChangeTrigger::StatusValueTimestamp => UaTrigger::StatusValueTimestamp,
                },
                deadband_type,
                deadband_value,
            })
        } else {
            ExtensionObject::null()
        };
    MonitoredItemCreateRequest {
        item_to_monitor: ReadValueId {
            node_id,
            attribute_id: AttributeId::Value as u32,
            ..Default::default()
        },
        monitoring_mode: MonitoringMode::Reporting,
        requested_parameters: MonitoringParameters {
            client_handle: handle,
            sampling_interval: settings.sampling_interval.as_secs_f64() * 1000.0,
            filter,
            queue_size: settings.queue_size,
            discard_oldest: !settings.discard_new,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A set whose subscriptions exist (as after `sync`) with the given server ids; `None`
    /// is a slot freed by a re-creation.
    fn set_with(ids: &[Option<u32>], created: Instant) -> SubscriptionSet {
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut set = SubscriptionSet::new(
            SubscriptionSettings::for_interval(Duration::from_secs(1)),
            tx,
            PublisherDiagnostics::new(),
            Arc::new(WriterDiagnostics::default()),
        );
        set.slots = ids
            .iter()
            .map(|id| {
                id.map(|server_id| Slot {
                    server_id,
                    full: false,
                    items: 0,
                    liveness: Liveness::new(created),
                })
            })
            .collect();
        set
    }

    #[test]
    fn notifications_are_tracked_per_slot() {
        let t0 = Instant::now();
        let mut set = set_with(&[Some(7), Some(9)], t0);
        assert_eq!(
            set.record_notification(0, 1, true, t0),
            Some(Heard {
                server_id: 7,
                missing: None
            })
        );
        set.record_notification(1, 40, true, t0);
        // Slot 1's numbers do not disturb slot 0's.
        assert_eq!(
            set.record_notification(0, 4, true, t0),
            Some(Heard {
                server_id: 7,
                missing: Some(2..=3)
            })
        );
        assert_eq!(
            set.record_notification(1, 41, true, t0)
                .and_then(|h| h.missing),
            None
        );
    }

    #[test]
    fn a_response_for_a_gone_slot_is_ignored() {
        let t0 = Instant::now();
        let mut set = set_with(&[None, Some(3)], t0);
        assert_eq!(set.record_notification(0, 1, true, t0), None);
        assert_eq!(set.record_notification(5, 1, true, t0), None);
    }

    #[test]
    fn silent_slots_names_only_the_silent_ones() {
        let t0 = Instant::now();
        let mut set = set_with(&[Some(7), None, Some(9)], t0);
        let limit = set.settings().silence_limit();
        // Slot 2 was heard half a limit later than slot 0.
        set.record_notification(2, 1, false, t0 + limit / 2);
        assert!(set.silent_slots(t0 + limit / 2).is_empty());
        assert_eq!(
            set.silent_slots(t0 + limit),
            vec![Silent {
                slot: 0,
                server_id: 7,
                silence: Silence::Revive
            }]
        );
        let later = t0 + limit * 2;
        assert_eq!(
            set.silent_slots(later),
            vec![
                Silent {
                    slot: 0,
                    server_id: 7,
                    silence: Silence::Recreate
                },
                Silent {
                    slot: 2,
                    server_id: 9,
                    silence: Silence::Revive
                },
            ]
        );
    }
}
