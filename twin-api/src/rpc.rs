//! The one MQTT v5 connection of twin-api: requests to `{moduleRoot}/methods/{Method}` with a
//! response topic of its own and correlation data, answers matched back to their callers; and
//! the subscriptions to every module's `{root}/state` and `{root}/events`.
//!
//! Correlation is a state machine without sockets ([`Pending`]): a call registers an id, the
//! answer (or the module going offline, or the timeout) completes it exactly once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use iiot_api::broker_url::BrokerUrl;
use iiot_api::rpc::{DISCOVERY_EVENTS_SCHEMA, MESSAGE_SCHEMA_PROPERTY, MQTT_STATUS_CODE_PROPERTY};
use iiot_api::topics::{
    events_topic_root, state_topic_root, ModuleTopics, TelemetryPattern, ALL_MODULE_EVENTS,
    ALL_MODULE_STATES,
};
use iiot_api::{DiscoveryEventModel, ModuleStateModel, Operation};
use iiot_mqtt_tls::TlsFiles;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::sync::{broadcast, oneshot, watch};
use tracing::{debug, info, warn};

use crate::error::{ApiError, TwinApiError};

pub mod event_queue;
use crate::liveness::LivenessTable;
use event_queue::EventSender;

/// How a pending call ended, other than by its timeout.
#[derive(Debug)]
pub enum Outcome {
    Answer { status: u16, body: Bytes },
    ModuleOffline,
}

/// How the twin API's clients (RPC, the hub's broker route) connect to the broker at `url`.
pub fn broker_options(
    url: &str,
    tls_files: &TlsFiles,
    client_id: &str,
) -> Result<MqttOptions, TwinApiError> {
    let b = BrokerUrl::parse(url).map_err(TwinApiError::MqttUrl)?;
    let mut options = MqttOptions::new(client_id, &b.host, b.port);
    tls_files.warn_if_unused(b.tls);
    options.set_transport(tls_files.transport(b.tls).map_err(TwinApiError::MqttTls)?);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_start(true);
    // Telemetry batches of watched modules arrive here: rumqttc's 10 KiB default would drop
    // the connection on the first large one (a module sends up to `--ms`, 256 KiB by default;
    // OPC Publisher allows more).
    options.set_max_packet_size(Some(MAX_INCOMING_PACKET));
    if let (Some(u), Some(p)) = (&b.username, &b.password) {
        options.set_credentials(u, p);
    }
    // Without TCP_NODELAY each request and each answer pays Nagle's ~40 ms.
    let mut network = options.network_options();
    network.set_tcp_nodelay(true);
    options.set_network_options(network);
    Ok(options)
}

/// Calls waiting for their answer, by correlation id.
#[derive(Default)]
pub struct Pending {
    next: AtomicU64,
    calls: DashMap<u64, (String, oneshot::Sender<Outcome>)>,
}

impl Pending {
    pub fn register(&self, module: &str) -> (u64, oneshot::Receiver<Outcome>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.calls.insert(id, (module.to_string(), tx));
        (id, rx)
    }

    pub fn complete(&self, id: u64, outcome: Outcome) -> bool {
        match self.calls.remove(&id) {
            Some((_, (_, tx))) => tx.send(outcome).is_ok(),
            None => false,
        }
    }

    pub fn forget(&self, id: u64) {
        self.calls.remove(&id);
    }

    /// Ends every call waiting on `module` (it went offline).
    pub fn fail_module(&self, module: &str) -> usize {
        let ids: Vec<u64> = self
            .calls
            .iter()
            .filter(|e| e.value().0 == module)
            .map(|e| *e.key())
            .collect();
        ids.into_iter()
            .filter(|id| self.complete(*id, Outcome::ModuleOffline))
            .count()
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

/// What the MQTT task hands to the registry task, in arrival order.
#[derive(Debug)]
pub enum ModuleEvent {
    /// A module's state message arrived (it may be new to the registry).
    State { id: String, root: String },
    /// A discovery event and the module root it came from.
    Discovery {
        root: String,
        event: Box<DiscoveryEventModel>,
    },
}

/// The shared MQTT RPC client.
pub struct MqttRpc {
    client: AsyncClient,
    response_topic: String,
    pending: Pending,
    connected: AtomicBool,
    pub liveness: Arc<LivenessTable>,
    /// Module root → (watchers, telemetry messages); the module's telemetry filter is
    /// subscribed only while someone watches.
    telemetry: DashMap<String, (usize, broadcast::Sender<Telemetry>)>,
    /// Module root → the telemetry pattern its state message announced (`--ttt` followed).
    patterns: DashMap<String, TelemetryPattern>,
    /// Module events dropped because the registry's queue was full (see [`event_queue`]).
    dropped_events: Arc<AtomicU64>,
    /// The hub, for publishers connected through it (routes rooted `iothub:`).
    hub: std::sync::OnceLock<Arc<crate::hub::Hub>>,
}

/// One telemetry message: the writer group its topic names (empty when the module's topic
/// template names none) and the payload. PubSub messages do not name their group inside, so
/// the topic is what ties them to the configuration.
pub type Telemetry = (Arc<str>, Bytes);

/// Keeps a module's telemetry subscription alive; dropping the last one unsubscribes.
pub struct TelemetryLease {
    rpc: Arc<MqttRpc>,
    root: String,
}

impl Drop for TelemetryLease {
    fn drop(&mut self) {
        let last = match self.rpc.telemetry.get_mut(&self.root) {
            Some(mut e) => {
                e.0 -= 1;
                e.0 == 0
            }
            None => false,
        };
        if last {
            self.rpc.telemetry.remove_if(&self.root, |_, v| v.0 == 0);
            if crate::hub::publishers::identity_of(&self.root).is_none() {
                let filter = self.rpc.telemetry_pattern(&self.root).filter();
                let _ = self.rpc.client.try_unsubscribe(filter);
            }
        }
    }
}

/// Feeds a watched hub publisher's messages to its watchers until nobody watches.
async fn forward_hub_telemetry(
    rpc: std::sync::Weak<MqttRpc>,
    mut messages: broadcast::Receiver<crate::hub::messages::Message>,
    root: String,
    device_id: String,
    module_id: String,
) {
    loop {
        let m = match tokio::time::timeout(Duration::from_secs(10), messages.recv()).await {
            Ok(Ok(m)) => Some(m),
            Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                debug!(%root, lost = n, "live values fell behind the hub's messages");
                None
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => return,
            // Quiet: see whether anyone still watches.
            Err(_) => None,
        };
        let Some(rpc) = rpc.upgrade() else { return };
        if !rpc.telemetry.contains_key(&root) {
            return;
        }
        let Some(m) = m.filter(|m| m.device_id == device_id && m.module_id == module_id) else {
            continue;
        };
        if let Some(topic) = m
            .properties
            .get("topic")
            .and_then(serde_json::Value::as_str)
        {
            if !rpc.on_hub_telemetry(&root, topic, &m.body) {
                return;
            }
        }
    }
}

/// Largest MQTT packet the twin API accepts (a watched module's telemetry batch).
const MAX_INCOMING_PACKET: u32 = 16 << 20;

/// Everything the event loop task needs.
pub struct MqttTask {
    event_loop: EventLoop,
    events: EventSender,
}

fn correlation(id: u64) -> Bytes {
    Bytes::copy_from_slice(&id.to_be_bytes())
}

fn correlation_id(data: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(data.try_into().ok()?))
}

impl MqttRpc {
    /// Creates the client; nothing moves until [`MqttRpc::run`] polls the event loop. The
    /// TLS files of an `mqtts://` URL are read here, so a bad one stops the start.
    pub fn new(
        url: &str,
        tls_files: &TlsFiles,
        client_id: &str,
        liveness: Arc<LivenessTable>,
        events: EventSender,
    ) -> Result<(Arc<Self>, MqttTask), TwinApiError> {
        let options = broker_options(url, tls_files, client_id)?;
        let (client, event_loop) = AsyncClient::new(options, 1024);
        let rpc = Arc::new(Self {
            client,
            response_topic: format!("iiot/twin-api/{client_id}/responses"),
            pending: Pending::default(),
            connected: AtomicBool::new(false),
            liveness,
            telemetry: DashMap::new(),
            patterns: DashMap::new(),
            dropped_events: events.dropped(),
            hub: std::sync::OnceLock::new(),
        });
        Ok((rpc, MqttTask { event_loop, events }))
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Module events dropped so far because the registry fell behind.
    /// Routes operations for publishers connected through `hub` there.
    pub fn use_hub(&self, hub: Arc<crate::hub::Hub>) {
        let _ = self.hub.set(hub);
    }

    pub fn dropped_events(&self) -> u64 {
        self.dropped_events.load(Ordering::Relaxed)
    }

    /// Sends `payload` to `{root}/methods/{method}` and waits for the answer. A non-200
    /// answer becomes [`ApiError::Module`] with the module's problem body.
    pub async fn call(
        &self,
        module: &str,
        root: &str,
        op: Operation,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, ApiError> {
        if let Some((device_id, module_id)) = crate::hub::publishers::identity_of(root) {
            let hub = self
                .hub
                .get()
                .ok_or_else(|| ApiError::Offline("the hub is not running".into()))?;
            return hub
                .call_module(device_id, module_id, op, payload, timeout)
                .await;
        }
        if !self.is_connected() {
            return Err(ApiError::Offline(
                "twin-api is not connected to the MQTT broker".into(),
            ));
        }
        let (id, rx) = self.pending.register(module);
        let props = PublishProperties {
            response_topic: Some(self.response_topic.clone()),
            correlation_data: Some(correlation(id)),
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        let topic = ModuleTopics::new(root).method(op.name());
        let method = op.name();
        let outcome = tokio::time::timeout(timeout, async {
            self.client
                .publish_with_properties(topic, QoS::AtLeastOnce, false, payload, props)
                .await
                .map_err(|e| ApiError::Offline(format!("MQTT publish failed: {e}")))?;
            rx.await
                .map_err(|_| ApiError::Internal("the MQTT connection task stopped".into()))
        })
        .await;
        let outcome = match outcome {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                self.pending.forget(id);
                return Err(e);
            }
            Err(_) => {
                self.pending.forget(id);
                return Err(ApiError::Timeout {
                    module: module.to_string(),
                    method: method.to_string(),
                    millis: timeout.as_millis(),
                });
            }
        };
        match outcome {
            Outcome::Answer { status: 200, body } => Ok(body),
            Outcome::Answer { status, body } => Err(ApiError::Module {
                status,
                body: serde_json::from_slice(&body).unwrap_or_else(
                    |_| serde_json::json!({ "detail": String::from_utf8_lossy(&body) }),
                ),
            }),
            Outcome::ModuleOffline => Err(ApiError::Offline(format!(
                "module '{module}' went offline before it answered {method}"
            ))),
        }
    }

    /// The telemetry pattern of the module at `root`: what it announced, else OPC Publisher's
    /// default.
    pub fn telemetry_pattern(&self, root: &str) -> TelemetryPattern {
        self.patterns
            .get(root)
            .map(|p| p.value().clone())
            .unwrap_or_else(|| ModuleTopics::new(root).default_telemetry())
    }

    /// Follows a module's announced telemetry pattern; a watched module that changed it is
    /// subscribed anew (on the broker; a hub publisher's telemetry comes from the hub).
    pub(crate) fn learn_pattern(&self, root: &str, announced: Option<&str>) {
        let pattern = announced
            .map(TelemetryPattern::new)
            .unwrap_or_else(|| ModuleTopics::new(root).default_telemetry());
        let old = self.telemetry_pattern(root);
        if old == pattern {
            return;
        }
        self.patterns.insert(root.to_string(), pattern.clone());
        if self.telemetry.contains_key(root) && crate::hub::publishers::identity_of(root).is_none()
        {
            let _ = self.client.try_unsubscribe(old.filter());
            if let Err(e) = self.client.try_subscribe(pattern.filter(), QoS::AtMostOnce) {
                warn!(error = %e, "subscribing to telemetry failed");
            }
        }
    }

    /// Telemetry messages of the module at `root`, on the telemetry topics it announced.
    pub fn watch_telemetry(
        self: &Arc<Self>,
        root: &str,
    ) -> (broadcast::Receiver<Telemetry>, TelemetryLease) {
        let mut entry = self
            .telemetry
            .entry(root.to_string())
            .or_insert_with(|| (0, broadcast::channel(1024).0));
        entry.0 += 1;
        if entry.0 == 1 {
            if let Some((device_id, module_id)) = crate::hub::publishers::identity_of(root) {
                // A publisher on the hub: its device-to-cloud messages, while watched.
                if let Some(hub) = self.hub.get() {
                    tokio::spawn(forward_hub_telemetry(
                        Arc::downgrade(self),
                        hub.messages.subscribe(),
                        root.to_string(),
                        device_id.to_string(),
                        module_id.to_string(),
                    ));
                }
            } else {
                let filter = self.telemetry_pattern(root).filter();
                if let Err(e) = self.client.try_subscribe(filter, QoS::AtMostOnce) {
                    warn!(error = %e, "subscribing to telemetry failed");
                }
            }
        }
        let rx = entry.1.subscribe();
        drop(entry);
        (
            rx,
            TelemetryLease {
                rpc: self.clone(),
                root: root.to_string(),
            },
        )
    }

    fn on_publish(&self, p: &Publish, events: &EventSender) {
        let topic = String::from_utf8_lossy(&p.topic);
        let props = p.properties.as_ref();
        if topic == self.response_topic {
            let Some(id) = props
                .and_then(|pr| pr.correlation_data.as_deref())
                .and_then(correlation_id)
            else {
                return;
            };
            let status = props
                .and_then(|pr| {
                    pr.user_properties
                        .iter()
                        .find(|(k, _)| k == MQTT_STATUS_CODE_PROPERTY)
                })
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(200);
            if !self.pending.complete(
                id,
                Outcome::Answer {
                    status,
                    body: p.payload.clone(),
                },
            ) {
                debug!(id, "answer for a call nobody waits for (timed out?)");
            }
        } else if let Some(root) = state_topic_root(&topic) {
            if p.payload.is_empty() {
                return; // a cleared retained message
            }
            match serde_json::from_slice::<ModuleStateModel>(&p.payload) {
                Ok(state) => {
                    let id = if state.publisher_id.is_empty() {
                        root.to_string()
                    } else {
                        state.publisher_id.clone()
                    };
                    self.learn_pattern(root, state.telemetry_topic.as_deref());
                    if self.liveness.apply(root, &state) {
                        let failed = self.pending.fail_module(&id);
                        info!(module = %id, failed, "module went offline");
                    }
                    events.offer(ModuleEvent::State {
                        id,
                        root: root.to_string(),
                    });
                }
                Err(e) => debug!(%topic, error = %e, "not a module state message"),
            }
        } else if let Some(root) = events_topic_root(&topic) {
            let schema = props.and_then(|pr| {
                pr.user_properties
                    .iter()
                    .find(|(k, _)| k == MESSAGE_SCHEMA_PROPERTY)
                    .map(|(_, v)| v.as_str())
            });
            if schema.is_some_and(|s| s != DISCOVERY_EVENTS_SCHEMA) {
                return; // progress messages
            }
            match serde_json::from_slice::<DiscoveryEventModel>(&p.payload) {
                Ok(event) => {
                    events.offer(ModuleEvent::Discovery {
                        root: root.to_string(),
                        event: Box::new(event),
                    });
                }
                Err(e) => debug!(%topic, error = %e, "not a discovery event"),
            }
        } else {
            self.on_telemetry(&topic, &p.payload);
        }
    }

    /// Hands a hub publisher's message (its broker topic in the `topic` property) to the
    /// watchers of its root; `false` once nobody watches any more.
    fn on_hub_telemetry(&self, root: &str, topic: &str, payload: &Bytes) -> bool {
        let Some(watched) = self.telemetry.get(root) else {
            return false;
        };
        if let Some(group) = self.telemetry_pattern(root).writer_group(topic) {
            let _ = watched
                .value()
                .1
                .send((Arc::from(group.unwrap_or("")), payload.clone()));
        }
        true
    }

    /// Hands a telemetry message to the watchers of every module whose pattern it fits.
    fn on_telemetry(&self, topic: &str, payload: &Bytes) {
        for watched in self.telemetry.iter() {
            // The announced pattern by reference: this runs for every telemetry message.
            let group = match self.patterns.get(watched.key()) {
                Some(pattern) => pattern.writer_group(topic),
                None => ModuleTopics::new(watched.key().as_str())
                    .default_telemetry()
                    .writer_group(topic),
            };
            if let Some(group) = group {
                let _ = watched
                    .value()
                    .1
                    .send((Arc::from(group.unwrap_or("")), payload.clone()));
            }
        }
    }

    /// Polls the connection until `shutdown`; reconnects by itself and subscribes again on
    /// every ConnAck (clean start).
    pub async fn run(self: Arc<Self>, task: MqttTask, mut shutdown: watch::Receiver<bool>) {
        let MqttTask {
            mut event_loop,
            events,
        } = task;
        loop {
            tokio::select! {
                _ = async { let _ = shutdown.wait_for(|v| *v).await; } => {
                    let _ = self.client.try_disconnect();
                    let _ = tokio::time::timeout(Duration::from_millis(500), event_loop.poll()).await;
                    break;
                }
                event = event_loop.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        info!("twin-api connected to the MQTT broker");
                        for (filter, qos) in [
                            (self.response_topic.clone(), QoS::AtLeastOnce),
                            (ALL_MODULE_STATES.to_string(), QoS::AtLeastOnce),
                            (ALL_MODULE_EVENTS.to_string(), QoS::AtLeastOnce),
                        ] {
                            if let Err(e) = self.client.try_subscribe(filter, qos) {
                                warn!(error = %e, "subscribing failed");
                            }
                        }
                        // Telemetry watched before a reconnect is watched again.
                        for root in self.telemetry.iter().map(|e| e.key().clone()) {
                            let filter = self.telemetry_pattern(&root).filter();
                            let _ = self.client.try_subscribe(filter, QoS::AtMostOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        self.connected.store(true, Ordering::Relaxed);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => self.on_publish(&p, &events),
                    Ok(_) => {}
                    Err(e) => {
                        self.connected.store(false, Ordering::Relaxed);
                        warn!(error = %e, "MQTT connection error; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
        self.connected.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flood of state messages with nobody applying them: the queue to the registry stays
    /// bounded and what did not fit is counted.
    #[tokio::test]
    async fn a_flood_of_module_events_stays_bounded() {
        let (tx, rx) = event_queue::channel(event_queue::CAPACITY);
        let (rpc, task) = MqttRpc::new(
            "mqtt://127.0.0.1:1",
            &TlsFiles::default(),
            "flood",
            Arc::new(LivenessTable::default()),
            tx,
        )
        .unwrap();
        let n = 10_000;
        for i in 0..n {
            let state = serde_json::json!({ "state": "Online", "publisherId": format!("m{i}"),
                "rootTopic": format!("m{i}") });
            let p = Publish::new(
                format!("m{i}/state"),
                QoS::AtLeastOnce,
                serde_json::to_vec(&state).unwrap(),
                None,
            );
            rpc.on_publish(&p, &task.events);
        }
        assert!(rx.len() <= 4096, "{} events queued", rx.len());
        assert_eq!(rpc.dropped_events(), (n - rx.len()) as u64);
    }

    #[test]
    fn pending_calls_complete_once() {
        let p = Pending::default();
        let (a, mut rx_a) = p.register("m1");
        let (b, mut rx_b) = p.register("m2");
        assert_ne!(a, b);
        assert_eq!(correlation_id(&correlation(a)), Some(a));
        assert!(p.complete(
            a,
            Outcome::Answer {
                status: 200,
                body: Bytes::from_static(b"1")
            }
        ));
        assert!(!p.complete(a, Outcome::ModuleOffline));
        assert!(matches!(
            rx_a.try_recv(),
            Ok(Outcome::Answer { status: 200, .. })
        ));
        assert_eq!(p.fail_module("m2"), 1);
        assert!(matches!(rx_b.try_recv(), Ok(Outcome::ModuleOffline)));
        assert!(p.is_empty());
        let (c, _rx) = p.register("m3");
        p.forget(c);
        assert_eq!(p.len(), 0);
    }
}
