//! The OPC UA side of one data set writer: its subscriptions and monitored items.
//!
//! Real servers refuse large requests in many ways, so everything here assumes they will:
//! CreateMonitoredItems goes out in chunks of the server's MaxMonitoredItemsPerCall (halved
//! on Bad_TooManyOperations), a subscription that answers Bad_TooManyMonitoredItems is full
//! and the rest go to a new one, and a node the server refuses is retried with backoff and
//! reported instead of failing the writer. Items are addressed by client handles we choose,
//! so notifications, reconnects and re-created subscriptions are all matched by handle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opcua::client::{MonitoredItemMap, OnSubscriptionNotificationCore, Session};
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

/// Chunk size when the server states no MaxMonitoredItemsPerCall.
const DEFAULT_ITEMS_PER_CALL: usize = 1000;
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Client handles are unique in the process, so a handle alone identifies an item even after
/// the client re-created its subscription under a new id.
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
    },
}

/// Runs inside the client's publish loop: it must not block, so it only forwards.
struct Forwarder {
    slot: usize,
    tx: mpsc::UnboundedSender<SubscriptionEvent>,
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
        });
    }
}

#[derive(Debug, Clone)]
enum ItemState {
    /// Not on the server yet (new, or its subscription was lost).
    Pending,
    Good {
        slot: usize,
        monitored_item_id: u32,
        resolved: NodeId,
    },
    Bad {
        status: StatusCode,
        retry_at: Instant,
        backoff: Duration,
    },
}

#[derive(Debug, Clone)]
struct Item {
    node: Arc<NodePlan>,
    state: ItemState,
}

#[derive(Debug)]
pub struct Slot {
    /// The server's id; changes when the client re-creates the subscription.
    pub server_id: u32,
    full: bool,
    items: usize,
    /// Sequence number of the last data notification, to notice gaps.
    pub last_sequence: Option<u32>,
    /// Last data or keep-alive, for the watchdog.
    pub last_heard: Instant,
    pub revived_at: Option<Instant>,
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
    pub slots: Vec<Option<Slot>>,
    items: HashMap<u32, Item>,
    items_per_call: usize,
    tx: mpsc::UnboundedSender<SubscriptionEvent>,
    all: Arc<PublisherDiagnostics>,
    diag: Arc<WriterDiagnostics>,
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
            items_per_call: DEFAULT_ITEMS_PER_CALL,
            tx,
            all,
            diag,
        }
    }

    pub fn settings(&self) -> &SubscriptionSettings {
        &self.settings
    }

    pub fn set_items_per_call(&mut self, n: usize) {
        if n > 0 {
            self.items_per_call = n;
        }
    }

    /// Registers items to monitor; they are created by the next `sync`.
    pub fn insert(&mut self, handle: u32, node: Arc<NodePlan>) {
        self.items.insert(
            handle,
            Item {
                node,
                state: ItemState::Pending,
            },
        );
    }

    pub fn good_count(&self) -> usize {
        self.counts().0
    }

    pub fn bad_count(&self) -> usize {
        self.counts().1
    }

    /// Nodes the server refused, with its reason, for logs and diagnostics.
    pub fn bad_items(&self) -> Vec<(String, StatusCode)> {
        self.items
            .values()
            .filter_map(|i| match i.state {
                ItemState::Bad { status, .. } => Some((i.node.node_id.to_string(), status)),
                _ => None,
            })
            .collect()
    }

    /// When the earliest bad item is due for another try.
    pub fn next_retry(&self) -> Option<Instant> {
        self.items
            .values()
            .filter_map(|i| match i.state {
                ItemState::Bad { retry_at, .. } => Some(retry_at),
                _ => None,
            })
            .min()
    }

    fn publish_gauges(&self, before: (usize, usize)) {
        let (good, bad) = self.counts();
        self.all
            .pipeline
            .monitored_items_good
            .add(good as i64 - before.0 as i64);
        self.all
            .pipeline
            .monitored_items_bad
            .add(bad as i64 - before.1 as i64);
        self.diag.items_good.set(good as i64);
        self.diag.items_bad.set(bad as i64);
    }

    /// (good, bad) in one pass over the items.
    fn counts(&self) -> (usize, usize) {
        self.items.values().fold((0, 0), |(g, b), i| match i.state {
            ItemState::Good { .. } => (g + 1, b),
            ItemState::Bad { .. } => (g, b + 1),
            ItemState::Pending => (g, b),
        })
    }

    /// Removes items from the server and from the set.
    pub async fn remove(&mut self, session: &Session, handles: &[u32]) {
        let before = self.counts();
        let mut by_slot: HashMap<usize, Vec<u32>> = HashMap::new();
        for h in handles {
            if let Some(item) = self.items.remove(h) {
                if let ItemState::Good {
                    slot,
                    monitored_item_id,
                    ..
                } = item.state
                {
                    by_slot.entry(slot).or_default().push(monitored_item_id);
                }
            }
        }
        for (slot, ids) in by_slot {
            let Some(Some(s)) = self.slots.get_mut(slot) else {
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
        self.publish_gauges(before);
    }

    /// Deletes every subscription of the writer on the server.
    pub async fn delete_all(&mut self, session: &Session) {
        let before = self.counts();
        let ids: Vec<u32> = self.slots.iter().flatten().map(|s| s.server_id).collect();
        if !ids.is_empty() {
            if let Err(e) = session.delete_subscriptions(&ids).await {
                debug!(error = %e, "DeleteSubscriptions failed");
            }
        }
        self.slots.clear();
        self.items.clear();
        self.publish_gauges(before);
    }

    /// Drops items locally only (they are not on any server).
    pub fn forget(&mut self, handles: &[u32]) {
        let before = self.counts();
        for h in handles {
            self.items.remove(h);
        }
        self.publish_gauges(before);
    }

    /// The session was replaced: nothing of ours exists on the server any more.
    pub fn forget_server_state(&mut self) {
        let before = self.counts();
        self.slots.clear();
        for item in self.items.values_mut() {
            if matches!(item.state, ItemState::Good { .. }) {
                item.state = ItemState::Pending;
            }
        }
        self.publish_gauges(before);
    }

    /// After a reconnect the client transferred or re-created our subscriptions, maybe under new
    /// ids and with new monitored item ids: find them by client handle. Subscriptions the
    /// client lost are created again, and items whose `nsu=` id now resolves to another
    /// namespace index are moved to the new node id.
    pub async fn after_reconnect(&mut self, session: &Session, ns: &Namespaces) {
        let before = self.counts();
        let mut found: HashMap<u32, (u32, u32)> = HashMap::new(); // handle → (sub id, item id)
        {
            let state = session.subscription_state.lock();
            for id in state.subscription_ids().unwrap_or_default() {
                if let Some(sub) = state.get(id) {
                    for mi in sub.monitored_items() {
                        found.insert(mi.client_handle(), (id, mi.id()));
                    }
                }
            }
        }
        let mut slot_ids: HashMap<usize, u32> = HashMap::new();
        let mut moved = Vec::new();
        for (handle, item) in self.items.iter_mut() {
            if let ItemState::Good {
                slot,
                monitored_item_id,
                resolved,
            } = &mut item.state
            {
                match found.get(handle) {
                    Some((sub, mi)) => {
                        slot_ids.insert(*slot, *sub);
                        *monitored_item_id = *mi;
                        if let Ok(now) = ns.parse(&item.node.node_id) {
                            if &now != resolved {
                                moved.push(*handle);
                            }
                        }
                    }
                    None => item.state = ItemState::Pending,
                }
            }
        }
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let keep = match (slot.as_mut(), slot_ids.get(&index)) {
                (Some(s), Some(id)) => {
                    if s.server_id != *id {
                        info!(
                            old = s.server_id,
                            new = id,
                            "subscription re-created by the client"
                        );
                        s.server_id = *id;
                        s.last_sequence = None;
                    }
                    s.last_heard = Instant::now();
                    true
                }
                _ => false,
            };
            if !keep {
                *slot = None;
            }
        }
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
        self.publish_gauges(before);
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
        let before = self.counts();
        self.slots[index] = None;
        for item in self.items.values_mut() {
            if matches!(item.state, ItemState::Good { slot, .. } if slot == index) {
                item.state = ItemState::Pending;
            }
        }
        self.publish_gauges(before);
        self.sync(session, ns).await;
    }

    /// Node ids as resolved on the server, of the items that are Good.
    pub fn resolved(&self) -> impl Iterator<Item = (&Arc<str>, &NodeId)> {
        self.items.values().filter_map(|i| match &i.state {
            ItemState::Good { resolved, .. } => Some((&i.node.node_id, resolved)),
            _ => None,
        })
    }

    /// Creates everything pending and every bad item whose retry time has come.
    pub async fn sync(&mut self, session: &Session, ns: &Namespaces) {
        let before = self.counts();
        let now = Instant::now();
        let mut todo: Vec<(u32, MonitoredItemCreateRequest, NodeId)> = Vec::new();
        for (handle, item) in self.items.iter_mut() {
            let due = match item.state {
                ItemState::Pending => true,
                ItemState::Bad { retry_at, .. } => retry_at <= now,
                ItemState::Good { .. } => false,
            };
            if !due {
                continue;
            }
            match ns.parse(&item.node.node_id) {
                Ok(node_id) => todo.push((
                    *handle,
                    create_request(*handle, &item.node, &node_id),
                    node_id,
                )),
                Err(e) => {
                    let status = StatusCode::BadNodeIdInvalid;
                    set_bad(item, status, now);
                    *self
                        .diag
                        .last_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) =
                        Some(format!("{}: {e}", item.node.node_id));
                }
            }
        }
        // Stable order keeps configuration order on the server, which keeps messages readable.
        todo.sort_by_key(|(h, _, _)| *h);
        let mut queue = std::collections::VecDeque::from(todo);
        while !queue.is_empty() {
            let slot = match self.slot_with_room(session).await {
                Ok(slot) => slot,
                Err(status) => {
                    warn!(%status, "cannot create a subscription; items stay pending");
                    for (h, _, _) in queue.drain(..) {
                        if let Some(item) = self.items.get_mut(&h) {
                            set_bad(item, status, now);
                        }
                    }
                    *self
                        .diag
                        .last_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) =
                        Some(format!("CreateSubscription: {status}"));
                    break;
                }
            };
            let n = self.items_per_call.min(queue.len());
            let chunk: Vec<_> = queue.drain(..n).collect();
            let Some(Some(s)) = self.slots.get(slot) else {
                break;
            };
            let server_id = s.server_id;
            let requests: Vec<_> = chunk.iter().map(|(_, r, _)| r.clone()).collect();
            let result = session
                .create_monitored_items(server_id, TimestampsToReturn::Both, requests)
                .await;
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
                    for c in chunk.into_iter().rev() {
                        queue.push_front(c);
                    }
                }
                Err(e) if e.status() == StatusCode::BadTooManyMonitoredItems => {
                    if let Some(Some(s)) = self.slots.get_mut(slot) {
                        s.full = true;
                    }
                    for c in chunk.into_iter().rev() {
                        queue.push_front(c);
                    }
                }
                Err(e) => {
                    warn!(error = %e, "CreateMonitoredItems failed; retrying later");
                    for (h, _, _) in chunk {
                        if let Some(item) = self.items.get_mut(&h) {
                            set_bad(item, e.status(), now);
                        }
                    }
                    *self
                        .diag
                        .last_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) =
                        Some(format!("CreateMonitoredItems: {}", e.status()));
                }
                Ok(results) if results.len() != chunk.len() => {
                    warn!(
                        "CreateMonitoredItems answered {} results for {} items",
                        results.len(),
                        chunk.len()
                    );
                    for (h, _, _) in chunk {
                        if let Some(item) = self.items.get_mut(&h) {
                            set_bad(item, StatusCode::BadUnexpectedError, now);
                        }
                    }
                }
                Ok(results) => {
                    let mut full_again = Vec::new();
                    for ((h, req, node_id), r) in chunk.into_iter().zip(results) {
                        let status = r.result.status_code;
                        if status.is_good() {
                            if let Some(item) = self.items.get_mut(&h) {
                                item.state = ItemState::Good {
                                    slot,
                                    monitored_item_id: r.result.monitored_item_id,
                                    resolved: node_id,
                                };
                                if let Some(Some(s)) = self.slots.get_mut(slot) {
                                    s.items += 1;
                                }
                            }
                        } else if status == StatusCode::BadTooManyMonitoredItems {
                            full_again.push((h, req, node_id));
                        } else if let Some(item) = self.items.get_mut(&h) {
                            debug!(node = %item.node.node_id, %status, "monitored item refused");
                            *self
                                .diag
                                .last_error
                                .lock()
                                .unwrap_or_else(|p| p.into_inner()) =
                                Some(format!("{}: {status}", item.node.node_id));
                            set_bad(item, status, now);
                        }
                    }
                    if !full_again.is_empty() {
                        if let Some(Some(s)) = self.slots.get_mut(slot) {
                            s.full = true;
                        }
                        for c in full_again.into_iter().rev() {
                            queue.push_front(c);
                        }
                    }
                }
            }
        }
        let (good, bad) = self.counts();
        if bad > 0 && (good, bad) != before {
            warn!(
                good,
                bad, "some monitored items were refused; retrying them with backoff"
            );
        }
        self.publish_gauges(before);
    }

    async fn slot_with_room(&mut self, session: &Session) -> Result<usize, StatusCode> {
        if let Some(i) = self
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| !s.full))
        {
            return Ok(i);
        }
        let index = self
            .slots
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.slots.len());
        let forwarder = Forwarder {
            slot: index,
            tx: self.tx.clone(),
        };
        let id = session
            .create_subscription(
                self.settings.publishing_interval,
                self.settings.lifetime_count,
                self.settings.keep_alive_count,
                0,
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
            last_sequence: None,
            last_heard: Instant::now(),
            revived_at: None,
        };
        if index == self.slots.len() {
            self.slots.push(Some(slot));
        } else {
            self.slots[index] = Some(slot);
        }
        debug!(subscription = id, slot = index, "subscription created");
        Ok(index)
    }
}

fn set_bad(item: &mut Item, status: StatusCode, now: Instant) {
    let backoff = match item.state {
        ItemState::Bad { backoff, .. } => (backoff * 2).min(RETRY_MAX),
        _ => RETRY_FIRST,
    };
    item.state = ItemState::Bad {
        status,
        retry_at: now + backoff,
        backoff,
    };
}

fn create_request(handle: u32, node: &NodePlan, node_id: &NodeId) -> MonitoredItemCreateRequest {
    let filter = if node.trigger != DataChangeTrigger::StatusValue || node.deadband.is_some() {
        let (deadband_type, deadband_value) = match node.deadband {
            Some(Deadband::Absolute(v)) => (DeadbandType::Absolute as u32, v),
            Some(Deadband::Percent(v)) => (DeadbandType::Percent as u32, v),
            None => (DeadbandType::None as u32, 0.0),
        };
        ExtensionObject::from_message(DataChangeFilter {
            trigger: match node.trigger {
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
            node_id: node_id.clone(),
            attribute_id: AttributeId::Value as u32,
            ..Default::default()
        },
        monitoring_mode: MonitoringMode::Reporting,
        requested_parameters: MonitoringParameters {
            client_handle: handle,
            sampling_interval: node.sampling_interval.as_secs_f64() * 1000.0,
            filter,
            queue_size: node.queue_size,
            discard_oldest: !node.discard_new,
        },
    }
}
