//! Several hub replicas behind one address on one PostgreSQL database (issue 17, part 5).
//!
//! A device is connected to one replica; a service call lands on any. What needs the
//! device's session — a direct method, a desired patch, closing it — goes to the replica the
//! store names as holding the connection (its instance id prefixes the connection id) over
//! the [`bus`](super::bus). What every replica keeps for itself — the publishers view — hears
//! of changes by broadcast. Replicas beat every few seconds; connections recorded by one
//! that stopped beating are marked disconnected by the others (and by the next start of a
//! single replica that crashed), so `connectionState` does not stay `Connected` forever.
//!
//! A replica counts as stopped when its beat has not changed for [`GONE_AFTER`] of this
//! replica's own (monotonic) time, so clocks that disagree cannot make a live replica look
//! dead. Each replica also checks its sessions against the store every beat: a session the
//! store no longer names as the identity's connection is recorded again (a mistaken sweep) or
//! closed (taken over on another replica, deleted); after its bus connection dropped (notes
//! may be lost) it checks each session fully — deleted, disabled — and closes those that
//! take desired patches, which then GET their twin again on reconnect.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::{mpsc, oneshot, watch};

use super::bus::{Bus, Note, Received};
use super::endpoint::live::MethodError;
use super::identity::Identity;
use super::store::INSTANCE_LEN;
use super::Hub;

/// How often a replica beats.
const BEAT: Duration = Duration::from_secs(5);
/// A replica whose beat has not changed for this long is gone: its connections are stale.
const GONE_AFTER: Duration = Duration::from_secs(20);
/// Heartbeats of replicas gone this long are deleted.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Sessions younger than this are left alone by the check (their connection may not be
/// recorded yet).
const SETTLED: Duration = Duration::from_secs(10);
/// Time a forwarded call may take beyond the device's own timeout (two notes' travel).
const FORWARD_SLACK: Duration = Duration::from_secs(2);

type Answer = Result<(i32, Bytes), MethodError>;

/// This replica's view of the others.
pub struct Replicas {
    bus: Option<Bus>,
    /// Calls forwarded to another replica, by request id.
    calls: DashMap<String, oneshot::Sender<Answer>>,
    /// Each replica's last beat as read, and when (here) it last changed.
    observed: Mutex<HashMap<String, (i64, Instant)>>,
    /// Set when the bus connection dropped: sessions are checked fully at the next beat.
    resync: Arc<AtomicBool>,
    /// A sweep and check of sessions is running (they run beside the beat, never two).
    checking: AtomicBool,
    /// Publishers connected to other replicas have been loaded into this one's view.
    publishers_loaded: AtomicBool,
}

impl Replicas {
    pub fn new(bus: Option<Bus>, resync: Arc<AtomicBool>) -> Self {
        Self {
            bus,
            calls: DashMap::new(),
            observed: Mutex::new(HashMap::new()),
            resync,
            checking: AtomicBool::new(false),
            publishers_loaded: AtomicBool::new(false),
        }
    }

    /// Records the beats read; an instance first seen (in beats or connections) gets
    /// [`GONE_AFTER`] from now.
    fn observe(&self, beats: impl IntoIterator<Item = (String, i64)>) {
        let now = Instant::now();
        if let Ok(mut o) = self.observed.lock() {
            for (instance, seen) in beats {
                let e = o.entry(instance).or_insert((seen, now));
                if e.0 != seen {
                    *e = (seen, now);
                }
            }
        }
    }

    /// Whether a replica stopped: observed, and its beat unchanged for [`GONE_AFTER`].
    fn is_gone(&self, instance: &str) -> bool {
        self.observed
            .lock()
            .ok()
            .and_then(|o| {
                o.get(instance)
                    .map(|(_, changed)| changed.elapsed() >= GONE_AFTER)
            })
            .unwrap_or(false)
    }

    pub fn bus(&self) -> Option<&Bus> {
        self.bus.as_ref()
    }

    fn is_alive(&self, instance: &str) -> bool {
        !self.is_gone(instance)
    }
}

/// The replica that recorded a connection (the prefix of its id).
pub fn instance_of(connection_id: &str) -> Option<&str> {
    connection_id.get(..usize::try_from(INSTANCE_LEN).unwrap_or(32))
}

/// Removes a forwarded call however its caller's future ends.
struct Forwarded<'a> {
    replicas: &'a Replicas,
    rid: String,
}

impl Drop for Forwarded<'_> {
    fn drop(&mut self) {
        self.replicas.calls.remove(&self.rid);
    }
}

fn method_error(e: &MethodError) -> &'static str {
    match e {
        MethodError::NotOnline => "notOnline",
        MethodError::Timeout => "timeout",
    }
}

impl Hub {
    fn instance(&self) -> &str {
        self.live.instance()
    }

    /// The other replica holding `i`'s connection, when one does and still beats.
    fn holder<'a>(&self, i: &'a Identity) -> Option<&'a str> {
        self.replicas.bus.as_ref()?;
        let instance = instance_of(&i.connection_id)?;
        (i.connected && instance != self.instance() && self.replicas.is_alive(instance))
            .then_some(instance)
    }

    async fn send(&self, to: Option<&str>, note: Note) {
        if let Some(bus) = &self.replicas.bus {
            if let Err(e) = bus.send(to, note).await {
                tracing::warn!(error = %e, "hub: telling the other replicas failed");
            }
        }
    }

    /// Invokes a direct method on an identity, wherever it is connected.
    pub(crate) async fn invoke(
        &self,
        device_id: &str,
        module_id: &str,
        method: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Answer {
        if self.live.session(device_id, module_id).is_some() || self.replicas.bus.is_none() {
            return self
                .live
                .invoke(device_id, module_id, method, payload, timeout)
                .await;
        }
        let identity = match self.store.get(device_id, module_id).await {
            Ok(Some(i)) => i,
            Ok(None) => return Err(MethodError::NotOnline),
            Err(e) => {
                tracing::warn!(error = %e, "hub: reading an identity for a method call failed");
                return Err(MethodError::NotOnline);
            }
        };
        let Some(holder) = self.holder(&identity) else {
            return Err(MethodError::NotOnline);
        };
        let rid = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = oneshot::channel();
        self.replicas.calls.insert(rid.clone(), tx);
        let _forwarded = Forwarded {
            replicas: &self.replicas,
            rid: rid.clone(),
        };
        let note = Note::Call {
            rid,
            device: device_id.into(),
            module: module_id.into(),
            method: method.into(),
            payload: String::from_utf8_lossy(&payload).into_owned(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        };
        if let Some(bus) = &self.replicas.bus {
            if let Err(e) = bus.send(Some(holder), note).await {
                tracing::warn!(error = %e, "hub: forwarding a method call failed");
                return Err(MethodError::NotOnline);
            }
        }
        match tokio::time::timeout(timeout + FORWARD_SLACK, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) | Err(_) => Err(MethodError::Timeout),
        }
    }

    /// Sends a desired-properties patch to `i` if it is connected (here or to another
    /// replica) and subscribed to them.
    pub(crate) async fn push_desired(&self, i: &Identity, topic: String, payload: Bytes) {
        let wanted = |s: &super::endpoint::live::Subscriptions| {
            s.desired.load(std::sync::atomic::Ordering::Acquire)
        };
        if self.live.session(&i.device_id, &i.module_id).is_some() {
            self.live
                .notify(&i.device_id, &i.module_id, wanted, topic, payload);
        } else if let Some(holder) = self.holder(i) {
            let note = Note::Desired {
                device: i.device_id.clone(),
                module: i.module_id.clone(),
                topic,
                payload: String::from_utf8_lossy(&payload).into_owned(),
            };
            self.send(Some(holder), note).await;
        }
    }

    /// Tells the identity's session, here or on another replica, that a delivery waits.
    pub(crate) async fn wake_deliveries(&self, device_id: &str, module_id: &str) {
        if self.live.wake_deliveries(device_id, module_id) || self.replicas.bus.is_none() {
            return;
        }
        if let Ok(Some(i)) = self.store.get(device_id, module_id).await {
            if let Some(holder) = self.holder(&i) {
                let note = Note::Deliver {
                    device: i.device_id.clone(),
                    module: i.module_id.clone(),
                };
                self.send(Some(holder), note).await;
            }
        }
    }

    /// Ends the session of an identity (deleted, or its credential changed) on every replica.
    pub(crate) async fn close_identity(&self, device_id: &str, module_id: &str) {
        self.live.close(device_id, module_id);
        let note = Note::Close {
            device: device_id.into(),
            module: Some(module_id.into()),
            connection: None,
            taken_over: false,
        };
        self.send(None, note).await;
    }

    /// Ends every session of a device, its modules' included, on every replica.
    pub(crate) async fn close_device(&self, device_id: &str) {
        self.live.close_device(device_id);
        let note = Note::Close {
            device: device_id.into(),
            module: None,
            connection: None,
            taken_over: false,
        };
        self.send(None, note).await;
    }

    /// A connection here took over `previous`, which another replica may hold: it ends.
    pub(crate) async fn taken_over(&self, device_id: &str, module_id: &str, previous: &str) {
        match instance_of(previous) {
            Some(instance) if instance != self.instance() => {
                let note = Note::Close {
                    device: device_id.into(),
                    module: Some(module_id.into()),
                    connection: Some(previous.into()),
                    taken_over: true,
                };
                self.send(Some(instance), note).await;
            }
            _ => {}
        }
    }

    /// Tells the other replicas' publishers views that a publisher came or went.
    pub(crate) async fn announce_publisher(&self, i: &Identity, online: bool) {
        let note = Note::Seen {
            device: i.device_id.clone(),
            module: i.module_id.clone(),
            online,
        };
        self.send(None, note).await;
    }

    /// Acts on what other replicas say, until the bus ends.
    pub(crate) async fn serve_replicas(self: Arc<Self>, mut notes: mpsc::Receiver<Received>) {
        while let Some(Received { from, note }) = notes.recv().await {
            match note {
                Note::Call {
                    rid,
                    device,
                    module,
                    method,
                    payload,
                    timeout_ms,
                } => {
                    let hub = self.clone();
                    tokio::spawn(async move {
                        let answer = hub
                            .live
                            .invoke(
                                &device,
                                &module,
                                &method,
                                Bytes::from(payload),
                                Duration::from_millis(timeout_ms),
                            )
                            .await;
                        let note = match answer {
                            Ok((status, payload)) => Note::Answer {
                                rid,
                                status,
                                payload: base64::engine::general_purpose::STANDARD.encode(&payload),
                                error: None,
                            },
                            Err(e) => Note::Answer {
                                rid,
                                status: 0,
                                payload: String::new(),
                                error: Some(method_error(&e).into()),
                            },
                        };
                        hub.send(Some(&from), note).await;
                    });
                }
                Note::Answer {
                    rid,
                    status,
                    payload,
                    error,
                } => {
                    if let Some((_, tx)) = self.replicas.calls.remove(&rid) {
                        let answer = match error.as_deref() {
                            None => base64::engine::general_purpose::STANDARD
                                .decode(payload)
                                .map(|p| (status, Bytes::from(p)))
                                .map_err(|_| MethodError::Timeout),
                            Some("notOnline") => Err(MethodError::NotOnline),
                            Some(_) => Err(MethodError::Timeout),
                        };
                        let _ = tx.send(answer);
                    }
                }
                Note::Desired {
                    device,
                    module,
                    topic,
                    payload,
                } => {
                    self.live.notify(
                        &device,
                        &module,
                        |s| s.desired.load(std::sync::atomic::Ordering::Acquire),
                        topic,
                        Bytes::from(payload),
                    );
                }
                Note::Close {
                    device,
                    module,
                    connection,
                    taken_over,
                } => match (module, connection) {
                    (Some(m), Some(c)) => self.live.close_connection(&device, &m, &c, taken_over),
                    (Some(m), None) => self.live.close(&device, &m),
                    (None, _) => self.live.close_device(&device),
                },
                Note::Seen {
                    device,
                    module,
                    online,
                } => match self.store.get(&device, &module).await {
                    Ok(Some(i)) => self.publisher_seen(&i, online).await,
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "hub: reading a publisher another replica saw failed");
                    }
                },
                Note::Deliver { device, module } => {
                    self.live.wake_deliveries(&device, &module);
                }
                Note::Messages => self.messages.wake(),
            }
        }
    }

    /// Beats every few seconds and, beside the beat, sweeps the connections of replicas
    /// that stopped and checks this replica's sessions; at the end forgets this replica's
    /// beat (its sessions have ended).
    pub(crate) async fn beat(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            match self.store.heartbeat(self.instance(), now).await {
                Ok(beats) => {
                    let forget = i64::try_from(FORGET_AFTER.as_secs()).unwrap_or(i64::MAX);
                    for (gone, _) in beats.iter().filter(|(_, s)| *s < now - forget) {
                        let _ = self.store.forget_replica(gone).await;
                    }
                    self.replicas.observe(beats);
                    if !self.replicas.checking.swap(true, Ordering::AcqRel) {
                        let hub = self.clone();
                        tokio::spawn(async move {
                            hub.sweep().await;
                            let full = hub.replicas.resync.swap(false, Ordering::AcqRel);
                            hub.check_sessions(full).await;
                            hub.load_publishers(full).await;
                            hub.replicas.checking.store(false, Ordering::Release);
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "hub: the replica heartbeat failed"),
            }
            if let Some(bus) = &self.replicas.bus {
                if let Err(e) = bus.prune().await {
                    tracing::debug!(error = %e, "hub: pruning bus notes failed");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(BEAT) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        // Sessions end on shutdown; give them a moment to record it, then stop beating.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = self.store.forget_replica(self.instance()).await;
    }

    /// Connections recorded by replicas that no longer beat are over.
    async fn sweep(&self) {
        let instances = match self.store.connection_instances().await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "hub: reading connection states failed");
                return;
            }
        };
        // A replica holding connections without a beat row gets the same grace.
        if let Ok(mut o) = self.replicas.observed.lock() {
            for i in &instances {
                o.entry(i.clone()).or_insert((i64::MIN, Instant::now()));
            }
        }
        for gone in instances
            .iter()
            .filter(|i| *i != self.instance() && self.replicas.is_gone(i))
        {
            let Ok(stale) = self.store.connected_to(gone).await else {
                continue;
            };
            if !stale.is_empty() {
                tracing::info!(replica = %gone, connections = stale.len(), "hub: a replica stopped; its connections are over");
            }
            for (device, module, connection) in stale {
                if let Some(i) = self
                    .set_connected(&device, &module, &connection, false, false)
                    .await
                {
                    self.publisher_state(&i, false).await;
                }
            }
        }
    }

    /// Checks this replica's sessions against the store (see the module notes); `full`
    /// after the bus dropped.
    async fn check_sessions(&self, full: bool) {
        let recorded: HashSet<(String, String, String)> =
            match self.store.connected_to(self.instance()).await {
                Ok(r) => r.into_iter().collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "hub: reading this replica's connections failed");
                    return;
                }
            };
        for (device, module, connection, desired) in self.live.sessions(SETTLED) {
            let key = (device.clone(), module.clone(), connection.clone());
            if recorded.contains(&key) && !full {
                continue;
            }
            let identity = match self.store.get(&device, &module).await {
                Ok(i) => i,
                Err(_) => continue,
            };
            let enabled = match &identity {
                Some(i) if i.is_module() => {
                    self.store.device_enabled(&device).await.unwrap_or(true)
                }
                Some(i) => i.desc.enabled,
                None => false,
            };
            match identity {
                Some(i) if enabled && i.connection_id == connection => {
                    if full && desired {
                        // A desired patch may have been lost with the bus: the device GETs
                        // its twin again when it reconnects.
                        self.live
                            .close_connection(&device, &module, &connection, false);
                    }
                }
                Some(i) if enabled && !i.connected => {
                    // Swept while it was still here: recorded again.
                    if let Some(i) = self
                        .set_connected(&device, &module, &connection, true, false)
                        .await
                    {
                        self.publisher_state(&i, true).await;
                    }
                }
                _ => {
                    // Deleted, disabled, or connected through another replica since.
                    self.live
                        .close_connection(&device, &module, &connection, false);
                }
            }
        }
    }

    /// Publishers connected to other replicas: loaded once this replica's publishers view
    /// exists, and again after the bus dropped (`full`).
    async fn load_publishers(&self, full: bool) {
        if self.replicas.bus.is_none() || self.publishers.get().is_none() {
            return;
        }
        if self.replicas.publishers_loaded.swap(true, Ordering::AcqRel) && !full {
            return;
        }
        match self.store.connected_modules().await {
            Ok(ids) => {
                for i in ids.iter().filter(|i| self.holder(i).is_some()) {
                    self.publisher_seen(i, true).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "hub: reading connected publishers failed"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_replica_is_the_prefix_of_a_connection_id() {
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let conn = format!("{instance}-17");
        assert_eq!(instance_of(&conn), Some(instance.as_str()));
        assert_eq!(instance_of("short"), None);
        assert_eq!(instance_of(""), None);
    }
}
